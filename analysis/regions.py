"""Regions of a scan the chain works on: the sample, its foot, the slab on the pin, the registration particle.

Rows are z (the pillar axis); a region is a tuple of three slices (z, y, x)
or a bool mask of the volume's shape. ``rows`` is ``(first, end)``: the
sample's first row and the row after its last (between the pin and the flat
head), or None for all rows.
"""

import numpy as np
import scipy.ndimage as ndi

from analysis.segment import threshold_two_phase


def sample_mask(shape, rows, margin_voxels=0):
    """Region of the sample: rows ``[z0, z1)`` less ``margin_voxels`` on every side.

    Parameters
    ----------
    shape : tuple of 3 int
    rows : (int, int) or None
        First and end row of the sample (e.g. foil top and head face); None:
        all rows.
    margin_voxels : int
    """
    z0, z1 = (0, shape[0]) if rows is None else rows
    e = int(margin_voxels)
    mask = np.zeros(shape, dtype=bool)
    mask[max(z0 + e, 0):max(min(z1 - e, shape[0]), 0), e:shape[1] - e, e:shape[2] - e] = True
    return mask


def foot_region(reference, rows, edge_voxels):
    """The foot of the sample: the lowest quarter of its rows (at least ``edge_voxels``), less a
    2-voxel border in y and x. The pin holds the foot still while the head compresses the top.

    Parameters
    ----------
    reference : (nz, ny, nx) ndarray
        The reference scan (only its shape is used: the foot is a fixed box).
    rows : (int, int) or None
    edge_voxels : int
        Smallest height of the box, voxels (the chain passes its subvolume edge).

    Returns
    -------
    tuple of 3 slices
    """
    shape = np.shape(reference)
    z0, z1 = (0, shape[0]) if rows is None else rows
    height = max((z1 - z0) // 4, int(edge_voxels))
    return (slice(z0 + 1, z0 + 1 + height), slice(2, shape[1] - 2), slice(2, shape[2] - 2))


def pin_region(reference, rows, edge_voxels):
    """The slab on the pin: the rows within a quarter subvolume edge of the sample's first row.

    The rows within ``edge_voxels // 4`` of the sample's first row (the foil top), less a 2-voxel border
    in y and x. The pin holds the foil still and the particles glued to it move with it, while the head
    compresses everything above; the slab straddles the foil top, the foil's face below and the first
    particles above. On the paper scenario's scans (8 µm edge: the 31 rows from 2 µm under the foil top to 2 µm
    over it) the best chain's rigid registration on this slab fitted CC 0.94 and 0.91 at loads A and B,
    within 0.15 voxel of the stage drift on every axis; on the lowest quarter of the sample rows (15 µm,
    :func:`foot_region`) CC 0.36 and 0.30, 0.7-0.8 voxel short in z, pulled by the compressed material.

    Parameters
    ----------
    reference : (nz, ny, nx) ndarray
        The reference scan (only its shape is used: the slab is a fixed box).
    rows : (int, int) or None
        The reference's sample rows (None: the slab is the bottom of the volume).
    edge_voxels : int
        Subvolume edge, voxels: the slab spans ``2 * (edge_voxels // 4) + 1`` rows (at least 5), at least
        2 rows from the volume's faces (moved up or down to fit).

    Returns
    -------
    tuple of 3 slices
    """
    shape = np.shape(reference)
    z0 = 0 if rows is None else rows[0]
    reach = max(int(edge_voxels) // 4, 2)
    # 2 rows from the volume's faces, where the registration does not look
    first = min(max(z0 - reach, 2), max(shape[0] - 2 - (2 * reach + 1), 0))
    return (slice(first, min(first + 2 * reach + 1, shape[0])), slice(2, shape[1] - 2), slice(2, shape[2] - 2))


def particle_region(reference, rows, edge_voxels):
    """One particle to register on, picked automatically: a cube of ``edge_voxels`` centred in NMC.

    The paper registered its scans on one particle in an 8 µm box (its
    Fig. 2c). This picks such a box by four rules, each for a reason:

    1. *Inside the field of view at every angle*: every voxel centre of the
       box lies within ``min(ny, nx) / 2`` of the rotation axis (the centre of
       the y-x section), so every projection saw it; the corners of an
       interior scan outside that circle carry truncation artefacts.
    2. *By the pin*: the box's centre lies within half a box above the
       sample's first row (the foil top), so the box holds the particles
       glued to the foil and the foil's face, which the pin holds still.
       A box higher up moves with the compression: on the paper scenario
       the particles 4–8 µm above the foil had already moved 0.9 µm down
       (median) at the first load and those 12–16 µm up 4.8 µm, beyond the
       registration's search, and a box picked 13–21 µm up fitted a 12°
       turn with a CC of 0.38. The box may reach below the foil top.
    3. *On a particle*: the centre voxel is NMC, i.e. above Otsu's threshold
       of the grey values of the sample rows inside that circle (the
       paper's binarisation).
    4. *Strongly textured*: among the boxes left, the one with the largest
       sum of squared grey-level gradients, which is what the Gauss–Newton
       Hessian of the registration is built from (the best-conditioned
       registration). Ties go to the first box in (z, y, x) order.

    Parameters
    ----------
    reference : (nz, ny, nx) ndarray
        The reference scan, median-filtered.
    rows : (int, int) or None
        The reference's sample rows.
    edge_voxels : int
        Edge of the box, voxels (odd: the chain passes its subvolume edge).

    Returns
    -------
    tuple of 3 slices

    Raises
    ------
    ValueError
        One line when no box satisfies rules 1–3 (give a registration box
        by hand instead).
    """
    volume = np.asarray(reference, dtype=np.float32)
    shape = volume.shape
    z0, z1 = (0, shape[0]) if rows is None else rows
    edge = int(edge_voxels)
    lo = edge // 2                 # a box centred on c spans c - lo .. c - lo + edge - 1
    # centres from the foil top up half a box, and boxes inside the volume
    first_centre, last_centre = max(z0, lo), min(z0 + lo, shape[0] - edge + lo)
    zc = np.arange(shape[0])
    z_ok = (zc >= first_centre) & (zc <= last_centre)
    axis = (np.asarray(shape[1:], float) - 1) / 2

    def reach(n, a):
        """Farthest voxel centre of the box from the axis, per box centre on one axis."""
        c = np.arange(n)
        return np.maximum(np.abs(c - lo - a), np.abs(c - lo + edge - 1 - a))

    radius2 = (min(shape[1:]) / 2.0) ** 2
    in_view = reach(shape[1], axis[0])[:, None] ** 2 + reach(shape[2], axis[1])[None, :] ** 2 <= radius2
    allowed = z_ok[:, None, None] & in_view[None]
    # the histogram of what every projection saw: the corners of an interior scan would skew Otsu's threshold
    seen = (np.arange(shape[1])[:, None] - axis[0]) ** 2 + (np.arange(shape[2])[None, :] - axis[1]) ** 2 <= radius2
    nmc = threshold_two_phase(volume, mask=sample_mask(shape, rows) & seen[None]).solid
    candidates = allowed & nmc
    if not candidates.any():
        raise ValueError(f"registration particle: no NMC voxel in rows {first_centre}..{last_centre} (within half "
                         f"a {edge}-voxel box of the sample's first row, {z0}) whose box lies inside the volume and "
                         "the field of view; give a registration box by hand")
    # the texture is measured in the rows the boxes reach only (memory at 128 nm)
    part = slice(first_centre - lo, last_centre - lo + edge)
    energy = sum(g.astype(np.float64) ** 2 for g in np.gradient(volume[part]))
    # box sums centred on every voxel (odd edge: the box is centred exactly)
    box_energy = ndi.uniform_filter(energy, size=edge, mode="constant")
    centre = np.unravel_index(np.argmax(np.where(candidates[part], box_energy, -np.inf)), box_energy.shape)
    centre = (centre[0] + part.start, centre[1], centre[2])
    return tuple(slice(int(c) - lo, int(c) - lo + edge) for c in centre)
