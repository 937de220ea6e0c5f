"""Contact materials: elastic constants, damping from restitution, time step.

Pair laws follow the Hertz–Mindlin model as used in LIGGGHTS
(``model hertz tangential history``): for two spheres of radii R1, R2, masses
m1, m2 and materials (E1, nu1), (E2, nu2)

- ``1/E* = (1-nu1^2)/E1 + (1-nu2^2)/E2``, ``1/G* = 2(2-nu1)(1+nu1)/E1 + 2(2-nu2)(1+nu2)/E2``
- ``R* = R1 R2/(R1+R2)``, ``m* = m1 m2/(m1+m2)``
- normal force ``F_n = 4/3 E* sqrt(R* d) d + gamma_n v_n``, ``gamma_n = alpha sqrt(S_n m*)``
  with ``S_n = 2 E* sqrt(R* d)``
- tangential spring ``k_t = 8 G* sqrt(R* d)`` on the accumulated tangential
  displacement, damping ``gamma_t = alpha sqrt(k_t m*)``, Coulomb limit ``mu F_n``.

The damping coefficient ``alpha`` follows from the coefficient of restitution
``e`` (:func:`damping_coefficient`).
A rigid wall is the limit ``E2 -> inf``, ``R2 -> inf``, ``m2 -> inf``.
"""

import enum
import math
from dataclasses import dataclass

import numpy as np


class ParticleKind(enum.IntEnum):
    """Material index of a DEM particle (not a voxel label: see ``analysis.phases.Phase``)."""

    NMC = 0
    CBD = 1


@dataclass(frozen=True)
class Material:
    """Elastic and frictional constants of one particle species.

    Parameters
    ----------
    youngs_modulus_pa : float
        Young's modulus E (Pa).
    poisson_ratio : float
        Poisson ratio nu, in [0, 0.5).
    density_kg_m3 : float
        Particle density (kg/m^3).
    restitution : float
        Normal coefficient of restitution e, in (0, 1].
    friction : float
        Coulomb friction coefficient mu (sliding), >= 0.
    rolling_friction : float
        Rolling-resistance coefficient mu_r (constant directional torque,
        ``M = mu_r R* F_n``), >= 0.
    """

    youngs_modulus_pa: float
    poisson_ratio: float
    density_kg_m3: float
    restitution: float = 0.5
    friction: float = 0.4
    rolling_friction: float = 0.0

    def __post_init__(self):
        if not self.youngs_modulus_pa > 0:
            raise ValueError(f"youngs_modulus_pa: expected > 0, got {self.youngs_modulus_pa}")
        if not 0 <= self.poisson_ratio < 0.5:
            raise ValueError(f"poisson_ratio: expected in [0, 0.5), got {self.poisson_ratio}")
        if not self.density_kg_m3 > 0:
            raise ValueError(f"density_kg_m3: expected > 0, got {self.density_kg_m3}")
        if not 0 < self.restitution <= 1:
            raise ValueError(f"restitution: expected in (0, 1], got {self.restitution}")
        if not self.friction >= 0:
            raise ValueError(f"friction: expected >= 0, got {self.friction}")
        if not self.rolling_friction >= 0:
            raise ValueError(f"rolling_friction: expected >= 0, got {self.rolling_friction}")

    @property
    def shear_modulus_pa(self):
        """Shear modulus G = E / (2 (1 + nu)) (Pa)."""
        return self.youngs_modulus_pa / (2.0 * (1.0 + self.poisson_ratio))

    def rayleigh_time_s(self, radius_um, mass_scaling=1.0):
        """Rayleigh wave transit time over a sphere of this material (s).

        ``T_R = pi R sqrt(rho/G) / (0.1631 nu + 0.8766)``; the DEM time step is
        a fraction of its smallest value over the particles. Radii and
        scalings may be arrays.
        """
        rho = self.density_kg_m3 * np.asarray(mass_scaling, np.float64)
        return (math.pi * np.asarray(radius_um, np.float64) * 1e-6 * np.sqrt(rho / self.shear_modulus_pa)
                / (0.1631 * self.poisson_ratio + 0.8766))


def effective_youngs_modulus(a, b=None):
    """E* of two materials (Pa); ``b=None`` is a rigid wall."""
    inv = (1 - a.poisson_ratio ** 2) / a.youngs_modulus_pa
    if b is not None:
        inv += (1 - b.poisson_ratio ** 2) / b.youngs_modulus_pa
    return 1.0 / inv


def effective_shear_modulus(a, b=None):
    """Mindlin G* of two materials (Pa); ``b=None`` is a rigid wall."""
    def term(m):
        return 2 * (2 - m.poisson_ratio) * (1 + m.poisson_ratio) / m.youngs_modulus_pa
    inv = term(a) + (term(b) if b is not None else 0.0)
    return 1.0 / inv


def damping_coefficient(restitution):
    """Damping coefficient alpha for the coefficient of restitution e.

    ``alpha = 2 sqrt(5/6) |ln e| / sqrt(ln^2 e + pi^2)`` (LIGGGHTS, Tsuji et
    al. 1992). With damping proportional to ``d^(1/4)`` the restitution does
    not depend on the impact speed; integrating the dimensionless collision
    ``x'' = -x^(3/2) - alpha sqrt(3/2) x^(1/4) x'`` gives back e to 1e-8
    for e = 0.1, 0.5, 0.9 (checked when this was written), so the formula is
    exact for this force law and no calibration is needed.

    Parameters
    ----------
    restitution : float
        Coefficient of restitution in (0, 1].

    Returns
    -------
    float
        ``alpha`` in ``gamma_n = alpha sqrt(S_n m*)`` (dimensionless).
    """
    if not 0 < restitution <= 1:
        raise ValueError(f"restitution: expected in (0, 1], got {restitution}")
    if restitution >= 1:
        return 0.0
    ln_e = math.log(restitution)
    return 2.0 * math.sqrt(5.0 / 6.0) * (-ln_e) / math.sqrt(ln_e ** 2 + math.pi ** 2)


def pair_tables(materials):
    """Per-pair and per-wall constants as flat float64 arrays.

    Parameters
    ----------
    materials : sequence of Material
        Indexed by particle kind.

    Returns
    -------
    dict
        ``estar``, ``gstar``, ``alpha``, ``mu``, ``mur``: (K*K,) arrays for
        particle pairs (kind a, kind b at ``a*K+b``); ``wall_*``: (K,) arrays
        for a particle of each kind against a rigid wall.
    """
    k = len(materials)
    out = {name: np.zeros(k * k) for name in ("estar", "gstar", "alpha", "mu", "mur")}
    for a, ma in enumerate(materials):
        for b, mb in enumerate(materials):
            e = 0.5 * (ma.restitution + mb.restitution)
            out["estar"][a * k + b] = effective_youngs_modulus(ma, mb)
            out["gstar"][a * k + b] = effective_shear_modulus(ma, mb)
            out["alpha"][a * k + b] = damping_coefficient(e)
            out["mu"][a * k + b] = math.sqrt(ma.friction * mb.friction)
            out["mur"][a * k + b] = math.sqrt(ma.rolling_friction * mb.rolling_friction)
    out["wall_estar"] = np.array([effective_youngs_modulus(m) for m in materials])
    out["wall_gstar"] = np.array([effective_shear_modulus(m) for m in materials])
    out["wall_alpha"] = np.array([damping_coefficient(m.restitution) for m in materials])
    out["wall_mu"] = np.array([m.friction for m in materials], dtype=np.float64)
    out["wall_mur"] = np.array([m.rolling_friction for m in materials], dtype=np.float64)
    return out
