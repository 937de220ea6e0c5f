"""Truth displacement: rigid motions against the analytic field, owners against brute force; the phantom's
summary against a hand-made phantom."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.phases import Phase
from synthcal.grid import Grid
import synthcal.truth as truth_module
from synthcal.truth import (ParticlePoses, mean_solid_displacement_um, owner_at_points_um, phase_summary,
                            radius_maps_um, true_displacement_um, true_displacement_volume)
from test_paper_mode import brute_force_radius

H = 0.25
ORIGIN = np.array([0.1, -0.2, 0.3])


def quaternion_product(a, b):
    """Hamilton product, scalar first: the rotation of b followed by a."""
    w1, x1, y1, z1 = np.moveaxis(np.asarray(a, dtype=float), -1, 0)
    w2, x2, y2, z2 = np.moveaxis(np.asarray(b, dtype=float), -1, 0)
    return np.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
                     w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                     w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], axis=-1)


def rotation_zyx_about_axis(axis_xyz, angle):
    """Rodrigues' formula in x-y-z, then reordered to z-y-x (independent of synthcal.rotations)."""
    k = np.asarray(axis_xyz, dtype=float) / np.linalg.norm(axis_xyz)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    r = np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx
    return r[::-1, ::-1]


def brute_force_owner(points, centres, radii):
    depth = radii[None, :] - np.linalg.norm(points[:, None, :] - centres[None], axis=2)
    return np.where(depth.max(axis=1) > 0, depth.argmax(axis=1), -1)


def packing(seed, n=40):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.0, 6.0, (n, 3))
    radii = rng.uniform(0.4, 1.2, n)
    quats = rng.normal(size=(n, 4))
    return centres, radii, quats / np.linalg.norm(quats, axis=1, keepdims=True)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), angle=st.floats(-3.0, 3.0),
       axis=st.tuples(*[st.floats(0.1, 1.0)] * 3), shift=st.tuples(*[st.floats(-2.0, 2.0)] * 3))
def test_rigid_motion_of_everything(seed, angle, axis, shift):
    centres, radii, quats = packing(seed)
    rot = rotation_zyx_about_axis(axis, angle)
    t = np.asarray(shift)
    q_motion = np.r_[np.cos(angle / 2), np.sin(angle / 2) * np.asarray(axis) / np.linalg.norm(axis)]
    ref = ParticlePoses(centres, quats)
    cur = ParticlePoses(centres @ rot.T + t, quaternion_product(q_motion, quats))
    points = np.random.default_rng(seed + 1).uniform(-0.5, 6.5, (2000, 3))
    u = true_displacement_um(points, ref, cur, radii)
    owner = brute_force_owner(points, centres, radii)
    solid = owner >= 0
    assert 0 < solid.sum() < len(points)
    np.testing.assert_allclose(u[solid], (points @ rot.T + t - points)[solid], atol=1e-9)
    assert np.all(np.isnan(u[~solid]))


def test_particles_move_independently():
    centres = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    radii = np.array([1.0, 1.0])
    quats = np.array([[1.0, 0.0, 0.0, 0.0]] * 2)
    angle = np.pi / 2  # second particle turns 90 degrees about z (the pillar axis)
    q = np.array([[1.0, 0.0, 0.0, 0.0], [np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2)]])
    cur = ParticlePoses(centres + [[0.5, 0.0, 0.0], [0.0, 0.0, 0.0]], q)
    points = np.array([[0.0, 0.5, 0.0], [0.0, 0.0, 3.5], [0.0, 0.0, 1.5]])
    u = true_displacement_um(points, ParticlePoses(centres, quats), cur, radii)
    np.testing.assert_allclose(u[0], [0.5, 0.0, 0.0], atol=1e-12)
    # x-offset 0.5 turned by +90 degrees about z lands on y = +0.5
    np.testing.assert_allclose(u[1], [0.0, 0.5, -0.5], atol=1e-12)
    assert np.all(np.isnan(u[2]))


def test_owner_matches_brute_force():
    centres, radii, quats = packing(7, n=200)
    points = np.random.default_rng(8).uniform(-1.0, 7.0, (20000, 3))
    owner = owner_at_points_um(points, ParticlePoses(centres, quats), radii)
    np.testing.assert_array_equal(owner, brute_force_owner(points, centres, radii))
    assert owner.dtype == np.int32


