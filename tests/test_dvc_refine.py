"""IC-GN refinement (analysis.dvc.gauss_newton) and its reference-side terms (analysis.dvc.reference).

The reference terms are checked against their definitions (ReferenceTerms'
docstring) evaluated point by point in float64; the refinement against
warps known by construction: the deformed volume is an analytic, smooth
field h sampled at the inverse of a chosen affine map, so the best warp is
that map (issue #19).
"""

import itertools

import numpy as np
import pytest
import scipy.linalg

from analysis.dvc.gauss_newton import (_basis, _compose_inverse, _sym_index, nearest_rotation,
                                       normalised_hessian_inverse, reference_terms, refine)
from analysis.dvc.grid import subvolume_offsets, subvolume_window
from analysis.dvc.interpolate import SplineVolume
import analysis.dvc.reference as reference
from analysis.dvc.reference import cube_terms

# the packed pairs of ReferenceTerms, written out: (i <= k) over 3 gradient components, (j <= l) over [x, 1]
PAIRS3 = [(i, k) for i in range(3) for k in range(i, 3)]
PAIRS4 = [(j, l) for j in range(4) for l in range(j, 4)]


def _terms_by_definition(f, grad, offsets, w=None):
    """fn, grad, hess_packed, sd_sum, sd_fn, textured of one node's points with window weights ``w`` (1 if
    None), float64, one sum per entry."""
    f = np.asarray(f, dtype=np.float64)
    n = len(f)
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    centred = f - np.sum(w * f) / np.sum(w)
    norm = np.sqrt(np.sum(w * centred ** 2))
    textured = norm > 1e-6 * np.sqrt(np.sum(w)) * (np.abs(f).max() + 1e-30)
    scale = 1.0 / norm if textured else 0.0
    fn = centred * scale
    g = np.asarray(grad, dtype=np.float64) * scale                    # (n, 3)
    x = np.column_stack([offsets, np.ones(n)])                          # (n, 4)
    hess = np.array([[np.sum(w * g[:, i] * g[:, k] * x[:, j] * x[:, l]) for j, l in PAIRS4] for i, k in PAIRS3])
    sd_sum = np.array([np.sum(w * g[:, a] * x[:, c]) for a in range(3) for c in range(4)])
    sd_fn = np.array([np.sum(w * fn * g[:, a] * x[:, c]) for a in range(3) for c in range(4)])
    return fn, g.T, hess, sd_sum, sd_fn, textured


