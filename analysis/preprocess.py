"""Pre-processing before DVC: contrast matching, 3D median filter, rigid registration.

What the lab did in Avizo before correlating two scans: match the grey
levels of one volume to the other, remove speckle with a 3x3x3 median,
and register the deformed scan rigidly on a reference region (one particle,
in the paper) so that DVC sees only the sample's own deformation.
"""

import numpy as np
import scipy.ndimage as ndi
import taichi as ti

from analysis._slabs import in_slabs
from analysis._taichi import ensure_taichi
from analysis.dvc.gauss_newton import reference_terms, refine
from analysis.dvc.interpolate import SplineVolume
from analysis.dvc.search import integer_search
from analysis.transform import RigidTransform  # noqa: F401  (re-exported: registration returns it)

_MAX_REGISTRATION_POINTS = 1 << 21   # voxels of the region used by Gauss–Newton (deterministic subset)
_HISTOGRAM_SAMPLES = 1 << 22         # voxels per volume used to estimate quantiles
_MAX_START_CUBE_VOXELS = 96          # edge of the cube correlated for the integer start
_INTERP_SLAB_VALUES = 1 << 21        # values per slab of the grey-level mapping (16 MB of float64)


def match_histogram(volume, reference, *, n_quantiles=4096):
    """Map the grey levels of ``volume`` so its histogram matches ``reference``'s.

    Monotone quantile mapping: the value at quantile q of ``volume`` becomes
    the value at quantile q of ``reference``, linear in between. Quantiles
    come from a regular strided subset of at most ~4 M voxels per volume.

    Parameters
    ----------
    volume, reference : numpy.ndarray
        Real arrays of any shape (typically 3D, z-y-x).
    n_quantiles : int
        Number of matched quantiles.

    Returns
    -------
    numpy.ndarray
        float32 array shaped like ``volume``.
    """
    volume = _real(volume, "volume")
    reference = _real(reference, "reference")
    if n_quantiles < 2:
        raise ValueError(f"n_quantiles: expected >= 2, got {n_quantiles!r}")
    q = np.linspace(0.0, 1.0, int(n_quantiles))
    src = np.quantile(_subsample(volume), q)
    dst = np.quantile(_subsample(reference), q)
    # ties in src (flat histograms) would make interp ill-defined
    src, first = np.unique(src, return_index=True)
    return _interp_float32(volume, src, dst[first])


def _interp_float32(x, xp, fp):
    """``np.interp(x, xp, fp).astype(np.float32)``, in runs of values in threads.

    The same bytes (each value is mapped on its own), on every core (numpy
    releases the GIL in ``interp``), with one slab's float64 temporaries
    instead of two of the whole volume (2 GB for a paper scan). 4096 knots,
    2-core VM, 6 Dec 2026, against one call: 5.5-5.8 s against 12.6-12.8 s
    at 516 x 508 x 508 (the paper's scans), 0.33-0.35 s against 0.55-0.67 s
    at 200 x 180 x 190; no gain at 64^3 (one run: 23 ms either way) and,
    the worst case, 0.5-0.9 ms against 0.25-0.35 ms at 16^3.
    """
    values = np.ravel(x)
    out = np.empty(values.shape, np.float32)

    def slab(start, stop):
        out[start:stop] = np.interp(values[start:stop], xp, fp)

    in_slabs(values.size, _INTERP_SLAB_VALUES, slab)
    return out.reshape(np.shape(x))


def match_linear(volume, reference, region):
    """Map the grey levels of ``volume`` linearly so that a region that does not deform matches.

    Gain and offset make the mean and the standard deviation of ``volume``
    inside ``region`` equal to the reference's inside the same region:
    ``gain = std_ref / std_vol``, ``offset = mean_ref - gain * mean_vol``
    (moments in float64). A region whose material is the same in both scans
    (the foot of the sample, held by the pin) has the same histogram up to
    the scanner's gain and offset, so this undoes exactly those and nothing
    else: a real change of the phase fractions elsewhere survives, where a
    whole-volume histogram match (:func:`match_histogram`) would push it back
    onto the reference's.

    Parameters
    ----------
    volume, reference : numpy.ndarray
        3D volumes (z, y, x) of the same shape.
    region : tuple of 3 slices or numpy.ndarray of bool
        The region, in voxels of both volumes.

    Returns
    -------
    numpy.ndarray
        float32 ``gain * volume + offset``.

    Raises
    ------
    ValueError
        One line when the region is empty or ``volume`` is flat inside it.
    """
    volume = _volume3(volume, "volume")
    reference = _volume3(reference, "reference")
    if volume.shape != reference.shape:
        raise ValueError(f"volume: expected shape {reference.shape} like reference, got {volume.shape}")
    mine, theirs = volume[region].astype(np.float64), reference[region].astype(np.float64)
    if mine.size == 0:
        raise ValueError("region: expected some voxels to match the contrast on, got none")
    if not mine.std() > 0:
        raise ValueError("volume: every voxel of the contrast-matching region has the same grey value")
    gain = theirs.std() / mine.std()
    offset = theirs.mean() - gain * mine.mean()
    return (gain * volume.astype(np.float64) + offset).astype(np.float32)


