"""Projector and FBP throughput and accuracy: analysis.projector vs the ASTRA toolbox (CPU).

ASTRA's CPU build only does 2D, so it runs slice by slice ("linear" =
Joseph projector, the same model as ours; FBP with the Ram-Lak filter);
ours runs the whole stack at once. The phantom is a stack of disks whose
parallel-beam line integrals are known exactly:

- forward projection of the voxelised (partial-volume) phantom is scored
  against the exact line integrals of the disks (relative RMS);
- FBP of the exact line integrals is scored against the voxelised phantom
  inside the field of view (relative RMS).

Run: ``python benchmarks/projector_vs_astra.py [n] [nz] [n_angles]`` in a venv
with ``astra-toolbox`` (``pip install astra-toolbox``; not a dependency).
GUPS = giga voxel updates per second = n_angles * nz * n^2 / time / 1e9.

Latest tables (6 Dec 2026, 14:00 UTC, 2-core VM: AMD EPYC family 25 model 17,
astra-toolbox 2.5.0 CPU, taichi 1.7.4 x64 on 2 threads), with the back-projectors
adding 64 angles per launch (``analysis.projector._GATHER_ANGLES``); worst case
13.5x (FBP at 512^2)::

    256^2 x 64 slices x 180 angles; best of 3; wall s (CPU s, all threads)
    op             ours s      astra s speed-up ours GUPS astra GUPS  ours err astra err ours-astra
    forward   0.27 (0.50)  4.37 (4.37)     16.1      2.78       0.17  3.45e-03  3.45e-03   9.46e-06
    fbp       0.18 (0.32)  2.43 (2.43)     13.6      4.23       0.31  3.57e-02  4.14e-02   1.58e-02

    1024^2 x 8 slices x 801 angles
    forward   2.01 (3.86) 41.31 (41.30)     20.5      3.34       0.16  8.65e-04  8.67e-04   4.64e-05
    fbp       1.69 (3.06) 25.08 (25.07)     14.8      3.97       0.27  1.66e-02  1.94e-02   8.06e-03

    512^2 x 32 slices x 801 angles
    forward   2.26 (4.30) 39.32 (39.32)     17.4      2.97       0.17  1.74e-03  1.74e-03   2.17e-05
    fbp       1.59 (2.92) 21.45 (21.45)     13.5      4.23       0.31  2.00e-02  2.18e-02   8.02e-03

Before that (5 Dec 2026, quiet 2-core x86_64 VM, the same versions), with the
forward projector's 2-slice blocks and one back-projection launch for all
angles, the same errors: at 256^2 x 64 x 180 forward 0.19 s (14.3x ASTRA's
2.65 s), FBP 0.17 s (14.5x); at 1024^2 x 8 x 801 forward 1.45 s (17.9x),
FBP 2.23 s (11.2x ASTRA's 24.90 s).

The code before (8-slice forward blocks), measured in the same minutes: forward 0.14 s
(19.6x) at 256^2 and 1.41 s (17.9x) at 1024^2, FBP the same. Wider blocks
are ahead on these small smooth cases and far behind on the paper's fine
slices (1368^2 of its phantom: 2.0-2.3x slower, see ``analysis.projector``).

Older tables: astra-toolbox 2.5.0 (CPU), taichi 1.7.4 (x64 backend, 2
threads); 2-core x86_64 VM, shared with other jobs (load average 4-5 during
the runs), so wall times are noisy and CPU times are given too. Errors are
relative RMS against the analytic answer; "ours-astra" is their relative
RMS difference (FBP: different filter discretisation and interpolation)::

    256^2 x 64 slices x 180 angles; best of 3; wall s (CPU s, all threads)
    op             ours s      astra s speed-up ours GUPS astra GUPS  ours err astra err ours-astra
    forward   2.00 (0.97)  8.40 (5.27)      4.2      0.38       0.09  3.45e-03  3.45e-03   9.47e-06
    fbp       1.21 (0.63)  6.61 (3.48)      5.5      0.62       0.11  3.57e-02  4.14e-02   1.58e-02

An earlier run (before a small FBP kernel change; load ~4) gave forward 1.17 s (0.79) vs
8.57 s (5.34), 7.3x; fbp 1.28 s (0.63) vs 5.73 s (3.67), 4.5x. In CPU
seconds ours is 5-7x ASTRA; in a quiet moment of the VM the kernels alone
reach about 1 GUPS wall.
"""

import sys
import time

import numpy as np

try:
    import astra
except ImportError:  # pragma: no cover - benchmark only
    sys.exit("astra-toolbox is not installed: pip install astra-toolbox (in a separate venv)")

from analysis.projector import forward_project
from analysis.reconstruct import fbp


