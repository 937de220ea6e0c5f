"""analysis.pores on hand-counted cases: the whole-voxel CPSD of a cubic pore, the distribution's
axis, fractions, mean, median and porosity, the checks, the progress reports and the files (issue #19).

The cube: a 5x5x5 pore (offsets -2..2 about its centre voxel) inside solid. A whole-voxel ball
``{x : |x - c| <= r}`` fits when all its voxels are pore. r = 2 fits only at the centre; it holds the
lattice points with |x|^2 <= 4: 1 + 6 + 12 + 8 + 6 = 33 voxels. r = 1 (a 7-voxel cross) fits at every
voxel of the inner 3x3x3 cube; the crosses cover the points of the cube with at most one coordinate
at +-2: 27 + 6 x 9 = 81 voxels, 48 of them outside the r = 2 ball. The 12 x 3 edge and 8 corner voxels
(44) fit no ball of radius 1: radius 0.
"""

import csv
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis import pores
from analysis.pores import (cpsd, cpsd_whole_voxel, local_radius, phase_fractions, plot_cpsd, whole_voxel_radius,
                            write_cpsd_csv, write_phase_fractions_csv)

V = 0.5


def _cube(n=9, lo=2):
    pore = np.zeros((n, n, n), bool)
    pore[lo:lo + 5, lo:lo + 5, lo:lo + 5] = True
    return pore


def _expected_cube_radius():
    g = np.arange(-2, 3)
    z, y, x = np.meshgrid(g, g, g, indexing="ij")
    at_two = (np.abs(z) == 2).astype(int) + (np.abs(y) == 2) + (np.abs(x) == 2)
    r = np.where(at_two <= 1, 1.0, 0.0)
    r[z ** 2 + y ** 2 + x ** 2 <= 4] = 2.0
    return r


def test_the_whole_voxel_radius_of_a_cubic_pore_is_the_largest_ball_that_fits_around_each_voxel():
    expected = _expected_cube_radius()
    assert (np.sum(expected == 2), np.sum(expected == 1), np.sum(expected == 0)) == (33, 48, 44)
    r = whole_voxel_radius(_cube())
    np.testing.assert_array_equal(r[2:7, 2:7, 2:7], expected)
    inside = np.zeros_like(r, bool)
    inside[2:7, 2:7, 2:7] = True
    assert np.all(r[~inside] == 0) and r.dtype == np.float32


def test_a_pore_cut_by_the_array_border_is_not_closed_by_it():
    # the cube pushed against the z = 0 face (array z 0..4): outside counts as pore, so the ball of radius 2
    # centred on (0, 4, 4) fits (it reaches z = -2) and covers the bottom edge voxel (0, 2, 4)
    assert whole_voxel_radius(_cube()[2:])[0, 2, 4] == 2.0
    # one solid layer below instead (cube at z 1..5): (1, 2, 4) is an edge voxel of a closed cube, radius 0
    assert whole_voxel_radius(_cube()[1:])[1, 2, 4] == 0.0



def _whole_voxel_radius_by_definition(pore):
    """The whole-voxel radius of every voxel straight from its definition, by brute force.

    A ball {x : |x - c|^2 <= r^2} (r a whole number of voxels, c any voxel of the array) fits
    when every solid voxel s has |s - c|^2 > r^2 (outside the array is pore); a pore voxel takes
    the largest r of the fitting balls that hold it. No distance transform, no square root.
    """
    points = np.argwhere(np.ones(pore.shape, bool))
    solid = np.argwhere(~pore)
    d2 = ((points[:, None, :] - solid[None, :, :]) ** 2).sum(axis=2).min(axis=1)   # nearest solid, squared
    fits = np.zeros(len(points), dtype=np.int64)     # largest r with r^2 < d2 (pore voxels have d2 >= 1)
    while np.any((fits + 1) ** 2 < d2):
        fits += (fits + 1) ** 2 < d2
    inside = d2 > 0
    between = ((points[:, None, :] - points[None, inside, :]) ** 2).sum(axis=2)    # voxel x, centre c
    held = between <= fits[inside][None, :] ** 2
    radius = np.where(held, fits[inside][None, :], -1).max(axis=1)
    return np.where(pore.ravel(), radius, 0).reshape(pore.shape).astype(np.float32), d2.reshape(pore.shape)


