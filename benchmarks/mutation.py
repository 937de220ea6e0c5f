"""Mutation testing: how many small faults planted in a module its own tests catch.

A mutant is the module with one small change (an operator, a constant, a
comparison, a call argument); it is *killed* when one of the module's tests
fails. A survivor is a change the tests cannot see: either a missing test or
an equivalent mutant (one that cannot change any result), listed below.

Usage (not part of CI; needs the optional extra ``mutation``)::

    pip install -e ".[mutation]"
    SYNTHCAL_DEM_THREADS=1 python benchmarks/mutation.py                 # every module
    SYNTHCAL_DEM_THREADS=1 python benchmarks/mutation.py score reconstruct
    python benchmarks/mutation.py --list
    SYNTHCAL_DEM_THREADS=1 python benchmarks/mutation.py pores --functions whole_voxel_radius local_radius
    SYNTHCAL_DEM_THREADS=1 python benchmarks/mutation.py --sample 20                      # 30 min, any machine
    SYNTHCAL_DEM_THREADS=1 python benchmarks/mutation.py --cache .mutation-cache          # the habit
    SYNTHCAL_DEM_THREADS=1 python benchmarks/mutation.py --cache .mutation-cache --retest-survivors dvc-status

Each module runs in a copy of the tracked files (both tools write mutants
into the tree) and only against its own test files. The script prints one
row per module, the surviving mutants, and a last row "worst module".

Without ``--cache`` the copy is fresh and every mutant is tested: the
measured runs below, minutes to over an hour per module on 2 cores (about
6 hours for all of them). With ``--cache DIR`` each mutmut module keeps its
copy in ``DIR/<module>`` (``.mutation-cache/`` is ignored by git) and mutmut
keeps its verdicts there: a later run re-tests only the mutants of
functions whose code changed since (mutmut compares a hash of each
function), and adds the stats of new tests, so after an ordinary change the
whole list runs in minutes. A kill stays a kill until its function changes:
after weakening or deleting a test, start again without the cache (or
delete the module's folder). ``--retest-survivors`` tests the survivors of
the cached run again, for after tests were written for them. cosmic-ray
(the contact law) cannot keep verdicts per function: its result is reused
while ``synthcal/dem/kernels.py`` and its test files are unchanged, and
otherwise it runs again in full (12 to 17 minutes).

``--sample N`` is the check that fits in half an hour on a fresh machine:
in a fresh copy of each module it lets mutmut make every mutant (and
collect which tests reach which function), draws N of them at random
(``--seed``; the same seed draws the same mutants while the module is
unchanged), tests only those, and prints the killed fraction of the draw
with its 95 % interval (Wilson's, with the finite-population correction:
a draw of the whole module is exact). A sample cannot show that a module
is above 90 % (20 mutants all killed give an interval of 84-100 %); it
shows a module whose tests have lost their grip (the ninth pass's
``validation/run.py`` drew 8 of 20 killed, 22-61 %) and names real
survivors for a look: judge each against the equivalents listed below.
cosmic-ray draws from the same filtered mutants by marking the rest
skipped. A measured run of all 17 modules with ``--sample 20`` (27 min) is in the
fourteenth pass below.

Measured (2 cores shared with two other mutation runs): ``dvc-interpolate``
from its cached copy, nothing changed: 1.0 min; after an edit of one
function (``device_array``, 10 mutants): 2.1 min; the 10 survivors alone
(``--retest-survivors``): 2 min. A run of every module from an empty cache
is the sum of the fresh runs below, about 5.5 hours; with the cache built,
a run after a change costs about a minute per module plus the mutants of
the changed functions (about a quarter of an hour for all of them with
nothing changed, estimated from that per-module minute; not measured
end to end).

Tools
-----
- mutmut (3.x) for plain-Python modules. It runs with ``process_isolation =
  forkserver``: with its default ``fork`` the workers fork from a process
  whose taichi runtime already has worker threads, and every mutant whose
  tests launch a taichi kernel hangs until its timeout (measured on
  ``analysis/reconstruct.py``: every ``sirt`` mutant reached timed out, 36
  before the run was stopped).
- cosmic-ray for the contact law in ``synthcal/dem/kernels.py``. mutmut never
  mutates a decorated function, and ``hertz_mindlin`` and ``rolling_torque``
  are ``@ti.func``: taichi compiles them from their source text, so only a
  tool that edits the file on disk reaches them. cosmic-ray does; its line
  filter keeps the mutants inside those two functions.

``validation/frame.py`` runs against ``tests/test_truth_frame.py`` and
``tests/test_frame_scores.py`` only: every test in ``tests/test_validation.py``
needs the session fixture ``tiny_run``, a whole pipeline run, so each mutant
would cost minutes. ``tests/test_frame_scores.py`` reaches ``score_dvc``,
``registration_error``, ``truth_frame`` and ``node_regions`` on a hand-made
phantom instead.

Measured
--------
Machine: 2 CPU cores shared with two other agents' test runs (so minutes are
pessimistic), 24 GiB, Linux, Python 3.11.7, mutmut 3.8.1, cosmic-ray 8.7.0,
``--max-children 2``, ``SYNTHCAL_DEM_THREADS=1``::

    module        file                     tool        mutants  killed  survived  score   min
    score         validation/score.py      mutmut          284     268        16  94.4%   3.5
    reconstruct   analysis/reconstruct.py  mutmut          604     564        40  93.4%  21.9
    contact-law   synthcal/dem/kernels.py  cosmic-ray       65      52        13  80.0%  17.3  (*)
    worst module  synthcal/dem/kernels.py  cosmic-ray       65      52        13  80.0%  17.3  (*)

(*) run before the tests written for its survivors (sliding friction with and
without damping, spin off the rolling axis, spin stopped to nothing, a
resting sphere, a twist about the normal); each of those survivors was then
planted by hand and is killed now. The three left are equivalent (below).

Issue #19, second pass (same machine and versions, numpy 2.4.6, taichi 1.7.4,
2 cores shared with other agents' runs; one module at a time)::

    module        file                       tool    mutants  killed  survived  score   min   before
    frame         validation/frame.py        mutmut      463     445        18  96.1%   6.2   31 %   (+)
    strain        analysis/strain.py         mutmut      366     346        20  94.5%  11.1   70.2 % (+)
    dem-material  synthcal/dem/material.py   mutmut      197     187        10  94.9%   9.5   not run (+)
    dem-material  synthcal/dem/material.py   mutmut      197     195         2  99.0%  18.8   rerun (#)
    pores         analysis/pores.py          mutmut      749  not measured (third pass below)
    worst module  validation/frame.py        mutmut      463     445        18  96.1%   6.2

"before": the scores the first pass reported for these modules (run before
``tests/test_frame_scores.py``, ``tests/test_strain_fit.py``,
``tests/test_dem_material.py``, ``tests/test_dem_restitution.py`` and
``tests/test_pores_cases.py``). (+) After each run its survivors that are
not equivalent got a test, planted by hand and seen to fail: frame 2 (several
points at once, a non-square field of view), strain 11 (float32 inputs fitted
in double precision, the fit centred on the node, the scale-free degeneracy
test, an ``ok`` of any dtype, float64 out of the cap and the tensor
functions), dem-material 8 (float32 radius and mass scaling in the Rayleigh
time, integer friction in the wall tables). So: frame 447/463 = 96.5 %,
strain 357/366 = 97.5 %, dem-material 195/197 = 99.0 %, the rest equivalent
(below).
(#) rerun with the tests written for the first run's survivors; 10 of the 195
kills were mutmut timeouts, all in ``rayleigh_time_s``, whose changes fail
``tests/test_dem_material.py`` by assertion when planted by hand (4 tried).
How many of the first run's 187 kills were timeouts was not recorded.
pores was started and stopped after 26 minutes: of the first 170 of its 749
mutants 5 were killed and 165 stopped at mutmut's CPU-time limit (SIGXCPU,
exit -24), which mutmut and this script count as killed, so the run said
nothing. The limit is 2 x 15 x (the tests' time in mutmut's stats phase +
1 s) CPU seconds, summed over all threads of the worker: a worker that
compiles the taichi kernels of ``local_radius`` again and runs them on
taichi's thread pool spends far more. The target now sets
``timeout_multiplier = 100`` (not yet tried) and every row reports how many
of its kills were timeouts. The frame run had none (all 445 kills were test
failures, exit 1); the strain run's were not recorded (its tests run no
taichi kernel). Hand-planted faults in pores (the whole-voxel paint
margin ``r^2 + 1/2``, the porosity's region, ``searchsorted`` side) fail
``tests/test_pores_cases.py``.
Not measured in this pass: dvc-status, and contact-law again with
``tests/test_dem_restitution.py`` (the damping line of ``hertz_mindlin``;
its faults were planted by hand and fail that file).

Issue #19, third pass (same machine: 2 cores shared with another agent's
pipeline run, 24 GiB; Python 3.11.7, mutmut 3.8.1, cosmic-ray 8.7.0, numpy
2.4.6, taichi 1.7.4, ``SYNTHCAL_DEM_THREADS=1``; dvc-status with
``--max-children 2``, pores with ``--max-children 1`` beside it, so both
minutes are pessimistic)::

    module        file                    tool    mutants  killed  timeouts  survived  score   min
    dvc-status    analysis/dvc/local.py   mutmut      878     699         1       179  79.6%  71.2
    pores (part)  analysis/pores.py       mutmut      362     315         0        47  87.0%  47.9  (%)
    contact-law   synthcal/dem/kernels.py cosmic-ray   65      62         0         3  95.4%  12.5  (&)

"timeouts": kills that were mutmut's CPU-time limit (SIGXCPU), counted in
"killed" as mutmut and this script count them; "survived" includes mutmut's
"no tests" (a mutant that no test of the module's own files reaches).
(%) pores with ``--functions whole_voxel_radius _distribution local_radius``
(362 of its 749 mutants: the two radius maps and the distribution; left out:
``_ball_tables``, ``cpsd``, ``cpsd_whole_voxel``, the checks,
``phase_fractions``, the writers and the plot), for time, not for timeouts:
with ``timeout_multiplier = 100`` no mutant timed out (the first pass had
165 of 170), and all 315 kills were test failures (exit 1). 161 of the 362
are in ``local_radius``: 150 killed, 11 survived.
dvc-status: ``analysis/dvc/local.py`` against ``tests/test_dvc.py`` and
``tests/test_dvc_status.py``, the target as it was (``tests/test_dvc_robust.py``,
which drives the neighbour check through ``correlate``, is not one of its
files). The run was stopped once and resumed (mutmut keeps its verdicts):
4.3 + 66.9 minutes, most of it beside the pores run. Of the 699 kills 1 was
a timeout (``range(0, n, )`` for batches of ``_BATCH_NODES``: equivalent,
below), 698 test failures. The 179 survivors include 25 "no tests": all of
``correlate_tiled``, which only ``tests/test_paper_mode.py`` called.
(&) the contact law rerun with ``tests/test_dem_restitution.py``, alone on
the cores left by the other agent: all 62 kills were test failures (no
cosmic-ray timeout or crash); the 3 survivors are the equivalents listed
below (``h = -(ft - gt vt)/kt``, ``mur >= 0.0``, ``mur > -1.0``), so every
mutant that can change a result is killed. (A first start beside
dvc-status was stopped after 8 mutants.)

After the run, tests for the survivors that are not equivalent, each planted
by hand and seen to fail (its expected value worked out by hand or from a
definition, not from the code):

- dvc-status (``tests/test_dvc_status.py``, ``tests/test_dvc.py``):
  ``_Pass._outside`` on hand-made warps (the limit -0.5 / edge - 0.5 itself,
  edges 16 and 17, a 48 x 40 x 56 volume, cubes turned 45 degrees and onto
  each body diagonal): kills 11 (``s / 2`` for ``s // 2`` twice, ``s - 2``,
  ``<=`` / ``>=`` on the limits, the limits moved a voxel, ``np.stack``
  without ``axis=-1`` or with ``+1`` / ``-2``, which pair the coordinates of
  different corners); ``max_iterations=1`` (MAX_ITERATIONS everywhere) and
  ``tolerance_voxels=0.5`` (fewer iterations than the default), which
  ``_Pass.run`` dropped; ``shape_function="rigid"`` on a 1 % stretch (no
  stretch in the gradient), which ``_Pass.run`` and ``correlate`` dropped;
  ``correlate_tiled`` (its 25 mutants had no test in these files: rigid
  15-voxel tiles, ``min_cc``, ``mask``, ``progress`` passed through: kills
  24, the 25th drops ``arch``); the refusals by their messages (15 mutants
  of ``correlate`` and ``_volume``); a 0-voxel search accepted (``> 0`` / ``>= 1``); integer
  ``nodes`` and ``iterations`` (``astype(None)``, ``dtype`` dropped); the
  progress of a two-pass run (``2 / len(sizes)``).
- dvc-status, what became of its 179 survivors: 71 killed by the new tests
  and planted (by hand, or by a loop that applies mutmut's own diff to a
  copy and runs the new tests: the lists above, and ``_volume``'s check, ``subvolume_voxels=None`` and the progress fractions ``3 k``,
  ``2 k + 2``, ``_report(None, ...)``); 12 killed by
  ``tests/test_dvc_robust.py`` when planted (``_reject_outliers``: no redo,
  ``flag & tried``, ``!= 0``, ``ok & flag``; ``_outliers``: no gradient (2),
  ``ok[j]`` for ``~ok[j]``, ``np.any(...)`` without ``~``, ``axis=None`` /
  dropped, ``exists | ok[j]``, ``&`` for ``|``; 13 others of its survivors
  tried pass that file); 47 equivalent (below); 49 not equivalent, of which 3 since killed:
  the start heuristics (which nodes get the sparse FFT search, the
  neighbours' median guess, the retry searches: 15 in ``correlate``, 10 in
  ``_sparse_subset``, 11 in ``_neighbour_guess``; on the tests' smooth
  fields every start reaches the same match, and a field that separates them
  needs a jump larger than Gauss-Newton's reach between nodes),
  ``_reject_outliers`` (8: a lone flagged node not redone, a node redone
  every round, the prediction without gradients or from all nodes, the
  rescue search centred on 0), ``_outliers`` (4: node 0 never a neighbour
  is left; the two below are killed) and, killed afterwards by
  ``test_a_lone_success_among_exactly_three_failed_neighbours_is_an_outlier``
  and ``test_boolean_volumes_are_refused`` (each planted by hand and seen to
  fail): ``failed.sum(axis=None)``, ``> MIN_NEIGHBOURS`` and a bool volume
  accepted (``np.issubdtype(None, ...)``), so 46 left. So dvc-status 773/878
  = 88.0 % by its own files, 785/878 = 89.4 % with
  ``tests/test_dvc_robust.py``; without the 47 equivalent (and the
  equivalent timeout): 772/830 = 93.0 %.
  Not measured in this pass: pores' other 387 mutants (``--functions``
  with the rest), and a rerun of dvc-status with the new tests (the 71 are
  planted, not rerun).
- pores (``tests/test_pores_cases.py``): the whole-voxel radius of a pore
  between 40 scattered solid voxels in a 6 x 7 x 9 box against its
  definition by brute force (nearest solid at squared distances 1 .. 5, so
  the integer square root's correction lines matter): kills ``r * 2``,
  ``r ** 3``, ``>=`` and ``d2 - 2`` in the downward correction and
  ``shape[2]`` for ``shape[1]``; a region of two voxels whose largest radius
  only one has: kills ``radii_um[-2]``. So pores 321/362 = 88.7 %, and
  321 of the 322 not equivalent (below) = 99.7 %.
- Not equivalent and left in pores: ``local_radius``'s ridge-ball value
  ``0.5 / (...)`` for ``0.5 * (...)``: on the tests' spheres every voxel
  takes a peak ball's larger value; a case whose radius comes from a ridge
  ball (a throat between two pores) needs a hand-worked answer not written
  yet.

Issue #19, fourth pass: the DVC modules below ``local.py`` (machine: 2 CPU
cores shared with another agent's DEM runs, load 3 to 6, so minutes are
pessimistic; Python 3.11.7, mutmut 3.8.1, numpy 2.4.6, scipy 1.17.1, taichi
1.7.4, hypothesis 6.170.17, pytest 9.2.0, ``--max-children 1``,
``SYNTHCAL_DEM_THREADS=1``; one module at a time)::

    module           file                        mutants  killed  timeouts  survived  other  score   min
    dvc-reference    analysis/dvc/reference.py        86      79         0         6      1  91.9%  11.1  (a)
    dvc-grid         analysis/dvc/grid.py            202     190         0        12      0  94.1%  29.4  (b)
    dvc-interpolate  analysis/dvc/interpolate.py     139     112         1        27      0  80.6%  19.3  (c)
    dvc-consistency  analysis/dvc/consistency.py     203     186         0        17      0  91.6%  33.5  (d)

Before this pass no test file was any of these modules' own: the DVC tests
reach them only through ``correlate``. Written for this pass, each expected
value from a definition evaluated point by point or from a warp known by
construction, never from the module's own arithmetic:
``tests/test_dvc_grid.py`` (every candidate node position tried, every
voxel of a cube looked up by hand, the inside fraction counted voxel by
voxel), ``tests/test_dvc_consistency.py`` (lattice neighbours from a
dictionary of positions and ``math.gcd``, the median test node by node with
``numpy.median``), ``tests/test_dvc_refine.py`` (the reference terms of
``ReferenceTerms``' docstring summed in float64 with clamped fourth-order
differences; IC-GN on an analytic texture sampled at the inverse of a known
translation, affine map or rotation; the iteration budget, the tolerance,
given first values, a flat subvolume; the generators, the composition and
the polar rotation), ``tests/test_dvc_spline.py`` (samples from
``scipy.ndimage.map_coordinates``, an independent cubic spline, summed as
``correlation_sums`` defines) and ``tests/test_dvc_search.py`` (every
integer shift tried with a float64 Pearson correlation, exact large shifts
through the pyramid, binning and box sums by definition). Each runs in
under 2 s. The targets list each module with its own file and the files
that import it by name (a survivor runs all of them: with the three
correlate-level files a minute on these cores).
(a) measured against ``tests/test_dvc.py``, ``tests/test_dvc_robust.py`` and
``tests/test_dvc_status.py`` only, before ``tests/test_dvc_refine.py``.
"other" is one crash (``s * 3`` for ``s ** 3``: the kernel writes past its
arrays, SIGABRT), a kill in effect. Killed since by
``tests/test_dvc_refine.py``, planted by hand: the default arch
``"XXcpuXX"`` / ``"CPU"``, ``grad`` of shape (B, 4, n), the reference not
cast to float32 (``dtype=None`` / dropped). Equivalent: ``stats`` with a
third, unread column. So 84/86 killed (85 with the crash), every mutant
that can change a result.
(b) measured with ``tests/test_dvc_grid.py`` as it was at the start. Killed
since, planted by hand: ``margin_voxels=1`` by default
(``test_node_grid_keeps_no_margin_unless_asked``), the 513-node batch step
of ``inside_fraction`` (its entry 512 was never written; the batch test now
has no zero fraction, so an unwritten 0 shows), ``extract_cubes``' corners
not cast to int64 (whole floats as corners). Equivalent: 8 (below). So
194/202 = 96.0 %, every mutant that can change a result.
(c) measured with ``tests/test_dvc_spline.py``, ``tests/test_dvc_refine.py``
and ``tests/test_dvc.py`` as they were at the start; the one timeout is
``(dummy) or True`` (the kernel then reads a 1 x 1 array as the given
values), which fails ``tests/test_dvc_spline.py`` by assertion when
planted. Killed since, planted by hand: the float64 cast of the warps in
``correlation_sums`` and ``resample`` and the float32 casts of ``fn``,
``grad`` and the given values (``dtype=None`` / dropped, 10; taichi refuses
an array of another dtype than the kernel's: inputs of another dtype now
sample like the kernel's own, to the bit), ``self.shape = None`` (1). So
123/139 = 88.5 %. Equivalent: 10 (below). Not equivalent and left: the GPU
branch of ``device_array`` (``ti.ndarray`` of another type or shape, no
upload; 6), which only ``arch="gpu"`` reaches (``SYNTHCAL_TEST_ARCH=gpu``
with the ``takes_arch`` tests of ``tests/test_dvc.py``; no GPU here). So
123 of the 129 not equivalent = 95.3 %.
(d) partial: stopped for time with 203 of its 264 mutants checked (all of
``median_test``'s 100 and ``_nanmedian``'s 58, 45 of
``lattice_neighbours``' 106), against ``tests/test_dvc_consistency.py``,
``tests/test_dvc_robust.py`` and ``tests/test_dvc_status.py`` as they were
at the start; no timeouts. Killed since, planted by hand: the casts of the
displacement and of ``ok`` dropped (``dtype=None`` / dropped, 4: whole-number
displacements and a 0/1 ``ok`` now give the bool/float answer, r = 10 for a
1-voxel jump), the refusal's message (``"XX..XX"``, ``(n, 3)``: matched in
full now, 2). So 192/203 = 94.6 %; equivalent: 11 (below); every checked
mutant that can change a result is killed. Not checked: 61 of
``lattice_neighbours``' mutants.
Not measured in this pass (time): ``analysis/dvc/gauss_newton.py`` (447
mutants) and ``analysis/dvc/search.py`` (484; measured in the fifth pass,
below); their targets and their own test files
(``tests/test_dvc_refine.py``, ``tests/test_dvc_search.py``) are in place. A few faults planted by hand in ``refine`` and
``nearest_rotation`` fail ``tests/test_dvc_refine.py``: ``it ==
max_iterations - 1``, ``iterations += 2``, ``sums[:, 0] * n``, the cc
clipped at 2 (round-off takes a perfect match just above 1), the
determinant's sign on the first column of ``u``; three pass it: ``<=`` for
``<`` against the tolerance (no update meets it exactly), twice the
identity as the Hessian of flat nodes (they are never iterated) and the
translation generators' reach 2 for 1 (a stricter convergence test: more
iterations, a result within the tolerance; not equivalent, no test yet).

After this pass (the measured kills plus the survivors killed since, each
planted by hand; "not equivalent": the score over the mutants that can
change a result)::

    module           file                         killed / mutants    score   not equivalent
    dvc-reference    analysis/dvc/reference.py     84 / 86 (+1 crash)  97.7 %  85 / 85 with the crash
    dvc-grid         analysis/dvc/grid.py         194 / 202            96.0 %  194 / 194
    dvc-interpolate  analysis/dvc/interpolate.py  129 / 139            92.8 %  129 / 129 (eighth pass, measured)
    dvc-consistency  analysis/dvc/consistency.py  246 / 264            93.2 %  246 / 248 (seventh pass)
    dvc-status       analysis/dvc/local.py        979 / 1032           94.9 %  979 / 980 (eighth pass)
    dvc-gauss-newton analysis/dvc/gauss_newton.py 493 / 518            95.2 %  493 / 495 (sixth pass)
    dvc-search       analysis/dvc/search.py       443 / 484            91.5 %  443 / 446 (eighth pass, measured)

dvc-status, more of its 46 listed survivors killed (planted by hand, each
seen to fail; the mutants' exact text taken from mutmut's mutated file):
``_outliers``' node 0 never a neighbour (``neighbours > 0`` / ``>= 1``, and
``np.maximum(neighbours, 1)``) by
``test_a_success_confirmed_only_by_node_0_is_no_outlier``; in
``_reject_outliers`` the rescue search centred on 0 (its guess ``None`` or
dropped) and a lone flagged node not redone (``len(redo) == 1``) by
``test_an_outlier_is_searched_again_around_what_its_neighbours_expect`` (a
9-voxel wrong match among 26 right ones at a 10-voxel shift: only a search
around the neighbours' expectation reaches the true match). So 5 more:
778/878 = 88.6 % by its own files, 790/878 = 90.0 % with the 12 that
``tests/test_dvc_robust.py`` kills (now one of its files), 41 not
equivalent left (the start heuristics 36; ``_reject_outliers``: a node
redone every round, the prediction without gradients or from all nodes).

Issue #19, fifth pass: ``analysis/dvc/search.py`` (machine: 2 CPU cores
shared with another agent's pore-analysis run, load 4 to 5, so minutes are
pessimistic, 24 GiB; Python 3.11.7, mutmut 3.8.1, numpy 2.4.6, scipy
1.17.1, taichi 1.7.4, pytest 9.2.0, ``--max-children 2``,
``SYNTHCAL_DEM_THREADS=1``), against ``tests/test_dvc_search.py`` and
``tests/test_dvc_robust.py`` as they were at the start::

    module        file                    tool    mutants  killed  timeouts  survived  score   min
    dvc-search    analysis/dvc/search.py  mutmut      484     407         2        77  84.1%  44.8

The 2 timeouts: batches started at every node (``range(0, n, )``: the
overlapping batches hold the same values, far more slowly) and
``range(0, batch)`` (the first ``batch`` starts only). The other 405 kills
were test failures (exit 1). Killed since by new tests in
``tests/test_dvc_search.py``, each planted by hand and seen to fail (the
expected values from the Notes of ``integer_search``, from geometry or
from ZNCC's invariance, not from the module's arithmetic), and the 77 then
applied one by one from mutmut's mutated file against that file:

- ``test_the_pyramid_runs_the_levels_its_rules_give`` (which levels run,
  on which binned volume, with which template edge and radius, for
  s / r = 15 / 6, 15 / 7, 11 / 12, 12 / 12 and 31 / 30, each by the
  Notes' rules; the shift found): the coarse edge ``s // 2 & 1`` /
  ``s // 3 | 1``, ``r >= 6``, ``coarse_s > 7``, the coarse radius
  ``r // 2 + 2`` (5);
- ``test_a_coarse_template_sits_over_the_subvolume_and_inside_the_binned_volume``
  (coarse corners worked out by hand from a binned voxel's centre
  2j + 0.5, including nodes at the low face, past the high face and in a
  binned volume no larger than the template; the coarse range covers
  (guess +- r) / 2): the template centre and corner arithmetic (7), the
  clip of the coarse corner (7) and ``guess // 3`` (15 in all);
- ``test_pyramid_search_far_below_an_odd_guess_stays_within_the_radius``
  (an even radius and an odd guess, whose coarse range reaches
  guess - r - 3: the answer must stay in guess +- r, at its edge nearest
  the true shift): the lower clip of the coarse answer dropped;
- ``test_a_texture_on_large_grey_level_offsets_or_of_low_contrast_is_matched_exactly``
  (two phases +-1e4 apart over a texture of std 0.1, and a texture 1000
  times fainter: ZNCC 1 at the exact copy): the window's mean added, or
  taken over the whole batch (3), and the guard ``den > 1`` (1);
- ``test_a_textureless_deformed_volume_matches_nowhere`` (ZNCC -1 where
  every window is constant): ``np.maximum(var, 1.0)``, ``s2 - 1e-30``,
  the flat value ``None``, ``+1.0``, ``-2.0`` (5);
- ``test_int32_nodes_give_int64_displacements_like_int64_nodes``: the
  nodes' int64 cast dropped (2);
- ``test_bin2_...`` with edges whose even parts differ per axis and a
  float32 result: ``n[2]`` for ``n[1]`` (2), ``astype(None)`` (1);
- and ``w = s - 2 r`` for the batch size (a zero window edge where
  s = 2 r divides by zero).

So 36 of the 77: 443/484 = 91.5 %. Equivalent: 38 (below). Not equivalent
and left (3): the flatness limit ``1e-12 / (s2 + ...)`` and
``1e-12 * (s2 + 1.0)`` (they move the limit only for windows within
rounding of flat; no hand-worked case), and the upper clip of the coarse
answer dropped (``np.clip(2 cd, low, None)``): the coarse range
overshoots guess + r by at most 2, so the +-2 search around it still
reaches guess + r, and only a coarse answer off by more than half a
coarse voxel changes the result. So 443 of the 446 not equivalent =
99.3 %.

``analysis/dvc/gauss_newton.py`` in the same pass and setting, against
``tests/test_dvc_refine.py`` as it was at the start (mutmut now makes 518
mutants of it, not the 447 counted before)::

    module            file                          mutants  killed  timeouts  survived  score   min
    dvc-gauss-newton  analysis/dvc/gauss_newton.py      518     409         0       109  79.0%   7.9

(a first run of only ``nearest_rotation``, ``_compose_inverse`` and
``_basis``: 109 mutants, 101 killed, 8 survived, 1.6 min). By function the
109 survivors are ``refine`` 70, ``reference_terms`` 18, ``_sym_index``
13, ``_compose_inverse`` 7, ``nearest_rotation`` 1. Killed since by
``test_rigid_compose_inverse_is_the_composition_with_the_updates_rotation``
(W o W(dp)^-1 with W(dp)'s 3x3 part the rotation of the polar
decomposition of I + dL, from ``scipy.linalg.polar``, and a start 2 % too
large that must come back a rotation), each of the two ``"rigid"`` tests
of ``_compose_inverse`` planted by hand as ``"XXrigidXX"`` and
``"RIGID"`` and seen to fail: 4. So 413/518 = 79.7 %. Equivalent so far:
4 (below). The other 101 were judged in the sixth pass.

Issue #19, sixth pass: ``analysis/dvc/gauss_newton.py`` again (machine: 2
CPU cores shared with another agent's mutation run, 23 GiB; Python 3.11.7,
mutmut 3.8.1, numpy 2.4.6, scipy 1.17.1, taichi 1.7.4, pytest 9.2.0,
``--max-children 1``, ``SYNTHCAL_DEM_THREADS=1``). Its target now lists
``tests/test_dvc_early_exit.py`` too, which calls ``refine`` with
``outside`` and ``outside_patience`` (directly and through
``refine_nodes``). A run with the two files as they were at the start,
then a rerun with the new tests::

    module            file                          mutants  killed  timeouts  survived  score   min
    dvc-gauss-newton  analysis/dvc/gauss_newton.py      518     455         0        63  87.8%  13.0
    dvc-gauss-newton  analysis/dvc/gauss_newton.py      518     493         0        25  95.2%   6.5  (rerun)

All kills in both runs were test failures (exit 1). The first run's 455
are the fifth pass's 413 and 42 in ``refine``'s handling of ``outside``
(the streak, ``gone``, ``left``, the compaction's arguments) that
``tests/test_dvc_early_exit.py`` kills. Of its 63 survivors 38 are killed
by new tests, each survivor applied from mutmut's own diff to the module,
the two files run and seen to fail, the module restored (expected values
from the docstrings, from ZNSSD's invariance to grey-level changes, or
worked by hand), and killed again by mutmut in the rerun, whose 25
survivors are the 23 equivalent and the 2 left (below):

- ``_sym_index`` (13): ``test_sym_index_points_each_entry_at_its_packed_pair``
  (each entry's place among the written-out upper-triangle pairs; an
  integer index). No other test can see them under mutmut: the module
  calls ``_sym_index`` once at import, before a mutant is switched on (so
  each was put in place of the imported function for that test and seen
  to fail, rather than planted in the file, where most break the import);
- ``reference_terms`` (10): ``fn`` or ``grad`` not float32 for float64
  input (``astype(None)`` of ``f``, of the scale, of the gradient; 3) by
  ``test_reference_terms_are_float32_and_float64_as_documented_whatever_the_input_dtype``;
  the flatness limit (``/ max`` and ``/ sqrt(n)`` for ``*``, the largest
  value over the whole batch, ``max - 1e-30``, which calls an all-zero
  subvolume textured; 4) by
  ``test_flat_means_a_spread_below_a_millionth_of_the_largest_grey_value``
  (8 points at 2^20 +- 1: a spread 9.5e-7 of the largest value, flat;
  +- 2: textured; +- 1 around 0: textured; zeros: flat); the norm summed
  in float32 (``einsum`` without ``dtype``, 2) and ``max + 1.0`` by
  ``test_the_reference_terms_do_not_depend_on_the_grey_level_scale`` (f
  and its gradient times 2^-80 and 2^64, whose squares fall below and
  above float32's range);
- ``refine`` (15): the defaults ``max_iterations=51``
  (``test_the_default_budget_is_50_iterations``) and
  ``outside_patience=1``
  (``test_by_default_a_node_stops_at_its_first_outside_warp``, and
  ``test_the_nodes_left_inside_go_on_when_one_leaves``, which checks at
  ``refine``'s level the compaction around a node that leaves); the
  translation generators' reach 2
  (``test_a_translation_update_moves_every_point_by_its_length``: a first
  update of about 0.45 voxel meets a tolerance of 0.7, not one of 0.3);
  the warps kept in the start's dtype (an int64 start truncated, 2;
  ``test_integer_start_warps_are_refined_to_subvoxel_warps``); float
  ``iterations`` and ``converged`` (4;
  ``test_the_refinement_reports_integer_counts_and_boolean_flags``); the
  given first values used at every iteration (2;
  ``test_given_first_values_serve_the_first_iteration_only``) or dropped
  when another node leaves before the first sampling
  (``test_given_first_values_stay_with_their_node_when_another_leaves_first``);
  sigma floored at 1 instead of 1e-300
  (``test_the_refinement_is_invariant_to_an_affine_change_of_the_deformed_grey_levels``:
  the deformed grey levels times 1e-3 plus 0.25); the cc not clipped at
  -1 (``None``, ``-2.0``;
  ``test_an_inverted_match_has_cc_minus_one_and_never_below``: given the
  negated reference cubes, round-off takes two of the three raw ratios to
  -1 - 7e-11 and -1 - 2e-9).

So 493/518 = 95.2 %. Equivalent: 19 more (23 in all, below). Not
equivalent and left (2), each an equality at a limit that the tests'
values never meet: the flatness test ``fnorm >= limit`` (8 points alternating 1e6 and 1e6 - 2
have a spread of exactly 1e-6 of the largest value, and the float64
products meet exactly: the code calls them flat, the mutant textured),
and ``<=`` for ``<`` against the tolerance (an update
of exactly 0 under a tolerance of 0, as for a reference whose gradient
vanishes wherever its values are off their mean, over an all-zero
deformed volume: the code runs to ``max_iterations``, the mutant stops
converged). ``_FLAT``'s comment and ``refine``'s docstring read as the
mutants did ("below which" flat, "by more than" the tolerance); they now
say the code's side (at or below the limit is flat, every point must move
by less than the tolerance, so 0 is never met). So 493
of the 495 not equivalent = 99.6 %.

Issue #19, seventh pass: the rest of ``analysis/pores.py`` and of
``analysis/dvc/consistency.py`` (machine: 2 CPU cores shared with another
agent's mutation run, load 2.5 to 3, so minutes are pessimistic, 24 GiB;
Python 3.11.7, mutmut 3.8.1, numpy 2.4.6, scipy 1.17.1, taichi 1.7.4,
matplotlib 3.11.2, hypothesis 6.170.17, pytest 9.2.0, ``--max-children
1``, ``SYNTHCAL_DEM_THREADS=1``; one run at a time), against each
target's files as they were at the start::

    module           file                         part                mutants  killed  timeouts  survived  score   min
    dvc-consistency  analysis/dvc/consistency.py  lattice_neighbours      106      95         0        11  89.6%  11.3  (i)
    pores            analysis/pores.py            the rest                387     334         0        53  86.3%  24.4  (ii)
    pores            analysis/pores.py            local_radius, new        33      29         0         4  87.9%   2.9  (iii)

All kills were test failures (exit 1), no timeout.
(i) ``--functions lattice_neighbours``: the whole function (the fourth
pass checked 45 of its mutants), against ``tests/test_dvc_consistency.py``,
``tests/test_dvc_robust.py`` and ``tests/test_dvc_status.py``; its two
refusal-message mutants that the fourth pass killed afterwards are among
the 95. The 11 survivors: 9 equivalent (below) and ``np.argsort(key)``
without ``kind="stable"`` (``kind=None`` / dropped, 2), not equivalent and
left: the keys of distinct positions are distinct, so any sort gives the
same order; only a position listed twice differs (numpy's default sort
then orders the two copies either way, and the neighbour names the one
found first), and the docstring names no answer for that case (a node
lattice has no repeated position), so a test would fix behaviour the
contract leaves open.
(ii) ``--functions _check_mask _check_pore_mask _ball_tables cpsd
cpsd_whole_voxel phase_fractions write_cpsd_csv write_phase_fractions_csv
plot_cpsd``, against ``tests/test_pores.py`` and
``tests/test_pores_cases.py``: every function the third pass left out
(with ``--timeout-min 100``, the script's 30-minute default being too
short for a run this long on shared cores). mutmut gives the
nested ``write`` of the writers and of the plot to the function around
it (a mutant's name is its top-level function), and ``CPSDResult`` and
``PhaseFractions`` have no methods, so these 387 and the third pass's
362 are all 749 mutants of the module as the third pass measured it
(these nine functions have not changed since). By function the 53
survivors are ``plot_cpsd`` 28, ``_ball_tables`` 15, ``phase_fractions``
4, the two writers 4, ``cpsd`` and ``cpsd_whole_voxel`` 1 each.
(iii) ``local_radius`` has changed since the third pass (the partner
pruning of commit 613f552): mutmut now makes 186 mutants of it, not 161,
and 774 of the module. The 8 mutants of the old ``paint_kernel(ridge,
ridge_balls, covered, lt)`` (killed then) became 10 of
``paint_ridge_kernel(..., partner, lt)``, and the lines that build the
ridge's ``index`` and ``partner`` add 23: these 33 (mutmut's
``x_local_radius__mutmut_148`` .. ``170`` and ``174`` .. ``183``) were
run in the kept working copy of (ii) with ``mutmut run`` and their names.
Survivors: ``index.fill(-2)``, the ``arange`` of ball numbers as int64
(``dtype=None`` / dropped): equivalent, below; ``index.fill(+1)``, left
(below).

New tests in ``tests/test_pores_cases.py``, each survivor planted by hand
(mutmut's mutated function copied over the original in a backed-up
``analysis/pores.py``, the test run, the file restored) and seen to fail:

- ``test_the_cpsd_plot_draws_each_steps_curve_and_mean_on_labelled_axes_from_0``
  (the Figure that ``plot_cpsd`` makes, recorded through a subclass: the
  axis labels, y from 0 to 1.02, x from 0, one line per step with its
  radii and fractions, the legend "step (mean 0.46 µm)" from the cube's
  114/125 voxels, the grid at alpha 0.3, a PNG of 5.5 x 4 inches at 120
  dpi = 660 x 480 pixels read from its IHDR): kills 26 of ``plot_cpsd``'s
  28 (the figure's size and dpi, 7; the line's label ``None`` or dropped,
  2; x or y dropped, 2; the axis labels, 6; the limits, 8; the grid's
  alpha);
- ``test_the_taichi_backend_asked_for_is_the_one_the_radius_map_runs_on``
  (the radius maps replaced by the cube's hand-counted radii, recording
  ``arch``): ``arch`` dropped in ``cpsd`` and ``cpsd_whole_voxel`` (2);
- ``test_the_ball_tables_are_their_definition_over_the_lattice``
  (``inner`` and ``covering`` for max_sq = 1, 2, 9, 10, 26 counted point
  by point, for every signed and permuted offset of each class, int32, of
  the docstring's shapes): the grid ``arange(-reach, reach - 1)`` (it
  loses the point 0 when max_sq = 1), ``slot = sq - 1``, tables one row
  longer (2), ``inner.astype(None)`` (5);
- the refusal of labels outside 0..2 now matches the whole legend
  ("0 pore, 1 CBD, 2 NMC"): ``Phase.legend(None)`` (all five phases);
- ``test_every_voxel_between_scattered_grains_reads_at_least_each_lattice_ball_that_holds_it``
  (the one survivor the third pass left): on the scattered-grains
  box every pore voxel must read at least the value (r_in + r_out) / 2 of
  every lattice ball D = {x : |x - c|^2 < d2(c)} that holds it, d2 and
  r_in counted by brute force (the local radius is the value of the
  largest inscribed ball covering the voxel, and these are such balls):
  kills ``local_radius``'s ridge-ball value ``0.5 / (...)``, which
  changes 70 of the box's 338 pore voxels (those that no peak's sub-voxel
  ball gives their value) to 0.5 / (r_in + r_out) or less. A lower bound,
  not the value: the sub-voxel balls of the peaks are not worked out by
  hand.

So (the module as it is now, 774 mutants): the third pass's verdicts on
the 354 mutants that did not change (314 killed with the ridge-ball test,
40 equivalent), 29 + 334 measured here and 34 killed by the new tests:
pores 711/774 = 91.9 %; equivalent 62 (40 + 19 + 3, below); not
equivalent and left: ``index.fill(+1)``, so 711 of the 712 not equivalent
= 99.9 %. Over the 749 mutants of the module as the third pass measured
it: 322 + 368 = 690/749 = 92.1 %, 690 of the 690 not equivalent.
dvc-consistency, all 264 mutants (the fourth pass's 158 of ``median_test``
and ``_nanmedian``: 151 killed, 7 equivalent; ``lattice_neighbours``' 106
here): 246/264 = 93.2 %; equivalent 16 (7 + 9); not equivalent and left:
the 2 ``argsort`` kinds, so 246 of the 248 not equivalent = 99.2 %.
``index.fill(+1)`` in ``local_radius`` is left because of one case: the
partner kernel then reads every voxel next to a ridge ball that is not on
the ridge as ball number 1. With two ridge balls or more that ball
exists, and leaving out a ball's overlap with a ball that outranks it is
exact wherever that ball lies (``paint_ridge_kernel`` takes the overlap
from the partner's own centre and radius): only speed is lost. With a
single ridge voxel ball 1 is past the end of the one-row ball array, and
what the kernel reads there is undefined, so no test can show it.

Issue #19, eighth pass: the three DVC modules whose last figures counted
survivors killed by hand, measured again with their new tests (machine: 2
CPU cores shared by these runs and a pores run, load 2 to 3; Python
3.11.7, mutmut 3.8.1, numpy 2.4.6, scipy 1.17.1, taichi 1.7.4, pytest 9.2.0,
``--max-children 1``, ``SYNTHCAL_DEM_THREADS=1``)::

    module           file                         mutants  killed  timeouts  survived  score   min
    dvc-status       analysis/dvc/local.py           1032     962         1        70  93.2%  49.9
    dvc-interpolate  analysis/dvc/interpolate.py      139     129         0        10  92.8%   6.6
    dvc-search       analysis/dvc/search.py           484     443         2        41  91.5%  32.8

dvc-interpolate: the 10 survivors are the 10 equivalent listed below;
``test_the_upload_branch_holds_the_values_and_samples_like_the_cpu_path``
(``tests/test_dvc_spline.py``) runs ``device_array``'s GPU branch on
taichi's CPU runtime (the module sees "gpu"; a taichi ndarray lives on
either) and killed its 6 (a ``ti.ndarray`` of another type or shape, no
upload, ``from_numpy(None)``, ``None`` returned; each also planted by hand
and seen to fail). dvc-search: the 41 survivors are the fifth pass's 38
equivalent and its 3 left, so the kills it counted by hand are confirmed.
dvc-status: ``local.py`` now makes 1032 mutants (``refine_nodes``,
``correlate_tiled`` and the outside handling came after the third pass);
its target adds ``tests/test_dvc_start.py`` (new) and
``tests/test_dvc_early_exit.py``. ``tests/test_dvc_start.py`` checks the
search strategy ``correlate``'s docstring gives, by wrapping
``integer_search`` and ``_Pass.run`` and recording what is searched and
from where (the expected node sets worked out from the definitions:
blocks counted in a dictionary, neighbours by brute-force distances):
the FFT search on the first node of each block of two node spacings, the
others started from the rounded median of their converged neighbours
within 2.5 spacings (on a jittered lattice where the 26 nearest bind, on
an anisotropic grid, and at exactly 2.5 spacings), failed nodes searched
within +-2 voxels of that median or over the whole range where none
converged, flat nodes not searched again; and ``_reject_outliers`` with
the search and the pass replaced by stand-ins: an outlier that matches
the same false peak again is searched once and flagged, a corner outlier
restarts from its neighbours' first-order predictions and from converged
neighbours only. These killed the third pass's 36 start heuristics and
``_reject_outliers``' 3 (those of the 36 that remain are equivalent,
below). Of the run's 70 survivors, 17 are killed by tests written after
it, each planted by hand from mutmut's text and seen to fail:
``arch`` dropped where a ``SplineVolume`` or ``cube_terms`` is made and
in ``correlate_tiled`` (4; ``test_the_gpu_code_paths_keep_the_arch_they_were_given``:
``correlate``, ``refine_nodes`` and ``correlate_tiled`` on "gpu" with the
CPU runtime, where a call that asks for "cpu" would initialise taichi
again, which the test forbids), the default budgets 51 and tolerance
1.005 (3), ``refine_nodes``' float ``iterations`` (2), its first samples
at the nearest whole voxel (``True`` for ``integer_start``), its ``cc`` or
``iterations`` not returned (2), a later pass that does not run the
converged nodes first (``np.flatnonzero(None)``) or samples them at a
whole voxel (2), the outliers' restart from ``ok | ~flag``, and no
``outside`` test in ``_Pass.run`` (2, killed by
``tests/test_dvc_early_exit.py``). So 979/1032 = 94.9 %; equivalent 52
(below); not equivalent and left: ``res.left & self._outside(...)`` for
``|`` in ``_Pass.run``, which differs only for a node that converges on a
last, sub-tolerance update that carries a corner past the volume's face
(converged nodes leave the loop before the outside test), a case no test
builds. So 979 of the 980 not equivalent = 99.9 %.

Issue #19, ninth pass: ``validation/paper.py`` (the paper's table and the
report's sentence per row), new target ``paper-table`` against the new
``tests/test_paper_table.py``: a stand-in run with three steps, three
edges and DVC fields whose CCs were chosen so that every mean, masked and
flat subvolume and rank is counted by hand, every row and sentence
compared in full (same machine and versions, ``--max-children 2``)::

    module        file                  mutants  killed  timeouts  survived  score   min
    paper-table   validation/paper.py       435     420         0        15  96.6%   1.3
    paper-table   validation/paper.py       435     431         0         4  99.1%   0.3  (cached, survivors re-tested)

Between the two, tests for 11 survivors: a step-0 row or a CC or rank row
without values does not stop the sentences after it (``continue`` ->
``break``, 2), a rank with a CC but no true error is "no ranking" (``or``
-> ``and``), one compressed step gives a mean CC (``len(run.steps) > 2``),
two edges are enough for a rank and one is not (``len(edges) >= 1`` / ``>
2``, 4), the chosen edge unranked where it has no CC or no true error
(``or`` for ``and``, 2), a chosen edge two places down by true error
(``1 - sum``). The second row is the habit in use: ``--cache`` from the
first run's copy, ``--retest-survivors``: 15 mutants in 21 s. Equivalent
(4): the CCs' float cast dropped (2; only their mean is used, which numpy
takes in float64 for any input) and the edges sorted ascending (2; only
their number and membership are read). So 431/435 = 99.1 %, every mutant
that can change a result.

``validation/dvc_files.py`` (other codes' DVC files read, refused, written
and scored), new target ``dvc-files`` against the new
``tests/test_dvc_files.py`` (files typed out by hand, every refusal
matched in full, synthcal's spam TSV written and read back with F = R (I +
G) checked, ``score_file`` with stand-ins for the truth frame and the
scorer)::

    module        file                      mutants  killed  timeouts  survived  score   min
    dvc-files     validation/dvc_files.py       494     471         0        23  95.3%   1.3
    dvc-files     validation/dvc_files.py       494     479         0        15  97.0%   0.6  (cached, survivors re-tested)

Between the two, tests for 8: integer displacements and a 0/1 CC read as
float64 (4), a missing CC as one NaN per node (``(cc is None) and
False``: a 0-d NaN), a long bad line quoted to 60 characters, a TSV
missing ``Zdisp`` named with its path, the truth frame taken of the run
given. Equivalent (14): the path or ``required=None`` passed for an
optional column (10; the path only names a missing required one, None is
as false as False), ``encoding="UTF-8"`` (the same codec), the upper-case
``einsum``, the spam TSV's number format dropped or ``%.17G`` (2; both
write every double so that it reads back to the same value). Left (1):
``encoding=None``, the locale's encoding, which is UTF-8 on this machine
(no test here can see it; on a machine with another locale a non-ASCII
comment line would read differently). So 479/494 = 97.0 %, 479 of the 480
not equivalent.

``validation/run.py``, new target ``score-run`` against the new
``tests/test_score_parts.py`` (the parts that compute a score, on
stand-ins: ``truth_pores``' field of view, region and pore definition on a
label volume counted by hand, ``_pore_scores``, ``finite``, ``_half``,
``subvolume_study``'s means, ``best_fit`` from an exact shift with the
chain's shape function, ``min_cc`` and backend)::

    module        file                 mutants  killed  timeouts  survived  score   min
    score-run     validation/run.py        494     192         0       302  38.9%   3.5
    score-run     validation/run.py        494     196         0       298  39.7%   3.0  (cached, survivors re-tested)

Of the 298 survivors 294 are in ``score_run``, ``_score_mode`` and
``_score_step``, which put these parts together on a run folder: only
``tests/test_validation.py`` reaches them, through a whole pipeline run
(``tiny_run``) per mutant, so they are not measured; every mutant of the
parts above is killed but 4 of ``best_fit``, equivalent: ``valid=fit.ok``
dropped (2; ``refine_nodes`` returns NaN displacements where not ok, which
``vector_error_stats`` leaves out anyway), the mean over no started node
taken anyway (``or True``: numpy's mean of nothing is NaN too) and
``float("NAN")``. Not covered by any target: the presentation modules
``validation/report.py`` and ``validation/figures.py``.

Issue #19, tenth pass: ``validation/run.py``'s orchestration (``score_run``,
``_score_mode``, ``_score_step``), which the ninth pass left to the pipeline
tests, target ``score-run`` now against ``tests/test_score_parts.py`` and the
new ``tests/test_score_run.py`` (machine: 2 CPU cores shared with other
runs, load 2 to 3.5, 23 GiB; Python 3.11.7, mutmut 3.8.1, numpy 2.4.6,
pytest 9.2.0, ``--max-children 1``, ``SYNTHCAL_DEM_THREADS=1``)::

    module        file                 mutants  killed  timeouts  survived  score   min
    score-run     validation/run.py        494     487         0         7  98.6%   3.6  (cached, survivors re-tested)
    score-run     validation/run.py        494     488         0         6  98.8%   3.3  (fresh)

``tests/test_score_run.py`` runs ``score_run`` on a stand-in run of three
scans, alone and with a compared run in the other mode, with ``truth_frame``,
``score_dvc``, ``best_fit``, ``total_displacement``, ``strain_fields``,
``tensor_rms_error``, ``truth_pores``, ``subvolume_study`` and
``paper_rows`` replaced by recorders that return values tagged with the
mode and step they were given. It compares every key of ``scores.json``
and of the node truth in full (NaN as None), each collaborator's
arguments (step k's field, registration, nodes and processed volume, the
processed reference read once, the usable nodes: ok and a truth finite in
all three components), the progress (k / n_steps alone, (0 + f) / 2 and
(1 + f) / 2 with both modes), the subvolume choice on studies whose NaN
mean CC or NaN error comes first (where max and min would keep it) or
whose CCs are all negative, no choice without a study, and the paper's
tables per mode with their folders. Expected values are typed from the
stand-ins. Between the two runs the stand-in summaries name the pore
phases per mode (the paper's binarisation counts the CBD as pore), which
kills the reference's ``truth_pores`` without ``_pore_phases``. 19 faults
planted by hand (swapped keys, step k - 1's registration or volume, no
finite check in ``usable``, ``np.any``, the strain on all nodes, wrong
progress fractions, max <-> min, the NaN guards dropped, step k - 1's node
truth names, the folder not relative, one mode's scores for both tables,
``finite`` not applied, the pore phases dropped, step 1's summary for the
reference) each fail it. Of the 294 mutants of the three functions 292
are killed; the 6 survivors of the module are ``best_fit``'s 4 listed in
the ninth pass and 2 in ``_score_mode`` (below), all equivalent. So
488/494 = 98.8 %, every mutant that can change a result.

Issue #19, eleventh pass: the 11 survivors the earlier passes left as not
equivalent, each now killed by a test; each mutant was planted by hand
(the exact text mutmut printed) and the test seen to fail, then the
source restored:

- gauss-newton (2): ``test_a_spread_exactly_at_the_flatness_limit_is_flat``
  (8 points alternating 1e6 and 1e6 - 2, spread exactly at the limit in
  float64, asserted first: flat; ``fnorm >= limit`` calls them textured)
  and ``test_an_update_of_exactly_zero_does_not_meet_a_tolerance_of_zero``
  (all-zero deformed volume, reference gradient zero off its mean,
  tolerance 0: every update is exactly 0, the code runs to
  ``max_iterations``, ``<=`` stops converged). So 495/518 = 95.6 %.
- dvc-consistency (2): ``np.argsort(key)`` without ``kind="stable"``.
  ``correlate`` takes the nodes it is given, duplicates included, so
  ``lattice_neighbours``' docstring now names the answer the stable sort
  gives (a position listed twice is one site, named by its first listing)
  and ``test_a_position_listed_twice_is_named_by_its_first_listing`` checks
  it on a 4^3 lattice listed twice in two orders. numpy's default sort does
  not keep equal keys in order there (numpy 2.4.6 here); on a machine where
  it happened to, the test would still pass on the code but not see the
  mutant. So 248/264 = 93.9 %.
- dvc-search (3): the flatness limit ``1e-12 / (s2 + ...)`` and
  ``1e-12 * (s2 + 1.0)`` by ``test_the_search_does_not_depend_on_the_grey_level_scale``
  (both volumes times 2^-40, exact in float32: ZNCC is scale-free, but s2
  ~ 1e-21 makes both mutants' limits absolute and every window flat); the
  upper clip of the coarse answer dropped by
  ``test_a_coarse_match_past_the_radius_still_leads_to_the_best_shift_inside_it``
  (a z-alternating pattern that binning averages away: the binned level
  finds the smooth part at 10 > r = 8, the best shift in the cube by
  brute-force Pearson is 7; without the clip only 8 is searched). So
  446/484 = 92.1 %.
- dvc-status (1): ``res.left & self._outside(...)`` for ``|`` in
  ``_Pass.run`` by ``test_a_node_that_converges_on_an_update_past_the_face_is_outside``
  (tolerance 1e9: a node started 0.3 voxel short converges on its first
  update, which carries its corner from 47.4 to about 47.7, past the face
  at 47.5: OUTSIDE; the mutant says CONVERGED). So 980/1032 = 95.0 %.
- pores (1): ``index.fill(+1)`` in ``local_radius`` by
  ``test_a_pore_whose_ridge_is_one_voxel_reads_its_balls_value_and_nothing_outside_the_arrays``:
  the digital ball |x|^2 <= 4 (one ridge voxel) in a new process with
  taichi's bound checks on (``TI_DEBUG=1``); every pore voxel reads
  (2 + sqrt 5) / 2; the mutant reads ball 1 past the one-row array and the
  checks stop it ("Out of bound access" in ``partner_kernel``; without them
  it gave the same bytes). So 712/774 = 92.0 %.
- dvc-files (1): ``encoding=None`` by
  ``test_a_utf8_file_reads_the_same_under_a_locale_whose_encoding_is_not_utf8``
  (a new process with ``LC_ALL=C``, ``PYTHONUTF8=0``,
  ``PYTHONCOERCECLOCALE=0``, whose locale encoding is ASCII, reads a UTF-8
  comment line; where that locale is UTF-8 it still runs but cannot see
  the mutant). The
  module docstring now says text files are read as UTF-8. So 480/494 =
  97.2 %.
- reconstruct (1): the width of the cylinder padding's fit bands is now
  documented (``_cylinder_padding``: means over b = min(8, n // 8) columns,
  at least 1) and checked by
  ``test_cylinder_padding_fits_the_mean_of_the_outermost_band_of_columns``
  (n = 12, 48, 56, 96; the outer columns alternate 0.375 +- 0.125 so they
  average 0.375 only over exactly b, the rest 0.5: the extension is the
  chord of edge / centre = 0.75); ``min(9, ...)``, ``min(7, ...)``,
  ``n // 9`` and ``max(2, ...)`` planted.

A sample of 20 (below) then showed that the first reconstruct run's
survivors, "judged by kind", hid 3 of ``reconstruct`` itself (the method
switch ``method != "fbp"``, the default method, the line integrals
dropped from the FBP call): no test of the module called it (mutmut
reports such a mutant "no tests"). ``test_reconstruct_turns_counts_into_mu_with_either_method``,
``test_reconstruct_runs_the_method_named_with_its_own_settings`` and
``test_reconstruct_refuses_an_unknown_method`` now test it on the raw
counts of a disk (each method recovers mu; SIRT with no iteration stays
at its zero start; the filter, the padding of a disk wider than the field
of view and the progress reach FBP); the method switch, the default
method, the filter, the padding, the iterations and either progress
dropped were planted and fail them.

Issue #19, twelfth pass: reconstruct's survivors one by one (the earlier
pass judged them by kind). A measured run after the eleventh pass's tests
(machine: 2 CPU cores, load about 2; Python 3.11.7, mutmut 3.8.1, numpy
2.4.6, ``--max-children 2``, ``SYNTHCAL_DEM_THREADS=1``)::

    module        file                     mutants  killed  timeouts  survived  score   min
    reconstruct   analysis/reconstruct.py      648     609         0        39  94.0%   4.0

(648 mutants: the module grew since the first run's 604.) Of the 39, the 2
defaults of ``reconstruct`` (``padding=False``, ``iterations=51``) are
killed by ``test_reconstruct_defaults_are_padded_fbp_and_50_sirt_iterations``;
of the other 37, 14 are now killed, each planted by hand and seen to fail:
``np.argsort`` without ``kind="stable"`` (2) by
``test_angular_weights_of_a_direction_listed_twice_give_the_gap_below_to_the_first_listing``
(a 360 degree scan; the docstring now says a direction's first listing
takes half the gap below, its last half the gap above; numpy 2.4.6 here
reorders equal values); ``gaps >= 1e-9`` by
``test_angular_weights_a_gap_of_exactly_1e_9_degree_is_a_repeated_angle_not_a_spacing``
(now documented); the ``u_edge`` floor 1.5 by
``test_cylinder_padding_of_three_columns_puts_the_edge_at_u_1`` (n = 3 is
allowed); the ratio's lower clip dropped by the case edge = -centre in
``test_cylinder_padding_is_zero_where_no_cylinder_fits`` (ratio -1: NaN);
``row_sums > 1.000001`` and ``np.maximum(row_sums, 1.000001)`` by
``test_sirt_rays_between_voxel_rows_weigh_half_a_voxel_per_column``
(row sums 1, 2, 1, exact answer); the fill values 1.0 for rows and columns
by ``test_sirt_ignores_a_ray_that_only_grazes_a_corner_of_the_grid`` and
``test_sirt_leaves_a_voxel_that_rays_only_graze_at_its_start`` (5e-5
degree: sums of about 4e-7; the 1e-6 guard is now in ``sirt``'s
docstring); ``arch`` dropped in ``fbp``, ``sirt`` (2) and ``reconstruct``
(2) by ``test_fbp_sirt_and_reconstruct_keep_the_arch_they_were_given``
(``pretend_gpu``: a call that falls back to "cpu" initialises taichi
again, which the fixture forbids). So 609 + 2 + 14 = 625/648 = 96.5 %.
Equivalent (18): ``kind="STABLE"`` (numpy reads the kind by its first
letter, either case); ``positive.size or True`` and ``180.0 -> 181.0``
(the gaps add up to 180, so one is at least 180/n > 1e-9: never empty);
``rows.shape[+1]`` and ``mean(axis=+1)`` (3) on rows that are always 2-D;
``(n + band) % 2`` (the parity of ``(n - band) % 2``); the chord
denominator floored at 1.000000000001 (it matters only below 1, where the
numerator is at most that minus 2 < 0: clipped to 0 either way); the
``rfft`` / ``irfft`` axis dropped or +1 (4, 2-D rows); float64 ones for
the row and column sums (4, copied into float32 by the projector, exact);
``inv_rows.astype(None)`` (already float32 values; a float32 product is
exact in float64 and rounds once to the same float32).
Not killed (5), none able to change a result by more than float32
rounding or at any sum but one: the ``w_sorted`` factor 1.5 (the weights
are scaled to sum to pi afterwards; the last bit can differ), the float64
filter response and the float64 ``inv_cols`` (one rounding instead of
two: the mutants are the more accurate, so no honest expected value
rejects them), and ``>= 1e-6`` for the row and column sums (they differ
only for a sum of exactly float32(1e-6); the sums are the float32 step
times sums of multiples of 2^-24, and a case found by search would test
the kernel's rounding, not the contract).

Issue #19, thirteenth pass: the DVC's stall exit (issue #14: a node whose
CC is still below ``stall_cc`` after ``stall_iterations`` Gauss-Newton
iterations stops there, not converged), new lines in ``refine`` and
``_Pass.run``. ``refine``'s mutants measured again (``--functions refine``,
fresh copy, 2 cores, load about 2, ``--max-children 2``)::

    module            file                          part    mutants  killed  timeouts  survived  score   min
    dvc-gauss-newton  analysis/dvc/gauss_newton.py  refine      301     277         0        24  92.0%   3.1
    dvc-gauss-newton  analysis/dvc/gauss_newton.py  refine      301     289         0        12  96.0%   2.8  (+)

(+) after ``test_after_a_stall_the_nodes_left_in_the_batch_iterate_on_as_if_alone``
(a node that never converges, tolerance 0, shares its batch with one that
stalls at iteration 10 and must reach the limit with the CC and iterations
it has alone): it kills the 10 mutants that pass None for a working array
when the stalled nodes are compacted away and the 2 that break the loop
while nodes are left (``!= 0``, ``== 1``). The 12 survivors are the 11
equivalents of ``refine`` listed below (sixth pass) and ``g_a`` dropped
when stalled nodes are compacted (``g_a`` is read only at iteration 0,
before any stall test). In ``tests/test_dvc_early_exit.py`` the stall
tests were also planted by hand: the test at every iteration from
``stall_iterations`` on (``>=``), ``<=`` for ``<``, the default
``stall_cc`` 1.3, the compaction skipped, and in ``local.py`` the
constants 11 and 1.3 and ``stall_iterations`` not passed: each fails them
(``stall_cc`` not passed from ``local.py`` is equivalent: it equals
``refine``'s default 0.3). The scripted stand-in volume
(``_ScriptedCC``, a CC per look) is what makes "once, at that iteration"
testable: real Gauss-Newton raised the CC at every step on every case
tried.

Issue #19, fourteenth pass: the sampled check, every module with
``--sample 20`` (machine: 2 CPU cores, load about 1.5 with light test
runs beside it, 24 GiB; Python 3.11.7, mutmut 3.8.1, cosmic-ray 8.7.0,
``--max-children 2``, ``SYNTHCAL_DEM_THREADS=1``). Seed 1, after the
eleventh and twelfth passes, 27.4 min wall for all 17 modules (a first
run with seed 0, beside two helpers' test runs, took 21.9 min)::

    module            file                          mutants  killed  survived  score   min  sample of  95 % interval
    score             validation/score.py                20      19         1  95.0%   0.3        284  77-99%
    frame             validation/frame.py                20      17         3  85.0%   0.6        518  64-95%  (*)
    paper-table       validation/paper.py                20      19         1  95.0%   0.4        435  77-99%
    dvc-files         validation/dvc_files.py            20      20         0 100.0%   0.4        494  84-100%
    score-run         validation/run.py                  20      20         0 100.0%   0.5        494  84-100%
    dvc-status        analysis/dvc/local.py              20      17         3  85.0%   6.8       1036  64-95%
    dvc-reference     analysis/dvc/reference.py          20      20         0 100.0%   4.3         86  87-100%
    dvc-interpolate   analysis/dvc/interpolate.py        20      19         1  95.0%   1.8        139  78-99%
    dvc-grid          analysis/dvc/grid.py               20      20         0 100.0%   4.1        202  85-100%
    dvc-consistency   analysis/dvc/consistency.py        20      18         2  90.0%   1.2        264  71-97%
    dvc-gauss-newton  analysis/dvc/gauss_newton.py       20      20         0 100.0%   0.5        553  84-100%
    dvc-search        analysis/dvc/search.py             20      19         1  95.0%   1.0        484  77-99%
    strain            analysis/strain.py                 20      20         0 100.0%   0.4        366  85-100%
    pores             analysis/pores.py                  20      20         0 100.0%   1.1        774  84-100%
    reconstruct       analysis/reconstruct.py            20      20         0 100.0%   0.5        648  84-100%
    dem-material      synthcal/dem/material.py           20      19         1  95.0%   1.0        197  78-99%
    contact-law       synthcal/dem/kernels.py            20      19         1  95.0%   2.6         65  80-99%

Of the 14 survivors, 12 are equivalents listed below (``dtype=`` of a
float64 ``asarray`` dropped in ``error_by_cc`` and of the drift; the
edges sorted ascending; ``exact_first`` not passed, ``start`` as given,
``cube_edge`` not passed in ``_Pass.run``; the spline filter's output
dtype; ``nodes.min(axis=None)`` and ``count >= 0``; ``workers`` None;
``restitution >= 2``; ``mur > -1.0``). (*) The other 2 were not:
``score_dvc``'s split between nodes with and without fragments (the
``"with"`` key and its ``"nodes"`` count), added with the fracture model
after the frame's measured run (463 mutants then, 518 now) and reached by
no test of the target. ``test_score_dvc_splits_error_and_cc_between_nodes_with_and_without_fragments``
now checks it on the hand-made field (n0, n2 and n3 hold fragments: the
error of the ok nodes with a truth on each side, the CC of the correlated
nodes, the node count of each side, no mean CC for an empty side); the
key renamed, the node count renamed, ``valid=ok`` without the side,
the CC of all correlated nodes, ``fragments`` for ``~fragments`` and the
edge + 1 passed to ``fragment_nodes`` were planted and fail it. The first
sample (seed 0) drew the untested ``reconstruct()`` wrapper (eleventh
pass). Frame and gauss-newton measured in full afterwards: fifteenth pass.

Issue #19, fifteenth pass: frame and gauss-newton measured in full after
the fourteenth pass (machine: 2 CPU cores, load about 2, ``--max-children
2``)::

    module            file                          mutants  killed  timeouts  survived  score   min
    frame             validation/frame.py               518     493         0        25  95.2%   1.6
    dvc-gauss-newton  analysis/dvc/gauss_newton.py      553     530         0        23  95.8%   4.8

gauss-newton (553 mutants with the stall exit): the 23 survivors are the
22 equivalents listed below and the stall compaction's ``g_a``
(thirteenth pass). frame (518 mutants since the fracture model): besides
the 16 equivalents listed below, 9 survivors of the fracture lines.
Killed since by hand-planted tests: ``fragment_nodes`` given None for the
reference poses, ``>= 0`` and ``> 1`` for ``> 0`` (3), by
``test_fragment_nodes_are_the_nodes_whose_box_holds_a_voxel_of_a_cracked_particle``
(A cracked in two at step 1, as the DEM records it: A's index kept by one
fragment, the other appended; the node on A, the node on the whole B, a
node in empty space, and a 3-voxel box that holds exactly one of A's
voxels and some of B's: True, False, False, True); ``truth_frame``
dropping each step's pieces (2), by the run stand-in given pieces. So
498/518 = 96.1 %. Equivalent (4): ``self.poses[1]`` for the reference
poses (the DEM keeps a cracked particle's index for one fragment and
appends the others, so the first root ids of every step are 0 .. N0 - 1,
the step-0 particles' own: the same lookup), and in the fragment split
the mean CC taken when no node of the side correlated (``or True``,
``(correlated | where).any()``: numpy's mean of nothing is NaN too) and
``float("NAN")``.

Issue #19, sixteenth pass: dvc-status (``analysis/dvc/local.py``) measured
in full with the stall exit, into the cache (``--cache .mutation-cache``,
built fresh; 2 CPU cores, load about 2, ``--max-children 2``)::

    module        file                     mutants  killed  timeouts  survived  score   min
    dvc-status    analysis/dvc/local.py       1036     983         1        53  94.9%  27.7

The 4 new mutants are in ``_Pass.run``'s call of ``refine``:
``stall_iterations`` None or dropped and ``stall_cc=None`` are killed; the
53 survivors are the 52 equivalents listed below and ``stall_cc`` not
passed (``refine``'s default is the same 0.3). So 983/1036 = 94.9 %
measured, every mutant that can change a result.

Issue #19, seventeenth pass (3 Dec 2026): the three DVC modules rewritten
so the DVC runs on both cores (issue #14: taichi kernels over (node,
z-row), the search's batches on threads), measured fresh into the cache
(2 CPU cores, a pytest run beside it)::

    module            file                        mutants  killed  survived  other   score    min
    dvc-reference     analysis/dvc/reference.py       143     132        10      1   92.3%    6.5
    dvc-interpolate   analysis/dvc/interpolate.py     156     142        14      0   91.0%   11.5
    dvc-search        analysis/dvc/search.py          502     476        26      0   94.8%   13.8

dvc-reference: 8 of the 10 survivors killed by tests written for them,
each planted by hand and seen to fail (``tests/test_dvc_refine.py``): the
empty result's ``sd_fn`` shape and ``textured`` dtype (3); the flatness rule
on each cube's own largest value (two cubes, the limit raised to 0.1 and
0.08 by hand: the rows' maxima averaged, the batch's maximum, ``/ big``),
exactly at the limit (``>=``), on a cube of zeros (``big - 1e-30``), and
a flat cube's terms zero (the scale 1 for flat cubes): 140/143 = 97.9 %,
the other 2 equivalent (below) and 1 suspicious (a timeout). dvc-search:
3 of the 26 killed the same way (``tests/test_dvc_search.py``): the
default ``workers`` (-1 read as -2, or never) must use as many threads as
CPUs the process may use, and two batches run on two threads
(``len(parts) > 2``): 479/502 = 95.4 %. dvc-interpolate: all 14
survivors equivalent, 142/156 = 91.0 %. ``local.py``'s functions are
unchanged but for the default tolerance, now ``TOLERANCE_VOXELS`` (0.02),
which ``test_the_default_tolerance_stops_after_an_update_below_0_02_voxel_and_not_above``
pins from both sides.

Eighteenth pass (3 Dec 2026, issue #14's first-order starts): the cube
kernel split into runs of y-lines (``_ROW_PARTS``), measured from the
cache; ``consistency.py``'s new ``neighbour_prediction`` and the helpers
it now shares with ``median_test`` (``_checked``, ``_predictions``),
measured fresh with ``--functions neighbour_prediction _predictions
_checked median_test`` (2 CPU cores, quiet)::

    module            file                        mutants  killed  survived  other   score    min
    dvc-interpolate   analysis/dvc/interpolate.py     157     143        14      0   91.1%    5.0
    dvc-consistency   analysis/dvc/consistency.py     197     188         9      0   95.4%    4.2

dvc-interpolate: the same 14 equivalent survivors as the seventeenth
pass (below). dvc-consistency: 1 of the 9 killed by a test written for it
and planted by hand (``j = np.where(None, nb, 0)`` took node 0's gradient
for every neighbour; ``test_neighbour_prediction_takes_each_neighbours_own_gradient``):
189/197 = 95.9 %; the other 8 equivalent: the error message of a missing
gradient with ``XX`` around it or in lower case (2; it still names
``gradient``), ``neighbours`` not passed on (recomputed, the same table;
1), ``gradient`` and ``nodes`` cast with ``dtype=None`` or without a
dtype (float64 either way for the float arrays ``correlate`` passes, and
``astype(None)`` is float64; 3), the einsum's subscripts in capitals (the
same labels; 1), ``pred[~use] = None`` (stored as NaN; 1).

Nineteenth pass (4 Dec 2026, issue #14's gaussian window and plain CC):
the four modules it changed, from the cache (``--cache``; 2 CPU cores,
quiet), with ``tests/test_dvc_window.py`` added to their targets::

    module            file                        mutants  killed  survived  other   score    min
    dvc-grid          analysis/dvc/grid.py            233     223        10      0   95.7%    5.1
    dvc-interpolate   analysis/dvc/interpolate.py     165     151        14      0   91.5%    2.9
    dvc-gauss-newton  analysis/dvc/gauss_newton.py    652     614        38      0   94.2%    6.4
    dvc-reference     analysis/dvc/reference.py       156     153         2      1   98.1%    3.3

(mutmut does not mutate the taichi kernels; their new sums were checked by
28 bugs planted by hand, each failing a test.) dvc-grid: the 8 survivors
listed below, plus ``subvolume_window``'s ``astype(None)`` on the squared
offsets (float64 either way) and on the weights (float64 weights, cast
to float32 by every caller; now killed by a dtype assertion, planted by
hand): 224/233 = 96.1 %. dvc-interpolate: the same 14 equivalent
survivors as the seventeenth pass. dvc-reference: the 2 listed below.
dvc-gauss-newton, 38: 4 killed since, each planted by hand (``_window``'s
``and`` for ``or``, ``>= 0`` and ``ValueError(None)`` by
``tests/test_dvc_spline.py``'s refusal test, outside this module's
targets; the plain CC's spread floor 1.0 instead of 1e-300 by
``test_the_plain_correlation_does_not_depend_on_the_grey_level_scale``):
618/652 = 94.8 %. The other 34 are equivalent: ``dtype=None`` or a
missing dtype (15: float64 either way, float32 casts made again by the
callee, or float32 sums of float32 weights and values whose rounding no
test can see: ``total``, ``fn_mean``, ``fn_spread``), einsum labels in
capitals (4), the flat nodes' stand-in norm 2.0 (discarded by the outer
``where``), the plain CC's clip at -2 / 2 / None (it only removes
round-off; 4), ``fn_spread``'s floor 1.0 (never reached: with weights <=
1, as ``subvolume_window`` makes them, the unweighted spread of fn is at
least its weighted norm, 1), ``cube_edge`` not passed (the general
kernel gives the same sums), and 8 of the kinds listed below (the flat
Hessian ``None``, the loop bound ``+ 2``, ``g_a`` dropped at a
compaction (2), ``_compose_inverse`` (3) and ``nearest_rotation`` (1)).

Survivors judged equivalent (no result can change):

- score-run, 6: ``best_fit``'s 4 (ninth pass: ``valid=fit.ok`` dropped or
  None, ``or True``, ``float("NAN")``) and in ``_score_mode`` the NaN
  stand-in -2 -> -3 for the highest mean CC (a mean CC lies in [-1, 1], so
  any value below -1 ranks a NaN last) and 1e9 -> 1000000001.0 for the
  lowest error (only an error between 10^9 and 10^9 + 1 voxels would rank
  differently).
- score, all 16: ``float("nan")`` -> ``float("NAN")`` (6, the same value);
  ``dtype=np.float64`` dropped from one ``np.asarray`` of a pair (10): the
  other operand is float64, so the arithmetic is float64 anyway (the test
  ``test_float32_inputs_are_scored_in_double_precision`` kills the cases that
  matter).
- reconstruct (from the survivors of the earlier run, before
  ``tests/test_reconstruct_cases.py``): ``axis=+1`` for ``axis=-1`` on 2-D
  rows; ``rfft``/``irfft`` axis defaults; ``arch`` dropped (CPU only here);
  ``np.argsort(kind=...)`` (order among exactly coinciding rays only; the
  weight per direction is unchanged); ``>=`` for ``>`` against 1e-6 / 1e-9
  thresholds that no sum hits; the scale factor of ``w_sorted`` (normalised
  to pi afterwards); ``180.0 -> 181.0`` for an empty gap list (never empty);
  the padding split ``left`` with zero padding (circular convolution is
  shift-invariant); float64 intermediates that change only the last bits.
  Not equivalent and left: the width of the fit bands of the cylinder
  padding (8 columns, an implementation choice no requirement fixes).
- contact-law: ``h = -(ft - gt vt)/kt`` (while sliding the next step
  rescales the force to the Coulomb limit, and at sticking vt is 0);
  ``mur > -1.0`` / ``mur >= 0.0`` (with mu_r = 0 the torque is 0 either way).
- frame, 16: ``dtype=float`` dropped from ``np.asarray`` of the origin, the
  drift, the nodes or the points (10; every use adds or divides by a float
  first); ``reshape(-2, 3)`` (numpy reads any negative size as "the rest");
  ``int(edge_voxels or 2)`` (the edge only sizes the solid mean, which the
  particle rule without an edge throws away, and the mean rule refuses a
  missing edge); ``median_cc``/``mean_cc`` computed when no node correlated
  (numpy's median and mean of nothing are NaN too) and ``float("NAN")`` (4).
- strain, 9: ``dtype=np.float64`` dropped for the displacements (2; they are
  only selected, never computed on, before float64 arithmetic);
  ``query(k=3)`` for the nearest other node (column 1 either way); the index
  and value filled in for a neighbour left out (``jj`` 1 for 0, ``b`` 1.0 for
  0.0: its row of the design matrix is all zeros); ``astype(None)`` (float64
  is numpy's default); ``count`` floored at 2 instead of 1 (below 7
  neighbours a node is NaN anyway); ``einsum("NII->N")`` (the same
  subscripts, upper case); ``det >= 1e-6`` (no set hits 1e-6 exactly).
- dem-material, 2: ``restitution > 1`` / ``>= 2`` for ``>= 1`` (at e = 1 the
  formula gives alpha = -0.0, which equals 0).
- dvc-status, the eighth pass's 52 (by mutmut's names, ``x_`` dropped):
  the ``integer_start`` ones (``None`` for ``False`` in ``correlate`` 124,
  ``refine_nodes`` 88; ``None`` / ``False`` for ``True`` in ``correlate``
  156, 172, 204, 221, 279, 295 and ``_reject_outliers`` 72, 88: the
  first iteration then samples the spline at a whole-voxel start, where it
  equals the voxels to float32 rounding; 10); ``exact_first`` or
  ``cube_edge`` not passed in ``_Pass.run`` (37, 52, 53, 63, 64: the
  spline at whole voxels, the general sampler; 5); ``outside_patience``
  dropped (66: ``refine``'s default is 0, the same); the second nearest
  for the node spacing (``query(k=3)``, column 1 is still the nearest
  other node; ``_sparse_subset`` 11, ``_neighbour_guess`` 42);
  ``astype(None)`` or ``dtype`` dropped where numpy infers the same type
  or a later cast makes it (``_sparse_subset`` 15, ``_reject_outliers``
  68, ``correlate`` 37, 40, 44, 46, 261, ``refine_nodes`` 19, 21, 45, 48,
  ``_Pass.run`` 32, ``_volume`` 14, 15, 17, 18; 16); ``neighbours`` not
  passed to ``median_test`` (``_outliers`` 6, 11, ``_reject_outliers``
  33, 38); ``None`` for ``np.nan`` (``_result`` 9, 11); warps started as
  ``None`` (NaN) for the identity (``correlate`` 78, 82, ``refine_nodes``
  29, 33: every node read is run first, or not ok and NaN anyway); column 1
  for column 0 of a guess (``correlate`` 201, 260); equalities with float
  thresholds no value meets (``_judge`` 4, ``_outliers`` 50); in
  ``_outside`` the ``xy`` meshgrid, ``reshape(-2, 3)`` and the upper-case
  ``einsum`` (3); ``reshape(len(sel), -2)`` in ``_Pass.run`` (43).
- dvc-status, 47 of the third pass's survivors: ``arch`` dropped (CPU only here;
  3; not equivalent after all: killed in the eighth pass); ``astype(None)`` / ``dtype`` dropped where the value is cast again or
  numpy infers the same type (``status``, a bool ``mask``, the corners for
  ``extract_cubes``, the guesses for ``integer_search``, the floored sparse
  cells; 8); ``integer_start`` ``None`` / ``False`` for ``True`` (or ``None``
  for ``False``), or ``exact_first`` not passed: the first Gauss-Newton
  iteration then samples the spline at an integer shift, where the
  interpolating spline equals the voxels up to float32 rounding (12);
  ``cube_edge`` dropped (the general sampler, same values; 2);
  ``reshape(-2, ...)`` (2); ``np.meshgrid`` with ``xy`` indexing (the same 8
  corners in another order); ``einsum`` subscripts in upper case;
  ``neighbours`` not passed to ``median_test`` (it computes the same lattice
  neighbours itself; 4); ``warps`` started as NaN for the identity (every
  live node is run before its warp is read; 2); ``None`` for ``np.nan`` in
  the displacement and gradient (numpy stores None as NaN in a float array;
  2); ``seeded = ok | live`` (those runs are all run again, since ``ok`` is
  not updated in between); column 1 for column 0 of the neighbour guess (a
  guess is NaN in all three or in none; 2); equality with a float threshold
  no value meets (``cc <= min_cc``, ``residual >= THRESHOLD``,
  ``dist < 2.5 spacing``: lattice distances are 1, 1.41, 1.73, 2, 2.24, 2.45,
  2.83 .. spacings; 3); the volume's float64 or copied working copy
  (``astype(None)``, ``copy=None`` / ``True`` / dropped; 4). And the one
  timeout: ``range(0, n, )`` for batches of ``_BATCH_NODES`` refines every
  node once per overlapping batch, to the same result, far more slowly.
- pores, 40: ``astype(None)`` or ``dtype`` dropped where the values are small
  whole numbers or already float32 (porespy's EDT is float32; 7); ball tables
  larger than needed (``** 3``, ``+ 3``: only the entries below ``dt^2 + 2``
  are read, and they do not depend on the table size); a sixth, unread
  column in the ball arrays (3); ``flag >= 0`` (every voxel painted: the
  pruning is exact, the module docstring says why); ``owner`` filled with
  -2 (only ``>= 0`` is read) or +1 (``covered_kernel`` checks the
  containment geometrically, so a wrong owner only loses a skip);
  ``searchsorted`` side "left" by default; in ``whole_voxel_radius`` the
  integer square root: the float estimate of floor(sqrt(d2 - 1)) is exact
  for any distance below 2^26 voxels, and each correction line repairs an
  estimate one off in its direction, so a mutant that only moves the
  estimate by one (``d2 + 1``, ``d2 - 2``, ``max(.., 1)``), or changes a
  correction that never fires (``-=`` / ``(r + 2)`` / ``** 3`` / ``<`` /
  ``d2 - 2`` in the upward line, ``+=`` / ``d2 + 1`` / ``max(.., 1)`` in the
  downward one) or fires with the other line undoing it (``* 2``,
  ``(r - 1)``, ``d2 + 1`` in the upward line) changes nothing (14); the
  solid and border markers -2 / 0 / +1 for -1 (every such value is below
  r + 1 for r >= 1; 4); pruning that keeps more balls (a repeated direction
  for -z, -y, -x; ``|``; ``<=``; ``r + 2``: each extra ball is a valid ball
  with its own radius, so the maximum is unchanged; 6).
  Seventh pass, 22 more. ``_ball_tables``, 10: the grid to ``reach + 2``
  (the extra points lie outside the ball and ``keep`` drops them);
  ``meshgrid`` with ``xy`` indexing (the same plane of (y, x) points in
  another order, and a maximum does not depend on the order); ``inner``
  or ``covering`` started as float64 (``dtype=None`` / dropped, 4: whole
  numbers, cast to int32 on return); an offset with one component's sign
  flipped (``z + uz``, ``y + uy``, ``x + ux``: the ball D_k is symmetric,
  so the largest |x - u|^2 over it is the same, as the docstring says; 3);
  ``maximum.accumulate`` without ``axis`` (0 is the default).
  ``plot_cpsd``, 2: ``FigureCanvasAgg(None)`` (the figure then gets
  matplotlib's base canvas, and ``savefig`` renders a PNG with Agg all
  the same) and ``format="PNG"``: both checked to write the same bytes.
  ``phase_fractions``, 3: the labels' intp cast with ``copy`` ``None``,
  ``True`` or dropped (the values are only counted). The two writers, 4:
  ``open`` without ``newline=""`` (``None`` / dropped): on POSIX text mode
  writes LF as LF and leaves csv's CR LF alone, so the bytes are the same
  (on Windows the rows would end CR CR LF; the project runs on Linux).
  ``local_radius``'s new lines, 3: ``index.fill(-2)`` (only ``>= 0`` is
  read as a ball number) and the ball numbers' ``arange`` as int64
  (``dtype=None`` / dropped: assigned into the int32 index, numbers far
  below 2^31; 2).
- dvc-reference, 2 (seventeenth pass): ``stats`` allocated with a fourth
  column (the kernel writes three, only those are read); the inner
  ``where``'s stand-in norm 2.0 for a flat cube (the outer ``where``
  discards it).
- dvc-grid, 8: ``spacing.astype(None)`` and ``s - s / 2`` / ``(...) / 2``
  for ``//`` in ``node_grid``: the spacing is checked to be whole, a half
  voxel added to ``high`` never adds a lattice position (``count`` floors
  a whole number plus one half over a whole spacing) and the start's half
  is dropped by the final ``astype(np.int64)`` of non-negative positions
  (3); ``inside_fraction``'s nodes not cast to int64 (integer positions by
  contract; whole floats compare the same and ``extract_cubes`` casts its
  corners; 2); batches started at every node (``range(0, n, )``: the
  overlapping writes hold the same values; 1); ``reshape(.., -2)`` (2).
- dvc-interpolate, 14 (seventeenth pass): the empty result and both
``partial`` buffers allocated with ``dtype=None`` / no dtype (numpy's
default is float64; 6); the placeholder for the given values
shaped (2, 1) / (1, 2) (never read when no values are given; 2); the
spline prefilter's ``order`` or ``mode`` dropped (scipy's defaults are 3 and
``"mirror"``; 2); its ``output`` float64 or its input not cast to float32
(``output=None`` / dropped, ``dtype=None`` / dropped; 4): the coefficients
are cast to float32 by ``device_array`` before any use, so only their last
bits can differ.
- dvc-consistency, 11 (of the 203 checked; 16 of all 264 with the
  seventh pass): the gradient not cast to float64 (``dtype=None`` / dropped: its only use is an ``einsum`` with a float64
  operand, which numpy computes in float64; checked to the bit for float32
  and integer gradients; 2); ``nodes.astype(None)`` (float64, numpy's
  default); ``einsum`` subscripts in upper case; ``None`` for ``np.nan``
  (numpy stores None as NaN in a float array); in ``_nanmedian``
  ``np.maximum(count - 1, 1)`` (differs only where ``count - 1`` is 0 or
  less, where both halve to index 0) and ``count >= 0`` (a row without
  values is all NaN, so its median is NaN anyway); in
  ``lattice_neighbours`` ``out`` filled without ``dtype`` (-1 makes it
  int64 already; 2) and ``step`` as float64 (``dtype=None`` / dropped:
  the lattice keys stay whole numbers far below 2^53, so every comparison
  is exact; 2).
  Seventh pass, the whole of ``lattice_neighbours``: the 4 above again
  and 5 more: ``/`` for ``//`` in the lattice index (every coordinate
  less the axis minimum is a multiple of the step, the gcd of the gaps,
  so the quotient is a whole float, exact below 2^53); ``nodes.min(axis=None)``
  (the smallest coordinate of all axes: each axis's index moves by the
  same whole number (min_a - m) // step_a for every node, and ``extent``
  grows with it, so the keys keep their order and their neighbours;
  int64 keys hold that while the coordinates span less than about
  2 x 10^6 voxels, far past any volume); a border of 2 cells (``+ 2``) or an extent one larger
  (``+ 3``: a neighbour's index stays inside 0 .. extent - 1 on every
  axis, so no key wraps into another row); ``kind="STABLE"`` (numpy reads
  the kind without case: the same sort).
- dvc-search, 23 (seventeenth pass, of the kinds below; ``workers`` now
  sets the threads, and its ``None`` / dropped mutants fail): the thread
  pool used for a single batch (``len(parts) >= 1``: the same call on
  another thread);
  ``axes`` ``None`` or dropped in the transforms given ``s=(w, w, w)``
  (scipy then transforms the last three axes, the same ones; 4); the
  guesses' int64 cast dropped (whole-valued guesses give the same windows
  and bounds, and the int64 ``disp`` array casts the result; 2); the
  coarse corner as whole floats (``astype(None)``: ``extract_cubes``
  casts it); the batch size (``w = s + 3 r``, ``max(2, ...)``,
  ``// w * 3``, ``w ** 4``: batches bound memory; 4); ``best`` started at
  +1 or -2 (every entry is written by a batch; 2); a batch's slice from 0
  or to the end (overlapping writes hold the same values; 3); a window of
  edge ``s + 3 r`` in ``_search_batch`` (the boxes at shifts 0 .. 2 r are
  the same voxels, there is no wrap-around, and the larger window's mean
  is an offset ZNCC ignores); float64 cubes (``astype(None)``, 2), a
  float32 ``tnorm`` (``dtype=None`` / dropped: one positive factor per
  node, so the argmax is unchanged and the ZNCC moves in its 7th digit;
  2), ``_box_sums`` in float64 by ``astype(None)`` (numpy's default) and
  the ``einsum`` subscripts in upper case; ``uniform_filter1d``'s
  ``mode`` dropped (only filter centres whose box lies inside the window
  are kept, so the boundary is never read); ``reshape(b, -2)`` (2); the
  flatness test ``>=`` (it meets equality only at den = s2 = 0, where
  ``0 >= 1e-42`` is false too) and the division guard ``den >= 0`` /
  ``1.0 -> 2.0`` (the outer ``where`` discards every value the guard
  divides; 3).
- dvc-gauss-newton, 23: in ``_compose_inverse`` the warp's
  homogeneous matrix with a fifth row of zeros, and its ``[3, 3]`` entry
  NaN (``None``) or 2 (rows 3 and 4 of the product are dropped by
  ``[:, :3]`` and multiply nothing into rows 0 to 2; 3); in
  ``nearest_rotation`` ``/= det`` for ``*= det`` (det of ``u @ vt`` is
  +-1); and from the sixth pass: ``astype(None)`` where float64 is the
  cast's own target (numpy's default: the offsets, ``hess_packed``,
  ``sd_sum``, ``sd_fn`` in ``reference_terms``, the reach in ``refine``;
  5); ``einsum`` subscripts in upper case (3); the inner ``where``'s
  stand-in norm 2.0 for 1.0 for flat nodes (the outer ``where`` gives
  them scale 0; it only avoids a division by zero); the points' products
  in the Hessian sums in float64 (``xh32`` by ``astype(None)``: only the
  last bits of ``hess_packed`` change; float32 there is for speed); the
  Hessian of flat nodes NaN (``None``: flat nodes are never active, so
  their inverse is never read); ``exact_first`` not cast to float32
  (``dtype=None`` / dropped: ``correlation_sums`` casts the given values
  to float32 itself; 2); the outside streak as float64 (``dtype=None`` /
  dropped: small whole numbers, compared exactly; 2); ``range(max_iterations
  + 2)`` (the loop always leaves at ``it == max_iterations`` or with no
  active node first); ``cube_edge`` not passed (``None`` / dropped: the
  general sampler, the same sums up to round-off, as
  ``test_the_general_sampler_refines_like_the_cube_sampler`` checks; 2);
  the given values dropped when nodes converge (``g_a`` is read only at
  iteration 0, before any node can converge).
"""

