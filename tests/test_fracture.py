"""NMC particles that crack (issue #17): strength, fragments, their images and their truth."""

import json
import math

import numpy as np
import pytest
import trimesh
from hypothesis import example, given, settings, strategies as st

from conftest import TINY as TINY_TOML
from synthcal import pipeline, scenario as sc
from synthcal.dataset import load_run
from synthcal.dem.fracture import Breaker, FractureModel
from synthcal.dem.io import particle_mesh, write_trajectory
from synthcal.dem.material import Material
from synthcal.dem.protocol import simulate_pillar
from synthcal.dem.simulation import Simulation
from synthcal.phantom import Texture, voxelise
from synthcal.pieces import MAX_PLANES, PAD_PLANE, Pieces, _COVER, _DIRECTIONS, piece_surface, split_piece
from synthcal.rotations import rotation_matrices_zyx
from synthcal.truth import ParticlePoses, true_displacement_um, true_displacement_volume

NMC = Material(200e9, 0.3, 4650.0, restitution=0.5, friction=0.4, rolling_friction=0.0)
MODEL = FractureModel(strength_pa=2e5, reference_diameter_um=10.0, weibull_modulus=4.0, n_fragments=3,
                      min_diameter_um=3.0)
RADIUS_UM = 5.0
SEED = 3


def _in_piece(body_um, root_radius_um, planes, tol=0.0):
    """Root-body points inside a sphere cut by planes (written out here, not taken from the code under test)."""
    inside = np.linalg.norm(body_um, axis=1) <= root_radius_um + tol
    for n_z, n_y, n_x, d in planes:
        inside &= body_um @ np.array([n_z, n_y, n_x]) <= d + tol
    return inside


def _plates(batch):
    """A 10 um particle on the foil under the head closing at 2 cm/s, stepped ``batch`` steps at a time until it breaks.

    Returns the simulation, its breaker, the particle's load (N) before each
    batch and the step at which it broke.
    """
    sim = Simulation([[RADIUS_UM, 0.0, 0.0]], [RADIUS_UM], NMC, bottom_z_um=0.0)
    sim.set_head(2 * RADIUS_UM, -2e4)
    breaker = Breaker(MODEL, sim.radii_um, np.random.default_rng(SEED))
    breaker.attach(sim)
    loads = []
    while sim.n == 1 and sim.n_steps < 20000:
        loads.append(float(sim.loads_n[0]))
        sim.step(batch)
    return sim, breaker, np.array(loads), round(breaker.event_times_s[0] / sim.dt_s)


@pytest.fixture(scope="module")
def broken():
    return _plates(1)


def _expected_strength_n():
    # d = d0 = 10 um: sigma = sigma0 (-ln(1 - U))^(1/m) (Weibull), F = sigma pi d^2 / 2.8 (Hiramatsu & Oka)
    u = np.random.default_rng(SEED).random()
    return 2e5 * (-math.log(1.0 - u)) ** 0.25 * math.pi * (10e-6) ** 2 / 2.8


def test_strength_follows_weibull_with_the_size_effect():
    # characteristic force ~ d^(2 - 3/m): halving d with m = 4 scales it by 2^-(2 - 0.75)
    f10, f5 = MODEL.characteristic_force_n([10.0, 5.0])
    assert f10 == pytest.approx(2e5 * math.pi * 1e-10 / 2.8, rel=1e-12)
    assert f5 / f10 == pytest.approx(2.0 ** -1.25, rel=1e-12)
    draws = MODEL.draw_forces_n(np.full(20000, 10.0), np.random.default_rng(0))
    # 1 - 1/e of the particles break below the characteristic force
    assert np.mean(draws < f10) == pytest.approx(1 - math.exp(-1), abs=0.01)


def test_single_particle_between_plates_breaks_at_its_strength_and_not_before(broken):
    sim, breaker, loads, _ = broken
    strength = _expected_strength_n()
    assert sim.n == MODEL.n_fragments
    # not before: every load the particle bore was below its strength
    assert loads.max() <= strength
    # at it: the last load is within one step's rise of it (the break comes in the step that passes it)
    rise = loads[-1] - loads[-2]
    assert loads[-1] >= strength - rise > 0.9 * strength


def test_batched_steps_break_within_two_steps_of_step_by_step(broken):
    # the engine ends a batch of up to 1024 steps at an overload: the break does not wait for the batch to end
    _, _, _, step_single = broken
    _, _, _, step_batched = _plates(1000)
    assert abs(step_batched - step_single) <= 2


