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
from analysis.dvc.consistency import lattice_neighbours, median_test, scattered_median_test
from analysis.dvc.local import _outliers


def _by_definition(nodes, u, ok, gradient, judged, k, eps):
    out = np.full(len(nodes), np.nan)
    trusted = np.flatnonzero(ok)
    if len(trusted) <= 2:
        return out
    for i in np.flatnonzero(judged & ok):
        others = [j for j in trusted if j != i]
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


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 16), n=st.integers(1, 40), k=st.integers(1, 10), with_gradient=st.booleans(),
       eps=st.sampled_from([0.1, 0.5]))
def test_scattered_median_test_is_its_definition_node_by_node(seed, n, k, with_gradient, eps):
    rng = np.random.default_rng(seed)
    nodes = rng.uniform(0, 100, (n, 3))          # distinct distances almost surely: no ties to order
    u = rng.normal(0, 2, (n, 3))
    gradient = rng.normal(0, 0.05, (n, 3, 3)) if with_gradient else None
    ok = rng.random(n) < 0.7
    judged = rng.random(n) < 0.5
    got = scattered_median_test(nodes, u, ok, gradient=gradient, judged=judged, k=k, eps_voxels=eps)
    want = _by_definition(nodes, u, ok, gradient, judged, k, eps)
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


def _pair_field():
    """A 7^3 lattice, 10 voxels apart, in a 2 % compression along z; every node failed but nine scattered
    ones with the true displacement and a pair of lattice neighbours that share a false match 30 voxels
    off along x (a subvolume and its neighbour's overlap by half and find the same false peak)."""
    nodes = np.array([(z, y, x) for z in range(0, 70, 10) for y in range(0, 70, 10) for x in range(0, 70, 10)])
    g = np.diag([-0.02, 0.01, 0.01])
    u = nodes @ g.T
    index = {tuple(p): i for i, p in enumerate(nodes.tolist())}
    good = [index[p] for p in [(0, 0, 0), (0, 60, 60), (60, 0, 60), (60, 60, 0), (0, 0, 60), (30, 60, 30),
                               (60, 30, 0), (0, 30, 30), (60, 60, 60)]]
    pair = [index[(30, 30, 30)], index[(30, 30, 40)]]
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


def test_the_dvc_flags_the_false_pair_and_keeps_the_scattered_true_nodes():
    """analysis.dvc.local._outliers, the DVC's judgement of its ok nodes, on the same field as warps."""
    nodes, u, g, ok, good, pair = _pair_field()
    warps = np.zeros((len(nodes), 3, 4))
    warps[:, :, :3] = np.eye(3) + g
    warps[:, :, 3] = nodes + u
    # the failed nodes are OUTSIDE (not counted against a lone node), so only the median tests judge
    status = np.where(ok, Status.CONVERGED, Status.OUTSIDE)
    flag = _outliers(nodes, lattice_neighbours(nodes), warps, ok, status)
    assert set(np.flatnonzero(flag)) == set(pair)


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
])
def test_scattered_median_test_refuses_bad_arguments_in_one_line(kwargs, match):
    nodes, u = np.zeros((4, 3)), np.zeros((4, 3))
    with pytest.raises(ValueError, match=match):
        scattered_median_test(nodes, u, np.ones(4, bool), **kwargs)


def test_scattered_median_test_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="nodes, displacement, ok: expected shapes"):
        scattered_median_test(np.zeros((4, 3)), np.zeros((3, 3)), np.ones(4, bool))