def _scattered_grains():
    """A 6 x 7 x 9 box of pore with 40 solid voxels scattered in it (seed 19)."""
    pore = np.ones((6, 7, 9), bool)
    rng = np.random.default_rng(19)
    pore[tuple(rng.integers(0, (6, 7, 9), size=(40, 3)).T)] = False
    return pore


def test_the_whole_voxel_radius_of_a_pore_between_scattered_grains_is_its_definition():
    # a 6 x 7 x 9 box (three different edges, so no axis can stand in for another) with 40 solid voxels:
    # among the pore voxels the nearest solid voxel lies at squared distances 1, 2, 3, 4, 5 ..., so both
    # the whole-voxel radius's steps (r = 1 from d^2 = 2, r = 2 from d^2 = 5) and the corners where
    # no face touches the solid occur, unlike in the cube above (d^2 only 1, 4, 9)
    pore = _scattered_grains()
    expected, d2 = _whole_voxel_radius_by_definition(pore)
    assert {1, 2, 3, 4, 5} <= set(np.unique(d2[pore]).tolist())
    assert {0.0, 1.0, 2.0} <= set(np.unique(expected[pore]).tolist())
    np.testing.assert_array_equal(whole_voxel_radius(pore), expected)


@pytest.mark.parametrize("radius_map, on_whole_array", [(local_radius, lambda pore: pores._local_radius(pore, None)),
                                                        (whole_voxel_radius, pores._whole_voxel_radius)])
def test_solid_around_the_pores_changes_no_radius(radius_map, on_whole_array):
    # The maps are computed on the pores' box and one solid layer around it (sparing the head and
    # foil rows of a loaded step): the grains with 1-4 solid layers on five faces read what the
    # computation on the whole array reads, and the sixth face stays the array's border (outside
    # counts as pore)
    thick = np.pad(_scattered_grains(), ((3, 1), (2, 4), (0, 2)), constant_values=False)
    radius = radius_map(thick)
    np.testing.assert_array_equal(radius, on_whole_array(thick))
    inside = np.zeros(thick.shape, bool)
    inside[3:-1, 2:-4, :-2] = True
    assert np.all(radius[~inside] == 0) and np.any(radius[inside] > 0)
    if radius_map is whole_voxel_radius:
        np.testing.assert_array_equal(radius, _whole_voxel_radius_by_definition(thick)[0])


