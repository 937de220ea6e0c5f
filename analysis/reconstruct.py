"""Tomographic reconstruction: flat-field normalisation, FBP and SIRT.

Inputs from a real instrument
-----------------------------
Everything here works on plain arrays, so a scan from any parallel-beam
instrument (synchrotron, or a lab TXM whose cone angle is negligible) is
reconstructed exactly like a synthetic one:

- ``counts``: the projections as a stack shaped (n_angles, n_rows, n_det),
  e.g. ``tifffile.imread("projections.tif")`` on a multi-page TIFF with one
  page per angle. Detector rows are slices along the rotation axis (z): if
  the instrument's rotation axis is horizontal on the detector, transpose the
  pages first. Any numeric dtype (uint16 counts are typical).
- ``flats`` / ``darks``: open-beam and dark frames, one image (n_rows, n_det)
  or a stack (n_frames, n_rows, n_det) that is averaged.
- ``angles_deg``: one angle per projection, in degrees, e.g.
  ``numpy.loadtxt("angles.txt")``. Convention (see :mod:`analysis.projector`):
  at angle t the beam runs along (cos t, sin t) in the (x, y) plane of the
  reconstruction. An instrument that turns the other way gives a mirrored
  volume: negate its angles. Angles need not be uniform or cover 180 degrees.
- The rotation axis must sit on the detector centre, column (n_det - 1) / 2:
  shift the projections sideways first if it does not (a centre-of-rotation
  search is not part of this module).

Units: line integrals are in voxel lengths (detector pixel = voxel edge), so
reconstructions are attenuation per voxel length; divide by the voxel size
in µm to get 1/µm.
"""

import numpy as np
import scipy.fft

from analysis.projector import back_project, backproject_interpolating, forward_project

FILTERS = ("ramp", "shepp-logan", "hann", "hamming")


def _stack_mean(frames, name, shape):
    arr = np.asarray(frames, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr.mean(axis=0)
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape} or a stack (n, *{shape}), got {np.shape(frames)}")
    return arr


def normalise(counts, flats, darks, floor_counts=0.5):
    """Line integrals from raw projections: ``-log((counts - dark) / (flat - dark))``.

    Parameters
    ----------
    counts : array_like, shape (n_angles, n_rows, n_det)
        Raw projections in detector counts (any numeric dtype).
    flats : array_like, shape (n_rows, n_det) or (n_flats, n_rows, n_det)
        Open-beam frames in counts; a stack is averaged.
    darks : array_like, shape (n_rows, n_det) or (n_darks, n_rows, n_det)
        Dark frames in counts; a stack is averaged.
    floor_counts : float
        Dark-corrected counts below this (zero or negative from noise or dead
        pixels) are raised to it before the log, so the result stays finite.

    Returns
    -------
    numpy.ndarray of float32, shape (n_angles, n_rows, n_det)
        Line integrals of attenuation (dimensionless; per voxel length when
        divided by nothing else, as :func:`fbp` expects).
    """
    c = np.asarray(counts)
    if c.ndim != 3 or min(c.shape) < 1:
        raise ValueError(f"counts: expected a non-empty 3D (n_angles, n_rows, n_det) stack, got {c.shape}")
    if not floor_counts > 0:
        raise ValueError(f"floor_counts: expected a positive number, got {floor_counts!r}")
    dark = _stack_mean(darks, "darks", c.shape[1:])
    open_beam = np.maximum(_stack_mean(flats, "flats", c.shape[1:]) - dark, floor_counts)
    out = np.empty(c.shape, dtype=np.float32)
    log_open = np.log(open_beam)
    for a in range(c.shape[0]):  # one projection at a time keeps float64 temporaries small
        out[a] = log_open - np.log(np.maximum(c[a] - dark, floor_counts))
    return out


