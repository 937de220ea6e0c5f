"""Voxel phantom of one load step: phase labels, attenuation and particle owner.

Grid
----
A phantom has ``shape = (nz, ny, nx)`` voxels of edge ``voxel_size_um``.
Voxel ``(k, j, i)`` is the cube of that edge centred at
``origin_um + voxel_size_um * (k, j, i)`` (world z-y-x, µm): ``origin_um`` is the
centre of voxel (0, 0, 0), not its corner.

Phases
------
Each voxel's label and owner are those of its centre point. A point at
``z >= head_z_um`` is head, one at ``z < foil_top_z_um`` is foil/pin (these
rigid bodies win over any small DEM overlap of a particle into them);
otherwise it belongs to the particle whose surface it is deepest inside
(largest ``radius - distance``; equal depths go to the lower index), else to
the carbon binder when a :class:`synthcal.binder.Binder` is given (label
CBD: bridges at the bonds and films on the NMC, carried from the reference
configuration by the truth motion, see :mod:`synthcal.binder`), or it is
pore. Sub-voxel internal pores of NMC particles are part of the texture: they
lower the attenuation but keep the label NMC and the owner particle, so the
truth displacement is defined there.

Attenuation
-----------
``mu_per_um`` is the volume average over the voxel cube: voxels that a
particle surface, a film's outer surface, a bridge's side or crack, the head
face or the foil face may cross (within half a voxel diagonal) are
classified at ``supersampling**3`` sub-points, the others at their centre
(with ``supersampling = 1`` every voxel at its centre, classified once).
(Not detected: the face where a film, split between two touching
particles, opens once they part; such voxels are classified at the centre.) Each particle's contribution is its textured attenuation at
the voxel centre, evaluated in the particle's body frame. Base coefficients
come from :mod:`synthcal.materials` at ``energy_kev``.

Fragments
---------
A cracked NMC particle (:mod:`synthcal.dem.fracture`) is a set of
fragments, each a piece of its root sphere cut by planes
(:class:`synthcal.pieces.Pieces`), rendered exactly (depth: the smallest of
the distances to the root sphere and to each plane) with the root's texture
in the root's body frame. The pieces fill the root sphere, so the phantom
at the instant of fracture is the phantom before it; cracks open as the
fragments move. Each fragment owns its voxels. The binder follows each root
particle at the pose its first fragment (the one with the root's index)
carries.

Texture
-------
Generated from ``(seed, particle index)`` in each particle's body frame
(``b = R^T (x - c)``), so it moves rigidly with the particle.

* NMC: primary grains are the cells of a jittered-lattice Voronoi tessellation
  (one seed point per cubic cell of edge ``grain_size_um``), each with its own
  density factor; grain boundaries are darker (a Gaussian dip of physical
  width ``grain_boundary_width_um``); small spherical internal pores sit at
  random points of some lattice cells.
* CBD: a smooth random density field (sum of random-phase plane cosines with
  wavelengths around ``cbd_wavelength_um``) stands for its nanoporosity. A
  CBD particle carries it in its body frame; the binder's bridges and films
  carry one field in world coordinates of the reference configuration,
  evaluated at each point's reference position, so it moves with the
  binder's truth.

Every texture term is prefiltered with the voxel footprint (analytic box
coverage across grain and pore faces, Gaussian broadening of boundary dips and
cosines), so sampling at the voxel centre does not alias and the phantom of a
rigidly moved particle matches the moved phantom. The material is the same at
any voxel size; only how sharply it is seen depends on the voxel size.
"""

import inspect
from dataclasses import dataclass, fields

import numpy as np
import taichi as ti

from analysis._taichi import ensure_taichi
from analysis.phases import Phase
from synthcal.binder import (NONE, Binder, BridgeVoxels, capsule_gap, dummy_rows, cell_of, claim, motion_tables,
                             pull_through, reference_tables)
from synthcal.binning import bin_boxes, bin_particles, choose_cell_size_um
from synthcal.dem.material import ParticleKind
from synthcal.materials import cbd_material, linear_attenuation_per_um
from synthcal.pieces import Pieces
from synthcal.rotations import rotation_matrices_zyx

# plain ints for the taichi kernel
_PORE, _CBD, _NMC, _HEAD, _FOIL = (int(p) for p in Phase)
_KIND_NMC = int(ParticleKind.NMC)
# A voxel takes at most this many particles (overlapping it, or whose film
# may) and bridges into account; DEM overlaps are small and films thin, so
# more than a few at one voxel does not happen.
MAX_CANDIDATES = 12
MAX_BOND_CANDIDATES = 16
# fine rows beyond the grid, each side, that attenuation_rows prepares for (motion and blur halos)
_ROW_MARGIN = 64