import argparse
import ast
import fnmatch
import hashlib
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    """One module and the test files that are its own."""

    name: str
    path: str
    tests: tuple
    tool: str = "mutmut"
    functions: tuple = ()          # cosmic-ray: mutate only inside these functions
    timeout_multiplier: float = 15.0   # mutmut: CPU-time limit per mutant = 2 x this x (test time + 1 s)
    note: str = ""


# the DVC's test files that need no pipeline run; below local.py each module runs against its own unit
# file and the files among these that import it by name (each mutant runs the tests that reach it, and
# a survivor runs all of them: the whole set costs a minute per survivor on 2 shared cores)
_DVC_TESTS = ("tests/test_dvc.py", "tests/test_dvc_robust.py", "tests/test_dvc_status.py")

TARGETS = (
    Target("score", "validation/score.py", ("tests/test_score.py", "tests/test_score_statistics.py")),
    Target("frame", "validation/frame.py", ("tests/test_truth_frame.py", "tests/test_frame_scores.py"),
           note="tests/test_validation.py left out: it needs a pipeline run (tiny_run) per mutant"),
    Target("paper-table", "validation/paper.py", ("tests/test_paper_table.py",),
           note="tests/test_paper_mode.py left out: it needs a pipeline run per mutant"),
    Target("dvc-files", "validation/dvc_files.py", ("tests/test_dvc_files.py",),
           note="tests/test_dataset.py left out: most of it needs a pipeline run (tiny_run) per mutant"),
    Target("score-run", "validation/run.py", ("tests/test_score_parts.py", "tests/test_score_run.py")),
    Target("dvc-status", "analysis/dvc/local.py",
           _DVC_TESTS + ("tests/test_dvc_start.py", "tests/test_dvc_early_exit.py")),
    Target("dvc-reference", "analysis/dvc/reference.py", ("tests/test_dvc_refine.py", "tests/test_dvc_window.py")
           + _DVC_TESTS),
    Target("dvc-interpolate", "analysis/dvc/interpolate.py", ("tests/test_dvc_spline.py", "tests/test_dvc_refine.py",
                                                             "tests/test_dvc.py", "tests/test_dvc_window.py")),
    Target("dvc-grid", "analysis/dvc/grid.py", ("tests/test_dvc_grid.py", "tests/test_dvc_window.py") + _DVC_TESTS),
    Target("dvc-consistency", "analysis/dvc/consistency.py", ("tests/test_dvc_consistency.py", "tests/test_dvc_robust.py",
                                                             "tests/test_dvc_status.py")),
    Target("dvc-gauss-newton", "analysis/dvc/gauss_newton.py", ("tests/test_dvc_refine.py",
                                                               "tests/test_dvc_early_exit.py",
                                                               "tests/test_dvc_window.py"),
           note="test_dvc_early_exit.py calls refine with outside and outside_patience; the other "
                "tests/test_dvc*.py reach it only through correlate or refine_nodes"),
    Target("dvc-search", "analysis/dvc/search.py", ("tests/test_dvc_search.py", "tests/test_dvc_robust.py")),
    Target("strain", "analysis/strain.py", ("tests/test_strain.py", "tests/test_strain_fit.py")),
    Target("pores", "analysis/pores.py", ("tests/test_pores.py", "tests/test_pores_cases.py"), timeout_multiplier=100.0,
           note="each worker compiles the taichi kernels again, which the stats phase's test times leave out"),
    Target("reconstruct", "analysis/reconstruct.py", ("tests/test_reconstruct.py", "tests/test_reconstruct_filters.py",
                                                      "tests/test_reconstruct_cases.py")),
    Target("dem-material", "synthcal/dem/material.py", ("tests/test_dem_material.py", "tests/test_dem_restitution.py",
                                                        "tests/test_dem_mechanics.py",
                                                        "tests/test_dem.py::test_hertz_force_matches_theory",
                                                        "tests/test_dem.py::test_collision_restitution_half",
                                                        "tests/test_dem.py::test_bad_input_is_rejected")),
    Target("contact-law", "synthcal/dem/kernels.py", ("tests/test_dem_mechanics.py", "tests/test_dem_restitution.py"),
           tool="cosmic-ray",
           functions=("hertz_mindlin", "rolling_torque")),
)
DEFAULT = tuple(t.name for t in TARGETS)