def test_contact_force_drops_when_the_particle_breaks(broken):
    sim, _, loads, _ = broken
    # the fragments' contact spheres lie inside the parent: their overlaps with the plates are smaller
    assert sim.head_force_n < loads[-1]


def test_fragments_conserve_mass_and_fill_the_parent(broken):
    sim, breaker, _, _ = broken
    mass = 4.0 / 3.0 * math.pi * (RADIUS_UM * 1e-6) ** 3 * 4650.0
    assert sim.masses_kg.sum() == pytest.approx(mass, rel=1e-12)
    # a lattice much finer than the code's: every point of the parent in exactly one fragment
    h = RADIUS_UM / 60
    axis = np.arange(-RADIUS_UM + h / 2, RADIUS_UM, h)
    b = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    b = b[np.linalg.norm(b, axis=1) <= RADIUS_UM]
    member = np.array([_in_piece(b, RADIUS_UM, breaker.pieces.planes[i]) for i in range(sim.n)])
    assert np.mean(member.sum(axis=0) == 1) > 0.999
    volume = 4.0 / 3.0 * math.pi * RADIUS_UM ** 3
    assert breaker.volumes_um3.sum() == pytest.approx(volume, rel=1e-12)
    # each fragment's volume (its mass share) is its piece's within 1 % of the parent
    assert np.abs(member.mean(axis=1) * volume - breaker.volumes_um3).max() < 0.01 * volume
    assert np.allclose(sim.masses_kg / mass, breaker.volumes_um3 / volume, rtol=1e-12)


def test_fragments_start_with_the_parents_rigid_motion():
    v, w = np.array([3.0, -2.0, 1.0]), np.array([1e5, 2e5, -3e5])  # µm/s and rad/s, z-y-x
    sim = Simulation([[10.0, 0.0, 0.0]], [4.0], NMC, velocities_um_s=[v], angular_velocities_rad_s=[w])
    q = sim.orientations[0]
    frag_x = np.array([[10.0, 1.0, -1.0], [9.0, -1.5, 1.0]])
    frag = sim.split(0, frag_x, [1.5, 1.5], [0.5 * sim.masses_kg[0]] * 2)
    rel_xyz = (frag_x - [10.0, 0.0, 0.0])[:, ::-1]
    expected = v + np.cross(w[::-1], rel_xyz)[:, ::-1]  # v + w x r, the cross product in x-y-z
    assert np.allclose(sim.velocities_um_s[frag], expected, rtol=1e-12)
    assert np.allclose(sim.angular_velocities_rad_s[frag], w)
    assert np.allclose(sim.orientations[frag], q)


def test_a_bond_goes_to_the_nearest_fragment_and_narrows_with_it():
    """Particle 0 (radius 4 um, bonded to particle 1 by a 2 um bridge) splits into pieces of contact
    radius 1.5 um (towards particle 1) and 1 um: the bond follows the near piece, its stretch kept, and
    keeps its width relative to the particle (2 x 1.5 / 4 um), so a bridge never outsizes the fragment
    it holds (full width, it tore a tiny pillar apart: "particles left the domain")."""
    from synthcal.dem import BondModel

    bond = BondModel(youngs_modulus_pa=2e9, poisson_ratio=0.3, tensile_strength_pa=5e6, shear_strength_pa=5e6,
                     damping_ratio=0.2)
    sim = Simulation([[10.0, 0.0, 0.0], [10.0, 0.0, 8.1]], [4.0, 4.0], NMC, bond_model=bond)
    assert sim.set_bonds([[0, 1]], [2.0]) == 1
    frag = sim.split(0, [[10.0, 0.0, 2.0], [10.0, 0.0, -2.5]], [1.5, 1.0], [0.5 * sim.masses_kg[0]] * 2)
    assert sorted(map(tuple, sim.bonds)) == [tuple(sorted((int(frag[0]), 1)))]
    assert sim.bond_radii_um == pytest.approx([2.0 * 1.5 / 4.0])
    assert sim.bonds_intact.all()


