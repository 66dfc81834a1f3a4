"""Fewer, larger fragments: agglomerate the watershed fragments inside each block to a low score.

lsd's "epsilon agglomeration" and abiss's in-block agglomeration do the same: tiny
watershed fragments (FIB-25: ~22 voxels on average) whose contacts have a mean affinity of
at least ``1 - max_score`` are joined inside the block before the region graph is built,
so the graph, and everything that holds one integer per fragment, shrinks. Only contacts
inside the block count; a fragment cut by a block face is still joined to its other
pieces by the ``linked`` edges of the region graph (seam-free: no fragment ends at a face
that the watershed did not end). The result depends on the block shape (a merge that
would have happened across a face does not), so the option is off by default and
``benchmarks/scale.py`` measures its VOI cost.
"""

from __future__ import annotations

import numpy as np


def merge_in_block(local: np.ndarray, affs: np.ndarray, links: np.ndarray, max_score: float) -> np.ndarray:
    """Fragments ``local`` (uint32 ids 1..n, 0 background) joined along their in-block contacts scoring at most
    ``max_score`` (``1 - mean affinity``); returns uint32 ids 1..m, m <= n, in order of first voxel.

    ``affs`` (uint8) and ``links`` (bool), ``(3, z, y, x)``, cover ``local``; contacts with voxels
    outside the array are left out.

    >>> local = np.array([[[1, 1, 2, 3]]], np.uint32)
    >>> affs = np.zeros((3, 1, 1, 4), np.uint8); affs[2] = [0, 255, 250, 10]
    >>> merge_in_block(local, affs, np.zeros(affs.shape, bool), 0.1).tolist()
    [[[1, 1, 1, 2]]]
    """
    import fastremap

    from .agglomerate import agglomerate_mean
    from .fragments import fragment_table
    from .region_graph import region_graph
    from .relabel import relabel

    if max_score <= 0 or local.max(initial=0) < 2:
        return local
    labels = local.astype(np.uint64)
    edges = region_graph(labels, affs, links=links)
    if not len(edges):
        return local
    history = agglomerate_mean(edges, fragment_table(labels), max_score=max_score)
    merged = relabel(labels, history.mapping(max_score))
    merged, _ = fastremap.renumber(merged, preserve_zero=True, in_place=True)
    return merged.astype(np.uint32, copy=False)
