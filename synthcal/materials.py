"""Materials of the synthetic experiment and their X-ray attenuation.

Every linear attenuation coefficient comes from xraydb (Elam et al. tables)
evaluated for a chemical formula and a density listed here with its source;
no attenuation value is typed in by hand.

Registry names: ``"nmc333"``, ``"cbd"``, ``"air"``, ``"diamond"``,
``"aluminium"``, ``"epoxy"``, ``"steel"``.
"""

from dataclasses import dataclass

import numpy as np
import xraydb

AVOGADRO_PER_MOL = 6.02214076e23


@dataclass(frozen=True)
class Material:
    """A material as the forward model sees it.

    Attributes
    ----------
    name : str
        Registry name.
    formula : str
        Chemical formula xraydb can parse (fractional counts allowed).
    density_g_cm3 : float
        Bulk density in g/cm³ (including any porosity below the voxel scale).
    note : str
        Where the composition and density come from.
    """

    name: str
    formula: str
    density_g_cm3: float
    note: str


def _molar_mass_g_mol(formula):
    return sum(count * xraydb.atomic_mass(el) for el, count in xraydb.chemparse(formula).items())


def mixture_formula(mass_fractions):
    """Formula of a mixture given by the mass fraction of each component.

    Parameters
    ----------
    mass_fractions : dict of str -> float
        Component formula -> mass fraction (normalised here).

    Returns
    -------
    str
        A formula whose element counts are the moles of each element per gram
        of mixture, so its mass attenuation equals the mass-weighted sum of the
        components'.
    """
    total = sum(mass_fractions.values())
    if total <= 0 or any(w < 0 for w in mass_fractions.values()):
        raise ValueError("mass_fractions: expected non-negative fractions with a positive sum")
    moles = {}
    for formula, w in mass_fractions.items():
        per_gram = (w / total) / _molar_mass_g_mol(formula)
        for el, count in xraydb.chemparse(formula).items():
            moles[el] = moles.get(el, 0.0) + count * per_gram
    return "".join(f"{el}{n:.8g}" for el, n in sorted(moles.items()))


def mixture_density_g_cm3(mass_fractions, densities_g_cm3):
    """Density of a void-free mixture: 1 / sum(w_i / rho_i)."""
    total = sum(mass_fractions.values())
    return 1.0 / sum((w / total) / densities_g_cm3[k] for k, w in mass_fractions.items())


def _nmc333_crystal_density_g_cm3():
    # R-3m layered oxide, hexagonal cell a = 2.862 Å, c = 14.227 Å, Z = 3
    # (Yabuuchi & Ohzuku, J. Power Sources 119 (2003) 171).
    a_cm, c_cm, z = 2.862e-8, 14.227e-8, 3
    cell_cm3 = np.sqrt(3.0) / 2.0 * a_cm**2 * c_cm
    return z * _molar_mass_g_mol(NMC333_FORMULA) / (AVOGADRO_PER_MOL * cell_cm3)


NMC333_FORMULA = "LiNi0.33333333Mn0.33333333Co0.33333333O2"
CARBON_BLACK_DENSITY_G_CM3 = 1.9   # skeletal density of conductive carbon black (He pycnometry, 1.8-2.1)
PVDF_DENSITY_G_CM3 = 1.78          # PVDF homopolymer, (C2H2F2)n, Kynar data sheet 1.77-1.79


def cbd_material(nanoporosity=0.5, carbon_to_binder_mass_ratio=1.0):
    """Carbon-binder domain: carbon black + PVDF with sub-voxel nanoporosity.

    Parameters
    ----------
    nanoporosity : float
        Pore volume fraction inside the CBD, below the voxel scale, in [0, 1).
    carbon_to_binder_mass_ratio : float
        Mass of carbon black per mass of PVDF (1:1 in a 90:5:5 electrode).
    """
    if not 0.0 <= nanoporosity < 1.0:
        raise ValueError(f"nanoporosity: expected a fraction in [0, 1), got {nanoporosity}")
    if carbon_to_binder_mass_ratio <= 0:
        raise ValueError(f"carbon_to_binder_mass_ratio: expected > 0, got {carbon_to_binder_mass_ratio}")
    fractions = {"C": carbon_to_binder_mass_ratio, "C2H2F2": 1.0}
    solid = mixture_density_g_cm3(fractions, {"C": CARBON_BLACK_DENSITY_G_CM3,
                                              "C2H2F2": PVDF_DENSITY_G_CM3})
    return Material(
        name="cbd",
        formula=mixture_formula(fractions),
        density_g_cm3=solid * (1.0 - nanoporosity),
        note=(f"carbon black ({CARBON_BLACK_DENSITY_G_CM3} g/cm3) + PVDF ({PVDF_DENSITY_G_CM3} g/cm3), "
              f"mass ratio {carbon_to_binder_mass_ratio}:1, solid density {solid:.3f} g/cm3 "
              f"times (1 - nanoporosity {nanoporosity})"),
    )