@dataclass
class Outcome:
    target: Target
    killed: int = 0
    timeouts: int = 0                               # counted in killed too (mutmut's own score does the same)
    survived: list = field(default_factory=list)    # (mutant id, diff)
    other: dict = field(default_factory=dict)       # status -> count (timeouts count as killed)
    minutes: float = 0.0
    population: int = 0                             # mutants of the module when a sample was tested, else 0

    @property
    def total(self):
        return self.killed + len(self.survived) + sum(self.other.values())

    @property
    def score(self):
        return self.killed / self.total if self.total else float("nan")

    def interval(self, z=1.96):
        """Wilson's 95 % interval of the module's score from a sample of its mutants (a proportion, not %)."""
        n, p = self.total, self.score
        if n == 0:
            return float("nan"), float("nan")
        # drawn without replacement: the finite-population correction narrows the interval as the sample
        # approaches the whole module (it is exact, width 0, when every mutant was drawn)
        fpc = (self.population - n) / (self.population - 1) if self.population > 1 else 0.0
        z2 = z * z * fpc
        centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        half = math.sqrt(z2 * p * (1 - p) / n + z2 * z2 / (4 * n * n)) / (1 + z2 / n)
        return max(0.0, centre - half), min(1.0, centre + half)


def _copy_tree(dest):
    """The tracked and untracked-but-not-ignored files of the repository, copied to ``dest``."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\n")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)


def _env():
    env = dict(os.environ)
    env.setdefault("SYNTHCAL_DEM_THREADS", "1")
    env.pop("PYTHONPATH", None)
    return env


def _mutant_globs(t, functions):
    """mutmut's names for the mutants of the top-level ``functions`` of ``t.path`` (all when empty)."""
    module = t.path[:-len(".py")].replace("/", ".")
    return [f"{module}.x_{f}__mutmut_*" for f in functions]


