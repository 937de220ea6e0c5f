"""Every score of a run: DVC, strain, registration, pores and phases against the truth.

:func:`score_run` reads a run folder through :class:`synthcal.dataset.Run` and
returns what the pipeline writes as ``validation/scores.json`` (plus the
per-node truth behind the DVC scores). See the README's "How the truth is
defined" for the rules.
"""

import numpy as np

from analysis.chain import strain_fields
from analysis.dvc import Status, refine_nodes
from analysis.layout import step_name
from analysis.phases import SAMPLE_PHASES, Phase, in_phases
from analysis.pores import phase_fractions
from analysis.regions import sample_mask
from analysis.transform import total_displacement
from synthcal.truth import RADIUS_MAPS
from validation.frame import node_regions, score_dvc, truth_frame
from validation.paper import COLUMNS, paper_rows
from validation.score import error_by_region, tensor_rms_error, vector_error_stats


def truth_pores(run, k, settings, arch, pore_phases=(Phase.PORE,)):
    """Mean pore radius and phase fractions of the phantom of step ``k``, in the analysis region,
    with the chain's definitions.

    The region is the one the chain analysed (the sample rows of step ``k``
    less the edge exclusion) on the field of view of the phantom. The pore
    space is the true phases the segmentation's label 0 stands for
    (``pore_phases``: the pores, or the pores and the CBD in the paper's
    binarisation), its size distribution the settings' ``pore_size``: from
    the truth's radius map stored with the phantom when one holds that
    function's radii of those phases (:data:`synthcal.truth.RADIUS_MAPS`),
    else made here. Head and foil bound the pores as solids do; they lie
    outside the region, so no phase fraction counts them.
    """
    grid = run.grid
    off, n = grid.fov_offset_voxels, grid.n_det
    labels = np.asarray(run.truth_labels(k))[:, off:off + n, off:off + n]
    region = sample_mask(labels.shape, grid.sample_rows[k], settings.edge_exclusion_voxels)
    pore_space = in_phases(labels, pore_phases)
    # the phases as the segmentation labels them: what it does not tell apart from pore is pore
    sample = np.where(in_phases(labels, SAMPLE_PHASES) & ~pore_space, labels, np.uint8(Phase.PORE)).astype(np.uint8)
    stored = [name for name, (pore_size, _, phases) in RADIUS_MAPS.items()
              if pore_size is settings.pore_size and set(phases) == set(pore_phases)]
    radius_um = run.truth_radius_um(k, stored[0]) if stored else None
    extra = {} if radius_um is None else {"radius_um": radius_um}
    return settings.pore_size(pore_space, grid.voxel_size_um, mask=region, arch=arch, **extra), \
        phase_fractions(sample, mask=region)


def _pore_phases(summary_row):
    """The true phases the segmentation's label 0 stands for, as written in ``pores/summary.json``."""
    return tuple(Phase[name.upper()] for name in summary_row["pore_phases"])


def _pore_scores(measured, truth_cpsd, truth_phases):
    pores = {"mean_radius_um": measured["mean_pore_radius_um"], "truth_mean_radius_um": truth_cpsd.mean_radius_um,
             "median_radius_um": measured["median_pore_radius_um"],
             "truth_median_radius_um": truth_cpsd.median_radius_um}
    phases = {}
    for name in ("inactive", "nmc", "pore", "cbd"):
        phases[f"{name}_fraction"] = measured[name]
        phases[f"truth_{name}_fraction"] = getattr(truth_phases, name)
    return pores, phases


def _score_step(run, truth, k, settings, shape, arch, reference):
    """Scores of load step ``k`` and the per-node truth behind them (``reference``: the processed
    reference scan, read once for every step)."""
    field = run.dvc(k)
    dvc, combined, error, fragments = score_dvc(truth, field, k, shape)
    regions = node_regions(field["nodes"], truth.grid, shape, int(field["subvolume_voxels"]))
    dvc["best_fit"] = best_fit(reference, run.processed(k), field, combined, settings, arch, regions=regions)
    usable = field["ok"] & np.all(np.isfinite(combined), axis=1)
    # the measured strain is of the total field: compose the truth with the same registration
    true_total = total_displacement(truth.transforms[k], field["nodes"], combined)
    true_strain = strain_fields(field["nodes"], true_total, usable)["small_strain"]
    summary = run.pore_summary()[k]
    pores, phases = _pore_scores(summary, *truth_pores(run, k, settings, arch, _pore_phases(summary)))
    row = {"step": k, "stage_displacement_um": run.scenario.compression.steps_um[k], "dvc": dvc,
           "strain": tensor_rms_error(run.strain(k)["small_strain"], true_strain, valid=usable),
           "registration": truth.registration_error(k), "pores": pores, "phases": phases}
    return row, {"displacement_voxels": combined, "error_voxels": error, "strain": true_strain,
                 "fragments": fragments}


