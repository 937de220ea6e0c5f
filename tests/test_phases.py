"""Phase membership of label volumes."""

import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from analysis.phases import Phase, in_phases

LABELS = arrays(np.uint8, st.tuples(st.integers(2, 4), st.integers(3, 6), st.integers(3, 6)),
                elements=st.integers(0, 4) | st.integers(0, 255))


@settings(max_examples=100, deadline=None)
@given(LABELS, st.sets(st.integers(0, 4) | st.sampled_from([255, 300]), min_size=1, max_size=5))
def test_in_phases_is_membership_of_each_voxel(labels, phases):
    # the definition, voxel by voxel: a label is in the set or it is not (300: a phase no uint8 can hold)
    expected = np.array([int(v) in phases for v in labels.ravel()], dtype=bool).reshape(labels.shape)
    got = in_phases(labels, phases)
    assert got.dtype == bool and got.shape == labels.shape
    np.testing.assert_array_equal(got, expected)
    # other integer dtypes give the same answer
    np.testing.assert_array_equal(in_phases(labels.astype(np.int32), phases), expected)


def test_in_phases_takes_phase_members():
    labels = np.array([[[0, 1, 2, 3, 4]]], dtype=np.uint8)
    np.testing.assert_array_equal(in_phases(labels, (Phase.PORE, Phase.CBD)), [[[True, True, False, False, False]]])
