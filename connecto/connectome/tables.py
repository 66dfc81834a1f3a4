"""The two tables a connectome is made of, their schema, and pure functions over them.

Neurons: one row per segment (``segment_id`` uint64, 0 is never a neuron). Synapses: one
row per synapse (or per aggregated connection, with ``weight`` > 1, for connectomes that
are published as weighted edge lists). Coordinates are nm, zyx, with explicit column
names; an unknown number is NaN (floats) or 0 (integer counts and sizes).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

NEURON_COLUMNS: dict[str, str] = {
    "segment_id": "uint64",
    "size_voxels": "int64",
    "size_um3": "float64",
    "z_nm": "float64",
    "y_nm": "float64",
    "x_nm": "float64",
    "bbox_min_z_nm": "float64",
    "bbox_min_y_nm": "float64",
    "bbox_min_x_nm": "float64",
    "bbox_max_z_nm": "float64",
    "bbox_max_y_nm": "float64",
    "bbox_max_x_nm": "float64",
    "n_pre": "int64",
    "n_post": "int64",
}
"""Standard neuron columns and dtypes; other columns (``name``, ``type``, ``sign``,
``neurotransmitter``, ...) are kept as given. The bbox is [min, max) in nm."""

SYNAPSE_COLUMNS: dict[str, str] = {
    "synapse_id": "uint64",
    "pre_segment": "uint64",
    "post_segment": "uint64",
    "pre_z_nm": "float64",
    "pre_y_nm": "float64",
    "pre_x_nm": "float64",
    "post_z_nm": "float64",
    "post_y_nm": "float64",
    "post_x_nm": "float64",
    "score": "float32",
    "size": "int64",
    "weight": "int64",
    "kind": "category",
}
"""Standard synapse columns; ``cleft_z_nm``/``cleft_y_nm``/``cleft_x_nm`` and
``pre_fragment``/``post_fragment`` are optional and kept when present."""

CLEFT_COLUMNS = ("cleft_z_nm", "cleft_y_nm", "cleft_x_nm")
EDGE_COLUMNS = ("pre", "post", "kind", "weight")
KINDS = ("chemical", "electrical")
"""Known synapse kinds; other strings are allowed."""

_DEFAULTS = {"float64": np.nan, "float32": np.nan, "int64": 0}


def _fill(table: pd.DataFrame, columns: dict[str, str], skip: tuple[str, ...]) -> pd.DataFrame:
    for name, dtype in columns.items():
        if name in skip:
            continue
        if name not in table:
            table[name] = _DEFAULTS.get(dtype, 0)
        table[name] = _as_dtype(table[name], dtype, name)
    return table


def _as_dtype(column: pd.Series, dtype: str, name: str) -> pd.Series:
    if dtype == "category":
        column = column if isinstance(column.dtype, pd.CategoricalDtype) else column.astype("category")
        categories = pd.Index([str(c) for c in column.cat.categories], dtype=str)
        return pd.Series(pd.Categorical.from_codes(column.cat.codes, categories=categories), index=column.index)
    if str(column.dtype) == dtype:
        return column
    if dtype.startswith(("int", "uint")):
        values = pd.to_numeric(column, errors="coerce")
        if values.isna().any():
            raise ValueError(f"column {name!r} must hold integers, found missing or non-numeric values "
                             f"(first at row {int(np.flatnonzero(values.isna().to_numpy())[0])})")
        if (values < 0).any() and dtype.startswith("uint"):
            raise ValueError(f"column {name!r} must not be negative (segment ids are uint64, 0 = background)")
    return column.astype(dtype)


def normalize_synapses(synapses: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``synapses`` with every standard column present and typed.

    Required: ``pre_segment`` and ``post_segment``; missing coordinates become NaN,
    ``weight`` 1, ``kind`` "chemical", ``synapse_id`` 1..n.
    """
    missing = [c for c in ("pre_segment", "post_segment") if c not in synapses]
    if missing:
        raise ValueError(f"synapse table lacks the column(s) {missing}; it has {list(synapses.columns)} "
                         "(map fragment columns with mapping=(fragment_ids, segment_ids) first)")
    table = synapses.reset_index(drop=True)  # a new frame (pandas copies or copy-on-writes)
    if "synapse_id" not in table:
        table["synapse_id"] = np.arange(1, len(table) + 1, dtype=np.uint64)
    if "weight" not in table:
        table["weight"] = 1
    if "kind" not in table:
        table["kind"] = pd.Categorical.from_codes(np.zeros(len(table), np.int8), categories=["chemical"])
    table = _fill(table, SYNAPSE_COLUMNS, skip=())
    if (table["weight"] < 1).any():
        raise ValueError("synapse column 'weight' must be >= 1 (the number of synapses a row stands for)")
    if table["synapse_id"].duplicated().any():
        dup = table.loc[table["synapse_id"].duplicated(), "synapse_id"].iloc[0]
        raise ValueError(f"synapse_id {dup} appears more than once; synapse ids must be unique")
    for name in CLEFT_COLUMNS:
        if name in table:
            table[name] = table[name].astype("float64")
    standard = list(SYNAPSE_COLUMNS) + [c for c in CLEFT_COLUMNS if c in table]
    return table[standard + [c for c in table.columns if c not in standard]]


