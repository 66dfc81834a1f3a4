"""Merge, split, undo/redo, conflicts and replay on a 6x6 grid of fragments in three stripes."""

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from proofreading import (
    ConflictError,
    IncompatibleLogError,
    NothingToUndoError,
    Proofreader,
    SplitError,
    UnknownSegmentError,
    map_synapses,
    segment_edges,
)

from .synthetic import fragment_id, grid_edges, make_run, stripe_fragments

H, W, S = 6, 6, 2
A, B, C = 101, 107, 113  # version-0 segments: the three stripes


def f(y, x):
    return fragment_id(y, x, W)


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path / "run", height=H, width=W, stripe=S, necks=((0, 2),))


@pytest.fixture
def pr(run):
    with Proofreader.open(run, "ada", threshold=0.5, snapshot_every=4) as proofreader:
        yield proofreader


def connected(fragments) -> bool:
    u, v, _ = grid_edges(H, W, S)
    graph = nx.Graph(list(zip(u.tolist(), v.tolist())))
    return nx.is_connected(graph.subgraph([int(x) for x in fragments]))


def test_merge_then_undo_returns_the_exact_previous_mapping(pr):
    before = pr.mapping()
    edit = pr.merge(A, B)
    assert (edit.version, edit.base_version, edit.author, edit.operation) == (1, 0, "ada", "merge")
    assert edit.removed_segments == (A, B)
    (merged,) = edit.new_segments
    assert merged > f(H - 1, W - 1)  # a fresh id, never a reused one
    assert pr.fragments_of(merged).tolist() == sorted(stripe_fragments(0, H, W, S) + stripe_fragments(1, H, W, S))
    undo = pr.undo()
    assert (undo.version, undo.operation, undo.target, undo.new_segments) == (2, "undo", 1, (A, B))
    after = pr.mapping()
    assert np.array_equal(after.fragment_ids, before.fragment_ids)
    assert np.array_equal(after.segment_ids, before.segment_ids)
    redo = pr.redo()
    assert redo.new_segments == (merged,)  # redo re-creates the same segment id
    assert np.array_equal(pr.mapping().segment_ids, pr.mapping(1).segment_ids)


def test_merge_by_fragments_records_the_points(pr):
    edit = pr.merge(f(5, 1), f(0, 4), by="fragment")
    assert edit.removed_segments == (A, C)
    assert edit.edge == (f(5, 1), f(0, 4))
    assert edit.arguments == {"by": "fragment", "a": f(5, 1), "b": f(0, 4), "segments": [A, C]}


def test_split_cuts_the_weakest_neck_and_keeps_each_side_connected(pr):
    edit = pr.split(A, sources=[f(0, 0)], sinks=[f(5, 1)])
    top, bottom = edit.new_segments  # (source side, sink side)
    assert pr.fragments_of(top).tolist() == sorted(f(y, x) for y in range(3) for x in range(2))
    assert pr.fragments_of(bottom).tolist() == sorted(f(y, x) for y in range(3, 6) for x in range(2))
    assert pr.segment_of(f(0, 0)) == top and pr.segment_of(f(5, 1)) == bottom
    assert connected(pr.fragments_of(top)) and connected(pr.fragments_of(bottom))
    assert pr.mapping().segments().tolist() == sorted([B, C, top, bottom])


def test_split_with_several_sources_and_sinks_and_inferred_segment(pr):
    edit = pr.split(None, sources=[f(0, 2), f(0, 3)], sinks=[f(1, 2), f(1, 3)])  # stripe B: row 0 vs the rest
    source, sink = edit.new_segments
    assert pr.fragments_of(source).tolist() == [f(0, 2), f(0, 3)]
    assert connected(pr.fragments_of(sink)) and len(pr.fragments_of(sink)) == 10
    assert edit.arguments == {"segment": B, "sources": [f(0, 2), f(0, 3)], "sinks": [f(1, 2), f(1, 3)]}


def test_split_after_merging_segments_that_do_not_touch_cuts_the_merge(pr):
    merged = pr.merge(A, C).new_segments[0]  # stripes 0 and 2 share no region-graph edge
    edit = pr.split(merged, [f(3, 0)], [f(3, 5)])
    assert pr.fragments_of(edit.new_segments[0]).tolist() == stripe_fragments(0, H, W, S)
    assert pr.fragments_of(edit.new_segments[1]).tolist() == stripe_fragments(2, H, W, S)


