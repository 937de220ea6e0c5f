"""Benchmark: synthcal.dem against LIGGGHTS on the same dense cluster of Hertz spheres.

Both codes get the same particles (a jittered cubic lattice of touching
spheres, NMC-like material, random velocities of 0.1 m/s), the same
Hertz–Mindlin contact law with restitution 0.5 and friction 0.4, the same
time step and the same number of steps; no walls, no gravity. LIGGGHTS
(Debian package ``liggghts``) runs with 2 MPI ranks, synthcal with its cpu
driver on taichi's threads (two here). The table gives particle-steps per
second (compile and start-up excluded for synthcal; the LIGGGHTS "Loop
time"), each the median of runs that alternate between the two codes, the
ratio of the medians and the range of the per-run ratios.

Usage: ``python benchmarks/dem_vs_liggghts.py [n_per_edge ...]``; with the
single argument ``neighbours`` it times the neighbour-list build instead.

Latest table (2-core x86_64 VM, AMD EPYC, load average 1.1-1.5 while it ran;
LIGGGHTS-PUBLIC 3.8.0 from Debian, synthcal on taichi 1.7.4 CPU, float64)::

    Hertz cluster, r = 2.0 µm, dt = 3.34e-10 s, 1000 steps, synthcal on 2 threads; medians of 9 alternating runs
     particles   synthcal (p-steps/s)   LIGGGHTS 2 ranks   ratio   ratio range
          1000               1.55e+07           1.49e+07    1.04   0.78-1.13
          8000               1.69e+07            1.5e+07    1.12   0.78-1.61
         27000               1.38e+07           9.64e+06    1.43   1.21-1.77

The run before it, same code: 1.05, 1.24 and 1.48. A single run of a
thousand particles lasts 60 ms, so single ratios at that size scatter by
±20 % on this shared VM; in the seven runs of this table made during the
changes of this version (the last two with the code as it is) the median
ratio at 1000 particles stayed within 1.01-1.15. One thread of either code does about 1e7 particle-steps/s here
(synthcal 96-103 µs a step of 1000 particles, LIGGGHTS 91 µs): LIGGGHTS
gains more from its second rank at small sizes, synthcal at large ones.

The neighbour list (``neighbours``; one thread, same VM) costs the same per
particle at every size, which is the O(N) the size classes are for; the
plain search with one k-d tree and the largest cut-off for every pair is
14-22 times slower::

    Neighbour list, NMC r = 5 µm and CBD r = 0.5 µm (10:1), skin 0.25 µm; best of 3
     particles     pairs  synthcal µs/particle  single cut-off   ratio
          2240      1959                  1.58           21.60    13.7
          4480      3993                  1.72           24.59    14.3
          8960      8639                  1.20           20.03    16.7
         17920     17869                  1.41           30.78    21.9

What made the difference (the table before these changes read 0.44 and
0.65): each contact is evaluated once instead of from both sides; a batch
of steps is one kernel launch in which taichi's worker threads meet at a
spin barrier instead of two parallel loops a step (17 µs each to start);
``a[i] += b`` on fields became ``a[i] = a[i] + b`` (in a taichi parallel
loop the former is an atomic compare-and-swap loop on floats); the threads'
ranges start on cache-line boundaries. Storing particles in cell order
(z, y, x) leaves this lattice as it is and halves the cost of a step of the
quick scenario's packing, whose particles come in random order. The results of the two codes are not
compared here (only the cost); ``tests/test_dem.py`` checks synthcal against
Hertz theory.
"""

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from analysis._taichi import ensure_taichi
from synthcal.dem import Material, Simulation
from synthcal.dem.kernels import cpu_threads
from synthcal.dem.neighbours import candidate_pairs

E, NU, RHO, REST, MU = 200e9, 0.3, 4650.0, 0.5, 0.4
RADIUS_UM, STEPS = 2.0, 1000


def cluster(n_edge, seed=0):
    """Centres (µm, z-y-x), radii (µm) and velocities (µm/s) of the test cluster."""
    rng = np.random.default_rng(seed)
    g = np.arange(n_edge) * (2 * RADIUS_UM * 0.999) + 10.0
    x = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    x += rng.uniform(-0.002, 0.002, x.shape)
    v = rng.normal(0.0, 1e5, x.shape)
    return x, np.full(len(x), RADIUS_UM), v


def run_synthcal(x, r, v, dt):
    """Particle-steps per second of one run of ``STEPS`` steps (kernels compiled beforehand)."""
    mat = Material(youngs_modulus_pa=E, poisson_ratio=NU, density_kg_m3=RHO, restitution=REST, friction=MU)
    sim = Simulation(x, r, mat, velocities_um_s=v, dt_s=dt)
    start = time.perf_counter()
    sim.step(STEPS)
    return len(x) * STEPS / (time.perf_counter() - start)


