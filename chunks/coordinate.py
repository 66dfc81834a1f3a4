"""``Coordinate``: an immutable integer zyx vector with element-wise arithmetic.

Whether a Coordinate holds voxels or nanometres is said by the name that holds it
(``shape``, ``offset`` are voxels; ``voxel_size_nm`` is nm), never mixed silently.

funlib.geometry's ``Coordinate`` (0.3.0 on PyPI) is the same idea, a tuple with element-wise
arithmetic; we keep our own because it converts values with ``int()``, so
``Coordinate(4.6, 4.6, 50)`` silently becomes ``(4, 4, 50)`` (this one raises ``TypeError``:
voxel sizes such as 4.6 nm must not be truncated), it refuses arithmetic with a plain tuple,
allows ``None`` entries, and checks dimensions with ``assert``.
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral


class Coordinate(tuple):
    """An immutable integer vector, zyx by convention.

    Arithmetic is element-wise with another Coordinate of the same length or a scalar:

    >>> Coordinate(2, 4, 4) * Coordinate(40, 4, 4)
    Coordinate(80, 16, 16)
    >>> Coordinate((10, 10, 10)) // 4
    Coordinate(2, 2, 2)
    """

    def __new__(cls, *values: int | Iterable[int]) -> Coordinate:
        if len(values) == 1 and not isinstance(values[0], Integral):
            values = tuple(values[0])  # Coordinate((1, 2, 3)) or Coordinate([1, 2, 3])
        items = []
        for v in values:
            if isinstance(v, Integral) or isinstance(v, float) and v.is_integer():
                items.append(int(v))
            else:
                raise TypeError(f"Coordinate values must be integers, got {v!r} in {values!r}")
        return super().__new__(cls, items)

    @property
    def dims(self) -> int:
        return len(self)

    def _check(self, other: Coordinate | int) -> tuple[int, ...]:
        if isinstance(other, Integral):
            return (int(other),) * len(self)
        other = Coordinate(other)
        if len(other) != len(self):
            raise ValueError(f"Coordinate {self} and {other} have different dimensions")
        return other

    def __add__(self, other):  # type: ignore[override]
        return Coordinate(a + b for a, b in zip(self, self._check(other)))

    def __sub__(self, other):
        return Coordinate(a - b for a, b in zip(self, self._check(other)))

    def __mul__(self, other):  # type: ignore[override]
        return Coordinate(a * b for a, b in zip(self, self._check(other)))

    def __floordiv__(self, other):
        return Coordinate(a // b for a, b in zip(self, self._check(other)))

    def __mod__(self, other):
        return Coordinate(a % b for a, b in zip(self, self._check(other)))

    def __neg__(self):
        return Coordinate(-a for a in self)

    __radd__ = __add__
    __rmul__ = __mul__

    def ceil_div(self, other: Coordinate | int) -> Coordinate:
        """Element-wise division rounded up (number of blocks covering a shape)."""
        return Coordinate(-(-a // b) for a, b in zip(self, self._check(other)))

    def prod(self) -> int:
        result = 1
        for a in self:
            result *= a
        return result

    def __repr__(self) -> str:
        return f"Coordinate({', '.join(str(a) for a in self)})"

    def __str__(self) -> str:
        return "(" + ", ".join(str(a) for a in self) + ")"


def parse_coordinate(text: str | Iterable[int], *, name: str, positive: bool = True, dims: int = 3) -> Coordinate:
    """Parse ``"40,4,4"`` (or a sequence) into a Coordinate, validating count and sign.

    >>> parse_coordinate("40,4,4", name="voxel size")
    Coordinate(40, 4, 4)
    """
    if isinstance(text, str):
        parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"{name} {text!r} must be {dims} integers z,y,x, e.g. 8,8,8") from None
    else:
        values = list(text)
    if len(values) != dims:
        raise ValueError(f"{name} {text!r} has {len(values)} values; expected {dims} (z,y,x)")
    if positive and any(v <= 0 for v in values):
        raise ValueError(f"{name} {text!r} must be > 0 in every axis (z,y,x)")
    return Coordinate(values)
