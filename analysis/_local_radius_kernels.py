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
def peak_kernel(pore: ti.types.ndarray(dtype=ti.u8, ndim=3),
                dt: ti.types.ndarray(dtype=ti.f32, ndim=3),
                centre: ti.types.ndarray(dtype=ti.i32, ndim=2),
                ball: ti.types.ndarray(dtype=ti.f32, ndim=2)):
    """Sub-voxel ball of each ridge local maximum: ball[i] = (hz, hy, hx, r_out^2, value).

    The centre c + h maximises the distance r_out to the nearest solid voxel
    centre (coarse-to-fine search in the voxel cell); r_in is the farthest
    lattice point strictly inside; value = (r_in + r_out) / 2.
    """
    for i in range(centre.shape[0]):
        cz, cy, cx = centre[i, 0], centre[i, 1], centre[i, 2]
        d = dt[cz, cy, cx]
        hz, hy, hx = 0.0, 0.0, 0.0
        r2_out = d * d
        for level in ti.static(range(len(_SEARCH_STEPS))):
            hz, hy, hx, r2_out = _search_level(pore, cz, cy, cx, d, hz, hy, hx,
                                               _SEARCH_STEPS[level])
        r2_in = _farthest_inside_sq(hz, hy, hx, r2_out)
        ball[i, 0] = hz
        ball[i, 1] = hy
        ball[i, 2] = hx
        ball[i, 3] = r2_out
        ball[i, 4] = 0.5 * (ti.sqrt(r2_in) + ti.sqrt(r2_out))


@ti.func
def _ball_rows(r2_out, hz, hy, dz, dy):
    """Half-width in x of the ball row (dz, dy), or -1 when the row misses the ball."""
    ez = dz - hz
    ey = dy - hy
    q = ez * ez + ey * ey
    w = -1.0
    if q < r2_out:
        w = ti.sqrt(r2_out - q)
    return w, q


@ti.kernel
def paint_kernel(centre: ti.types.ndarray(dtype=ti.i32, ndim=2),
                 ball: ti.types.ndarray(dtype=ti.f32, ndim=2),
                 skip: ti.types.ndarray(dtype=ti.u8, ndim=1),
                 lt: ti.types.ndarray(dtype=ti.f32, ndim=3)):
    """lt = max(lt, value) over the lattice points strictly inside each ball not skipped.

    ``atomic_max`` makes the result independent of the order of the threads.
    """
    nz, ny, nx = lt.shape[0], lt.shape[1], lt.shape[2]
    for i in range(centre.shape[0]):
        if skip[i] == 0:
            cz, cy, cx = centre[i, 0], centre[i, 1], centre[i, 2]
            hz, hy, hx, r2_out, value = ball[i, 0], ball[i, 1], ball[i, 2], ball[i, 3], ball[i, 4]
            reach = ti.cast(ti.ceil(ti.sqrt(r2_out) + 1.0), ti.i32)
            for dz in range(ti.max(-reach, -cz), ti.min(reach, nz - 1 - cz) + 1):
                for dy in range(ti.max(-reach, -cy), ti.min(reach, ny - 1 - cy) + 1):
                    w, q = _ball_rows(r2_out, hz, hy, dz, dy)
                    if w >= 0:
                        x0 = ti.max(ti.cast(ti.floor(cx + hx - w), ti.i32), 0)
                        x1 = ti.min(ti.cast(ti.ceil(cx + hx + w), ti.i32), nx - 1)
                        for x in range(x0, x1 + 1):
                            ex = x - cx - hx
                            if q + ex * ex < r2_out - _TIE:
                                ti.atomic_max(lt[cz + dz, cy + dy, x], value)


@ti.kernel
def owner_kernel(centre: ti.types.ndarray(dtype=ti.i32, ndim=2),
                 ball: ti.types.ndarray(dtype=ti.f32, ndim=2),
                 lt: ti.types.ndarray(dtype=ti.f32, ndim=3),
                 owner: ti.types.ndarray(dtype=ti.i32, ndim=3)):
    """owner = largest index of the balls whose value is the painted lt (ties: max index)."""
    nz, ny, nx = lt.shape[0], lt.shape[1], lt.shape[2]
    for i in range(centre.shape[0]):
        cz, cy, cx = centre[i, 0], centre[i, 1], centre[i, 2]
        hz, hy, hx, r2_out, value = ball[i, 0], ball[i, 1], ball[i, 2], ball[i, 3], ball[i, 4]
        reach = ti.cast(ti.ceil(ti.sqrt(r2_out) + 1.0), ti.i32)
        for dz in range(ti.max(-reach, -cz), ti.min(reach, nz - 1 - cz) + 1):
            for dy in range(ti.max(-reach, -cy), ti.min(reach, ny - 1 - cy) + 1):
                w, q = _ball_rows(r2_out, hz, hy, dz, dy)
                if w >= 0:
                    x0 = ti.max(ti.cast(ti.floor(cx + hx - w), ti.i32), 0)
                    x1 = ti.min(ti.cast(ti.ceil(cx + hx + w), ti.i32), nx - 1)
                    for x in range(x0, x1 + 1):
                        ex = x - cx - hx
                        if q + ex * ex < r2_out - _TIE and lt[cz + dz, cy + dy, x] == value:
                            ti.atomic_max(owner[cz + dz, cy + dy, x], i)


