"""Gauss–Newton stops a node early: as soon as its warped subvolume leaves the volume, and (the stall
exit) when its CC after a few iterations shows no match to close in on.

Volumes are the 48^3 periodic texture of ``test_dvc_status`` moved by a
Fourier shift, subvolume edge 17 (offsets -8 .. +8). A subvolume point is
outside when it passes -0.5 or 47.5 (``_Pass._outside``). With the shift
(1.7, -1.3, 0.4) the match of a node at z = 38 reaches z = 38 + 8 + 1.7 =
47.7 (outside), of a node at y = 8 reaches y = 8 - 8 - 1.3 = -1.3
(outside); at z = 36, y = 10 the match stays inside (45.7 and 0.7).
Without the stop such nodes iterate on the padding beyond the volume, most
of them to the iteration limit (50).

The stall exit is checked on a node refined against an independent texture
(its CC climbs from 0.07 to 0.46 over 50 iterations without converging),
on a stand-in volume whose CC follows a script, and in the DVC on a volume
half of which is replaced by independent texture.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

import analysis.dvc.local as dvc_local
from analysis.dvc import Status, refine_nodes
from analysis.dvc.gauss_newton import refine, reference_terms
from analysis.dvc.grid import subvolume_offsets
from analysis.dvc.interpolate import SplineVolume

sys.path.insert(0, str(Path(__file__).parent))
from test_dvc_status import S, _nodes, fourier_shift, texture  # noqa: E402

SHIFT = np.array([1.7, -1.3, 0.4])
LIMIT = 50


def _refined(nodes, start):
    ref = texture(0).astype(np.float32)
    return refine_nodes(ref, fourier_shift(texture(0), SHIFT), nodes, np.tile(start, (len(nodes), 1)),
                        subvolume_voxels=S, max_iterations=LIMIT)


def test_a_node_whose_match_leaves_the_volume_stops_within_two_iterations_and_is_outside():
    # started from no displacement (where a search that found nothing better leaves it): Gauss–Newton
    # heads for the match 1.7 voxel up z, past the limit 47.5 for z = 38, 39, and 1.3 voxel down y,
    # past -0.5 for y = 8; one or two steps get it there and the node must stop
    nodes = np.vstack([_nodes((38, 39), (8, 10, 24), (24,)), [(24, 8, 24)]])
    r = _refined(nodes, np.zeros(3))
    assert np.all(r.status == Status.OUTSIDE) and not r.ok.any()
    assert np.all(r.cc == 0.0) and np.all(np.isnan(r.displacement))
    assert r.iterations.max() <= 2, r.iterations


def test_a_node_started_outside_does_not_iterate():
    # started at the true shift the subvolume is already past the limit: no iteration at all
    nodes = _nodes((38, 39), (10, 24), (24,))
    r = _refined(nodes, SHIFT)
    assert np.all(r.status == Status.OUTSIDE) and np.all(r.iterations == 0)


def test_nodes_near_the_edge_that_stay_inside_converge_to_the_shift():
    # z = 36: the top corner ends at 45.7; y = 10: the bottom one at 0.7; x = 31: 31 + 8 + 0.4 = 39.4
    nodes = np.vstack([_nodes((36,), (10, 24), (24, 31)), [(9, 10, 12)]])
    r = _refined(nodes, np.zeros(3))
    assert np.all(r.status == Status.CONVERGED) and r.ok.all()
    assert np.abs(r.displacement - SHIFT).max() < 0.02
    assert r.iterations.max() < 10


def _one_node():
    """refine's inputs for one node at the volume centre of the unshifted texture, started 0.4 voxel off."""
    v = texture(0).astype(np.float32)
    offsets = subvolume_offsets(S).astype(np.float64)
    centre = np.array([24.0, 24.0, 24.0])
    idx = tuple(np.round(centre + offsets).astype(int).T)
    grad = np.stack(np.gradient(v), axis=-1)
    terms = reference_terms(v[idx][None], grad[idx][None], offsets)
    w0 = np.zeros((1, 3, 4))
    w0[0, :, :3] = np.eye(3)
    w0[0, :, 3] = centre + (0.4, 0.0, 0.0)
    return SplineVolume(v), terms, offsets, w0


