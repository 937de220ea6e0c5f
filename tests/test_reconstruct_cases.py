"""analysis.reconstruct on cases small enough to work out by hand, and its input contract.

Geometry (see analysis.projector): at angle t the beam runs along (cos t, sin t)
in the (x, y) plane and detector coordinate u = -x sin t + y cos t, so at
t = 0 detector column j sees row y = j of a centred grid, and at t = 90 it sees
column x = n - 1 - j. Joseph weights there are 1 per voxel crossed.
"""

import re

import numpy as np
import pytest
import scipy.fft

from analysis.projector import back_project, forward_project
from analysis.reconstruct import (_cylinder_padding, angular_weights, fbp, filter_projections, normalise,
                                 reconstruct, sirt)

from test_reconstruct import _disk_sinogram, _grid

RAMP8 = np.arange(8, dtype=np.float32)[None, None, :]   # one angle, one slice, 8 columns: 0 .. 7


# ---- SIRT -----------------------------------------------------------------------

def test_sirt_one_angle_one_iteration_spreads_each_ray_evenly_along_it():
    # row sums R = 1/8 (8 voxels of weight 1 per ray), column sums C = 1 (one ray per voxel):
    # x = C A^T R b puts b_j / 8 on every voxel of ray j
    x = sirt(RAMP8, [0.0], iterations=1, nonnegative=False)
    np.testing.assert_array_equal(x[0], np.repeat(RAMP8[0, 0][:, None] / 8, 8, axis=1))
    x = sirt(RAMP8, [90.0], iterations=1, nonnegative=False)
    np.testing.assert_array_equal(x[0], np.repeat(RAMP8[0, 0][::-1][None, :] / 8, 8, axis=0))


def test_sirt_one_angle_is_converged_after_one_iteration():
    # A x1 = b exactly, so every later update is zero
    np.testing.assert_array_equal(sirt(RAMP8, [0.0], iterations=4), sirt(RAMP8, [0.0], iterations=1))


def test_sirt_zero_iterations_returns_the_start():
    x0 = np.random.default_rng(0).random((1, 8, 8))
    out = sirt(RAMP8, [0.0], iterations=0, x0=x0)
    assert out.dtype == np.float32 and np.array_equal(out, x0.astype(np.float32))
    assert out is not x0
    np.testing.assert_array_equal(sirt(RAMP8, [0.0], iterations=0), np.zeros((1, 8, 8), np.float32))


def test_sirt_starts_from_x0():
    # from x0 = the converged answer the update is zero; from x0 = 0 one iteration gets there
    done = sirt(RAMP8, [0.0], iterations=1)
    np.testing.assert_array_equal(sirt(RAMP8, [0.0], iterations=1, x0=done), done)


def test_sirt_default_is_50_iterations():
    angles = [0.0, 45.0, 90.0, 135.0]
    b = np.random.default_rng(1).random((4, 1, 8)).astype(np.float32)
    np.testing.assert_array_equal(sirt(b, angles), sirt(b, angles, iterations=50))


def test_sirt_float64_and_float32_line_integrals_give_the_same_bytes():
    angles = [0.0, 60.0, 120.0]
    b = np.random.default_rng(2).random((3, 2, 8)).astype(np.float32)
    assert sirt(b.astype(np.float64), angles, iterations=3).tobytes() == sirt(b, angles, iterations=3).tobytes()


def test_sirt_on_a_grid_wider_than_the_detector():
    # 12 x 12 grid, 8 detector columns centred on it: column j is row j + 2; each ray crosses
    # 12 voxels; rows 0, 1, 10, 11 are seen by no ray and stay zero
    x = sirt(RAMP8, [0.0], iterations=1, nonnegative=False, shape_yx=(12, 12))
    expected = np.zeros((12, 12), np.float32)
    expected[2:10] = RAMP8[0, 0][:, None] / 12
    assert x.shape == (1, 12, 12)
    np.testing.assert_allclose(x[0], expected, rtol=1e-6, atol=0)


