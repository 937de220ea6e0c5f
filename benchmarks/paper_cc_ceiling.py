"""The instrument's ceiling of paper mode's mean CC, and what a known strain and more noise make of it.

Run on a run folder whose stages up to ``reconstruct`` are done::

    .venv/bin/python benchmarks/paper_cc_ceiling.py RUN [STRAIN,NOISE[,BAND] ...]

1. Step 0's particles are scanned a second time with step 1's drift, creep
   and noise seed (the scan of step 0 as a later scan's instrument sees it),
   and reconstructed as the run's scans are. The sample has not moved, so
   whatever keeps the pair's CC below 1 is the instrument's.
2. The run's step-0 tomogram and the rescan go through paper mode's
   preprocessing (linear contrast match, median, registration on the
   automatic particle).
3. Per case ``STRAIN,NOISE[,BAND]`` (default ``0,1``): the rescan compressed
   along z by STRAIN (a fraction; material at row Z moves to c + (1 - STRAIN)(Z - c),
   c the registration particle's row; cubic convolution along z, no lateral
   spreading) and noise added to both volumes so that the noise's standard
   deviation is NOISE times the pair's. With BAND, only the top BAND of the
   sample's rows (a fraction, under the head) is compressed, about its lowest
   row, and the rows below stay as they are: the paper's "hotspot ... below
   the compression flat head". The added noise is the pair's own
   difference (two independent realisations of the reconstruction's noise
   after the median filter), rolled across the beam by 97 voxels for the
   reference and 131 for the rescan, so that it is independent of both
   images; it is added after the median filter, not drawn as photons.
4. Paper mode's tiled rigid DVC at every edge of the study.

Printed per case: the mean CC over every cube (the paper's average) and the
fraction of cubes ok at each edge, and the rank of the scenario's edge by
mean CC. The rescan's tomogram is kept in ``RUN-ceiling/`` (beside the run
folder, whose layout stays the pipeline's) and reused.

It reaches into ``synthcal.stages`` for the run's renderer and noise seeds,
so that the rescan is rendered and exposed exactly as the run's scans are.

Latest table (paper scenario, its run of f7b5f1f; this project's 2-core VM,
6 Dec 2026, 18:27-19:41 UTC; the scan took 609 s, each case 93-593 s of
DVC; one run each; measured by these same steps in two throwaway scripts
before this file gathered them. This file, run on the same folder with the
case 0,1 (20:05 UTC, 777 s in all, 6.1 GiB peak), rescanned step 0 to the
same bytes and printed the same first row). The rows from 0.206 on: 7 Dec
2026, 09:45-11:22 UTC, on the paper run of f207deb (whose case 0,1 gave the
same first row to the last digit), up to three of these scripts and DEM runs
side by side (the scan 456 s, each case 388-820 s, 6.2 GiB peak each); BAND
``-`` is the uniform compression::

    strain noise band   16 um  14 um  12 um  10 um   8 um   6 um   4 um   rank of 8 um
    0      1      -     0.993  0.995  0.994  0.994  0.992  0.994  0.989  6
    0      5      -     0.849  0.876  0.867  0.866  0.835  0.857  0.795  6
    0.02   3      -     0.935  0.949  0.945  0.945  0.930  0.941  0.903  6
    0.05   1      -     0.959  0.969  0.969  0.976  0.984  0.988  0.987  3
    0.05   3      -     0.908  0.928  0.925  0.931  0.923  0.937  0.902  5
    0.10   1      -     0.666  0.905  0.909  0.930  0.959  0.970  0.982  3
    0.10   4      -     0.611  0.836  0.834  0.853  0.856  0.882  0.845  2
    0.15   3      -     0.597  0.787  0.776  0.822  0.770  0.892  0.887  6
    0.206  1      -     0.477  0.654  0.624  0.765  0.865  0.895  0.952  3
    0.206  3      -     0.406  0.509  0.486  0.580  0.768  0.847  0.868  3
    0.206  4      -     0.374  0.447  0.432  0.491  0.725  0.808  0.815  3
    0.25   1      -     0.363  0.429  0.398  0.508  0.752  0.826  0.832  3
    0.25   4      -     0.415  0.250  0.311  0.320  0.431  0.665  0.694  3
    0.30   1      -     0.213  0.191  0.388  0.269  0.476  0.724  0.750  3
    0.473  1      0.436 0.601  0.614  0.611  0.615  0.675  0.752  0.790  3
    0.521  1      0.395 0.631  0.650  0.646  0.647  0.729  0.757  0.770  3

The uniform 0.206, 0.25 and 0.30 are compactions of the analysed region, no
material leaving it: 0.206 turns the truth's 31.6 % NMC into 39.8 % (the
truth's own 60.2 % inactive at step A), 0.25 into 42.1 % (the paper's 58 % at
A), 0.30 into 45.1 % (the paper's 55 % at B). The two bands take the
same 20.6 % in the top 44 % of the sample (the band's NMC reaching 60 %) or
in the top 40 % (66 %, about random close packing). At these compactions
noise does not rank 8 um second as it did at 0.10: three and four times the
noise lower every edge and 8 um stays third.

(the paper: 0.81 at 8 um, 8 um second; the paper run's own pairs: 0.359,
third, since the cubes that leave the scan are correlated against nulls; see
"The instrument's ceiling" in docs/paper-scenario-log.md).
"""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from analysis.chain import correlate_series, preprocess_series
from analysis.io import read_volume, write_volume
from analysis.reconstruct import reconstruct
from synthcal.dataset import Run, analysis_settings
from synthcal.memory import keep_freed_memory
from synthcal.phantom import attenuation_rows
from synthcal.progress import ProgressBar
from synthcal.stages import _render, _step_seed
from synthcal.xray import simulate_scan

