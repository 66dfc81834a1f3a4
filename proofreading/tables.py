"""Read the region-graph and agglomeration tables of a run directory by their on-disk schema.

- ``graph/edges*.parquet``: ``u``, ``v`` (uint64 fragment ids), ``contact_area`` (int64
  voxels), ``affinity_mean`` (float32, 0..1, high = same neuron), optional quantiles;
- ``graph/fragments*.parquet``: ``id`` (uint64), ``size`` (int64 voxels), a centroid as
  ``z``, ``y``, ``x`` (voxels) or ``z_nm``, ``y_nm``, ``x_nm`` (optional: only merges of
  segments that do not touch use it);
- ``agglomeration/merge_history.parquet``: ``u``, ``v`` (uint64), ``score`` (float64,
  ascending = merge order); ``agglomeration/fragment_ids.parquet`` (``id``), if present,
  adds fragments that no other table names.

Several files matching one pattern are concatenated (one file per block is normal).
"""

from __future__ import annotations

import glob
import os

import numpy as np

EDGES = ("graph", "edges*.parquet")
FRAGMENTS = ("graph", "fragments*.parquet")
MERGE_HISTORY = ("agglomeration", "merge_history.parquet")
FRAGMENT_IDS = ("agglomeration", "fragment_ids.parquet")

CENTROID_COLUMNS = (("z", "y", "x"), ("z_nm", "y_nm", "x_nm"))


def table_paths(run_dir: str | os.PathLike, where: tuple[str, str]) -> list[str]:
    return sorted(glob.glob(os.path.join(os.fspath(run_dir), *where)))


def has_table(run_dir, where: tuple[str, str]) -> bool:
    return bool(table_paths(run_dir, where))


def read_table(run_dir, where: tuple[str, str], columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Concatenate the named columns of every file matching ``where``; refuse missing columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = table_paths(run_dir, where)
    if not paths:
        raise FileNotFoundError(f"no {os.path.join(*where)} in {os.fspath(run_dir)}; the segmentation stage writes it "
                                "(or start proofreading from a mapping of your own)")
    tables = []
    for path in paths:
        names = pq.read_schema(path).names
        missing = [c for c in columns if c not in names]
        if missing:
            raise ValueError(f"{path} lacks column(s) {missing}; expected {list(columns)} (found {names})")
        tables.append(pq.read_table(path, columns=list(columns)))
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    return {c: table.column(c).to_numpy() for c in columns}


def read_edges(run_dir) -> dict[str, np.ndarray]:
    """Region-graph edges as arrays: u, v (uint64, u < v, no background), affinity_mean (float64)."""
    cols = read_table(run_dir, EDGES, ("u", "v", "affinity_mean"))
    u, v = cols["u"].astype(np.uint64), cols["v"].astype(np.uint64)
    u, v = np.minimum(u, v), np.maximum(u, v)
    keep = (u != 0) & (u != v)
    aff = cols["affinity_mean"].astype(np.float64)[keep]
    if len(aff) and (np.isnan(aff).any() or aff.min() < 0 or aff.max() > 1):
        raise ValueError(f"affinity_mean in {os.path.join(os.fspath(run_dir), *EDGES)} must lie in 0..1 "
                         f"(found {np.nanmin(aff)}..{np.nanmax(aff)}, NaN: {bool(np.isnan(aff).any())})")
    return {"u": u[keep], "v": v[keep], "affinity_mean": aff}


def read_fragment_ids(run_dir) -> np.ndarray:
    """Sorted unique fragment ids named anywhere in the run's tables (background 0 dropped)."""
    found = []
    for where in (FRAGMENTS, FRAGMENT_IDS):
        if has_table(run_dir, where):
            found.append(read_table(run_dir, where, ("id",))["id"].astype(np.uint64))
    for where in (EDGES, MERGE_HISTORY):
        if has_table(run_dir, where):
            cols = read_table(run_dir, where, ("u", "v"))
            found += [cols["u"].astype(np.uint64), cols["v"].astype(np.uint64)]
    if not found:
        raise FileNotFoundError(f"no fragment tables ({os.path.join(*FRAGMENTS)}, {os.path.join(*EDGES)}, "
                                f"{os.path.join(*MERGE_HISTORY)}) in {os.fspath(run_dir)}")
    ids = np.unique(np.concatenate(found))
    return ids[ids != 0]


def read_centroids(run_dir, fragment_ids: np.ndarray) -> np.ndarray | None:
    """(N, 3) zyx centroids aligned with sorted ``fragment_ids``; NaN where unknown; None without any."""
    import pyarrow.parquet as pq

    paths = table_paths(run_dir, FRAGMENTS)
    if not paths:
        return None
    names = set(pq.read_schema(paths[0]).names)
    zyx = next((c for c in CENTROID_COLUMNS if set(c) <= names), None)
    if zyx is None:
        return None
    cols = read_table(run_dir, FRAGMENTS, ("id", *zyx))
    ids = cols["id"].astype(np.uint64)
    out = np.full((len(fragment_ids), 3), np.nan)
    pos = np.searchsorted(fragment_ids, ids)
    ok = (pos < len(fragment_ids)) & (fragment_ids[np.minimum(pos, len(fragment_ids) - 1)] == ids)
    out[pos[ok]] = np.stack([cols[c][ok] for c in zyx], axis=1)
    return out
