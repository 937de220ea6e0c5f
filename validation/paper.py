"""The seed paper's table, with the truth beside it.

The paper reports, for the uncompressed scan (step 0) and the two compression
steps (A, B): the mean pore radius of its CPSD ("ca. 2 µm to 1.7 µm and
1.5 µm"), the inactive phase fraction (68 %, 58 %, 55 %), and the subvolume
edge it chose (8 µm, "second highest average correlation coefficient (CC) of
0.81" among edges 16 → 4 µm in 2 µm steps). :func:`paper_rows` sets beside
each number what the chain measured on the synthetic scans and the truth
computed from the phantom with the same definitions; :func:`claims` says in
one sentence per row what the chain's bias means for the paper's claim.
"""

import numpy as np

from analysis.dvc import Status

PAPER = {
    "mean_pore_radius_um": (2.0, 1.7, 1.5),
    "inactive_fraction": (0.68, 0.58, 0.55),
    "mean_cc": 0.81,
    "cc_rank": 2,
    "study_edges_um": (16.0, 14.0, 12.0, 10.0, 8.0, 6.0, 4.0),
    "chosen_edge_um": 8.0,
}
"""The paper's numbers (its Results and Methods), steps 0, A, B."""

COLUMNS = ("paper", "measured", "truth", "measured_minus_truth")
"""Columns of every row (besides its name, quantity, unit and definition)."""

STEP_NAMES = ("0", "A", "B")


def _row(name, quantity, unit, definition, paper, measured, truth):
    diff = None if measured is None or truth is None else measured - truth
    return {"row": name, "quantity": quantity, "unit": unit, "definition": definition, "paper": paper,
            "measured": measured, "truth": truth, "measured_minus_truth": diff}


def paper_mean_cc(field):
    """Mean CC of a DVC field the paper's way: over every subvolume correlated, 0 where no correlation
    could be computed (flat, or left the volume where the chain stops such a subvolume: best mode; paper mode
    correlates it against nulls), the head and the faces of the field of view included.

    Paper mode correlates every tile of the volume, so this is over every
    subvolume of the dataset; the best mode never correlates the subvolumes
    it masks (outside the sample rows), which are left out.
    """
    tried = field["status"] != Status.MASKED
    return np.asarray(field["cc"], float)[tried]


def paper_rows(run, scores):
    """The rows of the paper's table for the analysis of one run folder (one mode).

    Parameters
    ----------
    run : synthcal.dataset.Run
        The run, read through the mode's folders.
    scores : dict
        Its scores (steps, reference, subvolume_study) with the same mode's truth.

    Returns
    -------
    list of dict
        Keys ``row, quantity, unit, definition`` and :data:`COLUMNS`; None
        where a value does not exist (e.g. a step the scenario lacks).
    """
    settings = run.analysis_settings()
    summary = run.pore_summary()
    per_step = {0: scores["reference"], **{row["step"]: row for row in scores["steps"]}}
    pore_phases = " and ".join(summary[0]["pore_phases"])
    rows = []
    for k, name in enumerate(STEP_NAMES):
        block = per_step.get(k)
        rows.append(_row(
            f"mean_pore_radius_step{name}", f"mean pore radius, step {name}", "um",
            f"pore-volume-weighted mean radius of the CPSD of the segmented {pore_phases} in the analysed region "
            f"({summary[0]['cpsd']})", PAPER["mean_pore_radius_um"][k],
            block and block["pores"]["mean_radius_um"], block and block["pores"]["truth_mean_radius_um"]))
    for k, name in enumerate(STEP_NAMES):
        block = per_step.get(k)
        rows.append(_row(
            f"inactive_fraction_step{name}", f"inactive (non-NMC) fraction, step {name}", "1",
            "1 - NMC fraction of the analysed region", PAPER["inactive_fraction"][k],
            block and block["phases"]["inactive_fraction"], block and block["phases"]["truth_inactive_fraction"]))
    edges = sorted(settings.subvolumes_voxels, reverse=True)
    pooled = {e: np.concatenate([paper_mean_cc(run.dvc(k, e)) for k in run.steps[1:]]) for e in edges} \
        if len(run.steps) > 1 else {}
    mean_cc = {e: float(cc.mean()) for e, cc in pooled.items() if cc.size}
    chosen = settings.subvolume_voxels
    edge_um = chosen * settings.voxel_size_um
    rows.append(_row("mean_cc_chosen_edge", f"mean CC at the chosen edge ({edge_um:g} um; paper 8 um)", "1",
                     "mean CC over every subvolume correlated at the chosen edge, both compressed steps, 0 where "
                     "no correlation could be computed (no truth: a CC says how alike, not how right)",
                     PAPER["mean_cc"], mean_cc.get(chosen), None))
    error = {r["edge_voxels"]: r["rms_error_voxels"] for r in scores.get("subvolume_study", [])
             if r["rms_error_voxels"] is not None and np.isfinite(r["rms_error_voxels"])}
    rank = truth_rank = None
    if len(edges) > 1 and chosen in mean_cc:
        rank = 1 + sum(value > mean_cc[chosen] for value in mean_cc.values())
    if len(edges) > 1 and chosen in error:
        truth_rank = 1 + sum(value < error[chosen] for value in error.values())
    rows.append(_row("cc_rank_chosen_edge", f"rank of the chosen edge by mean CC among {len(edges)} edges "
                     f"(paper: among {len(PAPER['study_edges_um'])})", "rank",
                     "1 = highest mean CC (as above) among the subvolume study's edges; truth: the chosen edge's "
                     "rank by true RMS error, 1 = lowest", PAPER["cc_rank"], rank, truth_rank))
    return rows