def test_sirt_on_a_grid_narrower_than_the_detector_ignores_the_rays_that_miss_it():
    # 4 x 4 grid, 8 columns: columns 2 .. 5 cross rows 0 .. 3, the others miss the grid
    x = sirt(RAMP8, [0.0], iterations=1, nonnegative=False, shape_yx=(4, 4))
    np.testing.assert_allclose(x[0], np.repeat(RAMP8[0, 0][2:6, None] / 4, 4, axis=1), rtol=1e-6, atol=0)


def test_sirt_rays_between_voxel_rows_weigh_half_a_voxel_per_column():
    """3 columns on a 2 x 2 grid at 0 degrees: the rays run at y = -0.5, 0.5, 1.5 (centred on the
    grid's y = 0.5), so the edge rays cross row 0 or row 1 with weight 1/2 per voxel (row sums 1, 2,
    1) and the middle ray both rows with 1/2 each; every voxel's column sum is 1. One step from zero:
    x(row 0) = (1/2 b0) / 1 + (1/2 b1) / 2, x(row 1) = (1/2 b1) / 2 + (1/2 b2) / 1; exact in float32."""
    b = np.array([2.0, 4.0, 6.0], np.float32)[None, None, :]
    x = sirt(b, [0.0], iterations=1, nonnegative=False, shape_yx=(2, 2))
    np.testing.assert_array_equal(x[0], [[2.0, 2.0], [4.0, 4.0]])


# At 5e-5 degrees (slope 8.7e-7) a ray one voxel outside the grid at its centre comes within about
# 4e-7 of the grid's last row at one end: it grazes a corner voxel with a weight of that size.
GRAZING_DEG = 5e-5


def test_sirt_ignores_a_ray_that_only_grazes_a_corner_of_the_grid():
    # 4 columns on a 2 x 2 grid: the outer two only graze a corner each (row sum at most 1e-6, the
    # docstring's limit): their values change nothing, bit for bit
    row_sums = forward_project(np.ones((1, 2, 2), np.float32), [GRAZING_DEG], n_det=4)[0, 0]
    assert 0 < row_sums[0] <= 1e-6 and 0 < row_sums[3] <= 1e-6 and np.all(row_sums[1:3] > 1.9)
    b = np.full((1, 1, 4), 3.0, np.float32)
    other = b.copy()
    other[0, 0, [0, 3]] = [1000.0, -1000.0]
    want = sirt(b, [GRAZING_DEG], iterations=3, nonnegative=False, shape_yx=(2, 2))
    assert sirt(other, [GRAZING_DEG], iterations=3, nonnegative=False, shape_yx=(2, 2)).tobytes() == want.tobytes()


def test_sirt_leaves_a_voxel_that_rays_only_graze_at_its_start():
    # 2 columns on a 4 x 2 grid: the first ray runs along row 1 and grazes voxel (0, 0), the second
    # along row 2 and grazes (3, 1) (column sums at most 1e-6); (0, 1) and (3, 0) no ray reaches.
    col_sums = back_project(np.ones((1, 1, 2), np.float32), [GRAZING_DEG], (4, 2))[0]
    assert 0 < col_sums[0, 0] <= 1e-6 and 0 < col_sums[3, 1] <= 1e-6 and col_sums[0, 1] == col_sums[3, 0] == 0
    x0 = np.full((1, 4, 2), 5.0, np.float32)
    x = sirt(np.full((1, 1, 2), 100.0, np.float32), [GRAZING_DEG], iterations=2, nonnegative=False,
             shape_yx=(4, 2), x0=x0)
    np.testing.assert_array_equal(x[0, [0, 3]], x0[0, [0, 3]])
    assert np.all(x[0, 1:3] > 20)       # the rows the rays run along did move (to about 50)


@pytest.mark.parametrize("kwargs, match", [
    (dict(line_integrals=np.ones((1, 8))), "line_integrals"),
    (dict(line_integrals=np.ones((1, 0, 8))), "line_integrals"),
    (dict(iterations=-1), "iterations"),
    (dict(iterations=2.0), "iterations"),
    (dict(x0=np.zeros((1, 8, 9))), "x0"),
])
def test_sirt_bad_input_names_the_argument(kwargs, match):
    args = dict(line_integrals=RAMP8, angles_deg=[0.0])
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"^{match}: "):
        sirt(**args)


