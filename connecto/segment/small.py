"""Absorb small segments into their best neighbour (a size threshold after agglomeration).

Membrane voxels and debris form small fragments whose edges all have low affinity, so
no threshold merges them; left alone they are thousands of tiny segments (split errors
in VOI). Each segment smaller than ``min_size`` voxels joins the touching segment it
shares the highest mean affinity with (contact-weighted over all its edges), repeated
for a few rounds so chains of small pieces resolve. Vectorised over all segments at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .agglomerate import components_mapping


def absorb_small(mapping: pd.DataFrame, edges: pd.DataFrame, fragments: pd.DataFrame, min_size: int,
                 rounds: int = 4) -> pd.DataFrame:
    """A new fragment -> segment mapping with segments below ``min_size`` voxels absorbed.

    ``mapping``: columns fragment, segment; ``edges``: u, v, contact_area, affinity_sum;
    ``fragments``: id, size. Segment ids stay the smallest fragment id of each segment.

    >>> mapping = pd.DataFrame({"fragment": [1, 2, 3], "segment": [1, 2, 3]}, dtype=np.uint64)
    >>> edges = pd.DataFrame({"u": [1, 2], "v": [2, 3], "contact_area": [5, 5], "affinity_sum": [4.0, 1.0]})
    >>> fragments = pd.DataFrame({"id": [1, 2, 3], "size": [100, 3, 100]})
    >>> absorb_small(mapping, edges, fragments, min_size=10)["segment"].tolist()
    [1, 1, 3]
    """
    if min_size <= 0 or mapping.empty or edges.empty:
        return mapping
    mapping = mapping.sort_values("fragment", ignore_index=True)
    fragment_ids = mapping["fragment"].to_numpy(np.uint64)
    segment = mapping["segment"].to_numpy(np.uint64).copy()
    size_of = pd.Series(fragments["size"].to_numpy(np.int64), index=fragments["id"].to_numpy(np.uint64))
    fragment_size = size_of.reindex(fragment_ids, fill_value=0).to_numpy()
    iu = np.searchsorted(fragment_ids, edges["u"].to_numpy(np.uint64))
    iv = np.searchsorted(fragment_ids, edges["v"].to_numpy(np.uint64))
    inside = (iu < fragment_ids.size) & (iv < fragment_ids.size)
    iu, iv = iu[inside], iv[inside]
    area = edges["contact_area"].to_numpy(np.float64)[inside]
    affinity = edges["affinity_sum"].to_numpy(np.float64)[inside]
    for _ in range(rounds):
        seg_sizes = pd.Series(fragment_size).groupby(segment).sum()
        su, sv = segment[iu], segment[iv]
        across = su != sv
        if not across.any():
            break
        # both directions: (small segment, neighbour segment, area, affinity sum)
        frame = pd.DataFrame({
            "small": np.concatenate([su[across], sv[across]]),
            "other": np.concatenate([sv[across], su[across]]),
            "area": np.concatenate([area[across], area[across]]),
            "affinity": np.concatenate([affinity[across], affinity[across]]),
        })
        frame = frame[seg_sizes.reindex(frame["small"].to_numpy()).to_numpy() < min_size]
        if frame.empty:
            break
        pairs = frame.groupby(["small", "other"], sort=False).sum().reset_index()
        pairs["mean"] = pairs["affinity"] / np.maximum(pairs["area"], 1)
        best = pairs.sort_values(["small", "mean", "area"], ascending=[True, False, False]).drop_duplicates("small")
        segment_ids = np.unique(segment)
        joined = components_mapping(segment_ids, best["small"].to_numpy(np.uint64), best["other"].to_numpy(np.uint64))
        new_of = joined["segment"].to_numpy(np.uint64)
        segment = new_of[np.searchsorted(segment_ids, segment)]
    return pd.DataFrame({"fragment": fragment_ids, "segment": segment})
