"""Subset-based local DVC: integer search, then IC-GN refinement, per node."""

import enum
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.spatial import cKDTree

from analysis.dvc.consistency import (THRESHOLD, lattice_neighbours, median_test, neighbour_prediction,
                                      scattered_median_test, small_groups)
from analysis.dvc.gauss_newton import nearest_rotation, refine
from analysis.dvc.grid import (box_leaves_volume, extract_cubes, inside_fraction, node_grid, subvolume_box,
                               subvolume_offsets, subvolume_window)
from analysis.dvc.interpolate import SplineVolume, device_array
from analysis.dvc.reference import cube_terms
from analysis.dvc.search import SearchPyramid, integer_search
from analysis.dvc.smoothing import check_sigma, gaussian_smoothing

# nodes per IC-GN batch (~0.1 MB each at 17^3); a GPU runs one thread per node, so it wants many
_BATCH_NODES = {"cpu": 384, "gpu": 4096}
_RESCUE_RADIUS_VOXELS = 2
# correlated, failed neighbours that make a lone ok node an outlier (see _outliers)
_ALONE_AMONG_FAILED = 3
# rounds of re-correlating outliers: each fixes the rim of a cluster of wrong matches (whose
# neighbours are mostly right) and exposes the next rim; the loop stops as soon as a round flags
# nothing new, so a clean field pays for one test only
_OUTLIER_ROUNDS = 8
# Gauss-Newton iterations a node may spend with its subvolume outside the volume before it stops
# (status OUTSIDE). 0 and 1 gave the same results on all cases of benchmarks/dvc_vs_spam.py (as
# never stopping did), 0 with fewer iterations; see its docstring
_OUTSIDE_PATIENCE = 0
# a node whose CC is still below 0.5 (or min_cc, if lower) after 10 Gauss-Newton iterations stops
# there (not converged). At 0.3, recorded on the paper's 8 um tiles (367 of 692 refinements) and quick's
# step 2, none of the stopped nodes went on to converge with CC >= 0.5 by iteration 50, and they spent
# half of all iterations getting there. Raised to 0.5 (3 Dec 2026): quick's scores and all eight cases
# of benchmarks/dvc_vs_spam.py identical, the paper's 8 um step-A tiles 44 ok cubes instead of 43 in
# 95 s instead of 127, overlapping 63^3 subvolumes on a 256^3 crop of the paper 63 s instead of 151
_STALL_ITERATIONS, _STALL_CC = 10, 0.5
#: Gauss-Newton stops when an update moves no subvolume point by more than this, voxels. The state
#: after that update is kept, and Gauss-Newton converges fast enough that 0.005, 0.01, 0.02 and 0.05
#: gave the same RMS error (4 decimals) on all eight cases of benchmarks/dvc_vs_spam.py, while 0.02
#: saves 1-19 % of the iterations against 0.005 (0.05: up to 30 %, and 0.1 starts to cost accuracy)
TOLERANCE_VOXELS = 0.02
# a node starts from its lattice neighbours' first-order prediction only where those predictions agree
# to within this (median absolute deviation, voxels). A smooth field's curvature spreads them by tenths
# of a voxel; a false match is off by a large part of the subvolume, and with the neighbours split
# between it and the truth the median lies between the two, where neither basin reaches
_START_SPREAD_VOXELS = 1.0
# the FFT search visits one node per block of this many node spacings cubed; the others start from
# their converged neighbours. 3 (was 2, 4 Dec 2026): on the eight cases of benchmarks/dvc_vs_spam.py
# 2.7 times fewer nodes searched, 4-30 % less CPU time (most on the 12- and 20-voxel shifts), the same
# ok nodes and RMS to 4 decimals, Gauss-Newton iterations within -7 % .. +10 %
_SEARCH_BLOCK_SPACINGS = 3


class Status(enum.IntEnum):
    """Per-node outcome of :func:`correlate`."""

    CONVERGED = 0        #: converged with CC >= min_cc (the only ``ok`` status)
    MAX_ITERATIONS = 1   #: Gauss–Newton did not converge
    MASKED = 2           #: subvolume mostly outside the mask, skipped
    OUTSIDE = 3          #: the deformed subvolume leaves the volume
    FLAT = 4             #: reference subvolume has no texture
    LOW_CC = 5           #: converged, but CC below min_cc
    OUTLIER = 6          #: converged with CC >= min_cc, but its neighbours contradict it (see correlate)


