"""A Neuroglancer state to check an edit: the raw image and the fragment volume with the segments selected.

The volume holds fragment ids, so each segment is shown through an ``equivalences`` group
(its fragments) and selected by its smallest fragment id.
"""

from __future__ import annotations

import json
import logging
import os
from urllib.parse import quote

import numpy as np

logger = logging.getLogger(__name__)

MAX_EQUIVALENCE_FRAGMENTS = 20_000  # beyond this a group would make the link unwieldy


def segmentation_layer(fragments_by_segment: dict[int, np.ndarray], source: str, name: str = "segments") -> dict:
    """A segmentation layer over ``source`` that shows each segment's fragments as one object."""
    selected, equivalences = [], []
    for fragments in fragments_by_segment.values():
        fragments = np.sort(np.asarray(fragments, dtype=np.uint64))
        if not len(fragments):
            continue
        selected.append(str(int(fragments[0])))
        if 1 < len(fragments) <= MAX_EQUIVALENCE_FRAGMENTS:
            equivalences.append([str(int(f)) for f in fragments])
    layer = {"type": "segmentation", "source": source, "name": name, "segments": selected}
    if equivalences:
        layer["equivalences"] = equivalences
    return layer


def state(fragments_by_segment: dict[int, np.ndarray], source: str, name: str = "segments", *,
          raw: str | None = None, voxel_size_nm=None, position_zyx=None) -> dict:
    """A state with the raw image (when given) under the segments; ``position_zyx`` in voxels."""
    layers = [{"type": "image", "name": "raw", "source": raw}] if raw else []
    layers.append(segmentation_layer(fragments_by_segment, source, name))
    out: dict = {"layers": layers, "layout": "xy-3d", "selectedLayer": {"layer": name, "visible": True}}
    if voxel_size_nm is not None:
        z, y, x = (float(v) * 1e-9 for v in voxel_size_nm)
        out = {"dimensions": {"x": [x, "m"], "y": [y, "m"], "z": [z, "m"]}, **out}
    if position_zyx is not None:
        out["position"] = [float(p) + 0.5 for p in list(position_zyx)[::-1]]  # x, y, z at the voxel centre
    return out


def volume_source(url: str) -> str:
    """A Neuroglancer source for a local path or a storage URL (zarr unless it says or is precomputed)."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme in ("precomputed", "zarr", "zarr2", "zarr3", "n5"):
        return url
    if scheme in ("", "file"):
        path = os.path.abspath(url.removeprefix("file://"))
        kind = "precomputed" if os.path.exists(os.path.join(path, "info")) else "zarr"
        return f"{kind}://file://{path}"
    return f"zarr://{url}"


def run_state(run_dir, fragments_by_segment: dict[int, np.ndarray], *, name: str = "segments",
              fragments_source: str | None = None, points=()) -> dict:
    """The state an edit prints: the run's raw image (``run.json``: ``config.raw``) and the edited
    segments over its fragment volume, centred on the first point given."""
    from .points import FRAGMENTS_VOLUME, run_config

    run_dir = os.fspath(run_dir)
    fragments_path = os.path.join(run_dir, FRAGMENTS_VOLUME)
    source = fragments_source or volume_source(fragments_path)
    raw = run_config(run_dir).get("raw")
    voxel_size = None
    if os.path.exists(fragments_path):
        try:
            from chunks import open_volume

            voxel_size = tuple(open_volume(fragments_path).voxel_size_nm)
        except (OSError, ValueError) as exc:
            logger.warning("no voxel size for the Neuroglancer state: %s", exc)
    return state(fragments_by_segment, source, name, raw=volume_source(raw) if raw else None,
                 voxel_size_nm=voxel_size, position_zyx=points[0] if len(points) else None)


def link(state_json: dict, prefix: str) -> str:
    """``prefix#!<state>`` for a Neuroglancer host of the user's choosing."""
    return f"{prefix.rstrip('/')}/#!{quote(json.dumps(state_json, separators=(',', ':')))}"
