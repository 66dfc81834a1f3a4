import numpy as np
import pandas as pd

from connecto.segment.small import absorb_small


def _mapping(ids):
    return pd.DataFrame({"fragment": np.array(ids, np.uint64), "segment": np.array(ids, np.uint64)})


def test_small_segment_joins_the_neighbour_with_the_highest_mean_affinity():
    edges = pd.DataFrame({"u": [1, 2], "v": [2, 3], "contact_area": [10, 10], "affinity_sum": [2.0, 9.0]})
    fragments = pd.DataFrame({"id": [1, 2, 3], "size": [500, 20, 500]})
    out = absorb_small(_mapping([1, 2, 3]), edges, fragments, min_size=50)
    assert out["segment"].tolist() == [1, 2, 2]  # 2 joins 3; the segment keeps the smallest fragment id


def test_chains_of_small_pieces_resolve_and_large_ones_stay():
    # 1 (big) - 2 (small) - 3 (small) - 4 (big); 2 prefers 3, 3 prefers 2: together still small, then join 1
    edges = pd.DataFrame({"u": [1, 2, 3], "v": [2, 3, 4], "contact_area": [10, 10, 10],
                          "affinity_sum": [5.0, 9.0, 1.0]})
    fragments = pd.DataFrame({"id": [1, 2, 3, 4], "size": [500, 10, 10, 500]})
    out = absorb_small(_mapping([1, 2, 3, 4]), edges, fragments, min_size=50)
    assert out["segment"].tolist() == [1, 1, 1, 4]


def test_min_size_zero_and_isolated_segments_are_unchanged():
    edges = pd.DataFrame({"u": [1], "v": [2], "contact_area": [1], "affinity_sum": [0.5]})
    fragments = pd.DataFrame({"id": [1, 2, 3], "size": [5, 5, 5]})
    mapping = _mapping([1, 2, 3])
    assert absorb_small(mapping, edges, fragments, min_size=0) is mapping
    out = absorb_small(mapping, edges, fragments, min_size=100)
    assert out["segment"].tolist()[2] == 3  # touches nothing: nothing to join


def test_ties_go_to_the_neighbour_seen_first():
    # 1 touches 2 and 3 with the same mean affinity and area: the first edge in the table wins
    fragments = pd.DataFrame({"id": [1, 2, 3], "size": [20, 500, 500]})
    edges = pd.DataFrame({"u": [1, 1], "v": [2, 3], "contact_area": [10, 10], "affinity_sum": [5.0, 5.0]})
    assert absorb_small(_mapping([1, 2, 3]), edges, fragments, min_size=50)["segment"].tolist() == [1, 1, 3]
    flipped = edges.iloc[::-1].reset_index(drop=True)
    assert absorb_small(_mapping([1, 2, 3]), flipped, fragments, min_size=50)["segment"].tolist() == [1, 2, 1]
