"""Continuous pore size distribution (CPSD), mean pore radius and phase fractions.

CPSD after Münch & Holzer (2008): for each radius r, the fraction of the pore
volume that spheres of radius >= r lying wholly inside the pore space can
cover. Equivalently: every pore voxel carries a *local radius*, the radius of
the largest inscribed sphere that covers it (the local thickness map, as a
radius), and the CPSD is the complementary cumulative distribution of that
map over the pore voxels.

Why plain ``porespy.filters.local_thickness`` reads low, and what is done here
--------------------------------------------------------------------------------
Measured on analytically voxelised spheres of radius R = 4..24 voxels (pore
voxel <=> voxel centre inside the sphere), porespy's local thickness averages
to 0.77..0.95 R. Three discretisation effects add up:

1. *Integer radii.* Seeds are ``dt >= r`` and balls have radius r for integer
   r only, so a pore of radius 4.9 is read as 4 and the outer shell between
   r and the pore wall falls to smaller balls (-0.5 voxel on average, more
   at small R, where that shell holds much of the volume).
2. *Ball centres on the voxel lattice.* The centre of a real pore lies
   anywhere inside a voxel; the largest digital ball centred on the nearest
   voxel centre is smaller by the offset |e| (mean 0.48 voxel for a uniform
   offset in the cell) and leaves a crescent on the far side to smaller
   balls. This alone costs about -0.55 voxel at every R, i.e. -14 % at
   R = 4 and -2 % at R = 24, even with continuous radii.
3. *Which radius a digital ball has.* The EDT gives the distance r_out to the
   nearest solid voxel centre; the farthest pore voxel centre in the ball is
   at r_in < r_out. Any sphere with radius in [r_in, r_out) digitises to the
   same voxels, so neither end is the radius: the wall lies in between.

The correction (:func:`local_radius`):

- Continuous radii: each ball is the largest digital ball at its centre,
  r_out = EDT, no binning (fixes 1).
- Ridge voxels that are local maxima of the EDT (the centres of pore bodies,
  the axes of throats) get, in addition, a sub-voxel ball: a coarse-to-fine
  search (steps 1/4, 1/8, 1/16 voxel, within the voxel cell) for the centre
  maximising the distance to the nearest solid voxel centre, i.e. the
  largest empty sphere among the solid voxel centres (fixes 2).
- Each ball's radius is the midpoint (r_in + r_out) / 2 of its digitisation
  interval (fixes 3).
- Balls are painted with ``atomic_max`` (the result does not depend on the
  thread order). Only balls that can matter are painted, which is exact:
  a voxel whose digital ball lies inside the digital ball of a voxel of its
  5x5x5 neighbourhood (tested with lattice tables) is off the distance
  ridge; a ridge ball that lies inside the sub-voxel ball owning its centre,
  with a value no larger, is skipped (about 2/3 of the ridge balls on
  sphere packs are such lattice noise). A ridge ball leaves out its overlap
  with the largest ridge ball next to it that outranks it (larger value, or
  equal and later): that overlap ends at least as large whatever it paints.
  Ridges are sheets between particles, where neighbouring balls nearly
  coincide: on a crop of the paper phantom's non-NMC phase (100 x 508 x
  508 voxels, 2.9 M ridge balls) the last paint took 8-10 s instead of
  70-76 s, to the same bytes; on the benchmark's pore space between
  grains (``benchmarks/cpsd.py``, 256^3) the whole CPSD gained less,
  13.5 s to 10.9 s.

No constant is fitted: on a sphere that is digitised from radius R and whose
centre the search finds, the painted ball is that digitisation and its value
lies within the digitisation interval around R. Measured on single spheres
(random sub-voxel centres, 6 each): mean local radius / R = 0.990 (R = 4),
0.994 (8.3), 0.997 (12), 0.999 (24 voxels); plain porespy 0.81, 0.84, 0.89,
0.95.

Limitation: the ball's digitisation interval stands in for the wall's, which
holds where the wall hugs the ball (spherical pores) or where it is oriented
at random to the lattice (the gap between the ball and the nearest solid
voxel centre then shrinks like 1 / sqrt(radius)). A planar wall aligned with
the lattice is the worst case: its solid voxel centres sit a full half voxel
beyond it, and a slab pore of n voxels reads about (n + 1) / 2 instead of
n / 2 (measured: 3.03 for n = 5, 5.47 for n = 10).

Distances are in voxels internally; results are in µm. Lattice convention:
the centre of voxel (i, j, k) is at (i, j, k) voxels.
"""

