"""Build a free-standing electrode pillar and compress it (the sample's history).

:func:`simulate_pillar` follows how the real sample is made and loaded:

1. the coating (:mod:`synthcal.dem.packing`): NMC spheres placed at random
   without overlap in the slab (wider than the pillar) so that their volume
   fraction in the analysed region is ``[electrode] nmc_volume_fraction``
   (the paper's uncalendered electrode: 32 %); the binder spread as films
   over the particles, drying pulling each particle whose film meets no
   other to its nearest neighbour; binder bridges (parallel bonds) between
   all particles whose films overlap, and glue to the foil where a film
   reaches it. The slab then settles under gravity with friction and the
   bonds (no artificial body force: the packing is not pre-compacted).
2. the cut (laser milling): only particles whose centres lie inside the
   pillar cylinder are kept, and of those only the ones the binder links to
   the foil (loose particles would fall off); the side walls are removed and
   the pillar relaxes under a drag (dynamic relaxation), standing on its
   bonds. The drag is then switched off.
3. compression: the stage drives the sample against the flat head through
   the compliance of stage, glue and pin (a series spring,
   ``[compression] stage_compliance_um_per_mn``): the head travel is the
   stage displacement minus compliance times force. Both are zero at first
   contact, as on the real stage: where the head force first reaches
   ``contact_pressure_pa`` over the pillar's cross-section (a load cell's
   resolution; below it the head touches only the odd loose particle on the
   rough top, and the pillar is not loaded). For each stage displacement of
   ``steps_um`` in turn the stage advances, the head follows, and the
   sample is held: ``hold_time_s`` as it is, then under the drag of the
   dynamic relaxations until the kinetic energy is below
   ``kinetic_to_elastic_max`` of the elastic energy and the spring
   balances (the rest the real sample reaches in the paper's 30 min before
   each scan); then the state is recorded (step 0: before contact).

Fracture. From the start of the compression, NMC particles crack
(:mod:`synthcal.dem.fracture`, ``[fracture]``): a particle whose largest
contact force passes its Weibull strength is replaced, within a time step,
by a few rigid fragments that fill it. Particle indices of the pillar stay
those of every step; fragments are appended. Each record holds every
particle's piece; ``Trajectory.info`` counts fractured particles,
fragments and fracture events per step.

Quasi-static loading. The head is moved by a controller every
``[dem] record_every_steps`` time steps, towards the head travel at which
the spring and the sample balance (a Newton step with the largest recent
tangent stiffness of the sample), never faster than the inertial number
``I = (v / H) d50 sqrt(rho / p)`` allows (``[compression]
inertial_number_max``; ``v`` the head speed, ``H`` the pillar height, ``p``
the head force over the pillar's cross-section, ``rho`` the scaled NMC
density) nor faster than ``head_speed_m_s`` (the approach before contact,
where nothing resists). Rows where the head carries no force impose no
deformation and do not count. The stage advances only as far as the head
can follow within one control interval, so its displacement is always the
head travel plus compliance times force, up to that lead. The largest
inertial number while loading and the kinetic/elastic energy ratios are in
``Trajectory.info``.

Every parameter comes from the scenario (:mod:`synthcal.scenario`,
sections ``[particles]``, ``[electrode]``, ``[pillar]``, ``[dem]``,
``[compression]``, and ``[imaging] field_of_view_um`` for the analysed
region). Numerics that change the physics, all explicit options: mass
scaling (default 100, time step x10; the inertial number is computed with
the scaled density), and the drag of the dynamic relaxations (settling,
the cut, the rest before each scan) while nothing moves the head.
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from synthcal.dem import packing
from synthcal.dem.fracture import Breaker, fracture_model
from synthcal.dem.material import Material, ParticleKind
from synthcal.dem.simulation import BondModel, Simulation
from synthcal.pieces import Pieces, fracture_counts

_Z90 = 1.2815515655446004  # standard normal quantile of 0.9
_OVERFILL = 0.04           # the coating is placed this much denser than the target, then thinned
_FRACTION_TOLERANCE = 0.005  # the closed-loop thinning stops this close to the target NMC fraction
_BUILD_ATTEMPTS = 24


def nmc_material(particles):
    """The NMC contact material of a scenario's ``[particles]`` section."""
    p = particles
    return Material(p.nmc_youngs_modulus_pa, p.nmc_poisson_ratio, p.nmc_density_kg_m3, restitution=p.restitution,
                    friction=p.friction, rolling_friction=p.rolling_friction)


def bond_model(dem):
    """Binder bridges of a scenario's ``[dem]`` section (tension and shear share one strength).

    A bridge is a cylinder of porous binder (carbon black + PVDF with
    nanopores): modulus 0.2 GPa by default, a tenth of the 2 GPa Ngandjong
    et al. (2021) give the dense CBD, strength 40 MPa, the tensile strength
    of PVDF (Kynar data sheet, 35-50 MPa). The bridge's radius is that of
    the neck where two binder films meet (:func:`synthcal.dem.packing.bridges`).
    """
    return BondModel(youngs_modulus_pa=dem.bond_youngs_modulus_pa, poisson_ratio=dem.bond_poisson_ratio,
                     tensile_strength_pa=dem.bond_strength_pa, shear_strength_pa=dem.bond_strength_pa,
                     damping_ratio=dem.bond_damping_ratio)


