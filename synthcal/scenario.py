"""Scenario files: TOML in, a frozen, validated :class:`Scenario` out.

A scenario says everything about one synthetic experiment. Every key has a
default, so a file only names what differs; the resolved scenario (all
defaults filled in) is written to the run folder. Units are in the key names.
Any problem in a file is reported as one :class:`ScenarioError` line naming the
section, the key and what is expected.
"""

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from analysis.io import VOLUME_SUFFIXES


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message is one line."""


def _f(default, doc, *, lo=None, hi=None, lo_open=False):
    """A scenario field: default, one-line doc, allowed range."""
    kind = list if isinstance(default, list) else None
    meta = {"doc": doc, "lo": lo, "hi": hi, "lo_open": lo_open}
    if kind is list:
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Particles:
    """Particle populations (Ngandjong et al. 2021 unless noted).

    The NMC sizes are Ngandjong's distribution (D10 / D50 / D90 5.0 / 8.3 /
    9.8 µm, kept 2.5-10.35 µm) scaled by 0.7. The seed paper gives no size
    distribution; it measured a mean radius of about 2 µm for the non-NMC
    phase of its uncalendered electrode at 68 % inactive. At that fraction
    the mean inscribed radius of the space between random spheres is set by
    their size: Ngandjong's sizes give 3.1 µm (the built paper coating,
    geometry only, 0.25 µm voxels), the scaled ones 2.3 µm. The paper's
    registration particle fitting in an 8 µm box agrees with a D50 of 5.8 µm.
    """

    nmc_d10_um: float = _f(3.5, "NMC secondary-particle diameter D10 by volume", lo=0.1)
    nmc_d50_um: float = _f(5.8, "NMC diameter D50 by volume", lo=0.1)
    nmc_d90_um: float = _f(6.85, "NMC diameter D90 by volume", lo=0.1)
    nmc_min_diameter_um: float = _f(1.75, "smallest NMC diameter kept", lo=0.1)
    nmc_max_diameter_um: float = _f(7.23, "largest NMC diameter kept", lo=0.1)
    mass_ratio_nmc_carbon_pvdf: list = _f([90.0, 5.0, 5.0], "NMC : carbon black : PVDF by mass", lo=0.0)
    cbd_nanoporosity: float = _f(0.5, "volume fraction of nanopores inside the carbon-binder domain (CBD)", lo=0.0, hi=0.95)
    cbd_bridge_fraction: float = _f(0.5, "share of the phantom's CBD volume in bridges at bonded contacts; the rest is film on the NMC surfaces", lo=0.0, hi=1.0)
    nmc_youngs_modulus_pa: float = _f(200e9, "NMC Young's modulus", lo=0.0, lo_open=True)
    nmc_poisson_ratio: float = _f(0.3, "NMC Poisson ratio", lo=0.0, hi=0.5)
    nmc_density_kg_m3: float = _f(4650.0, "NMC particle density", lo=0.0, lo_open=True)
    restitution: float = _f(0.5, "coefficient of restitution of contacts", lo=0.0, hi=1.0, lo_open=True)
    friction: float = _f(0.4, "Coulomb friction coefficient", lo=0.0)
    rolling_friction: float = _f(0.05, "rolling resistance coefficient", lo=0.0)


@dataclass(frozen=True)
class Electrode:
    """The coated electrode the pillar is cut from."""

    thickness_um: float = _f(60.0, "coating thickness, foil to top surface", lo=0.0, lo_open=True)
    slab_width_um: float = _f(100.0, "edge of the square slab deposited before the cut", lo=0.0, lo_open=True)
    nmc_volume_fraction: float = _f(0.32, "NMC volume fraction of the uncalendered coating in the analysed region "
                                    "(the paper: 68 % inactive)", lo=0.0, hi=0.4, lo_open=True)


@dataclass(frozen=True)
class Pillar:
    """The free-standing pillar (laser-milled cylinder)."""

    diameter_um: float = _f(80.0, "pillar diameter", lo=0.0, lo_open=True)


@dataclass(frozen=True)
class Dem:
    """Discrete-element numerics and the build protocol (see :mod:`synthcal.dem.protocol`)."""

    timestep_fraction: float = _f(0.2, "time step as a fraction of the Rayleigh time", lo=0.0, hi=1.0, lo_open=True)
    mass_scaling: float = _f(100.0, "density multiplier for larger time steps (quasi-static only)", lo=1.0)
    scale_small_particles: bool = _f(True, "particles below D50 get a further density factor (D50/d)^2: all then have "
                                     "the Rayleigh time of a D50 particle (time step D50/d_min times longer; quasi-static only)")
    bond_strength_pa: float = _f(4e7, "tensile/shear strength of binder bridges (PVDF ~40 MPa)", lo=0.0, lo_open=True)
    bond_youngs_modulus_pa: float = _f(2e8, "modulus of binder bridges (a tenth of dense CBD's 2 GPa: nanoporous)", lo=0.0, lo_open=True)
    bond_poisson_ratio: float = _f(0.3, "Poisson ratio of binder bridges (shear modulus E / (2 (1 + nu)))", lo=0.0, hi=0.5)
    bond_damping_ratio: float = _f(0.2, "viscous damping of binder bridges relative to critical", lo=0.0)
    relaxation_damping_per_s: float = _f(2e6, "background drag of the dynamic relaxations: the coating settling, the cut "
                                         "pillar, the sample at rest before each scan (never while loading)", lo=0.0)
    compression_damping_per_s: float = _f(0.0, "background drag while compressing (0: contact and bond damping only)", lo=0.0)
    settle_time_s: float = _f(5e-6, "simulated time the bonded coating settles under gravity", lo=0.0, lo_open=True)
    cut_relax_time_s: float = _f(5e-6, "relaxation after the cut", lo=0.0)
    approach_gap_um: float = _f(0.05, "the head starts this far above the highest particle", lo=0.0)
    record_every_steps: int = _f(200, "time steps between moves of the head and rows of the force and energy tables", lo=1)


@dataclass(frozen=True)
class Compression:
    """Displacement-controlled compression with pauses for imaging."""

    steps_um: list = _f([0.0, 65.0, 80.0], "stage displacement after first contact, one per scan; starts at 0 "
                        "(the head travels this less the compliance's share)", lo=0.0)
    stage_compliance_um_per_mn: float = _f(11.0, "compliance of stage, glue and pin in series with the sample", lo=0.0)
    head_speed_m_s: float = _f(0.005, "head speed before first contact (scaled time); after it the inertial number sets it",
                               lo=0.0, lo_open=True)
    contact_pressure_pa: float = _f(200.0, "head force over the pillar's cross-section that marks first contact, the zero "
                                    "of stage and head travel (1 uN on an 80 um pillar: a load cell's resolution)",
                                    lo=0.0, lo_open=True)
    inertial_number_max: float = _f(6e-4, "the head moves no faster than this inertial number allows (quasi-static: < 1e-3)",
                                    lo=0.0, lo_open=True)
    hold_time_s: float = _f(5e-5, "hold at each step before the relaxation drag comes on (then until at rest)", lo=0.0)
    kinetic_to_elastic_max: float = _f(1e-4, "the hold lasts until the kinetic energy is below this share of the elastic",
                                       lo=0.0, lo_open=True)
    head_radius_um: float = _f(0.0, "radius of the flat head disc; 0 = infinite plane", lo=0.0)


@dataclass(frozen=True)
class Fracture:
    """NMC secondary particles that crack into fragments (see :mod:`synthcal.dem.fracture`)."""

    enabled: bool = _f(True, "NMC particles break into fragments when a contact force passes their strength")
    strength_pa: float = _f(1.9e8, "Weibull characteristic strength at reference_diameter_um (crushing between plates: "
                            "sigma = 2.8 F / (pi d^2); 190 MPa at 10 um is 21 mN, the order single-particle "
                            "compression of NMC gives, Xu et al. 2017)", lo=0.0, lo_open=True)
    reference_diameter_um: float = _f(10.0, "diameter at which the characteristic strength applies", lo=0.0, lo_open=True)
    weibull_modulus: float = _f(4.0, "Weibull modulus m of the strengths (size effect (d0/d)^(3/m))", lo=0.0, lo_open=True)
    n_fragments: int = _f(3, "rigid pieces a particle breaks into (Voronoi cells of seeds inside it)", lo=2, hi=9)
    min_diameter_um: float = _f(3.0, "pieces of smaller volume-equivalent diameter do not break again", lo=0.0, lo_open=True)


@dataclass(frozen=True)
class Imaging:
    """The nano-CT: geometry, source, detector, noise, drift."""

    voxel_size_um: float = _f(0.128, "effective pixel size = voxel size", lo=0.0, lo_open=True)
    field_of_view_um: float = _f(65.0, "width of the field of view", lo=0.0, lo_open=True)
    n_projections: int = _f(801, "number of projections", lo=2)
    half_range_deg: float = _f(70.0, "angles span -half_range..+half_range", lo=0.0, hi=90.0, lo_open=True)
    energy_kev: float = _f(5.4, "photon energy (Cr K-alpha)", lo=1.0, hi=100.0)
    incident_counts: float = _f(5000.0, "mean flat-field counts per pixel per projection", lo=1.0)
    n_flats: int = _f(10, "number of flat-field images per scan", lo=1)
    dark_counts: float = _f(100.0, "dark offset in counts", lo=0.0)
    read_noise_counts: float = _f(3.0, "detector read noise (std, counts)", lo=0.0)
    psf_sigma_px: float = _f(0.7, "detector blur (Gaussian std, pixels)", lo=0.0)
    ring_gain_sigma: float = _f(0.0, "per-pixel gain error left after flat-fielding (std, relative): rings", lo=0.0)
    drift_um: list = _f([], "rigid drift [dz, dy, dx] per step: where each scan's reconstruction shows the sample "
                        "relative to the reference scan, its motion during the scan included (empty = none)")
    projection_oversampling: int = _f(2, "the object is projected from a grid this many times finer than the "
                                      "reconstruction onto pixels as fine, binned this many squared into one (the "
                                      "paper's 2x2 binning of 64 nm pixels); 1 = the inverse crime", lo=1, hi=4)
    scan_time_h: float = _f(12.0, "duration of one scan (motion during a scan scales with it)", lo=0.0, lo_open=True)
    drift_rate_um_per_h: list = _f([], "thermal drift [vz, vy, vx] of the sample during every scan (empty = none)")
    creep_um_per_h: float = _f(0.0, "speed at which the sample under load (steps >= 1) settles toward the pin (-z) "
                               "during a scan", lo=0.0)
    head_material: str = _f("diamond", "flat head material (synthcal.materials name)")
    foil_material: str = _f("aluminium", "current collector under the pillar")
    head_margin_um: float = _f(3.0, "thickness of head included above the pillar top", lo=0.0)
    foil_margin_um: float = _f(3.0, "thickness of foil included below the pillar", lo=0.0)
    supersampling: int = _f(2, "sub-samples per voxel edge for partial volume", lo=1, hi=8)


@dataclass(frozen=True)
class Reconstruction:
    """How the tomograms are reconstructed."""

    method: str = _f("fbp", "fbp or sirt")
    filter: str = _f("ramp", "FBP filter: ramp, shepp-logan, hann, hamming")
    sirt_iterations: int = _f(50, "iterations when method = sirt", lo=1)
    padding: bool = _f(True, "pad and extrapolate the edges against truncation artefacts")


@dataclass(frozen=True)
class Dvc:
    """Preprocessing, registration and subset-based local DVC."""

    median_filter_size: int = _f(3, "3D median filter edge (voxels); 1 = off", lo=1)
    subvolume_um: float = _f(8.0, "subvolume edge length", lo=0.0, lo_open=True)
    node_spacing_um: float = _f(4.0, "distance between DVC nodes (best mode; paper mode tiles: spacing = edge)", lo=0.0, lo_open=True)
    max_displacement_um: float = _f(10.0, "largest displacement searched", lo=0.0, lo_open=True)
    cc_threshold: float = _f(0.5, "nodes below this correlation are not trusted", lo=-1.0, hi=1.0)
    subvolume_study_um: list = _f([16.0, 14.0, 12.0, 10.0, 8.0, 6.0, 4.0], "further edges correlated and scored for the subvolume study; empty = no study", lo=0.0)
    registration_box_um: list = _f([], "[z0, z1, y0, y1, x0, x1] region to register on; empty = the slab across the foil top (best) or one particle on the foil picked automatically (paper)")
    strain_cap: float = _f(-0.10, "lower cap of strain for display", hi=0.0)


@dataclass(frozen=True)
class Pores:
    """Segmentation and pore size distribution."""

    edge_exclusion_um: float = _f(1.0, "margin removed from the analysis region", lo=0.0)


@dataclass(frozen=True)
class Analysis:
    """Which analysis chain runs (``analysis.settings``: each mode is one set of choices)."""

    mode: str = _f("best", "analysis chain: best (the project's own, most accurate DVC) or paper (the seed paper's methods)")
    compare_modes: bool = _f(False, "also run and score the other mode, into analysis-compare/")
    compare_study: bool = _f(False, "run the subvolume study in the other mode too (at the paper's size its seven "
                                    "edges correlate about 15x the voxels of the chosen edge in best mode)")


@dataclass(frozen=True)
class Validation:
    """Scoring and the report."""

    report: bool = _f(True, "write report/ with figures and meshes")


@dataclass(frozen=True)
class Output:
    """Run folder, and how its arrays are stored."""

    directory: str = _f("runs/{name}", "run folder; {name} is the scenario name")
    format: str = _f("tiff", "volumes and projections as tiff (ImageJ stacks) or zarr (chunked, compressed arrays)")
    keep_projections: bool = _f(True, "store the projections; false: the reconstruct stage simulates each scan in memory")

    def path(self, name):
        """The run folder for a scenario called ``name``."""
        return Path(self.directory.format(name=name))


@dataclass(frozen=True)
class Scenario:
    """A whole synthetic experiment."""

    name: str = _f("unnamed", "scenario name")
    seed: int = _f(0, "seed of every random choice", lo=0)
    description: str = _f("", "free text")
    particles: Particles = field(default_factory=Particles)
    electrode: Electrode = field(default_factory=Electrode)
    pillar: Pillar = field(default_factory=Pillar)
    dem: Dem = field(default_factory=Dem)
    compression: Compression = field(default_factory=Compression)
    fracture: Fracture = field(default_factory=Fracture)
    imaging: Imaging = field(default_factory=Imaging)
    reconstruction: Reconstruction = field(default_factory=Reconstruction)
    dvc: Dvc = field(default_factory=Dvc)
    pores: Pores = field(default_factory=Pores)
    analysis: Analysis = field(default_factory=Analysis)
    validation: Validation = field(default_factory=Validation)
    output: Output = field(default_factory=Output)

    def section_dict(self, name):
        """The resolved section ``name`` as a plain dict (for hashing)."""
        return dataclasses.asdict(getattr(self, name))

    @property
    def n_steps(self):
        return len(self.compression.steps_um)


SECTIONS = {f.name: f.type for f in dataclasses.fields(Scenario) if dataclasses.is_dataclass(f.type)}
_TOP_KEYS = [f.name for f in dataclasses.fields(Scenario) if f.name not in SECTIONS]
_CHOICES = {
    ("reconstruction", "method"): ("fbp", "sirt"),
    ("reconstruction", "filter"): ("ramp", "shepp-logan", "hann", "hamming"),
    ("output", "format"): tuple(VOLUME_SUFFIXES),
    ("analysis", "mode"): ("best", "paper"),
}


def _show(key):
    """A user's key as it can be printed on one line."""
    return key if key.isprintable() else repr(key)


