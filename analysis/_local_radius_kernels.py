"""Taichi kernels of :func:`analysis.pores.local_radius` (see there for the method).

Distances are in voxels; a voxel's centre is its integer index.
"""

import taichi as ti

_TIE = 1e-4          # float32 slack when comparing distances whose squares are integers
_SHIFT_MAX = 0.5     # a ridge voxel is refined within its own voxel cell
_SEARCH_STEPS = (0.25, 0.125, 0.0625)
# Offset classes of covering tables: sorted |offset| components (analysis.pores._ball_tables).
OFFSET_CLASSES = ((0, 0, 1), (0, 1, 1), (1, 1, 1),
                  (0, 0, 2), (0, 1, 2), (1, 1, 2), (0, 2, 2), (1, 2, 2), (2, 2, 2))


def _offsets(reach_lo, reach_hi):
    """(dz, dy, dx, class) for offsets with reach_lo <= max|component| <= reach_hi."""
    span = range(-reach_hi, reach_hi + 1)
    return [(a, b, c, OFFSET_CLASSES.index(tuple(sorted((abs(a), abs(b), abs(c))))))
            for a in span for b in span for c in span
            if reach_lo <= max(abs(a), abs(b), abs(c)) <= reach_hi]


_NEAR = _offsets(1, 1)
FAR_OFFSETS = _offsets(2, 2)


@ti.kernel
def ridge_kernel(dt: ti.types.ndarray(dtype=ti.f32, ndim=3),
                 covering_sq: ti.types.ndarray(dtype=ti.i32, ndim=2),
                 far: ti.types.ndarray(dtype=ti.i32, ndim=2),
                 flag: ti.types.ndarray(dtype=ti.u8, ndim=3)):
    """flag = 0 not a ridge voxel, 1 ridge voxel, 2 ridge voxel that is a local maximum.

    A pore voxel is dropped from the ridge when its digital ball
    {x : |x - c|^2 < dt(c)^2} lies inside the digital ball of a voxel n in its
    5x5x5 neighbourhood, i.e. dt(n)^2 > covering_sq[dt(c)^2, class(n - c)]
    (exact, from a table; ``far`` lists the 5x5x5 shell as
    (dz, dy, dx, class) rows). Local maxima are judged on the 26-neighbourhood.
    """
    nz, ny, nx = dt.shape[0], dt.shape[1], dt.shape[2]
    for z, y, x in ti.ndrange(nz, ny, nx):
        d = dt[z, y, x]
        f = ti.u8(0)
        if d > 0:
            k = ti.cast(ti.round(d * d), ti.i32)
            ridge = True
            peak = True
            for oz, oy, ox, cls in ti.static(_NEAR):
                zz, yy, xx = z + oz, y + oy, x + ox
                if 0 <= zz < nz and 0 <= yy < ny and 0 <= xx < nx:
                    kn = ti.cast(ti.round(dt[zz, yy, xx] ** 2), ti.i32)
                    if kn > covering_sq[k, cls]:
                        ridge = False
                    if kn > k:
                        peak = False
            if ridge:
                # the 5x5x5 shell prunes about half of the remaining balls
                for j in range(far.shape[0]):
                    zz, yy, xx = z + far[j, 0], y + far[j, 1], x + far[j, 2]
                    if 0 <= zz < nz and 0 <= yy < ny and 0 <= xx < nx:
                        kn = ti.cast(ti.round(dt[zz, yy, xx] ** 2), ti.i32)
                        if kn > covering_sq[k, far[j, 3]]:
                            ridge = False
            if ridge:
                f = ti.u8(2) if peak else ti.u8(1)
        flag[z, y, x] = f


@ti.func
def _x_span(q, r2_lo, r2_hi):
    """Non-negative |dx| range with r2_lo <= q + dx^2 <= r2_hi (empty when lo > hi)."""
    hi = -1
    lo = 0
    if q <= r2_hi:
        hi = ti.cast(ti.floor(ti.sqrt(r2_hi - q)), ti.i32)
        if q < r2_lo:
            lo = ti.cast(ti.ceil(ti.sqrt(r2_lo - q)), ti.i32)
    return lo, hi


