"""Greedy mean-affinity agglomeration, compiled: one merge at a time from a priority queue.

Written here because no installable library does it on a given region graph: waterz
(C++) builds its own region graph from a whole affinity volume, so it cannot agglomerate
the graph that the blockwise stages wrote, and the numpy alternative (rounds of
reciprocal best pairs) needs hundreds of passes over large arrays for the long merge
chains of real data (FIB-25, 761k fragments: 541 rounds, 12 s; this: 3 s).

The algorithm is the textbook one (waterz's, rag-based agglomeration's):

- a heap of edges ordered by score ``1 - mean affinity``; equal scores go to the contact
  whose smallest (smaller key, larger key) pair of fragment keys (anchors) comes first,
  so the result does not depend on fragment ids or block size;
- merging two regions moves the edges of the one with fewer edges to the other: an edge
  to a neighbour both touch is added to the other's edge (sums and areas add), any other
  is re-pointed; a region is named by its member with the smallest key;
- a heap row whose edge died or came earlier since is skipped; an edge whose priority
  rose is queued again only when its old row comes up;
- only contacts scoring at most ``max_score`` are queued.

A re-pointed edge keeps its score and its tie pair, so only added-up edges are queued
again, and a merge costs the smaller region's edges: each edge moves O(log n) times.
Edges are found by their pair of regions in an open-addressing hash table (linear
probing, tombstones); each region keeps its edges in a linked list. Each edge's fields
sit in one row (and each table slot's, each heap entry's), one cache line per visit:
the arrays are far bigger than the caches. numba compiles this module on its first use
(about 3 s) and caches the machine code beside it (``__pycache__``), so later runs start
at once.
"""

from __future__ import annotations

import numba
import numpy as np

from .affinities import AFFINITY_MAX

_EMPTY, _TOMBSTONE = -1, -2  # hash table slots
# edge rows: its two regions (containers), affinity sum, contact area (0: dead), tie pair
_A, _B, _TOT, _AREA, _TIE0, _TIE1 = range(6)


@numba.njit(cache=True, inline="always")
def _slot(table, pair, mask):
    """The slot of ``pair``, or the first free (empty or tombstone) slot on its probe path."""
    i = ((pair * np.int64(-7046029254386353131)) >> np.int64(17)) & mask
    free = -1
    while True:
        k = table[i, 0]
        if k == pair:
            return i
        if k == _EMPTY:
            return free if free >= 0 else i
        if k == _TOMBSTONE and free < 0:
            free = i
        i = (i + 1) & mask


@numba.njit(cache=True, inline="always")
def _pair(a, b, n):
    return min(a, b) * n + max(a, b)


@numba.njit(cache=True, inline="always")
def _score(edges, e):
    denominator = edges[e, _AREA] * np.float64(AFFINITY_MAX)
    return (denominator - edges[e, _TOT]) / denominator


@numba.njit(cache=True, inline="always")
def _before(heap, i, j):
    """Whether heap row ``i`` comes before row ``j``: by score, then tie pair."""
    for c in range(3):
        if heap[i, c] != heap[j, c]:
            return heap[i, c] < heap[j, c]
    return False


@numba.njit(cache=True, inline="always")
def _swap(heap, i, j):
    for c in range(4):
        heap[i, c], heap[j, c] = heap[j, c], heap[i, c]


# a 4-ary heap: half the levels of a binary one, and a node's children share cache lines


@numba.njit(cache=True)
def _sift_up(heap, i):
    while i > 0:
        parent = (i - 1) >> 2
        if not _before(heap, i, parent):
            return
        _swap(heap, i, parent)
        i = parent


@numba.njit(cache=True)
def _sift_down(heap, i, size):
    while True:
        first = 4 * i + 1
        if first >= size:
            return
        child = first
        for other in range(first + 1, min(first + 4, size)):
            if _before(heap, other, child):
                child = other
        if not _before(heap, child, i):
            return
        _swap(heap, i, child)
        i = child


@numba.njit(cache=True, inline="always")
def _write_row(heap, i, score, edges, e):
    """Heap rows are float64 (score, tie pair, edge): keys and edge indices are exact below 2**53."""
    heap[i, 0], heap[i, 1], heap[i, 2], heap[i, 3] = score, edges[e, _TIE0], edges[e, _TIE1], e


