"""Where each DVC node starts (analysis.dvc.local): the strategy ``correlate``'s docstring gives (issue #19).

The FFT search runs on about one node per 3x3x3 block of node spacings;
every other node starts where its converged lattice neighbours predict it
to first order (or, without agreeing ones, from the rounded median
displacement of the converged nodes within 2.5 spacings); a node that
failed is searched again within +-2 voxels of that median, or over the
whole range where no neighbour converged; flat nodes are not searched
again. On smooth fields every start reaches the same
match, so these choices show in what is searched and from where, which the
tests record by wrapping the search and the Gauss-Newton pass. The
expected node sets are worked out from the definitions (blocks counted in a
dictionary, neighbours by brute-force distances), not from the module.
"""

import math

import numpy as np
import pytest

import analysis.dvc.local as local
from analysis.dvc import Status, correlate
from analysis.dvc.consistency import lattice_neighbours
from analysis.dvc.search import SearchPyramid

from test_dvc_status import S, fourier_shift, texture


def _spacing(nodes):
    """Median distance from a node to its nearest other node, by brute force."""
    d = np.sqrt(((nodes[:, None, :] - nodes[None, :, :]) ** 2).sum(axis=-1))
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(axis=1)))


def _first_per_block(nodes, spacing):
    """Index of the first node (in the given order) of each cube of edge 3 spacings on the absolute grid."""
    first = {}
    for i, p in enumerate(nodes):
        first.setdefault(tuple(math.floor(c / (3 * spacing)) for c in p), i)
    return sorted(first.values())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_sparse_subset_is_the_first_node_of_each_block_of_three_spacings(seed):
    rng = np.random.default_rng(seed)
    lattice = np.array([(z, y, x) for z in range(5) for y in range(4) for x in range(6)], dtype=float)
    nodes = rng.permutation(lattice * 7 + rng.integers(0, 7, 3))     # spacing 7, any origin, any order
    want = _first_per_block(nodes, _spacing(nodes))
    assert 0 < len(want) < len(nodes)
    np.testing.assert_array_equal(local._sparse_subset(nodes), want)


def test_the_blocks_follow_the_nearest_spacing_of_an_anisotropic_grid():
    # spacings 9, 9, 7 with two nodes along x: every node's nearest is its x-neighbour, 7 voxels off
    # (the second nearest is 9), so the blocks are 21 voxels
    nodes = np.array([(z, y, x) for z in range(0, 72, 9) for y in range(0, 36, 9) for x in (0, 7)], dtype=float)
    assert len(nodes) == 64 and _spacing(nodes) == 7.0
    np.testing.assert_array_equal(local._sparse_subset(nodes), _first_per_block(nodes, 7.0))


def test_fewer_than_64_nodes_are_all_searched_and_64_are_not():
    lattice = np.array([(z, y, x) for z in range(4) for y in range(4) for x in range(4)], dtype=float) * 8
    np.testing.assert_array_equal(local._sparse_subset(lattice[:63]), np.arange(63))
    # nodes at 0, 8, 16, 24 on each axis fall in blocks {0, 8, 16} and {24}: 8 blocks, one node each, the
    # first of each at positions 0 and 3 along an axis (index 16 z + 4 y + x)
    np.testing.assert_array_equal(local._sparse_subset(lattice), [0, 3, 12, 15, 48, 51, 60, 63])


def _guess_by_definition(nodes, displacement, ok, which, k=26):
    """Per node of ``which``: the componentwise median over its k nearest ok nodes within 2.5 spacings."""
    limit = 2.5 * _spacing(nodes)
    good = np.flatnonzero(ok)
    out = np.full((len(which), 3), np.nan)
    for row, i in enumerate(which):
        dist = np.sqrt(((nodes[good] - nodes[i]) ** 2).sum(axis=1))
        nearest = good[np.argsort(dist)[:k]]
        near = [j for j in nearest if math.dist(nodes[j], nodes[i]) <= limit]
        if near:
            out[row] = np.median(displacement[near], axis=0)
    return out


