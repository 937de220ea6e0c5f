"""The paper's table (validation.paper) on a hand-made run, every value worked out by hand (issue #19).

A stand-in for :class:`synthcal.dataset.Run` serves three steps, a subvolume
study of three edges and DVC fields whose CCs are chosen so that the means,
the masked and flat subvolumes and the ranks can be counted on paper; the
scores carry round numbers. Each row and each sentence of the report is
compared in full: they are what a reader of the report sees.
"""

import types

import numpy as np
import pytest

from analysis.dvc import Status
from validation.paper import COLUMNS, PAPER, claims, paper_mean_cc, paper_rows

M, F, C = Status.MASKED, Status.FLAT, Status.CONVERGED

# CC of each subvolume per (step, edge): edge 9 pools to 0.9, edge 7 (the chosen one) to 0.8, edge 5 to 0.5;
# masked subvolumes (never correlated) are left out whatever their CC, flat ones count as 0
FIELDS = {
    (1, 9): ([C, C, M], [0.9, 1.0, 0.1]), (2, 9): ([C, C], [0.9, 0.8]),
    (1, 7): ([C, C, M], [0.95, 0.85, 0.0]), (2, 7): ([C, C, F], [0.9, 1.1, 0.0]),
    (1, 5): ([C, C], [0.5, 0.6]), (2, 5): ([C, M, C], [0.7, 0.99, 0.2]),
}


class _Run:
    steps = [0, 1, 2]

    def analysis_settings(self):
        return types.SimpleNamespace(subvolumes_voxels=(5, 9, 7), subvolume_voxels=7, voxel_size_um=0.5)

    def pore_summary(self):
        return [{"pore_phases": ["pore", "CBD"], "cpsd": "whole-voxel spheres"}]

    def dvc(self, k, edge_voxels):
        status, cc = FIELDS[(k, edge_voxels)]
        return {"status": np.array(status), "cc": np.array(cc)}


def _block(radius, truth_radius, inactive, truth_inactive):
    return {"pores": {"mean_radius_um": radius, "truth_mean_radius_um": truth_radius},
            "phases": {"inactive_fraction": inactive, "truth_inactive_fraction": truth_inactive}}


SCORES = {
    "reference": _block(2.25, 2.0, 0.7, 0.75),
    "steps": [{"step": 1, **_block(1.75, 1.75, 0.6, 0.5)}, {"step": 2, **_block(1.5, 1.25, 0.5, 0.5)}],
    # true RMS error per edge: 7 is the most accurate; rows without an error are not ranked
    "subvolume_study": [{"edge_voxels": 9, "rms_error_voxels": 0.5}, {"edge_voxels": 7, "rms_error_voxels": 0.25},
                        {"edge_voxels": 5, "rms_error_voxels": 0.375}, {"edge_voxels": 3, "rms_error_voxels": None},
                        {"edge_voxels": 11, "rms_error_voxels": float("nan")}],
}

RADIUS_DEFINITION = ("pore-volume-weighted mean radius of the CPSD of the segmented pore and CBD in the analysed "
                     "region (whole-voxel spheres)")


def _rows():
    return {r["row"]: r for r in paper_rows(_Run(), SCORES)}


def test_paper_mean_cc_keeps_every_subvolume_tried_and_zero_where_none_could_be_computed():
    got = paper_mean_cc({"status": np.array([C, M, F, C]), "cc": [0.5, 0.9, 0.0, 1]})
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [0.5, 0.0, 1.0])


def test_the_table_has_every_row_in_order_with_all_columns():
    rows = paper_rows(_Run(), SCORES)
    assert [r["row"] for r in rows] == [
        "mean_pore_radius_step0", "mean_pore_radius_stepA", "mean_pore_radius_stepB",
        "inactive_fraction_step0", "inactive_fraction_stepA", "inactive_fraction_stepB",
        "mean_cc_chosen_edge", "cc_rank_chosen_edge"]
    for r in rows:
        assert set(r) == {"row", "quantity", "unit", "definition", *COLUMNS}


