"""Agglomeration: greedy mean-affinity semantics (against a reference and waterz), links, mutex."""

import heapq

import numpy as np
import pandas as pd
import pytest

from connecto.segment.affinities import affinities_from_labels
from connecto.segment.agglomerate import LINK_SCORE, _relabel_edges, agglomerate_mean, mutex_watershed
from connecto.segment.evaluate import evaluate
from connecto.segment.fragments import fragment_table, fragments
from connecto.segment.greedy import greedy_mean
from connecto.segment.region_graph import region_graph
from connecto.segment.relabel import relabel


def greedy_reference(edges: pd.DataFrame) -> list[tuple[float, frozenset]]:
    """Plain heap-based greedy merging (the textbook algorithm): [(score, merged node set)]."""
    stats = {}
    for u, v, area, total in edges[["u", "v", "contact_area", "affinity_sum"]].itertuples(index=False):
        stats.setdefault(int(u), {})[int(v)] = [int(total), int(area)]
        stats.setdefault(int(v), {})[int(u)] = [int(total), int(area)]

    def score(total, area):
        return (255 * area - total) / (255 * area)

    heap = [(score(*stats[u][v]), u, v) for u in stats for v in stats[u] if u < v]
    heapq.heapify(heap)
    members = {u: {u} for u in stats}
    merges = []
    while heap:
        s, u, v = heapq.heappop(heap)
        if u not in stats or v not in stats[u] or score(*stats[u][v]) != s:
            continue  # stale
        merges.append((s, frozenset(members[u] | members[v])))
        for w, (total, area) in stats.pop(v).items():
            del stats[w][v]
            if w == u:
                continue
            entry = stats[u].setdefault(w, [0, 0])
            entry[0] += total
            entry[1] += area
            stats[w][u] = entry
            heapq.heappush(heap, (score(*entry), min(u, w), max(u, w)))
        members[u] |= members.pop(v)
    return merges


def partition(mapping: pd.DataFrame) -> set[frozenset]:
    groups = mapping.groupby("segment")["fragment"].apply(lambda s: frozenset(int(x) for x in s))
    return set(groups)


def random_graph(seed, nodes=80, edges=240):
    rng = np.random.default_rng(seed)
    u = rng.integers(1, nodes + 1, edges)
    v = rng.integers(1, nodes + 1, edges)
    keep = u != v
    table = pd.DataFrame({"u": np.minimum(u, v)[keep], "v": np.maximum(u, v)[keep]}).drop_duplicates()
    area = rng.integers(1, 40, len(table))
    table["contact_area"] = area
    table["affinity_sum"] = (rng.random(len(table)) * 255 * area).astype(np.int64)
    return table.astype({"u": np.uint64, "v": np.uint64}).reset_index(drop=True)


def anchored_reference(n, u, v, total, area, key, max_score):
    """The textbook heap with connecto's naming and tie rules, in plain Python: [(root, absorbed, score)].

    A region is named by its member with the smallest key; equal scores go to the contact
    whose first (smaller key, larger key) fragment pair is smallest.
    """
    contact = {}
    for a, b, t, s in zip(u.tolist(), v.tolist(), total.tolist(), area.tolist()):
        c = (t, s, (min(key[a], key[b]), max(key[a], key[b])))
        contact.setdefault(a, {})[b] = c
        contact.setdefault(b, {})[a] = c

    def priority(a, b):
        t, s, tie = contact[a][b]
        return (255 * s - t) / (255 * s), tie

    heap = [(*priority(a, b), a, b) for a in contact for b in contact[a] if a < b]
    heapq.heapify(heap)
    merges = []
    while heap:
        score, tie, a, b = heapq.heappop(heap)
        if a not in contact or b not in contact[a] or priority(a, b) != (score, tie):
            continue  # stale
        if score > max_score:
            break
        keep, gone = (a, b) if key[a] < key[b] else (b, a)
        merges.append((keep, gone, score))
        for w, (t, s, tie) in contact.pop(gone).items():
            del contact[w][gone]
            if w == keep:
                continue
            if w in contact[keep]:
                t0, s0, tie0 = contact[keep][w]
                t, s, tie = t0 + t, s0 + s, min(tie0, tie)
            contact[keep][w] = contact[w][keep] = (t, s, tie)
            heapq.heappush(heap, (*priority(keep, w), min(keep, w), max(keep, w)))
    return merges


