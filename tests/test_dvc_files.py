"""Other codes' DVC files (validation.dvc_files) read, refused and written, on files typed out by hand (issue #19).

Every expected value is the number typed into the file; every refusal is
matched in full. ``score_file`` is checked with stand-ins for the truth
frame and the scorer (both tested on their own in test_truth_frame.py and
test_frame_scores.py): what it must do itself is refuse a step that was not
compressed, map the field into the registered frame and pass the subvolume
edge and the rule on.
"""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import validation.dvc_files as dvc_files
from analysis.dvc import Status
from validation.dvc_files import SPAM_COLUMNS, read_dvc_result, score_file, write_spam_tsv

CONVERGED, MAX_IT, LOW_CC = int(Status.CONVERGED), int(Status.MAX_ITERATIONS), int(Status.LOW_CC)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def _check(field, nodes, displacement, cc, ok, status):
    np.testing.assert_array_equal(field["nodes"], nodes)
    np.testing.assert_array_equal(field["displacement"], displacement)
    np.testing.assert_array_equal(field["cc"], cc)
    np.testing.assert_array_equal(field["ok"], ok)
    np.testing.assert_array_equal(field["status"], status)
    assert field["nodes"].dtype == field["displacement"].dtype == field["cc"].dtype == np.float64
    assert field["ok"].dtype == bool and field["status"].dtype == np.int64
    assert field["cc"].shape == field["ok"].shape == field["status"].shape == (len(nodes),)


def test_a_csv_with_every_column_comments_and_blank_lines(tmp_path):
    text = ("# written by hand\n\nz,y,x,uz,uy,ux,cc,ok,status\n"
            f"10,20,30,0.5,-1.25,2,0.9,1,{CONVERGED}\n"
            "  # a comment between nodes\n"
            f"11,21,31,nan,0,0,0.8,1,{CONVERGED}\n"
            f"12,22,32,1,1,1,0.2,0,{LOW_CC}\n")
    field = read_dvc_result(_write(tmp_path, "a.csv", text))
    # a non-finite displacement is never ok, whatever the file says
    _check(field, [[10, 20, 30], [11, 21, 31], [12, 22, 32]], [[0.5, -1.25, 2], [np.nan, 0, 0], [1, 1, 1]],
           [0.9, 0.8, 0.2], [True, False, False], [CONVERGED, CONVERGED, LOW_CC])


_READ_IN_THE_C_LOCALE = """
import json, sys
from validation.dvc_files import read_dvc_result
field = read_dvc_result(sys.argv[1])
print(json.dumps({k: field[k].tolist() for k in ("nodes", "displacement", "cc", "ok", "status")}))
"""


