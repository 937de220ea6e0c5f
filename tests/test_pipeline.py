"""The tiny scenario end to end: every stage, cache, resume after a kill, same bytes."""

import dataclasses
import hashlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthcal import pipeline, scenario as sc
from synthcal.stages import STAGES

from conftest import ROOT, TINY, run_synthcal as _synthcal


def _digest(run_dir):
    """Hash of every file in a run folder, by relative path."""
    out = {}
    for path in sorted(Path(run_dir).rglob("*")):
        if path.is_file():
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


def test_unknown_stage_is_one_line_error():
    result = _synthcal("run", str(TINY), "--only", "nonsense")
    assert result.returncode == 2 and "Traceback" not in result.stderr
