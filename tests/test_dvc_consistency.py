"""The normalised median test (analysis.dvc.consistency) against a node-by-node evaluation of its definition.

The expected values are computed one node at a time with a dictionary of
positions, ``math.gcd`` and ``numpy.median``: no lattice keys, no sorting
trick, no vectorised median (issue #19).
"""

import functools
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.dvc.consistency import lattice_neighbours, median_test

# z, y, x lexicographic, the centre left out: the column order the docstring promises
OFFSETS = [o for o in itertools.product((-1, 0, 1), repeat=3) if o != (0, 0, 0)]


def _neighbours_by_definition(nodes):
    """(N, 26) index of the node one lattice step away per offset, -1 if none (a position listed more
    than once: its first listing); the step per axis is the greatest common divisor of the coordinate
    differences on that axis (1 when all are equal)."""
    where = {}
    for i, p in enumerate(nodes.tolist()):
        where.setdefault(tuple(p), i)
    step = []
    for a in range(3):
        values = sorted(set(nodes[:, a].tolist()))
        step.append(functools.reduce(math.gcd, [v - values[0] for v in values], 0) or 1)
    out = np.full((len(nodes), 26), -1)
    for i, p in enumerate(nodes.tolist()):
        for m, o in enumerate(OFFSETS):
            out[i, m] = where.get(tuple(p[a] + o[a] * step[a] for a in range(3)), -1)
    return out


@st.composite
def lattices(draw):
    """Some nodes of a lattice with its own origin and steps, in a random order."""
    step = draw(st.tuples(*[st.integers(1, 9)] * 3))
    origin = draw(st.tuples(*[st.integers(-20, 20)] * 3))
    size = draw(st.tuples(*[st.integers(1, 5)] * 3))
    cells = list(itertools.product(*(range(n) for n in size)))
    keep = draw(st.lists(st.sampled_from(cells), min_size=1, max_size=len(cells), unique=True))
    return np.array([[origin[a] + c[a] * step[a] for a in range(3)] for c in keep], dtype=np.int64)


@settings(max_examples=80, deadline=None)
@given(nodes=lattices())
def test_lattice_neighbours_are_the_nodes_one_step_away_in_each_of_26_directions(nodes):
    got = lattice_neighbours(nodes)
    assert got.shape == (len(nodes), 26) and got.dtype == np.int64
    np.testing.assert_array_equal(got, _neighbours_by_definition(nodes))


def test_lattice_neighbours_of_integer_floats_and_of_one_node():
    nodes = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 4.0]])
    got = lattice_neighbours(nodes)
    assert got[0, OFFSETS.index((0, 0, 1))] == 1 and got[1, OFFSETS.index((0, 0, -1))] == 0
    assert (got >= 0).sum() == 2
    np.testing.assert_array_equal(lattice_neighbours(np.array([[3, 4, 5]])), np.full((1, 26), -1))


def test_a_position_listed_twice_is_named_by_its_first_listing():
    # the 64 sites of a 4^3 lattice (steps 3, origin (2, 5, 7)), listed once in one random order and
    # again in another: every neighbour entry names a site's first listing, and the two copies of a
    # site have the same row (they are no step apart, so not each other's neighbours). With 128 keys
    # numpy's default sort, unlike a stable one, does not keep equal keys in their listed order
    rng = np.random.default_rng(5)
    grid = np.array(list(itertools.product(range(4), repeat=3))) * 3 + [2, 5, 7]
    nodes = np.concatenate([grid[rng.permutation(64)], grid[rng.permutation(64)]])
    got = lattice_neighbours(nodes)
    np.testing.assert_array_equal(got, _neighbours_by_definition(nodes))
    # a site has a neighbour at offset o where each coordinate stays in 0..3: prod(4 - |o_a|) sites, so
    # (3 + 4 + 3)^3 - 4^3 = 936 entries per listing, each naming one of the first 64 rows
    assert got.max() < 64 and (got >= 0).sum() == 2 * 936


@pytest.mark.parametrize("nodes", [np.zeros((4, 2)), np.zeros(3), np.array([[0.0, 0.0, 0.5]])])
def test_lattice_neighbours_refuse_what_is_not_integer_positions(nodes):
    with pytest.raises(ValueError, match=r"^nodes: expected an \(N, 3\) array of integer positions"):
        lattice_neighbours(nodes)


