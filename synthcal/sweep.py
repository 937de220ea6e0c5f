"""Many runs of one scenario on Dask distributed, and one table of their scores.

A sweep file (TOML) names a base scenario and what varies::

    base = "tiny.toml"                # the base scenario, relative to the sweep file
    seeds = [1, 2, 3, 4]              # each run's seed (default: the base's)
    stop_after = "score"              # last stage of every run (default "score")

    [grid]                            # every combination of these values (a full product)
    "dvc.subvolume_um" = [3.2, 4.0]

    [random]                          # `samples` seeded draws of these keys, each one combined with the grid
    samples = 3
    seed = 0
    "imaging.incident_counts" = {uniform = [1000.0, 5000.0]}
    "imaging.psf_sigma_px" = {loguniform = [0.3, 1.0]}
    "imaging.n_flats" = {integers = [5, 20]}          # both ends included
    "reconstruction.filter" = {choice = ["ramp", "hann"]}

The runs are seeds × grid × random samples (a discrete draw that repeats an
earlier one is the same run, left out once). Each is an ordinary run folder
``DIR/runs/NAME-HASH`` (the scenario's name, a hash of the run's overrides)
that ``synthcal run SCENARIO --set ...`` with the same overrides would write,
and :func:`synthcal.dataset.load_run` opens. Every override is checked by
the scenario's own validation (:func:`synthcal.scenario.with_overrides`);
an error names the sweep file and the key.

How it runs (:func:`run_sweep`):

- Cache. Each run goes through :func:`synthcal.pipeline.run`, so a second
  sweep of the same file skips finished runs (they are not even sent to a
  worker) and resumes unfinished ones at their first missing stage; a worker
  killed mid-run loses only the stage it was computing (Dask gives the run
  to another worker, which resumes it).
- Shared stages. Runs that differ only downstream (two DVC subvolume edges of
  one seed) have stages with equal cache keys. The first run in the file's
  order computes such a stage; a later run waits for it and hard-links its
  folder (a copy across file systems) instead of recomputing it. The links
  are safe: no stage ever rewrites a file in place.
- Cores. Every Dask worker process runs one run at a time on its own share
  of its machine's CPUs (:func:`share_cpus`, given by a worker plugin), with
  taichi's thread pool (``TI_CPU_MAX_NUM_THREADS``) and the DEM's threads
  (``SYNTHCAL_DEM_THREADS``) sized to that share. A share of two or more
  CPUs is pinned (``os.sched_setaffinity``), so the threads of the DEM's spin
  barrier, which :mod:`analysis._taichi` pins one per CPU, never wait for a
  CPU another run is holding. A one-CPU share runs one thread, which has no
  barrier to wait at; it is left to the operating system, because on a
  machine shared with other work a pinned single thread waits for its CPU
  while another is idle (4 tiny runs on 2 workers of a 2-core machine under
  a load of ~10: 257 and 130 s pinned, 161 and 102 s not). Workers that join
  after the sweep has started keep the threads they were started with. With
  more workers than CPUs, workers share CPUs one thread each.
- Output. A worker writes each run's progress lines to ``DIR/logs/NAME.log``;
  the sweep prints one line per finished run and a bar. At the end it writes
  ``DIR/results.parquet`` and ``DIR/results.csv`` (:func:`results_table`).
"""

import contextlib
import dataclasses
import difflib
import hashlib
import itertools
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

from analysis.io import atomic_output
from synthcal import pipeline
from synthcal.progress import ProgressBar
from synthcal.scenario import ScenarioError, load, tomllib, with_overrides
from synthcal.stages import STAGES

DEFAULT_STOP_AFTER = "score"
DISTRIBUTIONS = ("uniform", "loguniform", "integers", "choice")
_TOP_KEYS = ("base", "seeds", "stop_after", "grid", "random")
_STAGE_NAMES = tuple(s.name for s in STAGES)
STAGE_FOLDERS = {s.name: s.folder for s in STAGES}


