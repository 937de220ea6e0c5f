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

The head force and the energies are recorded all along. Defaults are those
of Ngandjong et al. 2021 (NMC calendering in LIGGGHTS) unless noted.

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
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from synthcal.dem.material import Material
from synthcal.dem.neighbours import candidate_pairs
from synthcal.dem.simulation import BondModel, Simulation

NMC, CBD = 0, 1
_Z90 = 1.2815515655446004  # standard normal quantile of 0.9


@dataclass(frozen=True)
class PillarProtocol:
    """Every parameter of a pillar build and compression (lengths µm, SI otherwise).

    Parameters
    ----------
    nmc_d10_um, nmc_d50_um, nmc_d90_um : float
        NMC secondary-particle diameters by volume (D50 8.3 µm, Ngandjong
        2021; D10/D90 5.0/9.8 µm, scenario defaults within their
        2.5–10.35 µm range); see :func:`nmc_diameters_um`.
    nmc_min_diameter_um, nmc_max_diameter_um : float
        Diameters are clipped to this range (2.5–10.35 µm, Ngandjong).
    cbd_diameter_um : float
        CBD particle diameter (1.3 µm, Ngandjong).
    mass_ratio_nmc_carbon_pvdf : tuple of 3 floats
        Electrode recipe by mass (90:5:5); carbon + PVDF form the CBD.
    nmc_youngs_modulus_pa, nmc_poisson_ratio, nmc_density_kg_m3 : float
        200 GPa, 0.3, 4650 kg/m^3 (Ngandjong).
    cbd_youngs_modulus_pa, cbd_poisson_ratio, cbd_density_kg_m3 : float
        2 GPa, 0.3, 930 kg/m^3 (about 50 % nanoporous; Ngandjong).
    restitution, friction, rolling_friction : float
        Contact constants for all pairs (0.5, 0.4, 0.05; scenario defaults).
    slab_width_um : float
        Edge of the square slab deposited before the cut.
    electrode_thickness_um : float
        Target coating thickness; the particle count is set so that a
        packing fraction of ``packing_fraction_guess`` fills it.
    packing_fraction_guess : float
        Solid fraction expected after deposition (sets the particle count).
    pillar_diameter_um : float
        Diameter of the cut cylinder.
    steps_um : tuple of float
        Cumulative head travel after first contact, one per record; starts at 0.
    head_speed_m_s : float
        Head speed while moving (0.05 m/s, scenario default; quasi-static is
        checked, see ``Trajectory.info['max_kinetic_to_elastic']``).
    hold_time_s : float
        Relaxation at each step before the record.
    head_radius_um : float
        Radius of the flat-head disc; 0 means an infinite plane.
    timestep_fraction : float
        Time step as a fraction of the smallest Rayleigh time.
    mass_scaling : float
        Density multiplier (>= 1) for a larger time step; see
        :mod:`synthcal.dem.simulation`.
    bond_youngs_modulus_pa, bond_radius_fraction, bond_strength_pa : float
        Binder bridges (:class:`synthcal.dem.simulation.BondModel`); the
        strength applies to tension and shear. A bridge is a porous neck,
        softer than a CBD particle: 0.2 GPa (a tenth of the CBD modulus).
        The bridge radius is that of the smaller particle. Strength 40 MPa,
        the tensile strength of PVDF: with 5 MPa (and half the radius) the
        25 µm ``quick`` pillar failed at about 8 MPa head pressure and the
        head force fell to ~1 % of its peak; with 40 MPa it carries 27 MPa
        at 1.5 µm travel with 16 of 4682 bonds broken (measured).
    bond_gap_um : float
        Particles closer than this (surface to surface) bond.
    deposit_height_factor : float
        Height of the box the particles start in, relative to the thickness.
    packing_acceleration_m_s2 : float
        Artificial body acceleration during deposition only (ramped down to
        gravity while settling).
    packing_damping_per_s : float
        Background drag during deposition, settling and the relaxation after
        the cut (dynamic relaxation).
    compression_damping_per_s : float
        Background drag during compression (0: contact damping only).
    growth_time_s, deposit_time_s, settle_time_s, cut_relax_time_s : float
        Durations of radius growth, packing under the body force (bonds and
        glue to the foil form at its end), ramping the body force down to
        gravity, and relaxation after the cut.
    approach_gap_um : float
        The head starts this far above the highest particle.
    record_every_steps : int
        Time steps between rows of the force and energy tables.
    seed : int
        Seed of every random choice.
    """

    nmc_d10_um: float = 5.0
    nmc_d50_um: float = 8.3
    nmc_d90_um: float = 9.8
    nmc_min_diameter_um: float = 2.5
    nmc_max_diameter_um: float = 10.35
    cbd_diameter_um: float = 1.3
    mass_ratio_nmc_carbon_pvdf: tuple = (90.0, 5.0, 5.0)
    nmc_youngs_modulus_pa: float = 200e9
    nmc_poisson_ratio: float = 0.3
    nmc_density_kg_m3: float = 4650.0
    cbd_youngs_modulus_pa: float = 2e9
    cbd_poisson_ratio: float = 0.3
    cbd_density_kg_m3: float = 930.0
    restitution: float = 0.5
    friction: float = 0.4
    rolling_friction: float = 0.05
    slab_width_um: float = 36.0
    electrode_thickness_um: float = 15.0
    packing_fraction_guess: float = 0.6
    pillar_diameter_um: float = 25.0
    steps_um: tuple = (0.0, 0.75, 1.5)
    head_speed_m_s: float = 0.05
    hold_time_s: float = 5e-6
    head_radius_um: float = 0.0
    timestep_fraction: float = 0.2
    mass_scaling: float = 100.0
    bond_youngs_modulus_pa: float = 2e8
    bond_radius_fraction: float = 1.0
    bond_strength_pa: float = 4e7
    bond_gap_um: float = 0.1
    deposit_height_factor: float = 1.4
    packing_acceleration_m_s2: float = 2e6
    packing_damping_per_s: float = 2e6
    growth_time_s: float = 5e-6
    deposit_time_s: float = 5e-6
    settle_time_s: float = 5e-6
    cut_relax_time_s: float = 5e-6
    compression_damping_per_s: float = 0.0
    approach_gap_um: float = 0.05
    record_every_steps: int = 20
    seed: int = 0

    def __post_init__(self):
        positive = ("nmc_d10_um", "nmc_d50_um", "nmc_d90_um", "nmc_min_diameter_um", "nmc_max_diameter_um",
                    "cbd_diameter_um", "slab_width_um", "electrode_thickness_um", "pillar_diameter_um",
                    "head_speed_m_s", "timestep_fraction", "bond_youngs_modulus_pa", "bond_radius_fraction",
                    "bond_strength_pa", "packing_fraction_guess", "record_every_steps")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)}")
        if not (self.nmc_min_diameter_um <= self.nmc_d10_um < self.nmc_d50_um < self.nmc_d90_um
                <= self.nmc_max_diameter_um):
            raise ValueError("nmc_d10_um/d50/d90: expected min <= D10 < D50 < D90 <= max diameter")
        if len(self.mass_ratio_nmc_carbon_pvdf) != 3 or self.mass_ratio_nmc_carbon_pvdf[0] <= 0:
            raise ValueError("mass_ratio_nmc_carbon_pvdf: expected three numbers [NMC, carbon, PVDF] with NMC > 0")
        if self.pillar_diameter_um > self.slab_width_um - self.nmc_max_diameter_um:
            raise ValueError("pillar_diameter_um: expected <= slab_width_um - nmc_max_diameter_um")
        steps = tuple(self.steps_um)
        if not steps or steps[0] != 0 or any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"steps_um: expected increasing travels starting at 0, got {steps}")
        growth_speed = 0.25e-6 * self.nmc_max_diameter_um / max(self.growth_time_s, 1e-300)
        if growth_speed > 1.0:
            raise ValueError(f"growth_time_s: expected >= {0.25e-6 * self.nmc_max_diameter_um:.3g} s "
                             "(radius growth faster than 1 m/s throws particles out)")
        if not self.mass_scaling >= 1:
            raise ValueError(f"mass_scaling: expected >= 1, got {self.mass_scaling}")
        for name in ("hold_time_s", "growth_time_s", "deposit_time_s", "settle_time_s", "cut_relax_time_s",
                     "packing_acceleration_m_s2", "packing_damping_per_s", "head_radius_um", "bond_gap_um",
                     "deposit_height_factor", "compression_damping_per_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)}")

    @classmethod
    def tiny(cls, **overrides):
        """A 14 µm pillar, 10 µm thick, for tests: NMC sizes halved, CBD 1.8 µm.

        About 350 particles in the slab, 140 in the pillar; 33 000 steps,
        ~20 s on 2 shared cores including taichi compilation (measured).
        """
        base = dict(nmc_d10_um=2.6, nmc_d50_um=4.0, nmc_d90_um=4.8, nmc_min_diameter_um=2.0,
                    nmc_max_diameter_um=5.2, cbd_diameter_um=1.8, slab_width_um=20.0,
                    electrode_thickness_um=10.0, pillar_diameter_um=14.0, steps_um=(0.0, 1.0, 2.0),
                    hold_time_s=2e-6, growth_time_s=2e-6, deposit_time_s=2e-6, settle_time_s=2e-6,
                    cut_relax_time_s=2e-6)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def quick(cls, **overrides):
        """A 25 µm pillar, 15 µm thick, with real NMC and CBD sizes (the defaults).

        About 3700 particles in the slab, 1500 in the pillar; ~75 s on 2
        shared cores (measured).
        """
        return cls(**overrides)

    def materials(self):
        """(NMC, CBD) materials."""
        common = dict(restitution=self.restitution, friction=self.friction, rolling_friction=self.rolling_friction)
        return (Material(self.nmc_youngs_modulus_pa, self.nmc_poisson_ratio, self.nmc_density_kg_m3, **common),
                Material(self.cbd_youngs_modulus_pa, self.cbd_poisson_ratio, self.cbd_density_kg_m3, **common))


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
        One per entry of ``protocol.steps_um``.
    force_displacement : (K, 3) float array
        Columns time (s), head travel after first contact (µm, negative
        before it), force on the head (N).
    energies : (K, 3) float array
        Columns time (s), kinetic energy (J), elastic energy (J), same rows.
    contact_z_um : float
        Head height at first contact (the zero of the travel).
    protocol : PillarProtocol
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
    protocol: PillarProtocol
    info: dict = field(default_factory=dict)