import csv
import importlib
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import edt
import numpy as np

from analysis._local_radius_kernels import (FAR_OFFSETS, OFFSET_CLASSES, covered_kernel,
                                            owner_kernel, paint_kernel, paint_ridge_kernel,
                                            partner_kernel, peak_kernel, ridge_kernel, whole_voxel_kernel)
from analysis._taichi import ensure_taichi
from analysis.io import atomic_output
from analysis.phases import SAMPLE_PHASES, Phase

_DEFAULT_STEP_VOXELS = 0.1


def _porespy():
    """porespy, imported on first use in a thread of its own.

    porespy takes seconds to import, so only the functions that need it
    import it. Its import keeps an exception (``porespy.networks._getnet_para``
    stores the ``ModuleNotFoundError`` of the optional ``pyedt``), and that
    exception's traceback holds every frame of the stack that imported it,
    with their locals, for the life of the process. Imported from within a
    run's phantom stage, that kept its whole first step in memory (3.7 GiB on
    the paper scenario). A worker thread's stack holds nothing of the caller's.
    """
    if "porespy" not in sys.modules:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(importlib.import_module, "porespy").result()
    return sys.modules["porespy"]


@dataclass(frozen=True)
class CPSDResult:
    """Continuous pore size distribution of one volume.

    Attributes
    ----------
    radius_um : ndarray of float, (n,)
        Radii (µm), ascending from 0 in steps of ``radius_step_um``; the last
        one is past the largest local radius.
    cumulative_fraction : ndarray of float, (n,)
        Fraction of the (analysed) pore volume whose local radius is >= the
        radius: 1 at radius 0, non-increasing, 0 at the last radius.
    mean_radius_um : float
        Pore-volume-weighted mean inscribed radius (µm): the mean of the local
        radius map over the analysed pore voxels (see :func:`cpsd`).
    median_radius_um : float
        Radius (µm) at which the cumulative fraction falls to 0.5.
    porosity : float
        Pore voxels / analysed voxels.
    n_pore_voxels : int
        Analysed pore voxels.
    voxel_size_um : float
        Voxel edge length (µm).
    """

    radius_um: np.ndarray
    cumulative_fraction: np.ndarray
    mean_radius_um: float
    median_radius_um: float
    porosity: float
    n_pore_voxels: int
    voxel_size_um: float


@dataclass(frozen=True)
class PhaseFractions:
    """Volume fractions of the three phases (each in [0, 1]).

    Attributes
    ----------
    nmc, cbd, pore : float
        Fractions of NMC (label 2), carbon-binder domain (label 1) and pore
        (label 0) among the analysed voxels; they sum to 1.
    inactive : float
        Everything that is not NMC: ``1 - nmc`` (the paper's "inactive" phase).
    n_voxels : int
        Analysed voxels.
    """

    nmc: float
    cbd: float
    pore: float
    inactive: float
    n_voxels: int


def _check_mask(mask, shape, name):
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != tuple(shape):
        raise ValueError(f"{name}: expected a bool array of shape {tuple(shape)}, got "
                         f"shape {mask.shape} dtype {mask.dtype}")
    return mask


def _check_pore_mask(pore_mask):
    pore_mask = np.asarray(pore_mask)
    if pore_mask.dtype != bool or pore_mask.ndim != 3:
        raise ValueError(f"pore_mask: expected a 3-D bool array (z, y, x), got shape "
                         f"{pore_mask.shape} dtype {pore_mask.dtype}")
    if not pore_mask.any():
        raise ValueError("pore_mask: expected some pore (True) voxels, got none")
    if pore_mask.all():
        raise ValueError("pore_mask: expected some solid (False) voxels, got only pore")
    return pore_mask


