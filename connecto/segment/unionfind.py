"""Compiled union-find kernels of hierarchical agglomeration (:mod:`.hierarchical`).

- :func:`join_scores`: for pairs of nodes, the score of the merge at which a merge
  history first puts both in one region (offline lowest common ancestors: each region
  keeps the list of its pending pairs, the smaller list moves into the larger one, so a
  pair moves O(log n) times);
- :func:`union_pairs` / :func:`flatten`: a forest over node indices whose roots are the
  smallest index of each component (a parent is always a smaller index, so one forward
  pass flattens the forest); the segment of a fragment is then the smallest fragment id
  in it, as :meth:`connecto.segment.agglomerate.MergeHistory.mapping` names segments.

scipy's connected components would need every edge at once; these take edges file by
file, so the global step holds one integer per fragment, not the graph.
"""

from __future__ import annotations

import numba
import numpy as np

from .greedy import append_entry


@numba.njit(cache=True, inline="always")
def _find(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]  # path halving
        x = parent[x]
    return x


@numba.njit(cache=True)
def _join_scores(n, mu, mv, ms, qu, qv):
    q = qu.size
    out = np.full(q, np.inf)
    parent = np.arange(n)
    head = np.full(n, -1, np.int64)
    tail = np.full(n, -1, np.int64)
    count = np.zeros(n, np.int64)
    nxt = np.full(2 * q, -1, np.int64)
    for k in range(2 * q):
        append_entry(head, tail, nxt, count, qu[k >> 1] if (k & 1) == 0 else qv[k >> 1], k)
    for i in range(mu.size):
        a, b = _find(parent, mu[i]), _find(parent, mv[i])
        if a == b:
            continue
        if count[a] > count[b]:
            a, b = b, a
        parent[a] = b
        entry = head[a]
        while entry >= 0:
            following = nxt[entry]
            k = entry >> 1
            if out[k] == np.inf:
                other = qv[k] if (entry & 1) == 0 else qu[k]
                if _find(parent, other) == b:
                    out[k] = ms[i]
                else:  # still pending: the entry moves to the merged region's list
                    append_entry(head, tail, nxt, count, b, entry)
            entry = following
        head[a], tail[a], count[a] = -1, -1, 0
    return out


def join_scores(n: int, merge_u: np.ndarray, merge_v: np.ndarray, merge_score: np.ndarray, query_u: np.ndarray,
                query_v: np.ndarray) -> np.ndarray:
    """For each query pair, the score of the merge that first joins its two nodes (``inf``: never).

    Merges ``(merge_u, merge_v, merge_score)`` in order, node indices ``< n`` standing for
    the regions that contain them (as a :class:`~.agglomerate.MergeHistory` names them).

    >>> join_scores(4, np.array([0, 2, 0]), np.array([1, 3, 2]), np.array([.1, .2, .3]),
    ...             np.array([0, 1, 0]), np.array([1, 3, 3])).tolist()
    [0.1, 0.3, 0.3]
    >>> join_scores(3, np.array([0]), np.array([1]), np.array([.5]), np.array([1]), np.array([2])).tolist()
    [inf]
    """
    as_int = lambda x: np.ascontiguousarray(x, dtype=np.int64)
    return _join_scores(np.int64(n), as_int(merge_u), as_int(merge_v), np.ascontiguousarray(merge_score, np.float64),
                        as_int(query_u), as_int(query_v))


@numba.njit(cache=True)
def _union_pairs(parent, a, b):
    for i in range(a.size):
        ra, rb = _find(parent, a[i]), _find(parent, b[i])
        if ra < rb:
            parent[rb] = ra
        elif rb < ra:
            parent[ra] = rb


def union_pairs(parent: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """Join the components of ``a[i]`` and ``b[i]`` in the forest ``parent`` (int64, in place)."""
    _union_pairs(parent, np.ascontiguousarray(a, np.int64), np.ascontiguousarray(b, np.int64))


@numba.njit(cache=True)
def _flatten(parent):
    for i in range(parent.size):
        parent[i] = parent[parent[i]]


def flatten(parent: np.ndarray) -> np.ndarray:
    """Point every node at its root, the smallest index of its component (in place); returns ``parent``.

    >>> parent = np.arange(5); union_pairs(parent, np.array([4, 3]), np.array([3, 1])); flatten(parent).tolist()
    [0, 1, 2, 1, 1]
    """
    _flatten(parent)
    return parent
