"""Fragments: a watershed on the affinity graph whose result does not depend on block size.

The default method is steepest ascent on the affinity graph (the first step of
zwatershed/waterz): every voxel points across its strongest edge (one pointer per voxel;
among equal edges, one that leaves the plateau, then a fixed order), edges of at least
``aff_high`` are always linked, edges below ``aff_low`` never, and fragments are the
connected components of the links (cc3d). Whether an edge is linked depends only on the
edges within two voxels of it, so a block that reads two voxels of context decides every
link exactly as a single-block run does. zwatershed also drains whole plateaus to their
exits by a breadth-first search, which no bounded context reproduces; here a plateau
without an exit next to a voxel may stay split into small fragments, which
agglomeration then joins.

A fragment cut by a block face is written as pieces with ids from the block's range; the
region graph records which pieces are linked across the face (``linked`` edges), and
agglomeration joins them first. The segmentation at every threshold is therefore the
same for any block size, voxel for voxel up to renumbering.

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

# cc3d's 6-connected voxel connectivity graph bits (towards +1, towards -1) by our axis z, y, x,
# for the transposed (x, y, z) view that we hand to cc3d (Fortran order: no copy either way)
_CC3D_BITS = ((16, 32), (4, 8), (1, 2))

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
    linked. Every voxel whose strongest edge reaches ``aff_low`` points along that edge
    (steepest ascent); among equally strong edges it prefers one that leaves its plateau,
    then the first of -z, -y, -x, +z, +y, +x, so each voxel has exactly one pointer and
    two basins are never joined by a tie. An edge is linked when one of its voxels points
    along it, or when its affinity is ``>= aff_high``. ``first_plane_absent[c]``: the first plane of channel ``c``
    refers to voxels outside the volume (True for a whole volume; False for a block that
    has context there). Edges leaving the array are absent. Decisions are exact for
    voxels two voxels or more inside the array, or at the volume's edge.
    """
    a = as_uint8_affinities(affs).astype(np.int16)
    low, high = affinity_level(aff_low), affinity_level(aff_high)
    for c in range(3):
        if first_plane_absent[c]:
            a[(c, *_plane(c, 0))] = -1
    pointer = _pointers(a, low)
    links = np.zeros(a.shape, dtype=bool)
    for c in range(3):
        value = a[c][_after(c)]
        along = (pointer[_after(c)] == c) | (pointer[_before(c)] == c + 3)
        links[c][_after(c)] = (value >= low) & (along | (value >= high))
    return links


def _pointers(a: np.ndarray, low: int) -> np.ndarray:
    """Each voxel's steepest-ascent direction: 0..2 = -z,-y,-x, 3..5 = +z,+y,+x, -1 = none.

    Among equally strong edges a voxel prefers one that leads out of its plateau (to a
    neighbour whose strongest edge is stronger still), then the first in the order
    above. Needs the strongest edge of every neighbour: two voxels of context.
    """
    strongest = _strongest_edge(a)
    pointer = np.full(strongest.shape, -1, dtype=np.int8)
    # later assignments win: go through the directions in reverse order of preference,
    # first for all strongest edges, then again for those that leave the plateau
    for exits in (False, True):
        for c in (2, 1, 0):
            here, there = _before(c), _after(c)  # towards +c: from v = here to v + e_c = there
            tied = a[c][there] == strongest[here]
            if exits:
                tied &= strongest[there] > strongest[here]
            pointer[here] = np.where(tied, np.int8(c + 3), pointer[here])
        for c in (2, 1, 0):
            here, there = _after(c), _before(c)  # towards -c
            tied = a[c][here] == strongest[here]
            if exits:
                tied &= strongest[there] > strongest[here]
            pointer[here] = np.where(tied, np.int8(c), pointer[here])
    return np.where(strongest < max(low, 0), np.int8(-1), pointer)


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
        linked = links[c][_after(c)].view(np.uint8)
        vcg[_after(c)] |= linked * np.uint8(minus)
        vcg[_before(c)] |= linked * np.uint8(plus)
    labels = np.ascontiguousarray(cc3d.color_connectivity_graph(vcg.T, connectivity=6).T)
    if background is not None:
        np.copyto(labels, 0, where=background)
    import fastremap

    labels, _ = fastremap.renumber(labels, preserve_zero=True, in_place=True)
    return labels, int(labels.max(initial=0))


