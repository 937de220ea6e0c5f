"""The report of a run: figures, meshes, and one self-contained HTML page.

:func:`write_report` draws every figure of a run folder and writes
``index.html``. Figures are embedded as data URIs so the page opens from
disk anywhere; the PNG files stay beside it for papers and slides.
"""

import base64
import html
import json
import shutil
from pathlib import Path

import numpy as np

from analysis.layout import step_name
from analysis.io import atomic_output
from analysis.phases import Phase
from analysis.regions import sample_mask
from analysis.strain import cap
from validation import figures as fg
from validation.paper import claims


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


def paper_section(scores):
    """HTML of the paper's table with the truth, per analysis mode (the scenario's first), each row
    followed by what the chain's bias means for the paper's claim. Empty without ``paper_comparison``."""
    comparison = scores.get("paper_comparison")
    if not comparison:
        return ""
    parts = ["<h2>The paper's table, with the truth</h2>",
             "<p>Each number the paper reports, beside what the chain measured on these synthetic scans and "
             "the truth computed from the phantom with the chain's own definitions. The scales differ from the "
             "paper's unless the scenario is the paper's: read the biases, not the values.</p>"]
    columns = ["quantity", "unit", *comparison["columns"]]
    for mode, table in comparison["tables"].items():
        rows = table["rows"]
        parts += [f"<h3>{html.escape(mode)} chain ({html.escape(table['folder'])}/)</h3>", _table(rows, columns),
                  "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in claims(rows)) + "</ul>",
                  "<details><summary>definitions</summary><ul>"
                  + "".join(f"<li>{html.escape(r['quantity'])}: {html.escape(r['definition'])}</li>" for r in rows)
                  + "</ul></details>"]
    return "".join(parts)


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
    parts = [f"<h1>{html.escape(title)}</h1>", paper_section(scores)]
    step_rows = []
    for step in scores.get("steps", []):
        dvc, strain = step.get("dvc", {}), step.get("strain", {})
        pores, phases = step.get("pores", {}), step.get("phases", {})
        step_rows.append({
            "step": step.get("step"), "DVC RMS error (µm)": dvc.get("rms_error_um"),
            "DVC RMS error (voxels)": dvc.get("rms_error_voxels"), "ok fraction": dvc.get("ok_fraction"),
            "median CC": dvc.get("median_cc"),
            "best fit from the truth: RMS error (voxels) / ok": " / ".join(
                _fmt(dvc.get("best_fit", {}).get(key)) for key in ("rms_error_voxels", "ok_fraction")),
            "nodes with fragments": dvc.get("fragments", {}).get("with", {}).get("nodes"),
            "RMS error with / without fragments (voxels)": " / ".join(
                _fmt(dvc.get("fragments", {}).get(side, {}).get("rms_error_voxels")) for side in ("with", "without")),
            "mean CC with / without fragments": " / ".join(
                _fmt(dvc.get("fragments", {}).get(side, {}).get("mean_cc")) for side in ("with", "without")),
            "strain RMS error": strain.get("rms_error"),
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
    with atomic_output(out_dir / "index.html") as tmp:
        tmp.write_text(page, encoding="utf-8")


def strain_mesh(labels, nodes, volumetric, voxel_size_um, cap_value, path_stem):
    """Surface of the segmented solid as PLY and GLB, coloured by the nearest node's volumetric strain.

    Strain is capped at ``cap_value`` (and its opposite) for the colours, as
    :func:`analysis.strain.cap` caps it for display. Returns False when the
    labels hold no surface (nothing written).
    """
    import trimesh
    from matplotlib import colormaps
    from scipy.spatial import cKDTree
    from skimage.measure import marching_cubes

    solid = np.pad(labels != Phase.PORE, 1)
    if solid.all() or not solid.any():
        return False
    verts, faces, _, _ = marching_cubes(solid.astype(np.float32), 0.5)
    verts -= 1
    finite = np.isfinite(volumetric)
    values = np.zeros(len(verts))
    if finite.any():
        values = volumetric[finite][cKDTree(nodes[finite]).query(verts)[1]]
    shown = cap(values, cap_value, -cap_value)
    colours = colormaps["coolwarm"]((shown - cap_value) / (-2 * cap_value))
    mesh = trimesh.Trimesh(vertices=verts[:, ::-1] * voxel_size_um, faces=faces[:, ::-1],
                           vertex_colors=(colours * 255).astype(np.uint8), process=False)
    mesh.export(f"{path_stem}.ply")
    mesh.export(f"{path_stem}.glb")
    return True


def _scan_figures(run, out, labels):
    figs = []
    if run.scenario.output.keep_projections:  # a run may drop them ([output] keep_projections)
        images = []
        for k in run.steps:
            counts, flats, darks = run.projections(k)
            dark = darks.mean(axis=0)
            images.append((counts[len(counts) // 2] - dark) / np.maximum(flats.mean(axis=0) - dark, 1e-6))
        fg.radiographs(images, labels, out / "radiographs.png")
        figs.append(("radiographs.png", "Radiographs at 0° (transmission), per step"))
    fg.virtual_slices(run.volumes(), labels, run.voxel_size_um, out / "virtual_slices.png")
    return figs + [("virtual_slices.png", "Virtual x–z slices through the reconstructions")]


def _dvc_figures(run, out, labels):
    s, v = run.scenario, run.voxel_size_um
    strains, vectors, errors, ccs, err_cc, fragments = [], [], [], [], [], []
    node_truth = run.node_truth()
    for k in run.steps[1:]:
        dvc, strain = run.dvc(k), run.strain(k)
        nodes, ok = dvc["nodes"], dvc["ok"]
        strains.append((nodes, strain["small_strain"][:, 0, 0]))
        vectors.append(dvc["displacement_vox"])
        ccs.append((nodes, dvc["cc"]))
        err = node_truth[f"{step_name(k)}_error_voxels"]
        errors.append((nodes, err))
        err_cc.append((err[ok], dvc["cc"][ok]))
        fragments.append(node_truth[f"{step_name(k)}_fragments"])
    compressed = labels[1:]
    fg.node_maps(strains, compressed, "ε_zz (capped)", out / "strain_maps.png", cmap="coolwarm",
                 vmin=s.dvc.strain_cap, vmax=-s.dvc.strain_cap, vectors=vectors, voxel_size_um=v)
    fg.node_maps(ccs, compressed, "correlation coefficient", out / "cc_maps.png", vmin=0, vmax=1, voxel_size_um=v,
                 marked=fragments)
    fg.node_maps(errors, compressed, "true error (voxels)", out / "dvc_error_maps.png", cmap="magma", vmin=0,
                 voxel_size_um=v, marked=fragments)
    fg.error_vs_cc([e for e, _ in err_cc], [c for _, c in err_cc], compressed, out / "error_vs_cc.png")
    return [("strain_maps.png", "Strain ε_zz on the central node plane with the total displacement"),
            ("cc_maps.png", "Correlation coefficient per node (central plane; circled: subvolume holds "
                            "fragments of cracked particles)"),
            ("dvc_error_maps.png", "DVC error against the truth per node (central plane; circled: subvolume "
                                   "holds fragments)"),
            ("error_vs_cc.png", "True DVC error against correlation coefficient")]


def _downloads(run, out, labels, settings):
    downloads = []
    for k in run.steps[1:]:
        seg = run.segmentation(k)
        region = sample_mask(seg.shape, run.grid.sample_rows[k], settings.edge_exclusion_voxels)
        stem = f"surface_strain_{step_name(k)}"
        if strain_mesh(np.where(region, seg, np.uint8(Phase.PORE)), run.dvc(k)["nodes"], run.strain(k)["volumetric"],
                       run.voxel_size_um, run.scenario.dvc.strain_cap, out / stem):
            downloads += [(f"{stem}.ply", f"solid surface, {labels[k]}, volumetric strain as vertex colour"),
                          (f"{stem}.glb", "the same as glTF binary")]
        vtk = f"{step_name(k)}.vtk"
        shutil.copyfile(run.folder("dvc") / vtk, out / f"dvc_{vtk}")
        downloads.append((f"dvc_{vtk}", f"DVC node field, {labels[k]}, for ParaView (failed nodes: NaN, see status)"))
    return downloads


def write_report(run, out):
    """Every figure, mesh and the page of a scored run, into the folder ``out``.

    Parameters
    ----------
    run : synthcal.dataset.Run
        A run scored up to ``validation/scores.json``.
    out : Path
        Report folder (exists).
    """
    s, out = run.scenario, Path(out)
    scores = run.scores()
    labels = [f"step {k} (stage {s.compression.steps_um[k]:g} µm)" for k in run.steps]
    figs = _scan_figures(run, out, labels)
    if len(run.steps) > 1:
        figs += _dvc_figures(run, out, labels)
    shutil.copyfile(run.folder("pores") / "cpsd.png", out / "cpsd.png")
    figs.append(("cpsd.png", "Continuous pore size distribution of every step"))
    table = run.force_displacement()
    scans_um = [rec.travel_um for rec in run.trajectory().steps]
    fg.force_displacement(table[:, 1], table[:, 2], scans_um, out / "force_displacement.png")
    figs.append(("force_displacement.png", "Head force against head travel (DEM)"))
    study = scores.get("subvolume_study", [])
    if study:
        fg.subvolume_study([r["edge_um"] for r in study], [r["mean_cc"] for r in study],
                           [r["rms_error_voxels"] for r in study], out / "subvolume_study.png")
        figs.append(("subvolume_study.png", "Mean CC and true RMS error against subvolume edge"))
    downloads = _downloads(run, out, labels, run.analysis_settings())
    write_index(out, title=f"synthcal report: {s.name}", scenario_toml=(run.path / "scenario.toml").read_text(),
                scores=scores, figures=figs, downloads=downloads)
