"""Local DVC speed and accuracy: ``analysis.dvc.correlate`` against spam's ``ldic``.

Run (spam lives in its own venv, with synthcal editable; spam is not a
dependency of synthcal)::

    python -m venv /tmp/venv-dvc && /tmp/venv-dvc/bin/pip install spam -e .
    SYNTHCAL_DEM_THREADS=1 /tmp/venv-dvc/bin/python benchmarks/dvc_vs_spam.py [--smoothing SIGMA]

``--smoothing SIGMA`` runs synthcal with ``smoothing_sigma_voxels=SIGMA``
(``analysis.dvc.smoothing``; default 0, synthcal's default).

Cases (the table ``CASES`` below): five textures, strains 0-8 %, grey-level
noise 1-5 %, and 20-100 % on six cases (the phantom at 40 %: mean CC about 0.80, near
the paper's 0.81),
displacements 0-20 voxels, affine fields and a non-affine one. Thirteen cases use
17^3 subvolumes on nodes every 8 voxels of a 128^3 volume; five others vary
that geometry (since 7 Dec 2026): nodes far apart (64 nodes every 32
voxels), subvolumes of 9, 25 and 33 voxels, and a 192^3 volume.

* ``gauss``: gaussian-filtered white noise (sigma 1.5 voxels), the classic,
  flattering texture; ``smooth``: the same filtered by 2.5 voxels, fewer
  details for the noise to hide.
* ``speckle``: gaussian spots (sigma 1 voxel, one per 24 voxels^3, random
  brightness) on a dark background, as sprayed on a sample for DIC.
* ``grains``: Voronoi grains (one per ~216 voxels^3, Poisson seeds) with
  random grey levels, 0.6-voxel soft boundaries and darker grain
  boundaries: a polycrystal, with flat areas and sharp edges.
* ``phantom``: the project's own phantom as the scanner sees it, a 128^3
  crop of the step-0 reconstruction of ``scenarios/quick.toml`` (NMC
  particles with primary grains and pores, binder, pores, reconstruction
  noise and artefacts). The run is made once, by ``synthcal run ...
  --until reconstruct``, into ``PHANTOM_RUN`` (a few minutes; the folder
  ``SYNTHCAL_BENCH_RUN`` names, if set, else one in the temp directory).

``speckle`` and ``grains`` are analytic: the deformed volume is the texture
evaluated exactly at the reference point of each voxel centre, so no image
interpolation enters the truth. ``gauss`` and ``phantom`` are sampled
images: the deformed volume is the reference interpolated by a quintic
B-spline (from a larger master volume, so no mirror padding enters). That
interpolation is closer to synthcal's cubic B-spline than to spam's
trilinear one: on those two textures the comparison leans towards
synthcal's accuracy; the analytic textures do not.

Displacement field of a case (reference coordinates X, voxels, c the volume
centre): ``u(X) = t + E (X - c) + A s(X)``, t the translation, E the
symmetric strain tensor, and A s(X) a smooth non-affine field of amplitude
A voxels (each component a sine of wavelength ``SINE_WAVELENGTH_VOXELS``
along another axis: u_z along y, u_y along x, u_x along z). The truth at a
node is u(node) (the point value; for the sine field an affine subvolume of
17 voxels cannot follow the curvature: u(node) and the subvolume mean of u
differ by 0.08 voxel RMS, a bias of any uniformly weighted fit, spam's
included; synthcal's gaussian window shrinks it). Grey-level noise: white gaussian of ``noise`` times the
texture's standard deviation, independent in both volumes.

Both codes get the same volume pairs, the same node grid (``node_grid``,
nodes every 8 voxels, 4 voxels from the faces) and the same 17^3
subvolumes (spam ``hws=8``), on 2 processes/threads. spam's ``ldic`` does
no integer search: it is given the truth at each node rounded to whole
voxels as its initial guess (generous to spam: up to 20 voxels of search it
does not pay for). synthcal does its own FFT integer search from zero, with
``max_displacement_voxels`` = the largest true displacement component of
the case rounded up, plus 2; its time includes that search. RMS error is
the Euclidean displacement error, voxels, over the nodes trusted by both
codes (synthcal ``ok``, spam ``returnStatus == 2``): "RMS vox" against the
truth u(node), "RMS cube" against the mean of u over the node's subvolume
(the same for affine fields; for the sine it removes the shape-function
bias and leaves the measurement error). Each code's ok fraction is printed,
and the nodes trusted by one code only, with their RMS. Each case runs the
two codes in turn, ``REPEATS`` times each (synthcal, spam, synthcal, ...):
times are medians, wall clock and CPU seconds (all threads and worker
processes, steadier when other jobs share the cores), and each speed ratio
(spam time / synthcal time) is the median of the ratios of the pairs, with
their range: a drift of the machine's speed during a case then moves both
codes alike. The worst-case row takes the lowest speed ratios and the
highest RMS ratio (synthcal / spam) over the cases.
Afterwards the case where synthcal is slowest is run once more with timers
around its stages (and cProfile).

Latest table (7 Dec 2026, afternoon; the same VM and versions as the run below,
quiet but for this script, an hour slower than the morning's (spam's times
10-30 % longer); the eighteen cases, synthcal's defaults)::

    Run of 2026-12-07 12:43 UTC, x86_64 2 cpus, load average 1.0 2.2 2.1; python 3.11.7, numpy 2.4.6, scipy 1.17.1, taichi 1.7.4, spam 0.9.1
    subvolume 17^3, spacing 8, volume (128, 128, 128) unless a case's ratio line says otherwise; 2 processes/threads, 5 alternating runs each, medians; spam starts from the truth rounded to voxels, synthcal searches
    case           code       ms/node  nodes/s nodes/cpu-s  RMS vox RMS cube   ok %
    gauss-shift    synthcal      0.35     2870        1938   0.0019   0.0019  100.0
    gauss-shift    spam          2.86      349         214   0.0160   0.0160  100.0
    gauss-shift    ratio     speed x8.1 (wall; pairs x6.2-x12.6), x9.1 (cpu); RMS synthcal/spam 0.12 on 2197 nodes; search +-5 vox; load average 2.3 2.4 2.2
    gauss-affine   synthcal      0.31     3257        2014   0.0019   0.0019  100.0
    gauss-affine   spam          2.65      378         207   0.0149   0.0149  100.0
    gauss-affine   ratio     speed x8.6 (wall; pairs x8.2-x8.8), x9.7 (cpu); RMS synthcal/spam 0.12 on 2197 nodes; search +-4 vox; load average 2.3 2.4 2.2
    speckle-5%     synthcal      0.42     2371        1578   0.0034   0.0034  100.0
    speckle-5%     spam          3.07      326         177   0.0188   0.0188  100.0
    speckle-5%     ratio     speed x6.9 (wall; pairs x6.4-x8.0), x8.1 (cpu); RMS synthcal/spam 0.18 on 2197 nodes; search +-11 vox; load average 2.5 2.4 2.2
    speckle-sine   synthcal      0.50     1987        1158   0.0637   0.0203  100.0
    speckle-sine   spam          3.23      310         165   0.0721   0.0252  100.0
    speckle-sine   ratio     speed x6.4 (wall; pairs x5.5-x7.4), x7.0 (cpu); RMS synthcal/spam 0.88 on 2197 nodes; search +-4 vox; load average 2.5 2.4 2.2
    grains-20vox   synthcal      0.44     2249        1378   0.0133   0.0133   78.1
    grains-20vox   spam          3.62      276         145   0.0305   0.0305   91.1
    grains-20vox   ratio     speed x8.8 (wall; pairs x6.4-x9.3), x10.0 (cpu); RMS synthcal/spam 0.43 on 1716 nodes; search +-22 vox; load average 2.6 2.5 2.3
    grains-20vox   ok in one code only: spam 285 nodes, RMS 0.1596 vox
    grains-8%      synthcal      0.41     2411        1469   0.0127   0.0127  100.0
    grains-8%      spam          2.53      396         216   0.0216   0.0216  100.0
    grains-8%      ratio     speed x6.4 (wall; pairs x5.6-x7.1), x6.8 (cpu); RMS synthcal/spam 0.59 on 2197 nodes; search +-9 vox; load average 2.6 2.5 2.3
    phantom-sine   synthcal      0.55     1829        1063   0.0664   0.0238  100.0
    phantom-sine   spam          3.25      308         165   0.0827   0.0452  100.0
    phantom-sine   ratio     speed x5.6 (wall; pairs x5.0-x7.3), x6.0 (cpu); RMS synthcal/spam 0.80 on 2197 nodes; search +-5 vox; load average 2.8 2.5 2.3
    phantom-12vox  synthcal      0.62     1625        1063   0.0166   0.0166   85.2
    phantom-12vox  spam          3.30      303         162   0.0468   0.0468   99.2
    phantom-12vox  ratio     speed x5.6 (wall; pairs x5.0-x6.1), x6.8 (cpu); RMS synthcal/spam 0.35 on 1872 nodes; search +-17 vox; load average 2.6 2.5 2.3
    phantom-12vox  ok in one code only: spam 308 nodes, RMS 0.0966 vox
    phantom-40%n   synthcal      0.87     1145         714   0.0496   0.0496   94.7
    phantom-40%n   spam          5.88      170          88   0.0759   0.0759  100.0
    phantom-40%n   ratio     speed x7.0 (wall; pairs x6.3-x8.2), x8.2 (cpu); RMS synthcal/spam 0.65 on 2079 nodes; search +-7 vox; load average 2.5 2.5 2.3
    phantom-40%n   ok in one code only: synthcal 1 nodes, RMS 0.0660 vox; spam 117 nodes, RMS 0.0895 vox
    speckle-30%n   synthcal      0.50     1987        1190   0.0357   0.0213  100.0
    speckle-30%n   spam          2.96      338         182   0.0421   0.0328  100.0
    speckle-30%n   ratio     speed x5.9 (wall; pairs x5.4-x6.6), x6.5 (cpu); RMS synthcal/spam 0.85 on 2197 nodes; search +-6 vox; load average 2.4 2.5 2.3
    gauss-80%n     synthcal      1.34      749         436   0.1016   0.1016  100.0
    gauss-80%n     spam          6.56      152          79   0.0914   0.0914  100.0
    gauss-80%n     ratio     speed x4.9 (wall; pairs x4.6-x5.0), x5.3 (cpu); RMS synthcal/spam 1.11 on 2197 nodes; search +-5 vox; load average 2.3 2.4 2.3
    gauss-sparse   synthcal      1.43      697         473   0.0020   0.0020  100.0
    gauss-sparse   spam          4.17      240         143   0.0155   0.0155  100.0
    gauss-sparse   ratio     speed x2.9 (wall; pairs x2.8-x3.3), x3.3 (cpu); RMS synthcal/spam 0.13 on 64 nodes; search +-6 vox; subvolume 17^3, spacing 32, volume (128, 128, 128), 64 nodes; load average 2.3 2.4 2.3
    speckle-33sv   synthcal      2.26      442         283   0.0038   0.0038  100.0
    speckle-33sv   spam          7.58      132          69   0.0200   0.0200  100.0
    speckle-33sv   ratio     speed x3.4 (wall; pairs x2.8-x4.2), x4.2 (cpu); RMS synthcal/spam 0.19 on 216 nodes; search +-8 vox; subvolume 33^3, spacing 16, volume (128, 128, 128), 216 nodes; load average 2.1 2.4 2.3
    phantom-9sv    synthcal      0.19     5189        3783   0.0287   0.0287  100.0
    phantom-9sv    spam          2.57      389         213   0.0936   0.0936   99.4
    phantom-9sv    ratio     speed x13.1 (wall; pairs x12.2-x15.6), x17.4 (cpu); RMS synthcal/spam 0.31 on 2727 nodes; search +-5 vox; subvolume 9^3, spacing 8, volume (128, 128, 128), 2744 nodes; load average 2.1 2.3 2.3
    phantom-9sv    ok in one code only: synthcal 17 nodes, RMS 0.0355 vox
    grains-192     synthcal      1.34      748         453   0.0089   0.0089  100.0
    grains-192     spam          3.90      256         139   0.0229   0.0229  100.0
    grains-192     ratio     speed x2.9 (wall; pairs x2.6-x3.2), x3.3 (cpu); RMS synthcal/spam 0.39 on 343 nodes; search +-12 vox; subvolume 21^3, spacing 24, volume (192, 192, 192), 343 nodes; load average 2.2 2.3 2.3
    phantom-25sv   synthcal      1.67      597         354   0.0156   0.0156  100.0
    phantom-25sv   spam          6.96      144          74   0.0331   0.0331  100.0
    phantom-25sv   ratio     speed x4.2 (wall; pairs x4.0-x4.5), x4.9 (cpu); RMS synthcal/spam 0.47 on 512 nodes; search +-7 vox; subvolume 25^3, spacing 12, volume (128, 128, 128), 512 nodes; load average 2.3 2.4 2.3
    smooth-100%n   synthcal      5.73      174          97   0.3417   0.3417   37.2
    smooth-100%n   spam         12.69       79          40   0.2707   0.2707   20.0
    smooth-100%n   ratio     speed x2.2 (wall; pairs x2.1-x2.7), x2.5 (cpu); RMS synthcal/spam 1.26 on 219 nodes; search +-6 vox; load average 2.0 2.2 2.2
    smooth-100%n   ok in one code only: synthcal 599 nodes, RMS 0.3674 vox; spam 220 nodes, RMS 0.3009 vox
    phantom-70%n   synthcal      2.09      477         273   0.1011   0.1011   73.7
    phantom-70%n   spam         10.73       93          48   0.1337   0.1337   74.4
    phantom-70%n   ratio     speed x5.1 (wall; pairs x4.7-x5.9), x5.8 (cpu); RMS synthcal/spam 0.76 on 1377 nodes; search +-4 vox; load average 2.5 2.3 2.3
    phantom-70%n   ok in one code only: synthcal 243 nodes, RMS 0.1113 vox; spam 258 nodes, RMS 0.1443 vox
    worst case     ratio     speed x2.2 (wall, smooth-100%n), x2.5 (cpu, smooth-100%n); RMS synthcal/spam 1.26 (smooth-100%n)
    Ended 2026-12-07 13:01 UTC, load average 2.5 2.3 2.3

**Worst case: 2.2x spam's speed** (smooth-100%n: at noise as strong as the
texture synthcal's nodes take 46 Gauss-Newton iterations each, most of them
failing), 2.9x on 64 nodes 32 voxels apart and on the 192^3 volume, 3.4x
with 33^3 subvolumes; the other dense cases 4.9-8.8x, the 9^3 subvolumes
13.1x. **Worst error: 1.26x spam's** (smooth-100%n, on the 219 nodes both
trust; synthcal trusts 37 %, spam 20 %), then 1.11x (gauss-80%n): trilinear
interpolation averages the noise at a fractional position more than the
cubic B-spline does (white noise at a half-voxel shift on each axis keeps
0.12 of its variance through trilinear weights, 0.43 through the cubic
B-spline; one axis: 0.50 and 0.76), so where noise dominates the error
spam's deformed subvolumes are the cleaner. 0.12-0.88x on the sixteen
others. The sixteen cases of the morning's run (08:38 UTC, before the two
last were added) gave the same errors to the digit and speed ratios within
the machine's spread (2.5-12.7x then).

With ``--smoothing 0.5`` (both volumes smoothed by a 0.5-voxel gaussian,
``analysis.dvc.smoothing``; 12:17-12:31 UTC the same day, one run of the
eighteen cases): 1.7-12.6x spam's speed, worst 1.7x on the sparse nodes
(smoothing two 128^3 volumes in two threads costs about 40 ms a call
whatever the number of nodes: alone, alternating, medians of 7, 0.068 s
without and 0.109 s with) and 2.2x on the 192^3 volume; 0.12-0.89x its
error, worst 0.89x on speckle-sine (the affine fit of the sine). The noisy
smooth textures fall below spam's error: gauss-80%n 1.11x -> 0.83x (0.1016
-> 0.0757 voxel), smooth-100%n 1.26x -> 0.72x (synthcal then trusts 99.7 %
of the nodes); the phantom at 5 % noise 0.35x -> 0.26x (0.0166 -> 0.0122).
It costs on the phantom under strong noise, whose texture reaches down to
the voxel: at 40 % noise 0.65x -> 0.74x (0.0496 -> 0.0563 voxel), at 70 %
0.76x -> 0.81x (0.1011 -> 0.1087); the other cases moved within 0.04x.
Off by default because on the quick scenario's scans, at 30-35 % strain, it
doubled the chain's error (see ``analysis.dvc.smoothing``).

Where the sparse case's time goes (profiled alone,
0.061-0.069 s a run): the cubic B-spline prefilter of the whole deformed
volume 53 % (scipy's ``spline_filter1d`` along each axis in two threads,
about 30 ms at 128^3 whatever the number of nodes), the B-spline samples
and sums 19 %, the reference subvolumes 9 %, the FFT search 7 %; on
grains-192 (0.36-0.38 s) the samples 30 %, the prefilter 29 % (about
95 ms at 192^3), the search 22 %. spam's ``ldic`` interpolates on the fly
and pays nothing per volume, so the fewer nodes share a volume, the nearer
the two codes come. A prefilter of our own in taichi (float64 recursion,
one line per thread, both cores) was tried for it and not kept: 33 ms at
128^3 and 104-106 ms at 192^3 against scipy's 28-34 and 94-95 ms (three
calls each, alternating), though 42 against 58-68 ms at 200 x 180 x 190;
walking lines across the volume's slow axis costs more than the arithmetic.

An outside measurement on cases this script had not run found 1.8-5x
spam's speed and 0.24-1.15x its error; so neither a speed of 5x nor at
most spam's error holds on every case, here or there.

The run before it: 2-core x86_64 VM, quiet but for this script; python 3.11.7,
numpy 2.4.6, scipy 1.17.1, taichi 1.7.4, spam 0.9.1; REPEATS = 5 alternating
runs per code and case, medians, 5 Dec 2026, on the code whose
``correlate`` takes a ``PreparedPair`` (not given one here, it prepares the
pair itself, so each timed call still pays the float32 copies, the
prefilter and the binning); the quick phantom was remade for it, between grains-8% and
phantom-sine. The run before it (4 Dec 2026, 21:28 UTC, the same ten
cases) gave 5.6-7.9x and 0.12-0.88x; the two runs differ by up to 0.4x per
case either way, the machine's spread::

    Run of 2026-12-05 03:50 UTC, x86_64 2 cpus, load average 1.5 1.8 1.2; python 3.11.7, numpy 2.4.6, scipy 1.17.1, taichi 1.7.4, spam 0.9.1
    2197 nodes, subvolume 17^3, spacing 8, volume (128, 128, 128), 2 processes/threads, 5 alternating runs each, medians; spam starts from the truth rounded to voxels, synthcal searches
    case           code       ms/node  nodes/s nodes/cpu-s  RMS vox RMS cube   ok %
    gauss-shift    synthcal      0.27     3725        2342   0.0019   0.0019  100.0
    gauss-shift    spam          1.73      577         321   0.0160   0.0160  100.0
    gauss-shift    ratio     speed x6.5 (wall; pairs x6.2-x6.7), x7.4 (cpu); RMS synthcal/spam 0.12 on 2197 nodes; search +-5 vox; load average 1.7 1.8 1.2
    gauss-affine   synthcal      0.22     4546        2763   0.0019   0.0019  100.0
    gauss-affine   spam          1.65      606         324   0.0149   0.0149  100.0
    gauss-affine   ratio     speed x7.8 (wall; pairs x7.2-x8.2), x8.6 (cpu); RMS synthcal/spam 0.12 on 2197 nodes; search +-4 vox; load average 1.9 1.9 1.3
    speckle-5%     synthcal      0.26     3811        2425   0.0034   0.0034  100.0
    speckle-5%     spam          1.78      560         300   0.0188   0.0188  100.0
    speckle-5%     ratio     speed x6.9 (wall; pairs x6.4-x6.9), x8.1 (cpu); RMS synthcal/spam 0.18 on 2197 nodes; search +-11 vox; load average 2.0 1.9 1.3
    speckle-sine   synthcal      0.29     3419        1976   0.0637   0.0203  100.0
    speckle-sine   spam          1.77      565         304   0.0721   0.0252  100.0
    speckle-sine   ratio     speed x6.1 (wall; pairs x5.7-x6.1), x6.5 (cpu); RMS synthcal/spam 0.88 on 2197 nodes; search +-4 vox; load average 2.4 2.0 1.3
    grains-20vox   synthcal      0.31     3232        1987   0.0133   0.0133   78.1
    grains-20vox   spam          2.55      392         207   0.0305   0.0305   91.1
    grains-20vox   ratio     speed x8.2 (wall; pairs x7.9-x8.5), x9.6 (cpu); RMS synthcal/spam 0.43 on 1716 nodes; search +-22 vox; load average 2.5 2.1 1.4
    grains-20vox   ok in one code only: spam 285 nodes, RMS 0.1596 vox
    grains-8%      synthcal      0.27     3667        2332   0.0127   0.0127  100.0
    grains-8%      spam          1.73      580         309   0.0216   0.0216  100.0
    grains-8%      ratio     speed x6.3 (wall; pairs x6.1-x6.6), x7.6 (cpu); RMS synthcal/spam 0.59 on 2197 nodes; search +-9 vox; load average 2.4 2.1 1.4
    phantom-sine   synthcal      0.36     2741        1585   0.0664   0.0238  100.0
    phantom-sine   spam          2.13      470         253   0.0827   0.0452  100.0
    phantom-sine   ratio     speed x5.5 (wall; pairs x5.4-x6.0), x6.1 (cpu); RMS synthcal/spam 0.80 on 2197 nodes; search +-5 vox; load average 2.0 2.0 1.5
    phantom-12vox  synthcal      0.41     2443        1595   0.0166   0.0166   85.2
    phantom-12vox  spam          2.37      422         231   0.0468   0.0468   99.2
    phantom-12vox  ratio     speed x5.8 (wall; pairs x5.7-x5.9), x6.9 (cpu); RMS synthcal/spam 0.36 on 1872 nodes; search +-17 vox; load average 2.2 2.0 1.5
    phantom-12vox  ok in one code only: spam 307 nodes, RMS 0.0964 vox
    phantom-40%n   synthcal      0.57     1769        1061   0.0495   0.0495   94.7
    phantom-40%n   spam          3.77      265         137   0.0759   0.0759  100.0
    phantom-40%n   ratio     speed x6.7 (wall; pairs x6.6-x7.2), x7.7 (cpu); RMS synthcal/spam 0.65 on 2079 nodes; search +-7 vox; load average 2.5 2.1 1.6
    phantom-40%n   ok in one code only: synthcal 1 nodes, RMS 0.0661 vox; spam 117 nodes, RMS 0.0905 vox
    speckle-30%n   synthcal      0.34     2967        1754   0.0357   0.0213  100.0
    speckle-30%n   spam          1.86      539         293   0.0421   0.0328  100.0
    speckle-30%n   ratio     speed x5.5 (wall; pairs x5.4-x5.7), x6.0 (cpu); RMS synthcal/spam 0.85 on 2197 nodes; search +-6 vox; load average 2.3 2.1 1.6
    worst case     ratio     speed x5.5 (wall, speckle-30%n), x6.0 (cpu, speckle-30%n); RMS synthcal/spam 0.88 (speckle-sine)
    Ended 2026-12-05 03:57 UTC, load average 2.3 2.1 1.6

The profile of the slowest case in that run (phantom-40%n, 1.20 s wall, one
run): B-spline samples and sums 62 %, FFT search 12 %, reference subvolumes
11 %, Gauss-Newton's numpy side 7 %; 5.8 Gauss-Newton iterations per node in
all passes (117 nodes end LOW_CC after 7.6 on average; the run of 4 Dec, 21:28:
1.44 s, 60 %, 14 %, 11 %, 8 %, the same iterations). Noise costs
iterations: the eight low-noise cases took 1.3-3.5 per node when last counted.

The run of 18:35 UTC (the eight cases; gauss-affine's pairs, x4.6-x10.7, ran
beside a 40-second job of mine, the other cases alone)::

    Run of 2026-12-04 18:35 UTC, x86_64 2 cpus, load average 1.0 1.1 1.0; python 3.11.7, numpy 2.4.6, scipy 1.17.1, taichi 1.7.4, spam 0.9.1
    2197 nodes, subvolume 17^3, spacing 8, volume (128, 128, 128), 2 processes/threads, 5 alternating runs each, medians; spam starts from the truth rounded to voxels, synthcal searches
    case           code       ms/node  nodes/s nodes/cpu-s  RMS vox RMS cube   ok %
    [Taichi] Starting on arch=x64
    gauss-shift    synthcal      0.30     3389        2117   0.0019   0.0019  100.0
    gauss-shift    spam          1.98      504         282   0.0160   0.0160  100.0
    gauss-shift    ratio     speed x6.8 (wall; pairs x6.0-x7.2), x7.6 (cpu); RMS synthcal/spam 0.12 on 2197 nodes; search +-5 vox; load average 1.6 1.3 1.0
    gauss-affine   synthcal      0.25     3982        2407   0.0019   0.0019  100.0
    gauss-affine   spam          1.96      510         281   0.0149   0.0149  100.0
    gauss-affine   ratio     speed x7.5 (wall; pairs x4.6-x10.7), x8.5 (cpu); RMS synthcal/spam 0.12 on 2197 nodes; search +-4 vox; load average 2.4 1.5 1.1
    speckle-5%     synthcal      0.32     3155        2021   0.0034   0.0034  100.0
    speckle-5%     spam          2.10      476         257   0.0188   0.0188  100.0
    speckle-5%     ratio     speed x6.6 (wall; pairs x6.5-x6.6), x7.9 (cpu); RMS synthcal/spam 0.18 on 2197 nodes; search +-11 vox; load average 2.4 1.6 1.1
    speckle-sine   synthcal      0.34     2959        1717   0.0637   0.0203  100.0
    speckle-sine   spam          2.03      492         265   0.0721   0.0252  100.0
    speckle-sine   ratio     speed x6.0 (wall; pairs x5.8-x6.0), x6.5 (cpu); RMS synthcal/spam 0.88 on 2197 nodes; search +-4 vox; load average 2.4 1.7 1.2
    grains-20vox   synthcal      0.38     2633        1660   0.0133   0.0133   78.1
    grains-20vox   spam          2.96      338         177   0.0305   0.0305   91.1
    grains-20vox   ratio     speed x7.8 (wall; pairs x7.7-x7.9), x9.3 (cpu); RMS synthcal/spam 0.43 on 1716 nodes; search +-22 vox; load average 2.3 1.7 1.2
    grains-20vox   ok in one code only: spam 285 nodes, RMS 0.1596 vox
    grains-8%      synthcal      0.32     3105        1973   0.0127   0.0127  100.0
    grains-8%      spam          2.06      486         262   0.0216   0.0216  100.0
    grains-8%      ratio     speed x6.4 (wall; pairs x6.2-x6.4), x7.6 (cpu); RMS synthcal/spam 0.59 on 2197 nodes; search +-9 vox; load average 2.5 1.8 1.3
    phantom-sine   synthcal      0.40     2492        1444   0.0665   0.0238  100.0
    phantom-sine   spam          2.34      428         230   0.0831   0.0452  100.0
    phantom-sine   ratio     speed x5.9 (wall; pairs x5.6-x6.0), x6.3 (cpu); RMS synthcal/spam 0.80 on 2197 nodes; search +-5 vox; load average 2.5 1.9 1.3
    phantom-12vox  synthcal      0.46     2174        1412   0.0167   0.0167   85.2
    phantom-12vox  spam          2.54      394         210   0.0477   0.0477   99.3
    phantom-12vox  ratio     speed x5.5 (wall; pairs x5.2-x5.6), x6.7 (cpu); RMS synthcal/spam 0.35 on 1872 nodes; search +-17 vox; load average 3.0 2.1 1.4
    phantom-12vox  ok in one code only: spam 309 nodes, RMS 0.0964 vox
    worst case     ratio     speed x5.5 (wall, phantom-12vox), x6.3 (cpu, phantom-sine); RMS synthcal/spam 0.88 (speckle-sine)
    Ended 2026-12-04 18:40 UTC, load average 3.0 2.1 1.4

The profile of the slowest case in the run before it (16:57 UTC, the same
code but the Hessian; phantom-12vox, 1.06 s wall, one run): B-spline samples and sums 44 %, FFT search 19 %, reference
subvolumes 15 %, Gauss-Newton's numpy side 9 %, the deformed volume's
prefilter 5 %; 2.7 Gauss-Newton iterations per node in all passes.

Machines differ. The table of 04:38 UTC below ran on the morning's VM.
On the afternoon's VM, the code with only the first of the two changes
(16:14 UTC) gave 5.3-7.7x wall (worst phantom-12vox 5.3x, pairs
4.8-5.3x), against 3.9-6.3x for the code before it on the morning's VM;
an in-process A/B puts that change at 7-13 %, so most of the difference
is the machine. spam's own speed moves 10-20 % between runs on one VM
(gauss-shift 1.77-2.09 ms/node over the runs of 4 Dec).

Reference terms per line (4 Dec 2026). The reference kernel took the
Hessian's 60 products with the [oz, oy, ox, 1] pairs per point; oz is
fixed in a row and oy along a line, so it now sums the gradient products
times 1, ox and ox^2 per point and applies oy once per line and oz once
per row (18 multiply-adds per point instead of 70; the steepest-descent
sums likewise). In-process A/B, synthcal alone, medians of 5 runs: 7-13 %
less wall time and 10-14 % less CPU time per case, the same iterations
and RMS.

Rows, not copies (4 Dec 2026). Gauss-Newton kept working copies of each
batch's reference values and gradients and copied them again whenever
nodes converged (22 MB per 384 nodes at 17^3); the sampling kernels now
take the row of each active node (``rows`` of
``SplineVolume.correlation_sums``). Here 0-14 % less time per case
(within the machine's noise on some); at the paper's 63^3 subvolumes
(``benchmarks/dvc_paper_size.py``) 69.6 -> 52.4 s and 8.1 -> 6.1 GiB peak.

Retries, a skip tried and reverted (4 Dec 2026). A node that failed is
searched again within +-2 voxels of its converged neighbours' median
displacement. On phantom-12vox 145 of the 155 nodes retried had left the
volume (OUTSIDE) within those 2 voxels, and 143 left it again. Keeping such
nodes OUTSIDE without the retry gave 15 retries, 2.53 -> 2.36 iterations
per node, 8 % less time and the same results on all eight cases (worst
case 5.7x, phantom-sine), but at the paper's size
(``benchmarks/dvc_paper_size.py``, curved case) it lost 1.1 % of the
trusted nodes (78.4 -> 77.3 %): the retry's integer search can start such
a node at a shift from which Gauss-Newton stays inside. Reverted.

A stop on predicted updates, tried and reverted (4 Dec 2026). Stopping
Gauss-Newton when the last two updates extrapolate the next one below the
tolerance (d_k^2 / d_(k-1) < 0.02) cut iterations 2-30 % here (phantom-sine
3.58 -> 2.64 per node) with RMS errors within -0.3 % .. +0.6 %, and gave a
worst case of 5.8x. But on smooth textures (speckle of sigma 4 voxels,
rigid sub-voxel shifts, the hypothesis test of #14) it stopped nodes
0.031-0.034 voxel from the shift, where the tolerance alone leaves
0.008-0.014 and the test allows 0.02: the updates there do not shrink
geometrically (traced afterwards on one such node: Gauss-Newton shrinks
the error only 0.8 times per iteration there, even for a translation, where
a Gauss-Newton that differentiates the ZNSSD's normalisation converges in
two iterations; fixed since by the ZNSSD Hessian, above). Extrapolating the
whole geometric tail below half the tolerance still left 0.034 on one
such case; a tolerance of 0.01 with that tail rule costs about what 0.02
alone costs, more on some cases (gauss-shift +32 %) and less on others
(speckle-sine -19 %). None of these is kept.

The run of 4 Dec 2026, 04:38 UTC (before these changes, morning VM; synthcal's
wall-clock speed over spam's, and RMS synthcal/spam)::

    gauss-shift    x5.0, 0.12     grains-20vox   x6.3, 0.43
    gauss-affine   x5.9, 0.12     grains-8%      x4.6, 0.59
    speckle-5%     x5.1, 0.18     phantom-sine   x3.9, 0.80
    speckle-sine   x4.1, 0.88     phantom-12vox  x4.2, 0.35
    worst          x3.9 wall (phantom-sine), x4.2 CPU; RMS 0.88 (speckle-sine)

Sparser search (4 Dec 2026). The FFT search now visits one node per
3x3x3 block of node spacings instead of 2x2x2 (``_SEARCH_BLOCK_SPACINGS``
in ``analysis.dvc.local``); the others start from their converged
neighbours as before. Counted in one process on the eight cases: 2.7
times fewer nodes searched (125 instead of 343 on the small shifts, 281
instead of 499 on the 20-voxel one), search CPU time 0.22-1.03 s -> 0.06-0.40
s, Gauss-Newton iterations -7 % .. +10 %, whole runs 4-30 % less CPU time
(most on the large shifts), the same ok nodes and RMS to 4 decimals. In
the table the large shifts went from 4.7x / 3.6x (grains-20vox,
phantom-12vox, the run just before, with the window) to 6.3x / 4.2x; the
worst case is now phantom-sine at 3.9x, where Gauss-Newton's 3.5
iterations per node, not the search, take the time.

Gaussian window (4 Dec 2026). synthcal's ``correlate`` now weighs the
points of each subvolume by ``exp(-|x|^2 / (2 sigma^2))``, sigma = 0.35
of the edge (6.0 voxels here; ``analysis.dvc.grid.subvolume_window``),
in the Gauss-Newton fit; the CC it reports and judges stays the plain
ZNCC of the whole cube. An affine fit returns the window's average of the
field, so on the sine fields, where the uniform cube's average is 0.08
voxel RMS from the point value, the error against u(node) fell from
0.0825 to 0.0637 (speckle-sine, 1.14 -> 0.88 x spam's) and from 0.0851
to 0.0665 (phantom-sine, 1.03 -> 0.80 x). "RMS cube" (against the
uniform cube's mean) is no longer synthcal's ideal there: the window's
average is nearer the point value. On the affine fields fewer points
effectively count, so the noise error rose 6-12 % (e.g. grains-8% 0.0117
-> 0.0127, 0.54 -> 0.59 x spam's). Measured before choosing (same cases,
synthcal's RMS / spam's against u(node), worst case in brackets): uniform
0.11-1.14 (speckle-sine); sigma = 0.35 edge 0.12-0.88 (speckle-sine);
0.30 edge 0.13-0.80 (speckle-sine); 0.25 edge 0.14-0.72 (grains-8%);
0.20 edge 0.18-0.91 (grains-8%). 0.35 is the widest window that keeps
every case at or below spam's error with a margin; narrower ones trade
the affine cases' noise for the sine's bias, and real scans are noisier
than these cases. The weights and the plain CC's three extra sums cost
4-26 % of synthcal's time per case at first (same A/B as below); the
cube kernel now adds the products with the z and y offsets once per part
and line instead of per sample, which took that back (in-process A/B of the two versions,
alternating, 3 runs each, synthcal only: medians 0.37-0.55 against
0.39-0.58 ms/node on four cases, within the machine's noise). The
run with the window and the old search (4 Dec 2026 04:12 UTC) gave
3.6-5.5x wall, worst 3.6x (phantom-12vox and phantom-sine), against
3.8x and 3.9x in the run before the window: within the spread of single
pairs (3.3-3.8x there).

The run before the window (3 Dec 2026 22:35 UTC, same machine)::

    gauss-shift    x4.8 wall, RMS synthcal/spam 0.11      grains-20vox   x3.9, 0.40
    gauss-affine   x6.3, 0.11                             grains-8%      x4.1, 0.54
    speckle-5%     x4.9, 0.16                             phantom-sine   x3.9, 1.03
    speckle-sine   x4.4, 1.14                             phantom-12vox  x3.8, 0.32

A run of the same code ten minutes earlier (22:25 UTC) gave x3.9-x5.9
wall (worst x3.9, phantom-12vox and grains-20vox) and x4.3-x6.6 CPU.
Before the alternating pairs (best of 3 per code, one code after the
other) the same code measured x3.4-x5.0 (worst grains-20vox) and
x3.7-x6.0 (worst speckle-sine) in two runs 20 minutes apart: which case
came out worst depended on when spam's runs fell.

First-order starts (3 Dec 2026). The nodes that the FFT search does not
visit (7 in 8) used to start from the rounded median displacement of
their converged neighbours: an integer translation, so Gauss–Newton
began up to half a voxel and a strain away. They now start from the
median of their converged lattice neighbours' first-order predictions
``u_j + G_j (x - x_j)`` and the median of their gradients
(``analysis.dvc.consistency.neighbour_prediction``) when those agree
within a voxel. Iterations per node of the final pass, before -> after:
gauss-shift 3.00 -> 1.37, gauss-affine 2.74 -> 1.31, speckle-5% 3.14 ->
1.75, speckle-sine 3.35 -> 2.86, grains-20vox 2.50 -> 1.76, grains-8%
3.61 -> 2.24, phantom-sine 4.26 -> 3.46, phantom-12vox 3.80 -> 2.45; the
same RMS to three decimals (the fourth moves by at most 0.00004 voxel).
On the sine fields the curvature between neighbours 8-14 voxels apart
leaves the prediction tenths of a voxel off, so the gain is smallest
there. In-process A/B of the two versions, alternating, median of 5
pairs: x1.05-x1.39 faster per case. With the neighbours split between a
true and a false match (repeated texture) the median lies between the
two, where neither basin reaches; hence the agreement condition.

The Gauss–Newton batches end with a few slow nodes (1-47 of 384 for up to
50 iterations on the large shifts); the cube kernel now splits each z-row
of a node into 4 runs of y-lines, so that 16 nodes or more fill both
threads (taichi gives each thread at least 512 iterations): 40 nodes
5.2 -> 3.6 ms per call, 384 nodes unchanged. And a failed node whose
neighbours put its match where no shift of the +-2 voxel retry keeps the
subvolume in the volume is OUTSIDE at once, as the retry would find
(identical results; 481 such nodes on grains-20vox).

Before (3 Dec 2026, 19:52 UTC, best of 3 per code, one code after the other, with the
integer starts): x3.4-x4.5 and x3.4-x5.1 wall in two runs, worst x3.4 (phantom-12vox).

Tolerance 0.02 (3 Dec 2026, ``analysis.dvc.local.TOLERANCE_VOXELS``):
synthcal-only runs of all eight cases at 0.005, 0.01, 0.02, 0.05 and 0.1
gave the same RMS to four decimals up to 0.05 (speckle-5% 0.0031 ->
0.0030 from 0.02 on; 0.1 adds 0.0001-0.0002 on two cases) and iterations
per node falling with it: phantom-sine 5.13 / 4.65 / 4.26 / 3.75 / 3.36,
phantom-12vox 4.62 / 4.18 / 3.80 / 3.23 / 2.85, gauss-shift 3.03 to 3.00
until 0.05. Gauss-Newton keeps the state after its last update, and
converges fast enough that the size of that update hardly shows. The
runs with both cores at 0.005 (18:54 and 19:11 UTC) gave x2.6-x5.1 and
x2.7-x4.6 wall, worst x2.6 (phantom-sine) and x2.7 (grains-20vox).

Both cores (3 Dec 2026). Until then synthcal's DVC ran on one core: its
nodes/s equalled its nodes/CPU-s (a quiet run of the code before the
change, 18:29 UTC the same day: 0.85-1.78 ms/node, x1.6-x3.1 spam by the
wall clock, x2.6-x4.3 by CPU time). Taichi hands a CPU loop to its
threads in blocks of at least 512 iterations, so its kernels' loops over
the few hundred nodes of a batch ran on one thread; they now loop over
(node, z-row of the subvolume) and add the rows in numpy in a fixed
order (``analysis.dvc.interpolate``, ``analysis.dvc.reference``). The
FFT search splits its nodes between threads in batches whose size does
not depend on the thread count (the FFTs, box sums and numpy work
release the GIL). Same nodes, same statuses, and RMS errors equal to the
printed digits on all eight cases; the quick scenario's scores are
unchanged to four decimals (its DVC stage 25.9 -> 15.4 s). Synthcal-only
A/B, old and new code alternately, twice each, best ms/node per case:
gauss-shift 1.11 -> 0.54, gauss-affine 0.78 -> 0.47, speckle-5% 0.92 ->
0.67, speckle-sine 0.90 -> 0.55, grains-20vox 1.49 -> 0.95, grains-8%
0.95 -> 0.63, phantom-sine 1.23 -> 0.68, phantom-12vox 1.49 -> 0.99:
x1.4-x2.1 by the wall clock, at the same CPU time.

Earlier runs on the loaded VM (2 Dec 2026, shared with a DEM and mutation
testing, load average 3.2-6.4), one core, before and after Gauss–Newton
learnt to stop a node as soon as its subvolume leaves the volume: spam's
two worker processes lost more to the load than synthcal's one thread,
which flattered synthcal's wall-clock ratios (x2.4-x3.6 at 08:56 UTC;
spam then took 4.5-10.2 ms/node, 1.7-3.6 quiet).

Before the OUTSIDE change (08:19 UTC run, load average 2.9-5.6; two
earlier runs 07:56 and 08:07 gave the same RMS and ok fractions), with
synthcal's nodes/CPU-s and the speed ratios (wall, CPU), all loaded::

    case            nodes/cpu-s   07:56 run       08:07 run       08:19 run       08:56 run (above, after)
    gauss-shift       909 ->  909   x2.5, x4.7      x4.2, x5.9      x4.2, x5.5      x2.4, x4.6
    gauss-affine     1089 -> 1068   x3.0, x6.0      x3.1, x5.7      x5.6, x6.3      x2.8, x5.6
    speckle-5%       1198 ->  938   x3.6, x6.6      x3.2, x5.2      x5.4, x6.1      x2.8, x5.2
    speckle-sine      957 -> 1014   x2.7, x4.9      x3.1, x5.5      x3.4, x5.4      x3.6, x5.2
    grains-20vox      255 ->  533   x0.9, x1.9      x1.3, x2.0      x1.5, x2.3      x2.8, x4.5
    grains-8%         946 -> 1023   x3.2, x4.9      x2.6, x4.6      x5.0, x6.1      x3.4, x6.2
    phantom-sine      801 ->  702   x2.4, x4.9      x3.4, x5.0      x4.0, x6.0      x2.7, x4.1
    phantom-12vox     389 ->  601   x1.6, x3.2      x1.7, x2.9      x2.7, x3.0      x2.4, x3.7

The change (Gauss–Newton stops a node whose warped subvolume leaves the
volume, the test that marks it OUTSIDE, instead of iterating on the
padding to ``max_iterations``) leaves every node's result bit for bit
the same on all eight cases: same ok nodes, same displacements, same
statuses, so the same RMS and ok fractions. It does not touch the cases
without such nodes (their ratios above move with the load only: the
08:56 run had load average 4.7-6.4; speckle-5 %'s 1198 -> 938 nodes/CPU-s
is load: its iterations are the same, and synthcal-only runs of the old
and new code back to back gave 1028 and 1030, the six cases within
-9 %..+17 % either way). The test itself is eight corners per active
node and iteration. On grains-20vox synthcal's nodes/CPU-s doubles
(255 -> 533; 248 -> 441-498 back to back), on phantom-12vox it rises by
half (389 -> 601; 415 -> 657-697 back to back).

What it says, worst case first:

* Speed. Two quiet runs with both cores and tolerance 0.02, 19:52
  (above) and 19:56 UTC: x3.4-x4.5 and x3.4-x5.1 spam's speed by the wall
  clock, x3.7-x5.2 and x3.9-x5.7 by CPU time. The worst case is x3.4 in
  both (phantom-12vox; phantom-sine x3.4 and x3.7, grains-20vox x3.6):
  the 12- and 20-voxel shifts pay for a +-17..22 voxel FFT search that
  spam is spared (32 % of grains-20vox's time, profile below), and the
  phantom's texture needs the most Gauss-Newton iterations. spam's own
  time moves by up to 40 % between quiet runs (1.7-2.6 ms/node on
  gauss-shift), more than synthcal's. The issue's aim of x5 on every case
  is not reached: one case of eight reaches it in one run. What is left
  is the B-spline sampling itself (40-60 % of the time, on both cores):
  about 34 ns per sample per core, 4913 samples per node and iteration.
* Accuracy. On the nodes both codes trust, synthcal's RMS is 0.11-0.54 of
  spam's for every affine field, on every texture (spam's trilinear
  interpolation bias). The worst RMS ratio is the non-affine sine field:
  1.14 (speckle) and 1.02 (phantom) against the point truth u(node), whose
  error there is dominated by the curvature bias that a 17^3 affine
  subvolume cannot avoid (0.08 voxel RMS). spam lands closer to u(node),
  not because it measures better: against the subvolume mean of u, what
  an affine subvolume can measure, the ratios are 0.33 and 0.35.
* Coverage. Where the match leaves the volume (12- and 20-voxel shifts)
  synthcal marks the node OUTSIDE and does not trust it: 85.2 % and 78.1 %
  ok, against spam's 99.3 % and 91.1 %. spam's extra nodes (309 and 285)
  come from subvolumes cut at the volume's face and are 2-5x less accurate
  (RMS 0.10 and 0.16 voxel) than its nodes in common with synthcal. All
  other cases: 100 % ok in both.

Profile of the slowest case (grains-20vox, the 19:52 run, one run under
cProfile: 1.62 s wall, 2.57 CPU-s)::

    stage                                     wall s  wall %   cpu s  calls
    B-spline interpolation + sums (taichi)      0.64    39.6    1.01     72
    FFT integer search                          0.52    31.8    0.93      2
    reference subvolumes + gradients            0.20    12.5    0.37      8
    Gauss-Newton (excl. interpolation)          0.09     5.7    0.09      8
    B-spline prefilter of deformed              0.08     5.1    0.08      1
    subvolume extraction (deformed)             0.05     3.0    0.05      8
    neighbour guesses                           0.02     1.2    0.02      2
    neighbour median test                       0.01     0.4    0.01      1
    rest (outlier loop, bookkeeping)            0.01     0.8
    Gauss-Newton: 7490 node-iterations in all passes = 3.4 per node; final pass 2.5 per node (median 3, max 4); ok 78.1 %
      final pass, status CONVERGED       1716 nodes,   5340 node-iterations (3.1 per node)
      final pass, status OUTSIDE          481 nodes,    159 node-iterations (0.3 per node)

With tolerance 0.005 (18:54 run): 2.21 s wall, 3.46 CPU-s, 8513
node-iterations, interpolation 0.98 s wall.

On one core (2 Dec, loaded) the same profile took 5.3 s wall, 3.7 CPU-s:
FFT search 2.51 s, interpolation 1.78 s, reference terms 0.56 s. Before
Gauss-Newton stopped OUTSIDE nodes (14.5 s wall, 9.4 CPU-s) the
interpolation was 70 % (408 calls) and there were 35236 node-iterations,
18506 of them in the final pass of the 481 OUTSIDE nodes (38.5 each, up
to 50); those nodes now stop within 0-2 iterations.

How long a node may stay outside before it stops
(``analysis.dvc.local._OUTSIDE_PATIENCE``; a first big step might
overshoot and come back) was chosen by measurement, synthcal-only runs
of all eight cases back to back: 0 (stop at the first outside warp) and 1
(one iteration outside allowed) both give the old code's results bit for
bit on every case, and 0 does fewer iterations (final pass, grains-20vox
6522 against 7003 node-iterations, phantom-12vox 10386 against 10699;
24869 and 15667 before). On the pipeline's quick run (edge 17, step 1)
1 lost the same false match as 0 (a node converged 50 voxels off the
field after its path had crossed the volume's face, now OUTSIDE). So 0.

What still fails to converge: before the stall exit, over all passes of
grains-20vox, 30 nodes ended at ``max_iterations`` (1500 of the 8581
node-iterations; their CC 0.24-0.44, none in the final pass), of
phantom-12vox 16 (800 of 10908). Nodes that do converge at CC >= 0.5
often need 20-50 iterations on the quick run, so no iteration count alone
separates them from the ones that will not; the stall exit looks at the
CC after 10 iterations (below 0.3: stop) and brings grains-20vox to 8513
node-iterations with the same results (7490 with tolerance 0.02).
"""

