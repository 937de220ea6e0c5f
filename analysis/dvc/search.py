"""Integer-voxel displacement search by FFT zero-normalised cross-correlation.

For each node the reference subvolume (edge ``s``) is correlated with a
search window of the deformed volume (edge ``s + 2 r``) around the node's
guess; the numerator comes from batched FFTs, the local window statistics
from FFT box sums, so the ZNCC is exact for every integer shift within
``r``. Large searches go coarse-to-fine through a 2x2x2-binned pyramid.
"""

import numpy as np
import scipy.fft as sfft

from analysis.dvc.grid import extract_cubes

_DIRECT_RADIUS_VOXELS = 6    # above this, a coarser pyramid level seeds the search
_BATCH_VOXELS = 1 << 23      # window voxels per FFT batch (memory bound)


def integer_search(reference, deformed, nodes, subvolume_voxels, radius_voxels,
                   guess=None, workers=-1):
    """Best integer displacement per node within a cube of half-edge ``radius_voxels``.

    Parameters
    ----------
    reference, deformed : numpy.ndarray
        3D float32 volumes of the same shape.
    nodes : numpy.ndarray
        (N, 3) int node positions (z, y, x), voxels.
    subvolume_voxels : int
    radius_voxels : int
        Searched shifts are ``guess + d`` with ``|d_i| <= radius_voxels``.
    guess : numpy.ndarray, optional
        (N, 3) int initial displacements, default zero.
    workers : int, optional
        Threads for the FFTs (scipy.fft convention; -1: all CPUs). Each
        transform runs on one thread, so results do not depend on it.

    Returns
    -------
    displacement : numpy.ndarray
        (N, 3) int64, voxels.
    zncc : numpy.ndarray
        (N,) ZNCC at that shift (-1 where no shift keeps the window inside).
    """
    nodes = np.asarray(nodes, dtype=np.int64)
    guess = np.zeros_like(nodes) if guess is None else np.asarray(guess, dtype=np.int64)
    r = int(radius_voxels)
    if r > _DIRECT_RADIUS_VOXELS and min(reference.shape) >= 4 * subvolume_voxels:
        coarse_nodes = nodes // 2
        coarse_s = max(subvolume_voxels // 2 + 1, 9)
        cd, _ = integer_search(_bin2(reference), _bin2(deformed), coarse_nodes, coarse_s,
                               (r + 1) // 2, guess // 2, workers)
        guess = 2 * cd
        r = 2
    s = int(subvolume_voxels)
    w = s + 2 * r
    batch = max(1, _BATCH_VOXELS // w ** 3)
    disp = np.zeros_like(nodes)
    best = np.full(len(nodes), -1.0)
    for start in range(0, len(nodes), batch):   # batches bound memory, not a per-node loop
        sl = slice(start, start + batch)
        d, c = _search_batch(reference, deformed, nodes[sl], guess[sl], s, r, workers)
        disp[sl], best[sl] = d, c
    return disp, best


def _search_batch(reference, deformed, nodes, guess, s, r, workers):
    w = s + 2 * r
    corner = nodes - s // 2
    t = extract_cubes(reference, corner, s).astype(np.float32)
    win = extract_cubes(deformed, corner + guess - r, w).astype(np.float32)
    # centring the windows keeps the single-precision box variances free of cancellation
    win = win - win.mean(axis=(1, 2, 3), keepdims=True)
    b = len(nodes)
    t = t - t.mean(axis=(1, 2, 3), keepdims=True)
    tnorm = np.sqrt(np.einsum("bijk,bijk->b", t, t, dtype=np.float64))
    axes = (1, 2, 3)
    ft = sfft.rfftn(t, s=(w, w, w), axes=axes, workers=workers)
    fw = sfft.rfftn(win, axes=axes, workers=workers)
    num = sfft.irfftn(fw * np.conj(ft), s=(w, w, w), axes=axes, workers=workers)[:, :2 * r + 1, :2 * r + 1, :2 * r + 1]
    # window sums over every s^3 box share one box transform across the batch
    fbox = np.conj(sfft.rfftn(np.ones((s, s, s), dtype=np.float32), s=(w, w, w)))
    k = 2 * r + 1
    s1 = sfft.irfftn(fw * fbox, s=(w, w, w), axes=axes, workers=workers)[:, :k, :k, :k]
    s2 = sfft.irfftn(sfft.rfftn(win * win, axes=axes, workers=workers) * fbox, s=(w, w, w),
                     axes=axes, workers=workers)[:, :k, :k, :k]
    var = s2 - s1 * s1 / s ** 3
    den = np.sqrt(np.maximum(var, 0.0)) * tnorm[:, None, None, None]
    zncc = np.where(den > 1e-12 * (s2 + 1e-30), num / np.where(den > 0, den, 1.0), -1.0)
    # shifts that take the window outside the volume are not candidates
    shape = np.array(deformed.shape)
    shifts = np.arange(-r, r + 1)
    ok = [((corner[:, a, None] + guess[:, a, None] + shifts) >= 0)
          & ((corner[:, a, None] + guess[:, a, None] + shifts + s) <= shape[a]) for a in range(3)]
    valid = ok[0][:, :, None, None] & ok[1][:, None, :, None] & ok[2][:, None, None, :]
    zncc = np.where(valid, zncc, -1.0)
    flat = zncc.reshape(b, -1).argmax(axis=1)
    d = np.stack([flat // (k * k), (flat // k) % k, flat % k], axis=1) - r
    return guess + d, zncc.reshape(b, -1)[np.arange(b), flat]


def _bin2(volume):
    n = [d // 2 * 2 for d in volume.shape]
    v = volume[:n[0], :n[1], :n[2]].astype(np.float32)
    return v.reshape(n[0] // 2, 2, n[1] // 2, 2, n[2] // 2, 2).mean(axis=(1, 3, 5))
