"""The segmentation stages run blockwise through the engine, and the ``segment`` pipeline.

Layout of a run directory ``OUT`` (a local path or a bucket URL):

- ``OUT/fragments``: uint64 fragment Volume (ids from block-derived ranges);
- ``OUT/graph/``, ``OUT/agglomeration/``: the region graph, merge history and mappings as
  Parquet tables (:mod:`.graph_store` reads and writes them);
- ``OUT/segmentation``: the relabelled Volume for one threshold (when asked for);
- ``OUT/segment.json``: parameters and timings (``run.json`` is the pipeline's).

Two passes over voxels: fragments (context 2 voxels), then the region graph (context
2 voxels, reading the fragments of the neighbouring blocks). Agglomeration is either
global (the exact merge history of the merged graph, in this process: small volumes) or
hierarchical (:mod:`.hierarchical`: per block with context on the workers, then a
threshold cut over streamed per-block files; ``params.agglomeration``, ``"auto"`` picks
by volume size). The relabel reads only the per-block mapping files of the fragment ids in
its block. Every block's outputs derive from the
block alone, so reruns resume and a block written twice writes the same bytes. A rerun
also reuses a finished merge history of the same parameters and graph, and the relabel
resumes when the mapping is the same bytes as before.

This module orchestrates; the parameters are :mod:`.params`, the tables :mod:`.graph_store`,
the threshold sweep :mod:`.sweep`. Their public names are importable from here too.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from chunks import Coordinate, Roi, Volume, create_volume, open_volume, run_blockwise
from chunks.blocks import default_block_shape
from chunks.cluster import connect
from chunks.errors import IncompatibleVolumeError
from chunks.fs import filesystem, write_json
from chunks.urls import parse_url
from connecto.defaults import DEFAULT_SCHEDULER, DEFAULT_THRESHOLD

from .affinities import AffinityError, as_uint8_affinities
from .agglomerate import MergeHistory, agglomerate_mean, mutex_watershed
from .fragments import background_mask, components, fragment_table, link_mask, offset_ids
from .graph_store import (
    GRAPH_COLUMNS,
    HISTORY_RECORD,
    final_mapping,
    finished_history,
    history_source,
    join,
    read_block_mapping,
    read_edges,
    read_fragments,
    read_history,
    read_table,
    remove_folder,
    save_mapping,
    write_block_mappings,
    write_history,
    write_mapping,
    write_table,
)
from .params import DEFAULT_PARAMS, METHODS, SegmentParams
from .region_graph import region_graph
from .sweep import evaluate_thresholds

__all__ = [
    "CONTEXT", "GRAPH_COLUMNS", "HISTORY_RECORD", "METHODS", "SegmentParams", "SegmentResult", "agglomerate_run",
    "compute_fragments", "compute_region_graph", "default_threshold", "evaluate_thresholds", "final_mapping",
    "finished_history", "fragments_block", "read_edges", "read_fragments", "read_history", "region_graph_block",
    "relabel_block", "relabel_volume", "segment", "segment_array", "write_mapping",
]

logger = logging.getLogger(__name__)

CONTEXT = Coordinate(2, 2, 2)  # a link depends on the edges within two voxels (see .fragments)
WARM_UP = ("connecto.segment.warm",)  # what every worker loads when a segmentation connects (chunks.cluster)


@dataclass
class SegmentResult:
    run_dir: str
    fragments: Volume
    history: MergeHistory
    segmentation: Volume | None = None
    evaluations: pd.DataFrame | None = None
    thresholds: list = field(default_factory=list)  # the thresholds used (a default one resolved)
    seconds: dict = field(default_factory=dict)


def segment_array(affs: np.ndarray, params: SegmentParams = DEFAULT_PARAMS,
                  voxel_size_nm=(1, 1, 1)) -> tuple[np.ndarray, MergeHistory]:
    """The whole pipeline on an in-memory affinity array: (fragments, merge history).

    The single-block case of :func:`segment`, without storage:
    ``relabel(fragments, history.mapping(t))`` is the segmentation at threshold ``t``.
    """
    from .fragments import fragments as watershed

    affs = as_uint8_affinities(affs)
    links = link_mask(affs, params.aff_low, params.aff_high)
    labels = watershed(affs, aff_low=params.aff_low, links=links)
    if params.fragment_absorb > 0:
        from .absorb import absorb

        labels = absorb(labels.astype(np.uint32), affs, params.fragment_absorb).astype(np.uint64)
    if params.fragment_merge > 0:
        from .premerge import merge_in_block

        labels = merge_in_block(labels, affs, links, params.fragment_merge).astype(np.uint64)
    table = fragment_table(labels, voxel_size_nm=voxel_size_nm)
    edges = region_graph(labels, affs, links=links)
    if params.method == "mutex":
        return labels, mutex_watershed(edges, table, bias=params.bias)
    return labels, agglomerate_mean(edges, table, max_score=params.max_score)


# --- block functions (picklable through functools.partial) ----------------------------

def _first_plane_absent(block, volume_roi: Roi) -> tuple[bool, bool, bool]:
    return tuple(bool(b == v) for b, v in zip(block.read_roi.begin, volume_roi.begin))


def _block_affinities(block, inputs) -> np.ndarray:
    return as_uint8_affinities(inputs["affinities"], where=f"affinities in block {block.read_roi}")


def fragments_block(params: SegmentParams, id_stride: int, volume_roi: Roi, voxel_size_nm, run_dir: str,
                    block, inputs):
    """Fragments of one block's write Roi, ids from the block's range; writes its fragment table."""
    affs = _block_affinities(block, inputs)
    absent = _first_plane_absent(block, volume_roi)
    write = (slice(None), *block.write_slices())
    links = link_mask(affs, params.aff_low, params.aff_high, absent)
    background = background_mask(affs, params.aff_low, absent)
    if params.fragment_absorb > 0:
        local = _absorbed_fragments(params, volume_roi, block, affs, links, background)
        links = links[write]
    else:
        links = links[write]
        local, _ = components(links, background[block.write_slices()])
    if params.fragment_merge > 0:
        from .premerge import merge_in_block

        local = merge_in_block(local, affs[write], links, params.fragment_merge)
    labels = offset_ids(local, block.block_id * id_stride)
    table = fragment_table(labels, offset=block.write_roi.begin, volume_roi=volume_roi, voxel_size_nm=voxel_size_nm)
    write_table(table, run_dir, "graph", f"fragments-{block.name}.parquet")
    return {"fragments": labels}


def _absorbed_fragments(params: SegmentParams, volume_roi: Roi, block, affs, links, background) -> np.ndarray:
    """The block's fragments after :mod:`.absorb` on its read region (uint32 ids 1..n in the write Roi)."""
    import fastremap

    from .absorb import absorb_in_block, trust_links

    read = block.read_roi
    cut = tuple((bool(rb > vb), bool(re < ve)) for rb, re, vb, ve in
                zip(read.begin, read.end, volume_roi.begin, volume_roi.end))
    labels, _ = components(trust_links(links, cut), background)
    labels = absorb_in_block(labels, affs, params.fragment_absorb, cut,
                             origin=tuple(r - v for r, v in zip(read.begin, volume_roi.begin)),
                             volume_shape=tuple(volume_roi.shape))
    local, _ = fastremap.renumber(labels[block.write_slices()], preserve_zero=True)
    return local.astype(np.uint32, copy=False)


