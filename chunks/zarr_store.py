"""Zarr v3 storage for Volumes (local disk or a bucket through fsspec).

Layout: one zarr array, axes ``(c,) z, y, x`` (a channel axis only when num_channels > 1),
``dimension_names`` set, and connecto's metadata under ``attributes["connecto"]``:
``voxel_size_nm`` and ``offset_voxels`` (zyx).

Every chunk written is a file, fill value or not (``write_empty_chunks``), so a missing
chunk file inside a finished block is damage, not a sparse region; new arrays compress
with zstd frame checksums, so a flipped bit fails to decode instead of reading wrong
values. A chunk that cannot be decoded raises :class:`CorruptChunkError` naming its file.
"""

from __future__ import annotations

import shutil

import numpy as np

from .coordinate import Coordinate
from .errors import CorruptChunkError, first_unreadable_chunk
from .fs import filesystem, list_files
from .urls import StorageUrl
from .volume_meta import VolumeMeta


def _store(url: StorageUrl, read_only: bool):
    import zarr.storage

    if url.protocol == "file":
        return zarr.storage.LocalStore(url.path, read_only=read_only)
    return zarr.storage.FsspecStore.from_url(
        url.path, storage_options={"client_kwargs": url.storage_options()} if url.endpoint else None,
        read_only=read_only,
    )


def exists(url: StorageUrl) -> bool:
    return filesystem(url).exists(url.join("zarr.json"))


def remove(url: StorageUrl) -> None:
    if url.protocol == "file":
        shutil.rmtree(url.path, ignore_errors=True)
    else:
        fs = filesystem(url)
        if fs.exists(url.path):
            fs.rm(url.path, recursive=True)


class ZarrStore:
    """Reads and writes numpy arrays of a zarr v3 array by slices."""

    def __init__(self, url: StorageUrl, array, meta: VolumeMeta):
        self.url, self.array, self.meta = url, array, meta

    @classmethod
    def open(cls, url: StorageUrl, writable: bool) -> ZarrStore:
        import zarr

        array = zarr.open_array(store=_store(url, read_only=not writable), mode="r+" if writable else "r")
        array = array.with_config({"write_empty_chunks": True})
        attrs = dict(array.attrs).get("connecto", {})
        spatial = array.shape[-3:]
        num_channels = array.shape[0] if array.ndim == 4 else 1
        meta = VolumeMeta(
            shape=Coordinate(spatial),
            dtype=np.dtype(array.dtype),
            voxel_size_nm=Coordinate(attrs.get("voxel_size_nm", (1, 1, 1))),
            offset=Coordinate(attrs.get("offset_voxels", (0, 0, 0))),
            chunk_shape=Coordinate(array.chunks[-3:]),
            num_channels=num_channels,
        )
        return cls(url, array, meta)

    @classmethod
    def create(cls, url: StorageUrl, meta: VolumeMeta, fill_value=0) -> ZarrStore:
        import zarr

        channel = (meta.num_channels,) if meta.num_channels > 1 else ()
        array = zarr.create_array(
            store=_store(url, read_only=False),
            shape=channel + tuple(meta.shape),
            chunks=channel + tuple(meta.chunk_shape),
            dtype=meta.dtype,
            fill_value=fill_value,
            compressors=zarr.codecs.ZstdCodec(level=0, checksum=True),
            dimension_names=(("c",) if channel else ()) + ("z", "y", "x"),
            attributes={
                "connecto": {
                    "voxel_size_nm": list(meta.voxel_size_nm),
                    "offset_voxels": list(meta.offset),
                }
            },
            overwrite=True,
            config={"write_empty_chunks": True},
        )
        return cls(url, array, meta)

    def read(self, slices: tuple[slice, ...]) -> np.ndarray:
        full = (slice(None), *slices) if self.meta.num_channels > 1 else slices
        try:
            return np.asarray(self.array[full])
        except Exception as exc:  # a codec error names no chunk: find the one that fails
            bad = self._unreadable_chunk(slices)
            if bad is None:
                raise
            raise bad from exc

    def _unreadable_chunk(self, slices: tuple[slice, ...]) -> CorruptChunkError | None:
        """Read the chunks under ``slices`` one by one; the error of the first that fails, naming its file."""
        return first_unreadable_chunk(slices, self.meta.chunk_shape, self.meta.shape,
                                      lambda sl: self.array[(slice(None), *sl) if self.meta.num_channels > 1 else sl],
                                      lambda index: self.chunk_path(self.chunk_key(index)), self.url)

    # --- chunk files ------------------------------------------------------------
    def chunk_key(self, index) -> str:
        """The store key of the chunk at grid ``index`` (z, y, x), e.g. ``c/0/1/2``."""
        coords = ((0,) if self.meta.num_channels > 1 else ()) + tuple(int(i) for i in index)
        return self.array.metadata.encode_chunk_key(coords)

    def chunk_path(self, key: str) -> str:
        return self.url.join(key)

    def list_chunks(self) -> dict[str, tuple[int, str]] | None:
        """``{key: (size in bytes, modification stamp)}`` of every chunk file, from one listing.

        None for a sharded array (its chunks are not files)."""
        if getattr(self.array, "shards", None) is not None:
            return None
        encoding = self.array.metadata.chunk_key_encoding
        prefix = "c" if getattr(encoding, "name", "") == "default" else ""
        files = list_files(self.url, prefix)
        if not prefix:  # chunk keys at the top level: everything but metadata and markers
            files = {k: v for k, v in files.items() if not k.endswith(".json") and not k.startswith("done/")}
        return files

    def write(self, slices: tuple[slice, ...], data: np.ndarray) -> None:
        if self.meta.num_channels > 1:
            slices = (slice(None), *slices)
        self.array[slices] = data

    def attrs(self) -> dict:
        return dict(self.array.attrs)

    def update_attrs(self, values: dict) -> None:
        self.array.attrs.update(values)
