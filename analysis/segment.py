"""Two- and three-phase segmentation of reconstructed (median-filtered) volumes.

Thresholds come from the grey-value histogram alone (Otsu, multi-Otsu), so
the functions run on any scan without a ground truth. The reconstruction is
expected to be median-filtered already (``analysis.preprocess``): the median
filter removes the salt-and-pepper part of the FBP noise that would otherwise
fill the valleys of the histogram.
"""

from dataclasses import dataclass

import numpy as np
from skimage.filters import threshold_multiotsu, threshold_otsu

from analysis.phases import Phase

_HISTOGRAM_BINS = 256


@dataclass(frozen=True)
class TwoPhase:
    """Result of :func:`threshold_two_phase`.

    Attributes
    ----------
    solid : ndarray of bool, (z, y, x)
        True where the grey value is above ``threshold``.
    threshold : float
        Grey value used (volume units, e.g. attenuation in 1/µm).
    """

    solid: np.ndarray
    threshold: float


@dataclass(frozen=True)
class ThreePhase:
    """Result of :func:`threshold_three_phase`.

    Attributes
    ----------
    labels : ndarray of uint8, (z, y, x)
        0 pore, 1 CBD (low-density solid), 2 NMC (dense solid).
    thresholds : tuple of float
        (pore/CBD, CBD/NMC) grey values used, ascending.
    """

    labels: np.ndarray
    thresholds: tuple


def _check_volume(volume, mask):
    volume = np.asarray(volume)
    if volume.ndim != 3 or not np.issubdtype(volume.dtype, np.number):
        raise ValueError(f"volume: expected a 3-D numeric array (z, y, x), got "
                         f"shape {volume.shape} dtype {volume.dtype}")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != volume.shape:
            raise ValueError(f"mask: expected a bool array of shape {volume.shape}, got "
                             f"shape {mask.shape} dtype {mask.dtype}")
        values = volume[mask]
    else:
        values = volume.ravel()
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() == values.max():
        raise ValueError("volume: expected finite grey values with some contrast "
                         "(inside mask), got a constant or empty selection")
    return volume, values


def threshold_two_phase(volume, threshold=None, mask=None):
    """Binarise a volume into solid and pore.

    Parameters
    ----------
    volume : ndarray, (z, y, x)
        Reconstructed, median-filtered grey values (float32 attenuation, 1/µm).
    threshold : float, optional
        Manual threshold in grey-value units. Default: Otsu's threshold of the
        histogram (256 bins) of the voxels inside ``mask``.
    mask : ndarray of bool, optional
        Voxels whose grey values form the histogram (e.g. the pillar without
        the air around it). The whole volume is thresholded regardless.

    Returns
    -------
    TwoPhase
        ``solid`` (bool, True above the threshold) and the ``threshold`` used.
    """
    volume, values = _check_volume(volume, mask)
    if threshold is None:
        threshold = float(threshold_otsu(values, nbins=_HISTOGRAM_BINS))
    elif not np.isfinite(threshold):
        raise ValueError(f"threshold: expected a finite grey value, got {threshold!r}")
    return TwoPhase(solid=volume > threshold, threshold=float(threshold))


def threshold_three_phase(volume, thresholds=None, mask=None):
    """Segment a volume into pore, carbon-binder domain (CBD) and NMC.

    Parameters
    ----------
    volume : ndarray, (z, y, x)
        Reconstructed, median-filtered grey values (float32 attenuation, 1/µm).
    thresholds : (float, float), optional
        Manual (pore/CBD, CBD/NMC) thresholds in grey-value units, ascending.
        Default: multi-Otsu with three classes on the histogram (256 bins)
        of the voxels inside ``mask``.
    mask : ndarray of bool, optional
        Voxels whose grey values form the histogram. The whole volume is
        labelled regardless.

    Returns
    -------
    ThreePhase
        ``labels`` (uint8: 0 pore, 1 CBD, 2 NMC) and the ``thresholds`` used.
    """
    volume, values = _check_volume(volume, mask)
    if thresholds is None:
        thresholds = threshold_multiotsu(values, classes=3, nbins=_HISTOGRAM_BINS)
    thresholds = tuple(float(t) for t in np.asarray(thresholds, dtype=float).ravel())
    if len(thresholds) != 2 or not all(np.isfinite(thresholds)) \
            or thresholds[0] >= thresholds[1]:
        raise ValueError(f"thresholds: expected two finite ascending grey values, "
                         f"got {thresholds!r}")
    labels = np.where(volume > thresholds[1], np.uint8(Phase.NMC),
                      np.where(volume > thresholds[0], np.uint8(Phase.CBD), np.uint8(Phase.PORE)))
    return ThreePhase(labels=labels, thresholds=thresholds)


@dataclass(frozen=True)
class Segmentation:
    """A segmentation as the pore analysis uses it (:func:`segment_three_phase`, :func:`segment_nmc_vs_rest`).

    Attributes
    ----------
    labels : ndarray of uint8, (z, y, x)
        Phase labels (:class:`analysis.phases.Phase` values); label PORE is
        the space whose size distribution the CPSD measures.
    thresholds : tuple of float
        Grey values used, ascending.
    pore_phases : tuple of Phase
        The true phases that label PORE stands for: (PORE,) when the CBD is
        told apart, (PORE, CBD) when everything that is not NMC is one phase.
    legend : str
        One line for file descriptions.
    """

    labels: np.ndarray
    thresholds: tuple
    pore_phases: tuple
    legend: str


def segment_three_phase(volume, mask=None):
    """Pore, CBD and NMC by multi-Otsu (:func:`threshold_three_phase`); the CPSD then runs on the pores.

    Parameters
    ----------
    volume : ndarray, (z, y, x)
        Median-filtered grey values.
    mask : ndarray of bool, optional
        Voxels whose histogram sets the thresholds (the analysis region).

    Returns
    -------
    Segmentation
    """
    seg = threshold_three_phase(volume, mask=mask)
    return Segmentation(labels=seg.labels, thresholds=seg.thresholds, pore_phases=(Phase.PORE,),
                        legend="0 pore, 1 CBD, 2 NMC (multi-Otsu)")


def segment_nmc_vs_rest(volume, mask=None):
    """The paper's binarisation: NMC against everything else, at Otsu's threshold.

    The paper "binarised" its scans "with a combination of thresholding
    tools" and reports the *inactive* (non-NMC) fraction and the CPSD of
    the binarised image, so its two classes are NMC (bright) and the rest
    (pores and carbon-binder, which overlap in grey at this resolution).
    Which tools it combined is not said; Otsu's threshold of the two-class
    histogram is what one automatic two-class tool gives (Avizo's
    auto-thresholding "factorisation" criterion, ImageJ's "Otsu"), and it
    needs no truth. Labels: NMC keeps its label, the rest is labelled PORE.

    Parameters
    ----------
    volume : ndarray, (z, y, x)
        Median-filtered grey values.
    mask : ndarray of bool, optional
        Voxels whose histogram sets the threshold (the analysis region).

    Returns
    -------
    Segmentation
    """
    two = threshold_two_phase(volume, mask=mask)
    return Segmentation(labels=np.where(two.solid, np.uint8(Phase.NMC), np.uint8(Phase.PORE)),
                        thresholds=(two.threshold,), pore_phases=(Phase.PORE, Phase.CBD),
                        legend="0 not NMC (pore and CBD together), 2 NMC (Otsu)")