# ---- filtering and its padding --------------------------------------------------------

def _inside_fov(n_det, n_angles=3):
    """Projections of a disk well inside the field of view: the rows end in zeros."""
    u = np.arange(n_det) - (n_det - 1) / 2
    row = 0.04 * np.sqrt(np.clip((n_det / 4) ** 2 - (u - 1.5) ** 2, 0, None))
    return np.tile(row, (n_angles, 2, 1)).astype(np.float32)


def test_filter_defaults_are_ramp_with_cylinder_padding():
    p = np.random.default_rng(3).random((2, 3, 20)).astype(np.float32) + 1.0
    assert filter_projections(p).tobytes() == filter_projections(p, filter="ramp", padding=True).tobytes()


@pytest.mark.parametrize("n_det", [31, 32, 33, 37])   # margins even, odd, uneven; odd FFT length (75)
def test_padding_adds_nothing_for_an_object_inside_the_field_of_view(n_det):
    p = _inside_fov(n_det)
    padded, plain = filter_projections(p, padding=True), filter_projections(p, padding=False)
    assert padded.shape == p.shape and padded.dtype == np.float32
    assert padded.tobytes() == plain.tobytes()


@pytest.mark.parametrize("n_det", [32, 40])   # equal margins (16, 20) on both sides
def test_padded_filter_of_a_mirrored_row_is_the_mirrored_filter(n_det):
    # a truncated off-centre cylinder, so the two sides are extended differently
    u = np.arange(n_det) - (n_det - 1) / 2
    row = 0.02 * np.sqrt(np.clip((0.8 * n_det) ** 2 - (u - 3) ** 2, 0, None))
    p = np.stack([row, row[::-1]])[:, None, :].astype(np.float32)
    out = filter_projections(p, padding=True)
    # float32 FFTs of mirrored inputs round differently, at ~1e-7 of the largest input value
    np.testing.assert_allclose(out[1, 0], out[0, 0, ::-1], rtol=0, atol=1e-6 * np.abs(p).max())


def test_filter_float64_and_float32_input_give_the_same_bytes():
    p = np.random.default_rng(4).random((2, 2, 24)).astype(np.float32)
    for padding in (True, False):
        a = filter_projections(p.astype(np.float64), padding=padding)
        assert a.tobytes() == filter_projections(p, padding=padding).tobytes()


@pytest.mark.parametrize("padding", [True, False])
def test_filtering_in_place_gives_the_same_bytes(padding):
    p = np.random.default_rng(5).random((3, 4, 29)).astype(np.float32) + 0.5
    expected = filter_projections(p, padding=padding)
    own = p.copy()
    assert filter_projections(own, padding=padding, out=own) is own
    assert own.tobytes() == expected.tobytes()


def test_fbp_overwriting_its_input_gives_the_same_volume_and_leaves_the_filtered_scan():
    p = np.random.default_rng(6).random((12, 3, 21)).astype(np.float32)
    angles = np.linspace(-70.0, 70.0, 12)
    expected = fbp(p, angles)
    kept = p.copy()
    assert fbp(kept, angles).tobytes() == expected.tobytes() and kept.tobytes() == p.tobytes()
    own = p.copy()
    assert fbp(own, angles, overwrite_input=True).tobytes() == expected.tobytes()
    assert own.tobytes() == filter_projections(p).tobytes()
    # only float32 is filtered in place: another dtype is converted, and stays as it was
    wide = p.astype(np.float64)
    assert fbp(wide, angles, overwrite_input=True).tobytes() == expected.tobytes()
    assert np.array_equal(wide, p.astype(np.float64))