def run_liggghts(x, r, v, dt, ranks=2):
    exe = shutil.which("liggghts")
    if exe is None:
        raise SystemExit("liggghts not found: apt-get install liggghts")
    n = len(x)
    lo, hi = (x.min() - 3 * RADIUS_UM) * 1e-6, (x.max() + 3 * RADIUS_UM) * 1e-6
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        xyz, vxyz = x[:, ::-1] * 1e-6, v[:, ::-1] * 1e-6  # LIGGGHTS is x-y-z
        atoms = "\n".join(f"{i + 1} 1 {2 * r[i] * 1e-6:.9e} {RHO} {p[0]:.12e} {p[1]:.12e} {p[2]:.12e}"
                          for i, p in enumerate(xyz))
        vels = "\n".join(f"{i + 1} {q[0]:.12e} {q[1]:.12e} {q[2]:.12e} 0 0 0" for i, q in enumerate(vxyz))
        (tmp / "cluster.data").write_text(
            f"LIGGGHTS data\n\n{n} atoms\n1 atom types\n\n{lo} {hi} xlo xhi\n{lo} {hi} ylo yhi\n{lo} {hi} zlo zhi\n\n"
            f"Atoms\n\n{atoms}\n\nVelocities\n\n{vels}\n")
        (tmp / "in.bench").write_text(f"""atom_style granular
atom_modify map array
boundary m m m
newton off
communicate single vel yes
units si
hard_particles yes
read_data cluster.data
neighbor {0.5 * RADIUS_UM * 1e-6} bin
neigh_modify delay 0
fix m1 all property/global youngsModulus peratomtype {E}
fix m2 all property/global poissonsRatio peratomtype {NU}
fix m3 all property/global coefficientRestitution peratomtypepair 1 {REST}
fix m4 all property/global coefficientFriction peratomtypepair 1 {MU}
pair_style gran model hertz tangential history
pair_coeff * *
timestep {dt}
fix integr all nve/sphere
thermo 1000
run {STEPS}
""")
        cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(ranks), exe, "-in", "in.bench"]
        out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, errors="replace", check=False)
        for line in out.stdout.splitlines():
            if line.startswith("Loop time of"):
                loop_s = float(line.split()[3])
                return n * STEPS / loop_s
        raise SystemExit("LIGGGHTS failed:\n" + out.stdout[-2000:] + out.stderr[-2000:])


def main(edges, rounds=9):
    ensure_taichi("cpu")
    mat = Material(youngs_modulus_pa=E, poisson_ratio=NU, density_kg_m3=RHO)
    dt = 0.2 * mat.rayleigh_time_s(RADIUS_UM)
    print(f"Hertz cluster, r = {RADIUS_UM} µm, dt = {dt:.3g} s, {STEPS} steps, "
          f"synthcal on {cpu_threads()} threads; medians of {rounds} alternating runs")
    print(f"{'particles':>10} {'synthcal (p-steps/s)':>22} {'LIGGGHTS 2 ranks':>18} {'ratio':>7} {'ratio range':>13}")
    for n_edge in edges:
        x, r, v = cluster(n_edge)
        warm = Simulation(x, r, mat, velocities_um_s=v, dt_s=dt)
        warm.step(20)  # compile the step kernels for fields of this size
        warm.set_radii(r)  # and those of a neighbour-list rebuild
        ours, theirs = [], []
        for _ in range(rounds):
            ours.append(run_synthcal(x, r, v, dt))
            theirs.append(run_liggghts(x, r, v, dt))
        ratios = np.array(ours) / np.array(theirs)
        print(f"{len(x):>10} {np.median(ours):>22.3g} {np.median(theirs):>18.3g} "
              f"{np.median(ours) / np.median(theirs):>7.2f} {ratios.min():>6.2f}-{ratios.max():.2f}")


def mixture(n_nmc, seed=0):
    """Centres (µm) and radii (µm) of NMC (r = 5 µm) and CBD (r = 0.5 µm) spheres, 10:1 in size.

    CBD is 10 % of the solid volume (111 CBD spheres per NMC sphere) and
    the solid fills half the box; the box grows with the count, so the
    density stays the same. Spheres may overlap: only the search is timed.
    """
    rng = np.random.default_rng(seed)
    n_cbd = 111 * n_nmc
    r = np.concatenate([np.full(n_nmc, 5.0), np.full(n_cbd, 0.5)])
    edge = (np.sum(4 / 3 * np.pi * r ** 3) / 0.5) ** (1 / 3)
    return rng.uniform(0, edge, (len(r), 3)), r


def single_cutoff_pairs(x, r, skin):
    """The plain search: one k-d tree, every pair within the largest possible cut-off, then filtered."""
    pairs = cKDTree(x).query_pairs(2 * r.max() + skin, output_type="ndarray")
    gap = np.linalg.norm(x[pairs[:, 0]] - x[pairs[:, 1]], axis=1) - r[pairs[:, 0]] - r[pairs[:, 1]]
    return pairs[gap < skin]


def neighbour_table(counts=(20, 40, 80, 160)):
    """Neighbour-list build time per particle: size classes against the single cut-off."""
    print("Neighbour list, NMC r = 5 µm and CBD r = 0.5 µm (10:1), skin 0.25 µm; best of 3")
    print(f"{'particles':>10} {'pairs':>9} {'synthcal µs/particle':>21} {'single cut-off':>15} {'ratio':>7}")
    for n_nmc in counts:
        x, r = mixture(n_nmc)
        times = {}
        for name, search in (("ours", candidate_pairs), ("single", single_cutoff_pairs)):
            best = np.inf
            for _ in range(3):
                start = time.perf_counter()
                pairs = search(x, r, 0.25)
                best = min(best, time.perf_counter() - start)
            times[name] = best / len(x) * 1e6
            found = len(pairs)
        print(f"{len(x):>10} {found:>9} {times['ours']:>21.2f} {times['single']:>15.2f} "
              f"{times['single'] / times['ours']:>7.1f}")


if __name__ == "__main__":
    if sys.argv[1:] == ["neighbours"]:
        neighbour_table()
    else:
        main([int(a) for a in sys.argv[1:]] or [10, 20])
