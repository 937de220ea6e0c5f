"""synthcal.dem.material by hand: the checks of a Material, its moduli, the Rayleigh time and the
per-pair and per-wall tables (issue #19). The damping formula is checked against the collision it
is meant to produce in tests/test_dem_restitution.py.

Hand numbers: E = 2.6 GPa and nu = 0.3 give G = E / 2.6 = 1 GPa; 1 - nu^2 = 0.91;
2 (2 - nu)(1 + nu) = 4.42.
"""

import math

import numpy as np
import pytest

from synthcal.dem.material import (Material, damping_coefficient, effective_shear_modulus,
                                   effective_youngs_modulus, pair_tables)

SOFT = Material(youngs_modulus_pa=2.6e9, poisson_ratio=0.3, density_kg_m3=1000.0, restitution=0.3, friction=0.4,
                rolling_friction=0.09)
HARD = Material(youngs_modulus_pa=260e9, poisson_ratio=0.3, density_kg_m3=4000.0, restitution=0.7, friction=0.1,
                rolling_friction=0.01)


def test_the_shear_modulus_is_e_over_2_1_plus_nu():
    assert SOFT.shear_modulus_pa == pytest.approx(1e9, rel=1e-12)
    assert Material(youngs_modulus_pa=3e9, poisson_ratio=0.0, density_kg_m3=1.0).shear_modulus_pa == \
        pytest.approx(1.5e9, rel=1e-12)


def test_the_rayleigh_time_over_a_sphere():
    # nu = 0: T = pi R sqrt(rho / G) / 0.8766; G = 1 GPa, rho = 1000: sqrt = 1e-3 s/m; R = 10 µm
    m = Material(youngs_modulus_pa=2e9, poisson_ratio=0.0, density_kg_m3=1000.0)
    assert m.rayleigh_time_s(10.0) == pytest.approx(math.pi * 1e-5 * 1e-3 / 0.8766, rel=1e-12, abs=0)
    # nu = 0.3 adds 0.1631 nu to the denominator; a mass scaling of 4 doubles sqrt(rho); arrays elementwise
    expected = math.pi * 1e-5 * math.sqrt(4 * 1000.0 / 1e9) / (0.1631 * 0.3 + 0.8766)
    np.testing.assert_allclose(SOFT.rayleigh_time_s(np.array([10.0, 20.0]), mass_scaling=4.0),
                               [expected, 2 * expected], rtol=1e-12)


def test_effective_moduli_of_a_pair_and_against_a_rigid_wall():
    assert effective_youngs_modulus(SOFT) == pytest.approx(2.6e9 / 0.91, rel=1e-12)
    assert effective_youngs_modulus(SOFT, HARD) == pytest.approx(1 / (0.91 / 2.6e9 + 0.91 / 260e9), rel=1e-12)
    assert effective_shear_modulus(SOFT) == pytest.approx(2.6e9 / 4.42, rel=1e-12)
    assert effective_shear_modulus(SOFT, HARD) == pytest.approx(1 / (4.42 / 2.6e9 + 4.42 / 260e9), rel=1e-12)
    nu0 = Material(youngs_modulus_pa=1e9, poisson_ratio=0.0, density_kg_m3=1.0)
    assert effective_youngs_modulus(nu0, nu0) == pytest.approx(0.5e9, rel=1e-12)
    assert effective_shear_modulus(nu0, nu0) == pytest.approx(1e9 / 8, rel=1e-12)     # 2 * 2 * 1 / E, twice


def test_pair_tables_hold_each_pair_at_a_times_k_plus_b_and_each_kind_against_the_wall():
    t = pair_tables((SOFT, HARD))
    for name in ("estar", "gstar", "alpha", "mu", "mur"):
        assert t[name].shape == (4,)
    for name in ("wall_estar", "wall_gstar", "wall_alpha", "wall_mu", "wall_mur"):
        assert t[name].shape == (2,)
    np.testing.assert_allclose(t["estar"], [effective_youngs_modulus(SOFT, SOFT), effective_youngs_modulus(SOFT, HARD),
                                            effective_youngs_modulus(HARD, SOFT), effective_youngs_modulus(HARD, HARD)],
                               rtol=1e-12)
    np.testing.assert_allclose(t["gstar"], [1 / (2 * 4.42 / 2.6e9), 1 / (4.42 / 2.6e9 + 4.42 / 260e9),
                                            1 / (4.42 / 2.6e9 + 4.42 / 260e9), 1 / (2 * 4.42 / 260e9)], rtol=1e-12)
    # restitution: the mean of the two; friction and rolling friction: the geometric mean
    np.testing.assert_allclose(t["alpha"], [damping_coefficient(0.3), damping_coefficient(0.5),
                                            damping_coefficient(0.5), damping_coefficient(0.7)], rtol=1e-12)
    np.testing.assert_allclose(t["mu"], [0.4, 0.2, 0.2, 0.1], rtol=1e-12)
    np.testing.assert_allclose(t["mur"], [0.09, 0.03, 0.03, 0.01], rtol=1e-12)
    np.testing.assert_allclose(t["wall_estar"], [2.6e9 / 0.91, 260e9 / 0.91], rtol=1e-12)
    np.testing.assert_allclose(t["wall_gstar"], [2.6e9 / 4.42, 260e9 / 4.42], rtol=1e-12)
    np.testing.assert_allclose(t["wall_alpha"], [damping_coefficient(0.3), damping_coefficient(0.7)], rtol=1e-12)
    np.testing.assert_allclose(t["wall_mu"], [0.4, 0.1], rtol=0)
    np.testing.assert_allclose(t["wall_mur"], [0.09, 0.01], rtol=0)
    assert t["wall_mu"].dtype == np.float64 and t["wall_mur"].dtype == np.float64


def test_a_perfectly_elastic_material_has_no_damping_in_the_tables():
    elastic = Material(youngs_modulus_pa=1e9, poisson_ratio=0.2, density_kg_m3=1.0, restitution=1.0)
    t = pair_tables((elastic,))
    assert t["alpha"][0] == 0.0 and t["wall_alpha"][0] == 0.0


def test_defaults_are_the_documented_ones():
    m = Material(youngs_modulus_pa=1e9, poisson_ratio=0.2, density_kg_m3=1.0)
    assert (m.restitution, m.friction, m.rolling_friction) == (0.5, 0.4, 0.0)


@pytest.mark.parametrize("field, value, message", [
    ("youngs_modulus_pa", 0.0, r"^youngs_modulus_pa: expected > 0, got 0.0$"),
    ("youngs_modulus_pa", float("nan"), r"^youngs_modulus_pa: expected > 0, got nan$"),
    ("poisson_ratio", 0.5, r"^poisson_ratio: expected in \[0, 0.5\), got 0.5$"),
    ("poisson_ratio", -0.01, r"^poisson_ratio: expected in \[0, 0.5\), got -0.01$"),
    ("density_kg_m3", 0.0, r"^density_kg_m3: expected > 0, got 0.0$"),
    ("restitution", 0.0, r"^restitution: expected in \(0, 1\], got 0.0$"),
    ("restitution", 1.01, r"^restitution: expected in \(0, 1\], got 1.01$"),
    ("friction", -0.01, r"^friction: expected >= 0, got -0.01$"),
    ("friction", float("nan"), r"^friction: expected >= 0, got nan$"),
    ("rolling_friction", -0.01, r"^rolling_friction: expected >= 0, got -0.01$"),
    ("rolling_friction", float("nan"), r"^rolling_friction: expected >= 0, got nan$"),
])
def test_a_material_outside_its_ranges_is_refused(field, value, message):
    kwargs = dict(youngs_modulus_pa=1e9, poisson_ratio=0.2, density_kg_m3=1.0)
    kwargs[field] = value
    with pytest.raises(ValueError, match=message):
        Material(**kwargs)


def test_the_ends_of_the_ranges_that_are_allowed():
    m = Material(youngs_modulus_pa=1e-9, poisson_ratio=0.0, density_kg_m3=1e-9, restitution=1.0, friction=0.0,
                 rolling_friction=0.0)
    assert m.poisson_ratio == 0.0 and m.restitution == 1.0
    Material(youngs_modulus_pa=1.0, poisson_ratio=0.4999, density_kg_m3=1.0, restitution=1e-6)


def test_the_rayleigh_time_and_the_tables_are_double_precision_whatever_the_input_type():
    # a float32 radius or mass scaling, integer friction coefficients: float64 out, the same numbers
    m = Material(youngs_modulus_pa=2e9, poisson_ratio=0.0, density_kg_m3=1000.0, friction=1, rolling_friction=0)
    radius, scaling = np.array([3.3], np.float32), np.array([2.7], np.float32)
    t = m.rayleigh_time_s(radius, mass_scaling=scaling)
    assert t.dtype == np.float64
    expected = math.pi * float(radius[0]) * 1e-6 * math.sqrt(1000.0 * float(scaling[0]) / 1e9) / 0.8766
    assert t[0] == pytest.approx(expected, rel=1e-15, abs=0)
    tables = pair_tables((m,))
    assert tables["wall_mu"].dtype == np.float64 and tables["wall_mur"].dtype == np.float64
