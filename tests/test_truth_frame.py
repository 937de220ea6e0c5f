"""validation.frame.TruthFrame on a hand-made two-particle phantom: where the truth
is sampled, which truth rule applies where, and how the registration is undone.

Phantom grid: voxel 0.5 µm, the centre of voxel (0, 0, 0) at origin (1, 2, 3) µm,
the analysed field of view starts at phantom column 2 (reconstruction voxel p is
phantom voxel p + (0, 2, 2)). Particle A (radius 1.2 µm = 2.4 voxels) sits on
phantom voxel (5, 5, 5), particle B on (5, 5, 11); from step 0 to 1, A moves
(0, 0, 1) µm and B (0, 2, 0) µm, without turning.
"""

import numpy as np
import pytest

from analysis.transform import RigidTransform
from synthcal.grid import Grid
from synthcal.truth import ParticlePoses
from validation.frame import TruthFrame

V, OFF = 0.5, 2
ORIGIN = np.array([1.0, 2.0, 3.0])
CENTRES_VOX = np.array([[5, 5, 5], [5, 5, 11]])
MOVES_UM = np.array([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
RADIUS_UM = 1.2
IDENTITY = np.hstack([np.eye(3), np.zeros((3, 1))])


def _transform(matrix):
    """The rigid map x -> R x + t of a (3, 4) matrix [R | t] (rotation centre at the origin)."""
    matrix = np.asarray(matrix, float)
    return RigidTransform(rotation=matrix[:, :3], translation_voxels=matrix[:, 3], centre_voxels=np.zeros(3), cc=1.0)


def _frame(registration=None, drift=((0, 0, 0), (0, 0, 0))):
    shape = (11, 11, 17)
    idx = np.indices(shape).reshape(3, -1).T
    owner = np.full(len(idx), -1, np.int32)
    for k, c in enumerate(CENTRES_VOX):
        owner[np.linalg.norm(idx - c, axis=1) * V < RADIUS_UM] = k
    centres_um = ORIGIN + V * CENTRES_VOX
    q = np.tile([1.0, 0, 0, 0], (2, 1))
    poses = [ParticlePoses(centres_um, q), ParticlePoses(centres_um + MOVES_UM, q)]
    # 11 columns in y, 7 in the field of view: the field of view starts at column 2
    grid = Grid(voxel_size_um=V, shape=(11, 11, 17), origin_um=tuple(ORIGIN), n_det=11 - 2 * OFF,
                foil_top_z_um=-10.0, head_z_um=(20.0, 20.0))
    matrices = registration or [IDENTITY, IDENTITY]
    return TruthFrame(grid, [RADIUS_UM, RADIUS_UM], poses, owner.reshape(shape), drift,
                      [_transform(m) for m in matrices], region=(slice(0, 1),) * 3)


def test_a_node_is_sampled_at_its_voxel_centre_in_the_phantom_frame():
    # origin + v (p + (0, 2, 2)): (0, 0, 0) -> (1, 3, 4); (2, 1, 3) -> (2, 3.5, 5.5)
    np.testing.assert_allclose(_frame().points_um([[0, 0, 0], [2, 1, 3]]), [[1.0, 3.0, 4.0], [2.0, 3.5, 5.5]],
                               rtol=0, atol=1e-12)


def test_a_node_inside_a_particle_takes_that_particle_s_motion_not_the_subvolume_mean():
    # reconstruction voxel (5, 3, 3) is phantom voxel (5, 5, 5), A's centre; its 13-voxel
    # subvolume also holds part of B, so the subvolume mean differs from A's motion
    centre, solid, combined = _frame().dvc_truth(np.array([[5, 3, 3]]), 1, 13)
    np.testing.assert_allclose(centre, [[0.0, 0.0, 2.0]], atol=1e-12)   # (0, 0, 1) µm / 0.5 µm
    assert not np.allclose(solid, centre)
    np.testing.assert_allclose(combined, centre, atol=1e-12)


def test_a_node_in_a_pore_takes_the_mean_motion_of_the_solid_around_it():
    # phantom voxel (5, 5, 8): 3 voxels = 1.5 µm from both centres, a pore; its subvolume
    # holds all of A and all of B, equal voxel counts: mean ((0, 0, 1) + (0, 2, 0)) / 2 µm
    centre, solid, combined = _frame().dvc_truth(np.array([[5, 3, 6]]), 1, 13)
    assert np.all(np.isnan(centre))
    np.testing.assert_allclose(solid, [[0.0, 2.0, 1.0]], atol=1e-12)     # (0, 1, 0.5) µm in voxels
    np.testing.assert_allclose(combined, solid, atol=1e-12)


def test_the_registration_is_undone_as_the_analysis_did():
    """M(x) = R x + t maps the reference onto the deformed scan; DVC on the registered
    volume should find M^-1(p + u/v + drift) - p = R^T (p + u/v + drift - t) - p."""
    rotation = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])   # a quarter turn about z
    shift = np.array([1.0, 0.0, 0.0])
    registration = [IDENTITY, np.hstack([rotation, shift[:, None]])]
    frame = _frame(registration, drift=((0, 0, 0), (0.5, 0.0, 0.0)))
    p = np.array([[1.0, 2.0, 3.0]])
    u_um = np.array([[0.0, 0.0, 1.0]])               # 2 voxels along x
    # p + u/v + drift = (1.5, 2, 5); minus t = (0.5, 2, 5); R^T of it = (0.5, 5, -2); minus p
    np.testing.assert_allclose(frame.as_analysed(p, u_um, 1), [[-0.5, 3.0, -5.0]], atol=1e-12)


@pytest.mark.parametrize("step", [0, 1])
def test_with_identity_registration_and_no_drift_the_truth_is_the_motion_in_voxels(step):
    u_um = np.array([[0.25, -0.5, 1.0]])
    np.testing.assert_allclose(_frame().as_analysed(np.array([[3.0, 4.0, 5.0]]), u_um, step),
                               u_um / V, atol=1e-12)
