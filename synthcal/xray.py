"""The nano-CT simulator: attenuation volume -> raw projections, flats and darks.

Physics, in the order it is applied:

1. Drift: the object is shifted rigidly by ``drift_voxels`` (z, y, x; sub-voxel
   allowed) before projection, with linear interpolation
   (``scipy.ndimage.shift``, order 1, edge values continued so the head and
   pin that leave the volume stay in the beam). A feature at p appears at
   p + drift; registration must undo exactly this.
2. Line integrals through the volume with the parallel-beam Joseph projector
   of :mod:`analysis.projector` (its geometry contract applies; the detector
   may be narrower than the volume: interior tomography, truncated
   projections).
3. Beer–Lambert: expected photons ``incident_counts * exp(-line integral)``.
4. Detector blur: a Gaussian point-spread function (``psf_sigma_px``, std in
   detector pixels) on the transmitted intensity, before noise.
5. Ring-causing gain errors: each detector pixel (row, column) multiplies
   the projections, not the flats, by ``1 + N(0, ring_gain_sigma)`` — the
   part of the pixel response that flat-field correction does not remove.
6. Poisson photon noise, then the dark offset ``dark_counts`` and Gaussian
   read noise ``read_noise_counts`` (std) on every frame.

Flats are open-beam frames (``incident_counts``, own Poisson and read noise),
darks are offset plus read noise. All frames are float32 counts (read noise
makes them non-integer and can make dark pixels negative); a real detector
would round and clip them to uint16, which :func:`analysis.reconstruct.normalise`
accepts as well.
"""

from dataclasses import dataclass

import numpy as np
import scipy.ndimage

from analysis.projector import forward_project

__all__ = ["Scan", "forward_project", "limited_angles_deg", "simulate_scan"]


@dataclass(frozen=True)
class Scan:
    """One simulated tomographic scan, in detector counts.

    Attributes
    ----------
    counts : numpy.ndarray of float32, shape (n_angles, nz, n_det)
        Projections.
    flats : numpy.ndarray of float32, shape (n_flats, nz, n_det)
        Open-beam frames.
    darks : numpy.ndarray of float32, shape (n_darks, nz, n_det)
        Dark frames.
    angles_deg : numpy.ndarray of float64, shape (n_angles,)
        Projection angles in degrees (geometry of :mod:`analysis.projector`).
    drift_voxels : tuple of float
        The rigid (z, y, x) shift applied to the object, in voxels.
    """

    counts: np.ndarray
    flats: np.ndarray
    darks: np.ndarray
    angles_deg: np.ndarray
    drift_voxels: tuple


def limited_angles_deg(n_projections, half_range_deg):
    """Equally spaced angles from ``-half_range_deg`` to ``+half_range_deg``, ends included.

    Parameters
    ----------
    n_projections : int
        Number of angles (e.g. 801).
    half_range_deg : float
        Half the angular range in degrees (e.g. 70 for +-70 degrees), in (0, 90].

    Returns
    -------
    numpy.ndarray of float64, shape (n_projections,)
    """
    if not isinstance(n_projections, (int, np.integer)) or n_projections < 2:
        raise ValueError(f"n_projections: expected an int >= 2, got {n_projections!r}")
    if not 0.0 < half_range_deg <= 90.0:
        raise ValueError(f"half_range_deg: expected a value in (0, 90], got {half_range_deg!r}")
    return np.linspace(-half_range_deg, half_range_deg, int(n_projections))


def drift_voxels(drift_um, voxel_size_um, n_steps):
    """Rigid drift of each scan in voxels, ``(n_steps, 3)`` (z, y, x); an empty list means none."""
    if not drift_um:
        return np.zeros((n_steps, 3))
    drift = np.asarray(drift_um, dtype=np.float64) / voxel_size_um
    if drift.shape != (n_steps, 3):
        raise ValueError(f"drift_um: expected one [dz, dy, dx] per step ({n_steps}), got shape {drift.shape}")
    return drift


def _frames(rng, expected, n_frames, dark_counts, read_noise_counts):
    """Poisson frames around ``expected`` plus dark offset and read noise (float32)."""
    out = np.empty((n_frames,) + expected.shape, dtype=np.float32)
    for k in range(n_frames):
        frame = rng.poisson(expected) + dark_counts
        if read_noise_counts > 0:
            frame = frame + rng.normal(0.0, read_noise_counts, expected.shape)
        out[k] = frame
    return out