def _ball_tables(max_sq):
    """Lattice tables for digital balls D_k = {x in Z^3 : |x|^2 < k}, k = 0..max_sq.

    Returns
    -------
    inner : ndarray of int32, (max_sq + 1,)
        Largest |x|^2 over D_k (0 for an empty ball): the ball reaches out to
        sqrt(inner[k]).
    covering : ndarray of int32, (max_sq + 1, 9)
        covering[k, j] = largest |x - u|^2 over D_k for the neighbour offset
        u = OFFSET_CLASSES[j] (or any offset with the same sorted absolute
        components, by symmetry); D_k lies inside D_k' + u iff k' > that.
    """
    reach = int(np.ceil(np.sqrt(max_sq)))
    g = np.arange(-reach, reach + 1)
    y, x = np.meshgrid(g, g, indexing="ij")
    inner = np.zeros(max_sq + 1, dtype=np.int64)
    covering = np.zeros((max_sq + 1, len(OFFSET_CLASSES)), dtype=np.int64)
    # one lattice plane at a time keeps memory at O(reach^2) for large pores
    for z in g:
        sq = z * z + y * y + x * x
        keep = sq < max_sq
        slot = sq[keep] + 1
        np.maximum.at(inner, slot, sq[keep])
        for cls, (uz, uy, ux) in enumerate(OFFSET_CLASSES):
            shifted = (z - uz) ** 2 + (y - uy) ** 2 + (x - ux) ** 2
            np.maximum.at(covering[:, cls], slot, shifted[keep])
    inner = np.maximum.accumulate(inner)
    covering = np.maximum.accumulate(covering, axis=0)
    return inner.astype(np.int32), covering.astype(np.int32)


def _ridge_flags(dt):
    """:func:`analysis._local_radius_kernels.ridge_kernel`'s flags (uint8) for the lattice balls
    ``|x - c|^2 < dt(c)^2`` of every voxel, and the ball tables' ``inner`` (see :func:`_ball_tables`)."""
    inner, covering = _ball_tables(int(np.ceil(float(dt.max()) ** 2)) + 2)
    flag = np.zeros(dt.shape, dtype=np.uint8)
    ridge_kernel(dt, covering, np.array(FAR_OFFSETS, dtype=np.int32), flag)
    return flag, inner


def local_radius(pore_mask, progress=None, arch="cpu"):
    """Local inscribed radius of every pore voxel (local thickness / 2), in voxels.

    Parameters
    ----------
    pore_mask : ndarray of bool, (z, y, x)
        True in the pore space. Voxels outside the array count as pore (a
        pore cut by the array border is not closed by it).
    progress : callable, optional
        Called as ``progress(fraction)``.
    arch : {"cpu", "gpu"}
        Taichi backend (the caller's choice, never inherited from whatever
        ran before in the process).

    Returns
    -------
    ndarray of float32, (z, y, x)
        Radius (voxels) of the largest inscribed ball covering each pore voxel,
        0 on solid voxels. See the module docstring for the discretisation.
    """
    pore_mask = _check_pore_mask(pore_mask)
    ensure_taichi(arch)
    return _in_pore_box(_local_radius, pore_mask, progress)


def _pore_box(pore_mask):
    """Slices of the smallest box that holds every pore voxel and one layer of solid beyond it
    (where the array reaches that far).

    The radius maps are the same computed on the box, which spares the solid around a sample
    (the head and foil rows of a loaded step, up to 40 % of a paper phantom's rows). A voxel's
    nearest solid voxel outside the box is never nearer than the box's solid face (moving a
    point into the box brings it closer to every voxel inside), and no ball or search inside
    the pore space reaches past that face without holding one of its solid voxels; where the
    box meets the array's border, outside is pore in both.
    """
    box = []
    for axis in range(3):
        occupied = np.flatnonzero(pore_mask.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(max(int(occupied[0]) - 1, 0), min(int(occupied[-1]) + 2, pore_mask.shape[axis])))
    return tuple(box)


def _in_pore_box(radius_map, pore_mask, *args):
    """``radius_map(pore_mask, *args)`` computed on :func:`_pore_box` and placed in a zero array of the mask's shape."""
    box = _pore_box(pore_mask)
    if all(b.stop - b.start == n for b, n in zip(box, pore_mask.shape)):
        return radius_map(pore_mask, *args)
    out = np.zeros(pore_mask.shape, dtype=np.float32)
    out[box] = radius_map(np.ascontiguousarray(pore_mask[box]), *args)
    return out


