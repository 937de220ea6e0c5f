"""The stages of a synthetic experiment, as the pipeline runs them.

Each ``run_*`` function only wires: it reads its inputs through the context
(the scenario, and upstream outputs through :class:`synthcal.dataset.Run`),
calls one public function of a stage module and writes its outputs into
``ctx.out``. What they compute lives in ``synthcal.dem``, ``synthcal.phantom``,
``synthcal.xray``, ``analysis`` and ``validation``.
"""

import dataclasses
import json
import zlib
from pathlib import Path

import numpy as np

from synthcal.dataset import FOLDERS, Run, analysis_settings, compared_settings, step_name


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    Attributes
    ----------
    name : str
        Used on the command line (``--only``, ``--from``, ``--until``).
    sections : tuple of str
        What of the scenario the stage reads (its cache key with the seed):
        whole sections (``"dvc"``), single keys (``"imaging.voxel_size_um"``)
        or top-level keys (``"name"``); ``"*"`` is the whole scenario.
    upstream : tuple of str
        Stages whose outputs it reads.
    what : str
        What it does, for the progress line.
    run : callable
        ``run(ctx)``; writes into ``ctx.out``.
    """

    name: str
    sections: tuple
    upstream: tuple
    what: str
    run: object

    @property
    def folder(self):
        """Output folder, relative to the run folder."""
        return FOLDERS[self.name]


@dataclasses.dataclass
class StageContext:
    """What a stage function gets: the scenario, the run (inputs), where to write, the backend."""

    scenario: object
    run: Run
    out: Path
    arch: str
    progress: object


def _write_json(path, data):
    Path(path).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _step_seed(scenario, stage, k):
    """Independent, reproducible seed for one stage and one load step."""
    return int(np.random.SeedSequence([scenario.seed, zlib.crc32(stage.encode()), k]).generate_state(1)[0])


def _suffix(scenario):
    """File suffix of the stored volumes (``[output] format``)."""
    from analysis.io import VOLUME_SUFFIXES

    return VOLUME_SUFFIXES[scenario.output.format]


def _steps(ctx, work):
    """``work(k, progress)`` for every load step, with the stage's progress split between them."""
    n = ctx.scenario.n_steps
    return [work(k, ctx.progress.sub(k / n, (k + 1) / n)) for k in range(n)]


def run_dem(ctx):
    from synthcal.dem.io import write_trajectory
    from synthcal.dem.protocol import simulate_pillar

    write_trajectory(simulate_pillar(ctx.scenario, arch=ctx.arch, progress=ctx.progress), ctx.out)


def _render(ctx, render, step, binder, foil_top_z_um, **where):
    """``render`` (:func:`synthcal.phantom.voxelise` or :func:`synthcal.phantom.attenuation_rows`) of one DEM
    step with the scenario's materials, on the grid ``where`` says (``voxel_size_um``, ``shape``,
    ``origin_um``, ``supersampling``, ...)."""
    s, im = ctx.scenario, ctx.scenario.imaging
    return render(step.positions_um, step.radii_um, step.kinds, step.quaternions, seed=s.seed,
                  head_z_um=step.head_z_um, foil_top_z_um=foil_top_z_um, energy_kev=im.energy_kev,
                  head_material=im.head_material, foil_material=im.foil_material,
                  cbd_nanoporosity=s.particles.cbd_nanoporosity, binder=binder, bonds_intact=step.bonds_intact,
                  pieces=step.pieces, arch=ctx.arch, **where)


