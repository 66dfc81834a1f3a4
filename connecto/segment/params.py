"""``SegmentParams``: the parameters of a segmentation run and their one default each.

``connecto segment``'s options, :class:`connecto.reconstruct.ReconstructConfig` and the
Python API take their defaults from these fields (the threshold and the scheduler, which
are not fields, from :mod:`connecto.defaults`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

METHODS = ("mean", "mutex")


@dataclass(frozen=True)
class SegmentParams:
    """Parameters of a segmentation run (CLI flags map onto these fields).

    aff_low, aff_high : watershed thresholds on affinities (see :mod:`.fragments`).
    method : ``"mean"`` (mean-affinity merge history, waterz semantics) or ``"mutex"``
        (mutex watershed on the region graph).
    bias : mutex only: edges with mean affinity above it attract, below repel.
    max_score : mean only: merges scoring above it are not computed (1.0: all).
    min_size : segments smaller than this many voxels join their best neighbour
        after agglomeration (:mod:`.small`); 0 keeps them.
    """

    aff_low: float = 0.0001
    aff_high: float = 0.9999
    method: str = "mean"
    bias: float = 0.5
    max_score: float = 1.0
    min_size: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"agglomeration method {self.method!r} is not one of {', '.join(METHODS)}")
        if not 0.0 <= self.aff_low <= self.aff_high <= 1.0:
            raise ValueError(f"affinity thresholds must satisfy 0 <= aff_low ({self.aff_low}) <= "
                             f"aff_high ({self.aff_high}) <= 1")


DEFAULT_PARAMS = SegmentParams()  # every field at its default (the functions' default argument)


def default(name: str):
    """The default of the :class:`SegmentParams` field ``name``.

    >>> default("min_size")
    0
    """
    for f in fields(SegmentParams):
        if f.name == name:
            return f.default
    raise KeyError(f"SegmentParams has no field {name!r}; fields: {[f.name for f in fields(SegmentParams)]}")
