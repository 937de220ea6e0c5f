"""Volumes and stacks on disk: ImageJ-compatible TIFF with the voxel size in µm.

Fiji, Avizo and Dragonfly read the ImageJ ``spacing`` and the X/Y resolution
tags, so a volume written here opens at the right scale. Every output of the
project (files and whole folders) is written through :func:`atomic_output`:
under a temporary name in the same folder, renamed when complete, so a file
or folder that exists is whole.
"""

import contextlib
import os
import shutil
from pathlib import Path

import numpy as np
import tifffile

_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_output(path, *, folder=False):
    """Write a file or a folder under a temporary name; rename it into place when done.

    Parameters
    ----------
    path : str or Path
        The final file or folder. An existing one is replaced only once the
        new one is complete.
    folder : bool
        Create the temporary path as an (empty) folder.

    Yields
    ------
    Path
        ``.NAME.partial`` beside ``path``: write there. If the block raises
        (Ctrl-C included), the temporary path is removed and ``path`` is left
        as it was.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "numbers.txt"
    >>> with atomic_output(target) as tmp:
    ...     _ = tmp.write_text("1 2 3")
    >>> target.read_text()
    '1 2 3'
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    _remove(tmp)
    if folder:
        tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if path.is_dir() and not path.is_symlink():
        old = path.with_name(f".{path.name}.old")
        _remove(old)
        os.replace(path, old)
        os.replace(tmp, path)
        _remove(old)
    else:
        os.replace(tmp, path)


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
    with atomic_output(path) as tmp:
        tifffile.imwrite(tmp, volume, imagej=True, resolution=(1.0 / voxel_size_um, 1.0 / voxel_size_um),
                         metadata=metadata)


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
