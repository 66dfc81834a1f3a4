"""Synapse evaluation: cleft detection and synaptic partners, precision / recall / F1.

Both metrics match predictions to truth one-to-one with an optimal assignment
(``scipy.optimize.linear_sum_assignment``, run on each connected group of candidate
pairs): the number of matches is maximised first, then the summed distance minimised.
Each true item is matched at most once; unmatched predictions are false positives.

- **Clefts**: one item per synapse (rows grouped by ``id``, or ``synapse_id`` in the
  synthetic truth; without either, one per row) at the mean of its rows' cleft points. A
  predicted and a true cleft are candidates when they lie within ``tolerance_nm``.
- **Partners** (CREMI's synaptic partner metric): one item per row, located at its cleft
  point. A predicted pair is a candidate for a true pair when its pre and post neurons are
  the true pre and post neurons and their locations lie within ``tolerance_nm``.

A row's location is ``cleft_{z,y,x}_nm``, or, in tables without cleft columns (CREMI
partners), the midpoint of ``pre_*_nm`` and ``post_*_nm``. Neuron ids are the columns
``pre_id``/``post_id``, else ``pre_segment``/``post_segment`` (:func:`with_segments`), else
``pre_fragment``/``post_fragment``; given ``truth_labels`` (the
true neuron label array, e.g. a CREMI file's ``neuron_ids``), the predicted neurons are
read from it under the predicted pre and post points instead.

With nothing predicted precision is 1 when nothing is true (else 0); likewise recall;
F1 is 0 when precision + recall is 0. All output is JSON-able.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

AXES = ("z", "y", "x")
MATCHING = "optimal one-to-one (scipy.optimize.linear_sum_assignment)"


def locations_nm(table: pd.DataFrame) -> np.ndarray:
    """(n, 3) zyx nm location of each row: the cleft point, else the pre/post midpoint."""
    cleft = [f"cleft_{a}_nm" for a in AXES]
    if all(c in table for c in cleft):
        return table[cleft].to_numpy(np.float64).reshape(-1, 3)
    pre = table[[f"pre_{a}_nm" for a in AXES]].to_numpy(np.float64).reshape(-1, 3)
    post = table[[f"post_{a}_nm" for a in AXES]].to_numpy(np.float64).reshape(-1, 3)
    return (pre + post) / 2.0


def partner_ids(table: pd.DataFrame, truth_labels=None, voxel_size_nm=None, offset_nm=(0, 0, 0)) -> np.ndarray:
    """(n, 2) uint64 (pre, post) neuron ids of each row (see the module docstring)."""
    if truth_labels is not None:
        from .cremi import labels_at

        if voxel_size_nm is None:
            raise ValueError("truth_labels need voxel_size_nm (and offset_nm) to find the voxels under the points")
        sides = [labels_at(truth_labels, table[[f"{s}_{a}_nm" for a in AXES]].to_numpy(), voxel_size_nm, offset_nm)
                 for s in ("pre", "post")]
        return np.stack(sides, axis=1).astype(np.uint64)
    for pre, post in (("pre_id", "post_id"), ("pre_segment", "post_segment"), ("pre_fragment", "post_fragment")):
        if pre in table and post in table:
            return table[[pre, post]].to_numpy(np.uint64).reshape(-1, 2)
    raise KeyError(f"table with columns {list(table.columns)} has none of pre_id/post_id, pre_segment/post_segment, "
                   "pre_fragment/post_fragment; give truth_labels to read the neurons under the points")


def with_segments(table: pd.DataFrame, mapping: pd.DataFrame) -> pd.DataFrame:
    """``table`` plus ``pre_segment``/``post_segment``: its fragments mapped through ``mapping``
    (columns ``fragment``, ``segment``; fragments it lacks keep their id). The synapse table
    itself never changes with the agglomeration threshold; only these derived columns do.
    """
    from connecto.segment.relabel import relabel

    out = table.copy()
    for side in ("pre", "post"):
        out[f"{side}_segment"] = relabel(out[f"{side}_fragment"].to_numpy(np.uint64), mapping)
    return out


def one_row_per_partner(table: pd.DataFrame, synapse: str = "id") -> pd.DataFrame:
    """Rows with a distinct (synapse, pre_segment, post_segment), the first of each kept.

    Detection reports one row per post *fragment*; a post neuron cut into several fragments
    at the cleft would otherwise count as several synapses once mapped to segments.
    """
    return table.drop_duplicates([synapse, "pre_segment", "post_segment"], keep="first", ignore_index=True)


def cleft_locations(table: pd.DataFrame) -> np.ndarray:
    """(n, 3) one location per synapse: the mean of its rows' locations."""
    points = locations_nm(table)
    key = next((k for k in ("id", "synapse_id") if k in table), None)
    if key is None or not len(table):
        return points
    _, inverse = np.unique(table[key].to_numpy(), return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse)
    return np.stack([np.bincount(inverse, weights=points[:, i]) / counts for i in range(3)], axis=1)


