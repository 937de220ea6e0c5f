"""The nano-CT simulator: an attenuation field -> raw projections, flats and darks.

No inverse crime
----------------
The reconstruction back-projects with :mod:`analysis.projector` on a grid
of voxel ``v``; projecting a phantom on that same grid with that same
projector would hide every discretisation error (the "inverse crime"). So
the object is projected from a grid ``oversampling`` times finer (voxel
``v / oversampling``) onto a detector of pixels ``v / oversampling``, and the
detector bins ``oversampling x oversampling`` pixels into one, as the
paper's TXM did in its large field-of-view mode (1024² pixels of 64 nm,
binned 2x2 to 128 nm over 65 µm). ``oversampling = 1`` is the inverse crime,
kept for tests and quick looks.

Streaming
---------
The fine grid is never held whole (the paper's would be 8 GB). The caller
gives ``render_rows(first_row, n_rows)``, the attenuation of some fine rows
(z slices) of the object, rows beyond the grid included (the head above,
the pin below, which motion brings into view). The rotation axis is z and
the beam parallel, so detector row ``z`` sees only slice ``z``: slabs of a
few fine rows are rendered and projected one after the other, and their line
integrals kept only until the detector rows they reach (through motion and
blur) are finished.

Physics, in the order it is applied:

1. Line integrals of each fine slab with the parallel-beam Joseph projector
   of :mod:`analysis.projector` (its geometry contract applies; the detector
   may be narrower than the object: interior tomography). The pipeline's
   ``render_rows`` (:func:`synthcal.phantom.attenuation_rows`) gives the
   attenuation above air's: the flats are taken through the same air.
2. Motion: the object is shifted rigidly by ``motion_voxels[a]`` (z, y, x;
   reconstruction voxels) while projection ``a`` is taken. In parallel beam
   a shift is a shift of the projection, by ``dz`` rows and
   ``dy cos t - dx sin t`` columns, applied to the fine line integrals by
   linear interpolation (on the fine grid its smoothing is at most a
   quarter of a reconstruction pixel, and it is exact for whole fine
   pixels). A feature at p appears at p + motion; registration must undo it.
3. Beer–Lambert on each fine pixel: ``incident_counts / oversampling**2 *
   exp(-line integral)`` (the exponential of the fine line integrals, not of
   their mean: the partial-volume bias of real edges).
4. Detector blur: a Gaussian point-spread function of std ``psf_sigma_px``
   binned pixels (``psf_sigma_px * oversampling`` fine pixels), on the fine
   image, before the pixels integrate it.
5. Ring-causing gain errors: each fine pixel multiplies the projections, not
   the flats, by ``1 + N(0, ring_gain_sigma)`` — the part of the pixel
   response that flat-field correction does not remove.
6. Binning: the expected photons of ``oversampling x oversampling`` fine
   pixels are summed into one pixel. The photons of the fine pixels are
   independent Poisson draws, and a sum of independent Poisson counts is
   Poisson with the summed mean, so the binned pixel is drawn once from
   that mean (the same distribution, a quarter of the draws); the charge is
   binned on the chip, so dark offset ``dark_counts`` and Gaussian read noise
   ``read_noise_counts`` (std) come once per binned pixel, on every frame.

Flats are open-beam frames (``incident_counts`` per binned pixel, own
Poisson and read noise), darks are offset plus read noise. All frames are
float32 counts (read noise makes them non-integer and can make dark pixels
negative); a real detector would round and clip them to uint16, which
:func:`analysis.reconstruct.normalise` accepts as well.

Noise comes from ``numpy.random.default_rng``: the gains, flats and darks
from the seed ``[rng_seed, 0]``, the projections' row ``r`` from
``[rng_seed, 1, r]``, so the bytes do not depend on how the rows are
streamed.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.ndimage

from analysis.projector import forward_project

__all__ = ["Scan", "forward_project", "limited_angles_deg", "rows_of_volume",
           "scan_motion_voxels", "simulate_scan"]

# Fine voxels rendered and projected at once: with the renderer's own arrays
# about 0.5 GB, whatever the size of the object.
_SLAB_VOXELS = 2 ** 24
_ZB = 8  # slab rows come in eights: whole z-blocks of the forward projector's (8 slices each)
_ANGLE_GROUP = 64  # projections exposed together (bounds the float64 temporaries)
# Fine line integrals held before they are exposed: each exposure also shifts and blurs a halo of
# rows on both sides, so rows are exposed in batches of about this many values (float32: 256 MB)
_EXPOSE_VALUES = 2 ** 26


@dataclass(frozen=True)
class Scan:
    """One simulated tomographic scan, in detector counts.

    Attributes
    ----------
    counts : numpy.ndarray of float32, shape (n_angles, nz, n_det)
        Projections (binned pixels).
    flats : numpy.ndarray of float32, shape (n_flats, nz, n_det)
        Open-beam frames.
    darks : numpy.ndarray of float32, shape (n_darks, nz, n_det)
        Dark frames.
    angles_deg : numpy.ndarray of float64, shape (n_angles,)
        Projection angles in degrees (geometry of :mod:`analysis.projector`).
    motion_voxels : numpy.ndarray of float64, shape (n_angles, 3)
        The rigid (z, y, x) shift of the object during each projection, in
        (binned) voxels.
    """

    counts: np.ndarray
    flats: np.ndarray
    darks: np.ndarray
    angles_deg: np.ndarray
    motion_voxels: np.ndarray


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


def scan_velocity_voxels(drift_rate_um_per_h, creep_um_per_h, scan_time_h, voxel_size_um, n_steps):
    """How far the sample moves during each scan, ``(n_steps, 3)`` voxels (z, y, x) per scan.

    Thermal drift moves it at ``drift_rate_um_per_h`` ([vz, vy, vx], empty:
    none) during every scan; under load (steps >= 1) it also creeps toward
    the pin (-z) at ``creep_um_per_h``. Both are taken as constant over one
    scan of ``scan_time_h`` hours.
    """
    rate = np.zeros(3) if not drift_rate_um_per_h else np.asarray(drift_rate_um_per_h, dtype=np.float64)
    if rate.shape != (3,):
        raise ValueError(f"drift_rate_um_per_h: expected [vz, vy, vx] or empty, got {drift_rate_um_per_h!r}")
    velocity = np.tile(rate, (n_steps, 1))
    velocity[1:, 0] -= creep_um_per_h
    return velocity * (scan_time_h / voxel_size_um)


def scan_motion_voxels(angles_deg, drift_voxels, velocity_voxels_per_scan):
    """The shift of the sample during each projection of a scan, ``(n_angles, 3)`` voxels (z, y, x).

    The projections are taken in the order of ``angles_deg``, projection ``a``
    at time ``(a + 1/2) / n_angles`` of the scan; the sample moves at constant
    velocity and its mean position over the scan is ``drift_voxels``.

    What a reconstruction shows: along z (the rotation axis, detector rows)
    the sample at exactly its mean position. Across the beam, projection
    ``a`` sees the position only along its detector direction
    ``e_a = (cos t, -sin t)`` (y, x), and the reconstruction shows the
    least-squares fit of those views, which a velocity moves off the mean
    by a fraction of the distance travelled, perpendicular to it (over
    0..180°, ``v / (2 pi)``; FBP over ±70°: 3 voxels along y appear as -0.90
    voxel along x, 3 along x as -0.53 along y). That shift is linear in
    the velocity, so two scans with the same velocity across the beam
    (thermal drift at a steady rate) show the same shift, and the
    displacement between them is the difference of their mean positions:
    the drift is the mean position, and the truth frame (which holds
    displacements between scans) needs nothing else as long as what differs
    between scans moves along z (creep).

    Parameters
    ----------
    angles_deg : array_like, shape (n_angles,)
    drift_voxels : array_like, shape (3,)
        Mean position over the scan, voxels (z, y, x).
    velocity_voxels_per_scan : array_like, shape (3,)
        Distance moved over the whole scan, voxels (z, y, x).
    """
    angles = np.asarray(angles_deg, dtype=np.float64)
    drift = np.asarray(drift_voxels, dtype=np.float64)
    velocity = np.asarray(velocity_voxels_per_scan, dtype=np.float64)
    if angles.ndim != 1 or angles.size == 0:
        raise ValueError("angles_deg: expected a non-empty 1D array of angles in degrees")
    if drift.shape != (3,) or velocity.shape != (3,):
        raise ValueError("drift_voxels, velocity_voxels_per_scan: expected three values (z, y, x) each")
    time = (np.arange(angles.size) + 0.5) / angles.size - 0.5
    return drift + time[:, None] * velocity


def rows_of_volume(mu_per_voxel):
    """``render_rows`` for :func:`simulate_scan` from an attenuation volume held in memory.

    Rows beyond the volume continue its first and last rows (so a head and
    pin that move out of the volume stay in the beam).

    Parameters
    ----------
    mu_per_voxel : array_like, shape (nz, ny, nx)
        Attenuation in 1/voxel-length of this volume's voxels (the fine grid).
    """
    mu = np.asarray(mu_per_voxel, dtype=np.float32)
    if mu.ndim != 3 or min(mu.shape) < 1:
        raise ValueError(f"mu_per_voxel: expected a non-empty 3D (z, y, x) array, got shape {mu.shape}")
    if not np.all(np.isfinite(mu)) or mu.min() < 0:
        raise ValueError("mu_per_voxel: expected finite, non-negative attenuation per voxel")

    def render_rows(first_row, n_rows):
        return mu[np.clip(np.arange(first_row, first_row + n_rows), 0, mu.shape[0] - 1)]

    return render_rows


def _frames(rng, expected, n_frames, dark_counts, read_noise_counts):
    """Poisson frames around ``expected`` plus dark offset and read noise (float32)."""
    out = np.empty((n_frames,) + expected.shape, dtype=np.float32)
    for k in range(n_frames):
        frame = rng.poisson(expected) + dark_counts
        if read_noise_counts > 0:
            frame = frame + rng.normal(0.0, read_noise_counts, expected.shape)
        out[k] = frame
    return out


def _shift_linear(images, shifts, axis):
    """``images`` (angle, row, column) moved by ``shifts[angle]`` pixels along ``axis`` (1 or 2),
    linearly interpolated; edge pixels continue (the caller crops what they reach)."""
    n = images.shape[axis]
    source = np.arange(n)[None, :] - shifts[:, None]
    lo = np.floor(source)
    frac = source - lo
    lo = lo.astype(np.int64)
    first, second = np.clip(lo, 0, n - 1), np.clip(lo + 1, 0, n - 1)
    weight_shape = (n, 1) if axis == 1 else (1, n)
    out = np.empty(images.shape)
    # one gather per projection along its own axis: ~10x faster than take_along_axis over the stack
    for a in range(len(shifts)):
        w = frac[a].reshape(weight_shape)
        out[a] = (np.take(images[a], first[a], axis=axis - 1) * (1.0 - w)
                  + np.take(images[a], second[a], axis=axis - 1) * w)
    return out


def _bin(image, factor):
    """Sum ``factor x factor`` pixels of (angle, row, column) images."""
    a, r, c = image.shape
    return image.reshape(a, r // factor, factor, c // factor, factor).sum(axis=(2, 4))


def _check_settings(shape, oversampling, incident_counts, n_det, n_flats, n_darks, numbers):
    try:
        nz, ny, nx = (int(n) for n in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape: expected three positive ints (nz, ny, nx), got {shape!r}") from None
    if min(nz, ny, nx) < 1:
        raise ValueError(f"shape: expected three positive ints (nz, ny, nx), got {shape!r}")
    if not isinstance(oversampling, (int, np.integer)) or oversampling < 1:
        raise ValueError(f"oversampling: expected a positive int, got {oversampling!r}")
    if not incident_counts > 0:
        raise ValueError(f"incident_counts: expected a positive number, got {incident_counts!r}")
    if not isinstance(n_det, (int, np.integer)) or n_det < 1:
        raise ValueError(f"n_det: expected a positive int, got {n_det!r}")
    for name, value in (("n_flats", n_flats), ("n_darks", n_darks)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    for name, value in numbers.items():
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name}: expected a finite non-negative number, got {value!r}")
    return nz, ny, nx


def simulate_scan(render_rows, shape, angles_deg, *, oversampling=1, motion_voxels=(0.0, 0.0, 0.0),
                  incident_counts=5000.0, n_det=None, n_flats=10, n_darks=None, dark_counts=100.0,
                  read_noise_counts=3.0, psf_sigma_px=0.0, ring_gain_sigma=0.0, rng_seed=0, arch="cpu",
                  progress=None):
    """Simulate a parallel-beam scan of an object given slab by slab (see the module doc).

    Parameters
    ----------
    render_rows : callable
        ``render_rows(first_row, n_rows)`` returns the attenuation of fine
        rows ``first_row .. first_row + n_rows - 1``, shape
        ``(n_rows, oversampling * ny, oversampling * nx)``, in 1/fine-voxel-length
        (mu [1/µm] times ``voxel_size_um / oversampling``), non-negative. Fine
        row ``f`` lies in reconstruction row ``f // oversampling``; rows
        below 0 and from ``oversampling * nz`` on are asked for too (up to a
        few rows, for motion and blur). :func:`rows_of_volume` makes one from
        an array.
    shape : tuple of 3 int
        ``(nz, ny, nx)`` of the object in reconstruction voxels (binned pixels).
    angles_deg : array_like, shape (n_angles,)
        Projection angles in degrees, in the order they are taken (e.g.
        :func:`limited_angles_deg`).
    oversampling : int
        Fine voxels (and detector pixels) per reconstruction voxel edge; the
        detector bins ``oversampling x oversampling`` pixels. 1: the inverse crime.
    motion_voxels : array_like, shape (3,) or (n_angles, 3)
        Rigid (z, y, x) shift of the object during each projection,
        reconstruction voxels (e.g. :func:`scan_motion_voxels`).
    incident_counts : float
        Mean open-beam photons per binned pixel per frame (the photon budget).
    n_det : int, optional
        Detector columns (binned) centred on the rotation axis; default nx.
    n_flats, n_darks : int
        Number of flat and dark frames; ``n_darks`` defaults to ``n_flats``.
    dark_counts : float
        Dark offset in counts, added to every frame.
    read_noise_counts : float
        Standard deviation of the Gaussian read noise per binned pixel, counts.
    psf_sigma_px : float
        Standard deviation of the Gaussian detector blur, binned pixels.
    ring_gain_sigma : float
        Relative std of the per-pixel gain error left after flat-fielding.
    rng_seed : int
        Seed of the noise; same inputs and seed, same bytes.
    arch : {"cpu", "gpu"}
        Taichi backend of the projector.
    progress : callable, optional
        Called as ``progress(fraction)`` with fractions in [0, 1].

    Returns
    -------
    Scan

    Examples
    --------
    >>> ball = lambda first, n: np.ones((n, 8, 8), np.float32) * 0.01
    >>> scan = simulate_scan(ball, (2, 4, 4), [0.0, 90.0], oversampling=2, read_noise_counts=0.0)
    >>> scan.counts.shape
    (2, 2, 4)
    """
    n_darks = n_flats if n_darks is None else n_darks
    n_det = shape[2] if n_det is None and len(shape) == 3 else n_det
    nz, ny, nx = _check_settings(shape, oversampling, incident_counts, n_det, n_flats, n_darks,
                                 {"dark_counts": dark_counts, "read_noise_counts": read_noise_counts,
                                  "psf_sigma_px": psf_sigma_px, "ring_gain_sigma": ring_gain_sigma})
    angles = np.asarray(angles_deg, dtype=np.float64)
    if angles.ndim != 1 or angles.size == 0 or not np.all(np.isfinite(angles)):
        raise ValueError("angles_deg: expected a non-empty 1D array of finite angles in degrees")
    n_angles = angles.size
    motion = np.asarray(motion_voxels, dtype=np.float64)
    if motion.shape not in ((3,), (n_angles, 3)) or not np.all(np.isfinite(motion)):
        raise ValueError(f"motion_voxels: expected three finite numbers (z, y, x) or one row per angle "
                         f"({n_angles}, 3), got shape {motion.shape}")
    motion = np.array(np.broadcast_to(motion, (n_angles, 3)))
    o = int(oversampling)

    # the shift of each projection on the fine detector: rows and columns
    t = np.deg2rad(angles)
    shift_rows = o * motion[:, 0]
    shift_cols = o * (motion[:, 1] * np.cos(t) - motion[:, 2] * np.sin(t))
    sigma_fine = psf_sigma_px * o
    blur_reach = int(np.ceil(4.0 * sigma_fine))  # gaussian_filter's truncation at 4 sigma
    halo_rows = int(np.ceil(np.abs(shift_rows).max())) + blur_reach + 1
    halo_cols = int(np.ceil(np.abs(shift_cols).max())) + blur_reach + 1
    n_window = o * n_det + 2 * halo_cols
    fine_yx = (o * ny, o * nx)
    slab_rows = max(_ZB, _SLAB_VOXELS // (fine_yx[0] * fine_yx[1]) // _ZB * _ZB)

    frames_rng = np.random.default_rng([rng_seed, 0])
    gain = (1.0 + frames_rng.normal(0.0, ring_gain_sigma, (o * nz, o * n_det)) if ring_gain_sigma > 0
            else np.ones((o * nz, o * n_det)))
    flats = _frames(frames_rng, np.full((nz, n_det), float(incident_counts)), n_flats, dark_counts,
                    read_noise_counts)
    darks = _frames(frames_rng, np.zeros((nz, n_det)), n_darks, dark_counts, read_noise_counts)
    counts = np.empty((n_angles, nz, n_det), dtype=np.float32)
    incident_fine = float(incident_counts) / o ** 2

    def expose(lines, k0, k1, pool):
        """Binned expected photons of rows k0..k1-1 from the line integrals of their fine rows and halo."""
        expected = np.empty((n_angles, k1 - k0, n_det))

        def expose_group(a0):
            a1 = min(n_angles, a0 + _ANGLE_GROUP)
            moved = _shift_linear(lines[a0:a1], shift_rows[a0:a1], axis=1)
            moved = _shift_linear(moved, shift_cols[a0:a1], axis=2)
            intensity = incident_fine * np.exp(-moved)
            if sigma_fine > 0:
                intensity = scipy.ndimage.gaussian_filter(intensity, (0.0, sigma_fine, sigma_fine), mode="nearest")
            seen = intensity[:, halo_rows:halo_rows + o * (k1 - k0), halo_cols:halo_cols + o * n_det]
            expected[a0:a1] = _bin(seen * gain[o * k0:o * k1], o)

        # the groups write disjoint projections, so the threads leave the bytes as one thread would
        list(pool.map(expose_group, range(0, n_angles, _ANGLE_GROUP)))
        return expected

    def detect(expected, k0, pool):
        """Counts of rows k0.. drawn from their expected photons, each row from its own seed."""
        def detect_row(r):
            rng = np.random.default_rng([rng_seed, 1, k0 + r])
            counts[:, k0 + r] = _frames(rng, np.maximum(expected[:, r], 0.0), 1, dark_counts, read_noise_counts)[0]

        # a row's draws depend on its seed alone, so the threads (numpy draws without the GIL) leave the
        # bytes as one thread would
        list(pool.map(detect_row, range(expected.shape[1])))

    first, last = -halo_rows, o * nz + halo_rows
    expose_rows = max(1, _EXPOSE_VALUES // (n_angles * n_window * o))
    # Fine rows held, from fine row lines_first = o * done - halo_rows on: before a slab comes, fewer
    # than o * expose_rows + 2 * halo_rows (else they would have been exposed). Written in place:
    # growing an (angle, row, column) array by concatenation copied every held row for each slab
    # (2 min of each 12-min scan of the paper scenario).
    lines = np.empty((n_angles, min(o * expose_rows + 2 * halo_rows + slab_rows, last - first), n_window),
                     dtype=np.float32)
    lines_first, n_held, done = first, 0, 0
    with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        for f0 in range(first, last, slab_rows):
            n_rows = min(slab_rows, last - f0)
            mu = np.asarray(render_rows(f0, n_rows), dtype=np.float32)
            if mu.shape != (n_rows,) + fine_yx:
                raise ValueError(f"render_rows: expected shape {(n_rows,) + fine_yx} for rows {f0}.., "
                                 f"got {mu.shape}")
            if not np.all(np.isfinite(mu)) or mu.min() < 0:
                raise ValueError(f"render_rows: expected finite, non-negative attenuation (rows {f0}..)")
            lines[:, n_held:n_held + n_rows] = forward_project(mu, angles, n_det=n_window, arch=arch)
            n_held += n_rows
            ready = min(nz, (f0 + n_rows - halo_rows) // o)
            if ready - done >= expose_rows or (ready == nz and done < nz):
                detect(expose(lines[:, :o * (ready - done) + 2 * halo_rows], done, ready, pool), done, pool)
                # the rows from the next batch's first fine row minus its halo on move to the front
                keep = o * ready - halo_rows - lines_first
                lines[:, :n_held - keep] = lines[:, keep:n_held]
                lines_first, n_held, done = lines_first + keep, n_held - keep, ready
            if progress is not None:
                progress((f0 + n_rows - first) / (last - first))
    return Scan(counts=counts, flats=flats, darks=darks, angles_deg=angles, motion_voxels=motion)
