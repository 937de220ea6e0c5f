"""A run from the outside: load_run, the dense truth, scoring other codes' DVC files."""

import json

import numpy as np
import pytest

from conftest import run_synthcal
from synthcal.dataset import load_run
from validation.dvc_files import read_dvc_result, score_file, write_spam_tsv


def _same(a, b, path="dvc"):
    """Nested scores agree to 1e-9 (None where not finite)."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for key in a:
            _same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and b is not None:
        assert abs(a - b) <= 1e-9 * max(1.0, abs(b)), (path, a, b)
    else:
        assert a == b, (path, a, b)


def _result_scores(dvc):
    """scores.json's DVC block less ``best_fit``, which scores the images at the chain's nodes (the fit
    from the truth), not the result: scoring a result file does not recompute it."""
    return {key: value for key, value in dvc.items() if key != "best_fit"}


def test_load_run_opens_every_output_lazily(tiny_run):
    run = load_run(tiny_run[0])
    assert run.voxel_size_um == 0.4 and run.steps == [0, 1, 2]
    shape = run.grid.recon_shape
    for k in run.steps:
        assert run.volume(k).shape == shape and run.volume(k).dtype == np.float32
        assert run.labels(k).shape == shape and run.segmentation(k).shape == shape
    counts, flats, darks = run.projections(1)
    assert counts.shape[1:] == (shape[0], shape[2])
    with pytest.raises(ValueError, match="not a run folder"):
        load_run(tiny_run[0] / "dem")


def test_truth_at_the_dvc_nodes_is_what_the_scores_used(tiny_run):
    run = load_run(tiny_run[0])
    node_truth = run.node_truth()
    for k in run.steps[1:]:
        field = run.dvc(k)
        truth = run.truth_at(k, field["nodes"], rule="particle", edge_voxels=int(field["subvolume_voxels"]),
                             registered=True)
        np.testing.assert_array_equal(truth, node_truth[f"step{k}_displacement_voxels"])


def test_dense_truth_opens_with_zarr_alone_and_agrees_with_the_point_truth(tiny_run):
    import zarr

    run = load_run(tiny_run[0])
    array = zarr.open_array(str(run.folder("phantom") / "step2_displacement.zarr"), mode="r")
    assert array.attrs["voxel_size_um"] == 0.4 and array.attrs["axes"] == "c z y x"
    dense = array[...]
    assert dense.shape == (3, *run.grid.recon_shape)
    nodes = run.dvc(2)["nodes"]
    at_nodes = dense[:, nodes[:, 0], nodes[:, 1], nodes[:, 2]].T
    points = run.truth_at(2, nodes, rule="particle")   # scan frame, NaN in pores
    both = np.all(np.isfinite(points), axis=1) & np.all(np.isfinite(at_nodes), axis=1)
    assert both.sum() > 20
    # the dense field is float32: a few 1e-6 voxel apart from the float64 point truth
    np.testing.assert_allclose(at_nodes[both], points[both], atol=1e-4)
    # pores are NaN in both, and the drift is in the scan frame: the registered frame takes it out again
    assert np.array_equal(np.isnan(at_nodes[:, 0]), np.isnan(points[:, 0]))
    registered = run.displacement(2, registered=True)[:, nodes[:, 0], nodes[:, 1], nodes[:, 2]].T
    np.testing.assert_allclose(registered[both], run.truth_at(2, nodes, registered=True)[both], atol=1e-4)


@pytest.mark.parametrize("fmt", ["npz", "csv", "spam"])
def test_own_dvc_in_each_format_scores_like_scores_json(tiny_run, tmp_path, fmt):
    run = load_run(tiny_run[0])
    scores = run.scores()
    for k in run.steps[1:]:
        if fmt == "npz":
            path = run.folder("dvc") / f"step{k}.npz"
        elif fmt == "csv":
            path = run.folder("dvc") / f"step{k}.csv"
        else:
            path = tmp_path / f"step{k}.tsv"
            write_spam_tsv(path, run.dvc(k), run.registration()[0][k])
        _same(score_file(run, k, path), _result_scores(scores["steps"][k - 1]["dvc"]))


def test_cli_score_and_export(tiny_run, tmp_path):
    run_dir = tiny_run[0]
    export = tmp_path / "spam"
    result = run_synthcal("export", str(run_dir), "--format", "spam", "--out", str(export))
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in export.iterdir()) == ["step0.tif", "step1.tif", "step2.tif",
                                                      "synthcal-ldic-step1.tsv", "synthcal-ldic-step2.tsv"]
    header = (export / "synthcal-ldic-step1.tsv").read_text().splitlines()[0].split("\t")
    assert header[:4] == ["NodeNumber", "Zpos", "Ypos", "Xpos"] and "returnStatus" in header
    out = tmp_path / "scores"
    result = run_synthcal("score", str(run_dir), "--dvc", f"1={export / 'synthcal-ldic-step1.tsv'}",
                          "--dvc", f"2={run_dir / 'analysis' / 'dvc' / 'step2.npz'}", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    summary = [line for line in result.stdout.splitlines() if line.startswith("step ")]  # taichi prints a banner
    assert len(summary) == 2 and all("RMS error" in line for line in summary)
    block = json.loads((out / "step1.json").read_text())
    _same(block, _result_scores(load_run(run_dir).scores()["steps"][0]["dvc"]))


@pytest.mark.parametrize("text, expected", [
    ("z,y,x,uz,uy\n1,2,3,0,0\n", "expected a column ux"),
    ("z,y,x,uz,uy,ux\n1,2,3,0,0,0\n4,5,6,0,zero,0\n", "line 3: expected numbers"),
    ("z,y,x,uz,uy,ux\n1,2,3,0,0,0\n4,5,6,0,0\n", "line 3: expected 6 values"),
    ("# only a comment\n", "empty"),
])
def test_bad_result_files_are_one_line_naming_the_line(tmp_path, text, expected):
    path = tmp_path / "result.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        read_dvc_result(path)
    message = str(info.value)
    assert "\n" not in message and expected in message and "result.csv" in message


def test_cli_score_bad_file_is_one_line(tiny_run, tmp_path):
    path = tmp_path / "result.csv"
    path.write_text("z,y,x,uz,uy,ux\n1,2,3,0,0,0\n4,5,6,0,zero,0\n")
    result = run_synthcal("score", str(tiny_run[0]), "--dvc", f"1={path}", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "line 3" in result.stderr
