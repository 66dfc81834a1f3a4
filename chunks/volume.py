"""``Volume``: a chunked zyx array on disk, in a bucket or in memory, read and written by Roi.

>>> vol = create_volume("memory://doc", shape=(8, 16, 16), dtype="uint8",
...                     voxel_size_nm=(40, 4, 4), chunk_shape=(4, 8, 8))
>>> vol.write(Roi((0, 0, 0), (4, 8, 8)), np.ones((4, 8, 8), np.uint8))
>>> int(vol.read(Roi((0, 0, 0), (8, 16, 16))).sum())
256
"""

from __future__ import annotations

import os

import numpy as np

from . import memory_store, precomputed_store, zarr_store
from .coordinate import Coordinate
from .errors import AlignmentError, IncompatibleVolumeError, OutOfBoundsError
from .roi import Roi
from .urls import StorageUrl, parse_url
from .volume_meta import VolumeMeta


class Volume:
    """A chunked volume. Rois are in voxels, in the volume's world frame (``offset`` included).

    Single-channel volumes read and write ``(z, y, x)`` arrays; multi-channel ones
    ``(c, z, y, x)``. Pickles as its URL, so dask workers reopen it where they run.
    """

    def __init__(self, url: StorageUrl, store, writable: bool):
        self.url, self._store, self.writable = url, store, writable

    # --- what the volume knows -------------------------------------------------
    @property
    def meta(self) -> VolumeMeta:
        return self._store.meta

    @property
    def shape(self) -> Coordinate:
        return self.meta.shape

    @property
    def dtype(self) -> np.dtype:
        return self.meta.dtype

    @property
    def voxel_size_nm(self) -> Coordinate:
        return self.meta.voxel_size_nm

    @property
    def offset(self) -> Coordinate:
        return self.meta.offset

    @property
    def chunk_shape(self) -> Coordinate:
        return self.meta.chunk_shape

    @property
    def num_channels(self) -> int:
        return self.meta.num_channels

    @property
    def format(self) -> str:
        return {zarr_store.ZarrStore: "zarr", precomputed_store.PrecomputedStore: "precomputed",
                memory_store.MemoryStore: "memory"}[type(self._store)]

    @property
    def roi(self) -> Roi:
        return self.meta.roi

    def __repr__(self) -> str:
        return (f"Volume({str(self.url)!r}, format={self.format}, shape={self.shape}, dtype={self.dtype}, "
                f"voxel_size_nm={self.voxel_size_nm}, offset={self.offset}, chunks={self.chunk_shape}"
                + (f", channels={self.num_channels}" if self.num_channels > 1 else "") + ")")

    def __reduce__(self):
        return (open_volume, (self.url.original or self.url.path, "r+" if self.writable else "r"))

    # --- reading and writing -------------------------------------------------
    def _check_inside(self, roi: Roi, verb: str) -> None:
        if not self.roi.contains(roi):
            raise OutOfBoundsError(
                f"cannot {verb} Roi {roi} of {self.url}: outside the volume's Roi {self.roi}"
            )

    def read(self, roi: Roi | None = None) -> np.ndarray:
        """Read ``roi`` (default: the whole volume)."""
        roi = self.roi if roi is None else roi
        self._check_inside(roi, "read")
        return self._store.read(roi.to_slices(relative_to=self.offset))

    def check_write_roi(self, roi: Roi) -> None:
        """Raise AlignmentError unless ``roi`` starts on the chunk grid and ends on it or at the volume edge."""
        self._check_inside(roi, "write")
        rel_begin = roi.begin - self.offset
        rel_end = roi.end - self.offset
        aligned = all(b % c == 0 for b, c in zip(rel_begin, self.chunk_shape)) and all(
            e % c == 0 or e == s for e, c, s in zip(rel_end, self.chunk_shape, self.shape)
        )
        if not aligned:
            raise AlignmentError(
                f"write Roi {roi} of {self.url} is not aligned to its chunk grid: chunks of "
                f"{self.chunk_shape} voxels starting at {self.offset}; snap the Roi with "
                "roi.snap_to_grid(chunk_shape) or choose a block shape that is a multiple of the chunks"
            )

    def write(self, roi: Roi, data: np.ndarray) -> None:
        """Write ``data`` into ``roi``, which must be aligned to the chunk grid (or end at the volume edge)."""
        if not self.writable:
            raise PermissionError(f"{self.url} is opened read-only; open it with mode='r+' to write")
        self.check_write_roi(roi)
        expected = ((self.num_channels,) if self.num_channels > 1 else ()) + tuple(roi.shape)
        data = np.asarray(data)
        if data.shape != expected:
            raise ValueError(f"data of shape {data.shape} does not fit Roi {roi}: expected shape {expected}")
        if data.dtype != self.dtype:
            if not np.can_cast(data.dtype, self.dtype, casting="same_kind"):
                raise ValueError(f"data of dtype {data.dtype} cannot be written to {self.url} of dtype {self.dtype}")
            data = data.astype(self.dtype)
        self._store.write(roi.to_slices(relative_to=self.offset), data)

    # --- chunk files --------------------------------------------------------------
    def chunk_rois(self, roi: Roi) -> list[tuple[Coordinate, Roi]]:
        """``(grid index, Roi)`` of every chunk ``roi`` touches, clipped to the volume (C order).

        >>> vol = create_volume("memory://doc-chunks", (4, 4, 6), "uint8", (1, 1, 1), chunk_shape=(4, 4, 4))
        >>> [(tuple(i), str(r)) for i, r in vol.chunk_rois(vol.roi)]
        [((0, 0, 0), '[(0, 0, 0):(4, 4, 4)]'), ((0, 0, 1), '[(0, 0, 4):(4, 4, 6)]')]
        """
        chunk = self.chunk_shape
        return [(index, Roi(self.offset + index * chunk, chunk).intersect(self.roi)) for index in self.chunk_indices(roi)]

    def chunk_indices(self, roi: Roi) -> list[Coordinate]:
        """Grid indices (z, y, x) of the chunks ``roi`` touches, C order."""
        import itertools

        roi = roi.intersect(self.roi)
        if roi.empty():
            return []
        first = (roi.begin - self.offset) // self.chunk_shape
        last = (roi.end - self.offset).ceil_div(self.chunk_shape)
        return [Coordinate(i) for i in itertools.product(*(range(f, e) for f, e in zip(first, last)))]

    def chunk_key(self, index) -> str:
        """The store key (file name relative to the volume) of the chunk at grid ``index`` (z, y, x)."""
        return self._store.chunk_key(index)

    def chunk_path(self, key: str) -> str:
        """Where the chunk file ``key`` lives, for messages."""
        return self._store.chunk_path(key)

    def list_chunks(self) -> dict[str, tuple[int, str]] | None:
        """``{key: (size in bytes, stamp)}`` of the chunk files that exist, from one listing;
        None when the store has no chunk files to list (memory, sharded layers)."""
        return self._store.list_chunks()

    # --- metadata ---------------------------------------------------------------
    @property
    def attrs(self) -> dict:
        return self._store.attrs()

    def update_attrs(self, values: dict) -> None:
        self._store.update_attrs(values)


