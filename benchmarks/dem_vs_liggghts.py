"""Benchmark: synthcal.dem against LIGGGHTS on the same dense cluster of Hertz spheres.

Both codes get the same particles (a jittered cubic lattice of touching
spheres, NMC-like material, random velocities of 0.1 m/s), the same
Hertz–Mindlin contact law with restitution 0.5 and friction 0.4, the same
time step and the same number of steps; no walls, no gravity. LIGGGHTS
(Debian package ``liggghts``) runs with 2 MPI ranks. The table gives
particle-steps per second (compile and start-up excluded for synthcal; the
LIGGGHTS "Loop time") and the ratio synthcal / LIGGGHTS.

Usage: ``python benchmarks/dem_vs_liggghts.py [n_per_edge ...]``

Latest table (2-core x86_64 VM, shared with other jobs, load average ~1.3
while it ran; LIGGGHTS-PUBLIC 3.8.0 from Debian, synthcal on taichi CPU
float64; the middle of three runs, whose ratios spread 0.39–0.49 at 1000
and 0.57–0.83 at 8000 particles)::

    Hertz cluster, r = 2.0 µm, dt = 3.34e-10 s, 1000 steps
     particles   synthcal (p-steps/s)   LIGGGHTS 2 ranks   ratio
          1000               6.62e+06           1.50e+07    0.44
          8000               9.53e+06           1.46e+07    0.65

Earlier runs at a load average of 3–7 saw LIGGGHTS at 0.5–6 M
particle-steps/s (its MPI ranks wait on each other) and ratios of 0.7–2.5;
they say more about the load than about the codes. synthcal launches the
steps of a batch from a compiled taichi graph (about 30 µs of Python per
launch saved); what is left of the gap is mostly arithmetic: every contact
is evaluated from both sides, so that each particle gathers its own forces
without atomics (bit-identical runs), where LIGGGHTS evaluates it once.
Tables before this one also timed a one-off compilation at the first
neighbour-list rebuild (about 0.3 s), which the warm-up now includes. The
results of the two codes are not compared (only the cost).
"""

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from synthcal.dem import Material, Simulation

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
    mat = Material(youngs_modulus_pa=E, poisson_ratio=NU, density_kg_m3=RHO, restitution=REST, friction=MU)
    warm = Simulation(x, r, mat, velocities_um_s=v, dt_s=dt)
    warm.step(20)  # compile the step kernels
    warm.set_radii(r)  # and those a neighbour-list rebuild uses (copies in and out of the engine)
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


def main(edges):
    mat = Material(youngs_modulus_pa=E, poisson_ratio=NU, density_kg_m3=RHO)
    dt = 0.2 * mat.rayleigh_time_s(RADIUS_UM)
    print(f"Hertz cluster, r = {RADIUS_UM} µm, dt = {dt:.3g} s, {STEPS} steps")
    print(f"{'particles':>10} {'synthcal (p-steps/s)':>22} {'LIGGGHTS 2 ranks':>18} {'ratio':>7}")
    for n_edge in edges:
        x, r, v = cluster(n_edge)
        ours = run_synthcal(x, r, v, dt)
        theirs = run_liggghts(x, r, v, dt)
        print(f"{len(x):>10} {ours:>22.3g} {theirs:>18.3g} {ours / theirs:>7.2f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10, 20])
