"""Every choice of the analysis chain in one frozen object (see :mod:`analysis.chain`).

The chain has two modes, two instances of :class:`ChainSettings` built by two
documented constructors:

- :func:`best_settings`: the project's own chain, chosen for the most accurate
  displacement field (whole-volume histogram matching, registration on the slab that straddles the foil top,
  overlapping subvolumes with an affine warp under a gaussian window, three phases by multi-Otsu,
  continuous CPSD of the pores);
- :func:`paper_settings`: the seed paper's methods section as written (linear
  contrast matching on the foot, registration on one particle, tiled
  subvolumes with a rigid warp, NMC against the rest by Otsu, whole-voxel
  CPSD of everything that is not NMC).

Each choice is one function held by the settings; the chain calls
``settings.match_contrast(...)`` etc. and never asks which mode it runs.
"""

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from analysis.dvc import correlate, correlate_tiled
from analysis.pores import cpsd, cpsd_whole_voxel
from analysis.preprocess import match_histogram, match_linear
from analysis.regions import particle_region, pin_region, sample_mask
from analysis.segment import segment_nmc_vs_rest, segment_three_phase


def odd_voxels(length_um, voxel_size_um):
    """A subvolume edge in voxels: the nearest odd count, so the node is its centre voxel."""
    edge = int(round(length_um / voxel_size_um))
    return edge + 1 - edge % 2


def match_whole_histogram(volume, reference, region):
    """Best mode's contrast matching: :func:`analysis.preprocess.match_histogram` of the whole volumes.

    ``region`` (the foot) is not used: the quantile map is estimated on the
    whole volumes, which also matches noise levels and artefacts, at the
    cost of pulling a real change of the phase fractions back toward the
    reference (see :func:`analysis.preprocess.match_linear`).
    """
    return match_histogram(volume, reference)


def overlapping_affine_dvc(reference, deformed, edge_voxels, settings, *, sample_rows=None, arch="cpu",
                           progress=None, prepared=None):
    """Best mode's DVC: overlapping subvolumes on ``settings.node_spacing_voxels``, a 12-parameter affine
    warp each fitted under a gaussian window, nodes whose subvolume lies mostly outside the sample rows skipped
    (:func:`analysis.dvc.correlate`).

    Parameters
    ----------
    reference, deformed : (nz, ny, nx) ndarray
        Preprocessed volumes.
    edge_voxels : int
        Subvolume edge of this pass (the chosen one or one of the study's).
    settings : ChainSettings
    sample_rows : (int, int), optional
        The reference's sample rows.
    arch : {"cpu", "gpu"}
    progress : callable, optional
    prepared : analysis.dvc.PreparedPair, optional
        Of ``reference`` and ``deformed``, shared by every edge of a study.

    Returns
    -------
    analysis.dvc.DVCResult
    """
    return correlate(reference, deformed, subvolume_voxels=edge_voxels,
                     node_spacing_voxels=settings.node_spacing_voxels,
                     max_displacement_voxels=settings.max_displacement_voxels,
                     mask=sample_mask(reference.shape, sample_rows), min_cc=settings.min_cc,
                     window=settings.window, arch=arch, progress=progress, prepared=prepared)


def tiled_rigid_dvc(reference, deformed, edge_voxels, settings, *, sample_rows=None, arch="cpu", progress=None,
                    prepared=None):
    """Paper mode's DVC: cubes of ``edge_voxels`` tiling the whole volume (node spacing = edge), a rigid
    warp each, the volume surrounded by null values (:func:`analysis.dvc.correlate_tiled`, ``outside="null"``).

    Every cube is correlated, the head and the faces of the field of view
    included, as in the paper's CC maps, whose mean CC is over every cube;
    ``sample_rows`` is therefore not used. A cube whose warp reaches past a
    face of the scan is correlated against values of 0 there and keeps its
    CC: the paper puts the low CC of its side cubes down to "edge pixels
    having null values", which Avizo correlated, where best mode stops such
    a cube and scores it 0. Parameters as :func:`overlapping_affine_dvc`.
    """
    return correlate_tiled(reference, deformed, subvolume_voxels=edge_voxels,
                           max_displacement_voxels=settings.max_displacement_voxels, min_cc=settings.min_cc,
                           outside="null", arch=arch, progress=progress, prepared=prepared)