def _local_radius(pore_mask, progress):
    """:func:`local_radius` of a checked mask, on the taichi backend already chosen."""
    porespy = _porespy()
    pore = np.ascontiguousarray(pore_mask).view(np.uint8)
    dt = np.ascontiguousarray(porespy.tools.get_edt()(pore_mask), dtype=np.float32)
    if progress is not None:
        progress(0.2)
    flag, inner = _ridge_flags(dt)
    # C order: argwhere's (n, 3) array is Fortran-ordered, and taichi would copy it in and back at every kernel
    ridge = np.ascontiguousarray(np.argwhere(flag > 0), dtype=np.int32)
    is_peak = flag[tuple(ridge.T)] == 2
    del flag
    if progress is not None:
        progress(0.4)
    peaks = np.ascontiguousarray(ridge[is_peak])
    peak_balls = np.zeros((len(peaks), 5), dtype=np.float32)
    peak_kernel(pore, dt, peaks, peak_balls)
    # every ridge voxel, peaks included, keeps its lattice ball: a peak's
    # shifted ball need not hold all of it, and the voxels pruned from the
    # ridge rely on it
    r2_out = np.rint(dt[tuple(ridge.T)].astype(np.float64) ** 2).astype(np.int64)
    ridge_balls = np.zeros((len(ridge), 5), dtype=np.float32)
    ridge_balls[:, 3] = r2_out
    ridge_balls[:, 4] = 0.5 * (np.sqrt(inner[r2_out]) + np.sqrt(r2_out))
    del dt
    lt = np.zeros(pore.shape, dtype=np.float32)
    paint_kernel(peaks, peak_balls, np.zeros(len(peaks), dtype=np.uint8), lt)
    if progress is not None:
        progress(0.6)
    # most ridge balls off the peaks are lattice noise inside a peak's ball
    owner = np.full(pore.shape, -1, dtype=np.int32)
    owner_kernel(peaks, peak_balls, lt, owner)
    covered = np.zeros(len(ridge), dtype=np.uint8)
    covered_kernel(ridge, ridge_balls, peaks, peak_balls, owner, covered)
    # the owner array becomes the ridge's index: each ridge ball leaves out its overlap with a neighbour that
    # outranks it (exact, see paint_ridge_kernel): 8x less painting on a crop of the paper's non-NMC phase
    index = owner
    index.fill(-1)
    index[tuple(ridge.T)] = np.arange(len(ridge), dtype=np.int32)
    partner = np.empty(len(ridge), dtype=np.int32)
    partner_kernel(ridge, ridge_balls, index, partner)
    del owner, index
    if progress is not None:
        progress(0.8)
    paint_ridge_kernel(ridge, ridge_balls, covered, partner, lt)
    if progress is not None:
        progress(1.0)
    return lt