def tie_heavy_graph(seed, kind):
    """Edges (u, v, total, area) over n nodes with few distinct scores, and random keys."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 250))
    if kind == "chain":  # a path with a few shortcuts: many rounds
        u, v = np.arange(n - 1), np.arange(1, n)
        extra = rng.integers(0, n, (2, n // 10))
        u, v = np.r_[u, extra[0]], np.r_[v, extra[1]]
    elif kind == "hubs":  # a few nodes touching most others
        m = 3 * n
        u, v = rng.integers(0, 3, m), rng.integers(0, n, m)
    else:
        m = 3 * n
        u, v = rng.integers(0, n, m), rng.integers(0, n, m)
    pairs = np.unique(np.c_[np.minimum(u, v), np.maximum(u, v)][u != v], axis=0)
    area = rng.integers(1, 3, len(pairs))
    total = rng.integers(0, 6, len(pairs)) * 51 * area
    return n, pairs[:, 0], pairs[:, 1], total, area, rng.permutation(n)


@pytest.mark.parametrize("kind", ["random", "chain", "hubs"])
@pytest.mark.parametrize("max_score", [1.0, 0.5])
def test_compiled_greedy_is_the_reference_on_tie_heavy_graphs(kind, max_score):
    """Same merges, same order, same names, on graphs where most scores tie."""
    for seed in range(25):
        n, u, v, total, area, key = tie_heavy_graph(seed, kind)
        root, absorbed, score = greedy_mean(n, u, v, total, area, key, max_score)
        got = list(zip(root.tolist(), absorbed.tolist(), score.tolist()))
        assert got == anchored_reference(n, u, v, total, area, key, max_score)


@pytest.mark.parametrize("kind", ["random", "hubs"])
def test_compiled_greedy_with_a_full_heap_and_table(kind):
    """A heap that fills up (stale rows dropped) and a table that fills with tombstones (rebuilt)."""
    from connecto.segment.greedy import _greedy

    for seed in range(10):
        n, u, v, total, area, key = tie_heavy_graph(seed, kind)
        m = u.size
        as_int = [np.ascontiguousarray(x, dtype=np.int64) for x in (key, u, v, total, area)]
        slots = 1 << int(np.ceil(np.log2(4 * m / 3 + 1)))
        root, absorbed, score = _greedy(n, *as_int, 1.0, slots, m + 1)
        got = list(zip(root.tolist(), absorbed.tolist(), score.tolist()))
        assert got == anchored_reference(n, u, v, total, area, key, 1.0)


def test_compiled_greedy_refuses_bad_edges():
    with pytest.raises(ValueError, match="two different nodes"):
        greedy_mean(3, [0, 1], [0, 2], [10, 10], [1, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="contact area"):
        greedy_mean(3, [0], [1], [10], [0], [0, 1, 2])
    with pytest.raises(ValueError, match="at most 3e9"):
        greedy_mean(3_000_000_000, [0], [1], [10], [1], [0, 1])


def test_long_merge_chains_same_merges_as_textbook_greedy():
    """A grid with random contacts: regions grow through long chains of merges (many rounds)."""
    rng = np.random.default_rng(3)
    side = 20
    index = np.arange(side * side).reshape(side, side)
    u = np.r_[index[:, :-1].ravel(), index[:-1, :].ravel()]
    v = np.r_[index[:, 1:].ravel(), index[1:, :].ravel()]
    area = rng.integers(1, 40, u.size)
    total = (rng.random(u.size) * 255 * area).astype(np.int64)
    edges = pd.DataFrame({"u": u + 1, "v": v + 1, "contact_area": area, "affinity_sum": total}).astype(
        {"u": np.uint64, "v": np.uint64})
    reference = greedy_reference(edges)
    history = agglomerate_mean(edges)
    assert history.merges["score"].tolist() == [s for s, _ in reference]
    for score, group in reference[::25]:
        assert group in partition(history.mapping(score))


def test_a_hand_example():
    edges = pd.DataFrame({"u": [1, 2], "v": [2, 3], "contact_area": [2, 1], "affinity_sum": [459, 51]})
    history = agglomerate_mean(edges)
    assert history.merges.to_dict("list") == {"u": [1, 1], "v": [2, 3], "score": [pytest.approx(0.1),
                                                                                 pytest.approx(0.8)]}
    assert partition(history.mapping(0.5)) == {frozenset({1, 2}), frozenset({3})}
    assert history.num_segments(0.5) == 2 and history.num_segments(1.0) == 1


@pytest.mark.parametrize("seed", range(6))
def test_same_merges_as_textbook_greedy(seed):
    edges = random_graph(seed)
    reference = greedy_reference(edges)
    history = agglomerate_mean(edges)
    assert sorted(history.merges["score"]) == [s for s, _ in reference]
    scores = sorted({s for s, _ in reference})
    for low, high in zip(scores, scores[1:] + [1.0]):
        threshold = (low + high) / 2
        expected = {group for s, group in reference if s <= threshold}
        got = {group for group in partition(history.mapping(threshold)) if len(group) > 1}
        # the reference lists every intermediate set; the final groups are its maximal ones
        maximal = {g for g in expected if not any(g < other for other in expected)}
        assert got == maximal


def test_same_segmentation_as_waterz():
    waterz = pytest.importorskip("waterz")
    rng = np.random.default_rng(0)
    labels = np.kron(rng.permutation(27).reshape(3, 3, 3) + 1, np.ones((8, 8, 8), int)).astype(np.uint64)
    affs = affinities_from_labels(labels, noise=0.35, seed=1)
    frags = fragments(affs)
    history = agglomerate_mean(region_graph(frags, affs), fragment_table(frags))
    thresholds = [0.13, 0.37, 0.61, 0.87]
    results = waterz.agglomerate((affs / 255).astype(np.float32), thresholds, fragments=frags.copy())
    for threshold, theirs in zip(thresholds, results):
        ours = relabel(frags, history.mapping(threshold))
        assert evaluate(ours, theirs.copy(), ignore_gt_labels=()).voi_sum < 1e-4


def test_ties_are_broken_by_anchors_not_ids():
    edges = pd.DataFrame({"u": [1, 2, 1], "v": [2, 3, 3], "contact_area": [1, 1, 4], "affinity_sum": [200, 200, 0]})
    anchors = pd.DataFrame({"id": [1, 2, 3], "anchor": [30, 20, 10]})
    history = agglomerate_mean(edges, anchors)
    # (1,2) and (2,3) tie; 2 prefers the neighbour with the smaller anchor: 3
    assert history.merges.iloc[0][["u", "v"]].tolist() == [3, 2]
    renamed = edges.assign(u=edges["u"].map({1: 7, 2: 8, 3: 9}), v=edges["v"].map({1: 7, 2: 8, 3: 9}))
    again = agglomerate_mean(renamed, anchors.assign(id=[7, 8, 9]))
    assert again.merges.iloc[0][["u", "v"]].tolist() == [9, 8]


def test_linked_pieces_are_joined_first():
    edges = pd.DataFrame({"u": [1, 2], "v": [2, 3], "contact_area": [1, 1], "affinity_sum": [0, 255],
                          "linked": [True, False]})
    history = agglomerate_mean(edges)
    assert history.merges["score"].tolist() == [LINK_SCORE, 0.0]
    assert partition(history.mapping(0.0)) == {frozenset({1, 2, 3})}


def test_max_score_stops_merging():
    history = agglomerate_mean(random_graph(1), max_score=0.5)
    assert history.merges["score"].max() <= 0.5
    assert len(history.merges) < len(agglomerate_mean(random_graph(1)).merges)


def test_fragments_without_edges_are_segments_of_their_own():
    edges = pd.DataFrame({"u": [1], "v": [2], "contact_area": [1], "affinity_sum": [255]})
    history = agglomerate_mean(edges, pd.DataFrame({"id": [1, 2, 5], "anchor": [0, 1, 2]}))
    assert partition(history.mapping(1.0)) == {frozenset({1, 2}), frozenset({5})}


def test_an_empty_graph():
    empty = pd.DataFrame({"u": np.empty(0, np.uint64), "v": np.empty(0, np.uint64),
                          "contact_area": np.empty(0, np.int64), "affinity_sum": np.empty(0, np.int64)})
    history = agglomerate_mean(empty)
    assert len(history.merges) == 0 and len(history.mapping(0.5)) == 0
    assert len(mutex_watershed(empty).mapping(0.5)) == 0


def test_mutex_watershed_keeps_repelling_fragments_apart():
    # 1-2 attract (0.9), 2-3 attract weakly (0.6), 1-3 repel strongly (0.05)
    edges = pd.DataFrame({"u": [1, 2, 1], "v": [2, 3, 3], "contact_area": [10, 10, 10],
                          "affinity_sum": [2295, 1530, 128]})
    assert partition(mutex_watershed(edges, bias=0.5).mapping(1.0)) == {frozenset({1, 2}), frozenset({3})}
    # the mean-affinity history merges 3 in the end, at the mean of its two contacts
    assert partition(agglomerate_mean(edges).mapping(0.99)) == {frozenset({1, 2, 3})}
