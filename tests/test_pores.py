"""CPSD against analytic answers: disjoint spheres of known radii, at two resolutions."""

import csv

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from analysis._local_radius_kernels import paint_ridge_kernel, partner_kernel
from analysis._taichi import ensure_taichi
from analysis.pores import (cpsd, cpsd_whole_voxel, local_radius, phase_fractions, plot_cpsd, whole_voxel_radius,
                            write_cpsd_csv, write_phase_fractions_csv)
from synthcal.strategies import digitise_spheres, sphere_packs


@settings(max_examples=12, deadline=None)
@given(pack=sphere_packs(voxel_size_um=0.25, radius_voxels=(4.0, 12.0), max_spheres=4, gap_voxels=2.0))
def test_mean_radius_of_disjoint_spheres_at_two_resolutions(pack, arch):
    # radii 1-3 µm, read at 4 and at 8 voxels per µm: the same physical spheres
    for voxels_per_um in (4, 8):
        h = 1.0 / voxels_per_um
        at_h = pack.resampled(h)
        result = cpsd(at_h.pore, h, arch=arch)
        assert result.mean_radius_um == pytest.approx(at_h.mean_radius_um, rel=0.05), voxels_per_um
        f = result.cumulative_fraction
        assert f[0] == 1.0 and f[-1] == 0.0
        assert np.all(np.diff(f) <= 0)
        assert np.all(np.diff(result.radius_um) > 0)
        # spheres of radius < r cover nothing above r: the curve at the
        # largest sphere's radius is the share of the spheres near it
        above = result.cumulative_fraction[result.radius_um > 1.06 * pack.radii_um.max()]
        assert np.all(above == 0.0)


@pytest.mark.parametrize("radius_voxels", [4.0, 6.5, 12.0, 20.0])
def test_single_sphere_every_voxel_reads_its_radius(radius_voxels, arch):
    rng = np.random.default_rng(int(radius_voxels * 10))
    n = int(2 * radius_voxels) + 8
    c = n / 2 + rng.uniform(-0.5, 0.5, 3)
    im = digitise_spheres([c], [radius_voxels], (n, n, n), 1.0)[0]
    lt = local_radius(im, arch=arch)
    assert np.all(lt[~im] == 0) and np.all(lt[im] > 0)
    assert lt[im].mean() == pytest.approx(radius_voxels, rel=0.02)
    # nearly every voxel is covered by the one inscribed sphere
    assert np.mean(np.abs(lt[im] - radius_voxels) < 0.1 * radius_voxels) > 0.97
    result = cpsd(im, 0.25, arch=arch)
    assert result.mean_radius_um == pytest.approx(0.25 * lt[im].mean(), rel=1e-6)


def test_mask_restricts_the_statistics_not_the_spheres():
    h = 0.25
    # a small pore reaching x = 2.6 µm, a big one from x = 4.5 µm
    im = digitise_spheres([[3.3, 3.6, 1.6], [3.7, 3.2, 7.0]], [1.0, 2.5], (28, 28, 42), h)[0]
    mask = np.zeros_like(im)
    split = int(3.5 / h)
    mask[..., split:] = True          # cuts nothing of the big sphere, all of the small one
    small = im & ~mask
    assert small.any()
    result = cpsd(im, h, mask=mask)
    assert result.mean_radius_um == pytest.approx(2.5, rel=0.03)
    assert result.n_pore_voxels == int((im & mask).sum())
    assert result.porosity == pytest.approx((im & mask).sum() / mask.sum())