def test_refine_stops_after_the_given_patience_and_reports_left():
    spline, terms, offsets, w0 = _one_node()
    always = lambda w: np.ones(len(w), dtype=bool)  # noqa: E731
    for patience, iterations in ((0, 0), (1, 1), (3, 3)):
        # outside on every warp: it stops before sampling the (patience + 1)-th outside warp
        r = refine(spline, terms, offsets, w0, max_iterations=LIMIT, outside=always, outside_patience=patience)
        assert r.left.tolist() == [True] and r.iterations.tolist() == [iterations] and not r.converged[0]
    never = lambda w: np.zeros(len(w), dtype=bool)  # noqa: E731
    for outside in (None, never):
        # the match is the node itself (no shift): it converges there, and did not leave
        r = refine(spline, terms, offsets, w0, max_iterations=LIMIT, outside=outside)
        assert r.converged.tolist() == [True] and r.left.tolist() == [False]
        assert np.abs(r.warps[0, :, 3] - 24.0).max() < 0.01


def test_by_default_a_node_stops_at_its_first_outside_warp():
    # outside_patience defaults to 0: stop as soon as the warp is outside, before sampling it
    spline, terms, offsets, w0 = _one_node()
    r = refine(spline, terms, offsets, w0, outside=lambda w: np.ones(len(w), dtype=bool))
    assert r.left.tolist() == [True] and r.iterations.tolist() == [0] and not r.converged[0]
    np.testing.assert_array_equal(r.warps, w0)


def test_a_node_that_converges_on_an_update_past_the_face_is_outside():
    # a tolerance of 1e9 makes every node converge on its first update, and a converged node leaves the
    # iteration before the outside test, so the final warp must be judged once more. Started 0.3 voxel
    # short of the match along z, the first update moves the subvolume about 0.3 voxel up z (as in
    # test_dvc_refine's test_a_translation_update_moves_every_point_by_its_length): from z = 38 the top
    # corner goes from 38 + 8 + 1.4 = 47.4 (inside) to about 47.7, past 47.5: OUTSIDE, CC 0, not ok. From
    # z = 36 it goes from 45.4 to about 45.7, inside: CONVERGED after that one update
    nodes = _nodes((38, 36), (24,), (24,))
    ref = texture(0).astype(np.float32)
    r = refine_nodes(ref, fourier_shift(texture(0), SHIFT), nodes, np.tile(SHIFT - (0.3, 0.0, 0.0), (2, 1)),
                     subvolume_voxels=S, max_iterations=LIMIT, tolerance_voxels=1e9)
    assert r.iterations.tolist() == [1, 1]
    assert r.status.tolist() == [Status.OUTSIDE, Status.CONVERGED] and r.ok.tolist() == [False, True]
    assert r.cc[0] == 0.0 and np.all(np.isnan(r.displacement[0]))
    assert abs(r.displacement[1, 0] - SHIFT[0]) < 0.1


# ---- the stall exit: a node that finds no match stops after a few iterations -----------------------

def _noise_spline():
    """A deformed volume independent of the reference (texture seed 5): no warp matches any subvolume."""
    return SplineVolume(texture(5).astype(np.float32))


def test_a_node_still_below_the_stall_cc_stops_there_not_converged():
    # against an independent volume the node wanders to the iteration limit at a CC of about 0.46;
    # asked to stall after 10 iterations below 0.3, it stops at 10 with the warp and CC it had then
    _, terms, offsets, w0 = _one_node()
    noise = _noise_spline()
    free = refine(noise, terms, offsets, w0, max_iterations=LIMIT)
    assert free.iterations.tolist() == [LIMIT] and not free.converged[0]
    ten = refine(noise, terms, offsets, w0, max_iterations=10)
    assert ten.cc[0] < 0.3
    r = refine(noise, terms, offsets, w0, max_iterations=LIMIT, stall_iterations=10)
    assert r.iterations.tolist() == [10] and not r.converged[0] and not r.left[0]
    assert r.cc[0] == ten.cc[0]
    np.testing.assert_array_equal(r.warps, ten.warps)


