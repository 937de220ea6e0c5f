"""Shared fixtures: one tiny run for every test that needs a whole run folder."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "scenarios" / "tiny.toml"


def run_synthcal(*args, timeout=600):
    """The ``synthcal`` command in a subprocess, from the repository root."""
    return subprocess.run([sys.executable, "-m", "synthcal.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """Run folder of ``scenarios/tiny.toml`` and the CLI's result."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    result = run_synthcal("run", str(TINY), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.fixture(scope="session")
def tiny_report(tiny_run):
    return tiny_run[0] / "report"
