"""Cubic B-spline sampling of a volume at affinely warped point sets (taichi).

The deformed volume is prefiltered once (``scipy.ndimage.spline_filter``'s
bytes, mirror boundary: :func:`spline_coefficients`); every later sample is
a 64-tap gather of those coefficients, evaluated in parallel over (node,
part of its points) with no atomics and the parts added in a fixed order, so
results are bit-reproducible.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.ndimage as ndi
import taichi as ti

from analysis._taichi import ensure_taichi
from analysis.dvc.gauss_newton import _window
from analysis.dvc.grid import box_leaves_volume, subvolume_box


@ti.func
def _weights(t):
    t2 = t * t
    t3 = t2 * t
    return ti.Vector([(1.0 - t) ** 3 / 6.0, (3.0 * t3 - 6.0 * t2 + 4.0) / 6.0,
                      (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) / 6.0, t3 / 6.0])


_PAD = 3   # mirrored coefficient border: taps stay in bounds for positions down to -1.5 voxels


@ti.func
def _bspline(coef: ti.template(), pz, py, px):
    """Value at (pz, py, px) of the spline whose coefficients carry a _PAD border."""
    fz, fy, fx = ti.floor(pz), ti.floor(py), ti.floor(px)
    wz = _weights(ti.cast(pz - fz, ti.f32))
    wy = _weights(ti.cast(py - fy, ti.f32))
    wx = _weights(ti.cast(px - fx, ti.f32))
    # positions far outside are clamped (their nodes are flagged by the caller)
    iz = ti.math.clamp(ti.cast(fz, ti.i32) + _PAD - 1, 0, coef.shape[0] - 4)
    iy = ti.math.clamp(ti.cast(fy, ti.i32) + _PAD - 1, 0, coef.shape[1] - 4)
    ix = ti.math.clamp(ti.cast(fx, ti.i32) + _PAD - 1, 0, coef.shape[2] - 4)
    acc = ti.f32(0.0)
    for a in ti.static(range(4)):
        for b in ti.static(range(4)):
            row = (wx[0] * coef[iz + a, iy + b, ix] + wx[1] * coef[iz + a, iy + b, ix + 1]
                   + wx[2] * coef[iz + a, iy + b, ix + 2] + wx[3] * coef[iz + a, iy + b, ix + 3])
            acc += wz[a] * wy[b] * row
    return acc


@ti.func
def _sample(coef: ti.template(), pz, py, px, null_outside: ti.template()):
    """:func:`_bspline`, or 0 at positions outside the volume's voxels when ``null_outside``."""
    g = ti.f32(0.0)
    if ti.static(null_outside):
        # the volume's voxels span [-0.5, n - 0.5] on each axis, as analysis.dvc.local's outside test has it
        hz, hy, hx = coef.shape[0] - 2 * _PAD - 0.5, coef.shape[1] - 2 * _PAD - 0.5, coef.shape[2] - 2 * _PAD - 0.5
        if pz >= -0.5 and pz <= hz and py >= -0.5 and py <= hy and px >= -0.5 and px <= hx:
            g = _bspline(coef, pz, py, px)
    else:
        g = _bspline(coef, pz, py, px)
    return g


# Taichi hands a CPU loop to its threads in blocks of at least 512 iterations, so a loop over the
# nodes of a batch (a few hundred) would run on one thread: the kernels below loop over (node, part)
# pairs, each summing one part of a node's points, and the parts are added afterwards in numpy.
_PARTS = 16   # parts of a general point set
# a cube is split into its z-rows, and each row into this many runs of y-lines: a Gauss-Newton batch
# ends with a few slow nodes (1-47 of 384 on the benchmark's large shifts), which would otherwise run on
# one thread
_ROW_PARTS = 4
_SUMS = 18    # running sums per node, see SplineVolume.correlation_sums
# a warp whose box comes this near a face goes to the kernel that tests each sample: the kernel
# builds positions in another order than numpy does, and differs from it by float64 rounding
_FACE_MARGIN_VOXELS = 1e-6