def cpsd(pore_mask, voxel_size_um, mask=None, radius_step_um=None, progress=None, arch="cpu", *,
         radius_um=None):
    """Continuous pore size distribution (Münch & Holzer) of a binary pore space.

    Parameters
    ----------
    pore_mask : ndarray of bool, (z, y, x)
        True in the pore space of the sample. Leave the air around a pillar
        out (False): spheres in it would be huge, slow to paint and
        meaningless.
    voxel_size_um : float
        Voxel edge length (µm), > 0.
    mask : ndarray of bool, optional
        Analysis region (e.g. the pillar without its edge zone). Local radii
        are computed on the whole ``pore_mask`` (spheres may reach outside the
        region) and counted only inside it.
    radius_step_um : float, optional
        Spacing of the radius axis (µm). Default: 0.1 voxel.
    progress : callable, optional
        Called as ``progress(fraction)``.
    arch : {"cpu", "gpu"}
        Taichi backend, see :func:`local_radius`.
    radius_um : ndarray of float32, (z, y, x), optional
        The local radius map of ``pore_mask`` already made, in µm
        (:func:`local_radius` times the voxel size, e.g. a stored truth):
        used instead of computing it.

    Returns
    -------
    CPSDResult
        ``radius_um`` ascending, ``cumulative_fraction`` non-increasing from 1,
        and ``mean_radius_um``: the pore-volume-weighted mean of the local
        inscribed radius, i.e. the mean of the local radius map
        (:func:`local_radius`) over the analysed pore voxels, times the voxel
        size. For a single spherical pore of radius R every voxel's local
        radius is R, so the mean is R; for disjoint spheres it is
        sum(R_i V_i) / sum(V_i). It equals the area under the CPSD curve.
    """
    if not (np.isscalar(voxel_size_um) and np.isfinite(voxel_size_um)
            and voxel_size_um > 0):
        raise ValueError(f"voxel_size_um: expected a finite number > 0, got {voxel_size_um!r}")
    pore_mask = _check_pore_mask(pore_mask)
    mask = _check_mask(mask, pore_mask.shape, "mask")
    if radius_step_um is None:
        radius_step_um = _DEFAULT_STEP_VOXELS * voxel_size_um
    elif not (np.isscalar(radius_step_um) and np.isfinite(radius_step_um)
              and radius_step_um > 0):
        raise ValueError(f"radius_step_um: expected a finite number > 0, got "
                         f"{radius_step_um!r}")
    analysed = pore_mask if mask is None else pore_mask & mask
    if not analysed.any():
        raise ValueError("mask: expected some pore voxels inside the analysis region, got none")
    if radius_um is None:
        lt = local_radius(pore_mask, arch=arch, progress=None if progress is None
                          else (lambda f: progress(0.95 * f)))
        result = _distribution(lt, analysed, mask, voxel_size_um, radius_step_um)
    else:
        result = _distribution(_check_radius_map(radius_um, pore_mask.shape), analysed, mask, voxel_size_um,
                               radius_step_um, unit_um=1.0)
    if progress is not None:
        progress(1.0)
    return result


def _check_radius_map(radius_um, shape):
    radius_um = np.asarray(radius_um)
    if radius_um.shape != tuple(shape) or radius_um.dtype.kind != "f":
        raise ValueError(f"radius_um: expected a float map of the pore mask's shape {tuple(shape)}, got shape "
                         f"{radius_um.shape} dtype {radius_um.dtype}")
    return radius_um


def _distribution(radius, analysed, mask, voxel_size_um, radius_step_um, unit_um=None):
    """:class:`CPSDResult` of a local radius map over the analysed pore voxels; ``unit_um``: the map's
    unit in µm (default: the voxel size, a map in voxels)."""
    unit_um = voxel_size_um if unit_um is None else unit_um
    radii_um = np.sort(radius[analysed]).astype(np.float64) * unit_um
    n = radii_um.size
    axis = np.arange(0.0, radii_um[-1] + 2 * radius_step_um, radius_step_um)
    fraction = 1.0 - np.searchsorted(radii_um, axis, side="left") / n
    n_region = analysed.size if mask is None else int(mask.sum())
    return CPSDResult(
        radius_um=axis,
        cumulative_fraction=fraction,
        mean_radius_um=float(radii_um.mean()),
        median_radius_um=float(np.median(radii_um)),
        porosity=n / n_region,
        n_pore_voxels=int(n),
        voxel_size_um=float(voxel_size_um),
    )


def whole_voxel_radius(pore_mask, arch="cpu"):
    """Radius of the largest whole-voxel ball inside the pore space covering each pore voxel, in voxels.

    The ball of radius r (an integer, voxels) centred on voxel c is
    ``{x in Z^3 : |x - c| <= r}``; it is inside the pore space when all its
    voxels are pore (voxels outside the array count as pore, as in
    :func:`local_radius`). A pore voxel's radius is the largest r of such a
    ball, centred on any voxel of the array, that contains it; r = 0 is the
    voxel alone. This is the morphological opening by balls of whole-voxel
    radii that the ImageJ CPSD the paper used computes (see :func:`cpsd_whole_voxel`).

    Parameters
    ----------
    pore_mask : ndarray of bool, (z, y, x)
    arch : {"cpu", "gpu"}

    Returns
    -------
    ndarray of float32, (z, y, x)
        Whole numbers; 0 on solid voxels.
    """
    pore_mask = _check_pore_mask(pore_mask)
    ensure_taichi(arch)
    return _in_pore_box(_whole_voxel_radius, pore_mask)


