"""Hierarchical agglomeration: no process holds the whole region graph.

The design is lsd's (Funke et al. 2019, ``lsd.post``: ``agglomerate_in_block`` then
``find_segments``): blockwise agglomeration with context, then a global threshold cut by
union-find over streamed per-block files. Chosen over an abiss-style block tree because
it needs one blockwise pass and one streamed pass, each block's work is independent
(any scheduler, any order, resumable per block), and the cut at any threshold is a
union-find over integers, so threshold sweeps stay cheap. The price: a merge decided
inside a block's context may differ from the one the global agglomeration makes (the
global one sees the whole region); ``benchmarks/scale.py`` measures the VOI between the
two modes.

1. **Per block** (through the engine, on any worker): the block's *group graph* is the
   edges of the block and of its 26 neighbours whose two fragments reach within
   ``context`` voxels of the block (fragment bounding boxes); the mean (or mutex)
   agglomeration of that graph gives every edge *owned by the block* a join score, the
   score of the merge that first puts its two fragments in one region
   (:func:`.unionfind.join_scores`). Written to
   ``OUT/agglomeration/blocks/scores-<block>.parquet`` as ``(u, v, score)``, edges that never
   join (above ``max_score``) left out. Memory: one group graph.
2. **Global cut** (:class:`HierarchicalHistory`, in the driver): the segment of each fragment
   at threshold ``t`` is the connected component of the scored edges with ``score <= t``,
   by a union-find over fragment indices that reads the score files one at a time.
   Memory: a few integers per fragment (fragment ids are ``block_id * stride + 1 .. n_b``,
   so the index of an id is a per-block offset; no hash table).
   Above :data:`BLOCKWISE_UP_TO` (mean agglomeration only) the cut continues globally: the
   edges are streamed once more, reduced to the graph between the segments at
   ``BLOCKWISE_UP_TO`` (contact areas and affinity sums added up), and that graph is
   agglomerated by the exact mean agglomeration from there on. The late merges (mean
   affinity below ~0.4, between large segments) are the ones a block's context decides
   wrongly (measured on FIB-25: VOI 0.27 between the modes at threshold 0.75 without this
   step, 0.00 with absorbed fragments at 0.6); mean agglomeration is monotone, so going on
   from the segments at ``BLOCKWISE_UP_TO`` with the summed edges is what the global
   agglomeration does after the same point. Memory: that graph, whose nodes are segments,
   not fragments (FIB-25 with absorbed fragments: see docs/scaling.md).
3. **Small segments** (``min_size``): sizes, anchors and the edges touching a small
   segment are streamed block by block and reduced to a graph between segments, which
   :func:`.small.absorb_small` absorbs exactly as it would on the fragment graph (an
   edge between two segments of at least ``min_size`` never takes part).

``OUT/agglomeration/hierarchy.json`` records the block layout (stride, fragment count per
block); :func:`open_hierarchy` reopens it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging

import numpy as np
import pandas as pd

from chunks import Coordinate, Roi, run_blockwise
from chunks.errors import IncompatibleVolumeError
from chunks.fs import filesystem, read_json, write_json
from chunks.urls import parse_url

from .agglomerate import agglomerate_mean, mutex_watershed
from .graph_store import GRAPH_COLUMNS, join, read_table, write_table
from .params import SegmentParams
from .unionfind import flatten, join_scores, union_pairs

logger = logging.getLogger(__name__)

RECORD = "hierarchy.json"
SCORES = "blocks"  # under OUT/agglomeration
# context of a block's agglomeration: fragments within this many voxels of the block take part
CONTEXT_VOXELS = 32
# merge scores up to which the blocks' join scores decide (mean agglomeration); above it the cut goes on
# by the global mean agglomeration of the graph between the segments at this score (step 2). The
# blocks agree with the global mode up to here on FIB-25 (docs/scaling.md)
BLOCKWISE_UP_TO = 0.6
_GROUP_FRAGMENT_COLUMNS = ("id", "anchor", "bbox_z0", "bbox_y0", "bbox_x0", "bbox_z1", "bbox_y1", "bbox_x1")


def block_name(index) -> str:
    return "_".join(str(int(i)) for i in index)


# --- 1. per block ---------------------------------------------------------------------

def _read_block_table(run_dir: str, name: str, columns) -> pd.DataFrame | None:
    url = parse_url(run_dir)
    fs = filesystem(url)
    path = url.join("graph", name)
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as f:
        return pd.read_parquet(f, columns=list(columns))


def group_graph(run_dir: str, block, grid: Coordinate, volume_roi: Roi, context: int):
    """(edges, fragments, own edges): the graph of the block's group (its fragments and its 26 neighbours'
    within ``context`` voxels of it, the edges between them) and the edges the block owns."""
    region = block.write_roi.grow(Coordinate((max(context, 1),) * 3)).intersect(volume_roi)
    low, high = np.asarray(region.begin), np.asarray(region.end)
    names = []
    for index in np.ndindex(*(3,) * 3):
        neighbour = np.asarray(block.index) + np.asarray(index) - 1
        if not (np.any(neighbour < 0) or np.any(neighbour >= np.asarray(grid))):
            names.append((block_name(neighbour), tuple(index) == (1, 1, 1)))
    fragments = []
    for name, _ in names:
        table = _read_block_table(run_dir, f"fragments-{name}.parquet", _GROUP_FRAGMENT_COLUMNS)
        if table is not None and len(table):
            begin = table[["bbox_z0", "bbox_y0", "bbox_x0"]].to_numpy()
            end = table[["bbox_z1", "bbox_y1", "bbox_x1"]].to_numpy()
            near = np.all((begin < high) & (end > low), axis=1)
            fragments.append(table.loc[near, ["id", "anchor"]])
    fragments = pd.concat(fragments, ignore_index=True).sort_values("id", ignore_index=True) if fragments else \
        pd.DataFrame({"id": np.empty(0, np.uint64), "anchor": np.empty(0, np.int64)})
    ids = fragments["id"].to_numpy(np.uint64)
    edges, own_edges = [], None
    for name, own in names:  # each neighbour's table cut to the group as it is read: memory is the group's
        table = _read_block_table(run_dir, f"edges-{name}.parquet", GRAPH_COLUMNS)
        if table is None:
            continue
        if own:
            own_edges = table
        inside = _member(ids, table["u"].to_numpy(np.uint64)) & _member(ids, table["v"].to_numpy(np.uint64))
        edges.append(table[inside])
    edges = pd.concat(edges, ignore_index=True).sort_values(["u", "v"], ignore_index=True) if edges else None
    return edges, fragments, own_edges


def _member(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    where = np.minimum(np.searchsorted(sorted_ids, values), max(sorted_ids.size - 1, 0))
    return sorted_ids[where] == values if sorted_ids.size else np.zeros(values.size, bool)


def block_scores(edges: pd.DataFrame, fragments: pd.DataFrame, own_edges: pd.DataFrame,
                 params: SegmentParams) -> pd.DataFrame:
    """The join score of each of ``own_edges`` in the agglomeration of the group graph ``edges``, ``fragments``
    (rows that never join left out): ``u``, ``v`` (uint64), ``score`` (float64)."""
    empty = pd.DataFrame({"u": np.empty(0, np.uint64), "v": np.empty(0, np.uint64), "score": np.empty(0)})
    if own_edges is None or not len(own_edges) or edges is None or not len(edges):
        return empty
    if params.method == "mutex":
        history = mutex_watershed(edges, fragments, bias=params.bias)
    else:
        history = agglomerate_mean(edges, fragments, max_score=params.max_score)
    ids = history.fragment_ids
    index = lambda x: np.searchsorted(ids, x.to_numpy(np.uint64))
    merges = history.merges
    score = join_scores(ids.size, index(merges["u"]), index(merges["v"]), merges["score"].to_numpy(),
                        index(own_edges["u"]), index(own_edges["v"]))
    joined = np.isfinite(score)
    return pd.DataFrame({"u": own_edges["u"].to_numpy(np.uint64)[joined],
                         "v": own_edges["v"].to_numpy(np.uint64)[joined], "score": score[joined]})


def agglomerate_block(params: SegmentParams, grid: Coordinate, volume_roi: Roi, context: int, run_dir: str,
                      block, inputs) -> None:
    """Engine stage: the join scores of the edges this block owns (see the module docstring, step 1)."""
    edges, fragments, own = group_graph(run_dir, block, grid, volume_roi, context)
    scores = block_scores(edges, fragments, own, params)
    write_table(scores, run_dir, join("agglomeration", SCORES), f"scores-{block.name}.parquet")


def agglomerate_hierarchical(run_dir: str, params: SegmentParams, volume_roi: Roi, *, block_shape,
                             context: int = CONTEXT_VOXELS, scheduler="sync", num_workers=None, overwrite=False,
                             progress=False) -> HierarchicalHistory:
    """Step 1 through the engine (resumable per block), then the record of the layout; returns the history."""
    block_shape = Coordinate(block_shape)
    grid = volume_roi.shape.ceil_div(block_shape)
    final_max_score = params.max_score
    if params.method == "mean":  # the blocks decide up to BLOCKWISE_UP_TO, the cut goes on from there
        params = dataclasses.replace(params, max_score=min(params.max_score, BLOCKWISE_UP_TO))
    stage = functools.partial(run_blockwise, functools.partial(agglomerate_block, params, grid, volume_roi, context,
                                                               run_dir),
                              volume_roi, block_shape, task="agglomerate_blocks", markers_at=run_dir,
                              params={"method": params.method, "bias": params.bias, "max_score": params.max_score,
                                      "context": context, "block": list(block_shape)},
                              scheduler=scheduler, num_workers=num_workers, progress=progress)
    try:  # the same parameters as a run before: its finished blocks stay
        stage(overwrite=overwrite)
    except IncompatibleVolumeError:  # other agglomeration parameters: the scores are derived data, every block again
        stage(overwrite=True)
    counts = [_num_rows(run_dir, f"fragments-{block_name(index)}.parquet") for index in np.ndindex(*grid)]
    record = {"stride": int(block_shape.prod()), "grid": list(grid), "counts": counts, "method": params.method,
              "max_score": final_max_score, "context": context,
              "blockwise_up_to": BLOCKWISE_UP_TO if params.method == "mean" else None}
    write_json(parse_url(join(run_dir, "agglomeration")), RECORD, record)
    return HierarchicalHistory(run_dir, record)


def _num_rows(run_dir: str, name: str) -> int:
    import pyarrow.parquet as pq

    url = parse_url(run_dir)
    fs = filesystem(url)
    path = url.join("graph", name)
    if not fs.exists(path):
        return 0
    with fs.open(path, "rb") as f:
        return int(pq.ParquetFile(f).metadata.num_rows)


def open_hierarchy(run_dir: str) -> HierarchicalHistory | None:
    """The run's hierarchical merge history, or None when the run agglomerated globally."""
    record = read_json(parse_url(join(run_dir, "agglomeration")), RECORD)
    return None if record is None else HierarchicalHistory(run_dir, record)


# --- 2. global cut -----------------------------------------------------------------------

class HierarchicalHistory:
    """The segments at any threshold from a run's per-block join scores (the module docstring, step 2).

    Stands in for a :class:`~.agglomerate.MergeHistory` (``mapping``, ``num_segments``,
    ``fragment_ids``) without holding the merges: each cut streams the score files.
    """

    def __init__(self, run_dir: str, record: dict):
        self.run_dir = run_dir
        self.stride = int(record["stride"])
        self.grid = tuple(record["grid"])
        self.counts = np.asarray(record["counts"], dtype=np.int64)
        self.offsets = np.r_[0, np.cumsum(self.counts)]
        self.max_score = float(record.get("max_score", 1.0))
        # runs from before the global continuation: the blocks decide every threshold
        self.blockwise_up_to = record.get("blockwise_up_to")
        self._cuts: dict[float, np.ndarray] = {}
        self._continuation = None  # (the roots at blockwise_up_to, their segments' merge history)

    @property
    def fragment_ids(self) -> np.ndarray:
        """Every fragment id, sorted (block ids ascending, then local ids)."""
        return np.concatenate([np.arange(1, n + 1, dtype=np.uint64) + np.uint64(b * self.stride)
                               for b, n in enumerate(self.counts)] or [np.empty(0, np.uint64)])

    @property
    def num_fragments(self) -> int:
        return int(self.offsets[-1])

    def index_of(self, ids: np.ndarray) -> np.ndarray:
        """The index of each fragment id: its block's offset plus its local id - 1."""
        ids = np.asarray(ids, dtype=np.uint64) - np.uint64(1)
        block = (ids // np.uint64(self.stride)).astype(np.int64)
        local = (ids % np.uint64(self.stride)).astype(np.int64)
        if ids.size and (block.max() >= self.counts.size or np.any(local >= self.counts[block])):
            raise ValueError(f"fragment ids of {self.run_dir} do not fit its block layout (stride {self.stride}, "
                             f"{self.counts.size} blocks): tables of another run are mixed in; rerun with --overwrite")
        return self.offsets[block] + local

    def roots(self, threshold: float) -> np.ndarray:
        """Per fragment index, the index of its segment's smallest fragment (the cut at ``threshold``)."""
        key = float(threshold)
        if key not in self._cuts:
            if self.blockwise_up_to is not None and key > self.blockwise_up_to:
                roots = self._continued(key)
            else:
                roots = self._blockwise_roots(key)
            self._cuts = {key: roots}  # one cut kept: a sweep goes threshold by threshold
        return self._cuts[key]

    def _blockwise_roots(self, threshold: float) -> np.ndarray:
        parent = np.arange(self.num_fragments, dtype=np.int64)
        for index in np.ndindex(*self.grid):
            path = join(self.run_dir, "agglomeration", SCORES, f"scores-{block_name(index)}.parquet")
            scores = read_table(path, filters=[("score", "<=", float(threshold))])
            union_pairs(parent, self.index_of(scores["u"].to_numpy()), self.index_of(scores["v"].to_numpy()))
        return flatten(parent)

    def _continued(self, threshold: float) -> np.ndarray:
        """The cut above ``blockwise_up_to``: the segments there, agglomerated on (module docstring, step 2)."""
        if self._continuation is None:  # the cut at blockwise_up_to and its graph, once per history
            base = self._blockwise_roots(self.blockwise_up_to)
            self._continuation = (base, self._agglomerate_segments(base)[1])
        base, history = self._continuation
        mapping = history.mapping(threshold)
        new_root = np.arange(base.size)
        new_root[self.index_of(mapping["fragment"].to_numpy())] = self.index_of(mapping["segment"].to_numpy())
        return new_root[base]

    def _agglomerate_segments(self, roots: np.ndarray):
        """The mean agglomeration of the graph between the segments of ``roots`` (edges streamed block by block)."""
        _, key = self._segment_sizes_and_keys(roots)
        pairs = []
        for table in self._edge_tables():
            su, sv = roots[self.index_of(table["u"].to_numpy())], roots[self.index_of(table["v"].to_numpy())]
            across = su != sv
            if across.any():
                pairs.append(_sum_pairs(su[across], sv[across], table["contact_area"].to_numpy(np.int64)[across],
                                        table["affinity_sum"].to_numpy(np.int64)[across]))
        segments = np.flatnonzero(roots == np.arange(roots.size))
        ids = self.fragment_ids[segments]
        table = pd.DataFrame({"id": ids, "anchor": key[segments]})
        if not pairs:
            graph = pd.DataFrame({name: np.empty(0, np.uint64 if name in "uv" else np.int64)
                                  for name in ("u", "v", "contact_area", "affinity_sum")})
        else:
            u, v, area, total = _sum_pairs(*(np.concatenate(c) for c in zip(*pairs)))  # pairs cut by blocks added
            graph = pd.DataFrame({"u": self.fragment_ids[u], "v": self.fragment_ids[v], "contact_area": area,
                                  "affinity_sum": total})
        logger.info("hierarchical: %d segments at %.2f, %d edges between them", ids.size, self.blockwise_up_to,
                    len(graph))
        return ids, agglomerate_mean(graph, table, max_score=self.max_score)

    def num_segments(self, threshold: float) -> int:
        roots = self.roots(threshold)
        return int(np.count_nonzero(roots == np.arange(roots.size)))

    def mapping(self, threshold: float) -> pd.DataFrame:
        """Fragment -> segment at ``threshold`` (a segment named by its smallest fragment id)."""
        ids = self.fragment_ids
        return pd.DataFrame({"fragment": ids, "segment": ids[self.roots(threshold)]})

    def final_mapping(self, threshold: float, min_size: int = 0) -> pd.DataFrame:
        """:meth:`mapping` with segments below ``min_size`` voxels absorbed (step 3)."""
        if min_size <= 0:
            return self.mapping(threshold)
        ids = self.fragment_ids
        roots = self.roots(threshold).copy()
        roots = self._absorb_small(roots, min_size)
        return pd.DataFrame({"fragment": ids, "segment": ids[roots]})

    def _segment_sizes_and_keys(self, roots: np.ndarray):
        """Per root index: its segment's voxels and smallest anchor (streamed fragment tables)."""
        n = roots.size
        size = np.zeros(n, np.int64)
        key = np.full(n, np.iinfo(np.int64).max)
        for index in np.ndindex(*self.grid):
            table = _read_block_table(self.run_dir, f"fragments-{block_name(index)}.parquet", ("id", "size", "anchor"))
            if table is None or not len(table):
                continue
            at = roots[self.index_of(table["id"].to_numpy())]
            np.add.at(size, at, table["size"].to_numpy(np.int64))
            np.minimum.at(key, at, table["anchor"].to_numpy(np.int64))
        return size, key

    def _edge_tables(self):
        """The region graph's per-block edge tables, one at a time."""
        for index in np.ndindex(*self.grid):
            table = _read_block_table(self.run_dir, f"edges-{block_name(index)}.parquet", GRAPH_COLUMNS)
            if table is not None and len(table):
                yield table

    # --- 3. small segments ------------------------------------------------------------

    def _absorb_small(self, roots: np.ndarray, min_size: int) -> np.ndarray:
        from .small import absorb_small

        n = roots.size
        size, key = self._segment_sizes_and_keys(roots)
        small = size < min_size
        small &= roots == np.arange(n)  # sizes and keys sit at the roots
        pairs = []
        for table in self._edge_tables():
            su, sv = roots[self.index_of(table["u"].to_numpy())], roots[self.index_of(table["v"].to_numpy())]
            near = (su != sv) & (small[su] | small[sv])
            if near.any():
                pairs.append(_sum_pairs(su[near], sv[near], table["contact_area"].to_numpy(np.int64)[near],
                                        table["affinity_sum"].to_numpy(np.int64)[near]))
        if not pairs:
            return roots
        edges = _sum_pairs(*(np.concatenate(c) for c in zip(*pairs)))  # pairs cut by blocks added up
        involved = np.unique(np.r_[edges[0], edges[1]])
        ids = self.fragment_ids[involved]  # the segments' names; root indices order as ids do
        mapping = pd.DataFrame({"fragment": ids, "segment": ids})
        graph = pd.DataFrame({"u": self.fragment_ids[edges[0]], "v": self.fragment_ids[edges[1]],
                              "contact_area": edges[2], "affinity_sum": edges[3]})
        table = pd.DataFrame({"id": ids, "size": size[involved], "anchor": key[involved]})
        absorbed = absorb_small(mapping, graph, table, min_size)
        new_root = np.arange(n)
        new_root[involved] = self.index_of(absorbed["segment"].to_numpy())
        return new_root[roots]


def _sum_pairs(u, v, area, total):
    """Contacts added up per unordered pair of segment indices: (u, v, area, affinity sum), u < v."""
    a, b = np.minimum(u, v).astype(np.int64), np.maximum(u, v).astype(np.int64)
    n = np.int64(max(int(b.max(initial=0)) + 1, 1))  # pairs as one int64 key: a * n + b (n < 3e9)
    pair, inverse = np.unique(a * n + b, return_inverse=True)
    return (pair // n, pair % n, np.bincount(inverse, weights=area, minlength=pair.size).astype(np.int64),
            np.bincount(inverse, weights=total, minlength=pair.size).astype(np.int64))
