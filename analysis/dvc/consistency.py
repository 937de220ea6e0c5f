"""Neighbour consistency of a DVC node field: the normalised median test.

Westerweel & Scarano (2005), "Universal outlier detection for PIV data",
Exp. Fluids 39:1096. For a node with displacement ``u`` and neighbour
values ``u_i``, with ``u_m`` the median of the ``u_i`` and ``r_m`` the
median of ``|u_i - u_m|``, the normalised residual is

    r = |u - u_m| / (r_m + eps)

per displacement component. Dividing by ``r_m`` scales the test to the
local spread of the field (a strained or noisy region tolerates more);
``eps`` is the noise floor that keeps a uniform field (``r_m`` = 0) from
flagging noise-level differences. Westerweel & Scarano found the
distribution of ``r`` for valid vectors nearly independent of the flow and
of the processing, and recommend ``eps`` = 0.1 pixel, threshold 2: valid
vectors rarely exceed it, and wrong matches, which are off by a fraction
of the subvolume, exceed it by far. The same values are used here in
voxels: 0.1 voxel is about the random error of subset DVC on tomographic
texture, far above the noise of synthetic data (~0.01 voxel) and far below
a wrong match (several voxels).

Two choices made here:

- Neighbours are the 26 nodes around a node on its lattice, ``ok`` ones
  only, and each predicts the node's displacement to first order,
  ``u_i + G_i (x - x_i)``, from its own subvolume's displacement gradient
  ``G_i`` (the IC-GN affine shape function). With plain neighbour values,
  a linear field is biased wherever the neighbourhood is one-sided: at a
  corner of the grid of a 3 % compression with 8-voxel node spacing the
  plain median misses the node by 0.24 voxel while ``r_m`` is 0, so
  ``r`` = 2.4 flags a perfect node. With first-order predictions a linear
  field gives r = 0 everywhere. The price is curvature: a first-order
  prediction misses by about ``|u''| h^2 / 2`` (node spacing ``h``), so a
  field whose second-order change over one spacing approaches
  ``THRESHOLD * eps`` = 0.2 voxel, in a neighbourhood where the
  predictions agree, gets flagged; where neighbours disagree (a rough,
  granular field) the median residual grows and the test relaxes.
  Inside the node block the neighbours on both sides of each direction
  bias the median only where most of them lie across the curvature, but
  at a face of the block (next to nodes that left the volume or failed)
  the one-sided ones can be the majority. With gradients the node is
  therefore also judged against the cubic Hermite midpoints of its pairs
  of opposite ok neighbours, ``(u_a + u_b) / 2 + (G_a - G_b) d / 4`` for
  neighbours at ``x -+ d``, exact for a field cubic along the pair, when it
  has at least ``MIN_PAIRS`` pairs; it is an outlier only if both sets of
  predictions reject it. On a 256^3 test volume with 63^3 subvolumes every
  30 voxels, a 5 % compression, a 2-voxel sine of wavelength 240 voxels
  and 5 % noise (4 Dec 2026), the first-order test alone flagged 120 of
  the 216 nodes that converged (CC 0.99), all on the faces, edges and
  corners of their block; with the pairs 56, the edges and corners, which
  have fewer than three pairs.
- The test is per component, as in Westerweel & Scarano, and a node fails
  when any component does (the residual reported is the largest of the
  three): a wrong match usually moves mainly along one axis, and a vector
  norm would dilute it with the two good components.

A node with too few ok lattice neighbours for the test, or one of a small group
of adjacent ok nodes (:func:`small_groups`), which the test would judge by its
own members, is judged against its nearest ok nodes outside its group, at any
distance (:func:`scattered_median_test`).
"""

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

THRESHOLD = 2.0          #: normalised residual above which a node is an outlier (Westerweel & Scarano 2005)
NOISE_VOXELS = 0.1       #: eps, the noise floor of the residual, voxels
# fewest ok neighbours for a test. With two, one wrong neighbour moves the median halfway to it but widens the
# spread as much: a right node with a right neighbour d away and a wrong one D away gets r < 1 + 2d/D, so it
# is flagged only if it disagrees with its right neighbour by about half the wrong one's error. Two
# neighbours that agree judge a node between them: on the quick scenario (4 Dec 2026) a false match 35
# voxels off with CC 0.83 and two ok neighbours (r = 7.7) stayed ok with three.
MIN_NEIGHBOURS = 2
MIN_PAIRS = 3            #: fewest pairs of opposite ok neighbours for their midpoints to judge a node
SCATTERED_NEIGHBOURS = 8  #: nearest ok nodes that judge a node too isolated for the lattice test
# largest group of adjacent ok nodes judged by the nearest ok nodes outside it: on the paper scans' best chain
# (5 Dec 2026) the false matches left after pairs were judged came as groups of three adjacent nodes
SMALL_GROUP_NODES = 3

