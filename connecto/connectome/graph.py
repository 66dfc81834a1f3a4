"""``Graph``: the weighted directed connectivity as scipy.sparse CSR (rows = pre) and CSC
(columns = post), built once from the synapse table; partner and adjacency queries."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass(frozen=True, eq=False)
class Graph:
    """Connectivity between ``ids`` (uint64 segment ids, in matrix index order).

    ``csr[i, j]`` is the number of synapses from ``ids[i]`` onto ``ids[j]``; ``csc`` is the
    same matrix in column order, so both the outputs and the inputs of a neuron are a
    contiguous slice.
    """

    ids: np.ndarray
    csr: sp.csr_array
    csc: sp.csc_array
    _order: np.ndarray
    _sorted: np.ndarray

    @classmethod
    def build(cls, ids, pre, post, weight) -> Graph:
        """Build from per-synapse (or per-edge) arrays; rows naming segment 0 or an id
        outside ``ids`` are left out."""
        ids = np.asarray(ids, dtype=np.uint64)
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        pre_i, pre_ok = _lookup(sorted_ids, order, np.asarray(pre, dtype=np.uint64))
        post_i, post_ok = _lookup(sorted_ids, order, np.asarray(post, dtype=np.uint64))
        keep = pre_ok & post_ok
        weight = np.asarray(weight, dtype=np.int64)
        n = len(ids)
        index_dtype = np.int32 if n < 2**31 else np.int64
        coo = sp.coo_array((weight[keep], (pre_i[keep].astype(index_dtype), post_i[keep].astype(index_dtype))),
                           shape=(n, n))
        csr = coo.tocsr()
        csr.sum_duplicates()
        csr.sort_indices()
        csc = csr.tocsc()
        csc.sort_indices()
        return cls(ids, csr, csc, order, sorted_ids)

    @property
    def num_edges(self) -> int:
        return int(self.csr.nnz)

    def index(self, segment_ids) -> np.ndarray:
        """Matrix indices of ``segment_ids``; KeyError naming the first unknown id."""
        segment_ids = np.atleast_1d(np.asarray(segment_ids, dtype=np.uint64))
        idx, ok = _lookup(self._sorted, self._order, segment_ids)
        if not ok.all():
            bad = int(segment_ids[~ok][0])
            raise KeyError(f"neuron {bad} is not in this connectome ({len(self.ids)} neurons); "
                           "look ids up in Connectome.neurons.segment_id")
        return idx

    def partners(self, segment_id, direction: str, min_weight: int = 1) -> pd.DataFrame:
        """Partners of one neuron: ``direction`` "upstream" (inputs) or "downstream"
        (outputs), with weight >= ``min_weight``, strongest first (ties by id)."""
        i = int(self.index(segment_id)[0])
        if direction == "upstream":
            matrix = self.csc
        elif direction == "downstream":
            matrix = self.csr
        else:
            raise ValueError(f"direction={direction!r} is not one of 'upstream', 'downstream'")
        start, stop = matrix.indptr[i], matrix.indptr[i + 1]
        other, weight = matrix.indices[start:stop], matrix.data[start:stop]
        keep = weight >= min_weight
        other, weight = other[keep], weight[keep]
        partner_ids = self.ids[other]
        order = np.lexsort((partner_ids, -weight))
        return pd.DataFrame({"segment_id": partner_ids[order], "weight": weight[order].astype(np.int64)})

    def adjacency(self, segment_ids=None, min_weight: int = 1) -> sp.csr_array:
        """Adjacency (rows pre, columns post, values synapse counts) of ``segment_ids`` in
        the order given (default: all, in ``ids`` order)."""
        matrix = self.csr
        if segment_ids is not None:
            idx = self.index(segment_ids)
            matrix = matrix[idx][:, idx]
        else:
            matrix = matrix.copy()
        if min_weight > 1:
            matrix = threshold(matrix, min_weight)
        return sp.csr_array(matrix)

    def thresholded(self, min_weight: int) -> sp.csr_array:
        return self.csr if min_weight <= 1 else threshold(self.csr, min_weight)


def threshold(matrix, min_weight: int) -> sp.csr_array:
    """``matrix`` without the entries below ``min_weight``."""
    matrix = sp.csr_array(matrix, copy=True)
    matrix.data[matrix.data < min_weight] = 0
    matrix.eliminate_zeros()
    return matrix


def _lookup(sorted_ids: np.ndarray, order: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(sorted_ids) == 0:
        return np.zeros(len(values), np.int64), np.zeros(len(values), bool)
    pos = np.searchsorted(sorted_ids, values)
    pos = np.minimum(pos, len(sorted_ids) - 1)
    ok = sorted_ids[pos] == values
    return order[pos], ok
