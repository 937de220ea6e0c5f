"""Volumes and stacks on disk: ImageJ-compatible TIFF or Zarr, with the voxel size in µm.

The suffix of the path chooses the format, for writing and reading alike:

- ``.tif``: an ImageJ hyperstack. Fiji, Avizo and Dragonfly read the ImageJ
  ``spacing`` and the X/Y resolution tags, so a volume opens at the right
  scale.
- ``.zarr``: a chunked, compressed Zarr array (a folder), for runs too large
  for plain stacks. Chunks are cubes of :data:`ZARR_CHUNK_EDGE` voxels, so a
  subvolume is read without the rest; the attributes hold
  ``voxel_size_um``, ``unit``, ``axes`` and ``description``. napari, zarr
  and tensorstore open it.

Every output of the project (files and whole folders) is written through
:func:`atomic_output`: under a temporary name in the same folder, renamed
when complete, so a file or folder that exists is whole.
"""

import contextlib
import os
import shutil
from pathlib import Path

import numpy as np
import tifffile

_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)
VOLUME_SUFFIXES = {"tiff": ".tif", "zarr": ".zarr"}
"""Storage format (a scenario's ``[output] format``) -> suffix of a volume's path."""
ZARR_CHUNK_EDGE = 128
"""Edge of a Zarr chunk in voxels: 8 MB of float32, few enough files for a paper-size run."""


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
    """Write a 3D array (z, y, x) as an ImageJ hyperstack TIFF, or as Zarr when ``path`` ends in ``.zarr``.

    Parameters
    ----------
    path : str or Path
        Output file (``.tif``) or Zarr folder (``.zarr``).
    volume : (nz, ny, nx) ndarray
        TIFF: uint8, uint16 or float32 (ImageJ's types); other types are
        refused rather than silently converted. Zarr: any integer or float
        type.
    voxel_size_um : float
        Edge of a voxel in µm, stored as ImageJ spacing and X/Y resolution
        (TIFF) or the ``voxel_size_um`` attribute (Zarr).
    description : str, optional
        Free text stored in the ImageJ ``info`` field or the ``description``
        attribute.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "volume.zarr"
    >>> write_volume(path, np.ones((2, 3, 4), np.float32), 0.25)
    >>> volume, voxel_size_um = read_volume(path)
    >>> volume.shape, voxel_size_um
    ((2, 3, 4), 0.25)
    """
    volume = np.asarray(volume)
    path = Path(path)
    zarr_path = path.suffix == VOLUME_SUFFIXES["zarr"]
    if volume.ndim != 3:
        raise ValueError(f"{path}: expected a 3D (z, y, x) volume, got shape {volume.shape}")
    if zarr_path and volume.dtype.kind not in "iuf":
        raise ValueError(f"{path}: expected an integer or float volume, got {volume.dtype}")
    if not zarr_path and volume.dtype.type not in _IMAGEJ_DTYPES:
        raise ValueError(f"{path}: expected uint8, uint16 or float32 for ImageJ, got {volume.dtype}")
    if not voxel_size_um > 0:
        raise ValueError(f"voxel_size_um: expected > 0, got {voxel_size_um}")
    if zarr_path:
        _write_zarr(path, volume, voxel_size_um, description)
        return
    metadata = {"spacing": float(voxel_size_um), "unit": "um", "axes": "ZYX"}
    if description:
        metadata["info"] = description
    with atomic_output(path) as tmp:
        tifffile.imwrite(tmp, volume, imagej=True, resolution=(1.0 / voxel_size_um, 1.0 / voxel_size_um),
                         metadata=metadata)


def _write_zarr(path, volume, voxel_size_um, description):
    import zarr

    chunks = tuple(max(1, min(n, ZARR_CHUNK_EDGE)) for n in volume.shape)
    with atomic_output(path, folder=True) as tmp:
        array = zarr.open_array(str(tmp), mode="w", shape=volume.shape, chunks=chunks, dtype=volume.dtype)
        array[...] = volume
        array.attrs.update({"voxel_size_um": float(voxel_size_um), "unit": "um", "axes": "ZYX",
                            "description": description or ""})


def read_volume(path):
    """Read a 3D TIFF stack or Zarr array (by the suffix, as :func:`write_volume` writes) and its voxel size.

    Parameters
    ----------
    path : str or Path
        A multi-page TIFF (ImageJ hyperstack or plain stack, one z slice per
        page), or a ``.zarr`` folder holding one 3D array.

    Returns
    -------
    volume : (nz, ny, nx) ndarray
    voxel_size_um : float or None
        From the ImageJ spacing or the X resolution tag when the unit is µm,
        or the Zarr ``voxel_size_um`` attribute; None when the file does not
        say.
    """
    path = Path(path)
    if path.suffix == VOLUME_SUFFIXES["zarr"]:
        return _read_zarr(path)
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


def _read_zarr(path):
    import zarr

    if not path.is_dir():
        raise ValueError(f"{path}: no such Zarr folder")
    try:
        array = zarr.open_array(str(path), mode="r")
        volume, attrs = array[...], dict(array.attrs)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: not a readable Zarr array ({exc})") from None
    if volume.ndim != 3:
        raise ValueError(f"{path}: expected a 3D array (z, y, x), got shape {volume.shape}")
    size = attrs.get("voxel_size_um")
    return volume, float(size) if size is not None else None


def find_volume(folder, stem):
    """The volume ``stem`` of ``folder`` in whichever format it was written (``.tif`` or ``.zarr``).

    Raises
    ------
    ValueError
        When neither exists.
    """
    for suffix in VOLUME_SUFFIXES.values():
        path = Path(folder) / f"{stem}{suffix}"
        if path.exists():
            return path
    raise ValueError(f"{Path(folder) / stem}: no such volume (expected {' or '.join(VOLUME_SUFFIXES.values())})")


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
