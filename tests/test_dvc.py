"""Local DVC (analysis.dvc) against analytic displacement fields, and the VTK export."""

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

import analysis.dvc.local as local
from analysis.dvc import Status, correlate, correlate_tiled, node_grid, refine_nodes
from analysis.dvc.interpolate import SplineVolume
from analysis.strain import displacement_gradient
from analysis.vtk import write_vtk_nodes
from synthcal.strategies import Warp, render_texture

S = 17


def texture(n, warp=None):
    """Periodic unit-std speckle (sigma 1.6 voxels) on n^3 voxels, moved by ``warp`` (exact, see strategies)."""
    return render_texture("speckle", (n, n, n), seed=0, warp=warp)


def affine(translation, gradient, n):
    """u(X) = t + G (X - c), c the centre of an n^3 volume."""
    return Warp.affine(gradient, translation_voxels=translation, centre_voxels=np.full(3, (n - 1) / 2))


@settings(max_examples=10, deadline=None)
@given(shift=st.lists(st.floats(-3.0, 3.0, allow_nan=False), min_size=3, max_size=3))
def test_rigid_shift_recovered(shift, arch):
    ref = texture(48)
    nodes = node_grid(ref.shape, 8, S, margin_voxels=3)
    r = correlate(ref, texture(48, Warp.translation(shift)), subvolume_voxels=S,
                  node_spacing_voxels=8, max_displacement_voxels=3.5, nodes=nodes, arch=arch)
    assert r.ok.all()
    assert np.abs(r.displacement - np.asarray(shift)).max() < 0.02
    assert np.all(r.cc > 0.99)


def test_identical_volumes_give_cc_one_and_no_displacement(arch):
    ref = texture(48)
    r = correlate(ref, ref, subvolume_voxels=S, node_spacing_voxels=8, max_displacement_voxels=3, arch=arch)
    assert r.ok.all()
    np.testing.assert_allclose(r.cc, 1.0, atol=1e-6)
    assert np.abs(r.displacement).max() < 1e-6
    assert r.nodes.shape == r.displacement.shape and r.cc.shape == r.ok.shape == (len(r.nodes),)


@settings(max_examples=4, deadline=None)
@given(st.floats(0.2, 5.0), st.floats(-10.0, 10.0))
def test_affine_grey_level_change_changes_nothing(gain, offset):
    ref = texture(48)
    shift = (0.4, -1.3, 2.2)
    deformed = texture(48, Warp.translation(shift))
    base = correlate(ref, deformed, subvolume_voxels=S, node_spacing_voxels=8,
                     max_displacement_voxels=3)
    other = correlate(ref, gain * deformed + offset, subvolume_voxels=S,
                      node_spacing_voxels=8, max_displacement_voxels=3)
    assert np.array_equal(base.ok, other.ok)
    assert np.abs(base.displacement - other.displacement).max() < 1e-3
    np.testing.assert_allclose(base.cc, other.cc, atol=1e-4)


def test_affine_field_gives_its_strain(arch):
    ref = texture(64)
    gradient = np.array([[-0.008, 0.002, 0.000],
                         [0.001, 0.004, -0.002],
                         [0.000, 0.003, 0.005]])
    translation = np.array([0.7, -0.4, 1.1])
    r = correlate(ref, texture(64, affine(translation, gradient, 64)), subvolume_voxels=S,
                  node_spacing_voxels=5, max_displacement_voxels=3,
                  nodes=node_grid(ref.shape, 5, S, margin_voxels=2), arch=arch)
    assert r.ok.mean() > 0.95
    c = (np.array(ref.shape) - 1) / 2
    truth = translation + (r.nodes - c) @ gradient.T
    assert np.abs(r.displacement[r.ok] - truth[r.ok]).max() < 0.02
    h = displacement_gradient(r.nodes, r.displacement, r.ok)
    inner = np.all(np.isfinite(h), axis=(1, 2))
    assert inner.sum() > 10
    assert np.abs(np.median(h[inner], axis=0) - gradient).max() < 1e-3
    assert np.abs(h[inner] - gradient).max() < 3e-3
    # the subvolume shape function sees the same gradient
    assert np.abs(np.median(r.displacement_gradient[r.ok], axis=0) - gradient).max() < 1e-3