def _closest(name, valid):
    match = difflib.get_close_matches(name, valid, n=1)
    return f" (did you mean '{match[0]}'?)" if match else f" (valid: {', '.join(valid)})"


def _convert(where, value, kind, meta):
    """Check one value against its declared type and range."""
    if kind is bool:
        if not isinstance(value, bool):
            raise ScenarioError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{where}: expected an integer, got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ScenarioError(f"{where}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ScenarioError(f"{where}: expected a finite number, got {value!r}")
    elif kind is str:
        if not isinstance(value, str):
            raise ScenarioError(f"{where}: expected a string, got {value!r}")
        return value
    elif kind is list:
        if not isinstance(value, list):
            raise ScenarioError(f"{where}: expected a list, got {value!r}")
        return [_list_item(f"{where}[{i}]", v, meta) for i, v in enumerate(value)]
    return _check_range(where, value, meta)


def _list_item(where, value, meta):
    if isinstance(value, list):
        return [_list_item(f"{where}[{i}]", v, {}) for i, v in enumerate(value)]
    return _convert(where, value, float, meta)


def _check_range(where, value, meta):
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        relation = ">" if meta.get("lo_open") else ">="
        raise ScenarioError(f"{where}: expected {relation} {lo:g}, got {value:g}")
    if hi is not None and value > hi:
        raise ScenarioError(f"{where}: expected <= {hi:g}, got {value:g}")
    return value


def _build_section(name, cls, table):
    if not isinstance(table, dict):
        raise ScenarioError(f"[{name}]: expected a table of keys, got {table!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in table.items():
        if key not in fields:
            raise ScenarioError(f"[{name}] {_show(key)}: unknown key{_closest(key, list(fields))}")
        where = f"[{name}] {key}"
        values[key] = _convert(where, value, hints[key], fields[key].metadata)
        choices = _CHOICES.get((name, key))
        if choices and values[key] not in choices:
            raise ScenarioError(f"{where}: expected one of {', '.join(choices)}, got {value!r}")
    return cls(**values)


def from_dict(data):
    """Build and validate a :class:`Scenario` from a parsed TOML mapping."""
    if not isinstance(data, dict):
        raise ScenarioError("scenario: expected a TOML table at the top level")
    top, sections = {}, {}
    top_fields = {f.name: f for f in dataclasses.fields(Scenario)}
    for key, value in data.items():
        if key in SECTIONS:
            sections[key] = _build_section(key, SECTIONS[key], value)
        elif key in _TOP_KEYS:
            hint = typing.get_type_hints(Scenario)[key]
            top[key] = _convert(key, value, hint, top_fields[key].metadata)
        else:
            raise ScenarioError(f"{_show(key)}: unknown key or section{_closest(key, _TOP_KEYS + list(SECTIONS))}")
    scenario = Scenario(**top, **sections)
    _check_consistency(scenario)
    return scenario


def _check_consistency(s):
    """Rules that involve more than one key."""
    p, im, c, d = s.particles, s.imaging, s.compression, s.dvc
    if not (p.nmc_min_diameter_um <= p.nmc_d10_um < p.nmc_d50_um < p.nmc_d90_um <= p.nmc_max_diameter_um):
        raise ScenarioError("[particles]: expected nmc_min_diameter_um <= nmc_d10_um < nmc_d50_um < nmc_d90_um <= nmc_max_diameter_um")
    ratio = p.mass_ratio_nmc_carbon_pvdf
    if len(ratio) != 3 or ratio[0] <= 0 or ratio[1] + ratio[2] <= 0:
        raise ScenarioError("[particles] mass_ratio_nmc_carbon_pvdf: expected three numbers [NMC, carbon, PVDF] with "
                            "NMC > 0 and carbon + PVDF > 0 (the binder holds the pillar)")
    room = s.electrode.slab_width_um - p.nmc_max_diameter_um
    if s.pillar.diameter_um > room:
        raise ScenarioError(f"[pillar] diameter_um: expected <= [electrode] slab_width_um - [particles] nmc_max_diameter_um ({room:g}), got {s.pillar.diameter_um:g}")
    if p.nmc_max_diameter_um > s.electrode.thickness_um:
        raise ScenarioError(f"[particles] nmc_max_diameter_um: expected <= [electrode] thickness_um ({s.electrode.thickness_um:g})")
    steps = c.steps_um
    if not steps or steps[0] != 0.0 or any(b <= a for a, b in zip(steps, steps[1:])):
        raise ScenarioError(f"[compression] steps_um: expected increasing stage displacements starting at 0, got {steps}")
    if c.stage_compliance_um_per_mn == 0 and steps[-1] >= s.electrode.thickness_um:
        # without compliance the head travels the whole stage displacement: it would reach the foil
        raise ScenarioError(f"[compression] steps_um: with [compression] stage_compliance_um_per_mn = 0 expected "
                            f"displacements < [electrode] thickness_um ({s.electrode.thickness_um:g}), got {steps[-1]:g}")
    fov_px = im.field_of_view_um / im.voxel_size_um
    if fov_px < 16:
        raise ScenarioError(f"[imaging] field_of_view_um: expected at least 16 voxels across, got {fov_px:.1f}")
    if im.drift_um and (len(im.drift_um) != len(steps) or any(not isinstance(v, list) or len(v) != 3 for v in im.drift_um)):
        raise ScenarioError(f"[imaging] drift_um: expected one [dz, dy, dx] per load step ({len(steps)}), or empty")
    if im.drift_um and any(v != 0 for v in im.drift_um[0]):
        raise ScenarioError("[imaging] drift_um: expected [0, 0, 0] for step 0 (drifts are relative to the reference scan)")
    if im.drift_rate_um_per_h and len(im.drift_rate_um_per_h) != 3:
        raise ScenarioError("[imaging] drift_rate_um_per_h: expected [vz, vy, vx], or empty")
    from synthcal.materials import MATERIALS  # local: materials imports xraydb
    for key in ("head_material", "foil_material"):
        name = getattr(im, key)
        if name not in MATERIALS:
            raise ScenarioError(f"[imaging] {key}: unknown material {name!r}{_closest(name, sorted(MATERIALS))}")
    for key in ("subvolume_um", "node_spacing_um", "max_displacement_um"):
        voxels = getattr(d, key) / im.voxel_size_um
        if voxels < (4 if key == "subvolume_um" else 1):
            raise ScenarioError(f"[dvc] {key}: {getattr(d, key):g} um is only {voxels:.1f} voxels; expected at least {4 if key == 'subvolume_um' else 1}")
    if any(e / im.voxel_size_um < 4 for e in d.subvolume_study_um):
        raise ScenarioError("[dvc] subvolume_study_um: every edge must be at least 4 voxels")
    if d.subvolume_um > im.field_of_view_um:
        raise ScenarioError(f"[dvc] subvolume_um: expected <= [imaging] field_of_view_um ({im.field_of_view_um:g})")
    box = d.registration_box_um
    if box and (len(box) != 6 or box[0] >= box[1] or box[2] >= box[3] or box[4] >= box[5]):
        raise ScenarioError("[dvc] registration_box_um: expected [z0, z1, y0, y1, x0, x1] with each lower < upper, or empty")
    try:
        s.output.path(s.name)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ScenarioError(f"[output] directory: {s.output.directory!r} has a bad placeholder ({exc.__class__.__name__}: {exc}); "
                            "expected text with at most {name}") from None


def chain_settings(dvc, pores, voxel_size_um, *, mode="best", registration_box=None):
    """Settings of the analysis chain (``analysis.settings.ChainSettings``) from ``[dvc]`` and ``[pores]``.

    Parameters
    ----------
    dvc : Dvc
    pores : Pores
    voxel_size_um : float
    mode : {"best", "paper"}
        ``analysis.settings.best_settings`` or ``paper_settings`` (which tiles
        its subvolumes, so ``[dvc] node_spacing_um`` is not used).
    registration_box : tuple of 3 (start, stop) pairs, optional
        Registration box in voxels of the reference scan.
    """
    from analysis.settings import best_settings, paper_settings

    lengths = dict(median_size=dvc.median_filter_size, subvolume_um=dvc.subvolume_um,
                   max_displacement_um=dvc.max_displacement_um, min_cc=dvc.cc_threshold,
                   study_subvolumes_um=dvc.subvolume_study_um, edge_exclusion_um=pores.edge_exclusion_um,
                   registration_box=registration_box)
    if mode == "paper":
        return paper_settings(voxel_size_um, **lengths)
    return best_settings(voxel_size_um, node_spacing_um=dvc.node_spacing_um, **lengths)


def other_mode(mode):
    """The analysis mode that ``[analysis] compare_modes`` runs beside ``mode``."""
    return "best" if mode == "paper" else "paper"


def load(path):
    """Read, validate and resolve a scenario file.

    Parameters
    ----------
    path : str or Path
        A TOML file.

    Returns
    -------
    Scenario

    Raises
    ------
    ScenarioError
        One line naming the file, the key and what is expected.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    try:
        return from_dict(data)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None


def to_toml(scenario):
    """The resolved scenario as TOML text: every key, each under a comment line with its doc."""
    import tomli_w

    lines = ["# resolved scenario: every key with its value (defaults filled in)"]

    def add(table, cls, name):
        doc = {f.name: f.metadata.get("doc", "") for f in dataclasses.fields(cls)}[name]
        lines.extend([f"# {doc}", tomli_w.dumps({name: getattr(table, name)}).rstrip("\n")])

    for f in dataclasses.fields(Scenario):
        if f.name in _TOP_KEYS:
            add(scenario, Scenario, f.name)
    for name, cls in SECTIONS.items():
        lines += ["", f"[{name}]"]
        for sf in dataclasses.fields(cls):
            add(getattr(scenario, name), cls, sf.name)
    return "\n".join(lines) + "\n"


def to_dict(scenario):
    """The scenario as a plain nested dict (what :func:`from_dict` reads)."""
    return dataclasses.asdict(scenario)


def _parse_value(text):
    """A command-line value as TOML would read it; bare words are strings."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def with_overrides(scenario, assignments):
    """A copy of ``scenario`` with ``section.key=value`` assignments applied and validated.

    Parameters
    ----------
    scenario : Scenario
    assignments : sequence of str
        E.g. ``["seed=3", "dvc.subvolume_um=6", "compression.steps_um=[0, 1, 2]"]``;
        values are read as TOML values (bare words as strings).

    Returns
    -------
    Scenario

    Raises
    ------
    ScenarioError
        One line naming the assignment and what is expected.
    """
    data = to_dict(scenario)
    for text in assignments:
        path, sep, value = text.partition("=")
        parts = path.strip().split(".")
        if not sep or not all(parts) or len(parts) > 2:
            raise ScenarioError(f"--set {text!r}: expected section.key=value or key=value")
        try:
            if len(parts) == 1:
                if parts[0] not in _TOP_KEYS:
                    raise ScenarioError(f"{_show(parts[0])}: unknown key{_closest(parts[0], _TOP_KEYS)}")
                data[parts[0]] = _parse_value(value.strip())
            else:
                section, key = parts
                if section not in SECTIONS:
                    raise ScenarioError(f"[{_show(section)}]: unknown section{_closest(section, list(SECTIONS))}")
                fields = [f.name for f in dataclasses.fields(SECTIONS[section])]
                if key not in fields:
                    raise ScenarioError(f"[{section}] {_show(key)}: unknown key{_closest(key, fields)}")
                data[section][key] = _parse_value(value.strip())
        except ScenarioError as exc:
            raise ScenarioError(f"--set {text!r}: {exc}") from None
    try:
        return from_dict(data)
    except ScenarioError as exc:
        raise ScenarioError(f"--set: {exc}") from None