_OFFSETS = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)
                     if (a, b, c) != (0, 0, 0)], dtype=np.int64)


def lattice_neighbours(nodes):
    """Indices of each node's 26 neighbours on the node lattice.

    The lattice step on each axis is the greatest common divisor of the
    gaps between the node coordinates on that axis (the node spacing of a
    :func:`~analysis.dvc.grid.node_grid`, also after some nodes were
    dropped).

    Parameters
    ----------
    nodes : numpy.ndarray
        (N, 3) integer node positions (z, y, x), voxels.

    Returns
    -------
    numpy.ndarray
        (N, 26) int64 indices into ``nodes``, -1 where that neighbour does
        not exist. Column order is fixed (offsets in z, y, x lexicographic).
        A position listed more than once (``correlate`` takes the nodes it
        is given) is one lattice site: its copies are no step apart, so not
        each other's neighbours, and every entry that names the site names
        its first listing.
    """
    nodes = np.asarray(nodes)
    if nodes.ndim != 2 or nodes.shape[1] != 3 or not np.all(nodes == np.round(nodes)):
        raise ValueError("nodes: expected an (N, 3) array of integer positions (z, y, x)")
    nodes = nodes.astype(np.int64)
    out = np.full((len(nodes), len(_OFFSETS)), -1, dtype=np.int64)
    if len(nodes) < 2:
        return out
    step = np.ones(3, dtype=np.int64)
    for a in range(3):
        gaps = np.diff(np.unique(nodes[:, a]))
        if len(gaps):
            step[a] = np.gcd.reduce(gaps)
    # lattice indices with a one-cell border, so that a neighbour's key never wraps into another row
    idx = (nodes - nodes.min(axis=0)) // step + 1
    extent = idx.max(axis=0) + 2
    key = (idx[:, 0] * extent[1] + idx[:, 1]) * extent[2] + idx[:, 2]
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    for m, o in enumerate(_OFFSETS):   # 26 offsets, each vectorised over all nodes
        k = key + (o[0] * extent[1] + o[1]) * extent[2] + o[2]
        pos = np.minimum(np.searchsorted(sorted_key, k), len(key) - 1)
        out[:, m] = np.where(sorted_key[pos] == k, order[pos], -1)
    return out


def median_test(nodes, displacement, ok, *, gradient=None, neighbours=None, eps_voxels=NOISE_VOXELS,
                min_neighbours=MIN_NEIGHBOURS):
    """Normalised median residual of each node against its lattice neighbours.

    See the module docstring for the test and the choice of its constants.

    Parameters
    ----------
    nodes : numpy.ndarray
        (N, 3) integer node positions (z, y, x), voxels.
    displacement : numpy.ndarray
        (N, 3) displacement (z, y, x), voxels; only ``ok`` rows are read.
    ok : numpy.ndarray
        (N,) bool, nodes whose displacement is trusted: they are tested and
        they are the only neighbours used.
    gradient : numpy.ndarray, optional
        (N, 3, 3) displacement gradient du_i/dx_j (z, y, x), dimensionless;
        when given, neighbours predict the node to first order. Only ``ok``
        rows are read.
    neighbours : numpy.ndarray, optional
        (N, 26) output of :func:`lattice_neighbours` for ``nodes`` (saves
        recomputing it).
    eps_voxels : float
        Noise floor added to the median residual, voxels.
    min_neighbours : int
        Nodes with fewer ok neighbours are not tested (residual NaN).

    Returns
    -------
    residual : numpy.ndarray
        (N,) largest normalised residual over the three components,
        dimensionless (with gradients, the smaller of those against the
        first-order predictions and against the pairs' midpoints); NaN
        where the node is not ok or has fewer than ``min_neighbours`` ok
        neighbours. Outliers: ``residual > THRESHOLD``.
    expected : numpy.ndarray
        (N, 3) median of the neighbours' predictions (z, y, x), voxels, for
        every node with at least one ok neighbour (NaN elsewhere): of the
        pairs' midpoints where they spread no more than the first-order
        predictions; a start for re-correlating an outlier.

    Examples
    --------
    >>> nodes = np.array([(z, y, x) for z in (0, 8, 16) for y in (0, 8, 16) for x in (0, 8, 16)])
    >>> u = np.zeros((27, 3))
    >>> u[13] = (0.5, 0.0, 0.0)    # the centre node, 0.5 voxel off a uniform field
    >>> residual, expected = median_test(nodes, u, np.ones(27, bool))
    >>> round(float(residual[13]), 6), expected[13].tolist()
    (5.0, [0.0, 0.0, 0.0])
    """
    nodes, displacement, ok, gradient, nb = _checked(nodes, displacement, ok, gradient, neighbours)
    if not eps_voxels > 0:
        raise ValueError(f"eps_voxels: expected > 0, got {eps_voxels!r}")
    use, pred = _predictions(nodes, displacement, ok, gradient, nb)
    expected, spread = _median_spread(pred)
    residual = (np.abs(displacement - expected) / (spread + eps_voxels)).max(axis=1)
    if gradient is not None:
        # where pairs of opposite neighbours surround the node, their cubic Hermite midpoints judge it too: a
        # node is consistent if either set of predictions accepts it (the first-order ones miss a curved field
        # where the neighbourhood is one-sided, the pairs are few and share a wrong neighbour near a cluster),
        # and the set whose predictions agree better (the pairs, on a tie) gives the expectation
        pair_expected, pair_spread = _median_spread(_pair_predictions(nodes, displacement, ok, gradient, nb))
        pair_residual = (np.abs(displacement - pair_expected) / (pair_spread + eps_voxels)).max(axis=1)
        residual = np.fmin(residual, pair_residual)            # NaN (too few pairs) keeps the first
        tighter = pair_spread.max(axis=1) <= spread.max(axis=1)  # NaN compares False
        expected = np.where(tighter[:, None], pair_expected, expected)
    tested = ok & (use.sum(axis=1) >= min_neighbours)
    return np.where(tested, residual, np.nan), expected


