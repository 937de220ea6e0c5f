"""Run the stages of a scenario in order, into a run folder, with a cache.

Each stage writes one folder of the run (see ARCHITECTURE.md) through
:func:`analysis.io.atomic_output`: into a temporary folder first, renamed
when complete, so a folder that exists is whole and a killed run resumes at
the first missing stage. Beside its outputs each stage stores ``.stage.json``
with a content hash of its inputs (:func:`stage_key`): what it reads of the
scenario, the seed, the source code it runs and the hashes of its upstream
stages. A stage whose folder exists with the same hash is skipped; editing
the code a stage runs re-runs it and everything downstream. The stamp also
holds the stage's wall time (``wall_time_s``), the one thing in a run folder
that differs between two runs of the same scenario and seed.
"""

import ast
import hashlib
import json
import signal
import threading
import time
from functools import lru_cache
from pathlib import Path

from analysis.io import atomic_output
from synthcal.dataset import Run
from synthcal.progress import ProgressBar
from synthcal.scenario import to_dict, to_toml
from synthcal.stages import STAGES, StageContext

STAMP = ".stage.json"
ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("synthcal", "analysis", "validation")


def _module_file(name, root):
    """Source file of a module of ours, or None for anything else."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = Path(root, *name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path, top_level_only=False):
    """Modules a source file imports, as dotted names: anywhere (function bodies included), or
    only in statements at module level."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


WIRING = ("synthcal.stages", "synthcal.dataset", "synthcal.scenario")
"""Modules every stage runs through. Their own source is hashed, but only their module-level
imports are followed: inside functions they import every stage's modules (a stage's run
function, the run folder's readers), which would tie each stage to all the others' code.
What a stage computes with is followed from the imports of its own run function."""


@lru_cache(maxsize=None)
def code_hash(modules, root=ROOT):
    """Hash of the source of ``modules`` and every module of ours they import, transitively.

    Parameters
    ----------
    modules : tuple of str
        Dotted module names (e.g. ``("synthcal.phantom",)``).
    root : Path
        Folder holding the packages (the source tree to hash).
    """
    seen, todo = {}, list(modules)
    while todo:
        name = todo.pop()
        path = _module_file(name, root)
        if path is None or path in seen:
            continue
        seen[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run their __init__
        todo += sorted(_imports(path, top_level_only=name in WIRING))
    return hashlib.sha256(json.dumps(sorted((str(p.relative_to(root)), h) for p, h in seen.items()))
                          .encode()).hexdigest()


def stage_modules(stage):
    """The modules a stage's ``run`` function imports, and the wiring modules (:data:`WIRING`)."""
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(stage.run)))
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    return tuple(sorted(names | set(WIRING)))


def _read(scenario, what):
    """The value of ``"section"``, ``"section.key"`` or a top-level key (``"*"``: everything)."""
    data = to_dict(scenario)
    if what == "*":
        return data
    section, _, key = what.partition(".")
    return data[section][key] if key else data[section]


def stage_key(scenario, stage, upstream_keys, root=ROOT):
    """Content hash of everything a stage's output depends on."""
    payload = {
        "stage": stage.name,
        "code": code_hash(stage_modules(stage), root),
        "seed": scenario.seed,
        "reads": {what: _read(scenario, what) for what in stage.sections},
        "upstream": {u: upstream_keys[u] for u in stage.upstream},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def stage_keys(scenario, root=ROOT):
    """Every stage's key, in order (each depends on its upstream stages' keys)."""
    keys = {}
    for stage in STAGES:
        keys[stage.name] = stage_key(scenario, stage, keys, root)
    return keys


def read_stamp(folder):
    """A stage folder's ``.stage.json`` (``stage``, ``key``, ``wall_time_s``) as a dict; None if unreadable."""
    try:
        stamp = json.loads((Path(folder) / STAMP).read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _stored_key(folder):
    return (read_stamp(folder) or {}).get("key")


def _selection(scenario, only, start, until):
    names = [s.name for s in STAGES]
    for option, value in (("--only", only), ("--from", start), ("--until", until)):
        if value is not None and value not in names:
            raise ValueError(f"{option}: unknown stage {value!r} (stages: {', '.join(names)})")
    if only is not None:
        return [only]
    first = names.index(start) if start is not None else 0
    last = names.index(until) if until is not None else len(names) - 1
    if last < first:
        raise ValueError(f"--until: {until} comes before --from {start}")
    selected = names[first:last + 1]
    if not scenario.validation.report and "report" in selected and only is None:
        selected.remove("report")
    return selected


def run(scenario, run_dir, *, arch="cpu", only=None, start=None, until=None, force=False, log=print):
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
    until : str, optional
        Stop after this stage.
    force : bool
        Recompute every selected stage even when cached.
    log : callable
        Where one-line messages go.

    Returns
    -------
    dict
        Stage name -> "ran", "cached" or "not run".
    """
    selected = _selection(scenario, only, start, until)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(run_dir / "scenario.toml") as tmp:
        tmp.write_text(to_toml(scenario), encoding="utf-8")
    keys, outcome = stage_keys(scenario), {}
    # SIGTERM (kill) unwinds like Ctrl-C so the temporary folder is dropped.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if in_main else None
    try:
        for stage in STAGES:
            final = run_dir / stage.folder
            cached = _stored_key(final) == keys[stage.name]
            if stage.name not in selected:
                outcome[stage.name] = "cached" if cached else "not run"
                continue
            missing = [u for u in stage.upstream if outcome.get(u) not in ("ran", "cached")]
            if missing:
                outcome[stage.name] = "not run"
                log(f"[{stage.name}] not run: needs {', '.join(missing)}")
            elif cached and not (start is not None or force or only is not None):
                outcome[stage.name] = "cached"
                log(f"[{stage.name}] cached: {final}")
            else:
                outcome[stage.name] = _run_stage(stage, scenario, run_dir, final, keys[stage.name], arch)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return outcome


def _run_stage(stage, scenario, run_dir, final, key, arch):
    bar = ProgressBar(stage.name, stage.what)
    start = time.perf_counter()
    with atomic_output(final, folder=True) as tmp:
        stage.run(StageContext(scenario=scenario, run=Run(run_dir, readable=stage.upstream), out=tmp, arch=arch,
                                progress=bar))
        stamp = {"stage": stage.name, "key": key, "wall_time_s": round(time.perf_counter() - start, 3)}
        (tmp / STAMP).write_text(json.dumps(stamp, sort_keys=True, indent=1) + "\n")
    bar.done()
    return "ran"


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


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
