"""The lab's analysis chain over a series of scans, step by step.

These functions chain the single-purpose modules (preprocess, dvc, strain,
segment, pores) the way the reference experiment did, and write their
results. The synthcal pipeline and ``synthcal analyse`` (real scans) both
call them, so a synthetic run is analysed exactly as a real one.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.dvc import correlate
from analysis.pores import cpsd, phase_fractions
from analysis.preprocess import RigidTransform, apply_rigid, match_histogram, median_filter, register_rigid
from analysis.segment import threshold_three_phase
from analysis.strain import (displacement_gradient, equivalent_strain, green_lagrange, principal_strains,
                             small_strain, volumetric_strain)
from analysis.vtk import write_vtk_nodes


def identity_transform(shape):
    """The rigid transform of the reference onto itself."""
    return RigidTransform(rotation=np.eye(3), translation_voxels=np.zeros(3),
                          centre_voxels=(np.asarray(shape, float) - 1) / 2, cc=1.0)


def default_registration_region(shape):
    """The lowest quarter of the volume (less a border): the foot of the pillar,
    which the pin holds still while the head compresses the top."""
    nz, ny, nx = shape
    return (slice(2, max(nz // 4, 12)), slice(2, ny - 2), slice(2, nx - 2))


def preprocess_series(volumes, *, median_size=3, region=None, arch="cpu", progress=None):
    """Median filter, contrast matching and rigid registration onto the first scan.

    Parameters
    ----------
    volumes : list of (nz, ny, nx) ndarray
        Reconstructions, the reference (uncompressed) first.
    median_size : int
        Edge of the 3D median filter in voxels; 1 skips it.
    region : tuple of 3 slices or bool ndarray, optional
        Reference region to register on (e.g. one particle, as the paper
        did); default :func:`default_registration_region`.
    arch : {"cpu", "gpu"}
    progress : callable, optional

    Returns
    -------
    processed : list of float32 ndarray
        The filtered reference, then each later scan filtered, matched to
        the reference's grey levels and resampled onto its grid.
    transforms : list of RigidTransform
        Per scan; reference position p shows moving material at
        ``transform.matrix() @ [p, 1]``. The first is the identity.
    """
    if len(volumes) < 1:
        raise ValueError("volumes: expected at least one volume")
    shape = volumes[0].shape
    for k, v in enumerate(volumes):
        if v.shape != shape:
            raise ValueError(f"volumes[{k}]: expected shape {shape} like the reference, got {v.shape}")
    region = default_registration_region(shape) if region is None else region
    n = len(volumes)

    def filtered(v):
        v = np.asarray(v, dtype=np.float32)
        return median_filter(v, size=median_size, arch=arch) if median_size > 1 else v

    reference = filtered(volumes[0])
    processed, transforms = [reference], [identity_transform(shape)]
    for k in range(1, n):
        moving = match_histogram(filtered(volumes[k]), reference)
        transform = register_rigid(moving, reference, region=region, arch=arch)
        processed.append(apply_rigid(moving, transform, arch=arch))
        transforms.append(transform)
        if progress:
            progress(k / max(n - 1, 1))
    return processed, transforms


def strain_fields(nodes, displacement, ok):
    """Strain measures at each node from a DVC field (voxels in, dimensionless out).

    Returns
    -------
    dict of ndarray
        ``gradient`` (N, 3, 3), ``small_strain`` and ``green_lagrange``
        (N, 3, 3), ``volumetric``, ``equivalent`` (N,), ``principal``
        (N, 3) descending. NaN where the fit had too few ok neighbours.
    """
    gradient = displacement_gradient(nodes, displacement, ok)
    eps = small_strain(gradient)
    return {"gradient": gradient, "small_strain": eps, "green_lagrange": green_lagrange(gradient),
            "volumetric": volumetric_strain(eps), "equivalent": equivalent_strain(eps),
            "principal": principal_strains(eps)}


@dataclass(frozen=True)
class PoreAnalysis:
    """Segmentation and pore measures of one scan."""

    labels: np.ndarray
    thresholds: tuple
    cpsd: object
    phases: object


def analyse_pores(volume, voxel_size_um, region=None, progress=None):
    """Three-phase segmentation (multi-Otsu), CPSD of the pores, phase fractions.

    Parameters
    ----------
    volume : (nz, ny, nx) ndarray
        Median-filtered reconstruction.
    voxel_size_um : float
    region : bool ndarray, optional
        Analysis region (the sample without its edge zone, head and foil).
    """
    seg = threshold_three_phase(volume, mask=region)
    return PoreAnalysis(labels=seg.labels, thresholds=tuple(seg.thresholds),
                        cpsd=cpsd(seg.labels == 0, voxel_size_um, mask=region, progress=progress),
                        phases=phase_fractions(seg.labels, mask=region))


def write_dvc(folder, stem, result, voxel_size_um):
    """Node field as ``stem.npz`` (voxels) and ``stem.vtk`` (µm, for ParaView)."""
    folder = Path(folder)
    np.savez(folder / f"{stem}.npz", nodes=result.nodes, displacement=result.displacement, cc=result.cc,
             ok=result.ok, iterations=result.iterations, status=result.status,
             subvolume_voxels=result.subvolume_voxels, voxel_size_um=voxel_size_um)
    write_vtk_nodes(folder / f"{stem}.vtk", result.nodes * voxel_size_um,
                    {"displacement_um": np.nan_to_num(result.displacement) * voxel_size_um,
                     "cc": result.cc, "ok": result.ok.astype(np.int32), "status": result.status.astype(np.int32)})


def write_strain(folder, stem, nodes, fields, voxel_size_um):
    """Strain fields as ``stem.npz`` and a per-node CSV."""
    folder = Path(folder)
    np.savez(folder / f"{stem}.npz", nodes=nodes, **fields)
    eps = fields["small_strain"]
    table = np.column_stack([nodes * voxel_size_um, eps[:, 0, 0], eps[:, 1, 1], eps[:, 2, 2], eps[:, 0, 1],
                             eps[:, 0, 2], eps[:, 1, 2], fields["volumetric"], fields["equivalent"]])
    np.savetxt(folder / f"{stem}.csv", table, delimiter=",", fmt="%.6g",
               header="z_um,y_um,x_um,e_zz,e_yy,e_xx,e_zy,e_zx,e_yx,volumetric,equivalent", comments="")
