"""analysis.strain on hand-made node fields: which nodes a fit uses, when it gives NaN, batches
of tensors, and the display cap (issue #19).

Expected values come from the fields themselves: an affine field u = t + G x has gradient G
at every node whatever neighbours a fit uses; a quadratic u_z = x^2 fitted on a neighbourhood
symmetric about the node has slope exactly 2 x_node (the central difference is exact for a
parabola), and any node added on one side tilts it.
"""

import numpy as np
import pytest

from analysis.strain import (cap, displacement_gradient, equivalent_strain, green_lagrange,
                             principal_strains, small_strain, volumetric_strain)

G = np.array([[0.01, -0.02, 0.03], [0.004, -0.05, 0.006], [-0.007, 0.008, 0.02]])   # not symmetric


def cube(n, spacing=1.0):
    r = np.arange(n) * spacing
    return np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)


def affine(nodes):
    return np.array([1.0, -2.0, 0.5]) + nodes @ G.T


def corners_faces_edges(nodes, n):
    """How many coordinates of each node of an n-cube lie on a face: 3 corner, 2 edge, 1 face, 0 inside."""
    return np.sum((nodes == nodes.min()) | (nodes == nodes.max()), axis=1)


def test_the_default_radius_reaches_the_26_neighbours_of_a_grid_node_and_no_further():
    # 3x3x3 unit grid: within sqrt(3) a corner node has 8 nodes (itself included), an edge node 12,
    # a face node 18, the centre 27; requiring 9 leaves exactly the corners unfitted, requiring 8 none
    nodes = cube(3)
    h = displacement_gradient(nodes, affine(nodes), min_neighbours=9)
    corner = corners_faces_edges(nodes, 3) == 3
    assert np.all(np.isnan(h[corner]))
    np.testing.assert_allclose(h[~corner], np.broadcast_to(G, h[~corner].shape), atol=1e-12)
    h = displacement_gradient(nodes, affine(nodes), min_neighbours=8)
    np.testing.assert_allclose(h, np.broadcast_to(G, h.shape), atol=1e-12)


def test_the_default_radius_scales_with_the_node_spacing():
    # the same grid at 7-voxel spacing: the same counts (corners 8 < 9)
    nodes = cube(3, 7.0)
    h = displacement_gradient(nodes, affine(nodes), min_neighbours=9)
    assert np.isnan(h[corners_faces_edges(nodes, 3) == 3]).all()
    assert np.isfinite(h[corners_faces_edges(nodes, 3) < 3]).all()


def test_an_explicit_radius_limits_the_neighbours():
    # radius 1.05: a node has itself and its 6 face neighbours at most: only the centre has 7
    nodes = cube(3)
    h = displacement_gradient(nodes, affine(nodes), radius_voxels=1.05)
    inside = corners_faces_edges(nodes, 3) == 0
    np.testing.assert_allclose(h[inside], [G], atol=1e-12)
    assert np.all(np.isnan(h[~inside]))


def test_the_fit_uses_the_27_nearest_nodes_by_default():
    # 5x5x5 grid, radius 10 (everything), u_z = x^2: the 27 nearest nodes of the centre (2, 2, 2) are
    # its 3x3x3 cube (distances <= sqrt 3 < 2), symmetric, so du_z/dx = 2 x = 4 exactly; a 28th node
    # (distance 2, on one side) would tilt the fit
    nodes = cube(5)
    u = np.zeros_like(nodes)
    u[:, 0] = nodes[:, 2] ** 2
    centre = np.flatnonzero(np.all(nodes == 2, axis=1))[0]
    h = displacement_gradient(nodes, u, radius_voxels=10.0)
    expected = np.zeros((3, 3))
    expected[0, 2] = 4.0
    np.testing.assert_allclose(h[centre], expected, atol=1e-12)
    tilted = displacement_gradient(nodes, u, radius_voxels=10.0, max_neighbours=28)[centre]
    assert np.abs(tilted - expected).max() > 1e-3


