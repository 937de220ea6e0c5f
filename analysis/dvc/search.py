"""Integer-voxel displacement search by FFT zero-normalised cross-correlation.

For each node the reference subvolume (edge ``s``) is correlated with a
search window of the deformed volume (edge ``s + 2 r``) around the node's
guess; the numerator comes from batched FFTs, the local window statistics
from running box sums, so the ZNCC is exact for every integer shift within
``r``. Large searches go coarse-to-fine through a 2x2x2-binned pyramid:
each coarser level finds the shift to within one of its voxels, and the
next finer level searches only +-2 of its own voxels around twice that.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.fft as sfft

from analysis._slabs import in_slabs
from analysis.dvc.grid import extract_cubes

_DIRECT_RADIUS_VOXELS = 6    # above this, a coarser pyramid level seeds the search
_MIN_COARSE_EDGE = 7         # a 7^3 binned template still has one clear ZNCC peak in random texture
_REFINE_RADIUS_VOXELS = 2    # a level's shift is within one coarse voxel (two of this level's)
_BATCH_VOXELS = 1 << 23      # window voxels of all FFT batches in flight (memory bound)
_THREADS_BOUNDED = 8         # batches in flight that _BATCH_VOXELS still bounds
_BIN_SLAB_PLANES = 8         # binned planes per task of _bin2


class SearchPyramid:
    """A volume pair and its 2x2x2-binned levels for the coarse-to-fine search, each level binned once.

    :func:`integer_search` builds one per call; a caller that searches the
    same pair many times (each pass and retry of
    :func:`analysis.dvc.correlate`, each edge of a subvolume study) builds
    it once and hands it on.

    Parameters
    ----------
    reference, deformed : numpy.ndarray
        3D float32 volumes (z, y, x) of the same shape.
    """

    def __init__(self, reference, deformed):
        self._levels = [(reference, deformed)]

    def level(self, i):
        """(reference, deformed) binned ``i`` times."""
        while len(self._levels) <= i:
            self._levels.append(tuple(_bin2(v) for v in self._levels[-1]))
        return self._levels[i]

    def holds(self, reference, deformed):
        """Whether the pyramid was built on these very arrays."""
        return self._levels[0][0] is reference and self._levels[0][1] is deformed


def integer_search(reference, deformed, nodes, subvolume_voxels, radius_voxels,
                   guess=None, workers=-1, pyramid=None):
    """Best integer displacement per node within a cube of half-edge ``radius_voxels``.

    Parameters
    ----------
    reference, deformed : numpy.ndarray
        3D float32 volumes (z, y, x) of the same shape.
    nodes : numpy.ndarray
        (N, 3) int node positions (z, y, x), voxels.
    subvolume_voxels : int
        Edge of the cubic reference subvolume around each node, voxels.
    radius_voxels : int
        Searched shifts are ``guess + d`` with ``|d_i| <= radius_voxels``;
        the result never leaves that cube, whichever pyramid level found it.
    guess : numpy.ndarray, optional
        (N, 3) int initial displacements (z, y, x), voxels, default zero.
    workers : int, optional
        Threads the search runs on (-1: every CPU this process may use).
        The nodes are split between them in batches (FFTs, box sums and
        the rest of the numpy work release the GIL). The batches do not
        depend on ``workers``, so neither does the result.
    pyramid : SearchPyramid, optional
        Built on ``reference`` and ``deformed`` themselves, to bin them
        once for many searches; default: built for this call.

    Returns
    -------
    displacement : numpy.ndarray
        (N, 3) int64 (z, y, x), voxels; ``guess`` where no shift keeps the
        window inside the volume.
    zncc : numpy.ndarray
        (N,) ZNCC at that shift (-1 where no shift keeps the window inside).

    Notes
    -----
    A coarse level bins both volumes 2x2x2 and searches a template of edge
    ``s // 2`` (odd), i.e. about the subvolume's own footprint, with half
    the radius; it is used while that edge is at least 7 and the radius
    above 6. Coarse templates are not enlarged beyond the footprint: a
    larger one (the former 9^3 minimum, 36 voxels wide two levels down for
    ``s`` = 17) leaves the volume near a face under the true shift, which
    then is no candidate, and the finer levels, which only look +-2 voxels
    around the coarse answer, cannot recover it (measured: 238 of 800 such
    nodes off by more than a voxel, up to 29, for a 20-voxel shift in 96^3;
    now none). The price is more work where ``s`` is small and the radius
    large: for ``s`` = 17 the search stops one level down, at radius
    ``r // 2 + 1``.
    """
    if pyramid is None:
        pyramid = SearchPyramid(reference, deformed)
    elif not pyramid.holds(reference, deformed):
        raise ValueError("pyramid: expected the SearchPyramid of these reference and deformed arrays")
    nodes = np.asarray(nodes, dtype=np.int64)
    guess = np.zeros_like(nodes) if guess is None else np.asarray(guess, dtype=np.int64)
    s, r = int(subvolume_voxels), int(radius_voxels)
    return _search(pyramid, 0, nodes - s // 2, s, guess, r, guess - r, guess + r, workers)


def _search(pyramid, level, corners, s, guess, r, low, high, workers):
    """Best shift in ``[low, high]`` of the templates at ``corners`` (edge ``s``), around ``guess`` +- ``r``,
    on the pyramid's ``level``."""
    reference, deformed = pyramid.level(level)
    coarse_s = s // 2 | 1   # about the subvolume's own footprint: no more context than the finest level has
    if r > _DIRECT_RADIUS_VOXELS and coarse_s >= _MIN_COARSE_EDGE:
        coarse_r = r // 2 + 1   # covers (guess +- r) / 2 for odd guesses too
        coarse_guess = guess // 2
        # template centre c + (s - 1) / 2 sits at coarse (c + (s - 1) / 2 - 0.5) / 2
        centre = corners + (s - 1) / 2
        coarse_corner = np.round((centre - 0.5) / 2 - (coarse_s - 1) / 2).astype(np.int64)
        coarse_corner = np.clip(coarse_corner, 0, np.maximum(np.array(reference.shape) // 2 - coarse_s, 0))
        cd, _ = _search(pyramid, level + 1, coarse_corner, coarse_s, coarse_guess, coarse_r,
                        coarse_guess - coarse_r, coarse_guess + coarse_r, workers)
        guess = np.clip(2 * cd, low, high)
        r = _REFINE_RADIUS_VOXELS
    w = s + 2 * r
    threads = len(os.sched_getaffinity(0)) if workers == -1 else int(workers)
    # batches bound memory (up to _THREADS_BOUNDED threads' batches together), not a per-node loop;
    # their size does not depend on the thread count, so neither do the float32 bits of any node
    batch = max(1, _BATCH_VOXELS // _THREADS_BOUNDED // w ** 3)
    parts = [slice(start, start + batch) for start in range(0, len(corners), batch)]

    def run(sl):
        return _search_batch(reference, deformed, corners[sl], guess[sl], s, r, low[sl], high[sl])

    if threads > 1 and len(parts) > 1:
        with ThreadPoolExecutor(threads) as pool:
            found = list(pool.map(run, parts))
    else:
        found = [run(sl) for sl in parts]
    disp = np.zeros_like(corners)
    best = np.full(len(corners), -1.0)
    for sl, (d, zncc) in zip(parts, found):
        disp[sl], best[sl] = d, zncc
    return disp, best


def _search_batch(reference, deformed, corner, guess, s, r, low, high):
    w = s + 2 * r
    t = extract_cubes(reference, corner, s).astype(np.float32)
    win = extract_cubes(deformed, corner + guess - r, w).astype(np.float32)
    # centring the windows keeps the single-precision box variances free of cancellation
    win = win - win.mean(axis=(1, 2, 3), keepdims=True)
    b = len(corner)
    t = t - t.mean(axis=(1, 2, 3), keepdims=True)
    tnorm = np.sqrt(np.einsum("bijk,bijk->b", t, t, dtype=np.float64))
    axes = (1, 2, 3)
    # Zero-padded to a length with small prime factors: the lags kept (0 .. 2r) never wrap, since a
    # template voxel i and lag d reach i + d <= w - 1, so the numerator is the same; FFTs of prime
    # lengths are slow (the paper's 8 um edge, 63 + 4 = 67 voxels: 2.8x slower than 72).
    n = (sfft.next_fast_len(w, real=True),) * 3
    ft = sfft.rfftn(t, s=n, axes=axes)
    fw = sfft.rfftn(win, s=n, axes=axes)
    num = sfft.irfftn(fw * np.conj(ft), s=n, axes=axes)[:, :2 * r + 1, :2 * r + 1, :2 * r + 1]
    k = 2 * r + 1
    # window statistics over every s^3 box from running sums: cheaper than two more FFTs
    s1 = _box_sums(win, s, k)
    s2 = _box_sums(win * win, s, k)
    var = s2 - s1 * s1 / s ** 3
    den = np.sqrt(np.maximum(var, 0.0)) * tnorm[:, None, None, None]
    zncc = np.where(den > 1e-12 * (s2 + 1e-30), num / np.where(den > 0, den, 1.0), -1.0)
    # candidates: the window stays inside the volume and the shift inside [low, high]
    shape = np.array(deformed.shape)
    shifts = guess[:, :, None] + np.arange(-r, r + 1)                      # (b, 3, k)
    ok = ((corner[:, :, None] + shifts >= 0) & (corner[:, :, None] + shifts + s <= shape[:, None])
          & (shifts >= low[:, :, None]) & (shifts <= high[:, :, None]))
    valid = ok[:, 0, :, None, None] & ok[:, 1, None, :, None] & ok[:, 2, None, None, :]
    zncc = np.where(valid, zncc, -1.0).reshape(b, -1)
    flat = zncc.argmax(axis=1)
    d = np.stack([flat // (k * k), (flat // k) % k, flat % k], axis=1) - r
    found = valid.reshape(b, -1).any(axis=1)
    return np.where(found[:, None], guess + d, guess), zncc[np.arange(b), flat]


def _box_sums(v, s, k):
    """(b, k, k, k) sums of ``v`` over the s^3 boxes starting at each of k^3 offsets, float64.

    The bytes of ``scipy.ndimage.uniform_filter1d(mode="constant")`` along
    each axis in turn, kept at the ``k`` centres whose box lies inside the
    window, times s^3: see :func:`_box_means`.
    """
    out = v
    for axis in (1, 2, 3):
        out = _box_means(out, s, k, axis)
    return out * float(s) ** 3


def _box_means(v, s, k, axis):
    """Means of ``v`` (float32 or float64) over the ``k`` boxes of ``s`` planes along ``axis`` that start at
    planes 0 .. k - 1, float64.

    scipy's uniform filter keeps one running sum per line, stepping it by the
    plane entering the box minus the plane leaving it (the zeros of its
    constant padding included) and dividing by ``s`` at each output. The
    same float64 operations in the same order, made on whole planes and
    stopped at the last box kept, give its bytes 1.4-5.9x faster on the
    search's batches (edges 3 to 63, radii 2 to 21, 2^20 window voxels a
    batch; 2-core VM, 6 Dec 2026), the worst edge 3 with radius 6 (1.40x)
    and edge 7 with radius 21 (1.43x, the coarsest level of the paper's
    4 um tiles); slower only on batches of a few small windows,
    where a call takes a tenth of a millisecond either way. The filter
    copied every line in and out of a buffer and filtered the whole window,
    of which the search keeps ``k`` planes.
    """
    x = np.moveaxis(v, axis, 0)
    lead = s // 2   # the padding's zeros before the first plane
    total = np.zeros(x.shape[1:], np.float64)
    for i in range(s - lead):
        total += x[i]
    out = np.empty((k,) + x.shape[1:], np.float64)
    for step in range(lead + k):
        if step > 0:
            leaving = step - 1 - lead
            total += x[step + s - 1 - lead].astype(np.float64) - (x[leaving] if leaving >= 0 else 0.0)
        if step >= lead:
            np.divide(total, s, out=out[step - lead])
    return np.moveaxis(out, 0, axis)


def _bin2(volume):
    """Means of the 2x2x2 blocks of ``volume`` (an odd last layer left out), float32.

    numpy's ``mean`` over each block's three axes, made slab by slab along z
    in threads: a binned plane's sums do not depend on the planes around it,
    so the slabs give the whole array's bytes (tested), and a slab's float32
    copy stays in cache. On a preprocessed scan of the paper scenario (516 x
    508 x 508, 2-core VM, 6 Dec 2026, three rounds): 0.51-0.54 s against
    1.19-1.74 s in one call, whatever the slab (2 to 32 planes); binned once
    more (258 x 254 x 254), 0.066-0.074 s against 0.129 s; 28-34 ms against
    53-54 ms at 200 x 180 x 190. The worst case, 16^3: 0.24-0.32 ms against
    0.04-0.13 ms (starting the threads).
    """
    n = [d // 2 * 2 for d in volume.shape]
    out = np.empty((n[0] // 2, n[1] // 2, n[2] // 2), np.float32)

    def slab(start, stop):
        v = volume[2 * start:2 * stop, :n[1], :n[2]].astype(np.float32)
        out[start:stop] = v.reshape(stop - start, 2, n[1] // 2, 2, n[2] // 2, 2).mean(axis=(1, 3, 5))

    in_slabs(out.shape[0], _BIN_SLAB_PLANES, slab)
    return out