# a mutant name that matches nothing: mutmut then generates the mutants and collects the test stats,
# and stops with "nothing matches" before testing any
_NO_MUTANT = "synthcal-no-such-mutant"


def _all_mutant_names(t, work, timeout_s):
    """The names of every mutant mutmut makes of ``t.path`` (generated in ``work``, none tested)."""
    run = subprocess.run([sys.executable, "-m", "mutmut", "run", _NO_MUTANT], cwd=work, env=_env(),
                         capture_output=True, text=True, timeout=timeout_s)
    meta = work / "mutants" / (t.path + ".meta")
    if not meta.exists():
        raise RuntimeError(f"{t.name}: mutmut generated no mutants\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    return sorted(json.loads(meta.read_text())["exit_code_by_key"])


def _sample(names, size, seed):
    """``size`` of ``names`` drawn at random without replacement (the same draw for the same seed)."""
    return sorted(random.Random(seed).sample(sorted(names), min(size, len(names))))


def _run_mutmut(t, work, max_children, timeout_s, functions=(), sample=None, seed=0):
    lines = ["[mutmut]", "source_paths =", "    analysis", "    synthcal", "    validation",
             f"only_mutate =\n    {t.path}", "pytest_add_cli_args_test_selection ="]
    lines += [f"    {x}" for x in t.tests]
    lines += ["pytest_add_cli_args =", "    -p", "    no:cacheprovider", "    -q",
              "process_isolation = forkserver", f"timeout_multiplier = {t.timeout_multiplier}"]
    (work / "setup.cfg").write_text("\n".join(lines) + "\n")
    mutmut = [sys.executable, "-m", "mutmut"]
    # a selection runs only those mutants; the others stay unchecked and are left out of the row
    globs = _mutant_globs(t, functions)
    population = 0
    if sample is not None:
        names = _all_mutant_names(t, work, timeout_s)
        if globs:
            names = [n for n in names if any(fnmatch.fnmatch(n, g) for g in globs)]
        population, globs = len(names), _sample(names, sample, seed)
    run = subprocess.run(mutmut + ["run", "--max-children", str(max_children)] + globs, cwd=work, env=_env(),
                         capture_output=True, text=True, timeout=timeout_s)
    listing = subprocess.run(mutmut + ["results", "--all", "true"], cwd=work, env=_env(),
                             capture_output=True, text=True)
    out = Outcome(t, population=population)
    for line in listing.stdout.splitlines():
        m = re.match(r"\s*(\S+): (.+)$", line)
        if not m:
            continue
        name, status = m.group(1), m.group(2).strip()
        if globs and not any(fnmatch.fnmatch(name, g) for g in globs):
            continue
        if status in ("killed", "timeout"):
            out.killed += 1
            out.timeouts += status == "timeout"
        elif status in ("survived", "no tests"):
            diff = subprocess.run(mutmut + ["show", name], cwd=work, env=_env(), capture_output=True, text=True)
            out.survived.append((name, _changed_lines(diff.stdout)))
        else:
            out.other[status] = out.other.get(status, 0) + 1
    if out.total == 0:
        raise RuntimeError(f"{t.name}: mutmut produced no mutants\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    return out


def _function_lines(path, names):
    """1-based inclusive line ranges of the top-level or nested functions ``names`` in ``path``."""
    tree = ast.parse(Path(path).read_text())
    ranges = [f"{n.lineno}-{n.end_lineno}" for n in ast.walk(tree)
              if isinstance(n, ast.FunctionDef) and n.name in names]
    if len(ranges) != len(names):
        raise RuntimeError(f"{path}: expected functions {names}, found {len(ranges)}")
    return ranges


# cosmic-ray replaces each operator by every other one (``*`` by 11 others); most of
# those do not compile in a taichi function (bit operations and shifts on floats,
# removing @ti.func) or repeat another. Kept: mutmut's choices (``*`` <-> ``/``,
# ``+`` <-> ``-``, numbers, ``>`` -> ``>=`` and ``<``, a dropped minus, an added ``not``):
# 65 mutants in the two functions instead of 450.
_CR_SKIP = (r"core/(?!(NumberReplacer|ReplaceBinaryOperator_(Mul_Div|Div_Mul|Add_Sub|Sub_Add)"
            r"|ReplaceComparisonOperator_Gt_(GtE|Lt)|ReplaceUnaryOperator_Delete_USub|AddNot)$)")


def _skip_all_but_a_sample(session, size, seed):
    """Mark every pending cosmic-ray job outside a random sample of ``size`` as skipped; the number pending."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult
    with use_db(session, WorkDB.Mode.open) as db:
        # job ids are random per session: draw from the mutations' places so a seed gives the same sample
        where = {(m.operator_name, m.occurrence, tuple(m.start_pos)): item.job_id
                 for item in db.pending_work_items for m in item.mutations[:1]}
        keep = {where[k] for k in _sample(where, size, seed)}
        skip = [job for job in where.values() if job not in keep]
        if skip:
            db.set_multiple_results(skip, WorkResult(output="not in the sample", worker_outcome=WorkerOutcome.SKIPPED))
    return len(where)


def _run_cosmic_ray(t, work, max_children, timeout_s, sample=None, seed=0):
    tests = " ".join(t.tests)
    ranges = _function_lines(work / t.path, t.functions)
    config = (
        "[cosmic-ray]\n"
        f'module-path = "{t.path}"\n'
        "timeout = 300.0\n"
        "excluded-modules = []\n"
        f'test-command = "{sys.executable} -m pytest -x -q -p no:cacheprovider {tests}"\n'
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
        "[cosmic-ray.filters.line-filter]\n"
        f'lines = {{ "{t.path}" = {json.dumps(ranges)} }}\n'
        "[cosmic-ray.filters.operators-filter]\n"
        f"exclude-operators = {json.dumps([_CR_SKIP])}\n"
    )
    (work / "cr.toml").write_text(config)
    session = str(work / "cr.sqlite")
    bindir = Path(sys.executable).parent
    cr = lambda tool: [str(bindir / tool)] if (bindir / tool).exists() else [tool]
    for cmd in (cr("cosmic-ray") + ["init", "cr.toml", session], cr("cr-filter-lines") + ["--config", "cr.toml", session],
                cr("cr-filter-operators") + [session, "cr.toml"]):
        subprocess.run(cmd, cwd=work, env=_env(), check=True, capture_output=True, text=True, timeout=timeout_s)
    population = 0 if sample is None else _skip_all_but_a_sample(session, sample, seed)
    subprocess.run(cr("cosmic-ray") + ["exec", "cr.toml", session], cwd=work, env=_env(), check=True,
                   capture_output=True, text=True, timeout=timeout_s)
    dump = subprocess.run(cr("cosmic-ray") + ["dump", session], cwd=work, env=_env(), capture_output=True,
                          text=True, check=True)
    out = Outcome(t, population=population)
    for line in dump.stdout.splitlines():
        item, result = json.loads(line)
        if result is None:
            out.other["not run"] = out.other.get("not run", 0) + 1
            continue
        worker, test = result["worker_outcome"], result.get("test_outcome")
        if worker == "skipped":
            continue
        if worker == "normal" and test == "killed" or worker == "abnormal":
            out.killed += 1   # abnormal: the mutant crashed or timed out
        elif worker == "normal" and test == "survived":
            m = item["mutations"][0]
            name = f"{m['operator_name']}#{m['occurrence']} line {m['start_pos'][0]}"
            out.survived.append((name, _changed_lines(result.get("diff") or "")))
        else:
            key = f"{worker}/{test}"
            out.other[key] = out.other.get(key, 0) + 1
    return out


def _changed_lines(diff):
    """The - and + lines of a unified diff, stripped."""
    keep = [ln for ln in diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    return " | ".join(ln[0] + " " + ln[1:].strip() for ln in keep)


# mutmut's exit codes for a survivor (0) and for a mutant no selected test reaches (5, 33)
_SURVIVOR_CODES = (0, 5, 33)


def _retest_survivors(t, work):
    """Forget the cached verdicts "survived" and "no tests" of ``t``'s mutants, so mutmut tests them again."""
    meta = work / "mutants" / (t.path + ".meta")
    if not meta.exists():
        return 0
    data = json.loads(meta.read_text())
    again = [k for k, code in data["exit_code_by_key"].items() if code in _SURVIVOR_CODES]
    for k in again:
        data["exit_code_by_key"][k] = None
    meta.write_text(json.dumps(data))
    return len(again)


def _sync_unmutated(t, work):
    """Refresh mutmut's copies of the source files it does not mutate.

    mutmut copies them into ``mutants/`` only when absent there, so in a
    cached copy a change to another module would not reach the tests.
    """
    for src in work.rglob("*.py"):
        rel = src.relative_to(work)
        if rel.parts[0] == "mutants" or rel.as_posix() == t.path:
            continue
        copy = work / "mutants" / rel
        if copy.exists() and copy.read_bytes() != src.read_bytes():
            shutil.copy2(src, copy)


def _source_key(t):
    """A hash of the module and its test files: a cosmic-ray result is reused only while none changed."""
    h = hashlib.sha256()
    for f in (t.path,) + tuple(x.split("::")[0] for x in t.tests):
        h.update(f.encode() + b"\0" + (ROOT / f).read_bytes())
    return h.hexdigest()


def _cached_outcome(t, cache):
    """The stored outcome of a cosmic-ray target whose sources are unchanged, else None."""
    stored = Path(cache) / t.name / "outcome.json"
    if not stored.exists():
        return None
    data = json.loads(stored.read_text())
    if data["key"] != _source_key(t):
        return None
    return Outcome(t, killed=data["killed"], timeouts=data["timeouts"],
                   survived=[tuple(x) for x in data["survived"]], other=data["other"])


def _store_outcome(out, cache):
    folder = Path(cache) / out.target.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "outcome.json").write_text(json.dumps({
        "key": _source_key(out.target), "killed": out.killed, "timeouts": out.timeouts,
        "survived": out.survived, "other": out.other}))


def _run_target(t, max_children, timeout_min, keep, functions, cache, retest_survivors, sample=None, seed=0):
    """The outcome of one target, in a fresh copy or (mutmut with ``cache``) in its cached one."""
    cached = cache is not None and t.tool == "mutmut"
    if cached:
        work = Path(cache).resolve() / t.name
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix=f"synthcal-mutation-{t.name}-"))
    start = time.monotonic()
    try:
        # copy2 keeps each file's time: mutmut regenerates the mutants of a file only when it is newer
        _copy_tree(work)
        if cached:
            _sync_unmutated(t, work)
            if retest_survivors:
                print(f"{t.name}: {_retest_survivors(t, work)} survivors to test again", file=sys.stderr)
        if t.tool == "cosmic-ray":
            out = _run_cosmic_ray(t, work, max_children, timeout_min * 60, sample, seed)
        else:
            out = _run_mutmut(t, work, max_children, timeout_min * 60, functions, sample, seed)
    except subprocess.TimeoutExpired:
        out = Outcome(t, other={f"over {timeout_min:g} min": 1})
    finally:
        if not cached and not keep:
            shutil.rmtree(work, ignore_errors=True)
        elif not cached:
            print(f"kept {work}", file=sys.stderr)
    out.minutes = (time.monotonic() - start) / 60
    if cache is not None and t.tool == "cosmic-ray" and not out.other:
        _store_outcome(out, cache)
    return out


