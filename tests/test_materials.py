"""Materials: attenuation against NIST XCOM values and the mixture rules."""

import numpy as np
import pytest
import xraydb

from synthcal.materials import (MATERIALS, cbd_material, get_material, linear_attenuation_per_um,
                                mixture_density_g_cm3, mixture_formula)


@pytest.mark.parametrize("name, energy_kev, nist_mass_cm2_g", [
    # NIST XCOM total attenuation with coherent scattering
    ("aluminium", 8.0, 50.33),
    ("diamond", 5.0, 19.11),
    ("diamond", 6.0, 10.88),
])
def test_attenuation_matches_nist(name, energy_kev, nist_mass_cm2_g):
    rho = get_material(name).density_g_cm3
    expected_per_um = nist_mass_cm2_g * rho * 1e-4
    assert linear_attenuation_per_um(name, energy_kev) == pytest.approx(expected_per_um, rel=0.02)


def test_formula_with_density_matches_xraydb():
    mu = linear_attenuation_per_um("Fe2O3", [5.4, 9.0], density_g_cm3=5.24)
    expected = xraydb.material_mu("Fe2O3", np.array([5400.0, 9000.0]), density=5.24) * 1e-4
    np.testing.assert_allclose(mu, expected, rtol=1e-12)


def test_density_override():
    base = linear_attenuation_per_um("diamond", 5.4)
    assert linear_attenuation_per_um("diamond", 5.4, density_g_cm3=3.51 / 2) == pytest.approx(base / 2)


def test_nmc333_density_and_contrast():
    nmc = get_material("nmc333")
    assert 4.7 <= nmc.density_g_cm3 <= 4.8
    # NMC is a transition-metal oxide, CBD is light and porous: strong contrast at the Cr K line
    assert linear_attenuation_per_um("nmc333", 5.4) > 10 * linear_attenuation_per_um("cbd", 5.4)
    assert linear_attenuation_per_um("cbd", 5.4) > 100 * linear_attenuation_per_um("air", 5.4)


def test_cbd_is_mass_weighted_carbon_plus_pvdf():
    cbd = cbd_material(nanoporosity=0.5)
    solid = 1.0 / (0.5 / 1.9 + 0.5 / 1.78)
    assert cbd.density_g_cm3 == pytest.approx(0.5 * solid)
    energies_ev = np.array([5400.0, 8000.0])
    mass_att = xraydb.material_mu(cbd.formula, energies_ev, density=1.0)
    expected = 0.5 * xraydb.material_mu("C", energies_ev, density=1.0) \
        + 0.5 * xraydb.material_mu("C2H2F2", energies_ev, density=1.0)
    np.testing.assert_allclose(mass_att, expected, rtol=1e-6)
    assert cbd_material(nanoporosity=0.0).density_g_cm3 == pytest.approx(solid)


def test_mixture_helpers():
    assert xraydb.chemparse(mixture_formula({"H2O": 2.0})) == pytest.approx(
        {"H": 2 / 18.015, "O": 1 / 18.015}, rel=1e-3)
    assert mixture_density_g_cm3({"a": 1, "b": 1}, {"a": 1.0, "b": 3.0}) == pytest.approx(1.5)


def test_registry_complete():
    assert {"nmc333", "cbd", "air", "diamond", "aluminium", "epoxy", "steel"} <= set(MATERIALS)
    for m in MATERIALS.values():
        assert m.density_g_cm3 > 0 and m.note
        assert linear_attenuation_per_um(m.name, 5.4) > 0


@pytest.mark.parametrize("call", [
    lambda: linear_attenuation_per_um("Fe2O3", 5.4),
    lambda: linear_attenuation_per_um("nmc333", -1.0),
    lambda: linear_attenuation_per_um("nmc333", 5.4, density_g_cm3=0.0),
    lambda: get_material("unobtainium"),
    lambda: cbd_material(nanoporosity=1.0),
])
def test_bad_input(call):
    with pytest.raises(ValueError):
        call()