def _cube_by_definition(volume, node, s):
    """Values and fourth-order central-difference gradients of the s^3 points around ``node``, every
    index clamped to the volume (nearest face), points z slowest."""
    def at(p):
        return volume[tuple(min(max(p[a], 0), volume.shape[a] - 1) for a in range(3))]

    r = range(-(s // 2), -(s // 2) + s)
    f, grad = [], []
    for o in itertools.product(r, r, r):
        p = [node[a] + o[a] for a in range(3)]
        f.append(at(p))
        g = []
        for a in range(3):
            def shifted(d):
                q = [min(max(p[b], 0), volume.shape[b] - 1) for b in range(3)]
                q[a] = p[a] + d        # the derivative's own axis: clamp after the step
                return at(q)
            g.append((shifted(-2) - 8 * shifted(-1) + 8 * shifted(1) - shifted(2)) / 12.0)
        grad.append(g)
    return np.array(f), np.array(grad)


def _assert_terms(got, b, want):
    fn, grad, hess, sd_sum, sd_fn, textured = want
    assert bool(got.textured[b]) == textured
    np.testing.assert_allclose(got.fn[b], fn, rtol=0, atol=1e-7)
    np.testing.assert_allclose(got.grad[b], grad, rtol=0, atol=1e-7 * max(1.0, np.abs(grad).max()))
    for value, expected in ((got.hess_packed[b], hess), (got.sd_sum[b], sd_sum), (got.sd_fn[b], sd_fn)):
        np.testing.assert_allclose(value, expected, rtol=0, atol=2e-6 * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize("s", [5, 6])
def test_cube_terms_are_their_definition_point_by_point_with_clamped_faces(s):
    rng = np.random.default_rng(11)
    volume = rng.normal(5.0, 1.0, (9, 10, 11))
    volume[3:, 4:, 5:] = 2.5                       # a flat block: the last node's cube (clamped) is all in it
    nodes = np.array([[4, 5, 5], [0, 0, 0], [8, 0, 10], [1, 8, 3], [8, 9, 10]])
    terms = cube_terms(volume, nodes, s)
    offsets = subvolume_offsets(s)
    for b, node in enumerate(nodes):
        f, grad = _cube_by_definition(volume.astype(np.float32), node, s)
        want = _terms_by_definition(f, grad, offsets)
        _assert_terms(terms, b, want)
    assert terms.textured.tolist() == [True, True, True, True, False]
    assert terms.fn.dtype == np.float32 and terms.grad.dtype == np.float32
    assert terms.hess_packed.shape == (len(nodes), 6, 10)


def test_weighted_cube_terms_are_their_definition_point_by_point():
    # a gaussian window and a random one (weights 0.05-3): every mean, norm and sum weighted
    rng = np.random.default_rng(21)
    volume = rng.normal(5.0, 1.0, (9, 10, 11))
    nodes = np.array([[4, 5, 5], [0, 0, 0], [8, 9, 10]])
    for w in (subvolume_window(5, "gaussian"), rng.uniform(0.05, 3.0, 125).astype(np.float32)):
        terms = cube_terms(volume, nodes, 5, weights=w)
        assert terms.weights.dtype == np.float32
        np.testing.assert_array_equal(terms.weights, w)
        for b, node in enumerate(nodes):
            f, grad = _cube_by_definition(volume.astype(np.float32), node, 5)
            _assert_terms(terms, b, _terms_by_definition(f, grad, subvolume_offsets(5), w))


def test_weighted_reference_terms_are_their_definition_at_arbitrary_points():
    rng = np.random.default_rng(22)
    n = 40
    offsets = rng.uniform(-4.0, 4.0, (n, 3))
    f = rng.normal(3.0, 2.0, (3, n))
    f[2] = -7.0
    grad = rng.normal(0.0, 1.0, (3, n, 3))
    w = rng.uniform(0.05, 3.0, n).astype(np.float32)
    terms = reference_terms(f, grad, offsets, weights=w)
    for b in range(3):
        _assert_terms(terms, b, _terms_by_definition(f[b].astype(np.float32), grad[b].astype(np.float32), offsets, w))
    assert terms.textured.tolist() == [True, True, False]
    np.testing.assert_array_equal(reference_terms(f, grad, offsets).weights, np.ones(n, np.float32))


def test_cube_terms_of_no_nodes_are_empty():
    terms = cube_terms(np.ones((8, 8, 8), np.float32), np.zeros((0, 3), np.int64), 5)
    assert terms.fn.shape == (0, 125) and terms.grad.shape == (0, 3, 125)
    assert terms.hess_packed.shape == (0, 6, 10) and terms.sd_sum.shape == (0, 12) and terms.sd_fn.shape == (0, 12)
    assert terms.textured.shape == (0,) and terms.textured.dtype == bool


def test_reference_terms_are_their_definition_at_arbitrary_points():
    rng = np.random.default_rng(12)
    n = 40
    offsets = rng.uniform(-4.0, 4.0, (n, 3))
    f = rng.normal(3.0, 2.0, (3, n))
    f[2] = -7.0                                     # flat: no texture
    grad = rng.normal(0.0, 1.0, (3, n, 3))
    terms = reference_terms(f, grad, offsets)
    for b in range(3):
        _assert_terms(terms, b, _terms_by_definition(f[b].astype(np.float32), grad[b].astype(np.float32), offsets))
    assert terms.textured.tolist() == [True, True, False]


def test_reference_terms_are_float32_and_float64_as_documented_whatever_the_input_dtype():
    # ReferenceTerms: fn and grad float32 (what the sampling kernels take), the sums float64
    rng = np.random.default_rng(14)
    n = 30
    offsets = rng.integers(-3, 4, (n, 3))
    for dtype in (np.float64, np.float32, np.int64):
        f = rng.integers(0, 200, (2, n)).astype(dtype)
        grad = rng.integers(-20, 21, (2, n, 3)).astype(dtype)
        terms = reference_terms(f, grad, offsets)
        assert terms.fn.dtype == np.float32 and terms.grad.dtype == np.float32, dtype
        for sums in (terms.hess_packed, terms.sd_sum, terms.sd_fn):
            assert sums.dtype == np.float64, dtype
        for b in range(2):
            _assert_terms(terms, b, _terms_by_definition(f[b], grad[b].astype(np.float64), offsets))


def test_flat_means_a_spread_below_a_millionth_of_the_largest_grey_value():
    # textured when the rms deviation from the mean exceeds 1e-6 of max |f| (_FLAT, relative to each
    # node's own values). 8 points at 2^20 +- d (whole numbers: exact in float32, mean 2^20 exactly):
    # rms d, max 2^20 + d; d = 1 is 9.5e-7 of it (flat), d = 2 is 1.9e-6 (textured). +-1 around 0 in
    # the same batch is textured (rms = max), all zeros flat (no spread at all)
    signs = np.array([1, -1, -1, 1, -1, 1, 1, -1], dtype=np.float64)
    f = np.stack([2.0 ** 20 + signs, 2.0 ** 20 + 2 * signs, signs, np.zeros(8)])
    offsets = np.array(list(itertools.product((-1, 1), repeat=3)), dtype=np.float64)
    grad = np.ones((4, 8, 3))
    terms = reference_terms(f, grad, offsets)
    assert terms.textured.tolist() == [False, True, True, False]
    # the textured ones are +-1/sqrt(8) after centring and scaling; the flat ones are zero
    for b, want in enumerate((0 * signs, signs, signs, 0 * signs)):
        np.testing.assert_allclose(terms.fn[b], want / np.sqrt(8.0), rtol=0, atol=1e-7)
    assert np.isfinite(terms.grad).all()


def test_a_spread_exactly_at_the_flatness_limit_is_flat():
    # _FLAT's side of the limit: a spread at or below 1e-6 * sqrt(n) * max |f| is flat. 8 points at
    # 1e6 and 1e6 - 2, alternating (whole numbers, exact in float32; mean 999999 exactly): the
    # deviations are +-1, so the spread is sqrt(8), and the limit 1e-6 * sqrt(8) * 1e6 is sqrt(8)
    # too, also in float64 (checked first): exactly at the limit, so flat
    assert 1e-6 * np.sqrt(8.0) * 1e6 == np.sqrt(8.0)
    f = np.array([[1e6, 1e6 - 2] * 4])
    offsets = np.array(list(itertools.product((-1, 1), repeat=3)), dtype=np.float64)
    terms = reference_terms(f, np.ones((1, 8, 3)), offsets)
    assert terms.textured.tolist() == [False]
    np.testing.assert_array_equal(terms.fn, 0.0)


@pytest.mark.parametrize("scale", [2.0 ** -80, 2.0 ** 64], ids=["2^-80", "2^64"])
def test_the_reference_terms_do_not_depend_on_the_grey_level_scale(scale):
    # ZNSSD is invariant to a grey-level scale: f and its gradient times a power of two (exact in
    # float32, anywhere in its range) give the same fn, grad / norm and sums, and the same texture
    # verdicts; at 2^-80 the squares are below float32's smallest number, at 2^64 above its largest
    rng = np.random.default_rng(12)
    n = 40
    offsets = rng.uniform(-4.0, 4.0, (n, 3))
    f = rng.normal(3.0, 2.0, (3, n)).astype(np.float32)
    f[2] = -7.0
    grad = rng.normal(0.0, 1.0, (3, n, 3)).astype(np.float32)
    terms = reference_terms(f * np.float32(scale), grad * np.float32(scale), offsets)
    for b in range(3):
        _assert_terms(terms, b, _terms_by_definition(f[b], grad[b], offsets))
    assert terms.textured.tolist() == [True, True, False]


def test_sym_index_points_each_entry_at_its_packed_pair():
    # entries (i, k) and (k, i) of a symmetric matrix are stored once, at the place of (min, max) in the
    # row-major list of upper-triangle pairs (PAIRS3, PAIRS4: the order of hess_packed); an index array,
    # so integer
    for n, pairs in ((3, PAIRS3), (4, PAIRS4)):
        got = _sym_index(n)
        assert got.shape == (n, n) and np.issubdtype(got.dtype, np.integer)
        assert got.tolist() == [[pairs.index((min(i, k), max(i, k))) for k in range(n)] for i in range(n)]


# ---- the refinement ---------------------------------------------------------------------------------

N, S = 30, 11
_RNG = np.random.default_rng(21)
_WAVES = _RNG.normal(size=(6, 3))
_WAVES *= (1.0 / _RNG.uniform(8.0, 12.0, (6, 1))) / np.linalg.norm(_WAVES, axis=1, keepdims=True)   # cycles/voxel
_PHASES = _RNG.uniform(0, 2 * np.pi, 6)


def h(points):
    """A smooth texture (wavelengths 8 to 12 voxels) at (..., 3) points, voxels."""
    return np.cos(2 * np.pi * points @ _WAVES.T + _PHASES).sum(axis=-1)


def _grid(n):
    return np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), axis=-1).astype(np.float64)


def _pair(a, b):
    """Reference h(X) and deformed h(A^-1 (x - b)), so that the reference point X is at A X + b."""
    x = _grid(N)
    deformed = h((x - b) @ np.linalg.inv(a).T)
    return h(x).astype(np.float32), deformed.astype(np.float32)


NODES = np.array([[15, 15, 15], [12, 17, 14], [17, 13, 16]])


def _refine(a, b, shape_function, start=None, weights=None, **kwargs):
    reference, deformed = _pair(a, b)
    terms = cube_terms(reference, NODES, S, weights=weights)
    truth = np.concatenate([np.broadcast_to(a, (len(NODES), 3, 3)), (NODES @ a.T + b)[:, :, None]], axis=2)
    if start is None:
        start = np.concatenate([np.broadcast_to(np.eye(3), (len(NODES), 3, 3)),
                                np.round(truth[:, :, 3])[:, :, None]], axis=2)
    res = refine(SplineVolume(deformed), terms, subvolume_offsets(S).astype(np.float64), start,
                 shape_function=shape_function, cube_edge=S, **kwargs)
    return res, truth, start, reference, deformed


def _rotation(axis, angle_rad):
    k = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * kx + (1 - np.cos(angle_rad)) * kx @ kx


def test_translation_refinement_finds_a_subvoxel_shift_and_keeps_the_identity():
    b = np.array([0.3, -0.45, 0.2])
    res, truth, _, _, _ = _refine(np.eye(3), b, "translation")
    np.testing.assert_allclose(res.warps[:, :, 3], truth[:, :, 3], atol=1e-3)
    np.testing.assert_array_equal(res.warps[:, :, :3], np.broadcast_to(np.eye(3), (3, 3, 3)))
    assert res.converged.all() and res.textured.all() and (res.cc > 0.99999).all()
    assert np.all((res.iterations >= 1) & (res.iterations < 50))


def test_affine_refinement_finds_the_displacement_gradient():
    a = np.eye(3) + np.array([[0.02, -0.01, 0.005], [0.01, -0.015, 0.0], [-0.005, 0.01, 0.01]])
    b = np.array([0.4, 0.1, -0.3])
    res, truth, _, _, _ = _refine(a, b, "affine")
    np.testing.assert_allclose(res.warps[:, :, :3], truth[:, :, :3], atol=2e-4)
    np.testing.assert_allclose(res.warps[:, :, 3], truth[:, :, 3], atol=1e-3)
    assert res.converged.all() and (res.cc > 0.99999).all()


def test_rigid_refinement_finds_a_rotation_and_keeps_it_a_rotation():
    a = _rotation((1.0, 2.0, -1.5), np.radians(3.0))
    b = np.array([-0.2, 0.35, 0.1])
    res, truth, _, _, _ = _refine(a, b, "rigid")
    np.testing.assert_allclose(res.warps[:, :, :3], truth[:, :, :3], atol=2e-4)
    np.testing.assert_allclose(res.warps[:, :, 3], truth[:, :, 3], atol=1e-3)
    for r in res.warps[:, :, :3]:
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-12)
    assert res.converged.all() and (res.cc > 0.99999).all()