def test_a_utf8_file_reads_the_same_under_a_locale_whose_encoding_is_not_utf8(tmp_path):
    # the module docstring: text files are read as UTF-8 whatever the locale's encoding. A new Python
    # process in the C locale, with neither UTF-8 mode nor locale coercion, has ASCII as its locale
    # encoding, so a comment line with non-ASCII characters (UTF-8 bytes) must still read as a comment
    path = tmp_path / "accents.csv"
    text = "# Müller, 1.5 µm voxels — ΔT = 0\nz,y,x,uz,uy,ux,cc\n1,2,3,0.5,-0.25,1,0.75\n"
    path.write_bytes(text.encode("utf-8"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONUTF8", "PYTHONIOENC"))}
    env.update(LC_ALL="C", LANG="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0")
    result = subprocess.run([sys.executable, "-c", _READ_IN_THE_C_LOCALE, str(path)], capture_output=True,
                            text=True, env=env, cwd=Path(__file__).parents[1], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # where the C locale's encoding is UTF-8 (not on Linux glibc) the read is still checked, but a reader
    # that used the locale's encoding would pass there too
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["nodes"] == [[1, 2, 3]] and got["displacement"] == [[0.5, -0.25, 1]]
    assert got["cc"] == [0.75] and got["ok"] == [True] and got["status"] == [CONVERGED]


def test_synthcals_own_csv_columns_and_the_defaults_of_missing_ones(tmp_path):
    text = "z_vox,y_vox,x_vox,uz_vox,uy_vox,ux_vox\n1,2,3,0.25,0.5,0.75\n4,5,6,inf,0,0\n"
    field = read_dvc_result(_write(tmp_path, "own.CSV", text))
    _check(field, [[1, 2, 3], [4, 5, 6]], [[0.25, 0.5, 0.75], [np.inf, 0, 0]], [np.nan, np.nan], [True, False],
           [CONVERGED, MAX_IT])


def test_a_spam_tsv_reads_return_status_2_as_ok_and_pscc_as_cc(tmp_path):
    names = ["NodeNumber", "Zpos", "Ypos", "Xpos", "Zdisp", "Ydisp", "Xdisp", "PSCC", "returnStatus"]
    text = "\t".join(names) + "\n1\t8\t9\t10\t0.5\t0\t-0.5\t0.95\t2\n2\t8\t9\t18\t1\t1\t1\t0.4\t1\n" \
                              "3\t8\t9\t26\t0\t0\t0\t0.1\t-1\n"
    field = read_dvc_result(_write(tmp_path, "spam.tsv", text))
    _check(field, [[8, 9, 10], [8, 9, 18], [8, 9, 26]], [[0.5, 0, -0.5], [1, 1, 1], [0, 0, 0]], [0.95, 0.4, 0.1],
           [True, False, False], [CONVERGED, MAX_IT, MAX_IT])


def test_synthcals_own_status_and_cc_columns_win_over_spams(tmp_path):
    names = ["Zpos", "Ypos", "Xpos", "Zdisp", "Ydisp", "Xdisp", "PSCC", "returnStatus", "synthcalStatus",
             "synthcalCC"]
    text = "\t".join(names) + f"\n1\t2\t3\t0\t0\t0\t0.5\t-1\t{LOW_CC}\t0.3\n"
    field = read_dvc_result(_write(tmp_path, "own.tsv", text))
    _check(field, [[1, 2, 3]], [[0, 0, 0]], [0.3], [False], [LOW_CC])


def test_a_tsv_without_pscc_has_no_cc(tmp_path):
    text = "Zpos\tYpos\tXpos\tZdisp\tYdisp\tXdisp\treturnStatus\n1\t2\t3\t0\t0\t0\t2\n"
    _check(read_dvc_result(_write(tmp_path, "x.tsv", text)), [[1, 2, 3]], [[0, 0, 0]], [np.nan], [True],
           [CONVERGED])


def test_an_npz_prefers_synthcals_displacement_and_takes_the_optional_arrays(tmp_path):
    path = tmp_path / "f.npz"
    np.savez(path, nodes=np.array([[1, 2, 3], [4, 5, 6]]), displacement=np.ones((2, 3)),
             displacement_vox=np.array([[0.5, 0, 0], [0, 0.5, 0]]), cc=np.array([0.7, 0.6]),
             ok=np.array([1, 0]), status=np.array([CONVERGED, LOW_CC], dtype=np.int32))
    _check(read_dvc_result(path), [[1, 2, 3], [4, 5, 6]], [[0.5, 0, 0], [0, 0.5, 0]], [0.7, 0.6], [True, False],
           [CONVERGED, LOW_CC])
    np.savez(path, nodes=np.array([[1, 2, 3]]), displacement=np.array([[0.25, 0, 0]]))
    _check(read_dvc_result(path), [[1, 2, 3]], [[0.25, 0, 0]], [np.nan], [True], [CONVERGED])
    # whole-voxel results (an integer search) and a 0/1 CC are numbers like any other: float64
    np.savez(path, nodes=np.array([[1, 2, 3], [4, 5, 6]]), displacement=np.array([[1, 0, -2], [0, 3, 0]]),
             cc=np.array([1, 0]))
    _check(read_dvc_result(path), [[1, 2, 3], [4, 5, 6]], [[1, 0, -2], [0, 3, 0]], [1.0, 0.0], [True, True],
           [CONVERGED, CONVERGED])


@pytest.mark.parametrize("name, text, message", [
    ("a.csv", "", "{p}: empty; expected a header line and one line per node"),
    ("a.csv", "# only a comment\n", "{p}: empty; expected a header line and one line per node"),
    ("a.csv", "# c\nz,y,x,uz,uy,ux\n", "{p}: no nodes after the header (line 2)"),
    ("a.csv", "z,y,x,uz,uy,ux\n1,2,3,0,0,0\n\n1,2,3,0,0\n",
     "{p}: line 4: expected 6 values like the header (line 1), got 5"),
    ("a.csv", "# c\nz,y,x,uz,uy,ux\n1,2,3,0,zero,0\n",
     "{p}: line 3: expected numbers, got '1,2,3,0,zero,0'"),
    # a long bad line is quoted to its first 60 characters
    ("a.csv", "z,y,x,uz,uy,ux\n" + "1" * 30 + "," + "2" * 30 + ",x,0,0,0\n",
     "{p}: line 2: expected numbers, got '" + "1" * 30 + "," + "2" * 29 + "'"),
    ("a.tsv", "Zpos\tYpos\tXpos\tYdisp\tXdisp\treturnStatus\n1\t2\t3\t0\t0\t2\n",
     "{p}: line 1: expected a column Zdisp, got columns Zpos, Ypos, Xpos, Ydisp, Xdisp, returnStatus"),
    ("a.csv", "z,y,x,uz,uy\n1,2,3,0,0\n",
     "{p}: line 1: expected a column ux or ux_vox, got columns z, y, x, uz, uy"),
    ("a.tsv", "Zpos\tYpos\tXpos\tZdisp\tYdisp\tXdisp\n1\t2\t3\t0\t0\t0\n",
     "{p}: line 1: expected a column returnStatus, got columns Zpos, Ypos, Xpos, Zdisp, Ydisp, Xdisp"),
    ("a.txt", "z,y,x,uz,uy,ux\n", "{p}: expected a spam .tsv, a .csv or an .npz DVC result"),
    ("a.npz", "not a zip", "{p}: not a readable .npz (ValueError)"),
])
def test_bad_files_are_refused_in_one_line_naming_the_file_and_line(tmp_path, name, text, message):
    path = _write(tmp_path, name, text)
    with pytest.raises(ValueError) as err:
        read_dvc_result(path)
    assert str(err.value) == message.format(p=path)


def test_bad_npz_arrays_and_missing_files_are_refused_in_one_line(tmp_path):
    path = tmp_path / "f.npz"
    np.savez(path, nodes=np.zeros((2, 3)), disp=np.zeros((2, 3)))
    with pytest.raises(ValueError) as err:
        read_dvc_result(path)
    assert str(err.value) == f"{path}: expected arrays nodes and displacement (N, 3), got nodes, disp"
    np.savez(path, displacement=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"got displacement$"):
        read_dvc_result(path)
    np.savez(path, nodes=np.zeros((2, 3)), displacement=np.zeros((3, 3)))
    with pytest.raises(ValueError) as err:
        read_dvc_result(path)
    assert str(err.value) == f"{path}: expected nodes and displacement of shape (N, 3), got (2, 3) and (3, 3)"
    np.savez(path, nodes=np.zeros((2, 2)), displacement=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"got \(2, 2\) and \(2, 2\)"):
        read_dvc_result(path)
    np.savez(path, nodes=np.zeros(6), displacement=np.zeros(6))
    with pytest.raises(ValueError, match=r"got \(6,\) and \(6,\)"):
        read_dvc_result(path)
    with pytest.raises(ValueError) as err:
        read_dvc_result(tmp_path / "none.csv")
    assert str(err.value) == f"{tmp_path / 'none.csv'}: no such file"


def test_synthcals_field_in_spams_layout_reads_back_and_holds_f_as_rotation_times_i_plus_gradient(tmp_path):
    c, s = np.cos(0.1), np.sin(0.1)
    rotation = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    gradient = np.zeros((3, 3, 3))
    gradient[0] = [[0.01, 0, 0], [0, -0.02, 0], [0, 0, 0.03]]
    gradient[2] = np.nan          # a failed node: its F is the identity
    field = {"nodes": np.array([[8, 8, 8], [8, 8, 16], [8, 16, 8]]),
             "displacement_vox": np.array([[0.5, 0.25, -0.125], [1, 2, 3], [np.nan, np.nan, np.nan]]),
             "residual_displacement_gradient": gradient, "ok": np.array([True, False, False]),
             "status": np.array([CONVERGED, MAX_IT, LOW_CC]), "cc": np.array([0.9, 0.4, 0.1]),
             "iterations": np.array([3, 50, 7])}
    path = tmp_path / "step1.tsv"
    write_spam_tsv(path, field, types.SimpleNamespace(rotation=rotation))
    header = path.read_text().splitlines()[0].split("\t")
    assert tuple(header) == SPAM_COLUMNS
    table = np.loadtxt(path, skiprows=1, ndmin=2)
    col = {n: table[:, i] for i, n in enumerate(header)}
    np.testing.assert_array_equal(col["NodeNumber"], [1, 2, 3])
    np.testing.assert_array_equal(col["returnStatus"], [2, 1, -1])
    np.testing.assert_array_equal(col["iterations"], [3, 50, 7])
    np.testing.assert_array_equal(col["deltaPhiNorm"], [0, 0, 0])
    np.testing.assert_array_equal(col["PSCC"], [0.9, 0.4, 0.1])
    f = np.stack([[col[f"F{a}{b}"] for b in "zyx"] for a in "zyx"]).transpose(2, 0, 1)
    np.testing.assert_allclose(f[0], rotation @ (np.eye(3) + gradient[0]), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(f[1], np.eye(3))
    np.testing.assert_array_equal(f[2], np.eye(3))
    back = read_dvc_result(path)
    _check(back, field["nodes"], field["displacement_vox"], field["cc"], [True, False, False],
           [CONVERGED, MAX_IT, LOW_CC])


class _Shift:
    """A registration that shifts by ``d``: its inverse shifts back."""

    def __init__(self, d):
        self.d = np.asarray(d, float)

    def apply(self, points):
        return points + self.d

    def inverse(self):
        return _Shift(-self.d)


def test_score_file_maps_the_field_into_the_registered_frame_and_passes_edge_and_rule_on(tmp_path, monkeypatch):
    truth = types.SimpleNamespace(transforms=[_Shift([0, 0, 0]), _Shift([0, 0, 0]), _Shift([2, -1, 0.5])])
    seen = {}

    def score_dvc(t, field, k, shape, rule):
        seen.update(truth=t, field=field, k=k, shape=shape, rule=rule)
        return {"rms_error_voxels": 0.25, "bias": float("nan"), "per_bin": [1.0, float("inf")]}, None

    def truth_frame(of):
        assert of is run
        return truth

    monkeypatch.setattr(dvc_files, "truth_frame", truth_frame)
    monkeypatch.setattr(dvc_files, "score_dvc", score_dvc)
    run = types.SimpleNamespace(steps=[0, 1, 2], grid=types.SimpleNamespace(recon_shape=(40, 50, 60)),
                                analysis_settings=lambda: types.SimpleNamespace(subvolume_voxels=9))
    path = _write(tmp_path, "r.csv", "z,y,x,uz,uy,ux\n10,20,30,3,-1,0.5\n")
    got = score_file(run, 2, path, rule="subvolume_mean")
    # non-finite numbers become None (JSON has no NaN), the rest stays as scored
    assert got == {"rms_error_voxels": 0.25, "bias": None, "per_bin": [1.0, None]}
    assert seen["truth"] is truth and seen["k"] == 2 and seen["shape"] == (40, 50, 60)
    assert seen["rule"] == "subvolume_mean" and seen["field"]["subvolume_voxels"] == 9
    # the deformed position 10 + 3, 20 - 1, 30 + 0.5 taken back by the step's registration (-2, +1, -0.5)
    np.testing.assert_array_equal(seen["field"]["residual_displacement_vox"], [[1, 0, 0]])
    score_file(run, 1, path, subvolume_voxels=13)
    assert seen["rule"] == "particle" and seen["field"]["subvolume_voxels"] == 13 and seen["k"] == 1
    for k in (0, 3):
        with pytest.raises(ValueError) as err:
            score_file(run, k, path)
        assert str(err.value) == f"--dvc {k}={path}: step {k} is not a compressed step of this run (steps 1..2)"