import contextlib
import cProfile
import os
import platform
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy
import scipy.ndimage as ndi
from scipy.spatial import cKDTree
from scipy.special import erfc

import analysis.dvc.local as dvc_local
from analysis.dvc import correlate, node_grid
from analysis.dvc.interpolate import SplineVolume

# volume shape (z, y, x), subvolume edge and node spacing (voxels) of a case unless its row gives its own
SHAPE = (128, 128, 128)
LARGE = (192, 192, 192)
SUBVOLUME = 17
SPACING = 8
MARGIN_VOXELS = 4           # nodes this far from the faces, at least
REPEATS = 5                 # alternating runs of each code per case; times and ratios are medians
MASTER_PAD_VOXELS = 24      # sampled textures: master volume this much larger on each side
SINE_WAVELENGTH_VOXELS = 64.0
SINE_PHASE_RAD = (0.3, 1.1, 2.0)
PHANTOM_SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "quick.toml"
PHANTOM_RUN = Path(os.environ.get("SYNTHCAL_BENCH_RUN", Path(tempfile.gettempdir()) / "synthcal-dvc-bench-quick"))

# name, texture, translation t (z, y, x) voxels, strain E (zz, yy, xx, yz, zx, xy) %, sine amplitude A voxels,
# noise (fraction of the texture std)[, (shape, subvolume edge, node spacing) when not the defaults above]
CASES = (
    ("gauss-shift",    "gauss",   (2.3, -1.7, 0.45),   (0, 0, 0, 0, 0, 0),               0.0, 0.02),
    ("gauss-affine",   "gauss",   (0.6, 1.2, -0.8),    (-1.0, 0.4, 0.5, -0.1, 0.0, 0.15), 0.0, 0.02),
    ("speckle-5%",     "speckle", (5.3, -3.6, 2.2),    (-5.0, 2.0, 2.0, 1.0, -0.5, 0.5), 0.0, 0.03),
    ("speckle-sine",   "speckle", (0.4, -0.3, 0.7),    (0, 0, 0, 0, 0, 0),               0.6, 0.05),
    ("grains-20vox",   "grains",  (18.6, -11.3, 6.4),  (-1.0, 0.5, 0.5, 0, 0, 0),        0.0, 0.01),
    ("grains-8%",      "grains",  (-2.2, 1.4, 3.1),    (-8.0, 3.0, 3.0, 1.5, 0.0, -1.0), 0.0, 0.01),
    ("phantom-sine",   "phantom", (1.4, 0.7, -2.2),    (-0.5, 0.2, 0.2, 0, 0, 0),        0.6, 0.02),
    ("phantom-12vox",  "phantom", (12.4, -7.7, 3.3),   (-4.0, 1.5, 1.5, 0.5, 0.0, 0.0),  0.0, 0.05),
    ("phantom-40%n",   "phantom", (3.4, -2.7, 1.3),    (-3.0, 1.0, 1.0, 0, 0, 0),        0.0, 0.40),
    ("speckle-30%n",   "speckle", (2.2, 1.1, -0.7),    (-2.0, 0.5, 0.5, 0, 0, 0),        0.3, 0.30),
    # a smooth texture under noise near its own contrast: where trilinear interpolation's smoothing of the
    # noise helps spam
    ("gauss-80%n",     "gauss",   (1.6, -0.9, 0.4),    (-2.0, 0.5, 0.5, 0, 0, 0),        0.0, 0.80),
    # other geometries: few nodes far apart (per-volume costs weigh), large and small subvolumes, a larger volume
    ("gauss-sparse",   "gauss",   (3.2, -1.1, 0.7),    (-1.0, 0.3, 0.3, 0, 0, 0),        0.0, 0.02, (SHAPE, 17, 32)),
    ("speckle-33sv",   "speckle", (4.1, 2.3, -1.6),    (-2.0, 0.7, 0.7, 0.3, 0, 0),      0.0, 0.05, (SHAPE, 33, 16)),
    ("phantom-9sv",    "phantom", (1.3, -0.6, 2.1),    (-2.0, 0.5, 0.5, 0, 0, 0),        0.0, 0.05, (SHAPE, 9, 8)),
    ("grains-192",     "grains",  (6.5, -3.2, 2.4),    (-3.0, 1.0, 1.0, 0, 0.5, 0),      0.0, 0.02, (LARGE, 21, 24)),
    ("phantom-25sv",   "phantom", (2.0, -1.0, 0.5),    (-5.0, 1.5, 1.5, 0, 0, 0),        0.0, 0.20, (SHAPE, 25, 12)),
    # (7 Dec 2026, last, so that the cases above keep their seeds) a smoother texture under noise as strong as
    # itself, where synthcal's error stands highest against spam's unless it smooths the volumes
    # (analysis.dvc.smoothing); the phantom under strong noise, where that smoothing costs most
    ("smooth-100%n",   "smooth",  (0.4, 0.4, -3.3),    (-1.0, 0.2, 0.2, 0.3, 0, 0),      0.0, 1.00),
    ("phantom-70%n",   "phantom", (0.6, 0.8, -1.1),    (-2.0, 0.5, 0.5, 0, 0, 0),        0.0, 0.70),
)


