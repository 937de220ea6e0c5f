"""Reference-side IC-GN terms of cubic subvolumes, one node per taichi thread.

Per node: the zero-mean, unit-norm grey values, fourth-order central
difference gradients and the packed Gauss–Newton sums of
:class:`analysis.dvc.gauss_newton.ReferenceTerms`, gathered straight from
the reference volume (no subvolume copies in numpy). Each node sums its
points in a fixed order, so results are bit-reproducible.
"""

import numpy as np
import taichi as ti

from analysis._taichi import ensure_taichi
from analysis.dvc.gauss_newton import _FLAT, _IU3, _IU4, ReferenceTerms

_PAIRS3 = list(zip(*(a.tolist() for a in _IU3)))
_PAIRS4 = list(zip(*(a.tolist() for a in _IU4)))


@ti.func
def _at(ref: ti.template(), z, y, x):
    return ref[ti.math.clamp(z, 0, ref.shape[0] - 1), ti.math.clamp(y, 0, ref.shape[1] - 1),
               ti.math.clamp(x, 0, ref.shape[2] - 1)]


@ti.kernel
def _cube_terms(ref: ti.types.ndarray(dtype=ti.f32, ndim=3), corners: ti.types.ndarray(dtype=ti.i32, ndim=2),
                edge: ti.i32, fn: ti.types.ndarray(dtype=ti.f32, ndim=2),
                grad: ti.types.ndarray(dtype=ti.f32, ndim=3), packed: ti.types.ndarray(dtype=ti.f64, ndim=2),
                sd_sum: ti.types.ndarray(dtype=ti.f64, ndim=2), sd_fn: ti.types.ndarray(dtype=ti.f64, ndim=2),
                stats: ti.types.ndarray(dtype=ti.f64, ndim=2)):
    n = edge * edge * edge
    half = edge // 2
    for b in range(corners.shape[0]):
        cz, cy, cx = corners[b, 0], corners[b, 1], corners[b, 2]
        s1 = ti.f64(0.0)
        big = ti.f64(0.0)
        for v in range(n):
            f = ti.cast(_at(ref, cz + v // (edge * edge), cy + (v // edge) % edge, cx + v % edge), ti.f64)
            s1 += f
            big = ti.max(big, ti.abs(f))
        mean = s1 / n
        s2 = ti.f64(0.0)
        for v in range(n):
            f = ti.cast(_at(ref, cz + v // (edge * edge), cy + (v // edge) % edge, cx + v % edge), ti.f64)
            s2 += (f - mean) * (f - mean)
        norm = ti.sqrt(s2)
        scale = ti.f64(0.0)
        if norm > _FLAT * ti.sqrt(ti.cast(n, ti.f64)) * (big + 1e-30):
            scale = 1.0 / norm
        stats[b, 0] = norm
        stats[b, 1] = scale
        # the Hessian only sets the step, not the solution: float32 sums are enough
        hp = ti.Matrix.zero(ti.f32, 6, 10)
        ss = ti.Matrix.zero(ti.f64, 3, 4)
        sf = ti.Matrix.zero(ti.f64, 3, 4)
        for v in range(n):
            z, y, x = cz + v // (edge * edge), cy + (v // edge) % edge, cx + v % edge
            f0 = (ti.cast(_at(ref, z, y, x), ti.f64) - mean) * scale
            gz = (_at(ref, z - 2, y, x) - 8.0 * _at(ref, z - 1, y, x) + 8.0 * _at(ref, z + 1, y, x)
                  - _at(ref, z + 2, y, x)) / 12.0
            gy = (_at(ref, z, y - 2, x) - 8.0 * _at(ref, z, y - 1, x) + 8.0 * _at(ref, z, y + 1, x)
                  - _at(ref, z, y + 2, x)) / 12.0
            gx = (_at(ref, z, y, x - 2) - 8.0 * _at(ref, z, y, x - 1) + 8.0 * _at(ref, z, y, x + 1)
                  - _at(ref, z, y, x + 2)) / 12.0
            # round to float32 first so the sums match the stored, float32 terms
            f32 = ti.cast(f0, ti.f32)
            g = ti.Vector([ti.cast(gz * scale, ti.f32), ti.cast(gy * scale, ti.f32),
                           ti.cast(gx * scale, ti.f32)])
            fn[b, v] = f32
            for i in ti.static(range(3)):
                grad[b, i, v] = g[i]
            gd = ti.cast(g, ti.f64)
            xh = ti.Vector([ti.cast(z - cz - half, ti.f64), ti.cast(y - cy - half, ti.f64),
                            ti.cast(x - cx - half, ti.f64), 1.0])
            x32 = ti.cast(xh, ti.f32)
            xx = ti.Vector([x32[_PAIRS4[q][0]] * x32[_PAIRS4[q][1]] for q in ti.static(range(10))])
            for p in ti.static(range(6)):
                gg = g[_PAIRS3[p][0]] * g[_PAIRS3[p][1]]
                for q in ti.static(range(10)):
                    hp[p, q] += gg * xx[q]
            for i in ti.static(range(3)):
                for j in ti.static(range(4)):
                    ss[i, j] += gd[i] * xh[j]
                    sf[i, j] += ti.cast(f32, ti.f64) * gd[i] * xh[j]
        for p in ti.static(range(6)):
            for q in ti.static(range(10)):
                packed[b, 10 * p + q] = ti.cast(hp[p, q], ti.f64)
        for i in ti.static(range(3)):
            for j in ti.static(range(4)):
                sd_sum[b, 4 * i + j] = ss[i, j]
                sd_fn[b, 4 * i + j] = sf[i, j]


def cube_terms(reference, nodes, subvolume_voxels, arch="cpu"):
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

    Notes
    -----
    Voxels outside the volume read the nearest face voxel.
    """
    ensure_taichi(arch)
    s = int(subvolume_voxels)
    b, n = len(nodes), s ** 3
    fn = np.empty((b, n), np.float32)
    grad = np.empty((b, 3, n), np.float32)
    packed = np.empty((b, 60))
    sd_sum = np.empty((b, 12))
    sd_fn = np.empty((b, 12))
    stats = np.empty((b, 2))
    if b:
        corners = np.ascontiguousarray(np.asarray(nodes) - s // 2, dtype=np.int32)
        if isinstance(reference, np.ndarray):
            reference = np.ascontiguousarray(reference, dtype=np.float32)
        _cube_terms(reference, corners, s, fn, grad, packed,
                    sd_sum, sd_fn, stats)
    return ReferenceTerms(fn=fn, grad=grad, hess_packed=packed.reshape(b, 6, 10), sd_sum=sd_sum,
                          sd_fn=sd_fn, textured=stats[:, 1] > 0)
