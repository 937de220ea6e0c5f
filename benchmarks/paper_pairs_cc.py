"""Paper mode's mean CC at the scenario's edge for every pair of a run's scans, the later against each earlier one.

Run on a run folder whose ``preprocess`` stage is done::

    .venv/bin/python benchmarks/paper_pairs_cc.py RUN

The paper does not say whether its step B was correlated against the
uncompressed scan or against step A; paper mode correlates every scan
against the first. This script runs paper mode's DVC (tiled cubes of the
scenario's edge, a rigid warp each) on the run's preprocessed scans for
every pair (a, b), a < b, and prints the mean CC over every cube, the
fraction of cubes ok and the time. The pairs against step 0 reproduce the
run's own ``analysis/dvc`` values; the others say what the chain would read
if the paper's DVC was incremental.

Latest output (paper scenario, its run of f207deb; this project's 2-core VM,
quiet, 7 Dec 2026, 10:41 UTC; the pairs against step 0 are the run's own
0.370 and 0.348)::

    paper mode's cubes of 63 voxels (8.1 um)
    pair            mean CC   ok     cubes  time
    step 1 vs 0       0.370   0.107     512     66 s
    step 2 vs 0       0.348   0.105     512     54 s
    step 2 vs 1       0.651   0.596     512     64 s

Read incrementally (A against 0, B against A) the run's mean at 8 µm is
0.51, against the 0.359 paper mode reports (both compressed steps against
step 0) and the paper's 0.81.
"""

import sys
import time

from synthcal.dataset import Run
from synthcal.memory import keep_freed_memory


def main(argv):
    if len(argv) != 1:
        sys.exit(__doc__.split("\n\n")[1])
    keep_freed_memory()
    run = Run(argv[0])
    settings = run.analysis_settings()
    if settings.mode != "paper":
        sys.exit(f"{argv[0]}: analysed in {settings.mode!r} mode; this script measures paper mode's DVC")
    volumes = run.processed_volumes()
    rows = run.grid.sample_rows
    edge = settings.subvolume_voxels
    print(f"paper mode's cubes of {edge} voxels ({edge * run.grid.voxel_size_um:.1f} um)")
    print("pair            mean CC   ok     cubes  time", flush=True)
    for b in range(1, len(volumes)):
        for a in range(b):
            start = time.perf_counter()
            result = settings.correlate(volumes[a], volumes[b], edge, settings, sample_rows=rows[a], arch="cpu")
            print(f"step {b} vs {a}      {result.cc.mean():6.3f}  {result.ok.mean():6.3f}  {result.cc.size:6d}  "
                  f"{time.perf_counter() - start:5.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