@numba.njit(cache=True, inline="always")
def _row_order(heap, i, edges, e):
    """-1, 0 or 1: heap row ``i`` comes before, is, or comes after live edge ``e``'s priority now."""
    now = (_score(edges, e), np.float64(edges[e, _TIE0]), np.float64(edges[e, _TIE1]))
    for c in range(3):
        if heap[i, c] != now[c]:
            return -1 if heap[i, c] < now[c] else 1
    return 0


@numba.njit(cache=True)
def _drop_stale(heap, size, edges, max_score):
    """Rewrite the heap: one row per live edge at its priority now (at most half the capacity)."""
    queued = np.zeros(edges.shape[0], np.bool_)
    kept = 0
    for i in range(size):
        e = np.int64(heap[i, 3])
        if edges[e, _AREA] > 0 and not queued[e]:
            queued[e] = True
            score = _score(edges, e)
            if score <= max_score:
                _write_row(heap, kept, score, edges, e)
                kept += 1
    for i in range((kept - 2) // 4, -1, -1):
        _sift_down(heap, i, kept)
    return kept


@numba.njit(cache=True)
def _queue(heap, size, edges, e, max_score):
    """Push edge ``e`` unless it scores above ``max_score``; returns the new size."""
    score = _score(edges, e)
    if score > max_score:
        return size
    if size == heap.shape[0]:
        size = _drop_stale(heap, size, edges, max_score)
    _write_row(heap, size, score, edges, e)
    _sift_up(heap, size)
    return size + 1


@numba.njit(cache=True)
def _rebuild_table(table, edges, n, mask):
    """Insert every live edge into an emptied table; returns the slots in use."""
    table[:, 0] = _EMPTY
    count = 0
    for e in range(edges.shape[0]):
        if edges[e, _AREA] > 0:
            pair = _pair(edges[e, _A], edges[e, _B], n)
            i = _slot(table, pair, mask)
            table[i, 0], table[i, 1] = pair, e
            count += 1
    return count


@numba.njit(cache=True)
def append_entry(head, tail, nxt, listed, node, entry):
    """Append ``entry`` to the singly linked list of ``node`` (``head``/``tail`` per node, ``nxt`` per
    entry, ``listed`` counts each list's entries); also used by :mod:`.unionfind`."""
    nxt[entry] = -1
    if tail[node] >= 0:
        nxt[tail[node]] = entry
    else:
        head[node] = entry
    tail[node] = entry
    listed[node] += 1


@numba.njit(cache=True)
def _greedy(n, key, u, v, total, area, max_score, table_slots, heap_rows):
    """``table_slots``: a power of two above 4/3 of the edges; ``heap_rows``: more than the edges."""
    m = u.size
    # regions live in "containers" (node indices); a region is named by its member of smallest key
    name = np.arange(n)
    name_key = key.copy()
    head = np.full(n, -1, np.int64)
    tail = np.full(n, -1, np.int64)
    listed = np.zeros(n, np.int64)  # entries in a container's list (dead ones included)
    nxt = np.full(2 * m, -1, np.int64)  # entry 2e: edge e at its end _A; 2e + 1: at _B
    edges = np.empty((m, 6), np.int64)
    capacity = table_slots
    mask = np.int64(capacity - 1)
    table = np.full((capacity, 2), _EMPTY, np.int64)  # (pair of containers, edge)
    heap = np.empty((heap_rows, 4), np.float64)  # current rows never exceed m: when full, stale ones go
    size = 0
    for e in range(m):
        a, b = u[e], v[e]
        edges[e, _A], edges[e, _B], edges[e, _TOT], edges[e, _AREA] = a, b, total[e], area[e]
        edges[e, _TIE0], edges[e, _TIE1] = min(key[a], key[b]), max(key[a], key[b])
        append_entry(head, tail, nxt, listed, a, 2 * e)
        append_entry(head, tail, nxt, listed, b, 2 * e + 1)
        pair = _pair(a, b, n)
        i = _slot(table, pair, mask)
        table[i, 0], table[i, 1] = pair, e
        score = _score(edges, e)
        if score <= max_score:  # a merge never happens above max_score: such contacts are not queued
            _write_row(heap, size, score, edges, e)
            size += 1
    for i in range((size - 2) // 4, -1, -1):
        _sift_down(heap, i, size)
    occupied = m

    out_root = np.empty(n, np.int64)
    out_absorbed = np.empty(n, np.int64)
    out_score = np.empty(n, np.float64)
    merges = 0
    while size > 0:
        e, score = np.int64(heap[0, 3]), heap[0, 0]
        order = _row_order(heap, 0, edges, e) if edges[e, _AREA] > 0 else 1
        size -= 1
        _swap(heap, 0, size)
        _sift_down(heap, 0, size)
        if order > 0:  # a dead edge, or one queued again since at an earlier priority
            continue
        if order < 0:  # the edge's score rose since: queue it where it belongs now
            size = _queue(heap, size, edges, e, max_score)
            continue
        a, b = edges[e, _A], edges[e, _B]
        edges[e, _AREA] = 0
        table[_slot(table, _pair(a, b, n), mask), 0] = _TOMBSTONE
        keep, gone = (a, b) if name_key[a] < name_key[b] else (b, a)
        out_root[merges], out_absorbed[merges], out_score[merges] = name[keep], name[gone], score
        merges += 1
        # move the shorter list into the longer one
        big, small = (a, b) if listed[a] >= listed[b] else (b, a)
        if name_key[small] < name_key[big]:
            name[big], name_key[big] = name[small], name_key[small]
        entry = head[small]
        while entry >= 0:
            f, side, following = entry >> 1, entry & 1, nxt[entry]
            if edges[f, _AREA] > 0:
                other = edges[f, _B - side]
                table[_slot(table, _pair(small, other, n), mask), 0] = _TOMBSTONE
                pair = _pair(big, other, n)
                i = _slot(table, pair, mask)
                if table[i, 0] == pair:  # both touch ``other``: add the contact to big's edge
                    g = table[i, 1]
                    before = (_score(edges, g), edges[g, _TIE0], edges[g, _TIE1])
                    edges[g, _TOT] += edges[f, _TOT]
                    edges[g, _AREA] += edges[f, _AREA]
                    if (edges[f, _TIE0], edges[f, _TIE1]) < (edges[g, _TIE0], edges[g, _TIE1]):
                        edges[g, _TIE0], edges[g, _TIE1] = edges[f, _TIE0], edges[f, _TIE1]
                    edges[f, _AREA] = 0
                    # queued again only when it comes earlier now; a later priority is queued
                    # lazily, when the row of the earlier one comes up (decrease-key for a heap)
                    if (_score(edges, g), edges[g, _TIE0], edges[g, _TIE1]) < before:
                        size = _queue(heap, size, edges, g, max_score)
                else:  # re-point the edge to big; its priority does not change
                    if table[i, 0] == _EMPTY:
                        occupied += 1
                    table[i, 0], table[i, 1] = pair, f
                    edges[f, _A + side] = big
                    append_entry(head, tail, nxt, listed, big, entry)
                    if occupied * 4 > 3 * capacity:  # too few empty slots left: drop the tombstones
                        occupied = _rebuild_table(table, edges, n, mask)
            entry = following
        head[small], tail[small], listed[small] = -1, -1, 0
    return out_root[:merges], out_absorbed[:merges], out_score[:merges]


def greedy_mean(n: int, u: np.ndarray, v: np.ndarray, total: np.ndarray, area: np.ndarray, key: np.ndarray,
                max_score: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merges of greedy mean agglomeration: (root, absorbed, score), node indices, in merge order.

    ``u``, ``v``: node indices ``< n`` of each edge (no self-loops, no parallel edges);
    ``total``, ``area``: affinity sum (uint8 units) and contact count per edge; ``key``:
    the tie-break key per node (unique). Stops before the first merge scoring above
    ``max_score``. ``root`` names the merged region (its member with the smallest key),
    ``absorbed`` the region merged into it.
    """
    as_int = lambda x: np.ascontiguousarray(x, dtype=np.int64)  # noqa: E731
    u, v, total, area, key = as_int(u), as_int(v), as_int(total), as_int(area), as_int(key)
    if u.size and (np.any(u == v) or u.min() < 0 or v.min() < 0 or max(u.max(), v.max()) >= n):
        raise ValueError("edges must join two different nodes in range(n)")
    if n >= 3_000_000_000:  # pairs of nodes are keyed as a * n + b in int64
        raise ValueError(f"{n} nodes: at most 3e9 fit this agglomeration's pair keys")
    if u.size and np.any(area <= 0):
        raise ValueError("every edge needs a contact area > 0")
    table_slots = 1 << int(2 * u.size + 16).bit_length()  # at most half full before tombstones
    return _greedy(np.int64(n), key, u, v, total, area, np.float64(max_score), table_slots, 2 * u.size + 16)
