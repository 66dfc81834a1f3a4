"""Segmentation accuracy against ground truth: VOI split/merge, adapted Rand error, worst objects.

Conventions (those of CREMI and scikit-image, and of ``../shared/data/README.md``):

- VOI split = H(seg | gt), VOI merge = H(gt | seg), conditional entropies in bits (log2);
- adapted Rand error = 1 - F-score of Rand precision and recall over voxel pairs
  (scikit-image's ``adapted_rand_error``, alpha = 0.5);
- voxels whose GT label is in ``ignore_gt_labels`` (default: 0) are left out of every
  number; a segmentation's own label 0 is an ordinary segment.

Everything is computed from the contingency table (seg id, gt id, voxel count), which is
additive over blocks: a volume is evaluated block by block, so memory is set by the
block size, not the volume size.

>>> import numpy as np
>>> gt = np.array([[1, 1, 2, 2]]); seg = np.array([[5, 5, 5, 5]])
>>> result = evaluate(seg, gt)
>>> result.voi_split, result.voi_merge
(0.0, 1.0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from chunks import Coordinate, Roi

TABLE_COLUMNS = ("seg", "gt", "count")


@dataclass(frozen=True)
class Evaluation:
    """Accuracy of a segmentation against ground truth (see the module docstring)."""

    voi_split: float
    voi_merge: float
    arand: float
    rand_precision: float
    rand_recall: float
    num_segments: int
    num_gt_segments: int
    num_voxels: int
    worst_splits: list = field(default_factory=list)
    worst_merges: list = field(default_factory=list)

    @property
    def voi_sum(self) -> float:
        return self.voi_split + self.voi_merge

    def to_dict(self) -> dict:
        return {**asdict(self), "voi_sum": self.voi_sum}

    def summary(self) -> str:
        return (f"VOI split {self.voi_split:.4f}  merge {self.voi_merge:.4f}  sum {self.voi_sum:.4f}  "
                f"ARAND {self.arand:.4f}  segments {self.num_segments}  (GT {self.num_gt_segments}, "
                f"{self.num_voxels} voxels)")


def contingency_table(segmentation: np.ndarray, ground_truth: np.ndarray,
                      ignore_gt_labels=(0,)) -> pd.DataFrame:
    """Voxel counts of every (segment, GT object) pair that overlaps.

    Returns a DataFrame with columns ``seg``, ``gt`` (uint64) and ``count`` (int64).
    Voxels whose GT label is in ``ignore_gt_labels`` are not counted.
    """
    segmentation, ground_truth = np.asarray(segmentation), np.asarray(ground_truth)
    if segmentation.shape != ground_truth.shape:
        raise ValueError(f"segmentation (shape {segmentation.shape}) must have the same shape as "
                         f"ground truth (shape {ground_truth.shape})")
    seg, gt = segmentation.ravel(), ground_truth.ravel()
    ignore = np.asarray(list(ignore_gt_labels or ()), dtype=gt.dtype if gt.dtype.kind in "iu" else None)
    if ignore.size:
        keep = ~np.isin(gt, ignore)
        seg, gt = seg[keep], gt[keep]
    if seg.size == 0:
        return _empty_table()
    seg_ids, seg_index = _factorize(seg)
    gt_ids, gt_index = _factorize(gt)
    pair = seg_index * np.int64(gt_ids.size) + gt_index
    if seg_ids.size * gt_ids.size <= 4 * pair.size:
        counts = np.bincount(pair, minlength=seg_ids.size * gt_ids.size)
        keys = np.flatnonzero(counts)
        counts = counts[keys]
    else:
        keys, counts = np.unique(pair, return_counts=True)
    return pd.DataFrame({"seg": seg_ids[keys // gt_ids.size], "gt": gt_ids[keys % gt_ids.size],
                         "count": counts.astype(np.int64)})


def merge_tables(tables) -> pd.DataFrame:
    """Sum contingency tables of disjoint parts (blocks) of a volume."""
    tables = [t for t in tables if len(t)]
    if not tables:
        return _empty_table()
    table = pd.concat(tables, ignore_index=True)
    return table.groupby(["seg", "gt"], as_index=False, sort=True)["count"].sum()


def evaluate_table(table: pd.DataFrame, top: int = 10) -> Evaluation:
    """Metrics from a contingency table (see :func:`contingency_table`)."""
    n_ij = table["count"].to_numpy(np.float64)
    total = n_ij.sum()
    if total == 0:
        return Evaluation(0.0, 0.0, 0.0, 1.0, 1.0, 0, 0, 0)
    seg_codes, seg_ids = pd.factorize(table["seg"], sort=True)
    gt_codes, gt_ids = pd.factorize(table["gt"], sort=True)
    seg_sizes = np.bincount(seg_codes, weights=n_ij)
    gt_sizes = np.bincount(gt_codes, weights=n_ij)

    # per-object contributions to the conditional entropies, in bits
    p_ij = n_ij / total
    split_terms = -p_ij * np.log2(n_ij / gt_sizes[gt_codes])
    merge_terms = -p_ij * np.log2(n_ij / seg_sizes[seg_codes])
    split_per_gt = np.bincount(gt_codes, weights=split_terms, minlength=gt_ids.size)
    merge_per_seg = np.bincount(seg_codes, weights=merge_terms, minlength=seg_ids.size)

    sum_ij2 = n_ij @ n_ij - total
    sum_seg2 = seg_sizes @ seg_sizes - total
    sum_gt2 = gt_sizes @ gt_sizes - total
    precision = sum_ij2 / sum_seg2 if sum_seg2 > 0 else 1.0
    recall = sum_ij2 / sum_gt2 if sum_gt2 > 0 else 1.0
    denominator = 0.5 * sum_seg2 + 0.5 * sum_gt2
    arand = 1.0 - sum_ij2 / denominator if denominator > 0 else 0.0

    pieces = np.bincount(gt_codes, minlength=gt_ids.size)
    objects = np.bincount(seg_codes, minlength=seg_ids.size)
    worst_splits = [
        {"gt_id": int(gt_ids[i]), "size": int(gt_sizes[i]), "pieces": int(pieces[i]),
         "voi_split": float(split_per_gt[i])}
        for i in _top(split_per_gt, top)
    ]
    worst_merges = [
        {"seg_id": int(seg_ids[j]), "size": int(seg_sizes[j]), "gt_objects": int(objects[j]),
         "voi_merge": float(merge_per_seg[j])}
        for j in _top(merge_per_seg, top)
    ]
    return Evaluation(
        voi_split=_clean(split_per_gt.sum()), voi_merge=_clean(merge_per_seg.sum()), arand=_clean(arand),
        rand_precision=float(precision), rand_recall=float(recall),
        num_segments=int(seg_ids.size), num_gt_segments=int(gt_ids.size), num_voxels=int(total),
        worst_splits=worst_splits, worst_merges=worst_merges,
    )


def evaluate(segmentation, ground_truth, *, ignore_gt_labels=(0,), top: int = 10, roi: Roi | None = None,
             block_shape=None) -> Evaluation:
    """Evaluate ``segmentation`` against ``ground_truth``.

    Parameters
    ----------
    segmentation, ground_truth : numpy arrays of the same shape, or volumes (a
        ``chunks.Volume``, a URL, ``FILE.h5:/dataset`` or a ``.npy`` path); volumes are
        read block by block.
    ignore_gt_labels : GT labels whose voxels are left out (default: 0, background).
    top : how many of the worst split and merge objects to list.
    roi : for volumes, the Roi (voxels) to evaluate; default: the whole volume, and the
        two volumes must then cover the same Roi.
    block_shape : for volumes, voxels per block read (default: 64 z-slices of whole planes
        up to 1024 x 1024).
    """
    if isinstance(segmentation, np.ndarray) and isinstance(ground_truth, np.ndarray):
        return evaluate_table(contingency_table(segmentation, ground_truth, ignore_gt_labels), top)
    seg, gt = open_labels(segmentation), open_labels(ground_truth)
    if roi is None:
        if seg.roi != gt.roi:
            raise ValueError(f"segmentation (Roi {seg.roi}, shape {seg.roi.shape}) and ground truth "
                             f"(Roi {gt.roi}, shape {gt.roi.shape}) cover different regions; pass roi= "
                             "(--roi) to evaluate a region both cover")
        roi = seg.roi
    for name, vol in (("segmentation", seg), ("ground truth", gt)):
        if not vol.roi.contains(roi):
            raise ValueError(f"Roi {roi} reaches outside the {name} (Roi {vol.roi})")
    block_shape = Coordinate(block_shape) if block_shape is not None else Coordinate(
        64, min(roi.shape[1], 1024), min(roi.shape[2], 1024))
    tables = [contingency_table(seg.read(block), gt.read(block), ignore_gt_labels)
              for block in roi.blocks(block_shape)]
    return evaluate_table(merge_tables(tables), top)


def open_labels(spec):
    """A volume-like object (``.roi``, ``.read(roi)``) for a Volume, an array, a URL or a file spec."""
    if hasattr(spec, "roi") and hasattr(spec, "read"):
        return spec
    if isinstance(spec, np.ndarray):
        return _ArrayLabels(spec)
    from chunks.sources import open_readable

    return open_readable(spec)


@dataclass(frozen=True)
class _ArrayLabels:
    array: np.ndarray

    @property
    def roi(self) -> Roi:
        return Roi((0,) * self.array.ndim, self.array.shape)

    def read(self, roi: Roi) -> np.ndarray:
        return self.array[roi.to_slices()]


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique values and each element's index among them (int64)."""
    import fastremap

    renumbered, mapping = fastremap.renumber(values, start=0, preserve_zero=False)
    ids = np.empty(len(mapping), dtype=values.dtype)
    ids[np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))] = np.fromiter(
        mapping.keys(), dtype=values.dtype, count=len(mapping))
    return ids, renumbered.astype(np.int64, copy=False)


def _top(values: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-values, kind="stable")[:k]
    return order[values[order] > 0]


def _clean(value: float) -> float:
    """Round away float noise below 1e-12 (a perfect match is exactly 0)."""
    value = float(value)
    return 0.0 if abs(value) < 1e-12 else value


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame({"seg": np.empty(0, np.uint64), "gt": np.empty(0, np.uint64),
                         "count": np.empty(0, np.int64)})