def run_phantom(ctx):
    from analysis.io import write_volume
    from analysis.phases import Phase
    from synthcal.binder import design_binder
    from synthcal.grid import Grid
    from synthcal.materials import binder_volume_per_nmc_volume
    from synthcal.phantom import voxelise
    from synthcal.pieces import fracture_counts
    from synthcal.scan_truth import scan_displacement, write_displacement
    from synthcal.truth import ParticlePoses, phase_summary, radius_maps_um
    from synthcal.xray import drift_voxels

    s, im, p = ctx.scenario, ctx.scenario.imaging, ctx.scenario.particles
    steps = ctx.run.trajectory().steps
    grid = Grid.around_particles(steps[0].positions_um, steps[0].radii_um, [st.head_z_um for st in steps],
                                 voxel_size_um=im.voxel_size_um, field_of_view_um=im.field_of_view_um,
                                 foil_top_z_um=0.0, foil_margin_um=im.foil_margin_um, head_margin_um=im.head_margin_um)
    st = steps[0]
    binder, census = design_binder(
        st.positions_um, st.radii_um, st.kinds, st.quaternions, st.bonds, st.bonds_intact,
        volume_ratio=binder_volume_per_nmc_volume(p.mass_ratio_nmc_carbon_pvdf, p.cbd_nanoporosity),
        bridge_fraction=p.cbd_bridge_fraction, voxel_size_um=grid.voxel_size_um, shape=grid.shape,
        origin_um=grid.origin_um, head_z_um=st.head_z_um, foil_top_z_um=grid.foil_top_z_um, arch=ctx.arch)

    reference = {}

    def voxelise_step(k, progress):
        phantom = _render(ctx, voxelise, steps[k], binder, grid.foil_top_z_um, voxel_size_um=grid.voxel_size_um,
                          shape=grid.shape, origin_um=grid.origin_um, supersampling=im.supersampling,
                          progress=progress)
        stem, suffix, v = ctx.out / step_name(k), _suffix(s), grid.voxel_size_um
        write_volume(f"{stem}_labels{suffix}", phantom.labels, v, description=f"labels: {Phase.legend()}")
        write_volume(f"{stem}_mu{suffix}", phantom.mu_per_um, v, description="linear attenuation, 1/um")
        if s.output.format == "zarr":
            write_volume(f"{stem}_owner{suffix}", phantom.owner, v, description="particle index, -1: none")
        else:  # ImageJ has no int32; .npy is memory-mapped when read
            np.save(f"{stem}_owner.npy", phantom.owner)
        phantom.bridges.write(f"{stem}_bridges.npz")
        if k == 0:
            reference.update(owner=phantom.owner, bridges=phantom.bridges)
        # the truth's pore sizes, made once: the summary and scoring (both modes) read them
        radius_maps = radius_maps_um(phantom.labels, grid, arch=ctx.arch)
        for name, radius_um in radius_maps.items():
            write_volume(f"{stem}_radius_{name}.zarr", radius_um, v,
                         description=f"truth's local radius of the {name} phase, µm (synthcal.truth.RADIUS_MAPS)")
        return {**phase_summary(phantom.labels, grid, k, radius_maps=radius_maps, arch=ctx.arch),
                **fracture_counts(steps[k].pieces)}

    _write_json(ctx.out / "summary.json", _steps(ctx, voxelise_step))
    binder.write(ctx.out / "binder.npz")
    _write_json(ctx.out / "binder.json", {**dataclasses.asdict(census), "film_thickness_um": binder.film_thickness_um})
    grid.write(ctx.out / "grid.json")
    drift = drift_voxels(im.drift_um, im.voxel_size_um, s.n_steps)
    poses = [ParticlePoses(st.positions_um, st.quaternions, st.bonds_intact, st.pieces) for st in steps]
    for k in range(1, s.n_steps):
        write_displacement(ctx.out / f"{step_name(k)}_displacement.zarr",
                           scan_displacement(reference["owner"], poses[0], poses[k], grid, drift[k],
                                             bridges=reference["bridges"]), grid.voxel_size_um, k)


def _simulate(ctx, simulate_scan, attenuation_rows, k, angles, motion_voxels, progress):
    """The scan of step ``k`` (:class:`synthcal.xray.Scan`), the same bytes whichever stage simulates it.

    The object is rendered from the DEM particles and the binder, slab by
    slab, on a grid ``[imaging] projection_oversampling`` times finer than
    the reconstruction (:func:`synthcal.phantom.attenuation_rows`), never
    from the stored phantom: see :mod:`synthcal.xray`. The functions are
    passed in so that each stage that simulates imports them itself: a
    stage's cache key covers the modules its ``run`` imports.
    """
    s, im, grid = ctx.scenario, ctx.scenario.imaging, ctx.run.grid
    o = im.projection_oversampling
    render_rows = _render(ctx, attenuation_rows, ctx.run.trajectory().steps[k], ctx.run.binder(), grid.foil_top_z_um,
                          voxel_size_um=grid.voxel_size_um, shape=grid.shape, origin_um=grid.origin_um,
                          oversampling=o, supersampling=im.supersampling)
    return simulate_scan(
        render_rows, grid.shape, angles, oversampling=o, motion_voxels=motion_voxels,
        incident_counts=im.incident_counts, n_det=grid.n_det, n_flats=im.n_flats, dark_counts=im.dark_counts,
        read_noise_counts=im.read_noise_counts, psf_sigma_px=im.psf_sigma_px, ring_gain_sigma=im.ring_gain_sigma,
        rng_seed=_step_seed(s, "projections", k), arch=ctx.arch, progress=progress)


