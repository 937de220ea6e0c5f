"""Run the stages of a scenario in order, into a run folder, with a cache.

Each stage writes one folder of the run (see ARCHITECTURE.md). It writes into
a temporary folder first and renames it when complete, so a folder that
exists is whole and a killed run resumes at the first missing stage. Beside
its outputs each stage stores ``.stage.json`` with a content hash of its
inputs: the scenario sections it reads, the seed, the code version and the
hashes of its upstream stages. A stage whose folder exists with the same
hash is skipped.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import signal
from pathlib import Path

from synthcal import __version__
from synthcal.progress import ProgressBar
from synthcal.scenario import to_toml
from synthcal.stages import STAGES, StageContext

STAMP = ".stage.json"


def stage_key(scenario, stage, upstream_keys):
    """Content hash of everything a stage's output depends on."""
    payload = {
        "stage": stage.name,
        "version": __version__,
        "seed": scenario.seed,
        "sections": {s: scenario.section_dict(s) for s in stage.sections},
        "upstream": {u: upstream_keys[u] for u in stage.upstream},
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _stored_key(folder):
    try:
        return json.loads((folder / STAMP).read_text())["key"]
    except (OSError, ValueError, KeyError):
        return None


def _replace_folder(tmp, final):
    """Swap a finished temporary folder in place of the old output."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        trash = final.with_name(f".{final.name}.old")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(final, trash)
        os.replace(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, final)


def run(scenario, run_dir, *, arch="cpu", only=None, start=None, force=False, log=print):
    """Run (or resume) a scenario into ``run_dir``.

    Parameters
    ----------
    scenario : Scenario
    run_dir : str or Path
    arch : {"cpu", "gpu"}
        Taichi backend for the kernels.
    only : str, optional
        Run just this stage (its upstream outputs must exist).
    start : str, optional
        Run from this stage on, recomputing it and everything after it.
    force : bool
        Recompute every selected stage even when cached.
    log : callable
        Where one-line messages go.

    Returns
    -------
    dict
        Stage name -> "ran", "cached" or "not run".
    """
    names = [s.name for s in STAGES]
    for option, value in (("--only", only), ("--from", start)):
        if value is not None and value not in names:
            raise ValueError(f"{option}: unknown stage {value!r} (stages: {', '.join(names)})")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_text_atomic(run_dir / "scenario.toml", to_toml(scenario))

    selected = names if only is None else [only]
    if start is not None:
        selected = names[names.index(start):]
    keys, outcome = {}, {}
    # SIGTERM (kill) unwinds like Ctrl-C so the temporary folder is dropped.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _in_main_thread() else None
    try:
        for stage in STAGES:
            key = stage_key(scenario, stage, keys)
            keys[stage.name] = key
            final = run_dir / stage.folder
            if stage.name not in selected:
                outcome[stage.name] = "cached" if _stored_key(final) == key else "not run"
                continue
            missing = [u for u in stage.upstream if outcome.get(u) not in ("ran", "cached")]
            if missing:
                outcome[stage.name] = "not run"
                log(f"[{stage.name}] not run: needs {', '.join(missing)}")
                continue
            fresh = start is not None or force or only is not None
            if not fresh and _stored_key(final) == key:
                outcome[stage.name] = "cached"
                log(f"[{stage.name}] cached: {final}")
                continue
            outcome[stage.name] = _run_stage(stage, scenario, run_dir, final, key, arch, log)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return outcome


def _run_stage(stage, scenario, run_dir, final, key, arch, log):
    tmp = final.with_name(f".{final.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    bar = ProgressBar(stage.name, stage.what)
    ctx = StageContext(scenario=scenario, run_dir=run_dir, out=tmp, arch=arch, progress=bar)
    try:
        stage.run(ctx)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / STAMP).write_text(json.dumps({"stage": stage.name, "key": key, "version": __version__},
                                        sort_keys=True, indent=1) + "\n")
    _replace_folder(tmp, final)
    bar.done()
    return "ran"


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _in_main_thread():
    import threading
    return threading.current_thread() is threading.main_thread()


def _write_text_atomic(path, text):
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def outputs_summary(run_dir, outcome):
    """Lines telling where each stage's outputs are."""
    run_dir = Path(run_dir)
    lines = [f"run folder: {run_dir}"]
    for stage in STAGES:
        state = outcome.get(stage.name, "not run")
        lines.append(f"  {stage.name:<12} {state:<10} {run_dir / stage.folder}")
    report = run_dir / "report" / "index.html"
    if report.exists():
        lines.append(f"report: {report}")
    return lines


