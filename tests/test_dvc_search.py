"""The integer FFT-ZNCC search (analysis.dvc.search) against a shift-by-shift evaluation of its definition.

The expected best shift and ZNCC come from trying every integer shift one
by one with a Pearson correlation in float64, not from FFTs or box sums
(issue #19).
"""

import itertools
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
import scipy.ndimage as ndi

import analysis.dvc.search as search
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


@pytest.mark.parametrize("s, r", [(7, 2), (11, 1), (13, 2), (9, 3)])
def test_the_zncc_is_the_definitions_whatever_the_fft_length(s, r):
    # windows of s + 2r = 11, 13, 17 voxels (prime: the FFTs are zero-padded) and 15 (not)
    reference = _texture((30, 31, 32), 3)
    deformed = np.roll(reference, (1, -2, 1), axis=(0, 1, 2)) + 0.5 * _texture((30, 31, 32), 4)
    nodes = np.array([[15, 15, 16], [10, 20, 12]])
    guess = np.array([[1, -2, 0], [0, 0, 0]])
    disp, zncc = integer_search(reference, deformed, nodes, s, r, guess=guess)
    for k, node in enumerate(nodes):
        tried = {tuple(guess[k] + d): _zncc_by_definition(reference, deformed, node, s, guess[k] + d)
                 for d in itertools.product(range(-r, r + 1), repeat=3)}
        best = max(tried.values())
        assert zncc[k] == pytest.approx(best, abs=1e-5) and tried[tuple(disp[k])] == pytest.approx(best, abs=1e-5)


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


def _levels(monkeypatch):
    """Record (volume edge, template edge, radius, corners, low, high) of every level the search runs."""
    calls = []
    run_level = search._search_batch

    def spy(reference, deformed, corner, guess, s, r, low, high):
        calls.append((reference.shape[0], s, r, corner.copy(), low.copy(), high.copy()))
        return run_level(reference, deformed, corner, guess, s, r, low, high)

    monkeypatch.setattr(search, "_search_batch", spy)
    return calls


# the levels by the rules of integer_search's Notes: a coarse level (volume binned 2x, template
# s // 2 made odd, radius r // 2 + 1) runs while that template edge is >= 7 and the radius > 6,
# and every finer level then searches +-2 voxels
@pytest.mark.parametrize("s, r, levels", [
    (15, 6, [(64, 15, 6)]),                               # radius 6: direct
    (15, 7, [(32, 7, 4), (64, 15, 2)]),                   # radius 7, coarse edge 7: one level down
    (11, 12, [(64, 11, 12)]),                             # coarse edge 5 | 1 = 5 < 7: direct
    (12, 12, [(32, 7, 7), (64, 12, 2)]),                  # coarse edge 6 | 1 = 7
    (31, 30, [(16, 7, 9), (32, 15, 2), (64, 31, 2)]),    # 31 -> 15 (r 16) -> 7 (r 9, edge 3 next: stop)
])
def test_the_pyramid_runs_the_levels_its_rules_give(monkeypatch, s, r, levels):
    reference = _texture((64, 64, 64), 10)
    deformed = np.roll(reference, (2, -3, 5), axis=(0, 1, 2))
    calls = _levels(monkeypatch)
    disp, _ = integer_search(reference, deformed, np.array([[32, 32, 32]]), s, r)
    assert [c[:3] for c in calls] == levels
    np.testing.assert_array_equal(disp[0], [2, -3, 5])