def test_the_pore_and_phase_rows_set_measured_truth_and_their_difference_beside_the_paper():
    rows = _rows()
    for name, step, paper, measured, truth in (("0", "0", 2.0, 2.25, 2.0), ("A", "A", 1.7, 1.75, 1.75),
                                                ("B", "B", 1.5, 1.5, 1.25)):
        assert rows[f"mean_pore_radius_step{name}"] == {
            "row": f"mean_pore_radius_step{name}", "quantity": f"mean pore radius, step {step}", "unit": "um",
            "definition": RADIUS_DEFINITION, "paper": paper, "measured": measured, "truth": truth,
            "measured_minus_truth": measured - truth}
    for name, paper, measured, truth in (("0", 0.68, 0.7, 0.75), ("A", 0.58, 0.6, 0.5), ("B", 0.55, 0.5, 0.5)):
        assert rows[f"inactive_fraction_step{name}"] == {
            "row": f"inactive_fraction_step{name}", "quantity": f"inactive (non-NMC) fraction, step {name}",
            "unit": "1", "definition": "1 - NMC fraction of the analysed region", "paper": paper,
            "measured": measured, "truth": truth, "measured_minus_truth": measured - truth}


def test_the_mean_cc_and_its_rank_pool_both_compressed_steps_per_edge():
    rows = _rows()
    # edge 7 (3.5 um): (0.95 + 0.85 + 0.9 + 1.1 + 0) / 5 = 0.76; edge 9: (0.9 + 1.0 + 0.9 + 0.8) / 4 = 0.9;
    # edge 5: (0.5 + 0.6 + 0.7 + 0.2) / 4 = 0.5. By mean CC 7 ranks 2 of 3; by true error (0.25) it ranks 1
    cc = rows["mean_cc_chosen_edge"]
    assert cc["quantity"] == "mean CC at the chosen edge (3.5 um; paper 8 um)" and cc["unit"] == "1"
    assert cc["definition"] == ("mean CC over every subvolume correlated at the chosen edge, both compressed "
                                "steps, 0 where no correlation could be computed (no truth: a CC says how alike, "
                                "not how right)")
    assert cc["paper"] == 0.81 and cc["measured"] == pytest.approx(0.76, abs=1e-12)
    assert cc["truth"] is None and cc["measured_minus_truth"] is None
    rank = rows["cc_rank_chosen_edge"]
    assert rank == {"row": "cc_rank_chosen_edge",
                    "quantity": "rank of the chosen edge by mean CC among 3 edges (paper: among 7)", "unit": "rank",
                    "definition": "1 = highest mean CC (as above) among the subvolume study's edges; truth: the "
                                  "chosen edge's rank by true RMS error, 1 = lowest",
                    "paper": 2, "measured": 2, "truth": 1, "measured_minus_truth": 1}
    assert PAPER["chosen_edge_um"] == 8.0 and PAPER["study_edges_um"][4] == 8.0


def test_a_tie_does_not_lower_the_rank():
    # edge 9 pooled to exactly edge 7's 0.76: both rank 1 (only a strictly higher mean counts)
    fields = dict(FIELDS)
    fields[(1, 9)] = ([C, C], [0.76, 0.76])
    fields[(2, 9)] = ([C, C], [0.76, 0.76])

    class Tied(_Run):
        def dvc(self, k, edge_voxels):
            status, cc = fields[(k, edge_voxels)]
            return {"status": np.array(status), "cc": np.array(cc)}

    scores = dict(SCORES, subvolume_study=[{"edge_voxels": 9, "rms_error_voxels": 0.25},
                                           {"edge_voxels": 7, "rms_error_voxels": 0.25}])
    rows = {r["row"]: r for r in paper_rows(Tied(), scores)}
    assert rows["cc_rank_chosen_edge"]["measured"] == 1 and rows["cc_rank_chosen_edge"]["truth"] == 1


