"""Every choice of the analysis chain in one frozen object (see :mod:`analysis.chain`)."""

from dataclasses import dataclass

import numpy as np


def odd_voxels(length_um, voxel_size_um):
    """A subvolume edge in voxels: the nearest odd count, so the node is its centre voxel."""
    edge = int(round(length_um / voxel_size_um))
    return edge + 1 - edge % 2


@dataclass(frozen=True)
class ChainSettings:
    """Every choice of the analysis chain, in voxels.

    Build it with :meth:`from_um`; the synthcal pipeline builds it from the
    scenario's ``[dvc]`` and ``[pores]`` sections, ``synthcal analyse`` from
    the same sections' defaults and its flags.

    Attributes
    ----------
    voxel_size_um : float
    median_size : int
        Edge of the 3D median filter; 1 = off.
    subvolume_voxels : int
        DVC subvolume edge (odd).
    node_spacing_voxels : int
    max_displacement_voxels : float
        Largest displacement searched per axis.
    min_cc : float
        Converged nodes below this correlation are not ``ok``.
    study_subvolumes_voxels : tuple of int
        Further edges correlated for the subvolume study (may be empty).
    edge_exclusion_voxels : int
        Margin removed from the pore analysis region on every side.
    registration_box : tuple of 3 (start, stop) pairs, optional
        Reference box to register on; default :func:`registration_region`.
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

    @classmethod
    def from_um(cls, voxel_size_um, *, median_size, subvolume_um, node_spacing_um, max_displacement_um, min_cc,
                study_subvolumes_um=(), edge_exclusion_um=0.0, registration_box=None):
        """Settings from lengths in µm (subvolume edges rounded to odd voxel counts).

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
    def subvolumes_voxels(self):
        """The chosen edge, then the study's."""
        return (self.subvolume_voxels, *self.study_subvolumes_voxels)
