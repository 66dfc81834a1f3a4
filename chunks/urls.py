"""Storage URLs: which format a URL names and how to reach it.

Accepted forms (zyx volumes everywhere; the URL only says where bytes live):

- ``/path/vol.zarr``, ``file:///path/vol.zarr``: zarr v3 on local disk (default format)
- ``s3://bucket/vol.zarr``, ``gs://bucket/vol.zarr``: zarr through fsspec
- ``s3://http://host:port/bucket/vol.zarr``: zarr on an S3-compatible server (MinIO, moto)
- ``precomputed://file:///path/layer``, ``precomputed://gs://bucket/layer``,
  ``precomputed://s3://http://host:port/bucket/layer``: Neuroglancer precomputed
  through cloud-volume; a local path or URL holding an ``info`` file is precomputed too
- ``memory://name``: an in-process numpy volume, for tests
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

FORMATS = ("zarr", "precomputed", "memory")


@dataclass(frozen=True)
class StorageUrl:
    """A parsed storage URL.

    ``path`` is what the backend library wants: an absolute local path, or a
    ``s3://bucket/key`` / ``gs://bucket/key`` URL; ``endpoint`` an S3 endpoint if given.
    """

    format: str | None  # None: decided by what exists at the location (default zarr)
    protocol: str  # "file", "s3", "gs", "memory"
    path: str
    endpoint: str | None = None
    original: str = field(default="", compare=False)

    def storage_options(self) -> dict:
        options: dict = {}
        if self.endpoint:
            options["endpoint_url"] = self.endpoint
        return options

    def join(self, *parts: str) -> str:
        """A child location as a plain string usable by fsspec."""
        base = self.path.rstrip("/")
        return "/".join([base, *parts])

    def __str__(self) -> str:
        return self.original or self.path


def parse_url(url: str | os.PathLike) -> StorageUrl:
    """Parse a volume URL into format, protocol, path and endpoint.

    >>> parse_url("precomputed://s3://http://127.0.0.1:9000/bucket/raw").endpoint
    'http://127.0.0.1:9000'
    """
    text = os.fspath(url)
    original = text
    fmt = None
    for prefix in ("precomputed://", "zarr://", "zarr3://"):
        if text.startswith(prefix):
            fmt = "precomputed" if prefix.startswith("precomputed") else "zarr"
            text = text[len(prefix):]
    if text.startswith("memory://"):
        return StorageUrl("memory", "memory", text[len("memory://"):], original=original)
    if text.startswith("file://"):
        return StorageUrl(fmt, "file", os.path.abspath(text[len("file://"):]), original=original)
    for proto in ("s3", "gs", "gcs"):
        head = proto + "://"
        if text.startswith(head):
            rest = text[len(head):]
            endpoint = None
            if rest.startswith(("http://", "https://")):
                scheme, _, remainder = rest.partition("://")
                host, _, key = remainder.partition("/")
                endpoint = f"{scheme}://{host}"
                rest = key
            if not rest.strip("/"):
                raise ValueError(f"volume URL {original!r} names no bucket; expected {head}BUCKET/PATH")
            proto = "gs" if proto == "gcs" else proto
            return StorageUrl(fmt, proto, f"{proto}://{rest}", endpoint, original=original)
    if "://" in text:
        raise ValueError(
            f"volume URL {original!r} has an unknown scheme; expected a local path, file://, "
            "s3://, gs://, precomputed://… or memory://"
        )
    return StorageUrl(fmt, "file", os.path.abspath(text), original=original)


def canonical_url(url: StorageUrl) -> str:
    """One spelling per location: an absolute path, ``s3://bucket/key`` (with its endpoint), ``memory://name``."""
    if url.protocol == "memory":
        return f"memory://{url.path}"
    if url.protocol == "file":
        return url.path
    if url.endpoint:
        return f"{url.protocol}://{url.endpoint}/{url.path.split('://', 1)[1]}"
    return url.path


def relocated(url: str, recorded_at: str | None, at: str) -> str:
    """Where ``url``, recorded beside done-markers that were at ``recorded_at``, is for markers now at ``at``:
    the same place relative to them, when the run directory was moved or copied.

    >>> relocated("/old/run/fragments", "/old/run", "/new/run")
    '/new/run/fragments'
    >>> relocated("s3://b/old/run/raw.zarr", "s3://b/old/run/out.zarr", "s3://b/new/run/out.zarr")
    's3://b/new/run/raw.zarr'
    """
    import posixpath

    if not recorded_at or recorded_at == at:
        return url
    heads, paths = [], []
    for value in (url, recorded_at, at):  # "s3://http://host:9000" + "/bucket/key", or "" + "/abs/path"
        head, _, path = value.rpartition("://")
        heads.append(head)
        paths.append(path if path.startswith("/") else "/" + path)
    if len(set(heads)) > 1:
        return url
    moved = posixpath.normpath(posixpath.join(paths[2], posixpath.relpath(paths[0], paths[1])))
    return f"{heads[0]}://{moved.lstrip('/')}" if heads[0] else moved
