"""Benchmark: synthcal's CPSD (analysis.pores) against porespy's local thickness and porosimetry.

Images: disjoint spherical pores, radii uniform in 4..24 voxels, centres at
random sub-voxel positions, gaps >= 2 voxels, random sequential addition to a
porosity of about 25 %, digitised analytically (voxel centre inside), at
128^3, 256^3 and 512^3 (seed 0). The truth of the mean pore radius is the
pore-volume-weighted mean of the sphere radii, sum(r^4) / sum(r^3): for
disjoint spheres every pore voxel's inscribed radius is its sphere's radius.

Peers, with their defaults: ``porespy.filters.local_thickness(im)`` (method
'bf', integer radii) and ``porespy.filters.porosimetry(im, inlets=im)``
(method 'dt', every unique distance value a step; inlets = the whole pore
space, because the default inlets, the faces, reach none of the closed pores).
Their mean radius is the mean of their map over the pore voxels. A peer is
skipped at a size when its time extrapolated from the previous size (x8)
exceeds 5 minutes. Times are wall clock, taichi kernels and numba
functions compiled before timing.

Run: ``/tmp/venv/bin/python benchmarks/cpsd.py [sizes...]``

Latest table (2-core x86_64 VM, shared with other jobs; porespy 3.2.0):

| size | method | time (s) | time / ours | mean radius error | notes |
|---|---|---|---|---|---|
| 128^3 | synthcal cpsd | 0.38 | 1.0 | -0.36 % | 382 spheres, porosity 0.250 |
| 128^3 | porespy local_thickness | 0.37 | 1.0 | -10.38 % | 382 spheres, porosity 0.250 |
| 128^3 | porespy porosimetry | 112.24 | 296.7 | -10.38 % | 382 spheres, porosity 0.250 |
| 256^3 | synthcal cpsd | 5.40 | 1.0 | -0.33 % | 2460 spheres, porosity 0.250 |
| 256^3 | porespy local_thickness | 3.99 | 0.7 | -9.91 % | 2460 spheres, porosity 0.250 |
| 256^3 | porespy porosimetry | - | - | - | skipped: ~898 s expected |
| 512^3 | synthcal cpsd | 41.51 | 1.0 | -0.31 % | 14091 spheres, porosity 0.250 |
| 512^3 | porespy local_thickness | 43.57 | 1.0 | -8.87 % | 14091 spheres, porosity 0.250 |
| 512^3 | porespy porosimetry | - | - | - | skipped: ~7183 s expected |

At 512^3 ours takes 42 s (target: under a minute); porespy's local thickness
is as fast but reads the mean radius 9-10 % low; porosimetry (every distance
value a step) takes 112 s at 128^3 and is skipped above.
"""

import sys
import time

import numpy as np

from analysis.pores import cpsd

LIMIT_S = 300.0


def sphere_pack(n, seed=0, porosity=0.25, r_min=4.0, r_max=24.0, gap=2.0):
    """Disjoint spheres in an n^3 box: (pore mask, radii in voxels)."""
    rng = np.random.default_rng(seed)
    cap = 200000
    centres = np.empty((cap, 3))
    radii = np.empty(cap)
    count = 0
    volume = 0.0
    # sequential addition over spheres (not voxels); stops after a run of misses
    misses = 0
    while volume < porosity * n ** 3 and misses < 20000 and count < cap:
        r = rng.uniform(r_min, r_max)
        c = rng.uniform(r + gap, n - 1 - r - gap, 3)
        d = np.linalg.norm(centres[:count] - c, axis=1)
        if np.any(d < radii[:count] + r + gap):
            misses += 1
            continue
        misses = 0
        centres[count] = c
        radii[count] = r
        count += 1
        volume += 4.0 / 3.0 * np.pi * r ** 3
    im = np.zeros((n, n, n), dtype=bool)
    for c, r in zip(centres[:count], radii[:count]):
        lo = np.floor(c - r).astype(int)
        hi = np.ceil(c + r).astype(int) + 1
        z, y, x = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        im[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] |= \
            (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= r * r
    return im, radii[:count]


def _ours(im):
    return cpsd(im, 1.0).mean_radius_um


def _local_thickness(im):
    import porespy
    lt = porespy.filters.local_thickness(im)
    return float(lt[im].mean())


def _porosimetry(im):
    import porespy
    size = porespy.filters.porosimetry(im, inlets=im)
    return float(size[im].mean())


METHODS = (("synthcal cpsd", _ours),
           ("porespy local_thickness", _local_thickness),
           ("porespy porosimetry", _porosimetry))


def main(sizes):
    warm = sphere_pack(48, r_max=8.0)[0]
    for _, fn in METHODS:             # compile taichi kernels and numba functions
        fn(warm)
    rows = []
    last = {}
    for n in sizes:
        im, radii = sphere_pack(n)
        truth = float(np.sum(radii ** 4) / np.sum(radii ** 3))
        ours_s = None
        for name, fn in METHODS:
            if name in last and last[name] * 8 > LIMIT_S:
                rows.append((n, name, None, None, None, "skipped: ~%.0f s expected"
                             % (last[name] * 8)))
                last[name] = last[name] * 8
                continue
            t0 = time.perf_counter()
            mean = fn(im)
            seconds = time.perf_counter() - t0
            last[name] = seconds
            if ours_s is None:
                ours_s = seconds
            rows.append((n, name, seconds, seconds / ours_s, mean / truth - 1.0,
                         "%d spheres, porosity %.3f" % (len(radii), im.mean())))
            print(_format([rows[-1]]).splitlines()[-1], flush=True)
    print()
    print(_format(rows))


def _format(rows):
    lines = ["| size | method | time (s) | time / ours | mean radius error | notes |",
             "|---|---|---|---|---|---|"]
    for n, name, s, ratio, err, note in rows:
        if s is None:
            lines.append(f"| {n}^3 | {name} | - | - | - | {note} |")
        else:
            lines.append(f"| {n}^3 | {name} | {s:.2f} | {ratio:.1f} | {100 * err:+.2f} % "
                         f"| {note} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [128, 256, 512])