def match(pred_nm: np.ndarray, true_nm: np.ndarray, tolerance_nm: float,
          compatible: np.ndarray | None = None) -> list[tuple[int, int]]:
    """One-to-one (pred index, true index) matches within ``tolerance_nm``, most matches first.

    ``compatible`` (optional, (n_pred,) and (n_true,) keys as a pair of arrays) restricts
    candidates to equal keys.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    if not len(pred_nm) or not len(true_nm):
        return []
    pairs = cKDTree(pred_nm).query_ball_tree(cKDTree(true_nm), r=tolerance_nm)
    rows = np.repeat(np.arange(len(pairs)), [len(p) for p in pairs])
    cols = np.fromiter((j for p in pairs for j in p), np.int64, count=len(rows))
    if compatible is not None:
        keep = compatible[0][rows] == compatible[1][cols]
        rows, cols = rows[keep], cols[keep]
    if not len(rows):
        return []
    n_pred = len(pred_nm)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols + n_pred)), shape=(n_pred + len(true_nm),) * 2)
    _, component = connected_components(graph, directed=False)
    distance = np.linalg.norm(pred_nm[rows] - true_nm[cols], axis=1)
    matches = []
    for c in np.unique(component[rows]):
        sel = component[rows] == c
        r_ids, r = np.unique(rows[sel], return_inverse=True)
        c_ids, k = np.unique(cols[sel], return_inverse=True)
        penalty = (tolerance_nm + 1.0) * (len(r_ids) + len(c_ids) + 1)  # one more match beats any distance
        cost = np.full((len(r_ids), len(c_ids)), 2 * penalty)
        cost[r.reshape(-1), k.reshape(-1)] = distance[sel]
        for i, j in zip(*linear_sum_assignment(cost)):
            if cost[i, j] < penalty:
                matches.append((int(r_ids[i]), int(c_ids[j])))
    return sorted(matches)


def scores(tp: int, n_pred: int, n_true: int) -> dict:
    precision = tp / n_pred if n_pred else float(n_true == 0)
    recall = tp / n_true if n_true else float(n_pred == 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": int(tp), "fp": int(n_pred - tp), "fn": int(n_true - tp), "n_pred": int(n_pred),
            "n_true": int(n_true), "precision": float(precision), "recall": float(recall), "f1": float(f1)}


def evaluate_clefts(pred: pd.DataFrame, truth: pd.DataFrame, tolerance_nm: float = 100.0) -> dict:
    """Cleft detection precision / recall / F1 (one item per synapse)."""
    p, t = cleft_locations(pred), cleft_locations(truth)
    return scores(len(match(p, t, tolerance_nm)), len(p), len(t))


def evaluate_partners(pred: pd.DataFrame, truth: pd.DataFrame, tolerance_nm: float = 100.0, *,
                      truth_labels=None, voxel_size_nm=None, offset_nm=(0, 0, 0)) -> dict:
    """Synaptic partner precision / recall / F1 (CREMI's sense, one item per row)."""
    pred_ids = partner_ids(pred, truth_labels, voxel_size_nm, offset_nm)
    true_ids = partner_ids(truth)
    keys = _pair_keys(pred_ids, true_ids)
    matches = match(locations_nm(pred), locations_nm(truth), tolerance_nm, compatible=keys)
    return scores(len(matches), len(pred), len(truth))


def evaluate_synapses(pred: pd.DataFrame, truth: pd.DataFrame, tolerance_nm: float = 100.0, *,
                      truth_labels=None, voxel_size_nm=None, offset_nm=(0, 0, 0)) -> dict:
    """Both metrics as one JSON-able dict.

    >>> t = pd.DataFrame({"id": [1], "pre_id": [2], "post_id": [3], "pre_z_nm": [0.0], "pre_y_nm": [0.0],
    ...                   "pre_x_nm": [0.0], "post_z_nm": [0.0], "post_y_nm": [0.0], "post_x_nm": [20.0]})
    >>> evaluate_synapses(t, t)["partners"]["f1"]
    1.0
    """
    if tolerance_nm < 0:
        raise ValueError(f"tolerance_nm {tolerance_nm} must be >= 0")
    return {
        "tolerance_nm": float(tolerance_nm),
        "matching": MATCHING,
        "clefts": evaluate_clefts(pred, truth, tolerance_nm),
        "partners": evaluate_partners(pred, truth, tolerance_nm, truth_labels=truth_labels,
                                      voxel_size_nm=voxel_size_nm, offset_nm=offset_nm),
    }


def _pair_keys(pred_ids: np.ndarray, true_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer keys equal exactly when (pre, post) pairs are equal."""
    both = np.concatenate([pred_ids, true_ids]).reshape(-1, 2)
    if not len(both):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    _, inverse = np.unique(both, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    return inverse[:len(pred_ids)], inverse[len(pred_ids):]
