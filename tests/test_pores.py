"""CPSD against analytic answers: disjoint spheres of known radii, at two resolutions."""

import csv

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.pores import (cpsd, local_radius, phase_fractions, plot_cpsd,
                            write_cpsd_csv, write_phase_fractions_csv)

GAP_UM = 0.5


def spheres_image(radii_um, offsets, voxel_size_um):
    """Disjoint spheres in a row along x, digitised analytically (voxel centre inside).

    Voxel (i, j, k) has its centre at ((i, j, k) + 0.5) * voxel_size_um.
    ``offsets`` (in [0, 1)^3 per sphere) move the centres by a fraction of a
    micrometre, so the two resolutions see the same physical spheres.
    """
    radii_um = np.asarray(radii_um, dtype=float)
    r_max = radii_um.max()
    side_um = 2 * r_max + 2 * GAP_UM + 1.0
    length_um = float(np.sum(2 * radii_um + GAP_UM + 1.0)) + GAP_UM
    shape = tuple(int(np.ceil(v / voxel_size_um)) for v in (side_um, side_um, length_um))
    im = np.zeros(shape, dtype=bool)
    x0 = GAP_UM
    for r, off in zip(radii_um, offsets):
        c = np.array([side_um / 2 + off[0] - 0.5, side_um / 2 + off[1] - 0.5, x0 + r + off[2]])
        x0 += 2 * r + GAP_UM + 1.0
        lo = np.maximum(np.floor((c - r) / voxel_size_um).astype(int) - 1, 0)
        hi = np.minimum(np.ceil((c + r) / voxel_size_um).astype(int) + 2, shape)
        z, y, x = (((np.arange(a, b) + 0.5) * voxel_size_um - cc)[sl]
                   for a, b, cc, sl in zip(lo, hi, c, (np.s_[:, None, None], np.s_[None, :, None],
                                                      np.s_[None, None, :])))
        im[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] |= z * z + y * y + x * x <= r * r
    return im


def volume_weighted_mean(radii_um):
    r = np.asarray(radii_um, dtype=float)
    return float(np.sum(r ** 4) / np.sum(r ** 3))


sphere_sets = st.lists(
    st.tuples(st.floats(1.0, 3.0),
              st.tuples(*[st.floats(0.0, 1.0, exclude_max=True)] * 3)),
    min_size=1, max_size=4)


@settings(max_examples=12, deadline=None)
@given(sphere_sets)
def test_mean_radius_of_disjoint_spheres_at_two_resolutions(arch, spheres):  # hypothesis fills the last
    radii_um = [r for r, _ in spheres]
    offsets = [o for _, o in spheres]
    truth = volume_weighted_mean(radii_um)
    for voxels_per_um in (4, 8):
        h = 1.0 / voxels_per_um
        result = cpsd(spheres_image(radii_um, offsets, h), h, arch=arch)
        assert result.mean_radius_um == pytest.approx(truth, rel=0.05), voxels_per_um
        f = result.cumulative_fraction
        assert f[0] == 1.0 and f[-1] == 0.0
        assert np.all(np.diff(f) <= 0)
        assert np.all(np.diff(result.radius_um) > 0)
        # spheres of radius < r cover nothing above r: the curve at the
        # largest sphere's radius is the share of the spheres near it
        above = result.cumulative_fraction[result.radius_um > 1.06 * max(radii_um)]
        assert np.all(above == 0.0)


@pytest.mark.parametrize("radius_voxels", [4.0, 6.5, 12.0, 20.0])
def test_single_sphere_every_voxel_reads_its_radius(radius_voxels, arch):
    rng = np.random.default_rng(int(radius_voxels * 10))
    n = int(2 * radius_voxels) + 8
    c = n / 2 + rng.uniform(-0.5, 0.5, 3)
    z, y, x = np.ogrid[:n, :n, :n]
    im = (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= radius_voxels ** 2
    lt = local_radius(im, arch=arch)
    assert np.all(lt[~im] == 0) and np.all(lt[im] > 0)
    assert lt[im].mean() == pytest.approx(radius_voxels, rel=0.02)
    # nearly every voxel is covered by the one inscribed sphere
    assert np.mean(np.abs(lt[im] - radius_voxels) < 0.1 * radius_voxels) > 0.97
    result = cpsd(im, 0.25, arch=arch)
    assert result.mean_radius_um == pytest.approx(0.25 * lt[im].mean(), rel=1e-6)


def test_mask_restricts_the_statistics_not_the_spheres():
    h = 0.25
    im = spheres_image([1.0, 2.5], [(0.3, 0.6, 0.1), (0.7, 0.2, 0.5)], h)
    mask = np.zeros_like(im)
    split = int(3.5 / h)
    mask[..., split:] = True          # cuts nothing of the big sphere, all of the small one
    small = im & ~mask
    assert small.any()
    result = cpsd(im, h, mask=mask)
    assert result.mean_radius_um == pytest.approx(2.5, rel=0.03)
    assert result.n_pore_voxels == int((im & mask).sum())
    assert result.porosity == pytest.approx((im & mask).sum() / mask.sum())


def test_deterministic():
    im = spheres_image([1.3, 2.1], [(0.1, 0.2, 0.3), (0.4, 0.5, 0.6)], 0.125)
    assert np.array_equal(local_radius(im), local_radius(im))


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
])
def test_bad_input(kwargs, match):
    im = np.zeros((8, 8, 8), dtype=bool)
    im[2:6, 2:6, 2:6] = True
    kwargs.setdefault("pore_mask", im)
    with pytest.raises(ValueError, match=match) as err:
        cpsd(**kwargs)
    assert "\n" not in str(err.value)


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
    im = spheres_image([1.0, 2.0], [(0.5, 0.5, 0.5)] * 2, 0.25)
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