@ti.func
def _add_value_sums(acc: ti.template(), gd, gw, fn_v):
    """Add one sample ``gd`` (and ``gw``, it times its window weight) to the six sums of ``acc`` that do
    not involve the gradients: sum w g, sum w g^2, sum w g fn and sum g, sum g^2, sum g fn."""
    acc[0] += gw
    acc[1] += gw * gd
    acc[2] += gw * fn_v
    acc[15] += gd
    acc[16] += gd * gd
    acc[17] += gd * fn_v


@ti.func
def _accumulate(acc: ti.template(), gd, w, fn_v, oz, oy, ox, grad: ti.template(), r, v):
    """Add one sample ``gd`` of window weight ``w`` (both float64) to the _SUMS running sums ``acc``
    (see correlation_sums); ``r`` is the node's row of ``grad``."""
    gw = w * gd
    _add_value_sums(acc, gd, gw, fn_v)
    xh = ti.Vector([oz, oy, ox, 1.0], dt=ti.f64)
    for i in ti.static(range(3)):
        gi = gw * ti.cast(grad[r, i, v], ti.f64)
        for j in ti.static(range(4)):
            acc[3 + 4 * i + j] += gi * xh[j]


@ti.kernel
def _correlation_sums(coef: ti.types.ndarray(dtype=ti.f32, ndim=3),
                      warp: ti.types.ndarray(dtype=ti.f64, ndim=3),
                      offsets: ti.types.ndarray(dtype=ti.f32, ndim=2),
                      weights: ti.types.ndarray(dtype=ti.f32, ndim=1),
                      fn: ti.types.ndarray(dtype=ti.f32, ndim=2),
                      grad: ti.types.ndarray(dtype=ti.f32, ndim=3),
                      given: ti.types.ndarray(dtype=ti.f32, ndim=2),
                      rows: ti.types.ndarray(dtype=ti.i32, ndim=1),
                      partial: ti.types.ndarray(dtype=ti.f64, ndim=3),
                      use_given: ti.template(), null_outside: ti.template()):
    # one (node, part) per iteration, the part's points summed in a fixed order: reproducible bits
    n = offsets.shape[0]
    parts = partial.shape[1]
    chunk = (n + parts - 1) // parts
    for b, p in ti.ndrange(warp.shape[0], parts):
        r = rows[b]
        acc = ti.Vector.zero(ti.f64, _SUMS)
        for v in range(p * chunk, ti.min((p + 1) * chunk, n)):
            oz, oy, ox = ti.cast(offsets[v, 0], ti.f64), ti.cast(offsets[v, 1], ti.f64), ti.cast(offsets[v, 2], ti.f64)
            g = ti.f32(0.0)
            if ti.static(use_given):
                g = given[r, v]
            else:
                pz = warp[b, 0, 0] * oz + warp[b, 0, 1] * oy + warp[b, 0, 2] * ox + warp[b, 0, 3]
                py = warp[b, 1, 0] * oz + warp[b, 1, 1] * oy + warp[b, 1, 2] * ox + warp[b, 1, 3]
                px = warp[b, 2, 0] * oz + warp[b, 2, 1] * oy + warp[b, 2, 2] * ox + warp[b, 2, 3]
                g = _sample(coef, pz, py, px, null_outside)
            _accumulate(acc, ti.cast(g, ti.f64), ti.cast(weights[v], ti.f64), ti.cast(fn[r, v], ti.f64),
                        oz, oy, ox, grad, r, v)
        for c in ti.static(range(_SUMS)):
            partial[b, p, c] = acc[c]


@ti.kernel
def _cube_correlation_sums(coef: ti.types.ndarray(dtype=ti.f32, ndim=3),
                           warp: ti.types.ndarray(dtype=ti.f64, ndim=3), edge: ti.i32,
                           weights: ti.types.ndarray(dtype=ti.f32, ndim=1),
                           fn: ti.types.ndarray(dtype=ti.f32, ndim=2),
                           grad: ti.types.ndarray(dtype=ti.f32, ndim=3),
                           rows: ti.types.ndarray(dtype=ti.i32, ndim=1),
                           partial: ti.types.ndarray(dtype=ti.f64, ndim=3), null_outside: ti.template()):
    # _correlation_sums for cubic point sets, one (node, z-row, part of its y-lines) per iteration,
    # positions built per x-line. oz is fixed in a part and oy along a line, so the sums of
    # w g grad_i times oz, oy and 1 are taken from the sums of w g grad_i per line and per part: per
    # sample only w g grad_i and its product with ox are added (half the arithmetic of _accumulate)
    half = edge // 2
    lines = (edge + _ROW_PARTS - 1) // _ROW_PARTS
    for b, k, q in ti.ndrange(warp.shape[0], edge, _ROW_PARTS):
        r = rows[b]
        acc = ti.Vector.zero(ti.f64, _SUMS)
        part = ti.Vector.zero(ti.f64, 3)     # sum w g grad_i over the part
        oz = ti.cast(k - half, ti.f64)
        j0 = q * lines
        v = (k * edge + j0) * edge
        for j in range(j0, ti.min(j0 + lines, edge)):
            oy = ti.cast(j - half, ti.f64)
            rz = warp[b, 0, 0] * oz + warp[b, 0, 1] * oy + warp[b, 0, 3]
            ry = warp[b, 1, 0] * oz + warp[b, 1, 1] * oy + warp[b, 1, 3]
            rx = warp[b, 2, 0] * oz + warp[b, 2, 1] * oy + warp[b, 2, 3]
            line = ti.Vector.zero(ti.f64, 3)     # sum w g grad_i over the line
            for i in range(edge):
                ox = ti.cast(i - half, ti.f64)
                gd = ti.cast(_sample(coef, rz + warp[b, 0, 2] * ox, ry + warp[b, 1, 2] * ox,
                                     rx + warp[b, 2, 2] * ox, null_outside), ti.f64)
                gw = ti.cast(weights[v], ti.f64) * gd
                _add_value_sums(acc, gd, gw, ti.cast(fn[r, v], ti.f64))
                for c in ti.static(range(3)):
                    gi = gw * ti.cast(grad[r, c, v], ti.f64)
                    line[c] += gi
                    acc[5 + 4 * c] += gi * ox
                v += 1
            for c in ti.static(range(3)):
                part[c] += line[c]
                acc[4 + 4 * c] += oy * line[c]
        for c in ti.static(range(3)):
            acc[3 + 4 * c] = oz * part[c]
            acc[6 + 4 * c] = part[c]
        for c in ti.static(range(_SUMS)):
            partial[b, k * _ROW_PARTS + q, c] = acc[c]


@ti.kernel
def _sample_grid(coef: ti.types.ndarray(dtype=ti.f32, ndim=3),
                 warp: ti.types.ndarray(dtype=ti.f64, ndim=2),
                 out: ti.types.ndarray(dtype=ti.f32, ndim=3)):
    for z, y, x in ti.ndrange(out.shape[0], out.shape[1], out.shape[2]):
        oz, oy, ox = ti.cast(z, ti.f64), ti.cast(y, ti.f64), ti.cast(x, ti.f64)
        pz = warp[0, 0] * oz + warp[0, 1] * oy + warp[0, 2] * ox + warp[0, 3]
        py = warp[1, 0] * oz + warp[1, 1] * oy + warp[1, 2] * ox + warp[1, 3]
        px = warp[2, 0] * oz + warp[2, 1] * oy + warp[2, 2] * ox + warp[2, 3]
        out[z, y, x] = _bspline(coef, pz, py, px)