@pytest.mark.parametrize("seed, ok_fraction", [(0, 0.9), (1, 0.4), (2, 0.03)])
def test_a_neighbour_guess_is_the_median_of_the_nearest_converged_nodes_within_two_and_a_half_spacings(
        seed, ok_fraction):
    # a lattice of spacing 5 jittered by up to 1 voxel: no ties between distances, so "the 26 nearest"
    # is one set of nodes; about 60 nodes lie within 2.5 spacings, so with most nodes converged the 26
    # bind, and with few some nodes have none
    rng = np.random.default_rng(seed)
    lattice = np.array([(z, y, x) for z in range(7) for y in range(7) for x in range(7)], dtype=float) * 5
    nodes = lattice + rng.uniform(-1, 1, lattice.shape)
    displacement = rng.normal(size=nodes.shape) * 3
    ok = rng.random(len(nodes)) < ok_fraction
    which = np.flatnonzero(~ok)
    want = _guess_by_definition(nodes, displacement, ok, which)
    assert np.isnan(want[:, 0]).any() == (ok_fraction < 0.1)
    got = local._neighbour_guess(nodes, displacement, ok, which)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_a_neighbour_exactly_two_and_a_half_spacings_away_counts_and_one_beyond_does_not():
    # spacings 4, 3, 2 with two nodes along x: the node spacing (nearest neighbour) is 2, so the reach is
    # 5 voxels. From (4, 3, 0): (0, 0, 0) lies at exactly 5 (a 3-4-5 triangle), (4, 0, 2) at 3.6,
    # (0, 0, 2) at 5.4, out of reach. The guess is the median of the first two.
    nodes = np.array([(z, y, x) for z in (0, 4, 8) for y in (0, 3, 6) for x in (0, 2)], dtype=float)
    index = {tuple(p): i for i, p in enumerate(nodes.astype(int).tolist())}
    displacement = np.zeros_like(nodes)
    ok = np.zeros(len(nodes), bool)
    for p, d in (((0, 0, 0), 1.0), ((4, 0, 2), 3.0), ((0, 0, 2), 10.0)):
        ok[index[p]] = True
        displacement[index[p]] = (d, -d, 2 * d)
    got = local._neighbour_guess(nodes, displacement, ok, np.array([index[(4, 3, 0)]]))
    np.testing.assert_array_equal(got, [[2.0, -2.0, 4.0]])


def test_a_neighbour_guess_without_converged_nodes_or_nodes_asked_for_is_empty_or_nan():
    nodes = np.array([[0.0, 0, 0], [0, 0, 4], [0, 4, 0]])
    d = np.ones((3, 3))
    assert np.isnan(local._neighbour_guess(nodes, d, np.zeros(3, bool), np.arange(3))).all()
    assert local._neighbour_guess(nodes, d, np.ones(3, bool), np.array([], dtype=int)).shape == (0, 3)
    # two ok nodes within reach, fewer than k: the median of both
    got = local._neighbour_guess(nodes, np.array([[9.0, 9, 9], [1, 2, 3], [3, 4, 5]]), np.array([False, True, True]),
                                 np.array([0]))
    np.testing.assert_array_equal(got, [[2.0, 3.0, 4.0]])


class _Recorder:
    """Wraps integer_search and _Pass.run, recording the nodes, radius and guess of each search and the nodes and
    start of each run (calls with no nodes are left out)."""

    def __init__(self, monkeypatch):
        self.searches, self.runs = [], []
        search, run = local.integer_search, local._Pass.run

        def recorded_search(reference, deformed, nodes, s, radius, guess=None, pyramid=None):
            if len(nodes):
                self.searches.append((np.array(nodes), radius, None if guess is None else np.array(guess)))
            return search(reference, deformed, nodes, s, radius, guess, pyramid=pyramid)

        def recorded_run(step, idx, warps0, *args):
            if len(idx):
                self.runs.append((np.array(idx), np.array(warps0)))
            return run(step, idx, warps0, *args)

        monkeypatch.setattr(local, "integer_search", recorded_search)
        monkeypatch.setattr(local._Pass, "run", recorded_run)


def _rows(nodes):
    return {tuple(int(c) for c in p) for p in nodes}