def _pearson(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))


def _cube(volume, node, s):
    lo = np.asarray(node) - s // 2
    return volume[lo[0]:lo[0] + s, lo[1]:lo[1] + s, lo[2]:lo[2] + s].astype(np.float64)


def test_no_iteration_keeps_the_start_and_reports_its_correlation():
    # at an integer translation the interpolating spline equals the voxels, so the cc is the
    # Pearson correlation of the two cubes
    b = np.array([0.4, -0.3, 0.45])
    res, _, start, reference, deformed = _refine(np.eye(3), b, "affine", max_iterations=0)
    np.testing.assert_array_equal(res.warps, start)
    assert res.iterations.tolist() == [0, 0, 0] and not res.converged.any()
    for k, node in enumerate(NODES):
        want = _pearson(_cube(reference, node, S), _cube(deformed, start[k, :, 3].astype(int), S))
        assert res.cc[k] == pytest.approx(want, abs=1e-5)
        assert want < 0.99                        # the start is visibly off the match


def test_given_first_values_are_the_deformed_values_at_the_start():
    # the first iteration's deformed values are taken as given: given the reference cube itself,
    # the cc at the start is 1 whatever the deformed volume holds
    b = np.array([0.4, -0.3, 0.45])
    reference, _ = _pair(np.eye(3), b)
    first = np.stack([_cube(reference, node, S).ravel() for node in NODES])
    res, _, start, _, _ = _refine(np.eye(3), b, "affine", max_iterations=0, exact_first=first)
    np.testing.assert_allclose(res.cc, 1.0, atol=1e-6)
    assert np.all(np.abs(res.cc) <= 1.0)            # a correlation coefficient, round-off or not
    np.testing.assert_array_equal(res.warps, start)