BEST_FIT_NODES = 1000  #: most nodes per step that the fit from the truth refines (a sample beyond)


def best_fit(reference, deformed, field, truth_voxels, settings, arch="cpu", *, regions=None,
             max_nodes=BEST_FIT_NODES):
    """The error floor of subvolume fitting: the chain's Gauss–Newton started at the true displacement.

    Each node the DVC tried (not MASKED) with a truth is refined
    (:func:`analysis.dvc.refine_nodes`) on the same registered volumes with
    the same subvolume, shape function and ``min_cc``, starting from the
    truth the scores use; where more than ``max_nodes`` qualify, a sample
    of ``max_nodes`` of them, evenly spaced in node order (the node grid's
    z-y-x order, so it spans the volume): the floor is a statistic, and a
    best chain at the paper's size with nodes half an edge apart (3375 per
    step) spent 8 of its 13 minutes of scoring here on every node. What it gets wrong no search could get right:
    where the images hold the motion, it converges next to the truth; where
    the subvolume's content moves in a way its shape function cannot follow
    (particles sliding past each other inside it), it drifts away or fails.

    Parameters
    ----------
    reference, deformed : ndarray
        The processed (registered) volumes the DVC correlated.
    field : dict
        The DVC's node field (``nodes``, ``status``, ``subvolume_voxels``).
    truth_voxels : (N, 3) ndarray
        The truth at the nodes, registered frame, voxels.
    settings : ChainSettings
    arch : {"cpu", "gpu"}
    regions : dict of str -> (N,) bool ndarray, optional
        Node regions (:func:`validation.frame.node_regions`): the floor is
        then also given per region, as the chain's error is.
    max_nodes : int
        Most nodes refined.

    Returns
    -------
    dict
        :func:`validation.score.vector_error_stats` of its ``ok`` nodes
        against the same truth, ``ok_fraction`` (of the started nodes),
        ``started_nodes``, ``eligible_nodes`` (those the sample was drawn
        from), ``start`` (what it starts from) and, with ``regions``,
        ``error_by_region`` (:func:`validation.score.error_by_region`).
    """
    if int(max_nodes) != max_nodes or max_nodes < 1:
        raise ValueError(f"max_nodes: expected an integer >= 1, got {max_nodes!r}")
    eligible = np.flatnonzero((field["status"] != Status.MASKED) & np.all(np.isfinite(truth_voxels), axis=1))
    # more eligible nodes than max_nodes: the even steps are over one index apart, so the rounded ones differ
    chosen = eligible[np.linspace(0, len(eligible) - 1, int(max_nodes)).round().astype(np.int64)] \
        if len(eligible) > max_nodes else eligible
    truth = np.asarray(truth_voxels, dtype=np.float64)[chosen]
    fit = refine_nodes(reference, deformed, field["nodes"][chosen], truth,
                       subvolume_voxels=int(field["subvolume_voxels"]), shape_function=settings.shape_function,
                       window=settings.window, min_cc=settings.min_cc, arch=arch)
    out = {**vector_error_stats(fit.displacement, truth, settings.voxel_size_um, valid=fit.ok),
           "ok_fraction": float(fit.ok.mean()) if len(chosen) else float("nan"),
           "started_nodes": len(chosen), "eligible_nodes": len(eligible),
           "start": "the true displacement of each node (the scores' truth rule), registered frame"}
    if regions is not None:
        error = np.where(fit.ok, np.linalg.norm(fit.displacement - truth, axis=1), np.nan)
        out["error_by_region"] = error_by_region(error, {name: np.asarray(m)[chosen] for name, m in regions.items()})
    return out


def subvolume_study(run, truth, settings, shape):
    """DVC scores at every subvolume edge, averaged over the compressed steps (largest edge first)."""
    rows = []
    for edge in sorted(settings.subvolumes_voxels, reverse=True):
        per_step = [score_dvc(truth, run.dvc(k, edge), k, shape)[0] for k in run.steps[1:]]
        rows.append({"edge_voxels": edge, "edge_um": edge * settings.voxel_size_um,
                     "mean_cc": _finite_mean([r["mean_cc"] for r in per_step]),
                     "rms_error_voxels": _finite_mean([r["rms_error_voxels"] for r in per_step]),
                     "ok_fraction": float(np.mean([r["ok_fraction"] for r in per_step]))})
    return rows


