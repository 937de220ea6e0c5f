"""Particle orientations: unit quaternions and their rotation matrices.

Quaternions are stored scalar first, with the vector part in physical
(x, y, z) order, ``q = (w, qx, qy, qz)``: the usual right-handed convention.
Arrays in synthcal are indexed (z, y, x), so :func:`rotation_matrices_zyx`
returns the matrices that act on z-y-x ordered vectors. A body-frame vector
``b`` (z-y-x) of particle ``i`` lies at ``R[i] @ b`` in the world frame.
"""

import numpy as np

_REVERSE = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=np.float64)


def rotation_matrices_xyz(quaternions):
    """Rotation matrices acting on x-y-z vectors, shape (N, 3, 3).

    Parameters
    ----------
    quaternions : (N, 4) array_like
        Scalar-first quaternions ``(w, qx, qy, qz)``; normalised here.
    """
    q = np.asarray(quaternions, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != 4:
        raise ValueError(f"quaternions: expected shape (N, 4), got {q.shape}")
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    if np.any(norm == 0):
        raise ValueError("quaternions: every quaternion must be non-zero")
    w, x, y, z = (q / norm).T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], axis=-1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], axis=-1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1),
    ], axis=-2)


def rotation_matrices_zyx(quaternions):
    """Rotation matrices acting on z-y-x vectors, shape (N, 3, 3).

    The same rotations as :func:`rotation_matrices_xyz`, with rows and
    columns reordered to the array convention of synthcal.
    """
    return _REVERSE @ rotation_matrices_xyz(quaternions) @ _REVERSE
