"""Hypothesis strategies for property-testing image analysis with an exact truth.

Three strategies draw inputs whose right answer is known exactly, so a test
can assert a property of *anyone's* analysis (DVC, registration, pore size
distribution), not only of this package's:

- :func:`volume_pairs` draws ``(reference, deformed, truth)``: two textured
  volumes and the displacement ``truth(points)`` (z, y, x voxels) that maps
  the first onto the second (rigid, affine and smooth non-affine motion);
- :func:`sphere_packs` draws disjoint spherical pores in solid, with the
  continuous pore size distribution they imply;
- :func:`phantom_pairs` draws a DEM-free particle arrangement, a motion per
  particle, the pair of voxel phantoms (:func:`synthcal.phantom.voxelise`)
  and the truth (:mod:`synthcal.truth`).

Plain functions give the same volumes without hypothesis, for tests that need
one fixed case: :func:`render_texture`, :func:`warp_periodic`, :class:`Warp`,
:func:`digitise_spheres`.

How the deformed volume is made exact
-------------------------------------
The deformed volume must not come from an interpolation kernel that the
analysis under test might share (a cubic-spline DVC would then recover a
cubic-spline warp perfectly). Each texture is a function of continuous
position (the *material*), and a volume is that function rendered on the
voxel grid; the deformed volume is the same material after the motion,
rendered the same way: ``deformed(x) = material(X)`` where ``x = X + u(X)``.

- ``"speckle"``: periodic Gaussian-filtered white noise (unit std), i.e. a
  trigonometric polynomial on the grid's period. A translation is applied
  exactly in Fourier space. Any other motion evaluates it at ``X`` after an
  exact two-fold Fourier upsampling, with a quintic spline on the fine grid:
  measured against the direct Fourier sum, the error is below 1e-5 of the
  texture's std for feature sizes >= 1.6 voxels and below 2e-4 at 1 voxel.
- ``"granular"``: Voronoi grains (one seed per cell of a jittered lattice,
  a random grey level each, defined on all of space), imaged by a model
  scanner: sampled at 3^3 sub-points per voxel, blurred by a Gaussian point
  spread function (sigma 0.6 voxel) and integrated over each voxel. Its grain
  boundaries are sharp, so it is not band-limited: no interpolation of the
  reference reproduces the deformed volume.
- ``"phantom"``: NMC particles voxelised by :func:`synthcal.phantom.voxelise`
  (texture in each particle's body frame); each particle moves rigidly with
  the drawn motion at its centre, so the truth is NaN in the pores.

Conventions: arrays are indexed (z, y, x); voxel ``(i, j, k)`` is centred at
``(i, j, k)`` voxels (and at ``(i, j, k) * voxel_size_um`` µm where a voxel
size is given); a displacement ``u(X)`` moves the material at reference point
``X`` to ``X + u(X)``. The same draw gives the same bytes: every random choice
is drawn by hypothesis (or derived from a seed it draws).
"""

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import scipy.ndimage as ndi
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from synthcal.phantom import Phantom, Texture, voxelise
from synthcal.rotations import rotation_matrices_zyx
from synthcal.truth import ParticlePoses, true_displacement_um

__all__ = ["Warp", "VolumePair", "SpherePack", "PhantomPair", "render_texture", "warp_periodic",
           "digitise_spheres", "volume_pairs", "sphere_packs", "phantom_pairs"]

TEXTURES = ("granular", "speckle", "phantom")
# default feature size (voxels) per texture: speckle Gaussian sigma, granular grain edge
_DEFAULT_FEATURE_VOXELS = {"speckle": 1.6, "granular": 4.0}
_SPECKLE_UPSAMPLING = 2
_SCANNER_SUBSAMPLES = 3          # sub-points per voxel edge of the granular scanner
_SCANNER_PSF_SIGMA_VOXELS = 0.6
_GRAIN_JITTER = (0.3, 0.7)       # seed offsets inside its lattice cell (fraction of the cell)
_N_WAVES = 2                     # sine waves in the smooth non-affine part of a drawn motion
_PHANTOM_VOXEL_SIZE_UM = 0.128   # the paper's voxel
_PHANTOM_ENERGY_KEV = 5.4


