"""Fragments: a watershed on the affinity graph whose result does not depend on block size.

The default method is steepest ascent on the affinity graph (the first step of
zwatershed/waterz): every voxel is linked to the neighbour(s) across its strongest edge,
edges of at least ``aff_high`` are always linked, edges below ``aff_low`` never, and
fragments are the connected components of the links (cc3d). Whether an edge is linked
depends only on the edges of its two voxels, so a block that reads one voxel of context
decides every link exactly as a single-block run does. A fragment cut by a block face is
written as pieces with ids from the block's range; the region graph records which pieces
are linked across the face (``linked`` edges), and agglomeration joins them first. The
segmentation at every threshold is therefore the same for any block size, voxel for
voxel up to renumbering.

Voxels without any edge of at least ``aff_low`` are background (0).

``distance_watershed`` (the lsd recipe: scikit-image watershed seeded at maxima of the
distance to boundaries) is kept as a baseline for measurements; it is not block-size
invariant.

Fragment ids are ``id_offset + 1 .. id_offset + n``; blockwise, ``id_offset`` is
``block_id * voxels_per_block``, so ids are globally unique without a second pass.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .affinities import AFFINITY_MAX, as_uint8_affinities

# cc3d's 6-connected voxel connectivity graph bits, by array axis: (towards +1, towards -1)
_CC3D_BITS = ((1, 2), (4, 8), (16, 32))

FRAGMENT_COLUMNS = ("id", "size", "anchor", "z_nm", "y_nm", "x_nm",
                    "bbox_z0", "bbox_y0", "bbox_x0", "bbox_z1", "bbox_y1", "bbox_x1")


def affinity_level(value: float) -> int:
    """The uint8 level at or above which an affinity counts as ``>= value`` (value in [0, 1])."""
    if not 0.0 <= value <= 1.0 + 1e-9:
        raise ValueError(f"affinity threshold {value} must be in [0, 1]")
    return int(np.ceil(value * AFFINITY_MAX - 1e-6))


def link_mask(affs: np.ndarray, aff_low: float = 0.0001, aff_high: float = 0.9999,
              first_plane_absent=(True, True, True)) -> np.ndarray:
    """Which edges of the affinity graph are linked: bool ``(3, z, y, x)``.

    ``links[c, v]`` says whether voxel ``v`` and its neighbour at -1 along axis ``c`` are
    linked. An edge is linked when its affinity is ``>= aff_high``, or when it is
    ``>= aff_low`` and is the strongest edge of one of its two voxels (all ties count).
    ``first_plane_absent[c]``: the first plane of channel ``c`` refers to voxels outside
    the volume (True for a whole volume; False for a block that has context there).
    Edges leaving the array are absent. Decisions are exact for voxels whose six edges
    are all in the array or absent from the volume.
    """
    a = as_uint8_affinities(affs).astype(np.int16)
    low, high = affinity_level(aff_low), affinity_level(aff_high)
    for c in range(3):
        if first_plane_absent[c]:
            a[(c, *_plane(c, 0))] = -1
    strongest = _strongest_edge(a)
    links = np.zeros(a.shape, dtype=bool)
    for c in range(3):
        value = a[c][_after(c)]
        here, there = strongest[_after(c)], strongest[_before(c)]
        candidate = (value >= low) & ((value == here) | (value == there))
        links[c][_after(c)] = candidate | (value >= high)
    return links


def background_mask(affs: np.ndarray, aff_low: float = 0.0001, first_plane_absent=(True, True, True)) -> np.ndarray:
    """Voxels none of whose edges reaches ``aff_low``."""
    a = as_uint8_affinities(affs).astype(np.int16)
    for c in range(3):
        if first_plane_absent[c]:
            a[(c, *_plane(c, 0))] = -1
    return _strongest_edge(a) < affinity_level(aff_low)


def components(links: np.ndarray, background: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Connected components of the linked voxel graph: (uint32 labels 1..n, n); background is 0."""
    import cc3d

    shape = links.shape[1:]
    if 0 in shape:
        return np.zeros(shape, np.uint32), 0
    vcg = np.zeros(shape, dtype=np.uint8)
    for c, (plus, minus) in enumerate(_CC3D_BITS):
        linked = links[c][_after(c)]
        vcg[_after(c)] |= np.where(linked, np.uint8(minus), np.uint8(0))
        vcg[_before(c)] |= np.where(linked, np.uint8(plus), np.uint8(0))
    labels = cc3d.color_connectivity_graph(vcg, connectivity=6)
    if background is not None:
        labels[background] = 0
    import fastremap

    labels, _ = fastremap.renumber(labels, preserve_zero=True, in_place=True)
    return labels, int(labels.max(initial=0))


def fragments(affs: np.ndarray, *, aff_low: float = 0.0001, aff_high: float = 0.9999,
              id_offset: int = 0) -> np.ndarray:
    """Fragments of a whole affinity volume ``(3, z, y, x)`` -> uint64 labels ``(z, y, x)``.

    >>> from connecto.segment.affinities import affinities_from_labels
    >>> labels = np.repeat([[[1, 1, 2, 2]]], 2, axis=1)
    >>> fragments(affinities_from_labels(labels))[0].tolist()
    [[1, 1, 2, 2], [1, 1, 2, 2]]
    """
    affs = as_uint8_affinities(affs)
    links = link_mask(affs, aff_low, aff_high)
    local, _ = components(links, background_mask(affs, aff_low))
    return offset_ids(local, id_offset)