def device_array(array, arch):
    """``array`` as a kernel argument that stays put between calls.

    On the CPU taichi reads numpy arrays in place; on a GPU a numpy
    argument would be copied at every call, so it is uploaded once.
    """
    array = np.ascontiguousarray(array, dtype=np.float32)
    if ensure_taichi(arch) == "cpu":
        return array
    out = ti.ndarray(ti.f32, array.shape)
    out.from_numpy(array)
    return out


def spline_coefficients(volume):
    """Cubic B-spline coefficients (float32, mirror boundary) of a 3D volume, on every core.

    The same bytes as ``scipy.ndimage.spline_filter(volume, order=3,
    output=np.float32, mode="mirror")``: that filter is one 1D pass along
    each axis in turn, and each pass treats every line along its axis on its
    own, so slabs cut across the pass's axis are filtered in threads
    (ndimage releases the GIL). On a 2-core VM (6 Dec 2026, alternating,
    after a first call of each, best and worst of three): 1.49-1.61 s against
    scipy's 2.66-2.69 s at 516 x 508 x 508 (the paper scenario's volumes,
    about a dozen per run), 0.079-0.094 s against 0.157-0.167 s at
    200 x 180 x 190, and, the worst case, 8-9 ms against 6-15 ms at 64^3,
    where starting the threads costs more than they save.

    Parameters
    ----------
    volume : array_like
        3D array (z, y, x).

    Returns
    -------
    numpy.ndarray of float32
    """
    coef = np.array(volume, dtype=np.float32)
    threads = len(os.sched_getaffinity(0))
    with ThreadPoolExecutor(threads) as pool:
        for axis in range(3):
            across = 1 if axis == 0 else 0
            edges = np.linspace(0, coef.shape[across], threads + 1).round().astype(int)
            slabs = [(slice(None),) * across + (slice(a, b),) for a, b in zip(edges[:-1], edges[1:]) if b > a]
            list(pool.map(lambda slab: ndi.spline_filter1d(coef[slab], 3, axis=axis, output=coef[slab],
                                                           mode="mirror"), slabs))
    return coef