# --- the motion -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Warp:
    """A smooth invertible motion: affine plus a sum of sine waves.

    The displacement of the material at reference point ``X`` (voxels, z-y-x) is

    ``u(X) = t + (A - I) (X - c) + sum_k a_k sin(k_k . (X - c) + phi_k)``.

    Attributes
    ----------
    centre_voxels : (3,) float
        ``c``, the point about which ``A`` acts (voxels, z-y-x).
    translation_voxels : (3,) float
        ``t`` (voxels, z-y-x).
    matrix : (3, 3) float
        ``A``, acting on z-y-x vectors (rotation times stretch for a drawn motion).
    wave_amplitudes_voxels : (K, 3) float
        ``a_k`` (voxels, z-y-x); K may be 0.
    wave_vectors_per_voxel : (K, 3) float
        ``k_k`` (radians per voxel, z-y-x).
    wave_phases : (K,) float
        ``phi_k`` (radians).

    Notes
    -----
    Calling the warp gives the truth ``u`` at reference points;
    :meth:`inverse` finds the reference point of a deformed one by the fixed
    point ``X = c + A^-1 (x - c - t - w(X))``, which converges because the
    waves' gradient is kept below half of ``1 / |A^-1|``.

    Examples
    --------
    >>> w = Warp.affine([[-0.01, 0, 0], [0, 0.005, 0], [0, 0, 0.005]], translation_voxels=[1.0, 0, 0],
    ...                 centre_voxels=[10.0, 10.0, 10.0])
    >>> w([[10.0, 10.0, 10.0], [20.0, 10.0, 10.0]]).round(6).tolist()
    [[1.0, 0.0, 0.0], [0.9, 0.0, 0.0]]
    >>> x = np.array([[3.0, 4.0, 5.0]])
    >>> bool(np.allclose(w.inverse(x) + w(w.inverse(x)), x))
    True
    """

    centre_voxels: np.ndarray
    translation_voxels: np.ndarray
    matrix: np.ndarray
    wave_amplitudes_voxels: np.ndarray
    wave_vectors_per_voxel: np.ndarray
    wave_phases: np.ndarray

    def __post_init__(self):
        def frozen(name, shape):
            value = np.array(getattr(self, name), dtype=np.float64)
            if value.shape != shape or not np.all(np.isfinite(value)):
                raise ValueError(f"{name}: expected finite values of shape {shape}, got shape {value.shape}")
            value.flags.writeable = False
            object.__setattr__(self, name, value)

        frozen("centre_voxels", (3,))
        frozen("translation_voxels", (3,))
        frozen("matrix", (3, 3))
        n_waves = np.shape(self.wave_phases)[0] if np.ndim(self.wave_phases) == 1 else -1
        frozen("wave_phases", (max(n_waves, 0),))
        frozen("wave_amplitudes_voxels", (n_waves, 3))
        frozen("wave_vectors_per_voxel", (n_waves, 3))
        if np.linalg.det(self.matrix) <= 0:
            raise ValueError(f"matrix: expected a positive determinant (no inversion of space), "
                             f"got {np.linalg.det(self.matrix):.3g}")
        lipschitz = np.sum(np.linalg.norm(self.wave_amplitudes_voxels, axis=1)
                           * np.linalg.norm(self.wave_vectors_per_voxel, axis=1))
        if lipschitz * np.linalg.norm(np.linalg.inv(self.matrix), 2) >= 0.5:
            raise ValueError("wave_amplitudes_voxels: the waves' gradient is too large for the motion to be "
                             "invertible (|a| |k| |A^-1| summed over waves must stay below 0.5)")

    @classmethod
    def translation(cls, translation_voxels):
        """A pure translation ``u(X) = t`` (voxels, z-y-x).

        Examples
        --------
        >>> Warp.translation([0.5, -1.0, 2.0])([[7.0, 7.0, 7.0]]).tolist()
        [[0.5, -1.0, 2.0]]
        """
        return cls.affine(np.zeros((3, 3)), translation_voxels=translation_voxels)

    @classmethod
    def affine(cls, gradient, translation_voxels=(0.0, 0.0, 0.0), centre_voxels=(0.0, 0.0, 0.0)):
        """The affine motion ``u(X) = t + G (X - c)``.

        Parameters
        ----------
        gradient : (3, 3) array_like
            Displacement gradient ``G = du_i / dX_j`` (z-y-x); a rotation ``R``
            about ``c`` is ``G = R - I``.
        translation_voxels : (3,) array_like
            ``t``, the displacement of ``c`` (voxels, z-y-x).
        centre_voxels : (3,) array_like
            ``c`` (voxels, z-y-x).

        Examples
        --------
        >>> Warp.affine(np.diag([-0.1, 0, 0]), centre_voxels=[5.0, 0, 0])([[15.0, 0, 0]]).round(12).tolist()
        [[-1.0, 0.0, 0.0]]
        """
        return cls(centre_voxels=centre_voxels, translation_voxels=translation_voxels,
                   matrix=np.eye(3) + np.asarray(gradient, dtype=np.float64),
                   wave_amplitudes_voxels=np.zeros((0, 3)), wave_vectors_per_voxel=np.zeros((0, 3)),
                   wave_phases=np.zeros(0))

    @property
    def is_translation(self):
        """True when ``u`` is the same at every point (``A = I``, no wave of non-zero amplitude)."""
        return bool(np.all(self.matrix == np.eye(3)) and not np.any(self.wave_amplitudes_voxels))

    def _waves(self, d):
        # einsum, not matmul: BLAS threads on a K = 3 product cost far more than they bring
        phase = np.einsum("...j,kj->...k", d, self.wave_vectors_per_voxel) + self.wave_phases
        return np.einsum("...k,ki->...i", np.sin(phase), self.wave_amplitudes_voxels), np.cos(phase)

    def __call__(self, points_voxels):
        """Displacement ``u`` (voxels, z-y-x) at reference points ``(..., 3)`` (voxels, z-y-x)."""
        d = np.asarray(points_voxels, dtype=np.float64) - self.centre_voxels
        return self.translation_voxels + np.einsum("ij,...j->...i", self.matrix - np.eye(3), d) + self._waves(d)[0]

    def gradient(self, points_voxels):
        """Displacement gradient ``du_i / dX_j`` ``(..., 3, 3)`` at reference points (voxels, z-y-x)."""
        d = np.asarray(points_voxels, dtype=np.float64) - self.centre_voxels
        cos = self._waves(d)[1]
        waves = np.einsum("...k,ki,kj->...ij", cos, self.wave_amplitudes_voxels, self.wave_vectors_per_voxel)
        return self.matrix - np.eye(3) + waves

    def inverse(self, points_voxels):
        """Reference points ``X`` ``(..., 3)`` whose material is at the deformed points ``x = X + u(X)``."""
        x = np.asarray(points_voxels, dtype=np.float64)
        inv = np.linalg.inv(self.matrix)
        base = np.einsum("ij,...j->...i", inv, x - self.centre_voxels - self.translation_voxels)
        d = base
        if not np.any(self.wave_amplitudes_voxels):
            return self.centre_voxels + d
        # a contraction with constant < 0.5 (checked at construction): 60 steps reach float precision
        for _ in range(60):
            d_next = base - np.einsum("ij,...j->...i", inv, self._waves(d)[0])
            if np.max(np.abs(d_next - d), initial=0.0) < 1e-12:
                d = d_next
                break
            d = d_next
        return self.centre_voxels + d


# --- textures -------------------------------------------------------------------------------------------

def _check_shape(shape, smallest=4):
    if (not isinstance(shape, (tuple, list)) or len(shape) != 3
            or any(not isinstance(s, (int, np.integer)) or s < smallest for s in shape)):
        raise ValueError(f"shape: expected three integers >= {smallest} (z, y, x), got {shape!r}")
    return tuple(int(s) for s in shape)


def _speckle(shape, seed, sigma_voxels):
    """Periodic Gaussian-filtered white noise of unit std, float64 (z, y, x)."""
    v = ndi.gaussian_filter(np.random.default_rng(seed).normal(size=shape), sigma_voxels, mode="wrap")
    return v / v.std()