def normalize_neurons(neurons: pd.DataFrame | None, synapses: pd.DataFrame,
                      voxel_size_nm=None) -> pd.DataFrame:
    """A copy of ``neurons`` with every standard column present, ``n_pre``/``n_post``
    counted from ``synapses`` (weights summed), and a row added for every segment that
    a synapse names but the table lacks (segment 0, background, is never a neuron)."""
    if neurons is None:
        neurons = pd.DataFrame({"segment_id": np.zeros(0, np.uint64)})
    if "segment_id" not in neurons:
        raise ValueError(f"neuron table lacks the column 'segment_id'; it has {list(neurons.columns)}")
    table = neurons.reset_index(drop=True)  # a new frame (pandas copies or copy-on-writes)
    table["segment_id"] = _as_dtype(table["segment_id"], "uint64", "segment_id")
    if (table["segment_id"] == 0).any():
        raise ValueError("neuron table holds segment_id 0; 0 is background, never a neuron")
    if table["segment_id"].duplicated().any():
        dup = table.loc[table["segment_id"].duplicated(), "segment_id"].iloc[0]
        raise ValueError(f"segment_id {dup} appears more than once in the neuron table")
    named = np.union1d(synapses["pre_segment"].to_numpy(), synapses["post_segment"].to_numpy())
    named = named[named != 0]
    extra = np.setdiff1d(named, table["segment_id"].to_numpy())
    if len(extra):
        logger.info("adding %d segments named by synapses but absent from the neuron table", len(extra))
        table = pd.concat([table, pd.DataFrame({"segment_id": extra})], ignore_index=True)
    table = _fill(table, NEURON_COLUMNS, skip=("n_pre", "n_post"))
    if voxel_size_nm is not None:
        known = table["size_um3"].isna() & (table["size_voxels"] > 0)
        table.loc[known, "size_um3"] = table.loc[known, "size_voxels"] * (float(np.prod(tuple(voxel_size_nm))) / 1e9)
    ids = table["segment_id"].to_numpy()
    table["n_pre"] = count_per_segment(ids, synapses["pre_segment"].to_numpy(), synapses["weight"].to_numpy())
    table["n_post"] = count_per_segment(ids, synapses["post_segment"].to_numpy(), synapses["weight"].to_numpy())
    standard = list(NEURON_COLUMNS)
    return table[standard + [c for c in table.columns if c not in standard]]


