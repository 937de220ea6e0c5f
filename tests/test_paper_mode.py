"""Paper mode (issue 13): each of its choices against a hand-worked answer, and a reduced run on tiny."""

import dataclasses
import functools
import itertools
import json
import shutil

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from analysis.chain import check_registration, preprocess_series
from analysis.dvc import Status, correlate_tiled
from analysis.pores import cpsd_whole_voxel, whole_voxel_radius
from analysis.preprocess import match_histogram, match_linear
from analysis.regions import particle_region
from analysis.settings import best_settings, paper_settings
from analysis.transform import RigidTransform
from conftest import TINY, run_synthcal

LEVELS = np.array([0.0, 1.0, 3.0])   # grey level of pore, CBD, NMC
THRESHOLDS = (0.5, 2.0)              # halfway between the levels


def fractions(grey):
    """Voxel counts of the three classes of a grey volume at the fixed thresholds."""
    return np.bincount(np.digitize(grey.ravel(), THRESHOLDS), minlength=3)


@functools.lru_cache(maxsize=None)
def periodic_scan(period=8, repeats=4, n=24):
    """Three phases with texture, periodic in z with ``period``: any whole-voxel roll keeps the multiset of
    grey values in the lowest ``period`` rows (the foot) unchanged."""
    rng = np.random.default_rng(11)
    field = ndi.gaussian_filter(rng.normal(size=(period, n, n)), 1.5, mode="wrap")
    labels = np.digitize(field, np.quantile(field, [0.35, 0.5]))
    # texture of amplitude < 0.2 keeps every value 0.3 from a threshold
    texture = 0.18 * np.tanh(rng.normal(size=labels.shape))
    return np.tile(LEVELS[labels] + texture, (repeats, 1, 1)).astype(np.float32)


@settings(max_examples=25, deadline=None)
@given(st.tuples(*[st.integers(-30, 30)] * 3), st.floats(0.2, 5.0), st.floats(-10.0, 10.0))
def test_linear_contrast_match_leaves_phase_fractions_of_a_rigidly_moved_volume_unchanged(shift, gain, offset):
    reference = periodic_scan()
    moved = gain * np.roll(reference, shift, axis=(0, 1, 2)) + offset
    foot = (slice(0, 8), slice(None), slice(None))
    matched = match_linear(moved, reference, foot)
    np.testing.assert_array_equal(fractions(matched), fractions(reference))


def test_linear_match_keeps_a_real_change_of_phase_fractions_that_histogram_matching_undoes():
    rng = np.random.default_rng(5)
    labels = np.digitize(ndi.gaussian_filter(rng.normal(size=(40, 24, 24)), 1.5), [-0.05, 0.05])
    texture = 0.18 * np.tanh(rng.normal(size=labels.shape))
    compressed = labels.copy()
    top = compressed[20:]                    # above the foot (rows 0..9), pores close up into NMC
    top[(top == 0) & (rng.random(top.shape) < 0.5)] = 2
    reference = (LEVELS[labels] + texture).astype(np.float32)
    scan = (1.7 * (LEVELS[compressed] + texture) - 0.4).astype(np.float32)
    foot = (slice(0, 10), slice(None), slice(None))
    true_counts = np.bincount(compressed.ravel(), minlength=3)
    np.testing.assert_array_equal(fractions(match_linear(scan, reference, foot)), true_counts)
    # the whole-volume histogram match pulls the compressed scan's NMC back toward the reference's
    nmc_by_histogram = fractions(match_histogram(scan, reference))[2]
    reference_nmc = np.sum(labels == 2)
    assert abs(nmc_by_histogram - reference_nmc) < abs(true_counts[2] - reference_nmc) / 10