@dataclass(frozen=True)
class Texture:
    """Texture of the particles (lengths in µm, factors relative to the base density).

    Attributes
    ----------
    grain_size_um : float
        Edge of the lattice cell holding one NMC primary-grain seed (~ grain size).
    grain_density_sd : float
        Standard deviation of the per-grain density factor.
    grain_boundary_width_um, grain_boundary_depth : float
        Width (2 sigma) and depth (relative density loss) of the boundary dip.
    pore_probability, pore_radius_um : float
        Internal NMC pores: each grain-lattice cell holds one (at its own random
        point) with this probability, radius uniform in [pore_radius_um / 2, pore_radius_um].
    cbd_density_sd : float
        Standard deviation of the CBD density factor.
    cbd_wavelength_um : float
        Central wavelength of the CBD density field (wavelengths span 0.5-1.5 times it).
    cbd_n_waves : int
        Number of plane cosines summed for the CBD field.
    """

    grain_size_um: float = 0.6
    grain_density_sd: float = 0.05
    grain_boundary_width_um: float = 0.06
    grain_boundary_depth: float = 0.3
    pore_probability: float = 0.1
    pore_radius_um: float = 0.25
    cbd_density_sd: float = 0.25
    cbd_wavelength_um: float = 0.8
    cbd_n_waves: int = 12

    def __post_init__(self):
        for name in ("grain_size_um", "grain_boundary_width_um", "pore_radius_um",
                     "cbd_wavelength_um"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Texture.{name}: expected > 0, got {getattr(self, name)}")
        for name in ("grain_density_sd", "grain_boundary_depth", "cbd_density_sd"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"Texture.{name}: expected >= 0, got {getattr(self, name)}")
        if not self.pore_radius_um < self.grain_size_um:
            raise ValueError("Texture.pore_radius_um: expected < grain_size_um")
        if not 0 <= self.pore_probability <= 1:
            raise ValueError(f"Texture.pore_probability: expected in [0, 1], got {self.pore_probability}")
        if int(self.cbd_n_waves) != self.cbd_n_waves or self.cbd_n_waves < 1:
            raise ValueError(f"Texture.cbd_n_waves: expected an integer >= 1, got {self.cbd_n_waves}")

    @classmethod
    def none(cls):
        """A texture that leaves every particle at its base density."""
        return cls(grain_density_sd=0.0, grain_boundary_depth=0.0, pore_probability=0.0,
                   cbd_density_sd=0.0)


@dataclass(frozen=True)
class Phantom:
    """Voxel phantom of one load step (grid described in the module docstring).

    Attributes
    ----------
    labels : (nz, ny, nx) uint8
        PORE=0, CBD=1, NMC=2, HEAD=3, FOIL=4 (foil or pin).
    mu_per_um : (nz, ny, nx) float32
        Linear attenuation in 1/µm, voxel averaged.
    owner : (nz, ny, nx) int32
        Index of the particle owning the voxel centre, -1 for pore, head, foil.
        A film voxel is owned by its particle, a bridge voxel by the particle
        at its nearer end (``w < 1/2``: the bond's first particle).
    bridges : synthcal.binder.BridgeVoxels
        The bridge voxels: bond and blend weight of each (see :mod:`synthcal.binder`).
    voxel_size_um : float
    origin_um : (3,) float64
        World z-y-x of the centre of voxel (0, 0, 0), µm.
    energy_kev : float
    """

    labels: np.ndarray
    mu_per_um: np.ndarray
    owner: np.ndarray
    bridges: BridgeVoxels
    voxel_size_um: float
    origin_um: np.ndarray
    energy_kev: float


@ti.func
def _mix(value):
    # lowbias32 integer hash (C. Wellons), full avalanche on u32
    x = ti.cast(value, ti.u32)
    x ^= x >> ti.u32(16)
    x *= ti.u32(0x7FEB352D)
    x ^= x >> ti.u32(15)
    x *= ti.u32(0x846CA68B)
    x ^= x >> ti.u32(16)
    return x


@ti.func
def _u01(x):
    return ti.cast(x >> ti.u32(8), ti.f32) * (1.0 / 16777216.0)


@ti.func
def _hash_cell(key, cell):
    h = _mix(key ^ ti.cast(cell[0], ti.u32))
    h = _mix(h ^ ti.cast(cell[1], ti.u32))
    return _mix(h ^ ti.cast(cell[2], ti.u32))


@ti.func
def _normal(h):
    # sum of four uniforms scaled to unit variance (close enough to Gaussian here)
    s = _u01(_mix(h + ti.u32(1))) + _u01(_mix(h + ti.u32(2))) \
        + _u01(_mix(h + ti.u32(3))) + _u01(_mix(h + ti.u32(4)))
    return (s - 2.0) * ti.sqrt(3.0)


# A cell is skipped only when its gap exceeds the bound by this relative margin, so that
# float32 rounding of the gap and of the seed distances cannot skip a cell that matters.
_GAP_SLACK = 1.0 + 1e-4


@ti.func
def _nmc_factor(key, b, h, tex: ti.template()):
    """Density factor of an NMC particle at body point b (µm).

    The jittered-lattice Voronoi (nearest and second-nearest seed) and the pores are those of
    all 27 cells around b; a cell is visited only if the gap between b and the cell's box can
    be shorter than the second-nearest seed found so far, or than the largest pore reach.
    """
    g = tex[0]
    q = b / g
    base = ti.floor(q, ti.i32)
    frac = q - ti.cast(base, ti.f32)
    # Per axis, the cells are visited in the order own, nearer neighbour, farther neighbour:
    # offsets[a, i] and the squared gap from b to that slab of cells, gaps[a, i] (0, then
    # nondecreasing). A cell's gap is the sum over the axes, so once a cell's gap reaches the
    # bound, every later cell of its row (and of its plane, at the row's first cell) does too.
    offsets = ti.Matrix([[0, 0, 0], [0, 0, 0], [0, 0, 0]], ti.i32)
    gaps = ti.Matrix([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], ti.f32)
    for a in ti.static(range(3)):
        lo = frac[a] * g
        hi = (1.0 - frac[a]) * g
        if lo < hi:
            offsets[a, 1], offsets[a, 2] = -1, 1
            gaps[a, 1], gaps[a, 2] = lo * lo, hi * hi
        else:
            offsets[a, 1], offsets[a, 2] = 1, -1
            gaps[a, 1], gaps[a, 2] = hi * hi, lo * lo
    d1 = 1e30
    d2 = 1e30
    s1 = ti.Vector([0.0, 0.0, 0.0], ti.f32)
    s2 = ti.Vector([0.0, 0.0, 0.0], ti.f32)
    h1 = ti.u32(0)
    h2 = ti.u32(0)
    pore = 0.0
    # pore coverage ramps over half a voxel each side of the pore surface, kept within
    # the neighbour cells searched (pore_radius_um < grain_size_um)
    ramp = ti.min(0.5 * h, g - tex[5])
    pore_reach2 = ((tex[5] + ramp) * _GAP_SLACK) ** 2
    for iz in range(3):
        if gaps[0, iz] >= ti.max(d2 * _GAP_SLACK, pore_reach2):
            break
        for iy in range(3):
            gap_zy = gaps[0, iz] + gaps[1, iy]
            if gap_zy >= ti.max(d2 * _GAP_SLACK, pore_reach2):
                break
            for ix in range(3):
                gap2 = gap_zy + gaps[2, ix]
                seeds = gap2 < d2 * _GAP_SLACK
                pores = gap2 < pore_reach2
                if not (seeds or pores):
                    break
                cell = base + ti.Vector([offsets[0, iz], offsets[1, iy], offsets[2, ix]], ti.i32)
                hc = _hash_cell(key, cell)
                if seeds:
                    jitter = ti.Vector([_u01(_mix(hc + ti.u32(11))), _u01(_mix(hc + ti.u32(12))),
                                        _u01(_mix(hc + ti.u32(13)))], ti.f32)
                    s = (ti.cast(cell, ti.f32) + jitter) * g
                    d = (b - s).norm_sqr()
                    if d < d1:
                        d2 = d1
                        s2 = s1
                        h2 = h1
                        d1 = d
                        s1 = s
                        h1 = hc
                    elif d < d2:
                        d2 = d
                        s2 = s
                        h2 = hc
                hp = _mix(hc + ti.u32(21))
                if pores and _u01(hp) < tex[4]:
                    r = tex[5] * (0.5 + 0.5 * _u01(_mix(hp + ti.u32(1))))
                    centre = (ti.cast(cell, ti.f32) + ti.Vector(
                        [_u01(_mix(hp + ti.u32(2))), _u01(_mix(hp + ti.u32(3))), _u01(_mix(hp + ti.u32(4)))],
                        ti.f32)) * g
                    pore = ti.max(pore, ti.min(ti.max(0.5 + 0.5 * (r - (b - centre).norm()) / ramp, 0.0), 1.0))
    # distance from b to the bisector plane of the two nearest seeds
    e = (d2 - d1) / (2.0 * ti.max((s2 - s1).norm(), 1e-12))
    c = ti.min(ti.max(0.5 + e / h, 0.0), 1.0)
    sd = tex[1]
    grain = c * (1.0 + sd * _normal(h1)) + (1.0 - c) * (1.0 + sd * _normal(h2))
    sigma0 = 0.5 * tex[2]
    sigma = ti.sqrt(sigma0 * sigma0 + h * h / 12.0)
    dip = tex[3] * sigma0 / sigma * ti.exp(-0.5 * e * e / (sigma * sigma))
    factor = ti.max(grain - dip, 0.0)

    return factor, pore


@ti.func
def _cbd_wave(key, m, h, tex: ti.template()):
    """Plane cosine m of the CBD density field of ``key``: its direction, wavenumber (1/µm), phase
    and damping on voxels of edge h (µm)."""
    hm = _mix(key ^ _mix(ti.cast(m, ti.u32) + ti.u32(0x68E31DA4)))
    cos_t = 2.0 * _u01(_mix(hm + ti.u32(1))) - 1.0
    phi = 6.283185307179586 * _u01(_mix(hm + ti.u32(2)))
    sin_t = ti.sqrt(ti.max(1.0 - cos_t * cos_t, 0.0))
    direction = ti.Vector([cos_t, sin_t * ti.cos(phi), sin_t * ti.sin(phi)], ti.f32)
    k = 6.283185307179586 / (tex[7] * (0.5 + _u01(_mix(hm + ti.u32(3)))))
    phase = 6.283185307179586 * _u01(_mix(hm + ti.u32(4)))
    # Gaussian stand-in for the voxel box filter (variance h^2/12 along k)
    return direction, k, phase, ti.exp(-k * k * h * h / 24.0)


@ti.func
def _cbd_density(field, tex: ti.template()):
    """Density factor of CBD from the sum of its plane cosines."""
    return ti.max(1.0 + tex[6] * ti.sqrt(2.0 / ti.cast(tex[8], ti.i32)) * field, 0.0)


@ti.func
def _cbd_factor(key, b, h, tex: ti.template()):
    """Density factor of a CBD particle at body point b (µm)."""
    field = 0.0
    for m in range(ti.cast(tex[8], ti.i32)):
        direction, k, phase, damping = _cbd_wave(key, m, h, tex)
        field += damping * ti.cos(k * direction.dot(b) + phase)
    return _cbd_density(field, tex)


@ti.func
def _binder_factor(b, waves: ti.template(), tex: ti.template()):
    """:func:`_cbd_factor` of the binder's key at b (µm), from its waves tabled by :func:`_binder_waves`:
    one key for the whole binder, so the waves are made once, not at every voxel (48 rows of the
    paper scenario's fine grid rendered in 18.2-20.2 s instead of 22.1-22.2 s)."""
    field = 0.0
    for m in range(waves.shape[0]):
        direction = ti.Vector([waves[m, 0], waves[m, 1], waves[m, 2]], ti.f32)
        field += waves[m, 5] * ti.cos(waves[m, 3] * direction.dot(b) + waves[m, 4])
    return _cbd_density(field, tex)


@ti.func
def _binder_key(key_seed):
    """The key of the binder's texture: one for the whole binder."""
    return _mix(key_seed ^ ti.u32(0xB1DE5EED))


@ti.kernel
def _binder_waves(key_seed: ti.u32, h: ti.f32, tex: ti.types.ndarray(dtype=ti.f32, ndim=1),
                  waves: ti.types.ndarray(dtype=ti.f32, ndim=2)):
    """Row m: direction (3), wavenumber, phase and damping of the binder's plane cosine m."""
    for m in range(waves.shape[0]):
        direction, k, phase, damping = _cbd_wave(_binder_key(key_seed), m, h, tex)
        for a in ti.static(range(3)):
            waves[m, a] = direction[a]
        waves[m, 3] = k
        waves[m, 4] = phase
        waves[m, 5] = damping


@ti.func
def _root_body(p, x, centres: ti.template(), rot: ti.template(), piece: ti.template()):
    """Root-body coordinates (µm, see :mod:`synthcal.pieces`) of the point x of particle p."""
    d = ti.Vector([x[0] - centres[p, 0], x[1] - centres[p, 1], x[2] - centres[p, 2]], ti.f32)
    b = ti.Vector([0.0, 0.0, 0.0], ti.f32)
    for a in ti.static(range(3)):
        b[a] = rot[p, a] * d[0] + rot[p, 3 + a] * d[1] + rot[p, 6 + a] * d[2] - piece[p, a]
    return b


@ti.func
def _depth(p, x, centres: ti.template(), radii: ti.template(), rot: ti.template(), piece: ti.template(),
           n_planes: ti.template()):
    """How deep x lies inside particle p's piece (µm, > 0 inside): its sphere, or its root sphere cut by planes."""
    out = 0.0
    if n_planes[p] == 0:
        dvec = ti.Vector([x[0] - centres[p, 0], x[1] - centres[p, 1], x[2] - centres[p, 2]])
        out = radii[p] - dvec.norm()
    else:
        b = _root_body(p, x, centres, rot, piece)
        out = piece[p, 3] - b.norm()
        for k in range(n_planes[p]):
            c = 4 + 4 * k
            out = ti.min(out, piece[p, c + 3] - (piece[p, c] * b[0] + piece[p, c + 1] * b[1] + piece[p, c + 2] * b[2]))
    return out


@ti.func
def _particle_mu(p, x, centres: ti.template(), kinds: ti.template(), rot: ti.template(), piece: ti.template(),
                 roots: ti.template(), key_seed, h, tex: ti.template(), mu_nmc, mu_cbd, mu_air):
    # a fragment shows its root particle's texture, in the root's body frame
    b = _root_body(p, x, centres, rot, piece)
    key = _mix(key_seed ^ _mix(ti.cast(roots[p], ti.u32) + ti.u32(0x9E3779B9)))
    mu = 0.0
    if kinds[p] == 0:
        factor, pore = _nmc_factor(key, b, h, tex)
        mu = (1.0 - pore) * factor * mu_nmc + pore * mu_air
    else:
        mu = _cbd_factor(key, b, h, tex) * mu_cbd
    return mu


@ti.kernel
def _voxelise_slab(labels: ti.types.ndarray(dtype=ti.u8, ndim=3),
                   mu: ti.types.ndarray(dtype=ti.f32, ndim=3),
                   owner: ti.types.ndarray(dtype=ti.i32, ndim=3),
                   bond_out: ti.types.ndarray(dtype=ti.i32, ndim=3),
                   weight_out: ti.types.ndarray(dtype=ti.f32, ndim=3),
                   centres: ti.types.ndarray(dtype=ti.f32, ndim=2),
                   radii: ti.types.ndarray(dtype=ti.f32, ndim=1),
                   kinds: ti.types.ndarray(dtype=ti.i32, ndim=1),
                   rot: ti.types.ndarray(dtype=ti.f32, ndim=2),
                   pc: ti.types.ndarray(dtype=ti.f32, ndim=2),
                   pr: ti.types.ndarray(dtype=ti.f32, ndim=1),
                   pk: ti.types.ndarray(dtype=ti.i32, ndim=1),
                   piece: ti.types.ndarray(dtype=ti.f32, ndim=2),
                   n_planes: ti.types.ndarray(dtype=ti.i32, ndim=1),
                   roots: ti.types.ndarray(dtype=ti.i32, ndim=1),
                   cell_start: ti.types.ndarray(dtype=ti.i32, ndim=1),
                   items: ti.types.ndarray(dtype=ti.i32, ndim=1),
                   ref_c: ti.types.ndarray(dtype=ti.f32, ndim=2),
                   back: ti.types.ndarray(dtype=ti.f32, ndim=2),
                   moved: ti.types.ndarray(dtype=ti.i32, ndim=1),
                   pairs: ti.types.ndarray(dtype=ti.i32, ndim=2),
                   bgeo: ti.types.ndarray(dtype=ti.f32, ndim=2),
                   intact: ti.types.ndarray(dtype=ti.i32, ndim=1),
                   seg: ti.types.ndarray(dtype=ti.f32, ndim=2),
                   bond_start: ti.types.ndarray(dtype=ti.i32, ndim=1),
                   bond_items: ti.types.ndarray(dtype=ti.i32, ndim=1),
                   rp_start: ti.types.ndarray(dtype=ti.i32, ndim=1),
                   rp_items: ti.types.ndarray(dtype=ti.i32, ndim=1),
                   rb_start: ti.types.ndarray(dtype=ti.i32, ndim=1),
                   rb_items: ti.types.ndarray(dtype=ti.i32, ndim=1),
                   tex: ti.types.ndarray(dtype=ti.f32, ndim=1),
                   waves: ti.types.ndarray(dtype=ti.f32, ndim=2),
                   mus: ti.types.ndarray(dtype=ti.f32, ndim=1),
                   cell_dims: ti.types.vector(3, ti.i32),
                   cell_size: ti.f32, h: ti.f32, k0: ti.i32,
                   head_z: ti.f32, foil_z: ti.f32, n_sub: ti.i32, key_seed: ti.u32,
                   has_binder: ti.i32, tau: ti.f32, origin: ti.types.vector(3, ti.f32)):
    mu_air, mu_cbd, mu_nmc, mu_head, mu_foil = mus[0], mus[1], mus[2], mus[3], mus[4]
    margin = 0.8660254 * h
    # particles whose film may reach the voxel are candidates too
    reach = margin + tau
    for k, j, i in ti.ndrange(labels.shape[0], labels.shape[1], labels.shape[2]):
        # coordinates relative to the centre of voxel (0, 0, 0), which is also the cell-grid origin
        x = h * ti.Vector([k + k0, j, i], ti.f32)
        flat = cell_of(x, cell_size, cell_dims)
        cand = ti.Vector([-1] * MAX_CANDIDATES, ti.i32)
        cand_root = ti.Vector([-1] * MAX_CANDIDATES, ti.i32)
        n_cand = 0
        n_close = 0
        near = (ti.abs(x[0] - head_z) < 0.5 * h) or (ti.abs(x[0] - foil_z) < 0.5 * h)
        best = -1
        best_d = 0.0
        for t in range(cell_start[flat], cell_start[flat + 1]):
            p = items[t]
            depth = _depth(p, x, pc, pr, rot, piece, n_planes)
            if depth > best_d:
                best_d = depth
                best = p
            if depth > -margin:
                n_close += 1
                if depth < margin:
                    near = True
            if depth > -reach and n_cand < MAX_CANDIDATES:
                cand[n_cand] = p
                # the binder knows the root particles, at the pose their first piece carries
                cand_root[n_cand] = roots[p]
                n_cand += 1
            if has_binder and tau > 0 and pk[p] == _KIND_NMC and ti.abs(depth + tau) < margin:
                # the film's outer surface crosses the voxel
                near = True
        bond_cand = ti.Vector([-1] * MAX_BOND_CANDIDATES, ti.i32)
        n_bond = 0
        # deep inside a particle the whole voxel is that particle's: no binder to look for
        if has_binder and best_d < margin:
            for t in range(bond_start[flat], bond_start[flat + 1]):
                b = bond_items[t]
                if n_bond < MAX_BOND_CANDIDATES and capsule_gap(x, b, seg) < margin:
                    bond_cand[n_bond] = b
                    n_bond += 1
        label = ti.u8(_PORE)
        own = -1
        bond = -1
        weight = 0.0
        held = NONE
        ref_x = x
        if x[0] >= head_z:
            label = ti.u8(_HEAD)
        elif x[0] < foil_z:
            label = ti.u8(_FOIL)
        elif best >= 0:
            own = best
            label = ti.u8(_NMC) if pk[best] == _KIND_NMC else ti.u8(_CBD)
        elif has_binder:
            kind_c, bond_c, owner_c, w_c, x_c, near_c = claim(
                x, tau, margin, bond_cand, n_bond, cand_root, n_cand, centres, ref_c, back, moved, radii, kinds,
                pairs, bgeo, intact, seg, rp_start, rp_items, rb_start, rb_items, cell_dims, cell_size)
            if near_c:
                near = True
            if kind_c != NONE:
                held = kind_c
                label = ti.u8(_CBD)
                own = owner_c
                bond = bond_c
                weight = w_c
                ref_x = x_c
        if n_close > 1:
            # the border between two overlapping particles may cross the voxel
            near = True
        # the voxel's value is total / n_points: fixed parts summed first, then each particle's
        # texture (counts[a] points of cand[a]), then the binder's; one place evaluates textures
        counts = ti.Vector([0] * MAX_CANDIDATES, ti.i32)
        n_textured = 0
        n_points = 1
        n_binder = 0
        rep_kind = NONE
        rep_bond = -1
        rep_owner = -1
        total = 0.0
        # one sub-point per edge is the voxel centre, classified above: a voxel a surface may cross
        # is then valued as any other (the scans' fine grids: docs/paper-scenario-log.md, "The scans and the DVC faster")
        if not near or n_sub == 1:
            if label == _HEAD:
                total = mu_head
            elif label == _FOIL:
                total = mu_foil
            elif held != NONE:
                total = _binder_factor(ref_x + origin, waves, tex) * mu_cbd
            elif own >= 0:
                cand[0] = own
                counts[0] = 1
                n_textured = 1
            else:
                total = mu_air
        else:
            n_head = 0
            n_foil = 0
            n_pore = 0
            for s in range(n_sub * n_sub * n_sub):
                offset = ti.Vector([s // (n_sub * n_sub), (s // n_sub) % n_sub, s % n_sub], ti.f32)
                y = x + h * ((offset + 0.5) / n_sub - 0.5)
                if y[0] >= head_z:
                    n_head += 1
                elif y[0] < foil_z:
                    n_foil += 1
                else:
                    slot = -1
                    slot_d = 0.0
                    for a in range(n_cand):
                        p = cand[a]
                        depth = _depth(p, y, pc, pr, rot, piece, n_planes)
                        if depth > slot_d:
                            slot_d = depth
                            slot = a
                    if slot >= 0:
                        counts[slot] += 1
                    else:
                        kind_s = NONE
                        if has_binder:
                            kind_s, bond_s, owner_s, w_s, x_s, near_s = claim(
                                y, tau, 0.0, bond_cand, n_bond, cand_root, n_cand, centres, ref_c, back, moved,
                                radii, kinds, pairs, bgeo, intact, seg, rp_start, rp_items, rb_start, rb_items,
                                cell_dims, cell_size)
                            if kind_s != NONE:
                                n_binder += 1
                                if rep_kind == NONE:
                                    rep_kind = kind_s
                                    rep_bond = bond_s
                                    rep_owner = owner_s
                        if kind_s == NONE:
                            n_pore += 1
            total = n_pore * mu_air + n_head * mu_head + n_foil * mu_foil
            n_textured = n_cand
            n_points = n_sub * n_sub * n_sub
        for a in range(n_textured):
            if counts[a] > 0:
                total += counts[a] * _particle_mu(cand[a], x, pc, pk, rot, piece, roots, key_seed, h, tex,
                                                  mu_nmc, mu_cbd, mu_air)
        if n_binder > 0:
            # the binder's texture at the voxel centre's reference point, pulled back through the
            # structure holding the first binder sub-point (as a particle's texture at the centre)
            xr = pull_through(rep_kind, rep_bond, rep_owner, x, centres, ref_c, back, moved, radii,
                              pairs, bgeo, intact)
            total += n_binder * _binder_factor(xr + origin, waves, tex) * mu_cbd
        value = total / n_points
        labels[k, j, i] = label
        owner[k, j, i] = own
        bond_out[k, j, i] = bond
        weight_out[k, j, i] = weight
        mu[k, j, i] = value


def _seed_key(seed):
    mask = 0xFFFFFFFF

    def mix(x):
        x ^= x >> 16
        x = (x * 0x7FEB352D) & mask
        x ^= x >> 15
        x = (x * 0x846CA68B) & mask
        return x ^ (x >> 16)

    return mix((seed & mask) ^ mix((seed >> 32) & mask))


def voxelise(positions_um, radii_um, kinds, quaternions, *, voxel_size_um, shape, origin_um, seed,
             head_z_um=None, foil_top_z_um=0.0, energy_kev, supersampling=3, texture=Texture(),
             head_material="diamond", foil_material="aluminium", cbd_nanoporosity=0.5,
             binder=None, bonds_intact=None, pieces=None, arch="cpu", progress=None):
    """Voxelise one load step (grid, phases and texture: see the module docstring).

    Parameters
    ----------
    positions_um : (N, 3) array_like
        Particle centres, world z-y-x, µm.
    radii_um : (N,) array_like
        Particle radii, µm.
    kinds : (N,) array_like of int
        0 = NMC, 1 = CBD.
    quaternions : (N, 4) array_like
        Particle orientations, scalar first (see :mod:`synthcal.rotations`).
    voxel_size_um : float
        Voxel edge, µm.
    shape : tuple of 3 int
        ``(nz, ny, nx)``.
    origin_um : (3,) array_like
        World z-y-x of the centre of voxel (0, 0, 0), µm.
    seed : int
        Texture seed (non-negative).
    head_z_um : float, optional
        Lower face of the flat head (the head fills ``z >= head_z_um``); None: no head.
    foil_top_z_um : float, optional
        Top of the foil/pin (it fills ``z < foil_top_z_um``); None: no foil.
    energy_kev : float
        Beam energy, keV.
    supersampling : int
        Sub-points per voxel edge where a surface may cross the voxel.
    texture : Texture
    head_material, foil_material : str
        Registry names in :mod:`synthcal.materials`.
    cbd_nanoporosity : float
        Sub-voxel pore fraction of the CBD (sets its base density).
    binder : synthcal.binder.Binder, optional
        The sample's carbon-binder domain (its reference configuration, same
        particles); None: no bridges or films.
    bonds_intact : (M,) array_like of bool, optional
        Which of ``binder.bonds`` hold at this step (broken bridges show as
        two halves); default all.
    pieces : synthcal.pieces.Pieces, optional
        Each particle's piece (fragments of cracked particles); None: whole
        spheres of ``radii_um``. A fragment is its root sphere cut by its
        planes, with its root's texture, and owns its voxels; the binder
        (reference: the root particles, indices ``0 .. len(binder) - 1``)
        follows each root at the pose its piece of that index carries.
    arch : {"cpu", "gpu"}
    progress : callable, optional
        Called with the fraction done in [0, 1].

    Returns
    -------
    Phantom
    """
    launch, bonds = _renderer(positions_um, radii_um, kinds, quaternions, voxel_size_um=voxel_size_um, shape=shape,
                              origin_um=origin_um, seed=seed, head_z_um=head_z_um, foil_top_z_um=foil_top_z_um,
                              energy_kev=energy_kev, supersampling=supersampling, texture=texture,
                              head_material=head_material, foil_material=foil_material,
                              cbd_nanoporosity=cbd_nanoporosity, binder=binder, bonds_intact=bonds_intact,
                              pieces=pieces, arch=arch)
    shape = tuple(int(s) for s in shape)
    labels = np.empty(shape, dtype=np.uint8)
    mu = np.empty(shape, dtype=np.float32)
    owner = np.empty(shape, dtype=np.int32)
    bridge_index, bridge_bond, bridge_weight = [], [], []
    slab = max(1, -(-shape[0] // 16))
    for k0 in range(0, shape[0], slab):
        k1 = min(shape[0], k0 + slab)
        bond, weight = launch(k0, labels[k0:k1], mu[k0:k1], owner[k0:k1])
        found = np.flatnonzero(bond.reshape(-1) >= 0)
        bridge_index.append(found + k0 * shape[1] * shape[2])
        bridge_bond.append(bond.reshape(-1)[found])
        bridge_weight.append(weight.reshape(-1)[found])
        if progress is not None:
            progress(k1 / shape[0])
    bridges = BridgeVoxels(np.concatenate(bridge_index), np.concatenate(bridge_bond), np.concatenate(bridge_weight),
                           bonds)
    return Phantom(labels=labels, mu_per_um=mu, owner=owner, bridges=bridges, voxel_size_um=float(voxel_size_um),
                   origin_um=np.asarray(origin_um, dtype=np.float64).copy(), energy_kev=float(energy_kev))


def _renderer(positions_um, radii_um, kinds, quaternions, *, voxel_size_um, shape, origin_um, seed, head_z_um,
              foil_top_z_um, energy_kev, supersampling, texture, head_material, foil_material, cbd_nanoporosity,
              binder, bonds_intact, pieces, arch):
    """Check :func:`voxelise`'s inputs and build its tables (binning, binder) once for the whole grid.

    Returns
    -------
    launch : callable
        ``launch(k0, labels, mu, owner)`` fills the outputs of grid rows
        ``k0 .. k0 + len(labels) - 1`` and returns their bridge bond and
        blend weight arrays (bond -1 off the bridges).
    bonds : (M, 2) ndarray
        The binder's bonds (none without a binder).
    """
    centres = np.asarray(positions_um, dtype=np.float64)
    radii = np.asarray(radii_um, dtype=np.float64)
    kinds_arr = np.asarray(kinds)
    quats = np.asarray(quaternions, dtype=np.float64)
    if centres.ndim != 2 or centres.shape[1] != 3:
        raise ValueError(f"positions_um: expected shape (N, 3), got {centres.shape}")
    n = len(centres)
    if radii.shape != (n,) or not np.all(radii > 0):
        raise ValueError(f"radii_um: expected ({n},) positive radii, got shape {radii.shape}")
    if kinds_arr.shape != (n,) or not np.all(np.isin(kinds_arr, list(ParticleKind))):
        raise ValueError(f"kinds: expected ({n},) values in {{0 (NMC), 1 (CBD)}}")
    if quats.shape != (n, 4):
        raise ValueError(f"quaternions: expected shape ({n}, 4), got {quats.shape}")
    if not voxel_size_um > 0:
        raise ValueError(f"voxel_size_um: expected > 0, got {voxel_size_um}")
    if len(shape) != 3 or any(int(s) != s or s < 1 for s in shape):
        raise ValueError(f"shape: expected three positive integers (nz, ny, nx), got {shape}")
    shape = tuple(int(s) for s in shape)
    origin = np.asarray(origin_um, dtype=np.float64)
    if origin.shape != (3,):
        raise ValueError(f"origin_um: expected 3 values (z, y, x), got shape {origin.shape}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed}")
    if int(supersampling) != supersampling or supersampling < 1:
        raise ValueError(f"supersampling: expected an integer >= 1, got {supersampling}")
    if not isinstance(texture, Texture):
        raise ValueError(f"texture: expected a Texture, got {type(texture).__name__}")
    head_z = np.inf if head_z_um is None else float(head_z_um)
    foil_z = -np.inf if foil_top_z_um is None else float(foil_top_z_um)
    if head_z <= foil_z:
        raise ValueError(f"head_z_um: expected above foil_top_z_um, got {head_z_um} <= {foil_top_z_um}")
    if pieces is None:
        pieces = Pieces.whole(radii)
    elif not isinstance(pieces, Pieces) or len(pieces.root_ids) != n:
        raise ValueError(f"pieces: expected Pieces of the {n} particles")
    rot_zyx = rotation_matrices_zyx(quats) if n else np.zeros((0, 3, 3))
    n_root = int(pieces.root_ids.max()) + 1 if n else 0
    # the root particles where their pieces of the same index carry them (themselves when unbroken)
    root_c = centres[:n_root] + np.einsum("nab,nb->na", rot_zyx[:n_root], pieces.root_offsets_um[:n_root])
    if binder is None:
        binder = Binder(root_c, quats[:n_root], pieces.root_radii_um[:n_root], kinds_arr[:n_root],
                        np.zeros((0, 2), np.int64), np.zeros(0), 0.0)
        has_binder = 0
    elif not isinstance(binder, Binder):
        raise ValueError(f"binder: expected a Binder, got {type(binder).__name__}")
    else:
        has_binder = 1
    if len(binder.radii_um) != n_root or not np.array_equal(binder.radii_um, pieces.root_radii_um[:n_root]) or \
            not np.array_equal(binder.kinds, kinds_arr[:n_root]):
        raise ValueError(f"binder: expected the same {n_root} root particles (radii, kinds) as positions_um")
    intact = np.ones(len(binder.bonds), bool) if bonds_intact is None else np.asarray(bonds_intact, dtype=bool)
    if intact.shape != (len(binder.bonds),):
        raise ValueError(f"bonds_intact: expected ({len(binder.bonds)},) flags, one per binder bond, "
                         f"got shape {intact.shape}")

    cbd = cbd_material(cbd_nanoporosity)
    # order read by the kernel: air, CBD, NMC, head, foil
    mus = np.array([linear_attenuation_per_um("air", energy_kev),
                    linear_attenuation_per_um(cbd.formula, energy_kev, cbd.density_g_cm3),
                    linear_attenuation_per_um("nmc333", energy_kev),
                    linear_attenuation_per_um(head_material, energy_kev),
                    linear_attenuation_per_um(foil_material, energy_kev)], dtype=np.float32)
    # the kernel reads the texture parameters by position, in field order
    tex = np.array([getattr(texture, f.name) for f in fields(Texture)], dtype=np.float32)

    extent = voxel_size_um * (np.array(shape) - 1)
    margin = 0.8660254 * voxel_size_um
    tau = binder.film_thickness_um
    reach = pieces.bounding_radii_um(radii) + margin + tau
    motion, (box_centre, box_reach, box_bond) = motion_tables(binder, root_c, quats[:n_root], intact, origin)
    with_bridge = binder.bridge_radius_um[box_bond] > 0
    box_centre, box_reach, box_bond = box_centre[with_bridge], box_reach[with_bridge] + margin, box_bond[with_bridge]
    # every binning below shares the cells: their pairs count toward the memory bound
    cell_size = choose_cell_size_um(np.concatenate([reach, box_reach, binder.radii_um + tau]), extent,
                                    float(np.prod(shape)), voxel_size_um)
    cell_dims = (np.floor(extent / cell_size) + 1).astype(np.int64)
    cell_start, items = bin_particles(centres, reach, origin, cell_dims, cell_size)
    if n == 0:
        items = np.zeros(1, dtype=np.int32)
    bond_start, bond_items = bin_boxes(box_centre, box_reach, box_bond, origin, cell_dims, cell_size)
    if len(bond_items) == 0:
        bond_items = np.zeros(1, np.int32)
    ref = reference_tables(binder, origin, cell_dims, cell_size)

    ensure_taichi(arch)
    # kernel works relative to the grid origin, keeping f32 coordinates small
    rot = np.ascontiguousarray(rot_zyx.reshape(n, 9), dtype=np.float32) if n else np.zeros((1, 9), np.float32)
    # per particle: root offset (3), root radius, then the planes (n_z, n_y, n_x, d) in use
    piece = np.concatenate([pieces.root_offsets_um, pieces.root_radii_um[:, None],
                            pieces.planes.reshape(n, -1)], axis=1).astype(np.float32)
    particle = dict(pc=dummy_rows(centres - origin, 3, np.float32), pr=dummy_rows(radii, 0, np.float32),
                    pk=dummy_rows(kinds_arr, 0, np.int32), piece=dummy_rows(piece, piece.shape[1], np.float32),
                    n_planes=dummy_rows(pieces.n_planes, 0, np.int32),
                    roots=dummy_rows(pieces.root_ids, 0, np.int32))

    waves = np.empty((texture.cbd_n_waves, 6), dtype=np.float32)
    _binder_waves(_seed_key(int(seed)), float(voxel_size_um), tex, waves)

    def launch(k0, labels, mu, owner):
        bond = np.empty(labels.shape, dtype=np.int32)
        weight = np.empty(labels.shape, dtype=np.float32)
        _voxelise_slab(labels, mu, owner, bond, weight,
                       motion["cur_c"], ref["radii"], ref["kinds"], rot, particle["pc"], particle["pr"],
                       particle["pk"], particle["piece"], particle["n_planes"], particle["roots"], cell_start, items,
                       ref["ref_c"], motion["back"], motion["moved"], ref["pairs"], ref["bgeo"], motion["intact"],
                       motion["seg"], bond_start, bond_items, ref["rp_start"], ref["rp_items"], ref["rb_start"],
                       ref["rb_items"], tex, waves, mus,
                       ti.Vector([int(v) for v in cell_dims]),
                       float(cell_size), float(voxel_size_um), k0,
                       float(head_z - origin[0]), float(foil_z - origin[0]),
                       int(supersampling), _seed_key(int(seed)), has_binder, float(tau),
                       ti.Vector([float(o) for o in origin]))
        return bond, weight

    return launch, binder.bonds


def attenuation_rows(positions_um, radii_um, kinds, quaternions, *, voxel_size_um, shape, origin_um, oversampling,
                     supersampling=3, **voxelise_kwargs):
    """The attenuation of a phantom grid ``oversampling`` times finer, a few rows at a time, for
    :func:`synthcal.xray.simulate_scan`.

    The fine grid tiles each voxel of the grid (``voxel_size_um``, ``shape``,
    ``origin_um``) with ``oversampling**3`` voxels of edge
    ``voxel_size_um / oversampling``: fine row ``f`` lies in row
    ``f // oversampling``. Its voxels are themselves sub-points of the
    coarse grid's, so a surface voxel is split into
    ``ceil(supersampling / oversampling)`` per edge: each coarse voxel is
    sampled at least as finely as :func:`voxelise` samples it on the coarse
    grid (for 2 and 2: once per fine voxel, at half the cost).

    Parameters
    ----------
    positions_um, radii_um, kinds, quaternions
        The particles, as for :func:`voxelise`.
    voxel_size_um : float
        Voxel edge of the coarse grid (the reconstruction's), µm.
    shape : tuple of 3 int
        Coarse ``(nz, ny, nx)``.
    origin_um : (3,) array_like
        World z-y-x of the centre of coarse voxel (0, 0, 0), µm.
    oversampling : int
        Fine voxels per coarse voxel edge.
    supersampling : int
        Sub-points per coarse voxel edge where a surface may cross it.
    **voxelise_kwargs
        The rest of :func:`voxelise`'s keywords (``seed``, ``energy_kev``,
        ``head_z_um``, ``binder``, ``arch``, ...).

    Returns
    -------
    callable
        ``render_rows(first_row, n_rows)``: float32 ``(n_rows, oversampling * ny,
        oversampling * nx)``, attenuation above that of air (the flat fields are
        taken through the same air) in 1/fine-voxel-length, for any rows (above
        and below the grid too: head, pin). A texture's rare point below air's
        attenuation counts as air.
    """
    if int(oversampling) != oversampling or oversampling < 1:
        raise ValueError(f"oversampling: expected an integer >= 1, got {oversampling}")
    if len(shape) != 3:
        raise ValueError(f"shape: expected three positive integers (nz, ny, nx), got {shape}")
    o = int(oversampling)
    fine_um = float(voxel_size_um) / o
    # fine voxel (0, 0, 0) is the first of the o^3 that tile coarse voxel (0, 0, 0)
    fine_origin = np.asarray(origin_um, dtype=np.float64) - 0.5 * (voxel_size_um - fine_um)
    fine_yx = (o * int(shape[1]), o * int(shape[2]))

    # voxelise's defaults for the keywords not given
    settings = {name: p.default for name, p in inspect.signature(voxelise).parameters.items()
                if p.kind is p.KEYWORD_ONLY and p.default is not p.empty and name not in ("progress", "supersampling")}
    settings.update(voxelise_kwargs)
    # the flats see the same air (the sample leaves the beam, the air stays), so only the
    # attenuation above air's takes photons from a projection; air is then 0, which the
    # projector skips
    if "energy_kev" not in settings:
        raise ValueError("energy_kev: expected the beam energy in keV")
    mu_air = np.float32(linear_attenuation_per_um("air", settings["energy_kev"]))

    def prepare(first, end):
        launch, _ = _renderer(positions_um, radii_um, kinds, quaternions, voxel_size_um=fine_um,
                              shape=(end - first, *fine_yx), origin_um=fine_origin + (first * fine_um, 0.0, 0.0),
                              supersampling=-(-int(supersampling) // o), **settings)
        return first, end, launch

    # The tables (binning, binder) are built once, for the block of fine rows that holds the
    # grid and a margin each side; a request outside it gets a block of its own. The float32
    # coordinates are relative to a block's first row, so a row's values do not depend on how the
    # rows were requested.
    grid_block = prepare(-_ROW_MARGIN, o * int(shape[0]) + _ROW_MARGIN)

    def render_rows(first_row, n_rows):
        first, end, launch = grid_block
        if first_row < first or first_row + n_rows > end:
            first, end, launch = prepare(first_row, first_row + n_rows)
        labels = np.empty((n_rows, *fine_yx), dtype=np.uint8)
        mu = np.empty(labels.shape, dtype=np.float32)
        launch(first_row - first, labels, mu, np.empty(labels.shape, dtype=np.int32))
        return np.maximum(mu - mu_air, 0.0) * np.float32(fine_um)

    return render_rows