def test_a_nan_displacement_does_not_reach_the_neighbours_fits_with_or_without_ok():
    # DVC stores NaN at a failed node; left out of the fit, it weighs 0, and 0 x NaN is NaN: before the fix
    # every neighbour of a failed node (18 of 64 nodes here) got a NaN gradient. Each node of a 4x4x4 grid
    # keeps >= 7 finite neighbours without nodes 5 (0, 1, 1) and 43 (2, 2, 3), so every node gets G, those two included.
    nodes = cube(4)
    u = affine(nodes)
    u[5] = np.nan
    u[43, 1] = np.inf
    for ok in (None, np.ones(len(nodes), bool)):
        h = displacement_gradient(nodes, u, ok)
        np.testing.assert_allclose(h, np.broadcast_to(G, h.shape), atol=1e-12)


def test_a_node_left_out_does_not_count_towards_its_own_neighbours():
    # centre of a 3x3x3 grid with radius 1.05: itself + 6 face neighbours = 7 = min_neighbours;
    # marking it not ok leaves 6, so it gets NaN; a face neighbour marked not ok does the same
    nodes = cube(3)
    centre = np.flatnonzero(np.all(nodes == 1, axis=1))[0]
    ok = np.ones(len(nodes), bool)
    ok[centre] = False
    h = displacement_gradient(nodes, affine(nodes), ok, radius_voxels=1.05)
    assert np.all(np.isnan(h))
    ok[centre] = True
    ok[np.flatnonzero(np.all(nodes == [1, 1, 0], axis=1))[0]] = False
    assert np.isnan(displacement_gradient(nodes, affine(nodes), ok, radius_voxels=1.05)[centre]).all()


def test_coplanar_neighbours_give_nan_even_for_a_node_off_their_plane():
    # a 3x3 plane of nodes (z = 0) and one node above its centre, not ok: the node's 9 usable neighbours are
    # all in the plane, so du/dz cannot be fitted although the node itself lies off the plane
    plane = np.array([[0.0, y, x] for y in range(3) for x in range(3)])
    nodes = np.vstack([plane, [[1.0, 1.0, 1.0]]])
    ok = np.ones(len(nodes), bool)
    ok[-1] = False
    h = displacement_gradient(nodes, affine(nodes), ok, min_neighbours=4)
    assert np.all(np.isnan(h))


def test_collinear_neighbours_give_nan():
    nodes = np.column_stack([np.zeros(10), np.zeros(10), np.arange(10.0)])
    assert np.all(np.isnan(displacement_gradient(nodes, affine(nodes), radius_voxels=20.0, min_neighbours=4)))


def test_two_nodes_are_enough_to_ask_and_give_nan():
    h = displacement_gradient(np.array([[0.0, 0, 0], [1.0, 0, 0]]), np.zeros((2, 3)))
    assert h.shape == (2, 3, 3) and np.all(np.isnan(h))


