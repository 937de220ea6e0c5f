"""validation.score against hand-worked answers: uneven errors, so that RMS,
mean and median differ, and every statistic has a value typed in by hand."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from validation import score

# Four nodes whose error vectors (measured - truth, z-y-x) have norms 0, 0, 3, 4.
TRUTH = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0], [0.0, 0.0, 0.0], [4.0, -2.0, 1.0]])
DIFF = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, -4.0]])
MEASURED = TRUTH + DIFF
VOXEL_UM = 0.5


def _stats(**kwargs):
    return score.vector_error_stats(MEASURED, TRUTH, VOXEL_UM, **kwargs)


def test_rms_of_errors_0_0_3_4_is_2p5():
    # sqrt((0 + 0 + 9 + 16) / 4) = sqrt(25 / 4); the plain mean would be 1.75
    assert _stats()["rms_error_voxels"] == pytest.approx(2.5, abs=1e-12)


def test_median_of_errors_0_0_3_4_is_1p5():
    # the two middle values 0 and 3
    assert _stats()["median_error_voxels"] == pytest.approx(1.5, abs=1e-12)


def test_p95_of_errors_0_0_3_4_is_3p85_by_linear_interpolation():
    # rank 0.95 * (4 - 1) = 2.85 between the sorted values 3 and 4: 3 + 0.85 * (4 - 3)
    assert _stats()["p95_error_voxels"] == pytest.approx(3.85, abs=1e-12)


def test_max_of_errors_0_0_3_4_is_4():
    assert _stats()["max_error_voxels"] == 4.0


def test_bias_is_the_mean_error_vector_measured_minus_truth_zyx():
    # ((0 + 0 + 3 + 0) / 4, 0, (0 + 0 + 0 - 4) / 4)
    assert _stats()["bias_voxels"] == pytest.approx([0.75, 0.0, -1.0], abs=1e-12)


def test_micrometre_values_are_the_voxel_values_times_0p5_um():
    s = _stats()
    assert s["rms_error_um"] == pytest.approx(1.25, abs=1e-12)
    assert s["median_error_um"] == pytest.approx(0.75, abs=1e-12)
    assert s["p95_error_um"] == pytest.approx(1.925, abs=1e-12)
    assert s["max_error_um"] == pytest.approx(2.0, abs=1e-12)
    assert s["bias_um"] == pytest.approx([0.375, 0.0, -0.5], abs=1e-12)
    assert s["nodes"] == 4


def test_nan_truth_nan_measurement_and_invalid_nodes_are_left_out():
    truth = np.vstack([TRUTH, [[np.nan, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    measured = np.vstack([MEASURED, [[9.0, 9.0, 9.0], [0.0, np.nan, 0.0], [10.0, 0.0, 0.0]]])
    valid = np.array([True, True, True, True, True, True, False])  # the last (error 10) is not ok
    s = score.vector_error_stats(measured, truth, VOXEL_UM, valid=valid)
    assert s["nodes"] == 4
    assert s["rms_error_voxels"] == pytest.approx(2.5, abs=1e-12)
    assert s["max_error_voxels"] == 4.0
    assert s["bias_voxels"] == pytest.approx([0.75, 0.0, -1.0], abs=1e-12)


def test_valid_mask_picks_the_nodes_scored():
    # only the nodes with errors 0 and 4: rms sqrt(16 / 2), median 2, p95 0 + 0.95 * 4
    s = _stats(valid=np.array([True, False, False, True]))
    assert s["nodes"] == 2
    assert s["rms_error_voxels"] == pytest.approx(math.sqrt(8.0), abs=1e-12)
    assert s["median_error_voxels"] == pytest.approx(2.0, abs=1e-12)
    assert s["p95_error_voxels"] == pytest.approx(3.8, abs=1e-12)
    assert s["bias_voxels"] == pytest.approx([0.0, 0.0, -2.0], abs=1e-12)


def test_no_scored_node_gives_nan_everywhere_and_zero_nodes():
    s = _stats(valid=np.zeros(4, bool))
    assert s["nodes"] == 0
    for key in ("rms_error", "median_error", "p95_error", "max_error"):
        assert math.isnan(s[f"{key}_voxels"]) and math.isnan(s[f"{key}_um"])
    assert len(s["bias_voxels"]) == 3 and all(math.isnan(b) for b in s["bias_voxels"] + s["bias_um"])


@pytest.mark.parametrize("measured, truth", [(np.zeros((4, 3)), np.zeros((5, 3))), (np.zeros((4, 2)), np.zeros((4, 2))),
                                             (np.zeros(3), np.zeros(3))])
def test_vector_shapes_other_than_equal_n_by_3_are_rejected(measured, truth):
    with pytest.raises(ValueError, match="measured, truth"):
        score.vector_error_stats(measured, truth, 1.0)


@settings(max_examples=40, deadline=None)
@given(a=st.floats(0.0, 10.0), b=st.floats(0.0, 10.0), k=st.integers(1, 6), m=st.integers(1, 6),
       voxel=st.floats(0.01, 2.0))
def test_two_error_populations_give_their_closed_form_statistics(a, b, k, m, voxel):
    """k nodes off by a along +z, m nodes off by b along -x."""
    diff = np.array([[a, 0.0, 0.0]] * k + [[0.0, 0.0, -b]] * m)
    truth = np.arange(3 * (k + m), dtype=float).reshape(-1, 3)
    s = score.vector_error_stats(truth + diff, truth, voxel)
    n = k + m
    rms = math.sqrt((k * a * a + m * b * b) / n)
    assert s["rms_error_voxels"] == pytest.approx(rms, rel=1e-9, abs=1e-12)
    assert s["rms_error_um"] == pytest.approx(rms * voxel, rel=1e-9, abs=1e-12)
    assert s["max_error_voxels"] == pytest.approx(max(a, b), rel=1e-9, abs=1e-12)
    assert s["bias_voxels"] == pytest.approx([k * a / n, 0.0, -m * b / n], rel=1e-9, abs=1e-12)
    if k != m:  # the median is the value of the majority
        assert s["median_error_voxels"] == pytest.approx(a if k > m else b, rel=1e-9, abs=1e-12)
    else:       # or the midpoint of the two middle values
        assert s["median_error_voxels"] == pytest.approx(0.5 * (a + b), rel=1e-9, abs=1e-12)


# error_by_cc on the default edges (-1, 0.5, 0.7, 0.8, 0.9, 0.95, 1):
# cc on every edge, one bin empty, NaN error and NaN cc left out.
CC = np.array([-1.0, 0.2, 0.5, 0.69, 0.7, 0.9, 0.93, 0.949, 0.95, 1.0, np.nan, 0.85])
ERR = np.array([1.0, 3.0, 2.0, 4.0, 6.0, 1.0, 2.0, 2.0, 3.0, 4.0, 5.0, np.nan])
EXPECTED_BINS = [  # (cc_low, cc_high, nodes, rms worked by hand)
    (-1.0, 0.5, 2, math.sqrt((1 + 9) / 2)),
    (0.5, 0.7, 2, math.sqrt((4 + 16) / 2)),
    (0.7, 0.8, 1, 6.0),
    (0.8, 0.9, 0, math.nan),
    (0.9, 0.95, 3, math.sqrt((1 + 4 + 4) / 3)),
    (0.95, 1.0, 2, math.sqrt((9 + 16) / 2)),   # the last bin holds its upper edge, cc = 1
]


@pytest.mark.parametrize("b", range(len(EXPECTED_BINS)))
def test_error_by_cc_bin_holds_the_nodes_worked_by_hand(b):
    row = score.error_by_cc(ERR, CC)[b]
    low, high, nodes, rms = EXPECTED_BINS[b]
    assert (row["cc_low"], row["cc_high"], row["nodes"]) == (low, high, nodes)
    if nodes:
        assert row["rms_error_voxels"] == pytest.approx(rms, abs=1e-12)
    else:
        assert math.isnan(row["rms_error_voxels"])


def test_error_by_cc_has_one_row_per_bin():
    assert len(score.error_by_cc(ERR, CC)) == 6
    assert len(score.error_by_cc(ERR, CC, edges=(0.0, 1.0))) == 1


def test_error_by_cc_with_own_edges_puts_an_edge_value_in_the_upper_bin():
    rows = score.error_by_cc([1.0, 2.0, 3.0], [0.25, 0.5, 1.0], edges=(0.0, 0.5, 1.0))
    assert [(r["cc_low"], r["cc_high"], r["nodes"]) for r in rows] == [(0.0, 0.5, 1), (0.5, 1.0, 2)]
    assert rows[0]["rms_error_voxels"] == pytest.approx(1.0, abs=1e-12)
    assert rows[1]["rms_error_voxels"] == pytest.approx(math.sqrt((4 + 9) / 2), abs=1e-12)


def test_error_by_region_is_the_rms_of_the_finite_errors_in_each_region():
    errors = np.array([1.0, 2.0, np.nan, 4.0, 0.0])
    regions = {"a": np.array([1, 1, 1, 0, 0], bool), "b": np.array([0, 0, 0, 1, 1], bool),
               "empty": np.zeros(5, bool), "all": np.ones(5, bool)}
    out = score.error_by_region(errors, regions)
    assert list(out) == ["a", "b", "empty", "all"]
    assert out["a"]["nodes"] == 2 and out["a"]["rms_error_voxels"] == pytest.approx(math.sqrt(2.5), abs=1e-12)
    assert out["b"]["nodes"] == 2 and out["b"]["rms_error_voxels"] == pytest.approx(math.sqrt(8.0), abs=1e-12)
    assert out["empty"]["nodes"] == 0 and math.isnan(out["empty"]["rms_error_voxels"])
    assert out["all"]["nodes"] == 4 and out["all"]["rms_error_voxels"] == pytest.approx(math.sqrt(21 / 4), abs=1e-12)


def _tensors():
    """Five nodes: Frobenius errors 0, 3, 4, a NaN node and an invalid node off by 10."""
    truth = np.tile(np.array([[0.01, 0.002, 0.0], [0.002, -0.02, 0.0], [0.0, 0.0, 0.005]]), (5, 1, 1))
    measured = truth.copy()
    measured[1, 0] += [1.0, 2.0, 2.0]      # sqrt(1 + 4 + 4) = 3
    measured[2, 1, 2] += 4.0               # one off-diagonal entry: 4
    measured[3, 2, 2] = np.nan
    measured[4, 0, 0] += 10.0
    return measured, truth


def test_tensor_rms_error_of_frobenius_errors_0_3_4_is_sqrt_25_over_3():
    measured, truth = _tensors()
    out = score.tensor_rms_error(measured, truth, valid=np.array([True, True, True, True, False]))
    assert out["nodes"] == 3
    assert out["rms_error"] == pytest.approx(math.sqrt(25 / 3), abs=1e-12)


def test_tensor_rms_error_without_mask_counts_every_finite_node():
    measured, truth = _tensors()
    out = score.tensor_rms_error(measured, truth)
    assert out["nodes"] == 4
    assert out["rms_error"] == pytest.approx(math.sqrt(125 / 4), abs=1e-12)
    empty = score.tensor_rms_error(measured, truth, valid=np.zeros(5, bool))
    assert empty["nodes"] == 0 and math.isnan(empty["rms_error"])


def test_tensor_shapes_other_than_equal_n_by_3_by_3_are_rejected():
    with pytest.raises(ValueError, match="measured, truth"):
        score.tensor_rms_error(np.zeros((2, 3, 3)), np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match="measured, truth"):
        score.tensor_rms_error(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)))


@pytest.mark.parametrize("measured, truth, expected", [(1.1, 1.0, 0.1), (0.5, 2.0, -0.75), (3.0, -1.5, -3.0)])
def test_relative_error_is_signed_difference_over_truth(measured, truth, expected):
    assert score.relative_error(measured, truth) == pytest.approx(expected, abs=1e-12)


def test_relative_error_to_a_zero_truth_is_nan():
    assert math.isnan(score.relative_error(1.0, 0.0))


# ---- inputs as a caller may give them ----------------------------------------------

def test_float32_inputs_are_scored_in_double_precision():
    m32 = np.array([[0.1, 0.2, 0.3], [0.7, -0.4, 0.9]], dtype=np.float32)
    truth32 = np.zeros((2, 3), dtype=np.float32)
    m = m32.astype(np.float64)   # the float32 numbers, exactly
    norms = [math.sqrt(sum(v * v for v in row)) for row in m]
    s = score.vector_error_stats(m32, truth32, 1.0)
    assert s["rms_error_voxels"] == pytest.approx(math.sqrt((norms[0] ** 2 + norms[1] ** 2) / 2), rel=1e-15)
    assert s["max_error_voxels"] == pytest.approx(max(norms), rel=1e-15)
    t32 = np.zeros((1, 3, 3), np.float32)
    t32[0, 0] = [0.1, 0.2, 0.3]
    expected = math.sqrt(sum(float(v) ** 2 for v in t32[0, 0]))
    assert score.tensor_rms_error(t32, np.zeros((1, 3, 3), np.float32))["rms_error"] == pytest.approx(expected, rel=1e-15)
    rows = score.error_by_cc(np.float32([0.1, 0.3]), np.float32([0.99, 0.99]))
    assert rows[-1]["rms_error_voxels"] == pytest.approx(math.sqrt((float(np.float32(0.1)) ** 2
                                                                    + float(np.float32(0.3)) ** 2) / 2), rel=1e-15)
    out = score.error_by_region(np.float32([0.1, 0.3]), {"all": [True, True]})
    assert out["all"]["rms_error_voxels"] == pytest.approx(rows[-1]["rms_error_voxels"], rel=1e-15)


def test_masks_given_as_zeros_and_ones_select_like_booleans():
    s = score.vector_error_stats(MEASURED, TRUTH, VOXEL_UM, valid=[1, 0, 0, 1])
    assert s["nodes"] == 2 and s["rms_error_voxels"] == pytest.approx(math.sqrt(8.0), abs=1e-12)
    out = score.error_by_region(np.array([1.0, 2.0, 4.0]), {"r": np.array([0, 1, 1])})
    assert out["r"]["nodes"] == 2 and out["r"]["rms_error_voxels"] == pytest.approx(math.sqrt(10.0), abs=1e-12)
    measured, truth = _tensors()
    out = score.tensor_rms_error(measured, truth, valid=[1, 1, 1, 1, 0])
    assert out["nodes"] == 3 and out["rms_error"] == pytest.approx(math.sqrt(25 / 3), abs=1e-12)


def test_nan_in_the_truth_tensor_leaves_out_that_node_only():
    measured, truth = _tensors()
    measured[3, 2, 2] = 0.005     # node 3 is now finite in the measurement...
    truth[1, 0, 1] = np.nan       # ...and node 1 (error 3) has no truth
    out = score.tensor_rms_error(measured, truth, valid=np.array([True, True, True, True, False]))
    assert out["nodes"] == 3      # nodes 0, 2, 3: errors 0, 4, 0
    assert out["rms_error"] == pytest.approx(math.sqrt(16 / 3), abs=1e-12)


def test_cc_outside_the_edges_counts_in_the_first_or_last_bin():
    rows = score.error_by_cc([1.0, 2.0, 3.0], [-0.2, 0.25, 1.5], edges=(0.0, 0.5, 1.0))
    assert [r["nodes"] for r in rows] == [2, 1]
    assert rows[0]["rms_error_voxels"] == pytest.approx(math.sqrt((1 + 4) / 2), abs=1e-12)


@pytest.mark.filterwarnings("error")  # numpy warns on the mean of an empty selection
def test_empty_selections_give_nan_without_a_warning():
    assert math.isnan(score.error_by_cc([1.0], [0.99])[0]["rms_error_voxels"])
    assert math.isnan(score.error_by_region([1.0], {"none": [False]})["none"]["rms_error_voxels"])
    measured, truth = _tensors()
    assert math.isnan(score.tensor_rms_error(measured, truth, valid=np.zeros(5, bool))["rms_error"])
    assert math.isnan(score.vector_error_stats(MEASURED, TRUTH, 1.0, valid=np.zeros(4, bool))["rms_error_voxels"])