def grid_case(seed):
    centres, radii, quats = packing(seed)
    rng = np.random.default_rng(seed + 5)
    cur = ParticlePoses(centres + rng.normal(0.0, 0.2, centres.shape), rng.normal(size=quats.shape))
    shape = (20, 22, 24)
    points = ORIGIN + H * np.indices(shape).reshape(3, -1).T
    owner = brute_force_owner(points, centres, radii).reshape(shape)
    return ParticlePoses(centres, quats), cur, radii, owner, points


def test_volume_matches_points():
    ref, cur, radii, owner, points = grid_case(3)
    vol = true_displacement_volume(owner, ref, cur, voxel_size_um=H, origin_um=ORIGIN)
    assert vol.dtype == np.float32 and vol.shape == (3,) + owner.shape
    expected = true_displacement_um(points, ref, cur, radii).T.reshape(vol.shape)
    np.testing.assert_allclose(vol, expected, atol=1e-5, equal_nan=True)
    assert np.array_equal(np.isnan(vol[0]), owner == -1)


@settings(max_examples=10, deadline=None)
@given(corners=st.lists(st.tuples(*[st.integers(-2, 25)] * 6), min_size=1, max_size=6))
def test_box_means_match_numpy(corners):
    ref, cur, radii, owner, _ = CASE
    vol = true_displacement_volume(owner, ref, cur, voxel_size_um=H, origin_um=ORIGIN)
    boxes = np.array(corners, dtype=np.int64).reshape(-1, 3, 2)
    boxes = np.clip(np.sort(boxes, axis=2), 0, np.array(owner.shape)[:, None]).reshape(-1, 6)
    means = mean_solid_displacement_um(owner, ref, cur, boxes, voxel_size_um=H, origin_um=ORIGIN)
    for (z0, z1, y0, y1, x0, x1), mean in zip(boxes, means):
        block = vol[:, z0:z1, y0:y1, x0:x1].reshape(3, -1)
        block = block[:, ~np.isnan(block[0])]
        if block.shape[1] == 0:
            assert np.all(np.isnan(mean))
        else:
            np.testing.assert_allclose(mean, block.astype(np.float64).mean(axis=1), atol=1e-5)


CASE = grid_case(4)


def test_box_means_do_not_depend_on_the_threads(monkeypatch):
    ref, cur, radii, owner, _ = CASE
    boxes = np.array([[0, 20, 0, 22, 0, 24], [3, 17, 2, 9, 5, 21], [10, 11, 0, 22, 4, 5]])
    means = {}
    for cpus in (1, 4):
        monkeypatch.setattr(truth_module.os, "sched_getaffinity", lambda pid, cpus=cpus: set(range(cpus)))
        means[cpus] = mean_solid_displacement_um(owner, ref, cur, boxes, voxel_size_um=H, origin_um=ORIGIN)
    assert np.isfinite(means[1]).all()
    np.testing.assert_array_equal(means[1].view(np.uint64), means[4].view(np.uint64))


def test_box_without_solid_is_nan():
    ref, cur, radii, owner, _ = CASE
    empty = np.full_like(owner, -1)
    means = mean_solid_displacement_um(empty, ref, cur, np.array([[0, 5, 0, 5, 0, 5]]),
                                       voxel_size_um=H, origin_um=ORIGIN)
    assert np.all(np.isnan(means))


@pytest.mark.parametrize("call", [
    lambda: ParticlePoses(np.zeros((3, 2)), np.zeros((3, 4))),
    lambda: ParticlePoses(np.zeros((3, 3)), np.zeros((2, 4))),
    lambda: owner_at_points_um(np.zeros((4, 2)), ParticlePoses(np.zeros((1, 3)), [[1, 0, 0, 0]]), [1.0]),
    lambda: owner_at_points_um(np.zeros((4, 3)), ParticlePoses(np.zeros((1, 3)), [[1, 0, 0, 0]]), [0.0]),
    lambda: true_displacement_volume(np.zeros((2, 2), np.int32), CASE[0], CASE[1], voxel_size_um=H,
                                     origin_um=ORIGIN),
    lambda: mean_solid_displacement_um(CASE[3], CASE[0], CASE[1], np.zeros((1, 4), np.int64),
                                       voxel_size_um=H, origin_um=ORIGIN),
    lambda: mean_solid_displacement_um(CASE[3], CASE[0], CASE[1], np.array([[0, 5, 4, 2, 0, 5]]),
                                       voxel_size_um=H, origin_um=ORIGIN),
    lambda: true_displacement_um(np.zeros((1, 3)), CASE[0], ParticlePoses(np.zeros((1, 3)), [[1, 0, 0, 0]]),
                                 CASE[2]),
])
def test_bad_input(call):
    with pytest.raises(ValueError):
        call()


