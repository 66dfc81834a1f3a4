"""Synapses from predictions: cleft probability + pre/post side maps + fragments -> synapse table.

Clefts are connected components (26-connected) of ``cleft_prob >= threshold`` with at
least ``min_size`` voxels. Around each cleft (the cleft dilated by ``dilation_nm``) the
pre-side probability is summed per fragment: the fragment with the largest sum is the
presynaptic partner. Every other fragment whose summed post-side probability reaches
``post_fraction`` of the largest post sum is a postsynaptic partner (polyadic synapses:
one pre, several posts). A cleft with no fragment under pre-side probability is dropped.

The table has one row per (synapse, post partner): ``id`` (uint64), ``cleft_{z,y,x}_nm``
(the cleft voxel nearest the cleft's centroid), ``pre_{z,y,x}_nm`` / ``post_{z,y,x}_nm``
(the partner's voxel nearest its probability-weighted centroid near the cleft),
``pre_fragment``, ``post_fragment`` (uint64), ``score`` (mean cleft probability in [0, 1])
and ``size`` (cleft voxels). Coordinates are ``index * voxel_size_nm + offset_nm``.

A synapse's id is 1 + the linear index (C order, in the whole volume) of its cleft's
lowest voxel, so ids are the same whatever the blocks. Blockwise, a cleft belongs to the
block whose write Roi holds that voxel; each block reads ``max_extent`` voxels (+ the
dilation) of context, so a cleft whose bounding box spans at most ``max_extent`` voxels
on every axis is found whole by exactly one block and blockwise equals single-block.
Larger clefts are cut at the context border (and may be reported by two blocks, in
pieces): raise ``max_extent_nm`` for them.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict

import numpy as np
import pandas as pd

from chunks import Coordinate, Roi, Volume, run_blockwise
from training.config import SYNAPSE_CHANNELS as MODEL_SYNAPSE_CHANNELS
from training.schema import Float, Int, schema

logger = logging.getLogger(__name__)

AXES = ("z", "y", "x")
POINTS = ("cleft", "pre", "post")


@schema  # typed: threshold = "high" or an unknown key is refused (training.schema)
class DetectParams:
    """threshold : cleft probability (0..1; uint8 input is read as /255) that makes a cleft voxel.
    min_size : clefts with fewer voxels are dropped.
    dilation_nm : how far around a cleft the side maps are summed per fragment.
    post_fraction : a fragment is a post partner when its summed post probability reaches
        this fraction of the largest one.
    max_extent_nm : blockwise only: largest cleft extent found exactly (see module docstring).
    """

    threshold: Float = 0.8
    min_size: Int = 150
    dilation_nm: Float = 16.0
    post_fraction: Float = 0.3
    max_extent_nm: Float = 400.0

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold {self.threshold} must lie in (0, 1]")
        if not 0.0 < self.post_fraction <= 1.0:
            raise ValueError(f"post_fraction {self.post_fraction} must lie in (0, 1]")
        if self.min_size < 1 or self.dilation_nm < 0 or self.max_extent_nm <= 0:
            raise ValueError(f"min_size ({self.min_size}) must be >= 1, dilation_nm ({self.dilation_nm}) >= 0 "
                             f"and max_extent_nm ({self.max_extent_nm}) > 0")


DEFAULT_DETECT_PARAMS = DetectParams()  # every field at its default (the functions' default argument)


def table_columns() -> list[str]:
    points = [f"{p}_{a}_nm" for p in POINTS for a in AXES]
    return ["id", *points, "pre_fragment", "post_fragment", "score", "size"]


def empty_table() -> pd.DataFrame:
    dtypes = {"id": np.uint64, "pre_fragment": np.uint64, "post_fragment": np.uint64, "size": np.int64}
    return pd.DataFrame({c: np.zeros(0, dtypes.get(c, np.float64)) for c in table_columns()})


def as_probability(array: np.ndarray, name: str) -> np.ndarray:
    """float32 in [0, 1] from uint8 (0..255) or float input."""
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype.kind != "f":
        raise ValueError(f"{name} has dtype {array.dtype}; expected uint8 (0..255 = 0..1) or float in [0, 1]")
    return array.astype(np.float32, copy=False)


def _radius_voxels(nm: float, voxel_size_nm) -> Coordinate:
    return Coordinate(int(np.ceil(nm / v)) if nm > 0 else 0 for v in voxel_size_nm)


def detect_synapses(cleft_prob: np.ndarray, sides: np.ndarray, fragments: np.ndarray, *,
                    params: DetectParams = DEFAULT_DETECT_PARAMS, voxel_size_nm=(8, 8, 8), offset_nm=(0, 0, 0),
                    origin=(0, 0, 0), volume_shape=None, owned: Roi | None = None) -> pd.DataFrame:
    """The synapse table (module docstring) of in-memory predictions.

    Parameters
    ----------
    cleft_prob : (z, y, x) cleft probability, float in [0, 1] or uint8.
    sides : (2, z, y, x) pre-side and post-side probability.
    fragments : (z, y, x) uint64 fragment (or segment) ids, 0 = background.
    origin, volume_shape : where this array sits in the whole volume (voxels) and the whole
        volume's shape: ids and coordinates are global. Default: the array is the volume.
    owned : keep only clefts whose lowest voxel lies in this Roi (voxels, global frame).

    >>> import numpy as np
    >>> detect_synapses(np.zeros((4, 4, 4)), np.zeros((2, 4, 4, 4)), np.zeros((4, 4, 4), np.uint64)).empty
    True
    """
    import cc3d

    prob = as_probability(cleft_prob, "cleft probability")
    sides = as_probability(sides, "pre/post side probability")
    fragments = np.asarray(fragments)
    if sides.shape != (2, *prob.shape) or fragments.shape != prob.shape:
        raise ValueError(f"sides (shape {sides.shape}) must have shape (2, *{prob.shape}) and fragments "
                         f"(shape {fragments.shape}) the shape {prob.shape} of the cleft probability")
    mask = prob >= params.threshold
    if not mask.any():
        return empty_table()
    components = cc3d.connected_components(mask, connectivity=26)
    stats = cc3d.statistics(components)
    origin = np.asarray(origin, np.int64)
    shape = np.asarray(volume_shape if volume_shape is not None else prob.shape, np.int64)
    voxel_size = np.asarray(voxel_size_nm, np.float64)
    offset = np.asarray(offset_nm, np.float64)
    radius = _radius_voxels(params.dilation_nm, voxel_size_nm)
    rows = []
    for label in np.flatnonzero(stats["voxel_counts"][1:] >= params.min_size) + 1:
        box = stats["bounding_boxes"][label]
        cleft = components[box] == label
        lowest = np.array([s.start for s in box]) + np.argwhere(cleft)[0]  # first voxel in C order
        if owned is not None and not owned.contains(Roi(tuple(lowest + origin), (1, 1, 1))):
            continue
        row = _partners(prob, sides, fragments, box, cleft, radius, params)
        if row is None:
            continue
        points, pre, posts, score = row
        world = {p: (points[p] + origin) * voxel_size + offset for p in points}
        synapse_id = np.uint64(1 + np.ravel_multi_index(tuple(lowest + origin), tuple(shape)))
        for post, post_point in posts:
            rows.append((synapse_id, *world["cleft"], *world["pre"], *((post_point + origin) * voxel_size + offset),
                         pre, post, score, int(cleft.sum())))
    if not rows:
        return empty_table()
    table = pd.DataFrame(rows, columns=table_columns())
    return table.astype({"id": np.uint64, "pre_fragment": np.uint64, "post_fragment": np.uint64, "size": np.int64})


def _partners(prob, sides, fragments, box, cleft, radius, params):
    """(points, pre fragment, [(post fragment, point)], score) of one cleft, or None without a pre."""
    from scipy import ndimage

    grown = tuple(slice(max(s.start - r, 0), min(s.stop + r, n)) for s, r, n in zip(box, radius, prob.shape))
    local = np.zeros(tuple(s.stop - s.start for s in grown), bool)
    inner = tuple(slice(s.start - g.start, s.stop - g.start) for s, g in zip(box, grown))
    local[inner] = cleft
    near = ndimage.binary_dilation(local, structure=_ellipsoid(radius)) if any(radius) else local
    frag = fragments[grown][near]
    pre_p, post_p = sides[0][grown][near], sides[1][grown][near]
    ids, inverse = np.unique(frag, return_inverse=True)
    pre_sum = np.bincount(inverse, weights=pre_p, minlength=len(ids))
    post_sum = np.bincount(inverse, weights=post_p, minlength=len(ids))
    pre_sum[ids == 0] = post_sum[ids == 0] = 0.0
    if pre_sum.max(initial=0.0) <= 0:
        return None
    pre_index = int(np.argmax(pre_sum))
    post_sum[pre_index] = 0.0
    top = post_sum.max(initial=0.0)
    if top <= 0:
        return None
    coords = np.argwhere(near) + np.array([g.start for g in grown])
    cleft_coords = np.argwhere(cleft) + np.array([s.start for s in box])
    points = {"cleft": _nearest(cleft_coords, cleft_coords.mean(axis=0)),
              "pre": _side_point(coords, inverse == pre_index, pre_p)}
    posts = [(ids[i], _side_point(coords, inverse == i, post_p))
             for i in np.flatnonzero(post_sum >= params.post_fraction * top)]
    return points, np.uint64(ids[pre_index]), posts, float(prob[box][cleft].mean())


def _side_point(coords, member, weight) -> np.ndarray:
    """The member voxel nearest the weighted centroid of the member voxels."""
    pts, w = coords[member], weight[member]
    centre = (pts * w[:, None]).sum(axis=0) / w.sum() if w.sum() > 0 else pts.mean(axis=0)
    return _nearest(pts, centre)


def _nearest(points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    return points[np.argmin(((points - centre) ** 2).sum(axis=1))].astype(np.float64)


@functools.lru_cache(maxsize=16)
def _ellipsoid(radius: tuple[int, int, int]) -> np.ndarray:
    grid = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
    return sum((g / max(r, 1)) ** 2 for g, r in zip(grid, radius)) <= 1.0


# --- blockwise ---------------------------------------------------------------------

def synapses_block(params: DetectParams, volume_roi: Roi, voxel_size_nm, out_dir: str, block, inputs):
    """Detect the clefts this block owns (lowest voxel in its write Roi); write their table."""
    if "prediction" in inputs:  # a synapse model's output: cleft, pre side, post side
        cleft_prob, sides = inputs["prediction"][0], inputs["prediction"][1:]
    else:
        cleft_prob, sides = inputs["cleft_prob"], inputs["sides"]
    table = detect_synapses(cleft_prob, sides, inputs["fragments"], params=params,
                            voxel_size_nm=voxel_size_nm, offset_nm=tuple(volume_roi.offset * Coordinate(voxel_size_nm)),
                            origin=tuple(block.read_roi.begin - volume_roi.begin), volume_shape=tuple(volume_roi.shape),
                            owned=block.write_roi.shift(-volume_roi.begin))
    _write_table(table, out_dir, f"synapses-{block.name}.parquet")


SYNAPSE_CHANNELS = list(MODEL_SYNAPSE_CHANNELS)  # what a synapse model predicts (training.config)


def check_prediction(prediction: Volume) -> None:
    """Refuse a volume that is not a synapse model's 3-channel output (cleft, pre side, post side)."""
    channels = prediction.attrs.get("channels")
    if prediction.num_channels != 3 or (channels is not None and list(channels) != SYNAPSE_CHANNELS):
        raise ValueError(f"{prediction.url} has {prediction.num_channels} channel(s) {channels or ''}; a synapse "
                         f"prediction has 3: {SYNAPSE_CHANNELS} (predict with a checkpoint whose model.outputs is "
                         "['synapses'])")


