"""Scores are honest: a perfect result scores zero, a shifted one scores the shift."""

import numpy as np
from hypothesis import given, settings, strategies as st

from validation import score


@settings(max_examples=50, deadline=None)
@given(shift=st.tuples(*[st.floats(-3, 3)] * 3), n=st.integers(5, 200), seed=st.integers(0, 2**31 - 1))
def test_shifted_result_scores_the_shift(shift, n, seed):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n, 3))
    stats = score.vector_error_stats(truth + np.asarray(shift), truth, voxel_size_um=0.25)
    norm = float(np.linalg.norm(shift))
    assert np.isclose(stats["rms_error_voxels"], norm, atol=1e-9)
    assert np.isclose(stats["median_error_voxels"], norm, atol=1e-9)
    assert np.allclose(stats["bias_voxels"], shift, atol=1e-9)
    assert np.isclose(stats["rms_error_um"], 0.25 * norm, atol=1e-9)
    assert stats["nodes"] == n


def test_perfect_result_scores_zero_and_nan_truth_is_left_out():
    truth = np.arange(30, dtype=float).reshape(10, 3)
    truth[3] = np.nan
    measured = np.where(np.isnan(truth), 99.0, truth)
    stats = score.vector_error_stats(measured, truth, voxel_size_um=1.0)
    assert stats["rms_error_voxels"] == 0 and stats["nodes"] == 9


def test_valid_mask_and_cc_bins():
    errors = np.array([0.1, 0.1, 2.0, 2.0])
    cc = np.array([0.99, 0.97, 0.3, 0.4])
    rows = score.error_by_cc(errors, cc)
    low = [r for r in rows if r["cc_high"] <= 0.5][0]
    high = [r for r in rows if r["cc_low"] >= 0.95][0]
    assert low["nodes"] == 2 and np.isclose(low["rms_error_voxels"], 2.0)
    assert high["nodes"] == 2 and np.isclose(high["rms_error_voxels"], 0.1)


def test_tensor_error():
    truth = np.zeros((4, 3, 3))
    measured = truth.copy()
    measured[:, 0, 0] = 0.01
    assert np.isclose(score.tensor_rms_error(measured, truth)["rms_error"], 0.01)