@dataclass(frozen=True)
class ChainSettings:
    """Every choice of the analysis chain, lengths in voxels.

    Build it with :func:`best_settings` or :func:`paper_settings`; the synthcal
    pipeline builds it from the scenario's ``[dvc]``, ``[pores]`` and
    ``[analysis]`` sections (``synthcal.scenario.chain_settings``), ``synthcal
    analyse`` from the same sections' defaults and its flags.

    Attributes
    ----------
    voxel_size_um : float
    median_size : int
        Edge of the 3D median filter (one pass); 1 = off.
    subvolume_voxels : int
        DVC subvolume edge (odd).
    node_spacing_voxels : int
        Distance between DVC nodes (paper mode: the subvolume edge; each
        edge of the study is tiled by itself).
    max_displacement_voxels : float
        Largest displacement searched per axis.
    min_cc : float
        Converged nodes below this correlation are not ``ok``.
    study_subvolumes_voxels : tuple of int
        Further edges correlated for the subvolume study (may be empty).
    edge_exclusion_voxels : int
        Margin removed from the pore analysis region on every side.
    registration_box : tuple of 3 (start, stop) pairs, optional
        Reference box to register on, given by hand; default: the box of
        ``registration_region``.
    mode : str
        Name of the set of choices ("best" or "paper"), for the records.
    match_contrast : callable
        ``(volume, reference, foot) -> float32 volume``: the later scan's grey
        levels matched to the reference's; ``foot`` is the box of
        :func:`analysis.regions.foot_region`.
    registration_region : callable
        ``(reference, sample_rows, edge_voxels) -> tuple of 3 slices``: the
        reference box registered on.
    correlate : callable
        ``(reference, deformed, edge_voxels, settings, *, sample_rows, arch,
        progress, prepared) -> DVCResult`` (``prepared``: the pair's
        :class:`analysis.dvc.PreparedPair`).
    segment : callable
        ``(volume, mask) -> analysis.segment.Segmentation``.
    pore_size : callable
        ``(pore_mask, voxel_size_um, mask=, progress=, arch=) -> CPSDResult``.
    """

    voxel_size_um: float
    median_size: int
    subvolume_voxels: int
    node_spacing_voxels: int
    max_displacement_voxels: float
    min_cc: float
    study_subvolumes_voxels: tuple = ()
    edge_exclusion_voxels: int = 0
    registration_box: tuple = None
    mode: str = "best"
    match_contrast: Callable = match_whole_histogram
    registration_region: Callable = pin_region
    correlate: Callable = overlapping_affine_dvc
    segment: Callable = segment_three_phase
    pore_size: Callable = cpsd

    @classmethod
    def from_um(cls, voxel_size_um, *, median_size, subvolume_um, node_spacing_um, max_displacement_um, min_cc,
                study_subvolumes_um=(), edge_exclusion_um=0.0, registration_box=None):
        """Settings of the best mode from lengths in µm (subvolume edges rounded to odd voxel counts).

        Raises
        ------
        ValueError
            One line naming the setting when a length is not positive or a
            subvolume is under 5 voxels.
        """
        if not voxel_size_um > 0:
            raise ValueError(f"voxel_size_um: expected > 0, got {voxel_size_um}")
        for name, value in (("subvolume_um", subvolume_um), ("node_spacing_um", node_spacing_um),
                            ("max_displacement_um", max_displacement_um)):
            if not value > 0:
                raise ValueError(f"{name}: expected > 0, got {value}")
        edge = odd_voxels(subvolume_um, voxel_size_um)
        if edge < 5:
            raise ValueError(f"subvolume_um: {subvolume_um:g} um is {edge} voxels; expected at least 5")
        study = tuple(sorted({odd_voxels(e, voxel_size_um) for e in study_subvolumes_um} - {edge}, reverse=True))
        return cls(voxel_size_um=float(voxel_size_um), median_size=int(median_size), subvolume_voxels=edge,
                   node_spacing_voxels=max(int(round(node_spacing_um / voxel_size_um)), 1),
                   max_displacement_voxels=float(max_displacement_um / voxel_size_um), min_cc=float(min_cc),
                   study_subvolumes_voxels=study,
                   edge_exclusion_voxels=int(np.ceil(edge_exclusion_um / voxel_size_um)),
                   registration_box=None if registration_box is None
                   else tuple((int(a), int(b)) for a, b in registration_box))

    @property
    def shape_function(self):
        """How the DVC lets a subvolume deform: "rigid" for the paper mode's tiled cubes, else "affine"."""
        return "rigid" if self.correlate is tiled_rigid_dvc else "affine"

    @property
    def window(self):
        """Weight of a subvolume's points in the DVC's fit: "uniform" for the paper mode's tiled cubes (as
        Avizo), else "gaussian" (:func:`analysis.dvc.grid.subvolume_window`)."""
        return "uniform" if self.correlate is tiled_rigid_dvc else "gaussian"

    @property
    def subvolumes_voxels(self):
        """The chosen edge, then the study's."""
        return (self.subvolume_voxels, *self.study_subvolumes_voxels)

    def describe(self):
        """The mode and the name and first docstring line of each choice, for the records (JSON-ready)."""
        def line(function):
            return f"{function.__module__}.{function.__name__}: {(function.__doc__ or '').strip().splitlines()[0]}"

        return {"mode": self.mode, **{name: line(getattr(self, name)) for name in
                                      ("match_contrast", "registration_region", "correlate", "segment", "pore_size")}}