def _fourier_upsample(volume, factor):
    """Exact samples of a periodic trigonometric polynomial on a grid ``factor`` times finer.

    Axis by axis (the interpolant is a tensor product); an even-length axis's
    Nyquist coefficient is split between +N/2 and -N/2, the symmetric
    (real) continuation.
    """
    v = volume.astype(np.complex128)
    for axis in range(3):
        n = v.shape[axis]
        spectrum = np.moveaxis(np.fft.fft(v, axis=axis), axis, 0)
        padded = np.zeros((factor * n,) + spectrum.shape[1:], dtype=np.complex128)
        half = (n + 1) // 2
        padded[:half] = spectrum[:half]
        padded[factor * n - (n - half):] = spectrum[half:]
        if n % 2 == 0:
            padded[n // 2] = spectrum[n // 2] / 2
            padded[factor * n - n // 2] = spectrum[n // 2] / 2
        v = np.moveaxis(np.fft.ifft(padded, axis=0) * factor, 0, axis)
    return v.real


def warp_periodic(volume, warp):
    """A periodic band-limited volume after a motion, without a coarse-grid interpolation kernel.

    ``volume`` is read as one period of a trigonometric polynomial (e.g.
    Gaussian-filtered noise filtered with ``mode="wrap"``). The result at
    voxel ``x`` is that polynomial at ``X = warp.inverse(x)``: exactly, by a
    Fourier phase ramp, for a translation; otherwise after an exact two-fold
    Fourier upsampling, by a quintic spline on the fine grid (error below 1e-5
    of the std for a Gaussian spectrum of sigma >= 1.6 voxels).

    Parameters
    ----------
    volume : ndarray of float, (z, y, x)
        One period of the material.
    warp : Warp
        Motion of the material (voxels, z-y-x).

    Returns
    -------
    ndarray of float32, (z, y, x)
        The moved material on the same grid.

    Examples
    --------
    >>> v = render_texture("speckle", (16, 16, 16), seed=1).astype(np.float64)
    >>> moved = warp_periodic(v, Warp.translation([2.0, 0.0, 0.0]))
    >>> bool(np.allclose(moved, np.roll(v, 2, axis=0), atol=1e-5))
    True
    """
    v = np.asarray(volume, dtype=np.float64)
    if v.ndim != 3:
        raise ValueError(f"volume: expected a 3-D array (z, y, x), got shape {v.shape}")
    if not isinstance(warp, Warp):
        raise ValueError(f"warp: expected a Warp, got {type(warp).__name__}")
    if warp.is_translation:
        shifted = ndi.fourier_shift(np.fft.fftn(v), warp.translation_voxels)
        return np.fft.ifftn(shifted).real.astype(np.float32)
    fine = ndi.spline_filter(_fourier_upsample(v, _SPECKLE_UPSAMPLING), order=5, mode="grid-wrap")
    x = np.indices(v.shape, dtype=np.float64).reshape(3, -1).T
    reference = warp.inverse(x) * _SPECKLE_UPSAMPLING
    out = ndi.map_coordinates(fine, reference.T, order=5, mode="grid-wrap", prefilter=False)
    return out.reshape(v.shape).astype(np.float32)


_HASH_MULTIPLIERS = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                              0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD], dtype=np.uint64)


