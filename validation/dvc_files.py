"""DVC results from any code, read and scored against a run's truth; synthcal's own in spam's layout.

Accepted files (node positions in voxels of the reference reconstruction,
z-y-x; displacements in voxels, from the reference reconstruction to the
deformed one, as any DVC between the two scans measures them):

- spam's TSV (as ``spam-ldic`` writes it): columns ``Zpos Ypos Xpos``,
  ``Zdisp Ydisp Xdisp``, ``returnStatus`` (2 = converged: ``ok``), optional
  ``PSCC`` (taken as the CC); synthcal's own export adds ``synthcalStatus``
  and ``synthcalCC``, used when present;
- CSV with a header line ``z,y,x,uz,uy,ux[,cc][,ok][,status]`` (synthcal's own
  ``dvc/step{k}.csv`` is read by its ``z_vox``/``uz_vox`` columns); lines
  starting with ``#`` are comments (text files are read as UTF-8, whatever
  the locale's encoding, so a comment may hold any character);
- ``.npz`` with ``nodes``, ``displacement`` and optional ``cc``, ``ok``,
  ``status`` (synthcal's own file is read by its ``displacement_vox``).

:func:`score_file` maps the field into the frame synthcal's own DVC works
in (after its registration) and scores it with exactly the code that scores
synthcal's DVC (:func:`validation.frame.score_dvc`).
"""

from pathlib import Path

import numpy as np

from analysis.dvc import Status
from analysis.io import atomic_output
from validation.frame import score_dvc, truth_frame

SPAM_COLUMNS = ("NodeNumber", "Zpos", "Ypos", "Xpos", "Fzz", "Fzy", "Fzx", "Zdisp", "Fyz", "Fyy", "Fyx", "Ydisp",
                "Fxz", "Fxy", "Fxx", "Xdisp", "PSCC", "returnStatus", "deltaPhiNorm", "iterations",
                "synthcalStatus", "synthcalCC")
_ALIASES = {"z": ("z", "z_vox"), "y": ("y", "y_vox"), "x": ("x", "x_vox"),
            "uz": ("uz", "uz_vox"), "uy": ("uy", "uy_vox"), "ux": ("ux", "ux_vox")}
_SPAM_CONVERGED, _SPAM_MAX_ITERATIONS, _SPAM_FAILED = 2, 1, -1


def _table(path, delimiter):
    """``(names, rows)`` of a delimited text file with a header line; one-line errors with the line number."""
    lines = path.read_text(encoding="utf-8").splitlines()
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    if not numbered:
        raise ValueError(f"{path}: empty; expected a header line and one line per node")
    header_line, header = numbered[0]
    names = [n.strip() for n in header.split(delimiter)]
    try:
        rows = np.loadtxt([line for _, line in numbered[1:]], delimiter=delimiter, ndmin=2)
    except ValueError:
        # only on a bad file: find the line to name
        for number, line in numbered[1:]:
            fields = line.split(delimiter)
            if len(fields) != len(names):
                raise ValueError(f"{path}: line {number}: expected {len(names)} values like the header "
                                 f"(line {header_line}), got {len(fields)}") from None
            try:
                [float(f) for f in fields]
            except ValueError:
                raise ValueError(f"{path}: line {number}: expected numbers, got {line.strip()[:60]!r}") from None
        raise
    if rows.shape[0] == 0:
        raise ValueError(f"{path}: no nodes after the header (line {header_line})")
    return names, rows


def _column(path, names, rows, key, required=True):
    for name in _ALIASES.get(key, (key,)):
        if name in names:
            return rows[:, names.index(name)]
    if required:
        raise ValueError(f"{path}: line 1: expected a column {' or '.join(_ALIASES.get(key, (key,)))}, "
                         f"got columns {', '.join(names)}")
    return None


def _field(nodes, displacement, cc=None, ok=None, status=None):
    nodes = np.asarray(nodes, dtype=np.float64)
    displacement = np.asarray(displacement, dtype=np.float64)
    finite = np.all(np.isfinite(displacement), axis=1)
    ok = finite if ok is None else np.asarray(ok).astype(bool) & finite
    if status is None:
        status = np.where(ok, int(Status.CONVERGED), int(Status.MAX_ITERATIONS))
    cc = np.full(len(nodes), np.nan) if cc is None else np.asarray(cc, dtype=np.float64)
    return {"nodes": nodes, "displacement": displacement, "cc": cc, "ok": ok,
            "status": np.asarray(status).astype(np.int64)}