def test_the_search_runs_on_one_node_per_block_and_the_others_start_from_their_neighbours(monkeypatch):
    shift = np.array([2, -1, 1])
    ref = texture(0).astype(np.float32)
    deformed = np.roll(ref, shift, axis=(0, 1, 2))          # material moves by +shift; every match stays inside
    axis = (10, 18, 26, 34)
    nodes = np.array([(z, y, x) for z in axis for y in axis for x in axis])
    rec = _Recorder(monkeypatch)
    r = correlate(ref, deformed, subvolume_voxels=S, node_spacing_voxels=8, max_displacement_voxels=3, nodes=nodes)
    assert r.ok.all() and np.abs(r.displacement - shift).max() < 1e-3

    searched = _first_per_block(nodes, 8.0)
    # blocks of 24 voxels: 10, 18 in one and 26, 34 in the next on each axis, so 2^3 searched nodes
    assert len(searched) == 8 and len(rec.searches) == 1      # nothing failed: no second search
    got_nodes, radius, guess = rec.searches[0]
    assert _rows(got_nodes) == _rows(nodes[searched]) and radius == 3 and guess is None

    # two runs: the searched nodes from their search (integer translations), then every other node from
    # its lattice neighbours' first-order predictions. Nothing is re-run, so the searched nodes' final
    # warps are the ones the others were predicted from
    assert len(rec.runs) == 2
    (idx1, w1), (idx2, w2) = rec.runs
    assert sorted(idx1) == searched
    np.testing.assert_array_equal(w1[:, :, :3], np.broadcast_to(np.eye(3), (len(idx1), 3, 3)))
    np.testing.assert_array_equal(w1[:, :, 3], nodes[idx1] + shift)
    rest = sorted(set(range(len(nodes))) - set(searched))
    assert sorted(idx2) == rest
    gradient = r.displacement_gradient
    for i, w in zip(idx2, w2):
        near = [j for j in searched if np.abs(nodes[j] - nodes[i]).max() == 8]     # lattice neighbours
        assert near
        predicted = [r.displacement[j] + gradient[j] @ (nodes[i] - nodes[j]) for j in near]
        np.testing.assert_allclose(w[:, 3], nodes[i] + np.median(predicted, axis=0), rtol=0, atol=1e-12)
        np.testing.assert_allclose(w[:, :3], np.eye(3) + np.median([gradient[j] for j in near], axis=0),
                                   rtol=0, atol=1e-12)
    assert np.abs(w2[:, :, 3] - nodes[idx2] - shift).max() < 1e-2   # sub-voxel starts, not rounded ones


@pytest.mark.parametrize("gap, used", [(2.0, True), (2.002, False)])
def test_a_first_order_start_needs_neighbours_that_agree_within_a_voxel(gap, used):
    # the middle of three nodes 8 voxels apart in x, predicted by the two outer ones: 1.5 and 1.5 - gap
    # in x, so the median is between them and both deviate from it by gap / 2 (the spread)
    nodes = np.array([(0, 0, 0), (0, 0, 8), (0, 0, 16)])
    warps = np.zeros((3, 3, 4))
    warps[:, :, :3] = np.eye(3)
    warps[:, :, 3] = nodes
    warps[0, 2, 3] += 1.5
    warps[2, 2, 3] += 1.5 - gap
    ok = np.array([True, False, True])
    start = local._first_order_start(nodes, warps, ok, lattice_neighbours(nodes), np.array([1]))
    if used:
        np.testing.assert_allclose(start[0], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 8 + 1.5 - gap / 2]])
    else:
        assert np.isnan(start).all()


@pytest.mark.parametrize("which", [np.array([1]), np.array([], dtype=int)])
def test_a_rigid_first_order_start_is_a_rotation(which):
    # the outer two of three nodes turned by 1 and 2 degrees about z (their predictions of the middle one
    # agree within 0.2 voxel): the componentwise median of two rotations (their mean) is no rotation, so
    # a rigid start is projected back onto one (1.5 degrees)
    def turn(deg):
        c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])

    nodes = np.array([(0, 0, 0), (0, 0, 8), (0, 0, 16)])
    warps = np.zeros((3, 3, 4))
    warps[:, :, :3] = [turn(1), np.eye(3), turn(2)]
    warps[:, :, 3] = nodes
    ok = np.array([True, False, True])
    start = local._first_order_start(nodes, warps, ok, lattice_neighbours(nodes), which, "rigid")
    assert start.shape == (len(which), 3, 4)
    for r in start[:, :, :3]:
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(r, turn(1.5), atol=1e-12)


