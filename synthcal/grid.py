"""The run's voxel geometry: the phantom grid and the reconstruction inside it.

The phantom grid holds the whole pillar with the foil below and the head
above; the reconstruction (the field of view) is its central ``n_det``
columns in y and x and all its rows in z, so reconstruction voxel ``p`` is
phantom voxel ``p + (0, off, off)`` with ``off = fov_offset_voxels``.
Voxel ``(k, j, i)`` of the phantom is centred at
``origin_um + voxel_size_um * (k, j, i)`` (world z-y-x, µm).
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from analysis.io import atomic_output


@dataclass(frozen=True)
class Grid:
    """Phantom grid, field of view and the rigid bodies' positions per load step.

    Attributes
    ----------
    voxel_size_um : float
        Voxel edge, µm (the phantom's and the reconstruction's).
    shape : tuple of 3 int
        Phantom ``(nz, ny, nx)``.
    origin_um : tuple of 3 float
        World z-y-x of the centre of phantom voxel (0, 0, 0), µm.
    n_det : int
        Detector columns = reconstruction width in y and x, voxels.
    foil_top_z_um : float
        Top face of the foil (the pin); material below it is foil.
    head_z_um : tuple of float
        Lower face of the flat head at each load step, µm.
    """

    voxel_size_um: float
    shape: tuple
    origin_um: tuple
    n_det: int
    foil_top_z_um: float
    head_z_um: tuple

    def __post_init__(self):
        if not self.voxel_size_um > 0:
            raise ValueError(f"voxel_size_um: expected > 0, got {self.voxel_size_um}")
        if len(self.shape) != 3 or len(self.origin_um) != 3:
            raise ValueError("shape, origin_um: expected three values (z, y, x) each")
        if not 0 < self.n_det <= min(self.shape[1:]) or (self.shape[1] - self.n_det) % 2:
            raise ValueError(f"n_det: expected <= the grid's width {self.shape[1]} with the same parity, "
                             f"got {self.n_det}")

    @classmethod
    def around_particles(cls, positions_um, radii_um, head_z_um, *, voxel_size_um, field_of_view_um,
                         foil_top_z_um, foil_margin_um, head_margin_um):
        """The grid of a pillar: every particle, ``foil_margin_um`` of foil below, the head above.

        The grid is centred on the pillar axis with the same parity as the
        detector, so the field of view (``round(field_of_view_um / v)``
        columns, centred on the rotation axis) is its central columns exactly.

        Parameters
        ----------
        positions_um, radii_um : (N, 3), (N,) array_like
            Particles at load step 0 (they set the axis and the height).
        head_z_um : sequence of float
            The head's lower face at each load step.
        voxel_size_um, field_of_view_um, foil_top_z_um, foil_margin_um, head_margin_um : float
            µm.
        """
        v = float(voxel_size_um)
        n_det = int(round(field_of_view_um / v))
        pos, r = np.asarray(positions_um, float), np.asarray(radii_um, float)
        axis_yx = 0.5 * ((pos[:, 1:] - r[:, None]).min(axis=0) + (pos[:, 1:] + r[:, None]).max(axis=0))
        half_width = float(np.max(np.linalg.norm(pos[:, 1:] - axis_yx, axis=1) + r))
        n_xy = max(int(np.ceil(2 * half_width / v)) + 2, n_det)
        n_xy += (n_xy - n_det) % 2
        z_lo = foil_top_z_um - foil_margin_um
        z_hi = float(np.max(pos[:, 0] + r)) + head_margin_um
        n_z = int(np.ceil((z_hi - z_lo) / v))
        origin = (z_lo + 0.5 * v, *(axis_yx - 0.5 * (n_xy - 1) * v))
        return cls(voxel_size_um=v, shape=(n_z, n_xy, n_xy), origin_um=tuple(float(o) for o in origin),
                   n_det=n_det, foil_top_z_um=float(foil_top_z_um),
                   head_z_um=tuple(float(h) for h in head_z_um))

    @property
    def fov_offset_voxels(self):
        """Phantom columns left of the field of view, in y and in x."""
        return (self.shape[1] - self.n_det) // 2

    @property
    def recon_shape(self):
        """Shape of a reconstruction, ``(nz, n_det, n_det)``."""
        return (self.shape[0], self.n_det, self.n_det)

    @property
    def foil_row(self):
        """First row of the sample: the lowest row whose voxel reaches above the foil top.

        When the foil top lies on a voxel centre (as in :meth:`around_particles`
        grids, whose foil margin is a whole number of voxels) that row is
        centred on it and holds no foil. The pin does not move.
        """
        return int(np.ceil((self.foil_top_z_um - self.origin_um[0]) / self.voxel_size_um - 0.5))

    @property
    def head_rows(self):
        """Per step, the row whose voxel holds the head face; it and the rows above are left out of the sample.

        The lab knows it from the load stage's displacement reading.
        """
        return [int(np.floor((h - self.origin_um[0]) / self.voxel_size_um + 0.5)) for h in self.head_z_um]

    @property
    def sample_rows(self):
        """Per step, ``(first, end)`` rows of the sample between foil and head (end excluded)."""
        return [(self.foil_row, head) for head in self.head_rows]

    def recon_to_world_um(self, points_voxels):
        """World z-y-x (µm) of reconstruction voxel positions (z, y, x)."""
        off = np.array([0.0, self.fov_offset_voxels, self.fov_offset_voxels])
        return np.asarray(self.origin_um) + self.voxel_size_um * (np.asarray(points_voxels, float) + off)

    def box_um_to_recon_slices(self, box_um):
        """A world box ``[z0, z1, y0, y1, x0, x1]`` (µm) as slices of the reconstruction.

        The slices hold the voxels whose centres lie in the box.
        """
        lo_hi = np.asarray(box_um, float).reshape(3, 2)
        off = np.array([0.0, self.fov_offset_voxels, self.fov_offset_voxels])
        first = (lo_hi[:, 0] - np.asarray(self.origin_um)) / self.voxel_size_um - off
        last = (lo_hi[:, 1] - np.asarray(self.origin_um)) / self.voxel_size_um - off
        return tuple(slice(int(np.ceil(a)), int(np.floor(b)) + 1) for a, b in zip(first, last))

    def to_json(self):
        """JSON text (lists for tuples)."""
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text):
        """Inverse of :meth:`to_json`."""
        try:
            d = json.loads(text)
            return cls(voxel_size_um=float(d["voxel_size_um"]), shape=tuple(int(n) for n in d["shape"]),
                       origin_um=tuple(float(o) for o in d["origin_um"]), n_det=int(d["n_det"]),
                       foil_top_z_um=float(d["foil_top_z_um"]),
                       head_z_um=tuple(float(h) for h in d["head_z_um"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"grid: expected the JSON of a Grid, got {exc.__class__.__name__}: {exc}") from None

    def write(self, path):
        """Write :meth:`to_json` to ``path``."""
        with atomic_output(path) as tmp:
            tmp.write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def read(cls, path):
        """Read a grid written by :meth:`write`."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: no such grid file")
        return cls.from_json(path.read_text(encoding="utf-8"))
