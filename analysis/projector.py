"""Parallel-beam projector pair: Joseph forward projection and its exact adjoint.

Geometry (the contract shared by the simulator and the reconstruction):

- Volumes are indexed (z, y, x) in voxels; the rotation axis is z and passes
  through the volume centre ``cx = (nx - 1) / 2``, ``cy = (ny - 1) / 2``.
- At angle ``t`` the rays run along ``(x, y) = (cos t, sin t)``.
- A point ``(x, y)`` projects to the detector coordinate
  ``u = -(x - cx) sin t + (y - cy) cos t`` (voxels); detector column ``j``
  sits at ``u = j - (n_det - 1) / 2``. Detector row ``k`` is volume slice
  ``k``, so every slice is an independent 2D problem.
- ``n_det`` may be smaller than the volume (a field of view narrower than the
  object: truncated projections, interior tomography) or larger.

The forward projector is Joseph's method: a ray steps one voxel at a time
along its major axis (x when ``|cos t| >= |sin t|``, else y) and linearly
interpolates between the two voxels it passes on the other axis; each sample
is weighted by the step length ``1 / max(|cos t|, |sin t|)``, so projections
are line integrals in voxel-length units. Voxels outside the volume are zero.
Two shortcuts leave the sums as they are (to float32 rounding): a ray visits only
the samples within its z-block's support (the largest distance of a non-zero
voxel from the axis, plus one voxel), so a pillar in air spares the air around
it; and a slice of one value (a flat head filling the grid) is projected as
that value times a projected slice of ones (projected once per geometry and
kept for the next call: a scan's slabs share it).

The back-projector is the exact transpose of that matrix, written as a gather:
each voxel visits, for every angle, the (at most two) detector bins whose
rays touch it and applies the weight those rays gave it, in closed form
(a hat of half-width ``1 / step`` bins about the voxel's detector position,
times the step length). There are no atomic adds, so results are
bit-for-bit reproducible; <A x, y> = <x, A^T y> holds to float32 rounding.

The forward kernel projects neighbouring detector bins in pairs: where both
rays sample without bounds checks they march together, one voxel column at
a time, so the second ray reads the cache lines the first just loaded (each
ray still adds its own samples in march order). On the paper scenario's
fine slabs (4 blocks of 1368 x 1368, 801 angles, two heights; 6 Dec 2026,
this 2-core VM) it takes 2.91 and 3.05 s against 3.28 and 3.47 s one ray at
a time; the sums differ by float32 rounding (up to 5e-6 of the largest).

Each launch of the forward kernel adds, to every ray's sum, only its samples
of 128 march indices (columns along the ray), the next launch the next 128:
the rays of all angles then read one band of the block (5.6 MB of the
paper's 1368^2 slices, 8 wide) instead of the whole block (60 MB) at each
angle, which does not stay in cache over 801 angles (the 2-core VM of 6 Dec
2026: AMD EPYC, family 25 model 17, 32 MB of L3 shared with other guests).
Each ray still adds its samples in march order, but taichi's fast math lets
LLVM vectorise a loop's additions in groups, and the groups follow the
loop's bounds: sums over more than 128 march indices differ by float32
rounding from one launch's (up to 8e-7 of the largest on those slices, as
measured with 512-index launches); slices of up to 128 voxels a side give
the same bytes.

Consecutive slices are processed together as one float32 vector (they share
every geometric computation), so volumes are repacked to (z-block, y, x, w)
for the kernels and back, nz padded to a multiple of w: w = 8 slices for the
forward projector and for the back-projectors. Wide forward blocks pay only
once each band fits in cache: before the march was cut into launches, 2-wide
blocks projected the paper's fine slices 1.9-2.3x faster than 8-wide ones (5
Dec 2026). With the bands, on this VM (7 Dec 2026, 801 angles over +-70 deg,
alternating processes, the sums equal to float32 rounding), 8 wide with
128-index launches against 2 wide with 512-index ones:

- 8-slice slabs of the paper scenario's fine phantom (1368^2, 1056 bins, as
  its scans project them), 16 slices, four runs each: 5.70-6.85 s against
  8.69-11.07 s (step 1) and 4.86-5.90 s against 7.39-8.08 s (step 0), the
  worst pairing 0.80x (one more run 8 wide, at a busy moment and unpaired:
  8.21 and 7.10 s); in a band of 24 rows of a whole scan (step 1, two runs each)
  the projection took 30.7-32.0 s against 40.2-40.4 s (0.76-0.80x);
- best of two, two runs each: disks of ``benchmarks/projector_vs_astra.py``
  at 256^2 x 64 slices x 180 angles 0.17-0.21 s against 0.26-0.30 s, at
  512^2 x 32 1.28-1.77 s against 1.96-2.15 s, at 1024^2 x 8 1.43-1.82 s
  against 2.01-2.07 s; uniform noise at 684^2 x 16 1.71-2.31 s against
  2.68-2.84 s; a 684^2 crop of the fine slices 1.78-1.82 s against
  2.80-2.86 s. The worst pairing is 0.91x (disks at 1024^2).

16-wide blocks of 16-slice slabs (64-index launches) took 6.35-6.55 s on
step 1's slab, against 5.70-6.26 s 8 wide. The back-projectors are 1.5x
faster at 8 than at 4 (24 slices of 508^2).
``backproject_interpolating`` is the different, pixel-driven back-projector
that filtered back-projection needs (linear interpolation on the detector).

Both back-projectors add 64 angles per launch (``_GATHER_ANGLES``) to what
the launches before left in the volume: each voxel reads a bin of every
angle, and a block's bins of 801 angles (13 MB for 508 bins) fell out of
the shared L3 of the VM of 6 Dec 2026 (above), while 64 angles' (1 MB) stay
in cache. Each voxel still adds its angles in order, in float32, so the
bytes are those of one launch (checked on the three tomograms of a paper
run). Back-projecting one of the paper scenario's filtered scans for FBP
(516 slices of 508^2, 801 angles; alternating processes, this VM) took
27.3-33.7 s against 59.9-91.4 s in one launch, and its reconstruction
stage (three scans) 83.3-86.3 s against 113.4-155.3 s. On random
sinograms (two runs each, best of two) the gain ranges from none on small
volumes (64 slices of 128^2, 180 angles: 0.05-0.07 s against 0.04-0.09 s,
the worst case) to 2-3x on 16 slices of 1024^2 (801 angles: 2.97-4.91
against 9.20-12.20 s).

All kernels take numpy arrays (float32, C-contiguous) as taichi ndarrays:
nothing is declared at import and nothing stays allocated between calls.
"""

