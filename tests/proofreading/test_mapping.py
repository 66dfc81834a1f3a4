"""SegmentMapping, deltas, the agglomeration as version 0, reading tables by schema."""

import numpy as np
import pandas as pd
import pytest

from proofreading import LogCorruptError, SegmentMapping, UnknownSegmentError
from proofreading.agglomeration import agglomeration_mapping, mapping_at_threshold
from proofreading.graph import RegionGraph
from proofreading.mapping import Delta, pack_ids, pack_sorted, unpack_ids, unpack_sorted
from proofreading.tables import read_edges

from .synthetic import make_run, stripe_fragments, stripe_segment


def test_mapping_at_threshold_unions_rows_up_to_threshold_smallest_id_names_the_set():
    ids = np.array([5, 9, 12, 40, 41], np.uint64)
    u = np.array([9, 12, 40], np.uint64)
    v = np.array([12, 5, 41], np.uint64)
    score = np.array([0.1, 0.2, 0.9])
    assert mapping_at_threshold(ids, u, v, score, 0.15).segment_ids.tolist() == [5, 9, 9, 40, 41]
    assert mapping_at_threshold(ids, u, v, score, 0.5).segment_ids.tolist() == [5, 5, 5, 40, 41]
    assert mapping_at_threshold(ids, u, v, score, 1.0).segment_ids.tolist() == [5, 5, 5, 40, 40]


def test_agglomeration_of_the_synthetic_run_is_one_segment_per_stripe(tmp_path):
    run = make_run(tmp_path, height=4, width=6, stripe=2)
    mapping = agglomeration_mapping(run, 0.5)
    assert len(mapping) == 24
    assert mapping.segments().tolist() == [stripe_segment(s, 2, 6) for s in range(3)]
    for s in range(3):
        assert mapping.fragments_of(stripe_segment(s, 2, 6)).tolist() == stripe_fragments(s, 4, 6, 2)


def test_mapping_lookups_and_unknown_ids():
    m = SegmentMapping(np.array([30, 10, 20], np.uint64), np.array([7, 7, 8], np.uint64), version=3)
    assert m.fragment_ids.tolist() == [10, 20, 30]  # sorted on construction
    assert m[30] == 7 and m.segment_of(20) == 8
    assert m.segment_of([10, 20]).tolist() == [7, 8]
    assert 20 in m and 21 not in m
    _, segment_ids = m
    assert segment_ids.tolist() == [7, 8, 7]
    with pytest.raises(UnknownSegmentError, match="fragment 21 is not in the mapping .3 fragments. at version 3"):
        m.segment_of(21)
    with pytest.raises(UnknownSegmentError, match="fragment 0 is background"):
        m.segment_of(0)
    with pytest.raises(UnknownSegmentError, match="segment 9 does not exist at version 3"):
        m.fragments_of(9)
    with pytest.raises(ValueError, match="fragment 10 appears twice"):
        SegmentMapping(np.array([10, 10], np.uint64), np.array([1, 2], np.uint64))
    with pytest.raises(ValueError, match="fragment 0 is background"):
        SegmentMapping(np.array([0, 1], np.uint64), np.array([1, 1], np.uint64))


def test_delta_join_and_part_are_inverse():
    m = SegmentMapping(np.arange(1, 7, dtype=np.uint64), np.array([1, 1, 3, 3, 3, 6], np.uint64))
    before = m.segment_ids.copy()
    join = Delta("join", 100, (1, 3), np.array([1, 2], np.uint64))
    m.apply(join, 1)
    assert m.segment_ids.tolist() == [100, 100, 100, 100, 100, 6]
    m.apply(join.inverse(), 2)
    assert m.segment_ids.tolist() == before.tolist()
    with pytest.raises(LogCorruptError, match="edit 3 parts segment 100"):
        m.apply(join.inverse(), 3)  # 100 no longer exists
    with pytest.raises(LogCorruptError, match="edit 4 joins segments"):
        m.apply(Delta("join", 100, (1, 3), np.array([1], np.uint64)), 4)  # wrong fragment count


