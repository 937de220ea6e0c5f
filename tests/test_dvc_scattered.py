"""The median test over the nearest ok nodes (analysis.dvc.consistency.scattered_median_test), and its use
for the ok nodes that the lattice test cannot judge (a false match confirmed only by the node beside it).

The expected residuals are evaluated one node at a time: distances to every other ok node by brute
force, ``numpy.median`` of the predictions and of their deviations.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.dvc import Status
from analysis.dvc.consistency import lattice_neighbours, median_test, scattered_median_test, small_groups
from analysis.dvc.local import _outliers


def _by_definition(nodes, u, ok, gradient, judged, k, eps, groups):
    out = np.full(len(nodes), np.nan)
    trusted = np.flatnonzero(ok)
    if len(trusted) <= 2:
        return out
    for i in np.flatnonzero(judged & ok):
        others = [j for j in trusted if groups[j] != groups[i]]
        if not others:
            continue
        others.sort(key=lambda j: np.linalg.norm(nodes[j] - nodes[i]))
        pred = []
        for j in others[:k]:
            p = u[j].copy()
            if gradient is not None:
                p += gradient[j] @ (nodes[i] - nodes[j])
            pred.append(p)
        pred = np.array(pred)
        expected = np.median(pred, axis=0)
        spread = np.median(np.abs(pred - expected), axis=0)
        out[i] = np.max(np.abs(u[i] - expected) / (spread + eps))
    return out


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2 ** 16), n=st.integers(1, 40), k=st.integers(1, 10), with_gradient=st.booleans(),
       eps=st.sampled_from([0.1, 0.5]), n_labels=st.sampled_from([None, 2, 5, 15]))
def test_scattered_median_test_is_its_definition_node_by_node(seed, n, k, with_gradient, eps, n_labels):
    """``n_labels``: None leaves only the node itself out; else random group labels (groups of any size)."""
    rng = np.random.default_rng(seed)
    nodes = rng.uniform(0, 100, (n, 3))          # distinct distances almost surely: no ties to order
    u = rng.normal(0, 2, (n, 3))
    gradient = rng.normal(0, 0.05, (n, 3, 3)) if with_gradient else None
    ok = rng.random(n) < 0.7
    judged = rng.random(n) < 0.5
    groups = None if n_labels is None else rng.integers(0, n_labels, n)
    got = scattered_median_test(nodes, u, ok, gradient=gradient, judged=judged, groups=groups, k=k, eps_voxels=eps)
    want = _by_definition(nodes, u, ok, gradient, judged, k, eps, np.arange(n) if groups is None else groups)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 16), n_ok=st.integers(4, 30), offset=st.floats(0.25, 50.0))
def test_an_affine_field_passes_at_any_distance_and_one_wrong_node_is_caught(seed, n_ok, offset):
    """First-order predictions of an affine field are exact whatever the distance: residual 0. One node
    moved by more than THRESHOLD * eps (0.2 voxel) is judged by ok nodes only (residual offset / 0.1);
    among at least three predictions it cannot move another node's median or spread."""
    rng = np.random.default_rng(seed)
    nodes = rng.uniform(0, 200, (60, 3))
    g = rng.normal(0, 0.05, (3, 3))
    u = nodes @ g.T + rng.normal(0, 3, 3)
    gradient = np.repeat(g[None], len(nodes), axis=0)
    ok = np.zeros(len(nodes), bool)
    ok[rng.choice(len(nodes), n_ok, replace=False)] = True
    residual = scattered_median_test(nodes, u, ok, gradient=gradient)
    assert np.all(np.isnan(residual[~ok])) and np.nanmax(residual[ok]) < 1e-9
    bad = np.flatnonzero(ok)[0]
    u[bad] += offset * np.array([0.0, 1.0, 0.0])
    residual = scattered_median_test(nodes, u, ok, gradient=gradient)
    assert residual[bad] == pytest.approx(offset / 0.1, rel=1e-6)
    assert np.nanmax(np.delete(residual, bad)) < 1e-6