class SweepError(ValueError):
    """A sweep file that cannot be used; the message is one line naming the file and the key."""


@dataclasses.dataclass(frozen=True)
class SweepRun:
    """One run of a sweep.

    Attributes
    ----------
    name : str
        Its folder under ``DIR/runs``: the scenario's name and a hash of ``overrides``.
    overrides : tuple of str
        ``section.key=value`` assignments (``synthcal run --set`` takes the same).
    parameters : dict
        Swept key -> value (``"seed"`` included).
    scenario : Scenario
        The base scenario with the overrides applied.
    """

    name: str
    overrides: tuple
    parameters: dict
    scenario: object


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A parsed sweep file: its runs in order, and the stage they stop after."""

    path: Path
    base: Path
    stop_after: str
    parameters: tuple
    runs: tuple
    repeated_draws: int = 0

    def needed(self, run):
        """The stages ``run`` computes: up to ``stop_after``, less the report when the scenario has none."""
        names = list(_STAGE_NAMES[:_STAGE_NAMES.index(self.stop_after) + 1])
        if not run.scenario.validation.report and "report" in names:
            names.remove("report")
        return names


# --- the sweep file ----------------------------------------------------------

def toml_value(value):
    """``value`` as one line of TOML (what ``--set section.key=VALUE`` reads back)."""
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    import tomli_w

    return tomli_w.dumps({"v": value}).partition("=")[2].strip()


def _closest(name, valid):
    match = difflib.get_close_matches(name, valid, n=1)
    return f" (did you mean '{match[0]}'?)" if match else f" (valid: {', '.join(valid)})"


def _check_assignment(where, base, key, value):
    """Apply ``key = value`` to ``base`` through the scenario's validation; a one-line error naming ``where``."""
    text = f"{key}={toml_value(value)}"
    try:
        return with_overrides(base, [text])
    except ScenarioError as exc:
        # with_overrides speaks of --set; here the place is the sweep file's key
        message = str(exc).removeprefix(f"--set {text!r}: ").removeprefix("--set: ")
        raise SweepError(f"{where} {key} = {toml_value(value)}: {message}") from None


def _grid(path, base, table):
    where = f"{path}: [grid]"
    if not isinstance(table, dict) or not table:
        raise SweepError(f'{where}: empty; expected "section.key" = [values, ...]')
    for key, values in table.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"{where} {key}: expected a non-empty list of values, got {values!r}")
        seen = [toml_value(v) for v in values]
        twice = next((s for i, s in enumerate(seen) if s in seen[:i]), None)
        if twice is not None:
            raise SweepError(f"{where} {key}: value {twice} is listed twice")
        for value in values:
            _check_assignment(where, base, key, value)
    return {key: list(values) for key, values in table.items()}


def _draw(rng, where, key, spec):
    """One value of ``{distribution = [arguments]}``."""
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise SweepError(f"{where} {key}: expected one of {{uniform = [lo, hi]}}, {{loguniform = [lo, hi]}}, "
                         f"{{integers = [lo, hi]}}, {{choice = [values]}}; got {spec!r}")
    kind, args = next(iter(spec.items()))
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise SweepError(f"{where} {key}: choice expected a non-empty list of values, got {args!r}")
        return args[int(rng.integers(len(args)))]
    numbers = isinstance(args, list) and len(args) == 2 and all(
        isinstance(a, (int, float)) and not isinstance(a, bool) and np.isfinite(a) for a in args)
    if not numbers or not args[0] <= args[1] or (kind == "loguniform" and args[0] <= 0):
        bound = "0 < lo <= hi" if kind == "loguniform" else "lo <= hi"
        raise SweepError(f"{where} {key}: {kind} expected [lo, hi] with {bound}, got {args!r}")
    if kind == "integers":
        if not all(float(a).is_integer() for a in args):
            raise SweepError(f"{where} {key}: integers expected whole numbers [lo, hi], got {args!r}")
        return int(rng.integers(int(args[0]), int(args[1]) + 1))
    if kind == "loguniform":
        return float(np.exp(rng.uniform(np.log(args[0]), np.log(args[1]))))
    return float(rng.uniform(args[0], args[1]))


