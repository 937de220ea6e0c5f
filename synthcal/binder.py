"""The carbon-binder domain (CBD) of the phantom: bridges and films, their volume and their motion.

Real CBD is a nanoporous mix of carbon black and PVDF that coats the NMC
particles and bridges neighbouring ones (the seed paper's SEM shows it at the
contacts and on the surfaces). In the DEM it is the bonds between particles;
here it becomes voxels of label ``Phase.CBD``. Everything is defined in the
reference configuration (load step 0) and carried to later steps by the truth
motion, so the binder is a material body, not a shape redrawn at each step.
Lengths µm, vectors world z-y-x.

Shapes (reference configuration)
--------------------------------
*Bridge* of a bond (i, j) intact at the reference. With ``n`` the unit vector
from centre ``c_i`` to ``c_j`` and ``d = |c_j - c_i|``, a point ``X`` has the
axial coordinate ``t = (X - c_i)·n`` and the distance ``rho`` from the axis.
The bridge is the part of the cylinder ``rho < a`` between the two spheres::

    rho < a   and   s_i(rho) <= t <= d - s_j(rho),   s(rho) = sqrt(r^2 - rho^2)

(a neck that fills the contact out to radius ``a``). Its volume is analytic
(:func:`bridge_volume_um3`). Every bridge has ``a = alpha * min(r_i, r_j)``
with one ``alpha`` for the sample (at most 0.9, which keeps the bridge inside
the smaller particle's equator, where ``s`` is smooth).

*Film*: points outside every particle within ``film_thickness_um`` of the
nearest NMC surface (``|X - c_p| - r_p``), owned by that particle.

A point belongs to the particle it is inside (as in :mod:`synthcal.phantom`),
else to the first bridge (lowest bond index) holding it, else to the film of
the nearest NMC surface (lower index on ties), else it is pore.

Volume
------
The CBD volume is ``V_NMC * materials.binder_volume_per_nmc_volume(mass
ratio, nanoporosity)`` (documented there; 0.576 for 90:5:5 at 50 %
nanoporosity), with ``V_NMC`` counted on the lattice of the reference
phantom's voxel centres; CBD particles of an older DEM (kind 1) count towards
it. The bridges take ``bridge_fraction`` of it, by choosing ``alpha`` on the
analytic bridge volumes (overlaps ignored); the films close the budget: one
pass over the lattice gives every pore point's distance to the nearest NMC
surface and the film thickness is the distance below which exactly the
missing number of points lie. So the binder of the reference phantom matches
the recipe to a voxel; the bridge share is only close to ``bridge_fraction``
(overlapping bridges count once). The split is a scenario choice
(``[particles] cbd_bridge_fraction``): the paper does not measure it; its SEM
shows both.

Motion (the truth)
------------------
A film point moves rigidly with its particle. A bridge point ``X`` has the
weight ``w(X) = (t - s_i(rho)) / (d - s_i(rho) - s_j(rho))``: 0 on ``i``'s
surface, 1 on ``j``'s, linear along the axis at its radius. It moves to
``phi(X) = (1 - w) A_i(X) + w A_j(X)``, ``A_p`` the rigid motion of particle
``p`` since the reference; its displacement is ``(1 - w) u_i + w u_j``. This
is the rigid motion when both particles move together, keeps each end on its
particle's surface and stretches a bridge evenly when they separate. Once the
bond is broken, each half (``w < 1/2`` with ``i``, ``w >= 1/2`` with ``j``)
moves rigidly with its particle: a crack at mid-bridge that opens as the
particles part. A bond broken before the reference has no bridge.

Phantom of a later step
-----------------------
A current point ``x`` is binder if it pulls back into the reference binder:
through a bridge by solving ``phi(X) = x`` (a bracketed scalar root in
``w``, see ``_pull_bridge``), through a broken half or a film by the inverse
rigid motion; and the reference classification of ``X`` must name that very bridge
or film. The CBD texture is evaluated at ``X`` (world µm), so the binder's
texture moves exactly with the truth.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import taichi as ti

from analysis._taichi import ensure_taichi
from analysis.io import atomic_output
from synthcal.binning import bin_particles, choose_cell_size_um
from synthcal.dem.material import ParticleKind

# classes of a reference point (plain ints for the kernels)
NONE, SPHERE, BRIDGE, FILM = 0, 1, 2, 3
MAX_BRIDGE_RADIUS_FRACTION = 0.9
_KIND_NMC = int(ParticleKind.NMC)
_ROOT_ITERATIONS = 60
_WEIGHT_TOLERANCE = 1e-6
# census codes of the reference lattice
_C_OUT, _C_PORE, _C_NMC, _C_OTHER, _C_BRIDGE, _C_FILM = 0, 1, 2, 3, 4, 5


def _frozen(array, dtype, shape, name):
    a = np.array(array, dtype=dtype)
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    a.flags.writeable = False
    return a



def _write_npz(path, **arrays):
    """Write arrays to an ``.npz`` file, complete or absent (written under a temporary name)."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def _read_npz(path, what):
    """The arrays of an ``.npz`` file written by :func:`_write_npz`; a missing file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such {what} file")
    with np.load(path) as data:
        return {name: data[name] for name in data.files}

@dataclass(frozen=True)
class Binder:
    """The carbon-binder domain of a sample, in its reference configuration (load step 0).

    Attributes
    ----------
    positions_um : (N, 3) float64
        Particle centres at the reference, world z-y-x, µm.
    quaternions : (N, 4) float64
        Particle orientations at the reference, scalar first.
    radii_um : (N,) float64
    kinds : (N,) int32
        0 = NMC (carries a film), 1 = CBD particle (an older DEM's binder grains).
    bonds : (M, 2) int64
        The DEM's bonds, particle pairs ``(i, j)``; ``w`` runs from ``i`` to ``j``.
    bridge_radius_um : (M,) float64
        Radius ``a`` of each bond's bridge; 0: no bridge (broken before the reference).
    film_thickness_um : float
        Film thickness on the NMC surfaces.
    """

    positions_um: np.ndarray
    quaternions: np.ndarray
    radii_um: np.ndarray
    kinds: np.ndarray
    bonds: np.ndarray
    bridge_radius_um: np.ndarray
    film_thickness_um: float

    def __post_init__(self):
        positions = np.array(self.positions_um, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ValueError(f"positions_um: expected shape (N, 3), got {positions.shape}")
        n = len(positions)
        radii = _frozen(self.radii_um, np.float64, (n,), "radii_um")
        if not np.all(radii > 0):
            raise ValueError("radii_um: expected positive radii")
        kinds = _frozen(self.kinds, np.int32, (n,), "kinds")
        if not np.all(np.isin(kinds, list(ParticleKind))):
            raise ValueError("kinds: expected values in {0 (NMC), 1 (CBD)}")
        bonds = np.array(self.bonds, dtype=np.int64).reshape(-1, 2) if np.size(self.bonds) else \
            np.zeros((0, 2), np.int64)
        if bonds.size and (bonds.min() < 0 or bonds.max() >= n or np.any(bonds[:, 0] == bonds[:, 1])):
            raise ValueError(f"bonds: expected pairs of two distinct particle indices in [0, {n})")
        bonds.flags.writeable = False
        bridge = _frozen(self.bridge_radius_um, np.float64, (len(bonds),), "bridge_radius_um")
        smaller = np.minimum(radii[bonds[:, 0]], radii[bonds[:, 1]]) if len(bonds) else np.zeros(0)
        if np.any(bridge < 0) or np.any(bridge > MAX_BRIDGE_RADIUS_FRACTION * smaller * (1 + 1e-9)):
            raise ValueError(f"bridge_radius_um: expected in [0, {MAX_BRIDGE_RADIUS_FRACTION} x the smaller "
                             "particle's radius]")
        if not (np.isfinite(self.film_thickness_um) and self.film_thickness_um >= 0):
            raise ValueError(f"film_thickness_um: expected >= 0, got {self.film_thickness_um}")
        positions.flags.writeable = False
        object.__setattr__(self, "positions_um", positions)
        object.__setattr__(self, "quaternions", _frozen(self.quaternions, np.float64, (n, 4), "quaternions"))
        object.__setattr__(self, "radii_um", radii)
        object.__setattr__(self, "kinds", kinds)
        object.__setattr__(self, "bonds", bonds)
        object.__setattr__(self, "bridge_radius_um", bridge)
        object.__setattr__(self, "film_thickness_um", float(self.film_thickness_um))

    def write(self, path):
        """Write to an ``.npz`` file (complete or absent: written under a temporary name)."""
        _write_npz(path, positions_um=self.positions_um, quaternions=self.quaternions, radii_um=self.radii_um,
                   kinds=self.kinds, bonds=self.bonds, bridge_radius_um=self.bridge_radius_um,
                   film_thickness_um=np.float64(self.film_thickness_um))

    @classmethod
    def read(cls, path):
        """Read a binder written by :meth:`write`."""
        data = _read_npz(path, "binder")
        return cls(**{name: data[name] for name in ("positions_um", "quaternions", "radii_um", "kinds", "bonds",
                                                     "bridge_radius_um")},
                   film_thickness_um=float(data["film_thickness_um"]))


@dataclass(frozen=True)
class BridgeVoxels:
    """The voxels of a phantom that lie in a bridge, where the truth blends two particles' motions.

    Attributes
    ----------
    index : (V,) int64
        Flat (C-order, z-y-x) voxel indices, ascending.
    bond : (V,) int32
        Row of ``bonds`` whose bridge holds the voxel centre.
    weight : (V,) float32
        ``w`` of the voxel centre's reference point: 0 on ``bonds[b, 0]``'s surface, 1 on ``bonds[b, 1]``'s.
    bonds : (M, 2) int64
        Particle pairs of the bonds.
    """

    index: np.ndarray
    bond: np.ndarray
    weight: np.ndarray
    bonds: np.ndarray

    def __post_init__(self):
        index = np.array(self.index, dtype=np.int64).reshape(-1)
        v = len(index)
        if np.any(np.diff(index) <= 0):
            raise ValueError("index: expected strictly ascending voxel indices")
        bonds = np.array(self.bonds, dtype=np.int64).reshape(-1, 2) if np.size(self.bonds) else \
            np.zeros((0, 2), np.int64)
        bond = _frozen(self.bond, np.int32, (v,), "bond")
        if v and (bond.min() < 0 or bond.max() >= len(bonds)):
            raise ValueError(f"bond: expected rows of bonds in [0, {len(bonds)})")
        weight = _frozen(self.weight, np.float32, (v,), "weight")
        if np.any(~(weight >= 0) | ~(weight <= 1)):
            raise ValueError("weight: expected values in [0, 1]")
        index.flags.writeable = False
        bonds.flags.writeable = False
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "bond", bond)
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "bonds", bonds)

    @classmethod
    def empty(cls, bonds=np.zeros((0, 2), np.int64)):
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), bonds)

    def write(self, path):
        """Write to an ``.npz`` file (complete or absent)."""
        _write_npz(path, index=self.index, bond=self.bond, weight=self.weight, bonds=self.bonds)

    @classmethod
    def read(cls, path):
        """Read bridge voxels written by :meth:`write`."""
        data = _read_npz(path, "bridge-voxel")
        return cls(data["index"], data["bond"], data["weight"], data["bonds"])


def _cap_term(r, x):
    """``r^3 - (r^2 - x^2)^(3/2)``: ``3 / (2 pi)`` times the volume of a sphere of radius r within radius x of an axis, on one side of its centre."""
    return r ** 3 - np.maximum(r * r - x * x, 0.0) ** 1.5


def bridge_volume_um3(distance_um, radius_i_um, radius_j_um, bridge_radius_um):
    """Volume of bridges (see the module docstring), analytic.

    ``V = integral over rho in [rho_0, a] of 2 pi rho (d - s_i(rho) - s_j(rho))``,
    ``rho_0`` the radius of the circle where overlapping spheres meet (0 when
    they do not overlap). With ``F(x) = pi x^2 d - 2 pi / 3 (r_i^3 - (r_i^2 -
    x^2)^(3/2) + r_j^3 - (r_j^2 - x^2)^(3/2))``, ``V = F(a) - F(min(rho_0, a))``.

    Parameters
    ----------
    distance_um, radius_i_um, radius_j_um, bridge_radius_um : array_like
        Centre distance ``d``, the two radii and the bridge radius ``a <= min(r_i, r_j)``; broadcast.

    Returns
    -------
    ndarray of float64
        µm³.
    """
    d, ri, rj, a = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in
                                          (distance_um, radius_i_um, radius_j_um, bridge_radius_um)))
    if np.any(a > np.minimum(ri, rj) * (1 + 1e-12)) or np.any(d <= np.abs(ri - rj)):
        raise ValueError("bridge_radius_um: expected a <= min(r_i, r_j) and neither sphere inside the other")

    def f(x):
        return np.pi * x * x * d - 2 * np.pi / 3 * (_cap_term(ri, x) + _cap_term(rj, x))

    axial = (d * d + ri * ri - rj * rj) / (2 * d)
    rho0 = np.where(d < ri + rj, np.sqrt(np.maximum(ri * ri - axial * axial, 0.0)), 0.0)
    return np.maximum(f(a) - f(np.minimum(rho0, a)), 0.0)


def bridge_radius_fraction(distance_um, radius_i_um, radius_j_um, volume_um3):
    """The ``alpha`` whose bridges ``a = alpha * min(r_i, r_j)`` hold ``volume_um3`` together.

    Bisection on :func:`bridge_volume_um3` (increasing in ``alpha``);
    ``MAX_BRIDGE_RADIUS_FRACTION`` when even that is too little, 0 without bonds or volume.
    """
    d, ri, rj = (np.asarray(v, dtype=np.float64) for v in (distance_um, radius_i_um, radius_j_um))
    smaller = np.minimum(ri, rj)

    def total(alpha):
        return float(bridge_volume_um3(d, ri, rj, alpha * smaller).sum())

    if volume_um3 <= 0 or d.size == 0:
        return 0.0
    if total(MAX_BRIDGE_RADIUS_FRACTION) <= volume_um3:
        return MAX_BRIDGE_RADIUS_FRACTION
    lo, hi = 0.0, MAX_BRIDGE_RADIUS_FRACTION
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if total(mid) < volume_um3 else (lo, mid)
    return 0.5 * (lo + hi)


# ---- taichi: the reference classification and the motion -------------------------------------------

@ti.func
def row3(arr: ti.template(), p, first):
    return ti.Vector([arr[p, first], arr[p, first + 1], arr[p, first + 2]], ti.f32)


@ti.func
def _mat3(arr: ti.template(), p):
    return ti.Matrix([[arr[p, 0], arr[p, 1], arr[p, 2]], [arr[p, 3], arr[p, 4], arr[p, 5]],
                      [arr[p, 6], arr[p, 7], arr[p, 8]]], ti.f32)


@ti.func
def cell_of(x, cell_size, cell_dims):
    c = ti.floor(x / cell_size, ti.i32)
    c = ti.min(ti.max(c, 0), cell_dims - 1)
    return (c[0] * cell_dims[1] + c[1]) * cell_dims[2] + c[2]


@ti.func
def _bridge_coordinates(b, X, ref_c: ti.template(), radii: ti.template(), pairs: ti.template(),
                        bgeo: ti.template()):
    """Axial t, radial vector q, rho, s_i, s_j and the gap G = d - s_i - s_j of reference point X for bond b.

    s is evaluated at rho clamped just inside the smaller sphere, so it stays
    finite for points off the bridge (the weight's smooth extension).
    """
    i = pairs[b, 0]
    j = pairs[b, 1]
    n = row3(bgeo, b, 0)
    v = X - row3(ref_c, i, 0)
    t = v.dot(n)
    q = v - t * n
    rho = q.norm()
    ri = radii[i]
    rj = radii[j]
    rc = ti.min(rho, 0.999 * ti.min(ri, rj))
    si = ti.sqrt(ri * ri - rc * rc)
    sj = ti.sqrt(rj * rj - rc * rc)
    return t, q, rho, si, sj, bgeo[b, 3] - si - sj


@ti.func
def _in_bridge(b, X, ref_c: ti.template(), radii: ti.template(), pairs: ti.template(), bgeo: ti.template()):
    t, q, rho, si, sj, gap = _bridge_coordinates(b, X, ref_c, radii, pairs, bgeo)
    inside = 0
    w = 0.0
    if rho < bgeo[b, 4] and gap > 0 and t >= si and t - si <= gap:
        inside = 1
        w = ti.min((t - si) / gap, 1.0)
    return inside, w


@ti.func
def _ref_classify(X, tau, ref_c: ti.template(), radii: ti.template(), kinds: ti.template(),
                  pairs: ti.template(), bgeo: ti.template(), rp_start: ti.template(), rp_items: ti.template(),
                  rb_start: ti.template(), rb_items: ti.template(), cell_dims, cell_size):
    """Class (NONE, SPHERE, BRIDGE, FILM), index, bridge weight and nearest NMC surface distance (< tau, else
    tau) of reference point X (relative to the grid origin, µm)."""
    flat = cell_of(X, cell_size, cell_dims)
    best = -1
    best_d = 0.0
    film = -1
    dmin = tau
    for s in range(rp_start[flat], rp_start[flat + 1]):
        p = rp_items[s]
        depth = radii[p] - (X - row3(ref_c, p, 0)).norm()
        if depth > 0:
            if depth > best_d:
                best_d = depth
                best = p
        elif kinds[p] == _KIND_NMC and -depth < dmin:
            dmin = -depth
            film = p
    cls = NONE
    idx = -1
    w = 0.0
    if best >= 0:
        cls = SPHERE
        idx = best
    else:
        for s in range(rb_start[flat], rb_start[flat + 1]):
            if cls == NONE:
                b = rb_items[s]
                inside, wb = _in_bridge(b, X, ref_c, radii, pairs, bgeo)
                if inside:
                    cls = BRIDGE
                    idx = b
                    w = wb
        if cls == NONE and film >= 0:
            cls = FILM
            idx = film
    return cls, idx, w, dmin


@ti.func
def _pull_rigid(p, x, cur_c: ti.template(), ref_c: ti.template(), back: ti.template()):
    """Reference position of the point of particle p now at x: c0 + B (x - c), B = R0 R^T."""
    return row3(ref_c, p, 0) + _mat3(back, p) @ (x - row3(cur_c, p, 0))


@ti.func
def _push_rigid(p, X, cur_c: ti.template(), ref_c: ti.template(), back: ti.template()):
    return row3(cur_c, p, 0) + _mat3(back, p).transpose() @ (X - row3(ref_c, p, 0))


@ti.func
def _weight(b, X, ref_c: ti.template(), radii: ti.template(), pairs: ti.template(), bgeo: ti.template()):
    """Blend weight w(X) of bond b, clamped to [0, 1] (defined off the bridge too: 0 behind i, 1 behind j)."""
    t, q, rho, si, sj, gap = _bridge_coordinates(b, X, ref_c, radii, pairs, bgeo)
    return ti.min(ti.max((t - si) / ti.max(gap, 1e-6), 0.0), 1.0)


@ti.func
def _pull_bridge(b, x, cur_c: ti.template(), ref_c: ti.template(), back: ti.template(), radii: ti.template(),
                 pairs: ti.template(), bgeo: ti.template()):
    """The reference point X with phi_b(X) = x.

    For a fixed weight w, ``(1 - w) A_i(X) + w A_j(X) = x`` is linear in X:
    ``X(w) = x_i + w M_w^-1 F_j (x_j - x_i)``, with ``x_i, x_j`` the rigid
    pull-backs of x, ``F`` the rotations and ``M_w = (1 - w) F_i + w F_j``.
    The root of the scalar ``g(w) = w(X(w)) - w`` on [0, 1] is the answer;
    ``g(0) >= 0 >= g(1)`` brackets it, and false position (Illinois) keeps the
    bracket while it converges (Newton on X stalls where w is clamped). It
    stops when ``|g|`` or the bracket is below ``_WEIGHT_TOLERANCE``.
    """
    i = pairs[b, 0]
    j = pairs[b, 1]
    xi = _pull_rigid(i, x, cur_c, ref_c, back)
    xj = _pull_rigid(j, x, cur_c, ref_c, back)
    fi = _mat3(back, i).transpose()
    fj = _mat3(back, j).transpose()
    dj = fj @ (xj - xi)
    lo = 0.0
    hi = 1.0
    g_lo = _weight(b, xi, ref_c, radii, pairs, bgeo)
    g_hi = _weight(b, xj, ref_c, radii, pairs, bgeo) - 1.0
    X = xi
    if g_hi >= -_WEIGHT_TOLERANCE:
        X = xj
    if g_lo > _WEIGHT_TOLERANCE and g_hi < -_WEIGHT_TOLERANCE:
        side = 0
        for it in range(_ROOT_ITERATIONS):
            w = hi - g_hi * (hi - lo) / (g_hi - g_lo)
            X = xi + w * (((1.0 - w) * fi + w * fj).inverse() @ dj)
            g = _weight(b, X, ref_c, radii, pairs, bgeo) - w
            if ti.abs(g) < _WEIGHT_TOLERANCE:
                break
            if g > 0:
                lo = w
                g_lo = g
                if side == 1:
                    g_hi *= 0.5
                side = 1
            else:
                hi = w
                g_hi = g
                if side == -1:
                    g_lo *= 0.5
                side = -1
            # g's float32 rounding (positions tens of µm from the origin, over the bridge's length) can
            # exceed the tolerance, and the bracket then closes to float32's grain while |g| stays above
            # it: 2.9 % of the root-finds of 8 fine rows of the paper scenario's step A ran all 60
            # iterations, 30 % of all iterations. With this stop those rows render in 2.65-2.86 s against
            # 3.02-3.08 s; rows with fewer bridges gain less (2.26-2.27 against 2.43-2.45 s)
            if hi - lo < _WEIGHT_TOLERANCE:
                break
    return X


@ti.func
def _clear_of_bridge(b, x, clearance, cur_c: ti.template(), ref_c: ti.template(), back: ti.template(),
                     pairs: ti.template(), bgeo: ti.template(), seg: ti.template()):
    """Whether :func:`_pull_bridge` would put current point x at least ``clearance`` outside bridge b's
    radius, so that x is neither in the bridge nor near its lateral surface, without the root-find.

    Every answer of the root-find is ``X(w) = x_i + w M_w^-1 F_j (x_j - x_i) = x_j + (1 - w) M_w^-1
    F_i (x_i - x_j)`` for some w in [0, 1], and the smallest singular value of ``M_w = (1 - w) F_i +
    w F_j`` is at least ``cos(theta / 2)``, theta the angle between the two rotations. So with
    ``R = |x_j - x_i| / cos(theta / 2)`` (``seg[b, 13]`` is the factor), X lies within ``w R`` of
    x_i and ``(1 - w) R`` of x_j, and its distance from the axis is at least the smallest over w of
    ``max(rho_i - w R, rho_j - (1 - w) R)``. The slack (1 nm and 0.1 %) covers float32 rounding of
    the pull-backs and of the root-find.
    """
    i = pairs[b, 0]
    xi = _pull_rigid(i, x, cur_c, ref_c, back)
    xj = _pull_rigid(pairs[b, 1], x, cur_c, ref_c, back)
    n = row3(bgeo, b, 0)
    vi = xi - row3(ref_c, i, 0)
    vj = xj - row3(ref_c, i, 0)
    rho_i = (vi - vi.dot(n) * n).norm()
    rho_j = (vj - vj.dot(n) * n).norm()
    reach = (xj - xi).norm() * seg[b, 13] * 1.001 + 1e-3
    least = ti.max(0.5 * (rho_i + rho_j - reach), ti.max(rho_i, rho_j) - reach)
    return least >= bgeo[b, 4] + clearance


@ti.func
def segment_distance(y, p0, p1):
    e = p1 - p0
    l2 = e.dot(e)
    s = 0.0
    if l2 > 0:
        s = ti.min(ti.max((y - p0).dot(e) / l2, 0.0), 1.0)
    return (y - p0 - s * e).norm()


@ti.func
def capsule_gap(y, b, seg: ti.template()):
    """Distance from y to bridge b's bounding capsules (:func:`motion_tables`) less their radius."""
    d = ti.min(segment_distance(y, row3(seg, b, 0), row3(seg, b, 3)),
               segment_distance(y, row3(seg, b, 7), row3(seg, b, 10)))
    return d - seg[b, 6]


@ti.func
def _bridge_near(b, X, broken, margin, ref_c: ti.template(), radii: ti.template(), pairs: ti.template(),
                 bgeo: ti.template()):
    """Whether reference point X lies within margin of bridge b's lateral surface (or of its crack)."""
    t, q, rho, si, sj, gap = _bridge_coordinates(b, X, ref_c, radii, pairs, bgeo)
    along = t >= si - margin and t - si <= gap + margin
    near = along and ti.abs(rho - bgeo[b, 4]) < margin
    if broken and along and rho < bgeo[b, 4] + margin and ti.abs(t - si - 0.5 * gap) < margin:
        near = True
    return near


@ti.func
def claim(y, tau, margin, cand_b, n_b, cand_p, n_p, cur_c: ti.template(), ref_c: ti.template(),
          back: ti.template(), moved: ti.template(), radii: ti.template(), kinds: ti.template(),
          pairs: ti.template(), bgeo: ti.template(), intact: ti.template(), seg: ti.template(),
          rp_start: ti.template(), rp_items: ti.template(), rb_start: ti.template(), rb_items: ti.template(),
          cell_dims, cell_size):
    """The binder structure holding current point y (outside every particle), if any.

    Returns (kind NONE / BRIDGE / FILM, bond, owner particle, weight, reference point X, near): near
    (only when margin > 0) says a binder surface lies within margin of y.
    """
    kind = NONE
    bond = -1
    owner = -1
    w = 0.0
    X = y
    near = False
    for a in range(n_b):
        b = cand_b[a]
        if (kind == NONE or margin > 0) and capsule_gap(y, b, seg) < margin:
            i = pairs[b, 0]
            j = pairs[b, 1]
            if intact[b]:
                xb = y
                # most points in a bridge's capsule are beside the bridge: no root-find for those
                clear = False
                if moved[i] or moved[j]:
                    clear = _clear_of_bridge(b, y, 2.0 * margin, cur_c, ref_c, back, pairs, bgeo, seg)
                    if not clear:
                        xb = _pull_bridge(b, y, cur_c, ref_c, back, radii, pairs, bgeo)
                if not clear:
                    if margin > 0 and _bridge_near(b, xb, False, 2.0 * margin, ref_c, radii, pairs, bgeo):
                        near = True
                    inside, wb = _in_bridge(b, xb, ref_c, radii, pairs, bgeo)
                    if kind == NONE and inside:
                        cls, idx, wb, dmin = _ref_classify(xb, tau, ref_c, radii, kinds, pairs, bgeo, rp_start,
                                                           rp_items, rb_start, rb_items, cell_dims, cell_size)
                        if cls == BRIDGE and idx == b:
                            kind = BRIDGE
                            bond = b
                            owner = i if wb < 0.5 else j
                            w = wb
                            X = xb
            else:
                for e in ti.static(range(2)):
                    p = pairs[b, e]
                    xp = y
                    if moved[p]:
                        xp = _pull_rigid(p, y, cur_c, ref_c, back)
                    if margin > 0 and _bridge_near(b, xp, True, 2.0 * margin, ref_c, radii, pairs, bgeo):
                        near = True
                    inside, wb = _in_bridge(b, xp, ref_c, radii, pairs, bgeo)
                    if kind == NONE and inside:
                        cls, idx, wb, dmin = _ref_classify(xp, tau, ref_c, radii, kinds, pairs, bgeo, rp_start,
                                                           rp_items, rb_start, rb_items, cell_dims, cell_size)
                        on_this_half = wb < 0.5
                        if ti.static(e == 1):
                            on_this_half = wb >= 0.5
                        if cls == BRIDGE and idx == b and on_this_half:
                            kind = BRIDGE
                            bond = b
                            owner = p
                            w = wb
                            X = xp
    for a in range(n_p):
        p = cand_p[a]
        if kind == NONE and kinds[p] == _KIND_NMC:
            dist = (y - row3(cur_c, p, 0)).norm() - radii[p]
            if dist >= 0 and dist < tau:
                xp = y
                if moved[p]:
                    xp = _pull_rigid(p, y, cur_c, ref_c, back)
                cls, idx, wb, dmin = _ref_classify(xp, tau, ref_c, radii, kinds, pairs, bgeo, rp_start, rp_items,
                                                   rb_start, rb_items, cell_dims, cell_size)
                if cls == FILM and idx == p:
                    kind = FILM
                    owner = p
                    X = xp
    return kind, bond, owner, w, X, near


@ti.func
def pull_through(kind, bond, owner, x, cur_c: ti.template(), ref_c: ti.template(), back: ti.template(),
                 moved: ti.template(), radii: ti.template(), pairs: ti.template(), bgeo: ti.template(),
                 intact: ti.template()):
    """Reference point of current point x through one structure (for the texture of a mixed voxel)."""
    X = x
    if kind == BRIDGE and intact[bond] and (moved[pairs[bond, 0]] or moved[pairs[bond, 1]]):
        X = _pull_bridge(bond, x, cur_c, ref_c, back, radii, pairs, bgeo)
    elif kind != NONE and moved[owner]:
        X = _pull_rigid(owner, x, cur_c, ref_c, back)
    return X


# ---- tables the kernels read ------------------------------------------------------------------------

def dummy_rows(a, width, dtype):
    """Taichi ndarrays cannot be empty: one unused row stands in."""
    return np.ascontiguousarray(a, dtype=dtype) if len(a) else np.zeros((1, width) if width else 1, dtype)


def bridge_frames(binder):
    """Per bond: unit axis n (3), centre distance d, bridge radius a, axial range ``[t_lo, t_hi]``,
    bounding centre m (3) and radius e.

    The bridge lies within ``a`` of the axis between ``t_lo = s_i(a)`` and ``t_hi = d - s_j(a)``, so
    within ``e`` of ``m``, the middle of that range.
    """
    pairs = binder.bonds
    ci, cj = binder.positions_um[pairs[:, 0]], binder.positions_um[pairs[:, 1]]
    ri, rj = binder.radii_um[pairs[:, 0]], binder.radii_um[pairs[:, 1]]
    axis = cj - ci
    d = np.linalg.norm(axis, axis=1)
    n = axis / np.maximum(d, 1e-12)[:, None]
    a = binder.bridge_radius_um
    t_lo = np.sqrt(np.maximum(ri * ri - a * a, 0.0))
    t_hi = d - np.sqrt(np.maximum(rj * rj - a * a, 0.0))
    middle = ci + n * (0.5 * (t_lo + t_hi))[:, None]
    e = np.sqrt((0.5 * (t_hi - t_lo)) ** 2 + a * a)
    return n, d, a, t_lo, t_hi, middle, e


def reference_tables(binder, origin_um, cell_dims, cell_size_um):
    """The reference arrays and bins that ``_ref_classify`` reads (f32 relative to ``origin_um``)."""
    origin = np.asarray(origin_um, dtype=np.float64)
    n, d, a, t_lo, t_hi, middle, e = bridge_frames(binder)
    has = a > 0
    reach = binder.radii_um + binder.film_thickness_um
    rp_start, rp_items = bin_particles(binder.positions_um, reach, origin, cell_dims, cell_size_um)
    # only bonds with a bridge are binned; their items are bond rows
    with_bridge = np.flatnonzero(has)
    rb_start, rb_items = bin_particles(middle[has], e[has], origin, cell_dims, cell_size_um)
    rb_items = with_bridge[rb_items].astype(np.int32)
    return {
        "ref_c": dummy_rows(binder.positions_um - origin, 3, np.float32),
        "radii": dummy_rows(binder.radii_um, 0, np.float32),
        "kinds": dummy_rows(binder.kinds, 0, np.int32),
        "pairs": dummy_rows(binder.bonds, 2, np.int32),
        "bgeo": dummy_rows(np.column_stack([n, d, a]) if len(a) else a, 5, np.float32),
        "rp_start": rp_start, "rp_items": dummy_rows(rp_items, 0, np.int32),
        "rb_start": rb_start, "rb_items": dummy_rows(rb_items, 0, np.int32),
    }


def motion_tables(binder, positions_um, quaternions, bonds_intact, origin_um):
    """The current step's arrays for the phantom kernel, and the bounding boxes of the bridges.

    Returns
    -------
    dict of ndarray
        ``cur_c`` (N, 3) centres relative to the origin; ``back`` (N, 9) row-major ``R_ref R_cur^T``
        (pulls a current point of the particle back to the reference); ``moved`` (N,) whether the pose
        differs from the reference at all (else the pull-back is skipped: exact identity);
        ``intact`` (M,); ``seg`` (M, 14): ``P0, P1, R, Q0, Q1``, two capsules ``[P0, P1]`` and
        ``[Q0, Q1]`` of radius ``R`` that hold the bridge now (the same one twice while it holds), and
        ``1 / cos(theta / 2)``, theta the angle between the two particles' rotations since the
        reference (:func:`_clear_of_bridge`; 1e6 from theta = 175.4 deg on, where it stops helping).
    boxes : (B, 3) centres, (B,) reaches and (B,) bond rows of cubes that hold the bridges now, world
        µm (for the binning): one per intact bridge, two per broken one.

    Notes
    -----
    A bridge point X lies within ``a`` of the reference axis segment between ``t = s_i(a)`` and
    ``t = d - s_j(a)``, so ``A_i(X)`` lies within ``a`` of ``[P0, P1]``, that segment moved with ``i``.
    While the bridge holds, its image ``phi(X)`` is within ``|A_j(X) - A_i(X)| <= |A_j(m) - A_i(m)| +
    ||F_j - F_i||_F e`` more, ``m`` and ``e`` the bridge's bounding centre and radius, ``F`` the
    rotations. A broken bridge's halves move rigidly, each with its particle: within ``a`` of
    ``[P0, P1]`` and of ``[Q0, Q1]``, the segment moved with ``j``. Bounding the halves apart keeps
    the capsule of two particles that drifted far apart (a spilled one) from covering the space
    between them.
    """
    from synthcal.rotations import rotation_matrices_zyx

    origin = np.asarray(origin_um, dtype=np.float64)
    pos = np.asarray(positions_um, dtype=np.float64)
    quats = np.asarray(quaternions, dtype=np.float64)
    intact = np.asarray(bonds_intact, dtype=bool)
    r_ref = rotation_matrices_zyx(binder.quaternions) if len(pos) else np.zeros((0, 3, 3))
    r_cur = rotation_matrices_zyx(quats) if len(pos) else np.zeros((0, 3, 3))
    back = r_ref @ np.swapaxes(r_cur, 1, 2)
    fwd = np.swapaxes(back, 1, 2)
    moved = np.any(pos != binder.positions_um, axis=1) | np.any(quats != binder.quaternions, axis=1)
    n, d, a, t_lo, t_hi, middle, e = bridge_frames(binder)
    i, j = binder.bonds[:, 0], binder.bonds[:, 1]

    def push(p, x):
        return pos[p] + np.einsum("mab,mb->ma", fwd[p], x - binder.positions_um[p])

    lo, hi = binder.positions_um[i] + n * t_lo[:, None], binder.positions_um[i] + n * t_hi[:, None]
    p0, p1, j0, j1 = push(i, lo), push(i, hi), push(j, lo), push(j, hi)
    q0, q1 = np.where(intact[:, None], p0, j0), np.where(intact[:, None], p1, j1)
    spread = np.linalg.norm(push(j, middle) - push(i, middle), axis=1) + \
        np.linalg.norm(fwd[j] - fwd[i], axis=(1, 2)) * e
    radius = np.where(intact, a + spread, a)
    # cos(theta / 2) of the relative rotation F_i^T F_j from its trace, 1 + 2 cos(theta)
    cos_half = np.sqrt(np.clip(1.0 + np.einsum("mab,mab->m", fwd[i], fwd[j]), 0.0, 4.0)) / 2.0
    stretch = np.where(cos_half > 0.04, 1.0 / np.maximum(cos_half, 0.04), 1e6)
    seg = np.column_stack([p0 - origin, p1 - origin, radius, q0 - origin, q1 - origin, stretch]) if len(a) \
        else np.zeros((0, 14))
    tables = {"cur_c": dummy_rows(pos - origin, 3, np.float32),
              "back": dummy_rows(back.reshape(-1, 9), 9, np.float32),
              "moved": dummy_rows(moved.astype(np.int32), 0, np.int32),
              "intact": dummy_rows(intact.astype(np.int32), 0, np.int32),
              "seg": dummy_rows(seg, 14, np.float32)}
    # a held bridge's image (1 - w) A_i(X) + w A_j(X) lies within a of the hull of [P0, P1] and
    # [J0, J1] (the segment moved with j): a box much tighter than the kernel's capsule when the two
    # particles have turned apart; a broken one's halves get a box each
    broken = np.flatnonzero(~intact)
    held = np.where(intact[:, None, None], np.stack([p0, p1, j0, j1], axis=1), np.stack([p0, p1] * 2, axis=1))
    ends = np.concatenate([held, np.stack([j0, j1] * 2, axis=1)[broken]])
    rows = np.concatenate([np.arange(len(a)), broken])
    box_lo, box_hi = ends.min(axis=1) - a[rows, None], ends.max(axis=1) + a[rows, None]
    return tables, (0.5 * (box_lo + box_hi), 0.5 * (box_hi - box_lo).max(axis=1), rows)


# ---- the design: bridge radius and film thickness from the recipe -----------------------------------

@ti.kernel
def _census_slab(code: ti.types.ndarray(dtype=ti.u8, ndim=3), dist: ti.types.ndarray(dtype=ti.f32, ndim=3),
                 ref_c: ti.types.ndarray(dtype=ti.f32, ndim=2), radii: ti.types.ndarray(dtype=ti.f32, ndim=1),
                 kinds: ti.types.ndarray(dtype=ti.i32, ndim=1), pairs: ti.types.ndarray(dtype=ti.i32, ndim=2),
                 bgeo: ti.types.ndarray(dtype=ti.f32, ndim=2), rp_start: ti.types.ndarray(dtype=ti.i32, ndim=1),
                 rp_items: ti.types.ndarray(dtype=ti.i32, ndim=1), rb_start: ti.types.ndarray(dtype=ti.i32, ndim=1),
                 rb_items: ti.types.ndarray(dtype=ti.i32, ndim=1), cell_dims: ti.types.vector(3, ti.i32),
                 cell_size: ti.f32, h: ti.f32, k0: ti.i32, head_z: ti.f32, foil_z: ti.f32, tau_max: ti.f32):
    for k, j, i in ti.ndrange(code.shape[0], code.shape[1], code.shape[2]):
        x = h * ti.Vector([k + k0, j, i], ti.f32)
        c = _C_OUT
        dd = tau_max
        if x[0] < head_z and x[0] >= foil_z:
            cls, idx, w, dmin = _ref_classify(x, tau_max, ref_c, radii, kinds, pairs, bgeo, rp_start, rp_items,
                                              rb_start, rb_items, cell_dims, cell_size)
            c = _C_PORE
            if cls == SPHERE:
                c = _C_NMC if kinds[idx] == _KIND_NMC else _C_OTHER
            elif cls == BRIDGE:
                c = _C_BRIDGE
            elif cls == FILM:
                c = _C_FILM
                dd = dmin
        code[k, j, i] = ti.u8(c)
        dist[k, j, i] = dd


def _census(binder, tau_max_um, voxel_size_um, shape, origin, head_z, foil_z):
    """Counts of the reference lattice by class, and the film distances of the points within tau_max."""
    extent = voxel_size_um * (np.array(shape) - 1)
    reach = binder.radii_um + tau_max_um
    cell_size = choose_cell_size_um(reach, extent, float(np.prod(shape)), voxel_size_um)
    cell_dims = (np.floor(extent / cell_size) + 1).astype(np.int64)
    tables = reference_tables(Binder(binder.positions_um, binder.quaternions, binder.radii_um, binder.kinds,
                                     binder.bonds, binder.bridge_radius_um, tau_max_um),
                              origin, cell_dims, cell_size)
    counts = np.zeros(6, dtype=np.int64)
    distances = []
    slab = max(1, -(-shape[0] // 16))
    for k0 in range(0, shape[0], slab):
        k1 = min(shape[0], k0 + slab)
        code = np.empty((k1 - k0,) + tuple(shape[1:]), dtype=np.uint8)
        dist = np.empty(code.shape, dtype=np.float32)
        _census_slab(code, dist, *(tables[name] for name in ("ref_c", "radii", "kinds", "pairs", "bgeo", "rp_start",
                                                              "rp_items", "rb_start", "rb_items")),
                     ti.Vector([int(v) for v in cell_dims]), float(cell_size), float(voxel_size_um), k0,
                     float(head_z - origin[0]), float(foil_z - origin[0]), float(tau_max_um))
        counts += np.bincount(code.reshape(-1), minlength=6)
        distances.append(dist[code == _C_FILM])
    return counts, np.concatenate(distances)


@dataclass(frozen=True)
class BinderCensus:
    """How the binder of :func:`design_binder` fills the reference phantom (voxel counts at voxel centres).

    Attributes
    ----------
    nmc_voxels, cbd_particle_voxels, bridge_voxels, film_voxels : int
    target_cbd_voxels : int
        ``volume_ratio * nmc_voxels``: what the recipe asks for.
    bridge_radius_fraction : float
        ``alpha`` of the bridges.
    """

    nmc_voxels: int
    cbd_particle_voxels: int
    bridge_voxels: int
    film_voxels: int
    target_cbd_voxels: int
    bridge_radius_fraction: float


def design_binder(positions_um, radii_um, kinds, quaternions, bonds, bonds_intact, *, volume_ratio, bridge_fraction,
                  voxel_size_um, shape, origin_um, head_z_um=None, foil_top_z_um=0.0, arch="cpu"):
    """The binder of a sample: bridge radii and film thickness from the recipe (module docstring, "Volume").

    Parameters
    ----------
    positions_um, radii_um, kinds, quaternions : array_like
        Particles at the reference step (as :func:`synthcal.phantom.voxelise`).
    bonds : (M, 2) array_like of int
        The DEM's bonds.
    bonds_intact : (M,) array_like of bool
        Whether each bond holds at the reference; broken ones get no bridge.
    volume_ratio : float
        CBD volume per NMC volume (:func:`synthcal.materials.binder_volume_per_nmc_volume`).
    bridge_fraction : float
        Share of the CBD volume in bridges, in [0, 1].
    voxel_size_um, shape, origin_um, head_z_um, foil_top_z_um
        The reference phantom's grid and rigid bodies (as :func:`synthcal.phantom.voxelise`); the
        budget is met on its voxel centres.
    arch : {"cpu", "gpu"}

    Returns
    -------
    binder : Binder
    census : BinderCensus
    """
    pos = np.asarray(positions_um, dtype=np.float64)
    radii = np.asarray(radii_um, dtype=np.float64)
    kinds_arr = np.asarray(kinds)
    pairs = np.asarray(bonds, dtype=np.int64).reshape(-1, 2) if np.size(bonds) else np.zeros((0, 2), np.int64)
    intact = np.asarray(bonds_intact, dtype=bool).reshape(-1)
    if intact.shape != (len(pairs),):
        raise ValueError(f"bonds_intact: expected ({len(pairs)},) flags, one per bond, got {intact.shape}")
    if not (np.isfinite(volume_ratio) and volume_ratio >= 0):
        raise ValueError(f"volume_ratio: expected >= 0, got {volume_ratio}")
    if not 0 <= bridge_fraction <= 1:
        raise ValueError(f"bridge_fraction: expected in [0, 1], got {bridge_fraction}")
    if not voxel_size_um > 0:
        raise ValueError(f"voxel_size_um: expected > 0, got {voxel_size_um}")
    shape = tuple(int(s) for s in shape)
    origin = np.asarray(origin_um, dtype=np.float64)
    head_z = np.inf if head_z_um is None else float(head_z_um)
    foil_z = -np.inf if foil_top_z_um is None else float(foil_top_z_um)
    # validates the particles and bonds
    bare = Binder(pos, quaternions, radii, kinds_arr, pairs, np.zeros(len(pairs)), 0.0)
    nmc = bare.kinds == _KIND_NMC
    sphere_um3 = 4.0 / 3.0 * np.pi * radii ** 3
    budget_um3 = volume_ratio * sphere_um3[nmc].sum() - sphere_um3[~nmc].sum()
    i, j = pairs[:, 0], pairs[:, 1]
    d = np.linalg.norm(pos[j] - pos[i], axis=1) if len(pairs) else np.zeros(0)
    # a bridge needs two spheres side by side (neither inside the other)
    alive = intact & (d > np.abs(radii[i] - radii[j]) if len(pairs) else intact)
    alpha = bridge_radius_fraction(d[alive], radii[i][alive], radii[j][alive],
                                   bridge_fraction * max(budget_um3, 0.0))
    smaller = np.minimum(radii[i], radii[j]) if len(pairs) else np.zeros(0)
    binder = Binder(pos, quaternions, radii, kinds_arr, pairs, np.where(alive, alpha * smaller, 0.0), 0.0)

    ensure_taichi(arch)
    area_um2 = float(np.sum(4 * np.pi * radii[nmc] ** 2))
    # a first guess of the film's reach: twice the thickness of a film without overlaps
    tau_max = 2.0 * max(budget_um3, 0.0) * (1 - bridge_fraction) / max(area_um2, 1e-12) + 2 * voxel_size_um
    while True:
        counts, distances = _census(binder, tau_max, voxel_size_um, shape, origin, head_z, foil_z)
        target = int(round(volume_ratio * counts[_C_NMC]))
        missing = target - int(counts[_C_OTHER] + counts[_C_BRIDGE])
        if missing <= 0 or len(distances) >= missing or not nmc.any():
            break
        if tau_max > 4 * radii.max():
            raise ValueError(f"volume_ratio: {volume_ratio} asks for more binder than films up to "
                             f"{tau_max:.3g} um thick can hold around these particles")
        tau_max *= 2.0
    tau = 0.0
    film = 0
    if missing > 0 and len(distances):
        film = min(missing, len(distances))
        nth = np.partition(distances, film - 1)[film - 1]
        # films hold the points strictly closer than tau; the next float above the film-th distance
        tau = float(np.nextafter(np.float32(nth), np.float32(np.inf)))
        film = int(np.sum(distances < np.float32(tau)))
    census = BinderCensus(nmc_voxels=int(counts[_C_NMC]), cbd_particle_voxels=int(counts[_C_OTHER]),
                          bridge_voxels=int(counts[_C_BRIDGE]), film_voxels=film, target_cbd_voxels=target,
                          bridge_radius_fraction=float(alpha))
    return Binder(pos, quaternions, radii, kinds_arr, pairs, binder.bridge_radius_um, tau), census


# ---- points: the reference classification for the truth --------------------------------------------

@ti.kernel
def _classify_points(points: ti.types.ndarray(dtype=ti.f32, ndim=2), cls_out: ti.types.ndarray(dtype=ti.i32, ndim=1),
                     idx_out: ti.types.ndarray(dtype=ti.i32, ndim=1), w_out: ti.types.ndarray(dtype=ti.f32, ndim=1),
                     ref_c: ti.types.ndarray(dtype=ti.f32, ndim=2), radii: ti.types.ndarray(dtype=ti.f32, ndim=1),
                     kinds: ti.types.ndarray(dtype=ti.i32, ndim=1), pairs: ti.types.ndarray(dtype=ti.i32, ndim=2),
                     bgeo: ti.types.ndarray(dtype=ti.f32, ndim=2), rp_start: ti.types.ndarray(dtype=ti.i32, ndim=1),
                     rp_items: ti.types.ndarray(dtype=ti.i32, ndim=1),
                     rb_start: ti.types.ndarray(dtype=ti.i32, ndim=1),
                     rb_items: ti.types.ndarray(dtype=ti.i32, ndim=1), cell_dims: ti.types.vector(3, ti.i32),
                     cell_size: ti.f32, tau: ti.f32):
    for m in range(points.shape[0]):
        X = ti.Vector([points[m, 0], points[m, 1], points[m, 2]], ti.f32)
        cls, idx, w, dmin = _ref_classify(X, tau, ref_c, radii, kinds, pairs, bgeo, rp_start, rp_items, rb_start,
                                          rb_items, cell_dims, cell_size)
        cls_out[m] = cls
        idx_out[m] = idx
        w_out[m] = w


def classify_points_um(binder, points_um, arch="cpu"):
    """What each reference point is in the binder's sample (module docstring, "Shapes").

    Parameters
    ----------
    binder : Binder
    points_um : (P, 3) array_like
        Points of the reference configuration, world z-y-x, µm.
    arch : {"cpu", "gpu"}

    Returns
    -------
    kind : (P,) int32
        ``NONE`` (pore), ``SPHERE``, ``BRIDGE`` or ``FILM``.
    index : (P,) int32
        The particle (sphere, film) or the bond (bridge); -1 for pore.
    weight : (P,) float32
        ``w`` in a bridge, else 0.
    """
    if not isinstance(binder, Binder):
        raise ValueError(f"binder: expected a Binder, got {type(binder).__name__}")
    points = np.asarray(points_um, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points_um: expected shape (P, 3), got {points.shape}")
    out = (np.full(len(points), NONE, np.int32), np.full(len(points), -1, np.int32), np.zeros(len(points), np.float32))
    if len(points) == 0 or len(binder.radii_um) == 0:
        return out
    reach = binder.radii_um + binder.film_thickness_um
    lo = (binder.positions_um - reach[:, None]).min(axis=0)
    extent = (binder.positions_um + reach[:, None]).max(axis=0) - lo
    cell_size = choose_cell_size_um(reach, extent, len(points), float(reach.min()) / 2)
    cell_dims = (np.floor(extent / cell_size) + 1).astype(np.int64)
    tables = reference_tables(binder, lo, cell_dims, cell_size)
    ensure_taichi(arch)
    _classify_points(np.ascontiguousarray(points - lo, dtype=np.float32), *out,
                     *(tables[name] for name in ("ref_c", "radii", "kinds", "pairs", "bgeo", "rp_start", "rp_items",
                                                 "rb_start", "rb_items")),
                     ti.Vector([int(v) for v in cell_dims]), float(cell_size), float(binder.film_thickness_um))
    return out
