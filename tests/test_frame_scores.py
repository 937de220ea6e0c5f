"""validation.frame on a hand-made phantom: where the truth of a node comes from, how the
scan drift and the analysis' registration are undone, how the registration is judged,
and how score_dvc counts, bins and splits the nodes of a DVC field (issue #19).

Phantom grid: voxel 0.5 µm, the centre of voxel (0, 0, 0) at origin (1, 2, 3) µm, shape
(24, 25, 25), 21 detector columns, so reconstruction voxel p is phantom voxel p + (0, 2, 2).
Particle A (radius 1.2 µm = 2.4 voxels) sits on phantom voxel (5, 12, 9), B on (5, 12, 15).
From step 0 to step 1, A turns 3° about the world z axis (array axis 0) around its centre
and moves (0, 0, 1) µm; B moves (0, 2, 0) µm without turning. Scan 1 drifted
(0.3, -0.2, 0.1) voxels; the analysis registered it with a 3° turn about z around
(6, 4, 2) and a shift (0.5, 0.25, -0.5) voxels. The head face is on row 22 at step 0 and
row 20 at step 1.

Every expected number comes from plain geometry here: u(p) = R (p - c) + c + d - p for a
particle turned by R about its centre c and moved by d; a subvolume's truth is the mean of
u over the solid voxel centres in it, summed one voxel at a time.
"""

import numpy as np
import pytest

from analysis.dvc import Status
from analysis.transform import RigidTransform
from synthcal.binder import Binder, BridgeVoxels
from synthcal.grid import Grid
from synthcal.pieces import MAX_PLANES, PAD_PLANE, Pieces
from synthcal.truth import ParticlePoses
from validation.frame import TruthFrame, node_regions, score_dvc, truth_frame

