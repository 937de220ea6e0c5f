"""File names of the analysis chain's outputs, and their readers.

The writers are in :mod:`analysis.chain`; this module holds what a reader
needs (and imports nothing heavy), so a user, ``synthcal.dataset`` and the
pipeline's cache read the same names the chain writes.
"""

import json
from pathlib import Path

import numpy as np

from analysis.io import find_volume, read_volume
from analysis.transform import RigidTransform


def step_name(k):
    """File stem of load step ``k`` (0 = the reference scan)."""
    return f"step{k}"


def dvc_stem(k, edge_voxels, chosen_edge_voxels):
    """File stem of the DVC field of step ``k`` at one subvolume edge (the study's edges are marked)."""
    if edge_voxels == chosen_edge_voxels:
        return step_name(k)
    return f"study_{step_name(k)}_edge{edge_voxels}vox"


def read_series(folder, n):
    """``step0.tif`` … ``step{n-1}.tif`` (or ``.zarr``) of a folder, as arrays."""
    return [read_volume(find_volume(folder, step_name(k)))[0] for k in range(n)]


def read_registration(folder):
    """``(transforms, region)`` from a preprocess folder's ``registration.json``."""
    record = json.loads((Path(folder) / "registration.json").read_text(encoding="utf-8"))
    return ([RigidTransform.from_dict(entry) for entry in record["steps"]],
            tuple(slice(a, b) for a, b in record["region_voxels"]))


def read_dvc(folder, k, edge_voxels=None, chosen_edge_voxels=None):
    """The node field of step ``k`` as a dict of arrays (the chosen edge unless ``edge_voxels``)."""
    stem = step_name(k) if edge_voxels is None else dvc_stem(k, edge_voxels, chosen_edge_voxels)
    with np.load(Path(folder) / f"{stem}.npz") as data:
        return dict(data)