# ---- the phantom's summary --------------------------------------------------------------------------

def summary_case():
    """A hand-made phantom: foil below z = 0, NMC between, one spherical inactive blob (pore core of radius
    2 um in a CBD shell out to 3 um), air above, CBD junk outside the field of view."""
    v = 0.5
    grid = Grid(voxel_size_um=v, shape=(36, 44, 44), origin_um=(-1.75, 0.0, 0.0), n_det=40, foil_top_z_um=0.0,
                head_z_um=(15.2, 14.2))
    z, y, x = (grid.origin_um[k] + v * np.arange(grid.shape[k]) for k in range(3))
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    labels = np.full(grid.shape, np.uint8(Phase.NMC))
    labels[zz < 0.0] = Phase.FOIL
    labels[zz > 15.5] = Phase.PORE  # air above the pillar: the head row of each step cuts the region
    centre = np.array([6.9, 10.8, 11.1])
    d = np.sqrt((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2)
    labels[d < 3.0] = Phase.CBD
    labels[d < 2.0] = Phase.PORE
    labels[:, :2] = Phase.CBD
    labels[:, :, -2:] = Phase.CBD
    return grid, labels, d


@pytest.mark.parametrize("step, first_row, end_row", [(0, 4, 34), (1, 4, 32)])
def test_phase_summary_hand_worked(step, first_row, end_row):
    grid, labels, d = summary_case()
    # foil top 0 um lies 3.5 voxels above the first centre: row 3 (z = -0.25 um) is foil, left out
    assert grid.sample_rows[step] == (3, end_row)
    # the field of view is the cylinder of 40 voxels' diameter about y = x = 10.75 um (between columns 21
    # and 22); the CBD junk in the corners of the 40 x 40 square lies outside it
    y = 0.5 * np.arange(2, 42) - 10.75
    in_cylinder = y[:, None] ** 2 + y[None, :] ** 2 <= 10.0 ** 2
    assert in_cylinder.sum() == pytest.approx(np.pi * 20 ** 2, rel=0.01)
    n_region = (end_row - first_row) * int(in_cylinder.sum())
    fov = (slice(first_row, end_row), slice(2, 42), slice(2, 42))
    n_pore, n_inactive = np.count_nonzero(d[fov] < 2.0), np.count_nonzero(d[fov] < 3.0)
    # the lattice counts are the spheres' volumes to a few per cent
    assert n_pore * 0.5 ** 3 == pytest.approx(4 / 3 * np.pi * 2.0 ** 3, rel=0.03)
    rows = phase_summary(labels, grid, step)
    assert rows["step"] == step and rows["n_voxels"] == n_region
    assert rows["pore_fraction"] == pytest.approx(n_pore / n_region, rel=1e-12)
    assert rows["cbd_fraction"] == pytest.approx((n_inactive - n_pore) / n_region, rel=1e-12)
    assert rows["nmc_fraction"] == pytest.approx(1 - n_inactive / n_region, rel=1e-12)
    assert rows["inactive_fraction"] == pytest.approx(n_inactive / n_region, rel=1e-12)
    # one spherical pore: every voxel's inscribed radius is the sphere's (CPSD reads 0.99 R at 4-6 voxels)
    for key in ("pore_mean_radius_um", "pore_median_radius_um"):
        assert rows[key] == pytest.approx(2.0, rel=0.03), key
    # the inactive blob's whole-voxel radii, by brute force on a box of NMC around it (every ball, every
    # radius); the blob is a sphere of 6 voxels' radius whose centre is 0.54 voxel off the lattice, so no
    # ball of radius 6 fits and the radii are 5 and less
    box = (slice(5, 30), slice(10, 35), slice(10, 35))
    blob = d[box] < 3.0
    assert not (blob[0].any() or blob[-1].any() or blob[:, 0].any() or blob[:, -1].any() or blob[:, :, 0].any()
                or blob[:, :, -1].any())
    radii_um = 0.5 * brute_force_radius(blob)[blob]
    assert radii_um.max() == 2.5
    assert rows["inactive_mean_radius_um"] == pytest.approx(radii_um.mean(), rel=1e-6)
    assert rows["inactive_median_radius_um"] == pytest.approx(np.median(radii_um), rel=1e-6)


def test_radius_maps_are_the_chains_two_definitions_on_the_field_of_view_in_um():
    grid, labels, d = summary_case()
    maps = radius_maps_um(labels, grid)
    fov = (slice(None), slice(2, 42), slice(2, 42))
    assert set(maps) == {"pore", "inactive"}
    for radius_um in maps.values():
        assert radius_um.shape == (36, 40, 40) and radius_um.dtype == np.float32
    # the inactive blob: whole-voxel radii (brute force on a box of NMC around it) times 0.5 um
    box = (slice(5, 30), slice(10, 35), slice(10, 35))      # of the field of view
    blob = d[fov][box] < 3.0
    assert np.count_nonzero(blob) == np.count_nonzero(d < 3.0)
    inactive = maps["inactive"][box]
    np.testing.assert_array_equal(inactive[blob], 0.5 * brute_force_radius(blob)[blob])
    assert np.all(inactive[~blob] == 0)
    # the pore: continuous radii of the 2 um sphere (4 voxels), 0 on the CBD shell around it and on NMC
    pore = maps["pore"]
    assert pore[d[fov] < 2.0].mean() == pytest.approx(2.0, rel=0.03)
    assert np.all(pore[(d[fov] >= 2.0) & (d[fov] < 3.0)] == 0) and np.all(pore[labels[fov] == Phase.NMC] == 0)


def test_radius_maps_of_a_missing_phase_are_zero():
    grid, labels, d = summary_case()
    labels[labels == Phase.PORE] = Phase.NMC
    maps = radius_maps_um(labels, grid)
    assert np.all(maps["pore"] == 0) and maps["inactive"].max() > 0


def test_phase_summary_without_pores_and_bad_input():
    grid, labels, d = summary_case()
    labels[d < 3.0] = Phase.NMC
    rows = phase_summary(labels, grid, 0)
    assert rows["inactive_fraction"] == 0 and rows["pore_mean_radius_um"] is None
    with pytest.raises(ValueError, match="labels"):
        phase_summary(labels[1:], grid, 0)
    with pytest.raises(ValueError, match="step"):
        phase_summary(labels, grid, 2)


@pytest.mark.parametrize("intact", [True, False])
def test_scan_truth_of_a_bridge_voxel_is_the_blend_on_the_cropped_grid(intact):
    from synthcal.binder import BridgeVoxels
    from synthcal.scan_truth import scan_displacement

    # phantom 3 x 8 x 8 voxels of 1 um, field of view its central 4 x 4 columns (offset 2)
    grid = Grid(voxel_size_um=1.0, shape=(3, 8, 8), origin_um=(0.0, 0.0, 0.0), n_det=4, foil_top_z_um=-1.0,
                head_z_um=(10.0, 10.0))
    owner = np.full(grid.shape, -1)
    owner[1, 3, 2] = 0                      # particle 0 owns one voxel, particle 1 another
    owner[1, 3, 5] = 1
    owner[1, 3, [0, 3, 4]] = [0, 0, 1]      # a bridge voxel's owner is the particle of its half
    # bridge voxels (z, y, x): (1, 3, 3) and (1, 3, 4) in the field of view, (1, 3, 0) outside it
    index = np.ravel_multi_index(([1, 1, 1], [3, 3, 3], [0, 3, 4]), grid.shape)
    bridges = BridgeVoxels(index, bond=[0, 0, 0], weight=[0.5, 0.25, 0.75], bonds=[[0, 1]])
    ref = ParticlePoses([[1.0, 3.0, 2.0], [1.0, 3.0, 5.0]], [[1, 0, 0, 0]] * 2)
    a, b = np.array([0.0, 0.5, 0.0]), np.array([0.0, 0.0, 2.0])     # pure translations, um
    cur = ParticlePoses(ref.positions_um + [a, b], ref.quaternions, bonds_intact=[intact])
    drift = np.array([0.25, 0.0, -0.5])
    u = scan_displacement(owner, ref, cur, grid, drift, bridges=bridges)
    assert u.shape == (3, 3, 4, 4)
    # reconstruction voxel (z, y, x) is phantom voxel (z, y + 2, x + 2)
    np.testing.assert_allclose(u[:, 1, 1, 0], a + drift)
    np.testing.assert_allclose(u[:, 1, 1, 3], b + drift)
    blend = (lambda w: (1 - w) * a + w * b) if intact else (lambda w: a if w < 0.5 else b)
    np.testing.assert_allclose(u[:, 1, 1, 1], blend(0.25) + drift)
    np.testing.assert_allclose(u[:, 1, 1, 2], blend(0.75) + drift)
    assert np.isnan(u).any(axis=0).sum() == 3 * 4 * 4 - 4
