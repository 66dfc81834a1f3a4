"""CREMI-format HDF5: read (and, for tests and export, write) volumes and synaptic partners.

The layout (https://cremi.org/data/) is::

    volumes/raw                         uint8, attrs resolution (zyx nm), offset (zyx nm)
    volumes/labels/neuron_ids           uint64, same attrs
    volumes/labels/clefts               uint64, same attrs; 0xffff...ffff (and -2, -3) = no cleft
    annotations/ids                     uint64, one per site
    annotations/locations               float, (n, 3) zyx nm, relative to the annotations'
                                        ``offset`` attribute (or, without one, the volumes' offset)
    annotations/types                   b"presynaptic_site" / b"postsynaptic_site"
    annotations/presynaptic_site/partners   (m, 2) pairs (pre site id, post site id)

Everything returned here is zyx and absolute nm (location + offset). Partner rows carry
``pre_annotation``/``post_annotation`` (the site ids of the file) and, when the file has
neuron labels, ``pre_id``/``post_id``: the neuron ids under the pre and post sites, the
columns :mod:`.evaluate` compares (as in the synthetic truth tables).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from chunks import Coordinate

AXES = ("z", "y", "x")
PRE, POST = b"presynaptic_site", b"postsynaptic_site"
VOLUMES = {"raw": "volumes/raw", "labels": "volumes/labels/neuron_ids", "clefts": "volumes/labels/clefts"}
NO_CLEFT_MIN = np.uint64(2**64 - 3)  # CREMI marks "no cleft" with the top uint64 values


class CremiFormatError(ValueError):
    """A file that does not follow the CREMI layout."""


@dataclass(frozen=True)
class CremiVolume:
    """What a CREMI file holds; arrays the file lacks are None, ``partners`` may be empty."""

    raw: np.ndarray | None
    labels: np.ndarray | None
    clefts: np.ndarray | None
    voxel_size_nm: Coordinate
    offset_nm: tuple[float, float, float]
    partners: pd.DataFrame = field(repr=False)


def partner_columns() -> list[str]:
    return [f"{side}_{a}_nm" for side in ("pre", "post") for a in AXES]


def empty_partners() -> pd.DataFrame:
    return pd.DataFrame({c: np.zeros(0, np.float64) for c in partner_columns()})


def read_cremi(path: str | os.PathLike, *, raw: bool = True) -> CremiVolume:
    """Read a CREMI file: arrays (zyx), voxel size, offset (nm) and the partner table.

    ``raw=False`` skips the image (evaluation needs only labels and partners).
    Clefts' "no cleft" values (the top three uint64 values) become 0.
    """
    import h5py

    with h5py.File(path, "r") as f:
        found = {name: f[key] for name, key in VOLUMES.items() if key in f and (raw or name != "raw")}
        if not found and "annotations" not in f:
            raise CremiFormatError(f"{path} holds none of {', '.join(VOLUMES.values())} or annotations/: "
                                   "not a CREMI file")
        voxel_size, offset = _geometry(path, found)
        arrays = {name: ds[...] for name, ds in found.items()}
        annotation_offset = np.asarray(f["annotations"].attrs.get("offset", offset), np.float64) \
            if "annotations" in f else np.asarray(offset, np.float64)
        partners = _partners(f, path, annotation_offset)
    clefts = arrays.get("clefts")
    if clefts is not None:
        clefts = np.where(clefts.astype(np.uint64) >= NO_CLEFT_MIN, np.uint64(0), clefts).astype(np.uint64)
    labels = arrays.get("labels")
    if labels is not None:
        labels = labels.astype(np.uint64)
        partners = _with_neuron_ids(partners, labels, voxel_size, offset)
    return CremiVolume(arrays.get("raw"), labels, clefts, voxel_size, offset, partners)


def _geometry(path, datasets: dict) -> tuple[Coordinate, tuple[float, float, float]]:
    voxel_size, offset = None, None
    for ds in datasets.values():
        res = tuple(float(v) for v in ds.attrs.get("resolution", (1.0, 1.0, 1.0)))
        off = tuple(float(v) for v in ds.attrs.get("offset", (0.0, 0.0, 0.0)))
        if len(res) != 3 or len(off) != 3:
            raise CremiFormatError(f"{path}:{ds.name} has resolution {res} and offset {off}; expected 3 values "
                                   "each (z, y, x nm)")
        if voxel_size is not None and (res, off) != (voxel_size, offset):
            raise CremiFormatError(f"{path}:{ds.name} has resolution {res}, offset {off} but the other volumes "
                                   f"have {voxel_size}, {offset}; all volumes must share one grid")
        voxel_size, offset = res, off
    voxel_size = voxel_size or (1.0, 1.0, 1.0)
    if any(v != round(v) or v <= 0 for v in voxel_size):
        raise CremiFormatError(f"{path}: resolution {voxel_size} must be positive whole nm")
    return Coordinate(round(v) for v in voxel_size), tuple(offset or (0.0, 0.0, 0.0))


def _partners(f, path, annotation_offset: np.ndarray) -> pd.DataFrame:
    key = "annotations/presynaptic_site/partners"
    if key not in f:
        return empty_partners()
    ids = f["annotations/ids"][...].astype(np.uint64)
    locations = f["annotations/locations"][...].astype(np.float64).reshape(-1, 3) + annotation_offset
    pairs = f[key][...].astype(np.uint64).reshape(-1, 2)
    if len(ids) != len(locations):
        raise CremiFormatError(f"{path}: annotations/ids has {len(ids)} entries but annotations/locations "
                               f"{len(locations)}; expected one location per id")
    order = np.argsort(ids)
    sorted_ids = ids[order]
    index = np.searchsorted(sorted_ids, pairs)
    index = np.minimum(index, len(ids) - 1) if len(ids) else index
    unknown = ~(sorted_ids[index] == pairs) if len(ids) else np.ones(pairs.shape, bool)
    if unknown.any():
        raise CremiFormatError(f"{path}: partner site id {int(pairs[unknown][0])} is not among annotations/ids")
    pre, post = locations[order[index[:, 0]]], locations[order[index[:, 1]]]
    table = {f"pre_{a}_nm": pre[:, i] for i, a in enumerate(AXES)}
    table.update({f"post_{a}_nm": post[:, i] for i, a in enumerate(AXES)})
    table.update({"pre_annotation": pairs[:, 0], "post_annotation": pairs[:, 1]})
    return pd.DataFrame(table)


def _with_neuron_ids(partners: pd.DataFrame, labels: np.ndarray, voxel_size, offset) -> pd.DataFrame:
    if partners.empty:
        return partners.assign(pre_id=np.zeros(0, np.uint64), post_id=np.zeros(0, np.uint64))
    out = partners.copy()
    for side in ("pre", "post"):
        out[f"{side}_id"] = labels_at(labels, out[[f"{side}_{a}_nm" for a in AXES]].to_numpy(), voxel_size, offset)
    return out


def labels_at(labels: np.ndarray, points_nm: np.ndarray, voxel_size_nm, offset_nm=(0, 0, 0)) -> np.ndarray:
    """The label under each zyx nm point (0 outside the array)."""
    index = np.rint((np.asarray(points_nm, np.float64).reshape(-1, 3) - np.asarray(offset_nm, np.float64))
                    / np.asarray(voxel_size_nm, np.float64)).astype(np.int64)
    inside = np.all((index >= 0) & (index < np.asarray(labels.shape)), axis=1)
    out = np.zeros(len(index), np.uint64)
    out[inside] = labels[tuple(index[inside].T)]
    return out


def write_cremi(path: str | os.PathLike, *, raw=None, labels=None, clefts=None, voxel_size_nm=(40, 4, 4),
                offset_nm=(0.0, 0.0, 0.0), partners: pd.DataFrame | None = None) -> None:
    """Write a CREMI-layout file (arrays zyx; partner table in absolute nm, as :func:`read_cremi` returns).

    Pre sites at the same location share one annotation id (polyadic synapses); clefts'
    0 is written as CREMI's "no cleft" value 0xffffffffffffffff.
    """
    import h5py

    with h5py.File(path, "w") as f:
        for name, array in (("raw", raw), ("labels", labels), ("clefts", clefts)):
            if array is None:
                continue
            array = np.asarray(array)
            if name == "clefts":
                array = np.where(array == 0, np.uint64(2**64 - 1), array.astype(np.uint64))
            ds = f.create_dataset(VOLUMES[name], data=array, compression="gzip")
            ds.attrs["resolution"] = np.asarray(voxel_size_nm, np.float64)
            ds.attrs["offset"] = np.asarray(offset_nm, np.float64)
        if partners is None:
            return
        group = f.create_group("annotations")
        group.attrs["offset"] = np.asarray(offset_nm, np.float64)
        pre = partners[[f"pre_{a}_nm" for a in AXES]].to_numpy(np.float64).reshape(-1, 3)
        post = partners[[f"post_{a}_nm" for a in AXES]].to_numpy(np.float64).reshape(-1, 3)
        unique_pre, pre_index = np.unique(pre, axis=0, return_inverse=True)
        pre_ids = np.arange(1, len(unique_pre) + 1, dtype=np.uint64)
        post_ids = np.arange(len(unique_pre) + 1, len(unique_pre) + len(post) + 1, dtype=np.uint64)
        group["ids"] = np.concatenate([pre_ids, post_ids])
        group["locations"] = np.concatenate([unique_pre, post]) - np.asarray(offset_nm, np.float64)
        group["types"] = np.array([PRE] * len(pre_ids) + [POST] * len(post_ids), dtype="S17")
        group["presynaptic_site/partners"] = np.stack([pre_ids[pre_index.reshape(-1)], post_ids], axis=1) \
            if len(post) else np.zeros((0, 2), np.uint64)