def _pair_field(false_group=((30, 30, 30), (30, 30, 40))):
    """A 7^3 lattice, 10 voxels apart, in a 2 % compression along z; every node failed but nine scattered
    ones with the true displacement and a group of lattice neighbours (a pair by default) that share a
    false match 30 voxels off along x (a subvolume and its neighbour's overlap by half and find the same
    false peak)."""
    nodes = np.array([(z, y, x) for z in range(0, 70, 10) for y in range(0, 70, 10) for x in range(0, 70, 10)])
    g = np.diag([-0.02, 0.01, 0.01])
    u = nodes @ g.T
    index = {tuple(p): i for i, p in enumerate(nodes.tolist())}
    good = [index[p] for p in [(0, 0, 0), (0, 60, 60), (60, 0, 60), (60, 60, 0), (0, 0, 60), (30, 60, 30),
                               (60, 30, 0), (0, 30, 30), (60, 60, 60)]]
    pair = [index[p] for p in false_group]
    ok = np.zeros(len(nodes), bool)
    ok[good + pair] = True
    u[pair] += [0.0, 0.0, 30.0]
    return nodes, u, g, ok, good, pair


def test_a_false_pair_that_the_lattice_test_cannot_judge_is_judged_by_the_nearest_ok_nodes():
    nodes, u, g, ok, good, pair = _pair_field()
    gradient = np.repeat(g[None], len(nodes), axis=0)
    lattice, _ = median_test(nodes, u, ok, gradient=gradient)
    assert np.all(np.isnan(lattice[ok]))        # each has at most one ok lattice neighbour: untested
    residual = scattered_median_test(nodes, u, ok, gradient=gradient)
    # each of the pair: 8 predictions, 7 of the truth and its partner's (30 off): median the truth, spread 0
    np.testing.assert_allclose(residual[pair], 30.0 / 0.1, rtol=1e-9)
    # a good node: at most 2 of its 8 nearest are the pair, so the median and the spread stay exact
    np.testing.assert_allclose(residual[good], 0.0, atol=1e-9)


def _dvc_flags(nodes, u, g, ok):
    """analysis.dvc.local._outliers, the DVC's judgement of its ok nodes, on the field as warps; the failed
    nodes are OUTSIDE (not counted against a lone node), so only the median tests judge."""
    warps = np.zeros((len(nodes), 3, 4))
    warps[:, :, :3] = np.eye(3) + g
    warps[:, :, 3] = nodes + u
    status = np.where(ok, Status.CONVERGED, Status.OUTSIDE)
    return set(np.flatnonzero(_outliers(nodes, lattice_neighbours(nodes), warps, ok, status)))


def test_the_dvc_flags_the_false_pair_and_keeps_the_scattered_true_nodes():
    nodes, u, g, ok, good, pair = _pair_field()
    assert _dvc_flags(nodes, u, g, ok) == set(pair)


TRIPLE = ((30, 30, 30), (30, 30, 40), (30, 40, 40))


def test_a_false_triple_passes_the_lattice_test_and_the_dvc_flags_it_as_a_small_group():
    """Three adjacent nodes sharing one false match: each has two ok lattice neighbours that agree with
    it (lattice residual 0); as a small group, each is judged by the nearest ok nodes outside it."""
    nodes, u, g, ok, good, triple = _pair_field(TRIPLE)
    gradient = np.repeat(g[None], len(nodes), axis=0)
    lattice, _ = median_test(nodes, u, ok, gradient=gradient)
    np.testing.assert_allclose(lattice[triple], 0.0, atol=1e-12)
    assert _dvc_flags(nodes, u, g, ok) == set(triple)


