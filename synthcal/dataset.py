"""A finished (or partly finished) run folder, read lazily.

:func:`load_run` opens the folder that ``synthcal run`` writes (layout in
ARCHITECTURE.md); nothing is read until asked. The pipeline's own stages read
their inputs through the same object, so the file names live in one place.

Examples
--------
>>> run = load_run("runs/quick")                          # doctest: +SKIP
>>> volume = run.volume(1)                                # doctest: +SKIP
>>> field = run.dvc(1)                                    # doctest: +SKIP
"""

import dataclasses
import json
from functools import cached_property
from pathlib import Path

import numpy as np

from analysis import layout
from analysis.io import find_volume, read_volume

FOLDERS = {"dem": "dem", "phantom": "truth", "projections": "projections", "reconstruct": "volumes",
           "preprocess": "analysis/preprocess", "dvc": "analysis/dvc", "strain": "analysis/strain",
           "pores": "analysis/pores", "compare": "analysis-compare", "score": "validation", "report": "report"}
"""Stage name -> its folder in the run."""

CHAIN_STAGES = ("preprocess", "dvc", "strain", "pores")
"""The analysis chain's stages: their folders are the chain's (``analysis.chain``), in ``analysis/``
for the scenario's mode and in ``analysis-compare/`` for the other mode."""

step_name = layout.step_name


def analysis_settings(scenario, grid, mode=None):
    """The analysis chain's settings of a synthetic run (``[dvc]``, ``[pores]``, the grid's geometry).

    ``mode`` defaults to ``[analysis] mode``; the compared mode passes the other one.
    """
    from synthcal.scenario import chain_settings

    box_um = scenario.dvc.registration_box_um
    box = None
    if box_um:
        box = [(sl.start, sl.stop) for sl in grid.box_um_to_recon_slices(box_um)]
    return chain_settings(scenario.dvc, scenario.pores, scenario.imaging.voxel_size_um,
                          mode=mode or scenario.analysis.mode, registration_box=box)


def compared_settings(scenario, grid):
    """The settings of the other mode as ``analysis-compare/`` runs it: those of :func:`analysis_settings`,
    without the subvolume study unless ``[analysis] compare_study``.

    The compared chain answers the paper's table at the chosen edge; its study would cost far more than the
    rest of it (at the paper's size best mode's seven edges correlate about 15 times the voxels of its 8 µm
    field).
    """
    from synthcal.scenario import other_mode

    settings = analysis_settings(scenario, grid, mode=other_mode(scenario.analysis.mode))
    if scenario.analysis.compare_study:
        return settings
    return dataclasses.replace(settings, study_subvolumes_voxels=())