def test_off_the_lattice_the_others_start_from_the_rounded_median_of_the_nearest(monkeypatch):
    # the 64 nodes of a 4x4x4 grid, one moved by a voxel on every axis: the lattice step becomes one voxel,
    # so no node has a lattice neighbour, and each that is not searched starts from the rounded median
    # displacement of the converged nodes within 2.5 spacings (all of them moved by the same integer shift)
    shift = np.array([2, -1, 1])
    ref = texture(0).astype(np.float32)
    deformed = np.roll(ref, shift, axis=(0, 1, 2))
    axis = (10, 18, 26, 34)
    nodes = np.array([(z, y, x) for z in axis for y in axis for x in axis])
    nodes[-1] -= 1
    rec = _Recorder(monkeypatch)
    r = correlate(ref, deformed, subvolume_voxels=S, node_spacing_voxels=8, max_displacement_voxels=3, nodes=nodes)
    assert r.ok.all() and (lattice_neighbours(nodes) < 0).all()
    searched = _first_per_block(nodes, 8.0)
    assert len(rec.runs) == 2 and sorted(rec.runs[0][0]) == searched
    assert len(rec.searches) == 1          # started from the median, not searched again as failures
    idx, w = rec.runs[1]
    assert sorted(idx) == sorted(set(range(64)) - set(searched))
    np.testing.assert_array_equal(w[:, :, :3], np.broadcast_to(np.eye(3), (len(idx), 3, 3)))
    np.testing.assert_array_equal(w[:, :, 3], nodes[idx] + shift)


def test_a_failed_node_is_searched_again_near_its_neighbours_or_everywhere_and_a_flat_one_is_not(monkeypatch):
    # Nodes 8 voxels apart in x (the spacing) in rows at z = 9, 26, 38 and y = 12, 36. The deformed
    # volume is independent noise from z = 18 up, so rows z = 26 and 38 fail. Within 2.5 spacings
    # (20 voxels) of a z = 26 node lie converged z = 9 nodes (17 voxels below); a z = 38 node has none
    # (29). The reference is flat where y >= 28 and z >= 18, so the y = 36 nodes of rows 26 and 38 are
    # FLAT and are not searched again.
    shift = np.array([1, 0, -2])
    ref = texture(0).astype(np.float32).copy()
    ref[18:, 28:, :] = 0.5
    deformed = np.roll(ref, shift, axis=(0, 1, 2))
    deformed[18:] = texture(3)[18:]
    nodes = np.array([(z, y, x) for z in (9, 26, 38) for y in (12, 36) for x in (12, 20, 28, 36)])
    rec = _Recorder(monkeypatch)
    r = correlate(ref, deformed, subvolume_voxels=S, node_spacing_voxels=8, max_displacement_voxels=3, nodes=nodes)

    z, y = nodes[:, 0], nodes[:, 1]
    flat = (z >= 26) & (y == 36)
    assert np.all(r.status[flat] == Status.FLAT)
    assert r.ok[z == 9].all() and not r.ok[z >= 26].any()
    assert len(rec.searches) == 3
    first, near, everywhere = rec.searches
    assert _rows(first[0]) == _rows(nodes) and first[1] == 3          # fewer than 64 nodes: all searched
    assert _rows(near[0]) == _rows(nodes[(z == 26) & (y == 12)]) and near[1] == 2
    np.testing.assert_array_equal(near[2], np.broadcast_to(shift, (4, 3)))
    assert _rows(everywhere[0]) == _rows(nodes[(z == 38) & (y == 12)])
    assert everywhere[1] == 3 and everywhere[2] is None