def test_small_groups_are_the_connected_ok_nodes_of_at_most_max_nodes():
    """On a 6 x 1 x 6 lattice (26-neighbours: diagonals link): a diagonal pair, an L of three, a row of
    four, a lone node; max_nodes 3."""
    nodes = np.array([(z, 0, x) for z in range(6) for x in range(6)])
    index = {(z, x): 6 * z + x for z in range(6) for x in range(6)}
    pair, ell, row, lone = [(0, 0), (1, 1)], [(0, 4), (0, 5), (1, 5)], [(4, 0), (4, 1), (4, 2), (4, 3)], [(3, 5)]
    ok = np.zeros(36, bool)
    for p in pair + ell + row + lone:
        ok[index[p]] = True
    group, small = small_groups(lattice_neighbours(nodes), ok)
    members = [[index[p] for p in part] for part in (pair, ell, row, lone)]
    assert set(np.flatnonzero(small)) == set(members[0] + members[1] + members[3])
    assert len(set(group[members[0]])) == 1 and len(set(group[members[1]])) == 1
    assert group[members[0][0]] != group[members[1][0]]
    # everyone else, the row of four and the failed nodes included, has a label of its own
    rest = [i for i in range(36) if i not in members[0] + members[1]]
    assert len(set(group[rest])) == len(rest) and not set(group[rest]) & set(group[members[0] + members[1]])
    _, small = small_groups(lattice_neighbours(nodes), ok, max_nodes=4)
    assert small[members[2]].all()


def test_the_members_of_a_group_do_not_judge_each_other():
    """The triple, judged by its two nearest ok nodes (k=2): without groups those are its partners, who
    agree (residual 0); with the triple as one group, two true nodes judge it (30 voxels off: 300)."""
    nodes, u, g, ok, good, triple = _pair_field(TRIPLE)
    gradient = np.repeat(g[None], len(nodes), axis=0)
    judged = np.zeros(len(nodes), bool)
    judged[triple] = True
    alone = scattered_median_test(nodes, u, ok, gradient=gradient, judged=judged, k=2)
    np.testing.assert_allclose(alone[triple], 0.0, atol=1e-9)
    groups = np.arange(len(nodes))
    groups[triple] = -1
    grouped = scattered_median_test(nodes, u, ok, gradient=gradient, judged=judged, groups=groups, k=2)
    np.testing.assert_allclose(grouped[triple], 300.0, rtol=1e-9)


def test_scattered_median_test_needs_three_ok_nodes_and_judges_only_what_it_is_asked():
    nodes = np.array([[0.0, 0, 0], [0, 0, 10], [0, 0, 20], [0, 0, 30]])
    u = np.array([[0.0, 0, 0], [0, 0, 0], [0, 0, 5], [0, 0, 0]])
    assert np.all(np.isnan(scattered_median_test(nodes, u, np.array([1, 1, 0, 0], bool))))
    got = scattered_median_test(nodes, u, np.ones(4, bool), judged=np.array([False, False, True, False]), k=3)
    assert np.isnan(got[[0, 1, 3]]).all() and got[2] == pytest.approx(5.0 / 0.1)


@pytest.mark.parametrize("kwargs, match", [
    ({"k": 0}, "k: expected an integer >= 1"),
    ({"k": 2.5}, "k: expected an integer >= 1"),
    ({"eps_voxels": 0.0}, "eps_voxels: expected > 0"),
    ({"gradient": np.zeros((4, 3))}, r"gradient: expected shape \(4, 3, 3\)"),
    ({"judged": np.ones(3, bool)}, r"judged: expected shape \(4,\) like ok"),
    ({"groups": np.zeros(5, int)}, r"groups: expected shape \(4,\) like ok"),
])
def test_scattered_median_test_refuses_bad_arguments_in_one_line(kwargs, match):
    nodes, u = np.zeros((4, 3)), np.zeros((4, 3))
    with pytest.raises(ValueError, match=match):
        scattered_median_test(nodes, u, np.ones(4, bool), **kwargs)


def test_scattered_median_test_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="nodes, displacement, ok: expected shapes"):
        scattered_median_test(np.zeros((4, 3)), np.zeros((3, 3)), np.ones(4, bool))
