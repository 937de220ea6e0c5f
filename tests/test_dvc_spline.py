"""Cubic B-spline sampling (analysis.dvc.interpolate) against scipy's spline interpolation and the sums' definition.

scipy.ndimage.map_coordinates (order 3, mirror boundary) is an independent
implementation of the same interpolating spline; the correlation sums are
then summed point by point in float64, as SplineVolume.correlation_sums'
docstring defines them (issue #19).
"""

import os
from unittest import mock

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings, strategies as st

from analysis.dvc.grid import subvolume_offsets
from analysis.dvc.interpolate import SplineVolume, device_array, spline_coefficients

SHAPE = (14, 15, 16)


def _volume(seed=0):
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.normal(size=SHAPE), 1.0).astype(np.float32) * 10 + 3


def _points(warps, offsets):
    """(B, n, 3) positions W [x, 1] of the offsets, voxels."""
    return np.einsum("bij,nj->bni", warps[:, :, :3], offsets) + warps[:, None, :, 3]


def _sums_by_definition(g, offsets, fn, grad, w=None):
    """sum w g, sum w g^2, sum w g fn, sum w g grad_i [x, 1]_j (row-major), then sum g, sum g^2, sum g fn per
    node, float64 (w = 1 if None)."""
    g = g.astype(np.float64)
    w = np.ones(len(offsets)) if w is None else w.astype(np.float64)
    xh = np.column_stack([offsets, np.ones(len(offsets))])
    out = [(w * g).sum(axis=1), (w * g * g).sum(axis=1), (w * g * fn).sum(axis=1)]
    for i in range(3):
        for j in range(4):
            out.append((w * g * grad[:, i, :] * xh[:, j]).sum(axis=1))
    out += [g.sum(axis=1), (g * g).sum(axis=1), (g * fn).sum(axis=1)]
    return np.stack(out, axis=1)


def _case(s, seed):
    """Random near-identity affine warps of 4 nodes whose points stay inside the volume (near faces too)."""
    rng = np.random.default_rng(seed)
    offsets = subvolume_offsets(s).astype(np.float64)
    centres = np.array([[7.0, 7.5, 8.0], [s / 2, s / 2, s / 2], [13 - s / 2, 14 - s / 2, 15 - s / 2], [6.3, 9.1, 7.7]])
    linear = np.eye(3) + rng.uniform(-0.04, 0.04, (4, 3, 3))
    warps = np.concatenate([linear, centres[:, :, None]], axis=2)
    fn = rng.normal(size=(4, len(offsets))).astype(np.float32)
    grad = rng.normal(size=(4, 3, len(offsets))).astype(np.float32)
    return offsets, warps, fn, grad


@pytest.mark.parametrize("s, cube", [(5, False), (5, True), (6, True), (7, True)])
def test_correlation_sums_are_sums_of_spline_samples(s, cube):
    volume = _volume()
    offsets, warps, fn, grad = _case(s, s)
    points = _points(warps, offsets)
    assert points.min() >= -0.6 and np.all(points.max(axis=(0, 1)) <= np.array(SHAPE) - 0.4)
    g = ndi.map_coordinates(volume.astype(np.float64), points.reshape(-1, 3).T, order=3,
                            mode="mirror").reshape(len(warps), -1)
    want = _sums_by_definition(g, offsets, fn, grad)
    got = SplineVolume(volume).correlation_sums(warps, offsets, fn, grad, cube_edge=s if cube else None)
    assert got.shape == (4, 18) and got.dtype == np.float64
    scale = np.abs(want).max(axis=0)             # each sum against its own size (float32 samples)
    np.testing.assert_allclose(got / scale, want / scale, rtol=0, atol=1e-5)


@pytest.mark.parametrize("s, cube", [(5, False), (5, True), (7, True)])
def test_correlation_sums_with_null_outside_read_0_past_the_faces_and_the_spline_inside(s, cube):
    volume = _volume()
    offsets, warps, fn, grad = _case(s, s)
    # the first two nodes pushed across faces (2.2 voxels past z = 0, 1.7 past the last x), with points on
    # both sides of the limits -0.5 and n - 0.5; the others stay inside as in _case
    warps[0, 0, 3] = s // 2 - 2.2
    warps[1, 2, 3] = SHAPE[2] - 1 - s // 2 + 1.7
    points = _points(warps, offsets)
    inside = np.all((points >= -0.5) & (points <= np.array(SHAPE) - 0.5), axis=2)
    assert not inside[:2].all() and inside[:2].any() and inside[2:].all()
    g = ndi.map_coordinates(volume.astype(np.float64), points.reshape(-1, 3).T, order=3,
                            mode="mirror").reshape(len(warps), -1)
    want = _sums_by_definition(np.where(inside, g, 0.0), offsets, fn, grad)
    got = SplineVolume(volume).correlation_sums(warps, offsets, fn, grad, cube_edge=s if cube else None,
                                                null_outside=True)
    scale = np.abs(want).max(axis=0)
    np.testing.assert_allclose(got / scale, want / scale, rtol=0, atol=1e-5)


