"""Discrete-element simulation of electrode pillars (taichi).

``Material`` and ``Simulation`` are the engine (see
:mod:`synthcal.dem.simulation`); :mod:`synthcal.dem.protocol` builds and
compresses a pillar; :mod:`synthcal.dem.io` writes and reads trajectories.
"""

from synthcal.dem.material import Material, ParticleKind
from synthcal.dem.simulation import BondModel, Simulation

__all__ = ["BondModel", "Material", "ParticleKind", "Simulation"]
