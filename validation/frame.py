"""The truth in the analysis' frame, and DVC scores against it.

The analysis works in reconstruction voxels of the reference scan, on
volumes it registered itself; the truth lives on the phantom grid in µm.
:class:`TruthFrame` carries the truth across, undoing the registration
exactly as the analysis did, so that the remaining difference is the
analysis' own error.
"""

import copy

import numpy as np

from analysis.dvc import Status
from synthcal.truth import ParticlePoses, cracked_voxel_counts, mean_solid_displacement_um, true_displacement_um
from validation.score import error_by_cc, error_by_region, vector_error_stats


RULES = ("particle", "subvolume_mean")
"""Truth rules at a DVC node (see :meth:`TruthFrame.truth_at`)."""


class TruthFrame:
    """Truth of one run, sampled where the analysis looks.

    The analysis works in reconstruction voxels of the reference scan; the
    truth lives on the phantom grid in µm. A reconstruction voxel ``p`` is
    phantom voxel ``p + (0, off, off)`` (the field of view is the phantom's
    central columns). The deformed scan of step k shows the material of
    reference point X at ``p + u(X) / v + drift_k``; the registered volume
    shows it at ``M_k^-1`` of that, where ``M_k`` is the rigid transform the
    analysis estimated. So the displacement DVC should find is
    ``M_k^-1(p + u / v + drift_k) - p``: the truth with the registration
    undone exactly as the analysis undid it.
    """

    def __init__(self, grid, radii_um, poses, owner0, drift_voxels, transforms, region, binder=None,
                 bridges0=None):
        """
        Parameters
        ----------
        grid : synthcal.grid.Grid
            Phantom grid, field of view, foil and head.
        radii_um : (N,) ndarray
            Particle radii.
        poses : list of synthcal.truth.ParticlePoses
            One per load step, step 0 the reference.
        owner0 : (nz, ny, nx) int ndarray
            Particle owning each phantom voxel of step 0 (-1: none).
        drift_voxels : (n_steps, 3) array_like
            Simulated rigid drift of each scan, voxels.
        transforms : list of analysis.preprocess.RigidTransform
            Per step, the rigid map the analysis estimated.
        region : tuple of 3 slices
            The reference box registered on, reconstruction voxels.
        binder : synthcal.binder.Binder, optional
            The run's carbon binder; None: the truth is the particles' alone.
        bridges0 : synthcal.binder.BridgeVoxels, optional
            Bridge voxels of the step-0 phantom (bond and weight of each).
        """
        self.grid = grid
        self.v = grid.voxel_size_um
        self.off = np.array([0, grid.fov_offset_voxels, grid.fov_offset_voxels])
        self.origin = np.asarray(grid.origin_um, dtype=float)
        self.radii_um = np.asarray(radii_um)
        self.poses = list(poses)
        self.owner0 = owner0
        self.drift = np.asarray(drift_voxels, dtype=float)
        self.transforms = list(transforms)
        self.region = tuple(region)
        self.binder = binder
        self.bridges0 = bridges0
        self._box_cache = {}

    def seen_by(self, transforms, region):
        """This truth through another analysis' registration of the same scans (e.g. the compared mode's).

        The phantom, the particles and the subvolume truths that
        :meth:`prefetch` keeps are shared, not copied: a box's truth does not
        depend on the registration, so one pass over the phantom serves both.

        Parameters
        ----------
        transforms : list of analysis.preprocess.RigidTransform
        region : tuple of 3 slices
            As for :class:`TruthFrame`.
        """
        other = copy.copy(self)     # shallow: the kept box truths stay one dict
        other.transforms, other.region = list(transforms), tuple(region)
        return other

    def prefetch(self, step, node_sets, frames=()):
        """Compute the subvolume truths of several node fields of one step in one pass over the phantom.

        A pass of :func:`synthcal.truth.mean_solid_displacement_um` (and of
        :func:`synthcal.truth.cracked_voxel_counts`) evaluates the motion of
        every phantom voxel whatever the number of boxes, so the fields of a
        subvolume study, scored one by one, would repeat it per edge. Later
        calls for these fields, and :meth:`registration_error` of the step,
        read the results kept here. Boxes already kept are not computed
        again: when every one is, there is no pass.

        Parameters
        ----------
        step : int
        node_sets : sequence of ((N, 3) ndarray, int)
            Each field's nodes (reconstruction voxels) and subvolume edge (voxels).
        frames : sequence of TruthFrame
            Frames made from this one by :meth:`seen_by`: their registration
            boxes are computed in the same pass.
        """
        boxes = [self.boxes(nodes, edge) for nodes, edge in node_sets] + \
            [f._registration_box() for f in (self, *frames)]
        boxes = [b for b in boxes if any((what, step, b.tobytes()) not in self._box_cache
                                         for what in ("solid", "cracked"))]
        if not boxes:
            return
        every = np.concatenate(boxes)
        values = {what: self._per_box(what, step, every) for what in ("solid", "cracked")}
        starts = np.cumsum([0] + [len(b) for b in boxes])
        for b, lo, hi in zip(boxes, starts[:-1], starts[1:]):
            for what, value in values.items():
                self._box_cache[what, step, b.tobytes()] = value[lo:hi]

    def _per_box(self, what, step, boxes):
        """Per box of step ``step``: the mean solid displacement in µm (``what="solid"``) or the number of
        voxels of cracked particles (``"cracked"``), from :meth:`prefetch` where it computed them."""
        kept = self._box_cache.get((what, step, boxes.tobytes()))
        if kept is not None:
            return kept
        ref, cur = self.poses[0], self.poses[step]
        if what == "cracked":
            return cracked_voxel_counts(self.owner0, ref, cur, boxes)
        return mean_solid_displacement_um(self.owner0, ref, cur, boxes, voxel_size_um=self.v, origin_um=self.origin,
                                          bridges=self.bridges0)

    def points_um(self, nodes):
        return self.grid.recon_to_world_um(nodes)

    def boxes(self, nodes, edge):
        lo = np.rint(np.asarray(nodes, float)).astype(int) + self.off - edge // 2
        return np.column_stack([lo[:, 0], lo[:, 0] + edge, lo[:, 1], lo[:, 1] + edge, lo[:, 2], lo[:, 2] + edge])

    def world_displacement_um(self, nodes, step, edge):
        """True displacement (µm) at node centres (NaN in pores) and of the subvolume's solid."""
        ref, cur = self.poses[0], self.poses[step]
        centre = true_displacement_um(self.points_um(nodes), ref, cur, self.radii_um, binder=self.binder)
        return centre, self._per_box("solid", step, self.boxes(nodes, edge))

    def fragment_nodes(self, nodes, step, edge):
        """(N,) bool: the node's subvolume (reference frame) holds material of particles cracked by ``step``."""
        return self._per_box("cracked", step, self.boxes(nodes, edge)) > 0

    def as_analysed(self, nodes, u_um, step):
        """World displacement (µm) -> what DVC on the registered volume should find (voxels)."""
        seen = np.asarray(nodes, float) + u_um / self.v + self.drift[step]
        return self.transforms[step].inverse().apply(seen) - nodes

    def dvc_truth(self, nodes, step, edge):
        """Truth at DVC nodes, voxels: (centre-particle rule, subvolume-mean rule, combined)."""
        centre, solid = self.world_displacement_um(nodes, step, edge)
        centre_v = self.as_analysed(nodes, centre, step)
        solid_v = self.as_analysed(nodes, solid, step)
        combined = np.where(np.isfinite(centre_v), centre_v, solid_v)
        return centre_v, solid_v, combined

    def truth_at(self, points, step, *, rule="particle", edge_voxels=None, registered=False):
        """Truth at reference points (reconstruction voxels, z-y-x), voxels.

        Parameters
        ----------
        points : (N, 3) array_like
        step : int
        rule : {"particle", "subvolume_mean"}
            ``"particle"``: the motion of the particle at the point; where the
            point is in a pore, the subvolume-mean rule when ``edge_voxels`` is
            given (the rule the scores use), else NaN. ``"subvolume_mean"``:
            the mean motion of the solid in the cube of ``edge_voxels`` around
            the point (rounded to a voxel).
        edge_voxels : int, optional
        registered : bool
            False: the frame of the two reconstructions (what any DVC between
            the scans measures, drift included). True: the frame after the
            analysis' registration (what synthcal's DVC on registered volumes
            measures).
        """
        if rule not in RULES:
            raise ValueError(f"rule: expected one of {', '.join(RULES)}, got {rule!r}")
        if rule == "subvolume_mean" and edge_voxels is None:
            raise ValueError("edge_voxels: the subvolume_mean rule needs a subvolume edge")
        points = np.asarray(points, dtype=float).reshape(-1, 3)
        centre, solid = self.world_displacement_um(points, step, int(edge_voxels or 1))
        u_um = solid if rule == "subvolume_mean" else centre
        if rule == "particle" and edge_voxels is not None:
            u_um = np.where(np.isfinite(centre), centre, solid)
        if registered:
            return self.as_analysed(points, u_um, step)
        return u_um / self.v + self.drift[step]

    def _registration_region(self):
        """The registration region's (start, stop) per axis, reconstruction voxels (3, 2)."""
        return np.array([[r.start, r.stop] for r in self.region])

    def _registration_box(self):
        """The registration region as a phantom box (1, 6)."""
        return (self._registration_region() + self.off[:, None]).reshape(1, 6)

    def registration_error(self, step):
        """Distance (voxels) between the estimated and the true map of the region centre."""
        region = self._registration_region()
        u = self._per_box("solid", step, self._registration_box())[0]
        centre = (region[:, 0] + region[:, 1] - 1) / 2.0
        estimated = self.transforms[step].apply(centre)
        true = centre + u / self.v + self.drift[step]
        return {"error_voxels": float(np.linalg.norm(estimated - true)),
                "estimated_shift_voxels": (estimated - centre).tolist(),
                "true_shift_voxels": (true - centre).tolist(),
                "drift_voxels": self.drift[step].tolist(), "cc": self.transforms[step].cc}