def test_rigid_subvolumes_follow_a_stretch_by_translation_only():
    # a 1 % stretch along z: each subvolume's best rigid match is its centre's displacement (the stretch
    # is symmetric about the node, so it cannot pull the translation) and no rotation, so the reported
    # gradient (the rotation less the identity) has no stretch and no symmetric part: a turn by theta
    # leaves only theta^2 / 2 on the diagonal, and theta is itself ~0 here
    ref = texture(48)
    gradient = np.diag([0.01, 0.0, 0.0])
    translation = np.array([0.3, 0.0, 0.0])
    nodes = node_grid(ref.shape, 8, S, margin_voxels=3)
    r = correlate(ref, texture(48, affine(translation, gradient, 48)), subvolume_voxels=S,
                  node_spacing_voxels=8, max_displacement_voxels=3, nodes=nodes, shape_function="rigid")
    assert r.ok.all()
    truth = translation + (r.nodes - (np.array(ref.shape) - 1) / 2) @ gradient.T
    assert np.abs(r.displacement - truth).max() < 0.03
    g = r.displacement_gradient
    assert np.abs(g[:, 0, 0]).max() < 1e-4 and np.abs(g + g.transpose(0, 2, 1)).max() < 1e-4



def test_tiled_dvc_is_rigid_cubes_side_by_side_with_the_callers_settings():
    # the stretch of the test above on 15-voxel tiles: nodes 15 voxels apart on every axis, each cube's
    # translation is its centre's displacement, its gradient a rotation (none here), not the stretch
    ref = texture(48)
    gradient = np.diag([0.01, 0.0, 0.0])
    translation = np.array([0.3, 0.0, 0.0])
    deformed = texture(48, affine(translation, gradient, 48))
    seen = []
    r = correlate_tiled(ref, deformed, subvolume_voxels=15, max_displacement_voxels=2, progress=seen.append)
    assert r.subvolume_voxels == 15 and r.ok.all() and seen[-1] == 1.0
    for axis in range(3):
        assert np.unique(np.diff(np.unique(r.nodes[:, axis]))).tolist() == [15]
    truth = translation + (r.nodes - (np.array(ref.shape) - 1) / 2) @ gradient.T
    assert np.abs(r.displacement - truth).max() < 0.03
    assert np.abs(r.displacement_gradient[:, 0, 0]).max() < 1e-4
    # a rigid cube cannot match a stretched one exactly, so no CC reaches 1; the mask is the caller's too
    strict = correlate_tiled(ref, deformed, subvolume_voxels=15, max_displacement_voxels=2, min_cc=1.0)
    assert np.all(strict.status == Status.LOW_CC)
    none = correlate_tiled(ref, deformed, subvolume_voxels=15, max_displacement_voxels=2,
                           mask=np.zeros(ref.shape, bool))
    assert np.all(none.status == Status.MASKED)


def test_tiled_dvc_weighs_every_voxel_of_a_cube_alike_and_overlapping_dvc_uses_the_gaussian_window(monkeypatch):
    # Avizo's local mode, which the tiled cubes follow, has no window; correlate's default is the gaussian
    seen = []
    real = local.subvolume_window
    monkeypatch.setattr(local, "subvolume_window", lambda s, window: seen.append(window) or real(s, window))
    ref = texture(32)
    correlate_tiled(ref, ref, subvolume_voxels=15, max_displacement_voxels=1)
    assert seen and set(seen) == {"uniform"}
    seen.clear()
    correlate(ref, ref, subvolume_voxels=15, node_spacing_voxels=8, max_displacement_voxels=1)
    assert seen and set(seen) == {"gaussian"}


