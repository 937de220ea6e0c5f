"""NMC secondary particles that crack: fragment replacement.

Strength. A secondary particle breaks when the largest elastic normal
force of its contacts (other particles, foil, head: ``Simulation.loads_n``)
exceeds its fracture force ``F = sigma pi d^2 / 2.8``, the tensile
strength ``sigma`` of a sphere crushed between plates (Hiramatsu & Oka
1966, Int. J. Rock Mech. Min. Sci. 3, 89), ``d`` its volume-equivalent
diameter. Strengths scatter from particle to particle after Weibull
statistics with the size effect of a volume-flaw population:

    P(sigma) = 1 - exp(-(d / d0)^3 (sigma / sigma0)^m),

so each particle draws ``sigma = sigma0 (d0 / d)^(3/m) (-ln(1 - U))^(1/m)``
(U uniform). Single-particle compression of NMC secondary particles
(flat-punch tests, e.g. Xu, Sun, de Vasconcelos & Zhao 2017, J.
Electrochem. Soc. 164, A3333) gives fracture forces of a few tens of mN
for particles of ~10 µm and a wide scatter; the defaults
(``[fracture]``: sigma0 = 190 MPa at d0 = 10 µm, i.e. 21 mN, m = 4) are of
that order. The contact modulus stays ``[particles] nmc_youngs_modulus_pa``.

Fragments. A particle that breaks is replaced by ``[fracture]
n_fragments`` rigid pieces that together fill it: the Voronoi cells of
seeds drawn inside it (:func:`synthcal.pieces.split_piece`). The particle
count grows by a few per event, not by hundreds. Each piece is, for
contacts, the largest sphere inscribed in it, at its centre (an
approximation: the sphere holds 20-40 % of the piece's volume, so the
pieces are looser than the real shapes and may later rearrange into the
gaps; the rendered image keeps the exact piece). A piece carries its share
of the parent's mass (the shares add up to one: mass is conserved to
rounding) and, like every sphere here, the moment of inertia ``0.4 m r^2``
of its contact sphere. Pieces start with the parent's rigid motion
(velocity, spin, orientation) and break again above ``min_diameter_um``
while their planes fit in :data:`synthcal.pieces.MAX_PLANES`.

Indices. Fragment 0 keeps the parent's index and the rest are appended,
so the particles of an earlier load step keep their indices; each
particle's piece (root particle, planes, offset) is in
:class:`synthcal.pieces.Pieces`, what the phantom and the truth read.
"""

import math
from dataclasses import dataclass

import numpy as np

from synthcal.pieces import MAX_PLANES, Pieces, split_piece
from synthcal.rotations import rotation_matrices_zyx

# crushing a sphere between plates: sigma = 2.8 F / (pi d^2) (Hiramatsu & Oka 1966)
_CRUSH = 2.8


@dataclass(frozen=True)
class FractureModel:
    """Strength and fragmentation of NMC secondary particles (see the module docstring).

    Parameters
    ----------
    strength_pa : float
        Weibull characteristic strength ``sigma0`` at ``reference_diameter_um`` (Pa).
    reference_diameter_um : float
        ``d0`` (µm).
    weibull_modulus : float
        ``m``.
    n_fragments : int
        Pieces a particle breaks into (>= 2).
    min_diameter_um : float
        Pieces of smaller volume-equivalent diameter do not break again (µm).
    """

    strength_pa: float
    reference_diameter_um: float
    weibull_modulus: float
    n_fragments: int
    min_diameter_um: float

    def __post_init__(self):
        for name in ("strength_pa", "reference_diameter_um", "weibull_modulus", "min_diameter_um"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)}")
        if int(self.n_fragments) != self.n_fragments or not 2 <= self.n_fragments <= MAX_PLANES + 1:
            raise ValueError(f"n_fragments: expected an integer in [2, {MAX_PLANES + 1}], got {self.n_fragments}")

    def characteristic_force_n(self, diameter_um):
        """Fracture force (N) at which 63 % of particles of this diameter (µm) have broken."""
        d = np.asarray(diameter_um, np.float64)
        sigma = self.strength_pa * (self.reference_diameter_um / d) ** (3.0 / self.weibull_modulus)
        return sigma * math.pi * (d * 1e-6) ** 2 / _CRUSH

    def draw_forces_n(self, diameter_um, rng):
        """Fracture forces (N) of particles of these diameters (µm), Weibull-distributed."""
        d = np.asarray(diameter_um, np.float64)
        return self.characteristic_force_n(d) * (-np.log1p(-rng.random(d.shape))) ** (1.0 / self.weibull_modulus)


