"""chunks: chunked zyx volumes (zarr, precomputed, memory), Rois and the blockwise engine.

Nothing here knows about neurons; every connecto stage runs on it.
"""

from .blocks import Block, plan_blocks
from .coordinate import Coordinate, parse_coordinate
from .engine import BlockwiseResult, run_blockwise
from .errors import (
    AlignmentError,
    BlockFailedError,
    CorruptChunkError,
    IncompatibleVolumeError,
    IncompleteVolumeError,
    MissingChunkError,
    OutOfBoundsError,
)
from .roi import Roi
from .volume import Volume, create_volume, open_volume

__all__ = [
    "AlignmentError",
    "Block",
    "BlockFailedError",
    "BlockwiseResult",
    "Coordinate",
    "CorruptChunkError",
    "IncompatibleVolumeError",
    "IncompleteVolumeError",
    "MissingChunkError",
    "OutOfBoundsError",
    "Roi",
    "Volume",
    "create_volume",
    "open_volume",
    "parse_coordinate",
    "plan_blocks",
    "run_blockwise",
]
