"""The parts of validation.run that compute a score, on hand-made stand-ins for a run (issue #19).

``truth_pores`` decides which voxels of the phantom the truth's pore sizes
and phase fractions come from (the field of view, the analysed rows less
the edge, what counts as pore); the expected counts here are of a label
volume typed in by hand. ``best_fit`` runs the real Gauss-Newton from the
truth on an exactly shifted texture; ``subvolume_study`` averages stand-in
scores whose means are worked out by hand.
"""

import types
import warnings

import numpy as np
import pytest

import validation.run as run_module
from analysis.dvc import Status
from analysis.phases import Phase
from analysis.pores import cpsd, cpsd_whole_voxel
from validation.run import _half, _pore_phases, _pore_scores, best_fit, finite, subvolume_study, truth_pores

from test_dvc_status import fourier_shift, texture

P, C, N, H, F = (int(p) for p in (Phase.PORE, Phase.CBD, Phase.NMC, Phase.HEAD, Phase.FOIL))


def _phantom():
    """Labels (6, 8, 8): a 1-voxel ring in y and x outside the 6 x 6 field of view (NMC, which must not
    count), the foil in row 0, the head in row 5; rows 1..4 the sample. The analysed region, rows [1, 5)
    less a 1-voxel edge, is rows 2 and 3, y and x 1..4 of the field of view (2..5 of the volume):
    row 2 all NMC (16), row 3 8 pores, 4 CBD, 4 NMC."""
    labels = np.full((6, 8, 8), N, dtype=np.uint8)
    labels[0], labels[5] = F, H
    labels[3, 2:6, 2:6] = [[P, P, P, P], [P, P, P, P], [C, C, C, C], [N, N, N, N]]
    labels[1:5, 1, 1:7] = P        # in the field of view but in the edge: not analysed
    return labels


class _Run:
    grid = types.SimpleNamespace(fov_offset_voxels=1, n_det=6, sample_rows={2: (1, 5)}, voxel_size_um=0.25)

    def truth_labels(self, k):
        assert k == 2
        return _phantom()


@pytest.mark.parametrize("pore_phases, pore, cbd", [((Phase.PORE,), 8 / 32, 4 / 32),
                                                     ((Phase.PORE, Phase.CBD), 12 / 32, 0.0)])
def test_the_truth_counts_the_analysed_region_of_the_field_of_view_with_the_chains_pore_definition(
        pore_phases, pore, cbd):
    seen = {}

    def pore_size(pore_space, voxel_size_um, mask, arch):
        seen.update(pore_space=pore_space, voxel_size_um=voxel_size_um, mask=mask, arch=arch)
        return "cpsd"

    settings = types.SimpleNamespace(edge_exclusion_voxels=1, pore_size=pore_size)
    cpsd, phases = truth_pores(_Run(), 2, settings, "gpu", pore_phases)
    assert cpsd == "cpsd" and seen["voxel_size_um"] == 0.25 and seen["arch"] == "gpu"
    region = np.zeros((6, 6, 6), bool)
    region[2:4, 1:5, 1:5] = True
    np.testing.assert_array_equal(seen["mask"], region)
    want_space = np.isin(_phantom()[:, 1:7, 1:7], [int(p) for p in pore_phases])
    np.testing.assert_array_equal(seen["pore_space"], want_space)
    assert phases.n_voxels == 32
    assert (phases.nmc, phases.cbd, phases.pore, phases.inactive) == pytest.approx((20 / 32, cbd, pore, 12 / 32))


class _StoredRun(_Run):
    """A run whose phantom stage stored the truth's radius maps: 0.75 um on every voxel of the pore
    space (no map made from the labels gives that), so a truth read from them is 0.75."""

    def __init__(self):
        self.asked = []

    def truth_radius_um(self, k, name):
        self.asked.append((k, name))
        return np.full((6, 6, 6), 0.75, dtype=np.float32)


@pytest.mark.parametrize("pore_size, pore_phases, stored", [
    (cpsd, (Phase.PORE,), "pore"), (cpsd_whole_voxel, (Phase.CBD, Phase.PORE), "inactive"),
    (cpsd, (Phase.PORE, Phase.CBD), None), (cpsd_whole_voxel, (Phase.PORE,), None)])
def test_the_truth_reads_the_stored_radius_map_of_its_definition_and_makes_any_other(pore_size, pore_phases,
                                                                                      stored):
    run = _StoredRun()
    settings = types.SimpleNamespace(edge_exclusion_voxels=1, pore_size=pore_size)
    result, _ = truth_pores(run, 2, settings, "cpu", pore_phases)
    assert run.asked == ([] if stored is None else [(2, stored)])
    if stored is None:
        # made from the labels: the 4 x 2 pore slab of row 3 (or its 4 x 3 slab with the CBD) is far below 0.75 um
        assert result.mean_radius_um < 0.5
    else:
        assert result.mean_radius_um == 0.75 and result.median_radius_um == 0.75


