"""Otsu / multi-Otsu segmentation of a noisy, median-filtered three-level image."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from analysis.pores import phase_fractions
from analysis.segment import threshold_three_phase, threshold_two_phase

LEVELS = (0.1, 0.6, 1.2)          # pore, CBD, NMC grey values (attenuation, 1/µm)
TRUE_FRACTIONS = (0.30, 0.15, 0.55)


def phantom(seed, noise=0.08, n=64, levels=LEVELS):
    """Blobby truth labels with given fractions, their grey image (noisy, median 3^3)."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.standard_normal((n, n, n)), 3.0)
    cuts = np.quantile(field, np.cumsum(TRUE_FRACTIONS)[:2])
    labels = np.digitize(field, cuts).astype(np.uint8)
    grey = np.asarray(levels, dtype=np.float32)[labels]
    grey += rng.normal(0.0, noise, grey.shape).astype(np.float32)
    return labels, ndi.median_filter(grey, size=3)


@pytest.mark.parametrize("seed", [0, 1])
def test_three_phase_recovers_fractions(seed):
    labels, grey = phantom(seed)
    result = threshold_three_phase(grey)
    assert result.labels.dtype == np.uint8
    t0, t1 = result.thresholds
    assert LEVELS[0] < t0 < LEVELS[1] < t1 < LEVELS[2]
    got = phase_fractions(result.labels)
    truth = phase_fractions(labels)
    assert (got.pore, got.cbd, got.nmc) == pytest.approx((truth.pore, truth.cbd, truth.nmc),
                                                         abs=0.02)
    assert got.inactive == pytest.approx(1 - truth.nmc, abs=0.02)
    assert np.mean(result.labels == labels) > 0.97


def test_two_phase_recovers_solid():
    labels, grey = phantom(2, levels=(LEVELS[0], LEVELS[2], LEVELS[2]))
    result = threshold_two_phase(grey)
    assert LEVELS[0] < result.threshold < LEVELS[2]
    assert result.solid.mean() == pytest.approx(np.mean(labels > 0), abs=0.02)


def test_mask_limits_the_histogram():
    labels, grey = phantom(3)
    # a thick shell of bright "air" outside the analysis region would pull the thresholds up
    padded = np.pad(grey, 24, constant_values=5.0)
    mask = np.pad(np.ones(grey.shape, dtype=bool), 24, constant_values=False)
    result = threshold_three_phase(padded, mask=mask)
    got = phase_fractions(result.labels, mask=mask)
    truth = phase_fractions(labels)
    assert (got.pore, got.cbd, got.nmc) == pytest.approx((truth.pore, truth.cbd, truth.nmc),
                                                         abs=0.02)
    two = threshold_two_phase(padded, mask=mask)
    assert LEVELS[0] < two.threshold < LEVELS[2]


def test_manual_thresholds_are_used_as_given():
    grey = np.linspace(0.0, 1.0, 1000, dtype=np.float32).reshape(10, 10, 10)
    three = threshold_three_phase(grey, thresholds=(0.25, 0.75))
    assert three.thresholds == (0.25, 0.75)
    expected = (grey > 0.25).astype(np.uint8) + (grey > 0.75)
    assert np.array_equal(three.labels, expected)
    two = threshold_two_phase(grey, threshold=0.5)
    assert two.threshold == 0.5 and np.array_equal(two.solid, grey > 0.5)


@pytest.mark.parametrize("call, match", [
    (lambda g: threshold_two_phase(g[0]), "volume"),
    (lambda g: threshold_two_phase(np.zeros_like(g)), "volume"),
    (lambda g: threshold_two_phase(g, threshold=float("nan")), "threshold"),
    (lambda g: threshold_two_phase(g, mask=np.ones(g.shape, dtype=np.uint8)), "mask"),
    (lambda g: threshold_three_phase(g, thresholds=(0.8, 0.2)), "thresholds"),
    (lambda g: threshold_three_phase(g, thresholds=(0.2,)), "thresholds"),
    (lambda g: threshold_three_phase(g, mask=np.zeros(g.shape, dtype=bool)), "volume"),
])
def test_bad_input(call, match):
    grey = np.random.default_rng(0).random((6, 6, 6)).astype(np.float32)
    with pytest.raises(ValueError, match=match) as err:
        call(grey)
    assert "\n" not in str(err.value)
