"""A volume pair prepared once for several DVC calls (analysis.dvc.PreparedPair, SearchPyramid).

Each edge of a subvolume study correlates the same two volumes; the pair's
float32 copies, the deformed volume's B-spline coefficients and the search
pyramid are made once and handed to every call. The results must be those
of calls that prepare for themselves, to the bit, and a preparation of
other volumes must be refused.
"""

import types

import numpy as np
import pytest

import analysis.chain as chain
import analysis.dvc.local as local
import analysis.dvc.search as search
from analysis.dvc import PreparedPair, correlate
from analysis.dvc.search import SearchPyramid, integer_search

from test_dvc_status import fourier_shift, texture

# searched +-8 voxels with edges of 15 and 17: a coarse pyramid level (edge // 2 | 1 = 7 >= 7, radius > 6)
EDGES, RADIUS = (15, 17), 8
SHIFT = (3.4, -5.2, 6.6)


def _pair():
    reference = texture(3).astype(np.float32)
    return reference, fourier_shift(texture(3), SHIFT)


def _counting(monkeypatch):
    """Count the B-spline prefilters and the binnings of a volume."""
    counts = {"spline": 0, "bin2": 0}
    spline_init, bin2 = local.SplineVolume.__init__, search._bin2

    def counted_spline(self, *args, **kwargs):
        counts["spline"] += 1
        spline_init(self, *args, **kwargs)

    def counted_bin2(volume):
        counts["bin2"] += 1
        return bin2(volume)

    monkeypatch.setattr(local.SplineVolume, "__init__", counted_spline)
    monkeypatch.setattr(search, "_bin2", counted_bin2)
    return counts


def _run(reference, deformed, edge, **kwargs):
    return correlate(reference, deformed, subvolume_voxels=edge, node_spacing_voxels=8,
                     max_displacement_voxels=RADIUS, shape_function="rigid", window="uniform", **kwargs)


def test_a_pair_prepared_once_gives_every_edge_the_bytes_of_its_own_call_with_one_prefilter_and_one_binning(
        monkeypatch):
    reference, deformed = _pair()
    counts = _counting(monkeypatch)
    alone = [_run(reference, deformed, edge) for edge in EDGES]
    # each call prefilters for itself and bins both volumes at least once
    assert counts["spline"] == len(EDGES) and counts["bin2"] >= 2 * len(EDGES)
    assert all(np.abs(r.displacement[r.ok] - SHIFT).max() < 0.05 and r.ok.mean() > 0.5 for r in alone)

    counts.update(spline=0, bin2=0)
    prepared = PreparedPair(reference, deformed)
    shared = [_run(reference, deformed, edge, prepared=prepared) for edge in EDGES]
    assert counts == {"spline": 1, "bin2": 2}          # one coarse level, both volumes binned once
    for a, b in zip(alone, shared):
        for name in ("nodes", "displacement", "cc", "ok", "iterations", "status", "displacement_gradient"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_a_pair_prepared_from_other_volumes_or_for_another_backend_is_refused():
    reference, deformed = _pair()
    prepared = PreparedPair(reference, deformed)
    with pytest.raises(ValueError, match="prepared: expected the PreparedPair of these"):
        _run(reference, deformed.copy(), EDGES[0], prepared=prepared)
    with pytest.raises(ValueError, match="prepared: expected the PreparedPair of these"):
        _run(reference, deformed, EDGES[0], prepared=prepared, arch="gpu")
    with pytest.raises(ValueError, match="pyramid: expected the SearchPyramid of these"):
        integer_search(reference, deformed, np.array([[24, 24, 24]]), 15, 8,
                       pyramid=SearchPyramid(reference, deformed.copy()))


def test_the_series_prepares_one_pair_per_step_and_hands_it_to_every_edge(monkeypatch):
    volumes = [np.zeros((20, 20, 20), np.float32) + k for k in range(3)]
    calls = []

    def correlate_stand_in(reference, deformed, edge, settings, *, sample_rows, arch, prepared, progress):
        calls.append((edge, prepared))
        assert reference is volumes[0] and prepared.holds(reference, deformed, arch)
        return f"field of edge {edge}"

    settings = types.SimpleNamespace(subvolumes_voxels=(9, 7, 5), voxel_size_um=0.5, correlate=correlate_stand_in)
    results = chain.correlate_series(volumes, settings)
    assert results == {(k, e): f"field of edge {e}" for k in (1, 2) for e in (9, 7, 5)}
    # steps 1 and 2: one pair each, shared by the three edges
    assert [edge for edge, _ in calls] == [9, 7, 5, 9, 7, 5]
    assert len({id(p) for _, p in calls[:3]}) == 1 and len({id(p) for _, p in calls[3:]}) == 1
    assert calls[0][1] is not calls[3][1] and calls[3][1].holds(volumes[0], volumes[2], "cpu")