def fragments_context(params: SegmentParams) -> Coordinate:
    """The context the fragments stage reads around each block."""
    if params.fragment_absorb > 0:
        from .absorb import CONTEXT_VOXELS

        return CONTEXT + Coordinate(CONTEXT_VOXELS, CONTEXT_VOXELS, CONTEXT_VOXELS)
    return CONTEXT


def region_graph_block(params: SegmentParams, volume_roi: Roi, run_dir: str, block, inputs):
    """The edges whose contacts lie on the + side in this block's write Roi."""
    affs = _block_affinities(block, inputs)
    links = link_mask(affs, params.aff_low, params.aff_high, _first_plane_absent(block, volume_roi))
    edges = region_graph(inputs["fragments"], affs, owned=block.write_slices(), links=links)
    write_table(edges, run_dir, "graph", f"edges-{block.name}.parquet")


def relabel_block(mapping_folder: str, id_stride: int, block, inputs):
    """The block's fragments mapped through the per-block mapping files of the ids it holds (never the
    whole table)."""
    import fastremap

    from .relabel import relabel

    fragments = inputs["fragments"]
    mapping = read_block_mapping(mapping_folder, id_stride, fastremap.unique(fragments))
    return {"segmentation": relabel(fragments, mapping)}


def _block_params(params: SegmentParams) -> dict:
    """The parameters recorded by the fragment and region-graph blocks (the agglomeration mode is not one:
    switching it reuses them)."""
    values = asdict(params)
    values.pop("agglomeration")
    for name in ("fragment_merge", "fragment_absorb"):
        if not values[name]:  # off: plans of runs from before the option stay valid
            values.pop(name)
    return values


