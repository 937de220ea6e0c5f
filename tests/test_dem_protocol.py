"""Pillar protocol: the uncalendered coating, the cut, the compression through the compliance, records and files."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.spatial import cKDTree

from conftest import digest, digest_in_fresh_process
from synthcal import scenario as sc
from synthcal.dem.io import read_trajectory, write_trajectory
from synthcal.dem.material import ParticleKind
from synthcal.dem.material import Material
from synthcal.dem.protocol import (_Loading, analysed_region, fallen, held_by_binder, mass_scaling, nmc_diameters_um,
                                   simulate_pillar, spilled)
from synthcal.dem.simulation import Simulation

from conftest import TINY as TINY_TOML

TINY = sc.load(TINY_TOML)


@pytest.fixture(scope="module")
def traj():
    return simulate_pillar(TINY)


def _small(seed, *more):
    """A pillar of some eighty particles (5.6 D50 across, 4 high), loaded fast (for repeated runs)."""
    return sc.with_overrides(TINY, [
        f"seed={seed}", "particles.nmc_min_diameter_um=1.2", "particles.nmc_d10_um=1.6", "particles.nmc_d50_um=2.5",
        "particles.nmc_d90_um=3.0", "particles.nmc_max_diameter_um=3.2", "electrode.slab_width_um=18.0",
        "pillar.diameter_um=14.0", "electrode.thickness_um=10.0", "imaging.field_of_view_um=9.0",
        "compression.steps_um=[0.0, 2.0]", "imaging.drift_um=[]", *more])


def _monte_carlo_fraction(positions_um, radii_um, region, n=400_000, seed=0):
    """NMC volume fraction in a region by random points (independent of the lattice count under test)."""
    rng = np.random.default_rng(seed)
    rho = region.radius_um * np.sqrt(rng.random(n))
    phi = 2 * np.pi * rng.random(n)
    pts = np.stack([rng.uniform(region.z_lo_um, region.z_hi_um, n), region.centre_yx_um[0] + rho * np.sin(phi),
                    region.centre_yx_um[1] + rho * np.cos(phi)], axis=1)
    d, i = cKDTree(positions_um).query(pts, k=8)
    return float(np.mean(np.any(d < np.asarray(radii_um)[i], axis=1)))


def test_pillar_stands_after_the_cut(traj):
    assert abs(traj.info["cut_height_change_rel"]) < 0.01
    assert traj.info["cut_max_displacement_um"] < 0.1
    assert traj.info["n_bonds"] > traj.info["n_particles"] // 2


def test_every_particle_is_nmc_and_bonds_are_binder_bridges(traj):
    first = traj.steps[0]
    assert np.all(first.kinds == ParticleKind.NMC)
    assert first.bond_radius_um.shape == (len(first.bonds),) and np.all(first.bond_radius_um > 0)
    assert np.all(first.bond_radius_um <= np.minimum(*first.radii_um[first.bonds.T]))
    assert first.fixed.any()  # glued to the foil


def test_the_build_reaches_the_nmc_volume_fraction(traj):
    """The analysed region of the built pillar holds the target NMC fraction within 0.02, as counted
    here with random points, and info.json says so."""
    first = traj.steps[0]
    region = analysed_region(TINY, first.head_z_um)
    counted = _monte_carlo_fraction(first.positions_um, first.radii_um, region)
    assert counted == pytest.approx(TINY.electrode.nmc_volume_fraction, abs=0.02)
    assert traj.info["nmc_volume_fraction"][0] == pytest.approx(counted, abs=0.005)
    assert traj.info["inactive_fraction"][0] == pytest.approx(1 - traj.info["nmc_volume_fraction"][0])


def test_head_force_rises_with_compression(traj):
    f = traj.info["head_force_n"]
    assert 0 < f[1] < f[2]
    travel = traj.force_displacement[:, 1]
    assert np.all(np.diff(traj.force_displacement[:, 3][travel >= 0]) >= -1e-12)  # the stage only advances
    assert [r.stage_um for r in traj.steps] == pytest.approx(TINY.compression.steps_um)


def test_head_travel_is_stage_displacement_less_compliance_times_force(traj):
    """The series spring: at each scan the head has travelled the stage displacement less
    compliance x force (to the controller's tolerance, 1e-3 of the displacement), in the table
    as in the records."""
    c_um_per_n = TINY.compression.stage_compliance_um_per_mn * 1e3
    time_s, travel, force, stage = traj.force_displacement.T
    for rec in traj.steps[1:]:
        row = np.flatnonzero(time_s == rec.time_s)[0]
        assert travel[row] == pytest.approx(rec.travel_um) and stage[row] == pytest.approx(rec.stage_um)
        assert travel[row] == pytest.approx(stage[row] - c_um_per_n * force[row], abs=1e-3 * stage[row])
        assert travel[row] < 0.9 * stage[row]  # the compliance took its share
    before = travel < 0
    assert np.array_equal(stage[before], travel[before])  # no force, no share before contact


def test_broken_bonds_stay_broken_from_step_to_step(traj):
    intact = np.array([rec.bonds_intact for rec in traj.steps])
    assert np.all(intact[1:] <= intact[:-1])
    assert all(np.array_equal(rec.bonds, traj.steps[0].bonds) for rec in traj.steps)


def test_records_are_complete_and_nothing_escaped(traj):
    assert len(traj.steps) == TINY.n_steps
    n = traj.steps[0].positions_um.shape[0]
    assert 10 < n < 200
    for rec in traj.steps:
        assert rec.positions_um.shape == (n, 3) and rec.quaternions.shape == (n, 4)
        assert np.allclose(np.linalg.norm(rec.quaternions, axis=1), 1.0)
        assert rec.bonds.shape[1] == 2 and rec.bonds_intact.shape == (len(rec.bonds),)
        x = rec.positions_um
        assert np.all(np.isfinite(x))
        centre = 0.5 * TINY.electrode.slab_width_um
        lateral = np.hypot(x[:, 1] - centre, x[:, 2] - centre)
        assert lateral.max() < 0.5 * TINY.pillar.diameter_um + 2 * TINY.particles.nmc_max_diameter_um
        assert x[:, 0].min() > 0 and np.all(x[:, 0] + rec.radii_um <= rec.head_z_um + 0.05 * rec.radii_um)
    assert traj.steps[2].head_z_um == pytest.approx(traj.contact_z_um - traj.steps[2].travel_um)


def test_kinetic_energy_has_died_down_at_each_scan(traj):
    ratios = traj.info["kinetic_to_elastic_at_scans"][1:]
    assert all(r < TINY.compression.kinetic_to_elastic_max for r in ratios)
    for rec in traj.steps[1:]:
        row = np.flatnonzero(traj.energies[:, 0] == rec.time_s)[0]
        kinetic, elastic = traj.energies[row, 1:]
        assert kinetic < TINY.compression.kinetic_to_elastic_max * elastic


def test_inertial_number_stays_below_1e_3_while_loading():
    """Quasi-static loading (the default bound): from the force-displacement table, the head speed
    over each control interval, the pillar height and the head pressure give
    I = (v / H) d50 sqrt(rho / p) < 1e-3 on every row with a force on the head."""
    s = _small(3, "compression.steps_um=[0.0, 0.3]", "compression.inertial_number_max=5e-4",
               "compression.stage_compliance_um_per_mn=0.0")
    tr = simulate_pillar(s)
    time_s, travel, force, _ = tr.force_displacement.T
    loading = np.flatnonzero(travel >= 0)[1:]
    speed = np.diff(travel)[loading - 1] * 1e-6 / np.diff(time_s)[loading - 1]
    height = (tr.contact_z_um - travel[loading]) * 1e-6
    area = math.pi * (0.5e-6 * s.pillar.diameter_um) ** 2
    rho = s.particles.nmc_density_kg_m3 * s.dem.mass_scaling
    pressed = force[loading] > 0
    inertial = np.abs(speed[pressed]) / height[pressed] * s.particles.nmc_d50_um * 1e-6 * np.sqrt(
        rho * area / force[loading][pressed])
    assert pressed.sum() > 100 and travel[-1] == pytest.approx(0.3)
    assert inertial.max() < 1e-3
    assert tr.info["inertial_number_max_loading"] == pytest.approx(inertial.max(), rel=1e-6)


def _small_pillar_bytes():
    run = simulate_pillar(_small(7))
    return [a for s in run.steps for a in (s.positions_um, s.quaternions, s.bonds_intact)] + [run.force_displacement]


def test_same_protocol_gives_identical_bytes_in_a_fresh_process():
    assert digest(_small_pillar_bytes()) == digest_in_fresh_process(_small_pillar_bytes)


def test_write_and_read_back(traj, tmp_path):
    folder = tmp_path / "dem"
    write_trajectory(traj, folder)
    for name in ("force_displacement.csv", "energies.csv", "particles_000.ply", "particles_002.glb", "step_001.npz"):
        assert (folder / name).is_file()
    assert (folder / "force_displacement.csv").read_text().splitlines()[0] == \
        "time_s,head_travel_um,force_n,stage_displacement_um"
    back = read_trajectory(folder)
    assert back.contact_z_um == traj.contact_z_um
    for a, b in zip(traj.steps, back.steps):
        assert np.array_equal(a.positions_um, b.positions_um) and np.array_equal(a.bonds, b.bonds)
        assert np.array_equal(a.bond_radius_um, b.bond_radius_um) and a.stage_um == b.stage_um
    assert np.allclose(back.force_displacement, traj.force_displacement, rtol=1e-9, atol=0)
    assert back.info["nmc_volume_fraction"] == traj.info["nmc_volume_fraction"]


def test_small_particles_are_scaled_to_the_rayleigh_time_of_d50():
    # radii of a quarter, half, one and one and a quarter D50: (D50 / d)^2 = 4 below D50, nothing above
    r = np.array([0.25, 0.5, 1.0, 1.25]) * TINY.particles.nmc_d50_um
    assert mass_scaling(TINY, r) == pytest.approx(TINY.dem.mass_scaling * np.array([4.0, 1.0, 1.0, 1.0]))
    off = sc.with_overrides(TINY, ["dem.scale_small_particles=false"])
    assert mass_scaling(off, r) == pytest.approx(np.full(4, TINY.dem.mass_scaling))


def test_nmc_sizes_follow_the_volume_distribution():
    p = sc.Particles()
    d = nmc_diameters_um(p, 2e6, np.random.default_rng(1))
    assert d.min() >= p.nmc_min_diameter_um and d.max() <= p.nmc_max_diameter_um
    order = np.argsort(d)
    cum = np.cumsum(d[order] ** 3) / np.sum(d ** 3)
    d10, d50, d90 = np.interp([0.1, 0.5, 0.9], cum, d[order])
    assert d10 == pytest.approx(p.nmc_d10_um, rel=0.03)
    assert d50 == pytest.approx(p.nmc_d50_um, rel=0.03)
    assert d90 == pytest.approx(p.nmc_d90_um, rel=0.03)


def test_only_particles_bonded_to_the_foil_are_kept():
    bonds = np.array([[0, 1], [1, 2], [3, 4]])
    fixed = np.array([True, False, False, False, False, False])
    assert held_by_binder(6, bonds, fixed).tolist() == [True, True, True, False, False, False]


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1))
def test_any_seed_gives_a_standing_pillar(seed):
    """Whatever the seed, the cut pillar stands on its binder: it keeps its height and shape after the
    cut (no particle moves more than 0.1 µm), nothing explodes under the head, and the build holds
    the target NMC fraction."""
    s = _small(seed)
    tr = simulate_pillar(s)
    assert abs(tr.info["cut_height_change_rel"]) < 0.01 and tr.info["cut_max_displacement_um"] < 0.1
    assert tr.info["n_particles"] > 10 and tr.info["n_bonds"] >= tr.info["n_particles"] - 1
    last = tr.steps[-1]
    assert np.all(np.isfinite(last.positions_um))
    lateral = np.hypot(last.positions_um[:, 1] - 9.0, last.positions_um[:, 2] - 9.0)
    assert lateral.max() < 0.5 * s.pillar.diameter_um + 2 * s.particles.nmc_max_diameter_um
    assert np.all(np.isfinite(tr.force_displacement)) and tr.force_displacement[:, 2].max() > 0
    assert tr.info["nmc_volume_fraction"][0] == pytest.approx(s.electrode.nmc_volume_fraction, abs=0.02)


def test_bad_protocol_is_rejected_by_the_scenario():
    # the scenario is the one place these rules live; the DEM has no second copy
    with pytest.raises(sc.ScenarioError, match="steps_um"):
        sc.with_overrides(TINY, ["compression.steps_um=[0.5, 1.0]"])
    with pytest.raises(sc.ScenarioError, match="diameter_um"):
        sc.with_overrides(TINY, ["pillar.diameter_um=30.0"])
    with pytest.raises(sc.ScenarioError, match="nmc_volume_fraction"):
        sc.with_overrides(TINY, ["electrode.nmc_volume_fraction=0.6"])
    with pytest.raises(sc.ScenarioError, match="stage_compliance_um_per_mn"):  # the head would reach the foil
        sc.with_overrides(TINY, ["compression.stage_compliance_um_per_mn=0.0", "compression.steps_um=[0.0, 20.0]",
                                 "imaging.drift_um=[]"])
    with pytest.raises(sc.ScenarioError, match="mass_ratio"):  # no binder: nothing holds the pillar
        sc.with_overrides(TINY, ["particles.mass_ratio_nmc_carbon_pvdf=[90.0, 0.0, 0.0]"])


def test_loose_particles_and_loose_bonded_clusters_spill_but_hanging_ones_do_not():
    """Footprint of radius 10 um about (50, 50): which particles outside it are glued, worked out by hand."""
    x = np.array([[5.0, 50.0, 50.0],     # 0 inside
                  [5.0, 50.0, 62.0],     # 1 outside, bonded to 0: hangs on the pillar
                  [5.0, 50.0, 65.0],     # 2 outside, bonded to 1: hangs through 1
                  [5.0, 30.0, 50.0],     # 3 outside, bonded to 4 only: a loose pair
                  [5.0, 28.0, 50.0],     # 4 outside, bonded to 3
                  [5.0, 70.0, 70.0],     # 5 outside, alone
                  [5.0, 20.0, 20.0]])    # 6 outside, alone, already glued
    bonds = np.array([[0, 1], [1, 2], [3, 4]])
    fixed = np.array([False] * 6 + [True])
    out = spilled(x, bonds, fixed, (50.0, 50.0), 10.0)
    assert out.tolist() == [False, False, False, True, True, True, False]
    # with the bond 1-2 broken, 2 is loose
    assert spilled(x, bonds[[0, 2]], fixed, (50.0, 50.0), 10.0).tolist() == [False, False, True, True, True, True, False]
    assert not spilled(x[:1], np.zeros((0, 2), int), fixed[:1], (50.0, 50.0), 10.0).any()


def test_spilled_particles_fall_straight_down_onto_the_foil_or_onto_glued_particles():
    """Landing heights worked out by hand: on the foil z = r; on a sphere j at lateral distance d,
    z = z_j + sqrt((r + r_j)^2 - d^2); a bonded pair drops as one until its first member lands."""
    x = np.array([[1.0, 0.0, 0.0],      # 0 glued on the foil
                  [10.0, 0.0, 1.2],     # 1 falls onto 0: 1 + sqrt(2^2 - 1.2^2) = 2.6
                  [20.0, 5.0, 5.0],     # 2 bonded to 3: the pair drops until 2 reaches the foil (19)
                  [22.0, 5.0, 6.5],     # 3
                  [30.0, 9.0, 9.0],     # 4 above 5, both falling: 5 lands first (z 1), then 4 on it (z 3)
                  [8.0, 9.0, 9.0],      # 5
                  [4.0, 20.0, 20.0],    # 6 already overlapping 7, glued below it: does not drop
                  [2.5, 20.0, 20.5]])   # 7 glued
    r = np.ones(len(x))
    falling = np.array([False, True, True, True, True, True, True, False])
    fixed = np.array([True] + [False] * 6 + [True])
    out = fallen(x, r, falling, np.array([[2, 3]]), fixed, (0.0, 0.0))
    expected = x.copy()
    expected[[1, 2, 3, 4, 5], 0] = [1 + math.sqrt(4 - 1.2 ** 2), 1.0, 3.0, 3.0, 1.0]
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_a_fall_that_a_free_pillar_particle_would_stop_slides_away_from_the_axis_first():
    """Slides worked out by hand (radii 1, reach 2, axis at the origin). Blocker straight inward at
    lateral 1: slide 1. A second free particle uncovered 1.5 beyond: slide 1.5 + 2 = 3.5 more, then
    land on a glued particle 1.5 further out (z = 1 + sqrt(4 - 1.5^2)). Blocker at 1.2 across the
    outward direction: slide sqrt(4 - 1.2^2) = 1.6, then land on the foil."""
    x = np.array([[12.0, 0.0, 40.0],    # 0 falls; outward is +x
                  [5.0, 0.0, 39.0],     # 1 free, below 0, 1 inward
                  [3.0, 0.0, 42.5],     # 2 free, clear of 0 until the first slide (lateral 2.5)
                  [1.0, 0.0, 46.0],     # 3 glued: 0 lands on it
                  [12.0, -40.0, 0.0],   # 4 falls; outward is -y
                  [5.0, -40.0, 1.2]])   # 5 free, below 4, 1.2 across
    r = np.ones(len(x))
    falling = np.array([True, False, False, False, True, False])
    fixed = np.array([False, False, False, True, False, False])
    out = fallen(x, r, falling, np.zeros((0, 2), int), fixed, (0.0, 0.0))
    expected = x.copy()
    expected[0] = [1 + math.sqrt(4 - 1.5 ** 2), 0.0, 44.5]
    expected[4] = [1.0, -41.6, 0.0]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def _spill_setup(centres_um, fixed):
    """A simulation of unit NMC spheres at ``centres_um(centre, out_um)`` with ``fixed`` set, its ``_Loading`` on
    TINY, the pillar axis ``centre`` and ``out_um``, a distance from it beyond TINY's footprint."""
    centre = 0.5 * TINY.electrode.slab_width_um
    out_um = 0.5 * TINY.pillar.diameter_um + TINY.particles.nmc_max_diameter_um + 1.0
    nmc = Material(youngs_modulus_pa=200e9, poisson_ratio=0.3, density_kg_m3=4650.0, restitution=0.5, friction=0.4)
    x = centres_um(centre, out_um)
    sim = Simulation(x, [1.0] * len(x), nmc, bottom_z_um=0.0)
    sim.set_fixed(fixed)
    return sim, _Loading(sim, TINY, 20.0), centre, out_um


def test_a_particle_that_spills_in_mid_air_is_glued_on_the_base_not_where_it_broke_loose():
    """Glued where it was, a particle beside the pillar's top is a rigid post under the (infinite) head."""
    sim, load, centre, out_um = _spill_setup(lambda c, o: [[1.0, c, c], [12.0, c, c + o]], [True, False])
    load._spill()
    assert sim.fixed.tolist() == [True, True] and load.n_spilled == 1
    np.testing.assert_allclose(sim.positions_um[1], [1.0, centre, centre + out_um], atol=1e-9)


def test_a_spilled_particle_whose_fall_a_pillar_particle_stops_is_glued_on_the_base_beyond_it():
    """Glued on a free pillar particle, it would be a post under the head; it lands beyond, on the foil."""
    # the pillar particle 1.5 inward of the spilled one: a slide of sqrt(2^2 - 0) - 1.5 = 0.5 clears it
    sim, load, centre, out_um = _spill_setup(
        lambda c, o: [[1.0, c, c], [12.0, c, c + o], [3.0, c, c + o - 1.5]], [True, False, False])
    load._spill()
    assert sim.fixed.tolist() == [True, True, False] and load.n_spilled == 1
    np.testing.assert_allclose(sim.positions_um[1], [1.0, centre, centre + out_um + 0.5], atol=1e-6)


def test_an_interval_with_no_free_particle_outside_the_footprint_reads_no_bonds(monkeypatch):
    """The bonds are sorted anew at each read: the paper scenario's loading would read them 9315 times."""
    # one particle inside, one outside but already glued
    sim, load, _, _ = _spill_setup(lambda c, o: [[1.0, c, c], [1.0, c, c + o]], [False, True])
    monkeypatch.setattr(Simulation, "bonds", property(lambda self: pytest.fail("bonds read")))
    load._spill()
    assert sim.fixed.tolist() == [False, True] and load.n_spilled == 0
