"""Inverse-compositional Gauss–Newton (IC-GN) subvoxel refinement, batched over nodes.

Each node's reference points ``f`` (a shared set of local offsets ``x``
around the node) are matched to the deformed volume ``g`` sampled at
``W(x; p) = c + t + L x`` by minimising the zero-normalised sum of squared
differences (ZNSSD), which is invariant to affine grey-level changes. Each
point may carry a window weight ``w`` (a weighted ZNSSD: means, norms and
sums all weighted, ``sum w (fn - gn)^2``); uniform weights are the plain
ZNSSD. The CC reported is the plain ZNCC of all the points either way. The
reference gradients and the Gauss–Newton Hessian are computed once per node
(inverse compositional); each iteration samples ``g`` for all active nodes in
one taichi call and updates ``W <- W o W(dp)^-1``. The Hessian is that of the
ZNSSD, with what the deformed subvolume's normalisation absorbs projected out
(:func:`normalised_hessian_inverse`): the usual IC-GN's fixed point, reached
in fewer iterations where the texture is sparse and smooth.

Shape functions: ``"affine"`` (12 parameters: translation and the full
3x3 displacement gradient), ``"rigid"`` (6: translation and an
infinitesimal rotation, re-orthonormalised after each update) and
``"translation"`` (3).
"""

from dataclasses import dataclass

import numpy as np


_FLAT = 1e-6        # relative grey-level spread at or below which a subvolume has no texture
_MIN_CURVATURE_LEFT = 1e-3   # see normalised_hessian_inverse
_IU3 = np.triu_indices(3)
_IU4 = np.triu_indices(4)


def _sym_index(n):
    """(n, n) index of each entry into the packed upper triangle."""
    k = np.zeros((n, n), dtype=np.int64)
    iu = np.triu_indices(n)
    k[iu] = np.arange(len(iu[0]))
    return np.maximum(k, k.T)


_SYM3 = _sym_index(3)
_SYM4 = _sym_index(4)


