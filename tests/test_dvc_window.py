"""Window weights of the DVC's subvolumes (analysis.dvc.grid.subvolume_window) and the weighted IC-GN.

The weighted fit is checked against a brute-force weighted least-squares
step and numpy's plain Pearson correlation (the CC reported), against warps
known by construction, and against the closed form of the bias of an
affine subvolume fit of a sine displacement: with symmetric weights w(s)
along the sine's axis the fit returns the node's value times
sum w(s) cos(k s) / sum w(s).
"""

import numpy as np
import pytest
import scipy.ndimage as ndi

import analysis.dvc.grid as grid
from analysis.dvc import correlate, node_grid
from analysis.dvc.gauss_newton import refine
from analysis.dvc.grid import subvolume_offsets, subvolume_window
from analysis.dvc.interpolate import SplineVolume
from analysis.dvc.reference import cube_terms
from test_dvc_refine import NODES, S, _cube, _pair, _refine


def test_the_uniform_window_weighs_every_point_one():
    w = subvolume_window(7, "uniform")
    assert w.dtype == np.float32 and w.shape == (343,)
    np.testing.assert_array_equal(w, 1.0)


def test_the_gaussian_window_is_a_gaussian_of_the_offset_from_the_node():
    # edge 9: sigma = 9 * fraction; the node weighs 1, a face centre (4 voxels out) exp(-16 / (2 sigma^2)),
    # a corner (4, 4, 4) exp(-48 / (2 sigma^2)); the points come in subvolume_offsets order
    sigma = 9 * grid.GAUSSIAN_SIGMA_FRACTION
    w = subvolume_window(9, "gaussian")
    assert w.dtype == np.float32 and w.shape == (729,)
    offsets = subvolume_offsets(9)
    at = {tuple(o): v for o, v in zip(offsets.tolist(), w)}
    assert at[(0, 0, 0)] == 1.0
    assert at[(4, 0, 0)] == pytest.approx(np.exp(-16 / (2 * sigma ** 2)), rel=1e-6)
    assert at[(0, -4, 0)] == at[(0, 0, 4)] == at[(4, 0, 0)]
    assert at[(-4, -4, -4)] == pytest.approx(np.exp(-48 / (2 * sigma ** 2)), rel=1e-6)


def test_an_unknown_window_is_refused_in_one_line():
    with pytest.raises(ValueError, match="^window: expected 'uniform' or 'gaussian', got 'hann'$"):
        subvolume_window(9, "hann")


def _weighted_unit(v, w):
    """v less its weighted mean, divided by its weighted norm (float64)."""
    c = v - np.sum(w * v) / np.sum(w)
    return c / np.sqrt(np.sum(w * c * c))


def test_the_correlation_reported_with_a_window_is_the_plain_pearson_coefficient():
    # the window weighs the fit; the CC (judged against min_cc) stays the plain ZNCC of the whole subvolume,
    # which a window of fewer effective points would lift for a false match
    b = np.array([0.4, -0.3, 0.45])
    w = subvolume_window(S, "gaussian").astype(np.float64)
    res, _, start, reference, deformed = _refine(np.eye(3), b, "affine", weights=w, max_iterations=0)
    for k, node in enumerate(NODES):
        f = _cube(reference, node, S).ravel()
        g = _cube(deformed, start[k, :, 3].astype(int), S).ravel()
        want = np.corrcoef(f, g)[0, 1]
        assert res.cc[k] == pytest.approx(want, abs=1e-5)
        weighted = np.sum(w * _weighted_unit(f, w) * _weighted_unit(g, w))
        assert abs(want - weighted) > 1e-3     # the weighted coefficient is another number


def test_one_weighted_gauss_newton_step_is_the_weighted_least_squares_step():
    # from an integer start, one IC-GN step solves (P^T W P) dp = sd^T W (gn - fn) (fn, gn weighted-unit
    # reference and deformed cubes, sd the reference's steepest descents, P the same with their weighted
    # projections on a constant and on fn removed: the part of a warp's change that the normalisation
    # does not absorb) and composes W o W(dp)^-1
    a = np.eye(3) + np.array([[0.02, -0.01, 0.0], [0.01, 0.015, 0.0], [0.0, 0.01, -0.01]])
    b = np.array([0.4, -0.3, 0.45])
    w = subvolume_window(S, "gaussian").astype(np.float64)
    res, _, start, reference, deformed = _refine(a, b, "affine", weights=w, max_iterations=1,
                                                 tolerance_voxels=0.0)
    terms = cube_terms(reference, NODES, S, weights=w)
    x = np.column_stack([subvolume_offsets(S), np.ones(S ** 3)])
    for k, node in enumerate(NODES):
        fn = terms.fn[k].astype(np.float64)
        grad = terms.grad[k].astype(np.float64)                      # (3, n), divided by f's weighted norm
        np.testing.assert_allclose(np.sum(w * fn), 0.0, atol=1e-5)
        gn = _weighted_unit(_cube(deformed, start[k, :, 3].astype(int), S).ravel(), w)
        # columns: translations z, y, x, then du_i/dx_j row-major (the affine basis' order)
        sd = np.column_stack([grad[i] for i in range(3)] + [grad[i] * x[:, j] for i in range(3) for j in range(3)])
        projected = sd.copy()
        for basis_image in (np.ones_like(fn), fn):
            unit = basis_image / np.sqrt(np.sum(w * basis_image ** 2))
            projected -= np.outer(unit, (w * unit) @ projected)
        dp = np.linalg.solve(projected.T @ (w[:, None] * projected), sd.T @ (w * (gn - fn)))
        d = np.eye(4)
        d[:3, 3] += dp[:3]
        d[:3, :3] += dp[3:].reshape(3, 3)
        m = np.vstack([start[k], [0, 0, 0, 1]])
        want = (m @ np.linalg.inv(d))[:3]
        np.testing.assert_allclose(res.warps[k], want, atol=1e-5)


