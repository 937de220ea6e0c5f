"""How ``score_run`` puts a run's scores together, on a stand-in run (issue #19).

``score_run``, ``_score_mode`` and ``_score_step`` compute nothing themselves:
they decide which step's DVC field, registration, processed volume, strain
and pore summary each score is made from, under which key of ``scores.json``
and of the node truth it lands, which nodes the strain is scored on (the
DVC's ``ok`` nodes with a finite truth), how the progress is split between
the two modes, which edge of the subvolume study is chosen, and which table
of the paper belongs to which mode and folder. Here every collaborator that
computes is a recorder that returns a value tagged with the mode and step it
was given (``"paper field 2"``, ``"total of paper registration 1 at paper
nodes 1"``), so a value taken from the wrong step, mode or key shows by its
tag, and every expected value is typed from the stand-ins below.
"""

import types
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

import validation.run as run_module
from analysis.phases import Phase
from validation.run import score_run

nan = float("nan")
SHAPE = (10, 12, 14)

# the DVC's four nodes of each compressed step: which it calls ok, and the truth at them (voxels)
FIELD_OK = {1: [True, True, False, True], 2: [False, True, True, True]}
TRUTH_AT_NODES = {1: [[0.5, 0.0, 0.0], [1.0, 0.0, 0.0], [1.5, 0.0, 0.0], [nan, nan, nan]],
                  2: [[2.0, 0.0, 0.0], [nan, 1.0, 1.0], [3.0, 0.0, 0.0], [4.0, 0.0, 0.0]]}
# ok and a finite truth in all three components: step 1 loses node 2 (not ok) and node 3 (no truth),
# step 2 node 0 (not ok) and node 1 (no truth in z)
USABLE = {1: [True, True, False, False], 2: [False, False, True, True]}
DVC_RMS = {1: nan, 2: 0.5}                         # what score_dvc's stand-in reports per step
REGISTRATION_ERROR = {1: 0.125, 2: nan}
# the phases the segmentation's label 0 stands for, as pores/summary.json writes them: the paper's
# binarisation does not tell the CBD from the pores
PORE_PHASES = {"paper": ["pore", "cbd"], "best": ["pore"]}


def _study(*rows):
    """Rows of the subvolume study from (edge voxels, mean CC, RMS error); 0.5 um voxels."""
    return [{"edge_voxels": e, "edge_um": e / 2, "mean_cc": cc, "rms_error_voxels": err, "ok_fraction": 0.5}
            for e, cc, err in rows]


class _Run:
    """Three scans (steps 0, 1, 2) analysed in ``mode``, the chain's folders under ``analysis_folder``.

    Every reader returns a value tagged with the mode and the step; the
    processed volumes read are listed in ``processed_read``.
    """

    path = Path("/runs/tiny")
    scenario = types.SimpleNamespace(name="tiny", seed=7, n_steps=3,
                                     compression=types.SimpleNamespace(steps_um=[0.0, 65.0, 80.0]))
    grid = types.SimpleNamespace(recon_shape=SHAPE)
    steps = [0, 1, 2]

    def __init__(self, mode, analysis_folder, study, study_edges=(9, 5), other=None):
        self.mode, self.study, self._folder, self._other = mode, study, analysis_folder, other
        self.settings = types.SimpleNamespace(mode=mode, study_subvolumes_voxels=study_edges,
                                              describe=lambda: f"{mode} chain")
        self.processed_read = []

    def compared(self):
        return self._other

    def registration(self):
        return [f"{self.mode} registration {k}" for k in range(3)], f"{self.mode} region"

    def analysis_settings(self):
        return self.settings

    def folder(self, stage):
        # only the preprocessing's folder is asked for; the parent is the mode's analysis folder
        return self.path / {"preprocess": f"{self._folder}/preprocess"}[stage]

    def processed(self, k):
        self.processed_read.append(k)
        return f"{self.mode} processed {k}"

    def dvc(self, k, edge_voxels=None):
        if edge_voxels is not None:
            return {"tag": f"{self.mode} field {k} edge {edge_voxels}", "nodes": f"{self.mode} nodes {k} edge {edge_voxels}",
                    "subvolume_voxels": np.int64(edge_voxels)}
        return {"tag": f"{self.mode} field {k}", "nodes": f"{self.mode} nodes {k}", "ok": np.array(FIELD_OK[k]),
                "subvolume_voxels": np.int64(7)}

    def strain(self, k):
        return {"small_strain": f"{self.mode} measured strain {k}", "rotation": f"{self.mode} rotation {k}"}

    def pore_summary(self):
        return [{"pore_phases": PORE_PHASES[self.mode], "mean_pore_radius_um": f"{self.mode} mean radius {k}",
                 "median_pore_radius_um": f"{self.mode} median radius {k}",
                 **{name: f"{self.mode} {name} fraction {k}" for name in ("inactive", "nmc", "pore", "cbd")}}
                for k in self.steps]