def test_the_iteration_budget_is_the_most_iterations_done():
    b = np.array([0.4, -0.3, 0.45])
    res, _, _, _, _ = _refine(np.eye(3), b, "affine", max_iterations=2, tolerance_voxels=0.0)
    assert res.iterations.tolist() == [2, 2, 2] and not res.converged.any()


def test_a_huge_tolerance_stops_after_one_update_with_the_cc_before_it():
    b = np.array([0.4, -0.3, 0.45])
    once, _, start, _, _ = _refine(np.eye(3), b, "translation", tolerance_voxels=1e9)
    none, _, _, _, _ = _refine(np.eye(3), b, "translation", max_iterations=0)
    assert once.iterations.tolist() == [1, 1, 1] and once.converged.all()
    np.testing.assert_array_equal(once.cc, none.cc)   # the cc of the warp before the last update
    assert np.all(np.abs(once.warps[:, :, 3] - start[:, :, 3]) > 0.05)   # but the warp is updated


def test_a_flat_subvolume_is_not_refined():
    reference, deformed = _pair(np.eye(3), np.zeros(3))
    reference[:] = 4.0
    terms = cube_terms(reference, NODES, S)
    start = np.concatenate([np.broadcast_to(np.eye(3), (3, 3, 3)), NODES[:, :, None] + 0.25], axis=2)
    res = refine(SplineVolume(deformed), terms, subvolume_offsets(S).astype(np.float64), start, cube_edge=S)
    assert not res.textured.any() and res.iterations.tolist() == [0, 0, 0]
    np.testing.assert_array_equal(res.warps, start)
    np.testing.assert_array_equal(res.cc, 0.0)


