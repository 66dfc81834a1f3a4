"""Neuroglancer precomputed storage for Volumes, through cloud-volume.

cloud-volume indexes x, y, z(, c); this module is the one place that converts to and
from connecto's zyx (c, z, y, x) arrays. connecto's own metadata lives in
``connecto.json`` beside the layer's ``info``.
"""

from __future__ import annotations

import os

import numpy as np

from .coordinate import Coordinate
from .errors import CorruptChunkError, first_unreadable_chunk
from .fs import filesystem, list_files, read_json, write_json
from .urls import StorageUrl
from .volume_meta import VolumeMeta

ATTRS_FILE = "connecto.json"
COMPRESSION_SUFFIXES = (".gz", ".br", ".zstd", ".zst")


def exists(url: StorageUrl) -> bool:
    return filesystem(url).exists(url.join("info"))


def remove(url: StorageUrl) -> None:
    fs = filesystem(url)
    if fs.exists(url.path):
        fs.rm(url.path, recursive=True)


def cloudvolume_path(url: StorageUrl) -> str:
    """The path as cloud-volume spells it.

    cloud-volume has no ``s3://http://host/`` form (cloud-files has), so an S3 endpoint is
    reached through a cloud-files alias named after the endpoint, registered in this process.
    """
    if url.protocol == "file":
        return "file://" + url.path
    if url.endpoint:
        import hashlib

        import cloudfiles.paths

        alias = "s3ep" + hashlib.sha1(url.endpoint.encode()).hexdigest()[:10]
        if alias not in cloudfiles.paths.ALIASES:
            cloudfiles.paths.add_alias(alias, f"s3://{url.endpoint}/")
        return f"{alias}://{url.path.split('://', 1)[1]}"
    return url.path


def _open_cloudvolume(url: StorageUrl, info=None):
    from cloudvolume import CloudVolume

    return CloudVolume(
        cloudvolume_path(url),
        mip=0,
        info=info,
        bounded=True,
        fill_missing=True,
        non_aligned_writes=False,
        progress=False,
        parallel=1,
        cache=False,
        autocrop=False,
    )


def _whole_nm(url: StorageUrl, resolution) -> Coordinate:
    """The layer's voxel size (zyx); a fractional one is refused, never rounded to another size."""
    values = [float(r) for r in resolution]
    if any(not v.is_integer() for v in values):
        shown = ", ".join(f"{v:g}" for v in values)
        raise ValueError(f"{url} has voxel size {shown} nm (z, y, x); connecto works in whole nanometres: "
                         "resample the layer to a whole-nm voxel size first (e.g. igneous), or copy it with a "
                         "whole-nm resolution in its info file if that is what the data is")
    return Coordinate(int(v) for v in values)