V, OFF = 0.5, 2
SHAPE = (24, 25, 25)
ORIGIN = np.array([1.0, 2.0, 3.0])
CENTRES_VOX = np.array([[5, 12, 9], [5, 12, 15]])
RADIUS_UM = 1.2
MOVES_UM = np.array([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
TURN_DEG = 3.0
DRIFT = np.array([[0.0, 0.0, 0.0], [0.3, -0.2, 0.1]])
REG_CENTRE = np.array([6.0, 4.0, 2.0])
REG_SHIFT = np.array([0.5, 0.25, -0.5])


def _turn_about_z(deg):
    """Rotation by ``deg`` about the world z axis acting on z-y-x vectors: x' = c x - s y, y' = s x + c y."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])


R_A = _turn_about_z(TURN_DEG)
R_REG = _turn_about_z(TURN_DEG)
CENTRES_UM = ORIGIN + V * CENTRES_VOX


def _u_um(p_um, k):
    """Plain geometry: displacement (µm) of the point p of particle k from step 0 to step 1."""
    turn = R_A if k == 0 else np.eye(3)
    return turn @ (p_um - CENTRES_UM[k]) + CENTRES_UM[k] + MOVES_UM[k] - p_um


def _owner():
    idx = np.indices(SHAPE).reshape(3, -1).T
    owner = np.full(len(idx), -1, np.int32)
    for k, c in enumerate(CENTRES_VOX):
        owner[np.linalg.norm(idx - c, axis=1) * V < RADIUS_UM] = k
    return owner.reshape(SHAPE)


def _grid(head_rows=(22, 20)):
    # head_rows = floor((h - origin_z) / v + 1/2): a face at origin_z + v * row lies on that row
    return Grid(voxel_size_um=V, shape=SHAPE, origin_um=tuple(ORIGIN), n_det=SHAPE[1] - 2 * OFF,
                foil_top_z_um=-10.0, head_z_um=tuple(ORIGIN[0] + V * r for r in head_rows))


def _poses():
    half = np.radians(TURN_DEG) / 2
    q0 = np.tile([1.0, 0, 0, 0], (2, 1))
    q1 = np.array([[np.cos(half), 0.0, 0.0, np.sin(half)], [1.0, 0, 0, 0]])   # (w, qx, qy, qz): about z
    return [ParticlePoses(CENTRES_UM, q0), ParticlePoses(CENTRES_UM + MOVES_UM, q1)]


def _registration():
    return [RigidTransform(np.eye(3), np.zeros(3), np.zeros(3), cc=1.0),
            RigidTransform(R_REG, REG_SHIFT, REG_CENTRE, cc=0.93)]


def _frame(owner=None, region=(slice(0, 1),) * 3, binder=None, bridges0=None, registered=True):
    transforms = _registration() if registered else [RigidTransform(np.eye(3), np.zeros(3), np.zeros(3), 1.0)] * 2
    return TruthFrame(_grid(), [RADIUS_UM, RADIUS_UM], _poses(), _owner() if owner is None else owner, DRIFT,
                      transforms, region=region, binder=binder, bridges0=bridges0)


def _phantom_um(recon_voxel):
    return ORIGIN + V * (np.asarray(recon_voxel, float) + [0, OFF, OFF])


def _solid_mean_um(recon_node, edge, owner=None):
    """Mean displacement (µm) over the solid voxel centres of the edge-voxel cube around a node, one at a time."""
    owner = _owner() if owner is None else owner
    lo = np.rint(recon_node).astype(int) + [0, OFF, OFF] - edge // 2
    total, count = np.zeros(3), 0
    for z in range(max(lo[0], 0), min(lo[0] + edge, SHAPE[0])):
        for y in range(max(lo[1], 0), min(lo[1] + edge, SHAPE[1])):
            for x in range(max(lo[2], 0), min(lo[2] + edge, SHAPE[2])):
                if owner[z, y, x] >= 0:
                    total += _u_um(ORIGIN + V * np.array([z, y, x]), owner[z, y, x])
                    count += 1
    return total / count if count else np.full(3, np.nan)


def _undo_registration(p, u_um):
    """What DVC on the registered volume should find: M^-1(p + u/v + drift) - p, M x = c + t + R (x - c)."""
    seen = p + u_um / V + DRIFT[1]
    return R_REG.T @ (seen - REG_CENTRE - REG_SHIFT) + REG_CENTRE - p


# ---- where a node's truth comes from ------------------------------------------------------------

def test_a_subvolume_box_is_the_edge_cube_around_the_rounded_node_in_phantom_voxels():
    # (5.4, 3.6, 2.2) rounds to (5, 4, 2); in the phantom (5, 6, 4); a 5-voxel cube starts 2 voxels lower
    boxes = _frame().boxes(np.array([[5.4, 3.6, 2.2], [0.0, 0.0, 0.0]]), 5)
    np.testing.assert_array_equal(boxes, [[3, 8, 4, 9, 2, 7], [-2, 3, 0, 5, 0, 5]])


def test_a_node_on_a_turned_particle_takes_the_particle_s_rotation_and_the_scan_drift():
    # reconstruction (5, 10, 8) is phantom (5, 12, 10): 1 voxel = 0.5 µm from A's centre along x;
    # the 3° turn moves it by (0, 0.5 sin 3°, 0.5 (cos 3° - 1)) µm on top of A's (0, 0, 1) µm
    node = np.array([5.0, 10.0, 8.0])
    s, c = np.sin(np.radians(3)), np.cos(np.radians(3))
    u_um = np.array([0.0, 0.5 * s, 0.5 * (c - 1) + 1.0])
    np.testing.assert_allclose(_u_um(_phantom_um(node), 0), u_um, atol=1e-12)   # the helper agrees
    frame = _frame()
    np.testing.assert_allclose(frame.truth_at(node, 1), [u_um / V + DRIFT[1]], atol=1e-12)
    np.testing.assert_allclose(frame.truth_at(node, 0), [[0.0, 0.0, 0.0]], atol=1e-12)
    # several points at once, as a flat list: one row each (B's centre moves (0, 2, 0) µm)
    np.testing.assert_allclose(frame.truth_at([*node, 5.0, 10.0, 13.0], 1),
                               [u_um / V + DRIFT[1], MOVES_UM[1] / V + DRIFT[1]], atol=1e-12)


def test_the_registered_truth_undoes_a_3_degree_registration_about_its_centre():
    node = np.array([5.0, 10.0, 8.0])
    u_um = _u_um(_phantom_um(node), 0)
    expected = _undo_registration(node, u_um)
    # a 3° turn about a centre ~8.5 voxels away moves the node by ~0.4 voxel: the test sees it
    assert np.linalg.norm(expected - (u_um / V + DRIFT[1] - REG_SHIFT)) > 0.2
    frame = _frame()
    np.testing.assert_allclose(frame.truth_at(node, 1, registered=True), [expected], atol=1e-12)
    np.testing.assert_allclose(frame.as_analysed(node[None], u_um[None], 1), [expected], atol=1e-12)


def test_particle_and_subvolume_mean_rules_differ_where_the_subvolume_holds_two_particles():
    # reconstruction (5, 10, 9) is phantom (5, 12, 11): in A (2 voxels from its centre);
    # its 7-voxel cube reaches phantom x 8..14, so it holds part of A and part of B
    node, edge = np.array([5.0, 10.0, 9.0]), 7
    particle = _u_um(_phantom_um(node), 0) / V + DRIFT[1]
    mean = _solid_mean_um(node, edge) / V + DRIFT[1]
    assert np.linalg.norm(particle - mean) > 0.5
    frame = _frame()
    np.testing.assert_allclose(frame.truth_at(node, 1, rule="particle", edge_voxels=edge), [particle], atol=1e-12)
    np.testing.assert_allclose(frame.truth_at(node, 1, rule="subvolume_mean", edge_voxels=edge), [mean], atol=1e-12)
    centre, solid, combined = frame.dvc_truth(node[None], 1, edge)
    np.testing.assert_allclose(centre, [_undo_registration(node, _u_um(_phantom_um(node), 0))], atol=1e-12)
    np.testing.assert_allclose(solid, [_undo_registration(node, _solid_mean_um(node, edge))], atol=1e-12)
    np.testing.assert_allclose(combined, centre, atol=1e-12)


def test_a_pore_node_has_no_particle_truth_and_takes_the_solid_mean_when_an_edge_is_given():
    # reconstruction (5, 10, 10) is phantom (5, 12, 12): 1.5 µm from both centres, a pore
    node, edge = np.array([5.0, 10.0, 10.0]), 7
    frame = _frame()
    assert np.all(np.isnan(frame.truth_at(node, 1)))
    assert np.all(np.isnan(frame.truth_at(node, 1, registered=True)))
    mean = _solid_mean_um(node, edge)
    np.testing.assert_allclose(frame.truth_at(node, 1, edge_voxels=edge), [mean / V + DRIFT[1]], atol=1e-12)
    np.testing.assert_allclose(frame.truth_at(node, 1, edge_voxels=edge, registered=True),
                               [_undo_registration(node, mean)], atol=1e-12)
    _, solid, combined = frame.dvc_truth(node[None], 1, edge)
    np.testing.assert_allclose(combined, solid, atol=1e-12)


def test_the_subvolume_mean_of_two_whole_particles_is_their_mean_motion_whatever_the_turn():
    # the 13-voxel cube of the pore node holds all of A and all of B (equal voxel counts);
    # A's voxels are symmetric about its centre, so its turn averages out: ((0,0,1) + (0,2,0)) / 2 µm
    frame = _frame(registered=False)
    mean = frame.truth_at([5.0, 10.0, 10.0], 1, rule="subvolume_mean", edge_voxels=13)
    np.testing.assert_allclose(mean, [[0.0, 1.0, 0.5] / np.array(V) + DRIFT[1]], atol=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    ({"rule": "nearest"}, r"^rule: expected one of particle, subvolume_mean, got 'nearest'$"),
    ({"rule": "subvolume_mean"}, r"^edge_voxels: the subvolume_mean rule needs a subvolume edge$"),
])
def test_an_unknown_rule_or_a_mean_without_an_edge_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _frame().truth_at([5.0, 10.0, 8.0], 1, **kwargs)


# ---- the binder: film around a particle and bridge voxels -----------------------------------------

def test_a_film_point_moves_with_its_particle_only_when_the_binder_is_given():
    # phantom (5, 12, 6): 3 voxels = 1.5 µm from A's centre, 0.3 µm off its surface, inside a 0.4 µm film
    node = np.array([5.0, 10.0, 4.0])
    binder = Binder(CENTRES_UM, np.tile([1.0, 0, 0, 0], (2, 1)), [RADIUS_UM] * 2, [0, 0], np.zeros((0, 2)),
                    np.zeros(0), 0.4)
    assert np.all(np.isnan(_frame(registered=False).truth_at(node, 1)))
    np.testing.assert_allclose(_frame(binder=binder, registered=False).truth_at(node, 1),
                               [_u_um(_phantom_um(node), 0) / V + DRIFT[1]], atol=1e-12)


def _bridge_frame(weight, region=(slice(0, 1),) * 3):
    # phantom voxel (5, 12, 12), a pore between A and B, made a bridge voxel of bond (A, B): it is owned by
    # A (w < 1/2) and its truth blends the two motions, (1 - w) u_A + w u_B
    owner = _owner()
    owner[5, 12, 12] = 0
    bridges = BridgeVoxels([np.ravel_multi_index((5, 12, 12), SHAPE)], [0], [weight], [[0, 1]])
    return _frame(owner=owner, region=region, bridges0=bridges)


def test_a_bridge_voxel_blends_the_motions_of_its_two_particles():
    node, w = np.array([5.0, 10.0, 10.0]), 0.25
    p = _phantom_um(node)
    blend = (1 - w) * _u_um(p, 0) + w * _u_um(p, 1)
    frame = _bridge_frame(w)
    _, solid = frame.world_displacement_um(node[None], 1, 1)     # a 1-voxel subvolume: the bridge voxel alone
    np.testing.assert_allclose(solid, [blend], atol=1e-12)
    assert np.linalg.norm(blend - _u_um(p, 0)) > 0.3               # without the bridge it would be A's motion


# ---- how the registration is judged ----------------------------------------------------------------

def _expected_registration(centre, u_um):
    estimated = REG_CENTRE + REG_SHIFT + R_REG @ (centre - REG_CENTRE)
    true = centre + u_um / V + DRIFT[1]
    return estimated, true


def test_the_registration_error_is_the_distance_between_estimated_and_true_maps_of_the_region_centre():
    # region: reconstruction z 1..9, y 6..14, x 3..10 (phantom x 5..12) holds all of A and none of B;
    # its centre (5, 10, 6.5) and the true map of it: A's mean motion (0, 0, 1) µm (the turn averages out)
    frame = _frame(region=(slice(1, 10), slice(6, 15), slice(3, 11)))
    centre = np.array([5.0, 10.0, 6.5])
    estimated, true = _expected_registration(centre, MOVES_UM[0])
    out = frame.registration_error(1)
    assert out["error_voxels"] == pytest.approx(np.linalg.norm(estimated - true), abs=1e-12)
    np.testing.assert_allclose(out["estimated_shift_voxels"], estimated - centre, atol=1e-12)
    np.testing.assert_allclose(out["true_shift_voxels"], true - centre, atol=1e-12)
    np.testing.assert_allclose(out["drift_voxels"], DRIFT[1], atol=0)
    assert out["cc"] == 0.93


def test_the_registration_error_counts_bridge_voxels_with_their_blend():
    # a one-voxel region on the bridge voxel: its true motion is the blend, not A's
    w = 0.75
    frame = _bridge_frame(w, region=(slice(5, 6), slice(10, 11), slice(10, 11)))
    centre = np.array([5.0, 10.0, 10.0])
    p = _phantom_um(centre)
    estimated, true = _expected_registration(centre, (1 - w) * _u_um(p, 0) + w * _u_um(p, 1))
    assert frame.registration_error(1)["error_voxels"] == pytest.approx(np.linalg.norm(estimated - true), abs=1e-12)


# ---- a run folder's frame ---------------------------------------------------------------------------

class _Step:
    def __init__(self, poses, radii, intact):
        self.positions_um, self.quaternions, self.radii_um, self.bonds_intact = \
            poses.positions_um, poses.quaternions, radii, intact
        self.pieces = None      # no particle has cracked


class _Run:
    """The few things truth_frame reads from a run folder, with a different answer per load step."""

    grid = _grid()

    def __init__(self):
        poses = _poses()
        self.steps = [_Step(poses[0], np.array([1.2, 1.2]), [True]), _Step(poses[1], np.array([9.0, 9.0]), [False])]
        self.transforms = _registration()
        self.owners = [_owner(), np.full(SHAPE, 7, np.int32)]
        self.bridge_voxels = [BridgeVoxels.empty([[0, 1]]), None]
        self.the_binder = object()

    def trajectory(self):
        return type("Trajectory", (), {"steps": self.steps})

    def registration(self):
        return self.transforms, (slice(1, 2), slice(3, 4), slice(5, 6))

    def owner(self, k):
        return self.owners[k]

    def drift_voxels(self):
        return DRIFT

    def binder(self):
        return self.the_binder

    def bridges(self, k):
        return self.bridge_voxels[k]


def test_a_run_s_frame_takes_step_0_for_the_reference_and_every_step_s_pose():
    run = _Run()
    frame = truth_frame(run)
    assert frame.grid is run.grid and frame.v == V
    np.testing.assert_array_equal(frame.radii_um, [1.2, 1.2])
    assert len(frame.poses) == 2
    for pose, step in zip(frame.poses, run.steps):
        np.testing.assert_array_equal(pose.positions_um, step.positions_um)
        np.testing.assert_array_equal(pose.quaternions, step.quaternions)
        np.testing.assert_array_equal(pose.bonds_intact, step.bonds_intact)
    np.testing.assert_array_equal(frame.owner0, run.owners[0])
    np.testing.assert_array_equal(frame.drift, DRIFT)
    assert frame.transforms == run.transforms
    assert frame.region == (slice(1, 2), slice(3, 4), slice(5, 6))
    assert frame.binder is run.the_binder and frame.bridges0 is run.bridge_voxels[0]
    np.testing.assert_array_equal(frame.off, [0, OFF, OFF])
    np.testing.assert_array_equal(frame.origin, ORIGIN)
    # each step's pieces (the fragments of cracked particles) reach the frame
    run.steps[1].pieces = Pieces.whole(np.full(2, RADIUS_UM))
    assert truth_frame(run).poses[1].pieces is run.steps[1].pieces


# ---- node regions -----------------------------------------------------------------------------------

def test_node_regions_split_at_the_step_0_head_row_and_one_edge_from_the_field_of_view_sides():
    # head row 10 at step 0 (8 at step 1), edge 3, 9 x 9 reconstruction columns: near the head from
    # row 10 - 3 = 7 on; near a side where y or x < 3 or > 9 - 1 - 3 = 5
    grid = _grid(head_rows=(10, 8))
    nodes = np.array([[6, 3, 3], [7, 3, 3], [6, 2, 4], [6, 6, 4], [6, 5, 5], [6, 4, 2], [6, 4, 6], [8, 0, 0],
                      [6, 3, 5]])
    regions = node_regions(nodes, grid, (12, 9, 9), 3)
    assert set(regions) == {"near_head", "near_fov_edge", "bulk"}
    np.testing.assert_array_equal(regions["near_head"], [0, 1, 0, 0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(regions["near_fov_edge"], [0, 0, 1, 1, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(regions["bulk"], [1, 0, 0, 0, 1, 0, 0, 0, 1])
    # y and x are bounded by their own widths: 9 rows in y (y > 5 is near), 13 columns in x (x > 9 is near)
    wide = node_regions(np.array([[6, 4, 9], [6, 4, 10], [6, 6, 9]]), grid, (12, 9, 13), 3)
    np.testing.assert_array_equal(wide["bulk"], [1, 0, 0])
    np.testing.assert_array_equal(wide["near_fov_edge"], [0, 1, 1])


# ---- score_dvc on a hand-made field -------------------------------------------------------------------

EDGE = 5
# n0, n1: in A (its 5-voxel cube reaches into B) and at B's centre; n2: a pore (truth: the solid mean); n3: low CC; n4: masked; n5: left the
# volume; n6: flat; n7: ok but its subvolume holds no solid (no truth) and near the head (row 22 - 5 = 17)
NODES = np.array([[5, 10, 9], [5, 10, 13], [5, 10, 10], [5, 10, 9], [5, 10, 9], [5, 10, 9], [5, 10, 9],
                  [20, 10, 10]], float)
OK = np.array([1, 1, 1, 0, 0, 0, 0, 1], bool)
STATUS = np.array([Status.CONVERGED] * 3 + [Status.LOW_CC, Status.MASKED, Status.OUTSIDE, Status.FLAT,
                                             Status.CONVERGED])
CC = np.array([0.96, 0.85, 0.6, 0.3, 0.0, 0.1, 0.2, 0.99])
ERRORS = np.array([[0.3, 0, 0], [0, 0.4, 0], [0, 0, 1.2]])     # measured - truth of n0, n1, n2, voxels


def _truth_of(node, rule):
    p = _phantom_um(node)
    owner = _owner()[tuple(np.asarray(node, int) + [0, OFF, OFF])]
    mean = _solid_mean_um(node, EDGE)
    u = _u_um(p, owner) if rule == "particle" and owner >= 0 else mean
    return _undo_registration(node, u)


def _field(rule="particle"):
    truth = np.array([_truth_of(n, rule) for n in NODES])
    measured = truth.copy()
    measured[:3] += ERRORS
    measured[3:7] = 9.0                # not ok: never scored, whatever they say
    measured[7] = 0.0
    return {"nodes": NODES, "residual_displacement_vox": measured, "ok": OK, "cc": CC, "status": STATUS,
            "subvolume_voxels": EDGE}, truth


def test_score_dvc_scores_the_ok_nodes_with_a_truth_against_the_particle_rule():
    field, truth = _field()
    assert np.all(np.isnan(truth[7])) and np.all(np.isfinite(truth[:7]))
    stats, combined, error, _ = score_dvc(_frame(), field, 1, (24, 21, 21))
    np.testing.assert_allclose(combined, truth, atol=1e-12)
    np.testing.assert_allclose(error, [0.3, 0.4, 1.2] + [np.nan] * 5, atol=1e-12)
    rms = np.sqrt((0.3 ** 2 + 0.4 ** 2 + 1.2 ** 2) / 3)
    assert stats["rms_error_voxels"] == pytest.approx(rms, abs=1e-12)
    assert stats["rms_error_um"] == pytest.approx(rms * V, abs=1e-12)
    assert stats["nodes"] == 8 and stats["scored_nodes"] == 3
    assert stats["ok_fraction"] == pytest.approx(4 / 7)           # masked nodes were never tried
    # CC of the nodes that correlated (not masked, not outside, not flat): n0-n3 and n7
    assert stats["median_cc"] == pytest.approx(0.85)
    assert stats["mean_cc"] == pytest.approx((0.96 + 0.85 + 0.6 + 0.3 + 0.99) / 5)
    assert stats["centre_rule"]["nodes"] == 2                      # n2 is in a pore
    assert stats["subvolume_mean_rule"]["nodes"] == 3
    assert stats["centre_rule"]["rms_error_voxels"] == pytest.approx(np.sqrt((0.3 ** 2 + 0.4 ** 2) / 2), abs=1e-12)
    assert stats["truth_rule"].startswith("particle at the node centre")


def test_score_dvc_bins_errors_by_cc_and_splits_them_by_region():
    field, _ = _field()
    stats, _, _, _ = score_dvc(_frame(), field, 1, (24, 21, 21))
    rows = {(r["cc_low"], r["cc_high"]): r for r in stats["error_by_cc"]}
    assert rows[(0.95, 1.0)]["nodes"] == 1 and rows[(0.95, 1.0)]["rms_error_voxels"] == pytest.approx(0.3)
    assert rows[(0.8, 0.9)]["nodes"] == 1 and rows[(0.8, 0.9)]["rms_error_voxels"] == pytest.approx(0.4)
    assert rows[(0.5, 0.7)]["nodes"] == 1 and rows[(0.5, 0.7)]["rms_error_voxels"] == pytest.approx(1.2)
    regions = stats["error_by_region"]
    assert regions["bulk"]["nodes"] == 3
    assert regions["bulk"]["rms_error_voxels"] == pytest.approx(np.sqrt((0.09 + 0.16 + 1.44) / 3))
    assert regions["near_head"]["nodes"] == 0 and regions["near_fov_edge"]["nodes"] == 0


def test_score_dvc_with_the_subvolume_mean_rule_scores_against_the_solid_mean_everywhere():
    field, truth = _field("subvolume_mean")
    particle_truth = _field("particle")[1]
    assert np.linalg.norm(truth[0] - particle_truth[0]) > 0.3      # the rules differ at n0
    stats, combined, error, _ = score_dvc(_frame(), field, 1, (24, 21, 21), rule="subvolume_mean")
    np.testing.assert_allclose(combined, truth, atol=1e-12)
    np.testing.assert_allclose(error[:3], [0.3, 0.4, 1.2], atol=1e-12)
    assert stats["rms_error_voxels"] == pytest.approx(np.sqrt((0.09 + 0.16 + 1.44) / 3), abs=1e-12)
    assert stats["truth_rule"] == "mean of the subvolume's solid"


def test_score_dvc_without_correlated_or_tried_nodes_reports_nan_cc_and_zero_ok_fraction():
    field, _ = _field()
    field = dict(field, status=np.full(8, Status.MASKED), ok=np.zeros(8, bool))
    stats, _, error, _ = score_dvc(_frame(), field, 1, (24, 21, 21))
    assert stats["ok_fraction"] == 0.0 and stats["scored_nodes"] == 0
    assert np.isnan(stats["median_cc"]) and np.isnan(stats["mean_cc"])
    assert np.all(np.isnan(error))


def test_score_dvc_refuses_an_unknown_rule():
    field, _ = _field()
    with pytest.raises(ValueError, match=r"^rule: expected one of particle, subvolume_mean, got 'centre'$"):
        score_dvc(_frame(), field, 1, (24, 21, 21), rule="centre")


def test_score_dvc_splits_error_and_cc_between_nodes_with_and_without_fragments(monkeypatch):
    # n0, n2 and n3 hold fragments (n3 is not ok); the split's error counts the ok nodes with a truth on each
    # side, its CC the correlated nodes (not masked, outside or flat), its node count every node on the side
    field, _ = _field()
    frame = _frame()
    with_fragments = np.array([1, 0, 1, 1, 0, 0, 0, 0], bool)
    seen = {}

    def fragment_nodes(nodes, step, edge):
        seen.update(nodes=nodes, step=step, edge=edge)
        return with_fragments

    monkeypatch.setattr(frame, "fragment_nodes", fragment_nodes)
    stats, _, _, fragments = score_dvc(frame, field, 1, (24, 21, 21))
    np.testing.assert_array_equal(fragments, with_fragments)
    assert seen["step"] == 1 and seen["edge"] == EDGE and seen["nodes"] is NODES
    split = stats["fragments"]
    assert sorted(split) == ["with", "without"]
    assert split["with"]["nodes"] == 3 and split["without"]["nodes"] == 5
    assert split["with"]["rms_error_voxels"] == pytest.approx(np.sqrt((0.3 ** 2 + 1.2 ** 2) / 2), abs=1e-12)
    assert split["without"]["rms_error_voxels"] == pytest.approx(0.4, abs=1e-12)
    assert split["with"]["mean_cc"] == pytest.approx((0.96 + 0.6 + 0.3) / 3)
    assert split["without"]["mean_cc"] == pytest.approx((0.85 + 0.99) / 2)
    # a side with no correlated node has no mean CC
    monkeypatch.setattr(frame, "fragment_nodes", lambda nodes, step, edge: np.zeros(8, bool))
    split = score_dvc(frame, field, 1, (24, 21, 21))[0]["fragments"]
    assert split["with"]["nodes"] == 0 and np.isnan(split["with"]["mean_cc"])
    assert split["without"]["mean_cc"] == pytest.approx((0.96 + 0.85 + 0.6 + 0.3 + 0.99) / 5)


# ---- nodes whose subvolume holds fragments ---------------------------------------------------------

def _cracked_a():
    """Step 1's pieces when A (particle 0) has cracked in two: fragment 0 keeps A's index, fragment 2 is
    appended (as the DEM does), B (1) is whole; only the root ids matter for which voxels cracked."""
    return Pieces(np.array([0, 1, 0]), np.zeros((3, 3)), np.full(3, RADIUS_UM),
                  np.tile(PAD_PLANE, (3, MAX_PLANES, 1)))


def test_fragment_nodes_are_the_nodes_whose_box_holds_a_voxel_of_a_cracked_particle():
    p0, p1 = _poses()
    cracked = ParticlePoses(np.vstack([p1.positions_um, p1.positions_um[:1]]),
                            np.vstack([p1.quaternions, p1.quaternions[:1]]), pieces=_cracked_a())
    frame = TruthFrame(_grid(), [RADIUS_UM, RADIUS_UM], [p0, cracked], _owner(), DRIFT, _registration(),
                       region=(slice(0, 1),) * 3)
    # reconstruction voxel p is phantom voxel p + (0, 2, 2): A at (5, 10, 7), B at (5, 10, 13). A's
    # voxels at phantom x = 11 (two from its centre) form a plus in (z, y) around (5, 12); the 3-voxel box
    # around phantom (7, 13, 12), z 6..8, y 12..14, x 11..13, holds one of them, (6, 12, 11), and voxels of
    # the whole B (e.g. (6, 12, 13))
    nodes = np.array([[5, 10, 7], [5, 10, 13], [15, 10, 10], [7, 11, 10]])
    np.testing.assert_array_equal(frame.fragment_nodes(nodes, 1, 3), [True, False, False, True])
    # with no piece cracked, nothing holds fragments
    whole = TruthFrame(_grid(), [RADIUS_UM, RADIUS_UM], [p0, p1], _owner(), DRIFT, _registration(), region=(slice(0, 1),) * 3)
    assert not whole.fragment_nodes(nodes, 1, 3).any()


def test_prefetched_truths_are_those_of_each_field_alone_from_one_pass_over_the_phantom(monkeypatch):
    import validation.frame as frame_module

    p0, p1 = _poses()
    cracked = ParticlePoses(np.vstack([p1.positions_um, p1.positions_um[:1]]),
                            np.vstack([p1.quaternions, p1.quaternions[:1]]), pieces=_cracked_a())

    def frame():
        return TruthFrame(_grid(), [RADIUS_UM, RADIUS_UM], [p0, cracked], _owner(), DRIFT, _registration(),
                          region=(slice(2, 9), slice(3, 12), slice(1, 15)))

    # three fields of different sizes and edges (a study's), their boxes overlapping
    node_sets = [(np.array([[5, 10, 7], [5, 10, 13], [15, 10, 10], [7, 11, 10]]), 3),
                 (np.array([[5.4, 9.6, 8.0], [6, 11, 12]]), 5),
                 (np.array([[4, 10, 7], [5, 10, 12], [6, 9, 14]]), 7)]
    alone = frame()
    want = [(alone.dvc_truth(n, 1, e), alone.fragment_nodes(n, 1, e)) for n, e in node_sets]
    want_registration = alone.registration_error(1)

    passes = []
    for name in ("mean_solid_displacement_um", "cracked_voxel_counts"):
        monkeypatch.setattr(frame_module, name, lambda *a, _f=getattr(frame_module, name), _n=name, **k:
                            passes.append(_n) or _f(*a, **k))
    fetched = frame()
    fetched.prefetch(1, node_sets)
    assert sorted(passes) == ["cracked_voxel_counts", "mean_solid_displacement_um"]   # one pass each
    got = [(fetched.dvc_truth(n, 1, e), fetched.fragment_nodes(n, 1, e)) for n, e in node_sets]
    assert fetched.registration_error(1) == want_registration
    assert len(passes) == 2                                                            # none since
    for (truths, fragments), (want_truths, want_fragments) in zip(got, want):
        for a, b in zip(truths, want_truths):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(fragments, want_fragments)
    assert any(f.any() for _, f in want) and not all(f.all() for _, f in want)
    # what is fetched for one step is not another step's truth
    nodes, edge = node_sets[1]
    for a, b in zip(fetched.dvc_truth(nodes, 0, edge), alone.dvc_truth(nodes, 0, edge)):
        np.testing.assert_array_equal(a, b)
    at_zero = frame()
    at_zero.prefetch(0, node_sets)
    for a, b in zip(at_zero.dvc_truth(nodes, 1, edge), want[1][0]):
        np.testing.assert_array_equal(a, b)


def test_a_frame_seen_by_another_registration_shares_the_pass_and_gives_that_registration_s_truth(monkeypatch):
    import validation.frame as frame_module

    p0, p1 = _poses()
    other_transforms = [RigidTransform(np.eye(3), np.zeros(3), np.zeros(3), cc=1.0),
                        RigidTransform(np.eye(3), np.array([0.5, -1.0, 0.25]), np.array([6.0, 9.0, 9.0]), cc=0.8)]
    other_region = (slice(3, 8), slice(4, 10), slice(2, 12))

    def frame(transforms, region):
        return TruthFrame(_grid(), [RADIUS_UM, RADIUS_UM], [p0, p1], _owner(), DRIFT, transforms, region=region)

    mine = [(np.array([[5, 10, 7], [15, 10, 10]]), 3)]
    theirs = [(np.array([[5.4, 9.6, 8.0], [6, 11, 12]]), 5), (np.array([[4, 10, 7]]), 7)]
    # the truths of each analysis on a frame of its own, computed box by box
    alone = frame(_registration(), (slice(2, 9), slice(3, 12), slice(1, 15)))
    other_alone = frame(other_transforms, other_region)
    want = [alone.dvc_truth(n, 1, e) for n, e in mine], alone.registration_error(1)
    want_other = [other_alone.dvc_truth(n, 1, e) for n, e in theirs], other_alone.registration_error(1)

    passes = []
    monkeypatch.setattr(frame_module, "mean_solid_displacement_um", lambda *a, _f=frame_module.mean_solid_displacement_um, **k:
                        passes.append(1) or _f(*a, **k))
    first = frame(_registration(), (slice(2, 9), slice(3, 12), slice(1, 15)))
    second = first.seen_by(other_transforms, other_region)
    assert second.transforms == other_transforms and second.region == other_region
    assert first.transforms[1] is not other_transforms[1]        # the first keeps its own registration
    first.prefetch(1, mine + theirs, frames=[second])
    second.prefetch(1, theirs)                                    # all kept: no second pass
    got = [first.dvc_truth(n, 1, e) for n, e in mine], first.registration_error(1)
    got_other = [second.dvc_truth(n, 1, e) for n, e in theirs], second.registration_error(1)
    assert passes == [1]
    for (truths, error), (want_truths, want_error) in ((got, want), (got_other, want_other)):
        assert error == want_error
        for a, b in zip(truths, want_truths):
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)
    # the two registrations differ, so the shared pass did not hand one analysis the other's truth
    assert want[1]["error_voxels"] != want_other[1]["error_voxels"]