class _Truth:
    """A truth frame: the scenario's mode's, or the compared mode's made from it by ``seen_by`` (the same
    truth and grid, the compared mode's registration)."""

    v = 0.5

    def __init__(self, mode, seen, transforms, grid):
        self.mode, self.seen, self.transforms, self.grid = mode, seen, transforms, grid

    def seen_by(self, transforms, region):
        self.seen["seen_by"].append((self.mode, transforms, region))
        return _Truth(region.split()[0], self.seen, transforms, self.grid)

    def prefetch(self, k, node_sets, frames=()):
        self.seen["prefetch"].append((self.mode, k, list(node_sets), [f.mode for f in frames]))

    def registration_error(self, k):
        return {"of": self.transforms[k], "error_voxels": REGISTRATION_ERROR[k]}


@pytest.fixture
def seen(monkeypatch):
    """The collaborators of ``score_run`` replaced by recorders; what each was given, by name."""
    seen = defaultdict(list)

    def truth_frame(run):
        seen["truth_frame"].append(run.mode)
        return _Truth(run.mode, seen, run.registration()[0], f"{run.mode} grid")

    def score_dvc(truth, field, k, shape):
        seen["score_dvc"].append((truth.mode, field["tag"], k, shape))
        stats = {"of": field["tag"], "rms_error_voxels": DVC_RMS[k]}
        return stats, np.array(TRUTH_AT_NODES[k]), f"error of {field['tag']}", f"fragments of {field['tag']}"

    def best_fit(reference, deformed, field, truth_voxels, settings, arch="cpu", *, regions=None):
        seen["best_fit"].append((reference, deformed, field["tag"], truth_voxels, settings.mode, arch))
        seen["best_fit_regions"].append(regions)
        return {"between": f"{reference} and {deformed}"}

    def node_regions(nodes, grid, shape, edge):
        seen["node_regions"].append((nodes, grid, shape, edge))
        return f"regions of {nodes}"

    def total_displacement(transform, nodes, residual):
        seen["total_displacement"].append((transform, nodes, residual))
        return f"total of {transform} at {nodes}"

    def strain_fields(nodes, displacement, ok):
        seen["strain_fields"].append((nodes, displacement, ok.tolist()))
        return {"small_strain": f"strain of ({displacement})", "rotation": "not the strain"}

    def tensor_rms_error(measured, truth, valid=None):
        seen["tensor_rms_error"].append((measured, truth, None if valid is None else valid.tolist()))
        return f"rms of {measured} against {truth}"

    def truth_pores(run, k, settings, arch, pore_phases=(Phase.PORE,)):
        seen["truth_pores"].append((run.mode, k, settings.mode, arch, tuple(pore_phases)))
        m = run.mode
        return (types.SimpleNamespace(mean_radius_um=f"{m} true mean radius {k}",
                                      median_radius_um=f"{m} true median radius {k}"),
                types.SimpleNamespace(**{name: f"{m} true {name} fraction {k}"
                                         for name in ("inactive", "nmc", "pore", "cbd")}))

    def subvolume_study(run, truth, settings, shape):
        seen["subvolume_study"].append((run.mode, truth.mode, settings.mode, shape))
        return run.study

    def paper_rows(run, scores):
        seen["paper_rows"].append((run.mode, scores["analysis_mode"]))
        return f"{run.mode} table"

    for f in (truth_frame, score_dvc, best_fit, node_regions, total_displacement, strain_fields, tensor_rms_error, truth_pores,
              subvolume_study, paper_rows):
        monkeypatch.setattr(run_module, f.__name__, f)
    return seen