def test_split_refusals_name_the_problem(pr):
    with pytest.raises(SplitError, match=f"sink fragment {f(0, 2)} is in segment {B}, not in segment {A} "
                                         r"\(of source 101\); a split acts within one segment"):
        pr.split(None, [f(0, 0)], [f(0, 2)])
    with pytest.raises(SplitError, match=f"source fragment {f(0, 0)} is in segment {A}, not in segment {B};"):
        pr.split(B, [f(0, 0)], [f(0, 2)])
    with pytest.raises(SplitError, match=f"fragment {f(1, 1)} is both a source and a sink; fragments are immutable"):
        pr.split(A, [f(0, 0), f(1, 1)], [f(1, 1)])
    with pytest.raises(SplitError, match=r"the sources fall into 2 pieces once cut from the other side "
                                         rf"\(sources fragments by piece: \[\[{f(0, 0)}\], \[{f(5, 0)}\]\]\)"):
        pr.split(A, [f(0, 0), f(5, 0)], [f(2, 0), f(2, 1)])
    with pytest.raises(UnknownSegmentError, match="fragment 102 is not in the mapping"):
        pr.split(A, [102], [f(5, 0)])
    with pytest.raises(ValueError, match="sources must be one or more fragment ids"):
        pr.split(A, [], [f(5, 0)])
    assert pr.version == 0 and pr.log() == []  # nothing refused reached the log


def test_merge_refusals_name_the_problem(pr):
    with pytest.raises(UnknownSegmentError, match="segment 999 does not exist at version 0; name it by a voxel point or a fragment"):
        pr.merge(A, 999)
    with pytest.raises(UnknownSegmentError, match="segment 104 does not exist at version 0"):
        pr.merge(A, f(0, 1))  # a fragment id is not a segment id
    with pytest.raises(ValueError, match=f"nothing to merge: fragments {f(0, 0)} and {f(5, 1)} are both in segment {A}"):
        pr.merge(f(0, 0), f(5, 1), by="fragment")
    with pytest.raises(ValueError, match="merge by 'points': expected 'segment' or 'fragment'"):
        pr.merge(A, B, by="points")


def test_conflicting_edit_is_rejected_and_a_commuting_one_applied(run, pr):
    with Proofreader.open(run, "bob") as bob:
        assert bob.version == 0
        pr.merge(A, B)  # ada, version 1; bob still looks at version 0
        with pytest.raises(ConflictError, match=rf"split made against version 0 conflicts with later edits: segment "
                                                rf"{A} was changed by edit 1 \(merge by ada\); the log is at version 1"
                           ) as info:
            bob.split(A, [f(0, 0)], [f(5, 0)])
        assert info.value.segments == {A: 1} and info.value.base_version == 0 and info.value.head_version == 1
        assert [e.version for e in bob.log()] == [1]  # rejected: not in the log
        # bob saw version 0; the stripe C split touches only C, unchanged since: it commutes
        bob_edit = bob.split(C, [f(0, 4)], [f(5, 5)], base_version=0)
        assert (bob_edit.version, bob_edit.base_version) == (2, 0)
        assert bob.version == 2
        # ada undoes her merge while bob splits the merged segment: whoever is second conflicts
        merged = pr.log()[0].new_segments[0]
        bob.split(merged, [f(0, 0)], [f(0, 3)])
        with pytest.raises(ConflictError, match=f"segment {merged} was changed by edit 3 .split by bob."):
            pr.undo()


def test_undo_redo_stacks_per_author(run, pr):
    first = pr.merge(A, B)
    second = pr.split(C, [f(0, 4)], [f(5, 4)])
    assert pr.undo().target == second.version
    assert pr.undo().target == first.version
    with pytest.raises(NothingToUndoError, match="nothing to undo for author 'ada'"):
        pr.undo()
    assert pr.redo().target == first.version  # most recently undone first
    assert pr.redo().target == second.version
    with pytest.raises(NothingToUndoError, match="nothing to redo for author 'ada'"):
        pr.redo()
    pr.undo()
    pr.merge(pr.segment_of(f(0, 0)), pr.segment_of(f(0, 4)))  # a new edit clears the redo stack
    with pytest.raises(NothingToUndoError, match="nothing to redo"):
        pr.redo()
    with pytest.raises(NothingToUndoError, match="cannot undo version 3: it is an edit of type 'undo'"):
        pr.undo(3)
    with pytest.raises(NothingToUndoError, match="cannot redo edit 1: it is already applied"):
        pr.redo(1)
    with Proofreader.open(run, "bob") as bob:  # anyone may undo an edit by its version
        with pytest.raises(NothingToUndoError, match="nothing to undo for author 'bob'"):
            bob.undo()
        with pytest.raises(NothingToUndoError, match="cannot undo edit 2: it is already undone at version 8"):
            bob.undo(second.version)
        assert bob.undo(8).author == "bob"