def test_packing_round_trips():
    ids = np.array([3, 2**62, 17, 0], np.uint64)
    assert unpack_ids(pack_ids(ids)).tolist() == ids.tolist()
    ordered = np.array([1, 5, 6, 2**40], np.uint64)
    assert unpack_sorted(pack_sorted(ordered)).tolist() == ordered.tolist()


def test_tables_are_read_by_schema_and_missing_columns_named(tmp_path):
    run = make_run(tmp_path / "run", height=3, width=4, stripe=2)
    edges = read_edges(run)  # two files concatenated
    assert len(edges["u"]) == 3 * 3 + 2 * 4 and np.all(edges["u"] < edges["v"])
    bad = tmp_path / "bad"
    (bad / "graph").mkdir(parents=True)
    pd.DataFrame({"u": [1], "v": [2], "affinity": [0.5]}).to_parquet(bad / "graph" / "edges.parquet")
    with pytest.raises(ValueError, match=r"edges.parquet lacks column\(s\) \['affinity_mean'\]"):
        read_edges(bad)
    with pytest.raises(FileNotFoundError, match="no agglomeration/merge_history.parquet in"):
        agglomeration_mapping(bad, 0.5)


def test_region_graph_subgraph_and_join_edge():
    ids = np.array([10, 20, 30, 40], np.uint64)
    graph = RegionGraph(ids, np.array([10, 20, 30, 10], np.uint64), np.array([20, 30, 40, 30], np.uint64),
                        np.array([0.9, 0.2, 0.8, 0.5]))
    nodes, edges, weights = graph.subgraph(np.array([True, True, True, False]))
    assert nodes.tolist() == [0, 1, 2]
    assert sorted(zip(map(tuple, edges.tolist()), weights.tolist())) == [((0, 1), 0.9), ((0, 2), 0.5), ((1, 2), 0.2)]
    # strongest edge between {10, 20} and {30, 40} is 10-30 (0.5), oriented first -> second
    assert graph.join_edge(np.array([True, True, False, False]), np.array([False, False, True, True])) == (0, 2)
    with pytest.raises(ValueError, match="edge endpoint 99 is not a fragment"):
        RegionGraph(ids, np.array([10], np.uint64), np.array([99], np.uint64), np.array([0.5]))


def test_the_segmentation_stage_layout_is_read(tmp_path):
    """Per-block files named edges-<block>/fragments-<block>, nm centroids, extra columns, fragment_ids."""
    from proofreading import Proofreader
    from proofreading.tables import read_centroids, read_fragment_ids

    run = tmp_path / "run"
    (run / "graph").mkdir(parents=True)
    (run / "agglomeration").mkdir()
    pd.DataFrame({"u": np.array([1, 2], np.uint64), "v": np.array([2, 3], np.uint64), "contact_area": [4, 4],
                  "affinity_sum": [900, 100], "affinity_mean": [0.9, 0.1], "linked": [True, False]}
                 ).to_parquet(run / "graph" / "edges-0_0_0.parquet")
    pd.DataFrame({"id": np.array([1, 2, 3, 7], np.uint64), "size": [5, 5, 5, 5], "anchor": [0, 1, 2, 3],
                  "z_nm": [0.0, 0.0, 0.0, 0.0], "y_nm": [0.0, 8.0, 16.0, 500.0], "x_nm": [0.0, 0.0, 0.0, 0.0]}
                 ).to_parquet(run / "graph" / "fragments-0_0_0.parquet")
    pd.DataFrame({"u": np.array([1], np.uint64), "v": np.array([2], np.uint64), "score": [0.1]}
                 ).to_parquet(run / "agglomeration" / "merge_history.parquet")
    pd.DataFrame({"id": np.array([1, 2, 3, 7, 9], np.uint64)}).to_parquet(run / "agglomeration" / "fragment_ids.parquet")
    ids = read_fragment_ids(run)
    assert ids.tolist() == [1, 2, 3, 7, 9]
    assert read_centroids(run, ids)[:, 1].tolist()[:4] == [0.0, 8.0, 16.0, 500.0]
    with Proofreader.open(run, "ada", threshold=0.5) as pr:
        assert pr.mapping().segment_ids.tolist() == [1, 1, 3, 7, 9]
        assert pr.merge(7, 1).edge == (7, 2)  # no contact: the closest centroids (nm) join them