def _basis(shape_function):
    """(K, 3, 4) generators B_k: dW/dp_k at p = 0 is B_k @ [x, 1]."""
    t = np.zeros((3, 3, 4))
    for i in range(3):
        t[i, i, 3] = 1.0
    if shape_function == "translation":
        return t
    if shape_function == "affine":
        a = np.zeros((9, 3, 4))
        for k in range(9):
            a[k, k // 3, k % 3] = 1.0
        return np.concatenate([t, a])
    if shape_function == "rigid":
        r = np.zeros((3, 3, 4))
        for k in range(3):
            axis = np.zeros(3)
            axis[k] = 1.0
            r[k, :, :3] = np.cross(np.eye(3), axis)   # rows e_i x axis, so r @ x = axis x x
        return np.concatenate([t, r])
    raise ValueError(f"shape_function: expected 'affine', 'rigid' or 'translation', got {shape_function!r}")


@dataclass(frozen=True)
class Refinement:
    """Outcome of IC-GN for a batch of nodes.

    Attributes
    ----------
    warps : numpy.ndarray
        (B, 3, 4) final maps from local offsets to deformed positions, voxels.
    cc : numpy.ndarray
        (B,) zero-normalised correlation coefficient of the subvolume's points at the
        final warp, unweighted whatever the window.
    iterations : numpy.ndarray
        (B,) Gauss–Newton iterations done.
    converged : numpy.ndarray
        (B,) bool, the last update was below tolerance.
    textured : numpy.ndarray
        (B,) bool, the reference points are not flat (Hessian invertible).
    left : numpy.ndarray
        (B,) bool, stopped because the warp left the volume (``refine``'s
        ``outside`` test); its ``warps`` is that outside warp, its ``cc`` is
        from the last warp sampled.
    """

    warps: np.ndarray
    cc: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    textured: np.ndarray
    left: np.ndarray


@dataclass(frozen=True)
class ReferenceTerms:
    """What IC-GN needs from the reference side, computed once per node.

    Attributes
    ----------
    fn : numpy.ndarray
        (B, n) float32 reference values less their weighted mean, divided by their
        weighted norm (sum w fn = 0, sum w fn^2 = 1).
    grad : numpy.ndarray
        (B, 3, n) float32 reference gradient (d/dz, d/dy, d/dx) divided by the same norm.
    hess_packed : numpy.ndarray
        (B, 6, 10) float64 sums of w grad_i grad_k x_j x_l over the points, for the
        upper-triangle pairs (i <= k) and (j <= l) of x = [offset, 1].
    sd_sum : numpy.ndarray
        (B, 12) float64 sums of w grad_i x_j (row-major i, j).
    sd_fn : numpy.ndarray
        (B, 12) float64 sums of w fn grad_i x_j.
    textured : numpy.ndarray
        (B,) bool, the reference points are not flat.
    weights : numpy.ndarray
        (n,) float32 window weight w of each point (all 1: uniform).
    """

    fn: np.ndarray
    grad: np.ndarray
    hess_packed: np.ndarray
    sd_sum: np.ndarray
    sd_fn: np.ndarray
    textured: np.ndarray
    weights: np.ndarray


def _window(weights, n):
    """``weights`` as (n,) float32, all 1 when None."""
    if weights is None:
        return np.ones(n, np.float32)
    weights = np.ascontiguousarray(weights, dtype=np.float32)
    if weights.shape != (n,) or not np.all(weights > 0):
        raise ValueError(f"weights: expected {n} positive window weights, one per point, got shape {weights.shape}")
    return weights


def reference_terms(f, grad_f, offsets, weights=None):
    """:class:`ReferenceTerms` from reference values and gradients at arbitrary points.

    Parameters
    ----------
    f : numpy.ndarray
        (B, n) reference grey values at the points.
    grad_f : numpy.ndarray
        (B, n, 3) reference gradient (d/dz, d/dy, d/dx) at the points.
    offsets : numpy.ndarray
        (n, 3) local offsets of the points from the node (z, y, x), voxels.
    weights : numpy.ndarray, optional
        (n,) positive window weight of each point; default 1 (uniform).
    """
    B, n = f.shape
    weights = _window(weights, n)
    xh = np.concatenate([offsets.astype(np.float64), np.ones((n, 1))], axis=1)
    f = f.astype(np.float32)
    total = weights.sum(dtype=np.float64)
    f0 = f - (f * weights).sum(axis=1, keepdims=True) / np.float32(total)
    fnorm = np.sqrt(np.einsum("bn,bn->b", f0 * weights, f0, dtype=np.float64))
    textured = fnorm > _FLAT * np.sqrt(total) * (np.abs(f).max(axis=1) + 1e-30)
    scale = np.where(textured, 1.0 / np.where(textured, fnorm, 1.0), 0.0).astype(np.float32)
    fn = f0 * scale[:, None]
    gs = np.ascontiguousarray(grad_f.astype(np.float32).transpose(0, 2, 1)) * scale[:, None, None]   # (B, 3, n)
    gw = gs * weights
    xh32 = xh.astype(np.float32)
    # one GEMM over the points, on the symmetric pairs only
    gg = (gw[:, _IU3[0], :] * gs[:, _IU3[1], :]).reshape(B * 6, n)
    hess_packed = (gg @ (xh32[:, _IU4[0]] * xh32[:, _IU4[1]])).reshape(B, 6, 10).astype(np.float64)
    sd_sum = (gw.astype(np.float64) @ xh).reshape(B, 12)
    sd_fn = ((gw * fn[:, None, :]).astype(np.float64) @ xh).reshape(B, 12)
    return ReferenceTerms(fn=fn, grad=gs, hess_packed=hess_packed, sd_sum=sd_sum, sd_fn=sd_fn,
                          textured=textured, weights=weights)


def normalised_hessian_inverse(hess, sd_sum, sd_fn, total_weight):
    """Inverse of the ZNSSD Hessian: the Gauss–Newton Hessian less what the normalisation absorbs.

    The residual ``gn - fn`` changes with the warp only through the part of the
    steepest-descent images ``sd = grad . dW/dp`` that the deformed subvolume's
    normalisation does not remove: the part orthogonal (in the window's weights)
    to a constant and to ``fn`` itself. Its Jacobian is therefore the projected
    Hessian ``H - s s^T / W - t t^T`` (``s = sum w sd``, ``t = sum w fn sd``, ``W``
    the total weight, and ``sum w fn^2 = 1``). The usual IC-GN (Pan et al., 2013)
    steps with ``H`` itself: the same fixed point, but on a texture of sparse,
    smooth blobs, where moving a blob through the subvolume changes its mean and
    spread, each iteration removed only 15-20 % of the error (a subvoxel shift of
    a speckle of 4-voxel features needed > 8 iterations for 0.02 voxel; with
    the projected Hessian, 2). The inverse is ``H^-1`` updated by Woodbury's
    identity through the 2x2 matrix ``S = I - U^T H^-1 U``, ``U = [s / sqrt(W), t]``.
    Where the projection leaves a direction with less than ``1e-3`` of its
    curvature (``S`` nearly singular: a steepest-descent image that is nearly a
    constant plus a multiple of ``fn``, as on a linear ramp), the step stays
    the usual one.

    Parameters
    ----------
    hess : numpy.ndarray
        (B, K, K) Gauss–Newton Hessians ``sum w sd sd^T``, positive definite.
    sd_sum, sd_fn : numpy.ndarray
        (B, K) ``sum w sd`` and ``sum w fn sd``.
    total_weight : float
        ``sum w`` over the subvolume's points.

    Returns
    -------
    numpy.ndarray
        (B, K, K) inverses.
    """
    hinv = np.linalg.inv(hess)
    u = np.stack([sd_sum / np.sqrt(total_weight), sd_fn], axis=2)            # (B, K, 2)
    hu = hinv @ u
    schur = np.eye(2) - u.transpose(0, 2, 1) @ hu
    usable = np.linalg.eigvalsh(schur)[:, 0] > _MIN_CURVATURE_LEFT
    hu, schur = hu[usable], schur[usable]
    hinv[usable] += hu @ np.linalg.solve(schur, hu.transpose(0, 2, 1))
    return hinv


def refine(spline, terms, offsets, warps0, *, shape_function="affine",
           max_iterations=50, tolerance_voxels=1e-3, exact_first=None, cube_edge=None, outside=None,
           outside_patience=0, null_outside=False, stall_iterations=None, stall_cc=0.3):
    """Refine initial warps of a batch of nodes by IC-GN.

    Parameters
    ----------
    spline : analysis.dvc.interpolate.SplineVolume
        The deformed volume.
    terms : ReferenceTerms
        Reference side of each node (:func:`reference_terms`, or the cube
        kernel of :mod:`analysis.dvc.interpolate`).
    offsets : numpy.ndarray
        (n, 3) local offsets of the points from the node (z, y, x), voxels.
    warps0 : numpy.ndarray
        (B, 3, 4) initial warps.
    shape_function : {"affine", "rigid", "translation"}
    max_iterations : int
    tolerance_voxels : float
        Convergence when the update moves every point of the subvolume by
        less than this, voxels (so a tolerance of 0 is never met).
    exact_first : numpy.ndarray, optional
        (B, n) deformed grey values at ``warps0`` when already known (an
        integer translation samples voxels exactly), saving one interpolation.
    cube_edge : int, optional
        Set when ``offsets`` is the cube of :func:`analysis.dvc.grid.subvolume_offsets`
        of this edge (faster sampling).
    outside : callable, optional
        ``outside(warps)`` -> (m,) bool for (m, 3, 4) warps: the warped
        subvolume leaves the deformed volume. A node whose warp it flags for
        more than ``outside_patience`` iterations in a row stops there, like a
        converged node, and is reported in ``Refinement.left``: its match is
        not in the volume, and iterating on (padded) samples outside it only
        runs to ``max_iterations``. None: no such test.
    outside_patience : int
        Iterations a node may spend outside before it stops (0: stop as soon
        as the warp is outside, before sampling it).
    null_outside : bool
        Samples outside the deformed volume read 0, as if it were surrounded
        by null values (see ``SplineVolume.correlation_sums``), instead of
        the spline's mirror continuation: a node whose subvolume reaches past
        a face is then correlated against those nulls, and ``outside`` is
        usually None.
    stall_iterations : int, optional
        A node whose ZNCC after this many iterations is still below
        ``stall_cc`` stops there, not converged, with that warp and CC: its
        subvolume has found no match that Gauss–Newton is closing in on.
        None (default): every node runs until it converges, leaves or
        reaches ``max_iterations``.
    stall_cc : float
        See ``stall_iterations``.

    Returns
    -------
    Refinement
    """
    basis = _basis(shape_function)
    B, n = terms.fn.shape
    reach_h = np.append(np.abs(offsets).max(axis=0).astype(np.float64), 1.0)
    # per-generator max displacement over the subvolume, for the convergence test
    gen_reach = (np.abs(basis) @ reach_h).max(axis=1)
    select = basis.reshape(len(basis), 12).T                                    # (12, K)
    h12 = terms.hess_packed[:, _SYM3][:, :, :, _SYM4].transpose(0, 1, 3, 2, 4).reshape(B, 12, 12)
    hess = select.T @ h12 @ select
    textured = terms.textured
    hess[~textured] = np.eye(len(basis))
    fn, gs, sd_sum, sd_fn, weights = terms.fn, terms.grad, terms.sd_sum, terms.sd_fn, terms.weights
    total = weights.sum(dtype=np.float64)
    hinv = normalised_hessian_inverse(hess, sd_sum @ select, sd_fn @ select, total)
    # the CC reported (and judged against min_cc and the stall limit) is the plain ZNCC of the whole
    # subvolume, whatever the window: a window with fewer effective points lifts the CC of a false
    # match, and the thresholds are set on the plain one. With a uniform window the two are the same.
    plain = not np.all(weights == 1.0)
    fn_mean = fn.mean(axis=1, dtype=np.float64)
    fn_spread = np.sqrt(np.maximum(np.einsum("bn,bn->b", fn, fn, dtype=np.float64) - n * fn_mean ** 2, 1e-300))
    warps = np.array(warps0, dtype=np.float64)
    cc = np.zeros(B)
    iterations = np.zeros(B, dtype=np.int64)
    converged = np.zeros(B, dtype=bool)
    left = np.zeros(B, dtype=bool)
    # the nodes still iterating; everything per node (warps, hinv, the sums of ReferenceTerms, the
    # per-point fn, gs and exact_first) is read through ``active``: the sampling kernel takes the active
    # nodes' rows, so a node that drops out costs no copy
    active = np.flatnonzero(textured)
    first = None if exact_first is None else np.asarray(exact_first, dtype=np.float32)
    streak_a = np.zeros(len(active), dtype=np.int64)   # consecutive iterations outside, per active node
    for it in range(max_iterations + 1):
        if outside is not None and len(active):
            streak_a = np.where(outside(warps[active]), streak_a + 1, 0)
            gone = streak_a > outside_patience
            if gone.any():
                left[active[gone]] = True
                active, streak_a = _compact(~gone, active, streak_a)
        if len(active) == 0:
            break
        given = first if it == 0 else None
        sums = spline.correlation_sums(warps[active], offsets, fn, gs, given, cube_edge, weights, rows=active,
                                       null_outside=null_outside)
        mean = sums[:, 0] / total
        sigma = np.sqrt(np.maximum(sums[:, 1] - total * mean * mean, 1e-300))
        # both images of unit weighted norm and zero weighted mean: ZNCC = sum w fn g / sigma, in
        # [-1, 1] by Cauchy-Schwarz; the clip only removes round-off of a near-constant subvolume
        if plain:
            g_mean = sums[:, 15] / n
            g_spread = np.sqrt(np.maximum(sums[:, 16] - n * g_mean * g_mean, 1e-300))
            cc[active] = np.clip((sums[:, 17] - fn_mean[active] * sums[:, 15]) / (g_spread * fn_spread[active]),
                                 -1.0, 1.0)
        else:
            cc[active] = np.clip(sums[:, 2] / sigma, -1.0, 1.0)
        if it == max_iterations:
            break
        if it == stall_iterations:
            stalled = cc[active] < stall_cc
            if stalled.any():
                active, streak_a, sums, mean, sigma = _compact(~stalled, active, streak_a, sums, mean, sigma)
                if len(active) == 0:
                    break
        # sd^T W (gn - fn) with gn = (g - mean) / sigma, from the sums (the per-point residual enters
        # only through them, see ReferenceTerms)
        rhs12 = (sums[:, 3:15] - mean[:, None] * sd_sum[active]) / sigma[:, None] - sd_fn[active]
        dp = np.einsum("bkl,bl->bk", hinv[active], rhs12 @ select)
        iterations[active] += 1
        warps[active] = _compose_inverse(warps[active], np.einsum("bk,kij->bij", dp, basis), shape_function)
        done = np.abs(dp) @ gen_reach < tolerance_voxels
        if done.any():
            # a converged node's cc is from the warp before its last, sub-tolerance update
            converged[active[done]] = True
            active, streak_a = _compact(~done, active, streak_a)
    return Refinement(warps=warps, cc=cc, iterations=iterations, converged=converged, textured=textured,
                      left=left)


def _compact(keep, *arrays):
    """The active-node working arrays with only the rows ``keep``."""
    return [a[keep] for a in arrays]


def _compose_inverse(warps, dm, shape_function):
    """W <- W o W(dp)^-1 in homogeneous 4x4 form."""
    b = len(warps)
    m = np.zeros((b, 4, 4))
    m[:, :3] = warps
    m[:, 3, 3] = 1.0
    d = np.zeros((b, 4, 4))
    d[:, :3] = dm
    d[:, :3, :3] += np.eye(3)
    d[:, 3, 3] = 1.0
    if shape_function == "rigid":
        d[:, :3, :3] = nearest_rotation(d[:, :3, :3])
    out = (m @ np.linalg.inv(d))[:, :3]
    if shape_function == "rigid":
        out[:, :, :3] = nearest_rotation(out[:, :, :3])
    return out


def nearest_rotation(matrices):
    """Nearest proper rotation(s) to 3x3 matrices (polar decomposition by SVD)."""
    u, _, vt = np.linalg.svd(matrices)
    det = np.linalg.det(u @ vt)
    u[..., :, -1] *= det[..., None]
    return u @ vt