def truth_frame(run):
    """The :class:`TruthFrame` of a run folder (a :class:`synthcal.dataset.Run`)."""
    trajectory = run.trajectory()
    transforms, region = run.registration()
    return TruthFrame(grid=run.grid, radii_um=trajectory.steps[0].radii_um,
                      poses=[ParticlePoses(st.positions_um, st.quaternions, st.bonds_intact, st.pieces)
                             for st in trajectory.steps],
                      owner0=np.asarray(run.owner(0)), drift_voxels=run.drift_voxels(), transforms=transforms,
                      region=region, binder=run.binder(), bridges0=run.bridges(0))


def node_regions(nodes, grid, shape, edge):
    """Where each DVC node lies: near the head, near a side of the field of view, or in the bulk.

    Parameters
    ----------
    nodes : (N, 3) ndarray
        Node positions (z, y, x), voxels of the reconstruction.
    grid : synthcal.grid.Grid
        The run's grid (``head_rows``: the head's rows at step 0).
    shape : tuple of 3 int
        Reconstruction shape.
    edge : int
        Subvolume edge, voxels: a node is near the head from one edge below the head's first row, near
        a side within one edge of it.

    Returns
    -------
    dict of str -> (N,) bool ndarray
        ``near_head``, ``near_fov_edge`` (not near the head) and ``bulk``, disjoint.
    """
    near_head = nodes[:, 0] >= grid.head_rows[0] - edge
    near_edge = ((nodes[:, 1] < edge) | (nodes[:, 1] > shape[1] - 1 - edge)
                 | (nodes[:, 2] < edge) | (nodes[:, 2] > shape[2] - 1 - edge))
    return {"near_head": near_head, "near_fov_edge": near_edge & ~near_head, "bulk": ~near_head & ~near_edge}