# --- stages -------------------------------------------------------------------------

def _check_affinities_volume(affs: Volume) -> None:
    channels = affs.attrs.get("channels")
    if channels and not all(str(c).startswith("affinity_") for c in channels):
        raise AffinityError(f"{affs.url} holds the channels {channels}, not affinities: it is the output of "
                            "another model (a synapse model?)")
    if affs.num_channels != 3:
        raise AffinityError(f"affinities {affs.url} have {affs.num_channels} channel(s); expected 3 "
                            "(z, y, x for the offsets (-1,0,0), (0,-1,0), (0,0,-1))")
    if not (affs.dtype == np.uint8 or affs.dtype.kind == "f"):
        raise AffinityError(f"affinities {affs.url} have dtype {affs.dtype}; expected uint8 (0..255 = 0..1) "
                            "or float in [0, 1]")


def compute_fragments(affs: Volume, run_dir: str, *, params: SegmentParams = DEFAULT_PARAMS, block_shape=None,
                      scheduler=DEFAULT_SCHEDULER, num_workers=None, overwrite=False, progress=True) -> Volume:
    """Blockwise fragments of ``affs`` into ``run_dir/fragments`` (+ fragment tables)."""
    _check_affinities_volume(affs)
    block_shape = Coordinate(block_shape) if block_shape else default_block_shape(affs.shape, affs.chunk_shape)
    out = create_volume(join(run_dir, "fragments"), affs.shape, np.uint64, affs.voxel_size_nm,
                        offset=affs.offset, chunk_shape=_chunk_for(block_shape, affs.shape), overwrite=overwrite,
                        layer_type="segmentation")
    stage = functools.partial(fragments_block, params, block_shape.prod(), affs.roi, affs.voxel_size_nm, run_dir)
    run_blockwise(stage, affs.roi, block_shape, task="fragments", inputs={"affinities": affs},
                  outputs={"fragments": out}, context=fragments_context(params), params={**_block_params(params), "block": list(block_shape)},
                  scheduler=scheduler, num_workers=num_workers, overwrite=overwrite, progress=progress)
    return out


def compute_region_graph(affs: Volume, fragments: Volume, run_dir: str, *, params: SegmentParams = DEFAULT_PARAMS,
                         block_shape=None, scheduler=DEFAULT_SCHEDULER, num_workers=None, overwrite=False,
                         progress=True) -> None:
    """Blockwise region graph into ``run_dir/graph/edges-<block>.parquet``."""
    if fragments.roi != affs.roi:
        raise ValueError(f"fragments (Roi {fragments.roi}) must cover the affinities' Roi {affs.roi}")
    block_shape = Coordinate(block_shape) if block_shape else fragments.chunk_shape
    stage = functools.partial(region_graph_block, params, affs.roi, run_dir)
    run_blockwise(stage, affs.roi, block_shape, task="region_graph",
                  inputs={"affinities": affs, "fragments": fragments}, context=CONTEXT, markers_at=run_dir,
                  params={**_block_params(params), "block": list(block_shape)}, scheduler=scheduler,
                  num_workers=num_workers, overwrite=overwrite, progress=progress)


def agglomerate_run(run_dir: str, params: SegmentParams = DEFAULT_PARAMS, *, edges: pd.DataFrame | None = None,
                    fragments: pd.DataFrame | None = None) -> MergeHistory:
    """Agglomerate the run's merged graph; writes the merge history and the fragment ids.

    ``edges``, ``fragments``: the run's tables if already read (``read_edges(run_dir, GRAPH_COLUMNS)``).
    """
    edges = read_edges(run_dir, GRAPH_COLUMNS) if edges is None else edges
    fragments = read_fragments(run_dir) if fragments is None else fragments
    u, v = edges["u"].to_numpy(), edges["v"].to_numpy()  # sorted by (u, v): duplicates are neighbours
    duplicated = int(np.count_nonzero((u[1:] == u[:-1]) & (v[1:] == v[:-1])))
    if duplicated:
        raise RuntimeError(f"{duplicated} edges of {run_dir} are owned by more than one block; "
                           "rerun the region graph with --overwrite")
    if params.method == "mutex":
        history = mutex_watershed(edges, fragments, bias=params.bias)
    else:
        history = agglomerate_mean(edges, fragments, max_score=params.max_score)
    write_history(run_dir, history, history_source(params, edges, fragments))
    return history


