"""Write and read a DEM trajectory folder (the run folder's ``dem/``).

Layout::

    info.json                diagnostics (see Trajectory.info), contact height
    step_000.npz ...         one per load step: positions_um (N,3 z-y-x),
                             quaternions (N,4 w,qx,qy,qz), radii_um, kinds,
                             velocities_um_s, angular_velocities_rad_s, fixed,
                             bonds (M,2), bonds_intact, bond_radius_um (M,),
                             root_ids, root_offsets_um (N,3), root_radii_um,
                             cut_planes (N,8,4): each particle's piece
                             (synthcal.pieces; fragments of cracked NMC),
                             travel_um, stage_um, head_z_um, time_s
    force_displacement.csv   time_s, head_travel_um, force_n, stage_displacement_um
    energies.csv             time_s, kinetic_j, elastic_j
    particles_000.ply/.glb   low-poly particle surfaces per step (x-y-z
                             vertex order, µm) for viewing

The folder appears only when complete (``analysis.io.atomic_output``). The
parameters that made it are the run's ``scenario.toml``.
"""

import json
from pathlib import Path

import numpy as np
import trimesh

from analysis.io import atomic_output
from synthcal.dem.protocol import Record, Trajectory
from synthcal.pieces import piece_surface
from synthcal.rotations import rotation_matrices_zyx

_ARRAYS = ("positions_um", "quaternions", "radii_um", "kinds", "velocities_um_s",
           "angular_velocities_rad_s", "fixed", "bonds", "bonds_intact", "bond_radius_um",
           "root_ids", "root_offsets_um", "root_radii_um", "cut_planes")
_SCALARS = ("travel_um", "stage_um", "head_z_um", "time_s")


WALL_CLOCK_KEYS = ("wall_time_s", "deposition_s", "cut_s", "compression_s")


def particle_mesh(positions_um, radii_um, subdivisions=1, quaternions=None, pieces=None):
    """All particles as one triangle mesh, vertices x-y-z in µm.

    Whole particles are icospheres; fragments of cracked particles
    (``pieces`` with their ``quaternions``) are drawn as their pieces of the
    parent sphere (:func:`synthcal.pieces.piece_surface`), placed and turned
    as the phantom places them.
    """
    ico = trimesh.creation.icosphere(subdivisions=subdivisions)
    centres = np.asarray(positions_um, np.float64)
    radii = np.asarray(radii_um, np.float64)
    broken = np.zeros(len(radii), bool) if pieces is None else pieces.n_planes > 0
    whole = np.flatnonzero(~broken)
    verts = [(ico.vertices[None] * radii[whole, None, None] + centres[whole, None, ::-1]).reshape(-1, 3)]
    faces = [(ico.faces[None] + (np.arange(len(whole)) * len(ico.vertices))[:, None, None]).reshape(-1, 3)]
    n_verts = len(verts[0])
    if broken.any():
        rot = rotation_matrices_zyx(np.asarray(quaternions)[broken])
        for i, r in zip(np.flatnonzero(broken), rot):
            body, tri = piece_surface(pieces.root_radii_um[i], pieces.planes[i])
            # root-body point b sits at c + R (root_offset + b), as in the phantom
            world_zyx = centres[i] + (pieces.root_offsets_um[i] + body) @ r.T
            verts.append(world_zyx[:, ::-1])
            faces.append(tri[:, ::-1] + n_verts)  # z-y-x -> x-y-z mirrors, so the winding turns
            n_verts += len(world_zyx)
    return trimesh.Trimesh(vertices=np.concatenate(verts), faces=np.concatenate(faces), process=False)


def write_trajectory(traj, folder):
    """Write ``traj`` into ``folder`` (replaced if it exists).

    Parameters
    ----------
    traj : Trajectory
    folder : str or Path
    """
    with atomic_output(folder, folder=True) as tmp:
        # Wall-clock timings vary from run to run; files must not (same scenario, same bytes).
        info = {k: v for k, v in traj.info.items() if k not in WALL_CLOCK_KEYS}
        (tmp / "info.json").write_text(json.dumps({"contact_z_um": traj.contact_z_um, **info}, indent=1))
        for k, rec in enumerate(traj.steps):
            np.savez(tmp / f"step_{k:03d}.npz", **{name: getattr(rec, name) for name in _SCALARS + _ARRAYS})
            mesh = particle_mesh(rec.positions_um, rec.radii_um, quaternions=rec.quaternions, pieces=rec.pieces)
            mesh.export(tmp / f"particles_{k:03d}.ply")
            mesh.export(tmp / f"particles_{k:03d}.glb")
        np.savetxt(tmp / "force_displacement.csv", traj.force_displacement, delimiter=",",
                   header="time_s,head_travel_um,force_n,stage_displacement_um", comments="", fmt="%.10g")
        np.savetxt(tmp / "energies.csv", traj.energies, delimiter=",",
                   header="time_s,kinetic_j,elastic_j", comments="", fmt="%.10g")


def read_trajectory(folder):
    """Read a folder written by :func:`write_trajectory`.

    Returns
    -------
    Trajectory
    """
    folder = Path(folder)
    if not (folder / "info.json").is_file():
        raise ValueError(f"{folder}: expected a DEM trajectory folder with info.json")
    info = json.loads((folder / "info.json").read_text())
    contact = info.pop("contact_z_um")
    steps = []
    for path in sorted(folder.glob("step_*.npz")):
        with np.load(path) as z:
            steps.append(Record(**{name: float(z[name]) for name in _SCALARS}, **{name: z[name] for name in _ARRAYS}))
    fd = np.loadtxt(folder / "force_displacement.csv", delimiter=",", skiprows=1, ndmin=2)
    en = np.loadtxt(folder / "energies.csv", delimiter=",", skiprows=1, ndmin=2)
    return Trajectory(steps=tuple(steps), force_displacement=fd, energies=en, contact_z_um=contact, info=info)
