"""Skeletons with kimimaro (TEASAR), whole-volume or block by block and merged.

A block is skeletonised with one voxel of overlap on its high faces and kimimaro's
``fix_borders``, which puts a vertex at the centre of every place a label crosses a block
face; the two blocks sharing that face put it at the same point, so concatenating the
blocks' skeletons and merging identical vertices joins them (as igneous does).
Labels are kept when their size over the whole volume reaches ``min_voxels`` (a size
threshold per label, not kimimaro's per connected component), so the result does not
depend on the block size.

kimimaro indexes arrays x, y, z; the transposition is in :func:`skeletonize_block` only.
The result is a skeleton table (``tables.SKELETON_COLUMNS``), z, y, x in nm, where a
vertex at voxel index i lies at i * voxel size (+ offset).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_array, csgraph

from chunks import Coordinate, Roi

DEFAULT_TEASAR = {"scale": 1.5, "const": 300, "pdrf_scale": 100000, "pdrf_exponent": 4,
                  "soma_acceptance_threshold": 3500, "soma_detection_threshold": 750,
                  "soma_invalidation_const": 300, "soma_invalidation_scale": 2}


def large_labels(labels: np.ndarray, min_voxels: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, sizes) of the non-zero labels with at least ``min_voxels`` voxels."""
    import fastremap

    ids, counts = fastremap.unique(labels, return_counts=True)
    keep = (ids != 0) & (counts >= min_voxels)
    return ids[keep].astype(np.uint64), counts[keep].astype(np.int64)


def skeletonize_block(labels: np.ndarray, voxel_size_nm, keep_ids, *, offset=(0, 0, 0),
                      teasar_params: dict | None = None, fix_borders: bool = True, parallel: int = 1) -> dict:
    """kimimaro skeletons {label: osteoid.Skeleton} of the labels in ``keep_ids`` found in
    the zyx array ``labels``; vertices x, y, z in nm, shifted by ``offset`` (voxels, zyx)."""
    import fastremap
    import kimimaro

    present = np.intersect1d(fastremap.unique(labels), np.asarray(keep_ids, dtype=np.uint64))
    if len(present) == 0:
        return {}
    masked = fastremap.mask_except(np.array(labels, copy=True), present.astype(labels.dtype).tolist())
    anisotropy = tuple(float(v) for v in Coordinate(voxel_size_nm)[::-1])  # x, y, z for kimimaro
    skeletons = kimimaro.skeletonize(
        masked.T, teasar_params=teasar_params or DEFAULT_TEASAR, anisotropy=anisotropy, dust_threshold=0,
        progress=False, fix_branching=True, fix_borders=fix_borders, parallel=parallel)
    shift = np.asarray(Coordinate(offset)[::-1], np.float32) * np.asarray(anisotropy, np.float32)
    for skeleton in skeletons.values():
        skeleton.vertices = skeleton.vertices + shift
    return skeletons


def merge_skeletons(parts: list[dict]) -> dict:
    """Join per-block skeletons of the same label, merging vertices they share."""
    import osteoid

    by_label: dict[int, list] = {}
    for part in parts:
        for label, skeleton in part.items():
            by_label.setdefault(int(label), []).append(skeleton)
    merged = {}
    for label, skeletons in by_label.items():
        skeleton = skeletons[0] if len(skeletons) == 1 else osteoid.Skeleton.simple_merge(skeletons)
        merged[label] = skeleton.consolidate()
    return merged


def block_rois(shape, block_shape) -> list[tuple[Roi, Roi]]:
    """(write Roi, read Roi) per block: the read Roi has one more voxel on each high face
    (inside the volume)."""
    bounds = Roi((0, 0, 0), shape)
    out = []
    for write in bounds.blocks(Coordinate(block_shape)):
        out.append((write, Roi(write.offset, write.shape + 1).intersect(bounds)))
    return out