def angular_weights(angles_deg):
    """Angular interval (radians) each projection stands for in back-projection.

    Parallel-beam rays at t and t + 180 degrees coincide, so angles are taken
    modulo 180 and each gets half the gap to its neighbours on either side
    (uniform 180 degree scans: pi / n_angles each; 360 degree scans: half
    that). A gap more than ten times the median spacing is a missing wedge,
    not sampled data: there an angle counts only half a median spacing. The
    weights are then scaled to sum to pi, so that a limited-angle scan keeps
    the mean attenuation (as lab reconstructors do); the missing wedge itself
    cannot be recovered and shows as streaks.

    A direction listed twice (the same angle modulo 180: t and t + 180 of a
    360 degree scan, or an angle repeated) is seen twice: its first listing
    takes half the gap below it and its last listing half the gap above
    (listings between take nothing). Gaps of 1e-9 degree or less count as
    such repeats, not as spacings, when the median spacing is taken.

    Parameters
    ----------
    angles_deg : array_like, shape (n_angles,)

    Returns
    -------
    numpy.ndarray of float64, shape (n_angles,)
    """
    angles = np.asarray(angles_deg, dtype=np.float64)
    if angles.ndim != 1 or angles.size == 0 or not np.all(np.isfinite(angles)):
        raise ValueError("angles_deg: expected a non-empty 1D array of finite angles in degrees")
    folded = np.mod(angles, 180.0)
    order = np.argsort(folded, kind="stable")
    sorted_deg = folded[order]
    gaps = np.diff(np.concatenate([sorted_deg, sorted_deg[:1] + 180.0]))  # gap after each angle
    positive = gaps[gaps > 1e-9]
    typical = np.median(positive) if positive.size else 180.0
    gaps = np.where(gaps > 10.0 * typical, typical, gaps)
    w_sorted = 0.5 * (gaps + np.roll(gaps, 1))
    weights = np.empty_like(w_sorted)
    weights[order] = w_sorted
    return weights * (np.pi / weights.sum())


def _filter_response(n_pad, filter_name):
    """Frequency response (rfft bins) of the windowed Ram-Lak filter, unit spacing.

    Built from the band-limited spatial Ram-Lak kernel rather than |f|
    sampled directly, which avoids the DC offset of the naive ramp.
    """
    k = np.arange(n_pad)
    k = np.minimum(k, n_pad - k)
    h = np.zeros(n_pad)
    h[0] = 0.25
    odd = k % 2 == 1
    h[odd] = -1.0 / (np.pi * k[odd]) ** 2
    response = np.real(np.fft.rfft(h))
    f = np.fft.rfftfreq(n_pad)  # cycles per pixel, 0 .. 0.5
    if filter_name == "shepp-logan":
        response *= np.sinc(f)
    elif filter_name == "hann":
        response *= 0.5 + 0.5 * np.cos(2 * np.pi * f)
    elif filter_name == "hamming":
        response *= 0.54 + 0.46 * np.cos(2 * np.pi * f)
    return response


