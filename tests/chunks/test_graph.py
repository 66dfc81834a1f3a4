"""Connected components named by their smallest id: the one implementation behind merge-history mappings."""

import numpy as np
import pytest

from chunks.graph import component_min_ids


def test_each_id_gets_the_smallest_id_of_its_component():
    ids = np.array([2, 5, 7, 11, 13, 40], np.uint64)
    # 13-7-5 chain and 40-2; 11 alone; edges in any order and direction, repeated
    u = np.array([13, 7, 40, 5], np.uint64)
    v = np.array([7, 5, 2, 7], np.uint64)
    assert component_min_ids(ids, u, v).tolist() == [2, 5, 5, 11, 5, 2]


def test_without_edges_every_id_is_its_own_component_and_empty_ids_give_empty():
    ids = np.array([3, 4], np.uint64)
    assert component_min_ids(ids, [], []).tolist() == [3, 4]
    out = component_min_ids(np.empty(0, np.uint64), [], [])
    assert out.dtype == np.uint64 and out.size == 0


def test_ids_above_2_to_the_63_keep_their_values():
    big = np.array([2**63 + 1, 2**64 - 2], np.uint64)
    assert component_min_ids(big, big[1:], big[:1]).tolist() == [2**63 + 1, 2**63 + 1]


def test_an_edge_end_that_is_not_an_id_is_refused():
    ids = np.array([1, 2, 3], np.uint64)
    with pytest.raises(ValueError, match=r"1 edge end\(s\) are not among the 3 ids: \[9\]"):
        component_min_ids(ids, np.array([1]), np.array([9]))
    with pytest.raises(ValueError, match=r"are not among the 3 ids: \[0\]"):
        component_min_ids(ids, np.array([0]), np.array([1]))  # below the first id: no silent neighbour


def test_unsorted_ids_are_refused():
    with pytest.raises(ValueError, match=r"ids must be sorted and unique \(np.unique\(ids\) gives them\)"):
        component_min_ids(np.array([3, 1], np.uint64), [], [])