def write_mappings(run_dir: str, history: MergeHistory, threshold: float, params: SegmentParams, id_stride: int,
                   **tables) -> tuple[str, str]:
    """The mapping at ``threshold`` as one table and split per block: (its path, the per-block folder)."""
    mapping = final_mapping(run_dir, history, threshold, params, **tables)  # computed once, not read back
    return save_mapping(run_dir, mapping, threshold), write_block_mappings(mapping, run_dir, threshold, id_stride)


def relabel_volume(fragments: Volume, mapping_path: str, out_url: str, *, id_stride: int, block_shape=None,
                   scheduler=DEFAULT_SCHEDULER, num_workers=None, overwrite=False, progress=True,
                   block_mappings: str | None = None) -> Volume:
    """Write ``fragments`` mapped through the mapping table at ``mapping_path`` into ``out_url``.

    ``block_mappings``: the same mapping split per block (:func:`.graph_store.write_block_mappings`);
    made here from ``mapping_path`` when not given. Each block reads only the files of its ids.
    """
    block_shape = Coordinate(block_shape) if block_shape else fragments.chunk_shape
    out = create_volume(out_url, fragments.shape, np.uint64, fragments.voxel_size_nm, offset=fragments.offset,
                        chunk_shape=fragments.chunk_shape, overwrite=overwrite, layer_type="segmentation")
    url = parse_url(mapping_path)
    with filesystem(url).open(url.path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if block_mappings is None:
        threshold = float(url.path.rsplit("mapping-", 1)[-1].removesuffix(".parquet"))
        run_dir = mapping_path.rsplit("/agglomeration/", 1)[0]
        block_mappings = write_block_mappings(read_table(mapping_path), run_dir, threshold, id_stride)
    stage = functools.partial(run_blockwise, functools.partial(relabel_block, block_mappings, id_stride), fragments.roi,
                              block_shape, task="relabel", inputs={"fragments": fragments},
                              outputs={"segmentation": out}, params={"mapping": mapping_path, "sha256": digest},
                              scheduler=scheduler, num_workers=num_workers, progress=progress)
    try:  # the same mapping as before: finished blocks stay
        stage(overwrite=overwrite)
    except IncompatibleVolumeError:  # another mapping: every block again
        stage(overwrite=True)
    return out


def default_threshold(affs: Volume) -> float:
    """The threshold of a segmentation of ``affs`` when the user gives none.

    The one the model recommends (its checkpoint's ``extra["threshold"]``, which prediction
    records in the affinities' attributes), else :data:`connecto.defaults.DEFAULT_THRESHOLD`.
    """
    from training.checkpoint import recommended_threshold

    recommended = recommended_threshold(affs.attrs, where=f"the attributes of {affs.url}")
    if recommended is None:
        return DEFAULT_THRESHOLD
    logger.info("threshold %s: recommended by the model that predicted %s", recommended, affs.url)
    return recommended


def segment(affinities, run_dir: str, *, thresholds=None, ground_truth=None, params: SegmentParams = DEFAULT_PARAMS,
            write_segmentation: bool = True, block_shape=None, scheduler=DEFAULT_SCHEDULER, num_workers=None,
            overwrite=False, progress=True, ignore_gt_labels=(0,)) -> SegmentResult:
    """Affinities -> fragments -> region graph -> merge history (-> segmentation, evaluation).

    Parameters
    ----------
    affinities : a 3-channel Volume or its URL.
    run_dir : where the run's volumes and tables go (see the module docstring).
    thresholds : merge-score thresholds; with one threshold and ``write_segmentation`` the
        relabelled Volume is written to ``run_dir/segmentation``. For ``method="mutex"``
        the result does not depend on the threshold. Default: one, :func:`default_threshold`.
    ground_truth : optional labels (Volume, URL, ``FILE.h5:/dataset``) of the same Roi:
        every threshold is evaluated from one fragment x GT contingency table.
    block_shape : voxels per block (default: about 128 per axis, whole chunks of the
        affinities; FIB-25 on 2 cores: fragments and region graph 5.0 s, against 7.8 s in
        blocks of one 64^3 chunk).
    scheduler : as the engine's; default (also for None) :data:`connecto.defaults.DEFAULT_SCHEDULER`,
        ``"threads"``. Every stage of the run uses the same client.
    params : :class:`SegmentParams`; ``params.agglomeration`` chooses global or hierarchical
        agglomeration (``"auto"``: by the volume's size), ``params.fragment_merge`` in-block
        agglomeration of the fragments.
    """
    affs = affinities if isinstance(affinities, Volume) else open_volume(affinities)
    _check_affinities_volume(affs)
    block_shape = Coordinate(block_shape) if block_shape else default_block_shape(affs.shape, affs.chunk_shape)
    thresholds = [default_threshold(affs)] if thresholds is None else list(thresholds)
    gt = None
    if ground_truth is not None:
        from .evaluate import open_labels

        gt = open_labels(ground_truth)
        if tuple(gt.roi.shape) != tuple(affs.roi.shape):
            raise ValueError(f"ground truth (shape {gt.roi.shape}) must have the shape of the affinities "
                             f"(shape {affs.roi.shape})")
    if overwrite:
        remove_folder(run_dir, "graph")
        remove_folder(run_dir, "agglomeration")
    mode = params.agglomeration_for(int(affs.roi.shape.prod()))
    seconds = {}
    with connect(DEFAULT_SCHEDULER if scheduler is None else scheduler, num_workers, warm_up=WARM_UP) as client:
        engine = {"block_shape": block_shape, "scheduler": "sync" if client is None else client,
                  "num_workers": num_workers, "overwrite": overwrite, "progress": progress}
        start = time.perf_counter()
        fragments = compute_fragments(affs, run_dir, params=params, **engine)
        seconds["fragments"] = time.perf_counter() - start
        start = time.perf_counter()
        compute_region_graph(affs, fragments, run_dir, params=params, **engine)
        seconds["region_graph"] = time.perf_counter() - start
        start = time.perf_counter()
        if mode == "hierarchical":  # never the whole graph in one process
            from .hierarchical import agglomerate_hierarchical

            _forget(run_dir, HISTORY_RECORD)
            tables = {}
            history = agglomerate_hierarchical(run_dir, params, affs.roi, **engine)
        else:
            from .hierarchical import RECORD

            _forget(run_dir, RECORD)
            tables = {"edges": read_edges(run_dir, GRAPH_COLUMNS), "fragments": read_fragments(run_dir)}
            history = finished_history(run_dir, params, **tables)
            if history is None:
                history = agglomerate_run(run_dir, params, **tables)
        seconds["agglomerate"] = time.perf_counter() - start
        result = SegmentResult(run_dir, fragments, history, thresholds=thresholds, seconds=seconds)
        if gt is not None:
            start = time.perf_counter()
            result.evaluations = evaluate_thresholds(fragments, gt, history, thresholds, ignore_gt_labels,
                                                     run_dir=run_dir, params=params)
            seconds["evaluate"] = time.perf_counter() - start
        if write_segmentation and len(thresholds) == 1:
            start = time.perf_counter()
            write = functools.partial(write_mappings, run_dir, history, thresholds[0], params, block_shape.prod())
            if mode == "hierarchical" and client is not None:  # on a worker: the driver stays light (and
                mapping_path, folder = client.submit(write, pure=False).result()  # its kernels are loaded)
            else:
                mapping_path, folder = write(**tables)
            tables.clear()  # the graph is not needed any more
            result.segmentation = relabel_volume(fragments, mapping_path, join(run_dir, "segmentation"),
                                                 id_stride=block_shape.prod(), block_mappings=folder, **engine)
            seconds["relabel"] = time.perf_counter() - start
    write_json(parse_url(run_dir), "segment.json", {
        "params": asdict(params), "block_shape": list(block_shape), "thresholds": thresholds,
        "affinities": str(affs.url), "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "agglomeration": mode, "num_fragments": int(history.fragment_ids.size),
        "num_merges": len(history.merges) if hasattr(history, "merges") else None,
    })
    return result


def _forget(run_dir: str, record: str) -> None:
    """Remove the record of the other agglomeration mode's results (they no longer describe the run)."""
    url = parse_url(join(run_dir, "agglomeration"))
    fs = filesystem(url)
    if fs.exists(url.join(record)):
        fs.rm(url.join(record))


def _chunk_for(block_shape: Coordinate, shape: Coordinate) -> Coordinate:
    """Chunks of the fragment volume: the block shape, clipped to the volume."""
    return Coordinate(min(b, s) for b, s in zip(block_shape, shape))