import numpy as np
import taichi as ti

from analysis._taichi import ensure_taichi

_N_CHUNKS = 16  # kernel launches per call when progress is reported
_MARCH_COLUMNS = 128  # march indices summed per forward launch (see the module docstring)
_GATHER_ANGLES = 64  # angles added per back-projection launch (see the module docstring)

# Per-angle geometry columns (float32 table handed to the kernels).
_G_COS, _G_SIN, _G_INV, _G_SLOPE, _G_STEP, _G_XMAJOR = range(6)


def _angles_rad(angles_deg):
    angles = np.asarray(angles_deg, dtype=np.float64)
    if angles.ndim != 1 or angles.size == 0 or not np.all(np.isfinite(angles)):
        raise ValueError("angles_deg: expected a non-empty 1D array of finite angles in degrees")
    return np.deg2rad(angles)


def _geometry(angles_deg):
    """Per-angle table: cos, sin, 1/major, minor/major slope, step, x-major flag."""
    t = _angles_rad(angles_deg)
    c, s = np.cos(t), np.sin(t)
    xmajor = np.abs(c) >= np.abs(s)
    major = np.where(xmajor, c, s)
    minor = np.where(xmajor, s, c)
    geom = np.empty((t.size, 6), dtype=np.float64)
    geom[:, _G_COS] = c
    geom[:, _G_SIN] = s
    geom[:, _G_INV] = 1.0 / major
    geom[:, _G_SLOPE] = minor / major
    geom[:, _G_STEP] = 1.0 / np.abs(major)
    geom[:, _G_XMAJOR] = xmajor
    return np.ascontiguousarray(geom, dtype=np.float32)


_ZB = 8  # slices back-projected together: one detector row block shares all geometry
_VEC = ti.types.vector(_ZB, ti.f32)
_ZB_FORWARD = 8  # slices forward-projected together (see the module docstring)
_VEC_FORWARD = ti.types.vector(_ZB_FORWARD, ti.f32)