def strain_tensor(components_percent):
    """Symmetric 3x3 strain (z, y, x) from (zz, yy, xx, yz, zx, xy) in %, dimensionless."""
    zz, yy, xx, yz, zx, xy = np.asarray(components_percent, dtype=np.float64) / 100.0
    return np.array([[zz, yz, zx],
                     [yz, yy, xy],
                     [zx, xy, xx]])


def displacement(points_voxels, translation_voxels, strain, sine_amplitude_voxels, shape):
    """u(X) of a case at reference points.

    Parameters
    ----------
    points_voxels : numpy.ndarray
        (3, N) reference positions (z, y, x), voxels.
    translation_voxels : array_like
        (3,) t, voxels.
    strain : numpy.ndarray
        (3, 3) symmetric E, dimensionless.
    sine_amplitude_voxels : float
        A; u_z varies along y, u_y along x, u_x along z.
    shape : tuple of 3 int
        The volume's shape; its centre is c.

    Returns
    -------
    numpy.ndarray
        (3, N) displacement (z, y, x), voxels.
    """
    c = (np.array(shape, dtype=np.float64) - 1) / 2
    rel = points_voxels - c[:, None]
    u = np.asarray(translation_voxels, dtype=np.float64)[:, None] + strain @ rel
    if sine_amplitude_voxels:
        k = 2 * np.pi / SINE_WAVELENGTH_VOXELS
        along = rel[[1, 2, 0]]
        u = u + sine_amplitude_voxels * np.sin(k * along + np.asarray(SINE_PHASE_RAD)[:, None])
    return u


