"""Edits by position: a voxel point (z, y, x) names the fragment there, and so its segment.

Fragments are immutable, so a point always names the same fragment; which segment that is
depends on the version. Points are voxel indices in the run's fragment volume's world frame
(``RUN/fragments``; Neuroglancer shows the same voxel as x, y, z).

The run's own threshold (``run.json``: ``config.threshold``, else the segment stage's
``params.threshold``) is what version 0 is made from when no threshold is given; it is read
here by its on-disk schema, not through connecto.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

FRAGMENTS_VOLUME = "fragments"
RUN_FILE = "run.json"


def parse_point(text: str, what: str = "point") -> tuple[int, int, int]:
    """``"10,200,300"`` -> (10, 200, 300): a voxel z, y, x.

    >>> parse_point("4, 5,6")
    (4, 5, 6)
    """
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or any(v < 0 for v in values):
        raise ValueError(f"{what} {text!r} is not a voxel position Z,Y,X (three non-negative integers, "
                         "e.g. 10,200,300)")
    return values  # type: ignore[return-value]


def is_point(text: str) -> bool:
    return "," in str(text)


def fragments_at(run_dir: str | os.PathLike, points, volume_url: str | None = None) -> np.ndarray:
    """The fragment id (uint64) at each voxel point (z, y, x) of the run's fragment volume.

    Raises ``ValueError`` naming the point when it lies outside the volume or on background.
    """
    from chunks import Roi, open_volume

    url = volume_url or os.path.join(os.fspath(run_dir), FRAGMENTS_VOLUME)
    if volume_url is None and not os.path.exists(url):
        raise FileNotFoundError(f"{url} does not exist: a point needs the run's fragment volume (give fragment or "
                                "segment ids instead)")
    volume = open_volume(url)
    roi = volume.roi
    out = []
    for point in points:
        point = tuple(int(p) for p in point)
        begin, end = tuple(roi.begin), tuple(roi.end)
        if not all(b <= p < e for p, b, e in zip(point, begin, end)):
            raise ValueError(f"point {_fmt(point)} is outside {url} (voxels z,y,x from {_fmt(begin)} to "
                             f"{_fmt(tuple(e - 1 for e in end))})")
        fragment = int(volume.read(Roi(point, (1, 1, 1))).ravel()[0])
        if fragment == 0:
            raise ValueError(f"point {_fmt(point)} is background in {url} (no fragment there); pick a point inside "
                             "a segment")
        out.append(fragment)
    return np.asarray(out, dtype=np.uint64)


def run_threshold(run_dir: str | os.PathLike) -> float | None:
    """The threshold of the run's segmentation from ``run.json`` (None when it names none)."""
    path = Path(run_dir) / RUN_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); fix or remove it, or give --threshold") from None
    value = (record.get("config") or {}).get("threshold")
    if value is None:
        value = (((record.get("stages") or {}).get("segment") or {}).get("params") or {}).get("threshold")
    return None if value is None else float(value)


def run_config(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / RUN_FILE
    try:
        return json.loads(path.read_text()).get("config") or {}
    except (OSError, ValueError):
        return {}


def _fmt(point) -> str:
    return ",".join(str(int(p)) for p in point)
