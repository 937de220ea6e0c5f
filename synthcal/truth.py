"""Ground-truth displacement: every solid point moves with its particle's rigid motion.

A point ``p`` of the reference configuration (load step 0) owned by particle
``k`` (inside its sphere; the deepest one if several overlap, equal depths to
the lower index, as in :mod:`synthcal.phantom`) moves to
``R_cur[k] R_ref[k]^T (p - c_ref[k]) + c_cur[k]``; its displacement is that
minus ``p``. Points in no particle (pores) have no displacement: NaN.
Voxel grids follow :mod:`synthcal.phantom` (``origin_um`` is the centre of
voxel (0, 0, 0)). All lengths µm, vectors z-y-x.
"""

from dataclasses import dataclass

import numpy as np

from synthcal.phantom import bin_particles, choose_cell_size_um
from synthcal.rotations import rotation_matrices_zyx

_CHUNK_POINTS = 200_000


@dataclass(frozen=True)
class ParticlePoses:
    """Particle poses of one load step.

    Attributes
    ----------
    positions_um : (N, 3) float64
        Centres, world z-y-x, µm.
    quaternions : (N, 4) float64
        Orientations, scalar first (see :mod:`synthcal.rotations`).
    """

    positions_um: np.ndarray
    quaternions: np.ndarray

    def __post_init__(self):
        positions = np.array(self.positions_um, dtype=np.float64)
        quaternions = np.array(self.quaternions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ValueError(f"positions_um: expected shape (N, 3), got {positions.shape}")
        if quaternions.shape != (len(positions), 4):
            raise ValueError(f"quaternions: expected shape ({len(positions)}, 4), got {quaternions.shape}")
        positions.flags.writeable = False
        quaternions.flags.writeable = False
        object.__setattr__(self, "positions_um", positions)
        object.__setattr__(self, "quaternions", quaternions)


def _rigid_maps(ref, cur):
    """Per-particle affine map of the displacement: u(p) = M p + t, M = A - I."""
    if not isinstance(ref, ParticlePoses) or not isinstance(cur, ParticlePoses):
        raise ValueError("ref, cur: expected ParticlePoses")
    if len(ref.positions_um) != len(cur.positions_um):
        raise ValueError(f"cur: expected {len(ref.positions_um)} particles like ref, "
                         f"got {len(cur.positions_um)}")
    a = rotation_matrices_zyx(cur.quaternions) @ np.swapaxes(rotation_matrices_zyx(ref.quaternions), 1, 2) \
        if len(ref.positions_um) else np.zeros((0, 3, 3))
    t = cur.positions_um - np.einsum("nij,nj->ni", a, ref.positions_um)
    return a - np.eye(3), t


def owner_at_points_um(points_um, ref_poses, radii_um):
    """Index of the particle owning each point, -1 where none.

    Parameters
    ----------
    points_um : (M, 3) array_like
        Points, world z-y-x, µm.
    ref_poses : ParticlePoses
    radii_um : (N,) array_like

    Returns
    -------
    (M,) int32
    """
    points = np.asarray(points_um, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points_um: expected shape (M, 3), got {points.shape}")
    centres = ref_poses.positions_um
    radii = np.asarray(radii_um, dtype=np.float64)
    if radii.shape != (len(centres),) or not np.all(radii > 0):
        raise ValueError(f"radii_um: expected ({len(centres)},) positive radii, got shape {radii.shape}")
    owner = np.full(len(points), -1, dtype=np.int32)
    if len(points) == 0 or len(centres) == 0:
        return owner
    lo = points.min(axis=0)
    extent = points.max(axis=0) - lo
    cell = choose_cell_size_um(radii, extent, len(points),
                               max(float(radii.min()) / 4, float(extent.max()) / 4096, 1e-6))
    dims = (np.floor(extent / cell) + 1).astype(np.int64)
    cell_start, items = bin_particles(centres, radii, lo, dims, cell)
    for start in range(0, len(points), _CHUNK_POINTS):
        p = points[start:start + _CHUNK_POINTS]
        c = np.minimum(np.floor((p - lo) / cell).astype(np.int64), dims - 1)
        flat = (c[:, 0] * dims[1] + c[:, 1]) * dims[2] + c[:, 2]
        first, counts = cell_start[flat], cell_start[flat + 1] - cell_start[flat]
        point = np.repeat(np.arange(len(p)), counts)
        offset = np.arange(len(point)) - np.repeat(np.cumsum(counts) - counts, counts)
        particle = items[np.repeat(first, counts) + offset]
        depth = radii[particle] - np.linalg.norm(p[point] - centres[particle], axis=1)
        inside = depth > 0
        point, particle, depth = point[inside], particle[inside], depth[inside]
        order = np.lexsort((particle, -depth, point))
        keep = order[np.unique(point[order], return_index=True)[1]]
        owner[start + point[keep]] = particle[keep]
    return owner


def true_displacement_um(points_um, ref, cur, radii_um):
    """True displacement of reference points between step ``ref`` and step ``cur``.

    Parameters
    ----------
    points_um : (M, 3) array_like
        Points in the reference (step 0) configuration, world z-y-x, µm.
    ref, cur : ParticlePoses
    radii_um : (N,) array_like

    Returns
    -------
    (M, 3) float64
        Displacement z-y-x in µm; NaN for points in no particle.
    """
    points = np.asarray(points_um, dtype=np.float64)
    m, t = _rigid_maps(ref, cur)
    owner = owner_at_points_um(points, ref, radii_um)
    u = np.full(points.shape, np.nan)
    solid = owner >= 0
    k = owner[solid]
    u[solid] = np.einsum("nij,nj->ni", m[k], points[solid]) + t[k]
    return u


def _check_grid(owner, voxel_size_um, origin_um):
    owner = np.asarray(owner)
    if owner.ndim != 3 or not np.issubdtype(owner.dtype, np.integer):
        raise ValueError(f"owner: expected a 3-D integer array, got {owner.dtype} of shape {owner.shape}")
    if not voxel_size_um > 0:
        raise ValueError(f"voxel_size_um: expected > 0, got {voxel_size_um}")
    origin = np.asarray(origin_um, dtype=np.float64)
    if origin.shape != (3,):
        raise ValueError(f"origin_um: expected 3 values (z, y, x), got shape {origin.shape}")
    return owner, origin


def _plane_displacement(owner_plane, k, m, t, voxel_size_um, origin):
    """Displacement (3, ny, nx) float64 of one z-plane, 0 where owner < 0, and its solid mask."""
    solid = owner_plane >= 0
    idx = np.where(solid, owner_plane, 0)
    ny, nx = owner_plane.shape
    z = origin[0] + voxel_size_um * k
    y = origin[1] + voxel_size_um * np.arange(ny)[:, None]
    x = origin[2] + voxel_size_um * np.arange(nx)[None, :]
    mk, tk = m[idx], t[idx]
    u = np.stack([mk[..., c, 0] * z + mk[..., c, 1] * y + mk[..., c, 2] * x + tk[..., c] for c in range(3)])
    return np.where(solid, u, 0.0), solid


def true_displacement_volume(owner, ref, cur, *, voxel_size_um, origin_um):
    """Dense truth displacement on the phantom grid.

    Parameters
    ----------
    owner : (nz, ny, nx) int array
        Owner particle of each voxel centre in the reference step (``Phantom.owner``).
    ref, cur : ParticlePoses
    voxel_size_um : float
    origin_um : (3,) array_like
        World z-y-x of the centre of voxel (0, 0, 0), µm.

    Returns
    -------
    (3, nz, ny, nx) float32
        Displacement (z, y, x components) in µm; NaN where ``owner == -1``.
    """
    owner, origin = _check_grid(owner, voxel_size_um, origin_um)
    m, t = _rigid_maps(ref, cur)
    if owner.size and owner.max() >= len(m):
        raise ValueError(f"owner: index {owner.max()} out of range for {len(m)} particles")
    out = np.full((3,) + owner.shape, np.nan, dtype=np.float32)
    if len(m) == 0:
        return out
    for k in range(owner.shape[0]):
        u, solid = _plane_displacement(owner[k], k, m, t, voxel_size_um, origin)
        out[:, k][:, solid] = u[:, solid]
    return out


def mean_solid_displacement_um(owner, ref, cur, boxes, *, voxel_size_um, origin_um):
    """Mean true displacement of the solid voxels inside each box.

    Parameters
    ----------
    owner : (nz, ny, nx) int array
        ``Phantom.owner`` of the reference step.
    ref, cur : ParticlePoses
    boxes : (B, 6) array_like of int
        Half-open voxel index ranges ``(z0, z1, y0, y1, x0, x1)``, clipped to the grid.
    voxel_size_um : float
    origin_um : (3,) array_like

    Returns
    -------
    (B, 3) float64
        Mean displacement z-y-x in µm; NaN for boxes without solid voxels.

    Notes
    -----
    Sums come from 2-D summed-area tables built one z-plane at a time, so
    memory stays at a few planes whatever the number of boxes.
    """
    owner, origin = _check_grid(owner, voxel_size_um, origin_um)
    b = np.asarray(boxes)
    if b.ndim != 2 or b.shape[1] != 6 or not np.issubdtype(b.dtype, np.integer):
        raise ValueError(f"boxes: expected (B, 6) integers (z0, z1, y0, y1, x0, x1), got {b.shape}")
    if np.any(b[:, 1::2] < b[:, 0::2]):
        raise ValueError("boxes: expected z0 <= z1, y0 <= y1, x0 <= x1 in every row")
    m, t = _rigid_maps(ref, cur)
    limits = np.repeat(np.asarray(owner.shape), 2)
    b = np.clip(b, 0, limits)
    sums = np.zeros((len(b), 4))
    if len(m) == 0 or len(b) == 0:
        return np.full((len(b), 3), np.nan)
    for k in range(int(b[:, 0].min()), int(b[:, 1].max())):
        active = np.flatnonzero((b[:, 0] <= k) & (k < b[:, 1]))
        if active.size == 0:
            continue
        u, solid = _plane_displacement(owner[k], k, m, t, voxel_size_um, origin)
        table = np.zeros((4, owner.shape[1] + 1, owner.shape[2] + 1))
        table[:3, 1:, 1:] = u
        table[3, 1:, 1:] = solid
        table = table.cumsum(axis=1).cumsum(axis=2)
        y0, y1, x0, x1 = b[active, 2], b[active, 3], b[active, 4], b[active, 5]
        sums[active] += (table[:, y1, x1] - table[:, y0, x1] - table[:, y1, x0] + table[:, y0, x0]).T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sums[:, 3:] > 0, sums[:, :3] / sums[:, 3:], np.nan)