def score_dvc(truth, field, step, shape, rule="particle"):
    """DVC scores of one node field against the truth (see TruthFrame).

    Parameters
    ----------
    truth : TruthFrame
    field : dict
        ``nodes``, ``residual_displacement_vox`` (on the registered volumes),
        ``ok``, ``cc``, ``status``, ``subvolume_voxels``.
    step : int
    shape : tuple of 3 int
        Reconstruction shape (for the node regions).
    rule : {"particle", "subvolume_mean"}
        The truth the main statistics use (both are reported too).

    Returns
    -------
    stats : dict
        ``fragments`` splits the error and the mean CC between nodes whose
        subvolume holds fragments of cracked particles (``with``) and the
        rest (``without``).
    truth : (N, 3) ndarray
        The truth of ``rule`` at the nodes, registered frame, voxels.
    error : (N,) ndarray
        Error norm per node (NaN where not ok or no truth).
    fragments : (N,) bool
        Nodes whose subvolume holds fragments (:meth:`TruthFrame.fragment_nodes`).
    """
    if rule not in RULES:
        raise ValueError(f"rule: expected one of {', '.join(RULES)}, got {rule!r}")
    # the residual on the registered volumes: the truth is undone the same way (see TruthFrame)
    nodes, measured, ok, cc = field["nodes"], field["residual_displacement_vox"], field["ok"], field["cc"]
    edge = int(field["subvolume_voxels"])
    centre, solid, combined = truth.dvc_truth(nodes, step, edge)
    if rule == "subvolume_mean":
        combined = solid
    v = truth.v
    stats = vector_error_stats(measured, combined, v, valid=ok)
    status = field["status"]
    tried = status != Status.MASKED
    # CC means something only where the subvolume had texture and stayed inside the volume
    correlated = tried & (status != Status.OUTSIDE) & (status != Status.FLAT)
    stats.update({
        "ok_fraction": float(ok[tried].mean()) if tried.any() else 0.0,
        "median_cc": float(np.median(cc[correlated])) if correlated.any() else float("nan"),
        "mean_cc": float(np.mean(cc[correlated])) if correlated.any() else float("nan"),
        "nodes": int(len(nodes)), "scored_nodes": int(np.sum(ok & np.all(np.isfinite(combined), axis=1))),
        "truth_rule": ("particle at the node centre; subvolume solid mean where the centre is pore"
                       if rule == "particle" else "mean of the subvolume's solid"),
        "centre_rule": vector_error_stats(measured, centre, v, valid=ok),
        "subvolume_mean_rule": vector_error_stats(measured, solid, v, valid=ok),
    })
    error = np.where(ok, np.linalg.norm(measured - combined, axis=1), np.nan)
    stats["error_by_cc"] = error_by_cc(error, cc)
    stats["error_by_region"] = error_by_region(error, node_regions(nodes, truth.grid, shape, edge))
    fragments = truth.fragment_nodes(nodes, step, edge)
    stats["fragments"] = {name: {**vector_error_stats(measured, combined, v, valid=ok & where),
                                 "nodes": int(where.sum()),
                                 "mean_cc": float(np.mean(cc[correlated & where])) if (correlated & where).any()
                                 else float("nan")}
                          for name, where in (("with", fragments), ("without", ~fragments))}
    return stats, combined, error, fragments