def reference_points(x_voxels, field, iterations=30):
    """X with X + u(X) = x, by fixed-point iteration (|grad u| < 0.1 here, so it contracts fast).

    Parameters
    ----------
    x_voxels : numpy.ndarray
        (3, N) deformed positions, voxels.
    field : callable
        u(X), (3, N) -> (3, N), voxels.

    Returns
    -------
    numpy.ndarray
        (3, N) reference positions, voxels.
    """
    x_ref = x_voxels - field(x_voxels)
    for _ in range(iterations):
        new = x_voxels - field(x_ref)
        step = np.abs(new - x_ref).max()
        x_ref = new
        if step < 1e-7:
            break
    return x_ref


def speckle_sampler(seed, shape, spots_per_voxel=1 / 24, sigma_voxels=1.0):
    """Analytic speckle: sum of gaussian spots, evaluated at any point (voxels)."""
    rng = np.random.default_rng(seed)
    low, high = -2 * MASTER_PAD_VOXELS, np.array(shape) + 2 * MASTER_PAD_VOXELS
    n = rng.poisson(np.prod(high - low) * spots_per_voxel)
    centres = rng.uniform(low, high, size=(n, 3))
    brightness = rng.uniform(0.6, 1.0, size=n)
    tree = cKDTree(centres)
    reach = 3.5 * sigma_voxels

    def sample(points_voxels):
        out = np.empty(points_voxels.shape[1])
        for start in range(0, len(out), 1 << 18):
            p = points_voxels[:, start:start + (1 << 18)].T
            d, j = tree.query(p, k=16, distance_upper_bound=reach, workers=2)
            near = np.isfinite(d)
            w = np.where(near, np.exp(-0.5 * (np.where(near, d, 0.0) / sigma_voxels) ** 2), 0.0)
            out[start:start + len(p)] = (w * brightness[np.minimum(j, n - 1)]).sum(axis=1)
        return out

    return sample


