"""DEM engine against contact mechanics: Hertz, restitution, Coulomb, bonds."""

import dataclasses
import math

import numpy as np
import pytest
import taichi as ti
from hypothesis import given, settings, strategies as st

from analysis._taichi import ensure_taichi
from conftest import digest, digest_in_fresh_process

from synthcal.dem import BondModel, Material, Simulation
from synthcal.dem import kernels as K
from synthcal.dem.material import effective_youngs_modulus
from synthcal.dem.neighbours import candidate_pairs
from synthcal.dem.simulation import _remap_pairs
from synthcal.rotations import rotation_matrices_zyx

NMC = Material(youngs_modulus_pa=200e9, poisson_ratio=0.3, density_kg_m3=4650.0, restitution=0.5, friction=0.4)
CBD = Material(youngs_modulus_pa=2e9, poisson_ratio=0.3, density_kg_m3=930.0, restitution=0.5, friction=0.4)


def _elastic(e=1.0, mu=0.0):
    return Material(youngs_modulus_pa=200e9, poisson_ratio=0.3, density_kg_m3=4650.0, restitution=e, friction=mu)


@pytest.mark.parametrize("kinds, radii, overlap_um", [((0, 0), (5.0, 5.0), 0.02), ((0, 1), (4.0, 0.65), 0.01),
                                                      ((1, 1), (0.65, 0.65), 0.005)])
def test_hertz_force_matches_theory(kinds, radii, overlap_um, arch):
    ra, rb = radii
    sim = Simulation([[10.0, 10.0, 10.0], [10.0, 10.0, 10.0 + ra + rb - overlap_um]], radii, (NMC, CBD), kinds=kinds,
                     arch=arch)
    estar = effective_youngs_modulus((NMC, CBD)[kinds[0]], (NMC, CBD)[kinds[1]])
    rstar = ra * rb / (ra + rb) * 1e-6
    expected = 4.0 / 3.0 * estar * math.sqrt(rstar) * (overlap_um * 1e-6) ** 1.5
    f = sim.forces_n
    assert f[1, 2] == pytest.approx(expected, rel=1e-2)
    assert f[0, 2] == -f[1, 2]  # Newton's third law, exactly
    assert np.all(f[:, :2] == 0)


def test_a_placed_particle_rests_and_meets_its_new_neighbour(arch):
    """Moved from far away to 0.02 µm overlap, a sphere feels Hertz's force at once (the neighbour list is rebuilt)."""
    r_um, overlap_um = 5.0, 0.02
    sim = Simulation([[10.0, 10.0, 10.0], [10.0, 10.0, 60.0]], [r_um, r_um], NMC,
                     velocities_um_s=[[0.0, 0.0, 0.0], [1e3, -2e3, 3e3]], arch=arch)
    sim.step(1)
    sim.place([1], [[10.0, 10.0, 10.0 + 2 * r_um - overlap_um]])
    assert sim.positions_um[1].tolist() == [10.0, 10.0, 10.0 + 2 * r_um - overlap_um]
    assert np.all(sim.velocities_um_s[1] == 0) and np.all(sim.angular_velocities_rad_s[1] == 0)
    estar = effective_youngs_modulus(NMC, NMC)
    expected = 4.0 / 3.0 * estar * math.sqrt(0.5 * r_um * 1e-6) * (overlap_um * 1e-6) ** 1.5
    assert sim.forces_n[1, 2] == pytest.approx(expected, rel=1e-2)
    with pytest.raises(ValueError, match="positions_um"):
        sim.place([0, 1], [[1.0, 1.0, 1.0]])


