"""The binder and the truth summary in a whole run (the tiny scenario)."""

import json

import numpy as np
import pytest

from analysis.phases import Phase
from synthcal.binder import Binder, BridgeVoxels
from synthcal.dataset import load_run
from synthcal.materials import binder_volume_per_nmc_volume
from validation.frame import truth_frame


def test_reference_phantom_holds_the_recipe_binder(tiny_run):
    run = load_run(tiny_run[0])
    p = run.scenario.particles
    labels = np.asarray(run.truth_labels(0))
    ratio = np.count_nonzero(labels == Phase.CBD) / np.count_nonzero(labels == Phase.NMC)
    assert ratio == pytest.approx(binder_volume_per_nmc_volume(p.mass_ratio_nmc_carbon_pvdf, p.cbd_nanoporosity),
                                  rel=0.05)
    binder = run.binder()
    assert isinstance(binder, Binder)
    steps = run.trajectory().steps
    np.testing.assert_array_equal(binder.bonds, steps[0].bonds)
    np.testing.assert_array_equal(binder.positions_um, steps[0].positions_um)
    census = json.loads((run.folder("phantom") / "binder.json").read_text())
    assert census["film_thickness_um"] == binder.film_thickness_um
    for k in run.steps:
        bridges = run.bridges(k)
        assert isinstance(bridges, BridgeVoxels)
        # every bridge voxel is CBD and its owner is the particle of its half
        flat = np.asarray(run.truth_labels(k)).reshape(-1)
        assert np.all(flat[bridges.index] == Phase.CBD)
        owner = np.asarray(run.owner(k)).reshape(-1)[bridges.index]
        ends = bridges.bonds[bridges.bond]
        np.testing.assert_array_equal(owner, np.where(bridges.weight < 0.5, ends[:, 0], ends[:, 1]))
    assert run.bridges(0).index.size > 0


def test_truth_summary_per_step(tiny_run):
    run = load_run(tiny_run[0])
    rows = run.truth_summary()
    assert [r["step"] for r in rows] == run.steps
    for row in rows:
        assert row["nmc_fraction"] + row["cbd_fraction"] + row["pore_fraction"] == pytest.approx(1.0)
        assert row["inactive_fraction"] == pytest.approx(1.0 - row["nmc_fraction"])
        # two definitions (continuous for the pores, whole-voxel for the inactive phase): no order between them
        assert row["pore_mean_radius_um"] > 0 and row["pore_median_radius_um"] > 0
        assert row["inactive_mean_radius_um"] > 0 and row["inactive_median_radius_um"] > 0
    # the truth's radius maps, stored once for the summary and scoring: on the field of view, 0 off each
    # phase, positive on it
    off, n = run.grid.fov_offset_voxels, run.grid.n_det
    for k in run.steps:
        fov = np.asarray(run.truth_labels(k))[:, off:off + n, off:off + n]
        for name, phases in (("pore", [Phase.PORE]), ("inactive", [Phase.PORE, Phase.CBD])):
            radius_um = run.truth_radius_um(k, name)
            assert radius_um.shape == fov.shape and radius_um.dtype == np.float32
            phase = np.isin(fov, phases)
            assert np.all(radius_um[~phase] == 0) and np.all(radius_um[phase] >= 0)
            assert radius_um[phase].mean() > 0
    assert run.truth_radius_um(0, "cbd") is None
    # compression packs the pillar: the region shrinks with the head (tiny's compliant stage may move the
    # head by less than a voxel row; then the region keeps its rows)
    first, last = (stop - start for start, stop in (run.grid.sample_rows[0], run.grid.sample_rows[-1]))
    assert last <= first
    assert rows[-1]["n_voxels"] < rows[0]["n_voxels"] if last < first else rows[-1]["n_voxels"] == rows[0]["n_voxels"]


def test_truth_frame_gives_binder_voxels_a_truth(tiny_run):
    run = load_run(tiny_run[0])
    truth = truth_frame(run)
    assert truth.binder is not None and truth.bridges0 is not None
    grid = run.grid
    off, n = grid.fov_offset_voxels, grid.n_det
    labels = np.asarray(run.truth_labels(0))[:, off:off + n, off:off + n]
    nodes = np.argwhere(labels == Phase.CBD)[::37][:40]
    assert len(nodes) >= 10
    centre, solid = truth.world_displacement_um(nodes, 1, 4)
    assert np.all(np.isfinite(centre)) and np.all(np.isfinite(solid))