def detect_synapses_blockwise(cleft_prob: Volume, sides: Volume | None, fragments: Volume, out_dir: str, *,
                              params: DetectParams = DEFAULT_DETECT_PARAMS, block_shape=None, scheduler=None,
                              num_workers=None, overwrite=False, progress=True) -> pd.DataFrame:
    """Blockwise :func:`detect_synapses` into ``out_dir/synapses-<block>.parquet``; returns the merged table.

    ``cleft_prob`` is a 1-channel cleft probability with ``sides`` the 2-channel pre/post-side
    probability, or (``sides=None``) a synapse model's 3-channel prediction.
    """
    if sides is None:
        check_prediction(cleft_prob)
        inputs = {"prediction": cleft_prob}
    elif sides.num_channels != 2:
        raise ValueError(f"side probabilities {sides.url} have {sides.num_channels} channel(s); expected 2 "
                         "(pre side, post side)")
    else:
        inputs = {"cleft_prob": cleft_prob, "sides": sides}
    for name, vol in (("side probabilities", sides), ("fragments", fragments)):
        if vol is None:
            continue
        if not vol.roi.contains(cleft_prob.roi) or vol.voxel_size_nm != cleft_prob.voxel_size_nm:
            raise ValueError(f"{name} {vol.url} (Roi {vol.roi}, voxel size {vol.voxel_size_nm}) must cover the cleft "
                             f"probability's Roi {cleft_prob.roi} at its voxel size {cleft_prob.voxel_size_nm}")
    block_shape = Coordinate(block_shape) if block_shape else cleft_prob.chunk_shape
    context = _radius_voxels(params.max_extent_nm, cleft_prob.voxel_size_nm) + \
        _radius_voxels(params.dilation_nm, cleft_prob.voxel_size_nm)
    if overwrite:
        _remove_tables(out_dir)
    stage = functools.partial(synapses_block, params, cleft_prob.roi, cleft_prob.voxel_size_nm, out_dir)
    run_blockwise(stage, cleft_prob.roi, block_shape, task="synapses",
                  inputs={**inputs, "fragments": fragments}, context=context,
                  markers_at=out_dir, params={**asdict(params), "block": list(block_shape)}, scheduler=scheduler,
                  num_workers=num_workers, overwrite=overwrite, progress=progress)
    return read_synapses(out_dir)