@pytest.mark.parametrize("s, cube", [(5, False), (7, True)])
def test_correlation_sums_of_warps_inside_are_the_same_bytes_with_or_without_nulls(s, cube):
    # a node whose warped box stays inside reads no null: paper mode's sums of it are best mode's, bit for bit
    volume = _volume()
    offsets, warps, fn, grad = _case(s, s + 10)
    warps[0, 0, 3] = s // 2 - 2.2                  # one node across z = 0 in the same batch
    spline, edge = SplineVolume(volume), s if cube else None
    plain = spline.correlation_sums(warps, offsets, fn, grad, cube_edge=edge)
    null = spline.correlation_sums(warps, offsets, fn, grad, cube_edge=edge, null_outside=True)
    assert plain[1:].tobytes() == null[1:].tobytes()
    assert not np.allclose(plain[0], null[0])


def test_correlation_sums_use_given_values_instead_of_sampling():
    volume = _volume()
    offsets, warps, fn, grad = _case(5, 1)
    given = np.random.default_rng(2).normal(size=fn.shape).astype(np.float32)
    want = _sums_by_definition(given, offsets, fn, grad)
    for cube_edge in (None, 5):
        got = SplineVolume(volume).correlation_sums(warps, offsets, fn, grad, given=given, cube_edge=cube_edge)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("cube", [False, True])
def test_correlation_sums_weigh_every_sample_by_its_window_weight(cube):
    # weights far from 1 and from each other (0.05-3), so a dropped weight in any of the 15 sums shows
    volume = _volume()
    offsets, warps, fn, grad = _case(5, 3)
    w = np.random.default_rng(4).uniform(0.05, 3.0, len(offsets)).astype(np.float32)
    g = ndi.map_coordinates(volume.astype(np.float64), _points(warps, offsets).reshape(-1, 3).T, order=3,
                            mode="mirror").reshape(len(warps), -1)
    want = _sums_by_definition(g, offsets, fn, grad, w)
    got = SplineVolume(volume).correlation_sums(warps, offsets, fn, grad, cube_edge=5 if cube else None, weights=w)
    scale = np.abs(want).max(axis=0)
    np.testing.assert_allclose(got / scale, want / scale, rtol=0, atol=1e-5)
    given = np.random.default_rng(5).normal(size=fn.shape).astype(np.float32)
    got = SplineVolume(volume).correlation_sums(warps, offsets, fn, grad, given=given, weights=w)
    np.testing.assert_allclose(got, _sums_by_definition(given, offsets, fn, grad, w), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("weights", [np.ones(124), np.r_[np.ones(124), 0.0], -np.ones(125)],
                         ids=["too few", "a zero", "negative"])
def test_correlation_sums_refuse_a_window_that_is_not_one_positive_weight_per_point(weights):
    offsets, warps, fn, grad = _case(5, 1)
    with pytest.raises(ValueError, match="^weights: expected 125 positive window weights"):
        SplineVolume(_volume()).correlation_sums(warps, offsets, fn, grad, cube_edge=5, weights=weights)


@pytest.mark.parametrize("cube_edge, given", [(None, False), (5, False), (None, True), (5, True)])
def test_correlation_sums_read_each_warps_row_of_the_reference_arrays(cube_edge, given):
    # warps 0..2 of the case, read against rows 3, 0 and 3 of 4 rows of fn, grad (and given values): the
    # same sums as with those rows gathered first (every row differs, so a wrong row shows)
    volume = _volume()
    offsets, warps, fn, grad = _case(5, 6)
    values = np.random.default_rng(7).normal(size=fn.shape).astype(np.float32) if given else None
    rows = np.array([3, 0, 3])
    spline = SplineVolume(volume)
    got = spline.correlation_sums(warps[:3], offsets, fn, grad, given=values, cube_edge=cube_edge, rows=rows)
    want = spline.correlation_sums(warps[:3], offsets, fn[rows], grad[rows],
                                   given=None if values is None else values[rows], cube_edge=cube_edge)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, spline.correlation_sums(warps[:3], offsets, fn[:3], grad[:3], cube_edge=cube_edge,
                                                           given=None if values is None else values[:3]))


@pytest.mark.parametrize("rows, message", [(np.array([0, 1]), r"^rows: expected one index per warp, shape \(3,\)"),
                                           (np.array([0, 1, 4]), r"^rows: expected indices in 0 \.\. 3")])
def test_correlation_sums_refuse_rows_that_do_not_fit(rows, message):
    offsets, warps, fn, grad = _case(5, 1)
    with pytest.raises(ValueError, match=message):
        SplineVolume(_volume()).correlation_sums(warps[:3], offsets, fn, grad, cube_edge=5, rows=rows)


def test_correlation_sums_of_no_nodes_are_empty():
    got = SplineVolume(_volume()).correlation_sums(np.zeros((0, 3, 4)), subvolume_offsets(5), np.zeros((0, 125)),
                                                   np.zeros((0, 3, 125)), cube_edge=5)
    assert got.shape == (0, 18)


