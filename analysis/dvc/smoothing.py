"""Gaussian smoothing of both volumes before correlation (a pre-filter in the DIC literature).

Where noise dominates, Gauss–Newton on cubic B-spline interpolation reads
a displacement biased by the noise: interpolation averages the deformed
volume's noise by an amount that depends on the sub-voxel position (at a
half-voxel shift on each axis the cubic B-spline keeps 0.43 of white noise's
variance, trilinear weights 0.12), so the ZNSSD criterion favours the
positions where the noise is smoothed most. Smoothing both volumes by the
same small gaussian first makes the noise smooth before any interpolation
(Pan, B., 2013, "Bias error reduction of digital image correlation using
Gaussian pre-filtering", Optics and Lasers in Engineering 51, 1161–1167).
A translation commutes with the filter, so a rigid shift is still found
exactly; under strain the same gaussian blurs the two volumes' features
differently (a 5 % compression makes the deformed volume's features 5 %
smaller against the same filter), a small mismatch at small strains and a
costly one at large strains (below).

A sigma of 0.5 voxel was chosen among 0.5, 0.7 and 1.0 on the 16 cases
``benchmarks/dvc_vs_spam.py`` then ran, and checked on 11 cases drawn apart
from them (``benchmarks/dvc_smoothing.py``; 7 Dec 2026; RMS error against the
truth, smoothed / not):

- smooth textures under strong noise gain most: 0.75 on the benchmark's
  gaussian texture at 80 % noise, 0.84 and 0.56 on gaussian textures of 1.0
  and 2.5 voxels at 100 % noise (there the nodes trusted went from 37 to 99 %);
- the phantom's reconstruction (texture down to the voxel) at 2 % and 5 %
  noise: 0.67 and 0.73, the interpolation bias of the unsmoothed texture gone;
- it costs where the texture itself is nearly white and the noise strong:
  1.12 on the phantom at 40 % noise, 1.06 at 70 %, 1.02 on a 0.8-voxel
  gaussian texture at 50 %: smoothing then takes texture with the noise;
- sigma 0.7 and 1.0 gave 1.77 and 2.90 on the phantom at 40 % noise.

Those cases strain by at most 8 %. On the quick scenario's scans (best mode,
the pillar shortened by 30 and 35 %, particles sliding past each other inside
a subvolume) 0.5 voxel made the chain's RMS error 2.47 and 3.07 voxels
instead of 1.24 and 1.08 (medians 0.98 and 1.18 instead of 0.61 and 0.87),
and the fit from the truth (``dvc.best_fit``) 2.45 and 2.51 instead of 1.89
and 1.85: at large strain the two volumes' features differ in size by the
strain, and the same gaussian blurs them differently. So the smoothing is off
by default, and neither mode of the chain uses it: it is for a user's small
strains on noisy, smooth textures (``smoothing_sigma_voxels=0.5``).
"""

import numbers
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage as ndi


def check_sigma(sigma_voxels):
    """``sigma_voxels`` as a float, or a one-line ValueError when it is not a finite number >= 0."""
    if isinstance(sigma_voxels, bool) or not isinstance(sigma_voxels, numbers.Real) or \
            not np.isfinite(sigma_voxels) or sigma_voxels < 0:
        raise ValueError(f"smoothing_sigma_voxels: expected a finite number >= 0, got {sigma_voxels!r}")
    return float(sigma_voxels)


def gaussian_smoothing(volumes, sigma_voxels):
    """Each volume smoothed by a gaussian of ``sigma_voxels`` (new float32 arrays; 0: the volumes as given).

    Parameters
    ----------
    volumes : sequence of numpy.ndarray
        float32 3D volumes (z, y, x), e.g. a reference and a deformed volume.
    sigma_voxels : float
        Standard deviation of the gaussian, voxels, >= 0.

    Returns
    -------
    list of numpy.ndarray
        ``scipy.ndimage.gaussian_filter`` of each (its defaults: 4 sigma
        wide, mirrored at the faces), one thread per volume.
    """
    sigma_voxels = check_sigma(sigma_voxels)
    if sigma_voxels == 0:
        return list(volumes)
    with ThreadPoolExecutor(max(len(volumes), 1)) as pool:
        return list(pool.map(lambda v: ndi.gaussian_filter(v, sigma_voxels, output=np.float32), volumes))