def test_every_voxel_between_scattered_grains_reads_at_least_each_lattice_ball_that_holds_it():
    # the local radius is the value of the largest inscribed ball covering a voxel (module docstring), and
    # every pore voxel c carries one such ball: D = {x : |x - c|^2 < d2}, d2 the squared distance to the
    # nearest solid voxel centre, of value (r_in + r_out) / 2 with r_out = sqrt(d2) and r_in the farthest
    # lattice point of D, sqrt(the largest sum of three squares below d2). So each voxel reads at least
    # the largest value of the lattice balls that hold it, by brute force here. Between scattered grains
    # most of these balls are not at a local maximum of the distance, and on 70 of the 338 pore voxels no
    # peak's sub-voxel ball gives the largest value: a ridge ball does.
    pore = _scattered_grains()
    points = np.argwhere(pore)
    solid = np.argwhere(~pore)
    d2 = ((points[:, None, :] - solid[None, :, :]) ** 2).sum(axis=2).min(axis=1)
    g = np.arange(-6, 7)             # every lattice point with |x|^2 < 36
    sums = np.unique((g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2).ravel())
    assert d2.max() <= 36
    r_in = np.sqrt([sums[sums < k].max() for k in d2])
    value = 0.5 * (r_in + np.sqrt(d2))
    between = ((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=2)      # voxel x, centre c
    lower = np.where(between < d2[None, :], value[None, :], 0.0).max(axis=1)
    radius = local_radius(pore)
    assert np.all(radius[tuple(points.T)] >= lower.astype(np.float32) - 1e-6)
    assert np.all(radius[~pore] == 0)


_ONE_BALL_WITH_BOUND_CHECKS = """
import sys
import numpy as np
from analysis.pores import local_radius
g = np.stack(np.meshgrid(*[np.arange(11)] * 3, indexing="ij"), axis=-1) - 5
np.save(sys.argv[1], local_radius((g ** 2).sum(axis=-1) <= 4))
"""


def test_a_pore_whose_ridge_is_one_voxel_reads_its_balls_value_and_nothing_outside_the_arrays(tmp_path):
    # the digital ball {x : |x|^2 <= 4} (33 voxels) in an 11^3 solid block: its distance ridge is the centre
    # voxel alone, one ridge ball. The nearest solid voxel centres ((2, 1, 0), its permutations and signs)
    # are at r_out = sqrt(5), the farthest pore voxel centres at r_in = 2, and no centre in the cell is
    # farther from the solid ones (they surround it symmetrically): every pore voxel reads
    # (2 + sqrt(5)) / 2. Run in a new
    # process with taichi's debug mode (TI_DEBUG=1), which checks every index into an array: with one ridge
    # ball the kernels must not read a second one, as they would if the voxels off the ridge were numbered
    # as ridge balls (undefined memory, which without the checks may or may not change the result)
    out = tmp_path / "radius.npy"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TI_")}
    env["TI_DEBUG"] = "1"
    result = subprocess.run([sys.executable, "-c", _ONE_BALL_WITH_BOUND_CHECKS, str(out)], capture_output=True,
                            text=True, env=env, cwd=Path(__file__).parents[1], timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    radius = np.load(out)
    g = np.stack(np.meshgrid(*[np.arange(11)] * 3, indexing="ij"), axis=-1) - 5
    pore = (g ** 2).sum(axis=-1) <= 4
    assert pore.sum() == 33
    np.testing.assert_allclose(radius[pore], (2 + np.sqrt(5)) / 2, rtol=0, atol=1e-6)
    assert np.all(radius[~pore] == 0)


def test_the_whole_voxel_cpsd_of_the_cube_counts_its_radii():
    result = cpsd_whole_voxel(_cube(), V)
    n = 125
    np.testing.assert_allclose(result.radius_um, [0.0, 0.5, 1.0, 1.5], atol=1e-12)   # whole voxels, one past
    np.testing.assert_allclose(result.cumulative_fraction, [1.0, 81 / n, 33 / n, 0.0], atol=1e-12)
    assert result.mean_radius_um == pytest.approx((33 * 2 + 48 * 1) / n * V, abs=1e-12)
    assert result.median_radius_um == 0.5            # the 63rd of 44 zeros, 48 ones, 33 twos: 1 voxel
    assert result.porosity == pytest.approx(n / 9 ** 3, abs=1e-12)
    assert result.n_pore_voxels == n and result.voxel_size_um == V


def test_a_mask_picks_the_voxels_counted_and_the_region_of_the_porosity():
    # the half z >= 4 of the cube (z offsets 0..2: 75 voxels) in the half z >= 4 of the box (405 voxels);
    # radii still come from the whole cube: offsets z = 0: 1 at r2, 8+12... counted from the map
    mask = np.zeros((9, 9, 9), bool)
    mask[4:] = True
    expected = _expected_cube_radius()[2:]
    result = cpsd_whole_voxel(_cube(), V, mask=mask)
    assert result.n_pore_voxels == 75
    assert result.porosity == pytest.approx(75 / 405, abs=1e-12)
    assert result.mean_radius_um == pytest.approx(expected.mean() * V, abs=1e-12)
    np.testing.assert_allclose(result.cumulative_fraction[1:3], [np.mean(expected >= 1), np.mean(expected >= 2)],
                               atol=1e-12)



def test_the_axis_runs_past_a_largest_radius_that_only_one_voxel_has():
    # a region of two voxels of the cube: its centre (radius 2) and a corner (radius 0). The axis must pass
    # the single largest radius (1 um) to fall to 0: 0, 0.5, 1.0, 1.5 um with fractions 1, 1/2, 1/2, 0
    mask = np.zeros((9, 9, 9), bool)
    mask[4, 4, 4] = mask[2, 2, 2] = True
    result = cpsd_whole_voxel(_cube(), V, mask=mask)
    np.testing.assert_allclose(result.radius_um, [0.0, 0.5, 1.0, 1.5], atol=1e-12)
    np.testing.assert_allclose(result.cumulative_fraction, [1.0, 0.5, 0.5, 0.0], atol=1e-12)
    assert result.mean_radius_um == pytest.approx(0.5, abs=1e-12)      # (0 + 2) / 2 voxels
    assert result.median_radius_um == pytest.approx(0.5, abs=1e-12)
    assert result.porosity == 1.0 and result.n_pore_voxels == 2


def test_the_continuous_cpsd_axis_steps_a_tenth_of_a_voxel_by_default_or_as_asked():
    result = cpsd(_cube(), V)
    steps = np.diff(result.radius_um)
    np.testing.assert_allclose(steps, 0.1 * V, rtol=1e-9)
    assert result.radius_um[0] == 0.0 and result.cumulative_fraction[0] == 1.0
    # the axis ends one or two steps past the largest radius, where the fraction is 0
    assert result.cumulative_fraction[-1] == 0.0 and result.cumulative_fraction[-2] == 0.0 or \
        result.cumulative_fraction[-2] > 0.0
    largest = result.radius_um[np.flatnonzero(result.cumulative_fraction > 0)[-1]]
    assert result.radius_um[-1] - largest <= 2 * 0.1 * V + 1e-12
    coarse = cpsd(_cube(), V, radius_step_um=0.2)
    np.testing.assert_allclose(np.diff(coarse.radius_um), 0.2, rtol=1e-9)
    assert coarse.mean_radius_um == result.mean_radius_um       # the mean does not depend on the axis
    assert coarse.median_radius_um == result.median_radius_um
    assert result.porosity == pytest.approx(125 / 9 ** 3) and result.n_pore_voxels == 125


@pytest.mark.parametrize("step", [0.0, -0.1, float("nan"), float("inf"), np.array([0.1, 0.2])])
def test_a_radius_step_that_is_not_a_positive_number_is_refused(step):
    with pytest.raises(ValueError, match=r"^radius_step_um: expected a finite number > 0, got"):
        cpsd(_cube(), V, radius_step_um=step)


@pytest.mark.parametrize("call, message", [
    (lambda: cpsd_whole_voxel(_cube(), 0.0), r"^voxel_size_um: expected a finite number > 0, got 0.0$"),
    (lambda: cpsd_whole_voxel(_cube(), float("inf")), r"^voxel_size_um: expected a finite number > 0"),
    (lambda: cpsd_whole_voxel(_cube(), [0.5]), r"^voxel_size_um: expected a finite number > 0"),
    (lambda: cpsd(_cube(), [0.5]), r"^voxel_size_um: expected a finite number > 0"),
    (lambda: cpsd(_cube(), float("inf")), r"^voxel_size_um: expected a finite number > 0"),
    (lambda: cpsd_whole_voxel(_cube(), V, mask=np.zeros((9, 9, 9), bool)),
     r"^mask: expected some pore voxels inside the analysis region, got none$"),
    (lambda: cpsd(_cube(), V, mask=np.zeros((9, 9, 9), bool)),
     r"^mask: expected some pore voxels inside the analysis region, got none$"),
    (lambda: cpsd_whole_voxel(_cube(), V, mask=np.ones((9, 9, 8), bool)),
     r"^mask: expected a bool array of shape \(9, 9, 9\), got shape \(9, 9, 8\) dtype bool$"),
    (lambda: cpsd(_cube(), V, mask=np.ones((9, 9, 9), np.uint8)), r"^mask: expected a bool array of shape"),
    (lambda: whole_voxel_radius(np.zeros((4, 4, 4), bool)), r"^pore_mask: expected some pore \(True\) voxels"),
    (lambda: whole_voxel_radius(np.ones((4, 4, 4), bool)), r"^pore_mask: expected some solid \(False\) voxels"),
    (lambda: whole_voxel_radius(np.ones((4, 4), bool)), r"^pore_mask: expected a 3-D bool array \(z, y, x\)"),
    (lambda: phase_fractions(np.zeros((4, 4), np.uint8)), r"^labels: expected a 3-D integer array"),
    (lambda: phase_fractions(np.full((2, 2, 2), -1, np.int8)),
     r"^labels: expected values 0 pore, 1 CBD, 2 NMC, got -1\.\.-1$"),
    (lambda: phase_fractions(np.full((2, 2, 2), 3, np.int8)),
     r"^labels: expected values 0 pore, 1 CBD, 2 NMC, got 3\.\.3$"),
    (lambda: phase_fractions(np.zeros((2, 2, 2), np.uint8), mask=np.zeros((2, 2, 2), bool)),
     r"^mask: expected some voxels in the analysis region, got none$"),
    (lambda: phase_fractions(np.zeros((2, 2, 2), np.uint8), mask=np.ones((2, 2, 3), bool)), r"^mask: expected a bool"),
    (lambda: plot_cpsd({}, "unused.png"), r"^results_by_step: expected at least one CPSDResult, got none$"),
])
def test_bad_input_is_refused_with_a_message_naming_it(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_phase_fractions_of_labels_at_the_ends_of_the_range():
    # 8 voxels: 4 NMC (2), 3 CBD (1), 1 pore (0); int8 labels are accepted
    labels = np.array([2, 2, 2, 2, 1, 1, 1, 0], np.int8).reshape(2, 2, 2)
    pf = phase_fractions(labels)
    assert (pf.nmc, pf.cbd, pf.pore, pf.inactive, pf.n_voxels) == (0.5, 0.375, 0.125, 0.5, 8)
    only_pore = phase_fractions(np.zeros((2, 2, 2), np.uint8))
    assert (only_pore.nmc, only_pore.cbd, only_pore.pore, only_pore.inactive) == (0.0, 0.0, 1.0, 1.0)


def test_progress_runs_from_above_0_to_exactly_1_and_never_back():
    for run in (lambda p: cpsd(_cube(), V, progress=p), lambda p: cpsd_whole_voxel(_cube(), V, progress=p)):
        seen = []
        run(seen.append)
        assert seen and seen[-1] == 1.0
        assert all(0.0 < f <= 1.0 for f in seen) and seen == sorted(seen)
    seen = []
    cpsd(_cube(), V, progress=seen.append)
    assert len(seen) >= 5          # local_radius reports its stages (scaled into 0..0.95), then 1.0
    assert max(seen[:-1]) <= 0.95


def test_the_cpsd_file_carries_the_summary_and_the_curve(tmp_path):
    result = cpsd_whole_voxel(_cube(), V)
    write_cpsd_csv(tmp_path / "cpsd.csv", result)
    lines = (tmp_path / "cpsd.csv").read_text().splitlines()
    header = dict(item.split("=") for item in lines[0].lstrip("# ").split())
    assert float(header["mean_radius_um"]) == pytest.approx(114 / 125 * V, rel=1e-5)
    assert float(header["median_radius_um"]) == 0.5
    assert float(header["porosity"]) == pytest.approx(125 / 729, rel=1e-5)
    assert float(header["voxel_size_um"]) == V
    rows = list(csv.reader(lines[1:]))
    assert rows[0] == ["radius_um", "cumulative_fraction"]
    np.testing.assert_allclose(np.array(rows[1:], float), [[0, 1], [0.5, 81 / 125], [1.0, 33 / 125], [1.5, 0]],
                               rtol=1e-5)


def test_the_phase_file_takes_pairs_as_well_as_a_dict(tmp_path):
    pf = phase_fractions(np.array([2, 2, 2, 2, 1, 1, 1, 0], np.uint8).reshape(2, 2, 2))
    write_phase_fractions_csv(tmp_path / "phases.csv", [("step1", pf), ("step2", pf)])
    rows = list(csv.reader(open(tmp_path / "phases.csv")))
    assert rows == [["step", "nmc", "cbd", "pore", "inactive", "n_voxels"],
                    ["step1", "0.5", "0.375", "0.125", "0.5", "8"], ["step2", "0.5", "0.375", "0.125", "0.5", "8"]]


def test_the_cpsd_plot_draws_each_steps_curve_and_mean_on_labelled_axes_from_0(tmp_path, monkeypatch):
    # plot_cpsd keeps its figure to itself: a Figure that records itself shows what was drawn
    import matplotlib.figure
    made = []

    class Recorded(matplotlib.figure.Figure):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(matplotlib.figure, "Figure", Recorded)
    # the cube's whole-voxel CPSD at two voxel sizes: mean 114 / 125 voxels = 0.456 and 0.912 um
    results = {"step0": cpsd_whole_voxel(_cube(), V), "step1": cpsd_whole_voxel(_cube(), 2 * V)}
    plot_cpsd(results, tmp_path / "cpsd.png")
    png = (tmp_path / "cpsd.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob(".*"))
    # 5.5 x 4 inches at 120 dpi, from the IHDR chunk
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (660, 480)
    drawn = [fig for fig in made if fig.axes]
    assert len(drawn) == 1 and len(drawn[0].axes) == 1
    ax = drawn[0].axes[0]
    assert ax.get_xlabel() == "radius r (µm)" and ax.get_ylabel() == "pore volume fraction with radius ≥ r"
    assert ax.get_ylim() == (0.0, 1.02) and ax.get_xlim()[0] == 0.0
    labels = ["step0 (mean 0.46 µm)", "step1 (mean 0.91 µm)"]
    assert [line.get_label() for line in ax.get_lines()] == labels
    assert [t.get_text() for t in ax.get_legend().get_texts()] == labels
    for line, (scale, result) in zip(ax.get_lines(), [(V, results["step0"]), (2 * V, results["step1"])]):
        np.testing.assert_allclose(line.get_xdata(), np.array([0.0, 1.0, 2.0, 3.0]) * scale, atol=1e-12)
        np.testing.assert_allclose(line.get_ydata(), [1.0, 81 / 125, 33 / 125, 0.0], atol=1e-12)
    grid = ax.xaxis.get_gridlines() + ax.yaxis.get_gridlines()
    assert all(g.get_visible() and g.get_alpha() == 0.3 for g in grid)


@pytest.mark.parametrize("which", ["cpsd", "cpsd_whole_voxel"])
def test_the_taichi_backend_asked_for_is_the_one_the_radius_map_runs_on(which, monkeypatch):
    # the radius map stands in with the cube's by-hand whole-voxel radii and records the backend it was given
    import analysis.pores as pores
    asked = []

    def radius_map(pore_mask, arch="cpu", **kwargs):
        asked.append(arch)
        out = np.zeros(pore_mask.shape, np.float32)
        out[2:7, 2:7, 2:7] = _expected_cube_radius()
        return out

    monkeypatch.setattr(pores, "local_radius" if which == "cpsd" else "whole_voxel_radius", radius_map)
    result = getattr(pores, which)(_cube(), V, arch="gpu")
    assert asked == ["gpu"]
    assert result.mean_radius_um == pytest.approx(114 / 125 * V, abs=1e-12)


@pytest.mark.parametrize("max_sq", [1, 2, 9, 10, 26])
def test_the_ball_tables_are_their_definition_over_the_lattice(max_sq):
    # D_k = {x in Z^3 : |x|^2 < k}: inner[k] = max |x|^2 over D_k (0 for the empty D_0), covering[k, j] =
    # max |x - u|^2 over D_k for u = OFFSET_CLASSES[j] and for every offset with the same sorted absolute
    # components (signs and order); k = 0 .. max_sq, int32. Counted point by point over a cube of the lattice.
    from analysis._local_radius_kernels import OFFSET_CLASSES
    from analysis.pores import _ball_tables
    inner, covering = _ball_tables(max_sq)
    assert inner.dtype == np.int32 and covering.dtype == np.int32
    assert inner.shape == (max_sq + 1,) and covering.shape == (max_sq + 1, len(OFFSET_CLASSES))
    assert inner[0] == 0
    points = [p for p in itertools.product(range(-6, 7), repeat=3)]
    for k in range(1, max_sq + 1):
        ball = [p for p in points if p[0] ** 2 + p[1] ** 2 + p[2] ** 2 < k]
        assert inner[k] == max(p[0] ** 2 + p[1] ** 2 + p[2] ** 2 for p in ball)
        for j, cls in enumerate(OFFSET_CLASSES):
            for u in {tuple(s * c for s, c in zip(signs, order))
                      for order in itertools.permutations(cls) for signs in itertools.product((-1, 1), repeat=3)}:
                assert covering[k, j] == max(sum((p[a] - u[a]) ** 2 for a in range(3)) for p in ball), (k, cls, u)


_FIRST_USE = """
import sys, weakref
import numpy as np
from analysis.pores import {function}
assert "porespy" not in sys.modules
class Marker:
    pass
def step():
    marker = Marker()
    mask = np.zeros((12, 12, 12), bool)
    mask[3:9, 3:9, 3:9] = True
    {function}(mask)
    return weakref.ref(marker)
freed = step()() is None
print("porespy" in sys.modules, freed)
"""


@pytest.mark.parametrize("function", ["local_radius", "whole_voxel_radius"])
def test_importing_porespy_on_first_use_keeps_nothing_of_the_caller(function):
    # porespy's import stores an exception whose traceback holds the importing stack's frames: a fresh
    # process, so that this call is porespy's first import, and the caller's locals must be freed on return
    result = subprocess.run([sys.executable, "-c", _FIRST_USE.format(function=function)], capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["True", "True"]
