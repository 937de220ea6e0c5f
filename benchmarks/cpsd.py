"""Benchmark: synthcal's CPSD (analysis.pores) against porespy's local thickness and porosimetry.

Images, two kinds. Disjoint spherical pores, radii uniform in 4..24 voxels,
centres at random sub-voxel positions, gaps >= 2 voxels, random sequential
addition to a porosity of about 25 %, digitised analytically (voxel centre
inside). The truth of the mean pore radius is the pore-volume-weighted mean
of the sphere radii, sum(r^4) / sum(r^3): for disjoint spheres every pore
voxel's inscribed radius is its sphere's radius. And the electrode's case:
the connected pore space between overlapping grains of radius 4..12 voxels
(solid fraction about 0.5), whose distance ridge is sheets between grains;
it has no analytic mean radius, so only times. Sizes 128^3, 256^3 (and
512^3 by hand), seed 0.

Peers, with their defaults: ``porespy.filters.local_thickness(im)`` (method
'bf', integer radii) and ``porespy.filters.porosimetry(im, inlets=im)``
(method 'dt', every unique distance value a step; inlets = the whole pore
space, because the default inlets, the faces, reach none of the closed pores).
Their mean radius is the mean of their map over the pore voxels. A peer is
skipped at a size when its time extrapolated from the previous size (x8)
exceeds 5 minutes. Times are wall clock, taichi kernels and numba
functions compiled before timing.

Run: ``.venv/bin/python benchmarks/cpsd.py [sizes...]``

Latest table (4 Dec 2026, night, 2-core VM shared with a low-priority
paper-scenario run; porespy 3.2.0; ``cpsd.py 128 256``):

| size | method | time (s) | time / ours | mean radius error | notes |
|---|---|---|---|---|---|
| 128^3 | synthcal cpsd | 0.32 | 1.0 | -0.36 % | spherical pores: 382, porosity 0.250 |
| 128^3 | porespy local_thickness | 0.37 | 1.2 | -10.38 % | spherical pores: 382, porosity 0.250 |
| 128^3 | porespy porosimetry | 45.24 | 143.0 | -10.38 % | spherical pores: 382, porosity 0.250 |
| 256^3 | synthcal cpsd | 1.37 | 1.0 | -0.33 % | spherical pores: 2460, porosity 0.250 |
| 256^3 | porespy local_thickness | 2.12 | 1.5 | -9.91 % | spherical pores: 2460, porosity 0.250 |
| 256^3 | porespy porosimetry | - | - | - | skipped: ~362 s expected |
| 128^3 | synthcal cpsd | 0.47 | 1.0 | - | between grains, porosity 0.480, mean radius 7.83 |
| 128^3 | porespy local_thickness | 0.22 | 0.5 | - | between grains, porosity 0.480, mean radius 7.17 |
| 128^3 | porespy porosimetry | 34.32 | 73.4 | - | between grains, porosity 0.480, mean radius 7.17 |
| 256^3 | synthcal cpsd | 4.42 | 1.0 | - | between grains, porosity 0.488, mean radius 7.53 |
| 256^3 | porespy local_thickness | 2.08 | 0.5 | - | between grains, porosity 0.488, mean radius 6.92 |
| 256^3 | porespy porosimetry | 377.59 | 85.4 | - | between grains, porosity 0.488, mean radius 6.92 |

The worst case is the electrode's: between grains ours is 2.1x (128^3 and
256^3) slower than porespy's local thickness, which reads about 8 %
smaller radii there (no truth to say which is right; on spheres it reads
9-10 % low, ours -0.3 %). On spherical pores ours is 1.2-1.5x faster.
The ridge balls are painted over the rows that cross them only, with
integer square roots for the ball's planes, rows and runs (the same
bytes): in one script, on a 100 x 508 x 508 crop of the paper phantom's
non-NMC phase, ``local_radius`` went from 14.0 and 14.9 s to 11.2 and
11.8 s (alternating runs), and the grain case at 256^3 from 4.75 to 4.17
s. The table of 3 Dec 2026 (load about 4, before this change and the one
below) had the grain case at 2.4x (128^3) to 3.1x (256^3).

Earlier, painting
each ridge ball without its overlap with a neighbour that outranks it
(``paint_ridge_kernel``, same bytes) took the grain case at 256^3 from
13.5 s to 10.9 s and a 100 x 508 x 508 crop of the paper phantom's
non-NMC phase from about 95 s to 24 s (same machine, same load). Earlier
(machine shared, before that change): spheres at 512^3 42 s, porespy 44 s.
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


def grain_pack(n, seed=0, solid=0.5, r_min=4.0, r_max=12.0):
    """The pore space between overlapping spherical grains in an n^3 box, solid fraction about ``solid``.

    The electrode's case: the pore space is connected and its distance
    ridge is made of sheets between grains, not of isolated sphere
    centres. No analytic mean radius.
    """
    rng = np.random.default_rng(seed)
    grains = np.zeros((n, n, n), dtype=bool)
    z, y, x = np.ogrid[:n, :n, :n]
    while grains.mean() < solid:
        for _ in range(max(1, int(0.05 * n ** 3 / (4.0 / 3.0 * np.pi * 8.0 ** 3)))):
            r = rng.uniform(r_min, r_max)
            c = rng.uniform(0, n - 1, 3)
            lo = np.maximum(np.floor(c - r).astype(int), 0)
            hi = np.minimum(np.ceil(c + r).astype(int) + 1, n)
            grains[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] |= (z[lo[0]:hi[0]] - c[0]) ** 2 + \
                (y[:, lo[1]:hi[1]] - c[1]) ** 2 + (x[:, :, lo[2]:hi[2]] - c[2]) ** 2 <= r * r
    return ~grains


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
    for kind in ("pores", "grains"):
        last = {}
        for n in sizes:
            if kind == "pores":
                im, radii = sphere_pack(n)
                truth = float(np.sum(radii ** 4) / np.sum(radii ** 3))
                note = "spherical pores: %d, porosity %.3f" % (len(radii), im.mean())
            else:
                im, truth = grain_pack(n), None
                note = "between grains, porosity %.3f" % im.mean()
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
                rows.append((n, name, seconds, seconds / ours_s, None if truth is None else mean / truth - 1.0,
                             note if truth is not None else note + ", mean radius %.2f" % mean))
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
            error = "-" if err is None else f"{100 * err:+.2f} %"
            lines.append(f"| {n}^3 | {name} | {s:.2f} | {ratio:.1f} | {error} | {note} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [128, 256, 512])