def test_the_general_sampler_refines_like_the_cube_sampler():
    # offsets given without cube_edge take the general kernel: the same warps within round-off
    a = np.eye(3) + np.diag([0.01, -0.01, 0.005])
    b = np.array([0.3, 0.2, -0.1])
    cube, truth, start, reference, deformed = _refine(a, b, "affine")
    general = refine(SplineVolume(deformed), cube_terms(reference, NODES, S), subvolume_offsets(S).astype(float),
                     start, shape_function="affine")
    np.testing.assert_allclose(general.warps, cube.warps, atol=1e-4)
    np.testing.assert_allclose(general.warps[:, :, 3], truth[:, :, 3], atol=1e-3)


def test_the_default_budget_is_50_iterations():
    # refine's signature: max_iterations=50; a tolerance of 0 is never met, so every node uses all of it
    res, _, _, _, _ = _refine(np.eye(3), np.array([0.4, -0.3, 0.45]), "translation", tolerance_voxels=0.0)
    assert res.iterations.tolist() == [50, 50, 50] and not res.converged.any()


def test_an_update_of_exactly_zero_does_not_meet_a_tolerance_of_zero():
    # "every point must move by less than the tolerance": 0 is not less than 0, so a tolerance of 0 is
    # never met, even by an update of exactly zero. The update is zero by construction: the deformed
    # volume is all zeros, so every correlation sum is 0 and the right-hand side is -sum fn grad x,
    # and the reference's gradient vanishes at the two points that are off its mean (f = +-1) while
    # the other 25 points of the 3^3 cube sit at the mean (fn = 0) and carry the gradient that makes
    # the translation Hessian invertible: every term fn grad x is an exact 0
    offsets = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=np.float64)
    f = np.zeros((1, 27))
    f[0, 0], f[0, 26] = 1.0, -1.0
    grad = np.zeros((1, 27, 3))
    for a in range(3):
        grad[0, 1 + 8 * a:9 + 8 * a, a] = 1.0           # points 1..24: 8 per axis
    terms = reference_terms(f, grad, offsets)
    assert terms.textured.tolist() == [True] and np.all(terms.sd_fn == 0.0)
    start = np.concatenate([np.eye(3), [[8.0], [8.0], [8.0]]], axis=1)[None]
    res = refine(SplineVolume(np.zeros((16, 16, 16))), terms, offsets, start, shape_function="translation",
                 max_iterations=4, tolerance_voxels=0.0)
    np.testing.assert_array_equal(res.warps, start)      # the updates were exactly zero
    assert res.iterations.tolist() == [4] and res.converged.tolist() == [False]


def test_a_translation_update_moves_every_point_by_its_length():
    # started 0.45 voxel below the match along z, the first update moves the subvolume about 0.45
    # voxel up z (and almost nothing across), every point by the same amount: a tolerance of 0.7 is
    # met after that one update, one of 0.3 is not
    b = np.array([0.45, 0.0, 0.0])
    for tolerance, converged in ((0.7, True), (0.3, False)):
        res, _, start, _, _ = _refine(np.eye(3), b, "translation", max_iterations=1, tolerance_voxels=tolerance)
        step = res.warps[:, :, 3] - start[:, :, 3]
        assert np.all((step[:, 0] > 0.3) & (step[:, 0] < 0.6)) and np.abs(step[:, 1:]).max() < 0.05
        assert res.converged.tolist() == [converged] * 3 and res.iterations.tolist() == [1, 1, 1]


def test_integer_start_warps_are_refined_to_subvoxel_warps():
    # a start given as whole numbers (int64) must not make the result whole numbers
    b = np.array([0.3, -0.45, 0.2])
    start = np.concatenate([np.broadcast_to(np.eye(3, dtype=np.int64), (3, 3, 3)),
                            np.round(NODES + b).astype(np.int64)[:, :, None]], axis=2)
    res, truth, _, _, _ = _refine(np.eye(3), b, "translation", start=start)
    assert res.warps.dtype == np.float64
    np.testing.assert_allclose(res.warps[:, :, 3], truth[:, :, 3], atol=1e-3)
    assert res.converged.all()


def test_the_refinement_reports_integer_counts_and_boolean_flags():
    # Refinement: iterations is a count, converged, textured and left are bool (numpy's 1.0 == True,
    # so only the dtype tells a float flag from a bool one)
    res, _, _, _, _ = _refine(np.eye(3), np.array([0.3, -0.45, 0.2]), "translation",
                              outside=lambda w: np.zeros(len(w), dtype=bool))
    assert np.issubdtype(res.iterations.dtype, np.integer)
    for flags in (res.converged, res.textured, res.left):
        assert flags.dtype == np.bool_
    assert res.converged.all() and not res.left.any()


