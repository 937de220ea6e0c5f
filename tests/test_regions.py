"""Registration regions: the slab on the pin, by hand and on a pillar compressed above its foot."""

import numpy as np
import pytest
import scipy.ndimage as ndi

from analysis.preprocess import register_rigid
from analysis.regions import foot_region, pin_region


@pytest.mark.parametrize("shape, rows, edge, expected_z", [
    ((100, 40, 40), (30, 90), 21, (25, 36)),     # a quarter edge (5 rows) each side of the first row
    ((100, 40, 40), (2, 90), 21, (2, 13)),       # 2 rows from the bottom face (the registration's border)
    ((100, 40, 40), None, 9, (2, 7)),            # no sample rows: the bottom; at least 2 rows each side
    ((30, 40, 40), (25, 30), 21, (17, 28)),      # 2 rows from the top face
    ((8, 40, 40), (6, 8), 21, (0, 8)),           # a volume lower than the slab: all of it
])
def test_pin_slab_straddles_the_first_sample_row(shape, rows, edge, expected_z):
    box = pin_region(np.zeros(shape), rows, edge)
    assert (box[0].start, box[0].stop) == expected_z
    assert (box[1].start, box[1].stop) == (2, shape[1] - 2) and (box[2].start, box[2].stop) == (2, shape[2] - 2)


def test_registration_on_the_pin_slab_follows_the_drift_where_the_foot_is_compressed():
    """A textured pillar drifts rigidly by d; above its first rows the head compresses it by 10 % (the rows
    move down, more the higher they are). Registered on the slab on the pin, the fit is the drift; the lowest
    quarter of the sample is pulled down by the compressed rows it holds."""
    rng = np.random.default_rng(3)
    reference = ndi.gaussian_filter(rng.normal(size=(80, 48, 48)), 1.5).astype(np.float32)
    drift = np.array([0.8, -0.6, 0.5])
    rows, edge = (10, 70), 21
    held = rows[0] + edge // 4 + 1                      # first row above the slab
    z, y, x = np.indices(reference.shape, dtype=float)
    # the material at reference point p shows at p + u(p): u = drift, less 10 % of the height above the slab
    u_z = drift[0] - 0.1 * np.clip(z - held, 0, None)
    moving = ndi.map_coordinates(reference, [z - u_z, y - drift[1], x - drift[2]], order=3, mode="nearest")
    on_pin = register_rigid(moving, reference, region=pin_region(reference, rows, edge))
    on_foot = register_rigid(moving, reference, region=foot_region(reference, rows, edge))
    assert np.abs(on_pin.translation_voxels - drift).max() < 0.05
    assert on_pin.rotation_angle_deg < 0.1
    assert drift[0] - on_foot.translation_voxels[0] > 0.15