#: voxels the added noise is rolled across the beam, reference and rescan (independent of both images)
NOISE_ROLLS = ((97, 1), (131, 2))


def rescan_step0(run, progress):
    """Step 0's tomogram scanned again with step 1's drift, creep and noise seed (float32, 1/µm)."""
    s, grid, im, r = run.scenario, run.grid, run.scenario.imaging, run.scenario.reconstruction
    o = im.projection_oversampling
    render_rows = _render(SimpleNamespace(scenario=s, arch="cpu"), attenuation_rows, run.trajectory().steps[0],
                          run.binder(), grid.foil_top_z_um, voxel_size_um=grid.voxel_size_um, shape=grid.shape,
                          origin_um=grid.origin_um, oversampling=o, supersampling=im.supersampling)
    angles = run.angles_deg()
    scan = simulate_scan(render_rows, grid.shape, angles, oversampling=o, motion_voxels=run.motion_voxels()[1],
                         incident_counts=im.incident_counts, n_det=grid.n_det, n_flats=im.n_flats,
                         dark_counts=im.dark_counts, read_noise_counts=im.read_noise_counts,
                         psf_sigma_px=im.psf_sigma_px, ring_gain_sigma=im.ring_gain_sigma,
                         rng_seed=_step_seed(s, "projections", 1), arch="cpu", progress=progress.sub(0.0, 0.9))
    volume = reconstruct(scan.counts, scan.flats, scan.darks, angles, method=r.method, filter=r.filter,
                         padding=r.padding, iterations=r.sirt_iterations, arch="cpu", progress=progress.sub(0.9, 1.0))
    return volume / np.float32(grid.voxel_size_um)


def compressed_along_z(volume, strain, centre_row, band=False):
    """``volume`` with its material at row Z moved to ``c + (1 - strain)(Z - c)``: each row sampled at
    ``c + (z - c) / (1 - strain)`` by cubic convolution (a = -1/2) along z, the end rows repeated.
    With ``band``, only the material above row c moves (a band under the head that takes the whole
    compression); the rows below c stay as they are."""
    nz = volume.shape[0]
    rows = np.arange(nz)
    source = centre_row + (rows - centre_row) / (1.0 - strain)
    if band:
        source = np.where(rows < centre_row, rows, source)
    base = np.floor(source).astype(np.int64)
    t = (source - base).astype(np.float32)
    weights = ((-t ** 3 + 2 * t ** 2 - t) / 2, (3 * t ** 3 - 5 * t ** 2 + 2) / 2,
               (-3 * t ** 3 + 4 * t ** 2 + t) / 2, (t ** 3 - t ** 2) / 2)
    out = np.zeros_like(volume)
    for k, w in enumerate(weights):
        out += w[:, None, None] * volume[np.clip(base - 1 + k, 0, nz - 1)]
    return out