def nmc_diameters_um(protocol, volume_um3, rng):
    """NMC diameters (number-weighted sample) whose total volume first reaches ``volume_um3``.

    The volume-weighted distribution is a split lognormal with median D50,
    log-width ``ln(D50/D10)/z90`` below the median and ``ln(D90/D50)/z90``
    above it (z90 the 90 % normal quantile), so D10, D50 and D90 by volume
    are met exactly, clipped to [min, max] diameter. Volume-weighted draws
    are turned into a number-weighted sample by keeping each with
    probability ``(d_min/d)^3``.
    """
    p = protocol
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


def simulate_pillar(protocol, *, arch="cpu", progress=None):
    """Deposit, bond, cut and compress a pillar.

    Parameters
    ----------
    protocol : PillarProtocol
    arch : {"cpu", "gpu"}
        Taichi backend.
    progress : callable, optional
        Called as ``progress(fraction)``.

    Returns
    -------
    Trajectory
    """
    if not isinstance(protocol, PillarProtocol):
        raise ValueError("protocol: expected a PillarProtocol")
    p = protocol
    report = progress or (lambda fraction: None)
    clock = time.perf_counter()
    timing = {}
    rng = np.random.default_rng(p.seed)

    # 1. particles and deposition
    m_nmc, m_carbon, m_pvdf = p.mass_ratio_nmc_carbon_pvdf
    v_nmc, v_cbd = m_nmc / p.nmc_density_kg_m3, (m_carbon + m_pvdf) / p.cbd_density_kg_m3
    solid_um3 = p.packing_fraction_guess * p.slab_width_um ** 2 * p.electrode_thickness_um
    d_nmc = nmc_diameters_um(p, solid_um3 * v_nmc / (v_nmc + v_cbd), rng)
    n_cbd = int(round(solid_um3 * v_cbd / (v_nmc + v_cbd) / (math.pi / 6 * p.cbd_diameter_um ** 3)))
    radii = np.concatenate([d_nmc, np.full(n_cbd, p.cbd_diameter_um)]) * 0.5
    kinds = np.concatenate([np.full(len(d_nmc), NMC), np.full(n_cbd, CBD)]).astype(np.int32)
    box = p.slab_width_um
    height = p.deposit_height_factor * p.electrode_thickness_um
    start_radii = 0.5 * radii
    x0 = _place(start_radii, box, height, rng)
    sim = Simulation(x0, radii, p.materials(), gravity=True, kinds=kinds,
                     timestep_fraction=p.timestep_fraction, mass_scaling=p.mass_scaling,
                     body_acceleration_m_s2=(-p.packing_acceleration_m_s2, 0.0, 0.0),
                     background_damping_per_s=p.packing_damping_per_s, bottom_z_um=0.0,
                     box_yx_um=(0.0, box, 0.0, box),
                     bond_model=BondModel(youngs_modulus_pa=p.bond_youngs_modulus_pa,
                                          radius_fraction=p.bond_radius_fraction,
                                          tensile_strength_pa=p.bond_strength_pa,
                                          shear_strength_pa=p.bond_strength_pa),
                     skin_um=0.3 * radii.min(), arch=arch)
    # frictionless packing gives the dense structure of a calendered coating
    sim.set_materials(tuple(replace(m, friction=0.0, rolling_friction=0.0) for m in p.materials()))
    g = np.array([-9.81, 0.0, 0.0])
    n_growth = 50
    for k in range(n_growth):
        sim.set_radii(radii * (0.5 + 0.5 * (k + 1) / n_growth))
        sim.run(p.growth_time_s / n_growth)
        if k % 10 == 9:
            report(0.2 * (k + 1) / n_growth)
    _check(sim, "growth", box, 2 * height)
    sim.run(p.deposit_time_s)
    # ramp the body force down: switching it off would release its elastic
    # energy at once and throw the top particles off
    n_ramp = 20
    for k in range(n_ramp):
        sim.set_body_acceleration(g + (1 - (k + 1) / n_ramp) * np.array([-p.packing_acceleration_m_s2, 0, 0]))
        sim.run(p.settle_time_s / n_ramp)
    sim.set_materials(p.materials())
    sim.run(p.settle_time_s)
    _check(sim, "deposition", box, 2 * height)
    n_fixed = sim.fix_touching_bottom(tolerance_um=p.bond_gap_um)
    sim.form_bonds(bonding_kinds=(CBD,), tolerance_um=p.bond_gap_um)
    report(0.4)
    timing["deposition_s"] = time.perf_counter() - clock

    # 2. the cut
    x = sim.positions_um
    r_cut = 0.5 * p.pillar_diameter_um
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
    sim.run(p.cut_relax_time_s, callback=track, every_steps=max(1, p.record_every_steps * 10))
    sim.set_background_damping(p.compression_damping_per_s)
    _check(sim, "relaxation after the cut", box, 2 * height)
    top_after = float(np.max(sim.positions_um[:, 0] + sim.radii_um))
    report(0.5)
    timing["cut_s"] = time.perf_counter() - clock - timing["deposition_s"]

    # 3. compression
    rows = []

    def record(s):
        kinetic, elastic = s.energies()
        rows.append((s.time_s, s.head_z_um, s.head_force_n, kinetic, elastic))

    speed_um_s = p.head_speed_m_s * 1e6
    head_radius = p.head_radius_um if p.head_radius_um > 0 else None
    sim.set_head(top_after + p.approach_gap_um, -speed_um_s, radius_um=head_radius,
                 center_yx_um=(0.5 * box, 0.5 * box))
    records = [_snapshot(sim, 0.0)]
    record(sim)
    while sim.head_force_n <= 0.0:
        sim.run(p.record_every_steps * sim.dt_s, callback=record, every_steps=p.record_every_steps)
        if sim.head_z_um < 0:
            raise RuntimeError("the head never touched the pillar")
    contact_z = next(z for (_, z, f, _, _) in rows if f > 0)
    n_move = len(p.steps_um) - 1
    for k, travel in enumerate(p.steps_um[1:]):
        target = contact_z - travel
        sim.set_head(sim.head_z_um, -speed_um_s, target_z_um=target, radius_um=head_radius,
                     center_yx_um=(0.5 * box, 0.5 * box))
        while sim.head_velocity_um_s != 0.0:
            sim.run(p.record_every_steps * sim.dt_s, callback=record, every_steps=p.record_every_steps)
        sim.run(p.hold_time_s, callback=record, every_steps=p.record_every_steps)
        _check(sim, f"compression step {k + 1}", box, 2 * height)
        records.append(_snapshot(sim, travel))
        report(0.5 + 0.5 * (k + 1) / n_move)
    timing["compression_s"] = time.perf_counter() - clock - timing["deposition_s"] - timing["cut_s"]

    table = np.array(rows, dtype=np.float64)
    loaded = table[:, 4] > 0
    ratio = table[loaded, 3] / table[loaded, 4]
    # inertial number of the last hold: strain rate x d50 x sqrt(rho / p)
    height_um = top_after
    pressure_pa = max(table[-1, 2], 0.0) / (math.pi * (0.5e-6 * p.pillar_diameter_um) ** 2)
    inertial = (p.head_speed_m_s / (height_um * 1e-6) * p.nmc_d50_um * 1e-6
                * math.sqrt(p.nmc_density_kg_m3 * p.mass_scaling / pressure_pa)) if pressure_pa > 0 else math.inf
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
                      protocol=p, info=info)


def protocol_dict(protocol):
    """The protocol as a plain dict (for JSON)."""
    out = asdict(protocol)
    out["steps_um"] = list(out["steps_um"])
    out["mass_ratio_nmc_carbon_pvdf"] = list(out["mass_ratio_nmc_carbon_pvdf"])
    return out