def _median_test_by_definition(nodes, u, ok, gradient, eps, min_neighbours):
    """Residual and expectation of each node, one node at a time (module docstring's formula).

    With gradients, a node with three or more pairs of opposite ok neighbours is also judged against the
    pairs' cubic Hermite midpoints, one per pair: its residual is the smaller of the two, its expectation
    that of the set with the smaller largest spread (the pairs on a tie)."""
    nb = _neighbours_by_definition(nodes)
    residual = np.full(len(nodes), np.nan)
    expected = np.full((len(nodes), 3), np.nan)

    def judged(pred):
        median = np.median(pred, axis=0)
        spread = np.median(np.abs(pred - median), axis=0)
        return median, spread, np.max(np.abs(u[i] - median) / (spread + eps))

    for i in range(len(nodes)):
        used = [j for j in nb[i] if j >= 0 and ok[j]]
        if not used:
            continue
        pred = np.array([u[j] + (gradient[j] @ (nodes[i] - nodes[j]) if gradient is not None else 0.0)
                         for j in used])
        median, spread, r = judged(pred)
        if gradient is not None:
            pairs = []
            for m, o in enumerate(OFFSETS):
                j, k = nb[i][m], nb[i][OFFSETS.index(tuple(-c for c in o))]
                if o < (0, 0, 0) and j >= 0 and k >= 0 and ok[j] and ok[k]:
                    pairs.append(0.5 * (u[j] + u[k]) + 0.25 * (gradient[j] - gradient[k]) @ (nodes[i] - nodes[j]))
            if len(pairs) >= 3:
                pair_median, pair_spread, pair_r = judged(np.array(pairs))
                r = min(r, pair_r)
                if pair_spread.max() <= spread.max():
                    median = pair_median
        expected[i] = median
        if ok[i] and len(used) >= min_neighbours:
            residual[i] = r
    return residual, expected


@settings(max_examples=60, deadline=None)
@given(nodes=lattices(), seed=st.integers(0, 2 ** 16), with_gradient=st.booleans(),
       eps=st.sampled_from([0.1, 0.37]), min_neighbours=st.integers(1, 5))