@pytest.mark.parametrize("n, s, nodes, coarse", [
    # binned voxel j spans voxels 2j, 2j + 1 (centre 2j + 0.5): a template centred at p sits at coarse
    # (p - 0.5) / 2, its 7-voxel corner 3 below, rounded: node 32 (centre 32) -> 12.75 -> 13; node 5,
    # whose subvolume starts 2 voxels outside, gives -0.75 -> -1: kept inside the binned volume, at 0
    (64, 15, [[32, 33, 34], [35, 8, 56], [5, 32, 32]], [[13, 13, 14], [14, 1, 25], [0, 13, 13]]),
    # s = 14: centre node - 0.5, coarse corner (node - 1) / 2 - 3; node 58 gives 25.5, past the last
    # corner that keeps the template inside the 32-voxel binned volume (32 - 7 = 25)
    (65, 14, [[7, 33, 58], [31, 45, 21]], [[0, 13, 25], [12, 19, 7]]),
    # a binned volume (7 voxels) no larger than the template (7): its only place is corner 0
    # (node 9 gives 8.5 / 2 - 3 = 1.25 -> 1)
    (15, 15, [[9, 7, 5]], [[0, 0, 0]]),
])
def test_a_coarse_template_sits_over_the_subvolume_and_inside_the_binned_volume(monkeypatch, n, s, nodes, coarse):
    reference = _texture((n, n, n), 11)
    calls = _levels(monkeypatch)
    guess = np.array([[3, -3, 0], [-1, 1, 5], [0, 0, 0]])[:len(nodes)]
    r = 8
    integer_search(reference, reference, np.array(nodes), s, r, guess=guess, workers=1)   # one batch per level
    (_, _, rc, corner_c, low_c, high_c), (_, _, _, corner, low, high) = calls
    np.testing.assert_array_equal(corner_c, coarse)
    np.testing.assert_array_equal(corner, np.array(nodes) - s // 2)
    np.testing.assert_array_equal(low, guess - r)
    np.testing.assert_array_equal(high, guess + r)
    # the coarse range covers every shift of the cube, halved: (guess +- r) / 2
    assert rc == r // 2 + 1
    assert np.all(2 * low_c <= guess - r) and np.all(2 * high_c >= guess + r)


@pytest.mark.parametrize("phase, contrast", [(1e4, 1.0), (0.0, 1e-3)])
def test_a_texture_on_large_grey_level_offsets_or_of_low_contrast_is_matched_exactly(phase, contrast):
    # ZNCC does not see a constant offset or a scale, so the exact copy is found with ZNCC 1 as for the
    # plain texture (std ~0.1): two phases 2e4 grey levels apart (+-1e4) with each node's windows inside
    # one phase (in float32 that needs each window's own mean removed before its squares are summed),
    # and a texture 1000 times fainter (a denominator far below 1, still far above the flat limit)
    n, shift = 48, (2, -1, 3)
    offset = np.where(np.arange(n) < n // 2, phase, -phase)[None, None, :]
    texture = contrast * _texture((n, n, n), 12)
    reference = (texture + offset).astype(np.float32)
    deformed = (np.roll(texture, shift, axis=(0, 1, 2)) + offset).astype(np.float32)
    nodes = np.array([[24, 24, 10], [24, 24, 37]])   # s = 9, r = 3: windows span x 6..20 and 33..47
    disp, zncc = integer_search(reference, deformed, nodes, 9, 3)
    np.testing.assert_array_equal(disp, np.broadcast_to(shift, (2, 3)))
    np.testing.assert_allclose(zncc, 1.0, atol=1e-3)


@pytest.mark.parametrize("scale", [2.0 ** -40, 2.0 ** 40], ids=["2^-40", "2^40"])
def test_the_search_does_not_depend_on_the_grey_level_scale(scale):
    # ZNCC does not see a grey-level scale: both volumes times a power of two (exact in float32; at
    # 2^-40 the texture's squares are ~1e-26, at 2^40 ~1e20, both well inside float32's range) give
    # the exact shift with ZNCC 1 as the plain texture does. A flat limit that did not scale with the
    # window's own sum of squares would call every window flat at 2^-40 and match nowhere
    n, shift = 24, (1, -2, 2)
    texture = _texture((n, n, n), 16)
    reference = (texture * np.float32(scale)).astype(np.float32)
    deformed = (np.roll(texture, shift, axis=(0, 1, 2)) * np.float32(scale)).astype(np.float32)
    nodes = np.array([[12, 12, 12], [9, 14, 11]])
    disp, zncc = integer_search(reference, deformed, nodes, 7, 3)
    np.testing.assert_array_equal(disp, np.broadcast_to(shift, (2, 3)))
    np.testing.assert_allclose(zncc, 1.0, atol=1e-4)


def test_a_coarse_match_past_the_radius_still_leads_to_the_best_shift_inside_it(monkeypatch):
    # s = 15, r = 8: one binned level (template 7, radius 5), then +-2 voxels around twice its answer,
    # brought back inside [-8, 8]. The reference is a smooth texture L plus a pattern H that alternates
    # sign from one z layer to the next, H = (-1)^z q(y, x): binning 2x2x2 averages H away exactly, so
    # the binned level sees L alone. The deformed volume holds L moved by 10 voxels in z (outside the
    # radius) and H moved by 7: the binned level finds L at 5 (10 at full size), and the best shift
    # inside the cube is 7, where H matches exactly (every odd z shift matches H; 7 is the one that
    # brings L closest to its own match). A search around 10 would see only z = 8 inside the radius,
    # where H matches with the opposite sign
    n, s, r = 48, 15, 8
    low = _texture((n, n, n), 14)
    q = np.random.default_rng(15).normal(size=(n, n))
    high = 0.2 * np.where(np.arange(n) % 2 == 0, 1.0, -1.0)[:, None, None] * q[None]
    reference = (low + high).astype(np.float32)
    deformed = (np.roll(low, 10, axis=0) + np.roll(high, 7, axis=0)).astype(np.float32)
    node = np.array([20, 24, 24])
    answers = []
    run_level = search._search_batch

    def spy(*args):
        found = run_level(*args)
        answers.append(found[0][0].tolist())
        return found

    monkeypatch.setattr(search, "_search_batch", spy)
    disp, zncc = integer_search(reference, deformed, node[None], s, r)
    assert answers[0] == [5, 0, 0]            # the binned level's answer: 10 at full size, past 8
    tried = {}
    for d in itertools.product(range(-r, r + 1), repeat=3):
        value = _zncc_by_definition(reference, deformed, node, s, d)
        if value is not None:
            tried[d] = value
    best = max(tried, key=tried.get)
    assert best == (7, 0, 0)
    np.testing.assert_array_equal(disp[0], best)
    assert zncc[0] == pytest.approx(tried[best], abs=1e-4)


def test_a_textureless_deformed_volume_matches_nowhere():
    # a constant window has no ZNCC (0 / 0): every shift scores -1, the value of no match, never a
    # correlation of 0 or more
    reference = _texture((24, 24, 24), 13)
    deformed = np.full((24, 24, 24), 5.0, dtype=np.float32)
    nodes = np.array([[12, 12, 12], [9, 14, 11]])
    _, zncc = integer_search(reference, deformed, nodes, 7, 3)
    np.testing.assert_array_equal(zncc, [-1.0, -1.0])


def test_int32_nodes_give_int64_displacements_like_int64_nodes():
    s, r = 7, 2
    reference = _texture((20, 20, 20), 8)
    deformed = np.roll(reference, (1, -2, 2), axis=(0, 1, 2))
    nodes = np.array([[10, 10, 10], [8, 11, 9]])
    want, _ = integer_search(reference, deformed, nodes, s, r)
    got, _ = integer_search(reference, deformed, nodes.astype(np.int32), s, r)
    assert got.dtype == np.int64   # the documented type, whatever integer type the nodes come in
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want, [[1, -2, 2], [1, -2, 2]])


@pytest.mark.parametrize("guess_x", [1, -1])
def test_pyramid_search_far_below_an_odd_guess_stays_within_the_radius(guess_x):
    # an even radius and an odd guess: the coarse level searches guess // 2 +- (r // 2 + 1), which reaches
    # 2 (guess // 2 - r // 2 - 1) = guess - r - 3 at full size; a true shift there is found by it, and
    # the full-size search must still stay inside guess +- r, where the nearest shift to it is guess - r
    n, r = 64, 10
    reference = _texture((n, n, n), 9)
    true_x = guess_x - r - 3
    deformed = np.roll(reference, (0, 0, true_x), axis=(0, 1, 2))
    nodes = np.array([[32, 32, 32]])
    guess = np.array([[0, 0, guess_x]])
    disp, zncc = integer_search(reference, deformed, nodes, 15, r, guess=guess)
    assert np.all(np.abs(disp - guess) <= r)
    assert disp[0, 2] == guess_x - r   # the texture correlates less farther off (y, z: only noise this far)
    assert zncc[0] > -1.0   # a shift inside the cube was tried


@pytest.mark.parametrize("shape", [(5, 6, 7), (5, 6, 9), (7, 9, 4)])
def test_bin2_is_the_mean_of_each_2x2x2_block_leaving_an_odd_last_layer_out(shape):
    # even parts that differ between axes (4, 6, 8 and 6, 8, 4): each axis is cut and split by its own length
    v = np.random.default_rng(6).normal(size=shape).astype(np.float32)
    got = _bin2(v)
    half = tuple(n // 2 for n in shape)
    assert got.shape == half
    assert got.dtype == np.float32   # the binned levels of a large volume in half the memory of float64
    for z, y, x in itertools.product(*map(range, half)):
        block = v[2 * z:2 * z + 2, 2 * y:2 * y + 2, 2 * x:2 * x + 2]
        assert got[z, y, x] == pytest.approx(float(block.astype(np.float64).mean()), abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(shape=st.tuples(st.integers(1, 40), st.integers(1, 30), st.integers(1, 30)), slab=st.integers(1, 9),
       dtype=st.sampled_from([np.float32, np.float64, np.uint16]), seed=st.integers(0, 2 ** 16))
def test_bin2_in_slabs_gives_the_bytes_of_one_mean_over_the_whole_volume(shape, slab, dtype, seed):
    v = (np.random.default_rng(seed).normal(size=shape) * 1000 + 2000).astype(dtype)
    n = [d // 2 * 2 for d in shape]
    want = v[:n[0], :n[1], :n[2]].astype(np.float32).reshape(n[0] // 2, 2, n[1] // 2, 2, n[2] // 2, 2) \
        .mean(axis=(1, 3, 5))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(search, "_BIN_SLAB_PLANES", slab)
        got = _bin2(v)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("s, k", [(5, 3), (6, 4), (4, 1)])
def test_box_sums_are_the_sums_over_each_s_cube_of_the_window(s, k):
    v = np.random.default_rng(7).normal(size=(2, s + k - 1, s + k - 1, s + k - 1)).astype(np.float32)
    got = _box_sums(v, s, k)
    assert got.shape == (2, k, k, k)
    for b, i, j, m in itertools.product(range(2), range(k), range(k), range(k)):
        want = v[b, i:i + s, j:j + s, m:m + s].astype(np.float64).sum()
        assert got[b, i, j, m] == pytest.approx(want, abs=1e-9 * s ** 3)


@settings(max_examples=60, deadline=None)
@given(s=st.integers(1, 40), k=st.integers(1, 13), b=st.integers(1, 3), square=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 16))
def test_box_sums_are_the_bytes_of_scipys_uniform_filter(s, k, b, square, dtype, seed):
    # the search's ZNCC, and so every DVC result, kept its bytes when the box sums stopped calling the filter
    w = s + k - 1
    v = (np.random.default_rng(seed).normal(size=(b, w, w, w)) * 30).astype(dtype)
    if square:
        v = v * v
    want = v.astype(np.float64)
    keep = np.arange(s // 2, s // 2 + k)
    for axis in (1, 2, 3):
        want = np.take(ndi.uniform_filter1d(want, s, axis=axis, mode="constant"), keep, axis=axis)
    got = _box_sums(v, s, k)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got.view(np.uint64), (want * float(s) ** 3).view(np.uint64))


def test_the_answer_does_not_depend_on_threads_and_each_node_is_its_own_in_any_batch(monkeypatch):
    """Nodes are split between threads in memory-bounded batches: the thread count changes no bit; the
    batch size changes the ZNCC only in float32 rounding (the FFTs of a batch are vectorised together)."""
    reference = _texture((48, 48, 48), 16)
    deformed = np.roll(reference, (3, -2, 1), axis=(0, 1, 2)) + 0.05 * _texture((48, 48, 48), 17)
    rng = np.random.default_rng(18)
    nodes = rng.integers(10, 38, size=(23, 3))
    guess = rng.integers(-2, 3, size=(23, 3))
    # one node at a time: no batch can share anything
    alone = [integer_search(reference, deformed, nodes[i:i + 1], 15, 4, guess=guess[i:i + 1], workers=1)
             for i in range(len(nodes))]
    want_d = np.concatenate([d for d, _ in alone])
    want_z = np.concatenate([z for _, z in alone])
    w3 = (15 + 2 * 4) ** 3
    batches = []
    run_level = search._search_batch

    def spy(reference, deformed, corner, *args):
        batches.append(tuple(map(tuple, corner)))
        return run_level(reference, deformed, corner, *args)

    monkeypatch.setattr(search, "_search_batch", spy)
    for batch_nodes in (1, 5, 23):
        monkeypatch.setattr(search, "_BATCH_VOXELS", batch_nodes * search._THREADS_BOUNDED * w3)
        d1, z1 = integer_search(reference, deformed, nodes, 15, 4, guess=guess, workers=1)
        np.testing.assert_array_equal(d1, want_d)
        np.testing.assert_allclose(z1, want_z, rtol=0, atol=1e-6)
        want_batches = sorted(batches)
        assert [len(b) for b in batches] == [batch_nodes] * (23 // batch_nodes) + [23 % batch_nodes] * (23 % batch_nodes > 0)
        for workers in (2, 3):
            batches.clear()
            d, z = integer_search(reference, deformed, nodes, 15, 4, guess=guess, workers=workers)
            assert sorted(batches) == want_batches
            np.testing.assert_array_equal(d, d1)
            np.testing.assert_array_equal(z, z1)
        batches.clear()


def test_the_nodes_are_searched_on_as_many_threads_as_workers(monkeypatch):
    threads = set()
    run_level = search._search_batch

    def spy(*args):
        threads.add(threading.get_ident())
        time.sleep(0.05)   # keep each batch busy long enough for the other thread to take the next
        return run_level(*args)

    monkeypatch.setattr(search, "_search_batch", spy)
    monkeypatch.setattr(search, "_BATCH_VOXELS", 2 * search._THREADS_BOUNDED * (11 + 2 * 3) ** 3)  # 2 nodes each
    reference = _texture((40, 40, 40), 19)
    nodes = np.array([[z, y, x] for z in (12, 20, 28) for y in (12, 28) for x in (12, 28)])
    integer_search(reference, reference, nodes, 11, 3, workers=2)
    assert len(threads) == 2
    threads.clear()
    integer_search(reference, reference, nodes[:4], 11, 3, workers=2)    # two batches: one each
    assert len(threads) == 2
    threads.clear()
    integer_search(reference, reference, nodes, 11, 3, workers=1)
    assert threads == {threading.get_ident()}
    # the default, -1: as many threads as CPUs this process may use
    threads.clear()
    monkeypatch.setattr(search.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    integer_search(reference, reference, nodes, 11, 3)
    assert len(threads) == 3
