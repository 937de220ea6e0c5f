"""The comparisons of ``benchmarks/gpu_check.sh``: GPU results against the CPU's, each with its tolerance.

The GPU is not bit-identical to the CPU: taichi compiles float arithmetic
with fused multiply-adds and its own order of operations there. So each
check states how far apart the two may be, and why. Every check appends rows
``check | measured | tolerance | ok/FAIL`` to a table file (TSV); ``table``
prints it and exits 1 when a row failed.

Subcommands:

``drivers --arch A OUT.npz``
    A busy DEM (contacts, bonds that break, foil, box, a moving disc head,
    rolling resistance; 100 particles, 1e-7 s) on backend A, saved.
``compare-drivers CPU.npz GPU.npz``
    The same simulation on both: the GPU runs the DEM's ``loops`` driver,
    which on the CPU already matches the ``cpu`` driver to 1e-7 µm in
    positions, 1e-5 of the largest speed and 1e-6 in the head force
    (tests/test_dem.py::test_gpu_driver_matches_the_cpu_driver); the GPU may
    only add rounding to the same float64 arithmetic, so the same bounds hold.
``compare-runs CPU_RUN GPU_RUN``
    Two run folders of one scenario whose DEM is the same (the GPU run starts
    from the CPU run's ``dem/``: the DEM is chaotic, so after 10^5 steps two
    backends' packings differ as much as two seeds'). Every later stage ran
    on its own backend. Tolerances, stage by stage:

    - phantom labels: at most 1e-3 of the voxels differ. A voxel's label
      changes only when one of its sub-samples lies within rounding
      (~1e-7 of its coordinate) of a particle surface: a few voxels in a
      million.
    - phantom attenuation: sum |a - b| / sum |a| <= 1e-3 (float32 sums, and
      the few flipped voxels).
    - reconstruction: RMS(a - b) / RMS(a) <= 1e-3. Its inputs differ by the
      above and by Poisson counts that flip by one where the expected count
      moved by rounding (numpy draws them from the same stream); FBP sums in
      another order (float32, ~1e-6).
    - registration: shifts within 0.01 voxel (a tenth of what the tiny and
      quick runs' registration error against the truth is).
    - DVC: nodes ok on one backend and not the other are at most 5 %;
      displacements of nodes ok on both within 0.05 voxel (the DVC's own
      precision on an exact shift is 0.02 voxel, tests/test_dvc.py; inputs
      differ by 1e-3 of their RMS).
    - scores: DVC RMS error against the truth within 0.02 voxel; mean pore
      radius within 1 %; phase fractions within 0.005 (thresholds from a
      histogram of the whole volume move by at most one bin).
``dem-sanity CPU_RUN GPU_RUN``
    The whole DEM of one scenario on both backends: not compared particle by
    particle (chaotic), but the GPU run must have finite positions, every
    load step, and kept particles within 10 % of the CPU run's (the spread
    between seeds of scenarios/quick.toml on the CPU is 1675-1795, ±4 %).
``stage-times RUN LABEL``
    The wall time of each finished stage, from its ``.stage.json`` (no tolerance).
``paper-imaging OUTPUT``
    The stage lines of ``benchmarks/paper_imaging.py`` (no tolerance).
``table``
    Print the table; exit 1 when a row failed.

Every subcommand takes ``--table FILE`` (default ``gpu_check.tsv``).
"""

import argparse
import csv
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _row(table, check, measured, tolerance, ok):
    with open(table, "a", newline="") as fh:
        csv.writer(fh, delimiter="\t").writerow([check, measured, tolerance, "ok" if ok else "FAIL"])


def _within(table, check, value, limit, fmt="{:.3g}", lower=False):
    ok = bool(np.isfinite(value) and (value >= limit if lower else value <= limit))
    _row(table, check, fmt.format(value), ("≥ " if lower else "≤ ") + fmt.format(limit), ok)