def simulate_scan(mu_per_voxel, angles_deg, *, incident_counts=5000.0, n_det=None, n_flats=10,
                  n_darks=None, dark_counts=100.0, read_noise_counts=3.0, psf_sigma_px=0.0,
                  ring_gain_sigma=0.0, drift_voxels=(0.0, 0.0, 0.0), rng_seed=0, arch="cpu",
                  progress=None):
    """Simulate a parallel-beam scan of an attenuation volume (see the module doc).

    Parameters
    ----------
    mu_per_voxel : array_like, shape (nz, ny, nx)
        Linear attenuation in 1/voxel-length (mu [1/µm] times voxel_size_um),
        non-negative; may be wider than ``n_det`` and contain the head and pin.
    angles_deg : array_like, shape (n_angles,)
        Projection angles in degrees (e.g. :func:`limited_angles_deg`).
    incident_counts : float
        Mean open-beam photons per pixel per frame (the photon budget).
    n_det : int, optional
        Detector columns centred on the rotation axis; default nx.
    n_flats, n_darks : int
        Number of flat and dark frames; ``n_darks`` defaults to ``n_flats``.
    dark_counts : float
        Dark offset in counts, added to every frame.
    read_noise_counts : float
        Standard deviation of the Gaussian read noise, counts.
    psf_sigma_px : float
        Standard deviation of the Gaussian detector blur, detector pixels.
    ring_gain_sigma : float
        Relative std of the per-pixel gain error left after flat-fielding.
    drift_voxels : sequence of 3 floats
        Rigid (z, y, x) shift of the object in voxels, applied before projection.
    rng_seed : int
        Seed of ``numpy.random.default_rng``; same inputs and seed, same bytes.
    arch : {"cpu", "gpu"}
        Taichi backend of the projector.
    progress : callable, optional
        Called as ``progress(fraction)`` with fractions in [0, 1].

    Returns
    -------
    Scan
    """
    mu = np.asarray(mu_per_voxel, dtype=np.float32)
    if mu.ndim != 3 or min(mu.shape) < 1:
        raise ValueError(f"mu_per_voxel: expected a non-empty 3D (z, y, x) array, got shape {mu.shape}")
    if not np.all(np.isfinite(mu)) or mu.min() < 0:
        raise ValueError("mu_per_voxel: expected finite, non-negative attenuation per voxel")
    if not incident_counts > 0:
        raise ValueError(f"incident_counts: expected a positive number, got {incident_counts!r}")
    n_darks = n_flats if n_darks is None else n_darks
    for name, value in (("n_flats", n_flats), ("n_darks", n_darks)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    for name, value in (("dark_counts", dark_counts), ("read_noise_counts", read_noise_counts),
                        ("psf_sigma_px", psf_sigma_px), ("ring_gain_sigma", ring_gain_sigma)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name}: expected a finite non-negative number, got {value!r}")
    drift = tuple(float(d) for d in drift_voxels)
    if len(drift) != 3 or not np.all(np.isfinite(drift)):
        raise ValueError(f"drift_voxels: expected three finite numbers (z, y, x), got {drift_voxels!r}")
    angles = np.asarray(angles_deg, dtype=np.float64)

    def report(f):
        if progress is not None:
            progress(f)

    if any(drift):
        mu = scipy.ndimage.shift(mu, drift, order=1, mode="nearest")
    line = forward_project(mu, angles, n_det=n_det, arch=arch,
                           progress=None if progress is None else (lambda f: progress(0.5 * f)))
    detector_shape = line.shape[1:]

    rng = np.random.default_rng(rng_seed)
    gain = 1.0 + rng.normal(0.0, ring_gain_sigma, detector_shape) if ring_gain_sigma > 0 else 1.0
    open_beam = np.full(detector_shape, float(incident_counts))
    flats = _frames(rng, open_beam, n_flats, dark_counts, read_noise_counts)
    darks = _frames(rng, np.zeros(detector_shape), n_darks, dark_counts, read_noise_counts)
    counts = np.empty(line.shape, dtype=np.float32)
    for a in range(line.shape[0]):
        intensity = incident_counts * np.exp(-line[a].astype(np.float64))
        if psf_sigma_px > 0:
            intensity = scipy.ndimage.gaussian_filter(intensity, psf_sigma_px, mode="nearest")
        counts[a] = _frames(rng, np.maximum(gain * intensity, 0.0), 1, dark_counts, read_noise_counts)[0]
        if a % 32 == 31:
            report(0.5 + 0.5 * (a + 1) / line.shape[0])
    report(1.0)
    return Scan(counts=counts, flats=flats, darks=darks, angles_deg=angles, drift_voxels=drift)
