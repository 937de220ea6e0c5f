"""The DEM engine: spheres with Hertz–Mindlin contacts, bonds and walls.

Velocity-Verlet integration (half kick, drift, forces, half kick) in float64;
orientations are unit quaternions ``(w, qx, qy, qz)`` (see
:mod:`synthcal.rotations`), integrated from the world-frame angular velocity.
Positions and velocities in the API are z-y-x ordered µm and µm/s; internally
everything is SI.

Contacts (see :mod:`synthcal.dem.material`): Hertz normal force with
restitution damping, Mindlin tangential spring with history and Coulomb
limit, constant-directional-torque rolling resistance. Bonds (see
:class:`BondModel`): parallel bonds (Potyondy & Cundall 2004), a cylinder
of binder between two particle centres with normal, shear, bending and
twisting springs, formed at the current distance, broken for good when the
largest tensile or shear stress in it exceeds its strength. Walls are rigid
planes: a bottom plane (the foil; particles on it can be glued to it with
:meth:`Simulation.set_fixed` or :meth:`Simulation.fix_touching_bottom`),
a flat head moving along -z (optionally a disc of finite radius) and, for
deposition, four frictionless side walls.

Particles are stored in the order of the cells they are in (z, then y, then
x) when a simulation is made (:func:`synthcal.dem.neighbours.spatial_order`),
which roughly halves the cost of a step of a packing made in random order;
every public array and index keeps the order the particles were given in.

Several simulations may exist at once: the state of the one that runs is
loaded into one process-wide set of taichi fields (see
:mod:`synthcal.dem.kernels`) and copied out when another one runs.

Neighbours come from a Verlet list with a skin (:mod:`synthcal.dem.neighbours`),
rebuilt on the CPU when a particle has moved 0.4 skin since the last build.

Mass scaling (``mass_scaling > 1``) multiplies the density, hence the
mass and moment of inertia, of every particle or of each particle by its
own factor; the time step grows with the square root of the smallest
particle's Rayleigh time. It leaves static equilibria unchanged but slows
all waves and raises inertial effects, so runs using it must check that
they stay quasi-static (compare the kinetic with the elastic energy,
:meth:`Simulation.energies`).
"""

import math
from dataclasses import dataclass

import numpy as np
from analysis._taichi import ensure_taichi
from synthcal.dem import kernels as K
from synthcal.dem.material import Material, pair_tables
from synthcal.dem.neighbours import candidate_pairs, carry_over, pair_rows, spatial_order

_UM = 1e-6


@dataclass(frozen=True)
class BondModel:
    """Binder bridges between particles: the parallel bond of Potyondy & Cundall (2004).

    A bond is a cylinder of binder of radius ``a`` (given per bond) and
    length ``L0``, the centre distance when it formed, with ``A = pi a^2``,
    ``I = pi a^4 / 4`` and ``J = 2 I``. Its springs act on the relative
    motion of the two particles since it formed:

    - normal force ``E A / L0`` times the stretch, shear force ``G A / L0``
      times the shear displacement (``G = E / (2 (1 + nu))``);
    - bending moment ``E I / L0`` times the bending angle, twisting moment
      ``G J / L0`` times the twist angle;

    each with viscous damping of ``damping_ratio`` times critical (with the
    reduced mass, or the reduced moment of inertia). It breaks for good when
    the largest tensile stress ``F_n / A + |M_b| a / I`` exceeds
    ``tensile_strength_pa`` or the largest shear stress
    ``|F_s| / A + |M_t| a / J`` exceeds ``shear_strength_pa``. A bond
    resists compression elastically and does not break in it.

    Parameters
    ----------
    youngs_modulus_pa : float
        Modulus E of the binder cylinder (Pa).
    poisson_ratio : float
        Poisson ratio nu of the binder.
    tensile_strength_pa, shear_strength_pa : float
        Strengths (Pa).
    damping_ratio : float
        Viscous damping of the bond springs relative to critical.

    The values a pillar uses come from the scenario's ``[dem]`` section;
    this class has no defaults of its own.
    """

    youngs_modulus_pa: float
    poisson_ratio: float
    tensile_strength_pa: float
    shear_strength_pa: float
    damping_ratio: float

    def __post_init__(self):
        for name in ("youngs_modulus_pa", "tensile_strength_pa", "shear_strength_pa"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)}")
        if not 0 <= self.poisson_ratio < 0.5:
            raise ValueError(f"poisson_ratio: expected in [0, 0.5), got {self.poisson_ratio}")
        if not self.damping_ratio >= 0:
            raise ValueError(f"damping_ratio: expected >= 0, got {self.damping_ratio}")


_DYNAMIC = ("x", "v", "w", "q", "f", "t", "x_ref", "wall_hist", "pr_hist", "bd_hist", "bd_rot", "bd_intact",
            "f_head", "load")
_STATIC = ("radius", "mass", "inertia", "inv_m", "inv_i", "kind", "fixed", "strength", "pr_i", "pr_j", "nb_start",
           "nb_row", "bd_i", "bd_j", "bd_d0", "bd_c", "bd_start", "bd_row", "par")
# per-particle state, in the order ``subset`` and ``split`` carry it
_PER_PARTICLE = ("x", "v", "w", "q", "f", "t", "wall_hist", "f_head", "load", "kind", "fixed", "strength")