def small_groups(neighbours, ok, max_nodes=SMALL_GROUP_NODES):
    """Groups of at most ``max_nodes`` ok nodes connected through ok lattice neighbours, and who is in one.

    Parameters
    ----------
    neighbours : numpy.ndarray
        (N, m) neighbour table (:func:`lattice_neighbours`), -1 for none.
    ok : numpy.ndarray
        (N,) bool.
    max_nodes : int

    Returns
    -------
    group : numpy.ndarray
        (N,) int label, the same for the members of one small group and
        unique to each other node (for ``scattered_median_test``'s ``groups``).
    small : numpy.ndarray
        (N,) bool, the ok nodes in a small group.
    """
    neighbours = np.asarray(neighbours)
    ok = np.asarray(ok, dtype=bool)
    n = len(ok)
    rows, cols = np.nonzero((neighbours >= 0) & ok[:, None] & ok[np.maximum(neighbours, 0)])
    links = coo_matrix((np.ones(len(rows)), (rows, neighbours[rows, cols])), shape=(n, n))
    _, component = connected_components(links, directed=False)
    size = np.bincount(component[ok], minlength=n)[component]
    small = ok & (size <= max_nodes)
    return np.where(small, component, n + np.arange(n)), small


def scattered_median_test(nodes, displacement, ok, *, gradient=None, judged=None, groups=None,
                          k=SCATTERED_NEIGHBOURS, eps_voxels=NOISE_VOXELS):
    """Normalised median residual of nodes against their ``k`` nearest ok nodes, at any distance.

    The lattice test (:func:`median_test`) cannot judge a node with fewer
    than ``MIN_NEIGHBOURS`` ok lattice neighbours. Where most nodes fail
    (low correlation, a displacement beyond the search range) the ok nodes
    that remain are scattered, and a false match then often has one ok
    lattice neighbour: the node beside it, whose subvolume shares half of
    its voxels and found the same false peak. The two confirm each other
    and no test judges them. Here such a node is judged as Duncan et al.
    (2010, "Universal outlier detection for particle image velocimetry
    (PIV) and particle tracking velocimetry (PTV) data", Meas. Sci.
    Technol. 21:057002) judge scattered vectors: the normalised median
    test of Westerweel & Scarano over its nearest ok nodes, whatever
    their distance (first-order predictions ``u_i + G_i (x - x_i)`` when
    ``gradient`` is given, so an affine field gives residual 0 at any
    distance; Duncan et al.'s distance weighting is not used). Among
    ``k`` = 8 the one partner of a false pair cannot move the median; with
    ``groups`` (:func:`small_groups`) the members of a small group of
    adjacent ok nodes, which may share one false peak, do not judge each
    other at all.

    Parameters
    ----------
    nodes : numpy.ndarray
        (N, 3) node positions (z, y, x), voxels; any arrangement.
    displacement : numpy.ndarray
        (N, 3) displacement (z, y, x), voxels; only ``ok`` rows are read.
    ok : numpy.ndarray
        (N,) bool, the trusted nodes: the only ones that predict.
    gradient : numpy.ndarray, optional
        (N, 3, 3) displacement gradient du_i/dx_j, dimensionless.
    judged : numpy.ndarray, optional
        (N,) bool, the ``ok`` nodes to judge; default every ``ok`` node.
    groups : numpy.ndarray, optional
        (N,) int labels: a node is not predicted by the nodes of its own
        label. Default: every node its own label (only itself is left out).
    k : int
        Nearest ok nodes (other than the node itself) that predict it.
    eps_voxels : float
        Noise floor added to the median residual, voxels.

    Returns
    -------
    numpy.ndarray
        (N,) largest normalised residual over the three components, NaN
        where a node is not judged or fewer than ``MIN_NEIGHBOURS`` other
        ok nodes exist. Outliers: ``residual > THRESHOLD``.
    """
    nodes = np.asarray(nodes, dtype=np.float64)
    displacement = np.asarray(displacement, dtype=np.float64)
    ok = np.asarray(ok, dtype=bool)
    n = len(nodes)
    if nodes.shape != (n, 3) or displacement.shape != (n, 3) or ok.shape != (n,):
        raise ValueError(f"nodes, displacement, ok: expected shapes (N, 3), (N, 3), (N,), got {nodes.shape}, "
                         f"{displacement.shape}, {ok.shape}")
    judged = ok if judged is None else np.asarray(judged, dtype=bool)
    if judged.shape != (n,):
        raise ValueError(f"judged: expected shape ({n},) like ok, got {judged.shape}")
    judged = judged & ok
    groups = np.arange(n) if groups is None else np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups: expected shape ({n},) like ok, got {groups.shape}")
    gradient = _gradient_array(gradient, n)
    if int(k) != k or k < 1:
        raise ValueError(f"k: expected an integer >= 1, got {k!r}")
    if not eps_voxels > 0:
        raise ValueError(f"eps_voxels: expected > 0, got {eps_voxels!r}")
    residual = np.full(n, np.nan)
    trusted, asked = np.flatnonzero(ok), np.flatnonzero(judged)
    if len(trusted) <= MIN_NEIGHBOURS or len(asked) == 0:
        return residual
    # the node's own group (itself at least) is among its nearest ok nodes: ask for as many more, drop it,
    # and keep the k nearest others
    own = np.bincount(np.unique(groups, return_inverse=True)[1][trusted]).max()
    _, near = cKDTree(nodes[trusted]).query(nodes[asked], k=min(int(k) + int(own), len(trusted)))
    others = trusted[near.reshape(len(asked), -1)]
    others = np.where(groups[others] == groups[asked][:, None], -1, others)
    others = np.where(np.cumsum(others >= 0, axis=1) <= int(k), others, -1)
    table = np.full((n, others.shape[1]), -1)
    table[asked] = others
    pred = _predictions(nodes, displacement, ok, gradient, table)[1][asked]
    expected, spread = _median_spread(pred)
    residual[asked] = (np.abs(displacement[asked] - expected) / (spread + eps_voxels)).max(axis=1)
    return residual