def test_a_weighted_fit_of_an_affine_warp_is_exact():
    # weights change which points count, not the answer of a model that fits every point
    a = np.eye(3) + np.array([[0.02, -0.01, 0.005], [0.01, -0.015, 0.0], [-0.005, 0.01, 0.01]])
    b = np.array([0.4, 0.1, -0.3])
    res, truth, _, _, _ = _refine(a, b, "affine", weights=subvolume_window(S, "gaussian"))
    np.testing.assert_allclose(res.warps[:, :, :3], truth[:, :, :3], atol=2e-4)
    np.testing.assert_allclose(res.warps[:, :, 3], truth[:, :, 3], atol=1e-3)
    assert res.converged.all() and (res.cc > 0.99999).all()


AMPLITUDE, WAVELENGTH, EDGE = 0.6, 32.0, 17


def _sine_pair():
    """Periodic band-limited texture and its copy displaced along z by A sin(k y): x_z = X_z + A sin(k X_y)
    leaves y unchanged, so the deformed volume is the reference shifted along z by A sin(k y), slice by
    slice (exact by Fourier shift for a periodic band-limited texture)."""
    rng = np.random.default_rng(5)
    shape = (48, 64, 40)                          # y holds two wavelengths: the field is periodic too
    ref = ndi.gaussian_filter(rng.normal(size=shape), 1.5, mode="wrap")
    k = 2 * np.pi / WAVELENGTH
    spectrum = np.fft.fft(ref, axis=0)
    freq = np.fft.fftfreq(shape[0])[:, None, None]
    shift = AMPLITUDE * np.sin(k * np.arange(shape[1]))[None, :, None]
    deformed = np.real(np.fft.ifft(spectrum * np.exp(-2j * np.pi * freq * shift), axis=0))
    return ref.astype(np.float32), deformed.astype(np.float32), k


@pytest.mark.parametrize("window", ["uniform", "gaussian"])
def test_the_fitted_displacement_of_a_sine_field_is_its_window_average(window):
    # the affine fit's value at the node is the weighted mean of u over the subvolume:
    # A sin(k y0) * sum_s w(s) cos(k s) / sum_s w(s), s = -8..8 along y, w the window's marginal along y
    ref, deformed, k = _sine_pair()
    nodes = node_grid(ref.shape, (8, 2, 8), EDGE)
    res = correlate(ref, deformed, subvolume_voxels=EDGE, node_spacing_voxels=1, max_displacement_voxels=2,
                    nodes=nodes, window=window)
    assert res.ok.all()
    s = np.arange(EDGE) - EDGE // 2
    w = np.ones(EDGE) if window == "uniform" else np.exp(-s ** 2 / (2 * (grid.GAUSSIAN_SIGMA_FRACTION * EDGE) ** 2))
    factor = np.sum(w * np.cos(k * s)) / np.sum(w)
    point = AMPLITUDE * np.sin(k * nodes[:, 1])
    bias = point * (factor - 1.0)
    rms_bias = np.sqrt(np.mean(bias ** 2))
    assert rms_bias > 0.02                                    # a bias the test can tell from the noise
    error = res.displacement[:, 0] - point
    # the error is the window's bias: its least-squares slope on the bias is 1 (the texture weighs the
    # points by its local contrast, which scatters each node's error around the bias by ~0.01 voxel)
    assert np.sum(error * bias) / np.sum(bias ** 2) == pytest.approx(1.0, abs=0.05)
    assert np.sqrt(np.mean(res.displacement[:, 1:] ** 2)) < 0.02


def test_the_plain_correlation_does_not_depend_on_the_grey_level_scale():
    # ZNCC is invariant to a grey-level scale: both volumes times 2^-30 (exact in float32) give the same CC
    # at the start, though the deformed cube's spread is then far below 1
    b = np.array([0.4, -0.3, 0.45])
    w = subvolume_window(S, "gaussian")
    reference, deformed = _pair(np.eye(3), b)
    start = np.concatenate([np.broadcast_to(np.eye(3), (len(NODES), 3, 3)),
                            np.round(NODES + b)[:, :, None]], axis=2)
    ccs = []
    for scale in (1.0, 2.0 ** -30):
        res = refine(SplineVolume(deformed * np.float32(scale)), cube_terms(reference * np.float32(scale), NODES, S,
                                                                          weights=w),
                     subvolume_offsets(S).astype(np.float64), start, max_iterations=0, cube_edge=S)
        ccs.append(res.cc)
    assert np.all(ccs[0] < 0.99)
    np.testing.assert_allclose(ccs[1], ccs[0], rtol=0, atol=1e-6)