def _cylinder_padding(rows, left, right):
    """Pad detector rows with the projection of a centred cylinder.

    Truncated projections (the object is wider than the field of view) are
    extended as if the object were a cylinder centred on the rotation axis
    (a pillar, a core): its chord 2 mu sqrt(R^2 - u^2) is fitted per row and
    side from the edge value and the central value, which fixes R without a
    noisy slope. Each value is a mean over b = min(8, n // 8) columns (at
    least 1) of the row's n: the edge value over the outermost b on that
    side, the central value over b (b + 1 where n - b is odd) centred on
    the row's centre (n - 1) / 2. The extension falls to zero at R, is cut
    by a cosine taper at the end of the padding (no jump where the FFT
    wraps), and is zero where a row's edge is empty. Rows that are not
    truncated stay unchanged.
    """
    n = rows.shape[-1]
    band = max(1, min(8, n // 8))
    u_edge = max(0.5 * (n - 1), 0.5)
    # the central band is centred on (n - 1) / 2: as many columns as n has, odd or even
    middle = band + (n - band) % 2
    centre = rows[:, (n - middle) // 2:(n + middle) // 2].mean(axis=-1)

    def extension(edge, width):
        # edge / centre = sqrt(1 - u_edge^2 / R^2); capped so R <= ~4 u_edge.
        ratio = np.clip(edge / np.where(centre > 0, centre, np.inf), 0.0, 0.97)
        r2 = u_edge ** 2 / (1.0 - ratio ** 2)
        d = np.arange(1, width + 1)
        inside = (r2[:, None] - (u_edge + d) ** 2) / np.maximum(r2[:, None] - u_edge ** 2, 1e-12)
        shape = np.sqrt(np.clip(inside, 0.0, None))
        taper = 0.5 + 0.5 * np.cos(np.pi * d / (width + 1))
        return np.maximum(edge, 0.0)[:, None] * shape * taper  # column k: k + 1 bins beyond the edge

    out = np.empty((rows.shape[0], left + n + right), dtype=np.float32)
    out[:, left:left + n] = rows
    out[:, :left] = extension(rows[:, :band].mean(axis=-1), left)[:, ::-1]
    out[:, left + n:] = extension(rows[:, -band:].mean(axis=-1), right)
    return out


def filter_projections(line_integrals, filter="ramp", padding=True, out=None):
    """Ramp-filter projections along the detector rows.

    Parameters
    ----------
    line_integrals : array_like, shape (n_angles, n_rows, n_det)
    filter : {"ramp", "shepp-logan", "hann", "hamming"}
        Ram-Lak ramp, alone or apodised by the named window.
    padding : bool
        True: extrapolate each row beyond the detector edges as the
        projection of a centred cylinder (see :func:`_cylinder_padding`), which
        removes most of the cupping and bright rim of truncated projections
        (interior tomography). False: pad with zeros only (right for an
        object that fits in the field of view).
    out : numpy.ndarray of float32, shape (n_angles, n_rows, n_det), optional
        Where to write the result; it may be ``line_integrals`` itself (each
        projection is read whole before it is overwritten), which saves a
        copy of the scan.

    Returns
    -------
    numpy.ndarray of float32, shape (n_angles, n_rows, n_det)
        ``out`` when given.
    """
    if filter not in FILTERS:
        raise ValueError(f"filter: expected one of {FILTERS}, got {filter!r}")
    p = np.asarray(line_integrals)
    if p.ndim != 3 or min(p.shape) < 1:
        raise ValueError(f"line_integrals: expected a non-empty 3D (n_angles, n_rows, n_det) stack, got {p.shape}")
    n_det = p.shape[2]
    n_pad = scipy.fft.next_fast_len(max(64, 2 * n_det))
    left = (n_pad - n_det) // 2
    right = n_pad - n_det - left
    response = _filter_response(n_pad, filter).astype(np.float32)
    if out is None:
        out = np.empty(p.shape, dtype=np.float32)
    elif not (isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == p.shape):
        raise ValueError(f"out: expected a float32 array of shape {p.shape}")
    for a in range(p.shape[0]):  # per projection: bounded memory for large scans
        rows = np.asarray(p[a], dtype=np.float32)
        if padding:
            row = _cylinder_padding(rows, left, right)
        else:
            row = np.pad(rows, ((0, 0), (left, right)))
        spec = scipy.fft.rfft(row, axis=-1) * response
        out[a] = scipy.fft.irfft(spec, n=n_pad, axis=-1)[:, left:left + n_det]
    return out


def fbp(line_integrals, angles_deg, filter="ramp", padding=True, arch="cpu", progress=None,
        overwrite_input=False):
    """Filtered back-projection, parallel beam, slice by slice.

    Parameters
    ----------
    line_integrals : array_like, shape (n_angles, nz, n_det)
        Attenuation line integrals in voxel lengths (see :func:`normalise`).
    angles_deg : array_like, shape (n_angles,)
        Projection angles in degrees; any set (limited, non-uniform, 360).
    filter : {"ramp", "shepp-logan", "hann", "hamming"}
        Reconstruction filter (see :func:`filter_projections`).
    padding : bool
        Extrapolate the detector rows (centred-cylinder model) against the
        truncation artefacts of interior tomography; False pads with zeros.
    arch : {"cpu", "gpu"}
        Taichi backend for the back-projection.
    progress : callable, optional
        Called as ``progress(fraction)`` with fractions in [0, 1].
    overwrite_input : bool
        Filter ``line_integrals`` in place when it is a float32 array (the
        caller's array then holds the filtered projections): one copy of
        the scan less (0.84 GB for one of the paper scenario's).

    Returns
    -------
    numpy.ndarray of float32, shape (nz, n_det, n_det)
        Attenuation per voxel length, on a grid centred on the rotation axis
        with the detector pitch as voxel size. With limited angles the missing
        wedge shows as streaks and elongation along the missing directions.
    """
    weights = angular_weights(angles_deg)
    p = np.asarray(line_integrals)
    if p.ndim != 3 or p.shape[0] != weights.size:
        raise ValueError(f"line_integrals: expected shape (n_angles={weights.size}, nz, n_det), got {p.shape}")
    in_place = overwrite_input and p.dtype == np.float32
    filtered = filter_projections(p, filter, padding, out=p if in_place else None)
    if progress is not None:
        progress(0.1)
    sub = None if progress is None else (lambda f: progress(0.1 + 0.9 * f))
    n_det = p.shape[2]
    return backproject_interpolating(filtered, angles_deg, (n_det, n_det), weights=weights,
                                     arch=arch, progress=sub)


def sirt(line_integrals, angles_deg, iterations=50, nonnegative=True, shape_yx=None, x0=None,
         arch="cpu", progress=None):
    """SIRT on the Joseph projector pair (for limited angles and noisy data).

    Iterates ``x += C A^T R (b - A x)`` with ``R``, ``C`` the inverse row and
    column sums of the projector ``A``; with ``nonnegative`` the estimate is
    clipped at zero after each step, a prior that FBP cannot use and that
    reduces the missing-wedge streaks of a limited-angle scan. Cost per
    iteration is about twice an FBP back-projection.

    A ray whose weights in the grid sum to 1e-6 voxel lengths or less (it
    misses the grid, or only grazes a corner) is ignored, and a voxel whose
    weights over all rays sum to 1e-6 or less (on a grid wider than the
    detector: one no ray reaches) keeps its start value.

    Parameters
    ----------
    line_integrals : array_like, shape (n_angles, nz, n_det)
        Attenuation line integrals in voxel lengths.
    angles_deg : array_like, shape (n_angles,)
        Projection angles in degrees.
    iterations : int
        Number of SIRT updates; each costs one forward and one back
        projection. 50 is a usual compromise between convergence and noise.
    nonnegative : bool
        Clip negative attenuation after every update.
    shape_yx : tuple of int, optional
        (ny, nx) of the reconstruction grid, centred on the rotation axis;
        default (n_det, n_det). For truncated projections a grid wider than
        the detector keeps the outside material from being forced inside.
    x0 : array_like, shape (nz, ny, nx), optional
        Starting estimate (e.g. an FBP); default zeros.
    arch : {"cpu", "gpu"}
        Taichi backend.
    progress : callable, optional
        Called as ``progress(fraction)`` after each iteration.

    Returns
    -------
    numpy.ndarray of float32, shape (nz, ny, nx)
        Attenuation per voxel length.
    """
    b = np.asarray(line_integrals, dtype=np.float32)
    if b.ndim != 3 or min(b.shape) < 1:
        raise ValueError(f"line_integrals: expected a non-empty 3D (n_angles, nz, n_det) stack, got {b.shape}")
    if not isinstance(iterations, (int, np.integer)) or iterations < 0:
        raise ValueError(f"iterations: expected a non-negative int, got {iterations!r}")
    n_det = b.shape[2]
    shape_yx = (n_det, n_det) if shape_yx is None else tuple(shape_yx)
    vol_shape = (b.shape[1],) + shape_yx
    if x0 is None:
        x = np.zeros(vol_shape, dtype=np.float32)
    else:
        x = np.array(x0, dtype=np.float32)
        if x.shape != vol_shape:
            raise ValueError(f"x0: expected shape {vol_shape}, got {x.shape}")

    def project(v):
        return forward_project(v, angles_deg, n_det=n_det, arch=arch)

    def adjoint(s):
        return back_project(s, angles_deg, shape_yx, arch=arch)

    row_sums = project(np.ones(vol_shape, dtype=np.float32))
    col_sums = adjoint(np.ones(b.shape, dtype=np.float32))
    inv_rows = np.where(row_sums > 1e-6, 1.0 / np.maximum(row_sums, 1e-6), 0.0).astype(np.float32)
    inv_cols = np.where(col_sums > 1e-6, 1.0 / np.maximum(col_sums, 1e-6), 0.0).astype(np.float32)
    for k in range(iterations):
        x += inv_cols * adjoint(inv_rows * (b - project(x)))
        if nonnegative:
            np.maximum(x, 0.0, out=x)
        if progress is not None:
            progress((k + 1) / iterations)
    return x


METHODS = ("fbp", "sirt")


def reconstruct(counts, flats, darks, angles_deg, *, method="fbp", filter="ramp", padding=True, iterations=50,
                arch="cpu", progress=None):
    """Raw scan to volume: :func:`normalise`, then :func:`fbp` or :func:`sirt`.

    Parameters
    ----------
    counts, flats, darks : array_like
        See :func:`normalise`.
    angles_deg : array_like, shape (n_angles,)
    method : {"fbp", "sirt"}
    filter, padding : FBP settings (see :func:`fbp`); ignored by SIRT.
    iterations : int
        SIRT iterations; ignored by FBP.
    arch : {"cpu", "gpu"}
    progress : callable, optional

    Returns
    -------
    ndarray of float32, shape (nz, n_det, n_det)
        Attenuation per voxel length.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    line_integrals = normalise(counts, flats, darks)
    if method == "fbp":
        return fbp(line_integrals, angles_deg, filter=filter, padding=padding, arch=arch, progress=progress,
                   overwrite_input=True)
    return sirt(line_integrals, angles_deg, iterations=iterations, arch=arch, progress=progress)