@pytest.mark.parametrize("call, match", [
    (lambda: filter_projections(np.ones((2, 1, 8)), out=np.empty((2, 1, 8))), "^out: "),
    (lambda: filter_projections(np.ones((2, 1, 8)), out=np.empty((2, 1, 9), np.float32)), "^out: "),
    (lambda: filter_projections(np.ones((2, 8))), "^line_integrals: "),
    (lambda: filter_projections(np.ones((2, 0, 8))), "^line_integrals: "),
    (lambda: filter_projections(np.ones((2, 1, 8)), filter="cosine"), "^filter: "),
])
def test_filter_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _chord(u, radius, mu):
    return 2 * mu * np.sqrt(np.clip(radius ** 2 - u ** 2, 0, None))


def test_cylinder_padding_extends_a_centred_cylinder_by_its_own_chord_times_the_taper():
    """15 columns: the edge and centre values are single columns (u = +-7 and u = 0), so the
    fitted radius is exact and the extension is the true chord, cut by the cosine taper
    0.5 + 0.5 cos(pi d / (width + 1)) at d = 1 .. width columns beyond the edge."""
    n, left, right = 15, 10, 12
    # edge / centre = sqrt(1 - 49 / 12.3^2) = 0.82 < 0.97; centre chord 0.49 < 1. Radii off the
    # integer columns: where the chord ends on a column, float32 rounding under the square
    # root shows as 1e-4.
    radius, mu = 12.3, 0.02
    u = np.arange(n) - 7.0
    rows = np.stack([_chord(u, radius, mu), _chord(u, 10.4, 0.03)]).astype(np.float32)
    out = _cylinder_padding(rows, left, right)
    assert out.shape == (2, left + n + right) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, left:left + n], rows)
    for k, (r, m) in enumerate([(radius, mu), (10.4, 0.03)]):   # each row its own radius
        d = np.arange(1, right + 1)
        expected_right = _chord(7.0 + d, r, m) * (0.5 + 0.5 * np.cos(np.pi * d / (right + 1)))
        np.testing.assert_allclose(out[k, left + n:], expected_right, rtol=1e-5, atol=1e-7)
        d = np.arange(1, left + 1)
        expected_left = _chord(7.0 + d, r, m) * (0.5 + 0.5 * np.cos(np.pi * d / (left + 1)))
        np.testing.assert_allclose(out[k, :left][::-1], expected_left, rtol=1e-5, atol=1e-7)


def test_cylinder_padding_of_three_columns_puts_the_edge_at_u_1():
    """The smallest row with an edge apart from its centre: columns at u = -1, 0, 1 (band 1). A centred
    cylinder of radius 2.3 gives edge / centre = sqrt(1 - 1 / 2.3^2) = 0.90 < 0.97, so the fit is
    exact and the extension is the chord at u = 1 + d (nonzero at d = 1 only) times the taper."""
    n, left, right = 3, 4, 5
    radius, mu = 2.3, 0.1
    rows = _chord(np.arange(n) - 1.0, radius, mu)[None].astype(np.float32)
    out = _cylinder_padding(rows, left, right)
    np.testing.assert_array_equal(out[0, left:left + n], rows[0])
    for width, got in ((right, out[0, left + n:]), (left, out[0, :left][::-1])):
        d = np.arange(1, width + 1)
        expected = _chord(1.0 + d, radius, mu) * (0.5 + 0.5 * np.cos(np.pi * d / (width + 1)))
        assert expected[0] > 0.1 and np.all(expected[1:] == 0)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n, band", [(12, 1), (48, 6), (56, 7), (96, 8)])   # n // 8, at least 1, at most 8
