"""Pre-processing (analysis.preprocess) against scipy and known transforms."""

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

import analysis.preprocess as preprocess
from analysis.preprocess import RigidTransform, apply_rigid, match_histogram, median_filter, register_rigid
from synthcal.strategies import Warp, render_texture


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**32 - 1),
       st.sampled_from([np.float32, np.uint16, np.uint8]))
def test_median_matches_scipy(nz, ny, nx, seed, dtype):
    rng = np.random.default_rng(seed)
    v = (rng.random((nz, ny, nx)) * 200).astype(dtype)
    out = median_filter(v)
    assert out.dtype == v.dtype
    np.testing.assert_array_equal(out, ndi.median_filter(v, size=3, mode="reflect"))


def test_median_iterations_and_other_sizes():
    v = np.random.default_rng(1).random((9, 10, 11)).astype(np.float32)
    np.testing.assert_array_equal(median_filter(v, iterations=2),
                                  ndi.median_filter(ndi.median_filter(v, size=3), size=3))
    np.testing.assert_array_equal(median_filter(v, size=5), ndi.median_filter(v, size=5))
    np.testing.assert_array_equal(median_filter(v, iterations=0), v)
    with pytest.raises(ValueError):
        median_filter(v, size=2)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=0, max_size=3), slab_values=st.integers(1, 200),
       dtype=st.sampled_from([np.float32, np.float64, np.int16]), seed=st.integers(0, 2 ** 16))
def test_the_grey_level_mapping_in_slabs_gives_the_bytes_of_one_interp(shape, slab_values, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * 100).astype(dtype)
    xp = np.unique(rng.normal(size=50) * 120)
    fp = np.sort(rng.normal(size=xp.size))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(preprocess, "_INTERP_SLAB_VALUES", slab_values)
        got = preprocess._interp_float32(x, xp, fp)
    want = np.interp(x, xp, fp).astype(np.float32)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_match_histogram_undoes_a_monotone_map():
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(40, 40, 40)).astype(np.float32)
    volume = np.exp(reference) * 3.0 + 1.0
    matched = match_histogram(volume, reference)
    assert matched.dtype == np.float32
    inner = (reference > np.quantile(reference, 0.01)) & (reference < np.quantile(reference, 0.99))
    assert np.abs(matched - reference)[inner].max() < 0.02


def textured(n=64, warp=None):
    """Periodic unit-std speckle (sigma 1.6 voxels) on n^3 voxels, moved by ``warp`` (exact, see strategies)."""
    return render_texture("speckle", (n, n, n), seed=3, warp=warp)


def rigid(rotation, translation, n=64):
    """Motion that puts reference material at p at c + t + R (p - c), c the centre of an n^3 volume."""
    return Warp.affine(np.asarray(rotation) - np.eye(3), translation_voxels=translation,
                       centre_voxels=np.full(3, (n - 1) / 2))


@settings(max_examples=5, deadline=None)
@given(st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3), st.floats(0.2, 2.0),
       st.integers(0, 2**32 - 1))
def test_register_rigid_recovers_shift_and_rotation(translation, angle_deg, seed):
    ref = textured()
    axis = Rotation.random(random_state=seed).as_rotvec()
    rot = Rotation.from_rotvec(np.radians(angle_deg) * axis / np.linalg.norm(axis)).as_matrix()
    mov = 1.7 * textured(warp=rigid(rot, translation)) + 0.3
    region = (slice(16, 48),) * 3
    tr = register_rigid(mov, ref, region=region)
    c = (np.array(ref.shape) - 1) / 2
    expected_t = np.asarray(translation) + (rot - np.eye(3)) @ (tr.centre_voxels - c)
    assert np.abs(tr.translation_voxels - expected_t).max() < 0.02
    assert np.abs(tr.rotation - rot).max() < 1e-3
    assert tr.rotation_angle_deg == pytest.approx(angle_deg, abs=0.02)
    back = apply_rigid(mov, tr)
    inner = (slice(20, 44),) * 3
    assert np.corrcoef(back[inner].ravel(), ref[inner].ravel())[0, 1] > 0.999


def test_apply_rigid_identity_and_bad_input():
    ref = textured(24)
    ident = RigidTransform(rotation=np.eye(3), translation_voxels=np.zeros(3),
                           centre_voxels=np.full(3, 11.5), cc=1.0)
    np.testing.assert_allclose(apply_rigid(ref, ident), ref, atol=1e-5)
    with pytest.raises(ValueError):
        apply_rigid(ref, "not a transform")
    with pytest.raises(ValueError):
        register_rigid(ref, ref[:-1])
