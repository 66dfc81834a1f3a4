"""Cleft detection scored against a real cleft mask: object-level and CREMI-style distances.

- **2D profiles**: each section's 8-connected components, predicted vs true. A predicted
  and a true profile are candidates when they overlap (share a pixel); each is matched at
  most once (maximum one-to-one matching, ``scipy.optimize.linear_sum_assignment``, larger
  overlaps preferred). precision = matches / predicted profiles, recall = matches / true
  profiles. A true profile split in two predictions counts one match and one false positive.
- **3D objects**: the same on 26-connected components of the whole stacks.
- **CREMI cleft distances** (the CREMI challenge's ``clefts`` score, here in 3D with the
  anisotropic voxel size): for each predicted cleft voxel the distance (nm) to the nearest
  true cleft voxel (false-positive distance), and for each true voxel to the nearest
  predicted one (false-negative distance); their means, and the counts of voxels farther
  than ``tolerance_nm`` (200 nm, CREMI's).

With nothing predicted precision is 1 when nothing is true (else 0); likewise recall; F1 0
when precision + recall is 0. Everything returned is JSON-able.
"""

from __future__ import annotations

import numpy as np

CREMI_TOLERANCE_NM = 200.0


def prf(matches: int, n_pred: int, n_true: int) -> dict:
    precision = matches / n_pred if n_pred else (1.0 if n_true == 0 else 0.0)
    recall = matches / n_true if n_true else (1.0 if n_pred == 0 else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "matched": int(matches), "predicted": int(n_pred),
            "true": int(n_true)}


def match_objects(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Precision / recall / F1 of labelled objects ``pred`` against ``truth`` (0 = background; see module docstring)."""
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if pred.shape != truth.shape:
        raise ValueError(f"prediction (shape {pred.shape}) must have the same shape as the truth (shape {truth.shape})")
    pred_ids = np.unique(pred[pred > 0])
    true_ids = np.unique(truth[truth > 0])
    both = (pred > 0) & (truth > 0)
    pairs, overlap = np.unique(np.stack([pred[both], truth[both]]), axis=1, return_counts=True)
    if pairs.shape[1] == 0:
        return prf(0, pred_ids.size, true_ids.size)
    rows, cols = np.searchsorted(pred_ids, pairs[0]), np.searchsorted(true_ids, pairs[1])
    # solve each connected group of candidate pairs on its own: small dense problems
    n = pred_ids.size + true_ids.size
    graph = coo_matrix((np.ones(rows.size), (rows, pred_ids.size + cols)), shape=(n, n))
    _, group = connected_components(graph, directed=False)
    matches = 0
    for g in np.unique(group[rows]):
        sel = group[rows] == g
        r, r_index = np.unique(rows[sel], return_inverse=True)
        c, c_index = np.unique(cols[sel], return_inverse=True)
        cost = np.zeros((r.size, c.size))
        # a match counts 1; among maximum matchings prefer larger overlaps (the bonus stays < 1 in total)
        cost[r_index, c_index] = -(1.0 + overlap[sel] / (overlap[sel].sum() + 1.0))
        i, j = linear_sum_assignment(cost)
        matches += int(np.sum(cost[i, j] < 0))
    return prf(matches, pred_ids.size, true_ids.size)


def cremi_distances(pred: np.ndarray, truth: np.ndarray, voxel_size_nm,
                    tolerance_nm: float = CREMI_TOLERANCE_NM) -> dict:
    """CREMI-style false-positive / false-negative cleft distances (nm) of two masks (see module docstring)."""
    from scipy.ndimage import distance_transform_edt

    pred, truth = pred > 0, truth > 0
    out = {"tolerance_nm": float(tolerance_nm)}
    for name, source, target in (("false_positive", pred, truth), ("false_negative", truth, pred)):
        if not source.any():
            out.update({f"{name}_distance_mean_nm": 0.0, f"{name}_count_beyond_tolerance": 0})
            continue
        if not target.any():
            out.update({f"{name}_distance_mean_nm": float("inf"),
                        f"{name}_count_beyond_tolerance": int(source.sum())})
            continue
        distance = distance_transform_edt(~target, sampling=[float(v) for v in voxel_size_nm])[source]
        out.update({f"{name}_distance_mean_nm": float(distance.mean()),
                    f"{name}_count_beyond_tolerance": int(np.sum(distance > tolerance_nm))})
    return out


def evaluate_clefts(pred: np.ndarray, truth: np.ndarray, voxel_size_nm) -> dict:
    """2D-profile and 3D-object precision / recall / F1, and CREMI distances, of a predicted cleft mask or
    object volume ``pred`` against the true cleft mask (or labels) ``truth``."""
    from .clefts import objects_3d, profiles

    if pred.shape != truth.shape:
        raise ValueError(f"prediction (shape {pred.shape}) must have the same shape as the truth (shape {truth.shape})")
    pred_mask, true_mask = pred > 0, truth > 0
    return {"profiles_2d": match_objects(profiles(pred_mask), profiles(true_mask)),
            "objects_3d": match_objects(objects_3d(pred_mask), objects_3d(true_mask)),
            "cremi": cremi_distances(pred_mask, true_mask, voxel_size_nm),
            "voxel_size_nm": [float(v) for v in voxel_size_nm],
            "matching": "2D: 8-connected profiles per section; 3D: 26-connected objects; one-to-one by overlap"}
