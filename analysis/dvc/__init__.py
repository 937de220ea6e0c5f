"""Subset-based local digital volume correlation (DVC).

Organised by technique: :mod:`~analysis.dvc.grid` (node grid, subvolume
extraction), :mod:`~analysis.dvc.search` (integer FFT-ZNCC search),
:mod:`~analysis.dvc.interpolate` (cubic B-spline sampling, taichi),
:mod:`~analysis.dvc.gauss_newton` (IC-GN refinement),
:mod:`~analysis.dvc.consistency` (normalised median test against the
neighbours), :mod:`~analysis.dvc.smoothing` (optional gaussian smoothing of
both volumes first) and :mod:`~analysis.dvc.local` (the driver, :func:`correlate`; :func:`refine_nodes`
refines from given starting displacements).
"""

from analysis.dvc.grid import node_grid
from analysis.dvc.local import DVCResult, PreparedPair, Status, correlate, correlate_tiled, refine_nodes

__all__ = ["correlate", "correlate_tiled", "refine_nodes", "PreparedPair", "DVCResult", "Status", "node_grid"]