def _hash_uniform(cells, seed, channel):
    """Uniform numbers in [0, 1) from integer cells ``(..., 3)``, a seed and a channel (splitmix64)."""
    c = cells.astype(np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        z = (c[..., 0] * _HASH_MULTIPLIERS[0]) ^ (c[..., 1] * _HASH_MULTIPLIERS[1]) \
            ^ (c[..., 2] * _HASH_MULTIPLIERS[2]) ^ (np.uint64(seed) * _HASH_MULTIPLIERS[3]) \
            ^ (np.uint64(channel) * _HASH_MULTIPLIERS[4])
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def _grains(points, seed, grain_voxels):
    """Grey level of the Voronoi grain holding each point ``(M, 3)`` (voxels): the nearest seed's.

    One seed per lattice cell of edge ``grain_voxels``, at an offset in
    [0.3, 0.7) of the cell per axis: the nearest seed is then always in the
    27 cells around the point's cell (own seed <= 0.7 sqrt(3) = 1.21 cells
    away, any seed two cells off >= 1.3 cells away), so the field is exact.
    """
    home = np.floor(points / grain_voxels).astype(np.int64)
    first = home.min(axis=0) - 1
    dims = home.max(axis=0) + 2 - first
    # seeds and grey levels of every cell around the points, hashed from the cell's integer index
    cells = first + np.indices(dims).reshape(3, -1).T
    lo, hi = _GRAIN_JITTER
    jitter = np.stack([_hash_uniform(cells, seed, axis) for axis in range(3)], axis=-1)
    seeds = (cells + lo + (hi - lo) * jitter) * grain_voxels
    levels = np.sqrt(12.0) * (_hash_uniform(cells, seed, 3) - 0.5)    # uniform, unit variance
    strides = np.array([dims[1] * dims[2], dims[2], 1])
    home_flat = (home - first) @ strides
    # one coordinate at a time in contiguous 1-D arrays: several times faster than (M, 3) rows
    p = [np.ascontiguousarray(points[:, axis]) for axis in range(3)]
    q = [np.ascontiguousarray(seeds[:, axis]) for axis in range(3)]
    best = np.full(len(points), np.inf)
    nearest = np.zeros(len(points), dtype=np.int64)
    for offset in (np.indices((3, 3, 3)).reshape(3, -1).T - 1) @ strides:
        cell = home_flat + offset
        d2 = (p[0] - q[0][cell]) ** 2
        d2 += (p[1] - q[1][cell]) ** 2
        d2 += (p[2] - q[2][cell]) ** 2
        closer = d2 < best
        np.copyto(best, d2, where=closer)
        np.copyto(nearest, cell, where=closer)
    return levels[nearest]


def _granular(shape, seed, grain_voxels, warp):
    """The granular material imaged by the model scanner (see the module docstring), float64."""
    s = _SCANNER_SUBSAMPLES
    # the blur reaches 4 sigma (scipy's truncation): beyond that the padding is cut off unseen
    pad = int(np.ceil(4 * _SCANNER_PSF_SIGMA_VOXELS))
    fine_shape = tuple((n + 2 * pad) * s for n in shape)
    # sub-point j of voxel i sits at i + (j + 0.5) / s - 0.5, for voxels -pad .. n + pad - 1
    axes = [(np.arange(m) + 0.5) / s - 0.5 - pad for m in fine_shape]
    x = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    reference = x if warp is None else warp.inverse(x)
    fine = _grains(reference, seed, grain_voxels).reshape(fine_shape)
    fine = ndi.gaussian_filter(fine, _SCANNER_PSF_SIGMA_VOXELS * s, mode="nearest")
    coarse = fine.reshape(shape[0] + 2 * pad, s, shape[1] + 2 * pad, s, shape[2] + 2 * pad, s).mean(axis=(1, 3, 5))
    return coarse[pad:-pad, pad:-pad, pad:-pad]


def render_texture(texture, shape, seed, *, feature_voxels=None, warp=None):
    """A textured volume, optionally after a motion of its material.

    Parameters
    ----------
    texture : {"speckle", "granular"}
        ``"speckle"``: periodic Gaussian-filtered white noise (period ``shape``);
        ``"granular"``: Voronoi grains seen by a model scanner (see the module
        docstring). For particle phantoms use :func:`phantom_pairs`.
    shape : tuple of 3 int
        (z, y, x) voxels.
    seed : int
        Non-negative; the same seed gives the same material.
    feature_voxels : float, optional
        Speckle: the Gaussian's sigma (default 1.6 voxels); granular: the
        grain lattice edge (default 4 voxels).
    warp : Warp, optional
        Motion of the material; ``None`` renders the reference.

    Returns
    -------
    ndarray of float32, (z, y, x)
        Speckle has unit std over its period; granular grain levels have unit variance.

    Examples
    --------
    >>> ref = render_texture("granular", (24, 24, 24), seed=3)
    >>> moved = render_texture("granular", (24, 24, 24), seed=3, warp=Warp.translation([0.0, 0.0, 2.0]))
    >>> bool(np.allclose(moved[:, :, 2:], ref[:, :, :-2], atol=1e-5))   # the material moved +2 along x
    True
    """
    if texture not in _DEFAULT_FEATURE_VOXELS:
        raise ValueError(f"texture: expected 'speckle' or 'granular', got {texture!r}")
    shape = _check_shape(shape)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    if feature_voxels is None:
        feature_voxels = _DEFAULT_FEATURE_VOXELS[texture]
    if not (np.isscalar(feature_voxels) and 0.5 <= feature_voxels <= min(shape) / 2):
        raise ValueError(f"feature_voxels: expected a number in [0.5, {min(shape) / 2}], got {feature_voxels!r}")
    if warp is not None and not isinstance(warp, Warp):
        raise ValueError(f"warp: expected a Warp or None, got {type(warp).__name__}")
    if texture == "speckle":
        v = _speckle(shape, seed, feature_voxels)
        return v.astype(np.float32) if warp is None else warp_periodic(v, warp)
    return _granular(shape, seed, float(feature_voxels), warp).astype(np.float32)


# --- spheres --------------------------------------------------------------------------------------------

def digitise_spheres(centres_um, radii_um, shape, voxel_size_um):
    """Spheres on a voxel grid: a voxel is in a sphere when its centre is strictly inside.

    Parameters
    ----------
    centres_um : (N, 3) array_like
        Sphere centres (µm, z-y-x), measured from the centre of voxel (0, 0, 0).
    radii_um : (N,) array_like
        Radii (µm), > 0.
    shape : tuple of 3 int
        (z, y, x) voxels.
    voxel_size_um : float
        Voxel edge (µm).

    Returns
    -------
    inside : ndarray of bool, (z, y, x)
        True in any sphere.
    voxel_counts : ndarray of int64, (N,)
        Voxels of each sphere inside the grid (disjoint spheres: they sum to
        ``inside.sum()``).
    radius_bounds_um : ndarray of float64, (N, 2)
        ``(r_in, r_out)`` per sphere: the largest distance from the centre to
        a voxel centre inside and the smallest to a lattice point outside.
        Every radius in ``(r_in, r_out]`` about that centre digitises to the
        same voxels, so no analysis of the image can tell them apart.

    Examples
    --------
    >>> inside, counts, bounds = digitise_spheres([[2.0, 2.0, 2.0]], [1.0], (5, 5, 5), 1.0)
    >>> int(counts[0]), bounds[0].tolist()     # only the centre voxel: its 6 neighbours lie on the sphere
    (1, [0.0, 1.0])
    """
    centres = np.asarray(centres_um, dtype=np.float64)
    radii = np.asarray(radii_um, dtype=np.float64)
    shape = _check_shape(shape, smallest=1)
    if centres.ndim != 2 or centres.shape[1] != 3:
        raise ValueError(f"centres_um: expected shape (N, 3), got {centres.shape}")
    if radii.shape != (len(centres),) or not np.all(radii > 0):
        raise ValueError(f"radii_um: expected ({len(centres)},) radii > 0, got shape {radii.shape}")
    if not (np.isscalar(voxel_size_um) and voxel_size_um > 0):
        raise ValueError(f"voxel_size_um: expected a number > 0, got {voxel_size_um!r}")
    c = centres / voxel_size_um
    r = radii / voxel_size_um
    # every sphere in a box of the same size: the nearest lattice point outside a sphere lies
    # within r + 1 + sqrt(3) / 2 < r + 2 voxels of its centre, so r_out is found in it
    half = int(np.ceil(r.max())) + 2
    box = np.indices((2 * half + 1,) * 3).reshape(3, -1).T - half
    lattice = np.round(c)[:, None, :] + box[None]                      # (N, K, 3) voxel indices
    distance = np.linalg.norm(lattice - c[:, None, :], axis=2)
    is_in = distance < r[:, None]
    in_grid = np.all((lattice >= 0) & (lattice < np.array(shape)), axis=2)
    bounds = np.stack([np.max(np.where(is_in, distance, 0.0), axis=1),
                       np.min(np.where(is_in, np.inf, distance), axis=1)], axis=1) * voxel_size_um
    inside = np.zeros(shape, dtype=bool)
    hit = lattice[is_in & in_grid].astype(np.int64)
    inside[hit[:, 0], hit[:, 1], hit[:, 2]] = True
    return inside, np.sum(is_in & in_grid, axis=1), bounds


@dataclass(frozen=True)
class SpherePack:
    """Disjoint spherical pores in solid, with the pore size distribution they imply.

    Attributes
    ----------
    pore : ndarray of bool, (z, y, x)
        True in a pore. Every pore keeps at least one solid voxel between it,
        the other pores and the array's faces.
    voxel_size_um : float
        Voxel edge (µm).
    centres_um : ndarray of float64, (N, 3)
        Pore centres (µm, z-y-x) from the centre of voxel (0, 0, 0).
    radii_um : ndarray of float64, (N,)
        Pore radii (µm).
    voxel_counts : ndarray of int64, (N,)
        Voxels of each pore.
    radius_bounds_um : ndarray of float64, (N, 2)
        ``(r_in, r_out)``: any radius in ``(r_in, r_out]`` gives the same
        voxels (see :func:`digitise_spheres`); the stated radius is one of them.

    Notes
    -----
    The continuous pore size distribution (Münch & Holzer) of disjoint
    spheres is exact: every point of pore i has local radius ``R_i``, so the
    fraction of pore volume with radius >= r is the volume share of the pores
    with ``R_i >= r``, and the volume-weighted mean radius is
    ``sum(R_i V_i) / sum(V_i)``. An analysis of the image weighs a pore by its
    voxels, so ``V_i`` here is the voxel count.

    Examples
    --------
    >>> pack = SpherePack.from_spheres([[3.0, 3.0, 3.0], [3.0, 3.0, 10.0]], [2.0, 3.0], (7, 7, 15), 1.0)
    >>> pack.voxel_counts.tolist()      # lattice points with |v|^2 < 4: 1 + 6 + 12 + 8; < 9: 93
    [27, 93]
    >>> pack.mean_radius_um             # (2 * 27 + 3 * 93) / 120
    2.775
    >>> pack.cumulative_fraction([0.0, 2.5, 3.5]).tolist()
    [1.0, 0.775, 0.0]
    """

    pore: np.ndarray
    voxel_size_um: float
    centres_um: np.ndarray
    radii_um: np.ndarray
    voxel_counts: np.ndarray
    radius_bounds_um: np.ndarray

    @classmethod
    def from_spheres(cls, centres_um, radii_um, shape, voxel_size_um):
        """Digitise disjoint spheres (see :func:`digitise_spheres`) into a pack."""
        pore, counts, bounds = digitise_spheres(centres_um, radii_um, shape, voxel_size_um)
        return cls(pore=pore, voxel_size_um=float(voxel_size_um),
                   centres_um=np.asarray(centres_um, dtype=np.float64),
                   radii_um=np.asarray(radii_um, dtype=np.float64), voxel_counts=counts,
                   radius_bounds_um=bounds)

    def resampled(self, voxel_size_um):
        """The same physical spheres in the same physical block, digitised at another voxel size.

        A finer voxel keeps every gap at least as many voxels wide.

        Examples
        --------
        >>> pack = SpherePack.from_spheres([[3.0, 3.0, 3.0]], [2.0], (7, 7, 7), 1.0)
        >>> fine = pack.resampled(0.5)
        >>> fine.pore.shape, fine.centres_um.tolist() == pack.centres_um.tolist()
        ((14, 14, 14), True)
        """
        shape = tuple(int(np.round(n * self.voxel_size_um / voxel_size_um)) for n in self.pore.shape)
        return SpherePack.from_spheres(self.centres_um, self.radii_um, shape, voxel_size_um)

    @property
    def mean_radius_um(self):
        """Pore-volume-weighted mean radius ``sum(R_i V_i) / sum(V_i)`` (µm), V_i in voxels."""
        return float(np.sum(self.radii_um * self.voxel_counts) / np.sum(self.voxel_counts))

    def cumulative_fraction(self, radius_um):
        """Fraction of the pore volume with local radius >= each of ``radius_um`` (µm)."""
        r = np.asarray(radius_um, dtype=np.float64)
        above = self.radii_um[None, :] >= r.reshape(-1, 1)
        return (above @ self.voxel_counts / np.sum(self.voxel_counts)).reshape(r.shape)


# --- particle phantoms ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PhantomPair:
    """Two phantoms of the same NMC particles and the truth between them.

    Attributes
    ----------
    reference, moved : synthcal.phantom.Phantom
        Voxel phantoms (labels, attenuation ``mu_per_um``, owner) before and
        after the motion, on one grid (voxel (0, 0, 0) centred at 0 µm).
    radii_um : ndarray of float64, (N,)
        Particle radii (µm).
    ref_poses, cur_poses : synthcal.truth.ParticlePoses
        Particle centres (µm, z-y-x) and orientations before and after.

    Examples
    --------
    (The ellipsis stands for taichi's start-up line, printed once per process.)

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=2, deadline=None)
    ... @given(phantom_pairs(shape=(24, 24, 24)))
    ... def test_centres_move_by_the_truth(pair):
    ...     centres = pair.ref_poses.positions_um
    ...     moved = centres + pair.displacement_um(centres)
    ...     assert np.allclose(moved, pair.cur_poses.positions_um)
    >>> print("phantom pairs:"); test_centres_move_by_the_truth(); print("passed")  # doctest: +ELLIPSIS
    phantom pairs:
    ...passed
    """

    reference: Phantom
    moved: Phantom
    radii_um: np.ndarray
    ref_poses: ParticlePoses
    cur_poses: ParticlePoses

    @property
    def voxel_size_um(self):
        """Voxel edge (µm)."""
        return self.reference.voxel_size_um

    def displacement_um(self, points_um):
        """True displacement (µm, z-y-x) of reference points ``(M, 3)`` (µm); NaN in the pores."""
        return true_displacement_um(points_um, self.ref_poses, self.cur_poses, self.radii_um)

    def displacement_voxels(self, points_voxels):
        """True displacement (voxels, z-y-x) of reference points ``(..., 3)`` (voxels); NaN in the pores."""
        p = np.asarray(points_voxels, dtype=np.float64)
        u = self.displacement_um(p.reshape(-1, 3) * self.voxel_size_um) / self.voxel_size_um
        return u.reshape(p.shape)


def _quaternions(rotations_zyx):
    """Scalar-first quaternions (w, x, y, z) of rotation matrices acting on z-y-x vectors."""
    xyz = np.asarray(rotations_zyx)[..., ::-1, ::-1]
    q = Rotation.from_matrix(xyz).as_quat()          # (x, y, z, w)
    return np.concatenate([q[..., 3:], q[..., :3]], axis=-1)


def _rotations(axes, angles_rad):
    """Rotation matrices (z-y-x) about unit-normalised axes (a zero axis reads as z)."""
    axes = np.asarray(axes, dtype=np.float64).reshape(-1, 3)
    norm = np.linalg.norm(axes, axis=1, keepdims=True)
    unit = np.where(norm > 1e-6, axes / np.maximum(norm, 1e-6), np.array([1.0, 0.0, 0.0]))
    return Rotation.from_rotvec(unit * np.reshape(angles_rad, (-1, 1))).as_matrix()


def _angles(rotations):
    """Rotation angle (radians) of each matrix."""
    return np.arccos(np.clip((np.trace(rotations, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0))


def _polar_rotation(f):
    """Rotation part ``R`` of ``F = R S`` (S symmetric positive definite), for ``(..., 3, 3)``."""
    u, _, vt = np.linalg.svd(f)
    return u @ vt


def _voxelise(centres_voxels, radii_voxels, quaternions, shape, voxel_size_um, seed):
    return voxelise(centres_voxels * voxel_size_um, radii_voxels * voxel_size_um,
                    np.zeros(len(radii_voxels), dtype=int), quaternions, voxel_size_um=voxel_size_um,
                    shape=shape, origin_um=np.zeros(3), seed=seed, energy_kev=_PHANTOM_ENERGY_KEV,
                    foil_top_z_um=None, texture=Texture())


def _phantom_pair(centres, radii, quaternions, rotations, moved_centres, shape, voxel_size_um, seed):
    """Voxelise particles (voxels, z-y-x) before and after rotating each about its centre and moving it."""
    new_quaternions = _quaternions(rotations @ rotation_matrices_zyx(quaternions))
    ref = ParticlePoses(positions_um=centres * voxel_size_um, quaternions=quaternions)
    cur = ParticlePoses(positions_um=moved_centres * voxel_size_um, quaternions=new_quaternions)
    return PhantomPair(reference=_voxelise(centres, radii, quaternions, shape, voxel_size_um, seed),
                       moved=_voxelise(moved_centres, radii, new_quaternions, shape, voxel_size_um, seed),
                       radii_um=radii * voxel_size_um, ref_poses=ref, cur_poses=cur)


# --- argument checks ------------------------------------------------------------------------------------

def _check_number(name, value, lo, hi):
    if isinstance(value, bool) or not (np.isscalar(value) and np.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{name}: expected a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def _check_range(name, value, lo, hi):
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(np.isscalar(v) and np.isfinite(v) for v in value)
            or not lo <= value[0] <= value[1] <= hi):
        raise ValueError(f"{name}: expected (min, max) with {lo} <= min <= max <= {hi}, got {value!r}")
    return float(value[0]), float(value[1])


def _check_choices(name, value, allowed):
    chosen = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, (tuple, list)) else ()
    if not chosen or any(v not in allowed for v in chosen):
        raise ValueError(f"{name}: expected one or more of {allowed}, got {value!r}")
    return chosen


def _unit(draw, n=1):
    """``n`` floats in [-1, 1] drawn by hypothesis (shrinking towards 0)."""
    return np.array(draw(st.lists(st.floats(-1.0, 1.0), min_size=n, max_size=n)), dtype=np.float64)


def _fraction(draw, n=1):
    """``n`` floats in [0, 1] drawn by hypothesis (shrinking towards 0)."""
    return np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)), dtype=np.float64)


