"""Region graph: for every pair of touching fragments, their contact and its affinities.

A contact is a pair of face-adjacent voxels with different, non-zero fragment ids; its
affinity is the affinity of that voxel pair (stored at the voxel on the + side). Per
edge ``(u, v)``, ``u < v``, the table holds:

- ``contact_area``: number of contacts (voxel faces);
- ``affinity_sum``: sum of the contacts' affinities in uint8 units (exact, so per-block
  sums add up to the single-block value); ``affinity_mean`` = sum / area / 255;
- ``affinity_min``, ``affinity_q25``, ``affinity_median``, ``affinity_q75``,
  ``affinity_max``: quantiles of the contacts' affinities (linear interpolation);
- ``linked``: the two fragments are pieces of one watershed basin cut by a block face
  (see :mod:`connecto.segment.fragments`); agglomeration joins them before anything else.

Blockwise, a block owns the contacts whose + side voxel lies in its write Roi; every
contact of an edge then lies in one block (fragments are cut at block faces), so each
edge is owned by exactly one block and its quantiles are exact.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .affinities import AFFINITY_MAX, as_uint8_affinities
from .fragments import link_mask

EDGE_COLUMNS = ("u", "v", "contact_area", "affinity_sum", "affinity_mean", "affinity_min", "affinity_q25",
                "affinity_median", "affinity_q75", "affinity_max", "linked")
QUANTILES = {"affinity_min": 0.0, "affinity_q25": 0.25, "affinity_median": 0.5, "affinity_q75": 0.75,
             "affinity_max": 1.0}


def region_graph(fragments: np.ndarray, affs: np.ndarray, *, owned=None, links: np.ndarray | None = None,
                 aff_low: float = 0.0001, aff_high: float = 0.9999) -> pd.DataFrame:
    """The edge table of ``fragments`` (z, y, x) with affinities ``affs`` (3, z, y, x).

    Parameters
    ----------
    owned : slices of the voxels whose contacts at -1 are counted (default: all). A block
        passes its write slices inside an array that reaches one voxel before them.
    links : the link mask of the fragments (:func:`~connecto.segment.fragments.link_mask`);
        computed from ``affs`` with ``aff_low``/``aff_high`` when not given.

    >>> labels = np.array([[[1, 1, 2]]], dtype=np.uint64)
    >>> affs = np.zeros((3, 1, 1, 3), np.uint8); affs[2] = 51
    >>> region_graph(labels, affs)[["u", "v", "contact_area", "affinity_mean"]].to_dict("records")
    [{'u': 1, 'v': 2, 'contact_area': 1, 'affinity_mean': 0.2}]
    """
    affs = as_uint8_affinities(affs)
    if affs.shape[1:] != fragments.shape:
        raise ValueError(f"affinities (shape {affs.shape}) must cover the fragments (shape {fragments.shape}) "
                         "with channels first")
    owned = tuple(owned) if owned is not None else tuple(slice(0, s) for s in fragments.shape)
    if links is None:
        links = link_mask(affs, aff_low, aff_high)
    us, vs, values, linked = [], [], [], []
    for c in range(3):
        here = list(owned)
        start = max(here[c].start or 0, 1)
        here[c] = slice(start, here[c].stop)
        there = list(here)
        there[c] = slice(start - 1, here[c].stop - 1)
        a, b = fragments[tuple(here)], fragments[tuple(there)]
        contact = a != b
        a, b = a[contact], b[contact]
        value, link = affs[c][tuple(here)][contact], links[c][tuple(here)][contact]
        inside = (a != 0) & (b != 0)  # background is rare: filter after the gather
        if not inside.all():
            a, b, value, link = a[inside], b[inside], value[inside], link[inside]
        if a.size == 0:
            continue
        us.append(np.minimum(a, b))
        vs.append(np.maximum(a, b))
        values.append(value)
        linked.append(link)
    if not us:
        return empty_edge_table()
    return aggregate_contacts(np.concatenate(us), np.concatenate(vs), np.concatenate(values),
                              np.concatenate(linked))


def aggregate_contacts(u: np.ndarray, v: np.ndarray, values: np.ndarray, linked: np.ndarray) -> pd.DataFrame:
    """Edge statistics from contacts (``u < v`` ids, uint8 affinities, link flags)."""
    import fastremap

    pairs = np.concatenate([u, v]).astype(np.uint64)
    compact, mapping = fastremap.renumber(pairs, start=0, preserve_zero=False)
    ids = np.empty(len(mapping), dtype=np.uint64)
    ids[np.fromiter(mapping.values(), np.int64, len(mapping))] = np.fromiter(mapping.keys(), np.uint64, len(mapping))
    compact = compact.astype(np.int64)
    n = np.int64(len(mapping))
    edge_key = compact[: u.size] * n + compact[u.size:]
    packed = np.sort(edge_key * 256 + values.astype(np.int64))
    keys, sorted_values = packed >> 8, (packed & 255)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    counts = np.diff(np.r_[starts, keys.size])
    edge_keys = keys[starts]
    sums = np.add.reduceat(sorted_values, starts)
    columns = {
        "u": ids[edge_keys // n], "v": ids[edge_keys % n], "contact_area": counts.astype(np.int64),
        "affinity_sum": sums.astype(np.int64), "affinity_mean": sums / counts / AFFINITY_MAX,
    }
    for name, q in QUANTILES.items():
        position = q * (counts - 1)
        lower = np.floor(position).astype(np.int64)
        upper = np.minimum(lower + 1, counts - 1)
        low_v, high_v = sorted_values[starts + lower], sorted_values[starts + upper]
        columns[name] = ((low_v + (high_v - low_v) * (position - lower)) / AFFINITY_MAX).astype(np.float32)
    columns["linked"] = np.isin(edge_keys, edge_key[linked]) if linked.any() else np.zeros(edge_keys.size, bool)
    table = pd.DataFrame(columns)[list(EDGE_COLUMNS)]
    return table.sort_values(["u", "v"], ignore_index=True)


def empty_edge_table() -> pd.DataFrame:
    dtypes = {"u": np.uint64, "v": np.uint64, "contact_area": np.int64, "affinity_sum": np.int64,
              "affinity_mean": np.float64, "linked": bool}
    return pd.DataFrame({name: np.empty(0, dtypes.get(name, np.float32)) for name in EDGE_COLUMNS})


def merge_edge_tables(tables) -> pd.DataFrame:
    """Concatenate per-block edge tables (each edge is owned by one block), sorted by (u, v)."""
    tables = [t for t in tables if len(t)]
    if not tables:
        return empty_edge_table()
    table = pd.concat(tables, ignore_index=True)
    return table.sort_values(["u", "v"], kind="stable", ignore_index=True)