def test_large_displacement_found_coarse_to_fine():
    ref = texture(64)
    shift = (9.3, -7.6, 4.2)
    nodes = node_grid(ref.shape, 8, S, margin_voxels=10)
    r = correlate(ref, texture(64, Warp.translation(shift)), subvolume_voxels=S,
                  node_spacing_voxels=8, max_displacement_voxels=10, nodes=nodes)
    assert r.ok.all()
    assert np.abs(r.displacement - np.asarray(shift)).max() < 0.02


def test_refine_nodes_converges_from_its_start_and_skips_nodes_without_one(arch):
    ref = texture(48)
    shift = np.array([5.4, -6.3, 4.2])  # beyond Gauss-Newton's reach from zero: the start must be used
    nodes = node_grid(ref.shape, 8, S, margin_voxels=7)
    start = np.tile(np.round(shift), (len(nodes), 1))  # within half a voxel per axis of the truth
    start[0] = np.nan
    r = refine_nodes(ref, texture(48, Warp.translation(shift)), nodes, start, subvolume_voxels=S, arch=arch)
    assert r.status[0] == Status.MASKED and not r.ok[0] and np.isnan(r.displacement[0]).all()
    assert r.ok[1:].all() and np.all(r.status[1:] == Status.CONVERGED)
    assert np.abs(r.displacement[1:] - shift).max() < 0.02
    assert r.subvolume_voxels == S and r.displacement_gradient.shape == (len(nodes), 3, 3)


def test_refine_nodes_does_not_search():
    """Started 8 voxels off (five speckle radii), Gauss–Newton alone cannot reach the truth: no node
    may end there (a search would find it, as test_large_displacement_found_coarse_to_fine shows)."""
    ref = texture(48)
    shift = np.array([0.4, -1.3, 2.2])
    nodes = node_grid(ref.shape, 8, S, margin_voxels=12)
    start = np.tile(shift + [8.0, 0.0, 0.0], (len(nodes), 1))
    r = refine_nodes(ref, texture(48, Warp.translation(shift)), nodes, start, subvolume_voxels=S)
    found = np.linalg.norm(r.displacement - shift, axis=1) < 0.5
    assert not found.any()


@pytest.mark.parametrize("start_shape, match", [((4, 3), "displacement_voxels"), ((5, 2), "displacement_voxels")])
def test_refine_nodes_bad_start_raises(start_shape, match):
    v = texture(48)
    nodes = node_grid(v.shape, 8, S)[:5]
    with pytest.raises(ValueError, match=match):
        refine_nodes(v, v, nodes, np.zeros(start_shape), subvolume_voxels=S)


def test_mask_skips_nodes_and_passes_refine():
    ref = texture(48)
    mask = np.zeros(ref.shape, dtype=bool)
    mask[:, :, :24] = True
    seen = []
    r = correlate(ref, texture(48, Warp.translation((0.5, 0.5, -0.5))), subvolume_voxels=S,
                  node_spacing_voxels=6, max_displacement_voxels=2, mask=mask, passes=(25,),
                  nodes=node_grid(ref.shape, 6, S, margin_voxels=1), progress=seen.append)
    # two passes of two stages each report 1/4, 2/4, 3/4, 1
    assert seen == [0.25, 0.5, 0.75, 1.0]
    left = r.nodes[:, 2] < 20
    right = r.nodes[:, 2] > 28
    assert np.all(r.status[right] == Status.MASKED) and not r.ok[right].any()
    assert r.ok[left].all()
    assert np.abs(r.displacement[r.ok] - (0.5, 0.5, -0.5)).max() < 0.02
    assert np.all(np.isnan(r.displacement[~r.ok]))