# --- drawn motions --------------------------------------------------------------------------------------

def _draw_warp(draw, shape, max_displacement, max_rotation_deg, max_strain, smooth, particles=None):
    """A Warp whose displacement stays within ``max_displacement`` (voxels) per component.

    Rotation about a drawn axis up to ``max_rotation_deg``; a symmetric stretch
    ``E`` and (``smooth``) sine waves sharing ``max_strain``: every component of
    ``R^T (I + grad u) - I`` stays within it. The bound on ``|u|`` is taken over
    the voxel centres or, with ``particles = (centres, radii)`` (voxels), over
    the particles riding the warp rigidly; rotation, stretch and waves shrink
    together until they fit, and the translation takes what is left.
    """
    extent = np.asarray(shape, dtype=np.float64) - 1
    centre = extent / 2
    rotation = _rotations(_unit(draw, 3), np.radians(max_rotation_deg) * _unit(draw)[0])[0]
    e = _unit(draw, 6)
    stretch = np.array([[e[0], e[3], e[4]], [e[3], e[1], e[5]], [e[4], e[5], e[2]]])
    wave_share = _fraction(draw)[0] if smooth else 0.0
    directions = _unit(draw, 3 * _N_WAVES).reshape(_N_WAVES, 3)
    directions /= np.maximum(np.linalg.norm(directions, axis=1, keepdims=True), 1e-6)
    directions[np.all(directions == 0, axis=1)] = (1.0, 0.0, 0.0)
    # wavelengths of one to three times the largest extent: smooth at any subvolume size
    wavenumber = 2 * np.pi / (max(extent.max(), 1.0) * (1 + 2 * _fraction(draw, _N_WAVES)))
    amplitude_directions = _unit(draw, 3 * _N_WAVES).reshape(_N_WAVES, 3)
    amplitude_directions /= np.maximum(np.linalg.norm(amplitude_directions, axis=1, keepdims=True), 1.0)
    phases = 2 * np.pi * _fraction(draw, _N_WAVES)
    translation = _unit(draw, 3)

    def build(scale):
        # each wave's gradient |a| |k| gets an equal share of the waves' part of max_strain;
        # |(R^T a)_i k_j| <= |a| |k|, so every component of R^T F - I stays within max_strain
        amplitudes = amplitude_directions * (scale * wave_share * max_strain / (_N_WAVES * wavenumber))[:, None]
        angle = scale * _angles(rotation)
        r = rotation if angle == 0 else _rotations(Rotation.from_matrix(rotation).as_rotvec(), angle)[0]
        matrix = r @ (np.eye(3) + scale * (1 - wave_share) * max_strain * stretch)
        linear = Warp(centre_voxels=centre, translation_voxels=np.zeros(3), matrix=matrix,
                      wave_amplitudes_voxels=amplitudes,
                      wave_vectors_per_voxel=directions * wavenumber[:, None], wave_phases=phases)
        if particles is None:
            reach = np.abs(matrix - np.eye(3)) @ (extent / 2) + np.abs(linear.wave_amplitudes_voxels).sum(axis=0)
        else:
            centres, radii = particles
            turn = _polar_rotation(np.eye(3) + linear.gradient(centres))
            reach = np.max(np.abs(linear(centres)) + (_angles(turn) * radii)[:, None], axis=0)
        return linear, reach

    scale = 1.0
    linear, reach = build(scale)
    # shrink until the non-translational part fits (a rotation's displacement is not linear in its
    # angle, so one rescaling may fall a little short)
    while reach.max() > max_displacement:
        scale *= 0.95 * max_displacement / reach.max()
        linear, reach = build(scale)
    t = translation * np.maximum(max_displacement - reach, 0.0)
    return Warp(centre_voxels=centre, translation_voxels=t, matrix=linear.matrix,
                wave_amplitudes_voxels=linear.wave_amplitudes_voxels,
                wave_vectors_per_voxel=linear.wave_vectors_per_voxel, wave_phases=linear.wave_phases)


