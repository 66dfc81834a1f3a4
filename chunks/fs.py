"""Small files beside volumes (done-markers, metadata JSON), local or in a bucket, via fsspec."""

from __future__ import annotations

import json

from .urls import StorageUrl


def filesystem(url: StorageUrl):
    """The fsspec filesystem for a storage URL (local, s3 with optional endpoint, gs)."""
    import fsspec

    if url.protocol == "file":
        return fsspec.filesystem("file", auto_mkdir=True)
    if url.protocol == "s3":
        options = {}
        if url.endpoint:
            options["endpoint_url"] = url.endpoint
        return fsspec.filesystem("s3", client_kwargs=options, skip_instance_cache=False)
    if url.protocol == "gs":
        return fsspec.filesystem("gs")
    if url.protocol == "memory":  # markers of memory:// volumes, in this process
        return fsspec.filesystem("memory")
    raise ValueError(f"no filesystem for {url}")


def read_json(url: StorageUrl, name: str) -> dict | None:
    fs = filesystem(url)
    path = url.join(name)
    if not fs.exists(path):
        return None
    with fs.open(path, "r") as f:
        return json.load(f)


def write_json(url: StorageUrl, name: str, value: dict) -> None:
    fs = filesystem(url)
    with fs.open(url.join(name), "w") as f:
        json.dump(value, f, indent=1, sort_keys=True, default=str)
