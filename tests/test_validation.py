"""Validation on the tiny run: scores are honest and the truth frame is right."""

import json

import numpy as np

from synthcal.dataset import load_run
from validation.frame import score_dvc, truth_frame


def _field_and_truth(run_dir):
    run = load_run(run_dir)
    return truth_frame(run), run.dvc(1), run.processed(0).shape


def test_perfect_result_scores_zero_and_shifted_scores_the_shift(tiny_run):
    run, _ = tiny_run
    truth, field, shape = _field_and_truth(run)
    _, _, combined = truth.dvc_truth(field["nodes"], 1, int(field["subvolume_voxels"]))
    perfect = dict(field, residual_displacement_vox=combined)
    stats, _, _, _ = score_dvc(truth, perfect, 1, shape)
    assert stats["scored_nodes"] > 10
    assert stats["rms_error_voxels"] < 1e-12
    shift = np.array([0.3, -0.4, 0.0])
    stats, _, _, _ = score_dvc(truth, dict(field, residual_displacement_vox=combined + shift), 1, shape)
    assert np.isclose(stats["rms_error_voxels"], 0.5, atol=1e-9)
    assert np.allclose(stats["bias_voxels"], shift, atol=1e-9)


def test_truth_frame_agrees_with_the_measurement(tiny_run):
    """A wrong frame (registration or drift not undone) shows as an error the size of
    the drift (0.5-0.8 voxel here); the right one leaves only the DVC's own error."""
    run, _ = tiny_run
    scores = json.loads((run / "validation" / "scores.json").read_text())
    for step in scores["steps"]:
        assert step["dvc"]["median_error_voxels"] < 0.35
        assert step["registration"]["error_voxels"] < 0.2
        drift = np.linalg.norm(step["registration"]["drift_voxels"])
        assert step["dvc"]["median_error_voxels"] < 0.6 * drift
        # started at the truth, the fit stays there where the images hold the motion (tiny's strain is small)
        best = step["dvc"]["best_fit"]
        assert best["started_nodes"] >= step["dvc"]["scored_nodes"] and best["ok_fraction"] > 0.8
        assert best["median_error_voxels"] < 0.35


def test_scores_schema(tiny_run):
    run, _ = tiny_run
    scores = json.loads((run / "validation" / "scores.json").read_text())
    assert scores["scenario"] == "tiny" and len(scores["steps"]) == 2
    for step in scores["steps"]:
        assert {"rms_error_um", "rms_error_voxels", "median_error_voxels", "ok_fraction", "median_cc",
                "nodes"} <= set(step["dvc"])
        assert "rms_error" in step["strain"]
        assert {"mean_radius_um", "truth_mean_radius_um"} <= set(step["pores"])
        assert {"inactive_fraction", "truth_inactive_fraction"} <= set(step["phases"])
        assert 0 <= step["phases"]["truth_inactive_fraction"] <= 1
    for row in scores["subvolume_study"]:
        assert {"edge_um", "mean_cc", "rms_error_voxels"} <= set(row)
