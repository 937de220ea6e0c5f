"""The lab's analysis chain over a series of scans: one settings object, one file layout.

preprocess (median filter, contrast matching, rigid registration onto the
first scan) → DVC of every later scan against the first → strain →
segmentation, CPSD and phase fractions. Every choice (which contrast match,
which registration region, which DVC, segmentation and CPSD) is a function
held by the settings (:mod:`analysis.settings`: the "best" and the "paper"
modes). The synthcal pipeline runs the four steps as four cached stages;
``synthcal analyse`` (real scans) runs :func:`run_chain`. Both call the same
step functions and writers, so a synthetic run is analysed, and its files
named, exactly as a real one::

    preprocess/step{k}.tif          filtered, contrast-matched, registered volume
    preprocess/registration.json    mode, region registered on and the rigid transform per step
    dvc/step{k}.npz, .vtk, .csv     node field at the chosen subvolume edge (k >= 1)
    dvc/step{k}.json                its frame, voxel size and registration transform
    dvc/study_step{k}_edge{E}vox.*  the same at the other edges of the subvolume study
    strain/step{k}.npz, .csv        strain per node, from the total displacement
    pores/step{k}_labels.tif        segmentation (best: 0 pore, 1 CBD, 2 NMC; paper: 0 not NMC, 2 NMC)
    pores/cpsd_step{k}.csv, cpsd.png, phase_fractions.csv, summary.json

Volumes are indexed (z, y, x) in voxels; files say their voxel size in µm.

Displacement frames. The DVC correlates the reference with the *registered*
scan, so what it measures is the residual after the rigid registration. Every
DVC file holds, per node (positions ``nodes_vox`` and ``nodes_um`` in the
reference scan):

- ``displacement_vox``, ``displacement_um``: the total displacement from the
  reference scan to the deformed scan, in the reference scan's voxel frame
  (registration composed back in, :func:`analysis.transform.total_displacement`);
  this is what a user compares with another DVC code run on the two scans;
- ``residual_displacement_vox``: the displacement left after the registration.

Both are NaN at every node that is not ``ok``; ``status``
(:class:`analysis.dvc.Status`) says why.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from analysis.dvc import PreparedPair, Status
from analysis.io import atomic_output, write_volume
from analysis.layout import dvc_stem, step_name
from analysis.phases import Phase
from analysis.pores import phase_fractions, plot_cpsd, write_cpsd_csv, write_phase_fractions_csv
from analysis.preprocess import apply_rigid, median_filter, register_rigid
from analysis.regions import foot_region, sample_mask
from analysis.settings import ChainSettings  # noqa: F401  (the chain's one settings object)
from analysis.strain import (displacement_gradient, equivalent_strain, green_lagrange, principal_strains,
                             small_strain, volumetric_strain)
from analysis.transform import RigidTransform, total_displacement
from analysis.vtk import write_vtk_nodes


@dataclass(frozen=True)
class Preprocessed:
    """Result of :func:`preprocess_series`.

    Attributes
    ----------
    volumes : list of float32 ndarray
        The filtered reference, then each later scan filtered, matched to the
        reference's grey levels and resampled onto its grid.
    transforms : list of RigidTransform
        Per scan; reference position p shows the moving scan's material at
        ``transform.apply(p)``. The first is the identity.
    region : tuple of 3 slices
        The reference box registered on.
    region_rule : str
        How the box was chosen.
    mode : str
        The settings' mode.
    """

    volumes: list
    transforms: list
    region: tuple
    region_rule: str
    mode: str


def check_series(volumes, names=None):
    """Refuse scans the chain cannot use, with one line naming the scan.

    Parameters
    ----------
    volumes : list of ndarray
        The reference first.
    names : list of str, optional
        How to name each scan in a message (file names); default ``volumes[k]``.

    Returns
    -------
    tuple of 3 int
        The common shape.
    """
    if len(volumes) < 1:
        raise ValueError("volumes: expected at least one volume")
    names = names or [f"volumes[{k}]" for k in range(len(volumes))]
    shape = np.shape(volumes[0])
    for name, v in zip(names, volumes):
        v = np.asarray(v)
        if v.ndim != 3 or not np.issubdtype(v.dtype, np.number):
            raise ValueError(f"{name}: expected a 3D numeric volume (z, y, x), got shape {v.shape} dtype {v.dtype}")
        if v.shape != shape:
            raise ValueError(f"{name}: expected shape {shape} like the reference, got {v.shape}")
        bad = int(np.count_nonzero(~np.isfinite(v))) if np.issubdtype(v.dtype, np.floating) else 0
        if bad:
            raise ValueError(f"{name}: {bad} voxels are NaN or Inf; expected finite grey values")
        if v.min() == v.max():
            raise ValueError(f"{name}: every voxel is {v.flat[0]}; expected a scan with some contrast")
    return shape


def check_subvolumes(shape, settings):
    """Refuse subvolume edges larger than the volume, in one line."""
    for edge in settings.subvolumes_voxels:
        if edge > min(shape):
            raise ValueError(f"subvolume: {edge} voxels ({edge * settings.voxel_size_um:g} um) is larger than the "
                             f"volume's smallest extent, {min(shape)} voxels of shape {shape}")


def preprocess_series(volumes, settings, *, sample_rows=None, names=None, arch="cpu", progress=None):
    """Median filter, contrast matching and rigid registration onto the first scan.

    Parameters
    ----------
    volumes : list of (nz, ny, nx) ndarray
        Reconstructions, the reference (uncompressed) first.
    settings : ChainSettings
    sample_rows : list of (int, int), optional
        Per scan, the sample's first and end row (default: all rows).
    names : list of str, optional
        Names of the scans for error messages (see :func:`check_series`).
    arch : {"cpu", "gpu"}
    progress : callable, optional

    Returns
    -------
    Preprocessed
    """
    n = len(volumes)
    names = names or [f"volumes[{k}]" for k in range(n)]
    shape = check_series(volumes, names)
    rows = sample_rows[0] if sample_rows else None

    def filtered(v):
        v = np.asarray(v, dtype=np.float32)
        return median_filter(v, size=settings.median_size, arch=arch) if settings.median_size > 1 else v

    reference = filtered(volumes[0])
    if settings.registration_box is None:
        region = settings.registration_region(reference, rows, settings.subvolume_voxels)
        rule = _summary(settings.registration_region)
    else:
        region = tuple(slice(a, b) for a, b in settings.registration_box)
        rule = "the registration box given by hand"
        if any(not 0 <= r.start < r.stop <= extent for r, extent in zip(region, shape)):
            raise ValueError(f"registration box: voxels {[[r.start, r.stop] for r in region]} are not inside "
                             f"the volume of shape {shape}")
    # the foot: the pin holds it still, so its grey levels differ between scans by the scanner only
    foot = foot_region(reference, rows, settings.subvolume_voxels)
    processed, transforms = [reference], [RigidTransform.identity(shape)]
    for k in range(1, n):
        moving = settings.match_contrast(filtered(volumes[k]), reference, foot)
        transform = register_rigid(moving, reference, region=region, arch=arch)
        check_registration(transform, region, names[k])
        processed.append(apply_rigid(moving, transform, arch=arch))
        transforms.append(transform)
        if progress:
            progress(k / max(n - 1, 1))
    return Preprocessed(volumes=processed, transforms=transforms, region=region, region_rule=rule,
                        mode=settings.mode)


def correlate_series(volumes, settings, *, sample_rows=None, arch="cpu", progress=None):
    """DVC of every later scan against the first, at every subvolume edge of the settings.

    Parameters
    ----------
    volumes : list of ndarray
        Preprocessed volumes, reference first.
    settings : ChainSettings
        Its ``correlate`` runs each pass.
    sample_rows : list of (int, int), optional
        Per scan, the sample rows; the reference's go to ``settings.correlate``
        (the best mode skips nodes whose subvolume lies mostly outside them).

    Returns
    -------
    dict
        ``(k, edge_voxels) -> DVCResult`` for k >= 1.
    """
    check_subvolumes(volumes[0].shape, settings)
    rows = sample_rows[0] if sample_rows else None
    edges = settings.subvolumes_voxels
    n_jobs = (len(volumes) - 1) * len(edges)
    results = {}
    for k in range(1, len(volumes)):
        # every edge correlates the same pair: prepared once per step, one step's in memory at a time
        prepared = PreparedPair(volumes[0], volumes[k], arch)
        for j, edge in enumerate(edges):
            i = (k - 1) * len(edges) + j
            results[k, edge] = settings.correlate(
                volumes[0], volumes[k], edge, settings, sample_rows=rows, arch=arch, prepared=prepared,
                progress=None if progress is None else _sub(progress, i / n_jobs, (i + 1) / n_jobs))
    return results


def strain_fields(nodes, displacement, ok):
    """Strain measures at each node from a DVC field (voxels in, dimensionless out).

    Returns
    -------
    dict of ndarray
        ``gradient`` (N, 3, 3), ``small_strain`` and ``green_lagrange``
        (N, 3, 3), ``volumetric``, ``equivalent`` (N,), ``principal``
        (N, 3) descending. NaN at nodes that are not ``ok`` and where the fit
        had too few ok neighbours.
    """
    gradient = displacement_gradient(nodes, displacement, ok)
    gradient[~np.asarray(ok, dtype=bool)] = np.nan
    eps = small_strain(gradient)
    return {"gradient": gradient, "small_strain": eps, "green_lagrange": green_lagrange(gradient),
            "volumetric": volumetric_strain(eps), "equivalent": equivalent_strain(eps),
            "principal": principal_strains(eps)}


@dataclass(frozen=True)
class PoreAnalysis:
    """Segmentation and pore measures of one scan.

    Attributes
    ----------
    segmentation : analysis.segment.Segmentation
    cpsd : analysis.pores.CPSDResult
        Of label PORE (the phases ``segmentation.pore_phases``) inside the sample rows.
    phases : analysis.pores.PhaseFractions
    """

    segmentation: object
    cpsd: object
    phases: object


def analyse_pores(volume, settings, region=None, sample=None, *, arch="cpu", progress=None):
    """Segmentation, CPSD of the space labelled PORE, phase fractions (the settings' choices).

    Parameters
    ----------
    volume : (nz, ny, nx) ndarray
        Median-filtered reconstruction.
    settings : ChainSettings
        Its ``segment`` and ``pore_size``.
    region : bool ndarray, optional
        Analysis region (the sample without its edge zone, head and foil):
        the histogram, the counted voxels and the fractions.
    sample : bool ndarray, optional
        The sample rows: outside them (the head, the foil) nothing is pore,
        so the head and the foil bound the pores as the solid does.
    """
    seg = settings.segment(volume, region)
    pore_space = seg.labels == Phase.PORE
    if sample is not None:
        pore_space &= sample
    return PoreAnalysis(segmentation=seg, phases=phase_fractions(seg.labels, mask=region),
                        cpsd=settings.pore_size(pore_space, settings.voxel_size_um, mask=region, progress=progress,
                                                arch=arch))


def pores_series(volumes, settings, *, sample_rows=None, arch="cpu", progress=None):
    """:func:`analyse_pores` of every scan inside its sample rows less the edge exclusion."""
    n = len(volumes)

    def rows(k):
        return sample_rows[k] if sample_rows else None

    return [analyse_pores(v, settings, region=sample_mask(v.shape, rows(k), settings.edge_exclusion_voxels),
                          sample=sample_mask(v.shape, rows(k)), arch=arch,
                          progress=None if progress is None else _sub(progress, k / n, (k + 1) / n))
            for k, v in enumerate(volumes)]


def _sub(progress, lo, hi):
    return lambda fraction: progress(lo + (hi - lo) * fraction)


# The pin and the head hold the sample, and register_rigid converges only from turns of a few degrees: a
# fit below this CC or beyond this turn followed something other than the sample. Measured: fits that
# followed the drift reached CC 0.92-0.94 (paper, the box on the foil; best mode's slab on the pin 0.91-0.96 on
# paper and quick), with turns under 0.7 deg, and 0.30-0.62 on the lowest quarter of the sample, which the load
# compresses (best mode's region until 5 Dec 2026); a scan unrelated to its reference fits CC 0.19 with a
# 22 deg turn on that quarter, but CC 0.30 with a 10 deg turn on best mode's 5-row slab of a 30-voxel cube
# (few voxels: the turn, not the CC, refuses it there); the paper run's box 13-21 um above the foil fitted
# CC 0.37-0.38 with 12 and 24 deg turns, caught by the turn.
MIN_REGISTRATION_CC = 0.3
MAX_REGISTRATION_TURN_DEG = 5.0


def check_registration(transform, region, name):
    """Refuse, in one line naming the scan, a rigid fit that did not follow the sample.

    Parameters
    ----------
    transform : RigidTransform
        From :func:`analysis.preprocess.register_rigid`.
    region : tuple of 3 slices
        The box it was fitted on (named in the message).
    name : str
        The moving scan's name.

    Raises
    ------
    ValueError
        When ``transform.cc < MIN_REGISTRATION_CC`` or its rotation exceeds
        ``MAX_REGISTRATION_TURN_DEG``.
    """
    turn_deg = transform.rotation_angle_deg
    if transform.cc < MIN_REGISTRATION_CC or turn_deg > MAX_REGISTRATION_TURN_DEG:
        box = ", ".join(f"{axis} {r.start}-{r.stop}" for axis, r in zip("zyx", region))
        raise ValueError(f"{name}: the rigid registration on the box ({box} voxels) reached CC {transform.cc:.2f} "
                         f"(expected >= {MIN_REGISTRATION_CC}) with a {turn_deg:.1f} deg turn (expected <= "
                         f"{MAX_REGISTRATION_TURN_DEG:g}), so it did not follow the sample; give a registration box "
                         "on still material by hand ([dvc] registration_box_um, or --register-box-um)")


def _summary(function):
    """The first paragraph of ``function``'s docstring in one line (its name if it has none)."""
    paragraph = (function.__doc__ or function.__name__).strip().split("\n\n")[0]
    return " ".join(line.strip() for line in paragraph.splitlines())


# --- files -----------------------------------------------------------------

def write_preprocessed(folder, pre, voxel_size_um, *, suffix=".tif"):
    """``step{k}.tif`` (or ``suffix``: ``.zarr``) and ``registration.json`` (region and transforms, see
    :class:`Preprocessed`)."""
    folder = Path(folder)
    for k, volume in enumerate(pre.volumes):
        write_volume(folder / f"{step_name(k)}{suffix}", volume, voxel_size_um,
                     description="median-filtered, contrast-matched, registered onto step 0")
    record = {"frame": "a reference voxel p shows the step's material at transform.apply(p) "
                       "= centre + translation + rotation (p - centre), voxels (z, y, x) of the scan",
              "voxel_size_um": voxel_size_um, "mode": pre.mode, "region_rule": pre.region_rule,
              "region_voxels": [[r.start, r.stop] for r in pre.region],
              "steps": [{"step": k, **t.to_dict()} for k, t in enumerate(pre.transforms)]}
    with atomic_output(folder / "registration.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


DVC_FRAME = ("displacement_vox/_um: total displacement from the reference scan to the deformed scan, "
             "reference-scan voxels (z, y, x) / um; residual_displacement_vox: after the rigid registration "
             "(moving position of reference point p: registration.apply(p)); NaN where not ok")


DVC_CSV_COLUMNS = ("z_vox", "y_vox", "x_vox", "z_um", "y_um", "x_um", "uz_vox", "uy_vox", "ux_vox", "uz_um", "uy_um",
                   "ux_um", "residual_uz_vox", "residual_uy_vox", "residual_ux_vox", "cc", "ok", "status")


def write_dvc(folder, results, settings, transforms):
    """Every node field of :func:`correlate_series`: ``.npz`` (arrays), ``.vtk`` (ParaView, µm),
    ``.csv`` (one row per node) and ``.json`` (frame, voxel size, registration transform).

    Parameters
    ----------
    folder : Path
    results : dict
        ``(k, edge_voxels) -> DVCResult`` on registered volumes.
    settings : ChainSettings
    transforms : list of RigidTransform
        The registration of each scan (:class:`Preprocessed`).

    The VTK keeps NaN displacement at nodes that are not ok and carries
    ``ok`` and ``status`` arrays, so ParaView can tell a failed node from a
    motionless one.
    """
    v = settings.voxel_size_um
    for (k, edge), result in results.items():
        stem = Path(folder) / dvc_stem(k, edge, settings.subvolume_voxels)
        total = total_displacement(transforms[k], result.nodes, result.displacement)
        np.savez(f"{stem}.npz", nodes=result.nodes, nodes_um=result.nodes * v, displacement_vox=total,
                 displacement_um=total * v, residual_displacement_vox=result.displacement, cc=result.cc,
                 ok=result.ok, iterations=result.iterations, status=result.status,
                 residual_displacement_gradient=result.displacement_gradient,
                 subvolume_voxels=result.subvolume_voxels, voxel_size_um=v,
                 registration_matrix=transforms[k].matrix(), frame=DVC_FRAME)
        write_vtk_nodes(f"{stem}.vtk", result.nodes * v,
                        {"displacement_um": total * v, "residual_displacement_um": result.displacement * v,
                         "cc": result.cc, "ok": result.ok.astype(np.int32), "status": result.status.astype(np.int32)},
                        title="synthcal DVC nodes (um): total displacement in the reference scan's frame; "
                              f"see {stem.name}.json")
        table = np.column_stack([result.nodes, result.nodes * v, total, total * v, result.displacement,
                                 result.cc, result.ok, result.status])
        with atomic_output(f"{stem}.csv") as tmp, open(tmp, "w", encoding="utf-8") as fh:
            fh.write(f"# {DVC_FRAME}; voxel_size_um={v:g}; registration matrix [R|t] (moving = R p + t): "
                     f"{json.dumps(transforms[k].matrix().tolist())}\n")
            fh.write(f"{','.join(DVC_CSV_COLUMNS)}\n")
            np.savetxt(fh, table, delimiter=",", fmt="%.17g")
        with atomic_output(f"{stem}.json") as tmp:
            tmp.write_text(json.dumps({"frame": DVC_FRAME, "voxel_size_um": v, "step": k, "subvolume_voxels": edge,
                                       "mode": settings.mode, "dvc": _summary(settings.correlate),
                                       "registration": transforms[k].to_dict(),
                                       "status": {s.name: int(s) for s in Status}}, indent=1) + "\n")


def write_strain(folder, k, nodes, fields, voxel_size_um):
    """Strain of step ``k`` as ``step{k}.npz`` and a per-node CSV (µm positions).

    The chain computes it from the total displacement (a rigid registration
    changes no strain, to first order in its rotation).
    """
    stem = Path(folder) / step_name(k)
    np.savez(f"{stem}.npz", nodes=nodes, **fields)
    eps = fields["small_strain"]
    table = np.column_stack([nodes * voxel_size_um, eps[:, 0, 0], eps[:, 1, 1], eps[:, 2, 2], eps[:, 0, 1],
                             eps[:, 0, 2], eps[:, 1, 2], fields["volumetric"], fields["equivalent"]])
    with atomic_output(f"{stem}.csv") as tmp:
        np.savetxt(tmp, table, delimiter=",", fmt="%.6g",
                   header="z_um,y_um,x_um,e_zz,e_yy,e_xx,e_zy,e_zx,e_yx,volumetric,equivalent", comments="")


def write_pores(folder, analyses, settings, *, suffix=".tif"):
    """Segmentations (``step{k}_labels.tif``, or ``suffix``: ``.zarr``), CPSD curves, phase fractions and a
    summary of :func:`pores_series`.

    ``summary.json`` holds per step the segmentation's thresholds and legend,
    ``pore_phases`` (the true phases its label 0 stands for), the phase
    fractions among the labels and the mean and median radius of the CPSD.
    """
    folder = Path(folder)
    v = settings.voxel_size_um
    rows = []
    for k, a in enumerate(analyses):
        seg = a.segmentation
        write_volume(folder / f"{step_name(k)}_labels{suffix}", seg.labels, v, description=f"segmentation: {seg.legend}")
        write_cpsd_csv(folder / f"cpsd_{step_name(k)}.csv", a.cpsd)
        rows.append({"step": k, "mode": settings.mode, "segmentation": seg.legend, "thresholds": list(seg.thresholds),
                     "pore_phases": [p.name.lower() for p in seg.pore_phases], "cpsd": _summary(settings.pore_size),
                     **asdict(a.phases), "mean_pore_radius_um": a.cpsd.mean_radius_um,
                     "median_pore_radius_um": a.cpsd.median_radius_um})
    write_phase_fractions_csv(folder / "phase_fractions.csv", {step_name(k): a.phases for k, a in enumerate(analyses)})
    with atomic_output(folder / "summary.json") as tmp:
        tmp.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    plot_cpsd({step_name(k): a.cpsd for k, a in enumerate(analyses)}, folder / "cpsd.png")


def run_chain(volumes, settings, out, *, sample_rows=None, names=None, arch="cpu", progress=None):
    """The whole chain on a series of scans, into ``out`` (see the module docstring for the layout).

    ``out`` appears only when every file is written; an error leaves no
    half-written folder.

    Parameters
    ----------
    volumes : list of (nz, ny, nx) ndarray
        Reconstructions, the reference first; at least two.
    settings : ChainSettings
    out : str or Path
    sample_rows : list of (int, int), optional
        Per scan, the sample's first and end row; default all rows.
    names : list of str, optional
        Names of the scans for error messages (e.g. their files).
    arch : {"cpu", "gpu"}
    progress : callable, optional
        Called as ``progress(fraction)`` over the whole chain.
    """
    if len(volumes) < 2:
        raise ValueError("volumes: expected a reference and at least one deformed volume")
    check_subvolumes(check_series(volumes, names), settings)
    with atomic_output(out, folder=True) as tmp:
        write_chain(volumes, settings, tmp, sample_rows=sample_rows, names=names, arch=arch, progress=progress)


def write_chain(volumes, settings, folder, *, sample_rows=None, names=None, arch="cpu", progress=None):
    """:func:`run_chain`'s four folders, written into the existing folder ``folder`` (no atomicity of its own:
    the synthcal pipeline's stage folder provides it). Parameters as :func:`run_chain`."""
    folder = Path(folder)
    v = settings.voxel_size_um
    report = progress or (lambda fraction: None)
    for name in ("preprocess", "dvc", "strain", "pores"):
        (folder / name).mkdir()
    pre = preprocess_series(volumes, settings, sample_rows=sample_rows, names=names, arch=arch,
                            progress=_sub(report, 0, 0.2))
    write_preprocessed(folder / "preprocess", pre, v)
    results = correlate_series(pre.volumes, settings, sample_rows=sample_rows, arch=arch,
                               progress=_sub(report, 0.2, 0.8))
    write_dvc(folder / "dvc", results, settings, pre.transforms)
    for k in range(1, len(volumes)):
        field = results[k, settings.subvolume_voxels]
        total = total_displacement(pre.transforms[k], field.nodes, field.displacement)
        write_strain(folder / "strain", k, field.nodes, strain_fields(field.nodes, total, field.ok), v)
    analyses = pores_series(pre.volumes, settings, sample_rows=sample_rows, arch=arch,
                            progress=_sub(report, 0.8, 1.0))
    write_pores(folder / "pores", analyses, settings)
