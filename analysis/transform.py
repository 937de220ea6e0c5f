"""Rigid transforms between scans (registration results), with a JSON round trip."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RigidTransform:
    """Rigid map from reference positions to moving-volume positions.

    A reference voxel at ``p`` (z, y, x) shows the material found in the
    moving volume at ``centre + translation + rotation @ (p - centre)``.

    Attributes
    ----------
    rotation : numpy.ndarray
        (3, 3) proper rotation acting on (z, y, x) vectors.
    translation_voxels : numpy.ndarray
        (3,) displacement of ``centre`` (z, y, x), voxels.
    centre_voxels : numpy.ndarray
        (3,) rotation centre (z, y, x) in the reference, voxels.
    cc : float
        Zero-normalised correlation over the registration region.
    """

    rotation: np.ndarray
    translation_voxels: np.ndarray
    centre_voxels: np.ndarray
    cc: float

    @property
    def rotation_angle_deg(self):
        """Angle of the rotation, degrees."""
        return float(np.degrees(np.arccos(np.clip((np.trace(self.rotation) - 1) / 2, -1, 1))))

    def matrix(self):
        """(3, 4) affine map [R | t'] with moving position = R @ p + t'."""
        return np.concatenate([self.rotation, (self.centre_voxels + self.translation_voxels
                                               - self.rotation @ self.centre_voxels)[:, None]], axis=1)

    @classmethod
    def identity(cls, shape):
        """The map of a volume of ``shape`` onto itself (centre: the volume's centre)."""
        return cls(rotation=np.eye(3), translation_voxels=np.zeros(3),
                   centre_voxels=(np.asarray(shape, float) - 1) / 2, cc=1.0)

    def apply(self, points_voxels):
        """Map reference positions to moving-volume positions.

        Parameters
        ----------
        points_voxels : (..., 3) array_like
            Positions (z, y, x) in the reference, voxels.

        Returns
        -------
        (..., 3) ndarray
            ``centre + translation + rotation @ (p - centre)``.
        """
        p = np.asarray(points_voxels, dtype=np.float64)
        return (p - self.centre_voxels) @ self.rotation.T + self.centre_voxels + self.translation_voxels

    def inverse(self):
        """The map from moving-volume positions back to reference positions.

        Examples
        --------
        >>> t = RigidTransform(np.eye(3), np.array([1.0, -2.0, 0.5]), np.zeros(3), cc=0.9)
        >>> t.inverse().apply(t.apply([3.0, 4.0, 5.0])).tolist()
        [3.0, 4.0, 5.0]
        """
        moved_centre = self.centre_voxels + self.translation_voxels
        return RigidTransform(rotation=self.rotation.T, translation_voxels=-self.translation_voxels,
                              centre_voxels=moved_centre, cc=self.cc)

    def compose(self, first):
        """The map ``p -> self.apply(first.apply(p))``: ``first``, then this one.

        The result's ``cc`` is NaN: no single correlation measured it.
        """
        centre = first.centre_voxels
        image = self.apply(first.apply(centre))
        return RigidTransform(rotation=self.rotation @ first.rotation, translation_voxels=image - centre,
                              centre_voxels=centre, cc=float("nan"))

    def to_dict(self):
        """Plain JSON-able dict (``matrix`` included for readers, ignored by :meth:`from_dict`)."""
        return {"rotation": self.rotation.tolist(), "translation_voxels": self.translation_voxels.tolist(),
                "centre_voxels": self.centre_voxels.tolist(), "cc": float(self.cc),
                "rotation_angle_deg": self.rotation_angle_deg, "matrix": self.matrix().tolist()}

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(rotation=np.asarray(data["rotation"], dtype=np.float64).reshape(3, 3),
                       translation_voxels=np.asarray(data["translation_voxels"], dtype=np.float64).reshape(3),
                       centre_voxels=np.asarray(data["centre_voxels"], dtype=np.float64).reshape(3),
                       cc=float(data["cc"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"transform: expected rotation (3x3), translation_voxels, centre_voxels and cc, "
                             f"got {exc.__class__.__name__}: {exc}") from None


def total_displacement(transform, nodes_voxels, residual_voxels):
    """Displacement from the reference scan to the moving scan, from a DVC on registered volumes.

    The registered volume shows at ``x`` the moving scan's material at
    ``transform.apply(x)``; a DVC between the reference and the registered
    volume finds the material of reference point ``p`` at ``p + r`` there. So
    the moving scan holds it at ``transform.apply(p + r)``, and the total
    displacement is ``transform.apply(p + r) - p``.

    Parameters
    ----------
    transform : RigidTransform
        The registration (reference -> moving scan).
    nodes_voxels, residual_voxels : (N, 3) array_like
        Node positions in the reference and the displacement measured on the
        registered volume, voxels (z, y, x); NaN stays NaN.

    Returns
    -------
    (N, 3) ndarray
        Total displacement, voxels of the reference scan.

    Examples
    --------
    >>> t = RigidTransform(np.eye(3), np.array([2.0, 0.0, -1.0]), np.zeros(3), cc=1.0)
    >>> total_displacement(t, [[5.0, 5.0, 5.0]], [[0.5, 0.0, 0.0]]).tolist()
    [[2.5, 0.0, -1.0]]
    """
    nodes = np.asarray(nodes_voxels, dtype=np.float64)
    return transform.apply(nodes + np.asarray(residual_voxels, dtype=np.float64)) - nodes
