"""Verlet neighbour lists for polydisperse spheres, O(N) at any size ratio.

Particles are split into size classes (radii within a factor of two); each
class gets its own k-d tree and every pair of classes is searched with the
cut-off of that pair, so a small particle never scans the large volume a big
one needs. The result is a half list (each pair once, sorted by (i, j)) and
each particle's rows into it: a pair's force is computed once and gathered
by both particles in a fixed order, which keeps runs bit-identical.
"""

import numpy as np
from scipy.spatial import cKDTree


def candidate_pairs(positions, radii, skin):
    """All pairs with a gap below ``skin``, each once with ``i < j``.

    Parameters
    ----------
    positions : (N, 3) float array
        Sphere centres (any length unit).
    radii : (N,) float array
        Sphere radii (same unit).
    skin : float
        Extra distance beyond contact (same unit).

    Returns
    -------
    (M, 2) int64 array
        Pairs sorted lexicographically.
    """
    n = len(radii)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    size_class = np.floor(np.log2(radii.max() / radii)).astype(np.int64)
    classes = np.unique(size_class)
    members = [np.flatnonzero(size_class == c) for c in classes]
    trees = [cKDTree(positions[m]) for m in members]
    rmax = [radii[m].max() for m in members]
    found = []
    for a in range(len(classes)):
        for b in range(a, len(classes)):
            cut = rmax[a] + rmax[b] + skin
            if a == b:
                p = trees[a].query_pairs(cut, output_type="ndarray")
                i, j = members[a][p[:, 0]], members[a][p[:, 1]]
            else:
                p = trees[a].sparse_distance_matrix(trees[b], cut, output_type="ndarray")
                i, j = members[a][p["i"]], members[b][p["j"]]
            found.append(np.stack([i, j], axis=1).astype(np.int64))
    pairs = np.concatenate(found)
    pairs.sort(axis=1)
    gap = (np.linalg.norm(positions[pairs[:, 0]] - positions[pairs[:, 1]], axis=1)
           - radii[pairs[:, 0]] - radii[pairs[:, 1]])
    pairs = pairs[gap < skin]
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return pairs[order]


def spatial_order(positions, cell):
    """An order of the particles by cubic cells: z-slabs, rows of y, then x.

    Particles close in space end up close in memory, so a step touches
    fewer cache lines and each thread's share of particles is a compact
    slab. Ties in a cell are broken by position, so the order depends on
    the particles only, not on the order they were given in.

    Parameters
    ----------
    positions : (N, 3) float array
        Sphere centres, z-y-x.
    cell : float
        Cell edge (same unit); about a particle radius.

    Returns
    -------
    (N,) int64 array
        Indices into ``positions``, in cell order.
    """
    g = np.floor((positions - positions.min(axis=0)) / cell).astype(np.int64)
    return np.lexsort((positions[:, 2], positions[:, 1], positions[:, 0], g[:, 2], g[:, 1], g[:, 0]))


def pair_rows(pairs, n):
    """Per-particle rows of a pair list, in compressed-row form.

    Parameters
    ----------
    pairs : (M, 2) int array
        Pairs ``(i, j)``, ``i < j``.
    n : int
        Number of particles.

    Returns
    -------
    start : (n+1,) int32 array
        Particle ``i`` owns entries ``start[i]:start[i+1]``.
    row : (2M,) int32 array
        Pair index ``p`` where the particle is the first of pair ``p``,
        ``-1 - p`` where it is the second; a particle's entries are in
        ascending order of its partner.
    """
    m = len(pairs)
    owner = np.concatenate([pairs[:, 0], pairs[:, 1]]).astype(np.int64)
    partner = np.concatenate([pairs[:, 1], pairs[:, 0]]).astype(np.int64)
    code = np.concatenate([np.arange(m), -1 - np.arange(m)])
    order = np.argsort(owner * n + partner, kind="stable")
    start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=n), out=start[1:])
    return start.astype(np.int32), code[order].astype(np.int32)


def carry_over(old_key, old_values, new_key):
    """Values of entries kept from an old list, zeros for new entries.

    Parameters
    ----------
    old_key, new_key : sorted int64 arrays
        Pair keys ``i * n + j``.
    old_values : (len(old_key), ...) array
        Per-entry values (e.g. tangential history).

    Returns
    -------
    array
        ``(len(new_key), ...)`` values.
    """
    out = np.zeros((len(new_key),) + old_values.shape[1:], dtype=old_values.dtype)
    if len(old_key) == 0 or len(new_key) == 0:
        return out
    at = np.searchsorted(old_key, new_key).clip(0, len(old_key) - 1)
    hit = old_key[at] == new_key
    out[hit] = old_values[at[hit]]
    return out