def median_filter(volume, size=3, iterations=1, *, arch="cpu"):
    """3D median filter, repeated ``iterations`` times.

    ``size=3`` runs a taichi kernel (a pruned sorting network over the 27
    neighbours) and matches ``scipy.ndimage.median_filter(..., size=3,
    mode="reflect")`` exactly for float32 and integer data up to 16 bits;
    other sizes or dtypes fall back to scipy.

    Parameters
    ----------
    volume : numpy.ndarray
        3D array (z, y, x).
    size : int
        Edge of the cubic window, voxels (odd).
    iterations : int
        Number of passes.
    arch : {"cpu", "gpu"}

    Returns
    -------
    numpy.ndarray
        Filtered volume, same dtype and shape.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"volume: expected a 3D array (z, y, x), got shape {volume.shape}")
    if int(size) != size or size < 1 or size % 2 == 0:
        raise ValueError(f"size: expected a positive odd integer, got {size!r}")
    if int(iterations) != iterations or iterations < 0:
        raise ValueError(f"iterations: expected a non-negative integer, got {iterations!r}")
    fast = size == 3 and volume.dtype in (np.float32, np.uint8, np.uint16, np.int8, np.int16)
    out = volume.copy()
    if not fast:
        for _ in range(int(iterations)):
            out = ndi.median_filter(out, size=size, mode="reflect")
        return out
    ensure_taichi(arch)
    work = np.ascontiguousarray(volume, dtype=np.float32)
    for _ in range(int(iterations)):
        res = np.empty_like(work)
        _median27(work, res)
        work = res
    return work.astype(volume.dtype)


def _median_network():
    """Comparators (slot_a, slot_b, keep_min, keep_max) computing the median of 27 values.

    Batcher's odd-even merge sort on 32 wires, the 5 extra wires being
    +inf; comparators with a known +inf input and those that cannot reach
    the median wire are dropped.
    """
    n = 32
    comps = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        comps.append((i + j, i + j + k))
            k //= 2
        p *= 2
    slot = list(range(n))
    inf = [w >= 27 for w in range(n)]
    ops = []
    for a, b in comps:
        if inf[b]:
            continue
        if inf[a]:
            slot[a], slot[b] = slot[b], slot[a]
            inf[a], inf[b] = False, True
            continue
        ops.append((slot[a], slot[b]))
    live = {slot[13]}
    kept = []
    for a, b in reversed(ops):
        need_min, need_max = a in live, b in live
        if need_min or need_max:
            kept.append((a, b, need_min, need_max))
            live |= {a, b}
    return slot[13], kept[::-1]


_MEDIAN_OUT, _MEDIAN_OPS = _median_network()
_MEDIAN_CHUNKS = [_MEDIAN_OPS[i:i + 32] for i in range(0, len(_MEDIAN_OPS), 32)]


@ti.kernel
def _median27(src: ti.types.ndarray(dtype=ti.f32, ndim=3), dst: ti.types.ndarray(dtype=ti.f32, ndim=3)):
    nz, ny, nx = src.shape[0], src.shape[1], src.shape[2]
    for z, y, x in ti.ndrange(nz, ny, nx):
        # clamping at the faces equals scipy's "reflect" mode for a 3-wide window
        zs = ti.Vector([ti.max(z - 1, 0), z, ti.min(z + 1, nz - 1)])
        ys = ti.Vector([ti.max(y - 1, 0), y, ti.min(y + 1, ny - 1)])
        xs = ti.Vector([ti.max(x - 1, 0), x, ti.min(x + 1, nx - 1)])
        v = ti.Vector.zero(ti.f32, 27)
        for k in ti.static(range(27)):
            v[k] = src[zs[k // 9], ys[(k // 3) % 3], xs[k % 3]]
        for chunk in ti.static(_MEDIAN_CHUNKS):   # chunks keep each static unroll short
            for c in ti.static(chunk):
                lo = ti.min(v[c[0]], v[c[1]])
                hi = ti.max(v[c[0]], v[c[1]])
                if ti.static(c[2]):
                    v[c[0]] = lo
                if ti.static(c[3]):
                    v[c[1]] = hi
        dst[z, y, x] = v[_MEDIAN_OUT]


def register_rigid(moving, reference, region=None, *, max_shift_voxels=None, max_iterations=100,
                   tolerance_voxels=1e-4, arch="cpu"):
    """Rigid (translation + rotation) subvoxel registration of ``moving`` onto ``reference``.

    An FFT zero-normalised cross-correlation of the region's central cube
    gives the integer start (coarse-to-fine for large shifts);
    Gauss–Newton (inverse compositional, 6 parameters, cubic B-spline
    interpolation of ``moving``, ZNSSD so grey-level offsets and gains do
    not matter) refines it. Rotations of a few degrees converge from zero.

    Parameters
    ----------
    moving, reference : numpy.ndarray
        3D volumes (z, y, x) of the same shape.
    region : tuple of 3 slices or numpy.ndarray of bool, optional
        Reference region to register on (a box, or a mask such as one
        particle). Default: the whole volume less a 2-voxel border.
    max_shift_voxels : float, optional
        Largest translation searched per axis, voxels; default a quarter of
        the region's smallest extent.
    max_iterations : int
    tolerance_voxels : float
        Convergence when an update moves no region point by more than this, voxels.
    arch : {"cpu", "gpu"}

    Returns
    -------
    RigidTransform
        Apply it with :func:`apply_rigid`.
    """
    reference = _volume3(reference, "reference")
    moving = _volume3(moving, "moving")
    if moving.shape != reference.shape:
        raise ValueError(f"moving: expected shape {reference.shape} like reference, got {moving.shape}")
    mask = _region_mask(region, reference.shape)
    pts = np.argwhere(mask)
    if len(pts) < 64:
        raise ValueError("region: expected at least 64 voxels at least 2 voxels inside the volume")
    lo, hi = pts.min(axis=0), pts.max(axis=0) + 1
    centre = (lo + hi - 1) / 2.0
    # integer start: FFT ZNCC of the central cube of the region (coarse-to-fine when far)
    edge = int(min(min(hi - lo), _MAX_START_CUBE_VOXELS))
    if edge < 5:
        raise ValueError("region: expected a region at least 5 voxels wide on every axis")
    if max_shift_voxels is None:
        max_shift_voxels = max(2, edge // 4)
    node = np.round(centre).astype(np.int64)[None]
    start, _ = integer_search(reference, moving, node, edge, int(np.ceil(max_shift_voxels)))
    start = start[0]
    if len(pts) > _MAX_REGISTRATION_POINTS:
        rng = np.random.default_rng(0)
        pts = pts[np.sort(rng.choice(len(pts), _MAX_REGISTRATION_POINTS, replace=False))]
    f = reference[pts[:, 0], pts[:, 1], pts[:, 2]].astype(np.float32)
    grad = np.stack([_central4(reference, pts, a) for a in range(3)], axis=1)
    spline = SplineVolume(moving, arch=arch)
    w0 = np.zeros((1, 3, 4))
    w0[0, :, :3] = np.eye(3)
    w0[0, :, 3] = centre + start
    offsets = (pts - centre).astype(np.float32)
    res = refine(spline, reference_terms(f[None], grad[None], offsets), offsets, w0, shape_function="rigid",
                 max_iterations=max_iterations, tolerance_voxels=tolerance_voxels)
    w = res.warps[0]
    return RigidTransform(rotation=w[:, :3], translation_voxels=w[:, 3] - centre, centre_voxels=centre,
                          cc=float(res.cc[0]))


def apply_rigid(volume, transform, *, arch="cpu"):
    """Resample ``volume`` (the moving scan) onto the reference grid.

    Parameters
    ----------
    volume : numpy.ndarray
        3D moving volume (z, y, x).
    transform : RigidTransform
        From :func:`register_rigid`.
    arch : {"cpu", "gpu"}

    Returns
    -------
    numpy.ndarray
        float32 volume of the same shape, aligned with the reference (cubic
        B-spline interpolation, mirror boundary).
    """
    volume = _volume3(volume, "volume")
    if not isinstance(transform, RigidTransform):
        raise ValueError(f"transform: expected a RigidTransform, got {type(transform).__name__}")
    return SplineVolume(volume, arch=arch).resample(transform.matrix(), volume.shape)


def _central4(volume, pts, axis):
    n = volume.shape[axis]

    def at(k):
        q = pts.copy()
        q[:, axis] = np.clip(q[:, axis] + k, 0, n - 1)
        return volume[q[:, 0], q[:, 1], q[:, 2]].astype(np.float32)
    return (at(-2) - 8.0 * at(-1) + 8.0 * at(1) - at(2)) / 12.0


def _region_mask(region, shape):
    inner = np.zeros(shape, dtype=bool)
    inner[2:-2, 2:-2, 2:-2] = True
    if region is None:
        return inner
    if isinstance(region, tuple) and len(region) == 3 and all(isinstance(s, slice) for s in region):
        m = np.zeros(shape, dtype=bool)
        m[region] = True
        return m & inner
    region = np.asarray(region)
    if region.dtype != bool or region.shape != tuple(shape):
        raise ValueError(f"region: expected None, a tuple of 3 slices or a bool mask of shape {tuple(shape)}")
    return region & inner


def _subsample(v):
    stride = max(1, int(np.ceil((v.size / _HISTOGRAM_SAMPLES) ** (1.0 / max(v.ndim, 1)))))
    return v[(slice(None, None, stride),) * v.ndim].ravel()


def _real(v, name):
    v = np.asarray(v)
    if v.size == 0 or not np.issubdtype(v.dtype, np.number) or np.iscomplexobj(v):
        raise ValueError(f"{name}: expected a non-empty real array, got dtype {v.dtype} size {v.size}")
    return v


def _volume3(v, name):
    v = _real(v, name)
    if v.ndim != 3:
        raise ValueError(f"{name}: expected a 3D array (z, y, x), got shape {v.shape}")
    return v.astype(np.float32, copy=False)