def _random(path, base, table):
    """The random draws: a list of ``{key: value}``, one per sample."""
    where = f"{path}: [random]"
    if not isinstance(table, dict):
        raise SweepError(f"{where}: expected a table with samples = N and \"section.key\" = {{distribution = ...}}")
    table = dict(table)
    samples, seed = table.pop("samples", None), table.pop("seed", 0)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise SweepError(f"{where} samples: expected a whole number >= 1, got {samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SweepError(f"{where} seed: expected a whole number >= 0, got {seed!r}")
    if not table:
        raise SweepError(f'{where}: no keys to draw; expected "section.key" = {{uniform = [lo, hi]}} or the like')
    rng = np.random.default_rng(seed)
    draws = [{key: _draw(rng, where, key, spec) for key, spec in table.items()} for _ in range(samples)]
    for draw in draws:
        for key, value in draw.items():
            _check_assignment(where, base, key, value)
    return draws


def run_name(scenario_name, overrides):
    """Folder name of a run: the scenario's name and a hash of its (sorted) overrides."""
    digest = hashlib.sha256("\n".join(sorted(overrides)).encode()).hexdigest()[:12]
    return f"{scenario_name}-{digest}"


def load_sweep(path):
    """Read and check a sweep file; every run's scenario is built and validated.

    Parameters
    ----------
    path : str or Path
        The sweep file (TOML, see the module docstring).

    Returns
    -------
    Sweep

    Raises
    ------
    SweepError
        One line naming the file, the key and what is expected.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepError(f"{path}: no such sweep file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{path}: not valid TOML: {exc}") from None
    for key in data:
        if key not in _TOP_KEYS:
            raise SweepError(f"{path}: {key}: unknown key{_closest(key, list(_TOP_KEYS))}")
    if not isinstance(data.get("base"), str):
        raise SweepError(f'{path}: base: expected the base scenario file, e.g. base = "scenarios/tiny.toml"')
    base_path = (path.parent / data["base"]).resolve()
    try:
        base = load(base_path)
    except ScenarioError as exc:
        raise SweepError(f"{path}: base: {exc}") from None
    stop_after = data.get("stop_after", DEFAULT_STOP_AFTER)
    if stop_after not in _STAGE_NAMES:
        raise SweepError(f"{path}: stop_after: expected a stage ({', '.join(_STAGE_NAMES)}), got {stop_after!r}")
    seeds = data.get("seeds", [base.seed])
    if not isinstance(seeds, list) or not seeds:
        raise SweepError(f"{path}: seeds: expected a non-empty list of whole numbers, got {seeds!r}")
    if len(set(map(repr, seeds))) != len(seeds):
        raise SweepError(f"{path}: seeds: a seed is listed twice in {seeds}")
    for seed in seeds:
        _check_assignment(f"{path}:", base, "seed", seed)
    grid = _grid(path, base, data["grid"]) if "grid" in data else {}
    draws = _random(path, base, data["random"]) if "random" in data else [{}]
    if "seeds" not in data and not grid and "random" not in data:
        raise SweepError(f"{path}: nothing to sweep; expected seeds = [...], a [grid] or a [random] table")
    swept = [*grid, *draws[0]]
    twice = sorted(set(k for k in swept if swept.count(k) > 1))
    if twice or "seed" in swept:
        raise SweepError(f"{path}: {(twice or ['seed'])[0]}: swept twice (seeds, [grid] and [random] "
                         "must name different keys)")
    runs, names, repeated = [], set(), 0
    for seed, combo, draw in itertools.product(seeds, itertools.product(*grid.values()), draws):
        parameters = {"seed": seed, **dict(zip(grid, combo)), **draw}
        overrides = tuple(f"{key}={toml_value(value)}" for key, value in parameters.items()
                          if key != "seed" or "seeds" in data)
        try:
            scenario = with_overrides(base, overrides)
        except ScenarioError as exc:
            raise SweepError(f"{path}: the run {' '.join(overrides)}: {str(exc).removeprefix('--set: ')}") from None
        name = run_name(scenario.name, overrides)
        if name in names:  # a discrete draw that came again: the same run
            repeated += 1
            continue
        names.add(name)
        runs.append(SweepRun(name=name, overrides=overrides, parameters=parameters, scenario=scenario))
    return Sweep(path=path.resolve(), base=base_path, stop_after=stop_after,
                 parameters=("seed", *swept), runs=tuple(runs), repeated_draws=repeated)


# --- one run, on a worker ------------------------------------------------------

_ONE_RUN_AT_A_TIME = threading.Lock()


def _link_or_copy(source, target):
    try:
        os.link(source, target)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(source, target)


def link_shared_stages(scenario, run_dir, donor_dirs, needed):
    """Hard-link into ``run_dir`` every needed stage that a donor run has with the same cache key.

    Parameters
    ----------
    scenario : Scenario
    run_dir : Path
    donor_dirs : sequence of Path
        Finished (or failed) runs of the same sweep, searched in order.
    needed : sequence of str
        Stage names.

    Returns
    -------
    list of str
        The stages linked.
    """
    keys, linked = pipeline.stage_keys(scenario), []
    for stage in STAGES:
        final = Path(run_dir) / stage.folder
        if stage.name not in needed or (pipeline.read_stamp(final) or {}).get("key") == keys[stage.name]:
            continue
        for donor in donor_dirs:
            source = Path(donor) / stage.folder
            if (pipeline.read_stamp(source) or {}).get("key") == keys[stage.name]:
                with atomic_output(final, folder=True) as tmp:
                    shutil.copytree(source, tmp, copy_function=_link_or_copy, dirs_exist_ok=True)
                linked.append(stage.name)
                break
    return linked


@contextlib.contextmanager
def _run_lock(run_dir):
    """Hold the run folder for this process: a second sweep (or an orphaned worker) waits its turn."""
    import fcntl

    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f".{run_dir.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def run_one(run, run_dir, needed, donor_dirs, log_path, arch="cpu", *after):
    """Run (or resume) one run of a sweep; what a Dask worker executes.

    Parameters
    ----------
    run : SweepRun
    run_dir : Path
    needed : list of str
        Its stages (:meth:`Sweep.needed`).
    donor_dirs : list of Path
        Earlier runs it shares stages with (:func:`link_shared_stages`).
    log_path : Path
        The run's progress lines go there (appended).
    arch : {"cpu", "gpu"}
    *after
        Results of the donors' tasks: only there so that Dask starts this
        run after them.

    Returns
    -------
    dict
        ``name``, ``outcome`` (stage -> ran / cached / linked / not run),
        ``error`` (one line, or None), ``wall_time_s``, ``worker``.
    """
    start = time.perf_counter()
    record = {"name": run.name, "outcome": {}, "error": None, "worker": _worker_address()}
    with _ONE_RUN_AT_A_TIME, _run_lock(Path(run_dir)), _output_to(Path(log_path)):
        print(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {run.name} {' '.join(run.overrides)}", flush=True)
        try:
            linked = link_shared_stages(run.scenario, run_dir, donor_dirs, needed)
            for name in linked:
                print(f"[{name}] linked from an earlier run with the same stage key")
            outcome = pipeline.run(run.scenario, run_dir, arch=arch, until=needed[-1], log=print)
            record["outcome"] = {name: "linked" if name in linked else state for name, state in outcome.items()}
            missing = [name for name in needed if record["outcome"].get(name) not in ("ran", "cached", "linked")]
            if missing:
                record["error"] = f"stages not run: {', '.join(missing)}"
        except Exception as exc:  # one run's failure must not stop the sweep; the log has it
            import traceback

            traceback.print_exc()
            record["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    record["wall_time_s"] = time.perf_counter() - start
    return record


@contextlib.contextmanager
def _output_to(log_path):
    """Send this process's stdout and stderr (Python's and the C++ runtime's: file descriptors 1 and 2) to a file.

    At the level of file descriptors, because taichi writes from C++ and,
    imported while ``sys.stdout`` is replaced, buffers its prints.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, old in zip((1, 2), saved):
                os.dup2(old, fd)
                os.close(old)


def _worker_address():
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:  # not on a Dask worker
        return "local"


# --- cores -----------------------------------------------------------------------

def share_cpus(workers):
    """Split each machine's CPUs between the Dask workers on it.

    Parameters
    ----------
    workers : dict
        Worker name -> ``(host, cpus)``: its machine and the CPUs it may use now.

    Returns
    -------
    dict
        Worker name -> sorted list of CPUs: contiguous, disjoint shares of
        the host's CPUs as even as possible; one CPU each, shared round-robin,
        when a host has more workers than CPUs.

    Examples
    --------
    >>> share_cpus({"a": ("h", [0, 1, 2]), "b": ("h", [0, 1, 2])})
    {'a': [0, 1], 'b': [2]}
    """
    hosts = {}
    for name, (host, cpus) in sorted(workers.items(), key=lambda item: str(item[0])):
        hosts.setdefault(host, ([], set()))
        hosts[host][0].append(name)
        hosts[host][1].update(cpus)
    shares = {}
    for names, cpus in hosts.values():
        pool = sorted(cpus)
        if len(pool) >= len(names):
            for name, part in zip(names, np.array_split(np.array(pool), len(names))):
                shares[name] = [int(c) for c in part]
        else:
            for i, name in enumerate(names):
                shares[name] = [pool[i % len(pool)]]
    return shares


_SHARE = []
"""The CPUs this worker process was given (:func:`take_cpus`)."""


def take_cpus(cpus):
    """Size this process's threads (taichi's, the DEM's) to ``cpus``; pin its threads there if they are 2 or more.

    Taichi reads ``TI_CPU_MAX_NUM_THREADS`` when it starts (the first kernel
    of a run); a lower ``SYNTHCAL_DEM_THREADS`` set by the user is kept. See
    the module docstring for why a one-CPU share is not pinned.
    """
    if len(cpus) > 1:
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):  # a thread that has just exited
                os.sched_setaffinity(int(tid), cpus)
    n = len(cpus)
    user_cap = os.environ.get("SYNTHCAL_DEM_THREADS", "")
    os.environ["SYNTHCAL_DEM_THREADS"] = str(min(n, int(user_cap)) if user_cap.isdigit() else n)
    os.environ["TI_CPU_MAX_NUM_THREADS"] = str(n)
    _SHARE[:] = sorted(cpus)