def test_the_stall_test_is_once_after_the_given_iterations_and_spares_a_node_at_or_above_the_cc():
    # the node's own texture, started 0.4 voxel off: CC 0.96 at the start, 1 at the match, converged
    # in 8 iterations at a tolerance of 1e-6
    spline, terms, offsets, w0 = _one_node()
    run = lambda **kw: refine(spline, terms, offsets, w0, max_iterations=LIMIT, tolerance_voxels=1e-6, **kw)  # noqa
    plain = run()
    assert plain.converged.tolist() == [True] and plain.iterations.tolist() == [8]
    for stall in (0, 3):
        # a limit no CC reaches: stopped after exactly ``stall`` iterations, before the next update
        r = run(stall_iterations=stall, stall_cc=1.01)
        assert r.iterations.tolist() == [stall] and not r.converged[0]
        if stall == 0:
            np.testing.assert_array_equal(r.warps, w0)
        # the CC it had then is at or above a limit set to that very CC: it runs on as without the test
        spared = run(stall_iterations=stall, stall_cc=float(r.cc[0]))
        assert spared.iterations.tolist() == [8] and spared.converged.tolist() == [True]
        np.testing.assert_array_equal(spared.warps, plain.warps)
    # a stall test after the node converged never happens
    r = run(stall_iterations=9, stall_cc=1.01)
    assert r.iterations.tolist() == [8] and r.converged.tolist() == [True]


def _half_replaced(**kwargs):
    """refine_nodes on a deformed volume whose half z >= 24 is replaced by independent texture, both nodes
    started 0.4 voxel off: the node at z = 32 (it sees only that half) and the node at z = 12 (in the
    unchanged half) in one batch, then the node at z = 12 alone."""
    ref = texture(0).astype(np.float32)
    deformed = ref.copy()
    deformed[24:] = texture(5)[24:]
    nodes = _nodes((32, 12), (24,), (24,))
    start = np.tile([0.4, 0.0, 0.0], (2, 1))
    together = refine_nodes(ref, deformed, nodes, start, subvolume_voxels=S, max_iterations=LIMIT, **kwargs)
    alone = refine_nodes(ref, deformed, nodes[1:], start[1:], subvolume_voxels=S, max_iterations=LIMIT, **kwargs)
    return together, alone


def test_the_dvc_stops_a_node_that_finds_no_match_after_ten_iterations_and_the_batch_goes_on():
    # the node at z = 32: its CC stays low and it stops after 10 iterations, MAX_ITERATIONS. The node at
    # z = 12, listed after the stalled one in the same batch, converges at zero displacement exactly as
    # when refined alone
    r, alone = _half_replaced()
    assert r.status.tolist() == [Status.MAX_ITERATIONS, Status.CONVERGED]
    assert r.iterations[0] == 10 and r.cc[0] < 0.3
    assert r.iterations[1] == alone.iterations[0] and r.cc[1] == alone.cc[0]
    np.testing.assert_array_equal(r.displacement[1], alone.displacement[0])
    assert np.abs(r.displacement[1]).max() < 0.01


class _ScriptedCC:
    """A stand-in deformed volume whose every sample of the subvolume has ZNCC ``ccs[k]`` at the k-th look
    (zero mean, unit norm, no gradient term: each update is the reference's own pull, never converging at a
    tolerance of 0)."""

    def __init__(self, ccs):
        self.ccs, self.calls = list(ccs), 0

    def correlation_sums(self, warps, offsets, fn, grad, given, cube_edge, weights, rows=None, null_outside=False):
        cc = self.ccs[min(self.calls, len(self.ccs) - 1)]
        self.calls += 1
        sums = np.zeros((len(warps), 15))
        sums[:, 1], sums[:, 2] = 1.0, cc
        return sums