def _want_pores(mode, k):
    return {"mean_radius_um": f"{mode} mean radius {k}", "truth_mean_radius_um": f"{mode} true mean radius {k}",
            "median_radius_um": f"{mode} median radius {k}",
            "truth_median_radius_um": f"{mode} true median radius {k}"}


def _want_phases(mode, k):
    return {"inactive_fraction": f"{mode} inactive fraction {k}",
            "truth_inactive_fraction": f"{mode} true inactive fraction {k}",
            "nmc_fraction": f"{mode} nmc fraction {k}", "truth_nmc_fraction": f"{mode} true nmc fraction {k}",
            "pore_fraction": f"{mode} pore fraction {k}", "truth_pore_fraction": f"{mode} true pore fraction {k}",
            "cbd_fraction": f"{mode} cbd fraction {k}", "truth_cbd_fraction": f"{mode} true cbd fraction {k}"}


def _want_scores(mode, study, choice):
    """scores.json of one mode on the stand-ins (NaN already None), the study and its choice given."""
    scores = {
        "scenario": "tiny", "seed": 7, "voxel_size_um": 0.5, "analysis_mode": mode, "chain": f"{mode} chain",
        "steps": [
            {"step": 1, "stage_displacement_um": 65.0,
             "dvc": {"of": f"{mode} field 1", "rms_error_voxels": None,
                     "best_fit": {"between": f"{mode} processed 0 and {mode} processed 1"}},
             "strain": f"rms of {mode} measured strain 1 against strain of (total of {mode} registration 1 at "
                       f"{mode} nodes 1)",
             "registration": {"of": f"{mode} registration 1", "error_voxels": 0.125},
             "pores": _want_pores(mode, 1), "phases": _want_phases(mode, 1)},
            {"step": 2, "stage_displacement_um": 80.0,
             "dvc": {"of": f"{mode} field 2", "rms_error_voxels": 0.5,
                     "best_fit": {"between": f"{mode} processed 0 and {mode} processed 2"}},
             "strain": f"rms of {mode} measured strain 2 against strain of (total of {mode} registration 2 at "
                       f"{mode} nodes 2)",
             "registration": {"of": f"{mode} registration 2", "error_voxels": None},
             "pores": _want_pores(mode, 2), "phases": _want_phases(mode, 2)}],
        "reference": {"step": 0, "pores": _want_pores(mode, 0), "phases": _want_phases(mode, 0)},
        "subvolume_study": study}
    if choice is not None:
        scores["subvolume_choice"] = {"highest_mean_cc_edge_um": choice[0], "lowest_rms_error_edge_um": choice[1]}
    return scores


def _node_sets(mode, k):
    """The nodes and edge of step k's field and of each edge of its study, as the stand-ins tag them."""
    return [(f"{mode} nodes {k}", 7), (f"{mode} nodes {k} edge 9", 9), (f"{mode} nodes {k} edge 5", 5)]


