"""Benchmark: the phantom of a paper-sized pillar with its binder (bridges and films).

Sample: NMC spheres on a jittered cubic lattice (spacing 7.2 µm, radii
3.24-3.56 µm, centres jittered by up to 0.15 µm) inside a cylinder of the
paper's size (80 µm across, 60 µm tall) on the foil; bonds between every
pair of neighbours closer than 0.6 µm surface to surface: 648 particles
and 1687 bonds at full size; ``scale`` shrinks the pillar's
width and height. Grid: the paper's 0.128 µm voxels, supersampling 2,
foil and head margins 3 µm (``Grid.around_particles``).

Cases, each timed (wall clock and the process' CPU time: on a shared
machine the CPU time is the steadier number) with the kernels compiled before:
* ``no binder``: ``voxelise`` without a binder (what main does);
* ``design``: ``design_binder`` (bridge radius, one census pass for the film);
* ``step 0``: ``voxelise`` with the binder at the reference;
* ``step k``: compressed 5 % in z about the foil, every particle turned by
  up to 2 degrees and moved by up to 0.1 µm at random, 10 % of the bonds broken:
  every binder point is pulled back through its bridge or particle;
* ``summary``: ``phase_summary`` of the step-0 labels (phase fractions and
  two CPSDs on the field of view, 65 µm wide).

Run: ``python benchmarks/phantom_binder.py [scale]`` (default 1.0).

Latest table: see the README ("Phantom") for the numbers and the machine.
"""

import sys
import time

import numpy as np

from synthcal.binder import design_binder
from synthcal.grid import Grid
from synthcal.materials import binder_volume_per_nmc_volume
from synthcal.phantom import voxelise
from synthcal.truth import phase_summary


def lattice_pillar(scale, seed=0, spacing_um=7.2, diameter_um=80.0, height_um=60.0):
    rng = np.random.default_rng(seed)
    half = 0.5 * diameter_um * scale
    n_xy = int(np.ceil(half / spacing_um))
    n_z = int(height_um * scale / spacing_um)
    g = np.arange(-n_xy, n_xy + 1) * spacing_um
    z = (np.arange(n_z) + 0.5) * spacing_um
    pos = np.stack(np.meshgrid(z, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    radii = spacing_um * rng.uniform(0.45, 0.494, len(pos))
    keep = np.hypot(pos[:, 1], pos[:, 2]) + radii <= half
    pos, radii = pos[keep] + rng.uniform(-0.15, 0.15, (keep.sum(), 3)), radii[keep]
    pos[:, 0] = np.maximum(pos[:, 0], radii)  # on or above the foil
    d = np.linalg.norm(pos[:, None] - pos[None], axis=2) - radii[:, None] - radii[None]
    i, j = np.nonzero(np.triu(d < 0.6, 1))
    return pos, radii, np.column_stack([i, j])


def main(scale=1.0):
    pos, radii, bonds = lattice_pillar(scale)
    n, m = len(pos), len(bonds)
    kinds = np.zeros(n, np.int32)
    quats = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
    head0 = float((pos[:, 0] + radii).max()) + 0.05
    rng = np.random.default_rng(1)
    moved = pos.copy()
    moved[:, 0] *= 0.95
    moved += rng.uniform(-0.1, 0.1, moved.shape)
    axis = rng.normal(size=(n, 3))
    angle = np.deg2rad(rng.uniform(0, 2, n))
    quats_k = np.column_stack([np.cos(angle / 2), np.sin(angle / 2)[:, None] * axis
                               / np.linalg.norm(axis, axis=1, keepdims=True)])
    intact_k = rng.random(m) > 0.1
    grid = Grid.around_particles(pos, radii, [head0, 0.95 * head0], voxel_size_um=0.128,
                                 field_of_view_um=65.0 * scale, foil_top_z_um=0.0, foil_margin_um=3.0,
                                 head_margin_um=3.0)
    common = dict(voxel_size_um=grid.voxel_size_um, shape=grid.shape, origin_um=grid.origin_um, seed=1,
                  foil_top_z_um=0.0, energy_kev=5.4, supersampling=2)
    print(f"{n} particles, {m} bonds, grid {grid.shape} = {np.prod(grid.shape) / 1e6:.0f} M voxels")
    small = dict(common, shape=(8, 8, 8))
    voxelise(pos, radii, kinds, quats, head_z_um=head0, **small)  # compile
    rows = []

    def timed(name, fn):
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        rows.append((name, time.perf_counter() - start, time.process_time() - cpu))
        print(f"| {name} | {rows[-1][1]:.1f} | {rows[-1][2]:.1f} |", flush=True)
        return out

    print("| case | wall (s) | CPU (s, all threads) |\n|---|---|---|")
    timed("no binder", lambda: voxelise(pos, radii, kinds, quats, head_z_um=head0, **common))
    ratio = binder_volume_per_nmc_volume([90.0, 5.0, 5.0], 0.5)
    binder, census = timed("design", lambda: design_binder(
        pos, radii, kinds, quats, bonds, np.ones(m, bool), volume_ratio=ratio, bridge_fraction=0.5,
        voxel_size_um=grid.voxel_size_um, shape=grid.shape, origin_um=grid.origin_um, head_z_um=head0,
        foil_top_z_um=0.0))
    ph0 = timed("step 0", lambda: voxelise(pos, radii, kinds, quats, head_z_um=head0, binder=binder, **common))
    phk = timed("step k", lambda: voxelise(moved, radii, kinds, quats_k, head_z_um=0.95 * head0, binder=binder,
                                           bonds_intact=intact_k, **common))
    timed("summary", lambda: phase_summary(ph0.labels, grid, 0))
    worst = max(rows, key=lambda r: r[1])
    print(f"| worst case: {worst[0]} | {worst[1]:.1f} | {worst[2]:.1f} |")
    cbd0, nmc0 = (np.count_nonzero(ph0.labels == v) for v in (1, 2))
    print(f"film {binder.film_thickness_um:.3f} um, bridge radius fraction {census.bridge_radius_fraction:.3f}, "
          f"bridge share {census.bridge_voxels / max(census.target_cbd_voxels, 1):.3f}; "
          f"CBD/NMC step 0 {cbd0 / nmc0:.4f} (recipe {ratio:.4f}), step k "
          f"{np.count_nonzero(phk.labels == 1) / np.count_nonzero(phk.labels == 2):.4f}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
