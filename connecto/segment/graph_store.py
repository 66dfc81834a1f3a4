"""The Parquet tables of a segmentation run directory: region graph, merge history, mappings.

Layout under the run directory ``OUT`` (a local path or a bucket URL; see
:mod:`connecto.segment.blockwise` for the volumes):

- ``OUT/graph/fragments-<block>.parquet``: fragment table of each block;
- ``OUT/graph/edges-<block>.parquet``: region-graph edges owned by each block;
- ``OUT/agglomeration/merge_history.parquet``: merges ``(u, v, score)`` in order, and
  ``OUT/agglomeration/fragment_ids.parquet``: every fragment id; ``history.json``, written
  after both, names the parameters and graph they came from (a rerun reuses them);
- ``OUT/agglomeration/mapping-<threshold>.parquet``: fragment -> segment at a threshold, and
  the same rows split by the block whose id range holds the fragment,
  ``OUT/agglomeration/mapping-<threshold>/block-<block id>.parquet`` (the relabel reads only
  the files of the fragments in its block);
- hierarchical runs (:mod:`.hierarchical`): ``OUT/agglomeration/blocks/scores-<block>.parquet``
  and ``hierarchy.json`` instead of the merge history.

Every path goes through fsspec (:mod:`chunks.fs`), so the same code reads and writes a
local directory or a bucket.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from chunks.fs import filesystem, read_json, write_json
from chunks.urls import parse_url

from .agglomerate import MergeHistory
from .params import DEFAULT_PARAMS, SegmentParams

# the edge columns that agglomeration and absorbing small segments use: reading only these
# is 4x faster than reading every statistic (FIB-25: 0.5 s instead of 1.9 s for 3.7M edges)
GRAPH_COLUMNS = ("u", "v", "contact_area", "affinity_sum", "linked")

HISTORY_RECORD = "history.json"


# --- region graph -------------------------------------------------------------------

def read_edges(run_dir: str, columns=None) -> pd.DataFrame:
    """All edges of a run, one table sorted by (u, v) (each edge is owned by one block); ``columns``: a subset."""
    from .region_graph import empty_edge_table, merge_edge_tables

    tables = read_tables(run_dir, "graph", "edges-*.parquet", columns)
    table = merge_edge_tables(tables) if tables else empty_edge_table()
    return table if columns is None else table[list(columns)]


def read_fragments(run_dir: str) -> pd.DataFrame:
    """The fragment tables of every block of a run, as one table."""
    from .fragments import empty_fragment_table

    tables = [t for t in read_tables(run_dir, "graph", "fragments-*.parquet") if len(t)]
    return pd.concat(tables, ignore_index=True) if tables else empty_fragment_table()


# --- merge history ------------------------------------------------------------------

def history_source(params: SegmentParams, edges: pd.DataFrame, fragments: pd.DataFrame) -> dict:
    """What a merge history depends on: the agglomeration parameters and the graph's size."""
    return {"method": params.method, "max_score": params.max_score, "bias": params.bias,
            "edges": len(edges), "fragments": len(fragments)}


def write_history(run_dir: str, history: MergeHistory, source: dict) -> None:
    """The merges and the fragment ids, then the record of ``source`` (last: it marks them finished)."""
    write_table(history.merges, run_dir, "agglomeration", "merge_history.parquet")
    write_table(pd.DataFrame({"id": history.fragment_ids}), run_dir, "agglomeration", "fragment_ids.parquet")
    write_json(parse_url(join(run_dir, "agglomeration")), HISTORY_RECORD, source)


def finished_history(run_dir: str, params: SegmentParams, edges: pd.DataFrame,
                     fragments: pd.DataFrame) -> MergeHistory | None:
    """The run's merge history if one was finished for these parameters and this graph, else None."""
    if read_json(parse_url(join(run_dir, "agglomeration")), HISTORY_RECORD) != history_source(params, edges,
                                                                                                 fragments):
        return None
    return read_history(run_dir)


def read_history(run_dir: str):
    """The run's merge history: a :class:`MergeHistory`, or a hierarchical run's
    :class:`~.hierarchical.HierarchicalHistory`."""
    from .hierarchical import open_hierarchy

    hierarchy = open_hierarchy(run_dir)
    if hierarchy is not None:
        return hierarchy
    merges = read_table(join(run_dir, "agglomeration", "merge_history.parquet"))
    ids = read_table(join(run_dir, "agglomeration", "fragment_ids.parquet"))["id"].to_numpy(np.uint64)
    return MergeHistory(merges, ids)


# --- mappings -----------------------------------------------------------------------