def test_same_inputs_same_bytes_and_progress():
    ref = texture(48)
    deformed = texture(48, Warp.translation((1.4, -0.3, 0.8)))
    seen = []
    kwargs = dict(subvolume_voxels=S, node_spacing_voxels=6, max_displacement_voxels=2)
    a = correlate(ref, deformed, progress=seen.append, **kwargs)
    b = correlate(ref, deformed, **kwargs)
    for name in ("displacement", "cc", "ok", "iterations", "status", "displacement_gradient"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes()
    assert seen and all(0.0 <= f <= 1.0 for f in seen) and seen[-1] == 1.0 and seen == sorted(seen)


# the smoothing's gaussian reaches int(4 sigma + 0.5) voxels (scipy's default truncation): 2 at 0.5 voxel, so
# texture from x >= 22 leaks into x = 20 and 21. Nodes at x = 11, 19, ...: the subvolume of x = 11 ends at 19
@pytest.mark.parametrize("sigma, reach", [(0.0, 0), (0.5, 2)])
def test_flat_subvolumes_are_not_ok(sigma, reach):
    ref = texture(48)
    ref[:, :, :22] = 1.0
    r = correlate(ref, ref, subvolume_voxels=S, node_spacing_voxels=8, max_displacement_voxels=2,
                  smoothing_sigma_voxels=sigma)
    last_x = r.nodes[:, 2] + S - S // 2 - 1
    flat = last_x < 22 - reach
    assert flat.any() and np.all(r.status[flat] == Status.FLAT) and not r.ok[flat].any()
    assert np.all(r.status[~flat] != Status.FLAT)


def test_node_grid_keeps_subvolumes_inside():
    nodes = node_grid((40, 50, 60), (6, 7, 8), 11, margin_voxels=2)
    assert np.all(nodes - 11 // 2 - 2 >= 0)
    assert np.all(nodes + 11 - 11 // 2 + 2 <= np.array([40, 50, 60]))
    assert set(np.diff(np.unique(nodes[:, 2]))) == {8}


@pytest.mark.parametrize("kwargs", [dict(subvolume_voxels=3), dict(max_displacement_voxels=-1),
                                    dict(mask=np.ones((5, 5, 5), bool))])
def test_bad_input_raises(kwargs):
    args = dict(subvolume_voxels=S, node_spacing_voxels=8, max_displacement_voxels=2)
    args.update(kwargs)
    v = texture(48)
    with pytest.raises(ValueError):
        correlate(v, v, **args)


def test_spline_resampling_matches_scipy():
    rng = np.random.default_rng(5)
    v = texture(24)
    warp = np.concatenate([np.eye(3) + rng.normal(0, 0.05, (3, 3)), rng.uniform(-1.0, 1.0, (3, 1))], axis=1)
    expected = ndi.affine_transform(v, warp[:, :3], warp[:, 3], order=3, mode="mirror")
    got = SplineVolume(v).resample(warp, v.shape)
    inner = (slice(3, -3),) * 3   # within the mirrored border that the kernel keeps
    np.testing.assert_allclose(got[inner], expected[inner], atol=1e-5)


def test_vtk_ascii_round_trip(tmp_path):
    nodes = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    disp = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    tensor = np.arange(18, dtype=float).reshape(2, 3, 3)
    path = tmp_path / "nodes.vtk"
    write_vtk_nodes(path, nodes, {"u_um": disp, "cc": np.array([0.9, 0.8]), "e": tensor}, binary=False)
    lines = path.read_text().splitlines()
    i = lines.index("POINTS 2 float")
    np.testing.assert_allclose(np.loadtxt(lines[i + 1:i + 3]), nodes[:, ::-1])   # VTK is x, y, z
    i = lines.index("VECTORS u_um float")
    np.testing.assert_allclose(np.loadtxt(lines[i + 1:i + 3]), disp[:, ::-1])
    i = lines.index("TENSORS e float")
    np.testing.assert_allclose(np.loadtxt(lines[i + 1:i + 3]).reshape(2, 3, 3), tensor[:, ::-1, ::-1])
    binary = tmp_path / "nodes_b.vtk"
    write_vtk_nodes(binary, nodes, {"cc": np.array([0.9, 0.8])})
    data = binary.read_bytes()
    start = data.index(b"POINTS 2 float\n") + len(b"POINTS 2 float\n")
    np.testing.assert_allclose(np.frombuffer(data[start:start + 24], ">f4").reshape(2, 3), nodes[:, ::-1])
