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


def test_ties_go_to_the_larger_contact_then_the_first_anchor_whatever_the_edge_order():
    # 1 (small) touches 2 and 3 with the same mean affinity 0.5
    edges = pd.DataFrame({"u": [1, 1], "v": [2, 3], "contact_area": [10, 12], "affinity_sum": [5, 6]})
    fragments = pd.DataFrame({"id": [1, 2, 3], "size": [20, 500, 500], "anchor": [7, 0, 900]})
    assert absorb_small(_mapping([1, 2, 3]), edges, fragments, min_size=50)["segment"].tolist() == [1, 2, 1]
    # the same area too: the neighbour whose first voxel comes first (anchor 0 < 900), not the smaller id
    # (ids and edge order depend on the block shape, anchors do not)
    edges["contact_area"], edges["affinity_sum"] = [10, 10], [5, 5]
    fragments["anchor"] = [7, 900, 0]
    for table in (edges, edges.iloc[::-1].reset_index(drop=True)):
        assert absorb_small(_mapping([1, 2, 3]), table, fragments, min_size=50)["segment"].tolist() == [1, 2, 1]


def test_a_segment_ties_by_the_first_anchor_of_any_of_its_fragments():
    # 1 (small) ties between segment 2 = {2, 4} (anchors 500, 3) and segment 3 (anchor 100): 2 has the first voxel
    mapping = pd.DataFrame({"fragment": np.array([1, 2, 3, 4], np.uint64), "segment": np.array([1, 2, 3, 2], np.uint64)})
    edges = pd.DataFrame({"u": [1, 1], "v": [2, 3], "contact_area": [10, 10], "affinity_sum": [5, 5]})
    fragments = pd.DataFrame({"id": [1, 2, 3, 4], "size": [20, 300, 500, 300], "anchor": [50, 500, 100, 3]})
    assert absorb_small(mapping, edges, fragments, min_size=50)["segment"].tolist() == [1, 1, 3, 1]


def test_without_anchors_ties_go_to_the_smaller_segment_id_whatever_the_edge_order():
    fragments = pd.DataFrame({"id": [1, 2, 3], "size": [500, 20, 500]})
    edges = pd.DataFrame({"u": [1, 2], "v": [2, 3], "contact_area": [10, 10], "affinity_sum": [5, 5]})
    for table in (edges, edges.iloc[::-1].reset_index(drop=True)):
        assert absorb_small(_mapping([1, 2, 3]), table, fragments, min_size=50)["segment"].tolist() == [1, 1, 3]