def _sphere_scan(seed, shape=(60, 40, 40), foil_rows=4, head_row=50):
    """NMC spheres (grey 3) in pores (0) with texture, a flat foil below, and three tempting wrong places: a
    strongly textured head above, strong noise in the corners outside the circle every projection sees, and
    a block of finely textured carbon-binder (grey 0.8 +- 0.5, below NMC) low in the field of view."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    nmc = np.zeros(shape, dtype=bool)
    for c in rng.uniform((0, 0, 0), shape, size=(60, 3)):
        nmc |= (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= rng.uniform(2.5, 5.0) ** 2
    cbd = (z >= 8) & (z < 22) & (np.abs(y - 20) < 7) & (np.abs(x - 20) < 7)
    nmc &= ~cbd
    grey = np.where(nmc, 3.0, 0.0) + 0.2 * ndi.gaussian_filter(rng.normal(size=shape), 1.0)
    grey[cbd] = 0.8 + 0.5 * np.clip(rng.normal(size=cbd.sum()), -1.0, 1.0)
    axis = (shape[1] - 1) / 2
    outside = (y - axis) ** 2 + (x - axis) ** 2 > (shape[1] / 2) ** 2
    grey[outside] += 10.0 * rng.normal(size=outside.sum())
    grey[head_row:] = 3.0 + 10.0 * rng.normal(size=grey[head_row:].shape)
    grey[:foil_rows] = 5.0
    return grey.astype(np.float32), nmc, (foil_rows, head_row)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_registration_particle_is_inside_the_field_of_view_and_away_from_the_head(seed):
    grey, nmc, rows = _sphere_scan(seed)
    edge = 9
    box = particle_region(grey, rows, edge)
    assert all(s.stop - s.start == edge for s in box)
    # on the foil: the centre row within half a box above the foil top, so far below the head (row 50 up)
    centre_row = box[0].start + edge // 2
    assert rows[0] <= centre_row <= rows[0] + edge // 2 and box[0].start >= 0
    # every voxel centre of the box within n / 2 of the rotation axis
    axis = (grey.shape[1] - 1) / 2
    corners = np.array([(y, x) for y in (box[1].start, box[1].stop - 1) for x in (box[2].start, box[2].stop - 1)])
    assert np.all(np.hypot(*(corners - axis).T) <= grey.shape[1] / 2)
    centre = tuple((s.start + s.stop - 1) // 2 for s in box)
    assert nmc[centre], "the box is centred in a particle"


def test_a_registration_that_did_not_follow_the_sample_is_refused_in_one_line_naming_the_scan():
    box = (slice(0, 9), slice(3, 12), slice(4, 13))

    def fit(cc, turn_deg):
        return RigidTransform(rotation=Rotation.from_euler("z", turn_deg, degrees=True).as_matrix(),
                              translation_voxels=np.zeros(3), centre_voxels=np.full(3, 4.0), cc=cc)

    check_registration(fit(0.3, 5.0 - 1e-9), box, "step1.tif")   # at both limits: kept
    with pytest.raises(ValueError, match=r"^step1.tif: .*z 0-9, y 3-12, x 4-13.* CC 0.29 .*") as low:
        check_registration(fit(0.29, 0.0), box, "step1.tif")
    with pytest.raises(ValueError, match=r"^step2.tif: .* 5.2 deg turn"):
        check_registration(fit(0.99, 5.2), box, "step2.tif")
    assert "\n" not in str(low.value)
    # through the chain: a moving scan unrelated to the reference is refused (on best mode's 5-row slab on the
    # pin of this 30-voxel cube it fits CC 0.30 turned 10 deg; on the lowest quarter it fitted CC 0.19, 22 deg)
    rng = np.random.default_rng(3)
    reference = ndi.gaussian_filter(rng.normal(size=(30, 30, 30)), 1.5).astype(np.float32)
    unrelated = ndi.gaussian_filter(rng.normal(size=(30, 30, 30)), 1.5).astype(np.float32)
    chain = best_settings(0.5, median_size=1, subvolume_um=5.0, node_spacing_um=2.5, max_displacement_um=2.0,
                          min_cc=0.5)
    with pytest.raises(ValueError, match=r"^b.tif: the rigid registration .* so it did not follow the sample; "):
        preprocess_series([reference, unrelated], chain, names=["a.tif", "b.tif"])


@functools.lru_cache(maxsize=None)
def texture(n, seed=0):
    """Periodic, smooth, unit-variance random texture (so Fourier shifts are exact)."""
    v = ndi.gaussian_filter(np.random.default_rng(seed).normal(size=(n, n, n)), 1.6, mode="wrap")
    return (v / v.std()).astype(np.float64)


def fourier_shift(v, shift):
    """v(x - shift) for a periodic band-limited v: material moves by +shift."""
    return np.fft.ifftn(ndi.fourier_shift(np.fft.fftn(v), shift)).real.astype(np.float32)


@settings(max_examples=8, deadline=None)
@given(st.tuples(*[st.floats(-3.0, 3.0, allow_nan=False)] * 3))
def test_tiled_rigid_dvc_recovers_rigid_shifts_within_0p02_voxel_and_tiles_by_its_edge(shift):
    ref = texture(54)
    result = correlate_tiled(ref.astype(np.float32), fourier_shift(ref, shift), subvolume_voxels=15,
                             max_displacement_voxels=3.5)
    assert result.ok.all()
    assert np.abs(result.displacement - np.asarray(shift)).max() < 0.02
    for axis in range(3):
        assert np.unique(np.diff(np.unique(result.nodes[:, axis]))).tolist() == [15]


def test_paper_settings_tile_every_edge_of_the_study_by_that_edge():
    ref = texture(54)
    shift = (0.6, -1.2, 0.3)
    # edges whose tiles leave >= 4 voxels to the faces of the 54-voxel volume (3 x 15, 4 x 11), so no moved
    # cube reaches the nulls past them
    chain = paper_settings(1.0, median_size=3, subvolume_um=15, max_displacement_um=2.0, min_cc=0.5,
                           study_subvolumes_um=[11])
    assert chain.node_spacing_voxels == chain.subvolume_voxels == 15
    for edge in chain.subvolumes_voxels:
        result = chain.correlate(ref.astype(np.float32), fourier_shift(ref, shift), edge, chain)
        for axis in range(3):
            assert np.unique(np.diff(np.unique(result.nodes[:, axis]))).tolist() == [edge]
        assert np.abs(result.displacement[result.ok] - shift).max() < 0.02


def test_paper_settings_correlate_the_cubes_that_leave_the_scan_against_nulls():
    ref = texture(54)
    shift = (0.0, 0.0, 2.5)
    # 3 tiles of 17 voxels leave 1 and 2 voxels to the x faces: the last column of tiles moves 0.5 voxel past
    chain = paper_settings(1.0, median_size=3, subvolume_um=17, max_displacement_um=3.0, min_cc=0.5)
    deformed = fourier_shift(ref, shift)
    stopped = correlate_tiled(ref.astype(np.float32), deformed, subvolume_voxels=17, max_displacement_voxels=3.0)
    leaving = stopped.status == Status.OUTSIDE
    assert leaving.sum() == 9 and np.all(stopped.cc[leaving] == 0)
    result = chain.correlate(ref.astype(np.float32), deformed, 17, chain)
    assert not np.any(result.status == Status.OUTSIDE)
    assert np.all(result.cc[leaving] > 0.5)


def brute_force_radius(phase):
    """For every voxel, the largest whole radius r of a ball {|x - c| <= r}, centred on a voxel c of the array
    and lying in the phase (outside the array counts as phase), that covers it: every ball, every radius."""
    n = np.array(phase.shape)
    pad = int(n.max()) + 1
    inside = np.pad(phase, pad, constant_values=True)
    best = np.full(phase.shape, -1)
    for r in range(int(n.max()) + 1):
        ball = [o for o in itertools.product(range(-r, r + 1), repeat=3) if sum(a * a for a in o) <= r * r]
        fits = np.ones(phase.shape, dtype=bool)
        for o in ball:
            fits &= inside[tuple(slice(pad + a, pad + a + m) for a, m in zip(o, n))]
        if not fits.any():
            break
        centres = np.pad(fits, pad, constant_values=False)
        covered = np.zeros(phase.shape, dtype=bool)
        for o in ball:
            covered |= centres[tuple(slice(pad - a, pad - a + m) for a, m in zip(o, n))]
        best[covered] = r
    return best


@settings(max_examples=15, deadline=None)
@given(st.tuples(*[st.integers(5, 11)] * 3), st.integers(0, 2 ** 32 - 1), st.floats(0.3, 0.7))
def test_whole_voxel_radius_matches_brute_force(shape, seed, solid_fraction):
    field = ndi.gaussian_filter(np.random.default_rng(seed).normal(size=shape), 1.2)
    phase = field > np.quantile(field, solid_fraction)
    if phase.all() or not phase.any():
        phase.flat[0] = not phase.flat[0]
    expected = brute_force_radius(phase)
    radius = whole_voxel_radius(phase)
    np.testing.assert_array_equal(radius[phase], expected[phase])
    assert np.all(radius[~phase] == 0)


@pytest.mark.parametrize("radius", [1, 3, 6])
def test_whole_voxel_cpsd_of_a_digital_ball_is_its_radius(radius):
    n = 2 * radius + 5
    offsets = np.indices((n, n, n)) - n // 2
    ball = np.sum(offsets ** 2, axis=0) <= radius ** 2
    result = cpsd_whole_voxel(ball, 0.25)
    # every voxel of the ball is covered by the ball itself, and by no larger one
    assert result.mean_radius_um == result.median_radius_um == radius * 0.25
    assert np.all(result.cumulative_fraction[result.radius_um <= radius * 0.25] == 1.0)
    assert np.all(result.cumulative_fraction[result.radius_um > radius * 0.25] == 0.0)


def test_best_and_paper_settings_hold_their_documented_choices():
    common = dict(median_size=3, subvolume_um=8.0, max_displacement_um=10.0, min_cc=0.5,
                  study_subvolumes_um=[16.0, 14.0, 12.0, 10.0, 8.0, 6.0, 4.0])
    best = best_settings(0.128, node_spacing_um=4.0, **common)
    paper = paper_settings(0.128, **common)
    assert best.mode == "best" and paper.mode == "paper"
    assert best.shape_function == "affine" and paper.shape_function == "rigid"
    assert best.window == "gaussian" and paper.window == "uniform"
    assert paper.subvolume_voxels == 63 and paper.node_spacing_voxels == 63 and best.node_spacing_voxels == 31
    # 16 -> 4 um in 2 um steps: seven edges, the chosen one among them
    assert len(paper.subvolumes_voxels) == 7
    names = {key: value.split(":")[0] for key, value in paper.describe().items()}
    assert names == {"mode": "paper", "match_contrast": "analysis.preprocess.match_linear",
                     "registration_region": "analysis.regions.particle_region",
                     "correlate": "analysis.settings.tiled_rigid_dvc",
                     "segment": "analysis.segment.segment_nmc_vs_rest",
                     "pore_size": "analysis.pores.cpsd_whole_voxel"}


@pytest.fixture(scope="module")
def tiny_paper_run(tiny_run, tmp_path_factory):
    """The tiny run analysed in paper mode with the best mode compared (the simulation stays cached)."""
    out = tmp_path_factory.mktemp("tiny-paper") / "run"
    shutil.copytree(tiny_run[0], out)
    result = run_synthcal("run", str(TINY), "--out", str(out), "--set", 'analysis.mode="paper"',
                          "--set", "analysis.compare_modes=true")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[reconstruct] cached" in result.stderr
    return out


def test_paper_table_has_every_row_and_column_for_both_modes(tiny_paper_run):
    scores = json.loads((tiny_paper_run / "validation" / "scores.json").read_text())
    comparison = scores["paper_comparison"]
    assert comparison["mode"] == "paper" and list(comparison["tables"]) == ["paper", "best"]
    assert comparison["tables"]["paper"]["folder"] == "analysis"
    assert comparison["tables"]["best"]["folder"] == "analysis-compare"
    expected_rows = [f"mean_pore_radius_step{s}" for s in "0AB"] + [f"inactive_fraction_step{s}" for s in "0AB"] \
        + ["mean_cc_chosen_edge", "cc_rank_chosen_edge"]
    for mode, table in comparison["tables"].items():
        rows = table["rows"]
        assert [r["row"] for r in rows] == expected_rows
        for row in rows:
            assert {"paper", "measured", "truth", "measured_minus_truth", "definition"} <= set(row)
            if mode == "best" and row["row"] == "cc_rank_chosen_edge":
                # analysis-compare/ runs no subvolume study unless [analysis] compare_study: nothing to rank
                assert row["paper"] == 2 and row["measured"] is None and row["truth"] is None
                continue
            assert row["paper"] is not None and row["measured"] is not None
            if row["row"] != "mean_cc_chosen_edge":
                assert row["measured_minus_truth"] == pytest.approx(row["measured"] - row["truth"])
        assert [r["paper"] for r in rows] == [2.0, 1.7, 1.5, 0.68, 0.58, 0.55, 0.81, 2]
    assert scores["compared"]["analysis_mode"] == "best"


def test_the_compared_chain_runs_its_subvolume_study_only_when_asked(tiny_paper_run):
    from synthcal.dataset import analysis_settings, compared_settings, load_run

    run = load_run(tiny_paper_run)
    compared = run.compared()
    assert len(run.analysis_settings().study_subvolumes_voxels) == 2    # tiny's 4.8 and 3.2 um beside 4.0
    assert compared.analysis_settings().study_subvolumes_voxels == ()
    assert not list(compared.folder("dvc").glob("study_*")) and list(run.folder("dvc").glob("study_*"))
    assert sorted(p.name for p in compared.folder("dvc").glob("*.npz")) == ["step1.npz", "step2.npz"]
    scores = run.scores()
    # the study scores the chosen edge beside its two others
    assert len(scores["subvolume_study"]) == 3 and scores["compared"]["subvolume_study"] == []
    asked = dataclasses.replace(run.scenario, analysis=dataclasses.replace(run.scenario.analysis, compare_study=True))
    assert compared_settings(asked, run.grid) == analysis_settings(asked, run.grid, mode="best")
    assert len(compared_settings(asked, run.grid).study_subvolumes_voxels) == 2


def test_paper_truth_is_the_non_nmc_phase_of_the_phantom_in_the_analysed_region(tiny_paper_run):
    from analysis.phases import Phase
    from analysis.regions import sample_mask
    from synthcal.dataset import load_run

    run = load_run(tiny_paper_run)
    rows = {r["row"]: r for r in run.scores()["paper_comparison"]["tables"]["paper"]["rows"]}
    margin = int(np.ceil(run.scenario.pores.edge_exclusion_um / run.voxel_size_um))
    for k, name in enumerate("0AB"):
        labels = run.labels(k)
        region = sample_mask(labels.shape, run.grid.sample_rows[k], margin)
        assert rows[f"inactive_fraction_step{name}"]["truth"] == pytest.approx(np.mean(labels[region] != Phase.NMC))
        # the brute-force-checked whole-voxel radius of pores and CBD together, head and foil as walls
        radius = whole_voxel_radius(np.isin(labels, (Phase.PORE, Phase.CBD)))
        expected = radius[region & np.isin(labels, (Phase.PORE, Phase.CBD))].mean() * run.voxel_size_um
        assert rows[f"mean_pore_radius_step{name}"]["truth"] == pytest.approx(expected)


def test_paper_run_records_its_particle_and_compares_with_the_best_chain_to_the_bit(tiny_paper_run, tiny_run):
    from synthcal.dataset import load_run

    run = load_run(tiny_paper_run)
    registration = json.loads((run.folder("preprocess") / "registration.json").read_text())
    assert registration["mode"] == "paper" and "particle" in registration["region_rule"]
    (z0, z1), (y0, y1), (x0, x1) = registration["region_voxels"]
    first, end = run.grid.sample_rows[0]
    assert first <= (z0 + z1 - 1) // 2 <= first + (z1 - z0) // 2 and z0 >= 0    # on the foil
    assert all(step["cc"] >= 0.3 and step["rotation_angle_deg"] <= 5.0 for step in registration["steps"])
    axis, n = (run.grid.n_det - 1) / 2, run.grid.n_det
    assert max(abs(y0 - axis), abs(y1 - 1 - axis)) ** 2 + max(abs(x0 - axis), abs(x1 - 1 - axis)) ** 2 <= (n / 2) ** 2
    # analysis-compare/ holds the best chain, written by the same step functions as the tiny run's analysis/
    compared = run.compared()
    assert compared.mode == "best"
    for k in run.steps[1:]:
        assert (compared.folder("dvc") / f"step{k}.npz").read_bytes() == \
            (tiny_run[0] / "analysis" / "dvc" / f"step{k}.npz").read_bytes()
    # the DVC record names the mode's choice by its docstring's whole first paragraph, on one line
    record = json.loads((run.folder("dvc") / "step1.json").read_text())["dvc"]
    assert record.startswith("Paper mode's DVC: cubes") and record.endswith('``outside="null"``).')
    assert "\n" not in record and "  " not in record
    # the paper's DVC tiles by the edge
    field = run.dvc(1)
    edge = int(field["subvolume_voxels"])
    assert np.unique(np.diff(np.unique(field["nodes"][:, 0]))).tolist() == [edge]
    summary = run.pore_summary()
    assert summary[0]["pore_phases"] == ["pore", "cbd"] and summary[0]["cbd"] == 0.0


def test_paper_report_opens_with_the_table(tiny_paper_run):
    page = (tiny_paper_run / "report" / "index.html").read_text(encoding="utf-8")
    first_heading = page.index("<h2>")
    assert page[first_heading:].startswith("<h2>The paper's table, with the truth</h2>")
    assert "<h3>paper chain (analysis/)</h3>" in page and "<h3>best chain (analysis-compare/)</h3>" in page
    assert page.count("<li>From step 0 to step A") == 4


def test_analyse_in_paper_mode_gives_the_pipelines_paper_dvc_to_the_bit(tiny_paper_run, tmp_path):
    from synthcal.dataset import load_run

    run = load_run(tiny_paper_run)
    s, v = run.scenario, run.voxel_size_um
    first, end = run.grid.sample_rows[0]
    out = tmp_path / "out"
    volumes = [str(run.folder("reconstruct") / f"step{k}.tif") for k in run.steps]
    result = run_synthcal("analyse", *volumes, "--out", str(out), "--mode", "paper",
                          "--subvolume-um", str(s.dvc.subvolume_um),
                          "--max-displacement-um", str(s.dvc.max_displacement_um),
                          "--sample-z-um", str((first - 0.25) * v), str((end - 0.75) * v))
    assert result.returncode == 0, result.stderr[-2000:]
    for k in run.steps[1:]:
        mine, pipeline = np.load(out / "dvc" / f"step{k}.npz"), np.load(run.folder("dvc") / f"step{k}.npz")
        for name in pipeline.files:
            assert mine[name].tobytes() == pipeline[name].tobytes(), name


def test_paper_mode_flags_are_one_line_errors(tmp_path):
    result = run_synthcal("analyse", "a.tif", "b.tif", "--mode", "paper", "--node-spacing-um", "2",
                          "--voxel-size-um", "1", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--node-spacing-um" in result.stderr
    result = run_synthcal("check", str(TINY), "--set", 'analysis.mode="papers"')
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "[analysis] mode" in result.stderr
