"""Shared fixtures: one tiny run for every test that needs a whole run folder, and the taichi arch.

Tests that take the ``arch`` fixture run their kernels on the backend named
by ``SYNTHCAL_TEST_ARCH`` (``cpu`` unless set; ``gpu`` needs CUDA). They are
marked ``takes_arch``, so ``SYNTHCAL_TEST_ARCH=gpu pytest -m takes_arch``
runs them, and only them, on the GPU (``benchmarks/gpu_check.sh`` does).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "scenarios" / "tiny.toml"
ARCHES = ("cpu", "gpu")


def arch_from_environment():
    """``SYNTHCAL_TEST_ARCH`` (default ``cpu``), checked."""
    arch = os.environ.get("SYNTHCAL_TEST_ARCH", "") or "cpu"
    if arch not in ARCHES:
        raise pytest.UsageError(f"SYNTHCAL_TEST_ARCH: expected one of {', '.join(ARCHES)}, got {arch!r}")
    return arch


def pytest_configure(config):
    arch_from_environment()
    config.addinivalue_line("markers", "takes_arch: runs its kernels on SYNTHCAL_TEST_ARCH (cpu or gpu)")


def pytest_collection_modifyitems(items):
    for item in items:
        if "arch" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.takes_arch)


@pytest.fixture(scope="session")
def arch():
    """The taichi backend of this test session (``SYNTHCAL_TEST_ARCH``)."""
    return arch_from_environment()


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