@pytest.mark.parametrize("max_iterations", [50, 1])   # with 1, one face node ends its first pass MAX_ITERATIONS
def test_a_failed_node_whose_neighbours_put_its_match_out_of_the_volume_is_outside_without_a_search(
        monkeypatch, max_iterations):
    # material moves 6 voxels in +x: the nodes at x = 36 would match at x = 42, whose subvolume (to x = 50)
    # leaves the 48-voxel volume, so they fail; their converged neighbours' guess of +6 leaves no shift
    # within +-2 that keeps the subvolume inside (corner 34 - 2 + 17 = 49 > 48), so they are not searched
    # again and are OUTSIDE at that guess, as a search and Gauss-Newton from it would end
    shift = np.array([0, 0, 6])
    ref = texture(0).astype(np.float32)
    deformed = np.roll(ref, shift, axis=(0, 1, 2))
    nodes = np.array([(z, y, x) for z in (16, 32) for y in (16, 32) for x in (12, 20, 28, 36)])
    rec = _Recorder(monkeypatch)
    r = correlate(ref, deformed, subvolume_voxels=S, node_spacing_voxels=8, max_displacement_voxels=7, nodes=nodes,
                  max_iterations=max_iterations)
    face = nodes[:, 2] == 36
    assert r.ok[~face].all() and np.abs(r.displacement[~face] - shift).max() < 1e-3
    assert np.all(r.status[face] == Status.OUTSIDE) and np.all(r.cc[face] == 0) and np.all(r.iterations[face] == 0)
    assert not any(_rows(got) & _rows(nodes[face]) for got, _, _ in rec.searches[1:])
    assert not any(set(idx) & set(np.flatnonzero(face)) for idx, _ in rec.runs[1:])


@pytest.mark.parametrize("corner, fits", [(-2, True), (-3, False), (33, True), (34, False)])
def test_a_local_search_fits_while_one_of_its_shifts_keeps_the_subvolume_inside(corner, fits):
    # edge 17 in 48 voxels, shifts -2..+2: some shift keeps the subvolume inside while corner + 2 >= 0
    # (the largest shift reaches back in from below) and corner - 2 + 17 <= 48 (the smallest from above)
    corners = np.array([[10, 10, corner]])
    assert local._search_fits(corners, 17, 2, (48, 48, 48))[0] == fits


class _FalsePeaks:
    """A stand-in for the Gauss-Newton pass: node i always "converges" at ``found[i]`` with CC 1.

    With the search stubbed to return its guess, ``_reject_outliers``' own logic (which nodes it
    re-correlates, from which start, how often, what it flags) is all that runs.
    """

    def __init__(self, nodes, found, gradient):
        self.nodes, self.s, self.found, self.gradient = nodes, S, found, gradient
        self.redone = []

    def run(self, sel, warps0, integer_start, warps, cc, iterations, status):
        self.redone.append(np.array(sel))
        warps[sel, :, :3] = np.eye(3) + self.gradient
        warps[sel, :, 3] = self.nodes[sel] + self.found[sel]
        cc[sel] = 1.0
        iterations[sel] = 1
        status[sel] = Status.CONVERGED


def _reject(monkeypatch, nodes, start, found, gradient, failed=()):
    """Run ``_reject_outliers`` from ``start`` displacements, the nodes ``failed`` LOW_CC and the others
    converged; returns ok, status, the searches' guesses and the nodes each run redid."""
    guesses = []

    def search(reference, deformed, at, s, radius, guess=None, pyramid=None):
        assert radius == 2
        guesses.append(np.array(guess))
        return np.array(guess), np.ones(len(at))

    monkeypatch.setattr(local, "integer_search", search)
    step = _FalsePeaks(nodes, found, gradient)
    n = len(nodes)
    warps = np.zeros((n, 3, 4))
    warps[:, :, :3] = np.eye(3) + gradient
    warps[:, :, 3] = nodes + start
    status = np.full(n, Status.CONVERGED, dtype=np.int64)
    status[list(failed)] = Status.LOW_CC
    ok = local._reject_outliers(step, SearchPyramid(None, None), lattice_neighbours(nodes), warps, np.ones(n),
                                np.zeros(n, dtype=np.int64), status, status == Status.CONVERGED, 0.5,
                                np.ones(n, bool))
    return ok, status, guesses, step.redone


LATTICE = np.array([(z, y, x) for z in (8, 16, 24) for y in (8, 16, 24) for x in (8, 16, 24)])


