"""Build a free-standing electrode pillar and compress it (the sample's history).

:func:`simulate_pillar` follows how the real sample is made and loaded:

1. deposition: NMC and carbon-binder (CBD) spheres start at half size at
   random, non-overlapping places in a box over the foil (the slab, wider
   than the pillar); they grow to full size while an artificial body force
   (``packing_acceleration_m_s2``, deposition only) and a background drag
   pack them onto the foil without friction (a dense, calendered-like
   packing); the body force is ramped down to gravity, friction switched
   on, and the slab settles. Particles touching the foil are glued to it
   and binder bonds form at every contact (gap below ``bond_gap_um``) of a
   CBD particle.
2. the cut (laser milling): only particles whose centres lie inside the
   pillar cylinder are kept, and of those only the ones the binder links to
   the foil (loose particles would fall off); the side walls are removed and
   the pillar relaxes under a drag (dynamic relaxation), standing on its
   bonds. The drag is then switched off.
3. compression: the flat head comes down at ``head_speed_m_s``; its first
   contact is the zero of the head travel (as on the real force stage). It
   stops at each cumulative travel of ``steps_um`` in turn, holds for
   ``hold_time_s`` and the state is recorded (step 0: before contact).

The head force and the energies are recorded all along. Every parameter
comes from the scenario (:mod:`synthcal.scenario`, sections ``[particles]``,
``[electrode]``, ``[pillar]``, ``[dem]``, ``[compression]``), whose defaults
are those of Ngandjong et al. 2021 (NMC calendering in LIGGGHTS) unless noted.

Numerics that change the physics, all explicit options: mass scaling
(default 100, time step x10), the deposition body force, drag and
frictionless packing, and the dynamic relaxation after the cut. Whether the
compression stays quasi-static is reported in ``Trajectory.info``
(``inertial_number``, kinetic/elastic energy ratios): with the defaults the
small pillars are compressed in the dense-flow regime (inertial number
~0.02–0.08), not quasi-statically; lower ``head_speed_m_s`` for that.
"""

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from synthcal.dem.material import Material, ParticleKind
from synthcal.dem.neighbours import candidate_pairs
from synthcal.dem.simulation import BondModel, Simulation

_Z90 = 1.2815515655446004  # standard normal quantile of 0.9
NMC, CBD = ParticleKind.NMC, ParticleKind.CBD


def materials(particles):
    """(NMC, CBD) contact materials of a scenario's ``[particles]`` section."""
    p = particles
    common = dict(restitution=p.restitution, friction=p.friction, rolling_friction=p.rolling_friction)
    return (Material(p.nmc_youngs_modulus_pa, p.nmc_poisson_ratio, p.nmc_density_kg_m3, **common),
            Material(p.cbd_youngs_modulus_pa, p.cbd_poisson_ratio, p.cbd_density_kg_m3, **common))


def bond_model(dem):
    """Binder bridges of a scenario's ``[dem]`` section (tension and shear share one strength).

    A bridge is a porous neck, softer than a CBD particle: 0.2 GPa (a tenth
    of the CBD modulus) by default, as wide as the smaller particle.
    Strength 40 MPa, the tensile strength of PVDF: with 5 MPa (and half the
    radius) the 25 µm ``quick`` pillar failed at about 8 MPa head pressure
    and the head force fell to ~1 % of its peak; with 40 MPa it carries
    27 MPa at 1.5 µm travel with 16 of 4682 bonds broken (measured).
    """
    return BondModel(youngs_modulus_pa=dem.bond_youngs_modulus_pa, poisson_ratio=dem.bond_poisson_ratio,
                     radius_fraction=dem.bond_radius_fraction, tensile_strength_pa=dem.bond_strength_pa,
                     shear_strength_pa=dem.bond_strength_pa, damping_ratio=dem.bond_damping_ratio)


@dataclass(frozen=True)
class Record:
    """The state at one load step (arrays z-y-x, µm)."""

    travel_um: float
    head_z_um: float
    time_s: float
    positions_um: np.ndarray
    quaternions: np.ndarray
    radii_um: np.ndarray
    kinds: np.ndarray
    velocities_um_s: np.ndarray
    angular_velocities_rad_s: np.ndarray
    fixed: np.ndarray
    bonds: np.ndarray
    bonds_intact: np.ndarray


