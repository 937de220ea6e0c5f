"""Volumes on disk open at the right scale in ImageJ-family tools."""

import numpy as np
import pytest
import tifffile

from analysis.io import read_volume, write_volume


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_round_trip_with_voxel_size(tmp_path, dtype):
    volume = (np.arange(4 * 5 * 6) % 200).reshape(4, 5, 6).astype(dtype)
    path = tmp_path / "v.tif"
    write_volume(path, volume, 0.128, description="test")
    back, voxel_size_um = read_volume(path)
    assert back.dtype == dtype and np.array_equal(back, volume) and voxel_size_um == pytest.approx(0.128)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.imagej_metadata["spacing"] == pytest.approx(0.128)
        assert tif.imagej_metadata["unit"] in ("um", "micron", "\\u00B5m")
        assert tif.imagej_metadata["images"] == 4
        x_resolution = tif.pages[0].tags["XResolution"].value
        assert x_resolution[0] / x_resolution[1] == pytest.approx(1 / 0.128, rel=1e-6)
    assert not list(tmp_path.glob(".*partial"))


def test_refuses_what_imagej_cannot_read(tmp_path):
    with pytest.raises(ValueError, match="float64"):
        write_volume(tmp_path / "v.tif", np.zeros((2, 2, 2)), 1.0)
    with pytest.raises(ValueError, match="voxel_size_um"):
        write_volume(tmp_path / "v.tif", np.zeros((2, 2, 2), np.float32), 0.0)
    assert not list(tmp_path.iterdir())


def test_plain_stack_has_no_voxel_size_and_bad_file_is_one_line(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((3, 4, 4), np.uint8))
    assert read_volume(tmp_path / "plain.tif")[1] is None
    (tmp_path / "junk.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match="junk.tif"):
        read_volume(tmp_path / "junk.tif")


def test_atomic_output_keeps_the_old_file_when_writing_fails(tmp_path):
    from analysis.io import atomic_output

    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_atomic_output_replaces_a_folder_whole(tmp_path):
    from analysis.io import atomic_output

    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "stale.txt").write_text("x")
    with atomic_output(folder, folder=True) as tmp:
        (tmp / "new.txt").write_text("y")
        assert not (folder / "new.txt").exists()  # nothing appears before the block ends
    assert sorted(p.name for p in folder.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
