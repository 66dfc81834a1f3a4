"""Version 0 of the mapping: the agglomeration at a threshold (or a mapping the caller gives)."""

from __future__ import annotations

import os

import numpy as np

from chunks.graph import component_min_ids

from .mapping import SegmentMapping
from .tables import MERGE_HISTORY, read_fragment_ids, read_table


def mapping_at_threshold(fragment_ids: np.ndarray, u: np.ndarray, v: np.ndarray, score: np.ndarray,
                         threshold: float) -> SegmentMapping:
    """Union of every merge with ``score <= threshold``; a set's segment id is its smallest fragment id.

    ``fragment_ids`` are sorted and unique; merges with background (id 0) are ignored.

    >>> m = mapping_at_threshold(np.array([1, 2, 3, 4], np.uint64), np.array([3, 1], np.uint64),
    ...                          np.array([4, 2], np.uint64), np.array([0.1, 0.7]), 0.5)
    >>> m.segment_ids.tolist()
    [1, 2, 3, 3]
    """
    fragment_ids = np.asarray(fragment_ids, dtype=np.uint64)
    u, v = np.asarray(u, dtype=np.uint64), np.asarray(v, dtype=np.uint64)
    keep = (np.asarray(score) <= threshold) & (u != 0) & (v != 0)
    return SegmentMapping(fragment_ids, component_min_ids(fragment_ids, u[keep], v[keep]), version=0)


def agglomeration_mapping(run_dir: str | os.PathLike, threshold: float) -> SegmentMapping:
    """The run's agglomeration at ``threshold`` over every fragment its tables name.

    Where the run wrote its segmentation at this threshold (``agglomeration/mapping-<t>.parquet``,
    small segments absorbed), that mapping is version 0, so version 0 is the segmentation the
    run wrote; otherwise the merge history up to ``threshold``.
    """
    fragment_ids = read_fragment_ids(run_dir)
    written = os.path.join(os.fspath(run_dir), "agglomeration", f"mapping-{threshold:.4f}.parquet")
    if os.path.exists(written):
        import pandas as pd

        table = pd.read_parquet(written, columns=["fragment", "segment"])
        table = table[table["fragment"] != 0]
        segment_ids = fragment_ids.copy()  # fragments the file does not name stay alone
        where = np.searchsorted(fragment_ids, table["fragment"].to_numpy(np.uint64))
        inside = where < len(fragment_ids)
        where, segments = where[inside], table["segment"].to_numpy(np.uint64)[inside]
        known = fragment_ids[where] == table["fragment"].to_numpy(np.uint64)[inside]
        segment_ids[where[known]] = segments[known]
        return SegmentMapping(fragment_ids, segment_ids, version=0)
    history = read_table(run_dir, MERGE_HISTORY, ("u", "v", "score"))
    return mapping_at_threshold(fragment_ids, history["u"].astype(np.uint64), history["v"].astype(np.uint64),
                                history["score"].astype(np.float64), threshold)