@ti.func
def _clamped_index(v, n):
    # Clamp in float first: a near-zero slope gives huge (or infinite) values.
    return ti.cast(ti.min(ti.max(v, -2.0), ti.cast(n + 2, ti.f32)), ti.i32)


@ti.func
def _ray_bounds(start, slope, n_march, n_interp, reach):
    """March indices ``[lo, a, b, hi]`` of one ray over arr[zb, interp, march]: samples in
    ``[lo, a)`` and ``[b, hi)`` need bounds checks, those in ``[a, b)`` do not.

    The sample at march index i interpolates at p = start + i * slope. Only
    indices that can touch the volume, and touch it within ``reach`` voxels of
    the rotation axis, are visited (beyond it every voxel is zero: see
    :func:`_support_reach`), and the bounds checks are skipped where both
    neighbours are certainly inside.
    """
    r1 = (-1.0 - start) / slope
    r2 = (ti.cast(n_interp, ti.f32) - start) / slope
    s1 = (0.0 - start) / slope
    s2 = (ti.cast(n_interp - 1, ti.f32) - start) / slope
    lo = ti.max(0, _clamped_index(ti.floor(ti.min(r1, r2)), n_march) - 1)
    hi = ti.min(n_march, _clamped_index(ti.ceil(ti.max(r1, r2)), n_march) + 2)
    # the march indices whose sample lies within reach of the axis: with m = i - cm and
    # q = start + i slope - cp, m^2 + q^2 <= reach^2 is a quadratic in i
    cm = 0.5 * ti.cast(n_march - 1, ti.f32)
    cp = 0.5 * ti.cast(n_interp - 1, ti.f32)
    q0 = start + cm * slope - cp  # q at m = 0
    qa = 1.0 + slope * slope
    half_b = slope * q0
    disc = half_b * half_b - qa * (q0 * q0 - reach * reach)
    if disc < 0.0:
        hi = lo
    else:
        root = ti.sqrt(disc)
        lo = ti.max(lo, _clamped_index(ti.floor(cm + (-half_b - root) / qa), n_march) - 1)
        hi = ti.max(lo, ti.min(hi, _clamped_index(ti.ceil(cm + (-half_b + root) / qa), n_march) + 2))
    a = ti.min(ti.max(_clamped_index(ti.ceil(ti.min(s1, s2)), n_march) + 2, lo), hi)
    b = ti.min(ti.max(_clamped_index(ti.floor(ti.max(s1, s2)), n_march) - 2, a), hi)
    if ti.abs(slope) < 1e-3:
        # The margin of two samples is worth 2 * |slope| voxels; near the
        # axes that is below float32 rounding, so check every sample there.
        a, b = lo, lo
    if slope == 0.0:
        lo, a, b, hi = 0, 0, 0, n_march
        if start < -1.0 or start > ti.cast(n_interp, ti.f32):
            hi = 0
    return ti.Vector([lo, a, b, hi])


@ti.func
def _checked_samples(arr: ti.template(), zb, start, slope, i0, i1, n_interp, acc):
    for i in range(i0, i1):
        acc += _checked_sample(arr, zb, start + ti.cast(i, ti.f32) * slope, i, n_interp)
    return acc


@ti.func
def _inner_sample(arr: ti.template(), zb, p, i):
    p0 = ti.cast(p, ti.i32)  # p >= 0 here: truncation is floor, and cheaper
    v0 = arr[zb, p0, i]
    return v0 + (p - ti.cast(p0, ti.f32)) * (arr[zb, p0 + 1, i] - v0)


@ti.func
def _inner_samples(arr: ti.template(), zb, start, slope, i0, i1, acc):
    for i in range(i0, i1):
        acc += _inner_sample(arr, zb, start + ti.cast(i, ti.f32) * slope, i)
    return acc