@dataclass(frozen=True)
class Trajectory:
    """Result of :func:`simulate_pillar`.

    Attributes
    ----------
    steps : tuple of Record
        One per entry of ``[compression] steps_um``.
    force_displacement : (K, 3) float array
        Columns time (s), head travel after first contact (µm, negative
        before it), force on the head (N).
    energies : (K, 3) float array
        Columns time (s), kinetic energy (J), elastic energy (J), same rows.
    contact_z_um : float
        Head height at first contact (the zero of the travel).
    info : dict
        Diagnostics: time step, particle and bond counts, relaxation after
        the cut (``cut_height_change_rel``, ``cut_max_displacement_um``),
        quasi-static measures (``inertial_number`` at the end: below 1e-3
        is quasi-static; kinetic/elastic energy ratios), wall-clock time per
        phase.
    """

    steps: tuple
    force_displacement: np.ndarray
    energies: np.ndarray
    contact_z_um: float
    info: dict = field(default_factory=dict)


def nmc_diameters_um(particles, volume_um3, rng):
    """NMC diameters (number-weighted sample) whose total volume first reaches ``volume_um3``.

    The volume-weighted distribution is a split lognormal with median D50,
    log-width ``ln(D50/D10)/z90`` below the median and ``ln(D90/D50)/z90``
    above it (z90 the 90 % normal quantile), so D10, D50 and D90 by volume
    are met exactly, clipped to [min, max] diameter. Volume-weighted draws
    are turned into a number-weighted sample by keeping each with
    probability ``(d_min/d)^3``.

    Parameters
    ----------
    particles : synthcal.scenario.Particles
        Diameters D10, D50, D90 and the clipping range, µm.
    volume_um3 : float
    rng : numpy.random.Generator
    """
    p = particles
    s_lo, s_hi = math.log(p.nmc_d50_um / p.nmc_d10_um) / _Z90, math.log(p.nmc_d90_um / p.nmc_d50_um) / _Z90
    d = np.zeros(0)
    while np.sum(d ** 3) * math.pi / 6 < volume_um3:
        z = rng.standard_normal(8192)
        draw = np.clip(p.nmc_d50_um * np.exp(z * np.where(z < 0, s_lo, s_hi)),
                       p.nmc_min_diameter_um, p.nmc_max_diameter_um)
        keep = rng.random(8192) < (p.nmc_min_diameter_um / draw) ** 3
        d = np.concatenate([d, draw[keep]])
    n = int(np.searchsorted(np.cumsum(d ** 3) * math.pi / 6, volume_um3)) + 1
    return d[:n]


def _place(radii, box_um, height_um, rng):
    """Random centres in the box with no overlaps (random start, then push apart)."""
    n = len(radii)
    lo = np.stack([radii, radii, radii], axis=1)
    hi = np.stack([height_um - radii, box_um - radii, box_um - radii], axis=1)
    x = lo + rng.random((n, 3)) * (hi - lo)
    for _ in range(200):
        pairs = candidate_pairs(x, radii, 0.0)
        if len(pairs) == 0:
            return x
        d = x[pairs[:, 1]] - x[pairs[:, 0]]
        dist = np.linalg.norm(d, axis=1)
        push = (0.5 * (radii[pairs[:, 0]] + radii[pairs[:, 1]] - dist) + 1e-3)[:, None] * d / dist[:, None]
        move = np.zeros_like(x)
        np.add.at(move, pairs[:, 0], -push)
        np.add.at(move, pairs[:, 1], push)
        x = np.clip(x + move, lo, hi)
    raise RuntimeError("could not place the particles without overlap; lower packing_fraction_guess")


def held_by_binder(n, bonds, fixed):
    """Particles linked to the foil through bonds (the rest falls off the cut pillar).

    Parameters
    ----------
    n : int
        Number of particles.
    bonds : (M, 2) int array
        Intact bonds.
    fixed : (n,) bool array
        Particles glued to the foil.

    Returns
    -------
    (n,) bool array
    """
    foil = np.full(int(np.sum(fixed)), n)
    edges = np.concatenate([np.asarray(bonds, np.int64).reshape(-1, 2),
                            np.stack([np.flatnonzero(fixed), foil], axis=1)])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n + 1, n + 1))
    _, label = connected_components(graph, directed=False)
    return label[:n] == label[n]


def _check(sim, where, box_um, height_um):
    x = sim.positions_um
    if not np.all(np.isfinite(x)):
        raise RuntimeError(f"DEM blew up during {where}: non-finite positions")
    if x[:, 0].min() < -1.0 or x[:, 0].max() > height_um or x[:, 1:].min() < -box_um or x[:, 1:].max() > 2 * box_um:
        raise RuntimeError(f"DEM blew up during {where}: particles left the domain")