def _collide(e, arch, dt_fraction_of_contact=1 / 400):
    r_um, v_um_s = 5.0, 2e5  # 0.2 m/s each, head-on along x
    mat = _elastic(e)
    mstar = 0.5 * mat.density_kg_m3 * 4 / 3 * math.pi * (r_um * 1e-6) ** 3
    estar, rstar, v0 = effective_youngs_modulus(mat, mat), 0.5 * r_um * 1e-6, 2 * v_um_s * 1e-6
    dmax = (15 * mstar * v0 ** 2 / (16 * estar * math.sqrt(rstar))) ** 0.4
    t_hertz = 2.9432 * dmax / v0  # undamped Hertz contact duration
    sim = Simulation([[10.0, 10.0, 10.0], [10.0, 10.0, 10.0 + 2 * r_um + 0.001]], [r_um, r_um], mat,
                     velocities_um_s=[[0, 0, v_um_s], [0, 0, -v_um_s]], dt_s=t_hertz * dt_fraction_of_contact,
                     arch=arch)
    in_contact = 0
    for _ in range(2000):
        sim.step(1)
        x = sim.positions_um
        if np.linalg.norm(x[1] - x[0]) < 2 * r_um:
            in_contact += 1
        elif in_contact:
            break
    v = sim.velocities_um_s
    return (v[1, 2] - v[0, 2]) / (2 * v_um_s), in_contact * sim.dt_s, t_hertz


def test_collision_elastic_duration_and_restitution(arch):
    ratio, duration, t_hertz = _collide(1.0, arch)
    assert ratio == pytest.approx(1.0, abs=0.02)
    assert duration == pytest.approx(t_hertz, rel=0.03)


def test_collision_restitution_half(arch):
    ratio, _, _ = _collide(0.5, arch)
    assert ratio == pytest.approx(0.5, abs=0.02)