def run_projections(ctx):
    """Angles, drift, the motion during each scan and, unless ``[output] keep_projections = false``, every scan."""
    from analysis.io import write_volume
    from synthcal.phantom import attenuation_rows
    from synthcal.xray import (drift_voxels, limited_angles_deg, scan_motion_voxels, scan_velocity_voxels,
                               simulate_scan)

    s, im = ctx.scenario, ctx.scenario.imaging
    angles = limited_angles_deg(im.n_projections, im.half_range_deg)
    drift = drift_voxels(im.drift_um, im.voxel_size_um, s.n_steps)
    velocity = scan_velocity_voxels(im.drift_rate_um_per_h, im.creep_um_per_h, im.scan_time_h, im.voxel_size_um,
                                    s.n_steps)
    motion = np.stack([scan_motion_voxels(angles, drift[k], velocity[k]) for k in range(s.n_steps)])
    np.savetxt(ctx.out / "angles_deg.csv", angles, fmt="%.10g", header="angle_deg", comments="")

    def scan_step(k, progress):
        scan = _simulate(ctx, simulate_scan, attenuation_rows, k, angles, motion[k], progress)
        for name in ("counts", "flats", "darks"):
            write_volume(ctx.out / f"{step_name(k)}_{name}{_suffix(s)}", getattr(scan, name), im.voxel_size_um,
                         description=f"{name}: (frame, row z, detector column)")

    if s.output.keep_projections:
        _steps(ctx, scan_step)
    _write_json(ctx.out / "drift_voxels.json", drift.tolist())
    _write_json(ctx.out / "motion_voxels.json", motion.tolist())


def run_reconstruct(ctx):
    """Each step's tomogram, from the stored projections or, when they are not kept, from its scan simulated here."""
    from analysis.io import write_volume
    from analysis.reconstruct import reconstruct
    from synthcal.phantom import attenuation_rows
    from synthcal.xray import simulate_scan

    s, r, v = ctx.scenario, ctx.scenario.reconstruction, ctx.scenario.imaging.voxel_size_um
    angles, motion = ctx.run.angles_deg(), ctx.run.motion_voxels()

    def reconstruct_step(k, progress):
        if s.output.keep_projections:
            projections, tail = ctx.run.projections(k), progress
        else:
            scan = _simulate(ctx, simulate_scan, attenuation_rows, k, angles, motion[k], lambda f: progress(0.5 * f))
            projections, tail = (scan.counts, scan.flats, scan.darks), (lambda f: progress(0.5 + 0.5 * f))
        volume = reconstruct(*projections, angles, method=r.method, filter=r.filter, padding=r.padding,
                             iterations=r.sirt_iterations, arch=ctx.arch, progress=tail)
        volume /= np.float32(v)
        write_volume(ctx.out / f"{step_name(k)}{_suffix(s)}", volume, v,
                     description="reconstructed linear attenuation, 1/um")

    _steps(ctx, reconstruct_step)


def run_preprocess(ctx):
    from analysis.chain import preprocess_series, write_preprocessed

    settings = analysis_settings(ctx.scenario, ctx.run.grid)
    pre = preprocess_series(ctx.run.volumes(), settings, sample_rows=ctx.run.grid.sample_rows, arch=ctx.arch,
                            progress=ctx.progress)
    write_preprocessed(ctx.out, pre, settings.voxel_size_um, suffix=_suffix(ctx.scenario))


def run_dvc(ctx):
    from analysis.chain import correlate_series, write_dvc

    settings = analysis_settings(ctx.scenario, ctx.run.grid)
    results = correlate_series(ctx.run.processed_volumes(), settings, sample_rows=ctx.run.grid.sample_rows,
                               arch=ctx.arch, progress=ctx.progress)
    write_dvc(ctx.out, results, settings, ctx.run.registration()[0])


def run_strain(ctx):
    from analysis.chain import strain_fields, write_strain

    for k in range(1, ctx.scenario.n_steps):
        field = ctx.run.dvc(k)
        write_strain(ctx.out, k, field["nodes"], strain_fields(field["nodes"], field["displacement_vox"], field["ok"]),
                     ctx.scenario.imaging.voxel_size_um)


