"""analysis.reconstruct: normalisation, angular weights, FBP and SIRT on analytic data."""

import numpy as np
import pytest

from analysis.reconstruct import angular_weights, fbp, filter_projections, normalise, sirt


def _disk_sinogram(disks, angles_deg, n_det, nz=1):
    """Exact parallel-beam line integrals of disks (x0, y0, radius, mu), voxel units."""
    t = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))[:, None]
    u = np.arange(n_det) - (n_det - 1) / 2
    sino = np.zeros((t.size, n_det))
    for x0, y0, r, mu in disks:
        u0 = -x0 * np.sin(t) + y0 * np.cos(t)
        sino += mu * 2 * np.sqrt(np.clip(r ** 2 - (u - u0) ** 2, 0, None))
    return np.repeat(sino[:, None, :], nz, axis=1).astype(np.float32)


def _sphere_sinogram(radius, mu, angles_deg, n_det, nz):
    """Exact line integrals of a centred sphere; rows are z slices."""
    u = np.arange(n_det) - (n_det - 1) / 2
    z = np.arange(nz) - (nz - 1) / 2
    chord = 2 * np.sqrt(np.clip(radius ** 2 - z[:, None] ** 2 - u[None, :] ** 2, 0, None))
    return np.broadcast_to(mu * chord, (len(angles_deg), nz, n_det)).astype(np.float32)


def _grid(n):
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    return yy, xx


FULL = np.linspace(0, 180, 240, endpoint=False)


def test_normalise_round_trips_beer_lambert():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 5, (7, 4, 9))
    dark = rng.uniform(90, 110, (4, 9))
    flat = rng.uniform(4000, 6000, (4, 9))
    counts = flat * np.exp(-p) + dark
    flats = flat + dark + np.array([-30.0, 10.0, 20.0])[:, None, None]  # a stack, averaged
    darks = np.stack([dark - 1, dark + 1])
    out = normalise(counts, flats, darks)
    assert out.dtype == np.float32 and out.shape == p.shape
    np.testing.assert_allclose(out, p, atol=2e-5)


def test_normalise_guards_zero_and_negative_counts():
    counts = np.array([[[0.0, 50.0, 1e4]]])
    out = normalise(counts.astype(np.uint16), np.full((1, 3), 1100.0), np.full((1, 3), 100.0))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[0, 0], [np.log(1000 / 0.5), np.log(1000 / 0.5), -np.log(9900 / 1000)], rtol=1e-6)


def test_angular_weights():
    n = 90
    np.testing.assert_allclose(angular_weights(np.linspace(0, 180, n, endpoint=False)), np.pi / n)
    np.testing.assert_allclose(angular_weights(np.linspace(0, 360, 2 * n, endpoint=False)), np.pi / (2 * n))
    # Non-uniform: each angle weighs half its two gaps.
    w = angular_weights([0.0, 10.0, 30.0, 90.0])
    np.testing.assert_allclose(np.rad2deg(w), [0.5 * (90 + 10), 0.5 * (10 + 20), 0.5 * (20 + 60), 0.5 * (60 + 90)])
    # Limited angle: the missing wedge is not spread onto the end angles.
    w = angular_weights(np.linspace(-70, 70, 141))
    np.testing.assert_allclose(w, np.pi / 141)


@pytest.mark.parametrize("filter_name", ["ramp", "shepp-logan", "hann", "hamming"])
def test_fbp_uniform_disk_recovers_mu(filter_name):
    n, mu = 96, 0.02
    rec = fbp(_disk_sinogram([(3.0, -2.0, 36.0, mu)], FULL, n), FULL, filter=filter_name)
    assert rec.shape == (1, n, n) and rec.dtype == np.float32
    yy, xx = _grid(n)
    inside = (xx - 3) ** 2 + (yy + 2) ** 2 < 30 ** 2
    outside = (xx - 3) ** 2 + (yy + 2) ** 2 > 42 ** 2
    assert abs(rec[0, inside].mean() / mu - 1) < 0.01
    assert np.abs(rec[0, inside] / mu - 1).max() < 0.06
    assert np.abs(rec[0, outside & (xx ** 2 + yy ** 2 < 46 ** 2)]).max() < 0.05 * mu


def test_fbp_sphere_slices():
    n, nz, r, mu = 64, 9, 24.0, 0.05
    rec = fbp(_sphere_sinogram(r, mu, FULL, n, nz), FULL)
    yy, xx = _grid(n)
    z = np.arange(nz) - (nz - 1) / 2
    for k in range(nz):
        inside = xx ** 2 + yy ** 2 < (np.sqrt(r ** 2 - z[k] ** 2) - 4) ** 2
        assert abs(rec[k, inside].mean() / mu - 1) < 0.01