def _whole_voxel_radius(pore_mask):
    """:func:`whole_voxel_radius` of a checked mask, on the taichi backend already chosen."""
    porespy = _porespy()   # for its core count only
    # squared distance from each voxel to the nearest solid voxel centre: a sum of squared whole
    # numbers, exact in float32 below 2^24 (the edt package, on every core, 8x scipy's time)
    dt = np.ascontiguousarray(edt.edtsq(pore_mask, parallel=porespy.settings.ncores), dtype=np.float32)
    whole_voxel_kernel(dt)
    # only balls that lie inside no neighbour's ball (5x5x5, exact lattice tables) are painted: a ball
    # inside another is covered by a larger radius whatever it paints (10.7 M -> 8.3 M balls on the paper
    # phantom's non-NMC phase at step A, against the face neighbours' test alone)
    flag, _ = _ridge_flags(dt)
    keep = flag > 0
    del flag
    keep &= dt > 1.2        # r >= 1 (dt = sqrt(2) and up): a ball of radius 0 paints 0, which is there already
    centres = np.ascontiguousarray(np.argwhere(keep), dtype=np.int32)    # C order, see _local_radius
    balls = np.zeros((len(centres), 5), dtype=np.float32)
    # paint_ridge_kernel paints |x - c|^2 <= r_out^2 - 1 of lattice balls: r_out^2 = r^2 + 1 is the ball
    balls[:, 3] = np.rint(dt[keep] ** 2)
    balls[:, 4] = np.sqrt(balls[:, 3] - 1)      # r, exact: the square root of a perfect square
    del dt
    # each ball leaves out its overlap with a neighbour (26-neighbourhood) that outranks it (exact, see
    # paint_ridge_kernel): neighbouring balls of a pore's ridge nearly coincide
    index = np.full(pore_mask.shape, -1, dtype=np.int32)
    index[keep] = np.arange(len(centres), dtype=np.int32)
    del keep
    partner = np.empty(len(centres), dtype=np.int32)
    partner_kernel(centres, balls, index, partner)
    del index
    out = np.zeros(pore_mask.shape, dtype=np.float32)
    paint_ridge_kernel(centres, balls, np.zeros(len(centres), dtype=np.uint8), partner, out)
    return out


def cpsd_whole_voxel(pore_mask, voxel_size_um, mask=None, progress=None, arch="cpu", *, radius_um=None):
    """CPSD with whole-voxel ball radii, as the ImageJ plugin the paper used computes it.

    The paper ran its CPSD "in ImageJ as part of the Beat add-on package":
    the Xlib plugins of Beat Münch (Empa), whose continuous pore size
    distribution is the method of Münch & Holzer (2008): for each radius r
    the fraction of the pore volume covered by the morphological opening of
    the pore space with a ball of radius r, for radii in whole pixels. Here
    every pore voxel gets the largest such r (:func:`whole_voxel_radius`),
    so the CPSD at r is the fraction of pore voxels whose radius is >= r,
    and the mean radius is the pore-volume-weighted mean of those whole
    numbers (the area under the CPSD). Compared with :func:`cpsd` (the
    continuous radii of the best chain) the whole-voxel ball reads every
    pore up to one voxel small, and voxels that no ball of radius 1 fits
    count as radius 0.

    Parameters
    ----------
    pore_mask : ndarray of bool, (z, y, x)
        The phase whose sizes are measured (the paper: everything not NMC).
    voxel_size_um : float
    mask : ndarray of bool, optional
        Analysis region: radii come from the whole ``pore_mask``, counted inside it.
    progress : callable, optional
    arch : {"cpu", "gpu"}
    radius_um : ndarray of float32, (z, y, x), optional
        The radius map of ``pore_mask`` already made, in µm
        (:func:`whole_voxel_radius` times the voxel size): used instead of
        computing it.

    Returns
    -------
    CPSDResult
        On a radius axis of whole voxels.
    """
    if not (np.isscalar(voxel_size_um) and np.isfinite(voxel_size_um) and voxel_size_um > 0):
        raise ValueError(f"voxel_size_um: expected a finite number > 0, got {voxel_size_um!r}")
    pore_mask = _check_pore_mask(pore_mask)
    mask = _check_mask(mask, pore_mask.shape, "mask")
    analysed = pore_mask if mask is None else pore_mask & mask
    if not analysed.any():
        raise ValueError("mask: expected some pore voxels inside the analysis region, got none")
    if radius_um is None:
        result = _distribution(whole_voxel_radius(pore_mask, arch=arch), analysed, mask, voxel_size_um,
                               voxel_size_um)
    else:
        result = _distribution(_check_radius_map(radius_um, pore_mask.shape), analysed, mask, voxel_size_um,
                               voxel_size_um, unit_um=1.0)
    if progress is not None:
        progress(1.0)
    return result


