"""proofreading: versioned merge/split edits on the fragment -> segment mapping.

Depends on ``chunks`` only; reads the region-graph tables by their schema.
"""

from .errors import (
    ConflictError,
    IncompatibleLogError,
    LogCorruptError,
    NothingToUndoError,
    SplitError,
    UnknownSegmentError,
)
from .log import Edit
from .mapping import SegmentMapping
from .proofreader import Proofreader
from .synapses import map_synapses, segment_edges

__all__ = [
    "ConflictError",
    "Edit",
    "IncompatibleLogError",
    "LogCorruptError",
    "NothingToUndoError",
    "Proofreader",
    "SegmentMapping",
    "SplitError",
    "UnknownSegmentError",
    "map_synapses",
    "segment_edges",
]