def _find(rows, name):
    return next(r for r in rows if r["row"] == name)


def _change_sentence(rows, quantity, name, unit, scale, paper_unit):
    first, row = _find(rows, f"{quantity}_step0"), _find(rows, f"{quantity}_step{name}")
    if any(r[c] is None for r in (first, row) for c in ("measured", "truth")):
        return f"Step {name}: not measured in this run."
    measured = scale * (row["measured"] - first["measured"])
    truth = scale * (row["truth"] - first["truth"])
    paper = scale * (row["paper"] - first["paper"])
    return (f"From step 0 to step {name} the chain reads a change of {measured:+.2f} {unit} where the truth "
            f"changes by {truth:+.2f} {unit}, so the chain's bias adds {measured - truth:+.2f} {unit} to the "
            f"change it reports (the paper's change: {paper:+.2f} {paper_unit}).")


def claims(rows):
    """One sentence per row: what the chain's bias means for the paper's claim.

    Parameters
    ----------
    rows : list of dict
        From :func:`paper_rows` (or ``scores.json``).

    Returns
    -------
    list of str
        In the order of ``rows``.
    """
    out = []
    for row in rows:
        name = row["row"]
        if name == "mean_pore_radius_step0" or name == "inactive_fraction_step0":
            radius = name.startswith("mean_pore")
            scale, unit = (1.0, "um") if radius else (100.0, "points")
            if row["measured"] is None or not row["truth"]:
                out.append("Step 0: not measured in this run.")
                continue
            bias = row["measured_minus_truth"]
            what = "the mean pore radius" if radius else "the inactive fraction"
            out.append(f"At step 0 the chain reads {what} {scale * bias:+.2f} {unit} off the truth "
                       f"({bias / row['truth']:+.0%} of it): the paper's {scale * row['paper']:g}"
                       f"{' um' if radius else ' %'} carries a bias of this relative size if its chain erred as "
                       f"this one does.")
        elif name.startswith("mean_pore_radius_step"):
            out.append(_change_sentence(rows, "mean_pore_radius", name[-1], "um", 1.0, "um"))
        elif name.startswith("inactive_fraction_step"):
            out.append(_change_sentence(rows, "inactive_fraction", name[-1], "points", 100.0, "points"))
        elif name == "mean_cc_chosen_edge":
            if row["measured"] is None:
                out.append("No compressed step: no CC.")
                continue
            out.append(f"The chain's mean CC at the chosen edge is {row['measured']:.2f} against the paper's "
                       f"{row['paper']:.2f}; a mean CC says how alike the subvolumes stay, not how right their "
                       f"vectors are, so it cannot support the accuracy of the paper's field by itself.")
        elif name == "cc_rank_chosen_edge":
            if row["measured"] is None or row["truth"] is None:
                out.append("No subvolume study in this run: no ranking.")
                continue
            agree = ("the CC ranking and the true error agree" if row["measured"] == row["truth"]
                     else "choosing by mean CC does not pick by accuracy")
            out.append(f"The chosen edge ranks {row['measured']} by mean CC (paper: {row['paper']}) and "
                       f"{row['truth']} by true error: {agree}.")
    return out
