"""The DVC's gaussian smoothing of both volumes (analysis.dvc.smoothing).

The smoothing is scipy's gaussian filter, applied to both volumes before
anything else: a DVC with ``smoothing_sigma_voxels`` must give, to the bit,
what the same DVC without smoothing gives on volumes that scipy smoothed.
It is off unless asked for.
"""

import numpy as np
import pytest
from scipy import ndimage as ndi

from analysis.dvc import PreparedPair, Status, correlate, node_grid, refine_nodes
from analysis.dvc.smoothing import gaussian_smoothing

from test_dvc_status import fourier_shift, texture

S = 17
SHIFT = (1.3, -0.6, 0.8)
FIELDS = ("displacement", "cc", "ok", "iterations", "status", "displacement_gradient")


def _pair(noise=0.3):
    rng = np.random.default_rng(4)
    ref = texture(2) + noise * rng.normal(size=(48, 48, 48))
    deformed = fourier_shift(texture(2), SHIFT) + noise * rng.normal(size=(48, 48, 48))
    return ref.astype(np.float32), deformed.astype(np.float32)


def _same(a, b):
    for name in FIELDS:
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name


def _scipy(volume, sigma):
    return ndi.gaussian_filter(volume, sigma, output=np.float32)


@pytest.mark.parametrize("sigma", [0.5, 0.8])
def test_correlate_smooths_both_volumes_as_scipy_does_and_leaves_them_as_given(sigma):
    ref, deformed = _pair()
    kept = ref.copy(), deformed.copy()
    args = dict(subvolume_voxels=S, node_spacing_voxels=8, max_displacement_voxels=3)
    smoothed = correlate(ref, deformed, smoothing_sigma_voxels=sigma, **args)
    _same(smoothed, correlate(_scipy(ref, sigma), _scipy(deformed, sigma), smoothing_sigma_voxels=0.0, **args))
    assert np.array_equal(ref, kept[0]) and np.array_equal(deformed, kept[1])
    # and it matters: unsmoothed, the same noisy pair gives other displacements
    plain = correlate(ref, deformed, smoothing_sigma_voxels=0.0, **args)
    assert plain.displacement.tobytes() != smoothed.displacement.tobytes()
    assert smoothed.ok.mean() > 0.9 and np.nanmax(np.abs(smoothed.displacement - SHIFT)) < 0.1


def test_by_default_nothing_is_smoothed():
    ref, deformed = _pair()
    args = dict(subvolume_voxels=S, node_spacing_voxels=16, max_displacement_voxels=3)
    _same(correlate(ref, deformed, **args), correlate(ref, deformed, smoothing_sigma_voxels=0.0, **args))
    prepared = PreparedPair(ref, deformed)
    assert prepared.reference is ref and prepared.deformed is deformed and prepared.holds(ref, deformed, "cpu", 0.0)


def test_refine_nodes_smooths_as_correlate_does():
    ref, deformed = _pair()
    nodes = node_grid(ref.shape, 12, S)
    start = np.broadcast_to(np.round(SHIFT), nodes.shape)
    got = refine_nodes(ref, deformed, nodes, start, subvolume_voxels=S, smoothing_sigma_voxels=0.5)
    want = refine_nodes(_scipy(ref, 0.5), _scipy(deformed, 0.5), nodes, start, subvolume_voxels=S,
                        smoothing_sigma_voxels=0.0)
    _same(got, want)
    assert np.all(got.status == Status.CONVERGED)


@pytest.mark.parametrize("sigma", [-0.5, float("nan"), float("inf"), "0.5", True, None, [0.5]])
def test_a_bad_sigma_is_refused_in_one_line(sigma):
    ref, deformed = _pair()
    with pytest.raises(ValueError, match=r"^smoothing_sigma_voxels: expected a finite number >= 0, got .*$"):
        correlate(ref, deformed, subvolume_voxels=S, node_spacing_voxels=16, max_displacement_voxels=1,
                  smoothing_sigma_voxels=sigma)
    with pytest.raises(ValueError, match=r"^smoothing_sigma_voxels: expected"):
        gaussian_smoothing([ref], sigma)


def test_a_pair_prepared_with_another_smoothing_is_refused():
    ref, deformed = _pair()
    prepared = PreparedPair(ref, deformed, "cpu", 0.0)
    assert prepared.holds(ref, deformed, "cpu", 0.0) and not prepared.holds(ref, deformed, "cpu", 0.5)
    with pytest.raises(ValueError, match="^prepared: expected the PreparedPair .* smoothing_sigma_voxels=0.5$"):
        correlate(ref, deformed, subvolume_voxels=S, node_spacing_voxels=16, max_displacement_voxels=1,
                  smoothing_sigma_voxels=0.5, prepared=prepared)