def fracture_model(fracture):
    """The model of a scenario's ``[fracture]`` section."""
    f = fracture
    return FractureModel(strength_pa=f.strength_pa, reference_diameter_um=f.reference_diameter_um,
                         weibull_modulus=f.weibull_modulus, n_fragments=f.n_fragments,
                         min_diameter_um=f.min_diameter_um)


class Breaker:
    """Breaks a simulation's particles at their strength; keeps their pieces.

    Attach with :meth:`attach`; the simulation calls it within a step of a
    particle passing its strength (``Simulation.set_strengths``).

    Attributes
    ----------
    pieces : synthcal.pieces.Pieces
        Piece of every particle (public order).
    volumes_um3 : (N,) float64
        Volume of every particle's piece (µm^3).
    n_fractured : int
        Fracture events so far.
    event_times_s : list of float
        Simulated time of each fracture event (s).
    """

    def __init__(self, model, radii_um, rng, breakable=None):
        r = np.asarray(radii_um, np.float64)
        self.model, self.rng = model, rng
        self.pieces = Pieces.whole(r)
        self.volumes_um3 = 4.0 / 3.0 * math.pi * r ** 3
        self.breakable = np.ones(len(r), bool) if breakable is None else np.asarray(breakable, bool).copy()
        self.strengths_n = self._draw(np.arange(len(r)))
        self.n_fractured = 0
        self.event_times_s = []

    def attach(self, sim):
        """Give ``sim`` (whose particles this breaker's are) the strengths and this handler."""
        if sim.n != len(self.strengths_n):
            raise ValueError(f"sim: expected {len(self.strengths_n)} particles, got {sim.n}")
        sim.set_strengths(self.strengths_n, self)

    def load_ratio_max(self, sim):
        """Largest contact force over fracture force of any breakable particle of ``sim`` now (0 if none)."""
        return float(np.max(sim.loads_n / self.strengths_n, initial=0.0))

    def _draw(self, rows):
        """Fracture forces of particles ``rows``; inf where they cannot break."""
        d = np.cbrt(6.0 / math.pi * self.volumes_um3[rows])
        room = self.pieces.n_planes[rows] + self.model.n_fragments - 1 <= MAX_PLANES
        can = self.breakable[rows] & room & (d >= self.model.min_diameter_um)
        return np.where(can, self.model.draw_forces_n(d, self.rng), np.inf)

    def __call__(self, sim, indices):
        """Break particles ``indices`` of ``sim`` (lowest index first)."""
        for i in sorted(int(i) for i in indices):
            self._break(sim, i)
        sim.set_strengths(self.strengths_n, self)

    def _break(self, sim, i):
        p = self.pieces
        shapes, shares, centres_b, radii = split_piece(p.root_radii_um[i], p.planes[i], self.model.n_fragments,
                                                       self.rng)
        rot = rotation_matrices_zyx(sim.orientations[i:i + 1])[0]
        root_centre = sim.positions_um[i] + rot @ p.root_offsets_um[i]
        frag = sim.split(i, root_centre + centres_b @ rot.T, radii, sim.masses_kg[i] * shares)
        k, n_new = len(frag), sim.n
        grow = lambda a, fill: np.concatenate([a, np.repeat(fill[None], n_new - len(a), axis=0)])
        root_ids, offsets = grow(p.root_ids, p.root_ids[i]), grow(p.root_offsets_um, p.root_offsets_um[i])
        root_radii, planes = grow(p.root_radii_um, p.root_radii_um[i]), grow(p.planes, p.planes[i])
        volumes, breakable = grow(self.volumes_um3, self.volumes_um3[i]), grow(self.breakable, self.breakable[i])
        offsets[frag], planes[frag], volumes[frag] = -centres_b, shapes, self.volumes_um3[i] * shares
        self.pieces = Pieces(root_ids, offsets, root_radii, planes)
        self.volumes_um3, self.breakable = volumes, breakable
        self.strengths_n = np.concatenate([self.strengths_n, np.zeros(k - 1)])
        self.strengths_n[frag] = self._draw(frag)
        self.n_fractured += 1
        self.event_times_s.append(sim.n_steps * sim.dt_s)