class SplineVolume:
    """Cubic B-spline coefficients of a volume, resident on the taichi device.

    Parameters
    ----------
    volume : numpy.ndarray
        3D array (z, y, x); converted to float32.
    arch : {"cpu", "gpu"}
        Taichi backend.
    """

    def __init__(self, volume, arch="cpu"):
        ensure_taichi(arch)
        coef = spline_coefficients(volume)
        self.shape = coef.shape
        coef = np.pad(coef, _PAD, mode="reflect")   # numpy "reflect" is scipy's "mirror"
        self._coef = device_array(coef, arch)

    def correlation_sums(self, warps, offsets, fn, grad, given=None, cube_edge=None, weights=None, rows=None,
                         null_outside=False):
        """Per-node sums for one Gauss–Newton step, sampling and reducing in one pass.

        Parameters
        ----------
        warps : numpy.ndarray
            (B, 3, 4) affine maps from local offsets to volume positions, voxels.
        offsets : numpy.ndarray
            (n, 3) local point offsets (z, y, x), voxels.
        fn : numpy.ndarray
            (B, n) normalised reference values.
        grad : numpy.ndarray
            (B, 3, n) normalised reference gradients.
        given : numpy.ndarray, optional
            (B, n) deformed values to use instead of sampling.
        cube_edge : int, optional
            Set when ``offsets`` is :func:`analysis.dvc.grid.subvolume_offsets`
            of this edge: a faster kernel then walks the cube.
        weights : numpy.ndarray, optional
            (n,) window weight w of each point (see
            :func:`analysis.dvc.grid.subvolume_window`); default 1.
        rows : numpy.ndarray, optional
            (B,) int, the row of ``fn``, ``grad`` and ``given`` of each warp
            (a Gauss–Newton batch whose converged nodes drop out keeps its
            reference arrays whole); default 0 .. B-1.
        null_outside : bool
            Samples at positions outside the volume's voxels (beyond half a
            voxel from the centres of its faces' voxels) read 0, as if the
            volume were surrounded by null values; default: the spline's
            mirror continuation.

        Returns
        -------
        numpy.ndarray
            (B, 18) float64: sum w g, sum w g^2, sum w g fn, then sum w g grad_i [x, 1]_j
            for i in 0..2, j in 0..3 (row-major), then the unweighted sum g, sum g^2
            and sum g fn (for the plain ZNCC of the whole subvolume).
        """
        warps = np.ascontiguousarray(warps, dtype=np.float64)
        if not len(warps):
            return np.empty((0, _SUMS), dtype=np.float64)
        fn = np.ascontiguousarray(fn, dtype=np.float32)
        grad = np.ascontiguousarray(grad, dtype=np.float32)
        n = fn.shape[1]
        weights = _window(weights, n)
        rows = np.arange(len(warps), dtype=np.int32) if rows is None else np.ascontiguousarray(rows, dtype=np.int32)
        if rows.shape != (len(warps),):
            raise ValueError(f"rows: expected one index per warp, shape ({len(warps)},), got {rows.shape}")
        if rows.min() < 0 or rows.max() >= len(fn):
            raise ValueError(f"rows: expected indices in 0 .. {len(fn) - 1} (the rows of fn), got "
                             f"{rows.min()} .. {rows.max()}")
        offsets = np.ascontiguousarray(offsets, dtype=np.float32)
        if given is not None:
            given = np.ascontiguousarray(given, dtype=np.float32)
            partial = np.empty((len(warps), _PARTS, _SUMS), dtype=np.float64)
            _correlation_sums(self._coef, warps, offsets, weights, fn, grad, given, rows, partial, True, False)
            return partial.sum(axis=1)
        if not null_outside:
            return self._sampled_sums(warps, offsets, fn, grad, cube_edge, weights, rows, False)
        # Only the warps that carry the points' box past a face need the kernel that tests every sample
        # against the faces: it takes 1.1-1.5x as long as the plain one, which the others get
        # (docs/paper-scenario-log.md, "Cubes that leave the scan, correlated against nulls")
        # the cube's box without reducing its points: 6-10 % of paper mode's DVC at 8 um
        low, high = subvolume_box(cube_edge) if cube_edge is not None else (offsets.min(axis=0), offsets.max(axis=0))
        leaves = box_leaves_volume(warps, low, high, self.shape, margin_voxels=_FACE_MARGIN_VOXELS)
        sums = np.empty((len(warps), _SUMS), dtype=np.float64)
        for sel, null in ((~leaves, False), (leaves, True)):
            if sel.any():
                sums[sel] = self._sampled_sums(warps[sel], offsets, fn, grad, cube_edge, weights, rows[sel], null)
        return sums

    def _sampled_sums(self, warps, offsets, fn, grad, cube_edge, weights, rows, null_outside):
        """:meth:`correlation_sums` of sampled values (contiguous ``warps`` and ``rows``), by the cube kernel
        where it applies."""
        if cube_edge is not None:
            partial = np.empty((len(warps), int(cube_edge) * _ROW_PARTS, _SUMS), dtype=np.float64)
            _cube_correlation_sums(self._coef, warps, int(cube_edge), weights, fn, grad, rows, partial, null_outside)
            return partial.sum(axis=1)
        partial = np.empty((len(warps), _PARTS, _SUMS), dtype=np.float64)
        _correlation_sums(self._coef, warps, offsets, weights, fn, grad, np.zeros((1, 1), np.float32), rows, partial,
                          False, null_outside)
        return partial.sum(axis=1)

    def resample(self, warp, shape):
        """Sample at ``warp @ [z, y, x, 1]`` for every voxel of an output grid of ``shape``."""
        out = np.empty(tuple(shape), dtype=np.float32)
        _sample_grid(self._coef, np.ascontiguousarray(warp, dtype=np.float64), out)
        return out
