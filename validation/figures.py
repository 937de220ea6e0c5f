"""Figures of a run: the paper's and the ones it lacked.

Each function takes arrays, draws one figure and saves it as PNG at ``path``.
Slices are vertical (z up, x across) through the centre unless said
otherwise, because compression runs along z. Figures are matplotlib
``Figure`` objects saved directly (no pyplot), so importing this module
leaves the process's matplotlib backend alone (Jupyter keeps its own).
"""

import numpy as np
from matplotlib.figure import Figure

from analysis.io import atomic_output

DPI = 110


def _save(fig, path):
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})


def _single(figsize=(5, 3.6)):
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def _row(n, height=3.2):
    fig = Figure(figsize=(3.2 * n + 0.6, height))
    return fig, fig.subplots(1, n, squeeze=False)[0]


def radiographs(images, labels, path):
    """Transmission images (counts / flat) per step, as in the paper's Fig. 2a–c."""
    fig, axes = _row(len(images))
    for ax, img, label in zip(axes, images, labels):
        ax.imshow(img, cmap="gray", origin="lower")
        ax.set_title(f"radiograph, {label}")
        ax.set_xlabel("detector column")
        ax.set_ylabel("row (z)")
    fig.tight_layout()
    _save(fig, path)


def virtual_slices(volumes, labels, voxel_size_um, path):
    """Central x–z slice of each reconstruction (Fig. 2d–f)."""
    fig, axes = _row(len(volumes))
    lo, hi = np.percentile(np.concatenate([v[:, v.shape[1] // 2].ravel() for v in volumes]), [1, 99])
    for ax, vol, label in zip(axes, volumes, labels):
        sl = vol[:, vol.shape[1] // 2, :]
        extent = (0, sl.shape[1] * voxel_size_um, 0, sl.shape[0] * voxel_size_um)
        ax.imshow(sl, cmap="gray", origin="lower", vmin=lo, vmax=hi, extent=extent)
        ax.set_title(f"virtual slice, {label}")
        ax.set_xlabel("x (µm)")
        ax.set_ylabel("z (µm)")
    fig.tight_layout()
    _save(fig, path)


def _node_slice(nodes, values_list, y_centre):
    """Nodes nearest the central y plane, and their values."""
    ys = np.unique(nodes[:, 1])
    y = ys[np.argmin(np.abs(ys - y_centre))] if ys.size else 0
    sel = nodes[:, 1] == y
    return sel, [v[sel] for v in values_list]


def node_maps(fields, labels, title, path, *, cmap="viridis", vmin=None, vmax=None,
              vectors=None, voxel_size_um=1.0, marked=None):
    """A scalar per node on the central x–z node plane, one panel per step.

    Parameters
    ----------
    fields : list of (nodes (N, 3) voxels, values (N,))
    labels : list of str
    title : str
        Colour bar label.
    vectors : list of (N, 3) ndarray, optional
        Displacements (voxels) drawn as arrows (x, z components).
    marked : list of (N,) bool ndarray, optional
        Nodes circled in black (subvolumes holding fragments of cracked particles).
    """
    fig, axes = _row(len(fields), height=3.6)
    image = None
    for i, (ax, (nodes, values), label) in enumerate(zip(axes, fields, labels)):
        if len(nodes) == 0:
            ax.set_title(f"{label}: no nodes")
            continue
        y_centre = 0.5 * (nodes[:, 1].min() + nodes[:, 1].max())
        extra = [vectors[i]] if vectors is not None else []
        rings = [marked[i]] if marked is not None else []
        sel, (vals, *more) = _node_slice(nodes, [values, *rings, *extra], y_centre)
        ring, vec = (more[0], more[1:]) if rings else (None, more)
        x_um, z_um = nodes[sel, 2] * voxel_size_um, nodes[sel, 0] * voxel_size_um
        image = ax.scatter(x_um, z_um, c=vals, cmap=cmap, vmin=vmin, vmax=vmax, s=60, marker="s")
        if ring is not None and ring.any():
            ax.scatter(x_um[ring], z_um[ring], s=110, marker="o", facecolors="none", edgecolors="k",
                       linewidths=1.0, label="holds fragments")
            ax.legend(loc="lower right", fontsize="x-small")
        if vec:
            ax.quiver(x_um, z_um, vec[0][:, 2], vec[0][:, 0], angles="xy", color="k", width=0.004)
        ax.set_title(label)
        ax.set_xlabel("x (µm)")
        ax.set_ylabel("z (µm)")
        ax.set_aspect("equal")
    if image is not None:
        fig.colorbar(image, ax=list(axes), label=title, shrink=0.85)
    _save(fig, path)


def force_displacement(displacement_um, force_n, steps_um, path):
    """Head force against head travel, with the scan pauses marked."""
    fig, ax = _single()
    ax.plot(displacement_um, np.asarray(force_n) * 1e3)
    for s in steps_um[1:]:
        ax.axvline(s, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("head travel after first contact (µm)")
    ax.set_ylabel("head force (mN)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def error_vs_cc(errors_voxels, cc, labels, path):
    """DVC error against CC for every node: does low CC mean a wrong vector?"""
    fig, ax = _single()
    for err, c, label in zip(errors_voxels, cc, labels):
        ax.scatter(c, err, s=8, alpha=0.6, label=label)
    ax.set_xlabel("correlation coefficient")
    ax.set_ylabel("true error (voxels)")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def subvolume_study(edges_um, mean_cc, rms_error_voxels, path):
    """Mean CC and true RMS error against subvolume edge (the paper's choice, tested)."""
    fig, ax = _single()
    ax.plot(edges_um, mean_cc, "o-", color="tab:blue")
    ax.set_xlabel("subvolume edge (µm)")
    ax.set_ylabel("mean CC", color="tab:blue")
    twin = ax.twinx()
    twin.plot(edges_um, rms_error_voxels, "s--", color="tab:red")
    twin.set_ylabel("true RMS error (voxels)", color="tab:red")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