def test_cylinder_padding_fits_the_mean_of_the_outermost_band_of_columns(n, band):
    """The edge value is the mean of the outermost min(8, n // 8) columns (at least 1): 0.375 + 0.125
    and 0.375 - 0.125 in turn over exactly that band (0.375 alone for a band of 1), every other column
    0.5. Edge / centre = 0.75 is the chord of a centred cylinder of radius R = u_edge / sqrt(1 - 0.75^2)
    (u_edge = (n - 1) / 2; 1.5 u_edge, so the chord goes on past the edge) and mu = 0.5 / (2 R); any
    other band would mix 0.5 into the edge mean or leave a +-0.125 out. All values are exact in
    float32."""
    edge = 0.375 + 0.125 * np.array([(-1) ** k if k < band - band % 2 else 0 for k in range(band)])
    row = np.full(n, 0.5)
    row[:band], row[n - band:] = edge, edge[::-1]
    left, right = 10, 13
    out = _cylinder_padding(row[None].astype(np.float32), left, right)
    np.testing.assert_array_equal(out[0, left:left + n], row)
    u_edge = (n - 1) / 2
    radius = u_edge / np.sqrt(1 - 0.75 ** 2)
    mu = 0.5 / (2 * radius)
    for width, got in ((right, out[0, left + n:]), (left, out[0, :left][::-1])):
        d = np.arange(1, width + 1)
        expected = _chord(u_edge + d, radius, mu) * (0.5 + 0.5 * np.cos(np.pi * d / (width + 1)))
        assert expected[0] > 0.3            # the chord goes on beyond the edge: a band's mean shows
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


# (0.5, -0.5): edge / centre = -1 exactly, noise on an empty edge; its square is 1, a cylinder of
# infinite radius (0 x inf = NaN in the extension) if the ratio were not first raised to 0
@pytest.mark.parametrize("centre, edge", [(0.0, 0.1), (-0.2, 0.1), (0.5, 0.0), (0.5, -0.1), (0.5, -0.5)])
def test_cylinder_padding_is_zero_where_no_cylinder_fits(centre, edge):
    """An empty (or negative) centre fits no cylinder; an empty (or negative) edge has nothing to extend."""
    row = np.full(15, 0.3, np.float32)
    row[7] = centre
    row[0] = row[-1] = edge
    out = _cylinder_padding(row[None], 6, 6)
    assert np.all(out[0, :6] == 0) and np.all(out[0, -6:] == 0)


# ---- normalise, angular weights, FBP --------------------------------------------------

def test_normalise_floors_a_dead_flat_pixel_below_the_dark_also_in_uint16():
    counts = np.array([[[500, 500]]], np.uint16)
    flat = np.array([[1100, 50]], np.uint16)      # second pixel: flat below the dark
    dark = np.array([[100, 100]], np.uint16)
    out = normalise(counts, flat, dark)
    np.testing.assert_allclose(out[0, 0], [np.log(1000 / 400), np.log(0.5 / 400)], rtol=1e-6)


@pytest.mark.parametrize("call, match", [
    (lambda: normalise(np.ones((2, 3)), np.ones((2, 3)), np.zeros((2, 3))), r"^counts: "),
    (lambda: normalise(np.ones((1, 0, 3)), np.ones((0, 3)), np.zeros((0, 3))), r"^counts: "),
    (lambda: normalise(np.ones((1, 2, 3)), np.ones((2, 3)), np.zeros((2, 3)), floor_counts=0.0), r"^floor_counts: "),
    (lambda: normalise(np.ones((1, 2, 3)), np.ones((3, 2)), np.zeros((2, 3))), r"^flats: .* got \(3, 2\)$"),
    (lambda: normalise(np.ones((1, 2, 3)), np.ones((2, 3)), np.zeros((4, 3, 2))), r"^darks: .* got \(4, 3, 2\)$"),
])
def test_normalise_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_angular_weights_hand_case_with_a_gap_at_and_above_ten_times_the_median():
    """Angles 0, 1, .. 8, 18, 28.5: gaps 1 (x8), 10, 10.5 and 151.5 round to 180; median 1.
    Gaps above 10x the median (10.5, 151.5) count as 1, the gap of exactly 10 stays;
    each angle gets half its two gaps: 1 (x8), 5.5, 5.5, 1, sum 20, scaled to pi."""
    w = angular_weights([0, 1, 2, 3, 4, 5, 6, 7, 8, 18, 28.5])
    np.testing.assert_allclose(w, np.pi / 20 * np.array([1] * 8 + [5.5, 5.5, 1]), rtol=1e-12)


