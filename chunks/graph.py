"""Connected components of an edge list over sorted ids, each component named by its smallest id.

Generic graph code (no neurons): connecto's merge history and proofreading's version 0 both
turn merges into a fragment -> segment mapping with it.
"""

from __future__ import annotations

import numpy as np


def component_min_ids(ids: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """For each of the sorted, unique ``ids``, the smallest id in its connected component of the edges ``(u, v)``.

    Parameters
    ----------
    ids : sorted unique uint64 ids (``np.unique`` gives them); an id without edges is its own component.
    u, v : the edges' ends, ids from ``ids``.

    Returns
    -------
    uint64 array aligned with ``ids``.

    >>> component_min_ids(np.array([1, 2, 3, 4, 9], np.uint64), np.array([4, 1]), np.array([3, 9])).tolist()
    [1, 2, 3, 3, 1]
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids = np.asarray(ids, dtype=np.uint64)
    u, v = np.asarray(u, dtype=np.uint64), np.asarray(v, dtype=np.uint64)
    if ids.ndim != 1 or u.ndim != 1 or u.shape != v.shape:
        raise ValueError(f"ids (shape {ids.shape}), u (shape {u.shape}) and v (shape {v.shape}) must be 1-D, "
                         "u and v of the same length")
    if np.any(ids[1:] <= ids[:-1]):
        raise ValueError("ids must be sorted and unique (np.unique(ids) gives them)")
    n = ids.size
    iu, iv = _positions(ids, u), _positions(ids, v)
    if n == 0:
        return ids.copy()
    graph = coo_matrix((np.ones(iu.size, np.int8), (iu, iv)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    smallest = np.full(labels.max() + 1, n, dtype=np.int64)
    np.minimum.at(smallest, labels, np.arange(n))  # ids are sorted: the smallest position holds the smallest id
    return ids[smallest[labels]]


def _positions(ids: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Each edge end's position in ``ids``; an end that is not an id is refused, not mapped to a neighbour."""
    where = np.searchsorted(ids, ends)
    known = where < ids.size
    known[known] = ids[where[known]] == ends[known]
    if not known.all():
        missing = np.unique(ends[~known])
        raise ValueError(f"{missing.size} edge end(s) are not among the {ids.size} ids: {missing[:5].tolist()}"
                         f"{' ...' if missing.size > 5 else ''}; pass every id that an edge names")
    return where
