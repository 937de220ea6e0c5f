"""The figures and page of a finished sweep (``synthcal sweep --report DIR``).

Reads ``DIR/results.parquet`` and ``DIR/sweep.json`` (written by
:func:`synthcal.sweep.run_sweep`) and writes ``DIR/report/index.html`` with:

- every score per load step, over all the runs;
- for each swept parameter but the seed, each score against the parameter's
  value: the median of the runs with that value and, as a bar, their full
  range (the spread over seeds and over the other parameters), one series
  per load step. A numeric parameter with more than :data:`MAX_LEVELS`
  values (random draws) shows every run as a point instead.

Figures are matplotlib ``Figure`` objects saved directly, as the run report's.
"""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from synthcal.sweep import read_results
from validation.figures import _save
from validation.report import write_index

METRICS = (
    ("dvc.rms_error_um", None, "DVC RMS error (µm)"),
    ("dvc.median_cc", None, "median CC"),
    ("strain.rms_error", None, "strain RMS error"),
    ("registration.error_voxels", None, "registration error (voxels)"),
    ("pores.mean_radius_um", "pores.truth_mean_radius_um", "mean pore radius − truth (µm)"),
    ("phases.inactive_fraction", "phases.truth_inactive_fraction", "inactive fraction − truth"),
)
"""Scores drawn: (column, truth column subtracted or None, axis label)."""
MAX_LEVELS = 12
"""A numeric parameter with more distinct values than this is drawn run by run (a scatter)."""


def metrics(table):
    """``(label, values per row)`` of each score of :data:`METRICS` the table has numbers for."""
    out = []
    for column, truth, label in METRICS:
        if column not in table or (truth and truth not in table):
            continue
        values = table[column].to_numpy(float) - (table[truth].to_numpy(float) if truth else 0.0)
        if np.isfinite(values).any():
            out.append((label, values))
    return out


def level_stats(values, at_level):
    """Median, smallest and largest finite value of ``values[at_level]`` (NaN when there is none)."""
    v = values[at_level]
    v = v[np.isfinite(v)]
    return (float(np.median(v)), float(v.min()), float(v.max())) if v.size else (np.nan, np.nan, np.nan)


def _panels(n):
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = Figure(figsize=(4.3 * cols, 3.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _by_level(ax, x, values, steps):
    """Median and range at each value of ``x``, one series per load step, values evenly spaced."""
    levels = sorted(x.dropna().unique())
    positions = np.arange(len(levels), dtype=float)
    step_list = sorted(np.unique(steps))
    for j, k in enumerate(step_list):
        stats = np.array([level_stats(values, ((x == level).to_numpy() & (steps == k))) for level in levels])
        med, lo, hi = stats.T if stats.size else (np.array([]),) * 3
        shift = (j - (len(step_list) - 1) / 2) * 0.06  # side by side, so the bars do not hide each other
        ax.errorbar(positions + shift, med, yerr=[med - lo, hi - med], fmt="o-", capsize=3, label=f"step {k}")
    ax.set_xticks(positions, [f"{v:g}" if isinstance(v, (int, float, np.number)) else str(v) for v in levels])


def _scatter(ax, x, values, steps):
    for k in sorted(np.unique(steps)):
        sel = steps == k
        ax.scatter(x.to_numpy(float)[sel], values[sel], s=14, alpha=0.7, label=f"step {k}")


def parameter_figure(table, parameter, path):
    """Every score against one swept parameter (see the module docstring); False when nothing is scored."""
    drawn = metrics(table)
    if not drawn:
        return False
    x, steps = table[parameter], table["step"].to_numpy()
    continuous = x.dtype.kind in "if" and x.nunique() > MAX_LEVELS
    fig, axes = _panels(len(drawn))
    for ax, (label, values) in zip(axes, drawn):
        (_scatter if continuous else _by_level)(ax, x, values, steps)
        ax.set_xlabel(parameter)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    _save(fig, path)
    return True


def steps_figure(table, path):
    """Every score per load step over all runs: median and range. False when nothing is scored."""
    drawn = metrics(table)
    if not drawn:
        return False
    fig, axes = _panels(len(drawn))
    steps = table["step"]
    for ax, (label, values) in zip(axes, drawn):
        _by_level(ax, steps, values, np.zeros(len(table), int))
        ax.lines[-1].set_label("all runs")
        ax.set_xlabel("load step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    return True


def write_sweep_report(sweep_dir):
    """Draw the figures of a finished sweep and write ``SWEEP_DIR/report/index.html``.

    Parameters
    ----------
    sweep_dir : str or Path
        A folder written by ``synthcal sweep`` (``results.parquet``, ``sweep.json``).

    Returns
    -------
    Path
        The page.
    """
    sweep_dir = Path(sweep_dir)
    table, manifest = read_results(sweep_dir)
    out = sweep_dir / "report"
    out.mkdir(exist_ok=True)
    figures = []
    if steps_figure(table, out / "scores_per_step.png"):
        figures.append(("scores_per_step.png", "Scores per load step: median of all runs, bars their full range"))
    for i, parameter in enumerate(p for p in manifest["parameters"] if p != "seed"):
        name = f"parameter_{i}.png"
        if parameter in table and parameter_figure(table, parameter, out / name):
            figures.append((name, f"Scores against {parameter}: median of the runs with each value, bars their "
                                  "full range over seeds and the other parameters (points: one per run)"))
    runs = table.drop_duplicates("run")
    summary = {"sweep_file": manifest["sweep_file"], "base": manifest["base"], "stop_after": manifest["stop_after"],
               "parameters": manifest["parameters"], "runs": len(manifest["runs"]), "rows": len(table),
               "status": {str(k): int(v) for k, v in runs["status"].value_counts().items()},
               "failed": {r["run"]: r["error"] for _, r in runs.iterrows() if r["status"] == "failed"},
               "table": str(sweep_dir / "results.parquet")}
    if not figures:
        summary["figures"] = "none: no run has scores (stop_after before score, or every run failed)"
    texts = [f"# {label}: {path}\n{Path(path).read_text(encoding='utf-8')}" if Path(path).is_file()
             else f"# {label}: {path} (no longer there)\n" for label, path in (("sweep file", manifest["sweep_file"]),
                                                                               ("base scenario", manifest["base"]))]
    write_index(out, title=f"synthcal sweep: {Path(manifest['sweep_file']).name}", scenario_toml="\n".join(texts),
                scores=summary, figures=figures)
    return out / "index.html"