def busy_dem(arch):
    """tests/test_dem.py's busy DEM (every force model at work) on ``arch``, with that backend's own driver."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_dem import _busy_run

    sim = _busy_run(None, arch=arch)
    return {"positions_um": sim.positions_um, "orientations": sim.orientations,
            "velocities_um_s": sim.velocities_um_s, "bonds_intact": sim.bonds_intact,
            "head_force_n": sim.head_force_n, "n_steps": sim.n_steps, "n_rebuilds": sim.n_rebuilds}


def compare_drivers(table, a_path, b_path):
    a, b = np.load(a_path), np.load(b_path)
    same = all(np.array_equal(a[k], b[k]) for k in ("n_steps", "n_rebuilds", "bonds_intact"))
    _row(table, "DEM: steps, neighbour rebuilds, broken bonds", "same" if same else "differ", "same", same)
    _within(table, "DEM: max |Δ position| (µm)", float(np.abs(a["positions_um"] - b["positions_um"]).max()), 1e-7)
    _within(table, "DEM: max |Δ orientation|", float(np.abs(a["orientations"] - b["orientations"]).max()), 1e-7)
    speed = float(np.abs(a["velocities_um_s"]).max())
    _within(table, "DEM: max |Δ velocity| / max speed",
            float(np.abs(a["velocities_um_s"] - b["velocities_um_s"]).max()) / speed, 1e-5)
    force = float(a["head_force_n"])
    _within(table, f"DEM: head force ({force:.3g} N on the CPU), relative",
            abs(force - float(b["head_force_n"])) / max(abs(force), 1e-300), 1e-6)


def compare_runs(table, cpu_dir, gpu_dir):
    from synthcal.dataset import load_run

    a, b = load_run(cpu_dir), load_run(gpu_dir)
    labels = max(float(np.mean(a.truth_labels(k) != b.truth_labels(k))) for k in a.steps)
    _within(table, "phantom: fraction of voxels whose label differs (worst step)", labels, 1e-3)
    mu = max(float(np.abs(a.attenuation(k) - b.attenuation(k)).sum() / np.abs(a.attenuation(k)).sum())
             for k in a.steps)
    _within(table, "phantom: attenuation, relative L1 (worst step)", mu, 1e-3)
    recon = max(float(np.sqrt(np.mean((a.volume(k) - b.volume(k)) ** 2) / np.mean(a.volume(k) ** 2)))
                for k in a.steps)
    _within(table, "reconstruction: relative RMS difference (worst step)", recon, 1e-3)
    transforms = list(zip(a.registration()[0], b.registration()[0]))
    shifts = max(float(np.abs(ta.translation_voxels - tb.translation_voxels).max()) for ta, tb in transforms)
    _within(table, "registration: max |Δ shift| (voxels)", shifts, 0.01)
    # a rotation of 1e-4 rad moves a point 50 voxels from the centre by 0.005 voxel
    turns = max(float(np.abs(ta.rotation - tb.rotation).max()) for ta, tb in transforms)
    _within(table, "registration: max |Δ rotation matrix entry|", turns, 1e-4)
    for k in a.steps[1:]:
        fa, fb = a.dvc(k), b.dvc(k)
        _within(table, f"DVC step {k}: fraction of nodes ok on one backend only", float(np.mean(fa["ok"] != fb["ok"])),
                0.05)
        both = fa["ok"] & fb["ok"]
        diff = np.abs(fa["displacement_vox"][both] - fb["displacement_vox"][both])
        diff = float(diff.max()) if both.any() else np.nan
        _within(table, f"DVC step {k}: max |Δ displacement| where ok on both (voxels)", diff, 0.05)
    sa, sb = a.scores(), b.scores()
    for ra, rb in zip(sa["steps"], sb["steps"]):
        k = ra["step"]
        _within(table, f"score step {k}: |Δ DVC RMS error| (voxels)",
                abs(ra["dvc"]["rms_error_voxels"] - rb["dvc"]["rms_error_voxels"]), 0.02)
        _within(table, f"score step {k}: mean pore radius, relative",
                abs(ra["pores"]["mean_radius_um"] / rb["pores"]["mean_radius_um"] - 1), 0.01)
        _within(table, f"score step {k}: max |Δ phase fraction|",
                max(abs(ra["phases"][f"{p}_fraction"] - rb["phases"][f"{p}_fraction"])
                    for p in ("inactive", "nmc", "pore", "cbd")), 0.005)


def dem_sanity(table, cpu_dir, gpu_dir):
    from synthcal.dataset import load_run

    a, b = load_run(cpu_dir).trajectory(), load_run(gpu_dir).trajectory()
    same = len(a.steps) == len(b.steps)
    _row(table, "DEM (whole scenario): load steps", f"{len(b.steps)}", f"= {len(a.steps)}", same)
    finite = all(np.isfinite(s.positions_um).all() for s in b.steps)
    _row(table, "DEM (whole scenario): positions finite", str(finite), "True", finite)
    n_a, n_b = len(a.steps[-1].radii_um), len(b.steps[-1].radii_um)
    _within(table, f"DEM (whole scenario): kept particles, relative to the CPU's {n_a}", abs(n_b / n_a - 1), 0.10)


def stage_times(table, run_dir, label):
    from synthcal.pipeline import read_stamp
    from synthcal.stages import STAGES

    for stage in STAGES:
        stamp = read_stamp(Path(run_dir) / stage.folder)
        if stamp is not None:
            _row(table, f"time: {label} {stage.name}", f"{stamp.get('wall_time_s', float('nan')):.1f} s", "", True)


def paper_imaging(table, output):
    for stage, record in re.findall(r"^(phantom|projections|reconstruct) (\{.*\})$", Path(output).read_text(), re.M):
        record = json.loads(record)
        _row(table, f"time: paper imaging, one step, {stage}",
             f"{record['compute_s']:.1f} s, {record['peak_gib']:.2f} GiB RSS", "", True)


def print_table(table):
    rows = list(csv.reader(open(table, newline=""), delimiter="\t")) if Path(table).is_file() else []
    head = ["check", "measured", "tolerance", "result"]
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
    for r in [head, ["-" * w for w in widths]] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    failed = [r for r in rows if r[3] != "ok"]
    print(f"{len(rows) - len(failed)} ok, {len(failed)} failed" if rows else "no checks ran")
    return 1 if failed or not rows else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default="gpu_check.tsv")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("drivers")
    d.add_argument("--arch", required=True, choices=("cpu", "gpu"))
    d.add_argument("out")
    for name, args in (("compare-drivers", ("cpu", "gpu")), ("compare-runs", ("cpu", "gpu")),
                       ("dem-sanity", ("cpu", "gpu")), ("stage-times", ("run", "label")),
                       ("paper-imaging", ("output",))):
        p = sub.add_parser(name)
        for arg in args:
            p.add_argument(arg)
    sub.add_parser("table")
    args = ap.parse_args(argv)
    if args.command == "drivers":
        np.savez(args.out, **busy_dem(args.arch))
    elif args.command == "compare-drivers":
        compare_drivers(args.table, args.cpu, args.gpu)
    elif args.command == "compare-runs":
        compare_runs(args.table, args.cpu, args.gpu)
    elif args.command == "dem-sanity":
        dem_sanity(args.table, args.cpu, args.gpu)
    elif args.command == "stage-times":
        stage_times(args.table, args.run, args.label)
    elif args.command == "paper-imaging":
        paper_imaging(args.table, args.output)
    else:
        return print_table(args.table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