def test_resampling_matches_scipy_up_to_the_faces():
    # a turn of 0.2 rad about z with a 0.9 scale about the centre keeps every sample inside the volume,
    # where the mirrored coefficients are scipy's mirror boundary exactly
    volume = _volume(3)
    c, s = np.cos(0.2), np.sin(0.2)
    linear = 0.9 * np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    centre = (np.array(SHAPE) - 1) / 2
    warp = np.concatenate([linear, (centre - linear @ centre)[:, None]], axis=1)
    want = ndi.affine_transform(volume.astype(np.float64), linear, warp[:, 3], order=3, mode="mirror")
    got = SplineVolume(volume).resample(warp, SHAPE)
    assert got.dtype == np.float32 and got.shape == SHAPE
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


@settings(max_examples=40, deadline=None)
@given(shape=st.tuples(*[st.integers(1, 12)] * 3), threads=st.integers(1, 5), seed=st.integers(0, 2 ** 16))
def test_spline_coefficients_are_scipys_prefilter_bytes_on_any_number_of_threads(shape, threads, seed):
    # slabs of every size, down to single lines and to more threads than lines across the pass
    volume = np.random.default_rng(seed).normal(size=shape).astype(np.float32) * 100
    original = volume.copy()
    want = ndi.spline_filter(volume, order=3, output=np.float32, mode="mirror")
    with mock.patch.object(os, "sched_getaffinity", lambda pid: set(range(threads))):
        got = spline_coefficients(volume)
    assert got.dtype == np.float32 and np.array_equal(got, want)
    assert np.array_equal(volume, original)


def test_resampling_at_the_voxels_gives_the_voxels():
    volume = _volume(4)
    spline = SplineVolume(volume.astype(np.float64))
    assert spline.shape == SHAPE                    # the volume's, not the padded coefficients'
    got = spline.resample(np.eye(3, 4), SHAPE)
    np.testing.assert_allclose(got, volume, rtol=0, atol=2e-5 * np.abs(volume).max())


def test_device_array_on_the_cpu_is_a_contiguous_float32_copy_of_the_values():
    a = np.arange(24, dtype=np.float64).reshape(2, 3, 4)[:, :, ::2]
    got = device_array(a, "cpu")
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, a)


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_inputs_of_another_dtype_sample_like_the_kernels_own(dtype):
    # whole-voxel translations with the identity (exact in any of these dtypes), and float32 values
    # given as float64 (exact too): the same sums to the bit
    volume = _volume(5)
    offsets = subvolume_offsets(5).astype(np.float64)
    warps = np.concatenate([np.broadcast_to(np.eye(3), (2, 3, 3)), np.array([[[6], [7], [8]], [[4], [9], [5]]])],
                           axis=2)
    rng = np.random.default_rng(8)
    fn = rng.normal(size=(2, 125)).astype(np.float32)
    grad = rng.normal(size=(2, 3, 125)).astype(np.float32)
    given = rng.normal(size=(2, 125)).astype(np.float32)
    spline = SplineVolume(volume)
    for cube_edge, values in ((None, None), (5, None), (None, given)):
        want = spline.correlation_sums(warps.astype(np.float64), offsets, fn, grad, given=values,
                                       cube_edge=cube_edge)
        got = spline.correlation_sums(warps.astype(dtype), offsets, fn.astype(np.float64), grad.astype(np.float64),
                                      given=None if values is None else values.astype(np.float64),
                                      cube_edge=cube_edge)
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(spline.resample(np.eye(3, 4, dtype=dtype), SHAPE),
                                  spline.resample(np.eye(3, 4), SHAPE))


def test_the_upload_branch_holds_the_values_and_samples_like_the_cpu_path(monkeypatch):
    # On a GPU, device_array uploads once into a taichi ndarray. Its branch is taken here by making
    # the module see "gpu" while taichi keeps its CPU runtime (a taichi ndarray lives on either), so
    # the upload is checked on every machine; the GPU itself is the device check's job.
    import taichi as ti

    import analysis.dvc.interpolate as interpolate

    a = np.arange(24, dtype=np.float64).reshape(2, 3, 4)[:, :, ::2] * 0.5
    volume = _volume(6)
    cpu = SplineVolume(volume)
    monkeypatch.setattr(interpolate, "ensure_taichi", lambda arch: "gpu")
    got = device_array(a, "gpu")
    assert isinstance(got, ti.Ndarray) and got.dtype == ti.f32 and got.shape == (2, 3, 2)
    np.testing.assert_array_equal(got.to_numpy(), a)
    uploaded = SplineVolume(volume, arch="gpu")
    assert uploaded.shape == SHAPE
    c, s = np.cos(0.1), np.sin(0.1)
    warp = np.array([[1.0, 0, 0, 0.3], [0, c, -s, 0.6], [0, s, c, -0.4]])
    np.testing.assert_array_equal(uploaded.resample(warp, (8, 9, 10)), cpu.resample(warp, (8, 9, 10)))