def test_inscribed_sphere_planes_cover_every_direction():
    u = np.random.default_rng(0).normal(size=(100_000, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    assert np.arccos(np.clip((u @ _DIRECTIONS.T).max(axis=1), -1, 1)).max() < _COVER


@settings(max_examples=25, deadline=None)
# seeds on lattice points put a whole lattice plane on this bisector: shares 0.04 off
@example(radius_um=1.0, n_fragments=2, seed=1048740, cut=0.0625, theta=1.587890625, phi=1.25390625)
@example(radius_um=1.0, n_fragments=2, seed=90814, cut=-0.34375, theta=0.0, phi=0.0)
@given(radius_um=st.floats(1.0, 10.0), n_fragments=st.integers(2, 4), seed=st.integers(0, 2 ** 31),
       cut=st.floats(-0.5, 0.5), theta=st.floats(0.0, math.pi), phi=st.floats(0.0, 2 * math.pi))
def test_split_pieces_partition_the_parent_and_hold_their_contact_spheres(radius_um, n_fragments, seed, cut, theta,
                                                                          phi):
    # the parent is already a piece: the root sphere cut by one plane of any normal and offset
    normal = np.array([math.cos(theta), math.sin(theta) * math.sin(phi), math.sin(theta) * math.cos(phi)])
    parent = np.tile(PAD_PLANE, (MAX_PLANES, 1))
    parent[0] = [*normal, cut * radius_um]
    planes, shares, centres, radii = split_piece(radius_um, parent, n_fragments, np.random.default_rng(seed))
    assert shares.sum() == pytest.approx(1.0, abs=1e-12) and np.all(shares > 0)
    assert np.all(planes[:, 0] == parent[0])  # each fragment keeps the parent's cut
    sphere = np.random.default_rng(1).normal(size=(400, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    for a in range(n_fragments):
        assert _in_piece(centres[a] + radii[a] * sphere, radius_um, planes[a], tol=1e-9 * radius_um).all()
        for b in range(a):
            assert np.linalg.norm(centres[a] - centres[b]) >= radii[a] + radii[b] - 1e-9 * radius_um
    # a fine lattice of the parent: every point in exactly one fragment, in the shares counted; each point
    # jittered in its cell (stratified), else a cut parallel to the lattice rows puts the reference itself
    # 0.013 off (cut z = -0.34 R: 0.703 where finer lattices converge on 0.716, the code's 0.724)
    h = radius_um / 30
    axis = np.arange(-radius_um + h / 2, radius_um, h)
    pts = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    pts += np.random.default_rng(2).uniform(-h / 2, h / 2, pts.shape)
    pts = pts[_in_piece(pts, radius_um, parent[:1])]
    member = np.array([_in_piece(pts, radius_um, planes[a]) for a in range(n_fragments)])
    assert np.mean(member.sum(axis=0) == 1) > 0.995
    assert np.abs(member.mean(axis=1) - shares).max() < 0.02


def _one_particle_fracture(seed=5, radius=3.0, n_fragments=3):
    """A rotated particle at the centre of a small grid, and its fragments at the instant of fracture."""
    rng = np.random.default_rng(seed)
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    centre = np.array([4.0, 4.0, 4.0])
    planes, _, centres_b, radii = split_piece(radius, np.tile(PAD_PLANE, (MAX_PLANES, 1)), n_fragments, rng)
    rot = rotation_matrices_zyx(q[None])[0]
    frag_x = centre + centres_b @ rot.T
    pieces = Pieces(np.zeros(n_fragments, np.int64), -centres_b, np.full(n_fragments, radius), planes)
    return centre, radius, q, frag_x, radii, pieces


def _image(positions, radii, quats, pieces=None):
    return voxelise(positions, radii, np.zeros(len(radii), np.int32), quats, voxel_size_um=0.2, shape=(40, 40, 40),
                    origin_um=(0.1, 0.1, 0.1), seed=7, head_z_um=None, foil_top_z_um=None, energy_kev=5.4,
                    texture=Texture(), pieces=pieces)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2 ** 31), radius=st.floats(1.5, 3.5), n_fragments=st.integers(2, 4))
def test_phantom_at_the_instant_of_fracture_is_the_phantom_before_it(seed, radius, n_fragments):
    centre, radius, q, frag_x, radii, pieces = _one_particle_fracture(seed, radius, n_fragments)
    before = _image([centre], [radius], [q])
    after = _image(frag_x, radii, np.tile(q, (n_fragments, 1)), pieces)
    assert np.mean(before.labels != after.labels) <= 0.005
    # the fragments carry the parent's texture: attenuation the same up to rounding
    nmc = float(before.mu_per_um.max())
    assert np.mean(np.abs(before.mu_per_um - after.mu_per_um) > 1e-4 * nmc) <= 0.005
    # each fragment owns its own voxels, in its share of the volume
    owned = np.bincount(after.owner[after.owner >= 0], minlength=n_fragments)
    assert owned.sum() == np.count_nonzero(before.owner == 0)
    assert np.all(owned > 0)


def test_crack_opens_as_the_fragments_move_apart():
    centre, radius, q, frag_x, radii, pieces = _one_particle_fracture()
    before = _image([centre], [radius], [q])
    away = frag_x + 0.6 * (frag_x - centre) / np.linalg.norm(frag_x - centre, axis=1, keepdims=True)
    after = _image(away, radii, np.tile(q, (3, 1)), pieces)
    # pore now where the parent was, in voxels a fragment has left
    opened = (before.owner == 0) & (after.owner < 0)
    assert opened.sum() > 100


def test_two_fragments_moved_apart_rigidly_carry_their_own_truth():
    rng = np.random.default_rng(11)
    centre, radius = np.array([5.0, 5.0, 5.0]), 3.0
    planes, _, centres_b, radii = split_piece(radius, np.tile(PAD_PLANE, (MAX_PLANES, 1)), 2, rng)
    pieces = Pieces(np.zeros(2, np.int64), -centres_b, np.full(2, radius), planes)
    # reference: the whole particle, unrotated; now fragment 0 shifted, fragment 1 shifted and turned about z
    ref = ParticlePoses([centre], [[1.0, 0.0, 0.0, 0.0]])
    shift = np.array([[0.3, -0.2, 0.1], [-0.4, 0.5, 0.7]])
    theta = 0.2
    turn = [math.cos(theta / 2), 0.0, 0.0, math.sin(theta / 2)]  # (w, qx, qy, qz): about the z axis
    cur = ParticlePoses(centre + centres_b + shift, [[1.0, 0.0, 0.0, 0.0], turn], pieces=pieces)
    pts = centre + rng.uniform(-radius, radius, size=(4000, 3))
    pts = pts[np.linalg.norm(pts - centre, axis=1) < radius]
    which = _in_piece(pts - centre, radius, planes[1])

    def expected(p):
        out = np.where(which[:, None], 0.0, shift[0])
        c1 = centre + centres_b[1]
        r = p - c1  # z-y-x; about z: x' = x cos - y sin, y' = x sin + y cos
        turned = np.column_stack([r[:, 0], r[:, 2] * math.sin(theta) + r[:, 1] * math.cos(theta),
                                  r[:, 2] * math.cos(theta) - r[:, 1] * math.sin(theta)])
        return np.where(which[:, None], turned + c1 + shift[1] - p, out)

    u = true_displacement_um(pts, ref, cur, [radius])
    assert np.abs(u - expected(pts)).max() < 1e-9
    # on a voxel grid, from the reference owner
    h = 0.25
    axis = np.arange(40) * h
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)
    owner = np.where(np.linalg.norm(grid - centre, axis=-1) < radius, 0, -1).astype(np.int32)
    vol = true_displacement_volume(owner, ref, cur, voxel_size_um=h, origin_um=(0.0, 0.0, 0.0))
    solid = owner >= 0
    pts, which = grid[solid], _in_piece(grid[solid] - centre, radius, planes[1])
    assert np.abs(np.moveaxis(vol, 0, -1)[solid] - expected(pts)).max() < 1e-5


@pytest.fixture(scope="module")
def pillars():
    tiny = sc.load(TINY_TOML)
    # weak enough to crack under tiny's head (about 10 uN), strong enough that nothing cracks at the first touch,
    # before the table records any force
    return (simulate_pillar(sc.with_overrides(tiny, ["fracture.strength_pa=6e4"])),
            simulate_pillar(sc.with_overrides(tiny, ["fracture.enabled=false"])))


def test_pillar_with_fracture_stands_and_counts_its_fragments(pillars):
    cracked, _ = pillars
    info, last = cracked.info, cracked.steps[-1]
    assert info["n_fracture_events"][-1] > 0 and info["n_fragments"][-1] > info["n_fractured_particles"][-1] > 0
    assert info["n_particles_at_steps"][-1] == info["n_particles_at_steps"][0] + (MODEL.n_fragments - 1) * \
        info["n_fracture_events"][-1]
    # it stands: it carries the head at every step and its top is where the head is
    assert all(f > 0 for f in info["head_force_n"][1:])
    assert (last.positions_um[:, 0] + last.radii_um).max() == pytest.approx(last.head_z_um, abs=0.05)
    assert np.all(np.isfinite(last.positions_um))
    # what broke loose lies glued on the base: on the foil, on a glued particle, or bonded to one that is
    assert info["n_spilled"] > 0
    x, r, film = last.positions_um, last.radii_um, info["binder_film_um"]
    glued = last.fixed.copy()
    bonds = last.bonds[last.bonds_intact]
    held = glued & (x[:, 0] - r < film)
    touches_below = (np.linalg.norm(x[:, None] - x[None], axis=2) - r[:, None] - r[None] < film) & \
        (x[None, :, 0] < x[:, None, 0])
    for _ in range(len(x)):
        rests = np.any(touches_below & held[None], axis=1)
        tied = np.zeros(len(x), bool)
        tied[bonds[held[bonds[:, 1]], 0]] = tied[bonds[held[bonds[:, 0]], 1]] = True
        more = held | (glued & (rests | tied))
        if np.array_equal(more, held):
            break
        held = more
    assert np.array_equal(held, glued)


def test_head_force_drops_at_fracture_events(pillars):
    cracked, whole = pillars
    fd = cracked.force_displacement
    events = np.array(cracked.info["fracture_times_s"])
    rows = np.searchsorted(fd[:, 0], events)
    rows = rows[(rows > 0) & (rows + 5 <= len(fd))]
    rows = rows[fd[rows - 1, 2] > 0]  # the head carried force when the particle broke
    drops = [fd[r:r + 5, 2].min() < fd[r - 1, 2] for r in rows]
    assert len(drops) > 0 and np.mean(drops) >= 0.5
    # the cracked pillar carries less at the same stage displacement
    assert cracked.info["head_force_n"][-1] < whole.info["head_force_n"][-1]


def test_bad_fracture_settings_are_rejected():
    tiny = sc.load(TINY_TOML)
    for bad in ("fracture.n_fragments=1", "fracture.weibull_modulus=0", "fracture.strength_pa=-1"):
        with pytest.raises(sc.ScenarioError, match="fracture"):
            sc.with_overrides(tiny, [bad])


def test_truth_from_a_cracked_reference_follows_fragments_that_crack_again():
    # step A holds two fragments, turned; by step B fragment 1 has cracked in two and its pieces moved apart
    rng = np.random.default_rng(21)
    centre, radius = np.array([5.0, 5.0, 5.0]), 3.0
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    rot = rotation_matrices_zyx(q[None])[0]
    planes, _, centres_b, _ = split_piece(radius, np.tile(PAD_PLANE, (MAX_PLANES, 1)), 2, rng)
    ref = ParticlePoses(centre + centres_b @ rot.T, np.tile(q, (2, 1)),
                        pieces=Pieces(np.zeros(2, np.int64), -centres_b, np.full(2, radius), planes))
    planes2, _, centres2, _ = split_piece(radius, planes[1], 2, rng)
    all_planes = np.stack([planes[0], planes2[0], planes2[1]])
    all_centres = np.stack([centres_b[0], centres2[0], centres2[1]])
    shift = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, -0.5, 0.3]])
    cur = ParticlePoses(centre + all_centres @ rot.T + shift, np.tile(q, (3, 1)),
                        pieces=Pieces(np.zeros(3, np.int64), -all_centres, np.full(3, radius), all_planes))
    pts = centre + rng.uniform(-radius, radius, size=(4000, 3))
    pts = pts[np.linalg.norm(pts - centre, axis=1) < radius]
    body = (pts - centre) @ rot  # root-body coordinates: R^T (p - c)
    which = np.argmax([_in_piece(body, radius, all_planes[a]) for a in range(3)], axis=0)
    # one voxel at a time, at a point of each step-B fragment, owned by its step-A fragment (0, else 1)
    u = true_displacement_volume(np.full((1, 1, 1), 0, np.int32), ref, cur, voxel_size_um=1.0,
                                 origin_um=pts[np.flatnonzero(which == 0)[0]])
    assert np.allclose(u[:, 0, 0, 0], 0.0, atol=1e-5)
    for k in (1, 2):
        p = pts[np.flatnonzero(which == k)[0]]
        u = true_displacement_volume(np.ones((1, 1, 1), np.int32), ref, cur, voxel_size_um=1.0, origin_um=p)
        assert np.allclose(u[:, 0, 0, 0], shift[k], atol=1e-5)


