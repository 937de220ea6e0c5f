"""The dense truth as a user's DVC sees it: on the reference reconstruction's grid, in voxels.

A reconstruction voxel ``p`` (z, y, x) of the reference scan is phantom voxel
``p + (0, off, off)`` (:class:`synthcal.grid.Grid`). The scan of step k shows
the material of ``p`` at ``p + u(p) / v + drift_k``, where ``u`` is the
particles' rigid motion (:mod:`synthcal.truth`, µm) and ``drift_k`` the
simulated drift of scan k relative to the reference scan (voxels): when the
sample moves during a scan, its mean position over the scan, which is where
the reconstruction shows it along z, and across the beam up to a shift that
is the same in every scan at the same drift rate
(:func:`synthcal.xray.scan_motion_voxels`). So the
displacement a DVC between the two reconstructions should find is
``u(p) / v + drift_k``; in the carbon binder ``u`` is the blend of
:mod:`synthcal.truth`. This module computes it on every voxel (NaN where the
reference holds no material) and stores it as a Zarr array any Zarr reader
opens, with its voxel size and frame in the attributes.
"""

import numpy as np

from analysis.io import atomic_output

FRAME = ("displacement (z, y, x components, voxels) of the material at each voxel of the reference "
         "reconstruction, to where the reconstruction of this step shows it (drift included); NaN: no material")


def _crop_bridges(bridges, shape, off, n):
    """``bridges`` of the phantom grid (``shape``) on its field-of-view columns ``[off, off + n)`` in y and x."""
    from synthcal.binder import BridgeVoxels

    z, y, x = np.unravel_index(bridges.index, shape)
    keep = (y >= off) & (y < off + n) & (x >= off) & (x < off + n)
    # a translation keeps C order, so the cropped indices stay ascending
    index = np.ravel_multi_index((z[keep], y[keep] - off, x[keep] - off), (shape[0], n, n))
    return BridgeVoxels(index, bridges.bond[keep], bridges.weight[keep], bridges.bonds)


def scan_displacement(owner0, ref, cur, grid, drift_voxels, bridges=None):
    """Dense truth of one step on the reference reconstruction's grid.

    Parameters
    ----------
    owner0 : (nz, ny, nx) int array
        Particle owning each phantom voxel at step 0 (phantom grid).
    ref, cur : synthcal.truth.ParticlePoses
        Poses at step 0 and at the step.
    grid : synthcal.grid.Grid
    drift_voxels : (3,) array_like
        Drift of the step's scan relative to the reference scan, voxels.
    bridges : synthcal.binder.BridgeVoxels, optional
        Bridge voxels of the step-0 phantom (phantom grid): there the truth
        blends the motions of the two particles the bridge binds.

    Returns
    -------
    (3, nz, n_det, n_det) float32
        Voxels; NaN where no material.
    """
    from synthcal.truth import true_displacement_volume

    off, n = grid.fov_offset_voxels, grid.n_det
    owner0 = np.asarray(owner0)
    owner = np.ascontiguousarray(owner0[:, off:off + n, off:off + n])
    origin = np.asarray(grid.origin_um) + grid.voxel_size_um * np.array([0.0, off, off])
    if bridges is not None:
        bridges = _crop_bridges(bridges, owner0.shape, off, n)
    u = true_displacement_volume(owner, ref, cur, voxel_size_um=grid.voxel_size_um, origin_um=origin,
                                 bridges=bridges)
    u /= np.float32(grid.voxel_size_um)
    u += np.asarray(drift_voxels, dtype=np.float32)[:, None, None, None]
    return u


def write_displacement(path, displacement, voxel_size_um, step):
    """Store a dense displacement as a chunked, compressed Zarr array (folder ``path``).

    Attributes: ``voxel_size_um``, ``step``, ``frame`` (what the numbers mean),
    ``axes`` ("c z y x", c = z, y, x component).
    """
    import zarr

    displacement = np.asarray(displacement, dtype=np.float32)
    with atomic_output(path) as tmp:
        # open_array(mode="w") is the same call in Zarr 2 and 3
        array = zarr.open_array(store=str(tmp), mode="w", shape=displacement.shape, dtype=np.float32,
                                chunks=(3, *(min(64, n) for n in displacement.shape[1:])), fill_value=np.nan)
        array[...] = displacement
        array.attrs.update({"voxel_size_um": float(voxel_size_um), "step": int(step), "frame": FRAME,
                            "axes": "c z y x"})


def read_displacement(path):
    """``(displacement, attributes)`` of a file written by :func:`write_displacement`."""
    import zarr

    array = zarr.open_array(store=str(path), mode="r")
    return array[...], dict(array.attrs)