@pytest.mark.parametrize("call, message", [
    (lambda: displacement_gradient(np.zeros((1, 3)), np.zeros((1, 3))),
     r"^nodes: expected an \(N, 3\) array with N >= 2, got shape \(1, 3\)$"),
    (lambda: displacement_gradient(np.zeros(3), np.zeros(3)), r"^nodes: expected an \(N, 3\) array"),
    (lambda: displacement_gradient(cube(2), np.zeros((8, 2))),
     r"^displacement: expected shape \(8, 3\) like nodes, got \(8, 2\)$"),
    (lambda: displacement_gradient(cube(2), np.zeros((8, 3)), np.ones(7, bool)),
     r"^ok: expected shape \(8,\), got \(7,\)$"),
    (lambda: displacement_gradient(cube(2), np.zeros((8, 3)), min_neighbours=3),
     r"^min_neighbours: expected >= 4, got 3$"),
    (lambda: small_strain(np.zeros((2, 3))), r"^gradient: expected \(\.\.\., 3, 3\) tensors, got shape \(2, 3\)$"),
    (lambda: green_lagrange(np.zeros((3, 2))), r"^gradient: expected"),
    (lambda: volumetric_strain(np.zeros((3, 4))), r"^strain: expected \(\.\.\., 3, 3\) tensors"),
    (lambda: equivalent_strain(np.zeros(3)), r"^strain: expected"),
    (lambda: principal_strains(np.zeros((2, 2))), r"^strain: expected"),
    (lambda: cap([0.0], lower=0.1, upper=0.0), r"^lower: expected <= upper \(0.0\), got 0.1$"),
])
def test_bad_input_is_refused_with_a_message_naming_it(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_four_neighbours_are_the_least_a_caller_may_ask_for():
    # 4 non-coplanar nodes fit an affine field exactly
    nodes = np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    h = displacement_gradient(nodes, affine(nodes), radius_voxels=2.0, min_neighbours=4)
    np.testing.assert_allclose(h, [G] * 4, atol=1e-12)


def test_batches_of_tensors_are_handled_elementwise():
    rng = np.random.default_rng(3)
    h = rng.normal(scale=0.05, size=(2, 4, 3, 3))
    eps = small_strain(h)
    e = green_lagrange(h)
    for i in range(2):
        for j in range(4):
            f = np.eye(3) + h[i, j]
            np.testing.assert_allclose(eps[i, j], (h[i, j] + h[i, j].T) / 2, atol=1e-15)
            np.testing.assert_allclose(e[i, j], (f.T @ f - np.eye(3)) / 2, atol=1e-15)
            assert volumetric_strain(eps)[i, j] == pytest.approx(np.trace(h[i, j]), abs=1e-15)
            np.testing.assert_allclose(principal_strains(eps)[i, j], np.sort(np.linalg.eigvalsh(eps[i, j]))[::-1],
                                       atol=1e-14)
    assert volumetric_strain(eps).shape == (2, 4) and equivalent_strain(eps).shape == (2, 4)


def test_green_lagrange_adds_h_transpose_h_not_h_h_transpose():
    # simple shear u_y = g z: H[1, 0] = g; H^T H = g^2 e_z e_z, H H^T = g^2 e_y e_y
    g = 0.2
    h = np.zeros((3, 3))
    h[1, 0] = g
    expected = np.array([[g * g / 2, g / 2, 0], [g / 2, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(green_lagrange(h), expected, atol=1e-15)


def test_principal_strains_of_a_nan_tensor_are_nan_and_the_rest_are_unaffected():
    e = np.stack([np.diag([0.01, -0.03, 0.02]), np.full((3, 3), np.nan), np.diag([0.0, 0.0, -0.1])])
    p = principal_strains(e)
    np.testing.assert_allclose(p[0], [0.02, 0.01, -0.03], atol=1e-15)
    assert np.all(np.isnan(p[1]))
    np.testing.assert_allclose(p[2], [0.0, 0.0, -0.1], atol=1e-15)


def test_principal_strains_use_the_symmetric_part_of_a_tensor():
    # [[0, a], [-a, 0]] is a pure rotation part: the symmetric part of diag + it is the diag
    e = np.diag([0.03, -0.01, 0.0])
    e[0, 1], e[1, 0] = 0.05, -0.05
    np.testing.assert_allclose(principal_strains(e), [0.03, 0.0, -0.01], atol=1e-15)


def test_volumetric_and_equivalent_strain_of_uniaxial_compression():
    # e = diag(-0.03, 0, 0): trace -0.03; deviator diag(-0.02, 0.01, 0.01): sqrt(2/3 * 6e-4) = 0.02
    e = np.diag([-0.03, 0.0, 0.0])
    assert volumetric_strain(e) == pytest.approx(-0.03, abs=1e-15)
    assert equivalent_strain(e) == pytest.approx(0.02, abs=1e-15)
    # a pure shear e_yx = e_xy = 0.01: deviator itself, sqrt(2/3 * 2e-4)
    s = np.zeros((3, 3))
    s[1, 2] = s[2, 1] = 0.01
    assert equivalent_strain(s) == pytest.approx(np.sqrt(2 / 3 * 2e-4), abs=1e-15)


def test_cap_clips_each_side_it_is_given_and_keeps_nan():
    v = np.array([-0.3, -0.1, -0.05, 0.2, np.nan])
    np.testing.assert_array_equal(cap(v, lower=None, upper=0.1)[:4], [-0.3, -0.1, -0.05, 0.1])
    np.testing.assert_array_equal(cap(v, lower=-0.2, upper=0.1)[:4], [-0.2, -0.1, -0.05, 0.1])
    np.testing.assert_array_equal(cap(v, lower=0.05, upper=0.05)[:4], [0.05] * 4)   # equal caps are allowed
    np.testing.assert_array_equal(cap(v, lower=None)[:4], v[:4])
    assert np.isnan(cap(v, lower=-0.2, upper=0.1)[4])
    assert cap([-0.100001])[0] == -0.1 and cap([-0.0999])[0] == -0.0999   # the paper's cap is -0.10 exactly
    assert cap([-1, 2], upper=1).dtype == np.float64


def test_float32_inputs_are_fitted_and_returned_in_double_precision():
    # the fit of float32 numbers equals the fit of the same numbers in float64 (node differences or a
    # solve in float32 would be off by ~1e-7 relative); the tensor functions and the cap return float64 too
    nodes = (cube(4, 7.0) + np.random.default_rng(0).uniform(-1, 1, (64, 3))).astype(np.float32)
    u = affine(nodes.astype(np.float64)).astype(np.float32)
    h32 = displacement_gradient(nodes, u)
    h64 = displacement_gradient(nodes.astype(np.float64), u.astype(np.float64))
    assert h32.dtype == np.float64
    np.testing.assert_allclose(h32, h64, rtol=0, atol=1e-14)
    g32 = G.astype(np.float32)
    for f in (small_strain, green_lagrange):
        assert f(g32).dtype == np.float64
    np.testing.assert_allclose(green_lagrange(g32), green_lagrange(g32.astype(np.float64)), rtol=0, atol=0)
    assert cap(np.array([-0.3, 0.1], np.float32)).dtype == np.float64
    assert cap(np.array([-0.3, 0.1], np.float32))[1] == float(np.float32(0.1))


def test_a_fit_far_from_the_origin_is_as_exact_as_near_it():
    # the fit is centred on each node: nodes 1e5 voxels out give G to rounding, as at the origin
    # (an uncentred fit would lose ~10 digits to the conditioning of its normal equations)
    nodes = cube(3) + 1e5
    h = displacement_gradient(nodes, nodes @ G.T, min_neighbours=8)
    np.testing.assert_allclose(h, np.broadcast_to(G, h.shape), rtol=0, atol=1e-10)


@pytest.mark.parametrize("spacing", [0.01, 1000.0])
def test_the_degeneracy_test_does_not_depend_on_the_node_spacing(spacing):
    # the same 3x3x3 grid in mm or in nm: all fitted, and a plane of it still NaN
    nodes = cube(3, spacing)
    h = displacement_gradient(nodes, affine(nodes), min_neighbours=8)
    np.testing.assert_allclose(h, np.broadcast_to(G, h.shape), rtol=1e-9, atol=1e-12)
    plane = nodes[nodes[:, 0] == 0]
    assert np.all(np.isnan(displacement_gradient(plane, affine(plane), min_neighbours=4)))


def test_an_ok_mask_of_any_dtype_counts_every_nonzero_entry():
    nodes = cube(3)
    ok = np.full(len(nodes), 2, np.int64)          # 2 is true; 2 & True is 0
    ok[0] = 0
    h = displacement_gradient(nodes, affine(nodes), ok, min_neighbours=7)
    np.testing.assert_allclose(h[13], G, atol=1e-12)   # the centre: 26 usable neighbours and itself