def _snapshot(sim, travel_um):
    return Record(travel_um=float(travel_um), head_z_um=float(sim.head_z_um), time_s=float(sim.time_s),
                  positions_um=sim.positions_um, quaternions=sim.orientations, radii_um=sim.radii_um,
                  kinds=sim.kinds, velocities_um_s=sim.velocities_um_s,
                  angular_velocities_rad_s=sim.angular_velocities_rad_s, fixed=sim.fixed,
                  bonds=sim.bonds, bonds_intact=sim.bonds_intact)


def simulate_pillar(scenario, *, arch="cpu", progress=None):
    """Deposit, bond, cut and compress a pillar.

    Parameters
    ----------
    scenario : synthcal.scenario.Scenario
        Reads ``[particles]``, ``[electrode]``, ``[pillar]``, ``[dem]``,
        ``[compression]`` and the seed: the only source of the parameters.
    arch : {"cpu", "gpu"}
        Taichi backend.
    progress : callable, optional
        Called as ``progress(fraction)``.

    Returns
    -------
    Trajectory
    """
    pa, el, dm, co = scenario.particles, scenario.electrode, scenario.dem, scenario.compression
    report = progress or (lambda fraction: None)
    clock = time.perf_counter()
    timing = {}
    rng = np.random.default_rng(scenario.seed)

    # 1. particles and deposition
    m_nmc, m_carbon, m_pvdf = pa.mass_ratio_nmc_carbon_pvdf
    v_nmc, v_cbd = m_nmc / pa.nmc_density_kg_m3, (m_carbon + m_pvdf) / pa.cbd_density_kg_m3
    solid_um3 = dm.packing_fraction_guess * el.slab_width_um ** 2 * el.thickness_um
    d_nmc = nmc_diameters_um(pa, solid_um3 * v_nmc / (v_nmc + v_cbd), rng)
    n_cbd = int(round(solid_um3 * v_cbd / (v_nmc + v_cbd) / (math.pi / 6 * pa.cbd_diameter_um ** 3)))
    radii = np.concatenate([d_nmc, np.full(n_cbd, pa.cbd_diameter_um)]) * 0.5
    kinds = np.concatenate([np.full(len(d_nmc), NMC), np.full(n_cbd, CBD)]).astype(np.int32)
    box = el.slab_width_um
    height = dm.deposit_height_factor * el.thickness_um
    start_radii = 0.5 * radii
    x0 = _place(start_radii, box, height, rng)
    sim = Simulation(x0, radii, materials(pa), gravity=True, kinds=kinds,
                     timestep_fraction=dm.timestep_fraction, mass_scaling=dm.mass_scaling,
                     body_acceleration_m_s2=(-dm.packing_acceleration_m_s2, 0.0, 0.0),
                     background_damping_per_s=dm.packing_damping_per_s, bottom_z_um=0.0,
                     box_yx_um=(0.0, box, 0.0, box),
                     bond_model=bond_model(dm),
                     skin_um=0.3 * radii.min(), arch=arch)
    # frictionless packing gives the dense structure of a calendered coating
    sim.set_materials(tuple(replace(m, friction=0.0, rolling_friction=0.0) for m in materials(pa)))
    g = np.array([-9.81, 0.0, 0.0])
    n_growth = 50
    for k in range(n_growth):
        sim.set_radii(radii * (0.5 + 0.5 * (k + 1) / n_growth))
        sim.run(dm.growth_time_s / n_growth)
        if k % 10 == 9:
            report(0.2 * (k + 1) / n_growth)
    _check(sim, "growth", box, 2 * height)
    sim.run(dm.deposit_time_s)
    # ramp the body force down: switching it off would release its elastic
    # energy at once and throw the top particles off
    n_ramp = 20
    for k in range(n_ramp):
        sim.set_body_acceleration(g + (1 - (k + 1) / n_ramp) * np.array([-dm.packing_acceleration_m_s2, 0, 0]))
        sim.run(dm.settle_time_s / n_ramp)
    sim.set_materials(materials(pa))
    sim.run(dm.settle_time_s)
    _check(sim, "deposition", box, 2 * height)
    n_fixed = sim.fix_touching_bottom(tolerance_um=dm.bond_gap_um)
    sim.form_bonds(bonding_kinds=(CBD,), tolerance_um=dm.bond_gap_um)
    report(0.4)
    timing["deposition_s"] = time.perf_counter() - clock

    # 2. the cut
    x = sim.positions_um
    r_cut = 0.5 * scenario.pillar.diameter_um
    inside = (x[:, 1] - 0.5 * box) ** 2 + (x[:, 2] - 0.5 * box) ** 2 <= r_cut ** 2
    sim = sim.subset(inside)
    held = held_by_binder(sim.n, sim.bonds[sim.bonds_intact], sim.fixed)
    n_loose = int(np.sum(~held))
    sim = sim.subset(held)
    sim.set_box(None)
    before = sim.positions_um
    top_before = float(np.max(before[:, 0] + sim.radii_um))
    max_move = np.zeros(1)

    def track(s):
        max_move[0] = max(max_move[0], float(np.max(np.linalg.norm(s.positions_um - before, axis=1))))
    # dynamic relaxation: the drag brings the cut pillar to rest (rattlers
    # in the packing would otherwise keep their speed); it is off afterwards
    sim.run(dm.cut_relax_time_s, callback=track, every_steps=max(1, dm.record_every_steps * 10))
    sim.set_background_damping(dm.compression_damping_per_s)
    _check(sim, "relaxation after the cut", box, 2 * height)
    top_after = float(np.max(sim.positions_um[:, 0] + sim.radii_um))
    report(0.5)
    timing["cut_s"] = time.perf_counter() - clock - timing["deposition_s"]

    # 3. compression
    rows = []

    def record(s):
        kinetic, elastic = s.energies()
        rows.append((s.time_s, s.head_z_um, s.head_force_n, kinetic, elastic))

    speed_um_s = co.head_speed_m_s * 1e6
    head_radius = co.head_radius_um if co.head_radius_um > 0 else None
    sim.set_head(top_after + dm.approach_gap_um, -speed_um_s, radius_um=head_radius,
                 center_yx_um=(0.5 * box, 0.5 * box))
    records = [_snapshot(sim, 0.0)]
    record(sim)
    while sim.head_force_n <= 0.0:
        sim.run(dm.record_every_steps * sim.dt_s, callback=record, every_steps=dm.record_every_steps)
        if sim.head_z_um < 0:
            raise RuntimeError("the head never touched the pillar")
    contact_z = next(z for (_, z, f, _, _) in rows if f > 0)
    n_move = len(co.steps_um) - 1
    for k, travel in enumerate(co.steps_um[1:]):
        target = contact_z - travel
        sim.set_head(sim.head_z_um, -speed_um_s, target_z_um=target, radius_um=head_radius,
                     center_yx_um=(0.5 * box, 0.5 * box))
        while sim.head_velocity_um_s != 0.0:
            sim.run(dm.record_every_steps * sim.dt_s, callback=record, every_steps=dm.record_every_steps)
        sim.run(co.hold_time_s, callback=record, every_steps=dm.record_every_steps)
        _check(sim, f"compression step {k + 1}", box, 2 * height)
        records.append(_snapshot(sim, travel))
        report(0.5 + 0.5 * (k + 1) / n_move)
    timing["compression_s"] = time.perf_counter() - clock - timing["deposition_s"] - timing["cut_s"]

    table = np.array(rows, dtype=np.float64)
    loaded = table[:, 4] > 0
    ratio = table[loaded, 3] / table[loaded, 4]
    # inertial number of the last hold: strain rate x d50 x sqrt(rho / p)
    height_um = top_after
    pressure_pa = max(table[-1, 2], 0.0) / (math.pi * (0.5e-6 * scenario.pillar.diameter_um) ** 2)
    inertial = (co.head_speed_m_s / (height_um * 1e-6) * pa.nmc_d50_um * 1e-6
                * math.sqrt(pa.nmc_density_kg_m3 * dm.mass_scaling / pressure_pa)) if pressure_pa > 0 else math.inf
    info = dict(
        dt_s=sim.dt_s, n_steps=sim.n_steps, n_rebuilds=sim.n_rebuilds,
        n_particles_slab=len(radii), n_particles=sim.n, n_nmc=int(np.sum(sim.kinds == NMC)),
        n_cbd=int(np.sum(sim.kinds == CBD)), n_fixed=int(np.sum(sim.fixed)), n_fixed_slab=n_fixed,
        n_loose_removed=n_loose, n_bonds=len(sim.bonds), n_bonds_broken=int(np.sum(~sim.bonds_intact)),
        slab_top_um=top_before, cut_height_change_rel=(top_after - top_before) / top_before,
        cut_max_displacement_um=float(max_move[0]),
        inertial_number=inertial, max_kinetic_to_elastic=float(ratio.max()) if ratio.size else 0.0,
        final_kinetic_to_elastic=float(ratio[-1]) if ratio.size else 0.0,
        wall_time_s=time.perf_counter() - clock, **timing)
    fd = np.stack([table[:, 0], contact_z - table[:, 1], table[:, 2]], axis=1)
    energies = table[:, [0, 3, 4]]
    report(1.0)
    return Trajectory(steps=tuple(records), force_displacement=fd, energies=energies, contact_z_um=float(contact_z),
                      info=info)
