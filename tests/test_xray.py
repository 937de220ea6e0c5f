"""synthcal.xray: photon statistics, blur, rings, drift and determinism of simulated scans."""

import numpy as np
import pytest
from scipy.special import erf

from analysis.reconstruct import fbp, normalise
from conftest import digest, digest_in_fresh_process
from synthcal.xray import Scan, limited_angles_deg, simulate_scan

FULL = np.linspace(0, 180, 180, endpoint=False)


def _ball(n, centre, radius, mu):
    z, y, x = np.meshgrid(*[np.arange(n) - c for c in centre], indexing="ij")
    return np.where(x ** 2 + y ** 2 + z ** 2 <= radius ** 2, mu, 0.0).astype(np.float32)


def test_limited_angles():
    a = limited_angles_deg(801, 70.0)
    assert a.shape == (801,) and a[0] == -70.0 and a[-1] == 70.0
    np.testing.assert_allclose(np.diff(a), 140.0 / 800)
    with pytest.raises(ValueError):
        limited_angles_deg(1, 70.0)
    with pytest.raises(ValueError):
        limited_angles_deg(10, 95.0)


def test_poisson_statistics_and_beer_lambert():
    # Uniform slab along z (same chord in every row): counts ~ Poisson(I0 exp(-p)) + dark.
    mu, n, i0, dark = 0.02, 24, 2000.0, 100.0
    vol = np.full((8, n, n), mu, np.float32)
    angles = np.zeros(200)  # rays along x: every bin's line integral is n * mu
    scan = simulate_scan(vol, angles, incident_counts=i0, dark_counts=dark, read_noise_counts=0.0, n_flats=50)
    assert isinstance(scan, Scan) and scan.counts.dtype == np.float32
    assert scan.counts.shape == (200, 8, n) and scan.flats.shape == (50, 8, n) and scan.darks.shape == (50, 8, n)
    signal = scan.counts - dark
    expected = i0 * np.exp(-n * mu)
    assert abs(signal.mean() / expected - 1) < 0.005
    assert abs(signal.var() / expected - 1) < 0.03
    flat = scan.flats - dark
    assert abs(flat.mean() / i0 - 1) < 0.005 and abs(flat.var() / i0 - 1) < 0.05
    np.testing.assert_array_equal(scan.darks, dark)


def test_read_noise_and_dark_frames():
    scan = simulate_scan(np.zeros((4, 16, 16), np.float32), [0.0], incident_counts=100.0, dark_counts=50.0,
                         read_noise_counts=4.0, n_flats=3, n_darks=200)
    assert abs(scan.darks.mean() - 50.0) < 0.1 and abs(scan.darks.std() / 4.0 - 1) < 0.03


def test_normalised_scan_matches_line_integrals_at_high_counts():
    n = 40
    vol = _ball(n, ((n - 1) / 2,) * 3, 14.0, 0.05)
    angles = np.array([0.0, 30.0, 90.0])
    scan = simulate_scan(vol, angles, incident_counts=1e8, n_flats=4, read_noise_counts=1.0)
    p = normalise(scan.counts, scan.flats, scan.darks)
    u = np.arange(n) - (n - 1) / 2
    rho2 = u[:, None] ** 2 + u[None, :] ** 2
    chord = 0.05 * 2 * np.sqrt(np.clip(14.0 ** 2 - rho2, 0, None))
    inner = rho2 < 11 ** 2
    assert np.abs(p[:, inner] - chord[inner]).max() < 0.08  # voxelised ball vs exact sphere


def _noisy_scan(seed):
    vol = _ball(20, (9.5, 9.5, 9.5), 6.0, 0.1)
    return simulate_scan(vol, FULL[::10], rng_seed=seed, incident_counts=500.0, psf_sigma_px=0.8,
                         ring_gain_sigma=0.01, n_flats=2, drift_voxels=(0.3, -0.5, 1.2))


def _noisy_scan_seed_7_bytes():
    scan = _noisy_scan(7)
    return scan.counts, scan.flats, scan.darks


def test_same_seed_same_bytes_in_a_fresh_process_other_seed_other_bytes():
    a, c = _noisy_scan(7), _noisy_scan(8)
    assert digest((a.counts, a.flats, a.darks)) == digest_in_fresh_process(_noisy_scan_seed_7_bytes)
    assert a.counts.tobytes() != c.counts.tobytes()


def test_psf_blurs_an_edge_like_a_gaussian():
    # A half-space absorber along x seen at 90 degrees (rays along y): the
    # transmitted profile across u is a step, blurred by the PSF into an erf.
    n, sigma, mu = 64, 1.5, 0.1
    vol = np.zeros((4, n, n), np.float32)
    vol[:, :, : n // 2] = mu  # x < centre absorbs
    scan = simulate_scan(vol, np.full(40, 90.0), incident_counts=1e6, psf_sigma_px=sigma,
                         read_noise_counts=0.0, dark_counts=0.0, n_flats=1)
    profile = scan.counts.mean(axis=(0, 1)) / 1e6
    # At 90 degrees u = -(x - cx): the absorber (x < cx) lies at u > 0.
    u = np.arange(n) - (n - 1) / 2
    low = np.exp(-mu * n)
    expected = 1 + (low - 1) * 0.5 * (1 + erf(u / (np.sqrt(2) * sigma)))
    near = np.abs(u) < 6
    assert np.abs(profile[near] - expected[near]).max() < 0.01


def test_ring_gains_show_in_flat_fielded_open_beam():
    scan = simulate_scan(np.zeros((6, 32, 32), np.float32), np.zeros(20), incident_counts=1e7,
                         ring_gain_sigma=0.02, read_noise_counts=0.0, n_flats=5)
    p = normalise(scan.counts, scan.flats, scan.darks)
    per_pixel = p.mean(axis=0)  # the same gain error in every projection
    assert 0.015 < per_pixel.std() < 0.025
    assert np.abs(p - per_pixel).max() < 0.005


def test_drift_moves_the_reconstruction_by_the_drift():
    n, drift = 48, (1.5, 2.25, -1.75)
    centre = ((n - 1) / 2,) * 3
    vol = _ball(n, centre, 9.0, 0.05)
    angles = FULL[::2]

    def centroid(d):
        scan = simulate_scan(vol, angles, incident_counts=1e7, n_flats=2, drift_voxels=d)
        rec = np.clip(fbp(normalise(scan.counts, scan.flats, scan.darks), angles, filter="hann"), 0, None)
        grids = np.meshgrid(*[np.arange(k) for k in rec.shape], indexing="ij")
        return np.array([(g * rec).sum() / rec.sum() for g in grids])

    shift = centroid(drift) - centroid((0.0, 0.0, 0.0))
    np.testing.assert_allclose(shift, drift, atol=0.1)


@pytest.mark.parametrize("kwargs", [
    dict(mu_per_voxel=np.zeros((4, 4))),
    dict(mu_per_voxel=-np.ones((2, 4, 4))),
    dict(incident_counts=0.0),
    dict(n_flats=0),
    dict(psf_sigma_px=-1.0),
    dict(drift_voxels=(1.0, 2.0)),
])
def test_bad_input_raises(kwargs):
    args = dict(mu_per_voxel=np.zeros((2, 4, 4), np.float32), angles_deg=[0.0])
    args.update(kwargs)
    with pytest.raises(ValueError):
        simulate_scan(args.pop("mu_per_voxel"), args.pop("angles_deg"), **args)
