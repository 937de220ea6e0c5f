"""The ``synthcal`` command: run scenarios, check them, analyse real scans."""

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from synthcal.dataset import FOLDERS
from synthcal.memory import keep_freed_memory
from synthcal.scenario import Analysis, Dvc, Pores, ScenarioError, load, to_toml, with_overrides

STAGE_NAMES = tuple(FOLDERS)


def _parser():
    parser = argparse.ArgumentParser(
        prog="synthcal",
        description="Synthetic in-situ compression experiments on electrode pillars, "
                    "with ground truth for digital volume correlation.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="run a scenario end to end (cached, resumable)",
        description="Run every stage of a scenario into a run folder. Stages whose inputs "
                    "are unchanged are skipped; an interrupted run resumes where it stopped.")
    run.add_argument("scenario", metavar="SCENARIO", help="scenario TOML file, e.g. scenarios/quick.toml")
    run.add_argument("--out", metavar="DIR",
                     help="run folder (default: the scenario's [output] directory, runs/NAME)")
    run.add_argument("--arch", choices=("cpu", "gpu"), default="cpu",
                     help="taichi backend for the DEM, phantom and projector kernels (default cpu)")
    group = run.add_mutually_exclusive_group()
    group.add_argument("--from", dest="start", choices=STAGE_NAMES, metavar="STAGE",
                       help=f"recompute this stage and all after it; stages: {', '.join(STAGE_NAMES)}")
    group.add_argument("--only", choices=STAGE_NAMES, metavar="STAGE",
                       help="recompute just this stage (its inputs must exist)")
    run.add_argument("--until", choices=STAGE_NAMES, metavar="STAGE",
                     help="stop after this stage (e.g. --until phantom: the truth without the scans)")
    run.add_argument("--force", action="store_true", help="recompute every stage, ignoring the cache")
    _add_set(run)

    check = commands.add_parser(
        "check", help="validate a scenario and print it resolved",
        description="Validate a scenario file and print it with every default filled in.")
    check.add_argument("scenario", metavar="SCENARIO", help="scenario TOML file")
    _add_set(check)

    analyse = commands.add_parser(
        "analyse", help="run the analysis chain on your own scans (no ground truth)",
        description="Median filter, contrast matching, rigid registration, DVC, strain, "
                    "segmentation, CPSD and phase fractions on reconstructed volumes from any "
                    "instrument. The first volume is the reference; each further one is "
                    "correlated with it.")
    analyse.add_argument("volumes", nargs="+", metavar="VOLUME.tif",
                         help="reconstructed volumes (3D TIFF stacks, z = compression axis), reference first")
    analyse.add_argument("--voxel-size-um", type=float, metavar="V",
                         help="voxel edge in um (default: read from the TIFF metadata)")
    analyse.add_argument("--out", metavar="DIR", default="analysis-out", help="output folder (default analysis-out)")
    analyse.add_argument("--mode", choices=("best", "paper"), default=Analysis().mode,
                         help="best: the project's own chain; paper: the seed paper's methods (linear contrast "
                              "match, one particle for registration, tiled rigid DVC, NMC vs the rest, whole-voxel "
                              f"CPSD) (default {Analysis().mode})")
    d = Dvc()
    analyse.add_argument("--subvolume-um", type=float, default=d.subvolume_um, metavar="L",
                         help=f"DVC subvolume edge in um (default {d.subvolume_um:g})")
    analyse.add_argument("--node-spacing-um", type=float, default=None, metavar="S",
                         help="distance between DVC nodes in um (default: half the subvolume; best mode only: "
                              "paper mode tiles the subvolumes)")
    analyse.add_argument("--max-displacement-um", type=float, default=d.max_displacement_um, metavar="D",
                         help=f"largest displacement searched, um (default {d.max_displacement_um:g})")
    analyse.add_argument("--median-size", type=int, default=d.median_filter_size, metavar="N",
                         help=f"3D median filter edge in voxels, 1 = off (default {d.median_filter_size})")
    analyse.add_argument("--cc-threshold", type=float, default=d.cc_threshold, metavar="C",
                         help=f"nodes below this correlation are not trusted (default {d.cc_threshold:g})")
    analyse.add_argument("--edge-exclusion-um", type=float, default=Pores().edge_exclusion_um, metavar="E",
                         help=f"margin left out of the pore analysis (default {Pores().edge_exclusion_um:g})")
    analyse.add_argument("--register-box-um", type=float, nargs=6, metavar=("Z0", "Z1", "Y0", "Y1", "X0", "X1"),
                         help="region to register on, um from the first voxel's centre "
                              "(default: the rows within a quarter subvolume edge of the sample's first row; "
                              "paper mode: one particle, picked automatically)")
    analyse.add_argument("--sample-z-um", type=float, nargs=2, metavar=("Z0", "Z1"),
                         help="rows of the sample (e.g. between pin and head), um; DVC nodes and the pore "
                              "analysis stay inside them (default: all rows)")
    analyse.add_argument("--arch", choices=("cpu", "gpu"), default="cpu", help="taichi backend (default cpu)")

    score = commands.add_parser(
        "score", help="score another code's DVC result against a run's truth",
        description="Score DVC results of any code (spam TSV, CSV z,y,x,uz,uy,ux[,cc][,ok], or .npz with nodes and "
                    "displacement; voxels of the run's reconstructions, reference positions) against the run's "
                    "truth, with the code that scores synthcal's own DVC. Writes OUT/step{K}.json with the keys of "
                    "the dvc block of scores.json.")
    score.add_argument("run", metavar="RUN", help="a run folder written by synthcal run")
    score.add_argument("--dvc", action="append", required=True, metavar="K=FILE",
                       help="result for load step K (repeatable), e.g. --dvc 1=spam-step1.tsv")
    score.add_argument("--rule", choices=("particle", "subvolume_mean"), default="particle",
                       help="truth at a node: the particle there (subvolume mean in pores; default) or the "
                            "subvolume's solid mean")
    score.add_argument("--subvolume-voxels", type=int, metavar="N",
                       help="the other code's subvolume edge in voxels (default: the run's)")
    score.add_argument("--out", metavar="DIR", default="score-out", help="output folder (default score-out)")

    export = commands.add_parser(
        "export", help="write a run's reconstructions and DVC result for another code",
        description="Write the reconstructions (TIFF) and synthcal's own DVC result of every step in another "
                    "code's layout, so its users start from the same data.")
    export.add_argument("run", metavar="RUN", help="a run folder written by synthcal run")
    export.add_argument("--format", choices=("spam",), default="spam", help="layout (default spam)")
    export.add_argument("--out", metavar="DIR", help="output folder (default RUN/export-FORMAT)")
    sweep = commands.add_parser(
        "sweep", help="many runs on Dask distributed, one results table",
        description="Run every combination of a sweep file (a base scenario, seeds, a [grid] of values, "
                    "[random] draws; see synthcal.sweep) as cached run folders under DIR/runs, on a local "
                    "Dask cluster or a running scheduler, and write DIR/results.parquet and .csv. "
                    "Run it again to finish an interrupted sweep; finished runs are skipped.")
    sweep.add_argument("sweep", nargs="?", metavar="SWEEP.toml", help="sweep file")
    sweep.add_argument("--out", metavar="DIR", help="sweep folder (default: sweeps/ and the sweep file's name)")
    where = sweep.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="processes of the local cluster, each on its own share of the CPUs (default: one per CPU)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="use a running Dask scheduler, e.g. tcp://host:8786")
    sweep.add_argument("--arch", choices=("cpu", "gpu"), default="cpu", help="taichi backend of the runs (default cpu)")
    sweep.add_argument("--report", metavar="DIR",
                       help="instead of running: draw the figures of the finished sweep in DIR into DIR/report")
    return parser


