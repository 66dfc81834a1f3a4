"""``Roi``: an immutable axis-aligned box (offset, shape) in voxels, zyx.

Its interface follows funlib.geometry's ``Roi`` (0.3.0 on PyPI, pure Python), which we do
not use because it differs where it matters here: its ``offset`` and ``shape`` can be
reassigned after construction, and it defines ``__eq__`` without ``__hash__`` (a Roi cannot
key a dict); ``grow(2)`` grows only the start (``amount_pos`` defaults to 0), where every
block's context here grows both sides; axes may be unbounded (``None``), and bad input is
caught by ``assert``. This Roi is a frozen, hashable dataclass, always bounded, raises
``ValueError`` and tiles itself into blocks (:meth:`Roi.blocks`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .coordinate import Coordinate


@dataclass(frozen=True)
class Roi:
    """A region of interest: ``offset`` and ``shape`` in voxels (zyx).

    >>> roi = Roi((0, 0, 0), (10, 20, 20))
    >>> roi.grow(2).shape
    Coordinate(14, 24, 24)
    >>> roi.intersect(Roi((5, 5, 5), (10, 10, 10)))
    Roi(offset=(5, 5, 5), shape=(5, 10, 10))
    """

    offset: Coordinate
    shape: Coordinate

    def __init__(self, offset, shape):
        offset, shape = Coordinate(offset), Coordinate(shape)
        if len(offset) != len(shape):
            raise ValueError(f"Roi offset {offset} and shape {shape} have different dimensions")
        if any(s < 0 for s in shape):
            raise ValueError(f"Roi shape {shape} must not be negative")
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "shape", shape)

    @property
    def begin(self) -> Coordinate:
        return self.offset

    @property
    def end(self) -> Coordinate:
        return self.offset + self.shape

    @property
    def dims(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of voxels."""
        return self.shape.prod()

    def empty(self) -> bool:
        return self.size == 0

    def contains(self, other: Roi) -> bool:
        if other.empty():
            return True
        return all(a <= b for a, b in zip(self.begin, other.begin)) and all(
            a >= b for a, b in zip(self.end, other.end)
        )

    def contains_point(self, point) -> bool:
        return all(b <= p < e for b, p, e in zip(self.begin, point, self.end))

    def intersect(self, other: Roi) -> Roi:
        begin = Coordinate(max(a, b) for a, b in zip(self.begin, other.begin))
        end = Coordinate(min(a, b) for a, b in zip(self.end, other.end))
        shape = Coordinate(max(0, e - b) for b, e in zip(begin, end))
        return Roi(begin, shape)

    def union(self, other: Roi) -> Roi:
        """The smallest Roi containing both."""
        begin = Coordinate(min(a, b) for a, b in zip(self.begin, other.begin))
        end = Coordinate(max(a, b) for a, b in zip(self.end, other.end))
        return Roi(begin, end - begin)

    def grow(self, amount_neg, amount_pos=None) -> Roi:
        """Grow by ``amount_neg`` at the start and ``amount_pos`` (default: the same) at the end."""
        neg = Coordinate(amount_neg) if not isinstance(amount_neg, int) else Coordinate((amount_neg,) * self.dims)
        pos = neg if amount_pos is None else (
            Coordinate(amount_pos) if not isinstance(amount_pos, int) else Coordinate((amount_pos,) * self.dims)
        )
        return Roi(self.offset - neg, self.shape + neg + pos)

    def shift(self, by) -> Roi:
        return Roi(self.offset + Coordinate(by), self.shape)

    def snap_to_grid(self, grid, mode: str = "grow") -> Roi:
        """Align begin and end to multiples of ``grid``.

        ``mode="grow"`` expands outwards, ``"shrink"`` inwards, ``"closest"`` rounds.
        """
        grid = Coordinate(grid)
        if mode == "grow":
            begin = (self.begin // grid) * grid
            end = self.end.ceil_div(grid) * grid
        elif mode == "shrink":
            begin = self.begin.ceil_div(grid) * grid
            end = (self.end // grid) * grid
        elif mode == "closest":
            begin = Coordinate((b + g // 2) // g * g for b, g in zip(self.begin, grid))
            end = Coordinate((e + g // 2) // g * g for e, g in zip(self.end, grid))
        else:
            raise ValueError(f"snap mode {mode!r} is not one of 'grow', 'shrink', 'closest'")
        return Roi(begin, Coordinate(max(0, e - b) for b, e in zip(begin, end)))

    def is_aligned(self, grid, origin=None) -> bool:
        grid = Coordinate(grid)
        origin = Coordinate(origin) if origin is not None else Coordinate((0,) * self.dims)
        return all((b - o) % g == 0 for b, o, g in zip(self.begin, origin, grid)) and all(
            (s % g) == 0 for s, g in zip(self.shape, grid)
        )

    def blocks(self, block_shape) -> Iterator[Roi]:
        """Iterate the blocks of ``block_shape`` tiling this Roi from its offset, C order.

        Blocks at the far edge are clipped to the Roi.
        """
        block_shape = Coordinate(block_shape)
        if any(b <= 0 for b in block_shape):
            raise ValueError(f"block shape {block_shape} must be > 0 in every axis")
        counts = self.shape.ceil_div(block_shape)
        for index in _ndindex(counts):
            begin = self.offset + Coordinate(index) * block_shape
            yield Roi(begin, block_shape).intersect(self)

    def to_slices(self, relative_to: Coordinate | None = None) -> tuple[slice, ...]:
        """numpy slices of this Roi in an array whose first voxel is ``relative_to``."""
        base = self.begin if relative_to is None else self.begin - Coordinate(relative_to)
        return tuple(slice(b, b + s) for b, s in zip(base, self.shape))

    def __repr__(self) -> str:
        return f"Roi(offset={self.offset}, shape={self.shape})"

    def __str__(self) -> str:
        return f"[{self.begin}:{self.end}]"


def _ndindex(counts):
    if len(counts) == 0:
        yield ()
        return
    for first in range(counts[0]):
        for rest in _ndindex(counts[1:]):
            yield (first, *rest)