def _want_calls(mode, arch, grid=None):
    """What each recorder is given while one mode is scored (``grid``: its truth's, default the mode's)."""
    pore_phases = {"paper": (Phase.PORE, Phase.CBD), "best": (Phase.PORE,)}[mode]
    grid = grid or f"{mode} grid"
    return {
        "truth_frame": [mode],
        # per step, before it is scored: the nodes and edge of its field and of each edge of the study
        "prefetch": [(mode, k, _node_sets(mode, k), []) for k in (1, 2)],
        "score_dvc": [(mode, f"{mode} field 1", 1, SHAPE), (mode, f"{mode} field 2", 2, SHAPE)],
        # the processed reference and step k's processed volume, step k's field and truth
        "best_fit": [(f"{mode} processed 0", f"{mode} processed {k}", f"{mode} field {k}", TRUTH_AT_NODES[k], mode,
                      arch) for k in (1, 2)],
        # its floor per region: the regions of step k's nodes, with the mode's grid and step k's subvolume edge
        "node_regions": [(f"{mode} nodes {k}", grid, SHAPE, 7) for k in (1, 2)],
        "best_fit_regions": [f"regions of {mode} nodes {k}" for k in (1, 2)],
        # the truth at step k's nodes composed with step k's registration
        "total_displacement": [(f"{mode} registration {k}", f"{mode} nodes {k}", TRUTH_AT_NODES[k]) for k in (1, 2)],
        "strain_fields": [(f"{mode} nodes {k}", f"total of {mode} registration {k} at {mode} nodes {k}", USABLE[k])
                          for k in (1, 2)],
        "tensor_rms_error": [(f"{mode} measured strain {k}",
                              f"strain of (total of {mode} registration {k} at {mode} nodes {k})", USABLE[k])
                             for k in (1, 2)],
        # steps 1 and 2, then the reference, each with the pore phases its summary names
        "truth_pores": [(mode, 1, mode, arch, pore_phases), (mode, 2, mode, arch, pore_phases),
                        (mode, 0, mode, arch, pore_phases)],
        "subvolume_study": [(mode, mode, mode, SHAPE)],
    }


def _want_node_truth(mode):
    return {name: value for k in (1, 2) for name, value in (
        (f"step{k}_displacement_voxels", np.array(TRUTH_AT_NODES[k])),
        (f"step{k}_error_voxels", f"error of {mode} field {k}"),
        (f"step{k}_strain", f"strain of (total of {mode} registration {k} at {mode} nodes {k})"),
        (f"step{k}_fragments", f"fragments of {mode} field {k}"))}


# the scenario's mode: the first edge has no RMS error (NaN), so the second has the lowest
PAPER_STUDY = _study((9, 0.8, nan), (5, 0.6, 0.75))
PAPER_STUDY_JSON = _study((9, 0.8, None), (5, 0.6, 0.75))
BEST_STUDY = _study((9, 0.5, 0.25), (5, 0.7, 0.5))


def test_one_mode_scores_each_step_from_that_steps_data_under_its_keys(seen):
    run = _Run("paper", "analysis", PAPER_STUDY)
    progress = []
    scores, node_truth = score_run(run, arch="gpu", progress=progress.append)

    want = _want_scores("paper", PAPER_STUDY_JSON, (4.5, 2.5))
    want["paper_comparison"] = {"columns": ["paper", "measured", "truth", "measured_minus_truth"], "mode": "paper",
                                "tables": {"paper": {"folder": "analysis", "rows": "paper table"}}}
    assert scores == want
    assert list(scores) == list(want)          # scores.json's order
    np.testing.assert_equal(node_truth, _want_node_truth("paper"))
    calls = _want_calls("paper", "gpu")
    for name in calls:
        np.testing.assert_equal(seen[name], calls[name], err_msg=name)
    assert seen["paper_rows"] == [("paper", "paper")]
    assert run.processed_read == [0, 1, 2]     # the reference once, then each step's volume
    assert progress == pytest.approx([1 / 3, 2 / 3])   # step k of n_steps = 3