def test_angular_weights_of_a_direction_listed_twice_give_the_gap_below_to_the_first_listing():
    """A 360 degree scan: 0, 10, 30, 60, 100 and the same directions again at 180 ... 280. Modulo 180
    the gaps are 10, 20, 30, 40 and 80 (100 round to 180), each direction twice with a gap of 0
    between; the first listing of a direction takes half the gap below it, the second half the gap
    above: 40 (= 80 / 2), 5, 10, 15, 20 and 5, 10, 15, 20, 40, sum 180, scaled to pi. Listed second
    turn first, the second turn's angles are the first listings."""
    first, second = [0, 10, 30, 60, 100], [180, 190, 210, 240, 280]
    below, above = [40, 5, 10, 15, 20], [5, 10, 15, 20, 40]
    np.testing.assert_allclose(angular_weights(first + second), np.pi / 180 * np.array(below + above), rtol=1e-12)
    np.testing.assert_allclose(angular_weights(second + first), np.pi / 180 * np.array(below + above), rtol=1e-12)


def test_angular_weights_a_gap_of_exactly_1e_9_degree_is_a_repeated_angle_not_a_spacing():
    """Angles 0, 1e-9, 1, 2, 5, 8: gaps 1e-9, 1 - 1e-9, 1, 3, 3 and 172 (8 round to 180). The gap of
    1e-9 degree (exact in float64) is an angle repeated, left out of the median spacing: median of
    1, 1, 3, 3, 172 is 3, so 172 > 30 counts as 3. Weights, half of the two gaps each: 1.5, 0.5, 1, 2,
    3, 3 (to 1e-9), sum 11. Were 1e-9 a spacing the median would be 2 and the weights sum to 10."""
    w = angular_weights([0, 1e-9, 1, 2, 5, 8])
    np.testing.assert_allclose(w, np.pi / 11 * np.array([1.5, 0.5, 1, 2, 3, 3]), rtol=1e-9)


def test_angular_weights_of_float32_angles_are_those_of_the_same_numbers_in_float64():
    a32 = np.float32([0.1, 33.3, 77.7, 150.2, 151.0])
    assert angular_weights(a32).tobytes() == angular_weights(a32.astype(np.float64)).tobytes()


@pytest.mark.parametrize("angles", [[], [[0.0, 1.0]], [0.0, np.nan], [np.inf]])
def test_angular_weights_bad_angles_are_rejected_with_one_message(angles):
    message = "angles_deg: expected a non-empty 1D array of finite angles in degrees"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        angular_weights(angles)


def test_fbp_defaults_are_ramp_with_padding_and_progress_runs_from_0p1_to_1():
    angles = np.linspace(0, 180, 12, endpoint=False)
    p = np.random.default_rng(5).random((12, 20, 16)).astype(np.float32)   # 3 blocks of 8 slices
    seen = []
    out = fbp(p, angles, progress=seen.append)
    assert out.tobytes() == fbp(p, angles, filter="ramp", padding=True).tobytes()
    assert seen[0] == 0.1 and seen[-1] == 1.0 and len(seen) > 2
    assert seen == sorted(seen) and all(0.1 <= f <= 1.0 for f in seen)


@pytest.mark.parametrize("p, match", [(np.ones((2, 8)), r"n_angles=2"), (np.ones((3, 1, 8)), r"n_angles=2")])
def test_fbp_line_integrals_must_have_one_projection_per_angle(p, match):
    with pytest.raises(ValueError, match="^line_integrals: .*" + match):
        fbp(p, [0.0, 90.0])


def test_fbp_filters_with_an_odd_fft_length():
    # 37 columns: the filter works on 75 (= next fast length of 74) samples
    assert scipy.fft.next_fast_len(74) == 75
    angles = np.linspace(0, 180, 8, endpoint=False)
    p = _inside_fov(37, 8)
    expected = fbp(p, angles, padding=False)
    np.testing.assert_array_equal(fbp(p, angles), expected)


# ---- reconstruct: raw counts to a volume ------------------------------------------

