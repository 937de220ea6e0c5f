"""Run geometry and rigid transforms: hand-worked cases and round trips."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from analysis.transform import RigidTransform
from synthcal.grid import Grid


def _rotation(axis, angle_deg):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = np.radians(angle_deg)
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def test_grid_rows_and_world_positions_by_hand():
    # 0.5 µm voxels, voxel 0 centred at z = -2 µm: row 4 is centred on the foil top (z = 0),
    # which is not foil (the foil fills z < 0); rows 16 and 14 are centred on the head faces
    grid = Grid(voxel_size_um=0.5, shape=(20, 12, 12), origin_um=(-2.0, 10.0, 20.0), n_det=8,
                foil_top_z_um=0.0, head_z_um=(6.0, 5.0))
    assert grid.fov_offset_voxels == 2 and grid.recon_shape == (20, 8, 8)
    assert grid.foil_row == 4
    assert grid.head_rows == [16, 14]
    assert grid.sample_rows == [(4, 16), (4, 14)]
    # reconstruction voxel (2, 0, 3) is phantom voxel (2, 2, 5)
    assert grid.recon_to_world_um([2, 0, 3]).tolist() == [-1.0, 11.0, 22.5]
    z, y, x = grid.box_um_to_recon_slices([0.0, 1.0, 11.0, 12.0, 22.5, 23.0])
    assert (z, y, x) == (slice(4, 7), slice(0, 3), slice(3, 5))


def test_grid_json_round_trip(tmp_path):
    grid = Grid(voxel_size_um=0.128, shape=(40, 30, 30), origin_um=(-2.9, 0.1, -0.3), n_det=20,
                foil_top_z_um=0.0, head_z_um=(4.0, 3.5, 3.0))
    grid.write(tmp_path / "grid.json")
    assert Grid.read(tmp_path / "grid.json") == grid
    with pytest.raises(ValueError, match="n_det"):
        Grid(voxel_size_um=0.1, shape=(4, 10, 10), origin_um=(0, 0, 0), n_det=7, foil_top_z_um=0.0, head_z_um=(1.0,))


def test_grid_around_particles_centres_the_field_of_view():
    positions = np.array([[2.0, 10.0, 10.0], [3.0, 13.0, 9.0]])
    grid = Grid.around_particles(positions, [1.0, 1.5], [5.0], voxel_size_um=0.25, field_of_view_um=4.0,
                                 foil_top_z_um=0.0, foil_margin_um=1.0, head_margin_um=0.5)
    assert grid.n_det == 16 and (grid.shape[1] - grid.n_det) % 2 == 0
    # every particle is inside the grid
    lo = np.asarray(grid.origin_um) - grid.voxel_size_um / 2
    hi = lo + grid.voxel_size_um * np.asarray(grid.shape)
    assert np.all(positions - 1.5 >= lo - 1e-9) and np.all(positions[:, 1:] + 1.5 <= hi[1:] + 1e-9)


def test_rigid_transform_by_hand():
    # 90° about z (the compression axis) turns +y into +x in (z, y, x) coordinates
    rot = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    t = RigidTransform(rotation=rot, translation_voxels=np.array([1.0, 0.0, 0.0]),
                       centre_voxels=np.array([0.0, 5.0, 5.0]), cc=0.9)
    # p = (0, 6, 5): p - c = (0, 1, 0) -> R (0, 1, 0) = (0, 0, 1) -> + c + t = (1, 5, 6)
    assert t.apply([0.0, 6.0, 5.0]).tolist() == [1.0, 5.0, 6.0]
    assert np.allclose(t.matrix() @ [0.0, 6.0, 5.0, 1.0], [1.0, 5.0, 6.0])
    assert t.rotation_angle_deg == pytest.approx(90.0)


@settings(max_examples=50, deadline=None)
@given(axis=st.tuples(*[st.floats(-1, 1)] * 3).filter(lambda a: np.linalg.norm(a) > 0.1),
       angles=st.tuples(st.floats(-5, 5), st.floats(-5, 5)),
       shifts=st.lists(st.floats(-10, 10), min_size=6, max_size=6),
       points=st.lists(st.floats(-50, 50), min_size=3, max_size=3))
def test_inverse_and_compose_agree_with_applying_in_turn(axis, angles, shifts, points):
    a = RigidTransform(_rotation(axis, angles[0]), np.array(shifts[:3]), np.array([3.0, -2.0, 7.0]), cc=1.0)
    b = RigidTransform(_rotation(axis[::-1], angles[1]), np.array(shifts[3:]), np.array([-1.0, 4.0, 0.5]), cc=1.0)
    p = np.array(points)
    assert np.allclose(a.inverse().apply(a.apply(p)), p, atol=1e-9)
    assert np.allclose(a.compose(b).apply(p), a.apply(b.apply(p)), atol=1e-9)
    assert np.allclose(RigidTransform.from_dict(a.to_dict()).apply(p), a.apply(p), atol=0)