def test_replaying_the_log_reproduces_the_mapping_at_every_version(run, pr):
    rng = np.random.default_rng(0)
    seen = {0: pr.mapping().segment_ids.copy()}
    for _ in range(30):
        choice = rng.integers(4)
        segments = pr.mapping().segments()
        try:
            if choice == 0 and len(segments) > 1:
                a, b = rng.choice(segments, 2, replace=False)
                pr.merge(int(a), int(b))
            elif choice == 1:
                s = int(rng.choice(segments))
                members = pr.fragments_of(s)
                if len(members) < 2:
                    continue
                src, snk = rng.choice(members, 2, replace=False)
                pr.split(s, [int(src)], [int(snk)])
            elif choice == 2:
                pr.undo()
            else:
                pr.redo()
        except (NothingToUndoError, SplitError):
            continue
        seen[pr.version] = pr.mapping().segment_ids.copy()
    assert pr.version >= 20
    with Proofreader.open(run, "carol", snapshot_every=4) as fresh:
        assert fresh.version == pr.version
        for version, expected in seen.items():
            assert np.array_equal(fresh.mapping(version).segment_ids, expected), version
            assert np.array_equal(fresh.mapping(version, use_snapshots=False).segment_ids, expected), version
    stored = pr.edit_log.db.query("SELECT version FROM snapshots ORDER BY version")
    assert [v for (v,) in stored] == [v for v in range(4, pr.version + 1, 4)]


def test_synapses_follow_edits(pr):
    synapses = pd.DataFrame({  # pre -> post by fragment; stripes A, B, C
        "pre_fragment": [f(0, 0), f(5, 1), f(0, 2), f(3, 3), f(1, 4), f(0, 0)],
        "post_fragment": [f(0, 4), f(0, 4), f(0, 4), f(4, 0), f(0, 0), 0],
    })
    def weights(version):
        edges = segment_edges(map_synapses(synapses, pr.mapping(version)))
        return {(int(a), int(b)): int(w) for a, b, w in edges.itertuples(index=False)}

    assert weights(0) == {(A, C): 2, (B, C): 1, (B, A): 1, (C, A): 1}
    merged = pr.merge(A, B).new_segments[0]
    assert weights(1) == {(merged, C): 3, (merged, merged): 1, (C, merged): 1}
    top, bottom = pr.split(merged, [f(0, 0)], [f(5, 0)]).new_segments
    # the cut: stripe A's neck plus the weak A|B contacts below it; stripe B stays with the top
    assert pr.fragments_of(bottom).tolist() == sorted(f(y, x) for y in range(3, 6) for x in range(2))
    assert weights(2) == {(top, C): 2, (bottom, C): 1, (top, bottom): 1, (C, top): 1}
    pr.undo()
    pr.undo()
    assert weights(4) == weights(0)
    mapped = map_synapses(synapses, pr.mapping(1))
    assert mapped["post_segment"].tolist()[-1] == 0 and list(synapses.columns) == ["pre_fragment", "post_fragment"]
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['post_fragment'\]"):
        map_synapses(synapses[["pre_fragment"]], pr.mapping())


def test_reopening_checks_the_agglomeration(run, pr, tmp_path):
    pr.merge(A, B)
    with pytest.raises(IncompatibleLogError, match="was started from threshold 0.5, not threshold 0.7"):
        Proofreader.open(run, "ada", threshold=0.7)
    with Proofreader.open(run, "ada", threshold=0.5) as again:
        assert again.version == 1
    with pytest.raises(ValueError, match="no edit log in .* yet and no threshold in .*run.json: give the agglomeration threshold"):
        Proofreader.open(run, "ada", database=tmp_path / "other.sqlite")
    with pytest.raises(ValueError, match="author must be a non-empty name"):
        Proofreader.open(run, " ")


def test_initial_mapping_as_version_zero(run, tmp_path):
    base = Proofreader.open(run, "ada", threshold=0.5, database=tmp_path / "a.sqlite").mapping()
    ids = base.fragment_ids
    singletons = (ids, ids.copy())  # every fragment its own segment
    with Proofreader.open(run, "ada", initial_mapping=singletons, database=tmp_path / "b.sqlite") as pr:
        assert len(pr.mapping().segments()) == H * W
        merged = pr.merge(f(0, 0), f(0, 1), by="fragment").new_segments[0]
        assert pr.fragments_of(merged).tolist() == [f(0, 0), f(0, 1)]
    with pytest.raises(IncompatibleLogError, match="was started from a different mapping"):
        Proofreader.open(run, "ada", initial_mapping=(ids, ids + 1), database=tmp_path / "b.sqlite")


def test_networkx_and_igraph_cut_the_same(run, tmp_path):
    pytest.importorskip("igraph")
    results = []
    for backend in ("igraph", "networkx"):
        with Proofreader.open(run, "ada", threshold=0.5, database=tmp_path / f"{backend}.sqlite",
                              split_backend=backend) as pr:
            edit = pr.split(A, [f(0, 0)], [f(5, 1)])
            results.append(pr.fragments_of(edit.new_segments[0]).tolist())
    assert results[0] == results[1]
