"""The report page: one self-contained HTML file with the scores and figures.

Figures are embedded as data URIs so the page opens from disk anywhere; the
PNG files stay beside it for papers and slides.
"""

import base64
import html
import json
from pathlib import Path


def _table(rows, columns):
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return html.escape(str(value)) if value is not None else ""


def write_index(out_dir, *, title, scenario_toml, scores, figures, downloads=()):
    """Write ``out_dir/index.html``.

    Parameters
    ----------
    out_dir : Path
        Report folder; the PNGs named in ``figures`` are in it.
    title : str
    scenario_toml : str
        The resolved scenario, shown verbatim.
    scores : dict
        The content of ``scores.json``.
    figures : list of (file name, caption)
    downloads : list of (file name, caption)
        Other files of the report folder (meshes, VTK) linked from the page.
    """
    out_dir = Path(out_dir)
    parts = [f"<h1>{html.escape(title)}</h1>"]
    step_rows = []
    for step in scores.get("steps", []):
        dvc, strain = step.get("dvc", {}), step.get("strain", {})
        pores, phases = step.get("pores", {}), step.get("phases", {})
        step_rows.append({
            "step": step.get("step"), "DVC RMS error (µm)": dvc.get("rms_error_um"),
            "DVC RMS error (voxels)": dvc.get("rms_error_voxels"), "ok fraction": dvc.get("ok_fraction"),
            "median CC": dvc.get("median_cc"), "strain RMS error": strain.get("rms_error"),
            "registration error (voxels)": step.get("registration", {}).get("error_voxels"),
            "mean pore radius (µm)": pores.get("mean_radius_um"),
            "truth (µm)": pores.get("truth_mean_radius_um"),
            "inactive fraction": phases.get("inactive_fraction"),
            "truth inactive": phases.get("truth_inactive_fraction"),
        })
    if step_rows:
        parts += ["<h2>Scores per load step</h2>", _table(step_rows, list(step_rows[0]))]
    study = scores.get("subvolume_study", [])
    if study:
        parts += ["<h2>Subvolume study</h2>", _table(study, list(study[0]))]
    for name, caption in figures:
        data = base64.b64encode((out_dir / name).read_bytes()).decode()
        parts.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{html.escape(caption)} ({html.escape(name)})</figcaption></figure>")
    if downloads:
        items = "".join(f'<li><a href="{html.escape(n)}">{html.escape(n)}</a> – {html.escape(c)}</li>'
                        for n, c in downloads)
        parts += ["<h2>Meshes and fields</h2>", f"<ul>{items}</ul>"]
    parts += ["<h2>Scenario</h2>", f"<pre>{html.escape(scenario_toml)}</pre>",
              "<h2>All scores</h2>", f"<pre>{html.escape(json.dumps(scores, indent=1))}</pre>"]
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;"
             "font-size:90%}figure{margin:1.5em 0}img{max-width:100%}pre{background:#f6f6f6;padding:1em;"
             "overflow:auto;font-size:80%}")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
    (out_dir / "index.html").write_text(page, encoding="utf-8")