def _host_cpus():
    import socket

    return socket.gethostname(), sorted(os.sched_getaffinity(0))


def _cpu_plugin(shares):
    from distributed import WorkerPlugin

    class CpuShare(WorkerPlugin):
        """Pins each worker named in ``shares`` (restarted ones too: a nanny keeps the name)."""

        def __init__(self, shares):
            self.shares = shares

        def setup(self, worker):
            if worker.name in self.shares:
                take_cpus(self.shares[worker.name])

    return CpuShare(shares)


def worker_state():
    """A worker's share of CPUs, the CPUs it may run on, and its thread caps, as the sweep reports them."""
    return {"share": list(_SHARE), "affinity": sorted(os.sched_getaffinity(0)),
            "dem_threads": os.environ.get("SYNTHCAL_DEM_THREADS"),
            "taichi_threads": os.environ.get("TI_CPU_MAX_NUM_THREADS")}


# --- the sweep ------------------------------------------------------------------

def plan(sweep, out_dir):
    """What is left to do: the unfinished runs and, for each, the earlier runs it takes shared stages from.

    Returns
    -------
    todo : list of (SweepRun, list of str)
        Unfinished runs in the file's order, each with its donors' names.
    finished : list of str
        Names of the runs whose needed stages are all stamped with their keys.
    """
    runs_dir = Path(out_dir) / "runs"
    producer, todo, finished = {}, [], []
    for run in sweep.runs:
        keys, needed = pipeline.stage_keys(run.scenario), sweep.needed(run)
        stamps = {name: (pipeline.read_stamp(runs_dir / run.name / STAGE_FOLDERS[name]) or {}).get("key")
                  for name in needed}
        donors = []
        for name in needed:
            first = producer.setdefault((name, keys[name]), run.name)
            if first != run.name and first not in donors and stamps[name] != keys[name]:
                donors.append(first)
        if all(stamps[name] == keys[name] for name in needed):
            finished.append(run.name)
        else:
            todo.append((run, donors))
    return todo, finished