def test_an_outlier_that_matches_the_same_false_peak_again_is_searched_once_and_flagged(monkeypatch):
    zero = np.zeros((3, 3))
    start = np.zeros((27, 3))
    start[13] = (0, 0, 5)                   # the centre on a false peak 5 voxels off; 26 neighbours say 0
    ok, status, guesses, redone = _reject(monkeypatch, LATTICE, start, start, zero)
    assert [r.tolist() for r in redone] == [[13]]        # once, not once per round
    np.testing.assert_array_equal(guesses[0], [[0, 0, 0]])
    assert status[13] == Status.OUTLIER and not ok[13]
    assert ok.sum() == 26 and np.all(np.delete(status, 13) == Status.CONVERGED)


def test_an_outlier_at_a_corner_restarts_from_its_neighbours_first_order_prediction(monkeypatch):
    # u = G (x - centre), du_x/dz = 0.15: the corner node (8, 8, 8) truly moves -1.2 voxels in x. Its 7
    # lattice neighbours predict u_j + G (x - x_j) = -1.2 exactly (rounded: -1); their plain values
    # (-1.2 at z = 8, three of them, 0 at z = 16, four) have the median 0.
    gradient = np.zeros((3, 3))
    gradient[2, 0] = 0.15
    truth = (LATTICE - 16) @ gradient.T
    start = truth.copy()
    start[0] = (4, 0, 0)                  # the corner on a false peak
    ok, status, guesses, redone = _reject(monkeypatch, LATTICE, start, truth, gradient)
    assert [r.tolist() for r in redone] == [[0]]
    np.testing.assert_array_equal(guesses[0], [[0, 0, -1]])
    assert ok.all() and np.all(status == Status.CONVERGED)


def _shifted_pair(shift=(0.4, -0.3, 0.25)):
    """The periodic texture and its copy moved by a sub-voxel ``shift`` (Fourier shift: exact for it)."""
    ref = texture(0).astype(np.float32)
    return ref, fourier_shift(ref, shift), np.array(shift)


NODES = np.array([(z, y, x) for z in (16, 32) for y in (16, 32) for x in (16, 32)])


def test_the_gpu_code_paths_keep_the_arch_they_were_given(pretend_gpu):
    # On a GPU the kernels' arrays are uploaded once (ti.ndarray). Those paths run here on taichi's CPU
    # runtime while the module believes it is on "gpu"; a call that asks for the default "cpu" instead
    # would re-initialise taichi (on a GPU: drop every array uploaded so far), which the test forbids.
    ref, deformed, shift = _shifted_pair()
    kwargs = dict(subvolume_voxels=S, node_spacing_voxels=8, max_displacement_voxels=2, nodes=NODES)
    want = correlate(ref, deformed, **kwargs)
    want_refined = local.refine_nodes(ref, deformed, NODES, np.zeros((8, 3)), subvolume_voxels=S)
    want_tiled = local.correlate_tiled(ref, deformed, subvolume_voxels=15, max_displacement_voxels=2)
    pretend_gpu()
    got = correlate(ref, deformed, arch="gpu", **kwargs)
    got_refined = local.refine_nodes(ref, deformed, NODES, np.zeros((8, 3)), subvolume_voxels=S, arch="gpu")
    got_tiled = local.correlate_tiled(ref, deformed, subvolume_voxels=15, max_displacement_voxels=2, arch="gpu")
    for a, b in ((got, want), (got_refined, want_refined), (got_tiled, want_tiled)):
        np.testing.assert_array_equal(a.status, b.status)
        np.testing.assert_allclose(a.displacement, b.displacement, rtol=0, atol=1e-6)
    assert np.abs(got.displacement - shift).max() < 0.02


def test_refine_nodes_reports_cc_and_integer_iterations_and_starts_from_the_sub_voxel_start():
    # started at the true sub-voxel shift, one Gauss-Newton update must stay there: its first samples
    # are taken at the start itself, not at the nearest whole voxel (which would pull the warp ~0.4 off)
    ref, deformed, shift = _shifted_pair()
    r = local.refine_nodes(ref, deformed, NODES, np.broadcast_to(shift, (8, 3)), subvolume_voxels=S,
                           max_iterations=1)
    assert r.iterations.dtype == np.int64 and np.all(r.iterations == 1)
    assert np.abs(r.displacement - shift).max() < 0.01
    assert np.all(r.cc > 0.999)