def test_a_run_without_compressed_steps_or_a_study_has_none_where_a_value_does_not_exist():
    class Single(_Run):
        steps = [0]

        def analysis_settings(self):
            return types.SimpleNamespace(subvolumes_voxels=(7,), subvolume_voxels=7, voxel_size_um=0.5)

    rows = {r["row"]: r for r in paper_rows(Single(), {"reference": SCORES["reference"], "steps": []})}
    assert rows["mean_pore_radius_step0"]["measured"] == 2.25
    for name in ("mean_pore_radius_stepA", "inactive_fraction_stepB"):
        assert rows[name]["measured"] is None and rows[name]["truth"] is None
        assert rows[name]["measured_minus_truth"] is None
    assert rows["mean_cc_chosen_edge"]["measured"] is None
    assert rows["cc_rank_chosen_edge"]["measured"] is None and rows["cc_rank_chosen_edge"]["truth"] is None
    assert claims(list(rows.values())) == [
        "At step 0 the chain reads the mean pore radius +0.25 um off the truth (+12% of it): the paper's 2 um "
        "carries a bias of this relative size if its chain erred as this one does.",
        "Step A: not measured in this run.", "Step B: not measured in this run.",
        "At step 0 the chain reads the inactive fraction -5.00 points off the truth (-7% of it): the paper's "
        "68 % carries a bias of this relative size if its chain erred as this one does.",
        "Step A: not measured in this run.", "Step B: not measured in this run.",
        "No compressed step: no CC.", "No subvolume study in this run: no ranking."]


def test_each_row_gets_one_sentence_on_what_the_bias_means_for_the_paper():
    # radius: step 0 +0.25 um (+12.5 % -> +12%); to A the chain reads -0.50, the truth -0.25, bias -0.25, the
    # paper -0.30; to B -0.75 vs -0.75, bias +0.00, paper -0.50. Inactive (points): step 0 -5.00 of 75 (-7%);
    # to A -10.00 vs -25.00, bias +15.00, paper -10.00; to B -20.00 vs -25.00, bias +5.00, paper -13.00
    assert claims(paper_rows(_Run(), SCORES)) == [
        "At step 0 the chain reads the mean pore radius +0.25 um off the truth (+12% of it): the paper's 2 um "
        "carries a bias of this relative size if its chain erred as this one does.",
        "From step 0 to step A the chain reads a change of -0.50 um where the truth changes by -0.25 um, so the "
        "chain's bias adds -0.25 um to the change it reports (the paper's change: -0.30 um).",
        "From step 0 to step B the chain reads a change of -0.75 um where the truth changes by -0.75 um, so the "
        "chain's bias adds +0.00 um to the change it reports (the paper's change: -0.50 um).",
        "At step 0 the chain reads the inactive fraction -5.00 points off the truth (-7% of it): the paper's "
        "68 % carries a bias of this relative size if its chain erred as this one does.",
        "From step 0 to step A the chain reads a change of -10.00 points where the truth changes by -25.00 "
        "points, so the chain's bias adds +15.00 points to the change it reports (the paper's change: -10.00 "
        "points).",
        "From step 0 to step B the chain reads a change of -20.00 points where the truth changes by -25.00 "
        "points, so the chain's bias adds +5.00 points to the change it reports (the paper's change: -13.00 "
        "points).",
        "The chain's mean CC at the chosen edge is 0.76 against the paper's 0.81; a mean CC says how alike the "
        "subvolumes stay, not how right their vectors are, so it cannot support the accuracy of the paper's "
        "field by itself.",
        "The chosen edge ranks 2 by mean CC (paper: 2) and 1 by true error: choosing by mean CC does not pick "
        "by accuracy."]


def test_when_the_cc_ranking_and_the_true_error_agree_the_sentence_says_so():
    rows = paper_rows(_Run(), SCORES)
    rank = next(r for r in rows if r["row"] == "cc_rank_chosen_edge")
    rank.update(measured=1, truth=1)
    assert claims([rank]) == ["The chosen edge ranks 1 by mean CC (paper: 2) and 1 by true error: the CC ranking "
                              "and the true error agree."]