def _case(text):
    """``STRAIN,NOISE[,BAND]`` -> (strain, noise factor, band fraction or None), or exit with a one-line message."""
    try:
        values = [float(v) for v in text.split(",")]
        if len(values) not in (2, 3):
            raise ValueError
    except ValueError:
        sys.exit(f"case {text!r}: expected STRAIN,NOISE or STRAIN,NOISE,BAND, numbers (e.g. 0.1,4 or 0.47,1,0.44)")
    strain, factor, band = values + [None] * (3 - len(values))
    if not (0.0 <= strain < 1.0 and factor >= 1.0 and (band is None or 0.0 < band <= 1.0)):
        sys.exit(f"case {text!r}: expected 0 <= STRAIN < 1, NOISE >= 1 and 0 < BAND <= 1")
    return strain, factor, band


def main(argv):
    if not argv:
        sys.exit(__doc__.split("\n\n")[1])
    keep_freed_memory()
    run = Run(argv[0])
    cases = [_case(text) for text in argv[1:]] or [(0.0, 1.0, None)]
    grid = run.grid
    folder = Path(str(run.path) + "-ceiling")
    folder.mkdir(exist_ok=True)
    rescan_file = folder / "rescan_step0.tif"
    if not rescan_file.exists():
        bar = ProgressBar("ceiling", "scanning step 0 again")
        write_volume(rescan_file, rescan_step0(run, bar), grid.voxel_size_um,
                     description="step 0 scanned with step 1's drift, creep and noise seed, 1/um")
        bar.done()
    settings = analysis_settings(run.scenario, grid, mode="paper")
    rows = [grid.sample_rows[0]] * 2
    pre = preprocess_series([np.asarray(run.volumes()[0]), read_volume(rescan_file)[0]], settings,
                            sample_rows=rows, arch="cpu")
    reference, rescan = pre.volumes
    centre_row = float(pre.transforms[1].centre_voxels[0])
    noise = rescan - reference
    edges = sorted(settings.subvolumes_voxels, reverse=True)
    print(f"registration CC {pre.transforms[1].cc:.3f}; per edge: mean CC over every cube / fraction ok")
    print("strain noise band  " + "  ".join(f"{e * grid.voxel_size_um:7.1f} um" for e in edges)
          + f"  rank of {settings.subvolume_voxels * grid.voxel_size_um:.1f} um", flush=True)
    foil_row, head_row = grid.sample_rows[0]
    for strain, factor, band in cases:
        added = np.float32(np.sqrt(max(factor ** 2 - 1.0, 0.0) / 2.0))
        pair = [volume + added * np.roll(noise, shift, axis=axis) if added else volume
                for volume, (shift, axis) in zip((reference, rescan), NOISE_ROLLS)]
        if band is None:
            pair[1] = compressed_along_z(pair[1], strain, centre_row)
        else:
            pair[1] = compressed_along_z(pair[1], strain, head_row - band * (head_row - foil_row), band=True)
        where = "about the registration particle" if band is None else f"in the top {band:g} of the sample"
        bar = ProgressBar("ceiling", f"DVC at every edge, strain {strain:g} {where}, noise x{factor:g}")
        fields = correlate_series(pair, settings, arch="cpu", progress=bar)
        bar.done()
        cc = {e: float(fields[1, e].cc.mean()) for e in edges}
        rank = 1 + sum(cc[e] > cc[settings.subvolume_voxels] for e in edges)
        print(f"{strain:6.3f} {factor:5.1f} {'-' if band is None else f'{band:.3f}':>5}  "
              + "  ".join(f"{cc[e]:.3f}/{fields[1, e].ok.mean():.2f}" for e in edges) + f"  {rank}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
