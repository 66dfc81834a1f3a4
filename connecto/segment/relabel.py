"""Apply a fragment -> segment mapping to voxels (fastremap), e.g. to write a segmentation Volume.

The mapping is the primary output of agglomeration; voxels are rewritten only when a
viewer or a metric needs them. Fragments missing from the mapping keep their id (a
fragment without edges is a segment by itself); 0 stays 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def relabel(fragments: np.ndarray, mapping: pd.DataFrame) -> np.ndarray:
    """Map the ids in ``fragments`` through ``mapping`` (columns ``fragment``, ``segment``).

    Only the ids present in the array are looked up (a binary search in the sorted
    mapping), so a block costs the same however large the whole mapping is.

    >>> mapping = pd.DataFrame({"fragment": [1, 2, 3], "segment": [1, 1, 3]})
    >>> relabel(np.array([[0, 1, 2, 3, 7]], dtype=np.uint64), mapping).tolist()
    [[0, 1, 1, 3, 7]]
    """
    import fastremap

    keys = mapping["fragment"].to_numpy(np.uint64)
    values = mapping["segment"].to_numpy(np.uint64)
    if keys.size > 1 and not np.all(keys[1:] > keys[:-1]):
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], values[order]
    present = fastremap.unique(fragments)
    present = present[present != 0].astype(np.uint64)
    if present.size == 0 or keys.size == 0:
        return fragments.astype(np.uint64, copy=True)
    where = np.minimum(np.searchsorted(keys, present), keys.size - 1)
    found = keys[where] == present
    table = dict(zip(present[found].tolist(), values[where[found]].tolist()))
    out = fragments.astype(np.uint64, copy=True)
    return fastremap.remap(out, table, preserve_missing_labels=True, in_place=True)
