"""A Neuroglancer viewer state (JSON) showing raw, segmentation, meshes and synapses.

Neuroglancer is x, y, z: the state's dimensions are the voxel size in metres, x first;
synapse points are voxel coordinates at voxel centres (a table position ``i * voxel
size`` nm is voxel ``i``, drawn at ``i + 0.5``). Sources are Neuroglancer source strings
(``precomputed://gs://…``, ``zarr://https://…``); :func:`source_url` turns connecto's
volume URLs into them. Local files need an HTTP server (``python -m http.server``,
with CORS) or a cloud bucket for the viewer to read them.

The state is plain JSON written by hand. The ``neuroglancer`` package's state classes
(``ViewerState``, ``ImageLayer``, ``SegmentationLayer``, ``LocalAnnotationLayer``,
``LineAnnotation``, ``PointAnnotation``, ``to_url``) model all of it, and the state written
here parses as a ``neuroglancer.ViewerState`` and serialises back unchanged (checked with
neuroglancer 2.41.2: tests/connecto/test_connectome_neuroglancer_state.py). The package is a
dependency for ``connecto view`` (its bundled client and file server) and the precomputed
export (its annotation writer); this module keeps to plain dicts so that building a state
imports nothing heavy. For an offline viewer of a whole run, see ``connecto.viewer``.
"""

from __future__ import annotations

import json
import logging
import urllib.parse

import numpy as np
import pandas as pd

from .store import refuse_existing
from .tables import synapse_locations

logger = logging.getLogger(__name__)

DEFAULT_VIEWER = "https://neuroglancer-demo.appspot.com"


def source_url(url: str, *, http_root: str | None = None, http_url: str | None = None) -> str:
    """A Neuroglancer source for a connecto volume URL.

    Bucket and HTTP URLs keep their format prefix (zarr when none is given:
    ``gs://b/v.zarr`` -> ``zarr://gs://b/v.zarr``); a local path (or ``file://``) under
    ``http_root`` becomes ``<format>://<http_url>/<relative path>``.

    >>> source_url("precomputed://gs://bucket/seg")
    'precomputed://gs://bucket/seg'
    >>> source_url("/data/run/raw.zarr", http_root="/data", http_url="http://localhost:8000")
    'zarr://http://localhost:8000/run/raw.zarr'
    """
    from pathlib import Path

    scheme, rest = url.split("://", 1) if "://" in url else ("", url)
    kind, inner = (scheme, rest) if scheme in _FORMATS else (None, url)
    if inner.startswith(("gs://", "s3://", "http://", "https://")):
        return f"{kind or 'zarr'}://{inner}"
    if http_root is None or http_url is None:
        raise ValueError(f"{url} is a local path; Neuroglancer reads over HTTP: give http_root= (the served "
                         "directory) and http_url= (where it is served, e.g. http://localhost:8000)")
    path = Path(inner.removeprefix("file://")).absolute()
    try:
        relative = path.relative_to(Path(http_root).absolute())
    except ValueError:
        raise ValueError(f"{path} is not under the served directory http_root={http_root}") from None
    kind = kind or ("precomputed" if (path / "info").exists() else "zarr")
    return f"{kind}://{http_url.rstrip('/')}/{relative.as_posix()}"


_FORMATS = ("precomputed", "zarr", "zarr2", "zarr3", "n5", "graphene")


def dimensions(voxel_size_nm) -> dict:
    z, y, x = (float(v) * 1e-9 for v in voxel_size_nm)
    return {"x": [x, "m"], "y": [y, "m"], "z": [z, "m"]}


def synapse_annotations(synapses: pd.DataFrame, voxel_size_nm, max_annotations: int = 20000) -> list[dict]:
    """Line annotations pre -> post (a point where only one side is known), with the
    pre and post segments as relationships; at most ``max_annotations`` (by synapse id)."""
    synapses = synapses.sort_values("synapse_id")
    known = ~np.isnan(synapse_locations(synapses, "location")).any(axis=1)
    synapses = synapses[known]
    if len(synapses) > max_annotations:
        logger.warning("showing %d of %d synapses (max_annotations)", max_annotations, len(synapses))
        synapses = synapses.iloc[:max_annotations]
    scale = np.asarray(voxel_size_nm, np.float64)
    pre = synapses[["pre_x_nm", "pre_y_nm", "pre_z_nm"]].to_numpy(np.float64) / scale[::-1] + 0.5
    post = synapses[["post_x_nm", "post_y_nm", "post_z_nm"]].to_numpy(np.float64) / scale[::-1] + 0.5
    out = []
    for i, (sid, a, b) in enumerate(zip(synapses["synapse_id"].tolist(), synapses["pre_segment"].tolist(),
                                        synapses["post_segment"].tolist())):
        segments = [[str(a)] if a else [], [str(b)] if b else []]
        has_pre, has_post = not np.isnan(pre[i]).any(), not np.isnan(post[i]).any()
        if has_pre and has_post:
            item = {"type": "line", "pointA": pre[i].round(2).tolist(), "pointB": post[i].round(2).tolist()}
        else:
            item = {"type": "point", "point": (pre[i] if has_pre else post[i]).round(2).tolist()}
        out.append({**item, "id": str(sid), "segments": segments})
    return out


def neuroglancer_state(voxel_size_nm, *, raw: str | None = None, segmentation: str | None = None,
                       meshes: str | None = None, synapses: pd.DataFrame | None = None, segments=None,
                       position=None, max_annotations: int = 20000) -> dict:
    """The viewer state: layers ``raw`` (image), ``segmentation`` (its source plus the mesh
    source when given separately), ``synapses`` (annotations linked to the segmentation).

    ``position``: zyx voxel to centre on (default: the first synapse, else none).
    """
    dims = dimensions(voxel_size_nm)
    layers = []
    if raw:
        layers.append({"type": "image", "name": "raw", "source": raw})
    if segmentation or meshes:
        sources = [s for s in (segmentation, meshes) if s]
        layer = {"type": "segmentation", "name": "segmentation", "source": sources[0] if len(sources) == 1 else sources}
        if segments is not None:
            layer["segments"] = [str(int(s)) for s in segments]
        layers.append(layer)
    annotations = []
    if synapses is not None:
        annotations = synapse_annotations(synapses, voxel_size_nm, max_annotations)
        layer = {"type": "annotation", "name": "synapses",
                 "source": {"url": "local://annotations", "transform": {"outputDimensions": dims}},
                 "annotationColor": "#ff00ff", "annotations": annotations,
                 "annotationRelationships": ["pre_segment", "post_segment"]}
        if segmentation or meshes:
            layer["linkedSegmentationLayer"] = {"pre_segment": "segmentation", "post_segment": "segmentation"}
            layer["filterBySegmentation"] = ["pre_segment", "post_segment"]
        layers.append(layer)
    state = {"dimensions": dims, "layers": layers, "layout": "4panel"}
    if position is not None:
        state["position"] = [float(p) + 0.5 for p in list(position)[::-1]]
    elif annotations:
        first = annotations[0]
        state["position"] = first.get("pointA", first.get("point"))
    if layers:
        state["selectedLayer"] = {"layer": layers[-1]["name"], "visible": True}
    return state


def state_url(state: dict, viewer: str = DEFAULT_VIEWER) -> str:
    """A link that opens ``state`` in a Neuroglancer deployment."""
    return f"{viewer.rstrip('/')}/#!{urllib.parse.quote(json.dumps(state, separators=(',', ':')))}"


def write_state(state: dict, path, *, overwrite: bool = False) -> str:
    path = refuse_existing(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=1) + "\n")
    return str(path)
