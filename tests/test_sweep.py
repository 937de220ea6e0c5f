"""synthcal sweep: many tiny runs on Dask, one table, resumable after a kill, not slower than one by one."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from synthcal import pipeline, sweep as sw
from synthcal.dataset import load_run
from synthcal.scenario import load, with_overrides
from synthcal.stages import STAGES

from conftest import ROOT, TINY, run_synthcal
from test_report import check_in_browser


def _write_sweep(folder, body, name="sweep.toml"):
    """A sweep file in ``folder`` on the tiny scenario (``base`` relative to the file, as users write it)."""
    path = Path(folder) / name
    path.write_text(f'base = "{os.path.relpath(TINY, folder)}"\n{body}', encoding="utf-8")
    return path


def _kill_group(pgid):
    """SIGKILL a process group and wait until none of its processes is left."""
    os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                left.append(stat.parent.name)
        if not left:
            return
        time.sleep(0.2)
    raise AssertionError(f"processes of group {pgid} still alive: {left}")


def _stamps(runs_dir):
    """Every stage stamp under ``runs_dir``: path -> (inode, mtime in ns)."""
    return {str(p.relative_to(runs_dir)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in Path(runs_dir).rglob(pipeline.STAMP)}


# --- the sweep file ---------------------------------------------------------------

@pytest.mark.parametrize("body, needle", [
    ("seed = [1, 2]\n", "seed: unknown key (did you mean 'seeds'?)"),
    ("seeds = [1]\n[grid]\n", "[grid]: empty"),
    ('[grid]\n"dvc.subvolum_um" = [3.2]\n', "[grid] dvc.subvolum_um = 3.2: [dvc] subvolum_um: unknown key "
                                             "(did you mean 'subvolume_um'?)"),
    ('[grid]\n"dvc.subvolume_um" = [3.2, -1.0]\n', "[grid] dvc.subvolume_um = -1.0: [dvc] subvolume_um: expected > 0"),
    ('[grid]\n"dvc.subvolume_um" = []\n', "[grid] dvc.subvolume_um: expected a non-empty list"),
    ('[grid]\n"dvc.subvolume_um" = [3.2, 3.2]\n', "[grid] dvc.subvolume_um: value 3.2 is listed twice"),
    ('[grid]\n"nonsense" = [1]\n', "[grid] nonsense = 1: nonsense: unknown key"),
    ('[grid]\n"imaging.field_of_view_um" = [2.0]\n', "field_of_view_um: expected at least 16 voxels"),
    ('stop_after = "scores"\nseeds = [1]\n', "stop_after: expected a stage"),
    ("seeds = []\n", "seeds: expected a non-empty list"),
    ("seeds = [-1]\n", "seed = -1: seed: expected >= 0"),
    ("seeds = [1, 2, 1]\n", "seeds: a seed is listed twice"),
    ('[random]\n"imaging.psf_sigma_px" = {uniform = [0.5, 1.0]}\n', "[random] samples: expected a whole number"),
    ('[random]\nsamples = 2\n"imaging.psf_sigma_px" = {normal = [0.5, 1.0]}\n',
     "[random] imaging.psf_sigma_px: expected one of {uniform = [lo, hi]}"),
    ('[random]\nsamples = 2\n"imaging.psf_sigma_px" = {uniform = [1.0, 0.5]}\n',
     "uniform expected [lo, hi] with lo <= hi"),
    ('[random]\nsamples = 2\n"imaging.n_flats" = {uniform = [5, 10]}\n', "[imaging] n_flats: expected an integer"),
    ("", "nothing to sweep"),
])
def test_sweep_file_errors_are_one_line_naming_the_file_and_the_key(tmp_path, body, needle):
    path = _write_sweep(tmp_path, body)
    with pytest.raises(sw.SweepError) as error:
        sw.load_sweep(path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: ") and needle in message, message


def test_a_sweep_file_without_base_or_missing_is_one_line(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text("seeds = [1]\n")
    with pytest.raises(sw.SweepError, match=r"base: expected the base scenario file"):
        sw.load_sweep(path)
    with pytest.raises(sw.SweepError, match="no such sweep file"):
        sw.load_sweep(tmp_path / "missing.toml")


def test_bad_sweep_file_on_the_command_line_is_one_line(tmp_path):
    path = _write_sweep(tmp_path, '[grid]\n"dvc.subvolume_um" = [0.0]\n')
    result = run_synthcal("sweep", str(path), "--out", str(tmp_path / "out"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(path) in lines[0] and "dvc.subvolume_um" in lines[0] and "expected > 0" in lines[0]
    assert not (tmp_path / "out").exists()


def test_runs_are_seeds_times_grid_times_draws_and_reproduce_with_set(tmp_path):
    body = ('seeds = [3, 4]\n[grid]\n"dvc.subvolume_um" = [3.2, 4.0]\n"reconstruction.filter" = ["ramp", "hann"]\n'
            '[random]\nsamples = 5\nseed = 7\n"imaging.incident_counts" = {uniform = [1000.0, 2000.0]}\n'
            '"imaging.psf_sigma_px" = {loguniform = [0.1, 10.0]}\n"imaging.n_flats" = {integers = [5, 6]}\n'
            '"imaging.ring_gain_sigma" = {choice = [0.0, 0.01]}\n')
    s = sw.load_sweep(_write_sweep(tmp_path, body))
    assert len(s.runs) == 2 * 2 * 2 * 5 and len({r.name for r in s.runs}) == len(s.runs)
    assert s.parameters == ("seed", "dvc.subvolume_um", "reconstruction.filter", "imaging.incident_counts",
                            "imaging.psf_sigma_px", "imaging.n_flats", "imaging.ring_gain_sigma")
    base = load(TINY)
    for run in s.runs:
        # what synthcal run --set would do with the same assignments
        assert with_overrides(base, run.overrides) == run.scenario
        p = run.parameters
        assert run.scenario.seed == p["seed"] and run.scenario.dvc.subvolume_um == p["dvc.subvolume_um"]
        assert 1000.0 <= p["imaging.incident_counts"] <= 2000.0 and 0.1 <= p["imaging.psf_sigma_px"] <= 10.0
        assert p["imaging.n_flats"] in (5, 6) and p["imaging.ring_gain_sigma"] in (0.0, 0.01)
    draws = [tuple(r.parameters[k] for k in s.parameters[3:]) for r in s.runs]
    assert len(set(draws)) == 5  # five draws, each combined with every seed and grid point
    again = sw.load_sweep(_write_sweep(tmp_path, body))
    assert [r.name for r in again.runs] == [r.name for r in s.runs]
    other = sw.load_sweep(_write_sweep(tmp_path, body.replace("seed = 7", "seed = 8"), "other.toml"))
    assert [r.parameters for r in other.runs] != [r.parameters for r in s.runs]


def test_integer_and_choice_draws_cover_their_whole_range(tmp_path):
    # 60 draws from two values: the chance that one value never comes is 2 * 0.5**60
    body = ('[random]\nsamples = 60\n"imaging.n_flats" = {integers = [5, 6]}\n'
            '"reconstruction.filter" = {choice = ["ramp", "hann"]}\n')
    s = sw.load_sweep(_write_sweep(tmp_path, body))
    assert {r.parameters["imaging.n_flats"] for r in s.runs} == {5, 6}
    assert {r.parameters["reconstruction.filter"] for r in s.runs} == {"ramp", "hann"}
    # a draw that comes again is the same run: once in the sweep
    assert len(s.runs) == len({tuple(r.parameters.values()) for r in s.runs}) == 60 - s.repeated_draws <= 4


@pytest.mark.parametrize("workers, expected", [
    ({0: ("h", [0, 1]), 1: ("h", [0, 1])}, {0: [0], 1: [1]}),
    ({"a": ("h", range(8)), "b": ("h", range(8)), "c": ("h", range(8))}, {"a": [0, 1, 2], "b": [3, 4, 5], "c": [6, 7]}),
    ({0: ("h", [0, 1]), 1: ("h", [0, 1]), 2: ("h", [0, 1])}, {0: [0], 1: [1], 2: [0]}),
    ({0: ("h1", [0, 1]), 1: ("h2", [0, 1])}, {0: [0, 1], 1: [0, 1]}),   # other machines, other CPUs
    ({0: ("h", [4, 5]), 1: ("h", [6, 7])}, {0: [4, 5], 1: [6, 7]}),      # only the CPUs the workers may use
])
def test_each_worker_gets_its_own_share_of_its_machine(workers, expected):
    assert sw.share_cpus(workers) == expected


def test_scores_flatten_into_columns():
    scores = {"dvc": {"rms_error_um": 0.5, "bias_um": [1.0, None, 3.0], "error_by_cc": [{"nodes": 2}],
                      "error_by_region": {"bulk": {"rms_error_voxels": None}}}, "truth_rule": "centre"}
    flat = sw.flatten(scores)
    assert flat.pop("dvc.bias_um.y") != flat.pop("dvc.error_by_region.bulk.rms_error_voxels")  # both NaN
    assert flat == {"dvc.rms_error_um": 0.5, "dvc.bias_um.z": 1.0, "dvc.bias_um.x": 3.0,
                    "dvc.error_by_cc[0].nodes": 2, "truth_rule": "centre"}


# --- eight runs on two workers, killed and resumed ---------------------------------------

@pytest.fixture(scope="module")
def eight_runs(tmp_path_factory):
    """4 seeds x 2 subvolume edges on 2 local workers: killed after its first finished run, then run again."""
    folder = tmp_path_factory.mktemp("sweep")
    path = _write_sweep(folder, 'seeds = [1, 2, 3, 4]\nstop_after = "score"\n[grid]\n"dvc.subvolume_um" = [3.2, 4.0]\n')
    out = folder / "out"
    command = [sys.executable, "-m", "synthcal.cli", "sweep", str(path), "--out", str(out), "--workers", "2"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 400
    finished = []
    while not finished and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        finished = list(out.glob(f"runs/*/validation/{pipeline.STAMP}"))
    _kill_group(proc.pid)  # the sweep, its scheduler and its workers, at once
    proc.wait()
    assert finished, "no run finished before the deadline"
    before = _stamps(out / "runs")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return {"sweep": sw.load_sweep(path), "out": out, "before": before, "result": result,
            "finished_at_kill": len(finished)}


def test_eight_run_folders_and_one_row_per_run_and_load_step(eight_runs):
    s, out = eight_runs["sweep"], eight_runs["out"]
    assert sorted(p.name for p in (out / "runs").iterdir() if p.is_dir()) == sorted(r.name for r in s.runs)
    for name in ("results.parquet", "results.csv"):
        table = pd.read_parquet(out / name) if name.endswith("parquet") else pd.read_csv(out / name)
        assert len(table) == 8 * 2
        assert sorted(zip(table["seed"], table["dvc.subvolume_um"], table["step"])) == sorted(
            (seed, edge, k) for seed in (1, 2, 3, 4) for edge in (3.2, 4.0) for k in (1, 2))
        assert (table["status"] == "finished").all()
        for run in s.runs:  # each row holds its own run's scores
            scores = load_run(out / "runs" / run.name).scores()
            for step in scores["steps"]:
                row = table[(table["run"] == run.name) & (table["step"] == step["step"])]
                assert row["dvc.rms_error_um"].item() == pytest.approx(step["dvc"]["rms_error_um"], rel=1e-12)
                assert row["registration.error_voxels"].item() == pytest.approx(
                    step["registration"]["error_voxels"], rel=1e-12)
        for column in ("dvc.error_by_region.bulk.rms_error_voxels", "dvc.centre_rule.rms_error_um", "dvc.median_cc",
                       "strain.rms_error", "pores.mean_radius_um", "pores.truth_mean_radius_um",
                       "phases.inactive_fraction", "phases.truth_inactive_fraction", "time_s.dem", "time_s.dvc"):
            assert column in table, column
        assert (table["time_s.dem"] > 0).all() and table["time_s.report"].isna().all()


def test_a_killed_sweep_resumes_without_recomputing_any_finished_stage(eight_runs):
    out, before = eight_runs["out"], eight_runs["before"]
    after = _stamps(out / "runs")
    assert set(before) <= set(after)
    changed = [path for path, stamp in before.items() if after[path] != stamp]
    assert not changed, f"recomputed after the kill: {changed}"
    assert 1 <= eight_runs["finished_at_kill"] < 8
    message = re.search(r"8 runs: (\d+) finished before, (\d+) to run", eight_runs["result"].stderr)
    assert message and int(message.group(1)) >= eight_runs["finished_at_kill"], eight_runs["result"].stderr
    assert not list(out.rglob("*.partial")), "the resumed sweep left temporary folders"
    for run in eight_runs["sweep"].runs:
        for stage in (s for s in STAGES if s.name != "report"):  # stop_after = "score"
            assert (out / "runs" / run.name / stage.folder / pipeline.STAMP).is_file(), (run.name, stage.name)


def test_runs_of_one_seed_share_the_simulation_by_hard_links(eight_runs):
    s, out = eight_runs["sweep"], eight_runs["out"]
    by_seed = {}
    for run in s.runs:
        by_seed.setdefault(run.parameters["seed"], []).append(out / "runs" / run.name)
    for seed, (first, second) in by_seed.items():
        for folder in ("dem", "truth", "projections", "volumes"):  # the same key: the DVC edge is read later
            assert (first / folder / pipeline.STAMP).stat().st_ino == (second / folder / pipeline.STAMP).stat().st_ino
        for folder in ("analysis/dvc", "validation"):
            assert (first / folder / pipeline.STAMP).stat().st_ino != (second / folder / pipeline.STAMP).stat().st_ino


def test_workers_get_disjoint_cpus_and_thread_counts_to_match(eight_runs):
    lines = re.findall(r"worker (tcp://\S+): CPUs \[([\d, ]+)\] \(([^)]*)\), taichi threads (\d+), "
                       r"DEM threads (\d+)", eight_runs["result"].stderr)
    assert len(lines) == 2, eight_runs["result"].stderr
    shares = [set(map(int, c.split(","))) for _, c, _, _, _ in lines]
    here = sorted(os.sched_getaffinity(0))
    assert shares[0] | shares[1] == set(here) and (not shares[0] & shares[1] or len(here) < 2)
    for (_, _, placed, taichi, dem), share in zip(lines, shares):
        assert int(taichi) == len(share) and 1 <= int(dem) <= len(share)
        assert placed == ("one thread, placed by the OS" if len(share) == 1 else "pinned")


def test_the_sweep_report_shows_every_parameter(eight_runs, tmp_path):
    out = eight_runs["out"]
    result = run_synthcal("sweep", "--report", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    page = out / "report" / "index.html"
    assert {p.name for p in (out / "report").glob("*.png")} == {"scores_per_step.png", "parameter_0.png"}
    assert "dvc.subvolume_um" in page.read_text(encoding="utf-8")
    images, broken = check_in_browser(page, tmp_path)
    assert images == 2 and broken == 0


# --- speed and a given scheduler -----------------------------------------------------------


def test_a_sweep_on_two_workers_is_not_slower_than_its_runs_one_after_another(tmp_path):
    """Four seeds of tiny up to the DEM (kept short for CI): the sweep on 2 workers against ``synthcal run``
    for each run in turn, the way runs were made before sweeps, measured here in the same test.

    Runs of different seeds share no stage. Each ``synthcal run`` starts
    Python and loads taichi's compiled kernels; the sweep starts a cluster
    and does that once per worker, and runs two at a time. (One Python
    process looping over such short runs beats the sweep on a machine busy
    with other work: see the README.)
    """
    path = _write_sweep(tmp_path, 'seeds = [11, 12, 13, 14]\nstop_after = "dem"\n')
    runs = sw.load_sweep(path).runs
    start = time.monotonic()
    for run in runs:
        sets = [a for o in run.overrides for a in ("--set", o)]
        result = run_synthcal("run", str(TINY), "--out", str(tmp_path / "one_by_one" / run.name), "--until", "dem",
                              *sets)
        assert result.returncode == 0, result.stderr[-2000:]
    sequential_s = time.monotonic() - start
    start = time.monotonic()
    result = run_synthcal("sweep", str(path), "--out", str(tmp_path / "sweep"), "--workers", "2")
    sweep_s = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-2000:]
    for run in runs:  # the same work: the same trajectories
        for name in ("step_000.npz", "step_002.npz"):
            one = (tmp_path / "one_by_one" / run.name / "dem" / name).read_bytes()
            assert one == (tmp_path / "sweep" / "runs" / run.name / "dem" / name).read_bytes()
    print(f"4 runs one after another: {sequential_s:.1f} s; sweep on 2 workers: {sweep_s:.1f} s")
    assert sweep_s <= sequential_s, f"sweep {sweep_s:.1f} s, one after another {sequential_s:.1f} s"


def test_a_sweep_given_a_scheduler_runs_on_its_workers(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    scheduler_file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", "0", "--dashboard-address", "127.0.0.1:0",
                                  "--scheduler-file", str(scheduler_file)],
                                 cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        worker_log = tmp_path / "worker.log"
        with open(worker_log, "w") as log:
            worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                       str(scheduler_file), "--nthreads", "1", "--nworkers", "1", "--host",
                                       "127.0.0.1", "--no-dashboard"],
                                      cwd=tmp_path, env=env, stdout=log, stderr=log, start_new_session=True)
        import json

        address = json.loads(scheduler_file.read_text())["address"]
        path = _write_sweep(tmp_path, 'seeds = [21]\nstop_after = "dem"\n')
        result = run_synthcal("sweep", str(path), "--out", str(tmp_path / "out"), "--scheduler", address)
        assert result.returncode == 0, result.stderr[-3000:]
        started = re.search(r"Start worker at:\s+(tcp://\S+)", worker_log.read_text())
        assert started, worker_log.read_text()[-2000:]
        assert f"on {started.group(1)} (ran 1)" in result.stderr, result.stderr
        # the only worker on this machine: all its CPUs, pinned, as many threads
        cpus = sorted(os.sched_getaffinity(0))
        placed = "pinned" if len(cpus) > 1 else "one thread, placed by the OS"
        assert f"worker {started.group(1)}: CPUs {cpus} ({placed}), taichi threads {len(cpus)}" in result.stderr
        (run,) = sw.load_sweep(path).runs
        assert (tmp_path / "out" / "runs" / run.name / "dem" / pipeline.STAMP).is_file()
        assert not (tmp_path / "out" / "runs" / run.name / "truth").exists()
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                _kill_group(proc.pid)
                proc.wait()


def test_an_unreachable_scheduler_is_one_line(tmp_path):
    path = _write_sweep(tmp_path, "seeds = [1]\n")
    result = run_synthcal("sweep", str(path), "--out", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:9")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr and "--scheduler tcp://127.0.0.1:9" in lines[-1]