def test_same_scenario_cracks_the_same_way(pillars):
    cracked, _ = pillars
    again = simulate_pillar(sc.with_overrides(sc.load(TINY_TOML), ["fracture.strength_pa=6e4"]))
    for a, b in zip(cracked.steps, again.steps):
        for name in ("positions_um", "quaternions", "root_ids", "root_offsets_um", "cut_planes", "bonds_intact"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert cracked.info["fracture_times_s"] == again.info["fracture_times_s"]


def test_truth_summary_counts_each_steps_own_fragments(pillars, tmp_path):
    """The phantom stage's summary gives each step the fracture counts of the DEM's table at that step."""
    cracked, _ = pillars
    scenario = sc.with_overrides(sc.load(TINY_TOML), ["fracture.strength_pa=6e4"])
    write_trajectory(cracked, tmp_path / "dem")
    stamp = {"stage": "dem", "key": pipeline.stage_keys(scenario)["dem"]}
    (tmp_path / "dem" / pipeline.STAMP).write_text(json.dumps(stamp))
    assert pipeline.run(scenario, tmp_path, only="phantom", log=lambda line: None)["phantom"] == "ran"
    rows = load_run(tmp_path).truth_summary()
    for name in ("n_fractured_particles", "n_fragments"):
        assert [row[name] for row in rows] == cracked.info[name], name
    assert rows[0]["n_fragments"] == 0 < rows[-1]["n_fragments"]


def _half_pieces(radius_um):
    """A sphere cut in two by the plane z = 0 of its body frame: the lower half, then the upper."""
    planes = np.tile(PAD_PLANE, (2, MAX_PLANES, 1))
    planes[0, 0] = (1.0, 0.0, 0.0, 0.0)     # n.b <= 0: z <= 0
    planes[1, 0] = (-1.0, 0.0, 0.0, 0.0)    # z >= 0
    return Pieces(np.zeros(2, np.int64), np.zeros((2, 3)), np.full(2, radius_um), planes)


def test_piece_surfaces_are_closed_and_tile_their_root():
    r = 2.5
    halves = _half_pieces(r)
    whole = Pieces.whole([r])
    volumes = []
    for pieces, i in ((halves, 0), (halves, 1), (whole, 0)):
        v, f = piece_surface(pieces.root_radii_um[i], pieces.planes[i])
        mesh = trimesh.Trimesh(vertices=v, faces=f, process=True)
        assert mesh.is_watertight and mesh.volume > 0  # closed, faces wound outward
        volumes.append(mesh.volume)
    # the two halves share their cut face, so they add up to the whole polyhedron exactly
    assert volumes[0] + volumes[1] == pytest.approx(volumes[2], rel=1e-9)
    # 400 tangent planes circumscribe the sphere: a little above 4/3 pi r^3, well within 2 %
    sphere = 4.0 / 3.0 * math.pi * r ** 3
    assert sphere < volumes[2] < 1.02 * sphere
    assert volumes[0] == pytest.approx(0.5 * volumes[2], rel=1e-9)


def test_particle_mesh_draws_a_turned_fragment_where_the_phantom_puts_it():
    """The lower half (body z <= 0) of a particle turned 180 degrees about x lies above its root's
    centre in the world, and the root's centre lies at c + R offset (the offset turns too: body -z
    becomes world +z); the whole particle beside it stays a sphere."""
    r = 2.0
    halves = _half_pieces(r)
    offsets = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    pieces = Pieces(np.array([0, 1]), offsets, np.full(2, r),
                    np.stack([halves.planes[0], np.tile(PAD_PLANE, (MAX_PLANES, 1))]))
    centres = np.array([[10.0, 5.0, 5.0], [10.0, 5.0, 20.0]])   # z, y, x
    turned = [0.0, 1.0, 0.0, 0.0]                                # (w, x, y, z): 180 degrees about x
    mesh = particle_mesh(centres, [r, r], quaternions=np.array([turned, [1.0, 0.0, 0.0, 0.0]]), pieces=pieces)
    xyz = np.asarray(mesh.vertices)
    fragment = xyz[:, 0] < 12.5
    assert xyz[fragment, 2].min() == pytest.approx(11.0, abs=1e-9)     # its flat face at the root's centre
    assert xyz[fragment, 2].max() == pytest.approx(11.0 + r, rel=0.02)  # the dome above it
    sphere = np.linalg.norm(xyz[~fragment] - centres[1, ::-1], axis=1)
    assert np.allclose(sphere, r)
