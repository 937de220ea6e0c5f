"""Reference-side IC-GN terms of cubic subvolumes, one (node, z-row) per taichi thread.

Per node: the zero-mean, unit-norm grey values, fourth-order central
difference gradients and the packed Gauss–Newton sums of
:class:`analysis.dvc.gauss_newton.ReferenceTerms`, gathered straight from
the reference volume (no subvolume copies in numpy). Each row sums its
points in a fixed order and the rows are added in a fixed order, so
results are bit-reproducible.
"""

import numpy as np
import taichi as ti

from analysis._taichi import ensure_taichi
from analysis.dvc.gauss_newton import _FLAT, _IU3, ReferenceTerms, _window

_PAIRS3 = list(zip(*(a.tolist() for a in _IU3)))


@ti.func
def _clamp5(c, n):
    """Indices c-2 .. c+2 clamped to [0, n)."""
    return ti.Vector([ti.math.clamp(c + d, 0, n - 1) for d in ti.static(range(-2, 3))])


# Taichi hands a CPU loop to its threads in blocks of at least 512 iterations, so a loop over the
# nodes of a batch (a few hundred) would run on one thread: both kernels loop over (node, z-row) pairs
# and the rows are combined afterwards in numpy, in a fixed order.
@ti.kernel
def _row_stats(ref: ti.types.ndarray(dtype=ti.f32, ndim=3), corners: ti.types.ndarray(dtype=ti.i32, ndim=2),
               edge: ti.i32, weights: ti.types.ndarray(dtype=ti.f32, ndim=1),
               rows: ti.types.ndarray(dtype=ti.f64, ndim=3)):
    # per (node, row): sum w f, sum w f^2, max |f|
    nz, ny, nx = ref.shape[0], ref.shape[1], ref.shape[2]
    for b, k in ti.ndrange(corners.shape[0], edge):
        cz, cy, cx = corners[b, 0], corners[b, 1], corners[b, 2]
        s1 = ti.f64(0.0)
        s2 = ti.f64(0.0)
        big = ti.f64(0.0)
        z = ti.math.clamp(cz + k, 0, nz - 1)
        v = k * edge * edge
        for j in range(edge):
            y = ti.math.clamp(cy + j, 0, ny - 1)
            for i in range(edge):
                f = ti.cast(ref[z, y, ti.math.clamp(cx + i, 0, nx - 1)], ti.f64)
                wf = ti.cast(weights[v], ti.f64) * f
                s1 += wf
                s2 += wf * f
                big = ti.max(big, ti.abs(f))
                v += 1
        rows[b, k, 0] = s1
        rows[b, k, 1] = s2
        rows[b, k, 2] = big


