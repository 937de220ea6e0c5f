"""The DVC node grid and subvolume gathering (analysis.dvc.grid) against their definitions.

Each expected value is built by brute force from the definition in the
docstring (every candidate index tried, every voxel looked up one by one),
not from the module's own arithmetic (issue #19).
"""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.dvc.grid import (box_leaves_volume, extract_cubes, inside_fraction, node_grid, subvolume_box,
                               subvolume_offsets)


def _cube_indices(centre, s):
    """Indices covered on one axis by the subvolume of edge ``s`` around ``centre`` (``c - s//2 .. c - s//2 + s - 1``)."""
    return range(centre - s // 2, centre - s // 2 + s)


@settings(max_examples=60, deadline=None)
@given(shape=st.tuples(*[st.integers(5, 40)] * 3), spacing=st.tuples(*[st.integers(1, 9)] * 3),
       s=st.integers(5, 12), margin=st.integers(0, 4))
def test_node_grid_is_the_largest_centred_lattice_whose_subvolumes_keep_the_margin(shape, spacing, s, margin):
    fits = all(n - 2 * margin - s >= 0 for n in shape)
    if not fits:
        with pytest.raises(ValueError, match="too small"):
            node_grid(shape, spacing, s, margin_voxels=margin)
        return
    nodes = node_grid(shape, spacing, s, margin_voxels=margin)
    assert nodes.dtype == np.int64 and nodes.shape[1] == 3
    per_axis = []
    for a, (n, d) in enumerate(zip(shape, spacing)):
        # every position whose subvolume, widened by the margin, lies inside 0 .. n - 1
        allowed = [c for c in range(n) if min(_cube_indices(c, s)) - margin >= 0
                   and max(_cube_indices(c, s)) + margin <= n - 1]
        lo, hi = min(allowed), max(allowed)
        count = (hi - lo) // d + 1                     # the most positions d apart between lo and hi
        slack = (hi - lo) - (count - 1) * d            # room left over, split with the smaller part first
        first = lo + slack // 2
        expected = [first + d * i for i in range(count)]
        assert expected[-1] <= hi and hi - expected[-1] - (first - lo) in (0, 1)
        per_axis.append(expected)
    # z slowest, x fastest
    np.testing.assert_array_equal(nodes, np.array(list(itertools.product(*per_axis))))


def test_node_grid_one_node_per_axis_when_the_subvolume_just_fits():
    # s = 6 covers c - 3 .. c + 2: with margin 1 the only centre on 8 voxels is 4 (covers 1 .. 6)
    np.testing.assert_array_equal(node_grid((8, 8, 8), 3, 6, margin_voxels=1), [[4, 4, 4]])


def test_node_grid_keeps_no_margin_unless_asked():
    # s = 5 covers c - 2 .. c + 2: in 5 voxels the one centre is 2, in 7 voxels with spacing 2 they are 2 and 4
    np.testing.assert_array_equal(node_grid((5, 5, 7), 2, 5), [[2, 2, 2], [2, 2, 4]])


def test_node_grid_broadcasts_one_spacing_and_accepts_integer_floats():
    np.testing.assert_array_equal(node_grid((20, 20, 20), 5, 5), node_grid((20, 20, 20), (5.0, 5, 5), 5.0))


@pytest.mark.parametrize("args, kwargs, message", [
    (((20, 20), 4, 5), {}, "3 dimensions"),
    (((20, 20, 20, 20), 4, 5), {}, "3 dimensions"),
    (((20, 20, 20), 0, 5), {}, "node_spacing_voxels"),
    (((20, 20, 20), (4, 4, 0), 5), {}, "node_spacing_voxels"),
    (((20, 20, 20), 2.5, 5), {}, "node_spacing_voxels"),
    (((20, 20, 20), 4, 4), {}, "subvolume_voxels"),
    (((20, 20, 20), 4, 5.5), {}, "subvolume_voxels"),
    (((20, 20, 20), 4, 5), {"margin_voxels": -1}, "margin_voxels"),
    (((4, 20, 20), 4, 5), {}, "too small"),
    (((20, 20, 10), 4, 5), {"margin_voxels": 3}, "too small"),
])
def test_node_grid_refuses_bad_input_by_name(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        node_grid(*args, **kwargs)


@pytest.mark.parametrize("s", [5, 6, 7, 10])
def test_subvolume_offsets_cover_the_cube_z_slowest(s):
    r = range(-(s // 2), -(s // 2) + s)
    expected = np.array(list(itertools.product(r, r, r)))
    got = subvolume_offsets(s)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("s", [5, 6, 7, 10, 31, 63])
def test_subvolume_box_is_the_lowest_and_highest_offset_on_each_axis(s):
    # by hand: an edge of s covers -(s // 2) .. s - 1 - s // 2 (e.g. -2..2 for 5, -3..2 for 6)
    low, high = subvolume_box(s)
    assert list(low) == [-(s // 2)] * 3 and list(high) == [s - 1 - s // 2] * 3
    offsets = subvolume_offsets(s)
    np.testing.assert_array_equal(low, offsets.min(axis=0))
    np.testing.assert_array_equal(high, offsets.max(axis=0))


def test_subvolume_offsets_refuse_an_edge_below_5():
    with pytest.raises(ValueError, match="subvolume_voxels"):
        subvolume_offsets(4)


@settings(max_examples=30, deadline=None)
@given(shape=st.tuples(*[st.integers(1, 9)] * 3), edge=st.integers(1, 6),
       corners=st.lists(st.tuples(*[st.integers(-8, 12)] * 3), min_size=1, max_size=5))
def test_extract_cubes_reads_each_voxel_clamped_to_the_nearest_face(shape, edge, corners):
    _assert_clamped_cubes(np.arange(np.prod(shape), dtype=np.int32).reshape(shape), corners, edge)


def _assert_clamped_cubes(volume, corners, edge):
    """extract_cubes against the definition, voxel by voxel (every voxel of ``volume`` its own value)."""
    got = extract_cubes(volume, np.array(corners), edge)
    assert got.shape == (len(corners), edge, edge, edge) and got.dtype == volume.dtype
    for b, c in enumerate(corners):
        for k, j, i in itertools.product(range(edge), repeat=3):
            z, y, x = (min(max(c[a] + o, 0), volume.shape[a] - 1) for a, o in enumerate((k, j, i)))
            assert got[b, k, j, i] == volume[z, y, x]


@settings(max_examples=40, deadline=None)
@given(shape=st.tuples(*[st.integers(6, 12)] * 3), edge=st.integers(1, 5), data=st.data())
def test_extract_cubes_inside_the_volume_and_across_a_face_in_one_batch(shape, edge, data):
    # most corners inside (a slice each), some one or two voxels across a face (the clamped gather)
    corners = data.draw(st.lists(st.tuples(*[st.integers(-2, n - edge + 2) for n in shape]), min_size=1,
                                 max_size=8))
    _assert_clamped_cubes(np.arange(np.prod(shape), dtype=np.float32).reshape(shape), corners, edge)


@settings(max_examples=30, deadline=None)
@given(shape=st.tuples(*[st.integers(1, 9)] * 3), edge=st.integers(1, 6),
       corners=st.lists(st.tuples(*[st.integers(-8, 12)] * 3), min_size=1, max_size=5))
def test_extract_cubes_with_a_fill_reads_it_at_every_voxel_outside(shape, edge, corners):
    volume = np.arange(1, np.prod(shape) + 1, dtype=np.float32).reshape(shape)
    got = extract_cubes(volume, np.array(corners), edge, fill=-7.5)
    for b, c in enumerate(corners):
        for k, j, i in itertools.product(range(edge), repeat=3):
            z, y, x = c[0] + k, c[1] + j, c[2] + i
            inside = 0 <= z < shape[0] and 0 <= y < shape[1] and 0 <= x < shape[2]
            assert got[b, k, j, i] == (volume[z, y, x] if inside else -7.5)


def _inside_fraction_by_voxel(mask, node, s):
    """Fraction of the s^3 voxels around ``node`` that are in the volume and set in ``mask``."""
    inside = 0
    for z, y, x in itertools.product(*(_cube_indices(c, s) for c in node)):
        if 0 <= z < mask.shape[0] and 0 <= y < mask.shape[1] and 0 <= x < mask.shape[2]:
            inside += bool(mask[z, y, x])
    return inside / s ** 3


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2 ** 16), s=st.integers(5, 7), shape=st.tuples(*[st.integers(3, 12)] * 3))
def test_inside_fraction_counts_the_subvolume_voxels_in_the_mask_and_the_volume(seed, s, shape):
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) < 0.6
    nodes = rng.integers(-4, np.array(shape) + 4, size=(7, 3))   # some subvolumes reach out of the volume
    got = inside_fraction(mask, nodes, s)
    expected = [_inside_fraction_by_voxel(mask, node, s) for node in nodes]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_inside_fraction_of_more_nodes_than_one_batch():
    # 1100 nodes (more than two batches of 512) on a mask that is the half z < 6 of a 12^3 volume:
    # a 5-voxel subvolume around z covers z - 2 .. z + 2 (y and x inside), so the share of those in 0 .. 5 is in
    rng = np.random.default_rng(3)
    mask = np.zeros((12, 12, 12), dtype=np.uint8)
    mask[:6] = 1
    # z in 0 .. 7: every subvolume is partly in the mask, so no expected fraction is 0 (an unwritten entry)
    nodes = np.column_stack([rng.integers(0, 8, 1100), rng.integers(2, 10, 1100), rng.integers(2, 10, 1100)])
    z = nodes[:, 0]
    expected = np.maximum(np.minimum(z + 2, 5) - np.maximum(z - 2, 0) + 1, 0) / 5
    np.testing.assert_allclose(inside_fraction(mask, nodes, 5), expected, rtol=0, atol=1e-12)


def test_inside_fraction_refuses_an_edge_below_5():
    with pytest.raises(ValueError, match="subvolume_voxels"):
        inside_fraction(np.ones((8, 8, 8), bool), [[4, 4, 4]], 4)


def test_extract_cubes_takes_corners_given_as_whole_floats():
    volume = np.arange(6 * 7 * 8).reshape(6, 7, 8)
    np.testing.assert_array_equal(extract_cubes(volume, np.array([[1.0, -2.0, 5.0]]), 3),
                                  extract_cubes(volume, np.array([[1, -2, 5]]), 3))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.tuples(*[st.integers(4, 30)] * 3), st.integers(1, 6))
def test_box_leaves_volume_when_any_point_of_the_box_does(seed, shape, half):
    # brute force: every lattice point of the box (corners included) mapped by the warp, each tested against
    # the voxels' span [-0.5, n - 0.5]; the warps are near-identity, placed so that about half the boxes leave
    rng = np.random.default_rng(seed)
    low, high = np.array([-half, -half + 1, -half]), np.array([half, half, half - 1])
    warps = np.concatenate([np.eye(3) + rng.uniform(-0.15, 0.15, (40, 3, 3)),
                            rng.uniform(-2.0, np.array(shape) + 1.0, (40, 3))[:, :, None]], axis=2)
    box = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(low, high)], indexing="ij"), -1).reshape(-1, 3)
    points = np.einsum("bij,nj->bni", warps[:, :, :3], box) + warps[:, None, :, 3]
    want = np.any((points < -0.5) | (points > np.array(shape) - 0.5), axis=(1, 2))
    np.testing.assert_array_equal(box_leaves_volume(warps, low, high, shape), want)


def test_box_leaves_volume_counts_a_corner_on_the_limit_inside_unless_within_the_margin():
    # a 5-voxel cube whose highest x corner lies exactly on the last x voxel's far side, n - 0.5 = 9.5
    warp = np.concatenate([np.eye(3), [[4.0], [4.0], [7.5]]], axis=1)[None]
    low, high = [-2, -2, -2], [2, 2, 2]
    assert not box_leaves_volume(warp, low, high, (9, 9, 10))[0]
    assert box_leaves_volume(warp, low, high, (9, 9, 10), margin_voxels=1e-6)[0]
    warp[0, 2, 3] = 1.5                           # now the lowest x corner on -0.5
    assert not box_leaves_volume(warp, low, high, (9, 9, 10))[0]
    assert box_leaves_volume(warp, low, high, (9, 9, 10), margin_voxels=1e-6)[0]
