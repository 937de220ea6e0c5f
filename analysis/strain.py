"""Strain from a DVC node field: local least-squares displacement gradients and invariants.

Tensors are indexed (z, y, x) like the arrays; ``H[i, j] = du_i / dx_j``.
Compression is negative.
"""

import numpy as np
from scipy.spatial import cKDTree


def displacement_gradient(nodes, displacement, ok=None, *, radius_voxels=None, max_neighbours=27,
                          min_neighbours=7):
    """Displacement gradient at each node by a local linear least-squares fit.

    Around each node, ``u(x) = u0 + H (x - x_node)`` is fitted to the
    displacements of the ``ok`` nodes within ``radius_voxels`` (the node
    itself included when ok).

    Parameters
    ----------
    nodes : numpy.ndarray
        (N, 3) node positions (z, y, x), voxels (or any length unit; H is
        dimensionless if ``displacement`` has the same unit).
    displacement : numpy.ndarray
        (N, 3) displacements (z, y, x), same unit as ``nodes``.
    ok : numpy.ndarray of bool, optional
        (N,) nodes that may be used; default all finite displacements.
    radius_voxels : float, optional
        Neighbourhood radius; default just over sqrt(3) x the median
        nearest-node distance (the 26 neighbours of a regular grid plus the node).
    max_neighbours : int
        At most this many nearest nodes are considered.
    min_neighbours : int
        Fewer usable neighbours (or a degenerate, e.g. coplanar, set) gives NaN.

    Returns
    -------
    numpy.ndarray
        (N, 3, 3) H, NaN where it cannot be fitted.
    """
    nodes = np.asarray(nodes, dtype=np.float64)
    u = np.asarray(displacement, dtype=np.float64)
    if nodes.ndim != 2 or nodes.shape[1] != 3 or len(nodes) < 2:
        raise ValueError(f"nodes: expected an (N, 3) array with N >= 2, got shape {nodes.shape}")
    if u.shape != nodes.shape:
        raise ValueError(f"displacement: expected shape {nodes.shape} like nodes, got {u.shape}")
    finite = np.all(np.isfinite(u), axis=1)
    if ok is not None and np.shape(ok) != (len(nodes),):
        raise ValueError(f"ok: expected shape ({len(nodes)},), got {np.shape(ok)}")
    ok = finite if ok is None else np.asarray(ok, dtype=bool) & finite
    if min_neighbours < 4:
        raise ValueError(f"min_neighbours: expected >= 4, got {min_neighbours!r}")
    tree = cKDTree(nodes)
    if radius_voxels is None:
        # reaches the 26 neighbours of a regular grid (the cube corners at sqrt(3) spacings)
        radius_voxels = 1.01 * np.sqrt(3) * np.median(tree.query(nodes, k=2)[0][:, 1])
    k = min(int(max_neighbours), len(nodes))
    dist, j = tree.query(nodes, k=k, distance_upper_bound=radius_voxels)
    dist, j = dist.reshape(len(nodes), k), j.reshape(len(nodes), k)
    found = j < len(nodes)
    jj = np.where(found, j, 0)
    w = (found & ok[jj]).astype(np.float64)
    dx = (nodes[jj] - nodes[:, None, :]) * w[:, :, None]
    a = np.concatenate([w[:, :, None], dx], axis=2)                                  # (N, k, 4)
    # a left-out neighbour weighs 0; its displacement (NaN at a failed DVC node) must not reach the sum
    b = np.where(w[:, :, None] > 0, u[jj], 0.0)                                       # (N, k, 3)
    ata = a.transpose(0, 2, 1) @ a
    atb = a.transpose(0, 2, 1) @ b
    # scale-free conditioning test on the spread of the neighbours about their
    # own mean (coplanar or collinear neighbourhoods give NaN), which is what
    # makes the 4x4 system singular, wherever the node itself lies
    count = np.maximum(ata[:, 0, 0], 1.0)
    spread = ata[:, 1:, 1:] - ata[:, 1:, :1] @ ata[:, :1, 1:] / count[:, None, None]
    scale = np.maximum(np.einsum("nii->n", spread), 1e-300)
    det = np.linalg.det(spread / scale[:, None, None])
    good = (w.sum(axis=1) >= min_neighbours) & (det > 1e-6)
    sol = np.full((len(nodes), 4, 3), np.nan)
    if good.any():
        sol[good] = np.linalg.solve(ata[good], atb[good])
    return sol[:, 1:, :].transpose(0, 2, 1)


def small_strain(gradient):
    """Small-strain tensor ``(H + H^T) / 2``, (..., 3, 3)."""
    h = _tensor(gradient, "gradient")
    return 0.5 * (h + np.swapaxes(h, -1, -2))


def green_lagrange(gradient):
    """Green–Lagrange strain ``(H + H^T + H^T H) / 2``, (..., 3, 3)."""
    h = _tensor(gradient, "gradient")
    ht = np.swapaxes(h, -1, -2)
    return 0.5 * (h + ht + ht @ h)


def volumetric_strain(strain):
    """Trace of a strain tensor, (...) (negative in compression)."""
    return np.trace(_tensor(strain, "strain"), axis1=-2, axis2=-1)


def equivalent_strain(strain):
    """Von Mises equivalent strain ``sqrt(2/3 e_dev : e_dev)``, (...)."""
    e = _tensor(strain, "strain")
    dev = e - np.trace(e, axis1=-2, axis2=-1)[..., None, None] / 3.0 * np.eye(3)
    return np.sqrt(2.0 / 3.0 * np.sum(dev * dev, axis=(-2, -1)))


def principal_strains(strain):
    """Principal strains, (..., 3) sorted from most tensile to most compressive.

    NaN tensors give NaN.
    """
    e = _tensor(strain, "strain")
    finite = np.all(np.isfinite(e), axis=(-2, -1))
    out = np.full(e.shape[:-1], np.nan)
    sym = 0.5 * (e[finite] + np.swapaxes(e[finite], -1, -2))
    out[finite] = np.linalg.eigvalsh(sym)[..., ::-1]
    return out


def cap(values, lower=-0.10, upper=None):
    """Clip strain values for display, as the paper did (lower cap -0.10); NaN stays NaN."""
    if lower is not None and upper is not None and lower > upper:
        raise ValueError(f"lower: expected <= upper ({upper}), got {lower}")
    return np.clip(np.asarray(values, dtype=np.float64), lower, upper)


def _tensor(t, name):
    t = np.asarray(t, dtype=np.float64)
    if t.shape[-2:] != (3, 3):
        raise ValueError(f"{name}: expected (..., 3, 3) tensors, got shape {t.shape}")
    return t
