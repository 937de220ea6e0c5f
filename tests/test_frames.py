"""Displacement files a user can read: the total displacement in the reference scan's frame.

The DVC runs on registered volumes; each file composes the registration back
in, so ``displacement_vox`` is what another DVC code would measure between
the two scans, with no composition left to the user.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from analysis.chain import correlate_series, preprocess_series
from analysis.dvc import correlate
from analysis.io import write_volume
from analysis.settings import ChainSettings
from analysis.transform import total_displacement
from conftest import ROOT, run_synthcal
from synthcal.strategies import Warp, render_texture

BIG, CROP = 88, 12          # texture drawn on BIG^3, scans are the central (BIG - 2 CROP)^3
CENTRE = (BIG - 1) / 2


def _texture(seed, warp=None):
    return render_texture("speckle", (BIG,) * 3, seed, feature_voxels=1.5, warp=warp)


def _field(shift, angle_deg, strain_zz, wave_voxels):
    """Known motion (z, y, x voxels): rigid about z + compression along z + a smooth wave along y."""
    a = np.radians(angle_deg)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])  # about z
    # u_y gains wave_voxels * sin(2 pi X_z / 60), i.e. a wave of phase 2 pi c_z / 60 about the centre c
    return Warp(centre_voxels=np.full(3, CENTRE), translation_voxels=shift,
                matrix=rot + np.diag([strain_zz, 0.0, 0.0]), wave_amplitudes_voxels=[[0.0, wave_voxels, 0.0]],
                wave_vectors_per_voxel=[[2 * np.pi / 60.0, 0.0, 0.0]], wave_phases=[2 * np.pi * CENTRE / 60.0])


def _crop(v):
    return np.ascontiguousarray(v[CROP:-CROP, CROP:-CROP, CROP:-CROP], dtype=np.float32)


def test_total_of_registration_and_residual_equals_a_direct_dvc_without_registration():
    field = _field((1.3, -0.7, 0.9), 1.0, 0.0, 0.0)   # a rigid motion
    ref_c, moved_c = _crop(_texture(1)), _crop(_texture(1, field))
    settings = ChainSettings.from_um(1.0, median_size=1, subvolume_um=15, node_spacing_um=10,
                                     max_displacement_um=4, min_cc=0.5)
    pre = preprocess_series([ref_c, moved_c], settings)
    residual = correlate_series(pre.volumes, settings)[1, settings.subvolume_voxels]
    direct = correlate(ref_c, moved_c, subvolume_voxels=15, node_spacing_voxels=10, max_displacement_voxels=4)
    total = total_displacement(pre.transforms[1], residual.nodes, residual.displacement)
    both = residual.ok & direct.ok
    assert both.sum() >= 20
    # two independent measurements of one rigid motion: each within a few hundredths of a voxel
    assert np.sqrt(np.mean(np.sum((total[both] - direct.displacement[both]) ** 2, axis=1))) < 0.05
    # and the residual alone is not the total: the registration took out ~1.8 voxels
    assert np.min(np.linalg.norm(residual.displacement[both] - direct.displacement[both], axis=1)) > 1.0


def test_analyse_files_hold_the_total_displacement_of_a_known_field(tmp_path):
    field = _field((1.3, -0.6, 0.8), 1.5, -0.02, 0.5)
    rng = np.random.default_rng(3)
    scans = []
    for v in (_texture(2), _texture(2, field)):
        v = _crop(v)
        scans.append((v + rng.normal(0, 0.02 * v.std(), v.shape)).astype(np.float32))  # 2 % noise
    for name, v in zip(("ref.tif", "def.tif"), scans):
        write_volume(tmp_path / name, v, 1.0)
    out = tmp_path / "out"
    result = run_synthcal("analyse", str(tmp_path / "ref.tif"), str(tmp_path / "def.tif"), "--out", str(out),
                          "--subvolume-um", "15", "--node-spacing-um", "8", "--max-displacement-um", "5",
                          "--median-size", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    data = np.load(out / "dvc" / "step1.npz")
    ok = data["ok"]
    assert ok.mean() > 0.8
    truth = field(data["nodes"].astype(float) + CROP)
    error = data["displacement_vox"][ok] - truth[ok]
    assert np.sqrt(np.mean(np.sum(error ** 2, axis=1))) < 0.15
    np.testing.assert_allclose(data["displacement_um"], data["displacement_vox"] * 1.0)
    # every format carries the same total and says its frame
    table = np.loadtxt(out / "dvc" / "step1.csv", delimiter=",", comments="#", skiprows=2)
    np.testing.assert_allclose(table[ok, 6:9], data["displacement_vox"][ok], rtol=1e-6, atol=1e-6)
    sidecar = json.loads((out / "dvc" / "step1.json").read_text())
    assert "total displacement" in sidecar["frame"] and sidecar["voxel_size_um"] == 1.0
    assert "reference scan's frame" in (out / "dvc" / "step1.vtk").read_bytes()[:300].decode(errors="replace")


def _readme_recipe():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Reading the results"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_recipe_runs_as_written(tmp_path, monkeypatch):
    ref = _crop(_texture(4))
    moved = _crop(_texture(4, Warp.translation((0.8, 0.4, -0.5))))
    write_volume(tmp_path / "ref.tif", ref, 0.5)
    write_volume(tmp_path / "def.tif", moved, 0.5)
    out = tmp_path / "my-analysis"
    result = run_synthcal("analyse", str(tmp_path / "ref.tif"), str(tmp_path / "def.tif"), "--out", str(out),
                          "--subvolume-um", "7.5", "--node-spacing-um", "5", "--max-displacement-um", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    namespace = {}
    monkeypatch.chdir(tmp_path)  # the recipe reads ./my-analysis, as written
    exec(compile(_readme_recipe(), "README", "exec"), namespace)
    u = namespace["total_um"]
    assert np.allclose(np.nanmedian(u, axis=0), np.array([0.8, 0.4, -0.5]) * 0.5, atol=0.02)


def _write(tmp_path, name, volume, voxel_size_um=1.0):
    write_volume(tmp_path / name, np.asarray(volume, np.float32), voxel_size_um)
    return str(tmp_path / name)


@pytest.mark.parametrize("case, expected", [
    ("nan", "NaN or Inf"),
    ("constant", "every voxel is"),
    ("voxel size", "differs from the reference's"),
    ("box outside", "registration box"),
    ("subvolume too large", "larger than the volume's smallest extent"),
])
def test_bad_real_inputs_are_refused_in_one_line(tmp_path, case, expected):
    good = _crop(_texture(5))[:24, :24, :24]
    other = good.copy()
    args = []
    if case == "nan":
        other[3, 4, 5] = np.nan
    elif case == "constant":
        other[:] = 7.0
    elif case == "box outside":
        args = ["--register-box-um", "0", "10", "0", "10", "20", "40"]
    elif case == "subvolume too large":
        args = ["--subvolume-um", "30"]
    ref = _write(tmp_path, "ref.tif", good)
    moved = _write(tmp_path, "def.tif", other, 2.0 if case == "voxel size" else 1.0)
    result = run_synthcal("analyse", ref, moved, "--out", str(tmp_path / "o"), *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert not (tmp_path / "o").exists() and not list(Path(tmp_path).glob(".o*"))
