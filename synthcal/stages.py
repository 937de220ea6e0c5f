"""The stages of a synthetic experiment, as the pipeline runs them.

This module and :mod:`synthcal.pipeline` are the top floor: they map scenario
sections onto the arguments of the stage functions in ``synthcal``,
``analysis`` and ``validation`` and write their results into the run folder.
Every stage reads only its upstream stages' folders and writes only ``ctx.out``.
"""

import dataclasses
import json
import zlib
from pathlib import Path

import numpy as np

from synthcal.phantom import recon_geometry

# Particles sit on the foil at z = 0 (the DEM's bottom wall).
FOIL_TOP_Z_UM = 0.0


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    Attributes
    ----------
    name : str
        Used on the command line (``--only``, ``--from``).
    folder : str
        Output folder, relative to the run folder.
    sections : tuple of str
        Scenario sections whose values the stage reads.
    upstream : tuple of str
        Stages whose outputs it reads.
    what : str
        What it does, for the progress line.
    run : callable
        ``run(ctx)``; writes into ``ctx.out``.
    """

    name: str
    folder: str
    sections: tuple
    upstream: tuple
    what: str
    run: object


@dataclasses.dataclass
class StageContext:
    """What a stage function gets: the scenario, where to read and write."""

    scenario: object
    run_dir: Path
    out: Path
    arch: str
    progress: object

    def input(self, stage_name):
        """Folder of an upstream stage's outputs."""
        return self.run_dir / STAGES_BY_NAME[stage_name].folder


def step_name(k):
    """File stem of load step ``k`` (0 = uncompressed)."""
    return f"step{k}"


def _write_json(path, data):
    Path(path).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _read_json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _step_seed(scenario, stage, k):
    """Independent, reproducible seed for one stage and one load step."""
    return int(np.random.SeedSequence([scenario.seed, zlib.crc32(stage.encode()), k]).generate_state(1)[0])


# --- dem -------------------------------------------------------------------

def dem_protocol(s):
    """The DEM protocol of a scenario."""
    from synthcal.dem.protocol import PillarProtocol

    p, d, c = s.particles, s.dem, s.compression
    return PillarProtocol(
        nmc_d10_um=p.nmc_d10_um, nmc_d50_um=p.nmc_d50_um, nmc_d90_um=p.nmc_d90_um,
        nmc_min_diameter_um=p.nmc_min_diameter_um, nmc_max_diameter_um=p.nmc_max_diameter_um,
        cbd_diameter_um=p.cbd_diameter_um, mass_ratio_nmc_carbon_pvdf=tuple(p.mass_ratio_nmc_carbon_pvdf),
        nmc_youngs_modulus_pa=p.nmc_youngs_modulus_pa, nmc_poisson_ratio=p.nmc_poisson_ratio,
        nmc_density_kg_m3=p.nmc_density_kg_m3, cbd_youngs_modulus_pa=p.cbd_youngs_modulus_pa,
        cbd_poisson_ratio=p.cbd_poisson_ratio, cbd_density_kg_m3=p.cbd_density_kg_m3,
        restitution=p.restitution, friction=p.friction, rolling_friction=p.rolling_friction,
        slab_width_um=s.electrode.slab_width_um, electrode_thickness_um=s.electrode.thickness_um,
        pillar_diameter_um=s.pillar.diameter_um, steps_um=tuple(c.steps_um),
        head_speed_m_s=c.head_speed_m_s, hold_time_s=c.hold_time_s, head_radius_um=c.head_radius_um,
        timestep_fraction=d.timestep_fraction, mass_scaling=d.mass_scaling,
        bond_strength_pa=d.bond_strength_pa, bond_youngs_modulus_pa=d.bond_youngs_modulus_pa,
        bond_radius_fraction=d.bond_radius_fraction, settle_time_s=d.settle_time_s, seed=s.seed)