@contextlib.contextmanager
def _client(workers, scheduler):
    """A Dask client: a local cluster of ``workers`` processes on 127.0.0.1, or the scheduler at ``scheduler``.

    Yields the client and its dashboard's address (None when there is none).
    """
    import importlib.util
    import logging

    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"--scheduler {scheduler}: cannot connect ({str(exc).splitlines()[0]})") from None
        with client:
            services = client.scheduler_info().get("services", {})
            yield client, client.dashboard_link if "dashboard" in services else None
        return
    n = len(os.sched_getaffinity(0)) if workers is None else workers
    if n < 1:
        raise ValueError(f"--workers: expected at least 1, got {n}")
    # the scheduler serves its dashboard page anyway; without bokeh the page only says bokeh is missing
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", memory_limit=0, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        yield client, client.dashboard_link if importlib.util.find_spec("bokeh") else None


def _prepare_workers(client, dashboard, scenario, log, wait_s=120):
    """Wait for workers, check they run this code, and give each its share of the CPUs."""
    try:
        client.wait_for_workers(1, timeout=wait_s)
    except TimeoutError:
        raise ValueError(f"no Dask worker joined the scheduler in {wait_s} s") from None
    here = pipeline.stage_keys(scenario)
    for address, keys in client.run(pipeline.stage_keys, scenario).items():
        if keys != here:
            raise ValueError(f"worker {address} runs other synthcal code than this process (its stage keys differ): "
                             "install the same version there")
    info = client.scheduler_info()["workers"]
    shares = share_cpus({info[a]["name"]: host_cpus for a, host_cpus in client.run(_host_cpus).items()})
    client.register_plugin(_cpu_plugin(shares), name="synthcal-cpu-share")
    log(f"[sweep] {len(info)} workers; dashboard: {dashboard or 'none (install bokeh for one)'}")
    for address, state in sorted(client.run(worker_state).items()):
        if not state["share"]:
            log(f"[sweep] worker {address}: no share (joined late), CPUs {state['affinity']}")
            continue
        placed = "pinned" if state["affinity"] == state["share"] else "one thread, placed by the OS"
        log(f"[sweep] worker {address}: CPUs {state['share']} ({placed}), taichi threads {state['taichi_threads']}, "
            f"DEM threads {state['dem_threads']}")