def test_the_compared_mode_is_scored_the_same_way_and_each_mode_reports_half_the_progress(seen):
    compared = _Run("best", "analysis-compare", BEST_STUDY)
    run = _Run("paper", "analysis", PAPER_STUDY, other=compared)
    progress = []
    scores, node_truth = score_run(run, arch="gpu", progress=progress.append)

    want = _want_scores("paper", PAPER_STUDY_JSON, (4.5, 2.5))
    want["compared"] = _want_scores("best", BEST_STUDY, (2.5, 4.5))
    want["paper_comparison"] = {"columns": ["paper", "measured", "truth", "measured_minus_truth"], "mode": "paper",
                                "tables": {"paper": {"folder": "analysis", "rows": "paper table"},
                                           "best": {"folder": "analysis-compare", "rows": "best table"}}}
    assert scores == want
    assert list(scores["paper_comparison"]["tables"]) == ["paper", "best"]    # the scenario's mode first
    # the node truth is of the scenario's mode only
    np.testing.assert_equal(node_truth, _want_node_truth("paper"))
    paper, best = _want_calls("paper", "gpu"), _want_calls("best", "gpu", grid="paper grid")
    # one truth, the scenario's; the compared mode sees it through its own registration
    paper["truth_frame"], best["truth_frame"] = ["paper"], []
    assert seen["seen_by"] == [("paper", [f"best registration {k}" for k in range(3)], "best region")]
    # each step's pass is asked for once with the fields of both modes and the compared mode's frame; the
    # compared mode asks again for its own, which that pass holds
    paper["prefetch"] = [("paper", k, _node_sets("paper", k) + _node_sets("best", k), ["best"]) for k in (1, 2)]
    for name in paper:
        np.testing.assert_equal(seen[name], paper[name] + best[name], err_msg=name)
    assert seen["paper_rows"] == [("paper", "paper"), ("best", "best")]
    assert run.processed_read == [0, 1, 2] and compared.processed_read == [0, 1, 2]
    # the scenario's mode fills the first half: (0 + k / 3) / 2, the compared one the second: (1 + k / 3) / 2
    assert progress == pytest.approx([1 / 6, 2 / 6, 4 / 6, 5 / 6])


def test_without_progress_both_modes_are_scored_on_the_cpu_by_default(seen):
    compared = _Run("best", "analysis-compare", BEST_STUDY)
    run = _Run("paper", "analysis", PAPER_STUDY, other=compared)
    scores, _ = score_run(run)
    assert scores["compared"] == _want_scores("best", BEST_STUDY, (2.5, 4.5))
    assert [arch for *_, arch in seen["best_fit"]] == ["cpu"] * 4                 # two steps, two modes
    assert [arch for _, _, _, arch, _ in seen["truth_pores"]] == ["cpu"] * 6       # and the references


@pytest.mark.parametrize("study, choice", [
    # a NaN mean CC first: max would keep it; it may still have the lowest error
    (_study((13, nan, 0.25), (11, 0.6, 0.5), (9, 0.9, 0.75), (7, 0.7, 1.0)), (4.5, 6.5)),
    # a NaN error first: min would keep it; a NaN mean CC later is never taken either
    (_study((13, 0.5, nan), (11, nan, 0.75), (9, 0.9, 0.25), (7, 0.95, 0.5)), (3.5, 4.5)),
    # every CC negative: a NaN one still ranks below all of them
    (_study((13, nan, 2.0), (11, -0.5, 1.0), (9, -0.9, 0.5)), (5.5, 4.5)),
])
def test_the_chosen_edges_have_the_highest_mean_cc_and_the_lowest_error_and_never_a_nan(seen, study, choice):
    scores, _ = score_run(_Run("paper", "analysis", study))
    assert scores["subvolume_choice"] == {"highest_mean_cc_edge_um": choice[0], "lowest_rms_error_edge_um": choice[1]}
    # the study as written, its NaNs as None (NaN is the one value not equal to itself)
    assert scores["subvolume_study"] == [{k: None if v != v else v for k, v in row.items()} for row in study]


def test_without_a_study_there_is_no_choice(seen):
    scores, _ = score_run(_Run("paper", "analysis", PAPER_STUDY, study_edges=()))
    assert scores["subvolume_study"] == [] and "subvolume_choice" not in scores
    assert seen["subvolume_study"] == []       # not even run
    # a study asked for that gave no rows chooses nothing either
    scores, _ = score_run(_Run("paper", "analysis", [], study_edges=(9, 5)))
    assert scores["subvolume_study"] == [] and "subvolume_choice" not in scores
    assert seen["subvolume_study"] == [("paper", "paper", "paper", SHAPE)]
