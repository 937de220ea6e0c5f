"""DVC node statuses: each node is flagged for the reason that applies to it.

Volumes are 48^3 periodic smooth textures (so Fourier shifts are exact), the
subvolume edge 17 voxels (offsets -8 .. +8 about the node). Which nodes get
which status is worked out by hand from the node positions.
"""

import functools
import math
import types

import numpy as np
import pytest
import scipy.ndimage as ndi

from analysis.dvc import Status, correlate
from analysis.dvc.consistency import lattice_neighbours
from analysis.dvc.interpolate import SplineVolume, device_array
from analysis.dvc.local import _Pass, _outliers, _reject_outliers
from analysis.dvc.search import SearchPyramid

S, H, N = 17, 8, 48   # subvolume edge, its half (offsets -H .. +H), volume edge


@functools.lru_cache(maxsize=None)
def texture(seed):
    """Periodic smooth random texture of unit variance, N^3, float64."""
    rng = np.random.default_rng(seed)
    v = ndi.gaussian_filter(rng.normal(size=(N, N, N)), 1.6, mode="wrap")
    return v / v.std()


def fourier_shift(v, shift):
    """v(x - shift) for a periodic band-limited v: material moves by +shift."""
    return np.fft.ifftn(ndi.fourier_shift(np.fft.fftn(v), shift)).real.astype(np.float32)


def _nodes(zs, ys, xs):
    return np.array([(z, y, x) for z in zs for y in ys for x in xs])


def _correlate(ref, deformed, nodes, **kwargs):
    # the uniform window: the CC statistics below count the independent samples of a whole 17^3 cube, and
    # the gaussian window's noisier fits (fewer effective points) would let the neighbour test flag more
    # of the noisy half (3 of 18 nodes instead of 1)
    args = dict(subvolume_voxels=S, node_spacing_voxels=8, max_displacement_voxels=2, nodes=nodes, window="uniform")
    args.update(kwargs)
    return correlate(np.asarray(ref, np.float32), np.asarray(deformed, np.float32), **args)