@ti.kernel
def _row_terms(ref: ti.types.ndarray(dtype=ti.f32, ndim=3), corners: ti.types.ndarray(dtype=ti.i32, ndim=2),
               edge: ti.i32, weights: ti.types.ndarray(dtype=ti.f32, ndim=1),
               mean: ti.types.ndarray(dtype=ti.f64, ndim=1),
               scale: ti.types.ndarray(dtype=ti.f64, ndim=1), fn: ti.types.ndarray(dtype=ti.f32, ndim=2),
               grad: ti.types.ndarray(dtype=ti.f32, ndim=3), rows: ti.types.ndarray(dtype=ti.f64, ndim=3)):
    # per (node, row): fn and gradients of its points, and its share of the window-weighted packed
    # Hessian (60), sum of steepest descents (12) and their sum with fn (12). oz is fixed in a row and
    # oy along a line, so per point only the sums times 1, ox (and ox^2) are taken; the products with oy
    # are applied once per line and those with oz once per row (a third of the per-point arithmetic)
    nz, ny, nx = ref.shape[0], ref.shape[1], ref.shape[2]
    half = edge // 2
    for b, k in ti.ndrange(corners.shape[0], edge):
        cz, cy, cx = corners[b, 0], corners[b, 1], corners[b, 2]
        sc = ti.cast(scale[b], ti.f32)
        oz = ti.cast(k - half, ti.f32)
        # the Hessian only sets the step, not the solution: float32 sums are enough. Row sums of
        # w g_p g_q (one per pair of gradient components) times 1, oy, oy^2, ox, ox oy, ox^2
        h0 = ti.Vector.zero(ti.f32, 6)
        h0y = ti.Vector.zero(ti.f32, 6)
        h0yy = ti.Vector.zero(ti.f32, 6)
        h1 = ti.Vector.zero(ti.f32, 6)
        h1y = ti.Vector.zero(ti.f32, 6)
        h2 = ti.Vector.zero(ti.f32, 6)
        # row sums of w g_a times 1, oy, ox, and the same times fn
        s0 = ti.Vector.zero(ti.f64, 3)
        s0y = ti.Vector.zero(ti.f64, 3)
        s1 = ti.Vector.zero(ti.f64, 3)
        f0 = ti.Vector.zero(ti.f64, 3)
        f0y = ti.Vector.zero(ti.f64, 3)
        f1 = ti.Vector.zero(ti.f64, 3)
        v = k * edge * edge
        zs = _clamp5(cz + k, nz)
        for j in range(edge):
            ys = _clamp5(cy + j, ny)
            l0 = ti.Vector.zero(ti.f32, 6)
            l1 = ti.Vector.zero(ti.f32, 6)
            l2 = ti.Vector.zero(ti.f32, 6)
            m0 = ti.Vector.zero(ti.f64, 3)
            m1 = ti.Vector.zero(ti.f64, 3)
            n0 = ti.Vector.zero(ti.f64, 3)
            n1 = ti.Vector.zero(ti.f64, 3)
            for i in range(edge):
                xs = _clamp5(cx + i, nx)
                z, y, x = zs[2], ys[2], xs[2]
                # round to float32 first so the sums match the stored, float32 terms
                f32 = ti.cast((ti.cast(ref[z, y, x], ti.f64) - mean[b]) * scale[b], ti.f32)
                gz = (ref[zs[0], y, x] - 8.0 * ref[zs[1], y, x] + 8.0 * ref[zs[3], y, x] - ref[zs[4], y, x])
                gy = (ref[z, ys[0], x] - 8.0 * ref[z, ys[1], x] + 8.0 * ref[z, ys[3], x] - ref[z, ys[4], x])
                gx = (ref[z, y, xs[0]] - 8.0 * ref[z, y, xs[1]] + 8.0 * ref[z, y, xs[3]] - ref[z, y, xs[4]])
                g = ti.Vector([gz, gy, gx]) * (sc / 12.0)
                fn[b, v] = f32
                for a in ti.static(range(3)):
                    grad[b, a, v] = g[a]
                ox = ti.cast(i - half, ti.f32)
                w = weights[v]
                for p in ti.static(range(6)):
                    gg = w * g[_PAIRS3[p][0]] * g[_PAIRS3[p][1]]
                    l0[p] += gg
                    l1[p] += gg * ox
                    l2[p] += gg * ox * ox
                gd = ti.cast(w, ti.f64) * ti.cast(g, ti.f64)
                fd = ti.cast(f32, ti.f64)
                oxd = ti.cast(ox, ti.f64)
                for a in ti.static(range(3)):
                    m0[a] += gd[a]
                    m1[a] += gd[a] * oxd
                    n0[a] += fd * gd[a]
                    n1[a] += fd * gd[a] * oxd
                v += 1
            oy = ti.cast(j - half, ti.f32)
            h0 += l0
            h0y += oy * l0
            h0yy += oy * oy * l0
            h1 += l1
            h1y += oy * l1
            h2 += l2
            oyd = ti.cast(oy, ti.f64)
            s0 += m0
            s0y += oyd * m0
            s1 += m1
            f0 += n0
            f0y += oyd * n0
            f1 += n1
        for p in ti.static(range(6)):
            # the ten products of [oz, oy, ox, 1] in packed (upper-triangle) order: zz, zy, zx, z1, yy, yx, y1,
            # xx, x1, 11
            xx = ti.Vector([oz * oz * h0[p], oz * h0y[p], oz * h1[p], oz * h0[p], h0yy[p], h1y[p], h0y[p],
                            h2[p], h1[p], h0[p]])
            for q in ti.static(range(10)):
                rows[b, k, 10 * p + q] = ti.cast(xx[q], ti.f64)
        ozd = ti.cast(oz, ti.f64)
        for a in ti.static(range(3)):
            # [oz, oy, ox, 1] in order
            rows[b, k, 60 + 4 * a] = ozd * s0[a]
            rows[b, k, 61 + 4 * a] = s0y[a]
            rows[b, k, 62 + 4 * a] = s1[a]
            rows[b, k, 63 + 4 * a] = s0[a]
            rows[b, k, 72 + 4 * a] = ozd * f0[a]
            rows[b, k, 73 + 4 * a] = f0y[a]
            rows[b, k, 74 + 4 * a] = f1[a]
            rows[b, k, 75 + 4 * a] = f0[a]


def cube_terms(reference, nodes, subvolume_voxels, arch="cpu", weights=None):
    """:class:`ReferenceTerms` of the cubic subvolumes around ``nodes``.

    Parameters
    ----------
    reference : numpy.ndarray or taichi ndarray
        3D float32 reference volume (z, y, x), e.g. from
        :func:`analysis.dvc.interpolate.device_array`.
    nodes : numpy.ndarray
        (B, 3) int node positions, voxels.
    subvolume_voxels : int
        Cube edge; points are ordered like :func:`analysis.dvc.grid.subvolume_offsets`.
    arch : {"cpu", "gpu"}
    weights : numpy.ndarray, optional
        (s^3,) window weight of each point (:func:`analysis.dvc.grid.subvolume_window`);
        default 1 (uniform).

    Notes
    -----
    Voxels outside the volume read the nearest face voxel.
    """
    ensure_taichi(arch)
    s = int(subvolume_voxels)
    b, n = len(nodes), s ** 3
    weights = _window(weights, n)
    fn = np.empty((b, n), np.float32)
    grad = np.empty((b, 3, n), np.float32)
    sums = np.zeros((b, 84))
    textured = np.zeros(b, dtype=bool)
    if b:
        corners = np.ascontiguousarray(np.asarray(nodes) - s // 2, dtype=np.int32)
        if isinstance(reference, np.ndarray):
            reference = np.ascontiguousarray(reference, dtype=np.float32)
        stats = np.empty((b, s, 3))
        _row_stats(reference, corners, s, weights, stats)
        s1, s2, big = stats[:, :, 0].sum(axis=1), stats[:, :, 1].sum(axis=1), stats[:, :, 2].max(axis=1)
        total = weights.sum(dtype=np.float64)
        mean = s1 / total
        norm = np.sqrt(np.maximum(s2 - s1 * mean, 0.0))
        textured = norm > _FLAT * np.sqrt(total) * (big + 1e-30)
        scale = np.where(textured, 1.0 / np.where(textured, norm, 1.0), 0.0)
        rows = np.empty((b, s, 84))
        _row_terms(reference, corners, s, weights, mean, scale, fn, grad, rows)
        sums = rows.sum(axis=1)
    return ReferenceTerms(fn=fn, grad=grad, hess_packed=sums[:, :60].reshape(b, 6, 10), sd_sum=sums[:, 60:72],
                          sd_fn=sums[:, 72:], textured=textured, weights=weights)
