"""Particle pieces: NMC spheres and the fragments they crack into.

A particle is a piece of a *root* sphere (the particle as it was deposited):
the root sphere of radius ``root_radius_um`` cut by up to ``MAX_PLANES``
planes. An unbroken particle is its whole root sphere. Every descendant of a
root carries the root's body frame (a fragment starts with its parent's
orientation, see :mod:`synthcal.dem.fracture`), so the geometry of a piece is
stored once, in root-body coordinates ``b`` (z-y-x, µm, from the root
centre):

    piece = { b : |b| <= root_radius_um  and  n_k . b <= d_k for every plane k }

A plane row is ``(n_z, n_y, n_x, d)`` with a unit normal; unused rows are
``(0, 0, 0, 1)``, which every point satisfies. The particle's own centre
(the DEM sphere's) lies at ``-root_offset_um`` in root-body coordinates: the
root centre is at ``c + R(q) root_offset_um`` in the world, for a particle
at ``c`` with orientation ``q``. Pieces of one root never overlap and
together fill it.

Splitting (:func:`split_piece`) cuts a piece into the Voronoi cells of a few
seed points drawn inside it, so every fragment is again a sphere cut by
planes. Volumes are counted on a lattice of the piece's points: the
fragments' shares add up to the parent's exactly, so masses are conserved
exactly, and the rendered volume is conserved by construction (the cells
partition the parent). Each fragment's contact sphere is its piece's
largest inscribed sphere (:func:`inscribed_ball`): it never reaches beyond
the piece, so fragments start without overlap among themselves or with
neighbours deeper than the parent's.
"""

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog
from scipy.spatial import ConvexHull, HalfspaceIntersection

MAX_PLANES = 8
PAD_PLANE = (0.0, 0.0, 0.0, 1.0)
# lattice points across a root diameter when a piece is split
_LATTICE_POINTS = 40
# the inscribed-ball programme replaces the sphere by planes tangent to the
# sphere of radius R cos(_COVER): every direction lies within _COVER rad of
# one of the _N_DIRECTIONS normals (checked in the tests), so the
# polyhedron, hence the ball, lies inside the sphere
_N_DIRECTIONS = 400
_COVER = 0.14


def _fibonacci_directions(n):
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    phi = np.pi * (1.0 + 5 ** 0.5) * k
    s = np.sqrt(1.0 - z * z)
    return np.column_stack([z, s * np.sin(phi), s * np.cos(phi)])


_DIRECTIONS = _fibonacci_directions(_N_DIRECTIONS)


@dataclass(frozen=True)
class Pieces:
    """Piece geometry of N particles (see the module docstring).

    Attributes
    ----------
    root_ids : (N,) int64
        Index of the root particle (load step 0) each particle comes from; its own index if unbroken.
    root_offsets_um : (N, 3) float64
        Root centre relative to the particle's centre, body frame z-y-x (µm).
    root_radii_um : (N,) float64
        Radius of the root sphere (µm).
    planes : (N, MAX_PLANES, 4) float64
        Cutting planes in root-body coordinates, rows ``(n_z, n_y, n_x, d_um)``.
    """

    root_ids: np.ndarray
    root_offsets_um: np.ndarray
    root_radii_um: np.ndarray
    planes: np.ndarray

    def __post_init__(self):
        n = len(self.root_ids)
        for name, shape in (("root_offsets_um", (n, 3)), ("root_radii_um", (n,)), ("planes", (n, MAX_PLANES, 4))):
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {np.shape(getattr(self, name))}")

    @classmethod
    def whole(cls, radii_um):
        """Unbroken particles of radii ``radii_um``."""
        r = np.asarray(radii_um, np.float64)
        return cls(np.arange(len(r)), np.zeros((len(r), 3)), r.copy(), np.tile(PAD_PLANE, (len(r), MAX_PLANES, 1)))

    @property
    def n_planes(self):
        """(N,) number of cutting planes in use per particle."""
        return np.count_nonzero(np.any(self.planes[:, :, :3] != 0.0, axis=2), axis=1)

    def bounding_radii_um(self, radii_um):
        """(N,) radius about each particle's centre that holds its whole piece (µm).

        The contact radius for unbroken particles; for fragments the root
        sphere seen from the fragment's centre, ``|offset| + R_root``.
        """
        broken = self.n_planes > 0
        return np.where(broken, np.linalg.norm(self.root_offsets_um, axis=1) + self.root_radii_um,
                        np.asarray(radii_um, np.float64))


