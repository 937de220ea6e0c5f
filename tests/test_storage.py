"""[output] format = "zarr" and keep_projections = false: the same run, stored smaller, read the same way."""

import shutil

import numpy as np
import pytest
import zarr

from analysis.io import ZARR_CHUNK_EDGE, find_volume, read_volume, write_volume
from synthcal import pipeline, scenario as sc
from synthcal.dataset import load_run

from conftest import TINY


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64])
def test_zarr_volume_round_trip_keeps_values_type_and_voxel_size(tmp_path, dtype):
    volume = (np.random.default_rng(0).random((ZARR_CHUNK_EDGE + 3, 4, 5)) * 200).astype(dtype)
    path = tmp_path / "volume.zarr"
    write_volume(path, volume, 0.128, description="test volume")
    back, voxel_size_um = read_volume(path)
    assert back.dtype == volume.dtype and np.array_equal(back, volume) and voxel_size_um == 0.128
    stored = zarr.open_array(str(path), mode="r")
    assert stored.chunks == (ZARR_CHUNK_EDGE, 4, 5)  # the long axis is cut into chunks
    assert dict(stored.attrs) == {"voxel_size_um": 0.128, "unit": "um", "axes": "ZYX", "description": "test volume"}


def test_zarr_and_tiff_of_one_volume_read_the_same(tmp_path):
    volume = np.random.default_rng(1).random((6, 7, 8)).astype(np.float32)
    for suffix in (".tif", ".zarr"):
        write_volume(tmp_path / f"v{suffix}", volume, 0.4)
    a, b = read_volume(tmp_path / "v.tif"), read_volume(tmp_path / "v.zarr")
    assert np.array_equal(a[0], b[0]) and a[1] == pytest.approx(b[1])


@pytest.mark.parametrize("make, call, needle", [
    (None, lambda p: write_volume(p / "v.zarr", np.zeros((2, 2, 2), bool), 1.0), "integer or float"),
    (None, lambda p: write_volume(p / "v.zarr", np.zeros((2, 2)), 1.0), "3D"),
    (None, lambda p: read_volume(p / "missing.zarr"), "no such Zarr folder"),
    (lambda p: (p / "empty.zarr").mkdir(), lambda p: read_volume(p / "empty.zarr"), "not a readable Zarr array"),
    (None, lambda p: find_volume(p, "step0"), "expected .tif or .zarr"),
])
def test_bad_zarr_input_is_one_line(tmp_path, make, call, needle):
    if make:
        make(tmp_path)
    with pytest.raises(ValueError) as error:
        call(tmp_path)
    assert needle in str(error.value) and "\n" not in str(error.value)


@pytest.fixture(scope="module")
def zarr_run(tiny_run, tmp_path_factory):
    """The tiny scenario stored as Zarr without projections, from the tiny run's DEM (its key does not read
    ``[output]``, so it is reused)."""
    reference = tiny_run[0]
    out = tmp_path_factory.mktemp("zarr") / "run"
    shutil.copytree(reference / "dem", out / "dem")
    scenario = sc.with_overrides(sc.load(TINY), ["output.format=zarr", "output.keep_projections=false"])
    outcome = pipeline.run(scenario, out, log=lambda m: None)
    return reference, out, scenario, outcome


def test_a_zarr_run_reads_like_the_tiff_run(zarr_run):
    reference, out, _, outcome = zarr_run
    assert outcome["dem"] == "cached" and all(outcome[s] == "ran" for s in outcome if s != "dem")
    tiff, stored = load_run(reference), load_run(out)
    for k in tiff.steps:
        for name in ("truth_labels", "attenuation", "owner", "volume", "processed", "segmentation"):
            a, b = getattr(tiff, name)(k), getattr(stored, name)(k)
            assert a.dtype == b.dtype and np.array_equal(a, b), (name, k)
    assert stored.scores() == tiff.scores()
    assert not [p for p in out.rglob("*") if p.suffix in (".tif", ".npy")], "every volume is Zarr"
    stored = out / "volumes" / "step0.zarr"
    assert (stored / "zarr.json").is_file() or (stored / ".zarray").is_file()  # Zarr format 3 or 2


def test_a_run_that_kept_no_projections_says_so(zarr_run):
    _, out, _, _ = zarr_run
    assert sorted(p.name for p in (out / "projections").iterdir()) == [pipeline.STAMP, "angles_deg.csv",
                                                                      "drift_voxels.json", "motion_voxels.json"]
    with pytest.raises(ValueError, match=r"did not store its projections \(\[output\] keep_projections = false\)"):
        load_run(out).projections(0)
    assert (out / "report" / "index.html").is_file() and not (out / "report" / "radiographs.png").exists()


def test_without_projections_a_new_filter_reruns_only_the_reconstruction_and_after(zarr_run, tmp_path):
    _, out, scenario, _ = zarr_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    hann = sc.with_overrides(scenario, ["reconstruction.filter=hann", "validation.report=false"])
    outcome = pipeline.run(hann, copy, log=lambda m: None)
    assert [outcome[s] for s in ("dem", "phantom", "projections")] == ["cached"] * 3
    assert [outcome[s] for s in ("reconstruct", "preprocess", "dvc", "score")] == ["ran"] * 4
    assert not np.array_equal(load_run(copy).volume(1), load_run(out).volume(1))
    assert set(pipeline.run(hann, copy, log=lambda m: None).values()) <= {"cached", "not run"}