def _draw_particles(draw, shape, radius_voxels, wall_voxels):
    """Non-overlapping spheres (voxels), one per cell of a lattice around the grid, and orientations.

    Each sphere keeps ``wall_voxels`` from its cell's walls: see :func:`_rigid_wall`
    and :func:`_stretch_wall` for what keeps them disjoint after a motion.
    """
    r_min, r_max = radius_voxels
    cell = 2 * (r_max + wall_voxels)
    # an odd number of cells per axis, the middle one at the grid's centre, covering the grid
    half = np.asarray(shape) / 2
    counts = 2 * np.ceil(np.maximum(half - cell / 2, 0) / cell).astype(int) + 1
    corner = (half - 0.5) - counts * cell / 2
    cells = np.indices(counts).reshape(3, -1).T
    n = len(cells)
    radii = r_min + (r_max - r_min) * _fraction(draw, n)
    slack = cell - 2 * (radii + wall_voxels)
    centres = corner + cells * cell + (radii + wall_voxels)[:, None] \
        + _fraction(draw, 3 * n).reshape(n, 3) * slack[:, None]
    axes = _unit(draw, 4 * n).reshape(n, 4)
    axes[np.linalg.norm(axes, axis=1) < 1e-6] = (1.0, 0.0, 0.0, 0.0)
    quaternions = axes / np.linalg.norm(axes, axis=1, keepdims=True)
    return centres, radii, quaternions