def binder_volume_per_nmc_volume(mass_ratio_nmc_carbon_pvdf, nanoporosity):
    """Volume of the carbon-binder domain per volume of NMC in an electrode of this recipe.

    ``V_CBD / V_NMC = ((m_C / rho_C + m_PVDF / rho_PVDF) / (1 - nanoporosity)) / (m_NMC / rho_NMC)``:
    the carbon black and PVDF skeleton (densities above) swollen by the
    CBD's nanopores, over the NMC at its crystal density (the registry's
    ``"nmc333"``; the sub-voxel internal pores of a secondary particle are
    texture, inside the NMC label). For 90:5:5 and nanoporosity 0.5 it is
    0.576.

    Parameters
    ----------
    mass_ratio_nmc_carbon_pvdf : sequence of 3 float
        Masses of NMC, carbon black and PVDF (any common unit), NMC > 0.
    nanoporosity : float
        Pore volume fraction inside the CBD, in [0, 1).

    Returns
    -------
    float
    """
    m_nmc, m_carbon, m_pvdf = (float(m) for m in mass_ratio_nmc_carbon_pvdf)
    if not m_nmc > 0 or m_carbon < 0 or m_pvdf < 0:
        raise ValueError("mass_ratio_nmc_carbon_pvdf: expected [NMC > 0, carbon >= 0, PVDF >= 0], "
                         f"got {list(mass_ratio_nmc_carbon_pvdf)}")
    if not 0.0 <= nanoporosity < 1.0:
        raise ValueError(f"nanoporosity: expected a fraction in [0, 1), got {nanoporosity}")
    skeleton_volume = m_carbon / CARBON_BLACK_DENSITY_G_CM3 + m_pvdf / PVDF_DENSITY_G_CM3
    return skeleton_volume / (1.0 - nanoporosity) / (m_nmc / _nmc333_crystal_density_g_cm3())


def _build_registry():
    air_formula, air_density = xraydb.get_material("air")
    steel = {"Fe": 0.71, "Cr": 0.19, "Ni": 0.09, "Mn": 0.01}
    return {m.name: m for m in (
        Material("nmc333", NMC333_FORMULA, _nmc333_crystal_density_g_cm3(),
                 "LiNi1/3Mn1/3Co1/3O2 crystal (X-ray) density from its lattice; the skeleton of a "
                 "secondary particle (internal pores are modelled as texture)"),
        cbd_material(),
        Material("air", air_formula, air_density, "dry air at 1 atm, 15 C (xraydb material 'air')"),
        Material("diamond", "C", 3.51, "single-crystal diamond flat punch"),
        Material("aluminium", "Al", 2.699, "aluminium current-collector foil"),
        Material("epoxy", "C21H24O4", 1.16, "DGEBA epoxy resin (cured density 1.1-1.2)"),
        Material("steel", mixture_formula(steel), 8.0,
                 "AISI 304 stainless steel pin (Fe bal., Cr 18-20, Ni 8-10.5, Mn <2 wt%)"),
    )}


MATERIALS = _build_registry()


def get_material(name):
    """Registry entry for ``name`` (see the module docstring)."""
    if name not in MATERIALS:
        raise ValueError(f"name: expected one of {sorted(MATERIALS)}, got {name!r}")
    return MATERIALS[name]


def linear_attenuation_per_um(name_or_formula, energy_kev, density_g_cm3=None):
    """Linear attenuation coefficient in 1/µm from xraydb.

    Parameters
    ----------
    name_or_formula : str
        A registry name, or a chemical formula (then ``density_g_cm3`` is required).
    energy_kev : float or array_like
        Photon energy in keV.
    density_g_cm3 : float, optional
        Overrides the registry density.

    Returns
    -------
    float or ndarray
        Total attenuation (photoabsorption + coherent + incoherent) in 1/µm.
    """
    if name_or_formula in MATERIALS:
        material = MATERIALS[name_or_formula]
        formula = material.formula
        density = material.density_g_cm3 if density_g_cm3 is None else density_g_cm3
    else:
        if density_g_cm3 is None:
            raise ValueError(f"density_g_cm3: required for formula {name_or_formula!r} "
                             f"(not one of {sorted(MATERIALS)})")
        formula, density = name_or_formula, density_g_cm3
    if density <= 0:
        raise ValueError(f"density_g_cm3: expected > 0, got {density}")
    energy = np.asarray(energy_kev, dtype=np.float64)
    if np.any(energy <= 0):
        raise ValueError(f"energy_kev: expected > 0, got {energy_kev}")
    mu_per_cm = xraydb.material_mu(formula, energy * 1e3, density=density)
    return mu_per_cm * 1e-4
