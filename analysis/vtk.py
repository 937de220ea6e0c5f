"""Export of node fields to legacy VTK (POLYDATA vertices) for ParaView.

VTK points are (x, y, z): positions, vectors and tensors given in the
(z, y, x) order of the arrays are reversed on writing, so ParaView shows
the sample the right way up (z is the pillar axis).
"""

import numpy as np

from analysis.io import atomic_output


def write_vtk_nodes(path, nodes_um, fields=None, *, binary=True, title="synthcal DVC nodes"):
    """Write nodes and per-node fields as a legacy VTK POLYDATA file.

    Parameters
    ----------
    path : str or os.PathLike
        Output file, conventionally ``*.vtk``.
    nodes_um : numpy.ndarray
        (N, 3) node positions (z, y, x), µm.
    fields : dict of str to numpy.ndarray, optional
        Per-node data: (N,) scalars, (N, 3) vectors (z, y, x) or (N, 3, 3)
        tensors (z, y, x indices). Names must have no whitespace. Booleans
        and integers are written as float32 scalars; NaN is kept.
    binary : bool
        Big-endian binary (compact) or ASCII.
    title : str
        Header line (one line, at most 255 characters).

    Notes
    -----
    The file is written to a temporary name and renamed when complete.
    """
    nodes = np.asarray(nodes_um, dtype=np.float64)
    if nodes.ndim != 2 or nodes.shape[1] != 3:
        raise ValueError(f"nodes_um: expected an (N, 3) array, got shape {nodes.shape}")
    n = len(nodes)
    if "\n" in title or len(title) > 255:
        raise ValueError("title: expected one line of at most 255 characters")
    blocks = []
    for name, value in (fields or {}).items():
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"fields: name {name!r} must be non-empty without whitespace")
        v = np.asarray(value, dtype=np.float64)
        if v.shape == (n,):
            blocks.append((f"SCALARS {name} float 1\nLOOKUP_TABLE default", v[:, None]))
        elif v.shape == (n, 3):
            blocks.append((f"VECTORS {name} float", v[:, ::-1]))
        elif v.shape == (n, 3, 3):
            blocks.append((f"TENSORS {name} float", v[:, ::-1, ::-1].reshape(n, 9)))
        else:
            raise ValueError(f"fields: {name!r} has shape {v.shape}; expected ({n},), ({n}, 3) or ({n}, 3, 3)")
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        fh.write(f"# vtk DataFile Version 3.0\n{title}\n{'BINARY' if binary else 'ASCII'}\n"
                 "DATASET POLYDATA\n".encode())
        fh.write(f"POINTS {n} float\n".encode())
        _write(fh, nodes[:, ::-1], binary)
        fh.write(f"VERTICES {n} {2 * n}\n".encode())
        cells = np.stack([np.ones(n, dtype=np.int64), np.arange(n)], axis=1)
        _write(fh, cells, binary, integer=True)
        if blocks:
            fh.write(f"POINT_DATA {n}\n".encode())
            for header, data in blocks:
                fh.write(f"{header}\n".encode())
                _write(fh, data, binary)


def _write(fh, data, binary, integer=False):
    if binary:
        fh.write(np.ascontiguousarray(data, dtype=">i4" if integer else ">f4").tobytes())
        fh.write(b"\n")
    else:
        fmt = "%d" if integer else "%.9g"
        np.savetxt(fh, data, fmt=fmt)
