"""Grid binning: every cell lists exactly the items whose boxes overlap it, against brute force."""

import numpy as np
import pytest

from synthcal.binning import bin_boxes, bin_particles


def _overlapping(centres, reach, origin, dims, cell):
    """Brute force: for each flat cell, the sorted indices whose box centre +- reach overlaps it."""
    out = []
    for flat in range(int(np.prod(dims))):
        idx = np.array(np.unravel_index(flat, dims))
        lo = origin + cell * idx
        hi = lo + cell
        hit = np.all((centres + reach[:, None] >= lo) & (centres - reach[:, None] < hi), axis=1)
        out.append(np.flatnonzero(hit))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_boxes_are_listed_once_per_cell_by_row(seed):
    rng = np.random.default_rng(seed)
    origin, dims, cell = np.array([-1.0, 0.5, 2.0]), (4, 5, 3), 0.7
    n = 40
    centres = origin + rng.uniform(-0.5, 1.2, (n, 3)) * cell * np.array(dims)
    reach = rng.uniform(0.05, 1.0, n)
    rows = rng.integers(0, 12, n)  # several boxes stand for one row
    start, items = bin_particles(centres, reach, origin, dims, cell)
    by_box = _overlapping(centres, reach, origin, dims, cell)
    for flat, expected in enumerate(by_box):
        assert items[start[flat]:start[flat + 1]].tolist() == expected.tolist()
    start, listed = bin_boxes(centres, reach, rows, origin, dims, cell)
    for flat, expected in enumerate(by_box):
        assert listed[start[flat]:start[flat + 1]].tolist() == sorted(set(rows[expected].tolist()))