def count_per_segment(ids: np.ndarray, segments: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sum of ``weights`` per segment in ``ids`` (ids absent from ``segments`` get 0)."""
    order = np.argsort(ids)
    pos = np.searchsorted(ids[order], segments)
    pos_clipped = np.minimum(pos, len(ids) - 1) if len(ids) else pos
    hit = (pos < len(ids)) & (ids[order][pos_clipped] == segments) if len(ids) else np.zeros(len(segments), bool)
    sums = np.bincount(pos[hit], weights=weights[hit], minlength=len(ids))
    out = np.zeros(len(ids), np.int64)
    out[order] = sums.astype(np.int64)
    return out


def map_fragments(fragments, fragment_ids, segment_ids, *, missing: str = "identity") -> np.ndarray:
    """Map fragment ids to segment ids through a mapping given as two arrays.

    ``missing``: what an id absent from ``fragment_ids`` becomes: "identity" (its own id:
    a fragment never merged is its own segment), "zero" (background) or "error".
    Fragment 0 always maps to 0.

    >>> map_fragments([5, 6, 0, 9], [5, 6], [1, 1]).tolist()
    [1, 1, 0, 9]
    """
    fragments = np.asarray(fragments, dtype=np.uint64)
    fragment_ids = np.asarray(fragment_ids, dtype=np.uint64)
    segment_ids = np.asarray(segment_ids, dtype=np.uint64)
    if fragment_ids.shape != segment_ids.shape:
        raise ValueError(f"mapping arrays differ in shape: fragment_ids {fragment_ids.shape}, "
                         f"segment_ids {segment_ids.shape}")
    if missing not in ("identity", "zero", "error"):
        raise ValueError(f"missing={missing!r} is not one of 'identity', 'zero', 'error'")
    order = np.argsort(fragment_ids, kind="stable")
    sorted_ids = fragment_ids[order]
    if len(sorted_ids) > 1 and (np.diff(sorted_ids.astype(np.int64)) == 0).any():
        raise ValueError("mapping lists a fragment id more than once; each fragment maps to one segment")
    pos = np.searchsorted(sorted_ids, fragments)
    clipped = np.minimum(pos, max(len(sorted_ids) - 1, 0))
    found = (pos < len(sorted_ids)) & (sorted_ids[clipped] == fragments) if len(sorted_ids) else (
        np.zeros(fragments.shape, bool))
    out = fragments.copy() if missing == "identity" else np.zeros_like(fragments)
    out[found] = segment_ids[order][clipped[found]]
    unknown = ~found & (fragments != 0)
    if missing == "error" and unknown.any():
        raise KeyError(f"fragment {int(fragments[unknown][0])} is not in the mapping "
                       f"({int(unknown.sum())} unmapped fragments); use missing='identity' to keep them")
    out[fragments == 0] = 0
    return out


def map_synapses(synapses: pd.DataFrame, fragment_ids, segment_ids, *, missing: str = "identity") -> pd.DataFrame:
    """``synapses`` with ``pre_segment``/``post_segment`` mapped from ``pre_fragment``/``post_fragment``."""
    need = [c for c in ("pre_fragment", "post_fragment") if c not in synapses]
    if need:
        raise ValueError(f"mapping synapses needs the column(s) {need}; the table has {list(synapses.columns)}")
    out = synapses.copy()
    for side in ("pre", "post"):
        out[f"{side}_segment"] = map_fragments(out[f"{side}_fragment"].to_numpy(), fragment_ids, segment_ids,
                                               missing=missing)
    return out


def edge_table(synapses: pd.DataFrame) -> pd.DataFrame:
    """The weighted directed edge list (pre, post, kind, weight) between non-zero segments."""
    keep = (synapses["pre_segment"] != 0) & (synapses["post_segment"] != 0)
    table = synapses.loc[keep, ["pre_segment", "post_segment", "kind", "weight"]]
    edges = (table.groupby(["pre_segment", "post_segment", "kind"], observed=True, sort=True)["weight"].sum()
             .reset_index().rename(columns={"pre_segment": "pre", "post_segment": "post"}))
    edges["weight"] = edges["weight"].astype(np.int64)
    return edges[list(EDGE_COLUMNS)]


def synapse_locations(synapses: pd.DataFrame, point: str = "location") -> np.ndarray:
    """(n, 3) zyx nm: the ``pre`` or ``post`` point, or ``location``: cleft if known, else
    post, else pre (NaN where none is known)."""
    def block(prefix):
        return synapses[[f"{prefix}_z_nm", f"{prefix}_y_nm", f"{prefix}_x_nm"]].to_numpy(np.float64)

    if point in ("pre", "post"):
        return block(point)
    has_cleft = all(c in synapses for c in CLEFT_COLUMNS)
    if point == "cleft":
        if not has_cleft:
            raise ValueError("the synapse table has no cleft_z_nm/cleft_y_nm/cleft_x_nm columns")
        return block("cleft")
    if point != "location":
        raise ValueError(f"point={point!r} is not one of 'location', 'pre', 'post', 'cleft'")
    out = np.array(block("cleft") if has_cleft else block("post"), copy=True)
    for prefix in (("post", "pre") if has_cleft else ("pre",)):
        unknown = np.isnan(out).any(axis=1)
        if not unknown.any():
            break
        out[unknown] = block(prefix)[unknown]
    return out


SKELETON_COLUMNS: dict[str, str] = {
    "segment_id": "uint64",
    "node_id": "int64",
    "parent_id": "int64",
    "z_nm": "float64",
    "y_nm": "float64",
    "x_nm": "float64",
    "radius_nm": "float64",
}
"""Skeleton nodes, SWC-like: ``parent_id`` -1 marks a root; node ids are unique per segment."""


def normalize_skeletons(skeletons: pd.DataFrame) -> pd.DataFrame:
    """A typed copy of a skeleton node table (``radius_nm`` NaN when unknown)."""
    missing = [c for c in SKELETON_COLUMNS if c not in skeletons and c != "radius_nm"]
    if missing:
        raise ValueError(f"skeleton table lacks the column(s) {missing}; it has {list(skeletons.columns)}")
    table = skeletons.reset_index(drop=True)  # a new frame (pandas copies or copy-on-writes)
    if "radius_nm" not in table:
        table["radius_nm"] = np.nan
    for name, dtype in SKELETON_COLUMNS.items():
        table[name] = table[name].astype(dtype)
    if table.duplicated(["segment_id", "node_id"]).any():
        raise ValueError("skeleton table repeats a (segment_id, node_id) pair; node ids must be unique per segment")
    return table[list(SKELETON_COLUMNS) + [c for c in table.columns if c not in SKELETON_COLUMNS]]
