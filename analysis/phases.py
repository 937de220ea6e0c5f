"""Phase labels: one numbering for the phantom, the segmentation and the scores."""

import enum


class Phase(enum.IntEnum):
    """Voxel label of a phase (uint8 in label volumes).

    The segmentation of a scan uses PORE, CBD and NMC; the phantom also
    labels the rigid bodies in the beam, HEAD and FOIL (the pin and current
    collector).
    """

    PORE = 0
    CBD = 1    #: carbon-binder domain
    NMC = 2
    HEAD = 3
    FOIL = 4

    @classmethod
    def legend(cls, phases=None):
        """One-line legend, e.g. ``"0 pore, 1 CBD, 2 NMC"``, for file descriptions."""
        names = {cls.CBD: "CBD", cls.NMC: "NMC"}
        return ", ".join(f"{int(p)} {names.get(p, p.name.lower())}" for p in (phases or cls))


SAMPLE_PHASES = (Phase.PORE, Phase.CBD, Phase.NMC)
"""The phases of the sample itself: what a segmentation labels."""