def phase_fractions(labels, mask=None):
    """Volume fractions of pore (0), CBD (1) and NMC (2) labels.

    Parameters
    ----------
    labels : ndarray of integer, (z, y, x)
        Phase labels as written by :func:`analysis.segment.threshold_three_phase`.
    mask : ndarray of bool, optional
        Analysis region; default the whole array.

    Returns
    -------
    PhaseFractions
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels: expected a 3-D integer array (z, y, x), got shape "
                         f"{labels.shape} dtype {labels.dtype}")
    mask = _check_mask(mask, labels.shape, "mask")
    values = labels.ravel() if mask is None else labels[mask]
    if values.size == 0:
        raise ValueError("mask: expected some voxels in the analysis region, got none")
    if values.min() < 0 or values.max() > max(SAMPLE_PHASES):
        raise ValueError(f"labels: expected values {Phase.legend(SAMPLE_PHASES)}, got "
                         f"{values.min()}..{values.max()}")
    fraction = np.bincount(values.astype(np.intp, copy=False), minlength=len(SAMPLE_PHASES)) / values.size
    pore, cbd, nmc = (fraction[p] for p in (Phase.PORE, Phase.CBD, Phase.NMC))
    return PhaseFractions(nmc=float(nmc), cbd=float(cbd), pore=float(pore),
                          inactive=float(1.0 - nmc), n_voxels=int(values.size))


def write_cpsd_csv(path, result):
    """Write a CPSD curve as CSV: ``radius_um,cumulative_fraction``.

    A header comment line gives the mean radius, porosity and voxel size.
    """
    def write(tmp):
        with open(tmp, "w", newline="") as fh:
            fh.write(f"# mean_radius_um={result.mean_radius_um:.6g} "
                     f"median_radius_um={result.median_radius_um:.6g} "
                     f"porosity={result.porosity:.6g} "
                     f"voxel_size_um={result.voxel_size_um:.6g}\n")
            w = csv.writer(fh)
            w.writerow(["radius_um", "cumulative_fraction"])
            for r, f in zip(result.radius_um, result.cumulative_fraction):
                w.writerow([f"{r:.6g}", f"{f:.6g}"])
    with atomic_output(path) as tmp:
        write(tmp)


def write_phase_fractions_csv(path, rows):
    """Write phase fractions per step as CSV.

    Parameters
    ----------
    path : str or Path
    rows : dict {step name: PhaseFractions} or iterable of (step, PhaseFractions)
        Columns: ``step,nmc,cbd,pore,inactive,n_voxels``.
    """
    items = rows.items() if isinstance(rows, dict) else rows

    def write(tmp):
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["step", "nmc", "cbd", "pore", "inactive", "n_voxels"])
            for step, pf in items:
                w.writerow([step, f"{pf.nmc:.6g}", f"{pf.cbd:.6g}", f"{pf.pore:.6g}",
                            f"{pf.inactive:.6g}", pf.n_voxels])
    with atomic_output(path) as tmp:
        write(tmp)


def plot_cpsd(results_by_step, path):
    """Plot the CPSD curves of all steps into one PNG.

    Parameters
    ----------
    results_by_step : dict {step name: CPSDResult}
    path : str or Path
        PNG file to write.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not results_by_step:
        raise ValueError("results_by_step: expected at least one CPSDResult, got none")
    # a bare Figure with the Agg canvas leaves pyplot's global backend alone
    fig = Figure(figsize=(5.5, 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for step, r in results_by_step.items():
        ax.plot(r.radius_um, r.cumulative_fraction,
                label=f"{step} (mean {r.mean_radius_um:.2f} µm)")
    ax.set_xlabel("radius r (µm)")
    ax.set_ylabel("pore volume fraction with radius ≥ r")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()

    def write(tmp):
        fig.savefig(tmp, format="png")
    with atomic_output(path) as tmp:
        write(tmp)