def grain_sampler(seed, shape, voxels_per_grain=216.0, edge_voxels=0.6, boundary_dip=0.3):
    """Analytic Voronoi grains with random grey levels, soft edges and darker boundaries."""
    rng = np.random.default_rng(seed)
    low, high = -2 * MASTER_PAD_VOXELS, np.array(shape) + 2 * MASTER_PAD_VOXELS
    n = rng.poisson(np.prod(high - low) / voxels_per_grain)
    seeds = rng.uniform(low, high, size=(n, 3))
    grey = rng.uniform(0.0, 1.0, size=n)
    tree = cKDTree(seeds)

    def sample(points_voxels):
        out = np.empty(points_voxels.shape[1])
        for start in range(0, len(out), 1 << 18):
            p = points_voxels[:, start:start + (1 << 18)].T
            d, j = tree.query(p, k=2, workers=2)
            gap = np.linalg.norm(seeds[j[:, 1]] - seeds[j[:, 0]], axis=1)
            to_boundary = (d[:, 1] ** 2 - d[:, 0] ** 2) / (2 * gap)   # distance to the bisector plane
            g1, g2 = grey[j[:, 0]], grey[j[:, 1]]
            value = g1 + (g2 - g1) * 0.5 * erfc(to_boundary / (np.sqrt(2) * edge_voxels))
            out[start:start + len(p)] = value - boundary_dip * np.exp(-0.5 * (to_boundary / edge_voxels) ** 2)
        return out

    return sample


