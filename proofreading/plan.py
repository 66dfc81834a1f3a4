"""Turn a merge or split request into a delta, against the mapping the editor looked at.

A plan knows the segments it touches (they must still exist when it is committed) and
builds its :class:`~proofreading.mapping.Delta` once the log hands out new segment ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import SplitError, UnknownSegmentError
from .graph import RegionGraph
from .mapping import Delta, SegmentMapping
from .mincut import min_cut_sides


@dataclass(frozen=True)
class Plan:
    """``delta`` holds placeholder ids 0 (merge: whole; split: both parts) until :meth:`build`.

    A merge lists the smaller segment's fragments; a split's parts are (source side, sink
    side), so ``Edit.new_segments`` of a split is ``(source segment, sink segment)``.
    """

    operation: str
    arguments: dict
    touched: tuple[int, ...]
    delta: Delta
    edge: tuple[int, int] | None = None

    def build(self, next_id: int) -> tuple[Delta, int]:
        """(delta with real ids, next free id after it)."""
        d = self.delta
        if self.operation in ("undo", "redo"):  # re-creates the ids the target edit made or removed
            return d, next_id
        if self.operation == "merge":
            return Delta("join", next_id, d.parts, d.first_part_fragments), next_id + 1
        # a split's parts are (source side, sink side); the source side's fragments are listed
        return Delta("part", d.whole, (next_id, next_id + 1), d.first_part_fragments), next_id + 2


def _fragment_list(values, name: str) -> np.ndarray:
    array = np.atleast_1d(np.asarray(values))
    if array.ndim != 1 or not len(array):
        raise ValueError(f"{name} must be one or more fragment ids (got {values!r})")
    if array.dtype.kind not in "iu" or (array.dtype.kind == "i" and array.min() < 0):
        raise ValueError(f"{name} must be non-negative integer fragment ids (got {values!r})")
    return np.unique(array.astype(np.uint64))


def _require_segment(view: SegmentMapping, segment) -> int:
    segment = int(segment)
    if segment <= 0 or not view.has_segment(segment):
        raise UnknownSegmentError(f"segment {segment} does not exist at version {view.version}; "
                                  f"name it by a voxel point or a fragment instead (proofread show), or look again at the newest version")
    return segment


def plan_merge(view: SegmentMapping, a, b, by: str, graph: RegionGraph | None) -> Plan:
    """Merge the segments named by ``a`` and ``b`` (segment ids, or fragment ids with ``by='fragment'``)."""
    if by not in ("segment", "fragment"):
        raise ValueError(f"merge by {by!r}: expected 'segment' or 'fragment'")
    if by == "fragment":
        seg_a, seg_b = view.segment_of(int(a)), view.segment_of(int(b))
        edge = (int(a), int(b))
    else:
        seg_a, seg_b = _require_segment(view, a), _require_segment(view, b)
        edge = None
    if seg_a == seg_b:
        what = f"fragments {int(a)} and {int(b)} are both in" if by == "fragment" else "both ids name"
        raise ValueError(f"nothing to merge: {what} segment {seg_a} at version {view.version}")
    mask_a, mask_b = view.segment_ids == np.uint64(seg_a), view.segment_ids == np.uint64(seg_b)
    if edge is None and graph is not None:
        pu, pv = graph.join_edge(mask_a, mask_b)
        edge = (int(view.fragment_ids[pu]), int(view.fragment_ids[pv]))
    small, large = (seg_a, seg_b) if mask_a.sum() <= mask_b.sum() else (seg_b, seg_a)
    small_fragments = view.fragment_ids[mask_a if small == seg_a else mask_b]
    arguments = {"by": by, "a": int(a), "b": int(b), "segments": [seg_a, seg_b]}
    return Plan("merge", arguments, (seg_a, seg_b), Delta("join", 0, (small, large), small_fragments), edge)


def plan_split(view: SegmentMapping, segment, sources, sinks, graph: RegionGraph,
               merge_edges: list[tuple[int, int]], backend: str | None = None) -> Plan:
    """Split a segment between ``sources`` and ``sinks`` (fragment ids) by a minimum cut on affinity."""
    sources, sinks = _fragment_list(sources, "sources"), _fragment_list(sinks, "sinks")
    both = np.intersect1d(sources, sinks)
    if len(both):
        raise SplitError(f"cannot split: fragment {int(both[0])} is both a source and a sink; fragments are immutable, "
                         "so a split cannot separate a fragment from itself (pick different points)")
    source_segments, sink_segments = view.segment_of(sources), view.segment_of(sinks)
    expected = _require_segment(view, segment) if segment is not None else int(source_segments[0])
    for fragments, segments, what in ((sources, source_segments, "source"), (sinks, sink_segments, "sink")):
        off = segments != np.uint64(expected)
        if np.any(off):
            first = np.flatnonzero(off)[0]
            where = f"segment {segment}" if segment is not None else f"segment {expected} (of source {int(sources[0])})"
            raise SplitError(f"{what} fragment {int(fragments[first])} is in segment {int(segments[first])}, not in "
                             f"{where}; a split acts within one segment (merge first, or pick points in one segment)")
    members = view.segment_ids == np.uint64(expected)
    nodes, edges, weights = graph.subgraph(members)
    if merge_edges:
        pairs = np.asarray(merge_edges, dtype=np.uint64).reshape(-1, 2)
        pos = view.positions(pairs.ravel()).reshape(-1, 2)
        inside = members[pos[:, 0]] & members[pos[:, 1]]
        if inside.any():
            local = np.searchsorted(nodes, pos[inside])
            edges = np.concatenate([edges, local])
            weights = np.concatenate([weights, np.ones(int(inside.sum()))])
    names = view.fragment_ids[nodes]
    local_sources, local_sinks = np.searchsorted(names, sources), np.searchsorted(names, sinks)
    side = min_cut_sides(len(nodes), edges, weights, local_sources, local_sinks, backend, names)
    arguments = {"segment": expected, "sources": sources.tolist(), "sinks": sinks.tolist()}
    return Plan("split", arguments, (expected,), Delta("part", expected, (0, 0), names[side]))
