"""Scores: how far each analysis output is from the truth.

Every function here compares arrays that the pipeline has already put in the
same frame (reference-configuration voxels of the analysed field of view) and
returns plain dicts of floats, ready for ``validation/scores.json``. Errors are
vectors ``measured - true``; their norm is the error of a node.
"""

import numpy as np


def vector_error_stats(measured, truth, voxel_size_um, valid=None):
    """Statistics of vector errors ``|measured - truth|``.

    Parameters
    ----------
    measured, truth : (N, 3) ndarray
        Displacements in voxels (z, y, x). NaN in ``truth`` marks nodes
        without a truth (no solid); they are left out.
    voxel_size_um : float
        Converts voxels to µm.
    valid : (N,) bool ndarray, optional
        Nodes to score (e.g. the DVC's ``ok``); default all.

    Returns
    -------
    dict
        ``nodes`` (scored), ``rms_error_voxels``, ``median_error_voxels``,
        ``p95_error_voxels``, ``max_error_voxels``, ``bias_voxels`` (mean
        error vector z, y, x) and the same in µm. NaN when no node is scored.
    """
    measured = np.asarray(measured, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if measured.shape != truth.shape or measured.ndim != 2 or measured.shape[1] != 3:
        raise ValueError(f"measured, truth: expected equal (N, 3) shapes, got {measured.shape} and {truth.shape}")
    keep = np.all(np.isfinite(truth), axis=1) & np.all(np.isfinite(measured), axis=1)
    if valid is not None:
        keep &= np.asarray(valid, dtype=bool)
    diff = measured[keep] - truth[keep]
    norm = np.linalg.norm(diff, axis=1)
    if norm.size:
        stats = {
            "rms_error_voxels": float(np.sqrt(np.mean(norm ** 2))),
            "median_error_voxels": float(np.median(norm)),
            "p95_error_voxels": float(np.percentile(norm, 95)),
            "max_error_voxels": float(norm.max()),
            "bias_voxels": [float(v) for v in diff.mean(axis=0)],
        }
    else:
        stats = {k: float("nan") for k in ("rms_error_voxels", "median_error_voxels",
                                             "p95_error_voxels", "max_error_voxels")}
        stats["bias_voxels"] = [float("nan")] * 3
    stats["nodes"] = int(keep.sum())
    for key in ("rms_error", "median_error", "p95_error", "max_error"):
        stats[f"{key}_um"] = stats[f"{key}_voxels"] * voxel_size_um
    stats["bias_um"] = [b * voxel_size_um for b in stats["bias_voxels"]]
    return stats


def error_by_cc(errors_voxels, cc, edges=(-1.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)):
    """RMS error of the nodes in each correlation-coefficient bin.

    Answers: does a low CC really mean a wrong vector?

    Parameters
    ----------
    errors_voxels : (N,) ndarray
        Error norm per node (NaN = no truth, left out).
    cc : (N,) ndarray
        Zero-normalised correlation coefficient per node.
    edges : sequence of float
        Bin edges, ascending; the last bin includes its upper edge.

    Returns
    -------
    list of dict
        ``{cc_low, cc_high, nodes, rms_error_voxels}`` per bin.
    """
    errors_voxels = np.asarray(errors_voxels, dtype=np.float64)
    cc = np.asarray(cc, dtype=np.float64)
    finite = np.isfinite(errors_voxels) & np.isfinite(cc)
    index = np.clip(np.searchsorted(edges, cc, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for b in range(len(edges) - 1):
        sel = finite & (index == b)
        rms = float(np.sqrt(np.mean(errors_voxels[sel] ** 2))) if sel.any() else float("nan")
        rows.append({"cc_low": float(edges[b]), "cc_high": float(edges[b + 1]),
                     "nodes": int(sel.sum()), "rms_error_voxels": rms})
    return rows


def error_by_region(errors_voxels, regions):
    """RMS error per named region.

    Parameters
    ----------
    errors_voxels : (N,) ndarray
        Error norm per node (NaN = no truth or not ok, left out).
    regions : dict of str -> (N,) bool ndarray
        E.g. ``{"near_head": ..., "near_edge": ..., "bulk": ...}``.

    Returns
    -------
    dict
        Region -> ``{nodes, rms_error_voxels}``.
    """
    errors_voxels = np.asarray(errors_voxels, dtype=np.float64)
    out = {}
    for name, sel in regions.items():
        sel = np.asarray(sel, dtype=bool) & np.isfinite(errors_voxels)
        rms = float(np.sqrt(np.mean(errors_voxels[sel] ** 2))) if sel.any() else float("nan")
        out[name] = {"nodes": int(sel.sum()), "rms_error_voxels": rms}
    return out


def tensor_rms_error(measured, truth, valid=None):
    """RMS of the Frobenius norm of ``measured - truth`` over valid nodes.

    Parameters
    ----------
    measured, truth : (N, 3, 3) ndarray
        Strain tensors (dimensionless). NaN entries leave a node out.
    valid : (N,) bool ndarray, optional

    Returns
    -------
    dict
        ``rms_error`` and ``nodes``.
    """
    measured = np.asarray(measured, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if measured.shape != truth.shape or measured.shape[1:] != (3, 3):
        raise ValueError(f"measured, truth: expected equal (N, 3, 3) shapes, got {measured.shape} and {truth.shape}")
    keep = np.all(np.isfinite(measured), axis=(1, 2)) & np.all(np.isfinite(truth), axis=(1, 2))
    if valid is not None:
        keep &= np.asarray(valid, dtype=bool)
    norm = np.linalg.norm((measured - truth)[keep], axis=(1, 2))
    rms = float(np.sqrt(np.mean(norm ** 2))) if norm.size else float("nan")
    return {"rms_error": rms, "nodes": int(keep.sum())}


def relative_error(measured, truth):
    """``(measured - truth) / truth``, NaN when the truth is zero."""
    return float((measured - truth) / truth) if truth else float("nan")
