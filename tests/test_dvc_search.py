"""The integer FFT-ZNCC search (analysis.dvc.search) against a shift-by-shift evaluation of its definition.

The expected best shift and ZNCC come from trying every integer shift one
by one with a Pearson correlation in float64, not from FFTs or box sums
(issue #19).
"""

import itertools

import numpy as np
import pytest
import scipy.ndimage as ndi

from analysis.dvc.search import _bin2, _box_sums, integer_search


def _texture(shape, seed):
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.normal(size=shape), 1.2, mode="wrap").astype(np.float32)


def _pearson(a, b):
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))


def _zncc_by_definition(reference, deformed, node, s, shift):
    """ZNCC of the reference cube around ``node`` with the deformed cube ``shift`` away; None when the
    deformed cube leaves the volume."""
    lo = np.asarray(node) - s // 2
    moved = lo + np.asarray(shift)
    if np.any(moved < 0) or np.any(moved + s > np.array(deformed.shape)):
        return None
    t = reference[lo[0]:lo[0] + s, lo[1]:lo[1] + s, lo[2]:lo[2] + s]
    w = deformed[moved[0]:moved[0] + s, moved[1]:moved[1] + s, moved[2]:moved[2] + s]
    return _pearson(t, w)


def test_direct_search_finds_the_best_shift_of_all_within_the_radius():
    s, r = 7, 3
    reference = _texture((22, 23, 24), 1)
    deformed = np.roll(reference, (2, -3, 1), axis=(0, 1, 2)) + 0.3 * _texture((22, 23, 24), 2)
    # nodes in the middle and near faces (some shifts leave the volume there), some with a guess
    nodes = np.array([[11, 11, 12], [3, 3, 3], [18, 19, 20], [4, 12, 20], [10, 5, 8]])
    guess = np.array([[0, 0, 0], [1, 0, -1], [2, -3, 1], [0, 0, 2], [-2, 2, 0]])
    disp, zncc = integer_search(reference, deformed, nodes, s, r, guess=guess)
    assert disp.dtype == np.int64
    for k, node in enumerate(nodes):
        tried = {}
        for d in itertools.product(range(-r, r + 1), repeat=3):
            value = _zncc_by_definition(reference, deformed, node, s, guess[k] + d)
            if value is not None:
                tried[tuple(guess[k] + d)] = value
        best = max(tried.values())
        assert zncc[k] == pytest.approx(best, abs=1e-4)
        assert tried[tuple(disp[k])] == pytest.approx(best, abs=1e-4)
    np.testing.assert_array_equal(disp[0], [2, -3, 1])   # the true shift, found from no guess


def test_a_node_with_no_shift_inside_the_volume_keeps_its_guess_with_zncc_minus_one():
    reference = _texture((16, 16, 16), 3)
    nodes = np.array([[8, 8, 8], [8, 8, 8]])
    guess = np.array([[0, 0, 30], [0, 0, 0]])   # 30 +- 2 voxels in x leaves a 16-voxel volume
    disp, zncc = integer_search(reference, reference, nodes, 7, 2, guess=guess)
    np.testing.assert_array_equal(disp, [[0, 0, 30], [0, 0, 0]])
    assert zncc[0] == -1.0 and zncc[1] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("shift", [(9, -11, 7), (-12, 12, -10), (3, 0, -12)])
def test_pyramid_search_finds_a_large_shift_exactly(shift):
    # s = 15 and r = 12 go through a 2x-binned level (template 7, radius 7) and +-2 voxels back at full size
    n = 64
    reference = _texture((n, n, n), 4)
    deformed = np.roll(reference, shift, axis=(0, 1, 2))     # periodic texture: an exact shift
    nodes = np.array([[32, 32, 32], [24, 40, 30], [40, 26, 36]])
    disp, zncc = integer_search(reference, deformed, nodes, 15, 12)
    np.testing.assert_array_equal(disp, np.broadcast_to(shift, (3, 3)))
    np.testing.assert_allclose(zncc, 1.0, atol=1e-4)


def test_pyramid_search_with_an_odd_guess_finds_the_shift_and_stays_within_the_radius():
    n = 64
    reference = _texture((n, n, n), 5)
    deformed = np.roll(reference, (11, -9, 14), axis=(0, 1, 2))
    nodes = np.array([[30, 32, 28], [30, 32, 28]])
    guess = np.array([[3, -1, 5], [3, -1, 5]])
    disp, zncc = integer_search(reference, deformed, nodes[:1], 15, 9, guess=guess[:1])
    np.testing.assert_array_equal(disp[0], [11, -9, 14])
    # the true x shift 14 is 13 from a guess of 1: out of a 9-voxel radius, so the answer stops at its edge
    disp, _ = integer_search(reference, deformed, nodes[1:], 15, 9, guess=np.array([[3, -1, 1]]))
    assert np.all(np.abs(disp[0] - [3, -1, 1]) <= 9)


def test_bin2_is_the_mean_of_each_2x2x2_block_leaving_an_odd_last_layer_out():
    v = np.random.default_rng(6).normal(size=(5, 6, 7)).astype(np.float32)
    got = _bin2(v)
    assert got.shape == (2, 3, 3)
    for z, y, x in itertools.product(range(2), range(3), range(3)):
        block = v[2 * z:2 * z + 2, 2 * y:2 * y + 2, 2 * x:2 * x + 2]
        assert got[z, y, x] == pytest.approx(float(block.astype(np.float64).mean()), abs=1e-6)


@pytest.mark.parametrize("s, k", [(5, 3), (6, 4), (4, 1)])
def test_box_sums_are_the_sums_over_each_s_cube_of_the_window(s, k):
    v = np.random.default_rng(7).normal(size=(2, s + k - 1, s + k - 1, s + k - 1)).astype(np.float32)
    got = _box_sums(v, s, k)
    assert got.shape == (2, k, k, k)
    for b, i, j, m in itertools.product(range(2), range(k), range(k), range(k)):
        want = v[b, i:i + s, j:j + s, m:m + s].astype(np.float64).sum()
        assert got[b, i, j, m] == pytest.approx(want, abs=1e-9 * s ** 3)