class PrecomputedStore:
    def __init__(self, url: StorageUrl, cv, meta: VolumeMeta):
        self.url, self.cv, self.meta = url, cv, meta

    @classmethod
    def open(cls, url: StorageUrl, writable: bool) -> PrecomputedStore:
        cv = _open_cloudvolume(url)
        scale = cv.info["scales"][0]
        meta = VolumeMeta(
            shape=Coordinate(reversed(scale["size"])),
            dtype=np.dtype(cv.info["data_type"]),
            voxel_size_nm=_whole_nm(url, reversed(scale["resolution"])),
            offset=Coordinate(reversed(scale["voxel_offset"])),
            chunk_shape=Coordinate(reversed(scale["chunk_sizes"][0])),
            num_channels=int(cv.info["num_channels"]),
        )
        return cls(url, cv, meta)

    @classmethod
    def create(cls, url: StorageUrl, meta: VolumeMeta, layer_type: str | None = None) -> PrecomputedStore:
        from cloudvolume import CloudVolume

        if layer_type is None:
            layer_type = "segmentation" if meta.dtype.kind in "ui" and meta.dtype.itemsize >= 4 else "image"
        info = CloudVolume.create_new_info(
            num_channels=meta.num_channels,
            layer_type=layer_type,
            data_type=meta.dtype.name,
            encoding="raw",
            resolution=list(reversed(meta.voxel_size_nm)),
            voxel_offset=list(reversed(meta.offset)),
            volume_size=list(reversed(meta.shape)),
            chunk_size=list(reversed(meta.chunk_shape)),
        )
        cv = _open_cloudvolume(url, info=info)
        cv.commit_info()
        return cls(url, cv, meta)

    def _xyz_slices(self, slices: tuple[slice, ...]) -> tuple[slice, ...]:
        # connecto slices are relative to the volume's first voxel; cloud-volume's are absolute
        z, y, x = (slice(s.start + o, s.stop + o) for s, o in zip(slices, self.meta.offset))
        return (x, y, z)

    def read(self, slices: tuple[slice, ...]) -> np.ndarray:
        try:
            cutout = np.asarray(self.cv[self._xyz_slices(slices)])  # x, y, z, c
        except Exception as exc:  # name the chunk file that fails
            bad = self._unreadable_chunk(slices)
            if bad is None:
                raise
            raise bad from exc
        zyx = cutout.transpose(3, 2, 1, 0)  # c, z, y, x
        out = zyx[0] if self.meta.num_channels == 1 else zyx
        return np.ascontiguousarray(out)

    def _unreadable_chunk(self, slices: tuple[slice, ...]) -> CorruptChunkError | None:
        """Read the chunks under ``slices`` one by one; the error of the first that fails, naming its file."""
        return first_unreadable_chunk(slices, self.meta.chunk_shape, self.meta.shape,
                                      lambda sl: self.cv[self._xyz_slices(sl)],
                                      lambda index: self.chunk_path(self.chunk_key(index)), self.url)

    # --- chunk files (unsharded layers) -----------------------------------------------
    def chunk_key(self, index) -> str:
        """The file of the chunk at grid ``index`` (z, y, x): ``<scale>/x0-x1_y0-y1_z0-z1`` (absolute voxels)."""
        begin = [o + i * c for o, i, c in zip(self.meta.offset, index, self.meta.chunk_shape)]
        end = [min(b + c, o + s) for b, c, o, s in zip(begin, self.meta.chunk_shape, self.meta.offset, self.meta.shape)]
        z, y, x = (f"{b}-{e}" for b, e in zip(begin, end))
        return f"{self.cv.info['scales'][0]['key']}/{x}_{y}_{z}"

    def chunk_path(self, key: str) -> str:
        """The chunk's file; on local disk with the compression suffix cloud-volume gave it (``.gz``)."""
        path = self.url.join(key)
        if self.url.protocol == "file" and not os.path.exists(path):
            for suffix in COMPRESSION_SUFFIXES:
                if os.path.exists(path + suffix):
                    return path + suffix
        return path

    def list_chunks(self) -> dict[str, tuple[int, str]] | None:
        """``{key: (size, stamp)}`` of the layer's chunk files (compression suffixes dropped); None when sharded."""
        scale = self.cv.info["scales"][0]
        if scale.get("sharding"):
            return None
        files = list_files(self.url, scale["key"])
        out = {}
        for key, value in files.items():
            for suffix in COMPRESSION_SUFFIXES:
                if key.endswith(suffix):
                    key = key[: -len(suffix)]
                    break
            out[key] = value
        return out

    def write(self, slices: tuple[slice, ...], data: np.ndarray) -> None:
        if self.meta.num_channels == 1:
            data = data[np.newaxis]
        self.cv[self._xyz_slices(slices)] = np.asarray(data).transpose(3, 2, 1, 0)

    def attrs(self) -> dict:
        return read_json(self.url, ATTRS_FILE) or {}

    def update_attrs(self, values: dict) -> None:
        current = self.attrs()
        current.update(values)
        write_json(self.url, ATTRS_FILE, current)
