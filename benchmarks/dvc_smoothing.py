"""The DVC's optional gaussian smoothing (``analysis.dvc.smoothing``) on cases ``dvc_vs_spam.py`` does not run.

The smoothing's width (0.5 voxel) was chosen on the cases of
``dvc_vs_spam.py``; these eleven were drawn apart from them to see whether
the choice holds elsewhere: other texture widths (gaussian-filtered noise of
0.8, 1.0, 1.5 and 2.5 voxels), other seeds of the speckle and the grains,
three other crops of the quick phantom (reaching 4-30 voxels past the
reconstruction's far faces across the beam, where the sampler mirrors it), noise 2-100 %, strains up to 5 %, one
sine field. Each case runs synthcal once without smoothing and once with
``smoothing_sigma_voxels=0.5``, and spam's ``ldic`` once (from the truth rounded to whole voxels);
RMS error (voxels) against the truth u(node) over the nodes all three trust.

Run (spam's venv, as for ``dvc_vs_spam.py``)::

    SYNTHCAL_DEM_THREADS=1 /tmp/venv-dvc/bin/python benchmarks/dvc_smoothing.py

Latest table (7 Dec 2026, 2-core VM; the phantom from the quick run that
``dvc_vs_spam.py`` makes)::

    case                 nodes  unsmoothed  smoothed    spam  unsm./spam  sm./spam  sm./unsm.
    gauss0.8-50%n         2197      0.0250    0.0255  0.0421        0.59      0.61       1.02  (ok %: unsmoothed 100, smoothed 100, spam 100)
    gauss1.0-100%n        2173      0.0756    0.0631  0.0764        0.99      0.83       0.84  (ok %: unsmoothed 99, smoothed 100, spam 100)
    gauss2.5-30%n         2197      0.0615    0.0488  0.0595        1.03      0.82       0.79  (ok %: unsmoothed 100, smoothed 100, spam 100)
    gauss2.5-100%n         207      0.3381    0.1909  0.2620        1.29      0.73       0.56  (ok %: unsmoothed 37, smoothed 99, spam 18)
    gauss1.5-10%n-sine    2197      0.0848    0.0858  0.0918        0.92      0.93       1.01  (ok %: unsmoothed 100, smoothed 100, spam 100)
    speckle-60%n          2197      0.0390    0.0362  0.0473        0.82      0.76       0.93  (ok %: unsmoothed 100, smoothed 100, spam 100)
    grains-50%n           2197      0.0448    0.0431  0.0549        0.82      0.78       0.96  (ok %: unsmoothed 100, smoothed 100, spam 100)
    grains-2%n            2197      0.0126    0.0121  0.0274        0.46      0.44       0.95  (ok %: unsmoothed 100, smoothed 100, spam 100)
    phantom-off-20%n      2197      0.0291    0.0290  0.0618        0.47      0.47       0.99  (ok %: unsmoothed 100, smoothed 100, spam 100)
    phantom-off-70%n      1274      0.1033    0.1094  0.1324        0.78      0.83       1.06  (ok %: unsmoothed 72, smoothed 90, spam 68)
    phantom-off-2%n       2197      0.0157    0.0106  0.0431        0.36      0.25       0.67  (ok %: unsmoothed 100, smoothed 100, spam 100)

Worst against spam: 1.29x unsmoothed (gauss2.5-100%n, where synthcal
trusted 37 % of the nodes, 99 % smoothed, spam 18 %; the errors are over the
207 nodes all three trust), 0.93x smoothed
(gauss1.5-10%n-sine). The smoothing's worst cost: 1.06x (the phantom at 70 %
noise); its best gain 0.56x.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dvc_vs_spam as bench  # noqa: E402
from analysis.dvc import correlate  # noqa: E402

SHAPE = (128, 128, 128)
SUBVOLUME, SPACING = 17, 8
SIGMA_VOXELS = 0.5


def gauss(seed, sigma_voxels):
    """Gaussian-filtered white noise of width ``sigma_voxels`` (a sampler of ``dvc_vs_spam``)."""
    return bench.gauss_sampler(seed, SHAPE, sigma_voxels)


def phantom(offset):
    """The quick phantom's step-0 reconstruction, its crop ``offset`` voxels past the central sampler's
    padding (a sampler of ``dvc_vs_spam``)."""
    return bench.phantom_sampler(SHAPE, corner=np.add(offset, bench.MASTER_PAD_VOXELS))


# name, texture sampler, translation (voxels), strain (zz, yy, xx, yz, zx, xy) %, sine amplitude (voxels), noise
CASES = (
    ("gauss0.8-50%n", lambda: gauss(11, 0.8), (1.2, 0.3, -0.6), (-2, .5, .5, 0, 0, 0), 0.0, 0.5),
    ("gauss1.0-100%n", lambda: gauss(12, 1.0), (0.7, -1.4, 2.2), (-1, .3, .3, 0, 0, 0), 0.0, 1.0),
    ("gauss2.5-30%n", lambda: gauss(13, 2.5), (2.5, 0.5, 0.1), (-3, 1, 1, 0, 0, 0), 0.0, 0.3),
    ("gauss2.5-100%n", lambda: gauss(14, 2.5), (0.4, 0.4, -3.3), (-1, .2, .2, 0.3, 0, 0), 0.0, 1.0),
    ("gauss1.5-10%n-sine", lambda: gauss(15, 1.5), (0.2, 0.9, 0.1), (0, 0, 0, 0, 0, 0), 0.8, 0.1),
    ("speckle-60%n", lambda: bench.speckle_sampler(21, SHAPE), (1.3, 2.1, -0.4), (-2, .5, .5, 0, 0, 0), 0.0, 0.6),
    ("grains-50%n", lambda: bench.grain_sampler(31, SHAPE), (3.1, -0.2, 1.7), (-2, .5, .5, 0, 0, 0), 0.0, 0.5),
    ("grains-2%n", lambda: bench.grain_sampler(32, SHAPE), (0.3, 0.2, 0.1), (-4, 1, 1, 0, 0, 0), 0.0, 0.02),
    ("phantom-off-20%n", lambda: phantom((8, 10, 12)), (1.1, -0.4, 0.9), (-2, .5, .5, 0, 0, 0), 0.0, 0.2),
    ("phantom-off-70%n", lambda: phantom((20, 4, 30)), (0.6, 0.8, -1.1), (-2, .5, .5, 0, 0, 0), 0.0, 0.7),
    ("phantom-off-2%n", lambda: phantom((2, 30, 6)), (2.6, -0.8, 0.4), (-5, 1.5, 1.5, 0, 0, 0), 0.0, 0.02),
)


def main():
    os.environ.setdefault("SYNTHCAL_DEM_THREADS", "1")
    nodes = bench.node_grid(SHAPE, SPACING, SUBVOLUME, margin_voxels=bench.MARGIN_VOXELS)
    print(f"{'case':20s} {'nodes':>5s} {'unsmoothed':>11s} {'smoothed':>9s} {'spam':>7s} {'unsm./spam':>11s} "
          f"{'sm./spam':>9s} {'sm./unsm.':>10s}")
    for i, (name, sampler, translation, strain, sine, noise) in enumerate(CASES):
        strain_tensor = bench.strain_tensor(strain)

        def field(points, translation=translation, strain_tensor=strain_tensor, sine=sine):
            return bench.displacement(points, translation, strain_tensor, sine, SHAPE)

        ref, deformed = bench.volume_pair(sampler(), field, noise, np.random.default_rng(500 + i), SHAPE)
        truth = field(nodes.T.astype(np.float64)).T
        search = int(np.ceil(np.abs(truth).max())) + 2
        runs = {}
        for label, sigma in (("unsmoothed", 0.0), ("smoothed", SIGMA_VOXELS)):
            r = correlate(ref, deformed, subvolume_voxels=SUBVOLUME, node_spacing_voxels=SPACING,
                          max_displacement_voxels=search, nodes=nodes, smoothing_sigma_voxels=sigma)
            runs[label] = (r.displacement, r.ok)
        displacement, ok, *_ = bench.run_spam(ref, deformed, nodes, truth, SUBVOLUME)
        runs["spam"] = (displacement, ok)
        both = np.logical_and.reduce([ok for _, ok in runs.values()])
        rms = {label: bench._rms(d[both], truth[both]) for label, (d, _) in runs.items()}
        print(f"{name:20s} {both.sum():5d} {rms['unsmoothed']:11.4f} {rms['smoothed']:9.4f} {rms['spam']:7.4f} "
              f"{rms['unsmoothed'] / rms['spam']:11.2f} {rms['smoothed'] / rms['spam']:9.2f} "
              f"{rms['smoothed'] / rms['unsmoothed']:10.2f}  (ok %: " +
              ", ".join(f"{label} {100 * ok.mean():.0f}" for label, (_, ok) in runs.items()) + ")", flush=True)


if __name__ == "__main__":
    main()