def read_dvc_result(path):
    """A DVC node field from a spam TSV, a CSV or an ``.npz`` (see the module docstring).

    Returns
    -------
    dict
        ``nodes`` (N, 3), ``displacement`` (N, 3) voxels, ``cc`` (N,), ``ok``
        (N,) bool, ``status`` (N,) :class:`analysis.dvc.Status` values
        (CONVERGED where ok, MAX_ITERATIONS elsewhere when the file has none).

    Raises
    ------
    ValueError
        One line naming the file, the line and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path)
    if suffix not in (".tsv", ".csv"):
        raise ValueError(f"{path}: expected a spam .tsv, a .csv or an .npz DVC result")
    names, rows = _table(path, "\t" if suffix == ".tsv" else ",")
    if suffix == ".tsv":
        spam = dict(zip(("z", "y", "x", "uz", "uy", "ux"), ("Zpos", "Ypos", "Xpos", "Zdisp", "Ydisp", "Xdisp")))
        get = {k: _column(path, names, rows, v) for k, v in spam.items()}
        status = _column(path, names, rows, "synthcalStatus", required=False)
        cc = _column(path, names, rows, "synthcalCC", required=False)
        cc = _column(path, names, rows, "PSCC", required=False) if cc is None else cc
        ok = _column(path, names, rows, "returnStatus") == _SPAM_CONVERGED
    else:
        get = {k: _column(path, names, rows, k) for k in _ALIASES}
        cc, status = (_column(path, names, rows, k, required=False) for k in ("cc", "status"))
        ok = _column(path, names, rows, "ok", required=False)
    nodes = np.column_stack([get["z"], get["y"], get["x"]])
    displacement = np.column_stack([get["uz"], get["uy"], get["ux"]])
    return _field(nodes, displacement, cc, ok, status)


def _read_npz(path):
    try:
        with np.load(path) as data:
            arrays = dict(data)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz ({exc.__class__.__name__})") from None
    key = "displacement_vox" if "displacement_vox" in arrays else "displacement"
    for name in ("nodes", key):
        if name not in arrays:
            raise ValueError(f"{path}: expected arrays nodes and displacement (N, 3), got {', '.join(arrays)}")
    nodes, displacement = arrays["nodes"], arrays[key]
    if nodes.ndim != 2 or nodes.shape[1] != 3 or displacement.shape != nodes.shape:
        raise ValueError(f"{path}: expected nodes and displacement of shape (N, 3), got {nodes.shape} and "
                         f"{displacement.shape}")
    return _field(nodes, displacement, arrays.get("cc"), arrays.get("ok"), arrays.get("status"))


def score_file(run, k, path, *, rule="particle", subvolume_voxels=None):
    """Score another code's DVC result for load step ``k`` of a run.

    Parameters
    ----------
    run : synthcal.dataset.Run
    k : int
        Load step the result correlates with step 0.
    path : str or Path
        A file :func:`read_dvc_result` reads.
    rule : {"particle", "subvolume_mean"}
    subvolume_voxels : int, optional
        The other code's subvolume edge (for the subvolume-mean rule and the
        node regions); default the run's own.

    Returns
    -------
    dict
        The same keys as the ``dvc`` block of ``scores.json``.
    """
    from validation.run import finite

    if k not in run.steps[1:]:
        raise ValueError(f"--dvc {k}={path}: step {k} is not a compressed step of this run (steps 1..{len(run.steps) - 1})")
    field = read_dvc_result(path)
    truth = truth_frame(run)
    nodes = field["nodes"]
    field["residual_displacement_vox"] = truth.transforms[k].inverse().apply(nodes + field["displacement"]) - nodes
    field["subvolume_voxels"] = subvolume_voxels or run.analysis_settings().subvolume_voxels
    return finite(score_dvc(truth, field, k, run.grid.recon_shape, rule=rule)[0])


def write_spam_tsv(path, field, transform):
    """synthcal's own DVC node field (``dvc/step{k}.npz`` arrays) in spam-ldic's TSV layout.

    ``Zdisp``... hold the total displacement; ``F`` is the deformation gradient
    of the subvolume's shape function composed with the registration's
    rotation (identity where the node failed); ``returnStatus`` is 2 for ok
    nodes, 1 for MAX_ITERATIONS and -1 for every other failure, with synthcal's
    own status and CC in two extra columns (spam's reader ignores them).
    """
    n = len(field["nodes"])
    gradient = np.nan_to_num(field["residual_displacement_gradient"])
    f = np.einsum("ij,njk->nik", transform.rotation, np.eye(3) + gradient)
    f[~field["ok"]] = np.eye(3)
    u = field["displacement_vox"]
    status = field["status"]
    spam_status = np.where(field["ok"], _SPAM_CONVERGED,
                           np.where(status == Status.MAX_ITERATIONS, _SPAM_MAX_ITERATIONS, _SPAM_FAILED))
    table = np.column_stack([np.arange(1, n + 1), field["nodes"],
                             f[:, 0], u[:, 0], f[:, 1], u[:, 1], f[:, 2], u[:, 2],
                             field["cc"], spam_status, np.zeros(n), field["iterations"], status, field["cc"]])
    with atomic_output(path) as tmp:
        np.savetxt(tmp, table, delimiter="\t", fmt="%.17g", header="\t".join(SPAM_COLUMNS), comments="")
