"""Skeletonise a segmentation Volume blockwise with the chunks engine (resumable).

Two passes and a merge: (1) label sizes per block, summed, pick the labels with
``min_voxels``; (2) kimimaro per block (one voxel of overlap on high faces, fix_borders),
each block's skeletons saved as ``.npz``; (3) merge shared vertices and write
``skeletons.parquet``. Done-markers live under ``<out>/skeleton_blocks/``.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from chunks import Coordinate, Roi, Volume, run_blockwise

from .skeletons import DEFAULT_TEASAR, merge_skeletons, skeleton_table, skeletonize_block
from .store import refuse_existing
from .tables import normalize_skeletons


def skeletonize_volume(segmentation: Volume, out_dir, *, min_voxels: int = 1000, block_shape=None,
                       teasar_params: dict | None = None, scheduler=None, num_workers: int | None = None,
                       overwrite: bool = False, progress: bool = True) -> pd.DataFrame:
    """Skeletons of ``segmentation`` written to ``<out_dir>/skeletons.parquet`` and returned.

    ``out_dir`` may be a connectome directory or a run directory (``connecto skeletonize
    RUN/segmentation RUN``): :meth:`Connectome.open` then carries them (for a run, those of
    the segments a version has not changed). ``<out_dir>/skeletons.json`` records the source.
    """
    out_dir = Path(out_dir)
    target = out_dir / "skeletons.parquet"
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True (CLI: --overwrite) to recompute the skeletons")
    work = out_dir / "skeleton_blocks"
    block_shape = Coordinate(block_shape) if block_shape is not None else parallel_block_shape(segmentation, num_workers)
    teasar = teasar_params or DEFAULT_TEASAR
    common = {"scheduler": scheduler, "num_workers": num_workers, "overwrite": overwrite, "progress": progress,
                  "markers_at": str(work)}
    (work / "sizes").mkdir(parents=True, exist_ok=True)
    run_blockwise(functools.partial(_count_block, str(work / "sizes")), segmentation.roi, block_shape,
                  task="skeleton-sizes", inputs={"labels": segmentation}, params={"source": str(segmentation.url)},
                  **common)
    sizes = pd.concat([pd.read_parquet(f) for f in sorted((work / "sizes").glob("*.parquet"))], ignore_index=True)
    sizes = sizes.groupby("segment_id")["voxels"].sum()
    keep = sizes.index[(sizes.index != 0) & (sizes >= min_voxels)].to_numpy(np.uint64)
    (work / "parts").mkdir(parents=True, exist_ok=True)
    stage = functools.partial(_skeleton_block, str(work / "parts"), tuple(segmentation.voxel_size_nm), keep, teasar)
    run_blockwise(stage, segmentation.roi, block_shape, task="skeletons", inputs={"labels": segmentation},
                  context=(1, 1, 1), params={"min_voxels": min_voxels, "teasar_params": teasar,
                                             "source": str(segmentation.url)}, **common)
    parts = [_load_part(f) for f in sorted((work / "parts").glob("*.npz"))]
    table = normalize_skeletons(skeleton_table(merge_skeletons(parts)))
    refuse_existing(target, overwrite)
    table.to_parquet(target, index=False)
    _atomic(out_dir / SOURCE_FILE, lambda p: p.write_text(json.dumps(skeleton_source(segmentation, min_voxels),
                                                                     indent=1)))
    return table


SOURCE_FILE = "skeletons.json"


def parallel_block_shape(volume: Volume, num_workers: int | None = None, *, blocks_per_worker: int = 2,
                         min_edge: int = 64) -> Coordinate:
    """The volume's chunk shape, halved along its longest axis (not below ``min_edge``) until there are
    ``blocks_per_worker`` blocks per worker: a volume stored in one chunk still keeps every core busy.

    Skeleton and mesh blocks write tables and files, not volume chunks, so any block shape works.
    """
    from chunks.cluster import default_workers

    wanted = blocks_per_worker * (num_workers or default_workers())
    shape = [min(int(c), int(s)) for c, s in zip(volume.chunk_shape, volume.shape)]

    def count(block) -> int:
        return int(np.prod([-(-int(s) // b) for s, b in zip(volume.shape, block)]))

    while count(shape) < wanted:
        axis = int(np.argmax(shape))
        if shape[axis] // 2 < min_edge:
            break
        shape[axis] = -(-shape[axis] // 2)
    return Coordinate(shape)


def skeleton_source(segmentation: Volume, min_voxels: int) -> dict:
    """What skeletons were made from: the segmentation, and the mapping it was relabelled with
    (``connecto segment`` records its SHA-256), so a run can tell whether they are current."""
    relabel = segmentation.attrs.get("connecto_runs", {}).get("relabel", {})
    return {"segmentation": str(segmentation.url),
            "mapping_sha256": relabel.get("params", {}).get("sha256"), "min_voxels": int(min_voxels)}


def _count_block(directory: str, block, inputs) -> None:
    import fastremap

    ids, counts = fastremap.unique(inputs["labels"][block.write_slices()], return_counts=True)
    _atomic(Path(directory) / f"{block.name}.parquet",
            lambda p: pd.DataFrame({"segment_id": ids.astype(np.uint64), "voxels": counts.astype(np.int64)})
            .to_parquet(p, index=False))


def _skeleton_block(directory: str, voxel_size_nm, keep, teasar, block, inputs) -> None:
    # the read Roi is grown by one voxel on every side; keep one voxel beyond the high faces
    high = Roi(block.write_roi.offset, block.write_roi.shape + 1).intersect(block.read_roi)
    labels = inputs["labels"][high.to_slices(relative_to=block.read_roi.begin)]
    skeletons = skeletonize_block(labels, voxel_size_nm, keep, offset=high.offset, teasar_params=teasar)
    _atomic(Path(directory) / f"{block.name}.npz", lambda p: _save_part(p, skeletons))


def _save_part(path, skeletons: dict) -> None:
    labels = sorted(skeletons)
    items = [skeletons[k] for k in labels]
    with open(path, "wb") as f:
        np.savez(f, labels=np.asarray(labels, np.uint64),
                 n_vertices=np.asarray([len(s.vertices) for s in items], np.int64),
                 vertices=np.concatenate([s.vertices for s in items]) if items else np.zeros((0, 3), np.float32),
                 radii=np.concatenate([s.radii for s in items]) if items else np.zeros(0, np.float32),
                 n_edges=np.asarray([len(s.edges) for s in items], np.int64),
                 edges=np.concatenate([s.edges for s in items]) if items else np.zeros((0, 2), np.uint32))


def _load_part(path) -> dict:
    import osteoid

    data = np.load(path)
    v_ends, e_ends = np.cumsum(data["n_vertices"]), np.cumsum(data["n_edges"])
    out = {}
    for i, label in enumerate(data["labels"].tolist()):
        v0, e0 = v_ends[i] - data["n_vertices"][i], e_ends[i] - data["n_edges"][i]
        out[label] = osteoid.Skeleton(data["vertices"][v0:v_ends[i]], data["edges"][e0:e_ends[i]],
                                      radii=data["radii"][v0:v_ends[i]], segid=label)
    return out


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)