def test_fbp_360_and_non_uniform_angles():
    n, mu = 64, 0.03
    yy, xx = _grid(n)
    inside = xx ** 2 + yy ** 2 < 20 ** 2
    for angles in (np.linspace(0, 360, 300, endpoint=False),
                   np.sort(np.random.default_rng(3).uniform(-90, 90, 300))):
        rec = fbp(_disk_sinogram([(0.0, 0.0, 25.0, mu)], angles, n), angles)
        assert abs(rec[0, inside].mean() / mu - 1) < 0.02


def test_fbp_limited_angle_is_worse_but_bounded():
    n, mu = 96, 0.02
    disks = [(0.0, 0.0, 30.0, mu), (10.0, 5.0, 6.0, 2 * mu)]
    limited = np.linspace(-70, 70, 281)
    yy, xx = _grid(n)
    truth = sum(np.where((xx - x0) ** 2 + (yy - y0) ** 2 <= r ** 2, m, 0.0) for x0, y0, r, m in disks)
    region = xx ** 2 + yy ** 2 < 40 ** 2
    errors = {}
    for name, angles in (("full", FULL), ("limited", limited)):
        rec = fbp(_disk_sinogram(disks, angles, n), angles, filter="hann")[0]
        errors[name] = np.sqrt(np.mean((rec[region] - truth[region]) ** 2)) / mu
    assert errors["full"] < 0.15
    assert errors["full"] * 1.5 < errors["limited"] < 0.6
    # The centre of the big disk is still about right.
    rec = fbp(_disk_sinogram(disks, limited, n), limited)[0]
    assert abs(rec[(xx + 10) ** 2 + yy ** 2 < 8 ** 2].mean() / mu - 1) < 0.1


def test_fbp_interior_tomography_padding():
    # A disk 1.25x wider than the field of view: truncated projections.
    n, mu = 96, 0.02
    sino = _disk_sinogram([(0.0, 0.0, 60.0, mu), (8.0, -6.0, 6.0, mu)], FULL, n)
    yy, xx = _grid(n)
    roi = (xx ** 2 + yy ** 2 < 40 ** 2) & ((xx - 8) ** 2 + (yy + 6) ** 2 > 9 ** 2)
    padded = fbp(sino, FULL, padding=True)[0, roi] / mu
    plain = fbp(sino, FULL, padding=False)[0, roi] / mu
    assert abs(padded.mean() - 1) < 0.05 and padded.max() - padded.min() < 0.15
    assert abs(plain.mean() - 1) > 2 * abs(padded.mean() - 1)


def test_filter_projections_removes_constant():
    # The ramp has no DC: a constant line integral (a slab) filters to ~0.
    out = filter_projections(np.full((2, 1, 40), 3.0, np.float32), padding=True)
    assert np.abs(out).max() < 0.05


def test_sirt_recovers_disk_and_stays_nonnegative():
    n, mu = 32, 0.05
    angles = np.linspace(0, 180, 48, endpoint=False)
    sino = _disk_sinogram([(2.0, 1.0, 10.0, mu)], angles, n)
    seen = []
    rec = sirt(sino, angles, iterations=100, progress=seen.append)
    assert rec.shape == (1, n, n) and rec.min() >= 0 and seen[-1] == 1.0
    yy, xx = _grid(n)
    inside = (xx - 2) ** 2 + (yy - 1) ** 2 < 7 ** 2
    assert abs(rec[0, inside].mean() / mu - 1) < 0.03
    assert np.abs(rec[0, (xx - 2) ** 2 + (yy - 1) ** 2 > 13 ** 2]).max() < 0.1 * mu


@pytest.mark.parametrize("call", [
    lambda: normalise(np.ones((2, 3)), np.ones((2, 3)), np.zeros((2, 3))),
    lambda: normalise(np.ones((1, 2, 3)), np.ones((3, 2)), np.zeros((2, 3))),
    lambda: fbp(np.ones((3, 1, 8)), [0.0, 1.0]),
    lambda: fbp(np.ones((2, 1, 8)), [0.0, 1.0], filter="cosine"),
    lambda: sirt(np.ones((2, 1, 8)), [0.0, 1.0], iterations=-1),
    lambda: angular_weights([]),
])
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()


def test_sirt_beats_fbp_with_a_missing_wedge():
    n, mu = 64, 0.02
    disks = [(0.0, 0.0, 20.0, mu), (7.0, 3.0, 4.0, 2 * mu), (-8.0, -5.0, 3.0, 3 * mu)]
    angles = np.linspace(-70, 70, 101)
    yy, xx = _grid(n)
    truth = sum(np.where((xx - x0) ** 2 + (yy - y0) ** 2 <= r ** 2, m, 0.0) for x0, y0, r, m in disks)
    region = xx ** 2 + yy ** 2 < 28 ** 2
    sino = _disk_sinogram(disks, angles, n)
    err_fbp = np.sqrt(np.mean((fbp(sino, angles, filter="hann")[0] - truth)[region] ** 2))
    err_sirt = np.sqrt(np.mean((sirt(sino, angles)[0] - truth)[region] ** 2))
    assert err_sirt < 0.8 * err_fbp
