"""Synapses follow edits: map a synapse table stored against fragments to segments at a version."""

from __future__ import annotations

import numpy as np

from .mapping import SegmentMapping


def map_synapses(synapses, mapping, *, pre: str = "pre_fragment", post: str = "post_fragment"):
    """A copy of ``synapses`` with ``pre_segment`` and ``post_segment`` columns added.

    Parameters
    ----------
    synapses : pandas.DataFrame with fragment-id columns ``pre`` and ``post``.
    mapping : a :class:`SegmentMapping` (e.g. ``Proofreader.mapping(version=v)``) or a
        ``(fragment_ids, segment_ids)`` pair.

    Fragment 0 (background) maps to segment 0; a fragment the mapping does not know raises.

    >>> import pandas as pd
    >>> table = pd.DataFrame({"pre_fragment": [1, 2], "post_fragment": [3, 0]})
    >>> map_synapses(table, ([1, 2, 3], [10, 10, 30]))[["pre_segment", "post_segment"]].values.tolist()
    [[10, 30], [10, 0]]
    """
    if not isinstance(mapping, SegmentMapping):
        fragment_ids, segment_ids = mapping
        mapping = SegmentMapping(np.asarray(fragment_ids, np.uint64), np.asarray(segment_ids, np.uint64))
    missing = [c for c in (pre, post) if c not in synapses.columns]
    if missing:
        raise ValueError(f"synapse table lacks column(s) {missing}; expected {pre!r} and {post!r} "
                         f"(found {list(synapses.columns)})")
    out = synapses.copy()
    for column, name in ((pre, "pre_segment"), (post, "post_segment")):
        fragments = out[column].to_numpy().astype(np.uint64)
        segments = np.zeros(len(fragments), np.uint64)
        known = fragments != 0
        if known.any():
            segments[known] = mapping.segment_of(fragments[known])
        out[name] = segments
    return out


def segment_edges(mapped, *, weight: str = "weight"):
    """Connectome edges: synapse counts per (pre_segment, post_segment), background partners dropped."""
    real = mapped[(mapped["pre_segment"] != 0) & (mapped["post_segment"] != 0)]
    counts = real.groupby(["pre_segment", "post_segment"], sort=True).size()
    return counts.rename(weight).reset_index()