def run(targets, max_children=2, timeout_min=30.0, keep=False, functions=(), cache=None, retest_survivors=False,
        sample=None, seed=0):
    results = []
    for t in targets:
        out = _cached_outcome(t, cache) if cache is not None and t.tool == "cosmic-ray" else None
        if out is not None:
            print(f"{t.name}: {t.path} and its tests unchanged since the cached run", file=sys.stderr)
        else:
            out = _run_target(t, max_children, timeout_min, keep, functions, cache, retest_survivors, sample, seed)
        results.append(out)
        _print_row(out)   # one row and its survivors as soon as a module is done
        _print_survivors(out, sys.stderr)
    return results


HEADER = f"{'module':<18}{'file':<28}{'tool':<12}{'mutants':>8}{'killed':>8}{'survived':>9}{'other':>7}{'score':>8}{'min':>7}"


def _sampled(o):
    """What a row of a sampled module adds: the module's size and the score's 95 % interval."""
    if not o.population:
        return ""
    low, high = o.interval()
    return f"  sample of {o.population}, 95 % interval {100 * low:.0f}-{100 * high:.0f}%"


def _print_row(o):
    print(f"{o.target.name:<18}{o.target.path:<28}{o.target.tool:<12}{o.total:>8}{o.killed:>8}"
          f"{len(o.survived):>9}{sum(o.other.values()):>7}{100 * o.score:>7.1f}%{o.minutes:>7.1f}{_sampled(o)}",
          flush=True)