def run_sweep(sweep, out_dir, *, workers=None, scheduler=None, arch="cpu", log=print):
    """Run every unfinished run of ``sweep`` on Dask, then write the results table.

    Parameters
    ----------
    sweep : Sweep
    out_dir : str or Path
        ``runs/``, ``logs/``, ``sweep.json`` and the tables go there.
    workers : int, optional
        Processes of the local cluster (default: one per CPU this process may use).
    scheduler : str, optional
        Address of a running Dask scheduler to use instead of a local cluster.
    arch : {"cpu", "gpu"}
    log : callable
        Where one-line messages go.

    Returns
    -------
    dict
        Run name -> its record (:func:`run_one`); runs finished before are ``{"outcome": "finished before"}``.
    """
    from distributed import as_completed

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(sweep, out_dir)
    todo, finished = plan(sweep, out_dir)
    records = {name: {"name": name, "outcome": "finished before", "error": None} for name in finished}
    repeated = f" ({sweep.repeated_draws} repeated draws left out)" if sweep.repeated_draws else ""
    log(f"[sweep] {len(sweep.runs)} runs{repeated}: {len(finished)} finished before, {len(todo)} to run")
    if todo:
        with _client(workers, scheduler) as (client, dashboard):
            _prepare_workers(client, dashboard, todo[0][0].scenario, log)
            futures = {}
            for run, donors in todo:
                after = [futures[d] for d in donors if d in futures]
                futures[run.name] = client.submit(
                    run_one, run, out_dir / "runs" / run.name, sweep.needed(run),
                    [out_dir / "runs" / d for d in donors], out_dir / "logs" / f"{run.name}.log", arch, *after,
                    key=f"synthcal-run-{run.name}", pure=False)
            by_key = {f.key: name for name, f in futures.items()}
            bar = ProgressBar("sweep", f"{len(todo)} runs")
            for i, future in enumerate(as_completed(futures.values()), 1):
                name = by_key[future.key]
                try:
                    record = future.result()
                except Exception as exc:  # e.g. KilledWorker: reported, the sweep goes on
                    record = {"name": name, "outcome": {}, "error": f"{type(exc).__name__}: {exc}".splitlines()[0],
                              "wall_time_s": float("nan"), "worker": "?"}
                records[name] = record
                if bar.tty:  # the line goes above the bar
                    bar.stream.write("\r\033[K")
                log(_run_line(i, len(todo), sweep, name, record, out_dir))
                bar(i / len(todo))
            bar.done()
    table = results_table(sweep, out_dir, records)
    write_results(table, out_dir)
    return records


