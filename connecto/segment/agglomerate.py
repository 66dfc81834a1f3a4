"""Agglomeration on the region graph: a merge history, and segments at any threshold.

``agglomerate_mean`` has waterz's semantics (``OneMinus<MeanAffinity>``): repeatedly merge
the pair of regions whose contact has the highest mean affinity; the merged region's
contacts are the union of its parts' (sums and areas add). Each merge is recorded as
``(u, v, score)`` with ``score = 1 - mean affinity``; the segmentation at threshold ``t``
is the connected components of the merges with ``score <= t`` (waterz stops at
``score >= t``, so the two agree except at a score equal to ``t``).

Ties between equal scores go to the contact whose first pair of fragment *anchors*
(see :func:`connecto.segment.fragments.fragment_table`) is smallest, not to ids, so a
blockwise run and a single-block run make the same merges; scores are exact rationals of
integer sums (uint8 affinities). The merges come from a compiled priority queue
(:mod:`connecto.segment.greedy`).

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

from chunks.graph import component_min_ids

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
    """Connected components of the pairs ``(u, v)`` over sorted ``fragment_ids``, as a mapping table
    (a segment is named by its smallest fragment id; :func:`chunks.graph.component_min_ids`)."""
    fragment_ids = np.asarray(fragment_ids, dtype=np.uint64)
    return pd.DataFrame({"fragment": fragment_ids, "segment": component_min_ids(fragment_ids, u, v)})


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
    ids, iu, iv = _node_ids(eu, ev, fragments)
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
    return _Graph(ids, key, iu, iv, edges["affinity_sum"].to_numpy(np.int64), edges["contact_area"].to_numpy(np.int64),
                  linked)


def _node_ids(eu: np.ndarray, ev: np.ndarray, fragments: pd.DataFrame | None):
    """Sorted ids of all fragments and edge ends, and each edge end's index into them."""
    if fragments is not None and len(fragments):
        ids = np.unique(fragments["id"].to_numpy(np.uint64))
        iu, iv = np.searchsorted(ids, eu), np.searchsorted(ids, ev)
        last = ids.size - 1
        if np.array_equal(ids[np.minimum(iu, last)], eu) and np.array_equal(ids[np.minimum(iv, last)], ev):
            return ids, iu.astype(np.int64), iv.astype(np.int64)  # the usual case: every edge end is a fragment
        ids = np.unique(np.concatenate([ids, eu, ev]))
    else:
        ids = np.unique(np.concatenate([eu, ev]))
    return ids, np.searchsorted(ids, eu).astype(np.int64), np.searchsorted(ids, ev).astype(np.int64)


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


def _joined_edges(g: _Graph, parent: np.ndarray):
    """The edges between basins, parallel edges added up.

    Edge tables come sorted by (u, v) (``merge_edge_tables``): then only edges of joined
    pieces need adding up; otherwise all edges are grouped.
    """
    joined = parent != np.arange(parent.size)
    joined[parent[joined]] = True
    u, v, total, area = _relabel_edges(g.u, g.v, g.total, g.area, parent, joined)
    rest = ~(joined[u] | joined[v])
    pair = u[rest] * np.int64(parent.size) + v[rest]
    if np.all(pair[1:] > pair[:-1]):
        return u, v, total, area
    return _relabel_edges(g.u, g.v, g.total, g.area, parent)


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
    from .greedy import greedy_mean

    g = _compact(edges, fragments)
    parent, links = _join_links(g)
    u, v, total, area = _joined_edges(g, parent)
    root, absorbed, score = greedy_mean(g.ids.size, u, v, total, area, g.key, max_score)
    logger.debug("mean agglomeration: %d nodes, %d merges", g.ids.size, root.size)
    merges = pd.DataFrame({"u": g.ids[root], "v": g.ids[absorbed], "score": score})
    merges = pd.concat([links, merges], ignore_index=True)  # greedy merges come in score order
    return MergeHistory(merges.astype({"u": np.uint64, "v": np.uint64, "score": np.float64}), g.ids)


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