@dataclass(frozen=True)
class DVCResult:
    """Node field from :func:`correlate`.

    Attributes
    ----------
    nodes : numpy.ndarray
        (N, 3) node positions (z, y, x) in the reference, voxels.
    displacement : numpy.ndarray
        (N, 3) displacement (z, y, x), voxels; NaN where not ``ok``.
    cc : numpy.ndarray
        (N,) zero-normalised correlation coefficient at the final warp (0 for skipped nodes;
        an OUTLIER keeps its CC, which can be high).
    ok : numpy.ndarray
        (N,) bool, converged, CC >= min_cc and consistent with the
        neighbours (status CONVERGED).
    iterations : numpy.ndarray
        (N,) Gauss–Newton iterations of the final pass.
    status : numpy.ndarray
        (N,) int, values of :class:`Status`.
    displacement_gradient : numpy.ndarray
        (N, 3, 3) du_i/dx_j of the subvolume's affine shape function,
        dimensionless; NaN where not ``ok``.
    subvolume_voxels : int
        Edge of the cubic subvolume of the final pass, voxels.
    """

    nodes: np.ndarray
    displacement: np.ndarray
    cc: np.ndarray
    ok: np.ndarray
    iterations: np.ndarray
    status: np.ndarray
    displacement_gradient: np.ndarray
    subvolume_voxels: int


