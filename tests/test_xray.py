"""synthcal.xray: photon statistics, binning, oversampling, blur, rings, motion and determinism of simulated scans."""

import numpy as np
import pytest
from scipy.special import erf

from analysis.reconstruct import fbp, normalise
from conftest import digest, digest_in_fresh_process
from synthcal import xray
from synthcal.xray import (Scan, limited_angles_deg, rows_of_volume, scan_motion_voxels,
                           simulate_scan)

FULL = np.linspace(0, 180, 180, endpoint=False)


def _ball(n, centre, radius, mu):
    z, y, x = np.meshgrid(*[np.arange(n) - c for c in centre], indexing="ij")
    return np.where(x ** 2 + y ** 2 + z ** 2 <= radius ** 2, mu, 0.0).astype(np.float32)


def _scan(vol, angles, **kwargs):
    """The scan of a volume held in memory, on its own grid (oversampling 1)."""
    return simulate_scan(rows_of_volume(vol), vol.shape, angles, **kwargs)


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
    scan = _scan(vol, angles, incident_counts=i0, dark_counts=dark, read_noise_counts=0.0, n_flats=50)
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
    scan = _scan(np.zeros((4, 16, 16), np.float32), [0.0], incident_counts=100.0, dark_counts=50.0,
                         read_noise_counts=4.0, n_flats=3, n_darks=200)
    assert abs(scan.darks.mean() - 50.0) < 0.1 and abs(scan.darks.std() / 4.0 - 1) < 0.03


def test_normalised_scan_matches_line_integrals_at_high_counts():
    n = 40
    vol = _ball(n, ((n - 1) / 2,) * 3, 14.0, 0.05)
    angles = np.array([0.0, 30.0, 90.0])
    scan = _scan(vol, angles, incident_counts=1e8, n_flats=4, read_noise_counts=1.0)
    p = normalise(scan.counts, scan.flats, scan.darks)
    u = np.arange(n) - (n - 1) / 2
    rho2 = u[:, None] ** 2 + u[None, :] ** 2
    chord = 0.05 * 2 * np.sqrt(np.clip(14.0 ** 2 - rho2, 0, None))
    inner = rho2 < 11 ** 2
    assert np.abs(p[:, inner] - chord[inner]).max() < 0.08  # voxelised ball vs exact sphere


def _noisy_scan(seed):
    vol = _ball(20, (9.5, 9.5, 9.5), 6.0, 0.1)
    return simulate_scan(rows_of_volume(vol), (10, 10, 10), FULL[::10], oversampling=2, rng_seed=seed,
                         incident_counts=500.0, psf_sigma_px=0.8, ring_gain_sigma=0.01, n_flats=2,
                         motion_voxels=scan_motion_voxels(FULL[::10], (0.3, -0.5, 1.2), (0.4, 0.2, -0.3)))


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
    scan = _scan(vol, np.full(40, 90.0), incident_counts=1e6, psf_sigma_px=sigma,
                 read_noise_counts=0.0, dark_counts=0.0, n_flats=1)
    profile = scan.counts.mean(axis=(0, 1)) / 1e6
    # At 90 degrees u = -(x - cx): the absorber (x < cx) lies at u > 0.
    u = np.arange(n) - (n - 1) / 2
    low = np.exp(-mu * n)
    expected = 1 + (low - 1) * 0.5 * (1 + erf(u / (np.sqrt(2) * sigma)))
    near = np.abs(u) < 6
    assert np.abs(profile[near] - expected[near]).max() < 0.01


