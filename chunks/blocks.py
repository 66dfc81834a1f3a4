"""Block plans: the write and read Rois of every block of a blockwise run."""

from __future__ import annotations

from dataclasses import dataclass

from .coordinate import Coordinate
from .roi import Roi


@dataclass(frozen=True)
class Block:
    """One unit of blockwise work.

    ``write_roi`` is what the block owns and writes; ``read_roi`` is ``write_roi`` grown
    by the stage's context and clipped to the inputs. ``index`` is the block's zyx position
    in the plan's grid; ``block_id`` a unique integer derived from it (for id ranges).
    """

    index: Coordinate
    block_id: int
    write_roi: Roi
    read_roi: Roi

    @property
    def name(self) -> str:
        return "_".join(str(i) for i in self.index)

    def write_slices(self) -> tuple[slice, ...]:
        """Slices of ``write_roi`` inside an array that covers ``read_roi``."""
        return self.write_roi.to_slices(relative_to=self.read_roi.begin)

    def missing_context(self, context) -> tuple[Coordinate, Coordinate]:
        """How many voxels of context were clipped at the start and end of each axis."""
        wanted = self.write_roi.grow(Coordinate(context))
        return self.read_roi.begin - wanted.begin, wanted.end - self.read_roi.end


def plan_blocks(total_roi: Roi, block_shape, context=(0, 0, 0), read_bounds: Roi | None = None) -> list[Block]:
    """Tile ``total_roi`` with blocks of ``block_shape`` (edge blocks clipped).

    >>> blocks = plan_blocks(Roi((0, 0, 0), (10, 10, 10)), (4, 10, 10), context=(1, 0, 0))
    >>> [b.write_roi.shape[0] for b in blocks], [str(b.read_roi) for b in blocks][1]
    ([4, 4, 2], '[(3, 0, 0):(9, 10, 10)]')
    """
    block_shape = Coordinate(block_shape)
    context = Coordinate(context)
    if any(c < 0 for c in context):
        raise ValueError(f"context {context} must not be negative")
    bounds = read_bounds if read_bounds is not None else total_roi.grow(context)
    grid = total_roi.shape.ceil_div(block_shape)
    blocks = []
    for write_roi in total_roi.blocks(block_shape):
        index = (write_roi.begin - total_roi.begin) // block_shape
        block_id = (index[0] * grid[1] + index[1]) * grid[2] + index[2]
        read_roi = write_roi.grow(context).intersect(bounds)
        blocks.append(Block(index, block_id, write_roi, read_roi))
    return blocks


def default_block_shape(shape, chunk_shape, edge: int = 128) -> Coordinate:
    """About ``edge`` voxels per axis, a whole number of chunks, at most the volume (rounded up to chunks).

    Blocks of several chunks keep the context a small share of what a block reads (a
    block of one 64^3 chunk with 2 voxels of context decodes 8 chunks).

    >>> default_block_shape((250, 250, 40), (64, 64, 64))
    Coordinate(128, 128, 64)
    """
    return Coordinate(min(max(c, edge // c * c), -(-s // c) * c) for s, c in zip(shape, chunk_shape))
