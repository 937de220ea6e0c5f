"""Shared fixtures: one tiny run for every test that needs a whole run folder, the taichi arch,
and a check that a computation gives the same bytes in a fresh process.

Tests that take the ``arch`` fixture run their kernels on the backend named
by ``SYNTHCAL_TEST_ARCH`` (``cpu`` unless set; ``gpu`` needs CUDA). They are
marked ``takes_arch``, so ``SYNTHCAL_TEST_ARCH=gpu pytest -m takes_arch``
runs them, and only them, on the GPU (``benchmarks/gpu_check.sh`` does).
"""

import hashlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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


@pytest.fixture
def pretend_gpu(monkeypatch):
    """A call that makes the code take its GPU paths on taichi's CPU runtime, for the rest of the test.

    After it, ``ensure_taichi("gpu")`` finds "gpu" already set up (a taichi
    ndarray lives on either runtime), and initialising taichi again fails the
    test: on a GPU that would drop every array uploaded so far, so it means
    some call lost its ``arch="gpu"``.
    """
    import taichi as ti

    import analysis._taichi as taichi_setup

    def no_init(*args, **kwargs):
        raise AssertionError("taichi was initialised again: some call dropped arch='gpu'")

    def pretend():
        taichi_setup.ensure_taichi("cpu")
        monkeypatch.setattr(taichi_setup, "_ARCH", "gpu")
        monkeypatch.setattr(ti, "init", no_init)

    return pretend


def digest(arrays):
    """sha256 of a sequence of arrays: dtype, shape and bytes of each, in order."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


_CHILD = """
import importlib.util, sys
sys.path.insert(0, sys.argv[1])
from conftest import digest
spec = importlib.util.spec_from_file_location("_bytes_case", sys.argv[2])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print("digest:", digest(getattr(module, sys.argv[3])()))
"""


def digest_in_fresh_process(func, timeout=300):
    """:func:`digest` of ``func()`` computed by a new Python process.

    ``func`` is a module-level function of a test module, taking no argument and
    returning a sequence of arrays. The child has another hash seed than this
    process, its own taichi runtime and its own process id, so a result that
    depends on ``hash()``, the clock, the process or an unseeded generator
    differs from the one computed here, where two calls in one process would agree.
    """
    env = dict(os.environ)
    ours = os.environ.get("PYTHONHASHSEED", "")
    env["PYTHONHASHSEED"] = str(int(ours) + 1) if ours.isdigit() and int(ours) < 4294967295 else "1"
    source = inspect.getsourcefile(func)
    result = subprocess.run([sys.executable, "-c", _CHILD, str(Path(__file__).parent), source, func.__name__],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("digest: ")]
    assert len(lines) == 1, result.stdout[-3000:]
    return lines[0].split()[1]


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