def _existing_format(url: StorageUrl) -> str | None:
    """The format of what exists at ``url`` (the one its prefix names, if any), else None."""
    candidates = [url.format] if url.format else ["precomputed", "zarr"]
    for fmt in candidates:
        if (precomputed_store if fmt == "precomputed" else zarr_store).exists(url):
            return fmt
    return None


def open_volume(url: str | os.PathLike, mode: str = "r") -> Volume:
    """Open an existing volume; ``mode`` is ``"r"`` or ``"r+"``."""
    if mode not in ("r", "r+"):
        raise ValueError(f"mode {mode!r} is not one of 'r', 'r+'")
    parsed = parse_url(url)
    writable = mode == "r+"
    if parsed.format == "memory":
        return Volume(parsed, memory_store.MemoryStore.open(parsed.path, writable), writable)
    fmt = _existing_format(parsed)
    if fmt is None:
        raise FileNotFoundError(f"no volume at {url}: found neither a zarr array (zarr.json) nor a precomputed layer (info)")
    store_cls = precomputed_store.PrecomputedStore if fmt == "precomputed" else zarr_store.ZarrStore
    return Volume(parsed, store_cls.open(parsed, writable), writable)


def create_volume(
    url: str | os.PathLike,
    shape,
    dtype,
    voxel_size_nm,
    *,
    offset=(0, 0, 0),
    chunk_shape=(64, 64, 64),
    num_channels: int = 1,
    overwrite: bool = False,
    layer_type: str | None = None,
) -> Volume:
    """Create a volume, or reopen an existing one with exactly the same properties.

    An existing volume that differs (shape, dtype, voxel size, offset, chunks, channels)
    is refused with an IncompatibleVolumeError, unless ``overwrite=True`` replaces it.
    Chunk shape is clipped to the volume shape. ``layer_type`` (precomputed only):
    ``"image"`` or ``"segmentation"``, guessed from the dtype when not given.
    """
    shape = Coordinate(shape)
    chunk_shape = Coordinate(min(c, s) for c, s in zip(Coordinate(chunk_shape), shape))
    meta = VolumeMeta(shape, np.dtype(dtype), Coordinate(voxel_size_nm), Coordinate(offset), chunk_shape, num_channels)
    parsed = parse_url(url)
    if parsed.format == "memory":
        if memory_store.exists(parsed.path) and not overwrite:
            store = memory_store.MemoryStore.open(parsed.path, True)
            _refuse_incompatible(url, store.meta, meta)
            return Volume(parsed, store, True)
        return Volume(parsed, memory_store.MemoryStore.create(parsed.path, meta), True)

    existing = _existing_format(parsed)
    if existing is not None:
        if overwrite:
            (precomputed_store if existing == "precomputed" else zarr_store).remove(parsed)
        else:
            old = open_volume(url, "r+")
            _refuse_incompatible(url, old.meta, meta)
            return old
    fmt = parsed.format or "zarr"
    if fmt == "precomputed":
        store = precomputed_store.PrecomputedStore.create(parsed, meta, layer_type=layer_type)
    else:
        store = zarr_store.ZarrStore.create(parsed, meta)
    return Volume(parsed, store, True)


def _refuse_incompatible(url, existing: VolumeMeta, requested: VolumeMeta) -> None:
    diffs = existing.differences(requested)
    if diffs:
        raise IncompatibleVolumeError(
            f"{url} already exists with different properties: {'; '.join(diffs)}; "
            "choose another output or pass overwrite=True (--overwrite) to replace it"
        )