def fracture_counts(pieces):
    """``n_fractured_particles`` (root particles broken) and ``n_fragments`` (particles that are fragments)."""
    counts = np.bincount(pieces.root_ids, minlength=len(pieces.root_ids))
    return {"n_fractured_particles": int(np.count_nonzero(counts > 1)),
            "n_fragments": int(np.count_nonzero(counts[pieces.root_ids] > 1))}


def depth_um(body_points_um, root_radius_um, planes):
    """Signed depth of root-body points inside a piece (µm; > 0 inside).

    The smallest of the distance to the root sphere's surface and to each
    cutting plane; exact inside, a lower bound on the distance outside.

    Parameters
    ----------
    body_points_um : (M, 3) array_like
        Points in root-body coordinates, z-y-x (µm).
    root_radius_um : float or (M,) array_like
    planes : (P, 4) or (M, P, 4) array_like
    """
    b = np.asarray(body_points_um, np.float64)
    p = np.asarray(planes, np.float64)
    sphere = np.asarray(root_radius_um, np.float64) - np.linalg.norm(b, axis=-1)
    if p.ndim == 2:
        cut = p[:, 3][None] - b @ p[:, :3].T
    else:
        cut = p[..., 3] - np.einsum("mpk,mk->mp", p[..., :3], b)
    return np.minimum(sphere, cut.min(axis=-1))


def lattice_points_um(root_radius_um, planes, n_across=_LATTICE_POINTS):
    """Centres of the cells of a cubic lattice (``n_across`` cells per root diameter) inside a piece."""
    r = float(root_radius_um)
    h = 2.0 * r / n_across
    axis = -r + h * (np.arange(n_across) + 0.5)
    b = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    return b[depth_um(b, r, planes) > 0]


def inscribed_ball(root_radius_um, planes):
    """Largest ball inside a piece: centre (root-body z-y-x, µm) and radius (µm).

    A linear programme (the Chebyshev centre) on the cutting planes and
    ``_N_DIRECTIONS`` planes at ``R cos(_COVER)`` standing in for the sphere;
    the ball found lies inside the piece and its radius is within
    ``1 - cos(_COVER)`` (1 %) of the root radius of the largest one.
    """
    p = np.asarray(planes, np.float64)
    used = p[np.any(p[:, :3] != 0.0, axis=1)]
    a = np.vstack([used[:, :3], _DIRECTIONS])
    bound = np.concatenate([used[:, 3], np.full(_N_DIRECTIONS, root_radius_um * np.cos(_COVER))])
    res = linprog(c=[0.0, 0.0, 0.0, -1.0], A_ub=np.column_stack([a, np.ones(len(a))]), b_ub=bound,
                  bounds=[(None, None)] * 3 + [(0.0, None)], method="highs")
    if res.status != 0 or not res.x[3] > 0:
        raise ValueError("planes: expected a piece with an interior")
    return res.x[:3], float(res.x[3])