@ti.func
def _ray_pair_sums(arr: ti.template(), zb, start0, start1, two, slope, n_march, n_interp, reach, m0, m1, acc0,
                   acc1):
    """``acc0``, ``acc1`` plus the Joseph sums of _ZB_FORWARD slices along two neighbouring rays (``two`` = 0:
    the first alone), over their samples of march indices ``[m0, m1)``.

    The rays are one detector bin apart, so where both sample unchecked they
    read the same rows of ``arr``, or the next: they march together there,
    and the second ray's reads hit the cache lines the first one just loaded
    (11-12 % less time than one ray at a time on the paper scenario's fine
    slabs on the VM of 5 Dec 2026; on that of 6 Dec, 7.24-7.50 s against
    5.96-6.59 s for 8 slices, i.e. more: docs/paper-scenario-log.md). Each ray still adds its
    samples in march order.
    """
    # each range of samples cut to [m0, m1): still in march order, and the ranges still in sequence
    k0 = ti.min(ti.max(_ray_bounds(start0, slope, n_march, n_interp, reach), m0), m1)
    k1 = ti.Vector([0, 0, 0, 0])
    if two:
        k1 = ti.min(ti.max(_ray_bounds(start1, slope, n_march, n_interp, reach), m0), m1)
    # each ray's unchecked samples [a, b) split at the joint range [s, e) (empty: s = e = a; always
    # without a second ray, whose bounds are then all 0)
    s0, e0, s1, e1 = k0[1], k0[1], k1[1], k1[1]
    joint_lo = ti.max(k0[1], k1[1])
    joint_hi = ti.min(k0[2], k1[2])
    if joint_lo < joint_hi:
        s0, e0, s1, e1 = joint_lo, joint_hi, joint_lo, joint_hi
    acc0 = _checked_samples(arr, zb, start0, slope, k0[0], k0[1], n_interp, acc0)
    acc1 = _checked_samples(arr, zb, start1, slope, k1[0], k1[1], n_interp, acc1)
    acc0 = _inner_samples(arr, zb, start0, slope, k0[1], s0, acc0)
    acc1 = _inner_samples(arr, zb, start1, slope, k1[1], s1, acc1)
    for i in range(s0, e0):
        fi = ti.cast(i, ti.f32)
        acc0 += _inner_sample(arr, zb, start0 + fi * slope, i)
        acc1 += _inner_sample(arr, zb, start1 + fi * slope, i)
    acc0 = _inner_samples(arr, zb, start0, slope, e0, k0[2], acc0)
    acc1 = _inner_samples(arr, zb, start1, slope, e1, k1[2], acc1)
    acc0 = _checked_samples(arr, zb, start0, slope, k0[2], k0[3], n_interp, acc0)
    acc1 = _checked_samples(arr, zb, start1, slope, k1[2], k1[3], n_interp, acc1)
    return acc0, acc1


@ti.func
def _checked_sample(arr: ti.template(), zb, p, i, n_interp):
    p0 = ti.cast(ti.floor(p), ti.i32)
    f = p - ti.cast(p0, ti.f32)
    v = _VEC_FORWARD(0.0)
    if 0 <= p0 < n_interp:
        v += (1.0 - f) * arr[zb, p0, i]
    if 0 <= p0 + 1 < n_interp:
        v += f * arr[zb, p0 + 1, i]
    return v


