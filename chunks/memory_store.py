"""In-process numpy volumes (``memory://name``) for tests and small interactive work.

They live in this process only: blockwise runs on them need the in-process
(``scheduler="threads"``) engine.
"""

from __future__ import annotations

import threading

import numpy as np

from .volume_meta import VolumeMeta

_VOLUMES: dict[str, MemoryStore] = {}
_LOCK = threading.Lock()


def exists(name: str) -> bool:
    return name in _VOLUMES


def remove(name: str) -> None:
    with _LOCK:
        _VOLUMES.pop(name, None)
    _forget_markers(name)


def _forget_markers(name: str) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    if fs.exists(name):
        fs.rm(name, recursive=True)


class MemoryStore:
    def __init__(self, name: str, data: np.ndarray, meta: VolumeMeta):
        self.name, self.data, self.meta = name, data, meta
        self._attrs: dict = {}

    @classmethod
    def open(cls, name: str, writable: bool) -> MemoryStore:
        try:
            return _VOLUMES[name]
        except KeyError:
            raise FileNotFoundError(f"no in-memory volume memory://{name} in this process") from None

    @classmethod
    def create(cls, name: str, meta: VolumeMeta, fill_value=0) -> MemoryStore:
        channel = (meta.num_channels,) if meta.num_channels > 1 else ()
        data = np.full(channel + tuple(meta.shape), fill_value, dtype=meta.dtype)
        store = cls(name, data, meta)
        _forget_markers(name)  # a new volume starts with no finished blocks
        with _LOCK:
            _VOLUMES[name] = store
        return store

    def read(self, slices):
        if self.meta.num_channels > 1:
            slices = (slice(None), *slices)
        return self.data[slices].copy()

    def write(self, slices, data):
        if self.meta.num_channels > 1:
            slices = (slice(None), *slices)
        self.data[slices] = data

    def chunk_key(self, index) -> str:
        return "/".join(str(int(i)) for i in index)

    def chunk_path(self, key: str) -> str:
        return f"memory://{self.name}/{key}"

    def list_chunks(self) -> None:
        return None  # no files: nothing can go missing

    def attrs(self) -> dict:
        return dict(self._attrs)

    def update_attrs(self, values: dict) -> None:
        self._attrs.update(values)
