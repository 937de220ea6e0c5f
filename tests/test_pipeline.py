"""The tiny scenario end to end: every stage, cache, resume after a kill, same bytes."""

import dataclasses
import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from synthcal import pipeline, scenario as sc
from synthcal.stages import STAGES

from conftest import ROOT, TINY, run_synthcal as _synthcal


def _digest(run_dir):
    """Hash of every file in a run folder, by relative path; a stage stamp without its wall time."""
    out = {}
    for path in sorted(Path(run_dir).rglob("*")):
        if path.name == pipeline.STAMP:
            stamp = json.loads(path.read_text())
            assert stamp.pop("wall_time_s") >= 0
            out[str(path.relative_to(run_dir))] = stamp
        elif path.is_file():
            out[str(path.relative_to(run_dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_every_stage_runs(tiny_run):
    out, result = tiny_run
    for stage in STAGES:
        folder = out / stage.folder
        assert (folder / pipeline.STAMP).is_file(), f"{stage.name} did not complete:\n{result.stderr[-2000:]}"
    assert (out / "scenario.toml").is_file()
    assert (out / "validation" / "scores.json").is_file()
    assert "report:" in result.stdout


def test_rerun_is_cached(tiny_run):
    out, _ = tiny_run
    before = _digest(out)
    start = time.monotonic()
    result = _synthcal("run", str(TINY), "--out", str(out))
    assert result.returncode == 0
    assert result.stderr.count("cached") == len(STAGES)
    assert time.monotonic() - start < 60
    assert _digest(out) == before


def test_same_seed_same_bytes_and_resume_after_kill(tiny_run, tmp_path):
    reference, _ = tiny_run
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "synthcal.cli", "run", str(TINY), "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (out / "truth" / pipeline.STAMP).exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # A killed run leaves whole stage folders or none: every folder there is stamped.
    for stage in STAGES:
        folder = out / stage.folder
        if folder.exists():
            assert (folder / pipeline.STAMP).is_file(), stage.name
    result = _synthcal("run", str(TINY), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[dem] cached" in result.stderr
    assert not list(out.rglob("*.partial")), "a resumed run leaves no temporary folders"
    assert _digest(out) == _digest(reference)


def test_changed_section_reruns_only_downstream(tiny_run, tmp_path):
    reference, _ = tiny_run
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    s = sc.load(TINY)
    changed = dataclasses.replace(s, pores=dataclasses.replace(s.pores, edge_exclusion_um=0.0))
    messages = []
    outcome = pipeline.run(changed, out, log=messages.append)
    assert outcome["dem"] == "cached" and outcome["dvc"] == "cached"
    assert outcome["pores"] == "ran" and outcome["score"] == "ran" and outcome["report"] == "ran"


def _keys_after_edit(tmp_path, relative_file, old, new):
    """Stage keys of the tiny scenario on a copy of the source tree, before and after one edit."""
    root = tmp_path / "src"
    for package in pipeline.PACKAGES:
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    s = sc.load(TINY)
    before = pipeline.stage_keys(s, root)
    path = root / relative_file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    pipeline.code_hash.cache_clear()
    return before, pipeline.stage_keys(s, root)


def test_editing_the_phantom_code_reruns_it_and_everything_downstream(tmp_path):
    before, after = _keys_after_edit(tmp_path, "synthcal/phantom.py", "MAX_CANDIDATES = 12", "MAX_CANDIDATES = 13")
    names = [stage.name for stage in STAGES]
    changed = [n for n in names if before[n] != after[n]]
    assert changed == names[names.index("phantom"):]


def test_editing_the_dvc_code_keeps_the_simulation_cached(tmp_path):
    before, after = _keys_after_edit(tmp_path, "analysis/dvc/local.py", "def correlate(", "def correlate(  ")
    for name in ("dem", "phantom", "projections", "reconstruct"):
        assert before[name] == after[name], name
    # the chain's stages share analysis.chain, which imports the DVC: all of them rerun
    for name in ("preprocess", "dvc", "strain", "pores", "score", "report"):
        assert before[name] != after[name], name


def test_until_stops_after_the_stage_and_set_overrides_a_key(tmp_path):
    out = tmp_path / "run"
    result = _synthcal("run", str(TINY), "--out", str(out), "--until", "dem", "--set", "seed=5",
                       "--set", "compression.steps_um=[0.0, 0.5]", "--set", "imaging.drift_um=[]")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "dem" / pipeline.STAMP).is_file() and not (out / "truth").exists()
    resolved = sc.load(out / "scenario.toml")
    assert resolved.seed == 5 and resolved.compression.steps_um == [0.0, 0.5]
    assert len(list((out / "dem").glob("step_*.npz"))) == 2


@pytest.mark.parametrize("assignment, expected", [
    ("dvc.subvolum_um=6", "subvolume_um"),           # typo: the closest key is suggested
    ("dvc.subvolume_um=-1", "expected > 0"),
    ("imaging.drift_um=[[0, 0, 0]]", "drift_um"),      # a cross-field rule, as in a file
    ("nonsense", "section.key=value"),
])
def test_bad_set_is_one_line_error(assignment, expected):
    result = _synthcal("run", str(TINY), "--set", assignment, "--until", "dem")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_report_false_skips_the_report(tiny_run, tmp_path):
    reference, _ = tiny_run
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    shutil.rmtree(out / "report")
    outcome = pipeline.run(sc.with_overrides(sc.load(TINY), ["validation.report=false"]), out, log=lambda m: None)
    assert outcome["score"] == "cached" and outcome["report"] == "not run"
    assert not (out / "report").exists()


def test_unknown_stage_is_one_line_error():
    result = _synthcal("run", str(TINY), "--only", "nonsense")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def _vtk_block(data, header, n, width):
    start = data.index(header) + len(header)
    return np.frombuffer(data[start:start + 4 * n * width], ">f4").reshape(n, width)


def test_failed_nodes_stay_nan_in_every_output_with_their_status(tiny_run):
    out, _ = tiny_run
    field = np.load(out / "analysis" / "dvc" / "step2.npz")
    failed = ~field["ok"]
    assert failed.any() and field["ok"].any(), "the tiny run should have both kinds of node"
    for key in ("displacement_vox", "displacement_um", "residual_displacement_vox"):
        assert np.all(np.isnan(field[key][failed])) and np.all(np.isfinite(field[key][~failed])), key
    assert np.all(np.isnan(np.load(out / "analysis" / "strain" / "step2.npz")["small_strain"][failed]))
    table = np.loadtxt(out / "analysis" / "strain" / "step2.csv", delimiter=",", skiprows=1)
    assert np.all(np.isnan(table[failed, 3:]))
    n = len(failed)
    data = (out / "analysis" / "dvc" / "step2.vtk").read_bytes()
    vectors = _vtk_block(data, b"VECTORS displacement_um float\n", n, 3)
    assert np.all(np.isnan(vectors[failed])) and np.all(np.isfinite(vectors[~failed]))
    status = _vtk_block(data, b"SCALARS status float 1\nLOOKUP_TABLE default\n", n, 1)[:, 0]
    assert np.array_equal(status, field["status"].astype(np.float32))


def test_a_failed_stage_is_one_line_error(monkeypatch, capsys, tmp_path):
    """A stage that fails at run time (the DEM blowing up) ends the command with one line, not a traceback."""
    from synthcal import cli

    def blow_up(*args, **kwargs):
        raise RuntimeError("DEM blew up during compression step 1: particles left the domain")

    monkeypatch.setattr(pipeline, "run", blow_up)
    assert cli.main(["run", str(TINY), "--out", str(tmp_path / "run")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == "synthcal: error: DEM blew up during compression step 1: particles left the domain"
    assert "Traceback" not in "\n".join(lines)
