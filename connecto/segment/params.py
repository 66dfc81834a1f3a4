"""``SegmentParams``: the parameters of a segmentation run and their one default each.

``connecto segment``'s options, :class:`connecto.reconstruct.ReconstructConfig` and the
Python API take their defaults from these fields (the threshold and the scheduler, which
are not fields, from :mod:`connecto.defaults`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

METHODS = ("mean", "mutex")
AGGLOMERATIONS = ("auto", "global", "hierarchical")
# "auto" agglomerates hierarchically from this many voxels on: the global graph of FIB-25-like
# fragments (~22 voxels, 0.22 edges per voxel) takes ~47 GB per Gvox, so ~6 GB here
AUTO_HIERARCHICAL_VOXELS = 512 ** 3


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
    fragment_merge : fragments are agglomerated inside each block up to this merge score
        before the region graph (:mod:`.premerge`, lsd's epsilon agglomeration): fewer,
        larger fragments, a smaller graph; 0 (default) keeps the watershed's fragments and
        the block-size invariance.
    fragment_absorb : fragments smaller than this many voxels join the neighbour across their
        strongest contact, in two rounds, before the region graph (:mod:`.absorb`,
        zwatershed's size step made local): far fewer fragments, decided exactly inside
        each block; it changes the merge scores, so choose the threshold again (FIB-25:
        0.7 instead of 0.6); 0 (default) keeps the watershed's fragments.
    agglomeration : ``"global"`` (the exact merge history of the whole graph, in one
        process), ``"hierarchical"`` (per-block agglomeration with context, then a global
        threshold cut over streamed files: :mod:`.hierarchical`; bounded memory, within a
        measured VOI of global) or ``"auto"`` (hierarchical from
        :data:`AUTO_HIERARCHICAL_VOXELS` voxels on).
    """

    aff_low: float = 0.0001
    aff_high: float = 0.9999
    method: str = "mean"
    bias: float = 0.5
    max_score: float = 1.0
    min_size: int = 0
    agglomeration: str = "auto"
    fragment_merge: float = 0.0
    fragment_absorb: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"agglomeration method {self.method!r} is not one of {', '.join(METHODS)}")
        if not 0.0 <= self.fragment_merge < 1.0:
            raise ValueError(f"fragment_merge {self.fragment_merge} must be in [0, 1) (a merge score; 0: off)")
        if self.fragment_absorb < 0:
            raise ValueError(f"fragment_absorb {self.fragment_absorb} must be >= 0 (voxels; 0: off)")
        if self.agglomeration not in AGGLOMERATIONS:
            raise ValueError(f"agglomeration {self.agglomeration!r} is not one of {', '.join(AGGLOMERATIONS)}")
        if not 0.0 <= self.aff_low <= self.aff_high <= 1.0:
            raise ValueError(f"affinity thresholds must satisfy 0 <= aff_low ({self.aff_low}) <= "
                             f"aff_high ({self.aff_high}) <= 1")


    def agglomeration_for(self, voxels: int) -> str:
        """``"global"`` or ``"hierarchical"`` for a volume of ``voxels`` (resolves ``"auto"``).

        >>> SegmentParams().agglomeration_for(250 ** 3), SegmentParams().agglomeration_for(1024 ** 3)
        ('global', 'hierarchical')
        """
        if self.agglomeration != "auto":
            return self.agglomeration
        return "hierarchical" if voxels >= AUTO_HIERARCHICAL_VOXELS else "global"


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
