"""The fragment -> segment mapping at one version, and the deltas that edits apply to it.

Every edit is one of two set operations on segments, so every edit is invertible:

- ``join``: segments ``parts[0]`` and ``parts[1]`` become one segment ``whole``;
- ``part``: segment ``whole`` becomes ``parts[0]`` (the fragments listed) and
  ``parts[1]`` (the rest).

A delta lists the fragments of ``parts[0]`` (the smaller part), which is all an inverse
needs: a merge's undo is a ``part`` with the same fields, a split's undo a ``join``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .errors import LogCorruptError, UnknownSegmentError

ID_LIMIT = 2**63  # ids are stored in signed 64-bit SQL integers (SQLite INTEGER, PostgreSQL BIGINT)


def pack_ids(values: np.ndarray) -> bytes:
    """uint64/int64 array -> compressed little-endian bytes (a BLOB/BYTEA value)."""
    return zlib.compress(np.ascontiguousarray(values, dtype="<u8").tobytes(), 1)


def unpack_ids(blob: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(zlib.decompress(bytes(blob)), dtype="<u8").astype(np.uint64)


def pack_sorted(values: np.ndarray) -> bytes:
    """An ascending id array, delta-encoded before compression (a tenth of the bytes or less)."""
    values = np.asarray(values, dtype=np.uint64)
    return pack_ids(np.diff(values, prepend=np.uint64(0)))


def unpack_sorted(blob: bytes | memoryview) -> np.ndarray:
    return np.cumsum(unpack_ids(blob), dtype=np.uint64)


@dataclass(frozen=True)
class Delta:
    """One edit's effect on the mapping (see the module docstring)."""

    kind: str
    whole: int
    parts: tuple[int, int]
    first_part_fragments: np.ndarray  # sorted uint64 fragment ids of parts[0]

    def __post_init__(self):
        if self.kind not in ("join", "part"):
            raise ValueError(f"delta kind {self.kind!r} is not one of 'join', 'part'")

    def inverse(self) -> Delta:
        return Delta("part" if self.kind == "join" else "join", self.whole, self.parts, self.first_part_fragments)

    @property
    def removed(self) -> tuple[int, ...]:
        """Segments that exist before the delta and not after: the segments it touches."""
        return self.parts if self.kind == "join" else (self.whole,)

    @property
    def added(self) -> tuple[int, ...]:
        return (self.whole,) if self.kind == "join" else self.parts