def _rigid_wall(max_displacement):
    """Wall distance (voxels) that keeps spheres disjoint whatever each centre does within the bound.

    A centre moving at most ``max_displacement`` per component keeps its
    sphere inside its own cell; half a voxel more keeps the voxelised spheres apart.
    """
    return max_displacement + 0.5


def _stretch_wall(r_max, max_strain):
    """Wall distance (voxels) that keeps spheres disjoint when their centres ride one drawn warp.

    Rotation and translation keep distances; with every component of
    ``R^T F - I`` within e, its 2-norm is at most 3 e, so no distance shrinks
    by more than the factor 1 - 3 e. Neighbours start at least
    ``R_i + R_j + 2 w`` apart, which stays above ``R_i + R_j`` when
    ``w > 3 e r_max / (1 - 3 e)``; half a voxel more keeps the voxelised
    spheres apart.
    """
    return 3 * max_strain * r_max / (1 - 3 * max_strain) + 0.5


# --- strategies -----------------------------------------------------------------------------------------

class VolumePair(NamedTuple):
    """What :func:`volume_pairs` draws.

    Attributes
    ----------
    reference, deformed : ndarray of float32, (z, y, x)
        The volume before and after the motion (noise added to each).
    truth : callable
        ``truth(points)`` maps reference points ``(..., 3)`` (voxels, z-y-x)
        to their exact displacement (voxels, z-y-x): the material at ``X``
        shows at ``X + truth(X)`` in ``deformed``. A :class:`Warp` for the
        speckle and granular textures; for the phantom texture
        :meth:`PhantomPair.displacement_voxels` (NaN in the pores).
    texture : str
        The texture drawn.
    """

    reference: np.ndarray
    deformed: np.ndarray
    truth: Callable
    texture: str


def _add_noise(volumes, fraction, seed):
    """Gaussian noise of std ``fraction`` times the first volume's std, independent per volume."""
    if fraction == 0:
        return volumes
    rng = np.random.default_rng(seed)
    sd = fraction * float(np.std(volumes[0]))
    return [(v + rng.normal(0.0, sd, v.shape)).astype(np.float32) for v in volumes]


def volume_pairs(shape=(32, 32, 32), texture=TEXTURES, max_displacement_voxels=3.0, max_rotation_deg=3.0,
                 max_strain=0.02, smooth=True, noise=0.0):
    """Strategy drawing ``(reference, deformed, truth)``: a textured volume, its deformed copy, the exact motion.

    Parameters
    ----------
    shape : tuple of 3 int
        (z, y, x) voxels, each >= 8.
    texture : str or tuple of str
        One or more of ``"granular"``, ``"speckle"``, ``"phantom"`` (see the
        module docstring); one is drawn. Feature sizes are drawn too: speckle
        sigma 1.2-2.4 voxels, grains 3-6 voxels, particle radii 7-10 voxels at
        0.128 µm (particles fill about a fifth of the volume).
    max_displacement_voxels : float
        Bound on every component of the displacement at every voxel centre
        (phantom: at every point of every particle), in [0, 20] voxels.
    max_rotation_deg : float
        Largest rigid rotation about the volume's centre, in [0, 45] degrees.
    max_strain : float
        Bound on every component of ``R^T (I + grad u) - I`` (the motion with
        its rotation taken out: affine stretch plus the waves), in [0, 0.2].
    smooth : bool
        Add a smooth non-affine part: two sine waves with wavelengths of one to
        three times the largest extent, sharing ``max_strain`` with the stretch.
    noise : float or (float, float)
        Std of the Gaussian noise added to each volume, as a fraction of the
        reference's std (in [0, 1]); a pair draws it from that range.

    Returns
    -------
    hypothesis.strategies.SearchStrategy of VolumePair
        Rotation, stretch and waves shrink together when they would move a
        voxel further than ``max_displacement_voxels``; the translation takes
        what is left. The speckle texture is periodic, so its material
        continues periodically beyond the faces. A granular or phantom draw
        takes about a second at 32^3 on one core (speckle: milliseconds), so
        tests drawing them may want
        ``settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])``.

    Examples
    --------
    A DVC, registration or optical-flow code should recover a translation:

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=3, deadline=None)
    ... @given(volume_pairs(texture="speckle", max_rotation_deg=0, max_strain=0, smooth=False))
    ... def test_mean_intensity_is_kept(pair):
    ...     reference, deformed, truth, _ = pair
    ...     assert abs(deformed.mean() - reference.mean()) < 1e-4    # periodic speckle: nothing leaves
    >>> test_mean_intensity_is_kept()
    """
    shape = _check_shape(shape, smallest=8)
    textures = _check_choices("texture", texture, TEXTURES)
    max_displacement = _check_number("max_displacement_voxels", max_displacement_voxels, 0.0, 20.0)
    max_rotation = _check_number("max_rotation_deg", max_rotation_deg, 0.0, 45.0)
    strain = _check_number("max_strain", max_strain, 0.0, 0.2)
    if not isinstance(smooth, bool):
        raise ValueError(f"smooth: expected True or False, got {smooth!r}")
    noise_range = (_check_range("noise", noise, 0.0, 1.0) if isinstance(noise, (tuple, list))
                   else (_check_number("noise", noise, 0.0, 1.0),) * 2)

    @st.composite
    def draw_pair(draw):
        kind = draw(st.sampled_from(textures))
        seed = draw(st.integers(0, 2 ** 32 - 1))
        fraction = draw(st.floats(*noise_range)) if noise_range[1] > noise_range[0] else noise_range[0]
        if kind == "phantom":
            radius_range = (7.0, 10.0)
            centres, radii, quaternions = _draw_particles(draw, shape, radius_range,
                                                          _stretch_wall(radius_range[1], strain))
            warp = _draw_warp(draw, shape, max_displacement, max_rotation, strain, smooth, (centres, radii))
            turns = _polar_rotation(np.eye(3) + warp.gradient(centres))
            pair = _phantom_pair(centres, radii, quaternions, turns, centres + warp(centres), shape,
                                 _PHANTOM_VOXEL_SIZE_UM, seed)
            volumes, truth = [pair.reference.mu_per_um, pair.moved.mu_per_um], pair.displacement_voxels
        else:
            lo, hi = (1.2, 2.4) if kind == "speckle" else (3.0, 6.0)
            feature = lo + (hi - lo) * _fraction(draw)[0]
            warp = _draw_warp(draw, shape, max_displacement, max_rotation, strain, smooth)
            volumes = [render_texture(kind, shape, seed, feature_voxels=feature, warp=w) for w in (None, warp)]
            truth = warp
        reference, deformed = _add_noise(volumes, fraction, seed + 1)
        return VolumePair(reference=reference, deformed=deformed, truth=truth, texture=kind)

    return draw_pair()


