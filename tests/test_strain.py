"""Strain from node fields (analysis.strain) against analytic tensors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from analysis.strain import (cap, displacement_gradient, equivalent_strain, green_lagrange,
                             principal_strains, small_strain, volumetric_strain)

small = st.floats(-0.05, 0.05, allow_nan=False)


def grid(n=6, spacing=7.0):
    r = np.arange(n) * spacing
    return np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)


@settings(max_examples=25, deadline=None)
@given(st.lists(small, min_size=9, max_size=9), st.lists(st.floats(-5, 5), min_size=3, max_size=3),
       st.integers(0, 2**32 - 1))
def test_affine_field_gives_its_gradient(g, t, seed):
    gradient = np.array(g).reshape(3, 3)
    nodes = grid()
    u = np.asarray(t) + nodes @ gradient.T
    ok = np.random.default_rng(seed).random(len(nodes)) > 0.2
    u[~ok] = 1e6   # garbage at rejected nodes must not leak into the fit
    h = displacement_gradient(nodes, u, ok)
    fitted = np.all(np.isfinite(h), axis=(1, 2))
    assert fitted.mean() > 0.5
    assert np.abs(h[fitted] - gradient).max() < 1e-9
    eps = small_strain(h[fitted])
    assert np.abs(eps - 0.5 * (gradient + gradient.T)).max() < 1e-9
    f = np.eye(3) + gradient
    assert np.abs(green_lagrange(h[fitted]) - 0.5 * (f.T @ f - np.eye(3))).max() < 1e-9


def test_isolated_nodes_give_nan():
    nodes = grid(4)
    ok = np.zeros(len(nodes), dtype=bool)
    ok[:3] = True
    h = displacement_gradient(nodes, np.zeros_like(nodes), ok)
    assert np.all(np.isnan(h))


@settings(max_examples=25, deadline=None)
@given(small, small, small, st.integers(0, 2**32 - 1))
def test_invariants_of_rotated_diagonal_strain(a, b, c, seed):
    q = Rotation.random(random_state=seed).as_matrix()
    e = q @ np.diag([a, b, c]) @ q.T
    assert volumetric_strain(e) == pytest.approx(a + b + c, abs=1e-12)
    np.testing.assert_allclose(principal_strains(e), sorted([a, b, c], reverse=True), atol=1e-12)
    m = (a + b + c) / 3
    expected = np.sqrt(2 / 3 * ((a - m) ** 2 + (b - m) ** 2 + (c - m) ** 2))
    assert equivalent_strain(e) == pytest.approx(expected, abs=1e-12)


def test_equivalent_strain_of_simple_cases():
    assert equivalent_strain(0.01 * np.eye(3)) == pytest.approx(0.0, abs=1e-15)
    assert equivalent_strain(np.diag([-0.03, 0.0, 0.0])) == pytest.approx(0.02)


def test_cap_for_display():
    v = np.array([-0.3, -0.1, -0.05, 0.2, np.nan])
    out = cap(v)
    np.testing.assert_array_equal(out[:4], [-0.1, -0.1, -0.05, 0.2])
    assert np.isnan(out[4])
    with pytest.raises(ValueError):
        cap(v, lower=0.1, upper=0.0)


def test_bad_input_raises():
    with pytest.raises(ValueError):
        displacement_gradient(np.zeros((5, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError):
        small_strain(np.zeros((4, 2, 2)))
