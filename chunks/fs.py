"""Small files beside volumes (done-markers, metadata JSON), local or in a bucket, via fsspec."""

from __future__ import annotations

import json
import os

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


def list_files(url: StorageUrl, prefix: str = "") -> dict[str, tuple[int, str]]:
    """Files under ``url``/``prefix`` (recursively): ``{key relative to url: (size, stamp)}``.

    The stamp is the modification time (local files), else the ETag or md5 a bucket lists.
    """
    root = url.join(prefix) if prefix else url.path.rstrip("/")
    out: dict[str, tuple[int, str]] = {}
    if url.protocol == "file":
        base = len(url.path.rstrip("/")) + 1
        stack = [root]
        while stack:
            try:
                entries = list(os.scandir(stack.pop()))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    st = entry.stat()
                    out[entry.path[base:]] = (st.st_size, str(st.st_mtime_ns))
        return out
    fs = filesystem(url)
    fs.invalidate_cache(root)  # another process may have written or deleted files since the last listing
    if not fs.exists(root):
        return out
    base = len(url.path.split("://", 1)[-1].rstrip("/")) + 1
    for path, info in fs.find(root, detail=True).items():
        stamp = info.get("ETag") or info.get("md5Hash") or info.get("LastModified") or info.get("updated") or ""
        out[path.split("://", 1)[-1][base:]] = (int(info.get("size") or 0), str(stamp))
    return out