def sphere_packs(voxel_size_um=1.0, radius_voxels=(2.0, 8.0), max_spheres=4, gap_voxels=2.0):
    """Strategy drawing a :class:`SpherePack`: disjoint spherical pores in solid, with their exact CPSD.

    Parameters
    ----------
    voxel_size_um : float
        Voxel edge (µm), > 0.
    radius_voxels : (float, float)
        Range of the pore radii (voxels), within [1, 64].
    max_spheres : int
        At most this many pores (1-16), one per cell of a 2-D lattice in the
        (y, x) plane.
    gap_voxels : float
        Least solid between two pores, and between a pore and the array's
        faces less one voxel (voxels), within [1, 16].

    Returns
    -------
    hypothesis.strategies.SearchStrategy of SpherePack
        Sphere centres lie anywhere (sub-voxel) inside their cells.

    Examples
    --------
    A CPSD code should read the volume-weighted mean radius of the pores:

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=3, deadline=None)
    ... @given(sphere_packs(voxel_size_um=0.5, radius_voxels=(3.0, 6.0)))
    ... def test_pore_voxels_are_the_spheres(pack):
    ...     assert pack.pore.sum() == pack.voxel_counts.sum()
    ...     assert 1.5 <= pack.mean_radius_um <= 3.0
    >>> test_pore_voxels_are_the_spheres()
    """
    h = _check_number("voxel_size_um", voxel_size_um, 1e-9, np.inf)
    r_min, r_max = _check_range("radius_voxels", radius_voxels, 1.0, 64.0)
    if isinstance(max_spheres, bool) or not isinstance(max_spheres, (int, np.integer)) or not 1 <= max_spheres <= 16:
        raise ValueError(f"max_spheres: expected an integer in [1, 16], got {max_spheres!r}")
    gap = _check_number("gap_voxels", gap_voxels, 1.0, 16.0)

    @st.composite
    def draw_pack(draw):
        n = draw(st.integers(1, int(max_spheres)))
        radii = r_min + (r_max - r_min) * _fraction(draw, n)
        nx = int(np.ceil(np.sqrt(n)))
        cells = np.stack([np.zeros(n), np.arange(n) // nx, np.arange(n) % nx], axis=1)
        # cells hold the largest drawn sphere, its gap and one voxel of play for the sub-voxel offsets
        edge = 2 * radii.max() + gap + 1.0
        border = 1.0
        slack = edge - 2 * radii - gap
        centres = border - 0.5 + cells * edge + (radii + gap / 2)[:, None] \
            + _fraction(draw, 3 * n).reshape(n, 3) * slack[:, None]
        shape = tuple(int(np.ceil(2 * border + k * edge)) for k in (1, np.ceil(n / nx), nx))
        return SpherePack.from_spheres(centres * h, radii * h, shape, h)

    return draw_pack()


def phantom_pairs(shape=(32, 32, 32), voxel_size_um=0.128, radius_voxels=(6.0, 10.0), motion=("rigid", "affine"),
                  max_displacement_voxels=2.0, max_rotation_deg=10.0, max_strain=0.02):
    """Strategy drawing a :class:`PhantomPair`: NMC particles, a motion per particle, two phantoms, the truth.

    Parameters
    ----------
    shape : tuple of 3 int
        (z, y, x) voxels, each >= 8.
    voxel_size_um : float
        Voxel edge (µm), in (0, 1].
    radius_voxels : (float, float)
        Range of the particle radii (voxels), within [2, 32].
    motion : str or tuple of str
        ``"rigid"``: every particle its own translation and rotation about its
        centre; ``"affine"``: the centres follow one affine map (rotation up to
        ``max_rotation_deg``, stretch up to ``max_strain``) and each particle
        turns with its rotation. One is drawn.
    max_displacement_voxels : float
        Bound on every displacement component of every particle point (voxels), in [0, 20].
    max_rotation_deg : float
        Largest rotation, in [0, 45] degrees.
    max_strain : float
        Bound on the stretch components of the affine motion, in [0, 0.2].

    Returns
    -------
    hypothesis.strategies.SearchStrategy of PhantomPair
        One particle per cell of a lattice around the grid, none overlapping
        before or after the motion; particle orientations and the texture seed
        are drawn.

    Examples
    --------
    See :class:`PhantomPair`.
    """
    shape = _check_shape(shape, smallest=8)
    h = _check_number("voxel_size_um", voxel_size_um, 1e-9, 1.0)
    radius_range = _check_range("radius_voxels", radius_voxels, 2.0, 32.0)
    motions = _check_choices("motion", motion, ("rigid", "affine"))
    max_displacement = _check_number("max_displacement_voxels", max_displacement_voxels, 0.0, 20.0)
    max_rotation = _check_number("max_rotation_deg", max_rotation_deg, 0.0, 45.0)
    strain = _check_number("max_strain", max_strain, 0.0, 0.2)

    @st.composite
    def draw_pair(draw):
        kind = draw(st.sampled_from(motions))
        seed = draw(st.integers(0, 2 ** 32 - 1))
        wall = _stretch_wall(radius_range[1], strain) if kind == "affine" else _rigid_wall(max_displacement)
        centres, radii, quaternions = _draw_particles(draw, shape, radius_range, wall)
        if kind == "affine":
            warp = _draw_warp(draw, shape, max_displacement, max_rotation, strain, False, (centres, radii))
            turns = np.broadcast_to(_polar_rotation(warp.matrix), (len(radii), 3, 3))
            moved = centres + warp(centres)
        else:
            n = len(radii)
            turns = _rotations(_unit(draw, 3 * n).reshape(n, 3), np.radians(max_rotation) * _unit(draw, n))
            # a turn about the centre moves a particle point by at most angle x radius per component;
            # rotations too large for the bound shrink to fit it
            angles = _angles(turns)
            too_far = angles * radii > max_displacement
            if np.any(too_far):
                axes = Rotation.from_matrix(turns).as_rotvec()
                angles = np.where(too_far, max_displacement / radii, angles)
                turns = _rotations(axes, angles)
            moved = centres + _unit(draw, 3 * n).reshape(n, 3) * np.maximum(max_displacement - angles * radii,
                                                                            0.0)[:, None]
        return _phantom_pair(centres, radii, quaternions, turns, moved, shape, h, seed)

    return draw_pair()