def test_the_pore_phases_and_the_pore_and_phase_blocks_as_scores_json_holds_them():
    assert _pore_phases({"pore_phases": ["pore", "CBD"]}) == (Phase.PORE, Phase.CBD)
    measured = {"mean_pore_radius_um": 1.5, "median_pore_radius_um": 1.25, "inactive": 0.6, "nmc": 0.4,
                "pore": 0.35, "cbd": 0.25}
    cpsd = types.SimpleNamespace(mean_radius_um=1.0, median_radius_um=0.75)
    truth = types.SimpleNamespace(inactive=0.5, nmc=0.5, pore=0.3, cbd=0.2)
    pores, phases = _pore_scores(measured, cpsd, truth)
    assert pores == {"mean_radius_um": 1.5, "truth_mean_radius_um": 1.0, "median_radius_um": 1.25,
                     "truth_median_radius_um": 0.75}
    assert phases == {"inactive_fraction": 0.6, "truth_inactive_fraction": 0.5, "nmc_fraction": 0.4,
                      "truth_nmc_fraction": 0.5, "pore_fraction": 0.35, "truth_pore_fraction": 0.3,
                      "cbd_fraction": 0.25, "truth_cbd_fraction": 0.2}


def test_finite_replaces_every_non_finite_number_with_none_at_any_depth():
    got = finite({"a": float("nan"), "b": [1.0, float("inf"), (float("-inf"), 2)], "c": {"d": 3.5, "e": "x"}})
    assert got == {"a": None, "b": [1.0, None, [None, 2]], "c": {"d": 3.5, "e": "x"}}


def test_each_mode_reports_half_of_the_progress():
    seen = []
    _half(seen.append, 0)(0.5)
    _half(seen.append, 1)(0.5)
    _half(seen.append, 1)(1.0)
    assert seen == [0.25, 0.75, 1.0] and _half(None, 1) is None


def test_the_subvolume_study_averages_the_compressed_steps_per_edge_largest_first(monkeypatch):
    # per (step, edge): mean CC, RMS error, ok fraction; a NaN (no ok node) is left out of the means
    values = {(1, 5): (0.5, 1.0, 0.5), (2, 5): (0.75, float("nan"), 0.0),
              (1, 9): (0.9, 0.25, 1.0), (2, 9): (0.8, 0.75, 0.5)}
    calls = []

    def score_dvc(truth, field, k, shape):
        calls.append((truth, k, shape))
        assert field["k"] == k        # the field of the step being scored
        cc, rms, ok = values[(k, field["edge"])]
        return {"mean_cc": cc, "rms_error_voxels": rms, "ok_fraction": ok}, None, None, None

    monkeypatch.setattr(run_module, "score_dvc", score_dvc)
    run = types.SimpleNamespace(steps=[0, 1, 2], dvc=lambda k, edge: {"edge": edge, "k": k})
    settings = types.SimpleNamespace(subvolumes_voxels=(5, 9), voxel_size_um=0.5)
    rows = subvolume_study(run, "truth", settings, (10, 20, 30))
    assert rows == [{"edge_voxels": 9, "edge_um": 4.5, "mean_cc": pytest.approx(0.85), "rms_error_voxels": 0.5,
                     "ok_fraction": 0.75},
                    {"edge_voxels": 5, "edge_um": 2.5, "mean_cc": 0.625, "rms_error_voxels": 1.0,
                     "ok_fraction": 0.25}]
    assert calls == [("truth", 1, (10, 20, 30)), ("truth", 2, (10, 20, 30))] * 2