def piece_surface(root_radius_um, planes, n_directions=_N_DIRECTIONS):
    """Triangle surface of a piece, for drawing: the root sphere as a polyhedron cut by the piece's planes.

    A piece is convex (a sphere cut by half-spaces), so its surface is the
    convex hull of the intersection of half-spaces: ``n_directions`` planes
    tangent to the root sphere (the polyhedron circumscribes it; 400 give a
    volume about 1 % above the sphere's) and the cutting planes, which are
    exact. The two sides of a cut meet on the same face, so the pieces of a
    root tile the polyhedron of the whole root.

    Parameters
    ----------
    root_radius_um : float
    planes : (P, 4) array_like
        The piece's planes (root-body coordinates; pad rows allowed).
    n_directions : int

    Returns
    -------
    vertices : (V, 3) float64
        Root-body coordinates z-y-x (µm).
    faces : (F, 3) int64
        Triangles, counter-clockwise seen from outside.
    """
    p = np.asarray(planes, np.float64).reshape(-1, 4)
    used = p[np.any(p[:, :3] != 0.0, axis=1)]
    normals = np.vstack([_fibonacci_directions(int(n_directions)), used[:, :3]])
    offsets = np.concatenate([np.full(int(n_directions), float(root_radius_um)), used[:, 3]])
    inside, _ = inscribed_ball(root_radius_um, p)
    vertices = HalfspaceIntersection(np.column_stack([normals, -offsets]), inside).intersections
    hull = ConvexHull(vertices)
    faces = hull.simplices.copy()
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    outward = np.einsum("ij,ij->i", np.cross(b - a, c - a), (a + b + c) / 3.0 - vertices.mean(axis=0)) > 0
    faces[~outward] = faces[~outward][:, ::-1]
    return vertices, faces.astype(np.int64)


def split_piece(root_radius_um, planes, n_fragments, rng, min_share=None, tries=20):
    """Cut a piece into ``n_fragments`` Voronoi cells of seeds drawn inside it.

    Parameters
    ----------
    root_radius_um : float
    planes : (MAX_PLANES, 4) array_like
        The piece's planes; it must have ``n_fragments - 1`` unused rows.
    n_fragments : int
        At least 2.
    rng : numpy.random.Generator
        Draws the seeds (lattice points of the piece, each moved by up to a
        quarter of the lattice step on each axis).
    min_share : float, optional
        Seeds are drawn again (up to ``tries`` times) while some cell holds
        less than this share of the piece; default ``0.4 / n_fragments``.

    Returns
    -------
    planes : (n_fragments, MAX_PLANES, 4) float64
        Each fragment's planes: the piece's, then its cell's bisector planes.
    shares : (n_fragments,) float64
        Each fragment's share of the piece's volume (they sum to 1).
    centres_um : (n_fragments, 3) float64
        Centre of each fragment's inscribed ball, root-body coordinates (µm).
    radii_um : (n_fragments,) float64
        Radius of each fragment's inscribed ball (µm).
    """
    p = np.asarray(planes, np.float64)
    k = int(n_fragments)
    used = int(np.count_nonzero(np.any(p[:, :3] != 0.0, axis=1)))
    if k < 2:
        raise ValueError(f"n_fragments: expected >= 2, got {n_fragments}")
    if used + k - 1 > MAX_PLANES:
        raise ValueError(f"planes: the piece has {used} planes, no room for {k - 1} more (max {MAX_PLANES})")
    min_share = 0.4 / k if min_share is None else min_share
    points = lattice_points_um(root_radius_um, p)
    h = 2.0 * float(root_radius_um) / _LATTICE_POINTS
    for _ in range(tries):
        # seeds off the lattice: the bisector of two lattice points can hold a whole lattice plane of
        # points, all counted to one side, which put a share 0.04 off (hypothesis found it)
        seeds = points[rng.choice(len(points), size=k, replace=False)] + rng.uniform(-0.25 * h, 0.25 * h, (k, 3))
        cell = np.argmin(((points[:, None, :] - seeds[None]) ** 2).sum(axis=2), axis=1)
        counts = np.bincount(cell, minlength=k)
        if counts.min() >= min_share * len(points):
            break
    out = np.repeat(p[None], k, axis=0)
    for a in range(k):
        others = [b for b in range(k) if b != a]
        normal = seeds[others] - seeds[a]
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        out[a, used:used + k - 1, :3] = normal
        out[a, used:used + k - 1, 3] = np.einsum("ij,ij->i", normal, 0.5 * (seeds[others] + seeds[a]))
    balls = [inscribed_ball(root_radius_um, out[a]) for a in range(k)]
    return (out, counts / counts.sum(), np.array([c for c, _ in balls]), np.array([r for _, r in balls]))