def run_pores(ctx):
    from analysis.chain import pores_series, write_pores

    settings = analysis_settings(ctx.scenario, ctx.run.grid)
    analyses = pores_series(ctx.run.processed_volumes(), settings, sample_rows=ctx.run.grid.sample_rows,
                            arch=ctx.arch, progress=ctx.progress)
    write_pores(ctx.out, analyses, settings, suffix=_suffix(ctx.scenario))


def run_compare(ctx):
    """The whole chain in the other mode, into ``analysis-compare/`` (its four folders and ``mode.json``);
    only ``mode.json`` (saying so) when ``[analysis] compare_modes`` is off."""
    from analysis.chain import write_chain
    from synthcal.scenario import other_mode

    mode = other_mode(ctx.scenario.analysis.mode)
    if ctx.scenario.analysis.compare_modes:
        settings = compared_settings(ctx.scenario, ctx.run.grid)
        write_chain(ctx.run.volumes(), settings, ctx.out, sample_rows=ctx.run.grid.sample_rows, arch=ctx.arch,
                    progress=ctx.progress)
    _write_json(ctx.out / "mode.json", {"mode": mode, "compared": ctx.scenario.analysis.compare_modes})


def run_score(ctx):
    from validation.run import score_run

    scores, node_truth = score_run(ctx.run, arch=ctx.arch, progress=ctx.progress)
    (ctx.out / "scores.json").write_text(json.dumps(scores, indent=1) + "\n", encoding="utf-8")
    np.savez(ctx.out / "node_truth.npz", **node_truth)


def run_report(ctx):
    from validation.report import write_report

    write_report(ctx.run, ctx.out)


_V = "imaging.voxel_size_um"
_FORMAT = "output.format"
_MODE = "analysis.mode"
_PHANTOM_IMAGING = tuple(f"imaging.{key}" for key in ("voxel_size_um", "field_of_view_um", "foil_margin_um",
                                                      "head_margin_um", "energy_kev", "supersampling",
                                                      "head_material", "foil_material", "drift_um"))

STAGES = (
    Stage("dem", ("particles", "electrode", "pillar", "dem", "compression", "fracture", "imaging.field_of_view_um"), (),
          "packing and compressing the pillar", run_dem),
    Stage("phantom", ("particles.cbd_nanoporosity", "particles.mass_ratio_nmc_carbon_pvdf",
                      "particles.cbd_bridge_fraction", *_PHANTOM_IMAGING, _FORMAT), ("dem",),
          "voxelising particles into phantoms", run_phantom),
    # the scans are rendered from the particles (and the phantom's binder) on a finer grid
    Stage("projections", ("imaging", "particles.cbd_nanoporosity", _FORMAT, "output.keep_projections"),
          ("dem", "phantom"), "simulating the nano-CT scans", run_projections),
    # without stored projections the reconstruction simulates the scans as the projections stage would
    Stage("reconstruct", (_V, "reconstruction", _FORMAT), ("projections", "dem", "phantom"),
          "reconstructing the tomograms", run_reconstruct),
    Stage("preprocess", (_V, "dvc", _MODE, _FORMAT), ("reconstruct", "phantom"),
          "contrast matching, median filter, registration", run_preprocess),
    Stage("dvc", (_V, "dvc", _MODE), ("preprocess", "phantom"), "digital volume correlation", run_dvc),
    Stage("strain", (_V,), ("dvc",), "strain from the DVC field", run_strain),
    Stage("pores", (_V, "dvc", "pores", _MODE, _FORMAT), ("preprocess", "phantom"),
          "segmentation, CPSD and phase fractions",
          run_pores),
    Stage("compare", (_V, "dvc", "pores", "analysis"), ("reconstruct", "phantom"),
          "the analysis chain in the other mode", run_compare),
    Stage("score", ("name", _V, "dvc", "pores", "analysis", "compression.steps_um"),
          ("dem", "phantom", "projections", "preprocess", "dvc", "strain", "pores", "compare"),
          "scoring the analysis against the truth", run_score),
    # the page shows the whole resolved scenario
    Stage("report", ("*",),
          ("dem", "phantom", "projections", "reconstruct", "dvc", "strain", "pores", "compare", "score"),
          "figures, meshes and the report page", run_report),
)

STAGES_BY_NAME = {s.name: s for s in STAGES}