def test_an_edge_where_no_step_trusted_a_node_reads_nan_without_a_warning(monkeypatch):
    nan = float("nan")
    monkeypatch.setattr(run_module, "score_dvc", lambda truth, field, k, shape: (
        {"mean_cc": nan, "rms_error_voxels": nan, "ok_fraction": 0.0}, None, None, None))
    run = types.SimpleNamespace(steps=[0, 1, 2], dvc=lambda k, edge: {"edge": edge, "k": k})
    settings = types.SimpleNamespace(subvolumes_voxels=(7,), voxel_size_um=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row, = subvolume_study(run, "truth", settings, (10, 20, 30))
    assert np.isnan(row["mean_cc"]) and np.isnan(row["rms_error_voxels"]) and row["ok_fraction"] == 0.0


def test_the_best_fit_from_the_truth_lands_on_an_exact_shift_and_skips_masked_nodes():
    shift = np.array([0.4, -0.3, 0.25])
    ref = texture(0).astype(np.float32)
    deformed = fourier_shift(ref, shift)
    nodes = np.array([(z, y, x) for z in (16, 32) for y in (16, 32) for x in (16, 32)])
    status = np.full(8, Status.CONVERGED)
    status[3] = Status.MASKED
    field = {"nodes": nodes, "status": status, "subvolume_voxels": np.int64(17)}
    truth = np.broadcast_to(shift, (8, 3)).copy()
    settings = types.SimpleNamespace(shape_function="affine", window="gaussian", min_cc=0.5, voxel_size_um=0.5)
    got = best_fit(ref, deformed, field, truth, settings)
    assert got["started_nodes"] == 7 and got["ok_fraction"] == 1.0
    assert got["rms_error_voxels"] < 0.01 and got["nodes"] == 7 and got["rms_error_um"] == 0.5 * got["rms_error_voxels"]
    assert got["start"] == "the true displacement of each node (the scores' truth rule), registered frame"
    assert "error_by_region" not in got
    # per region, as the chain's error: the masked node (3, in the lower layer) is in neither count
    lower = nodes[:, 0] == 16
    got = best_fit(ref, deformed, field, truth, settings, regions={"lower": lower, "upper": ~lower})
    assert {name: row["nodes"] for name, row in got["error_by_region"].items()} == {"lower": 3, "upper": 4}
    assert all(row["rms_error_voxels"] < 0.01 for row in got["error_by_region"].values())
    # a node with no truth is not started either; with none started the fraction is not a number
    truth[:] = np.nan
    got = best_fit(ref, deformed, field, truth, settings)
    assert got["started_nodes"] == 0 and np.isnan(got["ok_fraction"])


def test_the_best_fit_refines_an_even_sample_of_at_most_max_nodes(monkeypatch):
    """12 nodes, node 2 MASKED and node 7 without a truth: 10 eligible (0 1 3 4 5 6 8 9 10 11); 4 of them
    at positions 0, 3, 6, 9 of that list (0 to 9 in four even steps): nodes 0, 4, 8, 11. The stand-in fit
    returns the start plus (0, 0, 0.5) where the node index is even, and fails node 11."""
    nodes = np.array([(10, 10, 10 + 8 * i) for i in range(12)])
    status = np.full(12, Status.CONVERGED)
    status[2] = Status.MASKED
    truth = np.zeros((12, 3))
    truth[7] = np.nan
    seen = []

    def refine_nodes(reference, deformed, nodes_in, start, **kw):
        seen.append((nodes_in.copy(), start.copy()))
        index = (nodes_in[:, 2] - 10) // 8
        return types.SimpleNamespace(displacement=start + np.where(index % 2 == 0, 0.5, 0.0)[:, None] * [0, 0, 1],
                                     ok=index != 11)

    monkeypatch.setattr(run_module, "refine_nodes", refine_nodes)
    settings = types.SimpleNamespace(shape_function="affine", window="gaussian", min_cc=0.5, voxel_size_um=0.5)
    field = {"nodes": nodes, "status": status, "subvolume_voxels": 17}
    upper = nodes[:, 2] >= 50
    got = best_fit(None, None, field, truth, settings, regions={"low": ~upper, "up": upper}, max_nodes=4)
    np.testing.assert_array_equal(seen[0][0], nodes[[0, 4, 8, 11]])
    assert got["started_nodes"] == 4 and got["eligible_nodes"] == 10 and got["ok_fraction"] == 0.75
    # ok: nodes 0, 4, 8, each 0.5 off
    assert got["nodes"] == 3 and got["rms_error_voxels"] == pytest.approx(0.5)
    assert {name: row["nodes"] for name, row in got["error_by_region"].items()} == {"low": 2, "up": 1}
    # at or under the limit every eligible node is refined
    seen.clear()
    got = best_fit(None, None, field, truth, settings, max_nodes=10)
    np.testing.assert_array_equal(seen[0][0], nodes[[0, 1, 3, 4, 5, 6, 8, 9, 10, 11]])
    assert got["started_nodes"] == got["eligible_nodes"] == 10
    with pytest.raises(ValueError, match="max_nodes: expected an integer >= 1"):
        best_fit(None, None, field, truth, settings, max_nodes=0)


def test_the_best_fit_uses_the_chains_shape_function_window_min_cc_and_backend(pretend_gpu):
    shift = np.array([0.4, -0.3, 0.25])
    ref = texture(0).astype(np.float32)
    deformed = fourier_shift(ref, shift)
    nodes = np.array([(24, 24, 16), (24, 24, 32)])
    field = {"nodes": nodes, "status": np.full(2, Status.CONVERGED), "subvolume_voxels": 17}
    truth = np.broadcast_to(shift, (2, 3)).copy()

    def settings(**kw):
        return types.SimpleNamespace(**{"shape_function": "affine", "window": "gaussian", "min_cc": 0.5,
                                        "voxel_size_um": 0.5, **kw})

    with pytest.raises(ValueError, match="shape_function"):
        best_fit(ref, deformed, field, truth, settings(shape_function="quadratic"))
    with pytest.raises(ValueError, match="^window"):
        best_fit(ref, deformed, field, truth, settings(window="hann"))
    # no CC reaches 1.5: nothing is ok, so there is no error to give
    got = best_fit(ref, deformed, field, truth, settings(min_cc=1.5))
    assert got["ok_fraction"] == 0.0 and got["nodes"] == 0
    # on "gpu" (taichi's CPU runtime, the module told it is a GPU) no call may fall back to "cpu"
    pretend_gpu()
    got = best_fit(ref, deformed, field, truth, settings(), arch="gpu")
    assert got["ok_fraction"] == 1.0 and got["rms_error_voxels"] < 0.01