@ti.kernel
def covered_kernel(centre: ti.types.ndarray(dtype=ti.i32, ndim=2),
                   ball: ti.types.ndarray(dtype=ti.f32, ndim=2),
                   peak_centre: ti.types.ndarray(dtype=ti.i32, ndim=2),
                   peak_ball: ti.types.ndarray(dtype=ti.f32, ndim=2),
                   owner: ti.types.ndarray(dtype=ti.i32, ndim=3),
                   covered: ti.types.ndarray(dtype=ti.u8, ndim=1)):
    """covered[i] = 1 when ridge ball i lies inside the peak ball that owns its centre.

    Such a ball adds nothing: the peak ball's value is at least as large. Only
    the rim of ball i farther from the peak centre than r_out(peak) - |c - p|
    can stick out, so only that rim is scanned.
    """
    for i in range(centre.shape[0]):
        cz, cy, cx = centre[i, 0], centre[i, 1], centre[i, 2]
        o = owner[cz, cy, cx]
        inside = 0
        if o >= 0:
            if peak_ball[o, 4] >= ball[i, 4]:
                pz = peak_centre[o, 0] + peak_ball[o, 0] - cz
                py = peak_centre[o, 1] + peak_ball[o, 1] - cy
                px = peak_centre[o, 2] + peak_ball[o, 2] - cx
                r2_peak = peak_ball[o, 3] - _TIE
                r2_own = ball[i, 3] - _TIE
                safe = ti.sqrt(r2_peak) - ti.sqrt(pz * pz + py * py + px * px) - 1e-3
                inside = 1
                if safe <= 0:
                    inside = 0
                r2_safe = safe * safe
                reach = ti.cast(ti.ceil(ti.sqrt(r2_own)), ti.i32)
                for dz in range(-reach, reach + 1):
                    if inside == 1:
                        for dy in range(-reach, reach + 1):
                            q = ti.cast(dz * dz + dy * dy, ti.f32)
                            lo, hi = _x_span(q, r2_safe, r2_own)
                            for j in range(2 * (hi - lo + 1)):
                                dx = (lo + j // 2) * (1 - 2 * (j % 2))
                                if (j % 2 == 0 or dx != 0) and q + dx * dx < r2_own:
                                    ez = dz - pz
                                    ey = dy - py
                                    ex = dx - px
                                    if ez * ez + ey * ey + ex * ex >= r2_peak:
                                        inside = 0
        covered[i] = ti.u8(inside)


@ti.kernel
def partner_kernel(centre: ti.types.ndarray(dtype=ti.i32, ndim=2),
                   ball: ti.types.ndarray(dtype=ti.f32, ndim=2),
                   index: ti.types.ndarray(dtype=ti.i32, ndim=3),
                   partner: ti.types.ndarray(dtype=ti.i32, ndim=1)):
    """partner[i] = the ridge ball next to ball i (26-neighbourhood) that outranks it, the largest; -1 if none.

    ``index`` holds each ridge voxel's ball number (-1 elsewhere). Ball j
    outranks ball i when its value is larger, or equal with j > i: a strict
    order, so no chain of partners runs in a circle.
    """
    nz, ny, nx = index.shape[0], index.shape[1], index.shape[2]
    for i in range(centre.shape[0]):
        best = -1
        best_r2 = -1.0
        for oz, oy, ox, cls in ti.static(_NEAR):
            z, y, x = centre[i, 0] + oz, centre[i, 1] + oy, centre[i, 2] + ox
            if 0 <= z < nz and 0 <= y < ny and 0 <= x < nx:
                j = index[z, y, x]
                if j >= 0 and (ball[j, 4] > ball[i, 4] or (ball[j, 4] == ball[i, 4] and j > i)):
                    if ball[j, 3] > best_r2:
                        best = j
                        best_r2 = ball[j, 3]
        partner[i] = best


@ti.func
def _isqrt(t):
    """floor(sqrt(t)) of an integer t >= 0, exactly."""
    m = ti.cast(ti.sqrt(ti.cast(t, ti.f32)), ti.i32)
    while (m + 1) * (m + 1) <= t:
        m += 1
    while m * m > t:
        m -= 1
    return m


@ti.kernel
def whole_voxel_kernel(d2: ti.types.ndarray(dtype=ti.f32, ndim=3)):
    """In place: squared distance to the nearest solid voxel centre -> sqrt(r^2 + 1), 0 on solid.

    r is the largest whole radius of a ball {x : |x - c| <= r} of pore voxels
    at c: every solid voxel is farther than r, so r^2 <= d2 - 1. That ball is
    the lattice ball |x - c|^2 < r^2 + 1 of :func:`ridge_kernel`, whose
    tables then tell which balls lie inside a neighbour's.
    """
    for z, y, x in ti.ndrange(d2.shape[0], d2.shape[1], d2.shape[2]):
        t = ti.cast(ti.round(d2[z, y, x]), ti.i32)
        v = 0.0
        if t > 0:
            r = _isqrt(t - 1)
            v = ti.sqrt(ti.cast(r * r + 1, ti.f32))
        d2[z, y, x] = v


@ti.func
def _paint_run(lt: ti.template(), z, y, x_lo, x_hi, value):
    """lt = max(lt, value) on row (z, y) from x_lo to x_hi."""
    for x in range(x_lo, x_hi + 1):
        # lt only grows, so a voxel read at value or more needs no atomic (a locked compare-and-swap loop for
        # floats). Step 0 of the paper phantom: the non-NMC phase's whole-voxel painting 49.3 -> 32.1 s, the
        # pores' continuous painting 28.8 -> 27.8 s (the worst case measured)
        if lt[z, y, x] < value:
            ti.atomic_max(lt[z, y, x], value)


@ti.kernel
def paint_ridge_kernel(centre: ti.types.ndarray(dtype=ti.i32, ndim=2),
                       ball: ti.types.ndarray(dtype=ti.f32, ndim=2),
                       skip: ti.types.ndarray(dtype=ti.u8, ndim=1),
                       partner: ti.types.ndarray(dtype=ti.i32, ndim=1),
                       lt: ti.types.ndarray(dtype=ti.f32, ndim=3)):
    """:func:`paint_kernel` for lattice-centred balls (the ridge's), leaving out each ball's overlap with its partner.

    Where ball i overlaps ball j = partner[i], the result is at least
    value_j >= value_i whatever i paints: j paints its own ball, or leaves
    out only its overlap with its own partner, which outranks it in turn,
    and so on up a chain that ends (the order is strict); a skipped
    (covered) ball lies inside a painted sub-voxel ball of no smaller
    value. So leaving the overlap out gives the same bytes, and on a sheet
    of ridge voxels, where neighbouring balls nearly coincide, it leaves
    out most of each ball. Both balls have integer r_out^2 and lattice
    centres, so "strictly inside" (within the float slack ``_TIE``) is
    |offset|^2 <= r_out^2 - 1, exactly: the ball's planes, rows and runs of
    x, and the overlap of a row, all follow from integer square roots, and
    only rows that cross the ball are visited.
    """
    nz, ny, nx = lt.shape[0], lt.shape[1], lt.shape[2]
    for i in range(centre.shape[0]):
        if skip[i] == 0:
            cz, cy, cx = centre[i, 0], centre[i, 1], centre[i, 2]
            inside = ti.cast(ball[i, 3], ti.i32) - 1   # largest |offset|^2 strictly inside
            value = ball[i, 4]
            j = partner[i]
            inside_j = -1
            if j >= 0:
                inside_j = ti.cast(ball[j, 3], ti.i32) - 1
            reach_z = _isqrt(inside)
            for dz in range(ti.max(-reach_z, -cz), ti.min(reach_z, nz - 1 - cz) + 1):
                plane = inside - dz * dz
                reach_y = _isqrt(plane)
                for dy in range(ti.max(-reach_y, -cy), ti.min(reach_y, ny - 1 - cy) + 1):
                    m = _isqrt(plane - dy * dy)
                    x0 = ti.max(cx - m, 0)
                    x1 = ti.min(cx + m, nx - 1)
                    a_end, b_start = x1, x1 + 1
                    if j >= 0:
                        ez, ey = cz + dz - centre[j, 0], cy + dy - centre[j, 1]
                        t = inside_j - ez * ez - ey * ey
                        if t >= 0:
                            mj = _isqrt(t)
                            a_end = ti.min(x1, centre[j, 2] - mj - 1)
                            b_start = ti.max(x0, centre[j, 2] + mj + 1)
                    _paint_run(lt, cz + dz, cy + dy, x0, a_end, value)
                    _paint_run(lt, cz + dz, cy + dy, b_start, x1, value)