def test_energy_conserved_without_damping(arch):
    rng = np.random.default_rng(3)
    grid = np.stack(np.meshgrid(*[np.arange(3) * 6.0 + 5.0] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    radii = rng.uniform(1.5, 2.8, len(grid))
    v = rng.normal(0, 2e6, (len(grid), 3))  # 2 m/s
    sim = Simulation(grid, radii, _elastic(1.0), velocities_um_s=v, dt_s=2e-10, arch=arch)
    e0 = sum(sim.energies())
    sim.run(2e-6)
    kinetic, elastic = sim.energies()
    moved = np.linalg.norm(sim.positions_um - grid, axis=1).max()
    assert moved > 2.0  # particles travelled far enough to collide
    assert kinetic + elastic == pytest.approx(e0, rel=1e-3)


def test_sphere_on_plane_settles_at_hertz_overlap(arch):
    r_um, g, scale = 3.0, 1e4, 100.0  # a large weight gives a measurable overlap
    mat = _elastic(0.5, 0.4)
    sim = Simulation([[r_um + 0.01, 5.0, 5.0]], [r_um], mat, bottom_z_um=0.0, body_acceleration_m_s2=(-g, 0, 0),
                     background_damping_per_s=5e5, mass_scaling=scale, arch=arch)
    sim.run(3e-5)
    m = scale * mat.density_kg_m3 * 4 / 3 * math.pi * (r_um * 1e-6) ** 3
    estar = mat.youngs_modulus_pa / (1 - mat.poisson_ratio ** 2)
    expected = (3 * m * g / (4 * estar * math.sqrt(r_um * 1e-6))) ** (2 / 3)
    overlap = (r_um - sim.positions_um[0, 0]) * 1e-6
    assert overlap == pytest.approx(expected, rel=1e-2)


def test_sliding_sphere_obeys_coulomb_and_ends_rolling():
    r_um, g, mu, v0 = 5.0, 1e6, 0.3, 1e5
    mat = _elastic(0.5, mu)
    m = mat.density_kg_m3 * 4 / 3 * math.pi * (r_um * 1e-6) ** 3
    rest = (3 * m * g / (4 * mat.youngs_modulus_pa / (1 - mat.poisson_ratio ** 2) * math.sqrt(r_um * 1e-6))) ** (2 / 3)
    sim = Simulation([[r_um - rest * 1e6, 0.0, 0.0]], [r_um], mat, velocities_um_s=[[0, 0, v0]],
                     bottom_z_um=0.0, body_acceleration_m_s2=(-g, 0, 0))
    sim.run(3e-8)  # still sliding: friction force = mu * normal force
    f_total = sim.forces_n[0]
    normal = f_total[0] + m * g  # wall normal force (body force removed)
    assert abs(f_total[2]) == pytest.approx(mu * normal, rel=1e-2)
    assert f_total[2] < 0
    sim.run(2e-5)
    assert sim.velocities_um_s[0, 2] == pytest.approx(5 / 7 * v0, rel=1e-2)  # rolling without slip
    assert sim.angular_velocities_rad_s[0, 1] * r_um == pytest.approx(5 / 7 * v0, rel=1e-2)


BOND = BondModel(youngs_modulus_pa=2e9, poisson_ratio=0.3, tensile_strength_pa=5e6, shear_strength_pa=5e6,
                 damping_ratio=0.2)


def _bonded_pair(load_fraction):
    bond = BOND
    r = 0.65
    sim = Simulation([[r, 5.0, 5.0], [3 * r + 0.02, 5.0, 5.0]], [r, r], CBD, bottom_z_um=0.0, bond_model=bond)
    sim.fix_touching_bottom(0.0)
    assert sim.set_bonds([[0, 1]], [0.5 * r]) == 1
    area = math.pi * (0.5 * r * 1e-6) ** 2
    force = load_fraction * bond.tensile_strength_pa * area
    accel = force / sim.masses_kg[1]
    for k in range(20):  # ramp the pull slowly (quasi-static)
        sim.set_body_acceleration(((k + 1) / 20 * accel, 0.0, 0.0))
        sim.run(2e-8)
        if not sim.bonds_intact.all():
            break
    else:
        sim.run(2e-7)
    return sim, force, area, bond


def test_bond_holds_below_strength():
    sim, force, area, bond = _bonded_pair(0.5)
    assert sim.bonds_intact.all()
    d0 = (2 * 0.65 + 0.02) * 1e-6
    kn = bond.youngs_modulus_pa * area / d0
    stretch = (sim.positions_um[1, 0] - sim.positions_um[0, 0]) * 1e-6 - d0
    assert stretch == pytest.approx(force / kn, rel=2e-2)


def test_bond_breaks_above_strength():
    sim, _, _, _ = _bonded_pair(1.5)
    assert not sim.bonds_intact.any()


def test_broken_bond_stays_broken_when_the_pair_comes_back():
    """A bond pulled apart breaks; pushed back past its rest length, the pair
    only touches, and pulled again nothing holds it: broken for good."""
    sim, _, _, _ = _bonded_pair(1.5)
    assert not sim.bonds_intact.any()
    r = 0.65
    sim.set_background_damping(2e7)  # stops the flying sphere within 0.1 µs; then back at 1 m/s
    sim.set_body_acceleration((-2e7, 0.0, 0.0))
    sim.run(8e-6)
    gap = sim.positions_um[1, 0] - sim.positions_um[0, 0] - 2 * r
    assert gap < 0  # pressed onto the fixed sphere (Hertz overlap), past the bond's rest gap of 0.02 µm
    sim.set_body_acceleration((2e7, 0.0, 0.0))
    sim.run(2e-6)
    assert sim.positions_um[1, 0] - sim.positions_um[0, 0] - 2 * r > 0.5
    assert not sim.bonds_intact.any()


def _hanging_pair(bond, r_um=2.0, gap_um=0.5, a_um=1.0, **kw):
    """Two NMC spheres along z with a bond of radius ``a_um``, the lower one glued to the foil."""
    sim = Simulation([[r_um, 5.0, 5.0], [3 * r_um + gap_um, 5.0, 5.0]], [r_um, r_um], NMC, bottom_z_um=0.0,
                     bond_model=bond, **kw)
    sim.fix_touching_bottom(0.0)
    sim.set_bonds([[0, 1]], [a_um])
    length_m = (2 * r_um + gap_um) * 1e-6
    g = bond.youngs_modulus_pa / (2 * (1 + bond.poisson_ratio))
    second = math.pi * (a_um * 1e-6) ** 4 / 4  # I of the bond's cross-section; J = 2 I
    springs = dict(kt=g * math.pi * (a_um * 1e-6) ** 2 / length_m, kb=bond.youngs_modulus_pa * second / length_m,
                   kw=g * 2 * second / length_m)
    return sim, springs


def test_parallel_bond_carries_a_side_load_by_shear_and_bending():
    """A side force F on the free sphere of a bonded pair: the bond's shear
    spring carries F and its bending spring the moment F R about the bond,
    so the sphere turns by F R / k_b and its centre moves F / k_t + F R^2 / k_b
    (rigid-body kinematics about the bond; Potyondy & Cundall 2004 springs)."""
    strong = dataclasses.replace(BOND, tensile_strength_pa=1e12, shear_strength_pa=1e12)
    r_um = 2.0
    sim, k = _hanging_pair(strong, r_um, background_damping_per_s=2e7)
    acc = 2e4  # m/s^2 along x on the free sphere (the glued one does not move)
    sim.set_body_acceleration((0.0, 0.0, acc))
    sim.run(4e-6)
    force = sim.masses_kg[1] * acc
    r = r_um * 1e-6
    moved = (sim.positions_um[1, 2] - 5.0) * 1e-6
    angle = 2 * math.acos(min(1.0, abs(sim.orientations[1, 0])))
    assert angle == pytest.approx(force * r / k["kb"], rel=1e-2)
    assert moved == pytest.approx(force / k["kt"] + force * r ** 2 / k["kb"], rel=1e-2)
    assert sim.bonds_intact.all()


def test_parallel_bond_twists_at_its_torsion_stiffness():
    """The free sphere spun about the bond axis swings to w0 sqrt(I / k_w)
    with k_w = G J / L (no damping): the twisting spring of the bond."""
    free = dataclasses.replace(BOND, tensile_strength_pa=1e12, shear_strength_pa=1e12, damping_ratio=0.0)
    w0 = 1e4  # rad/s about z
    sim, k = _hanging_pair(free, angular_velocities_rad_s=[[0, 0, 0], [w0, 0, 0]])
    inertia = 0.4 * sim.masses_kg[1] * (2.0e-6) ** 2
    period = 2 * math.pi * math.sqrt(inertia / k["kw"])
    angles = []
    for _ in range(int(period / sim.dt_s) + 2):
        sim.step(1)
        angles.append(2 * math.acos(min(1.0, abs(sim.orientations[1, 0]))))
    assert max(angles) == pytest.approx(w0 * math.sqrt(inertia / k["kw"]), rel=1e-2)
    assert np.abs(sim.positions_um[1] - [6.5, 5.0, 5.0]).max() < 1e-9  # a pure twist moves no centre


def test_bending_alone_breaks_a_bond():
    """The tensile stress of a bent bond is M a / I at its edge, even with no
    stretch: a side load whose moment exceeds sigma I / a breaks it."""
    weak = dataclasses.replace(BOND, tensile_strength_pa=5e6, shear_strength_pa=1e12)
    sim, k = _hanging_pair(weak, background_damping_per_s=2e7)
    r, a = 2.0e-6, 1.0e-6
    moment_limit = weak.tensile_strength_pa * math.pi * a ** 4 / 4 / a
    mass = sim.masses_kg[1]
    sim.set_body_acceleration((0.0, 0.0, 0.8 * moment_limit / r / mass))
    sim.run(2e-6)
    assert sim.bonds_intact.all()
    sim.set_body_acceleration((0.0, 0.0, 1.2 * moment_limit / r / mass))
    sim.run(2e-6)
    assert not sim.bonds_intact.any()


def test_per_particle_mass_scaling_sets_masses_and_the_time_step():
    """Densities scaled by (R50 / r)^2 give every smaller particle the Rayleigh time of one of
    radius R50 (T_R ~ r sqrt(rho)): the time step is then a fraction of that, not of the smallest's."""
    r = np.array([1.0, 2.0, 4.0, 5.0])
    scaling = 10.0 * np.maximum(1.0, (4.0 / r) ** 2)
    x = np.stack([np.full(4, 20.0), np.full(4, 20.0), 15.0 * np.arange(4)], axis=1)
    sim = Simulation(x, r, NMC, mass_scaling=scaling, timestep_fraction=0.2)
    rho = NMC.density_kg_m3 * scaling
    assert sim.masses_kg == pytest.approx(rho * 4 / 3 * math.pi * (r * 1e-6) ** 3, rel=1e-12)
    g = NMC.youngs_modulus_pa / (2 * (1 + NMC.poisson_ratio))
    t_r50 = math.pi * 4e-6 * math.sqrt(10.0 * NMC.density_kg_m3 / g) / (0.1631 * NMC.poisson_ratio + 0.8766)
    assert sim.dt_s == pytest.approx(0.2 * t_r50, rel=1e-12)
    uniform = Simulation(x, r, NMC, mass_scaling=10.0, timestep_fraction=0.2)
    assert uniform.dt_s == pytest.approx(0.2 * t_r50 / 4, rel=1e-12)  # set by the radius-1 particle
    with pytest.raises(ValueError, match="mass_scaling"):
        Simulation(x, r, NMC, mass_scaling=[1.0, 1.0, 0.5, 1.0])


def test_head_force_is_the_wall_hertz_force():
    r_um, overlap_um = 4.0, 0.01
    sim = Simulation([[r_um, 5.0, 5.0]], [r_um], NMC, bottom_z_um=0.0)
    sim.fix_touching_bottom(0.0)
    sim.set_head(2 * r_um - overlap_um)
    sim.step(1)
    estar = NMC.youngs_modulus_pa / (1 - NMC.poisson_ratio ** 2)
    expected = 4 / 3 * estar * math.sqrt(r_um * 1e-6) * (overlap_um * 1e-6) ** 1.5
    assert sim.head_force_n == pytest.approx(expected, rel=1e-2)
    sim.set_head(2 * r_um + 0.1, radius_um=1.0, center_yx_um=(20.0, 20.0))  # a small disc beside it
    sim.set_head(2 * r_um - overlap_um, radius_um=1.0, center_yx_um=(20.0, 20.0))
    sim.step(1)
    assert sim.head_force_n == 0.0


def test_free_spin_rotates_the_quaternion():
    w = np.array([0.3, -0.5, 0.8]) * 1e5  # rad/s, z-y-x
    sim = Simulation([[5.0, 5.0, 5.0]], [1.0], NMC, angular_velocities_rad_s=[w], dt_s=1e-9)
    sim.run(1e-5)
    angle = np.linalg.norm(w) * sim.time_s
    axis = w / np.linalg.norm(w)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    # Rodrigues in z-y-x components: the basis is left-handed, so the skew part changes sign
    expected = np.eye(3) - math.sin(angle) * k + (1 - math.cos(angle)) * k @ k
    got = rotation_matrices_zyx(sim.orientations)[0]
    assert np.abs(got - expected).max() < 1e-3


def _sixty_particles():
    rng = np.random.default_rng(0)
    x = rng.uniform(2, 18, (60, 3))
    r = rng.uniform(0.5, 1.2, 60)
    v = rng.normal(0, 3e5, (60, 3))
    sim = Simulation(x, r, (NMC, CBD), kinds=np.arange(60) % 2, velocities_um_s=v, bottom_z_um=0.0,
                     box_yx_um=(0, 20, 0, 20), background_damping_per_s=1e5)
    sim.run(4e-8)
    sim.run(2e-8)  # a second call continues
    return sim.positions_um, sim.orientations, sim.velocities_um_s


def test_runs_are_bit_identical_in_a_fresh_process():
    ours = _sixty_particles()
    assert np.abs(ours[0] - np.random.default_rng(0).uniform(2, 18, (60, 3))).max() > 0.01  # they moved
    assert digest(ours) == digest_in_fresh_process(_sixty_particles)


STRENGTH, RUN = 3e5, 1e-7


def _busy_run(driver, perm=None, arch="cpu"):
    """Contacts, bonds (some breaking), foil, box, a moving disc head, rolling resistance.

    benchmarks/gpu_compare.py runs it on the GPU (``arch="gpu"``, the driver taichi's default there)."""
    rng = np.random.default_rng(3)
    g = 1.3 + 2.6 * np.arange(5)
    x = np.stack(np.meshgrid(g[:4], g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    n = len(x)
    r = rng.uniform(1.0, 1.25, n)
    kinds, v = np.arange(n) % 2, rng.normal(0, 1e5, (n, 3))
    if perm is not None:  # the same particles, listed in another order
        x, r, kinds, v = x[perm], r[perm], kinds[perm], v[perm]
    rolling = [Material(m.youngs_modulus_pa, m.poisson_ratio, m.density_kg_m3, m.restitution, m.friction,
                        rolling_friction=0.1) for m in (NMC, CBD)]
    sim = Simulation(x, r, rolling, kinds=kinds, velocities_um_s=v,
                     bottom_z_um=0.0, box_yx_um=(0, 13, 0, 13), gravity=True, background_damping_per_s=1e5,
                     bond_model=dataclasses.replace(BOND, tensile_strength_pa=STRENGTH, shear_strength_pa=STRENGTH),
                     skin_um=0.02, arch=arch, driver=driver)
    pairs = candidate_pairs(x, r, 0.3)
    pairs = pairs[(kinds[pairs[:, 0]] == 1) | (kinds[pairs[:, 1]] == 1)]
    sim.set_bonds(pairs, 0.5 * np.minimum(r[pairs[:, 0]], r[pairs[:, 1]]))
    sim.set_head(float(np.max(x[:, 0] + r)) - 0.05, -1e6, radius_um=4.0, center_yx_um=(6.5, 6.5))
    sim.run(RUN)
    return sim


def test_thread_count_does_not_change_the_result(monkeypatch):
    """Threads split the work, they do not change the arithmetic: one thread
    and all of taichi's pool give the same bytes."""
    ensure_taichi("cpu")
    pool = ti.lang.impl.current_cfg().cpu_max_num_threads  # more would wait for ever at the barrier
    results = []
    for threads in (1, pool):
        monkeypatch.setattr(K, "_ENGINE", {})  # a fresh engine with this thread count
        monkeypatch.setattr(K, "cpu_threads", lambda: threads)
        sim = _busy_run("cpu")
        assert sim._engine().threads == threads
        results.append((sim.positions_um.tobytes(), sim.velocities_um_s.tobytes(), sim.orientations.tobytes(),
                        sim.bonds_intact.tobytes(), sim.head_force_n, sim.energies(), sim.n_steps))
    assert 0 < int(np.sum(~sim.bonds_intact)) < len(sim.bonds)
    assert sim.n_rebuilds > 1 and sim.head_force_n > 0
    assert results[0] == results[1]


def test_input_order_does_not_matter():
    """Particles are stored in the order of their cells whatever order they
    come in; the public arrays keep the order given, and the same particles
    listed in another order move the same to the bit."""
    a = _busy_run("cpu")
    perm = np.random.default_rng(7).permutation(a.n)
    b = _busy_run("cpu", perm)
    assert np.array_equal(b.positions_um, a.positions_um[perm])
    assert np.array_equal(b.orientations, a.orientations[perm])
    assert np.array_equal(b.kinds, a.kinds[perm]) and np.array_equal(b.radii_um, a.radii_um[perm])
    assert b.head_force_n == a.head_force_n
    rank = np.argsort(perm)  # public index in b of a's particle
    mapped = np.sort(rank[a.bonds], axis=1)
    which = np.lexsort((mapped[:, 1], mapped[:, 0]))
    assert np.array_equal(mapped[which], b.bonds)
    assert np.array_equal(a.bonds_intact[which], b.bonds_intact)
    assert not np.all(b._order == np.arange(b.n))  # stored in another order than given


def test_remapped_pairs_keep_their_history_seen_from_the_first_end():
    i, j = np.array([0, 0, 1, 1]), np.array([1, 3, 3, 2])
    hist = np.arange(12, dtype=float).reshape(4, 3) + 1
    rot = -2.0 * hist
    remap = np.array([3, 0, -1, 1])  # old row -> new row; row 2 is dropped
    ends, kept, (h, w) = _remap_pairs(i, j, remap, hist, rot)
    assert ends.tolist() == [[0, 1], [0, 3], [1, 3]]
    assert kept.tolist() == [2, 0, 1]
    assert np.array_equal(h, [hist[2], -hist[0], -hist[1]])
    assert np.array_equal(w, [rot[2], -rot[0], -rot[1]])


def test_thread_cap_from_the_environment(monkeypatch):
    ensure_taichi("cpu")
    monkeypatch.setenv("SYNTHCAL_DEM_THREADS", "1")
    assert K.cpu_threads() == 1
    monkeypatch.setenv("SYNTHCAL_DEM_THREADS", "0")
    with pytest.raises(ValueError, match="SYNTHCAL_DEM_THREADS"):
        K.cpu_threads()


def test_gpu_driver_matches_the_cpu_driver():
    """The GPU's driver (one parallel loop per phase), run here on the CPU,
    takes the same steps. Its kernels are compiled apart, and taichi's fast
    math may order a product differently there, so positions agree to
    rounding (1e-9 µm and 1e-7 of the largest speed after 600 steps) rather
    than to the bit; a half kick missed or doubled shows in the velocities."""
    a, b = _busy_run("cpu"), _busy_run("loops")
    assert (a.n_steps, a.n_rebuilds, a.bonds_intact.tolist()) == (b.n_steps, b.n_rebuilds, b.bonds_intact.tolist())
    assert np.abs(a.positions_um - b.positions_um).max() < 1e-7
    assert np.abs(a.orientations - b.orientations).max() < 1e-7
    speed = np.abs(a.velocities_um_s).max()
    assert np.abs(a.velocities_um_s - b.velocities_um_s).max() < 1e-5 * speed
    assert b.head_force_n == pytest.approx(a.head_force_n, rel=1e-6)


def test_subset_keeps_bonds_between_kept_particles():
    x = np.array([[0.65, 5, 5], [0.65, 5, 6.3], [0.65, 5, 7.6], [0.65, 5, 8.9]])
    sim = Simulation(x, np.full(4, 0.65), CBD, bottom_z_um=0.0, bond_model=BOND)
    assert sim.set_bonds([[1, 2], [0, 1], [2, 3]], [0.2, 0.1, 0.3]) == 3
    assert sim.bonds.tolist() == [[0, 1], [1, 2], [2, 3]] and sim.bond_radii_um.tolist() == [0.1, 0.2, 0.3]
    sub = sim.subset(np.array([True, True, False, True]))
    assert sub.n == 3
    assert sub.bonds.tolist() == [[0, 1]] and sub.bond_radii_um.tolist() == [0.1]
    assert np.array_equal(sub.positions_um, x[[0, 1, 3]])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2 ** 31), n=st.integers(2, 300), skin=st.floats(0.0, 0.5))
def test_neighbour_search_matches_brute_force(seed, n, skin):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 20, (n, 3))
    r = np.where(rng.random(n) < 0.2, rng.uniform(2.5, 5.0, n), rng.uniform(0.25, 0.5, n))  # 10:1 sizes
    gap = np.linalg.norm(x[:, None] - x[None], axis=-1) - r[:, None] - r[None]
    i, j = np.nonzero(np.triu(gap < skin, 1))
    assert candidate_pairs(x, r, skin).tolist() == np.stack([i, j], axis=1).tolist()


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="positions_um"):
        Simulation(np.zeros((3, 2)), np.ones(3), NMC)
    with pytest.raises(ValueError, match="radii_um"):
        Simulation(np.zeros((3, 3)), -np.ones(3), NMC)
    with pytest.raises(ValueError, match="restitution"):
        Material(youngs_modulus_pa=1e9, poisson_ratio=0.3, density_kg_m3=1000.0, restitution=0.0)