def best_settings(voxel_size_um, *, median_size, subvolume_um, node_spacing_um, max_displacement_um, min_cc,
                  study_subvolumes_um=(), edge_exclusion_um=0.0, registration_box=None):
    """The project's own chain (the default), chosen for the most accurate displacement field.

    Median filter; whole-volume histogram matching
    (:func:`match_whole_histogram`); rigid registration on the slab that
    straddles the foil top (:func:`analysis.regions.pin_region`); DVC on overlapping
    subvolumes with an affine warp under a gaussian window, sample rows only
    (:func:`overlapping_affine_dvc`); pore, CBD and NMC by multi-Otsu
    (:func:`analysis.segment.segment_three_phase`); continuous CPSD of the
    pores (:func:`analysis.pores.cpsd`).

    Parameters
    ----------
    voxel_size_um : float
    median_size : int
        Median filter edge, voxels (1 = off).
    subvolume_um, node_spacing_um, max_displacement_um : float
    min_cc : float
    study_subvolumes_um : sequence of float
    edge_exclusion_um : float
    registration_box : tuple of 3 (start, stop) pairs, optional
        Voxels of the reference; replaces the slab on the pin.

    Returns
    -------
    ChainSettings
    """
    return ChainSettings.from_um(voxel_size_um, median_size=median_size, subvolume_um=subvolume_um,
                                 node_spacing_um=node_spacing_um, max_displacement_um=max_displacement_um,
                                 min_cc=min_cc, study_subvolumes_um=study_subvolumes_um,
                                 edge_exclusion_um=edge_exclusion_um, registration_box=registration_box)


def paper_settings(voxel_size_um, *, median_size, subvolume_um, max_displacement_um, min_cc,
                   study_subvolumes_um=(), edge_exclusion_um=0.0, registration_box=None):
    """The seed paper's methods, step by step (its numbers are the scenario's defaults).

    1. Contrast: Avizo's "Match Contrast" as a linear grey-level map, gain and
       offset from the foot of the sample, which the pin holds still
       (:func:`analysis.preprocess.match_linear`).
    2. One pass of a 3D median filter (``median_size``, 3 in the paper).
    3. Rigid registration on one particle in a box of the subvolume edge (the
       paper's 8 µm box), picked automatically
       (:func:`analysis.regions.particle_region`), unless a box is given.
    4. Avizo's local DVC as its figures show it: cubes tiling the whole volume,
       node spacing = edge, a rigid warp per cube (:func:`tiled_rigid_dvc`),
       at the chosen edge and at every edge of the study (16 → 4 µm in 2 µm
       steps in the paper), up to ``max_displacement_um`` (10 µm).
    5. Binarisation: NMC against the rest at Otsu's threshold
       (:func:`analysis.segment.segment_nmc_vs_rest`); the inactive fraction
       is the rest's.
    6. CPSD of the rest with whole-voxel ball radii, as the ImageJ plugin
       computes it (:func:`analysis.pores.cpsd_whole_voxel`).

    Parameters
    ----------
    As :func:`best_settings`, without ``node_spacing_um`` (tiles are spaced by their edge).

    Returns
    -------
    ChainSettings
    """
    settings = ChainSettings.from_um(voxel_size_um, median_size=median_size, subvolume_um=subvolume_um,
                                     node_spacing_um=subvolume_um, max_displacement_um=max_displacement_um,
                                     min_cc=min_cc, study_subvolumes_um=study_subvolumes_um,
                                     edge_exclusion_um=edge_exclusion_um, registration_box=registration_box)
    return dataclasses.replace(settings, mode="paper", node_spacing_voxels=settings.subvolume_voxels,
                               match_contrast=match_linear, registration_region=particle_region,
                               correlate=tiled_rigid_dvc, segment=segment_nmc_vs_rest, pore_size=cpsd_whole_voxel)


MODES = ("best", "paper")
"""Names of the chain's modes (``[analysis] mode``, ``synthcal analyse --mode``)."""