def run_dem(ctx):
    from synthcal.dem.io import write_trajectory
    from synthcal.dem.protocol import simulate_pillar

    trajectory = simulate_pillar(dem_protocol(ctx.scenario), arch=ctx.arch, progress=ctx.progress)
    write_trajectory(trajectory, ctx.out)


# --- phantom ---------------------------------------------------------------

def phantom_grid(scenario, step0):
    """Voxel grid of the phantoms: the whole pillar, foil below, head above.

    The grid is centred on the pillar axis with the same parity as the
    detector, so the reconstructed field of view (``n_det`` wide, centred on
    the rotation axis) is the phantom's central ``n_det`` columns exactly.
    """
    im = scenario.imaging
    v = im.voxel_size_um
    n_det = int(round(im.field_of_view_um / v))
    pos, r = step0.positions_um, step0.radii_um
    axis_yx = 0.5 * ((pos[:, 1:] - r[:, None]).min(axis=0) + (pos[:, 1:] + r[:, None]).max(axis=0))
    half_width = float(np.max(np.linalg.norm(pos[:, 1:] - axis_yx, axis=1) + r))
    n_xy = max(int(np.ceil(2 * half_width / v)) + 2, n_det)
    n_xy += (n_xy - n_det) % 2
    z_lo = FOIL_TOP_Z_UM - im.foil_margin_um
    z_hi = float(np.max(pos[:, 0] + r)) + im.head_margin_um
    n_z = int(np.ceil((z_hi - z_lo) / v))
    origin = [z_lo + 0.5 * v, *(axis_yx - 0.5 * (n_xy - 1) * v)]
    return {"voxel_size_um": v, "shape": [n_z, n_xy, n_xy], "origin_um": [float(o) for o in origin],
            "n_det": n_det, "fov_offset_voxels": (n_xy - n_det) // 2, "foil_top_z_um": FOIL_TOP_Z_UM}


def run_phantom(ctx):
    from analysis.io import write_volume
    from synthcal.dem.io import read_trajectory
    from synthcal.phantom import voxelise

    s = ctx.scenario
    trajectory = read_trajectory(ctx.input("dem"))
    grid = phantom_grid(s, trajectory.steps[0])
    n = len(trajectory.steps)
    for k, step in enumerate(trajectory.steps):
        phantom = voxelise(
            step.positions_um, step.radii_um, step.kinds, step.quaternions,
            voxel_size_um=grid["voxel_size_um"], shape=tuple(grid["shape"]), origin_um=grid["origin_um"],
            seed=s.seed, head_z_um=step.head_z_um, foil_top_z_um=grid["foil_top_z_um"],
            energy_kev=s.imaging.energy_kev, supersampling=s.imaging.supersampling,
            head_material=s.imaging.head_material, foil_material=s.imaging.foil_material,
            cbd_nanoporosity=s.particles.cbd_nanoporosity, arch=ctx.arch,
            progress=ctx.progress.sub(k / n, (k + 1) / n))
        stem = ctx.out / step_name(k)
        write_volume(f"{stem}_labels.tif", phantom.labels, grid["voxel_size_um"],
                     description="labels: 0 pore, 1 CBD, 2 NMC, 3 head, 4 foil")
        write_volume(f"{stem}_mu.tif", phantom.mu_per_um, grid["voxel_size_um"],
                     description="linear attenuation, 1/um")
        np.save(f"{stem}_owner.npy", phantom.owner)
    grid["head_z_um"] = [float(step.head_z_um) for step in trajectory.steps]
    _write_json(ctx.out / "grid.json", grid)


# --- projections -----------------------------------------------------------

def run_projections(ctx):
    from analysis.io import read_volume, write_volume
    from synthcal.xray import limited_angles_deg, simulate_scan

    s, im = ctx.scenario, ctx.scenario.imaging
    grid = _read_json(ctx.input("phantom") / "grid.json")
    angles = limited_angles_deg(im.n_projections, im.half_range_deg)
    np.savetxt(ctx.out / "angles_deg.csv", angles, fmt="%.10g", header="angle_deg", comments="")
    n = s.n_steps
    for k in range(n):
        mu_per_um, _ = read_volume(ctx.input("phantom") / f"{step_name(k)}_mu.tif")
        drift_voxels = tuple(np.asarray(im.drift_um[k]) / im.voxel_size_um) if im.drift_um else (0.0, 0.0, 0.0)
        scan = simulate_scan(
            mu_per_um * np.float32(im.voxel_size_um), angles, incident_counts=im.incident_counts,
            n_det=grid["n_det"], n_flats=im.n_flats, dark_counts=im.dark_counts,
            read_noise_counts=im.read_noise_counts, psf_sigma_px=im.psf_sigma_px,
            ring_gain_sigma=im.ring_gain_sigma, drift_voxels=drift_voxels,
            rng_seed=_step_seed(s, "projections", k), arch=ctx.arch,
            progress=ctx.progress.sub(k / n, (k + 1) / n))
        stem = ctx.out / step_name(k)
        for name in ("counts", "flats", "darks"):
            write_volume(f"{stem}_{name}.tif", getattr(scan, name), im.voxel_size_um,
                         description=f"{name}: (frame, row z, detector column)")
    _write_json(ctx.out / "drift_voxels.json",
                [list(np.asarray(d, float) / im.voxel_size_um) for d in im.drift_um] if im.drift_um
                else [[0.0, 0.0, 0.0]] * n)


# --- reconstruct -----------------------------------------------------------

def run_reconstruct(ctx):
    from analysis.io import read_volume, write_volume
    from analysis.reconstruct import fbp, normalise, sirt

    s, r = ctx.scenario, ctx.scenario.reconstruction
    v = s.imaging.voxel_size_um
    angles = np.loadtxt(ctx.input("projections") / "angles_deg.csv", skiprows=1, ndmin=1)
    n = s.n_steps
    for k in range(n):
        stem = ctx.input("projections") / step_name(k)
        counts, flats, darks = (read_volume(f"{stem}_{name}.tif")[0] for name in ("counts", "flats", "darks"))
        line_integrals = normalise(counts, flats, darks)
        bar = ctx.progress.sub(k / n, (k + 1) / n)
        if r.method == "fbp":
            volume = fbp(line_integrals, angles, filter=r.filter, padding=r.padding, arch=ctx.arch, progress=bar)
        else:
            volume = sirt(line_integrals, angles, iterations=r.sirt_iterations, arch=ctx.arch, progress=bar)
        write_volume(ctx.out / f"{step_name(k)}.tif", (volume / np.float32(v)).astype(np.float32), v,
                     description="reconstructed linear attenuation, 1/um")


# --- analysis --------------------------------------------------------------


def _box_mask(shape, z_lo, z_hi, margin_xy):
    mask = np.zeros(shape, dtype=bool)
    mask[max(z_lo, 0):max(min(z_hi, shape[0]), 0), margin_xy:shape[1] - margin_xy,
         margin_xy:shape[2] - margin_xy] = True
    return mask


def _um_box_to_slices(box_um, origin_um, voxel_size_um, fov_offset):
    """A [z0, z1, y0, y1, x0, x1] box in world µm as reconstruction slices."""
    lo_hi = np.asarray(box_um, float).reshape(3, 2)
    first = (lo_hi[:, 0] - np.asarray(origin_um)) / voxel_size_um
    last = (lo_hi[:, 1] - np.asarray(origin_um)) / voxel_size_um
    first[1:] -= fov_offset
    last[1:] -= fov_offset
    return tuple(slice(int(np.ceil(a)), int(np.floor(b)) + 1) for a, b in zip(first, last))


def _read_series(folder, n):
    from analysis.io import read_volume

    return [read_volume(Path(folder) / f"{step_name(k)}.tif")[0] for k in range(n)]


def run_preprocess(ctx):
    from analysis.chain import preprocess_series
    from analysis.io import write_volume

    s, d = ctx.scenario, ctx.scenario.dvc
    v = s.imaging.voxel_size_um
    volumes = _read_series(ctx.input("reconstruct"), s.n_steps)
    grid = _read_json(ctx.input("phantom") / "grid.json")
    if d.registration_box_um:
        region = _um_box_to_slices(d.registration_box_um, grid["origin_um"], v, grid["fov_offset_voxels"])
    else:
        foil, heads = recon_geometry(grid)
        nz, ny, nx = volumes[0].shape
        height = max((heads[0] - foil) // 4, int(np.ceil(d.subvolume_um / v)))
        region = (slice(foil + 1, foil + 1 + height), slice(2, ny - 2), slice(2, nx - 2))
    processed, transforms = preprocess_series(volumes, median_size=d.median_filter_size, region=region,
                                              arch=ctx.arch, progress=ctx.progress)
    for k, volume in enumerate(processed):
        write_volume(ctx.out / f"{step_name(k)}.tif", volume, v,
                     description="median-filtered, contrast-matched, registered onto step 0")
    _write_json(ctx.out / "registration.json", [
        {"step": k, "rotation": t.rotation.tolist(), "translation_voxels": t.translation_voxels.tolist(),
         "centre_voxels": t.centre_voxels.tolist(), "cc": t.cc, "matrix": t.matrix().tolist(),
         "region": [[r.start, r.stop] for r in region]}
        for k, t in enumerate(transforms)])


def dvc_settings(scenario, subvolume_um=None):
    """Subvolume, node spacing and search range of a scenario, in voxels."""
    d, v = scenario.dvc, scenario.imaging.voxel_size_um
    edge = int(round((subvolume_um or d.subvolume_um) / v))
    edge += 1 - edge % 2  # odd: the node is the subvolume's centre voxel
    return {"subvolume_voxels": edge, "node_spacing_voxels": max(int(round(d.node_spacing_um / v)), 1),
            "max_displacement_voxels": d.max_displacement_um / v}


def dvc_mask(grid, shape):
    """Sample region of the reference: between the foil and the head, whole field of view."""
    foil, heads = recon_geometry(grid)
    return _box_mask(shape, foil, heads[0], 0)


def run_dvc(ctx):
    from analysis.chain import write_dvc
    from analysis.dvc import correlate

    s = ctx.scenario
    v = s.imaging.voxel_size_um
    volumes = _read_series(ctx.input("preprocess"), s.n_steps)
    grid = _read_json(ctx.input("phantom") / "grid.json")
    mask = dvc_mask(grid, volumes[0].shape)
    edges = [s.dvc.subvolume_um]
    if s.validation.subvolume_study:
        edges += [e for e in s.dvc.subvolume_study_um if e != s.dvc.subvolume_um]
    jobs = [(k, e) for e in edges for k in range(1, s.n_steps)]
    for i, (k, edge_um) in enumerate(jobs):
        result = correlate(volumes[0], volumes[k], **dvc_settings(s, edge_um), mask=mask,
                           min_cc=s.dvc.cc_threshold, arch=ctx.arch,
                           progress=ctx.progress.sub(i / len(jobs), (i + 1) / len(jobs)))
        stem = step_name(k) if edge_um == s.dvc.subvolume_um else f"study_{step_name(k)}_edge{edge_um:g}um"
        write_dvc(ctx.out, stem, result, v)


def run_strain(ctx):
    from analysis.chain import strain_fields, write_strain

    s = ctx.scenario
    for k in range(1, s.n_steps):
        field = np.load(ctx.input("dvc") / f"{step_name(k)}.npz")
        fields = strain_fields(field["nodes"], field["displacement"], field["ok"])
        write_strain(ctx.out, step_name(k), field["nodes"], fields, s.imaging.voxel_size_um)


def pore_region(grid, shape, step, scenario):
    """Analysis region of one step: between foil and head, less the edge zone."""
    foil, heads = recon_geometry(grid)
    e = int(np.ceil(scenario.pores.edge_exclusion_um / scenario.imaging.voxel_size_um))
    return _box_mask(shape, foil + e, heads[step] - e, e)


def run_pores(ctx):
    from analysis.chain import analyse_pores
    from analysis.io import write_volume
    from analysis.pores import plot_cpsd, write_cpsd_csv, write_phase_fractions_csv

    s = ctx.scenario
    v = s.imaging.voxel_size_um
    grid = _read_json(ctx.input("phantom") / "grid.json")
    volumes = _read_series(ctx.input("preprocess"), s.n_steps)
    results, phases, rows = {}, {}, []
    for k, volume in enumerate(volumes):
        region = pore_region(grid, volume.shape, k, s)
        a = analyse_pores(volume, v, region=region, progress=ctx.progress.sub(k / s.n_steps, (k + 1) / s.n_steps))
        write_volume(ctx.out / f"{step_name(k)}_labels.tif", a.labels, v,
                     description="segmentation: 0 pore, 1 CBD, 2 NMC")
        write_cpsd_csv(ctx.out / f"cpsd_{step_name(k)}.csv", a.cpsd)
        results[step_name(k)] = a.cpsd
        phases[step_name(k)] = a.phases
        rows.append({"step": k, "thresholds": list(a.thresholds), "nmc": a.phases.nmc, "cbd": a.phases.cbd,
                     "pore": a.phases.pore, "inactive": a.phases.inactive,
                     "mean_pore_radius_um": a.cpsd.mean_radius_um})
    write_phase_fractions_csv(ctx.out / "phase_fractions.csv", phases)
    _write_json(ctx.out / "summary.json", rows)
    plot_cpsd(results, ctx.out / "cpsd.png")


# --- score -----------------------------------------------------------------

def truth_frame(run_dir):
    """The :class:`validation.frame.TruthFrame` of a run folder."""
    from synthcal.dem.io import read_trajectory
    from synthcal.truth import ParticlePoses
    from validation.frame import TruthFrame

    run_dir = Path(run_dir)
    trajectory = read_trajectory(run_dir / "dem")
    return TruthFrame(
        grid=_read_json(run_dir / "truth" / "grid.json"), radii_um=trajectory.steps[0].radii_um,
        poses=[ParticlePoses(st.positions_um, st.quaternions) for st in trajectory.steps],
        owner0=np.load(run_dir / "truth" / f"{step_name(0)}_owner.npy"),
        drift_voxels=_read_json(run_dir / "projections" / "drift_voxels.json"),
        registration=_read_json(run_dir / "analysis" / "preprocess" / "registration.json"))


def run_score(ctx):
    from analysis.chain import strain_fields
    from analysis.pores import cpsd, phase_fractions
    from analysis.io import read_volume
    from validation.frame import score_dvc
    from validation.score import tensor_rms_error

    s = ctx.scenario
    truth = truth_frame(ctx.run_dir)
    shape = read_volume(ctx.input("preprocess") / f"{step_name(0)}.tif")[0].shape
    pores = _read_json(ctx.input("pores") / "summary.json")
    n_det, off = shape[1], truth.grid["fov_offset_voxels"]

    def truth_pores(k):
        labels = read_volume(ctx.run_dir / "truth" / f"{step_name(k)}_labels.tif")[0]
        labels = labels[:, off:off + n_det, off:off + n_det]
        region = pore_region(truth.grid, shape, k, s)
        measured = cpsd(labels == 0, truth.v, mask=region)
        phases = phase_fractions(np.where(labels > 2, 0, labels).astype(np.uint8), mask=region)
        return ({"mean_radius_um": pores[k]["mean_pore_radius_um"], "truth_mean_radius_um": measured.mean_radius_um},
                {"inactive_fraction": pores[k]["inactive"], "truth_inactive_fraction": phases.inactive,
                 "nmc_fraction": pores[k]["nmc"], "truth_nmc_fraction": phases.nmc,
                 "pore_fraction": pores[k]["pore"], "truth_pore_fraction": phases.pore,
                 "cbd_fraction": pores[k]["cbd"], "truth_cbd_fraction": phases.cbd})

    steps, node_truth = [], {}
    n = s.n_steps
    for k in range(1, n):
        field = dict(np.load(ctx.input("dvc") / f"{step_name(k)}.npz"))
        dvc, combined, error = score_dvc(truth, field, k, shape)
        usable = field["ok"] & np.all(np.isfinite(combined), axis=1)
        measured_strain = np.load(ctx.input("strain") / f"{step_name(k)}.npz")["small_strain"]
        true_strain = strain_fields(field["nodes"], combined, usable)["small_strain"]
        pore_scores, phase_scores = truth_pores(k)
        steps.append({"step": k, "head_travel_um": s.compression.steps_um[k], "dvc": dvc,
                      "strain": tensor_rms_error(measured_strain, true_strain, valid=usable),
                      "registration": truth.registration_error(k), "pores": pore_scores, "phases": phase_scores})
        node_truth[k] = (combined, error, true_strain)
        ctx.progress(k / n)
    reference_pores, reference_phases = truth_pores(0)
    study = []
    if s.validation.subvolume_study:
        for edge_um in sorted(set([s.dvc.subvolume_um] + list(s.dvc.subvolume_study_um)), reverse=True):
            rows = []
            for k in range(1, n):
                stem = step_name(k) if edge_um == s.dvc.subvolume_um else f"study_{step_name(k)}_edge{edge_um:g}um"
                rows.append(score_dvc(truth, dict(np.load(ctx.input("dvc") / f"{stem}.npz")), k, shape)[0])
            study.append({"edge_um": edge_um, "mean_cc": float(np.nanmean([r["mean_cc"] for r in rows])),
                          "rms_error_voxels": float(np.nanmean([r["rms_error_voxels"] for r in rows])),
                          "ok_fraction": float(np.mean([r["ok_fraction"] for r in rows]))})
    scores = {"scenario": s.name, "seed": s.seed, "voxel_size_um": truth.v, "steps": steps,
              "reference": {"step": 0, "pores": reference_pores, "phases": reference_phases},
              "subvolume_study": study}
    if study:
        by_cc = max(study, key=lambda r: r["mean_cc"] if np.isfinite(r["mean_cc"]) else -2)
        by_error = min(study, key=lambda r: r["rms_error_voxels"] if np.isfinite(r["rms_error_voxels"]) else 1e9)
        scores["subvolume_choice"] = {"highest_mean_cc_edge_um": by_cc["edge_um"],
                                      "lowest_rms_error_edge_um": by_error["edge_um"]}
    (ctx.out / "scores.json").write_text(json.dumps(_finite(scores), indent=1) + "\n", encoding="utf-8")
    np.savez(ctx.out / "node_truth.npz", **{f"{step_name(k)}_{name}": arr for k, arrs in node_truth.items()
                                          for name, arr in zip(("displacement_voxels", "error_voxels", "strain"), arrs)})


def _finite(obj):
    """JSON has no NaN: write null for numbers that are not finite."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


# --- report ----------------------------------------------------------------

def _strain_mesh(labels, nodes, volumetric, voxel_size_um, cap_value, path_stem):
    """Surface of the segmented solid, coloured by the nearest node's volumetric strain."""
    import trimesh
    from matplotlib import colormaps
    from scipy.spatial import cKDTree
    from skimage.measure import marching_cubes

    solid = np.pad(labels > 0, 1)
    if solid.all() or not solid.any():
        return False
    verts, faces, _, _ = marching_cubes(solid.astype(np.float32), 0.5)
    verts -= 1
    finite = np.isfinite(volumetric)
    values = np.zeros(len(verts))
    if finite.any():
        values = volumetric[finite][cKDTree(nodes[finite]).query(verts)[1]]
    shown = np.clip(values, cap_value, -cap_value)
    colours = colormaps["coolwarm"]((shown - cap_value) / (-2 * cap_value))
    mesh = trimesh.Trimesh(vertices=verts[:, ::-1] * voxel_size_um, faces=faces[:, ::-1],
                           vertex_colors=(colours * 255).astype(np.uint8), process=False)
    mesh.export(f"{path_stem}.ply")
    mesh.export(f"{path_stem}.glb")
    return True


def run_report(ctx):
    import shutil

    from analysis.io import read_volume
    from validation import figures
    from validation.report import write_index

    s = ctx.scenario
    v = s.imaging.voxel_size_um
    out, run_dir, n = ctx.out, ctx.run_dir, s.n_steps
    scores = json.loads((ctx.input("score") / "scores.json").read_text())
    labels = [f"step {k} ({s.compression.steps_um[k]:g} µm)" for k in range(n)]
    figs, downloads = [], []

    images = []
    for k in range(n):
        stem = run_dir / "projections" / step_name(k)
        counts = read_volume(f"{stem}_counts.tif")[0]
        flats, darks = read_volume(f"{stem}_flats.tif")[0], read_volume(f"{stem}_darks.tif")[0]
        dark = darks.mean(axis=0)
        images.append((counts[len(counts) // 2] - dark) / np.maximum(flats.mean(axis=0) - dark, 1e-6))
    figures.radiographs(images, labels, out / "radiographs.png")
    figs.append(("radiographs.png", "Radiographs at 0° (transmission), per step"))

    volumes = _read_series(run_dir / "volumes", n)
    figures.virtual_slices(volumes, labels, v, out / "virtual_slices.png")
    figs.append(("virtual_slices.png", "Virtual x–z slices through the reconstructions"))

    fields, strains, vectors, errors, ccs, err_cc = [], [], [], [], [], []
    truth = np.load(ctx.input("score") / "node_truth.npz")
    for k in range(1, n):
        dvc = np.load(run_dir / "analysis" / "dvc" / f"{step_name(k)}.npz")
        strain = np.load(run_dir / "analysis" / "strain" / f"{step_name(k)}.npz")
        nodes = dvc["nodes"]
        eps_zz = np.where(dvc["ok"], strain["small_strain"][:, 0, 0], np.nan)
        strains.append((nodes, eps_zz))
        vectors.append(np.nan_to_num(dvc["displacement"]))
        ccs.append((nodes, dvc["cc"]))
        err = truth[f"{step_name(k)}_error_voxels"]
        errors.append((nodes, err))
        err_cc.append((err[dvc["ok"]], dvc["cc"][dvc["ok"]]))
        fields.append((dvc, strain))
    compressed = labels[1:]
    if compressed:
        figures.node_maps(strains, compressed, "ε_zz (capped)", out / "strain_maps.png", cmap="coolwarm",
                          vmin=s.dvc.strain_cap, vmax=-s.dvc.strain_cap, vectors=vectors, voxel_size_um=v)
        figs.append(("strain_maps.png", "Strain ε_zz on the central node plane with displacement vectors"))
        figures.node_maps(ccs, compressed, "correlation coefficient", out / "cc_maps.png", vmin=0, vmax=1,
                          voxel_size_um=v)
        figs.append(("cc_maps.png", "Correlation coefficient per node (central plane)"))
        figures.node_maps(errors, compressed, "true error (voxels)", out / "dvc_error_maps.png", cmap="magma",
                          vmin=0, voxel_size_um=v)
        figs.append(("dvc_error_maps.png", "DVC error against the truth per node (central plane)"))
        figures.error_vs_cc([e for e, _ in err_cc], [c for _, c in err_cc], compressed, out / "error_vs_cc.png")
        figs.append(("error_vs_cc.png", "True DVC error against correlation coefficient"))

    shutil.copyfile(run_dir / "analysis" / "pores" / "cpsd.png", out / "cpsd.png")
    figs.append(("cpsd.png", "Continuous pore size distribution of every step"))

    table = np.loadtxt(run_dir / "dem" / "force_displacement.csv", delimiter=",", skiprows=1, ndmin=2)
    figures.force_displacement(table[:, 1], table[:, 2], s.compression.steps_um, out / "force_displacement.png")
    figs.append(("force_displacement.png", "Head force against head travel (DEM)"))

    study = scores.get("subvolume_study", [])
    if study:
        figures.subvolume_study([r["edge_um"] for r in study], [r["mean_cc"] for r in study],
                                [r["rms_error_voxels"] for r in study], out / "subvolume_study.png")
        figs.append(("subvolume_study.png", "Mean CC and true RMS error against subvolume edge"))

    for k, (dvc, strain) in zip(range(1, n), fields):
        seg = read_volume(run_dir / "analysis" / "pores" / f"{step_name(k)}_labels.tif")[0]
        region = pore_region(_read_json(run_dir / "truth" / "grid.json"), seg.shape, k, s)
        stem = f"surface_strain_{step_name(k)}"
        if _strain_mesh(np.where(region, seg, 0), dvc["nodes"], strain["volumetric"], v, s.dvc.strain_cap,
                        out / stem):
            downloads += [(f"{stem}.ply", f"solid surface, {labels[k]}, volumetric strain as vertex colour"),
                          (f"{stem}.glb", "the same as glTF binary")]
        vtk = f"{step_name(k)}.vtk"
        shutil.copyfile(run_dir / "analysis" / "dvc" / vtk, out / f"dvc_{vtk}")
        downloads.append((f"dvc_{vtk}", f"DVC node field, {labels[k]}, for ParaView"))
    write_index(out, title=f"synthcal report: {s.name}", scenario_toml=(run_dir / "scenario.toml").read_text(),
                scores=scores, figures=figs, downloads=downloads)


STAGES = (
    Stage("dem", "dem", ("particles", "electrode", "pillar", "dem", "compression"), (),
          "packing and compressing the pillar", run_dem),
    Stage("phantom", "truth", ("particles", "imaging"), ("dem",),
          "voxelising particles into phantoms", run_phantom),
    Stage("projections", "projections", ("imaging",), ("phantom",),
          "simulating the nano-CT scans", run_projections),
    Stage("reconstruct", "volumes", ("imaging", "reconstruction"), ("projections",),
          "reconstructing the tomograms", run_reconstruct),
    Stage("preprocess", "analysis/preprocess", ("dvc",), ("reconstruct", "phantom"),
          "contrast matching, median filter, registration", run_preprocess),
    Stage("dvc", "analysis/dvc", ("dvc", "imaging", "validation"), ("preprocess", "phantom"),
          "digital volume correlation", run_dvc),
    Stage("strain", "analysis/strain", ("imaging",), ("dvc",),
          "strain from the DVC field", run_strain),
    Stage("pores", "analysis/pores", ("pores", "imaging"), ("preprocess", "phantom"),
          "segmentation, CPSD and phase fractions", run_pores),
    Stage("score", "validation", ("validation", "dvc", "pores"),
          ("dem", "phantom", "projections", "preprocess", "dvc", "strain", "pores"),
          "scoring the analysis against the truth", run_score),
    Stage("report", "report", ("validation", "dvc", "pores", "compression"),
          ("dem", "projections", "reconstruct", "dvc", "strain", "pores", "score"),
          "figures, meshes and the report page", run_report),
)

STAGES_BY_NAME = {s.name: s for s in STAGES}