@ti.kernel
def _forward_kernel(vol: ti.types.ndarray(dtype=_VEC_FORWARD, ndim=3),
                    vol_t: ti.types.ndarray(dtype=_VEC_FORWARD, ndim=3),
                    g: ti.types.ndarray(dtype=ti.f32, ndim=2),
                    reach: ti.types.ndarray(dtype=ti.f32, ndim=1),
                    sino: ti.types.ndarray(dtype=_VEC_FORWARD, ndim=3), m0: ti.i32, m1: ti.i32):
    # vol is (z-block, y, x), vol_t the same with y and x swapped, so that
    # y-major rays also march along a contiguous axis. sino is (z-block, a, j): each ray's
    # sum so far, to which its samples of march indices [m0, m1) are added (no step weight).
    nzb, ny, nx = vol.shape[0], vol.shape[1], vol.shape[2]
    na, nd = sino.shape[1], sino.shape[2]
    cx = 0.5 * ti.cast(nx - 1, ti.f32)
    cy = 0.5 * ti.cast(ny - 1, ti.f32)
    cd = 0.5 * ti.cast(nd - 1, ti.f32)
    for zb, a, jp in ti.ndrange(nzb, na, (nd + 1) // 2):
        # detector bins j and j + 1 (the last bin alone when nd is odd)
        j = 2 * jp
        two = j + 1 < nd
        u0 = ti.cast(j, ti.f32) - cd
        u1 = u0 + 1.0
        slope = g[a, _G_SLOPE]
        acc0 = sino[zb, a, j]
        acc1 = _VEC_FORWARD(0.0)
        if two:
            acc1 = sino[zb, a, j + 1]
        if g[a, _G_XMAJOR] > 0.5:
            # y(x) = cy + u / cos + (x - cx) tan
            acc0, acc1 = _ray_pair_sums(vol, zb, cy + u0 * g[a, _G_INV] - cx * slope,
                                        cy + u1 * g[a, _G_INV] - cx * slope, two, slope, nx, ny, reach[zb], m0, m1,
                                        acc0, acc1)
        else:
            # x(y) = cx - u / sin + (y - cy) cot
            acc0, acc1 = _ray_pair_sums(vol_t, zb, cx - u0 * g[a, _G_INV] - cy * slope,
                                        cx - u1 * g[a, _G_INV] - cy * slope, two, slope, ny, nx, reach[zb], m0, m1,
                                        acc0, acc1)
        sino[zb, a, j] = acc0
        if two:
            sino[zb, a, j + 1] = acc1


@ti.kernel
def _adjoint_kernel(sino: ti.types.ndarray(dtype=_VEC, ndim=3),
                    g: ti.types.ndarray(dtype=ti.f32, ndim=2),
                    vol: ti.types.ndarray(dtype=_VEC, ndim=3), a0: ti.i32, a1: ti.i32):
    # sino is (z-block, a, j), vol is (z-block, y, x); adds angles a0..a1-1 to vol (set where a0 = 0).
    nzb, ny, nx = vol.shape[0], vol.shape[1], vol.shape[2]
    nd = sino.shape[2]
    cx = 0.5 * ti.cast(nx - 1, ti.f32)
    cy = 0.5 * ti.cast(ny - 1, ti.f32)
    cd = 0.5 * ti.cast(nd - 1, ti.f32)
    for zb, y, x in ti.ndrange(nzb, ny, nx):
        acc = _VEC(0.0)
        if a0 > 0:
            acc = vol[zb, y, x]
        xf = ti.cast(x, ti.f32) - cx
        yf = ti.cast(y, ti.f32) - cy
        for a in range(a0, a1):
            # Along the detector, the forward ray's interpolation coordinate
            # moves by `step` (>= 1) voxels per bin, so the Joseph weight of
            # bin j on this voxel is the hat max(0, 1 - |j - jc| * step) about
            # the voxel centre's detector position jc: at most two bins.
            step = g[a, _G_STEP]
            jc = cd + yf * g[a, _G_COS] - xf * g[a, _G_SIN]
            j0 = ti.cast(ti.floor(jc), ti.i32)
            f = jc - ti.cast(j0, ti.f32)
            if 0 <= j0 < nd:
                acc += (ti.max(0.0, 1.0 - f * step) * step) * sino[zb, a, j0]
            if 0 <= j0 + 1 < nd:
                acc += (ti.max(0.0, 1.0 - (1.0 - f) * step) * step) * sino[zb, a, j0 + 1]
        vol[zb, y, x] = acc


@ti.kernel
def _interp_backproject_kernel(sino: ti.types.ndarray(dtype=_VEC, ndim=3),
                               g: ti.types.ndarray(dtype=ti.f32, ndim=2),
                               weights: ti.types.ndarray(dtype=ti.f32, ndim=1),
                               vol: ti.types.ndarray(dtype=_VEC, ndim=3), a0: ti.i32, a1: ti.i32):
    # sino is (z-block, a, j) with one zero bin added at each end of the
    # detector, so one range test replaces two bounds checks; vol is
    # (z-block, y, x); adds angles a0..a1-1 to vol (set where a0 = 0).
    nzb, ny, nx = vol.shape[0], vol.shape[1], vol.shape[2]
    nd = sino.shape[2] - 2
    cx = 0.5 * ti.cast(nx - 1, ti.f32)
    cy = 0.5 * ti.cast(ny - 1, ti.f32)
    cd = 0.5 * ti.cast(nd - 1, ti.f32) + 1.0  # + 1: the leading zero bin
    for zb, y, x in ti.ndrange(nzb, ny, nx):
        acc = _VEC(0.0)
        if a0 > 0:
            acc = vol[zb, y, x]
        xf = ti.cast(x, ti.f32) - cx
        yf = ti.cast(y, ti.f32) - cy
        for a in range(a0, a1):
            p = cd + yf * g[a, _G_COS] - xf * g[a, _G_SIN]
            if 0.0 <= p < ti.cast(nd + 1, ti.f32):
                p0 = ti.cast(p, ti.i32)
                v0 = sino[zb, a, p0]
                acc += weights[a] * (v0 + (p - ti.cast(p0, ti.f32)) * (sino[zb, a, p0 + 1] - v0))
        vol[zb, y, x] = acc


def _to_blocks(arr, width, pad_last=0):
    """(nz, n0, n1) float32 -> (ceil(nz / width), n0, n1 + 2 pad_last, width), zero-padded in z
    and by ``pad_last`` zeros at each end of the last axis.

    A taichi ndarray of width-vectors: ``width`` consecutive slices share
    every geometric computation and sit next to each other in memory. Filled
    slice by slice into the one output array: a padded copy and a transposed
    one would each cost another sinogram (0.84 GB for a paper scan).
    """
    nz, n0, n1 = arr.shape
    nzb = -(-nz // width)
    out = np.zeros((nzb, n0, n1 + 2 * pad_last, width), dtype=np.float32)
    for w in range(width):
        lane = arr[w::width]
        out[:len(lane), :, pad_last:pad_last + n1, w] = lane
    return out


def _from_blocks(blocks, nz):
    """Inverse of :func:`_to_blocks`."""
    nzb, n0, n1, width = blocks.shape
    return np.ascontiguousarray(blocks.transpose(0, 3, 1, 2).reshape(nzb * width, n0, n1)[:nz])


def _uniform_slices(vol):
    """Which z slices hold a single non-zero value, and that value (float32)."""
    flat = vol.reshape(vol.shape[0], -1)
    level = flat[:, 0].astype(np.float32)
    uniform = (level != 0) & np.all(flat == flat[:, :1], axis=1)
    return uniform, level


def _support_reach(blocks):
    """Per z-block, a distance from the rotation axis (voxels) beyond which no ray sample reads a non-zero voxel.

    The largest distance of a non-zero voxel centre from the axis, plus one
    voxel for the interpolation's neighbour and a little for float32
    rounding; 0 for an empty block. A pillar narrower than its grid then
    spares the rays' samples in the air around it.
    """
    nzb, ny, nx, width = blocks.shape
    r2 = (np.arange(ny) - 0.5 * (ny - 1))[:, None] ** 2 + (np.arange(nx) - 0.5 * (nx - 1))[None, :] ** 2
    reach = np.zeros(nzb, dtype=np.float32)
    occupied = np.empty((ny, nx), dtype=bool)
    for b in range(nzb):
        # slice by slice, not np.any over the block's last axis (two values): 27.1 -> 9.7 ms per block of the paper
        # scenario's fine slabs (1368^2; only that size measured)
        np.not_equal(blocks[b, :, :, 0], 0, out=occupied)
        for w in range(1, width):
            occupied |= blocks[b, :, :, w] != 0
        largest = np.max(r2, where=occupied, initial=-1.0)
        if largest >= 0:
            reach[b] = np.sqrt(largest) + 1.01
    return reach


def _check_volume(volume):
    vol = np.asarray(volume)
    if vol.ndim != 3 or min(vol.shape) < 1:
        raise ValueError(f"volume: expected a non-empty 3D (z, y, x) array, got shape {vol.shape}")
    return vol


def _check_sinogram(sinogram, n_angles):
    sino = np.asarray(sinogram)
    if sino.ndim != 3 or sino.shape[0] != n_angles or min(sino.shape) < 1:
        raise ValueError(f"sinogram: expected shape (n_angles={n_angles}, nz, n_det), got {sino.shape}")
    return sino


def _check_shape_yx(shape_yx):
    try:
        ny, nx = (int(n) for n in shape_yx)
    except (TypeError, ValueError):
        raise ValueError(f"shape_yx: expected two positive ints (ny, nx), got {shape_yx!r}") from None
    if ny < 1 or nx < 1:
        raise ValueError(f"shape_yx: expected two positive ints (ny, nx), got {shape_yx!r}")
    return ny, nx


def _chunks(n, progress):
    """Split range(n) into launches; several only when progress is wanted."""
    k = 1 if progress is None else min(n, _N_CHUNKS)
    edges = np.linspace(0, n, k + 1).round().astype(int)
    return list(zip(edges[:-1], edges[1:]))


def forward_project(volume, angles_deg, n_det=None, arch="cpu", progress=None):
    """Parallel-beam line integrals of a volume (Joseph projector).

    Parameters
    ----------
    volume : array_like, shape (nz, ny, nx)
        Values per voxel (e.g. attenuation in 1/voxel-length).
    angles_deg : array_like, shape (n_angles,)
        Projection angles in degrees (see the module geometry).
    n_det : int, optional
        Detector columns, centred on the rotation axis; default ``nx``.
    arch : {"cpu", "gpu"}
        Taichi backend.
    progress : callable, optional
        Called as ``progress(fraction)`` with fractions in [0, 1].

    Returns
    -------
    numpy.ndarray of float32, shape (n_angles, nz, n_det)
        Line integrals in voxel-length units (value x voxels traversed).
    """
    vol = _check_volume(volume)
    geom = _geometry(angles_deg)
    n_det = vol.shape[2] if n_det is None else n_det
    if not isinstance(n_det, (int, np.integer)) or n_det < 1:
        raise ValueError(f"n_det: expected a positive int, got {n_det!r}")
    ensure_taichi(arch)
    # A slice of one value (a flat head or a pin filling the grid) projects as that value times
    # a slice of ones: it is projected once, and those slices enter the kernel as zeros.
    uniform, level = _uniform_slices(vol)
    if uniform.any():
        vol = np.where(uniform[:, None, None], np.float32(0.0), vol)
    out = _project_blocks(_to_blocks(vol, _ZB_FORWARD), geom, n_det, progress)
    sino = np.ascontiguousarray(_from_blocks(out, vol.shape[0]).transpose(1, 0, 2))
    if uniform.any():
        ones = _projected_ones(vol.shape[1:], geom, n_det, arch)
        sino[:, uniform] += level[uniform][None, :, None] * ones[:, None, :]
    return sino


_ONES = {}  # the last projected slice of ones, by (ny, nx, n_det, arch, geometry)


def _projected_ones(shape_yx, geom, n_det, arch):
    """(n_angles, n_det) projection of a (ny, nx) slice of ones, kept for the next call with the same geometry.

    A scan projects its slabs one after the other with one geometry, and each slab that holds a
    slice of the head or the pin needs this projection: made anew for each slab, it cost more
    than the slab itself where the head fills most of it (the paper scenario's last step).
    """
    key = (tuple(shape_yx), int(n_det), arch, geom.tobytes())
    if key not in _ONES:
        ones = _project_blocks(_to_blocks(np.ones((1,) + tuple(shape_yx), np.float32), _ZB_FORWARD), geom,
                               n_det, None)[0, :, :, 0]
        ones.setflags(write=False)
        _ONES.clear()
        _ONES[key] = ones
    return _ONES[key]


def _project_blocks(blocks, geom, n_det, progress):
    """Forward kernel over (z-block, y, x, _ZB_FORWARD) blocks: (z-block, angle, n_det, _ZB_FORWARD) float32.

    Every ray's samples are summed in march order, ``_MARCH_COLUMNS`` march
    indices per kernel launch, so that all the rays of a launch read the
    same band of the block: see the module docstring.
    """
    # y-major rays march along y: give them a (z, x, y) copy to read contiguously.
    blocks_t = np.ascontiguousarray(blocks.transpose(0, 2, 1, 3)) if np.any(geom[:, _G_XMAJOR] < 0.5) else blocks
    out = np.zeros((blocks.shape[0], geom.shape[0], int(n_det), _ZB_FORWARD), dtype=np.float32)
    reach = _support_reach(blocks)
    chunks = _chunks(blocks.shape[0], progress)
    n_march = max(blocks.shape[1], blocks.shape[2])
    for k, (b0, b1) in enumerate(chunks):
        for m0 in range(0, n_march, _MARCH_COLUMNS):
            _forward_kernel(blocks[b0:b1], blocks_t[b0:b1], geom, reach[b0:b1], out[b0:b1], m0, m0 + _MARCH_COLUMNS)
        if progress is not None:
            progress((k + 1) / len(chunks))
    out *= geom[:, _G_STEP][None, :, None, None]
    return out


def back_project(sinogram, angles_deg, shape_yx, arch="cpu", progress=None):
    """Exact adjoint (matrix transpose) of :func:`forward_project`.

    Parameters
    ----------
    sinogram : array_like, shape (n_angles, nz, n_det)
        Values per detector bin.
    angles_deg : array_like, shape (n_angles,)
        Projection angles in degrees, as given to the forward projection.
    shape_yx : tuple of int
        (ny, nx) of the volume to back-project into.
    arch : {"cpu", "gpu"}
        Taichi backend.
    progress : callable, optional
        Called as ``progress(fraction)`` with fractions in [0, 1].

    Returns
    -------
    numpy.ndarray of float32, shape (nz, ny, nx)
        ``A.T @ sinogram`` with ``A`` the forward projector: the sum over rays
        of the bin value times the ray's interpolation weight and step length
        (voxel lengths), so ``<A x, y> == <x, A.T y>``.
    """
    geom = _geometry(angles_deg)
    sino = _check_sinogram(sinogram, geom.shape[0])
    ny, nx = _check_shape_yx(shape_yx)
    ensure_taichi(arch)
    return _gather(_adjoint_kernel, sino, geom, (), (ny, nx), progress)


def backproject_interpolating(sinogram, angles_deg, shape_yx, weights=None, arch="cpu",
                              progress=None):
    """Pixel-driven back-projection with linear interpolation on the detector.

    This is the back-projection of filtered back-projection, not the adjoint
    of :func:`forward_project`: every voxel centre is projected onto the
    detector and the two neighbouring bins are interpolated, so a constant
    sinogram back-projects to a constant (no Joseph-weight ripple).

    Parameters
    ----------
    sinogram : array_like, shape (n_angles, nz, n_det)
        Values per detector bin (typically filtered projections).
    angles_deg : array_like, shape (n_angles,)
        Projection angles in degrees.
    shape_yx : tuple of int
        (ny, nx) of the output volume, centred on the rotation axis.
    weights : array_like, shape (n_angles,), optional
        Weight of each angle (e.g. its angular interval in radians); default 1.
    arch : {"cpu", "gpu"}
        Taichi backend.
    progress : callable, optional
        Called as ``progress(fraction)`` with fractions in [0, 1].

    Returns
    -------
    numpy.ndarray of float32, shape (nz, ny, nx)
        ``sum_a weights[a] * sinogram[a, z, u(x, y)]``; bins outside the
        detector count as zero.
    """
    geom = _geometry(angles_deg)
    n_angles = geom.shape[0]
    sino = _check_sinogram(sinogram, n_angles)
    ny, nx = _check_shape_yx(shape_yx)
    w = np.ones(n_angles) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n_angles,) or not np.all(np.isfinite(w)):
        raise ValueError(f"weights: expected {n_angles} finite values, one per angle")
    w = np.ascontiguousarray(w, dtype=np.float32)
    ensure_taichi(arch)
    return _gather(_interp_backproject_kernel, sino, geom, (w,), (ny, nx), progress, pad_bins=1)


def _gather(kernel, sino, geom, extra, shape_yx, progress, pad_bins=0):
    """Run a back-projection kernel per z-block chunk, ``_GATHER_ANGLES`` angles per launch (the
    sinogram's detector padded with ``pad_bins`` zero bins at each end); returns (nz, ny, nx) float32."""
    nz = sino.shape[1]
    blocks = _to_blocks(np.transpose(sino, (1, 0, 2)), _ZB, pad_last=pad_bins)
    out = np.empty((blocks.shape[0],) + tuple(shape_yx) + (_ZB,), dtype=np.float32)
    chunks = _chunks(blocks.shape[0], progress)
    n_angles = geom.shape[0]
    for k, (b0, b1) in enumerate(chunks):
        for a0 in range(0, n_angles, _GATHER_ANGLES):
            kernel(blocks[b0:b1], geom, *extra, out[b0:b1], a0, min(n_angles, a0 + _GATHER_ANGLES))
        if progress is not None:
            progress((k + 1) / len(chunks))
    return _from_blocks(out, nz)