def test_refine_nodes_defaults_are_50_iterations_and_a_tolerance_of_0_02_voxel():
    ref, deformed, shift = _shifted_pair()
    # a tolerance of 0 is never met: every node spends the whole default budget
    r = local.refine_nodes(ref, deformed, NODES, np.broadcast_to(shift, (8, 3)), subvolume_voxels=S,
                           tolerance_voxels=0.0)
    assert np.all(r.iterations == 50) and np.all(r.status == Status.MAX_ITERATIONS)
    # from 0.1 voxel off along z, the first update moves points by ~0.1 > 0.02 (but < 1): a second
    # update is needed to converge
    r = local.refine_nodes(ref, deformed, NODES, np.broadcast_to(shift + (0.1, 0, 0), (8, 3)), subvolume_voxels=S)
    assert np.all(r.status == Status.CONVERGED) and np.all(r.iterations >= 2)
    assert np.abs(r.displacement - shift).max() < 0.01


def test_the_default_tolerance_stops_after_an_update_below_0_02_voxel_and_not_above():
    # started 0.012 voxel off along z, the first update moves every point by about 0.012: below 0.02,
    # above 0.005; from 0.03 off it is above 0.02 and a second update is needed. The state after the
    # last update is kept, so either way the shift is found within 0.001 voxel
    ref, deformed, shift = _shifted_pair()
    for off, updates in ((0.012, 1), (0.03, 2)):
        r = local.refine_nodes(ref, deformed, NODES, np.broadcast_to(shift + (off, 0, 0), (8, 3)), subvolume_voxels=S)
        assert np.all(r.status == Status.CONVERGED) and np.all(r.iterations == updates), off
        assert np.abs(r.displacement - shift).max() < 1e-3


def test_correlate_spends_at_most_its_default_budget_of_50_iterations():
    ref, deformed, _ = _shifted_pair()
    r = correlate(ref, deformed, subvolume_voxels=S, node_spacing_voxels=8, max_displacement_voxels=2, nodes=NODES,
                  tolerance_voxels=0.0)
    assert np.all(r.iterations == 50) and not r.ok.any()


def test_a_later_pass_starts_each_converged_node_from_its_sub_voxel_warp(monkeypatch):
    # passes 21 then 17: the 17-voxel pass runs first the nodes the 21-voxel pass converged, from their
    # warps (not re-searched), and, with one update allowed, must not lose the sub-voxel shift
    ref, deformed, shift = _shifted_pair()
    rec = _Recorder(monkeypatch)
    r = correlate(ref, deformed, subvolume_voxels=S, node_spacing_voxels=8, max_displacement_voxels=2, nodes=NODES,
                  passes=(21,), max_iterations=1, tolerance_voxels=1.0)
    assert len(rec.searches) == 1                         # only the first pass searched
    seeded, warps0 = rec.runs[-1]
    assert sorted(seeded) == list(range(8))
    assert np.abs(warps0[:, :, 3] - NODES - shift).max() < 0.1    # the 21-voxel pass's sub-voxel warps
    assert r.ok.all() and np.abs(r.displacement - shift).max() < 0.05


def test_an_outlier_restarts_from_its_converged_neighbours_only(monkeypatch):
    # the corner (8, 8, 8) sits on a false peak (0, 0, 5); of its 7 lattice neighbours 4 failed (LOW_CC)
    # at (0, 0, 9), 3 converged at 0. The restart is the median of the 3 converged ones: 0 (with the
    # failed ones it would be 9).
    index = {tuple(p): i for i, p in enumerate(LATTICE.tolist())}
    failed = [index[p] for p in ((8, 8, 16), (8, 16, 8), (8, 16, 16), (16, 8, 8))]
    start = np.zeros((27, 3))
    start[failed] = (0, 0, 9)
    start[0] = (0, 0, 5)
    found = np.zeros((27, 3))
    ok, status, guesses, redone = _reject(monkeypatch, LATTICE, start, found, np.zeros((3, 3)), failed)
    assert [r.tolist() for r in redone] == [[0]]
    np.testing.assert_array_equal(guesses[0], [[0, 0, 0]])
    assert ok[0] and ok.sum() == 23