def correlate(reference, deformed, *, subvolume_voxels, node_spacing_voxels,
              max_displacement_voxels, mask=None, nodes=None, passes=(),
              min_mask_fraction=0.5, min_cc=0.5, max_iterations=50,
              tolerance_voxels=TOLERANCE_VOXELS, shape_function="affine", window="gaussian", outside="stop",
              smoothing_sigma_voxels=0.0, arch="cpu", progress=None, prepared=None):
    """Local DVC of ``deformed`` against ``reference`` on a node grid.

    With ``smoothing_sigma_voxels`` both volumes are first smoothed by a
    gaussian (:mod:`analysis.dvc.smoothing`: for smooth textures under
    strong noise at small strains; off by default).

    Integer displacements come from FFT zero-normalised cross-correlation
    up to ``max_displacement_voxels`` on a sparse subset of the nodes (about
    one per 3x3x3 block); above 6 voxels the search goes coarse-to-fine
    through a 2x2x2-binned pyramid (see
    :func:`analysis.dvc.search.integer_search`), so large displacements are
    found from a zero start. Every other node starts where its converged
    lattice neighbours predict it to first order (the medians of their
    ``u_j + G_j (x - x_j)`` and of their gradients ``G_j``, see
    :func:`analysis.dvc.consistency.neighbour_prediction`) when those
    predictions agree within a voxel; otherwise (neighbours split between
    matches, or none on its lattice, e.g. irregular nodes) from the rounded
    median displacement of the converged nodes within 2.5 spacings. Each
    node is then refined to
    subvoxel accuracy by inverse-compositional Gauss–Newton with a
    first-order (12-parameter affine) shape function, or a rigid one (6
    parameters: translation and rotation), on cubic B-spline
    interpolation of ``deformed`` (ZNSSD criterion, so affine grey-level
    changes do not matter), its points weighted by ``window``. A node whose CC is still below 0.5 (or
    ``min_cc``, if lower) after 10 iterations stops there (MAX_ITERATIONS):
    it has found no match to close in on. Nodes that fail are retried once by a local
    search around their converged neighbours' median displacement (or a
    full search where none converged).

    A match can converge with a high CC and still be wrong (repeated
    texture, a false peak of the integer search). Every converged node is
    therefore checked against its lattice neighbours by the normalised
    median test (:mod:`analysis.dvc.consistency`: Westerweel & Scarano
    2005, per component, threshold 2, noise floor 0.1 voxel, neighbours
    predicting to first order with their own displacement gradients).
    Outliers are re-correlated by a +-2 voxel search around their
    consistent neighbours' prediction and Gauss–Newton (up to eight rounds);
    those still inconsistent get status OUTLIER and are not ``ok``. A node
    with fewer than two ok lattice neighbours, or in a group of at most
    three adjacent ok nodes, is also judged by the same test against its
    eight nearest ok nodes at any distance outside its group
    (:func:`analysis.dvc.consistency.scattered_median_test`): where most
    nodes fail, a false match is often confirmed only by the nodes beside
    it, whose subvolumes overlap its own and found the same false peak. If
    it has no ok neighbour while at least three neighbours were correlated
    and failed, it is an OUTLIER too (a lone success among overlapping
    subvolumes that failed is the mark of a false peak, e.g. where the true
    place left the volume).
    A whole region locked on the same wrong match (one period off in a
    repeated texture) is consistent with itself and passes.

    Parameters
    ----------
    reference, deformed : numpy.ndarray
        3D volumes (z, y, x) of the same shape, any real dtype.
    subvolume_voxels : int
        Edge of the cubic subvolume around each node, voxels (odd is best).
    node_spacing_voxels : int or tuple of 3 int
        Node spacing, voxels; ignored when ``nodes`` is given.
    max_displacement_voxels : float
        Largest displacement searched on each axis, voxels.
    mask : numpy.ndarray of bool, optional
        Sample region of the reference; nodes whose subvolume has less than
        ``min_mask_fraction`` inside it are skipped (status MASKED).
    nodes : numpy.ndarray, optional
        (N, 3) int explicit node positions (z, y, x), voxels, e.g. from
        :func:`node_grid`. Default: ``node_grid(shape, node_spacing_voxels,
        subvolume_voxels)``.
    passes : sequence of int, optional
        Larger subvolume edges to correlate first, in order; each pass seeds
        the next one (its converged warps are the next initial guesses).
    min_mask_fraction : float
    min_cc : float
        Converged nodes below this CC get status LOW_CC (not ok).
    max_iterations : int
    tolerance_voxels : float
        Gauss–Newton stops when an update moves no subvolume point by more
        than this, voxels.
    shape_function : {"affine", "rigid"}
        How each subvolume may deform (``displacement_gradient`` is then the
        affine gradient, or the rotation less the identity).
    window : {"uniform", "gaussian"}
        Weight of the subvolume's points in Gauss–Newton's ZNSSD
        (:func:`analysis.dvc.grid.subvolume_window`). The gaussian window
        brings an affine fit of a curved field nearer the node's own
        displacement, at the cost of noisier fits. The integer search, the
        CC reported and the CC judged against ``min_cc`` stay unweighted.
    outside : {"stop", "null"}
        What a subvolume meets where its warp reaches past a face of
        ``deformed``. "stop": nothing; the node stops there with status
        OUTSIDE and CC 0 (its match is not in the volume; a node whose
        neighbours put its match outside is not searched). "null": values
        of 0, as if the volume were surrounded by null values (as Avizo's
        DVC reads a dataset's edge pixels); the node is refined and scored
        against them like any other, and no node is OUTSIDE.
    smoothing_sigma_voxels : float
        Standard deviation of the gaussian that smooths both volumes
        before anything else, voxels; 0 (the default): none. See
        :mod:`analysis.dvc.smoothing` for where it helps (0.5 voxel) and
        where it costs.
    arch : {"cpu", "gpu"}
        Taichi backend of the interpolation kernel.
    progress : callable, optional
        Called as ``progress(fraction)``.
    prepared : PreparedPair, optional
        The :class:`PreparedPair` of ``reference`` and ``deformed`` on
        ``arch`` with this smoothing, to share its work between calls on
        the same volumes (the edges of a subvolume study); default:
        prepared for this call.

    Returns
    -------
    DVCResult
    """
    _check_shape_function(shape_function)
    if outside not in ("stop", "null"):
        raise ValueError(f"outside: expected 'stop' or 'null', got {outside!r}")
    if prepared is None:
        prepared = PreparedPair(reference, deformed, arch, smoothing_sigma_voxels)
    elif not prepared.holds(reference, deformed, arch, smoothing_sigma_voxels):
        raise ValueError(f"prepared: expected the PreparedPair of these reference and deformed volumes on {arch!r} "
                         f"with smoothing_sigma_voxels={smoothing_sigma_voxels!r}")
    reference, deformed = prepared.reference, prepared.deformed
    if not max_displacement_voxels >= 0:
        raise ValueError(f"max_displacement_voxels: expected >= 0, got {max_displacement_voxels!r}")
    sizes = [int(p) for p in passes] + [subvolume_voxels]
    if nodes is None:
        nodes = node_grid(reference.shape, node_spacing_voxels, subvolume_voxels)
    else:
        nodes = _node_array(nodes)
    n_nodes = len(nodes)
    status = np.full(n_nodes, Status.MAX_ITERATIONS, dtype=np.int64)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != reference.shape:
            raise ValueError(f"mask: expected a boolean array of shape {reference.shape}, got {mask.shape}")
        status[inside_fraction(mask, nodes, subvolume_voxels) < min_mask_fraction] = Status.MASKED
    live = status != Status.MASKED

    neighbours = lattice_neighbours(nodes)
    radius = int(np.ceil(max_displacement_voxels))
    warps = np.zeros((n_nodes, 3, 4))
    warps[:, :, :3] = np.eye(3)
    warps[:, :, 3] = nodes
    cc = np.zeros(n_nodes)
    iterations = np.zeros(n_nodes, dtype=np.int64)
    ok = np.zeros(n_nodes, dtype=bool)
    n_steps = 2 * len(sizes)
    for k, s in enumerate(sizes):
        step = _Pass(prepared.reference_dev, deformed, prepared.spline, nodes, s, max_iterations, tolerance_voxels,
                     shape_function, arch, min_cc, window, outside == "null")
        seeded = np.flatnonzero(ok & live)
        step.run(seeded, warps[seeded].copy(), False, warps, cc, iterations, status)
        fresh = np.flatnonzero(live & ~ok)
        # FFT search on a sparse subset only; the others start from its converged neighbours
        searched = fresh[_sparse_subset(nodes[fresh])]
        d_int, _ = integer_search(reference, deformed, nodes[searched], s, radius, pyramid=prepared.pyramid)
        step.run(searched, _translation_warps(nodes[searched], d_int), True, warps, cc, iterations, status)
        ok = _judge(status, cc, min_cc, live)
        # the others start where their converged lattice neighbours predict them to first order (sub-voxel,
        # with the neighbours' gradient: 1.2-2.2 times fewer iterations than from their rounded median
        # displacement on the cases of benchmarks/dvc_vs_spam.py); off the lattice, from that median
        rest = np.setdiff1d(fresh, searched)
        start = _first_order_start(nodes, warps, ok, neighbours, rest, shape_function)
        has = np.isfinite(start[:, 0, 0])
        step.run(rest[has], start[has], False, warps, cc, iterations, status)
        rest = rest[~has]
        guess = _neighbour_guess(nodes, warps[:, :, 3] - nodes, ok, rest)
        has = ~np.isnan(guess[:, 0])
        step.run(rest[has], _translation_warps(nodes[rest[has]], np.round(guess[has])), True,
                 warps, cc, iterations, status)
        ok = _judge(status, cc, min_cc, live)
        _report(progress, (2 * k + 1) / n_steps)
        # retry failures by a local search around their converged neighbours' median displacement,
        # or a full search where no neighbour converged
        retry = np.flatnonzero(live & ~ok & (status != Status.FLAT))
        guess = _neighbour_guess(nodes, warps[:, :, 3] - nodes, ok, retry)
        has = ~np.isnan(guess[:, 0])
        near, g_near = retry[has], np.round(guess[has]).astype(np.int64)
        # where the neighbours put the match out of the volume (a large motion at a face), no shift the
        # local search may try keeps the subvolume inside: the node is OUTSIDE at that guess, as a search
        # and Gauss-Newton would find, without running them. Among nulls it is correlated like the others
        fits = _search_fits(nodes[near] + g_near - s // 2, s, _RESCUE_RADIUS_VOXELS, deformed.shape) | step.null_outside
        gone = near[~fits]
        cc[gone], iterations[gone], status[gone] = 0.0, 0, Status.OUTSIDE
        for sel, r, g in ((near[fits], _RESCUE_RADIUS_VOXELS, g_near[fits]), (retry[~has], radius, None)):
            if len(sel):
                d_int, _ = integer_search(reference, deformed, nodes[sel], s, r, g, pyramid=prepared.pyramid)
                step.run(sel, _translation_warps(nodes[sel], d_int), True, warps, cc, iterations, status)
        ok = _judge(status, cc, min_cc, live)
        ok = _reject_outliers(step, prepared.pyramid, neighbours, warps, cc, iterations, status, ok,
                              min_cc, live)
        _report(progress, (2 * k + 2) / n_steps)

    cc[~live] = 0.0
    return _result(nodes, warps, cc, ok, iterations, status, subvolume_voxels)


def refine_nodes(reference, deformed, nodes, displacement_voxels, *, subvolume_voxels, shape_function="affine",
                 min_cc=0.5, max_iterations=50, tolerance_voxels=TOLERANCE_VOXELS, window="gaussian",
                 smoothing_sigma_voxels=0.0, arch="cpu"):
    """Gauss–Newton refinement only, each node started from a given displacement (no search, no neighbour test).

    :func:`correlate` finds its own starting points; this starts where it is
    told. Started from the true displacement of a synthetic experiment it
    measures the error floor of subvolume fitting on the images: what no
    search, however good, could improve on with this subvolume and shape
    function. It also takes a starting field from another DVC code or from
    an earlier load step.

    Parameters
    ----------
    reference, deformed : numpy.ndarray
        3D volumes (z, y, x) of the same shape.
    nodes : (N, 3) int array
        Node positions (z, y, x) in the reference, voxels.
    displacement_voxels : (N, 3) float array
        Starting displacement of each node (translation of an undeformed
        subvolume), voxels; a node with a non-finite start is skipped
        (status MASKED).
    subvolume_voxels, shape_function, min_cc, max_iterations, tolerance_voxels, window, smoothing_sigma_voxels, arch
        As for :func:`correlate`.

    Returns
    -------
    DVCResult
        Statuses CONVERGED, MAX_ITERATIONS, OUTSIDE, FLAT, LOW_CC or MASKED.
    """
    _check_shape_function(shape_function)
    reference, deformed = gaussian_smoothing(_volume_pair(reference, deformed), smoothing_sigma_voxels)
    nodes = _node_array(nodes)
    start = np.asarray(displacement_voxels, dtype=np.float64)
    if start.shape != nodes.shape:
        raise ValueError(f"displacement_voxels: expected shape {nodes.shape} like nodes, got {start.shape}")
    n_nodes = len(nodes)
    warps = np.zeros((n_nodes, 3, 4))
    warps[:, :, :3] = np.eye(3)
    warps[:, :, 3] = nodes
    cc = np.zeros(n_nodes)
    iterations = np.zeros(n_nodes, dtype=np.int64)
    status = np.full(n_nodes, Status.MASKED, dtype=np.int64)
    live = np.all(np.isfinite(start), axis=1)
    idx = np.flatnonzero(live)
    step = _Pass(device_array(reference, arch), deformed, SplineVolume(deformed, arch=arch), nodes,
                 int(subvolume_voxels), max_iterations, tolerance_voxels, shape_function, arch, min_cc, window, False)
    step.run(idx, _translation_warps(nodes[idx], start[idx]), False, warps, cc, iterations, status)
    ok = _judge(status, cc, min_cc, live)
    return _result(nodes, warps, cc, ok, iterations, status, subvolume_voxels)


def correlate_tiled(reference, deformed, *, subvolume_voxels, max_displacement_voxels, mask=None, min_cc=0.5,
                    outside="stop", arch="cpu", progress=None, prepared=None):
    """Local DVC on tiled cubes with a rigid warp each: Avizo's local mode as the paper shows it.

    The paper's CC maps (its Fig. 3e, f) show the dataset cut into cubes of
    the subvolume edge, side by side, one vector and one CC per cube. Here:
    :func:`correlate` on the nodes of :func:`node_grid` with node spacing
    equal to ``subvolume_voxels`` (adjacent, non-overlapping cubes centred
    in the volume), each cube moving rigidly (translation and rotation,
    ``shape_function="rigid"``). Search, refinement and the neighbour test
    are :func:`correlate`'s.

    Parameters
    ----------
    reference, deformed : numpy.ndarray
        3D volumes (z, y, x) of the same shape.
    subvolume_voxels : int
        Edge of the cubes and distance between their centres, voxels.
    max_displacement_voxels : float
        Largest displacement searched per axis, voxels.
    mask : numpy.ndarray of bool, optional
        See :func:`correlate`; None correlates every cube.
    min_cc : float
    outside : {"stop", "null"}
        See :func:`correlate`.
    arch : {"cpu", "gpu"}
    progress : callable, optional
    prepared : PreparedPair, optional
        See :func:`correlate`.

    Returns
    -------
    DVCResult
    """
    return correlate(reference, deformed, subvolume_voxels=subvolume_voxels, node_spacing_voxels=subvolume_voxels,
                     max_displacement_voxels=max_displacement_voxels, mask=mask, min_cc=min_cc,
                     shape_function="rigid", window="uniform", outside=outside, arch=arch, progress=progress,
                     prepared=prepared)


class _Pass:
    """IC-GN over chosen nodes with one subvolume size, in memory-bounded batches."""

    def __init__(self, reference, deformed, spline, nodes, s, max_iterations, tolerance_voxels, shape_function,
                 arch, min_cc, window, null_outside):
        self.reference, self.deformed, self.spline, self.nodes = reference, deformed, spline, nodes
        self.arch, self.shape_function = arch, shape_function
        self.s, self.max_iterations, self.tolerance = s, max_iterations, tolerance_voxels
        # never stop a node for a CC that min_cc would accept
        self.stall_cc = min(_STALL_CC, min_cc)
        self.offsets = subvolume_offsets(s)
        self.weights = subvolume_window(s, window)
        self.shape = np.array(deformed.shape)
        self.null_outside = null_outside

    def run(self, idx, warps0, integer_start, warps, cc, iterations, status):
        s = self.s
        size = _BATCH_NODES[self.arch]
        for start in range(0, len(idx), size):   # batches bound memory; each is one vectorised solve
            sel = idx[start:start + size]
            w0 = warps0[start:start + size]
            terms = cube_terms(self.reference, self.nodes[sel], s, self.arch, self.weights)
            first = None
            if integer_start:
                first = extract_cubes(self.deformed, np.round(w0[:, :, 3]).astype(np.int64) - s // 2, s,
                                      fill=0.0 if self.null_outside else None)
                first = first.reshape(len(sel), -1)
            res = refine(self.spline, terms, self.offsets, w0, shape_function=self.shape_function,
                         max_iterations=self.max_iterations, tolerance_voxels=self.tolerance, exact_first=first,
                         cube_edge=s, outside=None if self.null_outside else self._outside,
                         outside_patience=_OUTSIDE_PATIENCE, null_outside=self.null_outside,
                         stall_iterations=_STALL_ITERATIONS, stall_cc=self.stall_cc)
            warps[sel] = res.warps
            iterations[sel] = res.iterations
            # a node that left stopped on an outside warp; one that ran on is judged on its final warp.
            # Among nulls no warp is outside: its CC is against them
            outside = np.zeros(len(sel), bool) if self.null_outside else res.left | self._outside(res.warps)
            # a warp that left the volume samples the mirror padding: its CC means nothing
            cc[sel] = np.where(outside, 0.0, res.cc)
            st = np.where(res.converged, Status.CONVERGED, Status.MAX_ITERATIONS)
            st = np.where(outside, Status.OUTSIDE, st)
            status[sel] = np.where(res.textured, st, Status.FLAT)

    def _outside(self, warps):
        return box_leaves_volume(warps, *subvolume_box(self.s), self.shape)


def _reject_outliers(step, pyramid, neighbours, warps, cc, iterations, status, ok, min_cc, live):
    """Neighbour median test of the ok nodes; outliers are re-correlated, those still failing become OUTLIER.

    Returns the new ``ok``; ``warps``, ``cc``, ``iterations`` and ``status`` are updated in place.
    """
    nodes, s = step.nodes, step.s
    flag = _outliers(nodes, neighbours, warps, ok, status)
    tried = np.zeros(len(nodes), dtype=bool)
    for _ in range(_OUTLIER_ROUNDS):
        redo = np.flatnonzero(flag & ~tried)
        if len(redo) == 0:
            break
        tried[redo] = True
        # start from what the consistent neighbours expect, not from the flagged nodes' own matches
        _, expected = median_test(nodes, warps[:, :, 3] - nodes, ok & ~flag,
                                  gradient=warps[:, :, :3] - np.eye(3), neighbours=neighbours)
        has = np.all(np.isfinite(expected[redo]), axis=1)
        sel = redo[has]
        if len(sel):
            d_int, _ = integer_search(*pyramid.level(0), nodes[sel], s, _RESCUE_RADIUS_VOXELS,
                                      np.round(expected[sel]).astype(np.int64), pyramid=pyramid)
            step.run(sel, _translation_warps(nodes[sel], d_int), True, warps, cc, iterations, status)
        ok = _judge(status, cc, min_cc, live)
        flag = _outliers(nodes, neighbours, warps, ok, status)
    status[flag] = Status.OUTLIER
    return ok & ~flag


def _outliers(nodes, neighbours, warps, ok, status):
    """Ok nodes that fail the median test, or that no neighbour confirms while at least three failed.

    A node with too few ok lattice neighbours for the median test, and a node of a small group of
    adjacent ok nodes (which may share one false peak and confirm each other), is also judged against
    its nearest ok nodes at any distance, outside its group
    (:func:`analysis.dvc.consistency.scattered_median_test`); it fails if either test fails it.
    """
    displacement, gradient = warps[:, :, 3] - nodes, warps[:, :, :3] - np.eye(3)
    residual, _ = median_test(nodes, displacement, ok, gradient=gradient, neighbours=neighbours)
    group, small = small_groups(neighbours, ok)
    judged = ok & (np.isnan(residual) | small)
    if judged.any():
        residual = np.fmax(residual, scattered_median_test(nodes, displacement, ok, gradient=gradient,
                                                           judged=judged, groups=group))
    exists = neighbours >= 0
    j = np.maximum(neighbours, 0)
    # a subvolume shares half its voxels with its neighbours': a true match alone among neighbours
    # that were correlated and failed is unlikely, a false peak is not. FLAT and MASKED neighbours
    # were never correlated, and OUTSIDE says where a neighbour's match went, not that it was wrong
    # (at a face of the volume a true match beside them is the rule), so none counts against it
    failed = exists & ~ok[j] & ~np.isin(status[j], (Status.FLAT, Status.MASKED, Status.OUTSIDE))
    alone = ok & ~np.any(exists & ok[j], axis=1) & (failed.sum(axis=1) >= _ALONE_AMONG_FAILED)
    return (residual > THRESHOLD) | alone   # NaN (untested) compares False


def _sparse_subset(nodes):
    """Indices of about one node per block of _SEARCH_BLOCK_SPACINGS^3 node spacings (all if few)."""
    if len(nodes) < 64:
        return np.arange(len(nodes))
    spacing = np.median(cKDTree(nodes).query(nodes, k=2)[0][:, 1])
    cells = np.floor(nodes / (_SEARCH_BLOCK_SPACINGS * spacing)).astype(np.int64)
    _, first = np.unique(cells, axis=0, return_index=True)
    return np.sort(first)


def _search_fits(corners, s, r, shape):
    """Whether some shift within +-r of each subvolume corner (edge s) keeps the subvolume inside ``shape``."""
    return np.all((corners + r >= 0) & (corners - r + s <= np.asarray(shape)), axis=1)


def _translation_warps(nodes, displacement):
    w = np.zeros((len(nodes), 3, 4))
    w[:, :, :3] = np.eye(3)
    w[:, :, 3] = nodes + displacement
    return w


def _judge(status, cc, min_cc, live):
    status[(status == Status.CONVERGED) & (cc < min_cc)] = Status.LOW_CC
    return live & (status == Status.CONVERGED)


def _first_order_start(nodes, warps, ok, neighbours, which, shape_function="affine"):
    """(m, 3, 4) start warps of nodes ``which`` from their ok lattice neighbours' predictions.

    NaN where no neighbour is ok or where their predictions spread by more
    than ``_START_SPREAD_VOXELS``. For a rigid shape function the median
    of the neighbours' rotations is projected back onto a rotation.
    """
    displacement, gradient, spread = neighbour_prediction(nodes, warps[:, :, 3] - nodes,
                                                          warps[:, :, :3] - np.eye(3), ok, neighbours=neighbours)
    out = np.full((len(which), 3, 4), np.nan)
    agree = spread[which] <= _START_SPREAD_VOXELS   # NaN (no neighbour) compares False
    linear = gradient[which[agree]] + np.eye(3)
    out[agree, :, :3] = nearest_rotation(linear) if shape_function == "rigid" else linear
    out[agree, :, 3] = nodes[which[agree]] + displacement[which[agree]]
    return out


def _neighbour_guess(nodes, displacement, ok, which, k=26):
    """Median displacement of the ok nearest neighbours of nodes ``which`` (NaN if none)."""
    out = np.full((len(which), 3), np.nan)
    if len(which) == 0 or not ok.any():
        return out
    good = np.flatnonzero(ok)
    tree = cKDTree(nodes[good])
    k = min(k, len(good))
    dist, j = tree.query(nodes[which], k=k)
    dist, j = dist.reshape(len(which), k), j.reshape(len(which), k)
    spacing = np.median(cKDTree(nodes).query(nodes, k=2)[0][:, 1])
    near = dist <= 2.5 * spacing
    d = np.where(near[:, :, None], displacement[good][j], np.nan)
    has = near.any(axis=1)
    out[has] = np.nanmedian(d[has], axis=1)
    return out


def _result(nodes, warps, cc, ok, iterations, status, subvolume_voxels):
    """The :class:`DVCResult` of final warps: displacement and gradient NaN where not ``ok``."""
    displacement = warps[:, :, 3] - nodes
    gradient = warps[:, :, :3] - np.eye(3)
    displacement[~ok] = np.nan
    gradient[~ok] = np.nan
    return DVCResult(nodes=nodes, displacement=displacement, cc=cc, ok=ok, iterations=iterations,
                     status=status, displacement_gradient=gradient, subvolume_voxels=int(subvolume_voxels))


class PreparedPair:
    """A reference and a deformed volume prepared once for any number of :func:`correlate` calls.

    Each call on the same two volumes (each edge of a subvolume study)
    would otherwise convert them, smooth them (if asked), prefilter the
    deformed one for cubic B-spline sampling and bin both for the coarse
    search again (a fifth of the paper run's DVC time). The volumes are
    checked and smoothed at once; the rest is computed when first needed.

    Parameters
    ----------
    reference, deformed : numpy.ndarray
        3D volumes (z, y, x) of the same shape, any real dtype.
    arch : {"cpu", "gpu"}
        Taichi backend of the interpolation kernel.
    smoothing_sigma_voxels : float
        See :func:`correlate`; ``reference`` and ``deformed`` (attributes)
        are the smoothed volumes.
    """

    def __init__(self, reference, deformed, arch="cpu", smoothing_sigma_voxels=0.0):
        sigma = check_sigma(smoothing_sigma_voxels)
        self._given = (reference, deformed, arch, sigma)
        self.reference, self.deformed = gaussian_smoothing(_volume_pair(reference, deformed), sigma)
        self.pyramid = SearchPyramid(self.reference, self.deformed)

    @cached_property
    def spline(self):
        """The deformed volume's :class:`analysis.dvc.interpolate.SplineVolume`."""
        return SplineVolume(self.deformed, arch=self._given[2])

    @cached_property
    def reference_dev(self):
        """The reference on the backend (:func:`analysis.dvc.interpolate.device_array`)."""
        return device_array(self.reference, self._given[2])

    def holds(self, reference, deformed, arch, smoothing_sigma_voxels=0.0):
        """Whether it was prepared from these very arrays on ``arch`` with this smoothing."""
        return self._given[0] is reference and self._given[1] is deformed and self._given[2] == arch \
            and self._given[3] == check_sigma(smoothing_sigma_voxels)


def _check_shape_function(shape_function):
    if shape_function not in ("affine", "rigid"):
        raise ValueError(f"shape_function: expected 'affine' or 'rigid', got {shape_function!r}")


def _volume_pair(reference, deformed):
    reference = _volume(reference, "reference")
    deformed = _volume(deformed, "deformed")
    if deformed.shape != reference.shape:
        raise ValueError(f"deformed: expected shape {reference.shape} like reference, got {deformed.shape}")
    return reference, deformed


def _node_array(nodes):
    nodes = np.asarray(nodes)
    if nodes.ndim != 2 or nodes.shape[1] != 3 or not np.all(nodes == np.round(nodes)):
        raise ValueError("nodes: expected an (N, 3) array of integer positions (z, y, x)")
    return nodes.astype(np.int64)


def _volume(v, name):
    v = np.asarray(v)
    if v.ndim != 3 or not np.issubdtype(v.dtype, np.number) or np.iscomplexobj(v):
        raise ValueError(f"{name}: expected a real 3D array (z, y, x), got shape {v.shape} dtype {v.dtype}")
    return v.astype(np.float32, copy=False)


def _report(progress, fraction):
    if progress is not None:
        progress(float(fraction))