def cleft_ids(cleft_prob: np.ndarray, params: DetectParams, origin, volume_shape) -> np.ndarray:
    """uint64 cleft labels of a (z, y, x) array: each component's id is the synapse id detection gives it
    (1 + the global linear index of its lowest voxel); components below ``min_size`` get 0."""
    import cc3d
    import fastremap

    prob = as_probability(cleft_prob, "cleft probability")
    components = cc3d.connected_components(prob >= params.threshold, connectivity=26)
    stats = cc3d.statistics(components)
    ids = np.zeros(len(stats["voxel_counts"]), np.uint64)
    for label in np.flatnonzero(stats["voxel_counts"][1:] >= params.min_size) + 1:
        box = stats["bounding_boxes"][label]
        lowest = np.array([b.start for b in box]) + np.argwhere(components[box] == label)[0]
        ids[label] = 1 + np.ravel_multi_index(tuple(lowest + np.asarray(origin)), tuple(volume_shape))
    return fastremap.remap(components, dict(enumerate(ids.tolist())), preserve_missing_labels=True).astype(np.uint64)


def clefts_block(params: DetectParams, volume_roi: Roi, keep: np.ndarray, block, inputs):
    """The block's cleft labels, only for the synapses in ``keep`` (the detected table's ids)."""
    ids = cleft_ids(inputs["prediction"][0], params, tuple(block.read_roi.begin - volume_roi.begin),
                    tuple(volume_roi.shape))
    ids[~np.isin(ids, keep)] = 0
    return {"clefts": ids[block.write_slices()]}


