"""Scenario parsing: defaults, round trip, and one-line errors for bad input."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from synthcal import scenario as sc

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenarios_load_and_round_trip(path, tmp_path):
    s = sc.load(path)
    assert s.name == path.stem
    resolved = tmp_path / "resolved.toml"
    resolved.write_text(sc.to_toml(s))
    assert sc.load(resolved) == s


def test_defaults_are_the_paper():
    s = sc.from_dict({})
    assert s.imaging.voxel_size_um == 0.128
    assert s.imaging.n_projections == 801
    assert s.imaging.half_range_deg == 70.0
    assert s.imaging.energy_kev == 5.4
    assert s.dvc.subvolume_um == 8.0
    assert s.dvc.subvolume_study_um == [16.0, 14.0, 12.0, 10.0, 8.0, 6.0, 4.0]


def test_scenario_is_frozen():
    s = sc.from_dict({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.imaging.voxel_size_um = 1.0


def _one_line_error(data):
    with pytest.raises(sc.ScenarioError) as info:
        sc.from_dict(data)
    message = str(info.value)
    assert "\n" not in message and message
    return message


def test_unknown_key_suggests_closest():
    message = _one_line_error({"imaging": {"voxel_size": 0.1}})
    assert "[imaging] voxel_size" in message and "voxel_size_um" in message


def test_unknown_section_suggests_closest():
    assert "imaging" in _one_line_error({"imagng": {}})


def test_removed_detector_pixels_key_is_unknown():
    # the detector's width is the field of view over the voxel size; a second key could only disagree
    assert "[imaging] detector_pixels: unknown key" in _one_line_error({"imaging": {"detector_pixels": 512}})


def test_steps_must_start_at_zero_and_increase():
    assert "steps_um" in _one_line_error({"compression": {"steps_um": [0.0, 2.0, 1.0]}})
    assert "steps_um" in _one_line_error({"compression": {"steps_um": [1.0, 2.0]}})


def test_drift_needs_one_vector_per_step():
    assert "drift_um" in _one_line_error({"imaging": {"drift_um": [[0.0, 0.0, 0.0]]}})


def test_drift_rate_is_one_velocity_and_oversampling_a_whole_number():
    assert "[imaging] drift_rate_um_per_h: expected [vz, vy, vx]" in _one_line_error(
        {"imaging": {"drift_rate_um_per_h": [0.01, 0.02]}})
    assert "[imaging] projection_oversampling: expected an integer" in _one_line_error(
        {"imaging": {"projection_oversampling": 1.5}})
    assert "[imaging] projection_oversampling: expected >= 1" in _one_line_error(
        {"imaging": {"projection_oversampling": 0}})


def test_unknown_material():
    assert "head_material" in _one_line_error({"imaging": {"head_material": "unobtainium"}})


NUMERIC_FIELDS = [
    (name, f.name, f.type, f.metadata)
    for name, cls in sc.SECTIONS.items()
    for f in dataclasses.fields(cls)
    if f.type in (int, float)
]
NOT_NUMBERS = st.one_of(
    st.text(max_size=5), st.booleans(), st.lists(st.integers(), max_size=2),
    st.just(float("nan")), st.just(float("inf")), st.just(float("-inf")),
)


def _names_key(message, section, key):
    assert "\n" not in message
    assert f"[{section}] {key}" in message, message


@settings(max_examples=150, deadline=None)
@given(target=st.sampled_from(NUMERIC_FIELDS), value=NOT_NUMBERS)
def test_a_value_that_is_not_a_finite_number_is_rejected_naming_the_key(target, value):
    section, key, _, _ = target
    with pytest.raises(sc.ScenarioError) as info:
        sc.from_dict({section: {key: value}})
    _names_key(str(info.value), section, key)


@pytest.mark.parametrize("target", NUMERIC_FIELDS, ids=lambda t: f"{t[0]}.{t[1]}")
@pytest.mark.parametrize("value", [-1e30, 1e30])
def test_a_huge_number_is_kept_exactly_or_rejected_by_the_range_of_its_key(target, value):
    """Out of the key's declared range (or a float for an integer key): an error naming
    the key. In range: the scenario keeps the value as given, unless a rule that ties
    several keys together rejects it, with one line."""
    section, key, kind, meta = target
    lo, hi = meta.get("lo"), meta.get("hi")
    out_of_range = kind is int or (lo is not None and value < lo) or (hi is not None and value > hi)
    if out_of_range:
        with pytest.raises(sc.ScenarioError) as info:
            sc.from_dict({section: {key: value}})
        _names_key(str(info.value), section, key)
        return
    try:
        s = sc.from_dict({section: {key: value}})
    except sc.ScenarioError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("[")
    else:
        assert getattr(getattr(s, section), key) == value


@settings(max_examples=100, deadline=None)
@given(data=st.dictionaries(st.text(max_size=8), st.one_of(
    st.integers(), st.text(max_size=4), st.dictionaries(st.text(max_size=8), st.integers(), max_size=3)),
    max_size=4))
def test_random_tables_never_raise_anything_but_scenario_error(data):
    try:
        sc.from_dict(data)
    except sc.ScenarioError as exc:
        assert "\n" not in str(exc)


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "synthcal.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env=None if env is None else {**os.environ, **env})


def test_cli_check_prints_resolved_scenario():
    result = _cli("check", "scenarios/tiny.toml")
    assert result.returncode == 0
    assert 'name = "tiny"' in result.stdout and "[imaging]" in result.stdout


@pytest.mark.parametrize("text, needle", [
    ("[imaging]\nvoxel_size_um = 'big'\n", "voxel_size_um"),
    ("[imaging\n", "not valid TOML"),
    ("[dvc]\nsubvolume_um = -4\n", "subvolume_um"),
])
def test_cli_check_bad_file_is_one_line(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = _cli("check", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.stderr


def test_cli_missing_file_is_one_line():
    result = _cli("check", "no/such.toml")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_gpu_without_gpu_is_one_line_error(tmp_path):
    # taichi's own switch hides CUDA from the child, so a GPU machine checks this too
    result = _cli("run", "scenarios/tiny.toml", "--arch", "gpu", "--out", str(tmp_path / "run"),
                  env={"TI_ENABLE_CUDA": "0", "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 2, result.stderr[-500:]
    assert "CUDA" in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "dem").exists()


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=40))
def test_resolved_scenario_always_parses_back(text):
    # a description with newlines, quotes, backslashes or control characters once wrote invalid TOML
    s = sc.from_dict({"description": text})
    assert sc.tomllib.loads(sc.to_toml(s)) == sc.to_dict(s)


@pytest.mark.parametrize("pattern", ["runs/{nme}", "runs/{0}", "runs/{name", "runs/{name.x}"])
def test_bad_output_pattern_is_one_line_naming_the_key(pattern):
    message = _one_line_error({"output": {"directory": pattern}})
    assert "[output] directory" in message and "{name}" in message


def test_cli_run_bad_output_pattern_is_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[output]\ndirectory = "runs/{nme}"\n')
    result = _cli("run", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "[output] directory" in result.stderr


def test_every_dem_parameter_comes_from_the_scenario():
    """The DEM's bonds take every constant from [dem]: the engine has no defaults to disagree with."""
    from synthcal.dem import BondModel
    from synthcal.dem.protocol import bond_model

    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(BondModel))
    dem = sc.with_overrides(sc.from_dict({}), ["dem.bond_strength_pa=3e7", "dem.bond_damping_ratio=0.1"]).dem
    bond = bond_model(dem)
    assert (bond.tensile_strength_pa, bond.shear_strength_pa, bond.damping_ratio) == (3e7, 3e7, 0.1)
    assert bond.youngs_modulus_pa == dem.bond_youngs_modulus_pa == 2e8