class Run:
    """One run folder (see :func:`load_run`).

    Parameters
    ----------
    path : str or Path
        The run folder.
    readable : tuple of str, optional
        Stages whose outputs may be read (default: all). The pipeline gives
        each stage only its declared upstream stages, so a stage that reads
        what its cache key does not cover fails at once.
    """

    def __init__(self, path, readable=None):
        self.path = Path(path)
        self.readable = None if readable is None else tuple(readable)

    def folder(self, stage):
        """Output folder of ``stage`` (a name of :data:`FOLDERS`)."""
        if self.readable is not None and stage not in self.readable:
            raise RuntimeError(f"reading {stage}/ outputs, but the stage declares only {', '.join(self.readable)} "
                               "upstream (add it to its Stage entry)")
        return self.path / FOLDERS[stage]

    @cached_property
    def scenario(self):
        """The resolved scenario the run was made with."""
        from synthcal.scenario import load

        return load(self.path / "scenario.toml")

    @property
    def voxel_size_um(self):
        return self.scenario.imaging.voxel_size_um

    @property
    def steps(self):
        """Load-step indices (0 = uncompressed)."""
        return list(range(self.scenario.n_steps))

    @cached_property
    def grid(self):
        """The phantom grid (:class:`synthcal.grid.Grid`)."""
        from synthcal.grid import Grid

        return Grid.read(self.folder("phantom") / "grid.json")

    def analysis_settings(self):
        """The :class:`analysis.chain.ChainSettings` the pipeline analysed this run with."""
        return analysis_settings(self.scenario, self.grid)

    def trajectory(self):
        """The DEM trajectory (:class:`synthcal.dem.protocol.Trajectory`)."""
        from synthcal.dem.io import read_trajectory

        return read_trajectory(self.folder("dem"))

    def force_displacement(self):
        """(K, 3) table: time (s), head travel (µm), head force (N)."""
        return np.loadtxt(self.folder("dem") / "force_displacement.csv", delimiter=",", skiprows=1, ndmin=2)

    def truth_labels(self, k):
        """Phase labels of the phantom of step ``k`` (phantom grid, uint8, ``analysis.phases.Phase``)."""
        return read_volume(find_volume(self.folder("phantom"), f"{step_name(k)}_labels"))[0]

    def attenuation(self, k):
        """Linear attenuation (1/µm) of the phantom of step ``k``."""
        return read_volume(find_volume(self.folder("phantom"), f"{step_name(k)}_mu"))[0]

    def labels(self, k):
        """Truth phase labels of step ``k`` on the reconstruction grid (the phantom's field of view)."""
        off, n = self.grid.fov_offset_voxels, self.grid.n_det
        return self.truth_labels(k)[:, off:off + n, off:off + n]

    def displacement(self, k, registered=False):
        """Dense truth displacement from step 0 to step ``k`` on the reference reconstruction's grid.

        Parameters
        ----------
        k : int
            Load step (0: zero everywhere there is material).
        registered : bool
            False: in the frame a DVC between the two reconstructions measures
            (drift included). True: in the frame after synthcal's registration
            (what its own DVC on registered volumes measures).

        Returns
        -------
        (3, nz, ny, nx) float32
            Voxels (z, y, x components); NaN where the reference holds no material.
        """
        from synthcal.scan_truth import read_displacement

        if k == 0:
            off, n = self.grid.fov_offset_voxels, self.grid.n_det
            u = np.where(self.owner(0)[:, off:off + n, off:off + n] >= 0, 0.0, np.nan).astype(np.float32)
            return np.stack([u, u, u])
        u = read_displacement(self.folder("phantom") / f"{step_name(k)}_displacement.zarr")[0]
        if not registered:
            return u
        grid = np.moveaxis(np.indices(u.shape[1:], dtype=np.float64), 0, -1)
        seen = grid + np.moveaxis(u, 0, -1)
        back = self.registration()[0][k].inverse().apply(seen.reshape(-1, 3)).reshape(seen.shape) - grid
        return np.moveaxis(back, -1, 0).astype(np.float32)

    def truth_at(self, k, points_zyx, rule="particle", edge_voxels=None, registered=False):
        """Truth at reference points of the reconstruction grid (voxels), see
        :meth:`validation.frame.TruthFrame.truth_at` for the rules and frames."""
        from validation.frame import truth_frame

        return truth_frame(self).truth_at(points_zyx, k, rule=rule, edge_voxels=edge_voxels, registered=registered)

    def owner(self, k):
        """Particle owning each phantom voxel of step ``k`` (-1: none), memory-mapped (TIFF runs)."""
        stem = self.folder("phantom") / f"{step_name(k)}_owner"
        if stem.with_suffix(".zarr").is_dir():
            return read_volume(stem.with_suffix(".zarr"))[0]
        return np.load(stem.with_suffix(".npy"), mmap_mode="r")

    def bridges(self, k):
        """Bridge voxels of the phantom of step ``k`` (:class:`synthcal.binder.BridgeVoxels`: flat index,
        bond and blend weight of each); None for a run made before the binder had bridges."""
        from synthcal.binder import BridgeVoxels

        path = self.folder("phantom") / f"{step_name(k)}_bridges.npz"
        return BridgeVoxels.read(path) if path.is_file() else None

    def binder(self):
        """The carbon binder of the run (:class:`synthcal.binder.Binder`, reference configuration); None for a
        run made before it."""
        from synthcal.binder import Binder

        path = self.folder("phantom") / "binder.npz"
        return Binder.read(path) if path.is_file() else None

    def truth_radius_um(self, k, name):
        """The truth's local radius map ``name`` (a key of :data:`synthcal.truth.RADIUS_MAPS`) of step ``k``,
        µm, on the phantom's field of view (the ``n_det`` square, every row); None for a run made before
        the maps were stored."""
        path = self.folder("phantom") / f"{step_name(k)}_radius_{name}.zarr"
        return read_volume(path)[0] if path.is_dir() else None

    def truth_summary(self):
        """Per step: the phantom's phase fractions and pore radii in the analysed region (list of dict, see
        :func:`synthcal.truth.phase_summary`)."""
        return json.loads((self.folder("phantom") / "summary.json").read_text())

    def projections(self, k):
        """``(counts, flats, darks)`` of the scan of step ``k``: (frame, row z, column)."""
        folder = self.folder("projections")
        if not self.scenario.output.keep_projections:
            raise ValueError(f"{folder}: this run did not store its projections ([output] keep_projections = false)")
        return tuple(read_volume(find_volume(folder, f"{step_name(k)}_{name}"))[0]
                     for name in ("counts", "flats", "darks"))

    def angles_deg(self):
        return np.loadtxt(self.folder("projections") / "angles_deg.csv", skiprows=1, ndmin=1)

    def drift_voxels(self):
        """Simulated rigid drift of each scan, (n_steps, 3) voxels."""
        return np.asarray(json.loads((self.folder("projections") / "drift_voxels.json").read_text()), float)

    def motion_voxels(self):
        """Rigid shift of the sample during each projection of each scan, (n_steps, n_angles, 3) voxels
        (z, y, x); ``drift_voxels()[k]`` is its mean over scan k (:func:`synthcal.xray.scan_motion_voxels`)."""
        return np.asarray(json.loads((self.folder("projections") / "motion_voxels.json").read_text()), float)

    def volume(self, k):
        """Reconstruction of step ``k`` (float32, 1/µm, z-y-x)."""
        return read_volume(find_volume(self.folder("reconstruct"), step_name(k)))[0]

    def volumes(self):
        return layout.read_series(self.folder("reconstruct"), self.scenario.n_steps)

    def processed(self, k):
        """Preprocessed (filtered, matched, registered) volume of step ``k``."""
        return read_volume(find_volume(self.folder("preprocess"), step_name(k)))[0]

    def processed_volumes(self):
        return layout.read_series(self.folder("preprocess"), self.scenario.n_steps)

    def registration(self):
        """``(transforms, region)`` of the preprocessing."""
        return layout.read_registration(self.folder("preprocess"))

    def dvc(self, k, edge_voxels=None):
        """DVC node field of step ``k`` (dict of arrays, voxels); another edge of the subvolume study
        with ``edge_voxels``."""
        chosen = None if edge_voxels is None else self.analysis_settings().subvolume_voxels
        return layout.read_dvc(self.folder("dvc"), k, edge_voxels, chosen)

    def strain(self, k):
        """Strain fields of step ``k`` (dict of arrays)."""
        with np.load(self.folder("strain") / f"{step_name(k)}.npz") as data:
            return dict(data)

    def pore_summary(self):
        """Per step: mode, segmentation legend and thresholds, the phases label 0 stands for, phase
        fractions, mean and median pore radius (list of dict)."""
        return json.loads((self.folder("pores") / "summary.json").read_text())

    def segmentation(self, k):
        """Segmentation of step ``k`` (uint8; ``pore_summary()[k]["segmentation"]`` gives its legend)."""
        return read_volume(find_volume(self.folder("pores"), f"{step_name(k)}_labels"))[0]

    def compared(self):
        """The run seen through the other analysis mode (:class:`ComparedRun`), or None when
        ``[analysis] compare_modes`` is off."""
        if not self.scenario.analysis.compare_modes:
            return None
        return ComparedRun(self.path, self.readable)

    def scores(self):
        """``validation/scores.json`` as a dict."""
        return json.loads((self.folder("score") / "scores.json").read_text())

    def node_truth(self):
        """Truth at the DVC nodes: ``step{k}_displacement_voxels``, ``_error_voxels``, ``_strain``."""
        with np.load(self.folder("score") / "node_truth.npz") as data:
            return dict(data)


class ComparedRun(Run):
    """A run read through ``analysis-compare/``: the same scans analysed in the other mode.

    Every reader of the chain's outputs (:meth:`registration`, :meth:`dvc`,
    :meth:`pore_summary`, ...) reads ``analysis-compare/{preprocess,dvc,strain,pores}``
    and :meth:`analysis_settings` are the other mode's; everything else is the run's.
    """

    def folder(self, stage):
        if stage in CHAIN_STAGES:
            return super().folder("compare") / stage
        return super().folder(stage)

    @property
    def mode(self):
        """The mode analysed here (the scenario's other one)."""
        from synthcal.scenario import other_mode

        return other_mode(self.scenario.analysis.mode)

    def analysis_settings(self):
        return compared_settings(self.scenario, self.grid)

    def compared(self):
        return None


def load_run(path):
    """Open a run folder written by ``synthcal run``.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Run

    Raises
    ------
    ValueError
        When ``path`` holds no ``scenario.toml``.
    """
    path = Path(path)
    if not (path / "scenario.toml").is_file():
        raise ValueError(f"{path}: not a run folder (expected scenario.toml in it)")
    return Run(path)
