"""Paths between two neurons on the CSR graph: shortest path, all simple paths up to k."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph


def shortest_path(matrix: sp.csr_array, source: int, target: int, *, weighted: bool = False) -> list[int]:
    """Matrix indices along a shortest path from ``source`` to ``target`` (both included);
    [] when ``target`` is unreachable.

    Unweighted: fewest synaptic steps (breadth-first). ``weighted=True``: the path that
    minimises the sum of 1/weight, so strong connections are short.
    """
    if source == target:
        return [source]
    if weighted:
        cost = sp.csr_array(matrix, dtype=np.float64, copy=True)
        cost.data = 1.0 / cost.data
        dist, pred = csgraph.dijkstra(cost, directed=True, indices=source, return_predecessors=True)
        if not np.isfinite(dist[target]):
            return []
    else:
        _, pred = csgraph.breadth_first_order(matrix, source, directed=True, return_predecessors=True)
        if pred[target] < 0:
            return []
    path = [target]
    while path[-1] != source:
        path.append(int(pred[path[-1]]))
    return path[::-1]


def simple_paths(matrix: sp.csr_array, source: int, target: int, max_length: int) -> list[list[int]]:
    """All simple paths (no repeated neuron) from ``source`` to ``target`` with at most
    ``max_length`` edges, as lists of matrix indices, shortest first then lexicographic."""
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1 (edges on a path), got {max_length}")
    if source == target:
        return [[source]]
    indptr, indices = matrix.indptr, matrix.indices
    found: list[list[int]] = []
    path = [source]
    on_path = {source}
    stack = [iter(indices[indptr[source]:indptr[source + 1]].tolist())]
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            on_path.discard(path.pop())
            continue
        if nxt == target:
            found.append(path + [target])
            continue
        if nxt in on_path or len(path) >= max_length:
            continue
        path.append(nxt)
        on_path.add(nxt)
        stack.append(iter(indices[indptr[nxt]:indptr[nxt + 1]].tolist()))
    found.sort(key=lambda p: (len(p), p))
    return found