def report(results):
    print()
    print(HEADER)
    for o in results:
        _print_row(o)
    worst = min(results, key=lambda o: o.score)
    print(f"{'worst module':<18}{worst.target.path:<28}{worst.target.tool:<12}{worst.total:>8}{worst.killed:>8}"
          f"{len(worst.survived):>9}{sum(worst.other.values()):>7}{100 * worst.score:>7.1f}%{worst.minutes:>7.1f}"
          f"{_sampled(worst)}")
    for o in results:
        _print_survivors(o, sys.stdout)


def _print_survivors(o, stream):
    if o.timeouts:
        print(f"\n{o.target.path}: {o.timeouts} of the killed mutants timed out (mutmut's CPU-time limit); "
              "if that is most of them, raise the target's timeout_multiplier", file=stream)
    if o.survived or o.other:
        print(f"\nsurvivors in {o.target.path}" + (f" (other: {o.other})" if o.other else ""), file=stream)
        for name, diff in o.survived:
            print(f"  {name}: {diff}", file=stream)
        stream.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help=f"names from --list (default: {' '.join(DEFAULT)})")
    parser.add_argument("--list", action="store_true", help="list the modules and their test files")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutants (mutmut)")
    parser.add_argument("--timeout-min", type=float, default=30.0, help="limit per module, minutes")
    parser.add_argument("--keep", action="store_true", help="keep the working copies")
    parser.add_argument("--functions", nargs="+", default=(), metavar="NAME",
                        help="mutmut: mutate only these top-level functions (a partial run; say so)")
    parser.add_argument("--cache", metavar="DIR",
                        help="keep each mutmut module's copy and verdicts in DIR/<module>; a later run re-tests only "
                             "the mutants of changed functions")
    parser.add_argument("--retest-survivors", action="store_true",
                        help="with --cache: test the cached survivors again (after writing tests for them)")
    parser.add_argument("--sample", type=int, metavar="N",
                        help="test N mutants drawn at random per module (a fresh copy; the score is an estimate "
                             "with its 95 %% interval)")
    parser.add_argument("--seed", type=int, default=0, help="with --sample: the draw")
    args = parser.parse_args(argv)
    if args.sample is not None and (args.cache or args.sample < 1):
        parser.error("--sample N needs N >= 1 and no --cache (a sample is drawn in a fresh copy)")
    if args.retest_survivors and not args.cache:
        parser.error("--retest-survivors needs --cache DIR (without it every mutant is tested anyway)")
    by_name = {t.name: t for t in TARGETS}
    if args.list:
        for t in TARGETS:
            print(f"{t.name:<18}{t.path:<28}{t.tool:<12}{' '.join(t.tests)}  {t.note}")
        return 0
    unknown = [m for m in args.modules if m not in by_name]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; expected some of {sorted(by_name)}")
    print(HEADER, flush=True)
    if args.functions:
        print(f"only the mutants of {' '.join(args.functions)}", flush=True)
    if args.sample is not None:
        print(f"{args.sample} mutants per module drawn with seed {args.seed}", flush=True)
    results = run([by_name[m] for m in (args.modules or DEFAULT)], args.max_children, args.timeout_min, args.keep,
                  args.functions, args.cache, args.retest_survivors, args.sample, args.seed)
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
