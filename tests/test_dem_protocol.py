"""Pillar protocol: deposition, cut, compression, records and files."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import digest, digest_in_fresh_process
from synthcal import scenario as sc
from synthcal.dem.io import read_trajectory, write_trajectory
from synthcal.dem.protocol import held_by_binder, nmc_diameters_um, simulate_pillar

from conftest import TINY as TINY_TOML

# the tiny scenario with shorter phases: ~20 s on 2 shared cores
TINY = sc.with_overrides(sc.load(TINY_TOML), [
    "seed=0", "compression.steps_um=[0.0, 1.0, 2.0]", "compression.hold_time_s=2e-6", "dem.growth_time_s=2e-6",
    "dem.deposit_time_s=2e-6", "dem.settle_time_s=2e-6", "dem.cut_relax_time_s=2e-6"])


@pytest.fixture(scope="module")
def traj():
    return simulate_pillar(TINY)


def _hold_force(traj, k):
    """Mean head force over the hold before record k (N)."""
    rec = traj.steps[k]
    t, f = traj.force_displacement[:, 0], traj.force_displacement[:, 2]
    window = (t > rec.time_s - TINY.compression.hold_time_s) & (t <= rec.time_s)
    return f[window].mean()


def test_pillar_stands_after_the_cut(traj):
    assert abs(traj.info["cut_height_change_rel"]) < 0.01
    assert traj.info["cut_max_displacement_um"] < 0.1
    assert traj.info["n_bonds"] > traj.info["n_particles"] // 2


def test_head_force_rises_with_compression(traj):
    f1, f2 = _hold_force(traj, 1), _hold_force(traj, 2)
    assert f1 > 0
    assert f2 > 1.2 * f1
    travel = traj.force_displacement[:, 1]
    assert np.all(np.diff(travel) >= -1e-12)  # the head only moves down
    assert travel[-1] == pytest.approx(TINY.compression.steps_um[-1])


def test_records_are_complete_and_nothing_escaped(traj):
    assert [r.travel_um for r in traj.steps] == list(TINY.compression.steps_um)
    n = traj.steps[0].positions_um.shape[0]
    assert 100 < n < 500
    for rec in traj.steps:
        assert rec.positions_um.shape == (n, 3) and rec.quaternions.shape == (n, 4)
        assert np.allclose(np.linalg.norm(rec.quaternions, axis=1), 1.0)
        assert set(np.unique(rec.kinds)) == {0, 1}
        assert rec.bonds.shape[1] == 2 and rec.bonds_intact.shape == (len(rec.bonds),)
        x = rec.positions_um
        assert np.all(np.isfinite(x))
        centre = 0.5 * TINY.electrode.slab_width_um
        lateral = np.hypot(x[:, 1] - centre, x[:, 2] - centre)
        assert lateral.max() < 0.5 * TINY.pillar.diameter_um + TINY.particles.nmc_max_diameter_um
        # soft CBD particles under the head flatten by up to ~15 % of their radius (Hertz at its limit)
        assert x[:, 0].min() > 0 and np.all(x[:, 0] + rec.radii_um <= rec.head_z_um + 0.2 * rec.radii_um)
    assert traj.steps[2].head_z_um == pytest.approx(traj.contact_z_um - TINY.compression.steps_um[2])


def _small(seed):
    """A pillar of a few dozen particles with short phases (for repeated runs)."""
    return sc.with_overrides(TINY, [
        f"seed={seed}", "electrode.slab_width_um=15.0", "pillar.diameter_um=9.0", "electrode.thickness_um=7.0",
        "compression.steps_um=[0.0, 0.5]", "imaging.drift_um=[]", "compression.hold_time_s=5e-7", "dem.growth_time_s=2e-6",
        "dem.deposit_time_s=1e-6", "dem.settle_time_s=1e-6", "dem.cut_relax_time_s=1e-6"])


def _small_pillar_bytes():
    run = simulate_pillar(_small(7))
    return [a for s in run.steps for a in (s.positions_um, s.quaternions, s.bonds_intact)] + [run.force_displacement]


def test_same_protocol_gives_identical_bytes_in_a_fresh_process():
    assert digest(_small_pillar_bytes()) == digest_in_fresh_process(_small_pillar_bytes)


def test_write_and_read_back(traj, tmp_path):
    folder = tmp_path / "dem"
    write_trajectory(traj, folder)
    for name in ("force_displacement.csv", "energies.csv", "particles_000.ply", "particles_002.glb", "step_001.npz"):
        assert (folder / name).is_file()
    back = read_trajectory(folder)
    assert back.contact_z_um == traj.contact_z_um
    for a, b in zip(traj.steps, back.steps):
        assert np.array_equal(a.positions_um, b.positions_um) and np.array_equal(a.bonds, b.bonds)
    assert np.allclose(back.force_displacement, traj.force_displacement, rtol=1e-9, atol=0)


def test_nmc_sizes_follow_the_volume_distribution():
    p = sc.Particles()
    d = nmc_diameters_um(p, 2e6, np.random.default_rng(1))
    assert d.min() >= p.nmc_min_diameter_um and d.max() <= p.nmc_max_diameter_um
    order = np.argsort(d)
    cum = np.cumsum(d[order] ** 3) / np.sum(d ** 3)
    d10, d50, d90 = np.interp([0.1, 0.5, 0.9], cum, d[order])
    assert d10 == pytest.approx(p.nmc_d10_um, rel=0.03)
    assert d50 == pytest.approx(p.nmc_d50_um, rel=0.03)
    assert d90 == pytest.approx(p.nmc_d90_um, rel=0.03)


def test_only_particles_bonded_to_the_foil_are_kept():
    bonds = np.array([[0, 1], [1, 2], [3, 4]])
    fixed = np.array([True, False, False, False, False, False])
    assert held_by_binder(6, bonds, fixed).tolist() == [True, True, True, False, False, False]


@settings(max_examples=2, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1))
def test_small_pillars_never_explode(seed):
    p = _small(seed)
    tr = simulate_pillar(p)
    last = tr.steps[-1]
    assert np.all(np.isfinite(last.positions_um))
    lateral = np.hypot(last.positions_um[:, 1] - 7.5, last.positions_um[:, 2] - 7.5)
    assert lateral.max() < 0.5 * p.pillar.diameter_um + p.particles.nmc_max_diameter_um
    assert abs(tr.info["cut_height_change_rel"]) < 0.01
    assert np.all(np.isfinite(tr.force_displacement)) and tr.force_displacement[:, 2].max() > 0


def test_bad_protocol_is_rejected_by_the_scenario():
    # the scenario is the one place these rules live; the DEM has no second copy
    with pytest.raises(sc.ScenarioError, match="steps_um"):
        sc.with_overrides(TINY, ["compression.steps_um=[0.5, 1.0]"])
    with pytest.raises(sc.ScenarioError, match="diameter_um"):
        sc.with_overrides(TINY, ["pillar.diameter_um=30.0"])
    with pytest.raises(sc.ScenarioError, match="growth_time_s"):
        sc.with_overrides(TINY, ["dem.growth_time_s=1e-7"])