def _run_line(i, n, sweep, name, record, out_dir):
    run = next(r for r in sweep.runs if r.name == name)
    what = " ".join(f"{k}={toml_value(v)}" for k, v in run.parameters.items())
    if record["error"]:
        return f"[sweep] {i}/{n} {name} ({what}): FAILED: {record['error']} (log: {out_dir / 'logs' / name}.log)"
    counts = {}
    for state in record["outcome"].values():
        counts[state] = counts.get(state, 0) + 1
    done = ", ".join(f"{state} {counts[state]}" for state in ("ran", "linked", "cached") if state in counts)
    return f"[sweep] {i}/{n} {name} ({what}): done in {record['wall_time_s']:.1f} s on {record['worker']} ({done})"


def write_manifest(sweep, out_dir):
    """``sweep.json``: the sweep file, its base, the parameters and each run's overrides."""
    record = {"sweep_file": str(sweep.path), "base": str(sweep.base), "stop_after": sweep.stop_after,
              "parameters": list(sweep.parameters),
              "runs": [{"name": r.name, "overrides": list(r.overrides), "parameters": r.parameters}
                       for r in sweep.runs]}
    with atomic_output(Path(out_dir) / "sweep.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


# --- the table ------------------------------------------------------------------

def flatten(value, prefix=""):
    """A nested score dict as ``{"a.b.c": scalar}`` columns.

    Lists of three numbers are (z, y, x) vectors (the project's axis order)
    and become ``.z``, ``.y``, ``.x``; other lists are numbered ``[i]``.
    ``None`` (JSON's stand-in for NaN) becomes NaN.

    Examples
    --------
    >>> flatten({"dvc": {"rms_error_um": 0.1, "bias_um": [1.0, 2.0, 3.0]}, "bins": [{"n": 4}]})
    {'dvc.rms_error_um': 0.1, 'dvc.bias_um.z': 1.0, 'dvc.bias_um.y': 2.0, 'dvc.bias_um.x': 3.0, 'bins[0].n': 4}
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list):
        if len(value) == 3 and all(isinstance(v, (int, float)) or v is None for v in value):
            return {f"{prefix}.{axis}": float("nan") if v is None else v for axis, v in zip("zyx", value)}
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: float("nan") if value is None else value}


def results_table(sweep, out_dir, records=None):
    """One row per run and load step k >= 1: parameters, seed, scores and each stage's wall time.

    Columns: ``run``, the swept parameters (``seed``, ``dvc.subvolume_um``, ...),
    ``step``, ``status`` (finished, failed, unfinished), ``error``,
    ``time_s.STAGE`` (wall time of each stage when it was computed; a linked
    stage shows the time its first run took), ``time_s.total``, then every
    score of the step flattened (:func:`flatten`: ``dvc.rms_error_um``,
    ``dvc.error_by_region.bulk.rms_error_voxels``, ``strain.rms_error``,
    ``registration.error_voxels``, ``pores.mean_radius_um``,
    ``phases.inactive_fraction``, ...) and the run's own scores
    (``reference.*``, ``subvolume_study[i].*``, ``subvolume_choice.*``).
    Runs without scores (stopped before ``score``, or failed) have NaN there.

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    records = records or {}
    rows = []
    for run in sweep.runs:
        folder = Path(out_dir) / "runs" / run.name
        keys, needed = pipeline.stage_keys(run.scenario), sweep.needed(run)
        stamps = {s.name: pipeline.read_stamp(folder / s.folder) or {} for s in STAGES}
        done = all(stamps[name].get("key") == keys[name] for name in needed)
        error = (records.get(run.name) or {}).get("error")
        current = {name: stamps[name] if stamps[name].get("key") == keys[name] else {} for name in _STAGE_NAMES}
        times = {f"time_s.{name}": current[name].get("wall_time_s", float("nan")) for name in _STAGE_NAMES}
        times["time_s.total"] = float(np.nansum(list(times.values())))
        status = "finished" if done else "failed" if error else "unfinished"
        head = {"run": run.name, **run.parameters, "status": status, "error": error or ""}
        scores = {}
        if current["score"]:
            scores = json.loads((folder / STAGE_FOLDERS["score"] / "scores.json").read_text(encoding="utf-8"))
        run_level = flatten({k: v for k, v in scores.items() if k not in ("steps", "scenario", "seed")})
        steps = {row["step"]: row for row in scores.get("steps", [])}
        for k in range(1, run.scenario.n_steps):
            step = steps.get(k, {"step": k})
            rows.append({**head, **times, **flatten(step), **run_level})
    first = ["run", *sweep.parameters, "step", "status", "error"]
    table = pd.DataFrame(rows, columns=None if rows else first)
    return table[first + [c for c in table.columns if c not in first]]


def write_results(table, out_dir):
    """``results.parquet`` and ``results.csv`` in ``out_dir``."""
    with atomic_output(Path(out_dir) / "results.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_output(Path(out_dir) / "results.csv") as tmp:
        table.to_csv(tmp, index=False)


def read_results(out_dir):
    """The results table of a sweep folder and its manifest (``sweep.json``)."""
    import pandas as pd

    out_dir = Path(out_dir)
    for name in ("results.parquet", "sweep.json"):
        if not (out_dir / name).is_file():
            raise ValueError(f"{out_dir}: not a sweep folder (expected {name} in it; run synthcal sweep first)")
    return pd.read_parquet(out_dir / "results.parquet"), json.loads((out_dir / "sweep.json").read_text())