def _finite_mean(values):
    """Mean of the finite values; NaN when there are none (an edge where no step trusted a node)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def score_run(run, *, arch="cpu", progress=None):
    """Score every analysis output of a run against its truth, in both modes when they were compared.

    Parameters
    ----------
    run : synthcal.dataset.Run
        A run whose stages up to ``compare`` are complete.
    arch : {"cpu", "gpu"}
        Taichi backend of the truth's CPSD.
    progress : callable, optional

    Returns
    -------
    scores : dict
        The content of ``scores.json`` (None where nothing was scored): the
        scenario's mode, ``compared`` (the same scores of the other mode when
        ``[analysis] compare_modes``) and ``paper_comparison``: the paper's
        table (:func:`validation.paper.paper_rows`) per mode, the scenario's
        mode first, each with the folder its analysis is in.
    node_truth : dict
        ``step{k}_displacement_voxels``, ``step{k}_error_voxels``,
        ``step{k}_strain`` and ``step{k}_fragments`` (the subvolume holds
        fragments of cracked particles) at the DVC nodes of step ``k`` (the
        scenario's mode).
    """
    compared = run.compared()
    truth = truth_frame(run)
    if compared is None:
        scores, node_truth = _score_mode(run, truth, arch, progress)
        runs = [(run, scores)]
    else:
        # the compared analysis sees the same truth through its own registration: each step's pass over the
        # phantom is made once, for the fields of both
        other_truth = truth.seen_by(*compared.registration())
        scores, node_truth = _score_mode(run, truth, arch, _half(progress, 0), also=[(compared, other_truth)])
        other, _ = _score_mode(compared, other_truth, arch, _half(progress, 1))
        scores["compared"] = other
        runs = [(run, scores), (compared, other)]
    scores["paper_comparison"] = {
        "columns": list(COLUMNS), "mode": scores["analysis_mode"],
        "tables": {s["analysis_mode"]: {"folder": str(r.folder("preprocess").parent.relative_to(r.path)),
                                        "rows": paper_rows(r, s)} for r, s in runs}}
    return finite(scores), node_truth


def _half(progress, which):
    return None if progress is None else (lambda fraction: progress((which + fraction) / 2))


def _score_mode(run, truth, arch, progress, also=()):
    """Every score of the analysis in ``run``'s folders (one mode), against ``truth`` (its :class:`TruthFrame`);
    ``also``: (run, frame) of analyses scored later, whose fields' truths each step's pass computes too."""
    s, settings = run.scenario, run.analysis_settings()
    shape = run.grid.recon_shape
    steps, node_truth = [], {}
    reference = run.processed(0)
    for k in run.steps[1:]:
        # the main field and the study's (and those of ``also``): their truths in one pass over the phantom
        truth.prefetch(k, _node_sets(run, k) + [n for r, _ in also for n in _node_sets(r, k)],
                       frames=[f for _, f in also])
        row, arrays = _score_step(run, truth, k, settings, shape, arch, reference)
        steps.append(row)
        node_truth.update({f"{step_name(k)}_{name}": value for name, value in arrays.items()})
        if progress:
            progress(k / s.n_steps)
    summary = run.pore_summary()[0]
    reference_pores, reference_phases = _pore_scores(summary, *truth_pores(run, 0, settings, arch,
                                                                         _pore_phases(summary)))
    scores = {"scenario": s.name, "seed": s.seed, "voxel_size_um": truth.v, "analysis_mode": settings.mode,
              "chain": settings.describe(), "steps": steps,
              "reference": {"step": 0, "pores": reference_pores, "phases": reference_phases},
              "subvolume_study": subvolume_study(run, truth, settings, shape) if settings.study_subvolumes_voxels
              else []}
    study = scores["subvolume_study"]
    if study:
        by_cc = max(study, key=lambda r: r["mean_cc"] if np.isfinite(r["mean_cc"]) else -2)
        by_error = min(study, key=lambda r: r["rms_error_voxels"] if np.isfinite(r["rms_error_voxels"]) else 1e9)
        scores["subvolume_choice"] = {"highest_mean_cc_edge_um": by_cc["edge_um"],
                                      "lowest_rms_error_edge_um": by_error["edge_um"]}
    return scores, node_truth


def _node_sets(run, k):
    """(nodes, subvolume edge) of step ``k``'s DVC field and of each field of its subvolume study."""
    fields = [run.dvc(k)] + [run.dvc(k, edge) for edge in run.analysis_settings().study_subvolumes_voxels]
    return [(f["nodes"], int(f["subvolume_voxels"])) for f in fields]


def finite(obj):
    """JSON has no NaN: the same structure with ``None`` for numbers that are not finite."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj
