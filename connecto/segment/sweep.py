"""Evaluate a run's merge history at many thresholds against ground truth, in one pass over voxels.

The fragment x ground-truth contingency table is counted once, block by block; each
threshold then only relabels the table's fragment column through that threshold's
mapping (small segments absorbed as the run would write them), so a sweep of many
thresholds costs one read of the volumes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from chunks import Coordinate, Roi, Volume

from .agglomerate import MergeHistory
from .graph_store import GRAPH_COLUMNS, final_mapping, read_edges, read_fragments
from .params import DEFAULT_PARAMS, SegmentParams


def evaluate_thresholds(fragments: Volume, gt, history: MergeHistory, thresholds, ignore_gt_labels=(0,), *,
                        run_dir: str | None = None, params: SegmentParams = DEFAULT_PARAMS) -> pd.DataFrame:
    """VOI / ARAND at every threshold from one fragment x GT contingency table."""
    from .evaluate import contingency_table, evaluate_table, merge_tables
    from .relabel import relabel

    counts = [contingency_table(fragments.read(roi), gt.read(_shift(roi, fragments.roi, gt.roi)), ignore_gt_labels)
              for roi in fragments.roi.blocks(_evaluation_block(fragments.roi))]
    table = merge_tables(counts)
    graph = {}  # the run's tables, read once for every threshold's small-segment absorption
    if run_dir and params.min_size > 0 and not hasattr(history, "final_mapping"):  # hierarchical streams its own
        graph = {"edges": read_edges(run_dir, GRAPH_COLUMNS), "fragments": read_fragments(run_dir)}
    rows = []
    for threshold in thresholds:
        mapping = final_mapping(run_dir, history, threshold, params, **graph) if run_dir else history.mapping(threshold)
        mapped = table.assign(seg=relabel(table["seg"].to_numpy(np.uint64), mapping))
        result = evaluate_table(merge_tables([mapped]), top=0)
        rows.append({"threshold": threshold, "voi_split": result.voi_split, "voi_merge": result.voi_merge,
                     "voi_sum": result.voi_sum, "arand": result.arand, "segments": result.num_segments})
    return pd.DataFrame(rows)


def _evaluation_block(roi: Roi) -> Coordinate:
    return Coordinate(64, min(roi.shape[1], 1024), min(roi.shape[2], 1024))


def _shift(roi: Roi, from_roi: Roi, to_roi: Roi) -> Roi:
    return roi.shift(to_roi.begin - from_roi.begin)
