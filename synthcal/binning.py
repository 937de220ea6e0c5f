"""Regular-grid binning of spheres (or any items with a centre and a reach) for point queries.

Shared by the phantom, the binder and the truth: a query point looks up its
cell and tests only the items listed there.
"""

import numpy as np

_MAX_BIN_PAIRS = 200_000_000
# binning a particle-cell pair (repeat, index arithmetic, stable sort) costs about as much as
# this many candidate tests in a kernel
_PAIR_COST = 16


def bin_particles(centres_um, reach_um, grid_origin_um, grid_shape, cell_size_um):
    """Lists, for each cell of a regular grid, the particles that may reach into it.

    Particle ``p`` is listed in every cell that its axis-aligned box
    ``centre ± reach`` overlaps. Cell ``(a, b, c)`` spans
    ``grid_origin_um + cell_size_um * [(a, b, c), (a, b, c) + 1)``.

    Returns
    -------
    cell_start : (n_cells + 1,) int32
        Items of flat cell ``f`` are ``items[cell_start[f]:cell_start[f + 1]]``.
    items : (n_pairs,) int32
        Particle indices, ascending within each cell.
    """
    dims = np.asarray(grid_shape, dtype=np.int64)
    lo = np.floor((centres_um - reach_um[:, None] - grid_origin_um) / cell_size_um).astype(np.int64)
    hi = np.floor((centres_um + reach_um[:, None] - grid_origin_um) / cell_size_um).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, dims - 1)
    ext = np.maximum(hi - lo + 1, 0)
    counts = ext.prod(axis=1)
    total = int(counts.sum())
    if total > _MAX_BIN_PAIRS:
        raise ValueError(f"cell_size_um: {cell_size_um} gives {total} particle-cell pairs; use larger cells")
    particle = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    local = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    e = ext[particle]
    cz = lo[particle, 0] + local // (e[:, 1] * e[:, 2])
    cy = lo[particle, 1] + (local // e[:, 2]) % e[:, 1]
    cx = lo[particle, 2] + local % e[:, 2]
    flat = (cz * dims[1] + cy) * dims[2] + cx
    # particle is already ascending, so a stable sort by cell keeps it ascending per cell
    order = np.argsort(flat, kind="stable")
    n_cells = int(dims.prod())
    cell_start = np.zeros(n_cells + 1, dtype=np.int32)
    np.cumsum(np.bincount(flat, minlength=n_cells), out=cell_start[1:])
    return cell_start, particle[order].astype(np.int32)


def bin_boxes(centres_um, reach_um, rows, grid_origin_um, grid_shape, cell_size_um):
    """:func:`bin_particles` of boxes that stand for ``rows`` (several boxes may share one): each
    cell lists a row once, rows ascending."""
    cell_start, items = bin_particles(centres_um, reach_um, grid_origin_um, grid_shape, cell_size_um)
    if len(items) == 0:
        return cell_start, items
    n_rows = int(rows.max()) + 1
    cell = np.repeat(np.arange(len(cell_start) - 1, dtype=np.int64), np.diff(cell_start))
    # sort and drop repeats: np.unique takes a hashing path here (numpy 2.4) that is ~90x slower
    key = np.sort(cell * n_rows + rows[items])
    cell, row = np.divmod(key[np.concatenate([[True], key[1:] != key[:-1]])], n_rows)
    cell_start = np.zeros_like(cell_start)
    np.cumsum(np.bincount(cell, minlength=len(cell_start) - 1), out=cell_start[1:])
    return cell_start, row.astype(np.int32)


def choose_cell_size_um(reach_um, extent_um, n_queries, smallest_um):
    """Cell edge for :func:`bin_particles` that minimises a cost model.

    Cost = particle-cell pairs (memory, binning) + queries x mean pairs per cell
    (candidates tested per query), over edges ``smallest_um * 2**k`` up to the
    extent of the grid.
    """
    extent = np.maximum(np.asarray(extent_um, dtype=np.float64), 0.0)
    best = None
    cs = smallest_um
    while True:
        dims = np.floor(extent / cs) + 1
        pairs = np.sum(np.prod(np.minimum(np.ceil(2 * reach_um[:, None] / cs) + 1, dims), axis=1))
        cost = _PAIR_COST * pairs + n_queries * pairs / np.prod(dims)
        if pairs <= _MAX_BIN_PAIRS and (best is None or cost < best[0]):
            best = (cost, cs)
        if cs > extent.max():
            break
        cs *= 2
    if best is None:
        raise ValueError("radii_um: too many particle-cell pairs for the grid binning")
    return best[1]