def test_median_test_is_its_definition_node_by_node(nodes, seed, with_gradient, eps, min_neighbours):
    rng = np.random.default_rng(seed)
    n = len(nodes)
    u = rng.normal(0.0, 1.0, (n, 3))
    ok = rng.random(n) < 0.8
    gradient = rng.normal(0.0, 0.05, (n, 3, 3)) if with_gradient else None
    # what is not ok must not be read: garbage there
    u_seen = np.where(ok[:, None], u, 1e6)
    g_seen = None if gradient is None else np.where(ok[:, None, None], gradient, -1e6)
    residual, expected = median_test(nodes, u_seen, ok, gradient=g_seen, eps_voxels=eps,
                                     min_neighbours=min_neighbours)
    want_r, want_e = _median_test_by_definition(nodes, u, ok, gradient, eps, min_neighbours)
    np.testing.assert_allclose(residual, want_r, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(expected, want_e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_median_test_is_its_definition_on_a_full_lattice_where_nodes_have_pairs(seed):
    # the hypothesis lattices are mostly sparse; on a whole 5^3 lattice (steps 3, 4, 5) with 85 % of the
    # nodes ok most nodes have three or more pairs of opposite ok neighbours, so both sets of predictions
    # and the choice between them are exercised
    rng = np.random.default_rng(seed)
    # in a random order, so that every node, the first listed included, is on either side of some pair
    nodes = rng.permutation(np.array(list(itertools.product(range(5), repeat=3))) * (3, 4, 5))
    u = rng.normal(0.0, 1.0, (len(nodes), 3))
    ok = rng.random(len(nodes)) < 0.85
    gradient = rng.normal(0.0, 0.05, (len(nodes), 3, 3))
    residual, expected = median_test(nodes, u, ok, gradient=gradient)
    want_r, want_e = _median_test_by_definition(nodes, u, ok, gradient, 0.1, 2)
    np.testing.assert_allclose(residual, want_r, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(expected, want_e, rtol=1e-12, atol=1e-12)


def test_a_curved_field_at_a_face_of_the_node_block_is_not_flagged():
    # u_z = c y^2 on a 5^3 lattice of step h = 8, c h^2 = 0.3 voxel, gradients exact. At a node on the face
    # y = 0 the 8 neighbours in the face predict it exactly and the 9 at y = h miss by
    # c h^2 - 2 c h^2 = -c h^2 each, so the first-order median is 0.3 off with no spread: r = 0.3 / 0.1 = 3,
    # an outlier. The 4 pairs in the face (their midpoints are exact, u being constant along them) give 0.
    # A node 1 voxel off in the middle of that face stays an outlier (r = 1 / 0.1 = 10 against the pairs)
    h, c = 8, 0.3 / 64
    nodes = np.array(list(itertools.product(range(5), repeat=3))) * h
    y = nodes[:, 1].astype(np.float64)
    u = np.zeros((len(nodes), 3))
    u[:, 0] = c * y ** 2
    gradient = np.zeros((len(nodes), 3, 3))
    gradient[:, 0, 1] = 2 * c * y
    ok = np.ones(len(nodes), bool)
    face = np.flatnonzero((nodes[:, 1] == 0) & np.all(nodes[:, [0, 2]] % (4 * h) != 0, axis=1))   # 9 face nodes
    singles, _ = median_test(nodes, u, ok)     # without gradients: plain values, c h^2 / 0.1 = 3 too
    assert np.allclose(singles[face], 3.0)
    residual, expected = median_test(nodes, u, ok, gradient=gradient)
    np.testing.assert_allclose(residual[face], 0.0, atol=1e-12)
    np.testing.assert_allclose(expected[face], u[face], atol=1e-12)
    centre = face[4]
    assert tuple(nodes[centre]) == (2 * h, 0, 2 * h)
    u[centre, 0] += 1.0
    residual, expected = median_test(nodes, u, ok, gradient=gradient)
    assert residual[centre] == pytest.approx(10.0) and expected[centre, 0] == pytest.approx(0.0, abs=1e-12)


def test_median_test_uses_given_neighbours_as_they_are():
    # a neighbour table that is not the lattice's: node 0's only neighbour is node 2 (u = 1 voxel in x),
    # so its expectation is node 2's value and its residual |0 - 1| / (0 + 0.1) = 10
    nodes = np.array([[0, 0, 0], [0, 0, 8], [0, 0, 16]])
    u = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    nb = np.full((3, 26), -1)
    nb[0, 0] = 2
    residual, expected = median_test(nodes, u, np.ones(3, bool), neighbours=nb, min_neighbours=1)
    assert residual[0] == pytest.approx(10.0)
    np.testing.assert_array_equal(expected[0], [0.0, 0.0, 1.0])
    assert np.isnan(residual[1:]).all() and np.isnan(expected[1:]).all()
    with pytest.raises(ValueError, match="neighbours"):
        median_test(nodes, u, np.ones(3, bool), neighbours=nb[:, :25])


def test_median_test_takes_whole_number_displacements_and_a_0_1_ok():
    # the docstring example with integer displacements and ok given as 0 / 1: the centre node 1 voxel
    # off a uniform field of 26 neighbours at 0 has r = 1 / (0 + 0.1) = 10
    nodes = np.array([(z, y, x) for z in (0, 8, 16) for y in (0, 8, 16) for x in (0, 8, 16)])
    u = np.zeros((27, 3), dtype=np.int64)
    u[13] = (1, 0, 0)
    ok = np.ones(27, dtype=np.int64)
    ok[0] = 0
    residual, expected = median_test(nodes, u, ok)
    assert residual[13] == pytest.approx(10.0)
    assert np.isnan(residual[0])                      # not ok: not tested
    np.testing.assert_array_equal(expected[13], [0.0, 0.0, 0.0])
    want_r, want_e = median_test(nodes, u.astype(float), ok.astype(bool))
    np.testing.assert_array_equal(residual, want_r)
    np.testing.assert_array_equal(expected, want_e)