def image_sampler(master, offset_voxels):
    """Quintic B-spline interpolation of a master volume whose voxel ``offset_voxels`` is the volume's (0, 0, 0)."""
    coef = ndi.spline_filter(master.astype(np.float64), order=5, mode="mirror")
    offset_voxels = np.reshape(np.asarray(offset_voxels, dtype=np.float64), (-1, 1))

    def sample(points_voxels):
        return ndi.map_coordinates(coef, points_voxels + offset_voxels, order=5, mode="mirror", prefilter=False)

    return sample


def gauss_sampler(seed, shape, sigma_voxels=1.5):
    """Gaussian-filtered white noise (sigma ``sigma_voxels``) on a padded master volume."""
    rng = np.random.default_rng(seed)
    master = ndi.gaussian_filter(rng.normal(size=tuple(np.array(shape) + 2 * MASTER_PAD_VOXELS)), sigma_voxels)
    return image_sampler(master, MASTER_PAD_VOXELS)


def phantom_sampler(shape, corner=None):
    """The step-0 reconstruction of the quick scenario around a crop of ``shape`` (run once, then cached).

    The crop starts at voxel ``corner`` (z, y, x) of the reconstruction; default: the central crop. Where
    a crop reaches past the reconstruction's far faces, the quintic B-spline sampler mirrors it there.
    """
    from synthcal.dataset import load_run

    if not (PHANTOM_RUN / "volumes").exists() or not any((PHANTOM_RUN / "volumes").iterdir()):
        print(f"# making the phantom: synthcal run {PHANTOM_SCENARIO.name} --until reconstruct -> {PHANTOM_RUN}",
              flush=True)
        subprocess.run([sys.executable, "-m", "synthcal.cli", "run", str(PHANTOM_SCENARIO), "--out", str(PHANTOM_RUN),
                        "--until", "reconstruct"], check=True, stdout=subprocess.DEVNULL)
    volume = load_run(PHANTOM_RUN).volume(0).astype(np.float64)
    corner = (np.array(volume.shape) - np.array(shape)) // 2 if corner is None else np.asarray(corner)
    if np.any(corner < 0):
        raise ValueError(f"reconstruction {volume.shape}: no crop of {shape} at {tuple(corner)}")
    pad = np.minimum(corner, MASTER_PAD_VOXELS)
    master = volume[tuple(slice(a - p, a + s + p) for a, p, s in zip(corner, pad, shape))]
    return image_sampler(master, pad)


