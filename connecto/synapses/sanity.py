"""Partner statistics where no partner truth exists: a sanity check, not a score.

A synapse joins two different neurons, so a detected cleft whose two sides lie in one
segment is suspect (a false detection inside a cell, or a merge error of the
segmentation). On real data without partner annotation these shares tell whether
detections sit where synapses can be; they say nothing about whether the pairs are right.

- :func:`partner_sides_share`: for a synapse table with pre and post partners
  (``connecto synapses``): the share of synapses with a row whose pre and post neuron
  differ (segments when the table has them, else fragments);
- :func:`cleft_sides_share`: for cleft objects without side predictions (the ssTEM cleft
  model): per 2D profile, the segments within ``ring_nm`` of it (segment 0, e.g. membrane,
  ignored); a profile has distinct sides when at least two segments each cover
  ``min_share`` of that ring. The share is over 3D objects (an object counts when most of
  its profiles have distinct sides).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NOTE = "sanity check, not a score: distinct sides are necessary for a true synapse, not sufficient"


def partner_sides_share(table: pd.DataFrame) -> dict:
    """Share of synapses (rows grouped by ``id``) with pre and post on distinct neurons (see module docstring)."""
    for pre, post in (("pre_segment", "post_segment"), ("pre_id", "post_id"), ("pre_fragment", "post_fragment")):
        if pre in table and post in table:
            break
    else:
        raise KeyError(f"table with columns {list(table.columns)} has no pre/post segment, id or fragment columns")
    if table.empty:
        return {"synapses": 0, "distinct_sides": 0, "share": float("nan"), "columns": [pre, post], "note": NOTE}
    distinct = (table[pre] != table[post]).groupby(table.get("id", table.index)).any()
    return {"synapses": int(distinct.size), "distinct_sides": int(distinct.sum()),
            "share": float(distinct.mean()), "columns": [pre, post], "note": NOTE}


def cleft_sides_share(objects: np.ndarray, segments: np.ndarray, voxel_size_nm, *, ring_nm: float = 60.0,
                      min_share: float = 0.15) -> dict:
    """Share of cleft objects whose profiles lie between distinct segments (see module docstring)."""
    from scipy import ndimage

    if objects.shape != segments.shape:
        raise ValueError(f"segments (shape {segments.shape}) must have the same shape as the clefts "
                         f"(shape {objects.shape})")
    radius = max(1, round(ring_nm / float(voxel_size_nm[1])))
    disk = np.hypot(*np.mgrid[-radius:radius + 1, -radius:radius + 1]) <= radius
    votes: dict[int, list[bool]] = {}
    for z in range(objects.shape[0]):
        section = objects[z]
        labels, _ = ndimage.label(section > 0, structure=np.ones((3, 3)))
        for index, window in enumerate(ndimage.find_objects(labels), start=1):
            grown = tuple(slice(max(0, s.start - radius), s.stop + radius) for s in window)
            profile = labels[grown] == index
            ring = ndimage.binary_dilation(profile, disk) & ~profile
            ids, counts = np.unique(segments[z][grown][ring], return_counts=True)
            counts = counts[ids != 0]
            distinct = counts.size >= 2 and np.sort(counts)[-2] >= min_share * counts.sum()
            obj = int(np.bincount(section[grown][profile].astype(np.int64)).argmax())
            votes.setdefault(obj, []).append(bool(distinct))
    distinct = [np.mean(v) > 0.5 for v in votes.values()]
    return {"clefts": len(distinct), "distinct_sides": int(np.sum(distinct)),
            "share": float(np.mean(distinct)) if distinct else float("nan"), "ring_nm": ring_nm, "note": NOTE}