class SegmentMapping:
    """Fragment -> segment at one version: two aligned uint64 arrays, fragments sorted.

    Dict-like for single lookups (``mapping[fragment]``, ``fragment in mapping``) and
    vectorised through :meth:`segment_of`; ``fragment_ids, segment_ids = mapping`` unpacks.
    """

    def __init__(self, fragment_ids: np.ndarray, segment_ids: np.ndarray, version: int = 0):
        fragment_ids = np.asarray(fragment_ids, dtype=np.uint64)
        segment_ids = np.asarray(segment_ids, dtype=np.uint64)
        if fragment_ids.shape != segment_ids.shape or fragment_ids.ndim != 1:
            raise ValueError(f"fragment_ids (shape {fragment_ids.shape}) and segment_ids (shape {segment_ids.shape}) "
                             "must be 1-D arrays of the same length")
        if len(fragment_ids) and not np.all(fragment_ids[1:] > fragment_ids[:-1]):
            order = np.argsort(fragment_ids, kind="stable")
            fragment_ids, segment_ids = fragment_ids[order], segment_ids[order]
            if np.any(fragment_ids[1:] == fragment_ids[:-1]):
                dup = fragment_ids[1:][fragment_ids[1:] == fragment_ids[:-1]][0]
                raise ValueError(f"fragment {int(dup)} appears twice in the mapping; each fragment maps to one segment")
        if len(fragment_ids) and fragment_ids[0] == 0:
            raise ValueError("fragment 0 is background and cannot be mapped to a segment; drop it from the mapping")
        if len(segment_ids) and (np.any(segment_ids == 0) or int(segment_ids.max()) >= ID_LIMIT
                                 or int(fragment_ids[-1]) >= ID_LIMIT):
            raise ValueError(f"segment ids must be in 1..2**63-1 and fragment ids below 2**63 "
                             f"(got segments {int(segment_ids.min())}..{int(segment_ids.max())}, "
                             f"largest fragment {int(fragment_ids[-1])})")
        self.fragment_ids = fragment_ids
        self.segment_ids = segment_ids
        self.version = version

    # -- lookups -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.fragment_ids)

    def __iter__(self):
        return iter((self.fragment_ids, self.segment_ids))

    def __contains__(self, fragment) -> bool:
        pos = np.searchsorted(self.fragment_ids, np.uint64(fragment))
        return bool(pos < len(self.fragment_ids) and self.fragment_ids[pos] == np.uint64(fragment))

    def __getitem__(self, fragment) -> int:
        return int(self.segment_of(fragment))

    def __repr__(self) -> str:
        return f"SegmentMapping(version={self.version}, fragments={len(self)})"

    def positions(self, fragments) -> np.ndarray:
        """Indices of ``fragments`` in :attr:`fragment_ids`; unknown fragments raise."""
        query = np.atleast_1d(np.asarray(fragments, dtype=np.uint64))
        pos = np.searchsorted(self.fragment_ids, query)
        if not len(self):
            raise UnknownSegmentError(f"fragment {int(query[0])} is not in the mapping (it is empty)")
        pos_clipped = np.minimum(pos, len(self.fragment_ids) - 1)
        bad = (pos >= len(self.fragment_ids)) | (self.fragment_ids[pos_clipped] != query)
        if np.any(bad):
            missing = int(query[bad][0])
            what = "background (id 0)" if missing == 0 else f"not in the mapping ({len(self)} fragments)"
            raise UnknownSegmentError(f"fragment {missing} is {what} at version {self.version}")
        return pos

    def segment_of(self, fragments):
        """Segment id(s) of fragment id(s): a scalar for a scalar, an array for an array."""
        segments = self.segment_ids[self.positions(fragments)]
        return int(segments[0]) if np.ndim(fragments) == 0 else segments

    def has_segment(self, segment: int) -> bool:
        return bool(np.any(self.segment_ids == np.uint64(segment)))

    def fragments_of(self, segment: int) -> np.ndarray:
        """Sorted fragment ids of ``segment``; raises if it does not exist at this version."""
        found = self.fragment_ids[self.segment_ids == np.uint64(segment)]
        if not len(found):
            raise UnknownSegmentError(f"segment {int(segment)} does not exist at version {self.version}")
        return found

    def segments(self) -> np.ndarray:
        return np.unique(self.segment_ids)

    def copy(self) -> SegmentMapping:
        return SegmentMapping.trusted(self.fragment_ids, self.segment_ids.copy(), self.version)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame({"fragment_id": self.fragment_ids, "segment_id": self.segment_ids})

    @classmethod
    def trusted(cls, fragment_ids: np.ndarray, segment_ids: np.ndarray, version: int) -> SegmentMapping:
        """Wrap arrays already known to be valid (from the log's own base), skipping checks."""
        mapping = cls.__new__(cls)
        mapping.fragment_ids, mapping.segment_ids, mapping.version = fragment_ids, segment_ids, version
        return mapping

    # -- edits ---------------------------------------------------------------------
    def apply(self, delta: Delta, version: int) -> None:
        """Apply ``delta`` in place, checking it fits this mapping (a misfit means a corrupt log)."""
        seg = self.segment_ids
        if delta.kind == "join":
            first = seg == np.uint64(delta.parts[0])
            second = seg == np.uint64(delta.parts[1])
            n_first = int(first.sum())
            if n_first != len(delta.first_part_fragments) or not second.any() or self.has_segment(delta.whole):
                raise LogCorruptError(f"edit {version} joins segments {delta.parts} into {delta.whole}, but at version "
                                      f"{self.version} segment {delta.parts[0]} has {n_first} fragments (the log says "
                                      f"{len(delta.first_part_fragments)}) or {delta.parts[1]} is missing or "
                                      f"{delta.whole} already exists")
            seg[first | second] = np.uint64(delta.whole)
        else:
            whole = seg == np.uint64(delta.whole)
            idx = self.positions(delta.first_part_fragments) if len(delta.first_part_fragments) else np.empty(0, int)
            n_whole = int(whole.sum())
            if not len(idx) or not np.all(whole[idx]) or n_whole <= len(idx) or self.has_segment(delta.parts[0]) \
                    or self.has_segment(delta.parts[1]):
                raise LogCorruptError(f"edit {version} parts segment {delta.whole} into {delta.parts}, but at version "
                                      f"{self.version} segment {delta.whole} ({n_whole} fragments) does not contain the "
                                      f"{len(idx)} fragments the log lists, or a part id is already taken")
            seg[whole] = np.uint64(delta.parts[1])
            seg[idx] = np.uint64(delta.parts[0])
        self.version = version
