"""Benchmark: memory and time of the paper scenario's imaging chain on the CPU.

The issue asks that the paper scenario (128 nm voxels, 65 µm field of view =
508 detector columns, 801 projections over ±70°) fit in 24 GiB. This script
runs its imaging chain on one load step without the DEM:

0. particles: a synthetic pillar at the paper geometry (80 µm diameter,
   60 µm high, solid fraction ~0.6, NMC:carbon:PVDF 90:5:5 by mass, i.e.
   ~36 % of the solid volume is CBD at 930 kg/m³): NMC spheres of diameter
   2.5-10 µm placed largest first by random sequential addition (overlap up
   to 10 % of the radius sum allowed), then 1.3 µm CBD spheres outside the
   NMC (CBD-CBD overlap up to 30 % of a diameter allowed), random
   quaternions; ``numpy.random.default_rng(0)``.
1. phantom: :func:`synthcal.phantom.voxelise` on the grid of
   :meth:`synthcal.grid.Grid.around_particles` (whole pillar, foil below, head on
   the pillar top, 5.4 keV, supersampling 2 as in ``scenarios/paper.toml``).
2. projections: :func:`synthcal.xray.simulate_scan`, 801 angles over ±70°,
   n_det = 508, incident 5000 counts, 10 flats, blur 0.7 pixel, the particles
   rendered slab by slab on the grid twice as fine
   (:func:`synthcal.phantom.attenuation_rows`) and binned 2x2, as the paper
   scenario does (the stored phantom is not read).
3. reconstruction: :func:`analysis.reconstruct.normalise` and
   :func:`analysis.reconstruct.fbp` (ramp, cylinder padding) to (nz, 508, 508).

Each stage runs in its own fresh process, so its peak RSS (``ru_maxrss``) is
its own; arrays go between stages through ``.npy`` files. "compute" is the
library call alone (taichi kernels compile inside it on a cold cache),
"process" the whole subprocess (imports, taichi init, loading, saving).

With ``--slab N`` the phantom grid is cut to N slices around the pillar's
mid-height (everything else paper-size; the chain is independent slice by
slice, except that every particle is still binned): memory above the
process's baseline (RSS after imports and taichi init, measured) and time are
then extrapolated linearly in nz to the full grid.

Run: ``/tmp/venv/bin/python benchmarks/paper_imaging.py [--slab N] [--arch cpu|gpu]``

Latest table (2-core x86_64 VM, 24 GiB, shared with other jobs; full
height, no slab; arch cpu; 632 NMC + 56181 CBD particles, solid fraction
0.601; grid (516, 628, 628) = 203 M voxels, n_det 508; 801 x 516 x 508
projections; volume (516, 508, 508)):

| stage | compute (s) | process (s) | peak RSS (GiB) | baseline RSS (GiB) |
|---|---|---|---|---|
| phantom | 72.7 | 77.8 | 3.25 | 0.11 |
| projections | 272.9 | 275.9 | 4.81 | 0.11 |
| reconstruct | 297.5 | 298.6 | 4.31 | 0.11 |

That table predates the oversampled projections (it projected the stored
phantom on its own grid). With them (``--slab 16``, 2 Dec 2026, the machine
at load 8 on 2 cores, so times ~4x long): phantom 131 s / 0.89 GiB,
projections 350 s / 1.14 GiB, reconstruct 16 s / 0.27 GiB. The projections
stage now streams: its memory does not grow with nz except for the counts
(801 x 516 x 508 float32 = 0.85 GB), so its extrapolated RSS is meaningless
(~2.5 GiB expected at full height), and its time per slab includes the
binning of all 56 k particles (this synthetic pillar's CBD spheres; the DEM
scenarios bind NMC only) once per slab of 8 fine rows. From CPU-time rates on
the quick scenario (render 2.4 M fine voxels, project 0.7 G ray samples per
CPU-second), one paper scan at oversampling 2 costs ~2.6 k CPU-s (render
~0.8 k, project ~1.7 k): ~21 min on two free cores, against ~4.5 min before.
Since 4 Dec 2026 the fine grid renders at 5.1 M fine voxels per CPU-s (3.2 M
before, measured in one script on the quick run's step 1, fine rows by 80): a
paper scan is then ~0.4 k CPU-s of rendering and ~1.8 k of projecting
(estimated), and the projector is the stage's wall.

(reconstruct: normalise 3.0 s, the rest FBP). The whole chain for one load
step takes ~11 min and at most 4.8 GiB, so it fits in 24 GiB with a wide
margin; the peak is the forward projection, which holds the volume, its
z-block copy, its transposed copy for y-major rays, the blocked sinogram and
two re-ordered copies of it at once (6 x ~0.78 GiB). An earlier full run
on the same machine gave 110 / 257 / 329 s (shared machine: timings vary
by ~30 %), and ``--slab 64`` extrapolated 131 / 330 / 360 s and
4.2 / 5.0 / 4.5 GiB, i.e. the linear extrapolation is on the safe side.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

VOXEL_UM = 0.128
FOV_UM = 65.0
PILLAR_DIAMETER_UM = 80.0
PILLAR_HEIGHT_UM = 60.0
SOLID_FRACTION = 0.6
NMC_DIAMETER_UM = (2.5, 10.0)
CBD_DIAMETER_UM = 1.3
ENERGY_KEV = 5.4
N_PROJECTIONS = 801
HALF_RANGE_DEG = 70.0
INCIDENT_COUNTS = 5000.0
N_FLATS = 10
SUPERSAMPLING = 2
OVERSAMPLING = 2  # the paper scenario's [imaging] projection_oversampling
PSF_SIGMA_PX = 0.7
MARGIN_UM = 3.0  # head and foil margins of the paper scenario


def _cbd_volume_share():
    """CBD share of the solid volume for NMC:carbon:PVDF 90:5:5 by mass."""
    nmc = 90.0 / 4650.0
    cbd = 10.0 / 930.0
    return cbd / (nmc + cbd)


def _in_cylinder(rng, n, radius_um, z_lo, z_hi):
    """n uniform points (z, y, x) in a z-cylinder of the given radius and span."""
    r = radius_um * np.sqrt(rng.random(n))
    t = 2 * np.pi * rng.random(n)
    return np.column_stack([rng.uniform(z_lo, z_hi, n), r * np.sin(t), r * np.cos(t)])


def build_particles(seed=0):
    """Synthetic pillar: positions (N, 3) µm, radii (N,), kinds (N,), quaternions (N, 4)."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    volume = np.pi * (0.5 * PILLAR_DIAMETER_UM) ** 2 * PILLAR_HEIGHT_UM
    solid = SOLID_FRACTION * volume
    cbd_share = _cbd_volume_share()
    # NMC diameters: uniform in the range until their volume is reached
    d = rng.uniform(*NMC_DIAMETER_UM, 4000)
    v = np.pi / 6 * d ** 3
    n_nmc = int(np.searchsorted(np.cumsum(v), (1 - cbd_share) * solid)) + 1
    r_nmc = np.sort(0.5 * d[:n_nmc])[::-1]
    nmc = np.empty((n_nmc, 3))
    r_max = r_nmc[0]
    placed = 0
    # random sequential addition, largest first; each particle tries a batch of spots at once
    for p, r in enumerate(r_nmc):
        tree = cKDTree(nmc[:placed]) if placed else None
        for _ in range(200):
            cand = _in_cylinder(rng, 512, 0.5 * PILLAR_DIAMETER_UM - r, r, PILLAR_HEIGHT_UM - r)
            if tree is None:
                ok = np.ones(len(cand), bool)
            else:
                dist, idx = tree.query(cand, k=min(32, placed), distance_upper_bound=r + r_max)
                dist, idx = dist.reshape(len(cand), -1), idx.reshape(len(cand), -1)
                rad = np.append(r_nmc[:placed], 0.0)[np.minimum(idx, placed)]
                ok = np.all(~np.isfinite(dist) | (dist > 0.9 * (r + rad)), axis=1)
            if ok.any():
                nmc[placed] = cand[np.argmax(ok)]
                placed += 1
                break
    nmc, r_nmc = nmc[:placed], r_nmc[:placed]
    # CBD: batches of candidates outside the NMC, greedy thinning against each other
    rc = 0.5 * CBD_DIAMETER_UM
    n_cbd = int(round(cbd_share * solid / (np.pi / 6 * CBD_DIAMETER_UM ** 3)))
    nmc_tree = cKDTree(nmc)
    cbd = np.empty((0, 3))
    while len(cbd) < n_cbd:
        cand = _in_cylinder(rng, 200_000, 0.5 * PILLAR_DIAMETER_UM - rc, rc, PILLAR_HEIGHT_UM - rc)
        dist, idx = nmc_tree.query(cand, k=8, distance_upper_bound=r_max + rc)
        rad = np.where(np.isfinite(dist), np.append(r_nmc, 0.0)[np.minimum(idx, placed)], 0.0)
        cand = cand[np.all(~np.isfinite(dist) | (dist > 0.95 * (rad + rc)), axis=1)]
        if len(cbd):
            near = cKDTree(cbd).query(cand, distance_upper_bound=1.4 * rc)[0]
            cand = cand[~np.isfinite(near)]
        pairs = cKDTree(cand).query_pairs(1.4 * rc, output_type="ndarray")
        keep = np.ones(len(cand), bool)
        keep[pairs.max(axis=1)] = False  # of each clashing pair, drop the later one
        cbd = np.vstack([cbd, cand[keep][:n_cbd - len(cbd)]])
    positions = np.vstack([nmc, cbd])
    radii = np.concatenate([r_nmc, np.full(len(cbd), rc)])
    kinds = np.concatenate([np.zeros(len(nmc), np.int32), np.ones(len(cbd), np.int32)])
    q = rng.normal(size=(len(positions), 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return positions, radii, kinds, q


def paper_grid(positions, radii):
    from synthcal.grid import Grid

    head_z = float(np.max(positions[:, 0] + radii))
    return Grid.around_particles(positions, radii, [head_z], voxel_size_um=VOXEL_UM, field_of_view_um=FOV_UM,
                                 foil_top_z_um=0.0, foil_margin_um=MARGIN_UM, head_margin_um=MARGIN_UM)


# --- stages, each run in its own process -----------------------------------

def _rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux


def _current_rss_gib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 30


def stage_phantom(work, arch):
    from synthcal.phantom import voxelise

    cfg = json.loads((work / "config.json").read_text())
    part = np.load(work / "particles.npz")
    t = time.perf_counter()
    ph = voxelise(part["positions"], part["radii"], part["kinds"], part["quaternions"],
                  voxel_size_um=VOXEL_UM, shape=tuple(cfg["shape"]), origin_um=cfg["origin_um"],
                  seed=1, head_z_um=cfg["head_z_um"], foil_top_z_um=cfg["foil_top_z_um"],
                  energy_kev=ENERGY_KEV, supersampling=SUPERSAMPLING, arch=arch)
    dt, peak = time.perf_counter() - t, _rss_gib()
    np.save(work / "mu_per_um.npy", ph.mu_per_um)
    counts = sum(np.bincount(sl.ravel(), minlength=5) for sl in ph.labels)
    return dt, peak, {"label_fractions": (counts / counts.sum()).round(4).tolist()}


def stage_projections(work, arch):
    from synthcal.phantom import attenuation_rows
    from synthcal.xray import limited_angles_deg, simulate_scan

    cfg = json.loads((work / "config.json").read_text())
    part = np.load(work / "particles.npz")
    render_rows = attenuation_rows(part["positions"], part["radii"], part["kinds"], part["quaternions"],
                                   voxel_size_um=VOXEL_UM, shape=tuple(cfg["shape"]), origin_um=cfg["origin_um"],
                                   oversampling=OVERSAMPLING, supersampling=SUPERSAMPLING, seed=1,
                                   head_z_um=cfg["head_z_um"], foil_top_z_um=cfg["foil_top_z_um"],
                                   energy_kev=ENERGY_KEV, arch=arch)
    angles = limited_angles_deg(N_PROJECTIONS, HALF_RANGE_DEG)
    t = time.perf_counter()
    scan = simulate_scan(render_rows, tuple(cfg["shape"]), angles, oversampling=OVERSAMPLING,
                         incident_counts=INCIDENT_COUNTS, n_det=cfg["n_det"], n_flats=N_FLATS,
                         psf_sigma_px=PSF_SIGMA_PX, rng_seed=0, arch=arch)
    dt, peak = time.perf_counter() - t, _rss_gib()
    for name in ("counts", "flats", "darks"):
        np.save(work / f"{name}.npy", getattr(scan, name))
    return dt, peak, {"counts_shape": list(scan.counts.shape)}


def stage_reconstruct(work, arch):
    from analysis.reconstruct import fbp, normalise
    from synthcal.xray import limited_angles_deg

    counts = np.load(work / "counts.npy", mmap_mode="r")
    flats, darks = np.load(work / "flats.npy"), np.load(work / "darks.npy")
    angles = limited_angles_deg(N_PROJECTIONS, HALF_RANGE_DEG)
    t = time.perf_counter()
    line = normalise(counts, flats, darks)
    t_norm = time.perf_counter() - t
    del counts
    volume = fbp(line, angles, arch=arch)
    dt, peak = time.perf_counter() - t, _rss_gib()
    return dt, peak, {"normalise_s": round(t_norm, 1), "volume_shape": list(volume.shape),
                "finite": bool(np.isfinite(volume).all())}


STAGES = {"phantom": stage_phantom, "projections": stage_projections, "reconstruct": stage_reconstruct}


def _child(stage, work, arch):
    """Run one stage in this (fresh) process and print its numbers as JSON."""
    from analysis._taichi import ensure_taichi

    ensure_taichi(arch)
    base = _current_rss_gib()
    dt, peak, extra = STAGES[stage](Path(work), arch)
    print(json.dumps({"compute_s": dt, "peak_gib": peak, "base_gib": base, **extra}))


def _run_stage(stage, work, arch):
    t = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", stage, "--work", str(work), "--arch", arch],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise RuntimeError(f"stage {stage} failed with exit status {out.returncode}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_s"] = time.perf_counter() - t
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slab", type=int, default=0, help="phantom slices (0 = whole pillar)")
    ap.add_argument("--arch", default="cpu")
    ap.add_argument("--work", default=None, help="folder for the .npy files (default: a temp dir)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child, args.work, args.arch)
        return

    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        positions, radii, kinds, quats = build_particles(0)
        t_particles = time.perf_counter() - t
        grid = paper_grid(positions, radii)
        full_nz = grid.shape[0]
        shape, origin = list(grid.shape), list(grid.origin_um)
        if args.slab:
            k0 = full_nz // 2 - args.slab // 2
            origin[0] += k0 * VOXEL_UM
            shape[0] = args.slab
        cfg = {"shape": shape, "origin_um": origin, "n_det": grid.n_det, "head_z_um": grid.head_z_um[0],
               "foil_top_z_um": grid.foil_top_z_um}
        (work / "config.json").write_text(json.dumps(cfg))
        np.savez(work / "particles.npz", positions=positions, radii=radii, kinds=kinds, quaternions=quats)
        solid = np.sum(4 / 3 * np.pi * radii ** 3) / (np.pi * 40.0 ** 2 * PILLAR_HEIGHT_UM)
        print(f"particles: {int(np.sum(kinds == 0))} NMC + {int(np.sum(kinds == 1))} CBD, "
              f"solid fraction {solid:.3f} (sum of sphere volumes), built in {t_particles:.1f} s")
        print(f"full grid {grid.shape}, n_det {grid.n_det}; running grid {shape} on {args.arch}")

        scale = full_nz / shape[0]
        rows = []
        for stage in STAGES:
            res = _run_stage(stage, work, args.arch)
            print(stage, json.dumps(res), flush=True)
            full_peak = res["base_gib"] + (res["peak_gib"] - res["base_gib"]) * scale
            rows.append((stage, res["compute_s"], res["process_s"], res["peak_gib"], res["base_gib"],
                         res["compute_s"] * scale, full_peak))

    if scale == 1:
        print("\n| stage | compute (s) | process (s) | peak RSS (GiB) | baseline RSS (GiB) |")
        print("|---|---|---|---|---|")
        for stage, c, p, peak, base, _, _ in rows:
            print(f"| {stage} | {c:.1f} | {p:.1f} | {peak:.2f} | {base:.2f} |")
        return
    print(f"\n| stage | compute (s) | process (s) | peak RSS (GiB) | baseline RSS (GiB) "
          f"| compute at nz={full_nz} (s) | peak RSS at nz={full_nz} (GiB) |")
    print("|---|---|---|---|---|---|---|")
    for stage, c, p, peak, base, c_full, peak_full in rows:
        print(f"| {stage} | {c:.1f} | {p:.1f} | {peak:.2f} | {base:.2f} | {c_full:.0f} | {peak_full:.2f} |")
    print(f"(measured at nz={shape[0]}; the last two columns scale time and RSS above baseline by {scale:.2f})")

if __name__ == "__main__":
    main()
