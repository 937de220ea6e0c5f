"""`synthcal analyse` on scans from 'another instrument': plain TIFF stacks."""

import json

import numpy as np

from analysis.io import read_volume, write_volume
from conftest import run_synthcal
from synthcal.strategies import Warp, render_texture


def _textured(shape, seed, warp=None):
    return render_texture("speckle", shape, seed, feature_voxels=1.5, warp=warp)


def test_analyse_recovers_rigid_shift_by_registration(tmp_path):
    shift = np.array([1.3, -0.6, 0.8])
    big = _textured((56, 56, 56), 3)
    moved = _textured((56, 56, 56), 3, Warp.translation(shift))
    write_volume(tmp_path / "ref.tif", big[8:-8, 8:-8, 8:-8], 0.5)
    write_volume(tmp_path / "def.tif", moved[8:-8, 8:-8, 8:-8], 0.5)
    out = tmp_path / "out"
    result = run_synthcal("analyse", str(tmp_path / "ref.tif"), str(tmp_path / "def.tif"), "--out", str(out),
                          "--subvolume-um", "6", "--max-displacement-um", "2", "--median-size", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    registration = json.loads((out / "preprocess" / "registration.json").read_text())
    matrix = np.asarray(registration["steps"][1]["matrix"])
    assert np.allclose(matrix[:, :3], np.eye(3), atol=2e-3)
    assert np.allclose(matrix[:, 3], shift, atol=0.05)
    field = np.load(out / "dvc" / "step1.npz")
    assert field["ok"].mean() > 0.8
    # Registration took the shift out of the residual; the total puts it back.
    ok = field["ok"]
    assert np.nanmax(np.abs(field["residual_displacement_vox"][ok])) < 0.1
    assert np.nanmax(np.abs(field["displacement_vox"][ok] - shift)) < 0.1
    volume, voxel_size_um = read_volume(out / "preprocess" / "step1.tif")
    assert voxel_size_um == 0.5 and volume.shape == (40, 40, 40)
    for name in ("pores/phase_fractions.csv", "pores/cpsd_step0.csv", "pores/cpsd.png", "pores/step1_labels.tif",
                 "strain/step1.csv", "dvc/step1.vtk"):
        assert (out / name).is_file(), name


def test_analyse_without_voxel_size_is_one_line(tmp_path):
    import tifffile
    tifffile.imwrite(tmp_path / "a.tif", _textured((20, 20, 20), 1))
    tifffile.imwrite(tmp_path / "b.tif", _textured((20, 20, 20), 2))
    result = run_synthcal("analyse", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "--voxel-size-um" in result.stderr
    assert not (tmp_path / "o").exists()


def test_analyse_mismatched_shapes_is_one_line(tmp_path):
    write_volume(tmp_path / "a.tif", _textured((20, 20, 20), 1), 1.0)
    write_volume(tmp_path / "b.tif", _textured((20, 22, 20), 2), 1.0)
    result = run_synthcal("analyse", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "b.tif" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_analyse_on_a_runs_reconstructions_gives_the_pipelines_dvc_to_the_bit(tiny_run, tmp_path):
    """One chain: `synthcal analyse` with the scenario's settings reproduces the pipeline's DVC files."""
    from synthcal.dataset import load_run

    run = load_run(tiny_run[0])
    s, v = run.scenario, run.voxel_size_um
    first, end = run.grid.sample_rows[0]
    out = tmp_path / "out"
    volumes = [str(run.folder("reconstruct") / f"step{k}.tif") for k in run.steps]
    result = run_synthcal("analyse", *volumes, "--out", str(out),
                          "--subvolume-um", str(s.dvc.subvolume_um), "--node-spacing-um", str(s.dvc.node_spacing_um),
                          "--max-displacement-um", str(s.dvc.max_displacement_um),
                          # a quarter voxel inside each row, so rounding cannot move the sample's first or last row
                          "--sample-z-um", str((first - 0.25) * v), str((end - 0.75) * v))
    assert result.returncode == 0, result.stderr[-2000:]
    for k in run.steps[1:]:
        mine, pipeline = np.load(out / "dvc" / f"step{k}.npz"), np.load(run.folder("dvc") / f"step{k}.npz")
        assert sorted(mine.files) == sorted(pipeline.files)
        for name in pipeline.files:
            assert mine[name].tobytes() == pipeline[name].tobytes(), name