def phantom(n, nz):
    """Disks per slice (x0, y0, r, mu), drifting a little with z; and their voxelisation."""
    base = [(0.0, 0.0, 0.42 * n, 0.01), (0.12 * n, 0.08 * n, 0.1 * n, 0.02),
            (-0.2 * n, -0.1 * n, 0.06 * n, 0.03), (0.05 * n, -0.25 * n, 0.04 * n, -0.005)]
    disks = [[(x + 0.02 * n * np.sin(k / 7), y, r, mu) for x, y, r, mu in base] for k in range(nz)]
    s = 4
    g = (np.arange(n * s) + 0.5) / s - 0.5 - (n - 1) / 2
    yy, xx = np.meshgrid(g, g, indexing="ij")
    vol = np.zeros((nz, n, n), np.float32)
    for k, ds in enumerate(disks):
        fine = np.zeros_like(xx)
        for x0, y0, r, mu in ds:
            fine += mu * (((xx - x0) ** 2 + (yy - y0) ** 2) <= r * r)
        vol[k] = fine.reshape(n, s, n, s).mean(axis=(1, 3))
    return disks, vol


def exact_sinogram(disks, angles_deg, n):
    t = np.deg2rad(angles_deg)[:, None]
    u = np.arange(n) - (n - 1) / 2
    sino = np.zeros((len(angles_deg), len(disks), n))
    for k, ds in enumerate(disks):
        for x0, y0, r, mu in ds:
            u0 = -x0 * np.sin(t) + y0 * np.cos(t)
            sino[:, k] += mu * 2 * np.sqrt(np.clip(r * r - (u - u0) ** 2, 0, None))
    return sino.astype(np.float32)


def rel_rms(a, b, mask=None):
    if mask is not None:
        a, b = a[..., mask], b[..., mask]
    return float(np.sqrt(np.mean((a - b) ** 2) / np.mean(b ** 2)))


def astra_geometry(angles_deg, n):
    # Our angle t is ASTRA's -t - 90 degrees (same detector direction).
    vol_geom = astra.create_vol_geom(n, n)
    proj_geom = astra.create_proj_geom("parallel", 1.0, n, np.deg2rad(-np.asarray(angles_deg) - 90.0))
    return vol_geom, proj_geom, astra.create_projector("linear", proj_geom, vol_geom)


def astra_forward(vol, pid):
    out = []
    for k in range(vol.shape[0]):
        sid, s = astra.create_sino(vol[k], pid)
        astra.data2d.delete(sid)
        out.append(s)
    return np.stack(out, axis=1)


def astra_fbp(sino, vol_geom, proj_geom, pid):
    out = []
    for k in range(sino.shape[1]):
        sid = astra.data2d.create("-sino", proj_geom, sino[:, k])
        rid = astra.data2d.create("-vol", vol_geom, 0.0)
        cfg = astra.astra_dict("FBP")
        cfg.update(ReconstructionDataId=rid, ProjectionDataId=sid, ProjectorId=pid,
                   option={"FilterType": "ram-lak"})
        alg = astra.algorithm.create(cfg)
        astra.algorithm.run(alg)
        out.append(astra.data2d.get(rid))
        astra.algorithm.delete(alg)
        astra.data2d.delete([sid, rid])
    return np.stack(out)


def best_time(fn, repeats):
    """Best wall time and best process CPU time (all threads) over repeats."""
    best_wall, best_cpu, result = np.inf, np.inf, None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return (best_wall, best_cpu), result


def main():
    n, nz, n_angles = (int(v) for v in (sys.argv[1:] + ["256", "64", "180"][len(sys.argv) - 1:])[:3])
    repeats = 3
    angles = np.linspace(0, 180, n_angles, endpoint=False)
    disks, vol = phantom(n, nz)
    exact = exact_sinogram(disks, angles, n)
    updates = n_angles * nz * n * n / 1e9
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    fov = xx ** 2 + yy ** 2 < (0.45 * n) ** 2

    forward_project(vol[:1], angles[:2])  # compile the kernels outside the timing
    fbp(exact[:2, :1], angles[:2])
    vol_geom, proj_geom, pid = astra_geometry(angles, n)

    t_ours, p_ours = best_time(lambda: forward_project(vol, angles), repeats)
    t_astra, p_astra = best_time(lambda: astra_forward(vol, pid), repeats)
    tf_ours, r_ours = best_time(lambda: fbp(exact, angles, padding=False), repeats)
    tf_astra, r_astra = best_time(lambda: astra_fbp(exact, vol_geom, proj_geom, pid), repeats)
    astra.projector.delete(pid)

    rows = [
        ("forward", t_ours, t_astra, rel_rms(p_ours, exact), rel_rms(p_astra, exact), rel_rms(p_ours, p_astra)),
        ("fbp", tf_ours, tf_astra, rel_rms(r_ours, vol, fov), rel_rms(r_astra, vol, fov),
         rel_rms(r_ours, r_astra, fov)),
    ]
    print(f"{n}^2 x {nz} slices x {n_angles} angles; best of {repeats}; wall s (CPU s, all threads)")
    print(f"{'op':8} {'ours s':>12} {'astra s':>12} {'speed-up':>8} {'ours GUPS':>9} {'astra GUPS':>10} "
          f"{'ours err':>9} {'astra err':>9} {'ours-astra':>10}")
    for op, (w1, c1), (w2, c2), e1, e2, d in rows:
        print(f"{op:8} {w1:5.2f} ({c1:4.2f}) {w2:5.2f} ({c2:4.2f}) {w2 / w1:8.1f} {updates / w1:9.2f} "
              f"{updates / w2:10.2f} {e1:9.2e} {e2:9.2e} {d:10.2e}")


if __name__ == "__main__":
    main()
