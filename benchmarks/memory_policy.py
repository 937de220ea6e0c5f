"""Benchmark: the command line's memory policy (``synthcal.memory``) against glibc's default, stage by stage.

Each case reruns one stage of an existing run folder
(``synthcal run SCENARIO --out RUN --only STAGE --force``) in a fresh
process: with the policy, as the command line runs, and without it (glibc's
default: a block above 32 MB is mapped when allocated and handed back when
freed). The two alternate, ``--repeats`` times each, the default first. For
each process: wall time, user and system CPU and peak resident memory, from
the child's own rusage. The ratio is the default's wall time over the
policy's, pairing the runs in order; the last row is the worst case (the
smallest ratio). The stage's outputs are the same bytes either way (the
policy only decides where freed memory goes), and the run folder is left as
complete as it was.

Run: ``.venv/bin/python benchmarks/memory_policy.py SCENARIO RUN_DIR [STAGE ...] [--repeats N]``
(default stages: preprocess and pores).

Latest table (5 Dec 2026, evening, this project's 2-core VM, quiet; the paper
scenario's run folder, code of 6182501; ``memory_policy.py scenarios/paper.toml
RUN preprocess --repeats 1``, then the same for ``pores``):

| stage | glibc | wall (s) | user (s) | sys (s) | peak RSS (GiB) |
|---|---|---|---|---|---|
| preprocess | default | 134.6 | 71.7 | 92.5 | 7.13 |
| preprocess | policy | 112.6 | 71.3 | 65.6 | 8.02 |
| preprocess | default / policy | 1.19 | | | |
| pores | default | 187.0 | 154.6 | 95.8 | 7.10 |
| pores | policy | 140.0 | 155.7 | 46.4 | 7.87 |
| pores | default / policy | 1.34 | | | |
| worst case | preprocess | 1.19 | | | |

One pair per stage: each run of a stage takes 2-3 minutes. A stage alone pays for
its first touch of every page either way; in a whole run the policy also
spares the next stage that, and the paper scenario's stages after the DEM
took 59.2 min with it (system CPU 212 s) against 85.7 min (1775 s) on the
run of dd62de4, with the speed-ups of 7651698 in between (see docs/paper-scenario-log.md).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_MAIN = "import sys, synthcal.cli as cli\n{patch}sys.exit(cli.main(sys.argv[1:]))"
_POLICIES = {"default": "cli.keep_freed_memory = lambda: False\n", "policy": ""}


def run_stage(scenario, run_dir, stage, policy):
    """Wall time (s), user and system CPU (s) and peak RSS (GiB) of one stage rerun in a fresh process."""
    command = [sys.executable, "-c", _MAIN.format(patch=_POLICIES[policy]), "run", str(scenario), "--out",
               str(run_dir), "--only", stage, "--force"]
    with tempfile.TemporaryFile(mode="w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)   # the child's own rusage, which Popen.wait does not give
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)   # reaped here: Popen must not wait for it again
        err.seek(0)
        log = err.read()
    # a stage whose inputs are stale is "not run" with exit status 0: only a stamped "done" counts
    if child.returncode != 0 or f"[{stage}]" not in log or "done in" not in log:
        raise SystemExit(f"{stage} ({policy}) did not run: {log[-2000:]}")
    return wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 2 ** 20


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario")
    parser.add_argument("run_dir")
    parser.add_argument("stages", nargs="*", default=["preprocess", "pores"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    print("| stage | glibc | wall (s) | user (s) | sys (s) | peak RSS (GiB) |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for stage in args.stages:
        walls = {name: [] for name in _POLICIES}
        for _ in range(args.repeats):
            for name in _POLICIES:
                wall, user, system, rss = run_stage(args.scenario, args.run_dir, stage, name)
                walls[name].append(wall)
                print(f"| {stage} | {name} | {wall:.1f} | {user:.1f} | {system:.1f} | {rss:.2f} |", flush=True)
        pairs = [d / p for d, p in zip(walls["default"], walls["policy"])]
        ratios += [(r, stage) for r in pairs]
        print(f"| {stage} | default / policy | {min(pairs):.2f}-{max(pairs):.2f} | | | |", flush=True)
    worst, stage = min(ratios)
    print(f"| worst case | {stage} | {worst:.2f} | | | |")


if __name__ == "__main__":
    main()
