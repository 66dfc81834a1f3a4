"""The region graph as a compressed adjacency over fragment positions, for per-segment subgraphs."""

from __future__ import annotations

import os

import numpy as np

from .tables import read_centroids, read_edges


class RegionGraph:
    """Undirected fragment adjacency (CSR over positions in the sorted ``fragment_ids``).

    Parameters
    ----------
    fragment_ids : sorted uint64 array, the mapping's fragment axis.
    u, v : uint64 arrays of edge endpoints (fragment ids).
    affinity : float array, 0..1, high = same neuron.
    centroids : optional (N, 3) zyx array aligned with ``fragment_ids`` (for merges without an edge).
    """

    def __init__(self, fragment_ids: np.ndarray, u: np.ndarray, v: np.ndarray, affinity: np.ndarray,
                 centroids: np.ndarray | None = None):
        self.fragment_ids = fragment_ids
        n = len(fragment_ids)
        iu, iv = self._positions(u), self._positions(v)
        src = np.concatenate([iu, iv])
        dst = np.concatenate([iv, iu])
        weight = np.concatenate([affinity, affinity]).astype(np.float64)
        order = np.argsort(src, kind="stable")
        self.dst = dst[order]
        self.weight = weight[order]
        self.indptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(src, minlength=n), out=self.indptr[1:])
        self.centroids = centroids
        self.n_edges = len(u)

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, fragment_ids: np.ndarray) -> RegionGraph:
        edges = read_edges(run_dir)
        return cls(fragment_ids, edges["u"], edges["v"], edges["affinity_mean"], read_centroids(run_dir, fragment_ids))

    def _positions(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.uint64)
        pos = np.searchsorted(self.fragment_ids, ids)
        ok = (pos < len(self.fragment_ids)) & (self.fragment_ids[np.minimum(pos, len(self.fragment_ids) - 1)] == ids)
        if not np.all(ok):
            raise ValueError(f"region-graph edge endpoint {int(ids[~ok][0])} is not a fragment of the mapping "
                             f"({len(self.fragment_ids)} fragments); the graph and the agglomeration disagree")
        return pos.astype(np.int64)

    def edges_from(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every directed edge leaving ``nodes`` (positions): (source, destination, weight)."""
        starts = self.indptr[nodes]
        counts = self.indptr[nodes + 1] - starts
        total = int(counts.sum())
        offsets = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(total)
        return np.repeat(nodes, counts), self.dst[offsets], self.weight[offsets]

    def subgraph(self, members: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Edges inside a node set given as a boolean mask over positions.

        Returns ``(nodes, local_edges, weights)``: the member positions (sorted), an (E, 2)
        array of indices into ``nodes`` (each undirected edge once) and their weights.
        """
        nodes = np.flatnonzero(members)
        src, dst, weight = self.edges_from(nodes)
        keep = members[dst] & (src < dst)
        local = np.stack([np.searchsorted(nodes, src[keep]), np.searchsorted(nodes, dst[keep])], axis=1)
        return nodes, local, weight[keep]

    def join_edge(self, first: np.ndarray, second: np.ndarray) -> tuple[int, int]:
        """The fragment pair (positions) that best joins two node sets given as boolean masks.

        The strongest region-graph edge between them; if they do not touch, the pair of
        fragments with the closest centroids; without centroids, the first fragment of each.
        """
        small, large = (first, second) if first.sum() <= second.sum() else (second, first)
        src, dst, weight = self.edges_from(np.flatnonzero(small))
        between = large[dst]
        if between.any():
            src, dst, weight = src[between], dst[between], weight[between]
            best = np.lexsort((dst, src, -weight))[0]  # strongest, then lowest positions: deterministic
            pair = (int(src[best]), int(dst[best]))
        elif self.centroids is not None and not np.isnan(self.centroids[small | large]).any():
            from scipy.spatial import cKDTree

            small_pos, large_pos = np.flatnonzero(small), np.flatnonzero(large)
            distance, nearest = cKDTree(self.centroids[large_pos]).query(self.centroids[small_pos])
            best = int(np.argmin(distance))
            pair = (int(small_pos[best]), int(large_pos[nearest[best]]))
        else:
            pair = (int(np.flatnonzero(small)[0]), int(np.flatnonzero(large)[0]))
        return pair if small is first else (pair[1], pair[0])