def write_cleft_volume(prediction: Volume, table: pd.DataFrame, out_url: str, *,
                       params: DetectParams = DEFAULT_DETECT_PARAMS, block_shape=None, scheduler=None,
                       num_workers=None, overwrite=False, progress=True) -> Volume:
    """A uint64 Volume of the detected clefts: each cleft voxel holds its synapse's ``id`` (0 elsewhere).

    Computed blockwise with the detection's context, so the labels agree with the table for
    clefts up to ``max_extent_nm``.
    """
    from chunks import create_volume

    check_prediction(prediction)
    block_shape = Coordinate(block_shape) if block_shape else prediction.chunk_shape
    out = create_volume(out_url, prediction.shape, np.uint64, prediction.voxel_size_nm, offset=prediction.offset,
                        chunk_shape=prediction.chunk_shape, overwrite=overwrite, layer_type="segmentation")
    keep = np.unique(table["id"].to_numpy(np.uint64))
    stage = functools.partial(clefts_block, params, prediction.roi, keep)
    run_blockwise(stage, prediction.roi, block_shape, task="clefts", inputs={"prediction": prediction},
                  outputs={"clefts": out}, context=_radius_voxels(params.max_extent_nm, prediction.voxel_size_nm),
                  params={**asdict(params), "block": list(block_shape), "synapses": len(keep)}, scheduler=scheduler,
                  num_workers=num_workers, overwrite=overwrite, progress=progress)
    return out


def read_synapses(out_dir: str) -> pd.DataFrame:
    """The merged per-block tables of a run, sorted by (id, post_fragment)."""
    from chunks.fs import filesystem
    from chunks.urls import parse_url

    url = parse_url(out_dir)
    fs = filesystem(url)
    tables = []
    for path in sorted(fs.glob(url.join("synapses-*.parquet"))):
        with fs.open(path, "rb") as f:
            tables.append(pd.read_parquet(f))
    tables = [t for t in tables if len(t)]
    if not tables:
        return empty_table()
    return pd.concat(tables, ignore_index=True).sort_values(["id", "post_fragment"], ignore_index=True)


def _write_table(table: pd.DataFrame, out_dir: str, name: str) -> None:
    from chunks.fs import filesystem
    from chunks.urls import parse_url

    url = parse_url(out_dir)
    fs = filesystem(url)
    if url.protocol == "file":
        fs.makedirs(url.path, exist_ok=True)
    with fs.open(url.join(name), "wb") as f:
        table.to_parquet(f, index=False)


def _remove_tables(out_dir: str) -> None:
    from chunks.fs import filesystem
    from chunks.urls import parse_url

    url = parse_url(out_dir)
    fs = filesystem(url)
    for path in fs.glob(url.join("synapses-*.parquet")):
        fs.rm(path)