def test_a_step_0_without_a_measurement_or_a_truth_is_said_to_be_not_measured():
    rows = paper_rows(_Run(), SCORES)
    for name, column in (("mean_pore_radius_step0", "measured"), ("inactive_fraction_step0", "truth")):
        row = dict(next(r for r in rows if r["row"] == name), **{column: None})
        assert claims([row]) == ["Step 0: not measured in this run."]


def _variant(steps, edges, fields):
    class Variant(_Run):
        def analysis_settings(self):
            return types.SimpleNamespace(subvolumes_voxels=edges, subvolume_voxels=7, voxel_size_um=0.5)

        def dvc(self, k, edge_voxels):
            status, cc = fields[(k, edge_voxels)]
            return {"status": np.array(status), "cc": np.array(cc)}

    Variant.steps = steps
    return Variant()


def test_one_compressed_step_gives_a_mean_cc_and_one_edge_gives_no_rank():
    rows = {r["row"]: r for r in paper_rows(_variant([0, 1], (7,), FIELDS), SCORES)}
    assert rows["mean_cc_chosen_edge"]["measured"] == pytest.approx(0.9, abs=1e-12)   # (0.95 + 0.85) / 2
    assert rows["cc_rank_chosen_edge"]["measured"] is None and rows["cc_rank_chosen_edge"]["truth"] is None


def test_the_chosen_edge_is_not_ranked_where_it_has_no_cc_or_no_true_error():
    fields = dict(FIELDS)
    fields[(1, 7)] = ([M, M], [0.9, 0.9])
    fields[(2, 7)] = ([M], [0.9])
    scores = dict(SCORES, subvolume_study=[{"edge_voxels": 9, "rms_error_voxels": 0.5},
                                           {"edge_voxels": 7, "rms_error_voxels": None}])
    rows = {r["row"]: r for r in paper_rows(_variant([0, 1, 2], (9, 7, 5), fields), scores)}
    assert rows["mean_cc_chosen_edge"]["measured"] is None
    assert rows["cc_rank_chosen_edge"]["measured"] is None and rows["cc_rank_chosen_edge"]["truth"] is None


def test_the_true_rank_counts_the_edges_with_a_lower_error():
    # true errors 0.25 (edge 9), 0.5 (edge 7, chosen), 0.375 (edge 5): two are lower, so the chosen ranks 3
    scores = dict(SCORES, subvolume_study=[{"edge_voxels": 9, "rms_error_voxels": 0.25},
                                           {"edge_voxels": 7, "rms_error_voxels": 0.5},
                                           {"edge_voxels": 5, "rms_error_voxels": 0.375}])
    rows = {r["row"]: r for r in paper_rows(_Run(), scores)}
    assert rows["cc_rank_chosen_edge"]["truth"] == 3 and rows["cc_rank_chosen_edge"]["measured"] == 2


def test_a_row_without_values_does_not_stop_the_sentences_of_the_rows_after_it():
    rows = {r["row"]: r for r in paper_rows(_Run(), SCORES)}
    no_step0 = dict(rows["mean_pore_radius_step0"], measured=None)
    no_cc = dict(rows["mean_cc_chosen_edge"], measured=None)
    half_rank = dict(rows["cc_rank_chosen_edge"], truth=None)       # a CC rank but no true one
    got = claims([no_step0, half_rank, no_cc, rows["cc_rank_chosen_edge"]])
    assert got == ["Step 0: not measured in this run.", "No subvolume study in this run: no ranking.",
                   "No compressed step: no CC.",
                   "The chosen edge ranks 2 by mean CC (paper: 2) and 1 by true error: choosing by mean CC does "
                   "not pick by accuracy."]


def test_two_edges_are_enough_for_a_rank():
    rows = {r["row"]: r for r in paper_rows(_variant([0, 1, 2], (9, 7), FIELDS), SCORES)}
    assert rows["cc_rank_chosen_edge"]["measured"] == 2 and rows["cc_rank_chosen_edge"]["truth"] == 1
    assert rows["cc_rank_chosen_edge"]["quantity"] == ("rank of the chosen edge by mean CC among 2 edges "
                                                       "(paper: among 7)")
