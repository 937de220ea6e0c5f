"""Volumes and stacks on disk: ImageJ-compatible TIFF with the voxel size in µm.

Fiji, Avizo and Dragonfly read the ImageJ ``spacing`` and the X/Y resolution
tags, so a volume written here opens at the right scale. Writing goes to a
temporary name in the same folder and is renamed when complete, so a file
that exists is whole.
"""

import os
from pathlib import Path

import numpy as np
import tifffile

_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)


def write_volume(path, volume, voxel_size_um, *, description=None):
    """Write a 3D array (z, y, x) as an ImageJ hyperstack TIFF.

    Parameters
    ----------
    path : str or Path
        Output file (``.tif``).
    volume : (nz, ny, nx) ndarray
        uint8, uint16 or float32 (ImageJ's types); other types are refused
        rather than silently converted.
    voxel_size_um : float
        Edge of a voxel in µm, stored as ImageJ spacing and X/Y resolution.
    description : str, optional
        Free text stored in the ImageJ ``info`` field.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"{path}: expected a 3D (z, y, x) volume, got shape {volume.shape}")
    if volume.dtype.type not in _IMAGEJ_DTYPES:
        raise ValueError(f"{path}: expected uint8, uint16 or float32 for ImageJ, got {volume.dtype}")
    if not voxel_size_um > 0:
        raise ValueError(f"voxel_size_um: expected > 0, got {voxel_size_um}")
    path = Path(path)
    metadata = {"spacing": float(voxel_size_um), "unit": "um", "axes": "ZYX"}
    if description:
        metadata["info"] = description
    tmp = path.with_name(f".{path.name}.partial")
    tifffile.imwrite(tmp, volume, imagej=True, resolution=(1.0 / voxel_size_um, 1.0 / voxel_size_um),
                     metadata=metadata)
    os.replace(tmp, path)


def read_volume(path):
    """Read a 3D TIFF stack and its voxel size.

    Parameters
    ----------
    path : str or Path
        A multi-page TIFF (ImageJ hyperstack or plain stack, one z slice per
        page).

    Returns
    -------
    volume : (nz, ny, nx) ndarray
    voxel_size_um : float or None
        From the ImageJ spacing or the X resolution tag when the unit is µm;
        None when the file does not say.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        with tifffile.TiffFile(path) as tif:
            volume = tif.asarray()
            voxel_size_um = _voxel_size_um(tif)
    except (tifffile.TiffFileError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable TIFF stack ({exc})") from None
    volume = np.squeeze(volume)
    if volume.ndim != 3:
        raise ValueError(f"{path}: expected a 3D stack (z, y, x), got shape {volume.shape}")
    return volume, voxel_size_um


def _voxel_size_um(tif):
    ij = tif.imagej_metadata or {}
    unit = str(ij.get("unit", "")).replace("\\u00B5", "u").replace("µ", "u").lower()
    if "spacing" in ij and unit in ("um", "micron", "microns"):
        return float(ij["spacing"])
    tag = tif.pages[0].tags.get("XResolution")
    if tag is not None and unit in ("um", "micron", "microns"):
        num, den = tag.value
        if num > 0:
            return den / num
    return None