def test_given_first_values_serve_the_first_iteration_only():
    # at an integer start the interpolating spline equals the voxels, so the deformed cubes there are
    # the right first values; later iterations must sample their own warps, and reach the match
    b = np.array([0.4, -0.3, 0.45])
    _, deformed = _pair(np.eye(3), b)
    start = np.concatenate([np.broadcast_to(np.eye(3), (3, 3, 3)), np.round(NODES + b)[:, :, None]], axis=2)
    first = np.stack([_cube(deformed, node, S).ravel() for node in start[:, :, 3].astype(int)])
    res, truth, _, _, _ = _refine(np.eye(3), b, "translation", start=start, exact_first=first)
    np.testing.assert_allclose(res.warps[:, :, 3], truth[:, :, 3], atol=1e-3)
    assert res.converged.all() and np.all(res.iterations > 1) and (res.cc > 0.99999).all()


def test_the_refinement_is_invariant_to_an_affine_change_of_the_deformed_grey_levels():
    # ZNSSD (and the ZNCC reported) do not change when the deformed grey levels become a g + c, here
    # a = 1e-3 (a subvolume whose sum of squared deviations is far below 1) and c = 0.25
    a = np.eye(3) + np.diag([0.01, -0.01, 0.005])
    b = np.array([0.3, 0.2, -0.1])
    plain, truth, start, reference, deformed = _refine(a, b, "affine")
    faint = (deformed.astype(np.float64) * 1e-3 + 0.25).astype(np.float32)
    res = refine(SplineVolume(faint), cube_terms(reference, NODES, S), subvolume_offsets(S).astype(np.float64),
                 start, shape_function="affine", cube_edge=S)
    np.testing.assert_allclose(res.warps[:, :, 3], truth[:, :, 3], atol=1e-3)
    np.testing.assert_allclose(res.warps[:, :, :3], truth[:, :, :3], atol=2e-4)
    np.testing.assert_allclose(res.cc, plain.cc, atol=1e-5)
    assert res.converged.all()


def test_an_inverted_match_has_cc_minus_one_and_never_below():
    # given the reference cube negated as the deformed values, the ZNCC is -1; round-off takes the
    # raw ratio just past -1 for some nodes, and a correlation coefficient is never below -1
    b = np.array([0.4, -0.3, 0.45])
    reference, _ = _pair(np.eye(3), b)
    first = np.stack([-_cube(reference, node, S).ravel() for node in NODES])
    res, _, _, _, _ = _refine(np.eye(3), b, "affine", max_iterations=0, exact_first=first)
    np.testing.assert_allclose(res.cc, -1.0, atol=1e-6)
    assert np.all(res.cc >= -1.0)


# ---- nodes whose warp leaves the volume (``outside``) -------------------------------------------------

def _above(z):
    """An ``outside`` test: the warp's translation is above ``z`` along the first axis."""
    return lambda w: w[:, 0, 3] > z


def test_the_nodes_left_inside_go_on_when_one_leaves():
    # the third node starts at z = 17, past the limit 16.5, and stops before any iteration; the other
    # two never pass it and must still reach the match. The second starts at its match and converges
    # after one update, the first after more: the one left iterating alone must keep its own data
    b = np.array([0.3, -0.45, 0.2])
    truth = np.concatenate([np.broadcast_to(np.eye(3), (3, 3, 3)), (NODES + b)[:, :, None]], axis=2)
    start = np.concatenate([np.broadcast_to(np.eye(3), (3, 3, 3)), np.round(NODES + b)[:, :, None]], axis=2)
    start[1] = truth[1]
    assert start[2, 0, 3] > 16.5 and truth[:2, 0, 3].max() < 16.0
    for shape_function in ("translation", "affine"):
        res, _, _, _, _ = _refine(np.eye(3), b, shape_function, start=start, outside=_above(16.5))
        assert res.left.tolist() == [False, False, True] and res.converged.tolist() == [True, True, False]
        assert res.iterations[2] == 0 and 0 < res.iterations[1] < res.iterations[0]
        np.testing.assert_array_equal(res.warps[2], start[2])
        np.testing.assert_allclose(res.warps[:2, :, 3], truth[:2, :, 3], atol=1e-3)
        assert (res.cc[:2] > 0.99999).all()


def test_given_first_values_stay_with_their_node_when_another_leaves_first():
    # as in test_given_first_values_are_the_deformed_values_at_the_start (cc 1 for the reference cube
    # given), with the third node outside from the start: the first two keep their given values
    b = np.array([0.4, -0.3, 0.45])
    reference, _ = _pair(np.eye(3), b)
    first = np.stack([_cube(reference, node, S).ravel() for node in NODES])
    res, _, start, _, _ = _refine(np.eye(3), b, "affine", max_iterations=0, exact_first=first, outside=_above(16.5))
    assert start[2, 0, 3] > 16.5 and start[:2, 0, 3].max() < 16.5
    assert res.left.tolist() == [False, False, True]
    np.testing.assert_allclose(res.cc[:2], 1.0, atol=1e-6)
    assert res.cc[2] == 0.0


