"""Motif counts on the binary connectivity (an edge = weight >= min_weight; autapses
aside): reciprocal pairs and feed-forward triads, by sparse products in row chunks so
memory stays bounded on large graphs."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def motif_counts(matrix: sp.csr_array, *, chunk_rows: int = 4096) -> dict[str, int]:
    """Count motifs in the directed graph ``matrix`` (rows pre, columns post).

    Returns
    -------
    dict with
      ``edges``: connected ordered pairs a -> b, a != b;
      ``autapses``: a -> a;
      ``reciprocal_pairs``: unordered pairs {a, b} with a -> b and b -> a;
      ``feed_forward_loops``: ordered triples (a, b, c) of distinct neurons with
      a -> b, b -> c and a -> c, whatever other edges the three have;
      ``feed_forward_triads``: triads whose only edges are a -> b, b -> c, a -> c
      (the induced motif; triad census class 030T).
    """
    binary = sp.csr_array(matrix, copy=True)
    binary.data = np.ones_like(binary.data, dtype=np.int64)
    autapses = int(binary.diagonal().sum())
    binary.setdiag(0)
    binary.eliminate_zeros()
    mutual = binary.multiply(binary.T).tocsr()
    one_way = (binary - mutual).tocsr()
    one_way.eliminate_zeros()
    return {
        "edges": int(binary.nnz),
        "autapses": autapses,
        "reciprocal_pairs": int(mutual.nnz // 2),
        "feed_forward_loops": _transitive_triples(binary, chunk_rows),
        "feed_forward_triads": _transitive_triples(one_way, chunk_rows),
    }


def _transitive_triples(binary: sp.csr_array, chunk_rows: int) -> int:
    """sum over a, c of (A @ A)[a, c] * A[a, c]: the number of a -> b -> c with a -> c."""
    total = 0
    n = binary.shape[0]
    for start in range(0, n, chunk_rows):
        rows = binary[start:start + chunk_rows]
        total += int((rows @ binary).multiply(rows).sum())
    return total