class Simulation:
    """A DEM system of spheres.

    Parameters
    ----------
    positions_um : (N, 3) array_like
        Centres, z-y-x (µm).
    radii_um : (N,) array_like
        Radii (µm).
    material : Material or sequence of Material
        One material, or one per kind (indexed by ``kinds``).
    velocities_um_s : (N, 3) array_like, optional
        Initial velocities, z-y-x (µm/s); zero by default.
    gravity : bool
        Apply g = 9.81 m/s^2 along -z.
    kinds : (N,) int array_like, optional
        Material index per particle (e.g. 0 NMC, 1 CBD); zeros by default.
    orientations : (N, 4) array_like, optional
        Quaternions ``(w, qx, qy, qz)``; identity by default.
    angular_velocities_rad_s : (N, 3) array_like, optional
        World-frame angular velocities, z-y-x components (rad/s).
    timestep_fraction : float
        Time step as a fraction of the smallest Rayleigh time.
    dt_s : float, optional
        Explicit time step (s), overriding ``timestep_fraction``.
    mass_scaling : float or (N,) array_like
        Density multiplier (>= 1), for all particles or per particle, see
        the module docstring.
    body_acceleration_m_s2 : (3,) array_like, optional
        Extra uniform acceleration, z-y-x (m/s^2), e.g. for deposition.
    background_damping_per_s : float
        Viscous drag ``-c m v`` and ``-c I w`` on every particle (1/s); 0
        for physical runs, > 0 to settle faster.
    bottom_z_um : float, optional
        Height of the bottom wall (µm); none by default.
    box_yx_um : (4,) array_like, optional
        Frictionless side walls ``(y_lo, y_hi, x_lo, x_hi)`` (µm).
    bond_model : BondModel, optional
        Bond constants; needed before :meth:`set_bonds`.
    skin_um : float, optional
        Verlet skin; half the smallest radius by default.
    arch : {"cpu", "gpu"}
        Taichi backend; float64 on both.
    driver : {"cpu", "loops"}, optional
        How a step is parallelised (see :mod:`synthcal.dem.kernels`):
        ``"cpu"`` (the default on the CPU) or ``"loops"`` (the only one on
        the GPU; selectable on the CPU to check it).
    """

    def __init__(self, positions_um, radii_um, material, velocities_um_s=None, gravity=False, *,
                 kinds=None, orientations=None, angular_velocities_rad_s=None,
                 timestep_fraction=0.2, dt_s=None, mass_scaling=1.0,
                 body_acceleration_m_s2=None, background_damping_per_s=0.0,
                 bottom_z_um=None, box_yx_um=None, bond_model=None, skin_um=None,
                 arch="cpu", driver=None):
        x = np.asarray(positions_um, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != 3 or len(x) == 0:
            raise ValueError(f"positions_um: expected shape (N, 3) with N >= 1, got {x.shape}")
        n = len(x)
        r = np.asarray(radii_um, dtype=np.float64)
        if r.shape != (n,) or not np.all(r > 0):
            raise ValueError(f"radii_um: expected {n} positive radii, got shape {r.shape}")
        materials = (material,) if isinstance(material, Material) else tuple(material)
        if not materials or not all(isinstance(m, Material) for m in materials):
            raise ValueError("material: expected a Material or a sequence of Material")
        kinds = np.zeros(n, np.int32) if kinds is None else np.asarray(kinds).astype(np.int32)
        if kinds.shape != (n,) or kinds.min() < 0 or kinds.max() >= len(materials):
            raise ValueError(f"kinds: expected {n} integers in [0, {len(materials)})")
        scaling = np.broadcast_to(np.asarray(mass_scaling, np.float64), (n,))
        if not np.all(scaling >= 1):
            raise ValueError(f"mass_scaling: expected a number or {n} numbers >= 1")
        if not 0 < timestep_fraction <= 1:
            raise ValueError(f"timestep_fraction: expected in (0, 1], got {timestep_fraction}")
        self.arch = ensure_taichi(arch)
        if driver not in (None, "cpu", "loops") or (driver == "cpu" and self.arch != "cpu"):
            raise ValueError(f"driver: expected 'loops', or 'cpu' on the CPU, got {driver!r}")
        self.driver = driver or ("cpu" if self.arch == "cpu" else "loops")
        self.materials, self.bond_model = materials, bond_model
        self.n = n
        self._radius_si = r * _UM
        self._mass = None
        if dt_s is None:
            dt_s = timestep_fraction * min(float(np.min(materials[k].rayleigh_time_s(r[kinds == k], scaling[kinds == k])))
                                           for k in np.unique(kinds))
        if not dt_s > 0:
            raise ValueError(f"dt_s: expected > 0, got {dt_s}")
        self.dt_s = float(dt_s)
        self.skin_um = float(0.5 * r.min() if skin_um is None else skin_um)
        v = np.zeros((n, 3)) if velocities_um_s is None else np.asarray(velocities_um_s, np.float64)
        if v.shape != (n, 3):
            raise ValueError(f"velocities_um_s: expected shape ({n}, 3), got {v.shape}")
        q = np.tile([1.0, 0, 0, 0], (n, 1)) if orientations is None else np.asarray(orientations, np.float64)
        if q.shape != (n, 4):
            raise ValueError(f"orientations: expected shape ({n}, 4), got {q.shape}")
        w = np.zeros((n, 3)) if angular_velocities_rad_s is None else np.asarray(angular_velocities_rad_s, np.float64)
        if w.shape != (n, 3):
            raise ValueError(f"angular_velocities_rad_s: expected shape ({n}, 3), got {w.shape}")

        # stored in cell order; the public arrays keep the order given
        self._set_order(spatial_order(x, float(np.median(r))))
        o = self._order
        self._radius_si = self._radius_si[o]
        self._scaling = scaling[o]
        self._s = {
            "x": x[o] * _UM, "v": v[o] * _UM, "w": w[o], "q": (q / np.linalg.norm(q, axis=1, keepdims=True))[o],
            "f": np.zeros((n, 3)), "t": np.zeros((n, 3)), "x_ref": x[o] * _UM, "wall_hist": np.zeros((n, 2, 3)),
            "f_head": np.zeros(n), "kind": kinds[o], "fixed": np.zeros(n, np.int32),
            "load": np.zeros(n), "strength": np.full(n, np.inf),
        }
        self._on_overload = None
        self._set_mass_arrays()
        if len(materials) > K.MAX_KINDS:
            raise ValueError(f"material: expected at most {K.MAX_KINDS} materials, got {len(materials)}")
        self.set_materials(materials)
        par = np.zeros(K.N_PAR)
        acc = np.zeros(3) if body_acceleration_m_s2 is None else np.asarray(body_acceleration_m_s2, np.float64)
        if acc.shape != (3,):
            raise ValueError(f"body_acceleration_m_s2: expected 3 numbers (z, y, x), got shape {acc.shape}")
        par[K.P_ACC:K.P_ACC + 3] = acc + (np.array([-9.81, 0, 0]) if gravity else 0.0)
        if bottom_z_um is not None:
            par[K.P_BOTTOM_ON], par[K.P_BOTTOM_Z] = 1.0, bottom_z_um * _UM
        par[K.P_HEAD_R2] = -1.0
        par[K.P_ROLL_ON] = self._rolling()
        self._s["par"] = par
        self.set_background_damping(background_damping_per_s)
        if box_yx_um is not None:
            self.set_box(box_yx_um)
        self.head_z_um, self.head_velocity_um_s, self.head_target_z_um = math.inf, 0.0, None
        self.time_s, self.n_steps, self.n_rebuilds = 0.0, 0, 0
        self._set_bonds(np.zeros((0, 2), np.int64), np.zeros(0), np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3)),
                        np.zeros(0, np.int32))
        self._nb_key = np.zeros(0, np.int64)
        self._s["pr_hist"] = np.zeros((0, 3))
        self._rebuild()
        self._forces()

    # ---- storage order ---------------------------------------------------------
    def _set_order(self, order):
        """Store particle ``order[s]`` (public index) in row ``s``."""
        self._order = np.asarray(order, np.int64)
        self._rank = np.empty_like(self._order)
        self._rank[self._order] = np.arange(len(self._order))

    def _public(self, values):
        """Rows of a stored per-particle array in the public order."""
        return values[self._rank]

    # ---- engine ----------------------------------------------------------------
    def _engine(self):
        """Load this simulation into the process-wide engine (if not there)."""
        e = K.engine(self.arch, self.n, len(self._s["pr_i"]), len(self._s["bd_i"]), self.driver)
        if e.owner is not self:
            if e.owner is not None:
                e.owner._save()
            for name in _DYNAMIC + _STATIC:
                e.put(getattr(e, name), self._s[name])
            e.pair_tab.from_numpy(self._pair_tab)
            e.wall_tab.from_numpy(self._wall_tab)
            e.disp2.fill(0.0)
            e.owner = self
        return e

    def _counts(self):
        """Particles, contact pairs and bonds."""
        return self.n, len(self._s["pr_i"]), len(self._s["bd_i"])

    def _save(self):
        """Copy the dynamic state out of the engine (it is about to be reused)."""
        e = self._loaded()
        if e is not None:
            for name in _DYNAMIC:
                e_count = len(self._s[name])
                self._s[name] = e.get(getattr(e, name), e_count)
            e.owner = None

    def _loaded(self):
        """The engine holding this simulation's state, or None."""
        return next((e for e in K._ENGINE.values() if e.owner is self), None)

    def _state(self, name):
        e = self._loaded()
        if e is not None:
            return e.get(getattr(e, name), len(self._s[name]))
        return self._s[name]

    def _set_static(self, name, values):
        self._s[name] = values
        e = self._loaded()
        if e is not None:
            e.put(getattr(e, name), values)

    # ---- state -------------------------------------------------------------
    @property
    def positions_um(self):
        """(N, 3) centres, z-y-x (µm)."""
        return self._public(self._state("x")) / _UM

    @property
    def velocities_um_s(self):
        """(N, 3) velocities, z-y-x (µm/s)."""
        return self._public(self._state("v")) / _UM

    @property
    def angular_velocities_rad_s(self):
        """(N, 3) world-frame angular velocities, z-y-x components (rad/s)."""
        return self._public(self._state("w"))

    @property
    def orientations(self):
        """(N, 4) unit quaternions ``(w, qx, qy, qz)``."""
        return self._public(self._state("q"))

    @property
    def radii_um(self):
        """(N,) radii (µm)."""
        return self._public(self._s["radius"]) / _UM

    @property
    def kinds(self):
        """(N,) material index per particle."""
        return self._public(self._s["kind"])

    @property
    def masses_kg(self):
        """(N,) masses including mass scaling (kg)."""
        return self._public(self._s["mass"])

    @property
    def fixed(self):
        """(N,) bool, particles glued to the bottom."""
        return self._public(self._s["fixed"].astype(bool))

    @property
    def forces_n(self):
        """(N, 3) total force on each particle, z-y-x (N)."""
        return self._public(self._state("f"))

    @property
    def bonds(self):
        """(M, 2) int array of bonded pairs ``i < j``, sorted."""
        return self._public_bonds()[0]

    @property
    def bonds_intact(self):
        """(M,) bool, whether each bond of :attr:`bonds` still holds."""
        return self._state("bd_intact")[self._public_bonds()[1]].astype(bool)

    @property
    def bond_radii_um(self):
        """(M,) radius of each bond of :attr:`bonds` (µm)."""
        return self._bond_radius[self._public_bonds()[1]] / _UM

    def _public_bonds(self):
        """The bonds in public indices (sorted), and the stored bond of each."""
        pairs = np.sort(self._order[np.stack([self._s["bd_i"], self._s["bd_j"]], axis=1)], axis=1)
        which = np.lexsort((pairs[:, 1], pairs[:, 0]))
        return pairs[which], which

    @property
    def head_force_n(self):
        """Force the particles exert on the head along +z (N), summed in a fixed order."""
        return float(self._engine().kernels.head_force(self.n))

    def energies(self):
        """Kinetic (translational + rotational) and elastic energy (J).

        The elastic energy is that of the contacts (Hertz normal and
        Mindlin tangential springs), the bonds and the walls in the current
        state.
        """
        e = self._engine()
        kinetic, elastic = e.kernels.energies(*self._counts(), self._head_z_m())
        return float(kinetic), float(elastic)

    # ---- walls, forces, bonds ------------------------------------------------
    def _set_par(self, index, values):
        par = self._s["par"].copy()
        par[index] = values
        self._set_static("par", par)

    def set_materials(self, materials):
        """Replace the contact constants (same number of kinds; masses stay).

        Used e.g. to pack without friction and then switch friction on.
        """
        materials = tuple(materials)
        if len(materials) != len(self.materials):
            raise ValueError(f"materials: expected {len(self.materials)} materials, got {len(materials)}")
        tab = pair_tables(materials)
        self._pair_tab = np.zeros((K.MAX_KINDS ** 2, K.N_TAB))
        self._wall_tab = np.zeros((K.MAX_KINDS, K.N_TAB))
        nk = len(materials)
        rows = (np.arange(nk)[:, None] * K.MAX_KINDS + np.arange(nk)[None, :]).ravel()
        for c, name in ((K.C_ESTAR, "estar"), (K.C_GSTAR, "gstar"), (K.C_ALPHA, "alpha"), (K.C_MU, "mu"),
                        (K.C_MUR, "mur")):
            self._pair_tab[rows, c] = tab[name]
            self._wall_tab[:nk, c] = tab["wall_" + name]
        for t in (self._pair_tab, self._wall_tab):
            t[:, K.C_SQ2E], t[:, K.C_SQ8G] = np.sqrt(2 * t[:, K.C_ESTAR]), np.sqrt(8 * t[:, K.C_GSTAR])
        self.contact_materials = materials
        e = self._loaded()
        if e is not None:
            e.pair_tab.from_numpy(self._pair_tab)
            e.wall_tab.from_numpy(self._wall_tab)
        if "par" in self._s:
            self._set_par(K.P_ROLL_ON, self._rolling())

    def _rolling(self):
        """1.0 when some contact has rolling resistance, else 0.0."""
        return float(max(self._pair_tab[:, K.C_MUR].max(), self._wall_tab[:, K.C_MUR].max()) > 0)

    def set_background_damping(self, rate_per_s):
        """Set the background drag rate (1/s); 0 switches it off."""
        if not rate_per_s >= 0:
            raise ValueError(f"rate_per_s: expected >= 0, got {rate_per_s}")
        self._set_par(K.P_DAMP, rate_per_s)

    def set_body_acceleration(self, acceleration_m_s2):
        """Set the uniform acceleration, z-y-x (m/s^2), gravity included."""
        acc = np.asarray(acceleration_m_s2, np.float64)
        if acc.shape != (3,):
            raise ValueError(f"acceleration_m_s2: expected 3 numbers (z, y, x), got shape {acc.shape}")
        self._set_par(slice(K.P_ACC, K.P_ACC + 3), acc)

    def set_box(self, box_yx_um):
        """Frictionless side walls ``(y_lo, y_hi, x_lo, x_hi)`` (µm), or None."""
        if box_yx_um is None:
            self._set_par(K.P_BOX_ON, 0.0)
            return
        box = np.asarray(box_yx_um, np.float64)
        if box.shape != (4,):
            raise ValueError(f"box_yx_um: expected (y_lo, y_hi, x_lo, x_hi), got shape {box.shape}")
        self._set_par(slice(K.P_BOX_ON, K.P_BOX + 4), np.concatenate([[1.0], box * _UM]))

    def set_head(self, z_um, velocity_um_s=0.0, target_z_um=None, radius_um=None, center_yx_um=(0.0, 0.0)):
        """Place the flat head (a rigid plane facing -z).

        Parameters
        ----------
        z_um : float
            Height of the head face (µm).
        velocity_um_s : float
            Head velocity along z (µm/s; negative moves down).
        target_z_um : float, optional
            The head stops when it reaches this height.
        radius_um : float, optional
            Disc radius (µm); an infinite plane when None.
        center_yx_um : (2,) float
            Disc axis position (µm).
        """
        self.head_z_um, self.head_velocity_um_s = float(z_um), float(velocity_um_s)
        self.head_target_z_um = None if target_z_um is None else float(target_z_um)
        cy, cx = np.asarray(center_yx_um, np.float64) * _UM
        r2 = -1.0 if radius_um is None else (radius_um * _UM) ** 2
        self._set_par(slice(K.P_HEAD_ON, K.P_HEAD_CX + 1), [1.0, r2, cy, cx])

    def set_radii(self, radii_um, *, keep_masses=True):
        """Change the radii (radius growth); masses stay unless told otherwise.

        Keeping the masses while particles grow keeps the time step valid
        (the Rayleigh time of a particle of fixed mass grows as it shrinks).
        """
        r = np.asarray(radii_um, np.float64)
        if r.shape != (self.n,) or not np.all(r > 0):
            raise ValueError(f"radii_um: expected {self.n} positive radii")
        self._radius_si = r[self._order] * _UM
        if not keep_masses:
            self._mass = None
        self._set_mass_arrays()
        self._rebuild()
        self._forces()

    def fix_touching_bottom(self, tolerance_um=0.0):
        """Glue to the foil every particle within ``tolerance_um`` of the bottom.

        Returns
        -------
        int
            Number of fixed particles.
        """
        par = self._s["par"]
        if par[K.P_BOTTOM_ON] == 0:
            raise ValueError("fix_touching_bottom: the simulation has no bottom wall (bottom_z_um)")
        gap = self._public(self._state("x"))[:, 0] - self.radii_um * _UM - par[K.P_BOTTOM_Z]
        return self.set_fixed(gap <= tolerance_um * _UM)

    def set_fixed(self, fixed):
        """Glue the particles ``fixed`` (bool per particle, public order) to the foil; free the rest.

        Returns
        -------
        int
            Number of fixed particles.
        """
        fixed = np.asarray(fixed, bool)
        if fixed.shape != (self.n,):
            raise ValueError(f"fixed: expected {self.n} booleans, got shape {fixed.shape}")
        self._set_static("fixed", fixed[self._order].astype(np.int32))
        return int(fixed.sum())

    def place(self, indices, positions_um):
        """Put the particles ``indices`` (public order) at ``positions_um`` (µm, z-y-x), at rest.

        Orientations, glue and bonds stay; the neighbour list is rebuilt and
        the forces are those of the new state (the next step's first
        half-kick uses them).
        """
        indices = np.asarray(indices, np.int64).reshape(-1)
        positions_um = np.asarray(positions_um, np.float64).reshape(-1, 3)
        if len(positions_um) != len(indices):
            raise ValueError(f"positions_um: expected {len(indices)} rows (one per index), got {len(positions_um)}")
        rows = self._rank[indices]
        for name, values in (("x", positions_um * _UM), ("v", 0.0), ("w", 0.0)):
            state = self._state(name).copy()
            state[rows] = values
            self._set_static(name, state)
        self._rebuild()
        self._forces()

    def set_bonds(self, pairs, radii_um):
        """Bond the particle pairs ``pairs`` with binder cylinders of radii ``radii_um``.

        Replaces any earlier bonds. The rest length of a bond is the centre
        distance now, so bonds form without force.

        Parameters
        ----------
        pairs : (M, 2) int array_like
            Particle indices (public order), each pair once, in any order.
        radii_um : (M,) array_like
            Bond radius per pair (µm), > 0.

        Returns
        -------
        int
            Number of bonds.
        """
        pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
        a = np.asarray(radii_um, np.float64)
        if a.shape != (len(pairs),) or not np.all(a > 0):
            raise ValueError(f"radii_um: expected {len(pairs)} positive bond radii, got shape {a.shape}")
        if len(pairs) and (pairs.min() < 0 or pairs.max() >= self.n or np.any(pairs[:, 0] == pairs[:, 1])):
            raise ValueError(f"pairs: expected pairs of two different particle indices in [0, {self.n})")
        rows = np.sort(self._rank[pairs], axis=1)
        key = rows[:, 0] * self.n + rows[:, 1]
        if len(np.unique(key)) != len(key):
            raise ValueError("pairs: expected each pair once")
        order = np.argsort(key)
        rows, a = rows[order], a[order]
        x = self._state("x")
        d0 = np.linalg.norm(x[rows[:, 1]] - x[rows[:, 0]], axis=1)
        m = len(rows)
        self._set_bonds(rows, d0, a * _UM, np.zeros((m, 3)), np.zeros((m, 3)), np.ones(m, np.int32))
        return m

    def _set_bonds(self, pairs, d0, radius, hist, rot, intact):
        """Store bonds ``pairs`` (stored rows, i < j, sorted) and each particle's rows into them.

        ``d0`` and ``radius`` (m), ``hist`` (shear displacement as seen from
        the lower row, m), ``rot`` (relative rotation, likewise, rad) and
        ``intact`` are per bond.
        """
        self._save()
        m = len(pairs)
        start, row = pair_rows(pairs, self.n)
        self._s.update(bd_i=pairs[:, 0].astype(np.int32), bd_j=pairs[:, 1].astype(np.int32), bd_start=start,
                       bd_row=row, bd_d0=np.asarray(d0, np.float64).reshape(m),
                       bd_hist=np.asarray(hist, np.float64).reshape(m, 3),
                       bd_rot=np.asarray(rot, np.float64).reshape(m, 3),
                       bd_intact=np.asarray(intact, np.int32).reshape(m))
        self._bond_radius = np.asarray(radius, np.float64).reshape(m)
        self._s["bd_c"] = self._bond_constants()

    def _bond_constants(self):
        """Per-bond stiffnesses, dampings, radius and breaking limits (see ``kernels.B_*``).

        Fixed while radii and masses are: computing them once saves square
        roots and divisions per bond and step. The breaking limits are the
        strengths as lengths: ``F_n / A + |M_b| a / I = E (stretch + a
        bend) / L0`` and ``|F_s| / A + |M_t| a / J = G (|shear| + a twist)
        / L0``.
        """
        b, i, j, d0 = self.bond_model, self._s["bd_i"], self._s["bd_j"], self._s["bd_d0"]
        if len(d0) == 0:
            return np.zeros((0, K.N_BOND))
        if b is None:
            raise ValueError("bond_model: expected a BondModel to form bonds, got None")
        a, m = self._bond_radius, self._mass
        inertia = 0.4 * m * self._radius_si ** 2
        e, g = b.youngs_modulus_pa, b.youngs_modulus_pa / (2.0 * (1.0 + b.poisson_ratio))
        area, second = np.pi * a ** 2, np.pi * a ** 4 / 4.0
        out = np.zeros((len(d0), K.N_BOND))
        out[:, K.B_KN], out[:, K.B_KT] = e * area / d0, g * area / d0
        out[:, K.B_KB], out[:, K.B_KW] = e * second / d0, g * 2.0 * second / d0
        meff = m[i] * m[j] / (m[i] + m[j])
        ieff = inertia[i] * inertia[j] / (inertia[i] + inertia[j])
        for k, damp, mass in ((K.B_KN, K.B_GN, meff), (K.B_KT, K.B_GT, meff), (K.B_KB, K.B_GB, ieff),
                              (K.B_KW, K.B_GW, ieff)):
            out[:, damp] = 2.0 * b.damping_ratio * np.sqrt(out[:, k] * mass)
        out[:, K.B_RADIUS] = a
        out[:, K.B_TENSION] = b.tensile_strength_pa * d0 / e
        out[:, K.B_SHEAR] = b.shear_strength_pa * d0 / g
        return out

    @property
    def loads_n(self):
        """(N,) largest elastic normal contact force on each particle (particles, foil, head) now (N)."""
        return self._public(self._state("load"))

    @property
    def strengths_n(self):
        """(N,) contact force each particle breaks at (N); inf: unbreakable."""
        return self._public(self._s["strength"])

    def set_strengths(self, strengths_n, on_overload=None):
        """Set the force (N) each particle breaks at, and what breaking does.

        Parameters
        ----------
        strengths_n : (N,) array_like
            Largest elastic normal contact force (:attr:`loads_n`) each
            particle bears (N); ``inf`` for one that does not break.
        on_overload : callable, optional
            Called as ``on_overload(sim, indices)`` within a step of the
            moment particles ``indices`` (public order) pass their strength;
            it must break them (:meth:`split`) or raise their strength.
            Needed for any finite strength.
        """
        st = np.asarray(strengths_n, np.float64)
        if st.shape != (self.n,) or not np.all(st > 0):
            raise ValueError(f"strengths_n: expected {self.n} positive forces, got shape {st.shape}")
        if on_overload is None and np.isfinite(st).any():
            raise ValueError("on_overload: expected a handler for particles with finite strength")
        self._on_overload = on_overload
        self._set_static("strength", st[self._order])

    def split(self, i, positions_um, radii_um, masses_kg):
        """Replace particle ``i`` by rigid fragments (spheres) that move on as it did.

        Fragment 0 takes index ``i``; the others are appended (indices
        ``n, n + 1, ...``), so the indices of the other particles stay.
        Each fragment moves with the parent's rigid motion (velocity
        ``v + w x r``, the parent's spin) and starts with its orientation,
        kind, glue and an infinite strength. A bond of the parent goes to
        the fragment nearest its other end, with its stretch, shear and
        rotation kept and its radius scaled by the fragment's contact radius
        over the parent's (a bridge as wide as the parent on a fragment a
        fraction its size is stiff against that fragment's small inertia: at
        full width a tiny pillar's fragments blew up, "particles left the
        domain"); contact histories of the parent are dropped.

        Parameters
        ----------
        i : int
            The particle (public index).
        positions_um : (k, 3) array_like
            Fragment centres, z-y-x (µm).
        radii_um : (k,) array_like
            Fragment contact radii (µm).
        masses_kg : (k,) array_like
            Fragment masses (kg), mass scaling included; their sum is the
            caller's to keep.

        Returns
        -------
        (k,) int
            Indices of the fragments.
        """
        x = np.asarray(positions_um, np.float64).reshape(-1, 3) * _UM
        k = len(x)
        r, m = np.asarray(radii_um, np.float64) * _UM, np.asarray(masses_kg, np.float64)
        if not 0 <= i < self.n:
            raise ValueError(f"i: expected a particle index in [0, {self.n}), got {i}")
        if k < 1 or r.shape != (k,) or m.shape != (k,) or not (np.all(r > 0) and np.all(m > 0)):
            raise ValueError(f"radii_um, masses_kg: expected {k} positive values each")
        self._save()
        old, n_old, old_order = self._s, self.n, self._order
        old_radius = self._radius_si
        pub = {name: self._public(old[name]) for name in _PER_PARTICLE}
        rel = x - pub["x"][i]
        # v + w x r; in z-y-x components (a left-handed basis) the cross product changes sign
        fill = dict(x=x, v=pub["v"][i] - np.cross(pub["w"][i], rel), f=np.zeros((k, 3)), t=np.zeros((k, 3)),
                    wall_hist=np.zeros((k, 2, 3)), f_head=np.zeros(k), load=np.zeros(k),
                    strength=np.full(k, np.inf))
        for name in _PER_PARTICLE:
            rows = fill[name] if name in fill else np.repeat(pub[name][i:i + 1], k, axis=0)
            pub[name] = np.concatenate([pub[name], rows[1:]])
            pub[name][i] = rows[0]
        radius, mass, scaling = (np.concatenate([self._public(a), b[1:]]) for a, b in (
            (self._radius_si, r), (self._mass, m), (self._scaling, np.full(k, self._public(self._scaling)[i]))))
        radius[i], mass[i] = r[0], m[0]
        self.n = n_old + k - 1
        self._set_order(spatial_order(pub["x"] / _UM, float(np.median(radius)) / _UM))
        o = self._order
        self._s = {name: pub[name][o] for name in _PER_PARTICLE}
        self._s.update(x_ref=self._s["x"], par=old["par"])
        self._radius_si, self._mass, self._scaling = radius[o], mass[o], scaling[o]
        frag = np.concatenate([[i], np.arange(n_old, self.n)])
        remap = self._rank[old_order]  # stored row before -> stored row now
        parent_row = int(np.flatnonzero(old_order == i)[0])
        remap_contacts = remap.copy()
        remap_contacts[parent_row] = -1
        ends, _, (hist,) = _remap_pairs(old["pr_i"], old["pr_j"], remap_contacts, old["pr_hist"])
        self._nb_key = ends[:, 0] * self.n + ends[:, 1]
        self._s["pr_hist"] = hist
        # a bond of the parent goes to the fragment nearest its other end; its rest length keeps its stretch
        a, b = remap[old["bd_i"]], remap[old["bd_j"]]
        d0 = old["bd_d0"].copy()
        bond_radius = self._bond_radius.copy()
        parent_radius = float(old_radius[parent_row])
        xs = self._s["x"]
        frag_rows = self._rank[frag]
        for end, other, old_end in ((a, b, old["bd_i"]), (b, a, old["bd_j"])):
            at = np.flatnonzero(old_end == parent_row)
            if len(at):
                gap = np.linalg.norm(xs[other[at]][:, None] - xs[frag_rows][None], axis=2)
                near = np.argmin(gap, axis=1)
                before = np.linalg.norm(xs[other[at]] - old["x"][parent_row], axis=1)
                d0[at] += gap[np.arange(len(at)), near] - before
                end[at] = frag_rows[near]
                bond_radius[at] *= np.minimum(1.0, self._radius_si[frag_rows[near]] / parent_radius)
        ends, kept, (bhist, brot) = _remap_pairs(a, b, None, old["bd_hist"], old["bd_rot"])
        self._set_bonds(ends, d0[kept], bond_radius[kept], bhist, brot, old["bd_intact"][kept])
        self._set_mass_arrays()
        self._rebuild()
        self._forces()
        return frag

    # ---- stepping ------------------------------------------------------------
    def _set_mass_arrays(self):
        if getattr(self, "_mass", None) is None:
            rho = np.array([m.density_kg_m3 for m in self.materials])[self._s["kind"]] * self._scaling
            self._mass = rho * (4 / 3 * np.pi) * self._radius_si ** 3
        inertia = 0.4 * self._mass * self._radius_si ** 2
        for name, values in (("radius", self._radius_si), ("mass", self._mass), ("inertia", inertia),
                             ("inv_m", 1.0 / self._mass), ("inv_i", 1.0 / inertia)):
            self._set_static(name, values)
        if "bd_d0" in self._s:
            self._set_static("bd_c", self._bond_constants())

    def _rebuild(self):
        """New Verlet list; tangential histories of surviving pairs carry over.

        Only the list goes to the engine when it fits there; a full reload
        of the engine costs some 30 copies of 0.1-0.5 ms each.
        """
        x = self._state("x")
        hist = self._state("pr_hist")
        pairs = candidate_pairs(x / _UM, self._radius_si / _UM, self.skin_um)
        e = self._loaded()
        if e is None or e.c_cap < len(pairs):
            self._save()
            e = None
        start, row = pair_rows(pairs, self.n)
        key = pairs[:, 0] * self.n + pairs[:, 1]
        self._s.update(pr_i=pairs[:, 0].astype(np.int32), pr_j=pairs[:, 1].astype(np.int32), nb_start=start,
                       nb_row=row, pr_hist=carry_over(self._nb_key, hist, key), x_ref=x)
        if e is not None:
            for name in ("pr_i", "pr_j", "nb_start", "nb_row", "pr_hist", "x_ref"):
                e.put(getattr(e, name), self._s[name])
            e.disp2.fill(0.0)
        self._nb_key = key
        self.n_rebuilds += 1

    def _forces(self):
        """Forces of the current state; a zero time step leaves the histories as they are."""
        e = self._engine()
        e.kernels.forces_now(*self._counts(), 0.0, self._head_z_m(), self.head_velocity_um_s * _UM)

    def _head_z_m(self):
        """Head height for the kernels (m); 1 m, far above everything, when there is no head."""
        return self.head_z_um * _UM if math.isfinite(self.head_z_um) else 1.0

    def step(self, n_steps=1):
        """Advance ``n_steps`` time steps.

        The neighbour list is rebuilt after a step in which some particle
        has moved more than 0.4 skin since the last build: a pair can then
        have closed at most 0.8 skin plus one step's travel, so no contact is
        missed while a step moves particles by much less than 0.2 skin.

        Steps go to the engine in batches that read nothing back between
        steps: the engine checks the trigger itself after each step and ends
        the batch once it has fired. A particle loaded past its strength
        (:meth:`set_strengths`) fires it too; the batch then ends within a
        step and the overload handler runs before the next one.
        """
        trigger = (0.4 * self.skin_um * _UM) ** 2
        left = int(n_steps)
        while left > 0:
            e = self._engine()
            k = min(left, K.BATCH)
            head_z_um, head_v_um_s = self._head_track(k)
            done, fired = e.run_batch(self._counts(), self.dt_s, trigger,
                                      np.where(np.isfinite(head_z_um), head_z_um * _UM, 1.0), head_v_um_s * _UM)
            self.head_z_um, self.head_velocity_um_s = float(head_z_um[done - 1]), float(head_v_um_s[done - 1])
            self.n_steps += done
            left -= done
            if fired:
                over = np.flatnonzero(self.loads_n > self.strengths_n) if self._on_overload else []
                if len(over):
                    self._on_overload(self, over)
                self._rebuild()
        self.time_s = self.n_steps * self.dt_s

    def _head_track(self, k):
        """Head height (µm) and velocity (µm/s) during each of the next ``k`` steps.

        The same sums, in the same order, as moving the head step by step,
        so the head stops on its target at the same step.
        """
        z, vel = self.head_z_um, self.head_velocity_um_s
        if vel == 0.0:
            return np.full(k, z), np.full(k, vel)
        z = np.add.accumulate(np.concatenate([[z], np.full(k, vel * self.dt_s)]))[1:]
        vel = np.full(k, vel)
        tz = self.head_target_z_um
        if tz is not None:
            past = np.flatnonzero((z - tz) * vel >= 0)
            if len(past):
                z[past[0]:], vel[past[0]:] = tz, 0.0
        return z, vel

    def run(self, duration_s, callback=None, every_steps=100):
        """Advance by ``duration_s`` seconds (rounded up to whole steps).

        Parameters
        ----------
        duration_s : float
            Simulated time (s).
        callback : callable, optional
            Called as ``callback(sim)`` every ``every_steps`` steps and at the end.
        every_steps : int
            Steps between callbacks.
        """
        if not duration_s >= 0:
            raise ValueError(f"duration_s: expected >= 0, got {duration_s}")
        total = int(math.ceil(duration_s / self.dt_s - 1e-9))
        done = 0
        while done < total:
            chunk = min(every_steps, total - done) if callback else total - done
            self.step(chunk)
            done += chunk
            if callback:
                callback(self)

    # ---- subsets -------------------------------------------------------------
    def subset(self, keep):
        """A new simulation with the particles ``keep`` (bool mask or indices).

        Particles keep their relative order. State (velocities, spins,
        orientations, glue to the foil, walls, head, contact histories, bonds
        between kept particles and their state, time) carries over; bonds to
        removed particles vanish.
        """
        keep = np.asarray(keep)
        idx = np.flatnonzero(keep) if keep.dtype == bool else np.unique(keep.astype(np.int64))
        if len(idx) == 0:
            raise ValueError("keep: expected at least one particle")
        self._save()
        old = self._s
        new = Simulation.__new__(Simulation)
        new.__dict__.update(self.__dict__)
        n_old, new.n = self.n, len(idx)
        # public index k of the new simulation is public index idx[k] here
        rows = self._rank[idx]
        new._set_order(spatial_order(old["x"][rows], float(np.median(self._radius_si[rows]))))
        src = rows[new._order]
        remap = -np.ones(n_old, np.int64)  # stored row here -> stored row there
        remap[src] = np.arange(new.n)
        new._s = {name: old[name][src] for name in _PER_PARTICLE}
        new._s["x_ref"] = new._s["x"]
        new._s["par"] = old["par"].copy()
        new._radius_si, new._mass, new._scaling = self._radius_si[src], self._mass[src], self._scaling[src]
        new._set_mass_arrays()
        ends, _, (hist,) = _remap_pairs(old["pr_i"], old["pr_j"], remap, old["pr_hist"])
        new._nb_key = ends[:, 0] * new.n + ends[:, 1]
        new._s["pr_hist"] = hist
        ends, kept, (hist, rot) = _remap_pairs(old["bd_i"], old["bd_j"], remap, old["bd_hist"], old["bd_rot"])
        new._set_bonds(ends, old["bd_d0"][kept], self._bond_radius[kept], hist, rot, old["bd_intact"][kept])
        new._rebuild()
        return new


def _remap_pairs(i, j, remap, *seen_from_first):
    """Pairs between kept particles under new row numbers, ``i < j`` and sorted.

    ``remap`` maps old rows to new ones (-1: removed); None when ``i`` and
    ``j`` already are new rows. Returns the new ends, the indices of the
    kept pairs and, for each
    per-pair vector array in ``seen_from_first`` (tangential history,
    relative rotation), its kept rows as seen from the new first end:
    negated where the ends swap.
    """
    a, b = (i, j) if remap is None else (remap[i], remap[j])
    kept = np.flatnonzero((a >= 0) & (b >= 0))
    a, b = a[kept], b[kept]
    swap = a > b
    ends = np.stack([np.where(swap, b, a), np.where(swap, a, b)], axis=1)
    order = np.lexsort((ends[:, 1], ends[:, 0]))
    flipped = [np.where(swap[:, None], -h[kept], h[kept])[order] for h in seen_from_first]
    return ends[order], kept[order], flipped
