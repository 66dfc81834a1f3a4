"""Agglomeration on the region graph: a merge history, and segments at any threshold.

``agglomerate_mean`` has waterz's semantics (``OneMinus<MeanAffinity>``): repeatedly merge
the pair of regions whose contact has the highest mean affinity; the merged region's
contacts are the union of its parts' (sums and areas add). Each merge is recorded as
``(u, v, score)`` with ``score = 1 - mean affinity``; the segmentation at threshold ``t``
is the connected components of the merges with ``score <= t`` (waterz stops at
``score >= t``, so the two agree except at a score equal to ``t``).

It runs without a per-edge Python loop: mean affinity is a *reducible* linkage (a merged
contact's mean lies between its parts' means), so the greedy order is reproduced by
merging all reciprocal best pairs at once, round after round (the nearest-neighbour-chain
argument), each round a few vectorised passes over the edges. Scores are exact rationals
of integer sums (uint8 affinities), and ties are broken by fragment *anchors* (see
:func:`connecto.segment.fragments.fragment_table`), not by ids, so a blockwise run and a
single-block run make the same merges.

Edges flagged ``linked`` (pieces of one watershed basin cut by a block face) are joined
first, with score ``LINK_SCORE`` (below every threshold).

``mutex_watershed`` runs mwatershed's mutex watershed on the same graph (one
segmentation for a ``bias``; edges with mean affinity above it attract, below repel).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .affinities import AFFINITY_MAX

logger = logging.getLogger(__name__)

LINK_SCORE = -1.0
HISTORY_COLUMNS = ("u", "v", "score")


@dataclass(frozen=True)
class MergeHistory:
    """Merges ``(u, v, score)`` in order (scores non-decreasing) over ``fragment_ids``.

    ``u`` and ``v`` are fragment ids standing for the two regions merged.
    """

    merges: pd.DataFrame
    fragment_ids: np.ndarray

    def mapping(self, threshold: float) -> pd.DataFrame:
        """Fragment -> segment at ``threshold``: columns ``fragment``, ``segment`` (uint64).

        A segment's id is the smallest fragment id in it.
        """
        chosen = self.merges[self.merges["score"].to_numpy() <= threshold]
        return components_mapping(self.fragment_ids, chosen["u"].to_numpy(), chosen["v"].to_numpy())

    def num_segments(self, threshold: float) -> int:
        merged = int(np.count_nonzero(self.merges["score"].to_numpy() <= threshold))
        return int(self.fragment_ids.size) - merged


def components_mapping(fragment_ids: np.ndarray, u: np.ndarray, v: np.ndarray) -> pd.DataFrame:
    """Connected components of the pairs ``(u, v)`` over ``fragment_ids``, as a mapping table."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    fragment_ids = np.asarray(fragment_ids, dtype=np.uint64)
    n = fragment_ids.size
    if n == 0:
        return pd.DataFrame({"fragment": np.empty(0, np.uint64), "segment": np.empty(0, np.uint64)})
    iu, iv = np.searchsorted(fragment_ids, u), np.searchsorted(fragment_ids, v)
    graph = coo_matrix((np.ones(iu.size, np.int8), (iu, iv)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    smallest = np.full(labels.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, labels, np.arange(n))  # fragment_ids are sorted: smallest index = smallest id
    return pd.DataFrame({"fragment": fragment_ids, "segment": fragment_ids[smallest[labels]]})


# --- the graph in compact form ----------------------------------------------------------

@dataclass
class _Graph:
    ids: np.ndarray  # fragment id per node (sorted, uint64)
    key: np.ndarray  # tie-break key per node (anchor), int64
    u: np.ndarray  # node index per edge
    v: np.ndarray
    total: np.ndarray  # affinity sum per edge (uint8 units), int64
    area: np.ndarray  # contacts per edge, int64
    linked: np.ndarray


def _compact(edges: pd.DataFrame, fragments: pd.DataFrame | None) -> _Graph:
    eu = edges["u"].to_numpy(np.uint64)
    ev = edges["v"].to_numpy(np.uint64)
    if fragments is not None and len(fragments):
        ids = np.unique(np.concatenate([fragments["id"].to_numpy(np.uint64), eu, ev]))
    else:
        ids = np.unique(np.concatenate([eu, ev]))
    key = np.arange(ids.size, dtype=np.int64)
    if fragments is not None and "anchor" in fragments and len(fragments):
        where = np.searchsorted(ids, fragments["id"].to_numpy(np.uint64))
        anchors = fragments["anchor"].to_numpy(np.int64)
        if np.unique(anchors).size != anchors.size:
            raise ValueError("fragment anchors are not unique; pass the fragment table of one volume")
        # fragments without an anchor (not in the table) go after all anchored ones
        key = key + (int(anchors.max()) + 1)
        key[where] = anchors
    linked = edges["linked"].to_numpy(bool) if "linked" in edges else np.zeros(len(edges), bool)
    return _Graph(ids, key, np.searchsorted(ids, eu).astype(np.int64), np.searchsorted(ids, ev).astype(np.int64),
                  edges["affinity_sum"].to_numpy(np.int64), edges["contact_area"].to_numpy(np.int64), linked)


def _join_links(g: _Graph) -> tuple[np.ndarray, pd.DataFrame]:
    """Join linked pieces: returns the node -> basin node map and the link merges."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = g.ids.size
    parent = np.arange(n, dtype=np.int64)
    if not g.linked.any():
        return parent, pd.DataFrame({"u": np.empty(0, np.uint64), "v": np.empty(0, np.uint64),
                                     "score": np.empty(0, np.float64)})
    graph = coo_matrix((np.ones(int(g.linked.sum()), np.int8), (g.u[g.linked], g.v[g.linked])), shape=(n, n))
    _, basin = connected_components(graph, directed=False)
    # the basin's node is its member with the smallest key
    order = np.lexsort((g.key, basin))
    first = np.r_[True, basin[order][1:] != basin[order][:-1]]
    head_of_basin = np.empty(basin.max() + 1, dtype=np.int64)
    head_of_basin[basin[order][first]] = order[first]
    parent = head_of_basin[basin]
    members = np.flatnonzero(parent != np.arange(n))
    links = pd.DataFrame({"u": g.ids[parent[members]], "v": g.ids[members],
                          "score": np.full(members.size, LINK_SCORE)})
    return parent, links


def _relabel_edges(u, v, total, area, parent, changed=None):
    """Map edge ends through ``parent``, drop self-loops and add up parallel edges.

    ``changed``: bool per node; only edges touching a changed node can become parallel.
    """
    u, v = parent[u], parent[v]
    keep = u != v
    u, v, total, area = u[keep], v[keep], total[keep], area[keep]
    a, b = np.minimum(u, v), np.maximum(u, v)
    if changed is None:
        touched = np.ones(a.size, bool)
    else:
        touched = changed[a] | changed[b]
    n = np.int64(parent.size)
    pair = a[touched] * n + b[touched]
    uniq, inverse = np.unique(pair, return_inverse=True)
    t_sum = np.bincount(inverse, weights=total[touched], minlength=uniq.size).astype(np.int64)
    t_area = np.bincount(inverse, weights=area[touched], minlength=uniq.size).astype(np.int64)
    rest = ~touched
    return (np.r_[a[rest], uniq // n], np.r_[b[rest], uniq % n],
            np.r_[total[rest], t_sum], np.r_[area[rest], t_area])


def agglomerate_mean(edges: pd.DataFrame, fragments: pd.DataFrame | None = None, *,
                     max_score: float = 1.0) -> MergeHistory:
    """The mean-affinity merge history of a region graph (waterz semantics).

    Parameters
    ----------
    edges : edge table with ``u``, ``v``, ``contact_area``, ``affinity_sum`` and optionally
        ``linked`` (see :mod:`connecto.segment.region_graph`).
    fragments : fragment table with ``id`` and ``anchor``; fragments without edges become
        single-fragment segments, and anchors break ties independently of ids.
    max_score : stop before the first merge scoring above this (1.0: merge everything).

    >>> edges = pd.DataFrame({"u": [1, 2], "v": [2, 3], "contact_area": [2, 1], "affinity_sum": [459, 51]})
    >>> agglomerate_mean(edges).merges.to_dict("list")
    {'u': [1, 1], 'v': [2, 3], 'score': [0.1, 0.8]}
    """
    g = _compact(edges, fragments)
    n = g.ids.size
    parent, links = _join_links(g)
    u, v, total, area = _relabel_edges(g.u, g.v, g.total, g.area, parent)
    key = g.key
    node = np.arange(n, dtype=np.int64)  # current node index -> index into g.ids
    history_u, history_v, history_s = [], [], []
    rounds = 0
    while u.size:
        rounds += 1
        denominator = area * AFFINITY_MAX
        score = (denominator - total) / denominator
        target, merge_score = _absorptions(n, u, v, score, key)
        absorbed = np.flatnonzero((target >= 0) & (merge_score <= max_score))
        if absorbed.size == 0:
            break
        step = np.arange(n, dtype=np.int64)
        step[absorbed] = target[absorbed]
        step = _resolve_chains(step)
        history_u.append(g.ids[node[step[absorbed]]])
        history_v.append(g.ids[node[absorbed]])
        history_s.append(merge_score[absorbed])
        changed = np.zeros(n, bool)
        changed[absorbed] = True
        changed[step[absorbed]] = True
        u, v, total, area = _relabel_edges(u, v, total, area, step, changed)
        # keep only nodes that still have edges: every round costs O(nodes + edges), and
        # most nodes stop taking part early (hundreds of rounds on a large graph)
        active = np.unique(np.concatenate([u, v]))
        if active.size < 0.7 * n:
            u, v = np.searchsorted(active, u), np.searchsorted(active, v)
            key, node, n = key[active], node[active], active.size
    logger.debug("mean agglomeration: %d nodes, %d rounds", n, rounds)
    merges = pd.DataFrame({
        "u": np.concatenate(history_u) if history_u else np.empty(0, np.uint64),
        "v": np.concatenate(history_v) if history_v else np.empty(0, np.uint64),
        "score": np.concatenate(history_s) if history_s else np.empty(0, np.float64),
    })
    merges = merges.iloc[np.argsort(merges["score"].to_numpy(), kind="stable")]
    merges = pd.concat([links, merges], ignore_index=True)
    return MergeHistory(merges.astype({"u": np.uint64, "v": np.uint64, "score": np.float64}), g.ids)


def _resolve_chains(parent: np.ndarray) -> np.ndarray:
    """Follow parent pointers to their roots (pointer jumping; the pointers have no cycles)."""
    while True:
        jumped = parent[parent]
        if np.array_equal(jumped, parent):
            return parent
        parent = jumped


def _best_neighbours(n: int, node, other, score, key) -> tuple[np.ndarray, np.ndarray]:
    """Each node's best neighbour (lowest score, ties to the smallest key) and that score.

    ``node``, ``other``, ``score``: the edges in both directions. Nodes without edges: -1, inf.
    """
    best_score = np.full(n, np.inf)
    np.minimum.at(best_score, node, score)
    candidate = score == best_score[node]
    best_key = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(best_key, node[candidate], key[other[candidate]])
    chosen = candidate & (key[other] == best_key[node])
    best = np.full(n, -1, dtype=np.int64)
    best[node[chosen]] = other[chosen]
    return best, best_score


def _absorptions(n: int, u, v, score, key) -> tuple[np.ndarray, np.ndarray]:
    """The merges of one round: for each node, the node it is merged into (or -1), and the score.

    A node ``f`` is merged into its best neighbour ``x`` at score ``s`` (its best score)
    when every other neighbour ``g`` of ``f`` has a best score above ``s``. Every merge
    that involves ``g``'s region scores at least ``g``'s best score (mean affinity is
    reducible), and greedy merging is monotone, so nothing that could change the contact
    between ``f`` and ``x``'s region, or give ``f`` a better partner, happens before
    score ``s``: greedy merging makes exactly this merge at exactly this score. Reciprocal
    best pairs always merge (into the member with the smaller key), so every round makes
    progress. Merge targets may be merged themselves in the same round: scores fall
    strictly along such a chain, so there are no cycles.
    """
    node, other, both = np.r_[u, v], np.r_[v, u], np.r_[score, score]
    best, best_score = _best_neighbours(n, node, other, both, key)
    safe_best = np.maximum(best, 0)
    mutual = (best >= 0) & (best[safe_best] == np.arange(n))
    partner = mutual & (key > key[safe_best])
    rivals = other != best[node]
    rival_best = np.full(n, np.inf)
    np.minimum.at(rival_best, node[rivals], best_score[other[rivals]])
    absorbed = partner | ((best >= 0) & ~mutual & (best_score < rival_best)) | _batch_into_hubs(
        n, node, other, both, key, best, best_score, mutual)
    return np.where(absorbed, best, -1), best_score


def _batch_into_hubs(n, node, other, both, key, best, best_score, mutual) -> np.ndarray:
    """Nodes that a reciprocal pair's hub takes in the same round (see ``_absorptions``).

    A hub ``x`` (the pair member with the smaller key) takes a node ``f`` that wants it
    (``f``'s best neighbour is ``x``) when ``f`` touches no other node that wants ``x``
    and ``f``'s score is at most every score leaving the group: the hub's edges to nodes
    that do not want it and the other edges of all nodes that want it. Nothing can then
    join the group, or touch ``f``, before ``f`` does.
    """
    safe_best = np.maximum(best, 0)
    hub = mutual & (key <= key[safe_best])
    target = np.where((best >= 0) & ~hub & hub[safe_best], best, -1)
    wants = target[node]
    hub_out = np.full(n, np.inf)
    from_hub = hub[node] & (target[other] != node)
    np.minimum.at(hub_out, node[from_hub], both[from_hub])
    member_out = np.full(n, np.inf)
    from_member = (wants >= 0) & (other != wants)
    np.minimum.at(member_out, node[from_member], both[from_member])
    bound = hub_out
    members = np.flatnonzero(target >= 0)
    np.minimum.at(bound, target[members], member_out[members])
    crowded = np.zeros(n, bool)
    crowded[node[(wants >= 0) & (target[other] == wants)]] = True
    return (target >= 0) & ~crowded & (best_score <= bound[np.maximum(target, 0)])


def mutex_watershed(edges: pd.DataFrame, fragments: pd.DataFrame | None = None, *,
                    bias: float = 0.5) -> MergeHistory:
    """Mutex watershed (mwatershed) on the region graph.

    Edge weight = mean affinity - ``bias``: positive edges attract, negative ones repel,
    processed by decreasing magnitude (ties by anchors, so the result does not depend on
    ids). Returns a MergeHistory whose merges (linked pieces first, at ``LINK_SCORE``;
    then each fragment joined to its segment, at score 0) give the mutex segmentation at
    every threshold >= 0: a mutex result has no hierarchy; rerun with another ``bias``.
    """
    import mwatershed

    g = _compact(edges, fragments)
    parent, links = _join_links(g)
    u, v, total, area = _relabel_edges(g.u, g.v, g.total, g.area, parent)
    if u.size == 0:
        return MergeHistory(links.astype({"u": np.uint64, "v": np.uint64}), g.ids)
    mean = total / (area * AFFINITY_MAX)
    weight = mean - bias
    ka, kb = np.minimum(g.key[u], g.key[v]), np.maximum(g.key[u], g.key[v])
    order = np.lexsort((kb, ka, -np.abs(weight)))
    clustered = mwatershed.cluster(list(zip((weight[order] > 0).tolist(), u[order].tolist(), v[order].tolist())))
    pairs = np.array(clustered, dtype=np.int64).reshape(-1, 2)
    merged = pairs[pairs[:, 0] != pairs[:, 1]]
    merges = pd.DataFrame({"u": g.ids[merged[:, 1]], "v": g.ids[merged[:, 0]],
                           "score": np.zeros(len(merged))})
    merges = pd.concat([links, merges], ignore_index=True)
    return MergeHistory(merges.astype({"u": np.uint64, "v": np.uint64, "score": np.float64}), g.ids)
