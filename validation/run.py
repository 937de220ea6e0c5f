"""Every score of a run: DVC, strain, registration, pores and phases against the truth.

:func:`score_run` reads a run folder through :class:`synthcal.dataset.Run` and
returns what the pipeline writes as ``validation/scores.json`` (plus the
per-node truth behind the DVC scores). See the README's "How the truth is
defined" for the rules.
"""

import numpy as np

from analysis.chain import sample_mask, strain_fields
from analysis.layout import step_name
from analysis.phases import SAMPLE_PHASES, Phase
from analysis.pores import cpsd, phase_fractions
from analysis.transform import total_displacement
from validation.frame import score_dvc, truth_frame
from validation.score import tensor_rms_error


def truth_pores(run, k, settings, arch):
    """Mean pore radius and phase fractions of the phantom of step ``k``, in the analysis region.

    The region is the one the chain analysed (the sample rows of step ``k``
    less the edge exclusion) on the field of view of the phantom. Head and
    foil bound the pores as solids do; they lie outside the region, so no
    phase fraction counts them.
    """
    grid = run.grid
    off, n = grid.fov_offset_voxels, grid.n_det
    labels = np.asarray(run.truth_labels(k))[:, off:off + n, off:off + n]
    region = sample_mask(labels.shape, grid.sample_rows[k], settings.edge_exclusion_voxels)
    sample = np.where(np.isin(labels, SAMPLE_PHASES), labels, np.uint8(Phase.PORE)).astype(np.uint8)
    return cpsd(labels == Phase.PORE, grid.voxel_size_um, mask=region, arch=arch), \
        phase_fractions(sample, mask=region)


def _pore_scores(measured, truth_cpsd, truth_phases):
    pores = {"mean_radius_um": measured["mean_pore_radius_um"], "truth_mean_radius_um": truth_cpsd.mean_radius_um}
    phases = {}
    for name in ("inactive", "nmc", "pore", "cbd"):
        phases[f"{name}_fraction"] = measured[name]
        phases[f"truth_{name}_fraction"] = getattr(truth_phases, name)
    return pores, phases


def _score_step(run, truth, k, settings, shape, arch):
    """Scores of load step ``k`` and the per-node truth behind them."""
    field = run.dvc(k)
    dvc, combined, error = score_dvc(truth, field, k, shape)
    usable = field["ok"] & np.all(np.isfinite(combined), axis=1)
    # the measured strain is of the total field: compose the truth with the same registration
    true_total = total_displacement(truth.transforms[k], field["nodes"], combined)
    true_strain = strain_fields(field["nodes"], true_total, usable)["small_strain"]
    pores, phases = _pore_scores(run.pore_summary()[k], *truth_pores(run, k, settings, arch))
    row = {"step": k, "stage_displacement_um": run.scenario.compression.steps_um[k], "dvc": dvc,
           "strain": tensor_rms_error(run.strain(k)["small_strain"], true_strain, valid=usable),
           "registration": truth.registration_error(k), "pores": pores, "phases": phases}
    return row, {"displacement_voxels": combined, "error_voxels": error, "strain": true_strain}


def subvolume_study(run, truth, settings, shape):
    """DVC scores at every subvolume edge, averaged over the compressed steps (largest edge first)."""
    rows = []
    for edge in sorted(settings.subvolumes_voxels, reverse=True):
        per_step = [score_dvc(truth, run.dvc(k, edge), k, shape)[0] for k in run.steps[1:]]
        rows.append({"edge_voxels": edge, "edge_um": edge * settings.voxel_size_um,
                     "mean_cc": float(np.nanmean([r["mean_cc"] for r in per_step])),
                     "rms_error_voxels": float(np.nanmean([r["rms_error_voxels"] for r in per_step])),
                     "ok_fraction": float(np.mean([r["ok_fraction"] for r in per_step]))})
    return rows


def score_run(run, *, arch="cpu", progress=None):
    """Score every analysis output of a run against its truth.

    Parameters
    ----------
    run : synthcal.dataset.Run
        A run whose stages up to ``pores`` are complete.
    arch : {"cpu", "gpu"}
        Taichi backend of the truth's CPSD.
    progress : callable, optional

    Returns
    -------
    scores : dict
        The content of ``scores.json`` (NaN where nothing was scored).
    node_truth : dict
        ``step{k}_displacement_voxels``, ``step{k}_error_voxels`` and
        ``step{k}_strain`` at the DVC nodes of step ``k``.
    """
    s, settings = run.scenario, run.analysis_settings()
    truth = truth_frame(run)
    shape = run.grid.recon_shape
    steps, node_truth = [], {}
    for k in run.steps[1:]:
        row, arrays = _score_step(run, truth, k, settings, shape, arch)
        steps.append(row)
        node_truth.update({f"{step_name(k)}_{name}": value for name, value in arrays.items()})
        if progress:
            progress(k / s.n_steps)
    reference_pores, reference_phases = _pore_scores(run.pore_summary()[0], *truth_pores(run, 0, settings, arch))
    scores = {"scenario": s.name, "seed": s.seed, "voxel_size_um": truth.v, "steps": steps,
              "reference": {"step": 0, "pores": reference_pores, "phases": reference_phases},
              "subvolume_study": subvolume_study(run, truth, settings, shape) if settings.study_subvolumes_voxels
              else []}
    study = scores["subvolume_study"]
    if study:
        by_cc = max(study, key=lambda r: r["mean_cc"] if np.isfinite(r["mean_cc"]) else -2)
        by_error = min(study, key=lambda r: r["rms_error_voxels"] if np.isfinite(r["rms_error_voxels"]) else 1e9)
        scores["subvolume_choice"] = {"highest_mean_cc_edge_um": by_cc["edge_um"],
                                      "lowest_rms_error_edge_um": by_error["edge_um"]}
    return finite(scores), node_truth


def finite(obj):
    """JSON has no NaN: the same structure with ``None`` for numbers that are not finite."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj
