"""The uncalendered coating: placement, thinning, binder films and bridges, region volumes."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from synthcal import scenario as sc
from synthcal.dem import packing


def test_binder_volume_follows_the_mass_ratio_and_the_nanoporosity():
    # 90:5:5 by mass; carbon black 1.9 and PVDF 1.78 g/cm3 skeletal, half of the CBD nanopores,
    # NMC particles 4.65 g/cm3: worked out by hand, in cm3 per 100 g of electrode
    cbd_cm3 = (5 / 1.9 + 5 / 1.78) / (1 - 0.5)
    nmc_cm3 = 90 / 4.65
    assert packing.binder_volume_per_nmc_volume(sc.Particles()) == pytest.approx(cbd_cm3 / nmc_cm3, rel=1e-12)
    denser = sc.with_overrides(sc.from_dict({}), ["particles.cbd_nanoporosity=0.75"]).particles
    assert packing.binder_volume_per_nmc_volume(denser) == pytest.approx(2 * cbd_cm3 / nmc_cm3, rel=1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2 ** 31), n=st.integers(1, 50), share=st.floats(0.01, 2.0))
def test_film_holds_the_binder(seed, n, share):
    radii = np.random.default_rng(seed).uniform(0.5, 5.0, n)
    binder = share * np.sum(4 / 3 * np.pi * radii ** 3)
    t = packing.binder_film_um(radii, binder)
    assert t > 0
    assert np.sum(4 / 3 * np.pi * ((radii + t) ** 3 - radii ** 3)) == pytest.approx(binder, rel=1e-9)


def test_bridge_is_the_circle_where_two_films_meet():
    # equal spheres R = 2 at gap 0.5 with films t = 0.4: the film surfaces (radius 2.4) meet
    # half way, 2.25 from each centre: a = sqrt(2.4^2 - 2.25^2)
    x = np.array([[5.0, 5.0, 5.0], [5.0, 5.0, 9.5], [5.0, 5.0, 20.0]])
    pairs, a = packing.bridges(x, np.array([2.0, 2.0, 2.0]), 0.4)
    assert pairs.tolist() == [[0, 1]]  # the third sphere is 6.5 away: films 2 t = 0.8 cannot span its gap
    assert a[0] == pytest.approx(math.sqrt(2.4 ** 2 - 2.25 ** 2), rel=1e-12)
    # unequal: R1 = 3, R2 = 1.5, touching, t = 0.3: film surfaces of radii 3.3 and 1.8 at distance 4.5
    # meet 3.1 from the first centre (3.3^2 - s^2 = 1.8^2 - (4.5 - s)^2)
    pairs, a = packing.bridges(np.array([[5.0, 5.0, 5.0], [5.0, 5.0, 9.5]]), np.array([3.0, 1.5]), 0.3)
    assert a[0] == pytest.approx(math.sqrt(3.3 ** 2 - 3.1 ** 2), rel=1e-12)
    # a bridge is never wider than the smaller particle
    pairs, a = packing.bridges(np.array([[5.0, 5.0, 5.0], [5.0, 5.0, 7.0]]), np.array([1.0, 1.0]), 2.0)
    assert a[0] == 1.0


def test_films_reaching_the_foil_glue_the_particle():
    x = np.array([[1.0, 5.0, 5.0], [1.35, 9.0, 5.0], [1.45, 5.0, 9.0]])
    assert packing.glued_to_foil(x, np.ones(3), 0.4).tolist() == [True, True, False]


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2 ** 31), n=st.integers(1, 40))
def test_placed_spheres_do_not_overlap_and_stay_in_the_box(seed, n):
    rng = np.random.default_rng(seed)
    radii = rng.uniform(0.5, 2.0, n)
    box = np.array([[0.0, 12.0], [0.0, 15.0], [0.0, 15.0]])
    x = packing.place_spheres(radii, box, rng)
    assert np.all(x - radii[:, None] >= box[:, 0]) and np.all(x + radii[:, None] <= box[:, 1])
    d = np.linalg.norm(x[:, None] - x[None], axis=-1) + np.eye(n) * 1e9
    assert np.all(d >= radii[:, None] + radii[None])


def test_placement_fails_in_one_line_when_there_is_no_room():
    with pytest.raises(RuntimeError, match="nmc_volume_fraction"):
        packing.place_spheres(np.full(30, 1.0), np.array([[0.0, 2.0], [0.0, 4.0], [0.0, 4.0]]),
                              np.random.default_rng(0), max_rounds=50)


def test_thinning_removes_particles_until_the_region_holds_the_target():
    rng = np.random.default_rng(0)
    v = np.where(rng.random(500) < 0.3, 0.0, rng.uniform(1.0, 3.0, 500))  # some particles lie outside
    target = 0.6 * v.sum()
    keep = packing.thin_to_fraction(v, target, np.random.default_rng(1))
    # random removal stops where the volume left is closest: within half the largest volume
    assert abs(v[keep].sum() - target) <= 0.5 * v.max()
    assert 0.55 < keep.mean() < 0.75  # about as many outside as inside were removed


def test_region_volume_of_spheres_matches_geometry():
    region = packing.Region((10.0, 10.0), 6.0, 0.0, 8.0)
    r = 2.0
    # inside; cut by the floor at a third of its radius below the centre (a cap of height 2R/3 lost);
    # outside the cylinder
    x = np.array([[4.0, 10.0, 10.0], [2.0 / 3.0, 10.0, 10.0], [4.0, 10.0, 25.0]])
    got = packing.region_volumes_um3(x, np.full(3, r), region, 0.05)
    sphere = 4 / 3 * math.pi * r ** 3
    h = r - 2.0 / 3.0
    cap = math.pi * h ** 2 * (3 * r - h) / 3
    assert got[0] == pytest.approx(sphere, rel=5e-3)
    assert got[1] == pytest.approx(sphere - cap, rel=5e-3)
    assert got[2] == 0.0
    assert region.volume_um3 == pytest.approx(math.pi * 36 * 8)
    # the lattice fills the region with its cells
    assert len(region.lattice_um(0.1)) * 0.1 ** 3 == pytest.approx(region.volume_um3, rel=2e-3)
