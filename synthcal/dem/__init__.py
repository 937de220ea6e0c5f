"""Discrete-element simulation of electrode pillars (taichi).

``Material`` and ``Simulation`` are the engine (see
:mod:`synthcal.dem.simulation`); :mod:`synthcal.dem.protocol` builds and
compresses a pillar; :mod:`synthcal.dem.fracture` breaks NMC particles
into fragments; :mod:`synthcal.dem.io` writes and reads trajectories.
"""

from synthcal.dem.fracture import Breaker, FractureModel
from synthcal.dem.material import Material, ParticleKind
from synthcal.dem.simulation import BondModel, Simulation

__all__ = ["BondModel", "Breaker", "FractureModel", "Material", "ParticleKind", "Simulation"]