def fragments(affs: np.ndarray, *, aff_low: float = 0.0001, aff_high: float = 0.9999,
              id_offset: int = 0, links: np.ndarray | None = None) -> np.ndarray:
    """Fragments of a whole affinity volume ``(3, z, y, x)`` -> uint64 labels ``(z, y, x)``.

    ``links``: the link mask, if already computed (:func:`link_mask`; the region graph
    needs it too).

    >>> from connecto.segment.affinities import affinities_from_labels
    >>> labels = np.repeat([[[1, 1, 2, 2]]], 2, axis=1)
    >>> fragments(affinities_from_labels(labels))[0].tolist()
    [[1, 1, 2, 2], [1, 1, 2, 2]]
    """
    affs = as_uint8_affinities(affs)
    if links is None:
        links = link_mask(affs, aff_low, aff_high)
    local, _ = components(links, background_mask(affs, aff_low))
    return offset_ids(local, id_offset)


def offset_ids(local: np.ndarray, id_offset: int) -> np.ndarray:
    out = local.astype(np.uint64)
    if id_offset:
        out = np.where(local > 0, out + np.uint64(id_offset), np.uint64(0))
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
    import cc3d
    import fastremap

    from chunks import Roi

    labels = np.ascontiguousarray(labels)  # first-voxel indices are raster (C) order
    offset = np.asarray(offset, dtype=np.int64)
    volume_roi = volume_roi if volume_roi is not None else Roi(tuple(offset), labels.shape)
    ids, first = fastremap.unique(labels, return_index=True)
    keep = ids != 0
    ids, first = ids[keep].astype(np.uint64), first[keep].astype(np.int64)
    if ids.size == 0:
        return empty_fragment_table()
    first_zyx = np.stack(np.unravel_index(first, labels.shape), axis=1) + offset
    anchor = np.ravel_multi_index(tuple((first_zyx - np.asarray(volume_roi.begin)).T), tuple(volume_roi.shape))
    # sizes, centroids and boxes in one pass over the voxels (cc3d), on labels 1..n
    compact, _ = fastremap.renumber(labels, preserve_zero=True)
    compact_of = compact.ravel()[first].astype(np.int64)  # the compact label of each id
    stats = cc3d.statistics(compact, no_slice_conversion=True)
    columns = {"id": ids, "size": stats["voxel_counts"][compact_of].astype(np.int64), "anchor": anchor.astype(np.int64)}
    centroids = stats["centroids"][compact_of]
    for axis, name in enumerate("zyx"):
        columns[f"{name}_nm"] = (centroids[:, axis] + offset[axis]) * voxel_size_nm[axis]
    box = stats["bounding_boxes"][compact_of].astype(np.int64)  # per axis: first and last index
    for axis, name in enumerate("zyx"):
        columns[f"bbox_{name}0"] = box[:, 2 * axis] + offset[axis]
        columns[f"bbox_{name}1"] = box[:, 2 * axis + 1] + 1 + offset[axis]
    return pd.DataFrame(columns)[list(FRAGMENT_COLUMNS)]


def empty_fragment_table() -> pd.DataFrame:
    return pd.DataFrame({name: np.empty(0, np.uint64 if name == "id" else np.float64 if name.endswith("_nm")
                                        else np.int64) for name in FRAGMENT_COLUMNS})


def distance_watershed(affs: np.ndarray, *, boundary_threshold: float = 0.5, min_seed_distance: int = 3,
                       id_offset: int = 0) -> np.ndarray:
    """Baseline (the lsd recipe): scikit-image watershed seeded at maxima of the boundary distance.

    Boundary voxels are those with an edge below ``boundary_threshold`` (both sides of a
    cut); seeds are maxima of the distance transform of the other voxels, at least
    ``min_seed_distance`` apart; the watershed floods the negated distance over every
    voxel (boundaries included). Not
    block-size invariant (flooding is global).
    """
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    a = as_uint8_affinities(affs).astype(np.int16)
    for c in range(3):
        a[(c, *_plane(c, 0))] = AFFINITY_MAX  # no neighbour: no boundary
    weakest = a.min(axis=0)
    for c in range(3):
        np.minimum(weakest[_before(c)], a[c][_after(c)], out=weakest[_before(c)])
    inside = weakest >= affinity_level(boundary_threshold)
    distance = ndimage.distance_transform_edt(inside)
    peaks = peak_local_max(distance, min_distance=min_seed_distance, labels=inside.astype(np.int32),
                           exclude_border=False)
    seeds = np.zeros(weakest.shape, np.int32)
    seeds[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-distance, seeds)
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