@pytest.mark.parametrize("name, move", [
    ("flip z", lambda v: v[::-1]),
    ("flip x", lambda v: v[:, :, ::-1]),
    ("axes x, z, y", lambda v: v.transpose(2, 0, 1)),
])
def test_local_radius_of_a_flipped_or_turned_image_is_the_flipped_or_turned_radius(name, move):
    im = digitise_spheres([[2.7, 2.8, 2.4], [2.9, 3.0, 7.6]], [1.3, 2.1], (48, 48, 84), 0.125)[0]
    assert np.array_equal(local_radius(np.ascontiguousarray(move(im))), move(local_radius(im)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(pore_mask=np.ones((4, 4, 4), dtype=np.uint8), voxel_size_um=1.0), "pore_mask"),
    (dict(pore_mask=np.zeros((4, 4, 4), dtype=bool), voxel_size_um=1.0), "pore_mask"),
    (dict(pore_mask=np.ones((4, 4, 4), dtype=bool), voxel_size_um=1.0), "pore_mask"),
    (dict(pore_mask=np.eye(4, dtype=bool), voxel_size_um=1.0), "pore_mask"),
    (dict(voxel_size_um=0.0), "voxel_size_um"),
    (dict(voxel_size_um=-1.0), "voxel_size_um"),
    (dict(voxel_size_um=float("nan")), "voxel_size_um"),
    (dict(voxel_size_um=1.0, mask=np.ones((3, 3, 3), dtype=bool)), "mask"),
    (dict(voxel_size_um=1.0, mask=np.zeros((8, 8, 8), dtype=bool)), "mask"),
    (dict(voxel_size_um=1.0, radius_um=np.ones((8, 8, 7), dtype=np.float32)), "radius_um"),
    (dict(voxel_size_um=1.0, radius_um=np.ones((8, 8, 8), dtype=np.int32)), "radius_um"),
])
def test_bad_input(kwargs, match):
    im = np.zeros((8, 8, 8), dtype=bool)
    im[2:6, 2:6, 2:6] = True
    kwargs.setdefault("pore_mask", im)
    with pytest.raises(ValueError, match=match) as err:
        cpsd(**kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("pore_size, radius_map", [(cpsd, local_radius), (cpsd_whole_voxel, whole_voxel_radius)])
def test_a_radius_map_made_before_gives_the_distribution_of_the_one_made_here(pore_size, radius_map):
    v = 0.25
    centres = np.indices((20, 20, 20)) - 9.3
    pores = np.sum(centres ** 2, axis=0) <= 6.2 ** 2
    pores[:, :3, :] |= np.random.default_rng(4).random((20, 3, 20)) < 0.5
    region = np.zeros(pores.shape, dtype=bool)
    region[2:18, 2:18, 2:18] = True
    made_here = pore_size(pores, v, mask=region)
    # the map in um, rounded to float32 as the phantom stage stores it
    given = pore_size(pores, v, mask=region, radius_um=radius_map(pores) * np.float32(v))
    assert given.mean_radius_um == pytest.approx(made_here.mean_radius_um, rel=1e-6)
    assert given.median_radius_um == pytest.approx(made_here.median_radius_um, rel=1e-6)
    assert (given.porosity, given.n_pore_voxels) == (made_here.porosity, made_here.n_pore_voxels)
    np.testing.assert_allclose(given.cumulative_fraction, made_here.cumulative_fraction, atol=1e-6)
    # a different map is read as given, not made again
    assert pore_size(pores, v, mask=region, radius_um=np.full(pores.shape, 0.5, np.float32)).mean_radius_um == 0.5


def test_phase_fractions_count_labels():
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[:6] = 2          # 60 % NMC
    labels[6:8] = 1         # 20 % CBD
    pf = phase_fractions(labels)
    assert (pf.nmc, pf.cbd, pf.pore) == pytest.approx((0.6, 0.2, 0.2))
    assert pf.inactive == pytest.approx(0.4)
    mask = np.zeros_like(labels, dtype=bool)
    mask[5:] = True         # 1 slab NMC, 2 CBD, 2 pore
    pf = phase_fractions(labels, mask=mask)
    assert (pf.nmc, pf.cbd, pf.pore, pf.n_voxels) == pytest.approx((0.2, 0.4, 0.4, 500))
    with pytest.raises(ValueError, match="labels"):
        phase_fractions(labels.astype(float))
    with pytest.raises(ValueError, match="labels"):
        phase_fractions(labels + 1)


def test_writers_and_plot(tmp_path):
    im = digitise_spheres([[3.0, 3.0, 2.0], [3.0, 3.0, 7.0]], [1.0, 2.0], (24, 24, 40), 0.25)[0]
    results = {"step0": cpsd(im, 0.25), "stepA": cpsd(im[:, :, ::-1].copy(), 0.25)}
    write_cpsd_csv(tmp_path / "cpsd.csv", results["step0"])
    rows = [r for r in csv.reader(open(tmp_path / "cpsd.csv")) if not r[0].startswith("#")]
    assert rows[0] == ["radius_um", "cumulative_fraction"]
    table = np.array(rows[1:], dtype=float)
    assert np.allclose(table[:, 0], results["step0"].radius_um, rtol=1e-5)
    labels = np.zeros((4, 4, 4), dtype=np.uint8)
    write_phase_fractions_csv(tmp_path / "phases.csv", {"step0": phase_fractions(labels)})
    rows = list(csv.reader(open(tmp_path / "phases.csv")))
    assert rows[0] == ["step", "nmc", "cbd", "pore", "inactive", "n_voxels"]
    assert rows[1][0] == "step0" and float(rows[1][3]) == 1.0
    plot_cpsd(results, tmp_path / "cpsd.png")
    assert (tmp_path / "cpsd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), n_balls=st.integers(2, 40), n_values=st.integers(1, 4))
def test_ridge_balls_that_leave_out_their_partners_overlap_paint_the_max_over_every_ball(seed, n_balls, n_values):
    """The definition, by brute force: each lattice point gets the largest value of the balls holding it
    (|x - c|^2 <= r^2 - 1 for integer r^2). Balls crowd a 5^3 block, so most have neighbours that
    outrank them, with ties in value (a few values only) decided by the index."""
    ensure_taichi("cpu")
    rng = np.random.default_rng(seed)
    shape = (14, 13, 15)
    # ball 0 in the middle of the block and ball 1 next to it: at least one of them has a partner
    near = [c for c in range(125) if c != 62 and max(np.abs(np.unravel_index(c, (5, 5, 5)) - np.array(2))) == 1]
    first = rng.choice(near)
    rest = rng.choice([c for c in range(125) if c not in (62, first)], n_balls - 2, replace=False)
    cells = np.concatenate([[62, first], rest]).astype(int)
    centre = (np.stack(np.unravel_index(cells, (5, 5, 5)), axis=1) + (4, 4, 5)).astype(np.int32)
    ball = np.zeros((n_balls, 5), np.float32)
    ball[:, 3] = rng.integers(1, 40, n_balls)
    ball[:, 4] = rng.choice(np.linspace(1.0, 6.0, n_values), n_balls)
    expected = np.zeros(shape, np.float32)
    grid = np.indices(shape).transpose(1, 2, 3, 0)
    for c, b in zip(centre, ball):
        inside = np.sum((grid - c) ** 2, axis=-1) <= b[3] - 1
        expected[inside] = np.maximum(expected[inside], b[4])
    index = np.full(shape, -1, np.int32)
    index[tuple(centre.T)] = np.arange(n_balls, dtype=np.int32)
    partner = np.empty(n_balls, np.int32)
    partner_kernel(centre, ball, index, partner)
    assert np.any(partner >= 0)
    painted = np.zeros(shape, np.float32)
    paint_ridge_kernel(centre, ball, np.zeros(n_balls, np.uint8), partner, painted)
    np.testing.assert_array_equal(painted, expected)