def offset_ids(local: np.ndarray, id_offset: int) -> np.ndarray:
    out = local.astype(np.uint64)
    if id_offset:
        out[local > 0] += np.uint64(id_offset)
    return out


def fragment_table(labels: np.ndarray, *, offset=(0, 0, 0), volume_roi=None,
                   voxel_size_nm=(1, 1, 1)) -> pd.DataFrame:
    """One row per fragment: id, size, anchor, centroid in nm, bounding box in voxels.

    ``offset`` is the world voxel position of ``labels[0, 0, 0]``; ``volume_roi`` the
    Roi of the whole volume (default: ``labels`` alone). ``anchor`` is the raster index,
    in the volume, of the fragment's first voxel: the same for a fragment and for the
    first of its pieces in a blockwise run, so a key that does not depend on ids.
    Centroids are ``voxel position * voxel size`` in nm (world frame); bounding boxes
    ``[bbox_*0, bbox_*1)`` in world voxels.
    """
    import fastremap
    from scipy import ndimage

    from chunks import Roi

    offset = np.asarray(offset, dtype=np.int64)
    volume_roi = volume_roi if volume_roi is not None else Roi(tuple(offset), labels.shape)
    ids, first, counts = fastremap.unique(labels, return_index=True, return_counts=True)
    keep = ids != 0
    ids, first, counts = ids[keep].astype(np.uint64), first[keep].astype(np.int64), counts[keep].astype(np.int64)
    if ids.size == 0:
        return empty_fragment_table()
    first_zyx = np.stack(np.unravel_index(first, labels.shape), axis=1) + offset
    anchor = np.ravel_multi_index(tuple((first_zyx - np.asarray(volume_roi.begin)).T), tuple(volume_roi.shape))
    columns = {"id": ids, "size": counts, "anchor": anchor.astype(np.int64)}
    compact, _ = fastremap.renumber(labels, preserve_zero=True)
    compact_of = compact.ravel()[first].astype(np.int64)  # the compact label of each id
    flat = compact.ravel()
    for axis, name in enumerate("zyx"):
        shape = [1, 1, 1]
        shape[axis] = labels.shape[axis]
        coord = np.broadcast_to(np.arange(labels.shape[axis], dtype=np.float64).reshape(shape), labels.shape)
        sums = np.bincount(flat, weights=coord.ravel(), minlength=int(compact_of.max()) + 1)
        columns[f"{name}_nm"] = (sums[compact_of] / counts + offset[axis]) * voxel_size_nm[axis]
    slices = ndimage.find_objects(compact)
    bbox = np.array([[s.start for s in slices[k - 1]] + [s.stop for s in slices[k - 1]] for k in compact_of],
                    dtype=np.int64).reshape(-1, 6)
    for i, name in enumerate(FRAGMENT_COLUMNS[-6:]):
        columns[name] = bbox[:, i] + offset[i % 3]
    return pd.DataFrame(columns)[list(FRAGMENT_COLUMNS)]


def empty_fragment_table() -> pd.DataFrame:
    return pd.DataFrame({name: np.empty(0, np.uint64 if name == "id" else np.float64 if name.endswith("_nm")
                                        else np.int64) for name in FRAGMENT_COLUMNS})


def distance_watershed(affs: np.ndarray, *, boundary_threshold: float = 0.5, min_seed_distance: int = 3,
                       id_offset: int = 0) -> np.ndarray:
    """Baseline (lsd recipe): scikit-image watershed seeded at maxima of the boundary distance.

    Boundaries are voxels whose mean affinity is below ``boundary_threshold``; seeds are
    maxima of the distance transform of the non-boundary voxels, at least
    ``min_seed_distance`` apart. Not block-size invariant (flooding is global).
    """
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    mean = as_uint8_affinities(affs).mean(axis=0) / AFFINITY_MAX
    inside = mean >= boundary_threshold
    distance = ndimage.distance_transform_edt(inside)
    peaks = peak_local_max(distance, min_distance=min_seed_distance, labels=inside.astype(np.int32),
                           exclude_border=False)
    seeds = np.zeros(mean.shape, np.int32)
    seeds[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-distance, seeds, mask=inside)
    return offset_ids(labels, id_offset)


# --- array helpers -------------------------------------------------------------------

def _plane(axis: int, index: int) -> tuple:
    sl = [slice(None)] * 3
    sl[axis] = index
    return tuple(sl)


def _after(axis: int) -> tuple:
    """Voxels that have a neighbour at -1 along ``axis``."""
    sl = [slice(None)] * 3
    sl[axis] = slice(1, None)
    return tuple(sl)


def _before(axis: int) -> tuple:
    """Those neighbours."""
    sl = [slice(None)] * 3
    sl[axis] = slice(None, -1)
    return tuple(sl)


def _strongest_edge(a: np.ndarray) -> np.ndarray:
    """The strongest of each voxel's six edges (int16; -1 where a voxel has none)."""
    strongest = a.max(axis=0)
    for c in range(3):
        np.maximum(strongest[_before(c)], a[c][_after(c)], out=strongest[_before(c)])
    return strongest