@ti.func
def _search_level(pore: ti.template(), cz, cy, cx, d, hz, hy, hx, step):
    """Nearest-solid squared distance from the 27 centres (h + step * {-1,0,1}^3).

    Scans the solid voxels in the shell d <= |s - c| <= d + 2 |h|max around
    the ridge voxel c, which holds every solid voxel that can be nearest to
    a centre within the cell. Returns the best shift and its squared distance.
    """
    nz, ny, nx = pore.shape[0], pore.shape[1], pore.shape[2]
    best = ti.Vector([1e30] * 27, dt=ti.f32)
    r_lo = ti.max(d - 0.01, 0.0)
    r_hi = d + 2.0 * ti.sqrt(3.0) * _SHIFT_MAX + 0.01
    r2_lo = r_lo * r_lo
    r2_hi = r_hi * r_hi
    reach = ti.cast(ti.floor(r_hi), ti.i32)
    for dz in range(-reach, reach + 1):
        for dy in range(-reach, reach + 1):
            q = ti.cast(dz * dz + dy * dy, ti.f32)
            lo, hi = _x_span(q, r2_lo, r2_hi)
            for j in range(2 * (hi - lo + 1)):
                dx = (lo + j // 2) * (1 - 2 * (j % 2))
                z, y, x = cz + dz, cy + dy, cx + dx
                if (j % 2 == 0 or dx != 0) and 0 <= z < nz and 0 <= y < ny \
                        and 0 <= x < nx:
                    if pore[z, y, x] == 0:
                        for k in ti.static(range(27)):
                            ez = dz - (hz + step * (k // 9 - 1))
                            ey = dy - (hy + step * ((k // 3) % 3 - 1))
                            ex = dx - (hx + step * (k % 3 - 1))
                            best[k] = ti.min(best[k], ez * ez + ey * ey + ex * ex)
    kbest = 13
    vbest = best[13]
    for k in ti.static(range(27)):
        sz = hz + step * (k // 9 - 1)
        sy = hy + step * ((k // 3) % 3 - 1)
        sx = hx + step * (k % 3 - 1)
        inside = ti.abs(sz) <= _SHIFT_MAX and ti.abs(sy) <= _SHIFT_MAX \
            and ti.abs(sx) <= _SHIFT_MAX
        if inside and best[k] > vbest + _TIE:
            vbest = best[k]
            kbest = k
    return (hz + step * (kbest // 9 - 1), hy + step * ((kbest // 3) % 3 - 1),
            hx + step * (kbest % 3 - 1), vbest)


@ti.func
def _farthest_inside_sq(hz, hy, hx, r2_out):
    """Largest squared distance from the shift h of a lattice point strictly inside r2_out.

    Every voxel inside the ball is pore (r_out is the nearest solid voxel),
    so this is lattice geometry only.
    """
    far = 0.0
    r_out = ti.sqrt(r2_out)
    r_lo = ti.max(r_out - 1.0 - 2.0 * ti.sqrt(3.0) * _SHIFT_MAX, 0.0)
    r_hi = r_out + ti.sqrt(3.0) * _SHIFT_MAX
    reach = ti.cast(ti.floor(r_hi), ti.i32)
    for dz in range(-reach, reach + 1):
        for dy in range(-reach, reach + 1):
            q = ti.cast(dz * dz + dy * dy, ti.f32)
            lo, hi = _x_span(q, r_lo * r_lo, r_hi * r_hi)
            for j in range(2 * (hi - lo + 1)):
                dx = (lo + j // 2) * (1 - 2 * (j % 2))
                ez = dz - hz
                ey = dy - hy
                ex = dx - hx
                e2 = ez * ez + ey * ey + ex * ex
                if far < e2 < r2_out - _TIE:
                    far = e2
    return far


@ti.kernel
def paint_kernel(pore: ti.types.ndarray(dtype=ti.u8, ndim=3),
                 dt: ti.types.ndarray(dtype=ti.f32, ndim=3),
                 ridge: ti.types.ndarray(dtype=ti.i32, ndim=2),
                 refine: ti.types.ndarray(dtype=ti.u8, ndim=1),
                 inner_sq: ti.types.ndarray(dtype=ti.i32, ndim=1),
                 lt: ti.types.ndarray(dtype=ti.f32, ndim=3)):
    """Paint every ridge ball into ``lt`` with ``atomic_max`` (order-independent).

    Ball of ridge voxel c: centre p = c + h, outer radius r_out = distance from
    p to the nearest solid voxel centre, inner radius r_in = distance to the
    farthest pore voxel centre inside it; value (r_in + r_out) / 2.
    """
    nz, ny, nx = lt.shape[0], lt.shape[1], lt.shape[2]
    for i in range(ridge.shape[0]):
        cz, cy, cx = ridge[i, 0], ridge[i, 1], ridge[i, 2]
        d = dt[cz, cy, cx]
        hz, hy, hx = 0.0, 0.0, 0.0
        r2_out = d * d
        r2_in = 0.0
        if refine[i] == 1:
            for level in ti.static(range(len(_SEARCH_STEPS))):
                hz, hy, hx, r2_out = _search_level(pore, cz, cy, cx, d, hz, hy, hx,
                                                   _SEARCH_STEPS[level])
            r2_in = _farthest_inside_sq(hz, hy, hx, r2_out)
        else:
            r2_in = ti.cast(inner_sq[ti.cast(ti.round(r2_out), ti.i32)], ti.f32)
        value = 0.5 * (ti.sqrt(r2_in) + ti.sqrt(r2_out))
        reach = ti.cast(ti.ceil(ti.sqrt(r2_out) + ti.sqrt(3.0) * _SHIFT_MAX), ti.i32)
        for dz in range(-reach, reach + 1):
            z = cz + dz
            ez = dz - hz
            if 0 <= z < nz and ez * ez < r2_out:
                for dy in range(-reach, reach + 1):
                    y = cy + dy
                    ey = dy - hy
                    q = ez * ez + ey * ey
                    if 0 <= y < ny and q < r2_out:
                        w = ti.sqrt(r2_out - q)
                        x0 = ti.max(ti.cast(ti.floor(cx + hx - w), ti.i32), 0)
                        x1 = ti.min(ti.cast(ti.ceil(cx + hx + w), ti.i32), nx - 1)
                        for x in range(x0, x1 + 1):
                            ex = x - cx - hx
                            if q + ex * ex < r2_out - _TIE:
                                ti.atomic_max(lt[z, y, x], value)