# ---- the pieces -----------------------------------------------------------------------------------------

def test_basis_generators_are_the_derivatives_of_each_shape_function():
    rng = np.random.default_rng(4)
    x = rng.normal(size=3)
    xh = np.append(x, 1.0)
    e = np.eye(3)
    # translation: dW/dt_i = e_i; affine: dW/dL_ij = x_j e_i; rigid: dW/dw_k = e_k x x
    want = {"translation": [e[i] for i in range(3)],
            "affine": [e[i] for i in range(3)] + [x[j] * e[i] for i in range(3) for j in range(3)],
            "rigid": [e[i] for i in range(3)] + [np.cross(e[k], x) for k in range(3)]}
    for name, columns in want.items():
        got = _basis(name) @ xh
        np.testing.assert_allclose(got, np.array(columns), atol=1e-15)
    with pytest.raises(ValueError, match="shape_function"):
        _basis("quadratic")


def test_compose_inverse_undoes_the_update():
    # W o W(dp)^-1 composed with W(dp) is W again
    rng = np.random.default_rng(5)
    w = np.concatenate([np.eye(3) + rng.normal(0, 0.05, (4, 3, 3)), rng.normal(0, 3, (4, 3, 1))], axis=2)
    dm = np.concatenate([rng.normal(0, 0.02, (4, 3, 3)), rng.normal(0, 0.5, (4, 3, 1))], axis=2)
    out = _compose_inverse(w, dm, "affine")
    d = np.concatenate([np.eye(3) + dm[:, :, :3], dm[:, :, 3:]], axis=2)
    back = np.einsum("bij,bjk->bik", out[:, :, :3], d[:, :, :3])
    np.testing.assert_allclose(back, w[:, :, :3], atol=1e-12)
    np.testing.assert_allclose(np.einsum("bij,bj->bi", out[:, :, :3], d[:, :, 3]) + out[:, :, 3], w[:, :, 3],
                               atol=1e-12)