def test_the_stall_test_looks_once_so_a_cc_that_falls_later_does_not_stop_the_node():
    # CC 0.5 at the stall test (iteration 2), 0.2 from then on: judged once, at iteration 2, the node is
    # spared and runs to the limit with its last CC; only a test at iteration 3 would have stopped it
    _, terms, offsets, w0 = _one_node()
    script = [0.5, 0.5, 0.5] + [0.2] * LIMIT
    r = refine(_ScriptedCC(script), terms, offsets, w0, max_iterations=LIMIT, tolerance_voxels=0.0,
               stall_iterations=2)
    assert r.iterations.tolist() == [LIMIT] and r.cc.tolist() == [0.2]
    r = refine(_ScriptedCC(script), terms, offsets, w0, max_iterations=LIMIT, tolerance_voxels=0.0,
               stall_iterations=3)
    assert r.iterations.tolist() == [3] and r.cc.tolist() == [0.2] and not r.converged[0]


def test_the_dvc_lets_a_slow_node_above_the_stall_cc_run_to_the_iteration_limit():
    # at a tolerance of 0 nothing converges: the node on its own texture, CC 1 after 10 iterations, must
    # not be stopped by the stall test (CC below 0.5 after 10 iterations) and reaches the limit
    ref = texture(0).astype(np.float32)
    r = refine_nodes(ref, ref, _nodes((12,), (24,), (24,)), np.array([[0.4, 0.0, 0.0]]), subvolume_voxels=S,
                     max_iterations=LIMIT, tolerance_voxels=0.0)
    assert r.iterations.tolist() == [LIMIT] and r.status.tolist() == [Status.MAX_ITERATIONS]


def test_after_a_stall_the_nodes_left_in_the_batch_iterate_on_as_if_alone():
    # the half-replaced volume again, at a tolerance of 0 so that the node at z = 12 never converges: it
    # is still iterating when the node at z = 32 stalls at iteration 10 and leaves the batch, and must go
    # on to the limit with the same CC and iterations as when refined alone (its displacement is NaN: not
    # converged, not ok)
    r, alone = _half_replaced(tolerance_voxels=0.0)
    assert r.iterations.tolist() == [10, LIMIT] and alone.iterations.tolist() == [LIMIT]
    assert r.status.tolist() == [Status.MAX_ITERATIONS, Status.MAX_ITERATIONS]
    assert r.cc[1] == alone.cc[0] and r.cc[1] > 0.99


@pytest.mark.parametrize("call, min_cc, stall_cc", [("correlate", None, 0.5), ("correlate", 0.3, 0.3),
                                                    ("refine_nodes", 0.8, 0.5), ("refine_nodes", 0.45, 0.45)])
def test_the_dvc_stalls_below_a_cc_of_one_half_or_min_cc_if_lower(monkeypatch, call, min_cc, stall_cc):
    # stopped at 0.5 after 10 iterations, but never for a CC that the caller's min_cc accepts
    seen = []
    refine = dvc_local.refine

    def recorded(*args, **kwargs):
        seen.append((kwargs["stall_iterations"], kwargs["stall_cc"]))
        return refine(*args, **kwargs)

    monkeypatch.setattr(dvc_local, "refine", recorded)
    ref = texture(0).astype(np.float32)
    nodes = _nodes((16, 32), (24,), (24,))
    kwargs = {} if min_cc is None else dict(min_cc=min_cc)
    if call == "correlate":
        dvc_local.correlate(ref, ref, subvolume_voxels=S, node_spacing_voxels=8, max_displacement_voxels=1,
                            nodes=nodes, **kwargs)
    else:
        dvc_local.refine_nodes(ref, ref, nodes, np.zeros((2, 3)), subvolume_voxels=S, **kwargs)
    assert seen and set(seen) == {(10, stall_cc)}