def neighbour_prediction(nodes, displacement, gradient, ok, *, neighbours=None):
    """Each node's displacement and displacement gradient as its ok lattice neighbours predict them.

    The displacement is the componentwise median of the neighbours'
    first-order predictions ``u_i + G_i (x - x_i)`` (the ``expected`` of
    :func:`median_test`), the gradient the componentwise median of their
    ``G_i``: on a linear field both are exact, so a node started there
    needs no search and few Gauss–Newton iterations.

    Parameters
    ----------
    nodes, displacement, neighbours
        As for :func:`median_test`.
    gradient : numpy.ndarray
        (N, 3, 3) displacement gradient du_i/dx_j, dimensionless; only
        ``ok`` rows are read.
    ok : numpy.ndarray
        (N,) bool, the nodes that predict.

    Returns
    -------
    displacement : numpy.ndarray
        (N, 3) voxels, NaN for a node without ok neighbours.
    gradient : numpy.ndarray
        (N, 3, 3) dimensionless, NaN for a node without ok neighbours.
    spread : numpy.ndarray
        (N,) largest over the three components of the median absolute
        deviation of the predictions from ``displacement`` (the ``r_m`` of
        :func:`median_test`), voxels: large where the neighbours disagree,
        e.g. split between a true and a false match, when ``displacement``
        lies between them. NaN for a node without ok neighbours.
    """
    if gradient is None:
        raise ValueError("gradient: expected an (N, 3, 3) array, got None")
    nodes, displacement, ok, gradient, nb = _checked(nodes, displacement, ok, gradient, neighbours)
    use, pred = _predictions(nodes, displacement, ok, gradient, nb)
    j = np.where(use, nb, 0)
    g = np.where(use[:, :, None], gradient[j].reshape(len(nodes), nb.shape[1], 9), np.nan)
    g = _nanmedian(g).reshape(len(nodes), 3, 3)
    expected, spread = _median_spread(pred)
    return expected, g, spread.max(axis=1)


