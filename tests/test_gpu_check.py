"""benchmarks/gpu_check.sh without a GPU, and the comparisons it runs on one (benchmarks/gpu_compare.py)."""

import os
import re
import shutil
import subprocess
import sys

import numpy as np

from analysis.io import read_volume, write_volume
from synthcal import pipeline

from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
COMPARE = ROOT / "benchmarks" / "gpu_compare.py"


def _check(tmp_path, gpu_lister):
    # no CUDA device is visible, whatever the machine has
    env = {**os.environ, "NVIDIA_SMI": gpu_lister, "PYTHON": sys.executable, "WORK": str(tmp_path / "work"),
           "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=300)


def test_without_a_gpu_the_check_says_so_in_one_line_and_passes(tmp_path):
    result = _check(tmp_path, "false")  # a GPU lister that finds none
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == ["gpu_check: no CUDA GPU here (false -L lists none); nothing to check"]
    assert not (tmp_path / "work").exists()


def test_a_gpu_that_taichi_cannot_use_fails_the_check_with_its_table(tmp_path):
    result = _check(tmp_path, "true")  # a GPU lister that claims one
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("taichi starts on the GPU") and line.rstrip().endswith("FAIL") for line in lines)
    assert lines[-1] == "0 ok, 1 failed"


def _compare(tmp_path, *args):
    return subprocess.run([sys.executable, str(COMPARE), "--table", str(tmp_path / "t.tsv"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_identical_runs_pass_every_comparison(tiny_run, tmp_path):
    run = tiny_run[0]
    assert _compare(tmp_path, "compare-runs", str(run), str(run)).returncode == 0
    assert _compare(tmp_path, "dem-sanity", str(run), str(run)).returncode == 0
    result = _compare(tmp_path, "table")
    # phantom 2, reconstruction 1, registration 2, DVC 2 and scores 3 per compressed step (2), DEM 3
    assert result.returncode == 0 and result.stdout.strip().splitlines()[-1] == "18 ok, 0 failed", result.stdout


def test_a_reconstruction_off_by_a_percent_fails_its_row(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run[0], copy)
    volume, v = read_volume(copy / "volumes" / "step1.tif")
    noise = np.random.default_rng(0).standard_normal(volume.shape).astype(np.float32)
    write_volume(copy / "volumes" / "step1.tif", volume + 0.01 * np.sqrt(np.mean(volume ** 2)) * noise, v)
    assert _compare(tmp_path, "compare-runs", str(tiny_run[0]), str(copy)).returncode == 0
    result = _compare(tmp_path, "table")
    failed = [line for line in result.stdout.splitlines() if line.rstrip().endswith("FAIL")]
    assert result.returncode == 1 and len(failed) == 1 and failed[0].startswith("reconstruction"), result.stdout


def test_stage_times_come_from_the_stamps(tiny_run, tmp_path):
    assert _compare(tmp_path, "stage-times", str(tiny_run[0]), "tiny:").returncode == 0
    rows = (tmp_path / "t.tsv").read_text().splitlines()
    assert len(rows) == len(pipeline.STAGES)
    dem = pipeline.read_stamp(tiny_run[0] / "dem")["wall_time_s"]
    assert rows[0].split("\t")[:2] == ["time: tiny: dem", f"{dem:.1f} s"]


def test_the_kernel_tests_take_their_arch_from_the_environment():
    def collect(arch):
        env = {**os.environ, "SYNTHCAL_TEST_ARCH": arch}
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
                               "-m", "takes_arch", "tests/test_projector.py", "tests/test_pores.py"],
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)

    listed = collect("cpu")
    names = [line for line in listed.stdout.splitlines() if "::" in line]
    assert listed.returncode == 0 and len(names) == 8, listed.stdout  # 3 projector tests, 1 + 4 CPSD tests
    assert all(re.search(r"::test_(ball|truncated|adjointness|mean_radius_of_disjoint|single_sphere)", n) for n in names)
    wrong = collect("tpu")
    assert wrong.returncode == 4 and "SYNTHCAL_TEST_ARCH: expected one of cpu, gpu, got 'tpu'" in wrong.stderr