def test_rigid_compose_inverse_stays_a_rotation():
    r = _rotation((0.0, 1.0, 1.0), 0.3)
    w = np.concatenate([r, np.array([[1.0], [2.0], [3.0]])], axis=1)[None]
    dm = np.zeros((1, 3, 4))
    dm[0, :, :3] = 0.02 * np.array([[0, -1, 2], [1, 0, -3], [-2, 3, 0]]) + 0.01 * np.eye(3)   # not a rotation
    out = _compose_inverse(w, dm, "rigid")[0, :, :3]
    np.testing.assert_allclose(out @ out.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(out) == pytest.approx(1.0)


def test_rigid_compose_inverse_is_the_composition_with_the_updates_rotation():
    # W o W(dp)^-1 with W(dp) = [Q | t_d], Q the rotation of the polar decomposition of I + dL (the rigid
    # update re-orthonormalised); the result's 3x3 part re-orthonormalised too, so a start that is 2 %
    # too large comes back a rotation: [R Q^T | t - 1.02 R Q^T t_d]
    r = _rotation((0.0, 1.0, 1.0), 0.3)
    t = np.array([1.0, 2.0, 3.0])
    w = np.concatenate([1.02 * r, t[:, None]], axis=1)[None]
    dm = np.zeros((1, 3, 4))
    dm[0, :, :3] = 0.02 * np.array([[0, -1, 2], [1, 0, -3], [-2, 3, 0]]) + 0.01 * np.eye(3)
    dm[0, :, 3] = t_d = np.array([0.5, -0.3, 0.8])
    q, _ = scipy.linalg.polar(np.eye(3) + dm[0, :, :3])
    out = _compose_inverse(w, dm, "rigid")[0]
    np.testing.assert_allclose(out[:, :3], r @ q.T, atol=1e-12)
    np.testing.assert_allclose(out[:, 3], t - 1.02 * r @ q.T @ t_d, atol=1e-12)


def test_nearest_rotation_is_the_rotation_of_the_polar_decomposition():
    r = _rotation((1.0, -2.0, 0.5), 0.7)
    p = np.array([[3.0, 0.5, 0.2], [0.5, 2.0, -0.1], [0.2, -0.1, 1.5]])   # symmetric positive definite
    np.testing.assert_allclose(nearest_rotation(r @ p), r, atol=1e-12)
    # a reflection in the smallest singular direction: the nearest proper rotation flips it back
    np.testing.assert_allclose(nearest_rotation(r @ np.diag([3.0, 2.0, -1.0])), r, atol=1e-12)
    stack = nearest_rotation(np.stack([r @ p, r.T @ p]))
    np.testing.assert_allclose(stack, np.stack([r, r.T]), atol=1e-12)


@pytest.mark.parametrize("flat, textured", [(0.1, False), (0.08, True)])
def test_cube_terms_judge_flatness_by_the_largest_grey_value_of_each_whole_cube(monkeypatch, flat, textured):
    """A 5^3 cube of zeros with a single 2 in one z-row: norm 2 sqrt(1 - 1/125) = 1.992, largest |f| 2, so
    with the flatness limit raised to 0.1 the threshold 0.1 sqrt(125) 2 = 2.236 exceeds the norm (flat) and
    at 0.08 (1.789) it does not. The other cube holds a single 100 (norm 99.6 against 111.8 and 89.4: the
    same verdicts). Neither the rows' maxima (0.4 averaged) nor the batch's largest value (100) may stand in
    for a cube's own. A flat cube's terms are zero (scale 0), whatever its grey values."""
    monkeypatch.setattr(reference, "_FLAT", flat)
    volume = np.zeros((9, 9, 20), np.float32)
    volume[3, 4, 5] = 2.0
    volume[3, 4, 15] = 100.0
    terms = cube_terms(volume, np.array([[4, 4, 4], [4, 4, 14]]), 5)
    assert terms.textured.tolist() == [textured, textured]
    if not textured:
        assert not terms.fn.any() and not terms.grad.any()
        assert not terms.hess_packed.any() and not terms.sd_sum.any() and not terms.sd_fn.any()


def test_a_cube_exactly_at_the_flatness_limit_is_flat_and_one_of_zeros_too(monkeypatch):
    """"At or below the limit is flat" (gauss_newton._FLAT): the limit is set to the value whose threshold
    is the cube's norm to the last bit (a single 1 among 125 zeros: norm sqrt(0.992), largest |f| 1)."""
    norm = np.sqrt(1.0 - 1.0 / 125.0)
    limit = norm / np.sqrt(125.0)
    while limit * np.sqrt(125.0) * (1.0 + 1e-30) != norm:
        limit = np.nextafter(limit, np.inf if limit * np.sqrt(125.0) < norm else -np.inf)
    monkeypatch.setattr(reference, "_FLAT", limit)
    volume = np.zeros((9, 9, 20), np.float32)
    volume[3, 4, 5] = 1.0
    terms = cube_terms(volume, np.array([[4, 4, 4], [4, 4, 14]]), 5)    # the second cube is all zeros
    assert terms.textured.tolist() == [False, False]
    monkeypatch.setattr(reference, "_FLAT", np.nextafter(limit, 0.0))
    assert cube_terms(volume, np.array([[4, 4, 4]]), 5).textured.tolist() == [True]


def _steepest_descent_sums(sd, fn, w):
    """Gauss-Newton Hessian, sum w sd and sum w fn sd of (n, K) steepest-descent images."""
    return sd.T @ (w[:, None] * sd), sd.T @ w, sd.T @ (w * fn)


def _weighted_unit_zero_mean(v, w):
    v = v - np.sum(w * v) / np.sum(w)
    return v / np.sqrt(np.sum(w * v * v))


@pytest.mark.parametrize("k", [3, 6, 12])
def test_the_znssd_hessian_is_that_of_the_images_with_the_mean_and_fn_projected_out(k):
    rng = np.random.default_rng(k)
    n = 200
    w = rng.uniform(0.2, 1.0, n)
    fn = _weighted_unit_zero_mean(rng.normal(size=n), w)
    sd = rng.normal(size=(n, k)) + 0.3 + 0.5 * fn[:, None]       # images with a mean and an fn part
    projected = sd.copy()
    for basis_image in (np.ones(n), fn):
        unit = basis_image / np.sqrt(np.sum(w * basis_image ** 2))
        projected -= np.outer(unit, (w * unit) @ projected)
    hess, sd_sum, sd_fn = _steepest_descent_sums(sd, fn, w)
    got = normalised_hessian_inverse(hess[None], sd_sum[None], sd_fn[None], np.sum(w))[0]
    np.testing.assert_allclose(got, np.linalg.inv(projected.T @ (w[:, None] * projected)), rtol=1e-9)


def test_where_the_projection_leaves_no_curvature_the_step_keeps_the_plain_hessian():
    # one steepest-descent image is a constant plus a multiple of fn (a linear ramp's dilation is a
    # contrast change): the projected Hessian is singular there, so that node keeps H^-1; the other
    # node of the batch is projected as usual
    rng = np.random.default_rng(1)
    n, k = 150, 4
    w = np.ones(n)
    fn = _weighted_unit_zero_mean(rng.normal(size=n), w)
    sd_bad = rng.normal(size=(n, k))
    sd_bad[:, 2] = 0.7 + 2.0 * fn
    sd_good = rng.normal(size=(n, k))
    sums = [_steepest_descent_sums(sd, fn, w) for sd in (sd_bad, sd_good)]
    hess, sd_sum, sd_fn = (np.stack(a) for a in zip(*sums))
    got = normalised_hessian_inverse(hess, sd_sum, sd_fn, float(n))
    np.testing.assert_allclose(got[0], np.linalg.inv(hess[0]), rtol=1e-12)
    assert np.all(np.isfinite(got))
    assert not np.allclose(got[1], np.linalg.inv(hess[1]), rtol=1e-3)