def test_among_nulls_a_node_whose_match_leaves_the_volume_is_scored_against_them():
    # Avizo's reading of a dataset's edge pixels (paper mode): past the faces the deformed volume reads 0.
    # Rigid warps, as paper mode fits them
    ref, deformed = texture(0), fourier_shift(texture(0), SHIFT)
    r = _correlate(ref, deformed, EDGE_NODES, max_displacement_voxels=2.5, outside="null", shape_function="rigid")
    z, y = r.nodes[:, 0], r.nodes[:, 1]
    leaves = (z + H + SHIFT[0] > N - 0.5) | (y - H + SHIFT[1] < -0.5)
    assert leaves.sum() == 6 and np.all(r.status == Status.CONVERGED) and r.ok.all()
    # the null layer (1.3 or 1.7 of 17 planes) pulls the fit off the shift by up to 0.14 voxel here
    assert np.abs(r.displacement - SHIFT).max() < 0.2
    offsets = np.stack(np.meshgrid(*[np.arange(-H, H + 1)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    for node, u, gradient, cc in zip(r.nodes[leaves], r.displacement[leaves], r.displacement_gradient[leaves],
                                     r.cc[leaves]):
        # the CC reported is the plain ZNCC against the spline inside the volume and 0 past its faces
        points = node + u + offsets @ (np.eye(3) + gradient).T
        inside = np.all((points >= -0.5) & (points <= N - 0.5), axis=1)
        assert not inside.all()
        g = np.where(inside, ndi.map_coordinates(deformed.astype(np.float64), points.T, order=3, mode="mirror"), 0)
        f = ref[tuple((node + offsets).T)]
        f, g = f - f.mean(), g - g.mean()
        assert cc == pytest.approx((f @ g) / np.sqrt((f @ f) * (g @ g)), abs=1e-4)
        assert 0.5 < cc < 0.99


def test_among_nulls_an_integer_start_across_a_face_reads_nulls_there():
    # no iteration: the CC is that of the exact first samples, the voxels of the start's cube
    ref, deformed = texture(0).astype(np.float32), texture(1).astype(np.float32)
    nodes = _nodes((24,), (24,), (36,))
    step = _Pass(device_array(ref, "cpu"), deformed, SplineVolume(deformed), nodes, S, 0, 1e-3, "rigid", "cpu",
                 0.5, "uniform", True)
    warps, cc = _warps_at(nodes, np.array([[0.0, 0.0, 10.0]])), np.zeros(1)
    step.run(np.array([0]), warps.copy(), True, warps, cc, np.zeros(1, np.int64), np.zeros(1, np.int64))
    f = ref[16:33, 16:33, 28:45].ravel()
    g = np.zeros((S, S, S), np.float32)
    g[:, :, :10] = deformed[16:33, 16:33, 38:48]     # x 38 .. 54: the last 7 columns are past the face
    f, g = f - f.mean(), g.ravel() - g.mean()
    assert cc[0] == pytest.approx((f @ g) / np.sqrt((f @ f) * (g @ g)), abs=1e-5)


def test_among_nulls_a_failed_node_whose_neighbours_put_its_match_past_a_face_is_still_correlated():
    # a 5-voxel shift along x; past x = 42 the deformed volume is noise, so the nodes at x = 40 (match at
    # x 37 .. 53: 5 columns of texture, 6 of noise, 6 past the face) fail and are retried around their
    # neighbours' displacement, where no shift within the rescue radius keeps their cube inside
    ref = texture(0).astype(np.float32)
    deformed = fourier_shift(texture(0), (0.0, 0.0, 5.0))
    deformed[:, :, 42:] = np.random.default_rng(3).normal(size=(N, N, N - 42))
    nodes = _nodes((16, 24, 32), (16, 24, 32), (8, 16, 24, 32, 40))
    stopped = _correlate(ref, deformed, nodes, node_spacing_voxels=8, max_displacement_voxels=6,
                         shape_function="rigid")
    last = nodes[:, 2] == 40
    assert np.all(stopped.status[last] == Status.OUTSIDE) and stopped.ok[~last].all()
    among_nulls = _correlate(ref, deformed, nodes, node_spacing_voxels=8, max_displacement_voxels=6,
                             shape_function="rigid", outside="null")
    assert not np.any(among_nulls.status == Status.OUTSIDE)
    assert np.all(among_nulls.cc[last] > 0) and among_nulls.ok[~last].all()


def test_an_unknown_outside_rule_is_a_one_line_error():
    with pytest.raises(ValueError, match="outside: expected 'stop' or 'null', got 'mirror'"):
        _correlate(texture(0), texture(0), EDGE_NODES, outside="mirror")


# Upper half (z >= 24) of the deformed volume: the texture plus independent noise of
# relative amplitude B. Nodes at z = 9, 14 see only the clean half (z 1 .. 22), nodes at
# z = 33, 38 only the noisy half (z 25 .. 46).
B = 0.5
CLEAN_Z, NOISY_Z = (9, 14), (33, 38)
NOISY_NODES = _nodes(CLEAN_Z + NOISY_Z, (12, 24, 36), (12, 24, 36))


@functools.lru_cache(maxsize=None)
def _noisy_half(min_cc):
    ref = texture(0)
    deformed = ref.copy()
    deformed[24:] += B * texture(1)[24:]
    return _correlate(ref, deformed, NOISY_NODES, min_cc=min_cc)


def test_noisy_half_converges_at_the_cc_of_signal_plus_independent_noise():
    r = _noisy_half(0.8)
    clean = np.isin(r.nodes[:, 0], CLEAN_Z)
    # none is LOW_CC at min_cc 0.8; the neighbour check (analysis.dvc.consistency) may flag a noisy
    # node whose vector strays from its neighbours' as OUTLIER, with its CC kept
    converged = r.status == Status.CONVERGED
    assert np.all(converged | (r.status == Status.OUTLIER)) and np.array_equal(r.ok, converged)
    assert converged[clean].all() and converged[~clean].mean() > 0.9
    assert np.all(r.cc[clean] > 1 - 1e-6)
    # ZNCC of f against f + B g, g independent of f with equal variance: 1 / sqrt(1 + B^2) = 0.894;
    # a 17^3 subvolume of this texture holds ~80 independent samples, so the CC of one node
    # scatters by about (1 - cc^2) / sqrt(80) = 0.02, and the affine fit lifts it a little
    expected = 1 / math.sqrt(1 + B ** 2)
    assert np.all(np.abs(r.cc[~clean] - expected) < 0.06)
    assert np.abs(r.displacement[~clean & converged]).max() < 0.5


def test_nodes_below_min_cc_are_low_cc_and_not_ok_the_others_ok():
    r = _noisy_half(0.95)
    noisy = np.isin(r.nodes[:, 0], NOISY_Z)
    assert np.all(r.status[noisy] == Status.LOW_CC)
    assert not r.ok[noisy].any() and np.all(np.isnan(r.displacement[noisy]))
    assert np.all(np.isnan(r.displacement_gradient[noisy]))
    assert np.all(r.status[~noisy] == Status.CONVERGED) and r.ok[~noisy].all()
    assert np.abs(r.displacement[~noisy]).max() < 1e-6
    assert np.all(r.cc[noisy] < 0.95)  # the CC itself is kept for the flagged nodes


def test_nodes_on_independent_noise_are_never_ok():
    ref = texture(0)
    deformed = ref.copy()
    deformed[24:] = texture(1)[24:]
    r = _correlate(ref, deformed, NOISY_NODES)
    noisy = np.isin(r.nodes[:, 0], NOISY_Z)
    assert not r.ok[noisy].any()
    assert np.all(np.isin(r.status[noisy], [Status.LOW_CC, Status.MAX_ITERATIONS, Status.OUTSIDE]))
    assert r.ok[~noisy].all()


# A rigid shift moves the match of nodes near the top (z) and the front (y) out of the
# volume. A subvolume point lies outside when it is below -0.5 or above N - 0.5:
# z + H + 1.7 > 47.5 for z = 39 (48.7), and y - H - 1.3 < -0.5 for y = 8 (-1.3). The
# nodes kept inside stay a voxel or more from that limit (z = 36: 45.7, y = 10: 0.7):
# near the edge the fitted affine warp tilts a little, and with it the subvolume's corners.
SHIFT = (1.7, -1.3, 0.4)
EDGE_NODES = _nodes((9, 24, 36, 39), (8, 10, 24), (24,))


def test_nodes_whose_match_leaves_the_volume_are_outside():
    r = _correlate(texture(0), fourier_shift(texture(0), SHIFT), EDGE_NODES, max_displacement_voxels=2.5)
    z, y = r.nodes[:, 0], r.nodes[:, 1]
    outside = (z + H + SHIFT[0] > N - 0.5) | (y - H + SHIFT[1] < -0.5)
    assert outside.sum() == 6  # z = 39 (3 nodes) and y = 8 (3 more)
    assert np.all(r.status[outside] == Status.OUTSIDE)
    assert not r.ok[outside].any() and np.all(r.cc[outside] == 0.0)
    assert np.all(np.isnan(r.displacement[outside]))
    assert np.all(r.status[~outside] == Status.CONVERGED) and r.ok[~outside].all()
    assert np.abs(r.displacement[~outside] - SHIFT).max() < 0.02


def test_flat_subvolumes_are_flat_and_textured_ones_converge():
    ref = texture(0).copy()
    ref[:, :, :20] = 1.0   # no texture for x < 20
    nodes = _nodes((24,), (12, 36), (9, 11, 28, 36))
    r = _correlate(ref, ref, nodes)
    x = r.nodes[:, 2]
    flat = x + H < 20          # whole subvolume in the flat slab: x = 9, 11
    textured = x - H >= 20     # whole subvolume in the texture: x = 28, 36
    assert flat.sum() == 4 and textured.sum() == 4
    assert np.all(r.status[flat] == Status.FLAT) and not r.ok[flat].any()
    assert np.all(np.isnan(r.displacement[flat]))
    assert np.all(r.status[textured] == Status.CONVERGED) and r.ok[textured].all()


def test_nodes_mostly_outside_the_mask_are_masked_with_cc_zero():
    ref = texture(0)
    mask = np.zeros(ref.shape, bool)
    mask[:, :, :24] = True
    # x = 12: subvolume x 4 .. 20 all in the mask; x = 24: 8 of 17 columns in (0.47 < 0.5);
    # x = 36: none in
    nodes = _nodes((24,), (24,), (12, 24, 36))
    r = _correlate(ref, ref, nodes, mask=mask)
    assert r.status.tolist() == [Status.CONVERGED, Status.MASKED, Status.MASKED]
    assert r.ok.tolist() == [True, False, False]
    assert r.cc[1:].tolist() == [0.0, 0.0]


# the node at x = 24 has 8 of its 17 columns in the mask: a fraction of exactly 8/17
@pytest.mark.parametrize("fraction, status", [(0.45, Status.CONVERGED), (8 / 17, Status.CONVERGED),
                                              (8 / 17 + 1e-9, Status.MASKED), (0.5, Status.MASKED)])
def test_subvolumes_with_less_than_min_mask_fraction_inside_are_masked(fraction, status):
    ref = texture(0)
    mask = np.zeros(ref.shape, bool)
    mask[:, :, :24] = True
    r = _correlate(ref, ref, _nodes((24,), (24,), (24,)), mask=mask, min_mask_fraction=fraction)
    assert r.status.tolist() == [status]


def _translated(position):
    """(1, 3, 4) warp: the identity plus a move of the node's centre to ``position`` (z, y, x)."""
    w = np.zeros((1, 3, 4))
    w[0, :, :3] = np.eye(3)
    w[0, :, 3] = position
    return w


# The limit itself, worked by hand on a 48 x 40 x 56 volume (edges differ, so an axis cannot stand in
# for another): a subvolume point is outside below -0.5 or above edge - 0.5 (47.5, 39.5, 55.5), and
# an edge-17 subvolume spans offsets -8 .. +8 about its centre, an edge-16 one -8 .. +7.
@pytest.mark.parametrize("edge, centre, outside", [
    (17, (24.0, 20.0, 28.0), False),
    (17, (39.5, 20.0, 28.0), False),     # top corner at 47.5: on the limit is inside
    (17, (39.75, 20.0, 28.0), True),     # 47.75
    (17, (38.75, 20.0, 28.0), False),    # 46.75, a quarter voxel from a limit one voxel lower
    (17, (24.0, 7.5, 28.0), False),      # bottom corner at -0.5: on the limit is inside
    (17, (24.0, 7.25, 28.0), True),      # -0.75
    (17, (24.0, 31.5, 28.0), False),     # y: 39.5 on the limit of the 40-voxel edge
    (17, (24.0, 31.75, 28.0), True),
    (17, (24.0, 20.0, 47.5), False),     # x: 55.5
    (17, (24.0, 20.0, 47.75), True),
    (16, (40.5, 20.0, 28.0), False),     # edge 16 reaches only +7 up: 47.5
    (16, (40.75, 20.0, 28.0), True),
    (16, (24.0, 7.5, 28.0), False),      # and -8 down: -0.5
    (16, (24.0, 7.25, 28.0), True),
])
def test_a_warp_is_outside_when_a_subvolume_corner_passes_half_a_voxel_beyond_the_volume(edge, centre, outside):
    step = types.SimpleNamespace(s=edge, shape=np.array([48, 40, 56]))
    assert _Pass._outside(step, _translated(centre)).tolist() == [outside]


def test_a_turned_subvolume_reaches_out_with_its_corners_not_its_faces():
    # a turn by 45 degrees in the z-y plane: the corner (dz, dy) = (8, -8) goes to z offset
    # 8 cos 45 + 8 sin 45 = 8 sqrt(2) = 11.31, past the 8 of the unturned faces
    c = math.cos(math.pi / 4)
    turn = np.array([[c, -c, 0.0], [c, c, 0.0], [0.0, 0.0, 1.0]])
    step = types.SimpleNamespace(s=17, shape=np.array([48, 40, 56]))
    warps = np.concatenate([_translated((z, 20.0, 28.0)) for z in (36.0, 36.5)])
    warps[:, :, :3] = turn
    # 36 + 11.31 = 47.31 is inside, 36.5 + 11.31 = 47.81 is not (an unturned cube would be at 44, 44.5)
    assert _Pass._outside(step, warps).tolist() == [False, True]
    # the same turn about the other side: the corner (8, 8) reaches out instead
    warps[:, :, :3] = turn.T
    assert _Pass._outside(step, warps).tolist() == [False, True]
    # a turn that brings one body diagonal d of the cube (signs (+-1, +-1, +-1) / sqrt(3)) onto the z axis:
    # only the corner 8 sqrt(3) d reaches z offset 8 sqrt(3) = 13.86; every other corner stays at 4.62 or less
    for signs in np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1], indexing="ij")).reshape(3, -1).T:
        d = signs / math.sqrt(3)
        v = d - (1.0, 0.0, 0.0)
        mirror = np.eye(3) - 2 * np.outer(v, v) / (v @ v)          # swaps d and z
        warps = np.concatenate([_translated((z, 20.0, 28.0)) for z in (33.5, 33.75)])
        warps[:, :, :3] = np.diag([1.0, 1.0, -1.0]) @ mirror       # and x mirrored back: a turn
        assert np.isclose(np.linalg.det(warps[0, :, :3]), 1.0) and np.allclose(warps[0, 0, :3], d)
        # 33.5 + 13.86 = 47.36 is inside, 33.75 + 13.86 = 47.61 is not
        assert _Pass._outside(step, warps).tolist() == [False, True], signs