def final_mapping(run_dir: str, history: MergeHistory, threshold: float, params: SegmentParams, *,
                  edges: pd.DataFrame | None = None, fragments: pd.DataFrame | None = None) -> pd.DataFrame:
    """Fragment -> segment at ``threshold``, with small segments absorbed (``params.min_size``)."""
    if hasattr(history, "final_mapping"):  # hierarchical: streams its tables, never the whole graph
        return history.final_mapping(threshold, params.min_size)
    mapping = history.mapping(threshold)
    if params.min_size > 0:
        from .small import absorb_small

        edges = read_edges(run_dir, GRAPH_COLUMNS) if edges is None else edges
        fragments = read_fragments(run_dir) if fragments is None else fragments
        mapping = absorb_small(mapping, edges, fragments, params.min_size)
    return mapping


def write_mapping(run_dir: str, history: MergeHistory, threshold: float,
                  params: SegmentParams = DEFAULT_PARAMS, **tables) -> str:
    """Write the fragment -> segment mapping at ``threshold``; returns its path.

    ``tables``: ``edges`` and ``fragments`` if already read (see :func:`final_mapping`).
    """
    return save_mapping(run_dir, final_mapping(run_dir, history, threshold, params, **tables), threshold)


def save_mapping(run_dir: str, mapping: pd.DataFrame, threshold: float) -> str:
    """Write ``mapping`` (fragment -> segment) as the run's mapping at ``threshold``; returns its path."""
    name = f"mapping-{threshold:.4f}.parquet"
    write_table(mapping, run_dir, "agglomeration", name)
    return join(run_dir, "agglomeration", name)


def write_block_mappings(mapping: pd.DataFrame, run_dir: str, threshold: float, id_stride: int) -> str:
    """``mapping`` split by fragment id range (``block id * id_stride + 1 ..``) into one file per block;
    returns their folder (:func:`read_block_mapping` reads the rows of some ids back)."""
    folder = join("agglomeration", f"mapping-{threshold:.4f}")
    remove_folder(run_dir, folder)
    fragment = mapping["fragment"].to_numpy(np.uint64)
    order = np.argsort(fragment, kind="stable")
    fragment, segment = fragment[order], mapping["segment"].to_numpy(np.uint64)[order]
    block = (fragment - np.uint64(1)) // np.uint64(id_stride)
    starts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]]) if block.size else np.empty(0, np.int64)
    for start, stop in zip(starts, np.r_[starts[1:], block.size]):
        write_table(pd.DataFrame({"fragment": fragment[start:stop], "segment": segment[start:stop]}), run_dir,
                    folder, f"block-{int(block[start])}.parquet")
    return join(run_dir, folder)


def read_block_mapping(folder: str, id_stride: int, fragment_ids: np.ndarray) -> pd.DataFrame:
    """The rows of a per-block mapping folder that hold ``fragment_ids`` (one file per id range touched)."""
    url = parse_url(folder)
    fs = filesystem(url)
    ids = np.asarray(fragment_ids, dtype=np.uint64)
    ids = ids[ids != 0]
    tables = []
    for block in np.unique((ids - np.uint64(1)) // np.uint64(id_stride)):
        path = url.join(f"block-{int(block)}.parquet")
        if fs.exists(path):
            with fs.open(path, "rb") as f:
                tables.append(pd.read_parquet(f))
    if not tables:
        return pd.DataFrame({"fragment": np.empty(0, np.uint64), "segment": np.empty(0, np.uint64)})
    return pd.concat(tables, ignore_index=True)


# --- files --------------------------------------------------------------------------

def read_tables(run_dir: str, folder: str, pattern: str, columns=None) -> list[pd.DataFrame]:
    """Every table ``run_dir/folder/pattern`` in name order; ``columns``: a subset."""
    url = parse_url(run_dir)
    fs = filesystem(url)
    paths = sorted(fs.glob(url.join(folder, pattern)))
    tables = []
    for path in paths:
        with fs.open(path, "rb") as f:
            tables.append(pd.read_parquet(f, columns=None if columns is None else list(columns)))
    return tables


def write_table(table: pd.DataFrame, run_dir: str, folder: str, name: str) -> None:
    url = parse_url(run_dir)
    with filesystem(url).open(url.join(folder, name), "wb") as f:
        table.to_parquet(f, index=False)


def read_table(path: str, filters=None) -> pd.DataFrame:
    """One Parquet table by URL; ``filters`` as :func:`pandas.read_parquet`'s."""
    url = parse_url(path)
    with filesystem(url).open(url.path, "rb") as f:
        return pd.read_parquet(f, filters=filters)


def remove_folder(run_dir: str, folder: str) -> None:
    url = parse_url(run_dir)
    fs = filesystem(url)
    if fs.exists(url.join(folder)):
        fs.rm(url.join(folder), recursive=True)


def join(run_dir: str, *parts: str) -> str:
    return "/".join([str(run_dir).rstrip("/"), *parts])