def test_ring_gains_show_in_flat_fielded_open_beam():
    scan = _scan(np.zeros((6, 32, 32), np.float32), np.zeros(20), incident_counts=1e7,
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
        scan = _scan(vol, angles, incident_counts=1e7, n_flats=2, motion_voxels=d)
        rec = np.clip(fbp(normalise(scan.counts, scan.flats, scan.darks), angles, filter="hann"), 0, None)
        grids = np.meshgrid(*[np.arange(k) for k in rec.shape], indexing="ij")
        return np.array([(g * rec).sum() / rec.sum() for g in grids])

    shift = centroid(drift) - centroid((0.0, 0.0, 0.0))
    np.testing.assert_allclose(shift, drift, atol=0.1)


@pytest.mark.parametrize("kwargs", [
    dict(shape=(4, 4)),
    dict(render_rows=lambda first, n: -np.ones((n, 4, 4), np.float32)),
    dict(render_rows=lambda first, n: np.zeros((n, 4, 5), np.float32)),
    dict(incident_counts=0.0),
    dict(n_flats=0),
    dict(oversampling=0),
    dict(psf_sigma_px=-1.0),
    dict(motion_voxels=(1.0, 2.0)),
    dict(motion_voxels=np.zeros((2, 3))),
])
def test_bad_input_raises(kwargs):
    args = dict(render_rows=lambda first, n: np.zeros((n, 4, 4), np.float32), shape=(2, 4, 4), angles_deg=[0.0])
    args.update(kwargs)
    with pytest.raises(ValueError):
        simulate_scan(args.pop("render_rows"), args.pop("shape"), args.pop("angles_deg"), **args)


def _sphere_rows(oversampling, n, centre, radius, mu):
    """``render_rows`` of a uniform sphere on an n x n (y, x) grid (reconstruction voxels: centre, radius;
    mu per reconstruction voxel length), point-sampled at the centres of the fine voxels."""
    o = oversampling

    def render_rows(first_row, n_rows):
        fine = lambda f: (np.asarray(f) + 0.5) / o - 0.5  # fine index -> reconstruction voxel coordinate
        z, y, x = np.meshgrid(fine(np.arange(first_row, first_row + n_rows)), fine(np.arange(o * n)),
                              fine(np.arange(o * n)), indexing="ij")
        inside = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius ** 2
        return np.where(inside, mu / o, 0.0).astype(np.float32)

    return render_rows


def test_oversampled_sphere_projects_to_its_chords_with_a_partial_volume_error_that_shrinks():
    # A ball off the axis, seen at three angles with negligible noise. The exact binned pixel
    # measures -log of the mean of exp(-mu * 2 sqrt(R^2 - d^2)) over its area (d: distance of
    # the ray from the centre); voxelising the ball on a finer grid approaches it.
    n, radius, mu = 24, 7.3, 0.08
    centre = (11.5, 11.5 + 2.3, 11.5 - 1.7)  # the axis is at (n - 1) / 2 in y and x
    angles = np.array([0.0, 35.0, 90.0])
    t = np.deg2rad(angles)
    u_centre = -(centre[2] - 11.5) * np.sin(t) + (centre[1] - 11.5) * np.cos(t)
    sub = (np.arange(16) + 0.5) / 16 - 0.5  # 16 x 16 points across each binned pixel
    rows, cols = np.arange(n)[:, None] + sub, np.arange(n)[:, None] - (n - 1) / 2 + sub
    d2 = ((rows[None, :, None, :, None] - centre[0]) ** 2
          + (cols[None, None, :, None, :] - u_centre[:, None, None, None, None]) ** 2)
    exact = -np.log(np.exp(-mu * 2 * np.sqrt(np.clip(radius ** 2 - d2, 0, None))).mean(axis=(3, 4)))
    errors = {}
    for o in (1, 2, 4):
        scan = simulate_scan(_sphere_rows(o, n, centre, radius, mu), (n, n, n), angles, oversampling=o,
                             incident_counts=1e12, dark_counts=0.0, read_noise_counts=0.0, n_flats=1)
        p = normalise(scan.counts, scan.flats, scan.darks)
        errors[o] = np.abs(p - exact).mean()
    # the partial-volume error of a point-sampled voxel surface falls about as 1/o; 1e12 photons
    # leave noise of 1e-6
    assert errors[2] < 0.7 * errors[1] and errors[4] < 0.7 * errors[2], errors
    assert errors[2] < 0.01, errors


def test_binned_pixels_hold_the_photons_of_their_fine_pixels_with_poisson_statistics():
    # Fine columns alternate between two attenuations along y; rays along x (angle 0) see
    # line integrals a and b in the two fine pixels of each binned pixel. Binning sums the
    # photons: mean I0 / 2 (exp(-a) + exp(-b)) (not I0 exp(-(a + b) / 2), the inverse crime),
    # and a sum of Poisson counts is Poisson: variance = mean.
    i0, o = 1e4, 2
    vol = np.empty((8, 16, 16), np.float32)
    vol[:, 0::2], vol[:, 1::2] = 0.1, 0.3  # per fine voxel; 16 fine voxels along x
    scan = simulate_scan(rows_of_volume(vol), (4, 8, 8), np.zeros(400), oversampling=o, incident_counts=i0,
                         dark_counts=0.0, read_noise_counts=0.0, n_flats=20)
    expected = i0 / 2 * (np.exp(-1.6) + np.exp(-4.8))
    assert abs(scan.counts.mean() / expected - 1) < 0.002
    assert abs(scan.counts.var() / expected - 1) < 0.05  # 12800 samples: 1.3 % standard error
    assert abs(scan.flats.mean() / i0 - 1) < 0.002 and abs(scan.flats.var() / i0 - 1) < 0.05


def test_streaming_in_slabs_gives_the_bytes_of_one_slab(monkeypatch):
    vol = _ball(48, (23.5, 23.5, 23.5), 15.0, 0.05)
    kwargs = dict(oversampling=2, incident_counts=800.0, psf_sigma_px=0.7, ring_gain_sigma=0.01, n_flats=2,
                  motion_voxels=scan_motion_voxels(FULL[::15], (1.2, -0.4, 0.6), (1.5, 0.5, -0.8)))
    whole = simulate_scan(rows_of_volume(vol), (24, 24, 24), FULL[::15], **kwargs)
    monkeypatch.setattr(xray, "_SLAB_VOXELS", 8 * 48 * 48)  # one projector block of 8 fine rows per slab
    monkeypatch.setattr(xray, "_EXPOSE_VALUES", 1)  # each slab's finished rows exposed on their own
    slabs = simulate_scan(rows_of_volume(vol), (24, 24, 24), FULL[::15], **kwargs)
    assert digest((whole.counts, whole.flats)) == digest((slabs.counts, slabs.flats))


def _centroid(vol, angles, motion):
    scan = _scan(vol, angles, incident_counts=1e7, n_flats=2, motion_voxels=motion)
    rec = fbp(normalise(scan.counts, scan.flats, scan.darks), angles, filter="hann")
    # the ball only: a limited range of angles leaves streaks that the volume's edges would cut unevenly
    rec = np.where(rec > 0.5 * np.percentile(rec, 99.9), rec, 0.0)
    grids = np.meshgrid(*[np.arange(k) for k in rec.shape], indexing="ij")
    return np.array([(g * rec).sum() / rec.sum() for g in grids])


def test_motion_along_z_during_a_scan_reconstructs_at_the_mean_position():
    n, angles = 48, FULL[::2]
    vol = _ball(n, ((n - 1) / 2,) * 3, 9.0, 0.05)
    time = (np.arange(angles.size) + 0.5) / angles.size - 0.5
    motion = np.zeros((angles.size, 3))
    motion[:, 0] = 1.25 + 3.0 * time  # 3 voxels over the scan, mean 1.25
    shift = _centroid(vol, angles, motion) - _centroid(vol, angles, (0.0, 0.0, 0.0))
    np.testing.assert_allclose(shift, (1.25, 0.0, 0.0), atol=0.1)


def test_motion_across_the_beam_appears_at_the_least_squares_position_not_the_mean():
    # Over 0..180 degrees (time t from -1/2 to 1/2), a velocity v along y, mean position 0, is seen
    # along e = (cos, -sin) (y, x); the fit of e . p to e . m(t) puts y at 0 and x at v / (2 pi):
    # mean of sin cos (angle - pi/2) / pi over the scan is -1 / (4 pi), of sin^2 and cos^2 1/2.
    n, angles, v = 48, FULL[::2], 4.0
    vol = _ball(n, ((n - 1) / 2,) * 3, 9.0, 0.05)
    time = (np.arange(angles.size) + 0.5) / angles.size - 0.5
    motion = np.zeros((angles.size, 3))
    motion[:, 1] = v * time
    shift = _centroid(vol, angles, motion) - _centroid(vol, angles, (0.0, 0.0, 0.0))
    np.testing.assert_allclose(shift, (0.0, 0.0, v / (2 * np.pi)), atol=0.05)


def test_the_same_velocity_across_the_beam_in_two_scans_leaves_the_displacement_of_their_mean_positions():
    # Motion across the beam shifts the reconstruction by a fraction of the travel (the limited range
    # sees some directions more often), linearly in the velocity: two scans at the same velocity show the
    # same extra shift, so their difference is the difference of the mean positions (the truth frame).
    n, angles, drift = 48, limited_angles_deg(101, 70.0), np.array([1.5, 2.25, -1.75])
    vol = _ball(n, ((n - 1) / 2,) * 3, 9.0, 0.05)
    velocity = (0.0, -3.0, 2.5)
    reference = _centroid(vol, angles, scan_motion_voxels(angles, np.zeros(3), velocity))
    moved = scan_motion_voxels(angles, drift, velocity)
    np.testing.assert_allclose(moved.mean(axis=0), drift)
    np.testing.assert_allclose(np.ptp(moved, axis=0), np.abs(velocity) * 100 / 101)
    np.testing.assert_allclose(_centroid(vol, angles, moved) - reference, drift, atol=0.1)
    # and the shift itself is there: the reconstruction is not at the mean position
    assert np.abs(reference - _centroid(vol, angles, (0.0, 0.0, 0.0)))[1:].max() > 0.3
