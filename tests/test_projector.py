"""analysis.projector: analytic chord lengths, exact adjointness, determinism."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.projector import back_project, backproject_interpolating, forward_project
from conftest import digest, digest_in_fresh_process


def _ball(shape, centre, radius, supersampling=4):
    """Partial-volume ball: the fraction of each voxel inside (sub-sampled)."""
    s = supersampling
    offsets = (np.arange(s) + 0.5) / s - 0.5
    axes = [np.add.outer(np.arange(n), offsets).ravel() - c for n, c in zip(shape, centre)]
    inside = (axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2) <= radius ** 2
    return inside.reshape(shape[0], s, shape[1], s, shape[2], s).mean(axis=(1, 3, 5)).astype(np.float32)


def _disk(n, radius, x0=0.0, y0=0.0, supersampling=8):
    s = supersampling
    g = (np.arange(n * s) + 0.5) / s - 0.5 - (n - 1) / 2
    y, x = np.meshgrid(g - y0, g - x0, indexing="ij")
    return ((x ** 2 + y ** 2) <= radius ** 2).reshape(n, s, n, s).mean(axis=(1, 3)).astype(np.float32)


ANGLES = np.array([0.0, 17.0, 45.0, 63.0, 90.0, 131.0, -45.0, 200.0])


def test_ball_projection_matches_chord_lengths(arch):
    n, r = 40, 12.0
    centre = ((n - 1) / 2,) * 3
    vol = _ball((n, n, n), centre, r)
    proj = forward_project(vol, ANGLES, arch=arch)
    u = np.arange(n) - (n - 1) / 2
    z = np.arange(n) - (n - 1) / 2
    rho2 = z[:, None] ** 2 + u[None, :] ** 2
    chord = 2 * np.sqrt(np.clip(r ** 2 - rho2, 0, None))
    interior = rho2 < (r - 2) ** 2
    rel = np.abs(proj[:, interior] - chord[interior]) / chord[interior]
    assert rel.max() < 0.03


def test_truncated_cylinder_projection_off_centre(arch):
    # A cylinder along z, off the rotation axis, in a volume wider than the detector.
    n, n_det, r, x0, y0 = 90, 50, 30.0, 6.0, -4.0
    vol = np.repeat(_disk(n, r, x0, y0)[None], 2, axis=0)
    proj = forward_project(vol, ANGLES, n_det=n_det, arch=arch)
    assert proj.shape == (ANGLES.size, 2, n_det)
    t = np.deg2rad(ANGLES)[:, None]
    u = np.arange(n_det) - (n_det - 1) / 2
    u0 = -x0 * np.sin(t) + y0 * np.cos(t)
    chord = 2 * np.sqrt(np.clip(r ** 2 - (u - u0) ** 2, 0, None))
    interior = np.abs(u - u0) < r - 2
    for k in range(2):
        rel = np.abs(proj[:, k][interior] - chord[interior]) / chord[interior]
        assert rel.max() < 0.02


def test_geometry_contract_point_position():
    # A small blob at (x0, y0) must land at u = -(x0 - cx) sin t + (y0 - cy) cos t,
    # i.e. at detector column u + (n_det - 1) / 2; rows are z slices.
    ny, nx, n_det = 31, 41, 47
    vol = np.zeros((3, ny, nx), np.float32)
    x0, y0 = 27, 9
    vol[1, y0 - 1:y0 + 2, x0 - 1:x0 + 2] = 1.0
    angles = np.array([0.0, 30.0, 90.0, 150.0, 233.0, -60.0])
    proj = forward_project(vol, angles, n_det=n_det)
    assert np.all(proj[:, [0, 2]] == 0)
    t = np.deg2rad(angles)
    u = -(x0 - (nx - 1) / 2) * np.sin(t) + (y0 - (ny - 1) / 2) * np.cos(t)
    cols = np.arange(n_det)
    centroid = (proj[:, 1] * cols).sum(axis=1) / proj[:, 1].sum(axis=1)
    np.testing.assert_allclose(centroid, u + (n_det - 1) / 2, atol=0.05)


@settings(max_examples=100, deadline=None)
@given(
    nz=st.integers(1, 10),
    ny=st.integers(1, 24),
    nx=st.integers(1, 24),
    n_det=st.integers(1, 32),
    angles=st.lists(st.one_of(st.sampled_from([0.0, 45.0, 90.0, 135.0, -45.0, 180.0]),
                              st.floats(-360, 360, allow_nan=False)), min_size=1, max_size=9),
    seed=st.integers(0, 2 ** 32 - 1),
)
def test_adjointness(nz, ny, nx, n_det, angles, seed, arch):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((nz, ny, nx)).astype(np.float32)
    y = rng.standard_normal((len(angles), nz, n_det)).astype(np.float32)
    ax = forward_project(x, angles, n_det=n_det, arch=arch).astype(np.float64)
    aty = back_project(y, angles, (ny, nx), arch=arch).astype(np.float64)
    lhs = np.dot(ax.ravel(), y.ravel())
    rhs = np.dot(x.ravel().astype(np.float64), aty.ravel())
    scale = np.linalg.norm(ax) * np.linalg.norm(y) + np.linalg.norm(x) * np.linalg.norm(aty) + 1e-30
    assert abs(lhs - rhs) <= 2e-6 * scale


def test_back_project_matches_dense_transpose():
    # Build A column by column from unit volumes; A.T must equal back_project.
    ny, nx, n_det, angles = 5, 6, 7, [10.0, 45.0, 100.0]
    cols = []
    for k in range(ny * nx):
        e = np.zeros((1, ny, nx), dtype=np.float32)
        e.flat[k] = 1.0
        cols.append(forward_project(e, angles, n_det=n_det).ravel())
    a = np.stack(cols, axis=1)
    at = np.stack([back_project(np.eye(a.shape[0], dtype=np.float32)[i].reshape(3, 1, n_det), angles, (ny, nx)).ravel()
                   for i in range(a.shape[0])])
    np.testing.assert_allclose(at, a, atol=2e-6)


def test_interpolating_backprojection_of_constant_is_weight_sum():
    n, angles = 32, np.linspace(0, 180, 30, endpoint=False)
    w = np.linspace(0.5, 1.5, angles.size)
    vol = backproject_interpolating(np.ones((angles.size, 2, n), np.float32), angles, (n, n), weights=w)
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    inside = xx ** 2 + yy ** 2 < (n / 2 - 1) ** 2
    np.testing.assert_allclose(vol[:, inside], w.sum(), rtol=1e-5)


def _interpolating_reference(sino, angles_deg, shape_yx, weights):
    """sum_a w_a * sino[a, z, u(x, y)], linear in u and zero beyond the detector, one voxel at a time."""
    n_angles, nz, n_det = sino.shape
    ny, nx = shape_yx
    out = np.zeros((nz, ny, nx))
    for a, t in enumerate(np.deg2rad(angles_deg)):
        for y in range(ny):
            for x in range(nx):
                j = (n_det - 1) / 2 + (y - (ny - 1) / 2) * np.cos(t) - (x - (nx - 1) / 2) * np.sin(t)
                j0 = int(np.floor(j))
                for jj, wj in ((j0, 1 - (j - j0)), (j0 + 1, j - j0)):
                    if 0 <= jj < n_det:
                        out[:, y, x] += weights[a] * wj * sino[a, :, jj]
    return out


@settings(max_examples=25, deadline=None)
@given(nz=st.integers(1, 19), ny=st.integers(1, 9), nx=st.integers(1, 9), n_det=st.integers(1, 12),
       seed=st.integers(0, 2 ** 16))
def test_interpolating_backprojection_matches_a_voxel_by_voxel_reference(nz, ny, nx, n_det, seed):
    # nz across several 8-slice blocks and a partial one; detectors narrower and wider than the grid,
    # so voxels fall beyond either end of it
    rng = np.random.default_rng(seed)
    angles = rng.uniform(-180.0, 180.0, 5)
    sino = rng.standard_normal((5, nz, n_det)).astype(np.float32)
    w = rng.uniform(0.5, 1.5, 5)
    vol = backproject_interpolating(sino, angles, (ny, nx), weights=w)
    assert vol.shape == (nz, ny, nx)
    np.testing.assert_allclose(vol, _interpolating_reference(sino, angles, (ny, nx), w), rtol=0, atol=2e-5)


def test_deterministic_and_progress():
    rng = np.random.default_rng(1)
    vol = rng.random((11, 20, 20), dtype=np.float32)
    angles = np.linspace(-70, 70, 31)
    seen = []
    p1 = forward_project(vol, angles, n_det=24, progress=seen.append)
    assert seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen) and seen == sorted(seen)
    b1 = back_project(p1, angles, (20, 20), progress=seen.append)
    assert b1.dtype == np.float32 and b1.shape == (11, 20, 20)
    assert digest((p1, b1)) == digest_in_fresh_process(_project_and_back)


def _project_and_back():
    vol = np.random.default_rng(1).random((11, 20, 20), dtype=np.float32)
    angles = np.linspace(-70, 70, 31)
    p = forward_project(vol, angles, n_det=24)
    return p, back_project(p, angles, (20, 20))


@pytest.mark.parametrize("call", [
    lambda: forward_project(np.zeros((4, 4)), [0.0]),
    lambda: forward_project(np.zeros((1, 4, 4)), []),
    lambda: forward_project(np.zeros((1, 4, 4)), [np.nan]),
    lambda: forward_project(np.zeros((1, 4, 4)), [0.0], n_det=0),
    lambda: back_project(np.zeros((2, 1, 4)), [0.0], (4, 4)),
    lambda: back_project(np.zeros((1, 1, 4)), [0.0], (4,)),
    lambda: backproject_interpolating(np.zeros((1, 1, 4)), [0.0], (4, 4), weights=[1.0, 2.0]),
])
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()


def test_forward_kernel_never_reads_outside_the_volume():
    # Run the kernel on a slice of a NaN-filled buffer: any read past the
    # volume's rows (the unchecked fast path) would bring a NaN into the sum.
    import analysis.projector as projector

    rng = np.random.default_rng(0)
    near_axes = [0.0, 90.0, 180.0, 270.0, 45.0, 135.0, -45.0, 360.0, 1e-5, 89.99999, 180.00001]
    for trial in range(400):
        ny, nx = (int(v) for v in rng.integers(1, 40, 2))
        n_det = int(rng.integers(1, 60))
        angle = rng.choice(near_axes) + rng.choice([0.0, 1e-6, -1e-4]) if trial % 2 else rng.uniform(-400, 400)
        buf = np.full((3, ny, nx, projector._ZB_FORWARD), np.nan, np.float32)
        buf[1] = rng.standard_normal((ny, nx, projector._ZB_FORWARD))
        buf_t = np.full((3, nx, ny, projector._ZB_FORWARD), np.nan, np.float32)
        buf_t[1] = buf[1].transpose(1, 0, 2)
        out = np.zeros((1, 1, n_det, projector._ZB_FORWARD), np.float32)
        # the march cut into launches of any width, as _project_blocks cuts it
        width = int(rng.integers(1, max(ny, nx) + 2))
        for m0 in range(0, max(ny, nx), width):
            projector._forward_kernel(buf[1:2], buf_t[1:2], projector._geometry([angle]),
                                      projector._support_reach(buf[1:2]), out, m0, m0 + width)
        assert np.all(np.isfinite(out)), (ny, nx, n_det, angle, width)


@settings(max_examples=60, deadline=None)
@given(nz=st.integers(1, 5), ny=st.integers(1, 40), nx=st.integers(1, 40), n_det=st.integers(1, 60),
       angles=st.lists(st.floats(-400, 400), min_size=1, max_size=6), width=st.integers(1, 45),
       seed=st.integers(0, 2 ** 16))
def test_the_sums_do_not_depend_on_how_the_march_is_cut(nz, ny, nx, n_det, angles, width, seed):
    # _project_blocks adds each ray's samples _MARCH_COLUMNS march indices per launch. Cut anywhere,
    # every sample must be added once: values in [0.5, 1.5] make a missed or doubled sample inside the
    # volume move a sum by at least half a step, far above float32 rounding (taichi's fast math may
    # regroup a loop's additions, so the sums agree to rounding, not bit for bit).
    import analysis.projector as projector

    vol = np.random.default_rng(seed).uniform(0.5, 1.5, (nz, ny, nx)).astype(np.float32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(projector, "_MARCH_COLUMNS", 10 ** 6)
        whole = forward_project(vol, angles, n_det=n_det)
        patch.setattr(projector, "_MARCH_COLUMNS", width)
        cut = forward_project(vol, angles, n_det=n_det)
    np.testing.assert_allclose(cut, whole, rtol=0, atol=1e-5 * max(float(whole.max()), 1.0))


@settings(max_examples=40, deadline=None)
@given(nz=st.integers(1, 10), ny=st.integers(1, 30), nx=st.integers(1, 30), n_det=st.integers(1, 40),
       angles=st.lists(st.floats(-400, 400), min_size=1, max_size=9), width=st.integers(1, 10),
       seed=st.integers(0, 2 ** 16))
def test_back_projections_do_not_depend_on_how_the_angles_are_cut(nz, ny, nx, n_det, angles, width, seed):
    # _gather adds _GATHER_ANGLES angles per launch to what the earlier launches left in the volume.
    # Every angle must be added once, the first launch must start from zero (not from np.empty's
    # garbage): bins in [0.5, 1.5] make a missed or doubled angle move a voxel it reaches by a tenth
    # or more, far above float32 rounding.
    import analysis.projector as projector

    sino = np.random.default_rng(seed).uniform(0.5, 1.5, (len(angles), nz, n_det)).astype(np.float32)
    weights = np.linspace(1.0, 2.0, len(angles))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(projector, "_GATHER_ANGLES", 10 ** 6)
        whole = [back_project(sino, angles, (ny, nx)),
                 backproject_interpolating(sino, angles, (ny, nx), weights=weights)]
        patch.setattr(projector, "_GATHER_ANGLES", width)
        cut = [back_project(sino, angles, (ny, nx)),
               backproject_interpolating(sino, angles, (ny, nx), weights=weights)]
    for c, w in zip(cut, whole):
        np.testing.assert_allclose(c, w, rtol=0, atol=1e-5 * max(float(np.abs(w).max()), 1.0))


@pytest.mark.parametrize("ny, nx, n_det", [(41, 41, 41), (40, 47, 30), (37, 32, 50)])
def test_rays_skip_only_zeros_around_the_support(ny, nx, n_det, monkeypatch):
    # The projector visits only samples within each z-block's support radius and projects a slice
    # of one value as a slice of ones; the sums must be those of every sample (a skipped sample would add an exact zero; taichi's fast math may
    # regroup a loop's additions, so the sums agree to float32 rounding, not bit for bit).
    import analysis.projector as projector

    rng = np.random.default_rng(7)
    # slices holding a textured disc (0-7), nothing (8-15), a lone voxel near a corner (19), and a
    # flat head (six slices of one value, the seventh of another) above a slice with one voxel off
    nz = 31
    vol = np.zeros((nz, ny, nx), np.float32)
    vol[24:30] = 2.5
    vol[30] = 0.75
    vol[23] = 2.5
    vol[23, 3, 4] = 2.0
    yy, xx = np.meshgrid(np.arange(ny) - (ny - 1) / 2, np.arange(nx) - (nx - 1) / 2, indexing="ij")
    disc = yy ** 2 + xx ** 2 <= (0.4 * min(ny, nx)) ** 2
    vol[:8][:, disc] = rng.uniform(0.5, 1.5, (8, disc.sum()))
    vol[19, 1, nx - 2] = 1.0
    angles = np.concatenate([[0.0, 1e-4, 45.0, 90.0, -90.0, 180.0], rng.uniform(-180, 180, 40)])
    clipped = forward_project(vol, angles, n_det=n_det)
    monkeypatch.setattr(projector, "_support_reach", lambda blocks: np.full(blocks.shape[0], 1e9, np.float32))
    monkeypatch.setattr(projector, "_uniform_slices", lambda v: (np.zeros(len(v), bool), np.zeros(len(v), np.float32)))
    every_sample = forward_project(vol, angles, n_det=n_det)
    # one missed sample inside the support would move a sum by ~0.1 or more
    np.testing.assert_allclose(clipped, every_sample, rtol=0, atol=1e-5 * every_sample.max())
    assert np.count_nonzero(clipped[:, 8:16]) == 0 and np.count_nonzero(clipped[:, 19]) > 0


def test_the_projected_slice_of_ones_is_reused_only_for_the_same_geometry(monkeypatch):
    # A slice of one value is projected as that value times a projected slice of ones, kept for the
    # next call: calls in a row that change only the angles, only the detector or only the slice
    # shape must each get the sums of every sample.
    import analysis.projector as projector

    rng = np.random.default_rng(3)

    def volume(ny, nx):
        vol = np.zeros((3, ny, nx), np.float32)
        vol[0, 4:9, 5:11] = rng.uniform(0.5, 1.5, (5, 6))
        vol[1:] = 1.5
        return vol

    calls = [(volume(20, 24), np.array([0.0, 30.0, 75.0]), 26),
             (volume(20, 24), np.array([10.0, -40.0, 120.0]), 26),
             (volume(20, 24), np.array([10.0, -40.0, 120.0]), 31),
             (volume(22, 24), np.array([10.0, -40.0, 120.0]), 31)]
    shortcut = [forward_project(v, a, n_det=d) for v, a, d in calls]
    monkeypatch.setattr(projector, "_uniform_slices", lambda v: (np.zeros(len(v), bool), np.zeros(len(v), np.float32)))
    for (v, a, d), got in zip(calls, shortcut):
        every_sample = forward_project(v, a, n_det=d)
        np.testing.assert_allclose(got, every_sample, rtol=0, atol=1e-5 * every_sample.max())
