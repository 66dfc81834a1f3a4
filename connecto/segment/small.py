"""Absorb small segments into their best neighbour (a size threshold after agglomeration).

Membrane voxels and debris form small fragments whose edges all have low affinity, so
no threshold merges them; left alone they are thousands of tiny segments (split errors
in VOI). Each segment smaller than ``min_size`` voxels joins the touching segment it
shares the highest mean affinity with (contact-weighted over all its edges), repeated
for a few rounds so chains of small pieces resolve. Vectorised over all segments at once.

Ties (the same mean affinity, an exact ratio of integer sums) go to the neighbour with
the larger contact area, then to the neighbour whose first voxel comes first in raster
order (the smallest fragment *anchor* in it, see
:func:`connecto.segment.fragments.fragment_table`). Neither ids nor the order of the
edges decide, so a blockwise run absorbs exactly as a single-block run does, whatever
the block shape (ids and edge order both depend on the blocks).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def absorb_small(mapping: pd.DataFrame, edges: pd.DataFrame, fragments: pd.DataFrame, min_size: int,
                 rounds: int = 4) -> pd.DataFrame:
    """A new fragment -> segment mapping with segments below ``min_size`` voxels absorbed.

    ``mapping``: columns fragment, segment; ``edges``: u, v, contact_area, affinity_sum;
    ``fragments``: id, size and (for ties independent of the block shape) anchor; without
    anchors, ties go to the neighbour with the smallest segment id. Segment ids stay the
    smallest fragment id of each segment.

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
    segment_ids, index = np.unique(segment, return_inverse=True)
    segment_keys = np.full(segment_ids.size, np.iinfo(np.int64).max)
    np.minimum.at(segment_keys, index, _fragment_keys(fragment_ids, fragments))
    for _ in range(rounds):
        small = np.bincount(index, weights=fragment_size, minlength=segment_ids.size) < min_size
        # edges inside a segment stay inside: keep only the others, in their order
        across = index[iu] != index[iv]
        iu, iv, area, affinity = iu[across], iv[across], area[across], affinity[across]
        # both directions: (small segment, neighbour segment, area, affinity sum)
        near, far = np.r_[index[iu], index[iv]], np.r_[index[iv], index[iu]]
        touching = small[near]
        if not touching.any():
            break
        pair = _best_neighbours(near[touching], far[touching], np.r_[area, area][touching],
                                np.r_[affinity, affinity][touching], segment_keys)
        segment_ids, segment_keys, label = _joined(segment_ids, segment_keys, *pair)
        index = label[index]
    return pd.DataFrame({"fragment": fragment_ids, "segment": segment_ids[index]})


def _fragment_keys(fragment_ids: np.ndarray, fragments: pd.DataFrame) -> np.ndarray:
    """Tie-break key of each fragment (``fragment_ids`` sorted): its anchor, the raster index of its
    first voxel in the volume; fragments without one go after all anchored ones, by id."""
    key = np.arange(fragment_ids.size, dtype=np.int64)
    if "anchor" not in fragments or not len(fragments):
        return key
    ids, anchors = fragments["id"].to_numpy(np.uint64), fragments["anchor"].to_numpy(np.int64)
    where = np.minimum(np.searchsorted(fragment_ids, ids), fragment_ids.size - 1)
    found = fragment_ids[where] == ids
    key += int(anchors.max()) + 1
    key[where[found]] = anchors[found]
    return key


def _best_neighbours(near: np.ndarray, far: np.ndarray, area: np.ndarray, affinity: np.ndarray,
                     keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each ``near`` segment, the ``far`` one with the highest mean affinity over their contacts,
    then the largest contact area, then the smallest key (``keys``: one per segment, unique):
    (near, far) per pair chosen. The choice does not depend on the order of the contacts."""
    n = keys.size
    pair, inverse = np.unique(near * np.int64(n) + far, return_inverse=True)
    pair_area = np.bincount(inverse, weights=area, minlength=pair.size)
    # sums of integers (uint8 units), exact in float64 in any order: the means, and so the ties,
    # are the same whatever the block shape
    mean = np.bincount(inverse, weights=affinity, minlength=pair.size) / np.maximum(pair_area, 1)
    own, other = pair // n, pair % n  # sorted: each near segment's pairs are one run
    starts = np.flatnonzero(np.r_[True, own[1:] != own[:-1]])
    run = np.cumsum(np.r_[False, own[1:] != own[:-1]])
    chosen = mean == np.maximum.reduceat(mean, starts)[run]
    chosen &= pair_area == np.maximum.reduceat(np.where(chosen, pair_area, -np.inf), starts)[run]
    other_key = np.where(chosen, keys[other], np.iinfo(np.int64).max)
    chosen &= other_key == np.minimum.reduceat(other_key, starts)[run]
    return own[chosen], other[chosen]


def _joined(segment_ids: np.ndarray, segment_keys: np.ndarray, a: np.ndarray,
            b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segments joined along the pairs (a, b) of segment indices: (their ids, their keys, the new index of each)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = segment_ids.size
    _, label = connected_components(coo_matrix((np.ones(a.size, np.int8), (a, b)), shape=(n, n)), directed=False)
    joined_ids = np.full(label.max() + 1, np.iinfo(np.uint64).max, dtype=np.uint64)
    np.minimum.at(joined_ids, label, segment_ids)  # a segment's id: the smallest fragment id in it
    joined_keys = np.full(label.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(joined_keys, label, segment_keys)  # and its key: the smallest anchor in it
    return joined_ids, joined_keys, label