def volume_pair(sample, field, noise, rng, shape):
    """Reference and deformed float32 volumes of one case: the texture at x and at X(x), normalised, plus noise.

    Parameters
    ----------
    sample : callable
        Texture at (3, N) points, voxels.
    field : callable
        u(X), voxels.
    noise : float
        Noise std as a fraction of the reference texture's std.
    rng : numpy.random.Generator
    shape : tuple of 3 int

    Returns
    -------
    reference, deformed : numpy.ndarray
    """
    grid = np.indices(shape, dtype=np.float64).reshape(3, -1)
    ref = sample(grid)
    defo = sample(reference_points(grid, field))
    mean, std = ref.mean(), ref.std()
    out = []
    for v in (ref, defo):
        v = (v - mean) / std + noise * rng.normal(size=v.shape)
        out.append(v.reshape(shape).astype(np.float32))
    return out[0], out[1]


def cube_mean_truth(field, nodes, subvolume):
    """Mean of u over each node's cubic subvolume of edge ``subvolume``: what an affine subvolume can measure at
    best, voxels.

    On a symmetric cube the least-squares affine fit of u has the cube mean
    as its value at the centre; it equals u(node) for affine fields and
    differs by the curvature bias for the sine field.
    """
    h = np.arange(subvolume) - subvolume // 2
    offsets = np.stack(np.meshgrid(h, h, h, indexing="ij"), axis=0).reshape(3, -1).astype(np.float64)
    out = np.empty((len(nodes), 3))
    for start in range(0, len(nodes), 128):
        sel = nodes[start:start + 128].astype(np.float64)
        points = (sel.T[:, :, None] + offsets[:, None, :]).reshape(3, -1)
        out[start:start + 128] = field(points).reshape(3, len(sel), -1).mean(axis=2).T
    return out


def _rms(d, true):
    return np.sqrt(np.mean(np.sum((d - true) ** 2, axis=1))) if len(d) else np.nan