def _disk_scan(n_det=32, mu=0.05, radius=10.0):
    """Counts, flats and darks of a centred disk of ``mu`` per voxel (Beer-Lambert, no noise), 48 angles."""
    angles = np.linspace(0, 180, 48, endpoint=False)
    p = _disk_sinogram([(0.0, 0.0, radius, mu)], angles, n_det).astype(np.float64)
    flat, dark = np.full((1, n_det), 5000.0), np.full((1, n_det), 100.0)
    return flat * np.exp(-p) + dark, flat + dark, dark, angles


def _inside(n_det, radius):
    yy, xx = _grid(n_det)
    return xx ** 2 + yy ** 2 < radius ** 2


def test_reconstruct_turns_counts_into_mu_with_either_method():
    counts, flats, darks, angles = _disk_scan()
    inside = _inside(32, 7)
    for method, kwargs in (("fbp", {}), ("sirt", {"iterations": 100})):
        rec = reconstruct(counts, flats, darks, angles, method=method, **kwargs)
        assert rec.shape == (1, 32, 32) and rec.dtype == np.float32
        assert abs(rec[0, inside].mean() / 0.05 - 1) < 0.03, method


def test_reconstruct_runs_the_method_named_with_its_own_settings():
    counts, flats, darks, angles = _disk_scan()
    # SIRT starts from zero: no iteration leaves it there; FBP has no iterations and is the default
    assert not reconstruct(counts, flats, darks, angles, method="sirt", iterations=0).any()
    fbp_rec = reconstruct(counts, flats, darks, angles, iterations=0)
    assert abs(fbp_rec[0, _inside(32, 7)].mean() / 0.05 - 1) < 0.03
    # a disk wider than the field of view: padding then changes the result
    counts, flats, darks, angles = _disk_scan(radius=20.0)
    line_integrals = normalise(counts, flats, darks)
    for filter_name, padding in (("hann", False), ("ramp", True)):
        seen = []
        rec = reconstruct(counts, flats, darks, angles, filter=filter_name, padding=padding, progress=seen.append)
        assert rec.tobytes() == fbp(line_integrals, angles, filter=filter_name, padding=padding).tobytes()
        assert seen[-1] == 1.0
    seen = []
    reconstruct(counts, flats, darks, angles, method="sirt", iterations=3, progress=seen.append)
    assert seen[-1] == 1.0


def test_reconstruct_defaults_are_padded_fbp_and_50_sirt_iterations():
    counts, flats, darks, angles = _disk_scan(radius=20.0)
    line_integrals = normalise(counts, flats, darks)
    assert reconstruct(counts, flats, darks, angles).tobytes() == \
        fbp(line_integrals, angles, filter="ramp", padding=True).tobytes()
    assert reconstruct(counts, flats, darks, angles, method="sirt").tobytes() == \
        sirt(line_integrals, angles, iterations=50).tobytes()


def test_reconstruct_refuses_an_unknown_method():
    counts, flats, darks, angles = _disk_scan()
    with pytest.raises(ValueError, match=r"^method: expected one of fbp, sirt, got 'art'$"):
        reconstruct(counts, flats, darks, angles, method="art")


def test_fbp_sirt_and_reconstruct_keep_the_arch_they_were_given(pretend_gpu):
    # the GPU paths run on taichi's CPU runtime while the projector believes it is on "gpu"; a call
    # that fell back to the default "cpu" would initialise taichi again, which the fixture forbids
    counts, flats, darks, angles = _disk_scan()
    p = normalise(counts, flats, darks)
    want = [fbp(p, angles), sirt(p, angles, iterations=2),
            reconstruct(counts, flats, darks, angles), reconstruct(counts, flats, darks, angles, method="sirt",
                                                                   iterations=2)]
    pretend_gpu()
    got = [fbp(p, angles, arch="gpu"), sirt(p, angles, iterations=2, arch="gpu"),
           reconstruct(counts, flats, darks, angles, arch="gpu"),
           reconstruct(counts, flats, darks, angles, method="sirt", iterations=2, arch="gpu")]
    for a, b in zip(got, want):
        assert a.tobytes() == b.tobytes()
