"""The ``synthcal`` command: run scenarios, check them, analyse real scans."""

import argparse
import json
import sys
from pathlib import Path

from synthcal.scenario import ScenarioError, load, to_toml

STAGE_NAMES = ("dem", "phantom", "projections", "reconstruct", "preprocess", "dvc", "strain",
               "pores", "score", "report")


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
    run.add_argument("--force", action="store_true", help="recompute every stage, ignoring the cache")

    check = commands.add_parser(
        "check", help="validate a scenario and print it resolved",
        description="Validate a scenario file and print it with every default filled in.")
    check.add_argument("scenario", metavar="SCENARIO", help="scenario TOML file")

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
    analyse.add_argument("--subvolume-um", type=float, default=8.0, metavar="L",
                         help="DVC subvolume edge in um (default 8)")
    analyse.add_argument("--node-spacing-um", type=float, default=None, metavar="S",
                         help="distance between DVC nodes in um (default: half the subvolume)")
    analyse.add_argument("--max-displacement-um", type=float, default=10.0, metavar="D",
                         help="largest displacement searched, um (default 10)")
    analyse.add_argument("--median-size", type=int, default=3, metavar="N",
                         help="3D median filter edge in voxels, 1 = off (default 3)")
    analyse.add_argument("--register-box-um", type=float, nargs=6, metavar=("Z0", "Z1", "Y0", "Y1", "X0", "X1"),
                         help="region to register on (default: the lowest quarter of the volume)")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        if args.command == "check":
            scenario = load(args.scenario)
            sys.stdout.write(to_toml(scenario))
            return 0
        if args.command == "run":
            return _run(args)
        if args.command == "analyse":
            return _analyse(args)
    except (ScenarioError, ValueError) as exc:
        print(f"synthcal: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("synthcal: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 1


def _run(args):
    from synthcal import pipeline

    scenario = load(args.scenario)
    out = Path(args.out) if args.out else Path(scenario.output.directory.format(name=scenario.name))
    print(f"synthcal: scenario {scenario.name!r} -> {out} (arch {args.arch})", file=sys.stderr)
    outcome = pipeline.run(scenario, out, arch=args.arch, only=args.only, start=args.start,
                           force=args.force, log=lambda m: print(m, file=sys.stderr))
    for line in pipeline.outputs_summary(out, outcome):
        print(line)
    return 0


def _analyse(args):
    """The analysis chain on the user's scans, into a folder that appears when complete."""
    import os
    import shutil

    import numpy as np

    from analysis.chain import analyse_pores, preprocess_series, strain_fields, write_dvc, write_strain
    from analysis.dvc import correlate
    from analysis.io import read_volume, write_volume
    from analysis.pores import plot_cpsd, write_cpsd_csv, write_phase_fractions_csv
    from synthcal.progress import ProgressBar

    if len(args.volumes) < 2:
        raise ValueError("VOLUME.tif: expected a reference and at least one deformed volume")
    volumes, sizes = zip(*(read_volume(p) for p in args.volumes))
    v = args.voxel_size_um or sizes[0]
    if v is None:
        raise ValueError(f"{args.volumes[0]}: no voxel size in the TIFF metadata; pass --voxel-size-um")
    if not v > 0:
        raise ValueError(f"--voxel-size-um: expected > 0, got {v}")
    region = None
    if args.register_box_um:
        lo_hi = np.asarray(args.register_box_um, float).reshape(3, 2) / v
        region = tuple(slice(int(np.ceil(a)), int(np.floor(b)) + 1) for a, b in lo_hi)
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        bar = ProgressBar("preprocess", "median filter, contrast matching, registration")
        processed, transforms = preprocess_series(volumes, median_size=args.median_size, region=region, progress=bar)
        bar.done()
        edge = int(round(args.subvolume_um / v)) | 1
        spacing = max(int(round((args.node_spacing_um or args.subvolume_um / 2) / v)), 1)
        bar = ProgressBar("dvc", "digital volume correlation and strain")
        for k in range(1, len(processed)):
            result = correlate(processed[0], processed[k], subvolume_voxels=edge, node_spacing_voxels=spacing,
                               max_displacement_voxels=args.max_displacement_um / v,
                               progress=bar.sub((k - 1) / (len(processed) - 1), k / (len(processed) - 1)))
            write_dvc(tmp, f"dvc_step{k}", result, v)
            write_strain(tmp, f"strain_step{k}", result.nodes,
                         strain_fields(result.nodes, result.displacement, result.ok), v)
        bar.done()
        bar = ProgressBar("pores", "segmentation, CPSD, phase fractions")
        curves, phases = {}, {}
        for k, volume in enumerate(processed):
            write_volume(tmp / f"processed_step{k}.tif", volume, v)
            a = analyse_pores(volume, v, progress=bar.sub(k / len(processed), (k + 1) / len(processed)))
            write_volume(tmp / f"labels_step{k}.tif", a.labels, v, description="0 pore, 1 CBD, 2 NMC")
            write_cpsd_csv(tmp / f"cpsd_step{k}.csv", a.cpsd)
            curves[f"step{k}"], phases[f"step{k}"] = a.cpsd, a.phases
        write_phase_fractions_csv(tmp / "phase_fractions.csv", phases)
        plot_cpsd(curves, tmp / "cpsd.png")
        bar.done()
        (tmp / "registration.json").write_text(json.dumps(
            [{"step": k, "matrix": t.matrix().tolist(), "cc": t.cc} for k, t in enumerate(transforms)], indent=1))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    print(f"analysis of {len(volumes)} volumes written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