def run_spam(ref, defo, nodes, guess_voxels, subvolume):
    """One run of spam's ldic from the rounded truth: displacement, ok, wall seconds, CPU seconds."""
    import spam.DIC
    phi = np.zeros((len(nodes), 4, 4))
    phi[:] = np.eye(4)
    phi[:, :3, 3] = np.round(guess_voxels)
    t, c = time.perf_counter(), _cpu_seconds()
    with _quiet():
        out = spam.DIC.ldic(ref, defo, nodes, np.array([subvolume // 2] * 3), processes=2, PhiField=phi)
    wall, cpu = time.perf_counter() - t, _cpu_seconds() - c
    phi_out, rs = out[0], out[1]
    return phi_out[:, :3, 3], rs == 2, wall, cpu


def run_synthcal(ref, defo, nodes, search_voxels, subvolume, spacing, smoothing=0.0):
    """One run of synthcal's correlate from zero: displacement, ok, wall seconds, CPU seconds."""
    t, c = time.perf_counter(), _cpu_seconds()
    r = correlate(ref, defo, subvolume_voxels=subvolume, node_spacing_voxels=spacing,
                  max_displacement_voxels=search_voxels, nodes=nodes, smoothing_sigma_voxels=smoothing)
    return r.displacement, r.ok, time.perf_counter() - t, _cpu_seconds() - c


@contextlib.contextmanager
def _quiet():
    """Silence stdout at the file-descriptor level (spam's progress bars and summary tables)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def _cpu_seconds():
    """CPU time of this process, its threads and its reaped children (spam's worker pool)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _versions():
    from importlib.metadata import PackageNotFoundError, version

    def of(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "absent"

    return (f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
            f"taichi {of('taichi')}, spam {of('spam')}")


def _load():
    return "load average " + " ".join(f"{v:.1f}" for v in os.getloadavg())


def case_geometry(row):
    """Shape, subvolume edge, node spacing (its 7th entry, else the defaults) and nodes of a ``CASES`` row."""
    shape, subvolume, spacing = row[6] if len(row) > 6 else (SHAPE, SUBVOLUME, SPACING)
    return shape, subvolume, spacing, node_grid(shape, spacing, subvolume, margin_voxels=MARGIN_VOXELS)


def make_case(texture, translation_voxels, strain_percent, sine_amplitude_voxels, noise, seed, samplers, shape):
    """Volumes and displacement field of one ``CASES`` row on a volume of ``shape``."""
    if (texture, shape) not in samplers:
        samplers[texture, shape] = {"gauss": lambda: gauss_sampler(1, shape),
                                    "smooth": lambda: gauss_sampler(4, shape, 2.5),
                                    "speckle": lambda: speckle_sampler(2, shape),
                                    "grains": lambda: grain_sampler(3, shape),
                                    "phantom": lambda: phantom_sampler(shape)}[texture]()
    strain = strain_tensor(strain_percent)

    def field(points):
        return displacement(points, translation_voxels, strain, sine_amplitude_voxels, shape)

    rng = np.random.default_rng(seed)
    ref, defo = volume_pair(samplers[texture, shape], field, noise, rng, shape)
    return ref, defo, field


def _smoothing(argv):
    """The value of ``--smoothing SIGMA`` (0 when absent); exits with one line on anything else."""
    if not argv:
        return 0.0
    try:
        flag, value = argv
        sigma = float(value)
        if flag != "--smoothing" or not sigma >= 0:
            raise ValueError
    except ValueError:
        sys.exit(f"expected no arguments or --smoothing SIGMA (a number >= 0, voxels), got {' '.join(argv)!r}")
    return sigma


def main(argv):
    smoothing = _smoothing(argv)
    os.environ.setdefault("SYNTHCAL_DEM_THREADS", "1")
    start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"Run of {start}, {platform.machine()} {os.cpu_count()} cpus, {_load()}; {_versions()}")
    print(f"subvolume {SUBVOLUME}^3, spacing {SPACING}, volume {SHAPE} unless a case's ratio line says otherwise; "
          f"2 processes/threads, {REPEATS} alternating runs each, medians; spam starts from the truth rounded to "
          f"voxels, synthcal searches" + (f" on volumes smoothed by a {smoothing}-voxel gaussian" if smoothing else ""))
    head = (f"{'case':14s} {'code':9s} {'ms/node':>8s} {'nodes/s':>8s} {'nodes/cpu-s':>11s} {'RMS vox':>8s} "
            f"{'RMS cube':>8s} {'ok %':>6s}")
    print(head)
    samplers = {}
    # compile the taichi kernels outside the timings
    warm = np.random.default_rng(0).normal(size=(48, 48, 48)).astype(np.float32)
    correlate(warm, warm, subvolume_voxels=SUBVOLUME, node_spacing_voxels=SPACING, max_displacement_voxels=4)
    rows = []
    for i, row in enumerate(CASES):
        name, texture, t, e, a, noise = row[:6]
        shape, subvolume, spacing, nodes = case_geometry(row)
        ref, defo, field = make_case(texture, t, e, a, noise, 100 + i, samplers, shape)
        true = field(nodes.T.astype(np.float64)).T
        search = int(np.ceil(np.abs(true).max())) + 2
        # the codes take turns, and each ratio is one pair's: a drift of the machine's speed during the case
        # then moves both codes' times alike instead of one code's
        pairs = []
        for _ in range(REPEATS):
            d_sy, ok_sy, *sy = run_synthcal(ref, defo, nodes, search, subvolume, spacing, smoothing)
            d_sp, ok_sp, *sp = run_spam(ref, defo, nodes, true, subvolume)
            pairs.append((*sy, *sp))
        t_sy, c_sy, t_sp, c_sp = np.median(pairs, axis=0)
        wall_ratio, cpu_ratio = (np.median([p[2 + k] / p[k] for p in pairs]) for k in (0, 1))
        spread = [p[2] / p[0] for p in pairs]
        both = ok_sy & ok_sp
        mean = cube_mean_truth(field, nodes, subvolume)
        rms = {k: _rms(d[both], true[both]) for k, d in (("synthcal", d_sy), ("spam", d_sp))}
        rms_mean = {k: _rms(d[both], mean[both]) for k, d in (("synthcal", d_sy), ("spam", d_sp))}
        for code, dt, cpu, ok in (("synthcal", t_sy, c_sy, ok_sy), ("spam", t_sp, c_sp, ok_sp)):
            print(f"{name:14s} {code:9s} {1e3 * dt / len(nodes):8.2f} {len(nodes) / dt:8.0f} {len(nodes) / cpu:11.0f} "
                  f"{rms[code]:8.4f} {rms_mean[code]:8.4f} {100 * ok.mean():6.1f}")
        rows.append((name, wall_ratio, cpu_ratio, rms["synthcal"] / rms["spam"], t_sy, search))
        geometry = ("" if len(row) < 7 else
                    f"; subvolume {subvolume}^3, spacing {spacing}, volume {shape}, {len(nodes)} nodes")
        print(f"{name:14s} ratio     speed x{wall_ratio:.1f} (wall; pairs x{min(spread):.1f}-x{max(spread):.1f}), "
              f"x{cpu_ratio:.1f} (cpu); RMS synthcal/spam "
              f"{rms['synthcal'] / rms['spam']:.2f} on {both.sum()} nodes; search +-{search} vox{geometry}; {_load()}",
              flush=True)
        alone = [(code, sel.sum(), _rms(d[sel], true[sel])) for code, sel, d in
                 (("synthcal", ok_sy & ~ok_sp, d_sy), ("spam", ok_sp & ~ok_sy, d_sp)) if sel.any()]
        if alone:
            print(f"{name:14s} ok in one code only: " + "; ".join(f"{code} {n} nodes, RMS {r:.4f} vox"
                                                                  for code, n, r in alone), flush=True)
    wall = min(rows, key=lambda r: r[1])
    cpu = min(rows, key=lambda r: r[2])
    acc = max(rows, key=lambda r: r[3])
    print(f"{'worst case':14s} ratio     speed x{wall[1]:.1f} (wall, {wall[0]}), x{cpu[2]:.1f} (cpu, {cpu[0]}); "
          f"RMS synthcal/spam {acc[3]:.2f} ({acc[0]})")
    print(f"Ended {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {_load()}")
    slowest = max(rows, key=lambda r: r[4])
    i = [c[0] for c in CASES].index(slowest[0])
    name, texture, t, e, a, noise = CASES[i][:6]
    shape, subvolume, spacing, nodes = case_geometry(CASES[i])
    ref, defo, _ = make_case(texture, t, e, a, noise, 100 + i, samplers, shape)
    profile(name, ref, defo, nodes, slowest[5], subvolume, spacing, smoothing)


def profile(name, ref, defo, nodes, search_voxels, subvolume, spacing, smoothing=0.0):
    """Where synthcal's time goes on one case: timers around its stages, Gauss–Newton iterations per node.

    The stages are timed by wrapping the functions that ``analysis.dvc.local``
    calls (nested ones are not double counted: the Gauss–Newton time
    excludes the interpolation inside it, which is timed on its own).
    """
    timers = {}
    counts = {"node-iterations": 0}
    stack = []

    def timed(label, fn):
        def wrapper(*args, **kwargs):
            t, c = time.perf_counter(), time.process_time()
            stack.append([0.0, 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                dt, dc = time.perf_counter() - t, time.process_time() - c
                inner = stack.pop()
                tot = timers.setdefault(label, [0.0, 0.0, 0])
                tot[0] += dt - inner[0]
                tot[1] += dc - inner[1]
                tot[2] += 1
                if stack:
                    stack[-1][0] += dt
                    stack[-1][1] += dc
        return wrapper

    sums = SplineVolume.correlation_sums

    def counted_sums(self, warps, *args, **kwargs):
        counts["node-iterations"] += len(warps)
        return sums(self, warps, *args, **kwargs)

    patched = {"integer_search": "FFT integer search", "extract_cubes": "subvolume extraction (deformed)",
               "cube_terms": "reference subvolumes + gradients", "refine": "Gauss-Newton (excl. interpolation)",
               "median_test": "neighbour median test", "SplineVolume": "B-spline prefilter of deformed",
               "_neighbour_guess": "neighbour guesses", "gaussian_smoothing": "gaussian smoothing of both volumes"}
    saved = {k: getattr(dvc_local, k) for k in patched}
    try:
        for k, label in patched.items():
            setattr(dvc_local, k, timed(label, saved[k]))
        SplineVolume.correlation_sums = timed("B-spline interpolation + sums (taichi)", counted_sums)
        t, c = time.perf_counter(), time.process_time()
        prof = cProfile.Profile()
        prof.enable()
        r = correlate(ref, defo, subvolume_voxels=subvolume, node_spacing_voxels=spacing,
                      max_displacement_voxels=search_voxels, nodes=nodes, smoothing_sigma_voxels=smoothing)
        prof.disable()
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    finally:
        for k in patched:
            setattr(dvc_local, k, saved[k])
        SplineVolume.correlation_sums = sums
    print(f"\nProfile of synthcal on the slowest case, {name} (search +-{search_voxels} vox, one run, profiled): "
          f"{wall:.2f} s wall, {cpu:.2f} CPU-s; {_load()}")
    print(f"{'stage':40s} {'wall s':>7s} {'wall %':>7s} {'cpu s':>7s} {'calls':>6s}")
    for label, (dt, dc, n) in sorted(timers.items(), key=lambda kv: -kv[1][0]):
        print(f"{label:40s} {dt:7.2f} {100 * dt / wall:7.1f} {dc:7.2f} {n:6d}")
    other = wall - sum(v[0] for v in timers.values())
    print(f"{'rest (outlier loop, bookkeeping)':40s} {other:7.2f} {100 * other / wall:7.1f}")
    live = r.status != 2
    print(f"Gauss-Newton: {counts['node-iterations']} node-iterations in all passes = "
          f"{counts['node-iterations'] / len(nodes):.1f} per node; final pass {r.iterations[live].mean():.1f} "
          f"per node (median {np.median(r.iterations[live]):.0f}, max {r.iterations.max()}); ok {100 * r.ok.mean():.1f} %")
    for st in np.unique(r.status):
        sel = r.status == st
        print(f"  final pass, status {dvc_local.Status(st).name:14s} {sel.sum():5d} nodes, "
              f"{r.iterations[sel].sum():6d} node-iterations ({r.iterations[sel].mean():.1f} per node)")
    print("cProfile, top 8 by own time:")
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(8)


if __name__ == "__main__":
    main(sys.argv[1:])