def test_the_iteration_budget_and_the_tolerance_are_the_callers():
    # a shift of (0.25, -0.2, 0.15) voxel from the integer start 0: the first Gauss-Newton update moves the
    # subvolume by about 0.35 voxel, so one iteration cannot pass the default 0.02 voxel test (MAX_ITERATIONS,
    # not ok), while a 0.5 voxel tolerance is met as soon as the update is smaller than 0.5, some
    # iterations before a tolerance of 1e-4 voxel is met
    ref = texture(0)
    deformed = fourier_shift(ref, (0.25, -0.2, 0.15))
    nodes = _nodes((16, 32), (16, 32), (16, 32))
    one = _correlate(ref, deformed, nodes, max_iterations=1)
    assert np.all(one.status == Status.MAX_ITERATIONS) and not one.ok.any() and np.all(one.iterations == 1)
    default = _correlate(ref, deformed, nodes)
    loose = _correlate(ref, deformed, nodes, tolerance_voxels=0.5)
    tight = _correlate(ref, deformed, nodes, tolerance_voxels=1e-4)
    assert default.ok.all() and loose.ok.all() and tight.ok.all()
    assert np.all(loose.iterations < tight.iterations)
    assert np.abs(default.displacement - (0.25, -0.2, 0.15)).max() < 5e-3