def skeletonize(labels: np.ndarray, voxel_size_nm, *, min_voxels: int = 1000, block_shape=None, offset=(0, 0, 0),
                teasar_params: dict | None = None, parallel: int = 1) -> pd.DataFrame:
    """Skeleton table of every label of ``labels`` (zyx) with >= ``min_voxels`` voxels.

    ``block_shape``: skeletonise block by block (zyx voxels) and merge; None: in one call.
    ``offset``: the voxel offset of ``labels`` in the world (zyx).

    Examples
    --------
    >>> labels = np.zeros((8, 8, 40), np.uint32)
    >>> labels[3:6, 3:6, 2:38] = 7
    >>> table = skeletonize(labels, (4, 4, 4), min_voxels=10)
    >>> sorted(set(table.segment_id.tolist()))
    [7]
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a 3-D zyx array, got shape {labels.shape}")
    keep, _ = large_labels(labels, min_voxels)
    if block_shape is None:
        skeletons = skeletonize_block(labels, voxel_size_nm, keep, offset=offset, teasar_params=teasar_params,
                                      fix_borders=False, parallel=parallel)
    else:
        parts = []
        for _, read in block_rois(labels.shape, block_shape):
            parts.append(skeletonize_block(labels[read.to_slices()], voxel_size_nm, keep,
                                           offset=Coordinate(offset) + read.offset, teasar_params=teasar_params))
        skeletons = merge_skeletons(parts)
    return skeleton_table(skeletons)


def skeleton_table(skeletons: dict) -> pd.DataFrame:
    """{label: osteoid.Skeleton (x, y, z nm)} -> skeleton table (z, y, x nm).

    Each connected piece becomes a tree rooted at its widest vertex (parent -1), node ids
    1..n per label in breadth-first order; edges closing a cycle (rare, after merging
    blocks) are dropped so the table is a forest, as SWC requires."""
    parts = []
    for label in sorted(skeletons):
        skeleton = skeletons[label]
        vertices = np.asarray(skeleton.vertices, np.float64)
        if len(vertices) == 0:
            continue
        radii = np.asarray(skeleton.radii, np.float64) if skeleton.radii is not None else np.zeros(len(vertices))
        order, parent = _forest(len(vertices), np.asarray(skeleton.edges, np.int64).reshape(-1, 2), radii)
        node_of = np.empty(len(vertices), np.int64)
        node_of[order] = np.arange(1, len(order) + 1)
        parent_node = np.where(parent[order] >= 0, node_of[np.maximum(parent[order], 0)], -1)
        parts.append(pd.DataFrame({
            "segment_id": np.uint64(label), "node_id": np.arange(1, len(order) + 1, dtype=np.int64),
            "parent_id": parent_node, "z_nm": vertices[order, 2], "y_nm": vertices[order, 1],
            "x_nm": vertices[order, 0], "radius_nm": np.where(radii[order] >= 0, radii[order], np.nan)}))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in (
            ("segment_id", "uint64"), ("node_id", "int64"), ("parent_id", "int64"), ("z_nm", "float64"),
            ("y_nm", "float64"), ("x_nm", "float64"), ("radius_nm", "float64"))})
    return pd.concat(parts, ignore_index=True)


def _forest(n: int, edges: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(vertex order, parent per vertex, -1 for roots) of a breadth-first spanning forest."""
    graph = coo_array((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()
    _n_parts, part = csgraph.connected_components(graph, directed=False)
    parent = np.full(n, -1, np.int64)
    order = []
    roots = pd.DataFrame({"part": part, "radius": radii, "v": np.arange(n)}).sort_values(
        ["part", "radius", "v"], ascending=[True, False, True]).drop_duplicates("part")["v"].to_numpy()
    for root in roots:
        visited, pred = csgraph.breadth_first_order(graph, int(root), directed=False, return_predecessors=True)
        order.append(visited)
        parent[visited] = np.where(pred[visited] >= 0, pred[visited], -1)
    return np.concatenate(order), parent