def _gradient_array(gradient, n):
    """``gradient`` as an (n, 3, 3) float64 array (None stays None), shape checked."""
    if gradient is None:
        return None
    gradient = np.asarray(gradient, dtype=np.float64)
    if gradient.shape != (n, 3, 3):
        raise ValueError(f"gradient: expected shape ({n}, 3, 3), got {gradient.shape}")
    return gradient


def _checked(nodes, displacement, ok, gradient, neighbours):
    """The arguments of median_test / neighbour_prediction as arrays, shapes checked, and the neighbour table."""
    nodes = np.asarray(nodes)
    displacement = np.asarray(displacement, dtype=np.float64)
    ok = np.asarray(ok, dtype=bool)
    n = len(nodes)
    if displacement.shape != (n, 3):
        raise ValueError(f"displacement: expected shape ({n}, 3) like nodes, got {displacement.shape}")
    if ok.shape != (n,):
        raise ValueError(f"ok: expected shape ({n},), got {ok.shape}")
    gradient = _gradient_array(gradient, n)
    nb = lattice_neighbours(nodes) if neighbours is None else np.asarray(neighbours)
    if nb.shape != (n, len(_OFFSETS)):
        raise ValueError(f"neighbours: expected shape ({n}, {len(_OFFSETS)}), got {nb.shape}")
    return nodes, displacement, ok, gradient, nb


def _predictions(nodes, displacement, ok, gradient, nb):
    """(N, 26) mask of ok neighbours and (N, 26, 3) their predictions of each node (NaN where none)."""
    use = (nb >= 0) & ok[np.maximum(nb, 0)]
    j = np.where(use, nb, 0)
    pred = displacement[j]                                                    # (N, 26, 3)
    if gradient is not None:
        pos = nodes.astype(np.float64)
        for m in range(nb.shape[1]):   # 26 offsets; keeps the (N, 26, 3, 3) gather out of memory
            pred[:, m] += np.einsum("nab,nb->na", gradient[j[:, m]], pos - pos[j[:, m]])
    pred[~use] = np.nan
    return use, pred


def _pair_predictions(nodes, displacement, ok, gradient, nb):
    """(N, 13, 3) cubic Hermite midpoint of each pair of opposite ok neighbours (NaN where a pair is not both
    ok, and for every pair of a node with fewer than MIN_PAIRS such pairs).

    For neighbours a and b at x - d and x + d, ``(u_a + u_b) / 2 + (G_a - G_b) d / 4`` is exact for a field
    cubic along the line, where each first-order prediction misses by ``u'' |d|^2 / 2``."""
    half = len(_OFFSETS) // 2     # offsets 0..12 are the negatives of 25..13
    a, b = nb[:, :half], nb[:, ::-1][:, :half]
    both = (a >= 0) & (b >= 0) & ok[np.maximum(a, 0)] & ok[np.maximum(b, 0)]
    a, b = np.where(both, a, 0), np.where(both, b, 0)
    d = nodes.astype(np.float64)[:, None, :] - nodes[a].astype(np.float64)           # (N, 13, 3)
    pred = 0.5 * (displacement[a] + displacement[b]) + 0.25 * np.einsum("nmij,nmj->nmi", gradient[a] - gradient[b], d)
    keep = both & (both.sum(axis=1, keepdims=True) >= MIN_PAIRS)
    pred[~keep] = np.nan
    return pred


def _median_spread(pred):
    """Componentwise median of (N, k, 3) predictions and their median absolute deviation from it (NaN-aware)."""
    expected = _nanmedian(pred)
    return expected, _nanmedian(np.abs(pred - expected[:, None, :]))


def _nanmedian(a):
    """Median over axis 1 ignoring NaN, NaN where a row is all NaN (vectorised, deterministic)."""
    a = np.sort(a, axis=1)          # NaN sort last
    count = np.sum(~np.isnan(a), axis=1, keepdims=True)
    lo = np.take_along_axis(a, np.maximum(count - 1, 0) // 2, axis=1)
    hi = np.take_along_axis(a, count // 2, axis=1)
    med = 0.5 * (lo + hi)[:, 0]
    return np.where(count[:, 0] > 0, med, np.nan)