_V = np.zeros((24, 24, 24), np.float32)


@pytest.mark.parametrize("kwargs, message", [
    (dict(shape_function="translation"), r"^shape_function: expected 'affine' or 'rigid', got 'translation'$"),
    (dict(reference=np.zeros((4, 4), np.float32)),
     r"^reference: expected a real 3D array \(z, y, x\), got shape \(4, 4\) dtype float32$"),
    (dict(deformed=_V.astype(np.complex64)),
     r"^deformed: expected a real 3D array \(z, y, x\), got shape \(24, 24, 24\) dtype complex64$"),
    (dict(deformed=_V[:, :, :20]), r"^deformed: expected shape \(24, 24, 24\) like reference, got \(24, 24, 20\)$"),
    (dict(max_displacement_voxels=float("nan")), r"^max_displacement_voxels: expected >= 0, got nan$"),
    (dict(nodes=np.array([[12, 12]])), r"^nodes: expected an \(N, 3\) array of integer positions \(z, y, x\)$"),
    (dict(nodes=np.array([12, 12, 12])), r"^nodes: expected an \(N, 3\) array of integer positions"),
    (dict(nodes=np.array([[12, 12, 12.5]])), r"^nodes: expected an \(N, 3\) array of integer positions"),
    (dict(mask=np.ones((24, 24, 20), bool)),
     r"^mask: expected a boolean array of shape \(24, 24, 24\), got \(24, 24, 20\)$"),
])
def test_bad_input_is_refused_with_a_message_naming_it(kwargs, message):
    args = dict(reference=_V, deformed=_V, subvolume_voxels=S, node_spacing_voxels=8, max_displacement_voxels=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        correlate(**args)


def test_no_search_at_all_is_a_valid_request():
    # identical volumes: the match is where the node is, so a search of 0 voxels (no shift tried) finds it
    r = _correlate(texture(0), texture(0), _nodes((24,), (24,), (16, 32)), max_displacement_voxels=0)
    assert r.ok.all() and np.abs(r.displacement).max() < 1e-6
    # node positions given as whole floats come back as integers, and so do the iteration counts
    f = _correlate(texture(0), texture(0), _nodes((24.0,), (24.0,), (16.0, 32.0)), max_displacement_voxels=0)
    assert f.nodes.dtype == np.int64 and f.iterations.dtype == np.int64


def _warps_at(nodes, displacement):
    warps = np.zeros((len(nodes), 3, 4))
    warps[:, :, :3] = np.eye(3)
    warps[:, :, 3] = nodes + displacement
    return warps


def test_a_lone_success_among_exactly_three_failed_neighbours_is_an_outlier():
    """Two lone ok nodes far apart: one has exactly three correlated, failed lattice
    neighbours and no ok one, so it is flagged; the other has no neighbour at all and stays untested."""
    lone = np.array([[8, 8, 8], [16, 8, 8], [8, 16, 8], [8, 8, 16]])
    far = np.array([[80, 80, 80]])
    nodes = np.concatenate([lone, far])
    neighbours = lattice_neighbours(nodes)
    ok = np.array([True, False, False, False, True])
    status = np.array([Status.CONVERGED, Status.MAX_ITERATIONS, Status.LOW_CC, Status.MAX_ITERATIONS,
                       Status.CONVERGED])
    flagged = _outliers(nodes, neighbours, _warps_at(nodes, np.zeros((5, 3))), ok, status)
    assert flagged.tolist() == [True, False, False, False, False]
    # with one failed neighbour OUTSIDE (where a neighbour's match went, not a sign of a false peak)
    # only two count: too few to judge
    status[3] = Status.OUTSIDE
    flagged = _outliers(nodes, neighbours, _warps_at(nodes, np.zeros((5, 3))), ok, status)
    assert not flagged.any()


def test_a_success_confirmed_only_by_node_0_is_no_outlier():
    """Node 2 has one ok lattice neighbour, node 0, and three failed ones (node 1 among them): one
    confirming neighbour is enough, so nothing is flagged (node 0 is a neighbour like any other)."""
    nodes = np.array([[8, 8, 16], [16, 8, 8], [8, 8, 8], [8, 16, 8], [0, 8, 8]])
    neighbours = lattice_neighbours(nodes)
    ok = np.array([True, False, True, False, False])
    status = np.array([Status.CONVERGED, Status.LOW_CC, Status.CONVERGED, Status.MAX_ITERATIONS, Status.LOW_CC])
    flagged = _outliers(nodes, neighbours, _warps_at(nodes, np.zeros((5, 3))), ok, status)
    assert flagged.tolist() == [False] * 5
    # the same node without node 0's confirmation is alone among three failed neighbours
    ok[0] = False
    status[0] = Status.LOW_CC
    flagged = _outliers(nodes, neighbours, _warps_at(nodes, np.zeros((5, 3))), ok, status)
    assert flagged.tolist() == [False, False, True, False, False]


def test_an_outlier_is_searched_again_around_what_its_neighbours_expect():
    """Every node of a 3^3 lattice matched at the true shift (0, 0, 10) except the centre, left 9 voxels
    short at (0, 0, 1): the median test flags it (26 neighbours agree), and a search of +-2 voxels
    around the neighbours' 10 finds the true match; one around 0 cannot reach it."""
    shift = np.array([0, 0, 10])
    ref = texture(0).astype(np.float32)
    deformed = np.roll(ref, tuple(shift), axis=(0, 1, 2))          # periodic texture: an exact shift
    nodes = _nodes((16, 24, 32), (16, 24, 32), (12, 20, 28))
    step = _Pass(device_array(ref, "cpu"), deformed, SplineVolume(deformed), nodes, S, 50, 1e-3, "affine", "cpu",
                 0.5, "uniform", False)
    displacement = np.broadcast_to(shift, nodes.shape).astype(float).copy()
    displacement[13] = (0, 0, 1)
    warps = _warps_at(nodes, displacement)
    cc = np.ones(len(nodes))
    iterations = np.zeros(len(nodes), dtype=np.int64)
    status = np.full(len(nodes), Status.CONVERGED, dtype=np.int64)
    ok = np.ones(len(nodes), bool)
    ok = _reject_outliers(step, SearchPyramid(ref, deformed), lattice_neighbours(nodes), warps, cc, iterations,
                          status, ok, 0.5, np.ones(len(nodes), bool))
    assert ok.all() and np.all(status == Status.CONVERGED)
    np.testing.assert_allclose(warps[13, :, 3], nodes[13] + shift, atol=0.01)
    assert cc[13] > 0.99 and iterations[13] >= 1


def test_boolean_volumes_are_refused():
    v = np.zeros((32, 32, 32), bool)
    with pytest.raises(ValueError, match="reference: expected a real 3D array"):
        correlate(v, v, subvolume_voxels=17, node_spacing_voxels=8, max_displacement_voxels=2)
