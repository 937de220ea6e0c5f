"""The stages of a synthetic experiment, as the pipeline runs them.

This module and :mod:`synthcal.pipeline` are the top floor: they map scenario
sections onto the arguments of the stage functions in ``synthcal``,
``analysis`` and ``validation`` and write their results into the run folder.
Every stage reads only its upstream stages' folders and writes only ``ctx.out``.
"""

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    Attributes
    ----------
    name : str
        Used on the command line (``--only``, ``--from``).
    folder : str
        Output folder, relative to the run folder.
    sections : tuple of str
        Scenario sections whose values the stage reads.
    upstream : tuple of str
        Stages whose outputs it reads.
    what : str
        What it does, for the progress line.
    run : callable
        ``run(ctx)``; writes into ``ctx.out``.
    """

    name: str
    folder: str
    sections: tuple
    upstream: tuple
    what: str
    run: object


@dataclasses.dataclass
class StageContext:
    """What a stage function gets: the scenario, where to read and write."""

    scenario: object
    run_dir: Path
    out: Path
    arch: str
    progress: object

    def input(self, stage_name):
        """Folder of an upstream stage's outputs."""
        return self.run_dir / STAGES_BY_NAME[stage_name].folder


class NotBuilt(Exception):
    """A stage whose capability does not exist yet; reported, never faked."""


def _not_built(what):
    def run(ctx):
        raise NotBuilt(what)
    return run


STAGES = (
    Stage("dem", "dem", ("particles", "electrode", "pillar", "dem", "compression"), (),
          "packing and compressing the pillar", _not_built("synthcal.dem")),
    Stage("phantom", "truth", ("particles", "imaging"), ("dem",),
          "voxelising particles into phantoms", _not_built("synthcal.phantom")),
    Stage("projections", "projections", ("imaging",), ("phantom",),
          "simulating the nano-CT scans", _not_built("synthcal.xray")),
    Stage("reconstruct", "volumes", ("imaging", "reconstruction"), ("projections",),
          "reconstructing the tomograms", _not_built("analysis.reconstruct")),
    Stage("preprocess", "analysis/preprocess", ("dvc",), ("reconstruct",),
          "contrast matching, median filter, registration", _not_built("analysis.preprocess")),
    Stage("dvc", "analysis/dvc", ("dvc", "imaging"), ("preprocess",),
          "digital volume correlation", _not_built("analysis.dvc")),
    Stage("strain", "analysis/strain", ("dvc",), ("dvc",),
          "strain from the DVC field", _not_built("analysis.strain")),
    Stage("pores", "analysis/pores", ("pores", "imaging"), ("preprocess",),
          "segmentation, CPSD and phase fractions", _not_built("analysis.pores")),
    Stage("score", "validation", ("validation", "dvc", "pores"), ("phantom", "preprocess", "dvc", "strain", "pores"),
          "scoring the analysis against the truth", _not_built("validation.score")),
    Stage("report", "report", ("validation",), ("score",),
          "figures, meshes and the report page", _not_built("validation.report")),
)

STAGES_BY_NAME = {s.name: s for s in STAGES}