def _add_set(parser):
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a scenario key, e.g. --set seed=3 --set dvc.subvolume_um=6 (repeatable; "
                             "values as in TOML)")


def main(argv=None):
    args = _parser().parse_args(argv)
    keep_freed_memory()
    try:
        if args.command == "check":
            scenario = with_overrides(load(args.scenario), args.assignments)
            sys.stdout.write(to_toml(scenario))
            return 0
        if args.command == "run":
            return _run(args)
        if args.command == "analyse":
            return _analyse(args)
        if args.command == "score":
            return _score(args)
        if args.command == "export":
            return _export(args)
        if args.command == "sweep":
            return _sweep(args)
    except (ScenarioError, ValueError) as exc:
        print(f"synthcal: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        # a stage that failed (e.g. the DEM blew up): its output folder was never completed
        print(f"synthcal: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("synthcal: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 1


def _run(args):
    from synthcal import pipeline

    scenario = with_overrides(load(args.scenario), args.assignments)
    out = Path(args.out) if args.out else scenario.output.path(scenario.name)
    print(f"synthcal: scenario {scenario.name!r} -> {out} (arch {args.arch})", file=sys.stderr)
    outcome = pipeline.run(scenario, out, arch=args.arch, only=args.only, start=args.start, until=args.until,
                           force=args.force, log=lambda m: print(m, file=sys.stderr))
    for line in pipeline.outputs_summary(out, outcome):
        print(line)
    return 0


def _sweep(args):
    from synthcal import sweep

    if args.report:
        if args.sweep:
            raise ValueError("--report DIR: draws an existing sweep folder; give no SWEEP.toml with it")
        from synthcal.sweep_report import write_sweep_report

        print(f"sweep report: {write_sweep_report(args.report)}")
        return 0
    if not args.sweep:
        raise ValueError("SWEEP.toml: expected a sweep file (or --report DIR)")
    plan = sweep.load_sweep(args.sweep)
    out = Path(args.out) if args.out else Path("sweeps") / Path(args.sweep).stem
    records = sweep.run_sweep(plan, out, workers=args.workers, scheduler=args.scheduler, arch=args.arch,
                              log=lambda m: print(m, file=sys.stderr))
    failed = sorted(name for name, record in records.items() if record["error"])
    print(f"results: {out / 'results.parquet'} and {out / 'results.csv'} ({len(plan.runs)} runs)")
    print(f"figures: synthcal sweep --report {out}")
    if failed:
        print(f"failed: {', '.join(failed)} (logs in {out / 'logs'})", file=sys.stderr)
        return 1
    return 0


def _analyse(args):
    """The analysis chain on the user's scans, into a folder that appears when complete."""
    from analysis.chain import run_chain
    from analysis.io import read_volume
    from synthcal.progress import ProgressBar
    from synthcal.scenario import chain_settings

    if len(args.volumes) < 2:
        raise ValueError("VOLUME.tif: expected a reference and at least one deformed volume")
    if args.mode == "paper" and args.node_spacing_um is not None:
        raise ValueError("--node-spacing-um: paper mode tiles the subvolumes (node spacing = edge); leave it out")
    volumes, sizes = zip(*(read_volume(p) for p in args.volumes))
    v = args.voxel_size_um or sizes[0]
    if v is None:
        raise ValueError(f"{args.volumes[0]}: no voxel size in the TIFF metadata; pass --voxel-size-um")
    if not v > 0:
        raise ValueError(f"--voxel-size-um: expected > 0, got {v}")
    for path, size in zip(args.volumes[1:], sizes[1:]):
        if args.voxel_size_um is None and size is not None and not np.isclose(size, sizes[0], rtol=1e-6):
            raise ValueError(f"{path}: voxel size {size:g} um differs from the reference's {sizes[0]:g} um "
                             "(resample it, or pass --voxel-size-um to use one size for all)")
    dvc = dataclasses.replace(Dvc(), subvolume_um=args.subvolume_um, max_displacement_um=args.max_displacement_um,
                              node_spacing_um=args.node_spacing_um or args.subvolume_um / 2,
                              median_filter_size=args.median_size, cc_threshold=args.cc_threshold,
                              subvolume_study_um=[])
    box = None
    if args.register_box_um:
        lo_hi = np.asarray(args.register_box_um, float).reshape(3, 2) / v
        box = [(int(np.ceil(a)), int(np.floor(b)) + 1) for a, b in lo_hi]
    settings = chain_settings(dvc, Pores(edge_exclusion_um=args.edge_exclusion_um), v, mode=args.mode,
                              registration_box=box)
    rows = None
    if args.sample_z_um:
        z0, z1 = (np.asarray(args.sample_z_um, float) / v)
        rows = [(int(np.ceil(z0)), int(np.floor(z1)) + 1)] * len(volumes)
    bar = ProgressBar("analyse", "median filter, registration, DVC, strain, segmentation, CPSD")
    run_chain(list(volumes), settings, Path(args.out), sample_rows=rows, names=list(args.volumes), arch=args.arch,
              progress=bar)
    bar.done()
    print(f"analysis of {len(volumes)} volumes written to {args.out}")
    return 0


def _score(args):
    """Score other codes' DVC results; one JSON per step, a summary line each."""
    import json

    from analysis.io import atomic_output
    from synthcal.dataset import load_run
    from validation.dvc_files import score_file

    run = load_run(args.run)
    jobs = []
    for text in args.dvc:
        step, sep, path = text.partition("=")
        if not sep or not step.strip().isdigit() or not path:
            raise ValueError(f"--dvc {text!r}: expected K=FILE, e.g. 1=result.tsv")
        jobs.append((int(step), path))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for k, path in jobs:
        block = score_file(run, k, path, rule=args.rule, subvolume_voxels=args.subvolume_voxels)
        with atomic_output(out / f"step{k}.json") as tmp:
            tmp.write_text(json.dumps(block, indent=1) + "\n", encoding="utf-8")
        print(f"step {k}: {path}: RMS error {block['rms_error_voxels']:.4g} voxels "
              f"({block['rms_error_um']:.4g} um), median {block['median_error_voxels']:.4g}, "
              f"{block['scored_nodes']} of {block['nodes']} nodes scored ({args.rule} rule) -> {out / f'step{k}.json'}")
    return 0


def _export(args):
    """Reconstructions and synthcal's own DVC in another code's layout."""
    import shutil

    from analysis.io import atomic_output
    from synthcal.dataset import load_run
    from validation.dvc_files import write_spam_tsv

    run = load_run(args.run)
    out = Path(args.out) if args.out else run.path / f"export-{args.format}"
    transforms = run.registration()[0]
    with atomic_output(out, folder=True) as tmp:
        for k in run.steps:
            shutil.copyfile(run.folder("reconstruct") / f"step{k}.tif", tmp / f"step{k}.tif")
            if k:
                write_spam_tsv(tmp / f"synthcal-ldic-step{k}.tsv", run.dvc(k), transforms[k])
    print(f"{len(run.steps)} reconstructions and {len(run.steps) - 1} DVC fields in spam's layout written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