@dataclass(frozen=True)
class Record:
    """The state at one load step (arrays z-y-x, µm).

    ``travel_um`` is the head travel and ``stage_um`` the stage
    displacement since first contact; ``bonds`` are binder bridges between
    NMC particles (``bonds_intact`` false once broken, for good) with radii
    ``bond_radius_um``; ``fixed`` marks particles glued to the foil.
    ``root_ids``, ``root_offsets_um``, ``root_radii_um`` and ``cut_planes``
    are each particle's piece (:class:`synthcal.pieces.Pieces`): the
    fragments of cracked particles; :attr:`pieces` gathers them. Particles
    of an earlier step keep their index; fragments are appended.
    """

    travel_um: float
    stage_um: float
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
    bond_radius_um: np.ndarray
    root_ids: np.ndarray
    root_offsets_um: np.ndarray
    root_radii_um: np.ndarray
    cut_planes: np.ndarray

    @property
    def pieces(self):
        """The particles' pieces, :class:`synthcal.pieces.Pieces`."""
        return Pieces(self.root_ids, self.root_offsets_um, self.root_radii_um, self.cut_planes)


@dataclass(frozen=True)
class Trajectory:
    """Result of :func:`simulate_pillar`.

    Attributes
    ----------
    steps : tuple of Record
        One per entry of ``[compression] steps_um``.
    force_displacement : (K, 4) float array
        Columns time (s), head travel after first contact (µm, negative
        before it), force on the head (N), stage displacement after first
        contact (µm).
    energies : (K, 3) float array
        Columns time (s), kinetic energy (J), elastic energy (J), same rows.
    contact_z_um : float
        Head height at first contact (the zero of the travel).
    info : dict
        Diagnostics: time step, particle and bond counts, binder film and
        bridges, the NMC volume fraction in the analysed region (target,
        after deposition, at each step; a fragment counted as a sphere of
        its piece's volume at its centre), relaxation after the cut
        (``cut_height_change_rel``, ``cut_max_displacement_um``), stage,
        head and force at each step, quasi-static measures (largest
        inertial number while loading and at each step, kinetic/elastic
        energy ratios), fracture per step (``n_fractured_particles``: root
        particles cracked, ``n_fragments``: particles that are fragments,
        ``n_fracture_events``, ``n_particles_at_steps``, and
        ``fracture_load_ratio_max``, the largest contact force over fracture
        force of any particle: how near the sample is to cracking) and the time of
        each fracture event (``fracture_times_s``), wall-clock time per phase.
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


def analysed_region(scenario, top_z_um):
    """The region whose NMC volume fraction the build targets and the trajectory reports.

    The field of view (a cylinder of ``[imaging] field_of_view_um``, or the
    pillar where that is narrower) on the pillar axis, from the foil up to
    one NMC D50 below ``top_z_um`` (the head, or the coating's top): the
    top rows, where the head meets a rough surface, are left out.
    """
    c = 0.5 * scenario.electrode.slab_width_um
    radius = 0.5 * min(scenario.imaging.field_of_view_um, scenario.pillar.diameter_um)
    return packing.Region((c, c), radius, 0.0, max(0.0, top_z_um - scenario.particles.nmc_d50_um))


def nmc_volume_fraction(positions_um, radii_um, region, spacing_um):
    """NMC volume fraction in ``region``: sphere volumes clipped to it (lattice count)."""
    if region.volume_um3 <= 0:
        return 0.0
    return float(packing.region_volumes_um3(positions_um, radii_um, region, spacing_um).sum() / region.volume_um3)


def _bond_clusters(n_nodes, edges):
    """Connected-component label of each of ``n_nodes`` nodes linked by ``edges`` ((M, 2) ints)."""
    edges = np.asarray(edges, np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n_nodes, n_nodes))
    return connected_components(graph, directed=False)[1]


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
    label = _bond_clusters(n + 1, edges)
    return label[:n] == label[n]


def _outside(positions_um, fixed, centre_yx_um, footprint_um):
    """(n,) bool: centres outside the footprint, and those of them not glued yet (:func:`spilled`'s candidates)."""
    x = np.asarray(positions_um, np.float64)
    out = np.hypot(x[:, 1] - centre_yx_um[0], x[:, 2] - centre_yx_um[1]) > footprint_um
    return out, out & ~np.asarray(fixed, bool)


def spilled(positions_um, bonds, fixed, centre_yx_um, footprint_um):
    """Particles that broke loose and left the pillar's footprint: to fall onto the base (:func:`fallen`).

    A particle outside the footprint (a circle of radius ``footprint_um``
    about the pillar axis) has spilled unless a chain of intact bonds still
    ties it to a particle inside (it hangs on the pillar's side). A loose
    cluster (two particles still bonded to each other, a fragment pair)
    spills as a whole: the compression has no gravity, so left free it
    drifts on for ever.

    Parameters
    ----------
    positions_um : (n, 3) float array
        Centres, z-y-x.
    bonds : (M, 2) int array
        Intact bonds.
    fixed : (n,) bool array
        Already glued (never reported again).
    centre_yx_um : (float, float)
    footprint_um : float

    Returns
    -------
    (n,) bool array
    """
    x = np.asarray(positions_um, np.float64)
    out, candidates = _outside(x, fixed, centre_yx_um, footprint_um)
    # once some particles lie glued outside, most intervals have nothing new: skip the cluster search
    if not candidates.any():
        return candidates
    label = _bond_clusters(len(x), bonds)
    anchored = np.zeros(label.max() + 1, bool)
    anchored[label[~out]] = True
    return candidates & ~anchored[label]


def fallen(positions_um, radii_um, falling, bonds, fixed, centre_yx_um):
    """Centres after the particles ``falling`` dropped onto the foil or onto glued particles, clear of the pillar.

    Falling particles still bonded to each other move together, as one
    rigid body, lowest cluster first. A cluster with a free (unglued,
    not falling) particle below any of its members first slides straight
    away from the pillar's axis until none is: a free particle is part of
    the pillar, and one glued on it would be a rigid post under the head.
    Then the cluster drops until one of its members rests on the foil
    (z = 0), on a glued particle or on a cluster that has landed. A
    cluster already overlapping a glued particle below it does not drop.
    Nothing turns.

    Parameters
    ----------
    positions_um : (n, 3) float array
        Centres, z-y-x.
    radii_um : (n,) float array
    falling : (n,) bool array
    bonds : (M, 2) int array
        Intact bonds.
    fixed : (n,) bool array
        Glued particles (the foil's, and those that fell before).
    centre_yx_um : (float, float)
        The pillar's axis.

    Returns
    -------
    (n, 3) float array
        Centres; only the falling ones differ.
    """
    x = np.array(positions_um, np.float64)
    r = np.asarray(radii_um, np.float64)
    falling = np.asarray(falling, bool)
    support = np.asarray(fixed, bool) & ~falling
    free = ~support & ~falling
    label = _bond_clusters(len(x), bonds)
    clusters = np.unique(label[falling])
    for c in clusters[np.argsort([np.min(x[falling & (label == c), 0]) for c in clusters], kind="stable")]:
        members = np.flatnonzero(falling & (label == c))
        _slide_clear(x, r, members, np.flatnonzero(free), centre_yx_um)
        below = np.flatnonzero(support)
        drop = float(np.min(x[members, 0] - r[members]))
        for i in members:
            lateral = np.hypot(x[below, 1] - x[i, 1], x[below, 2] - x[i, 2])
            reach = r[below] + r[i]
            under = (lateral < reach) & (x[below, 0] < x[i, 0])
            if under.any():
                rest_z = x[below[under], 0] + np.sqrt(reach[under] ** 2 - lateral[under] ** 2)
                drop = min(drop, float(np.min(x[i, 0] - rest_z)))
        x[members, 0] -= max(drop, 0.0)
        support[members] = True
    return x


def _slide_clear(x, r, members, free, centre_yx_um):
    """Slide ``members`` (in place) away from the axis until no particle of ``free`` is below any of them.

    Each pass moves by the largest distance that clears one of the
    blockers seen in that pass (the positive root of
    |p + s u| = r_i + r_j, with p the lateral offset from the blocker and
    u the outward direction); a move can uncover new blockers further
    out, so passes repeat until there are none.
    """
    offset = x[members, 1:].mean(axis=0) - np.asarray(centre_yx_um, np.float64)
    norm = float(np.hypot(*offset))
    u = offset / norm if norm > 0 else np.array([0.0, 1.0])
    for _ in range(len(free) + 1):
        p = x[members, None, 1:] - x[None, free, 1:]
        reach = r[members, None] + r[None, free]
        blocked = (np.hypot(p[..., 0], p[..., 1]) < reach) & (x[free][None, :, 0] < x[members, None, 0])
        if not blocked.any():
            return
        along = p[blocked] @ u
        # a hair beyond the root, so the particles are clear of each other after rounding
        s = np.max(-along + np.sqrt(along ** 2 - np.sum(p[blocked] ** 2, axis=1) + reach[blocked] ** 2))
        x[members, 1:] += (s + 1e-9) * u
    raise RuntimeError("a spilled particle found no clear ground around the pillar")


def build_coating(scenario, rng):
    """Particle centres and radii of the uncalendered coating, its binder film and bridges.

    Steps 1-6 of :mod:`synthcal.dem.packing`: placement a little denser
    than ``[electrode] nmc_volume_fraction``, thinning to the target in the
    analysed region, sedimentation onto the foil, binder film, drying,
    bridges and glue.

    The target holds for the pillar that is scanned, not for the slab:
    the cut drops what its binder no longer ties to the foil (a small
    pillar can lose 0.02 of NMC fraction that way), and in a small region
    one particle is a few hundredths of it. So the thinning is closed-loop:
    the coating is thinned, dried and cut in advance (geometry only, no
    dynamics) and thinned again from the same placement towards the target
    corrected by the miss, until the predicted pillar is within
    ``_FRACTION_TOLERANCE`` of it; the closest of ``_BUILD_ATTEMPTS`` is
    kept.

    Returns
    -------
    dict
        ``positions_um`` (N, 3), ``radii_um`` (N,), ``film_um``,
        ``bonds`` (M, 2), ``bond_radius_um`` (M,), ``glued`` (N,) bool,
        ``binder_um3``, ``predicted_nmc_volume_fraction`` (in the analysed
        region of the cut pillar).
    """
    pa, el = scenario.particles, scenario.electrode
    w, t = el.slab_width_um, el.thickness_um
    box = np.array([[0.0, t], [0.0, w], [0.0, w]])
    region = analysed_region(scenario, t)
    target_um3 = el.nmc_volume_fraction * region.volume_um3
    spacing = _lattice_um(pa)
    d = nmc_diameters_um(pa, (el.nmc_volume_fraction + _OVERFILL) * w * w * t, rng)
    placed_radii = 0.5 * d
    placed = packing.place_spheres(placed_radii, box, rng)
    inside = packing.region_volumes_um3(placed, placed_radii, region, spacing)
    if inside.sum() < target_um3:
        raise RuntimeError(f"the placed coating holds {inside.sum() / region.volume_um3:.3f} NMC in the analysed "
                           f"region, below the target {el.nmc_volume_fraction:g}; raise [electrode] thickness_um "
                           "or slab_width_um")
    aim_um3, best = target_um3, None
    for _ in range(_BUILD_ATTEMPTS):
        keep = packing.thin_to_fraction(inside, aim_um3, rng)
        coat = _dried_coating(placed[keep], placed_radii[keep], pa, box)
        held = cut_pillar(scenario, coat["positions_um"], coat["bonds"], coat["glued"])
        coat["predicted_nmc_volume_fraction"] = nmc_volume_fraction(coat["positions_um"][held],
                                                                    coat["radii_um"][held], region, spacing)
        miss_um3 = (coat["predicted_nmc_volume_fraction"] - el.nmc_volume_fraction) * region.volume_um3
        if best is None or abs(miss_um3) < abs(best[0]):
            best = (miss_um3, coat)
        if abs(miss_um3) <= _FRACTION_TOLERANCE * region.volume_um3:
            break
        aim_um3 -= miss_um3
    return best[1]


def _dried_coating(positions_um, radii_um, particles, box_um):
    """Steps 3-6 of :mod:`synthcal.dem.packing` on the thinned coating."""
    binder = packing.binder_volume_per_nmc_volume(particles) * np.sum(4.0 / 3.0 * np.pi * radii_um ** 3)
    film = packing.binder_film_um(radii_um, binder)
    x = packing.sediment(positions_um, radii_um, 0.5 * film)
    x = packing.dry(x, radii_um, film, box_um)
    pairs, bond_radius = packing.bridges(x, radii_um, film)
    return dict(positions_um=x, radii_um=radii_um, film_um=film, bonds=pairs, bond_radius_um=bond_radius,
                glued=packing.glued_to_foil(x, radii_um, film), binder_um3=binder)


def in_pillar(scenario, positions_um):
    """Particles whose centre lies inside the milled pillar (a cylinder on the slab's axis)."""
    c = 0.5 * scenario.electrode.slab_width_um
    r = 0.5 * scenario.pillar.diameter_um
    x = np.asarray(positions_um)
    return (x[:, 1] - c) ** 2 + (x[:, 2] - c) ** 2 <= r ** 2


def cut_pillar(scenario, positions_um, bonds, glued):
    """Particles the milled pillar keeps: inside it (:func:`in_pillar`) and tied to the foil by
    bonds inside it (:func:`held_by_binder`); the rest falls off.

    Parameters
    ----------
    scenario : synthcal.scenario.Scenario
    positions_um : (N, 3) float array
    bonds : (M, 2) int array
        Intact bonds.
    glued : (N,) bool array
        Particles glued to the foil.

    Returns
    -------
    (N,) bool array
    """
    inside = in_pillar(scenario, positions_um)
    bonds = np.asarray(bonds, np.int64).reshape(-1, 2)
    return inside & held_by_binder(len(inside), bonds[inside[bonds].all(axis=1)], np.asarray(glued, bool) & inside)


def mass_scaling(scenario, radii_um):
    """Density multiplier per particle: ``[dem] mass_scaling``, times ``(D50 / d)^2`` below D50
    when ``[dem] scale_small_particles``.

    With that factor every particle smaller than D50 has the Rayleigh time
    of a D50 particle (``T_R ~ d sqrt(rho)``), so the time step, set by the
    smallest Rayleigh time, grows ``D50 / d_min``-fold; and ``d sqrt(rho)``,
    hence each particle's own inertial number ``I = gamma' d sqrt(rho / p)``,
    is that of a D50 particle too (larger particles: up to ``d_max / D50``
    times it). Statics are unchanged.
    """
    d50, dm = scenario.particles.nmc_d50_um, scenario.dem
    extra = np.maximum(1.0, (0.5 * d50 / np.asarray(radii_um)) ** 2) if dm.scale_small_particles else 1.0
    return dm.mass_scaling * extra


def _lattice_um(particles):
    """Lattice spacing of the volume-fraction counts: a sixteenth of D50."""
    return particles.nmc_d50_um / 16.0


def _check(sim, where, box_um, height_um):
    x = sim.positions_um
    if not np.all(np.isfinite(x)):
        raise RuntimeError(f"DEM blew up during {where}: non-finite positions")
    if x[:, 0].min() < -1.0 or x[:, 0].max() > height_um or x[:, 1:].min() < -box_um or x[:, 1:].max() > 2 * box_um:
        raise RuntimeError(f"DEM blew up during {where}: particles left the domain")


def _snapshot(sim, travel_um, stage_um, pieces):
    return Record(travel_um=float(travel_um), stage_um=float(stage_um), head_z_um=float(sim.head_z_um),
                  time_s=float(sim.time_s), positions_um=sim.positions_um, quaternions=sim.orientations,
                  radii_um=sim.radii_um, kinds=sim.kinds, velocities_um_s=sim.velocities_um_s,
                  angular_velocities_rad_s=sim.angular_velocities_rad_s, fixed=sim.fixed,
                  bonds=sim.bonds, bonds_intact=sim.bonds_intact, bond_radius_um=sim.bond_radii_um,
                  root_ids=pieces.root_ids, root_offsets_um=pieces.root_offsets_um,
                  root_radii_um=pieces.root_radii_um, cut_planes=pieces.planes)


class _Loading:
    """The stage, the compliance and the head: the controller of step 3 (see the module docstring).

    Lengths in µm, forces in N, speeds in µm/s.
    """

    def __init__(self, sim, scenario, contact_z_um):
        pa, co, dm = scenario.particles, scenario.compression, scenario.dem
        self.sim, self.contact_z = sim, contact_z_um
        self.compliance_um_n = co.stage_compliance_um_per_mn * 1e3
        self.area_m2 = math.pi * (0.5e-6 * scenario.pillar.diameter_um) ** 2
        self.rho = pa.nmc_density_kg_m3 * dm.mass_scaling
        self.d50_m = pa.nmc_d50_um * 1e-6
        self.i_max = co.inertial_number_max
        self.n_ctrl = dm.record_every_steps
        self.interval_s = self.n_ctrl * sim.dt_s
        self.head_radius = co.head_radius_um if co.head_radius_um > 0 else None
        self.centre = (0.5 * scenario.electrode.slab_width_um,) * 2
        self.footprint_um = 0.5 * scenario.pillar.diameter_um + pa.nmc_max_diameter_um
        self.n_spilled = 0
        self.stage = 0.0
        self.stiffness = 0.0  # largest recent tangent stiffness of the sample, N/µm
        self.force = 0.0  # head force now, N
        self.force_held = 0.0  # last head force there was, N
        self.creep_um_s = 1e-7 * pa.nmc_d50_um / self.interval_s
        self.contact_n = co.contact_pressure_pa * self.area_m2

    @property
    def travel(self):
        return self.contact_z - self.sim.head_z_um

    def speed_cap(self, force):
        """Fastest quasi-static head speed (µm/s) under head force ``force`` (N).

        The smaller of this force and the one an interval ago sets it, so a
        force that flickers does not drive the head by its peaks. Without
        force (a particle under the head bounced off or broke), the last
        force there was (forgetting a tenth per interval, down to the force
        of first contact) sets it: the head closes in again as slowly as it
        was moving, and never slower than it first reached the pillar
        (without that floor a head whose particle had cracked crept on for
        millions of intervals). At least the head creeps by a
        ten-millionth of D50 per interval: from a bare touch the force then
        grows as fast as the inertial number allows (the first creep gives a
        force ~ stiffness x creep, and the next speed follows from it).
        """
        if force > 0:
            self.force_held, force = force, min(force, self.force_held) if self.force_held > 0 else force
        else:
            self.force_held = max(0.9 * self.force_held, self.contact_n)
            force = self.force_held
        height_m = self.sim.head_z_um * 1e-6
        cap = 1e6 * self.i_max * height_m / self.d50_m * math.sqrt(force / self.area_m2 / self.rho)
        return max(cap, self.creep_um_s)

    def inertial_numbers(self, speed_um_s, height_um, force):
        """Inertial numbers of head speeds (µm/s) at pillar heights (µm) under forces (N); NaN without force."""
        force = np.asarray(force, np.float64)
        pressed = force > 0
        return np.where(pressed, np.asarray(speed_um_s) / np.asarray(height_um) * self.d50_m
                        * np.sqrt(self.rho * self.area_m2 / np.where(pressed, force, 1.0)), np.nan)

    def residual(self, force):
        """Stage displacement minus compliance x force minus head travel (µm): 0 in balance."""
        return self.stage - self.compliance_um_n * force - self.travel

    def touch(self, record, ratio, max_intervals, drag_per_s):
        """Hold the head still under a drag until the motion has died down, then lower it onto the highest particle.

        The approach sets the particles it touches ringing (and may throw
        them back); at rest, the head is put exactly on the particle that
        is highest under it, without force.
        """
        sim = self.sim
        sim.set_head(sim.head_z_um, 0.0, radius_um=self.head_radius, center_yx_um=self.centre)
        sim.set_background_damping(drag_per_s)
        for _ in range(max_intervals):
            sim.step(self.n_ctrl)
            kinetic, elastic = sim.energies()
            if kinetic <= ratio * elastic:
                break
        x, r = sim.positions_um, sim.radii_um
        under = np.ones(sim.n, bool)
        if self.head_radius is not None:
            under = np.hypot(x[:, 1] - self.centre[0], x[:, 2] - self.centre[1]) <= self.head_radius
        top = float(np.max((x[:, 0] + r)[under]))
        sim.set_head(min(sim.head_z_um, top), 0.0, radius_um=self.head_radius, center_yx_um=self.centre)
        sim.step(1)
        self.force = sim.head_force_n
        record(math.nan, 0.0, self.force)

    def reach(self, contact_n, record):
        """Push on at the quasi-static speed of the contact force until the head carries it: first contact.

        Below the contact force the head meets only loose particles on the
        rough top; the stage detects contact when the force reaches it, and
        travel and stage displacement are zero there.
        """
        sim = self.sim
        speed = self.speed_cap(contact_n)
        sim.set_head(sim.head_z_um, -speed, radius_um=self.head_radius, center_yx_um=self.centre)
        while self.force < contact_n:
            sim.step(self.n_ctrl)
            self.force = sim.head_force_n
            record(math.nan, speed, self.force)
            if sim.head_z_um < 0:
                raise RuntimeError("the head never carried the contact force")
        self.contact_z = sim.head_z_um
        self.force_held = self.force

    def interval(self, stage_target, record):
        """One control interval; returns the head move (µm) and the force before it (N)."""
        sim = self.sim
        force = self.force
        cap = self.speed_cap(force) * self.interval_s
        # the stage leads by what lets the head move by ``cap``: the spring takes its share of the lead
        newton = 1.0 + self.compliance_um_n * self.stiffness
        self.stage = min(stage_target, max(self.stage, self.travel + self.compliance_um_n * force + cap * newton))
        move = float(np.clip(self.residual(force) / newton, -cap, cap))
        sim.set_head(sim.head_z_um, -move / self.interval_s, target_z_um=sim.head_z_um - move,
                     radius_um=self.head_radius, center_yx_um=self.centre)
        sim.step(self.n_ctrl)
        self.force = after = sim.head_force_n
        if abs(move) > 0:
            # a slowly forgetting maximum: overestimates slow the approach to balance, underestimates overshoot
            self.stiffness = max(0.9 * self.stiffness, (after - force) / move)
        self._spill()
        record(self.stage, abs(move) / self.interval_s, after)
        return move, force

    def _spill(self):
        """Drop and glue the particles that broke loose and left the pillar's footprint.

        They fall off the pillar (:func:`spilled`, :func:`fallen`; the
        compression has no gravity, so the fall is put in at once) onto the
        milled base around it, or onto particles glued there; left free they
        would roll away over the endless foil plane. Glued where they broke
        loose, one hung in the air beside the pillar, where the head, a plane
        wider than the pillar, came down on it as on a rigid post (the paper
        scenario's pillar then stopped compacting: 0.02 µm of head travel
        for the 15 µm of stage from step A to B); glued on a pillar
        particle that stopped its fall, it was a post too. So a fall that a
        pillar particle would stop lands further out.
        """
        sim = self.sim
        x, fixed = sim.positions_um, sim.fixed
        # in most intervals no free particle is outside (7 in 8 of the paper scenario's 9315): the bonds,
        # sorted anew at each read, are read only when one is
        if not _outside(x, fixed, self.centre, self.footprint_um)[1].any():
            return
        intact = sim.bonds[sim.bonds_intact]
        new = spilled(x, intact, fixed, self.centre, self.footprint_um)
        if new.any():
            sim.place(np.flatnonzero(new),
                      fallen(sim.positions_um, sim.radii_um, new, intact, sim.fixed, self.centre)[new])
            sim.set_fixed(sim.fixed | new)
            self.n_spilled += int(new.sum())


def simulate_pillar(scenario, *, arch="cpu", progress=None):
    """Build the coating, cut the pillar and compress it.

    Parameters
    ----------
    scenario : synthcal.scenario.Scenario
        Reads ``[particles]``, ``[electrode]``, ``[pillar]``, ``[dem]``,
        ``[compression]``, ``[imaging] field_of_view_um`` and the seed: the
        only source of the parameters.
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
    spacing = _lattice_um(pa)

    # 1. the coating: placed, bonded, settled
    coat = build_coating(scenario, rng)
    radii = coat["radii_um"]
    box = el.slab_width_um
    sim = Simulation(coat["positions_um"], radii, nmc_material(pa), gravity=True,
                     timestep_fraction=dm.timestep_fraction, mass_scaling=mass_scaling(scenario, radii),
                     background_damping_per_s=dm.relaxation_damping_per_s, bottom_z_um=0.0,
                     box_yx_um=(0.0, box, 0.0, box), bond_model=bond_model(dm), skin_um=0.3 * radii.min(),
                     arch=arch)
    sim.set_bonds(coat["bonds"], coat["bond_radius_um"])
    sim.set_fixed(coat["glued"])
    report(0.1)
    every = max(1, dm.record_every_steps * 10)
    settle_steps = max(1, math.ceil(dm.settle_time_s / sim.dt_s))
    sim.run(dm.settle_time_s, callback=lambda s: report(0.1 + 0.1 * min(1.0, s.n_steps / settle_steps)),
            every_steps=every)
    _check(sim, "settling", box, 2 * el.thickness_um)
    slab_fraction = nmc_volume_fraction(sim.positions_um, radii, analysed_region(scenario, el.thickness_um), spacing)
    n_slab, n_bonds_slab, n_fixed_slab = sim.n, len(sim.bonds), int(np.sum(sim.fixed))
    report(0.2)
    timing["deposition_s"] = time.perf_counter() - clock

    # 2. the cut
    x = sim.positions_um
    keep = cut_pillar(scenario, x, sim.bonds[sim.bonds_intact], sim.fixed)
    n_loose = int(np.sum(in_pillar(scenario, x)) - np.sum(keep))
    sim = sim.subset(keep)
    sim.set_box(None)
    before = sim.positions_um
    top_before = float(np.max(before[:, 0] + sim.radii_um))
    max_move = np.zeros(1)

    start, cut_steps = sim.n_steps, max(1, math.ceil(dm.cut_relax_time_s / sim.dt_s))

    def track(s):
        max_move[0] = max(max_move[0], float(np.max(np.linalg.norm(s.positions_um - before, axis=1))))
        report(0.2 + 0.1 * min(1.0, (s.n_steps - start) / cut_steps))
    # dynamic relaxation: the drag brings the cut pillar to rest; it is off afterwards
    sim.run(dm.cut_relax_time_s, callback=track, every_steps=every)
    sim.set_background_damping(dm.compression_damping_per_s)
    _check(sim, "relaxation after the cut", box, 2 * el.thickness_um)
    top_after = float(np.max(sim.positions_um[:, 0] + sim.radii_um))
    report(0.3)
    timing["cut_s"] = time.perf_counter() - clock - timing["deposition_s"]

    # 3. compression
    rows = []

    def record(stage, speed, force):
        kinetic, elastic = sim.energies()
        rows.append((sim.time_s, sim.head_z_um, force, stage, kinetic, elastic, speed))

    head_radius = co.head_radius_um if co.head_radius_um > 0 else None
    sim.set_head(top_after + dm.approach_gap_um, -co.head_speed_m_s * 1e6, radius_um=head_radius,
                 center_yx_um=(0.5 * box, 0.5 * box))
    # fracture from here on: particle indices of the pillar are those of every later step
    breaker = Breaker(fracture_model(scenario.fracture), sim.radii_um, np.random.default_rng([scenario.seed, 17]),
                      breakable=sim.kinds == ParticleKind.NMC)
    if scenario.fracture.enabled:
        breaker.attach(sim)
    counts = [dict(n_fracture_events=0, fracture_load_ratio_max=breaker.load_ratio_max(sim),
                   **fracture_counts(breaker.pieces))]
    # volume-equivalent radii: a fragment's contact sphere holds only part of its piece's volume
    volume_radii = [np.cbrt(0.75 / math.pi * breaker.volumes_um3)]
    records = [_snapshot(sim, 0.0, 0.0, breaker.pieces)]
    while sim.head_force_n <= 0.0:
        sim.step(dm.record_every_steps)
        record(math.nan, co.head_speed_m_s * 1e6, sim.head_force_n)
        if sim.head_z_um < 0:
            raise RuntimeError("the head never touched the pillar")
    load = _Loading(sim, scenario, sim.head_z_um)
    hold_steps = max(1, int(math.ceil(co.hold_time_s / load.interval_s)))
    load.touch(record, co.kinetic_to_elastic_max, 100 * hold_steps, dm.relaxation_damping_per_s)
    sim.set_background_damping(dm.compression_damping_per_s)
    load.reach(load.contact_n, record)
    contact_z = load.contact_z
    n_approach = len(rows)
    scans = [dict(inertial=None, ratio=None, force=0.0, residual=0.0)]
    for k, stage in enumerate(co.steps_um[1:], start=1):
        tolerance = 1e-3 * stage
        previous = co.steps_um[k - 1]
        while load.stage < stage or abs(load.residual(load.force)) > tolerance:
            load.interval(stage, record)
            report(0.3 + 0.7 * (k - 1 + 0.9 * min(1.0, (load.stage - previous) / (stage - previous)))
                   / (len(co.steps_um) - 1))
            _check(sim, f"compression step {k}", box, 2 * el.thickness_um)
        # the hold: the force relaxes and the head follows it; then a drag brings the sample to the rest
        # the real one reaches in the paper's 30 min before the scan
        for _ in range(hold_steps):
            load.interval(stage, record)
        sim.set_background_damping(dm.relaxation_damping_per_s)
        for _ in range(100 * hold_steps):
            if rows[-1][4] <= co.kinetic_to_elastic_max * rows[-1][5] and abs(load.residual(load.force)) <= tolerance:
                break
            load.interval(stage, record)
        sim.set_background_damping(dm.compression_damping_per_s)
        _check(sim, f"compression step {k}", box, 2 * el.thickness_um)
        records.append(_snapshot(sim, load.travel, load.stage, breaker.pieces))
        counts.append(dict(n_fracture_events=breaker.n_fractured,
                           fracture_load_ratio_max=breaker.load_ratio_max(sim), **fracture_counts(breaker.pieces)))
        volume_radii.append(np.cbrt(0.75 / math.pi * breaker.volumes_um3))
        last = rows[-1]
        inertial = float(load.inertial_numbers(last[6], last[1], last[2]))
        scans.append(dict(inertial=inertial if math.isfinite(inertial) else None, ratio=last[4] / last[5],
                          force=last[2], residual=load.residual(last[2])))
        report(0.3 + 0.7 * k / (len(co.steps_um) - 1))
    timing["compression_s"] = time.perf_counter() - clock - timing["deposition_s"] - timing["cut_s"]

    table = np.array(rows, dtype=np.float64)
    travel = contact_z - table[:, 1]
    stage_col = np.where(np.isnan(table[:, 3]), travel, table[:, 3])
    after = slice(n_approach, None)
    inertial = load.inertial_numbers(table[after, 6], table[after, 1], table[after, 2])
    loaded = table[after][table[after, 5] > 0]
    regions = [analysed_region(scenario, rec.head_z_um) for rec in records]
    fractions = [nmc_volume_fraction(rec.positions_um, r, reg, spacing)
                 for rec, r, reg in zip(records, volume_radii, regions)]
    info = dict(
        dt_s=sim.dt_s, n_steps=sim.n_steps, n_rebuilds=sim.n_rebuilds,
        n_particles_slab=n_slab, n_particles=sim.n, n_fixed=int(np.sum(sim.fixed)), n_fixed_slab=n_fixed_slab,
        n_loose_removed=n_loose, n_spilled=load.n_spilled, n_bonds_slab=n_bonds_slab, n_bonds=len(sim.bonds),
        n_bonds_broken=[int(np.sum(~rec.bonds_intact)) for rec in records],
        fracture_enabled=bool(scenario.fracture.enabled), fracture_times_s=breaker.event_times_s,
        **{key: [c[key] for c in counts] for key in counts[0]},
        n_particles_at_steps=[len(rec.radii_um) for rec in records],
        binder_volume_per_nmc_volume=packing.binder_volume_per_nmc_volume(pa), binder_film_um=coat["film_um"],
        bond_radius_um_median=float(np.median(coat["bond_radius_um"])) if len(coat["bonds"]) else 0.0,
        bonds_per_particle=2.0 * len(records[0].bonds) / max(1, len(records[0].radii_um)),
        nmc_volume_fraction_target=el.nmc_volume_fraction, nmc_volume_fraction_slab=slab_fraction,
        nmc_volume_fraction_built=coat["predicted_nmc_volume_fraction"],
        nmc_volume_fraction=fractions, inactive_fraction=[1.0 - f for f in fractions],
        analysed_region_um=[dict(radius=reg.radius_um, z_lo=reg.z_lo_um, z_hi=reg.z_hi_um) for reg in regions],
        stage_displacement_um=[rec.stage_um for rec in records], head_travel_um=[rec.travel_um for rec in records],
        head_force_n=[s["force"] for s in scans], compliance_residual_um=[s["residual"] for s in scans],
        slab_top_um=top_before, cut_height_change_rel=(top_after - top_before) / top_before,
        cut_max_displacement_um=float(max_move[0]),
        inertial_number_max_loading=float(np.nanmax(inertial, initial=0.0)),
        inertial_number_at_scans=[s["inertial"] for s in scans],
        kinetic_to_elastic_max_loading=float(np.max(loaded[:, 4] / loaded[:, 5])) if len(loaded) else 0.0,
        kinetic_to_elastic_at_scans=[s["ratio"] for s in scans],
        wall_time_s=time.perf_counter() - clock, **timing)
    fd = np.stack([table[:, 0], travel, table[:, 2], stage_col], axis=1)
    energies = table[:, [0, 4, 5]]
    report(1.0)
    return Trajectory(steps=tuple(records), force_displacement=fd, energies=energies, contact_z_um=float(contact_z),
                      info=info)
