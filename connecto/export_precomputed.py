"""``connecto export RUN OUT --format precomputed``: a run as Neuroglancer precomputed layers.

Layout of OUT::

    raw/                 image, mip 0 at the run's voxel size and a downsampled pyramid
    segmentation/        segmentation (compressed_segmentation), its info names
      mesh/              zmesh legacy meshes (blockwise, connecto.connectome.meshes)
      skeletons/         kimimaro skeletons with a ``radius`` vertex attribute (nm)
      segment_properties/  size (voxels) and synapse counts per segment
    synapses/            precomputed annotations: a line pre -> post per synapse,
                         related to the pre and post segments
    tables/              skeletons.parquet and the blockwise work of the skeleton stage
    state.json           a Neuroglancer state with all layers, sources under ``base_url``

Every layer is written by cloud-volume (meshes by zmesh's own precomputed encoder,
annotations by the ``neuroglancer`` package's writer) and reads back with
``CloudVolume('file://OUT/segmentation')``: ``[...]``, ``.mesh.get(id)``, ``.skeleton.get(id)``.
Files are written uncompressed so that a plain HTTP server (``connecto view``) serves them
as Neuroglancer asks for them. Volumes, meshes and skeletons are written blockwise by the
chunks engine (one process per core by default); cloud-volume indexes x, y, z: the
transposition is in :func:`_write_block` and :func:`_xyz` only.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from chunks import Coordinate, Roi, Volume, open_volume, run_blockwise

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://127.0.0.1:8000"  # where state.json expects OUT to be served; `connecto view` rewrites it
LAYERS = ("raw", "segmentation", "synapses", "tables", "state.json")
RAW_CHUNK = (64, 64, 64)
SEGMENTATION_CHUNK = (64, 64, 64)


def export_precomputed(run_dir, out, *, version=None, database=None, min_voxels: int = 1000,
                       reduction_factor: int = 10, base_url: str = DEFAULT_BASE_URL, scheduler=None,
                       num_workers: int | None = None, overwrite: bool = False, progress: bool = True) -> dict:
    """Write the run at ``run_dir`` (its segmentation, or a proofreading ``version``) to ``out``.

    Segments with at least ``min_voxels`` voxels get a mesh and a skeleton. Returns a summary
    (paths, counts).
    """
    from chunks.cluster import connect

    run_dir, out = Path(run_dir), Path(out)
    config = _run_config(run_dir)
    _prepare(out, overwrite)
    with connect(scheduler, num_workers) as client:  # one cluster for every stage
        return _export(run_dir, out, config, version=version, database=database, min_voxels=min_voxels,
                       reduction_factor=reduction_factor, base_url=base_url,
                       scheduler=client if client is not None else "sync", progress=progress)


def _export(run_dir: Path, out: Path, config: dict, *, version, database, min_voxels, reduction_factor, base_url,
            scheduler, progress) -> dict:
    import time

    seconds: dict = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 2)
        clock = now

    raw = open_volume(config["raw"]) if config.get("raw") else None
    fragments_or_segments = open_volume(str(run_dir / ("fragments" if version is not None else "segmentation")))
    voxel_size = tuple(fragments_or_segments.voxel_size_nm)
    engine = {"scheduler": scheduler, "progress": progress}
    mapping = None
    if version is not None:
        mapping = _mapping_at(run_dir, version, database)

    summary: dict = {"out": str(out)}
    if raw is not None:
        if tuple(raw.voxel_size_nm) != voxel_size or raw.roi != fragments_or_segments.roi:
            raise ValueError(f"raw {config['raw']} ({raw.roi}, {tuple(raw.voxel_size_nm)} nm) does not cover the "
                             f"segmentation ({fragments_or_segments.roi}, {voxel_size} nm): export needs them aligned")
        summary["raw_mips"] = write_image(raw, out / "raw", **engine)
        lap("raw")
    segmentation = write_segmentation(fragments_or_segments, out / "segmentation", mapping=mapping, **engine)
    lap("segmentation")

    from connecto.connectome.meshes import link_mesh_to_segmentation, mesh_volume
    from connecto.connectome.skeleton_stage import skeletonize_volume

    block = Coordinate(SEGMENTATION_CHUNK) * 2  # fewer, larger blocks: kimimaro and zmesh pay per call
    table = skeletonize_volume(segmentation, out / "tables", min_voxels=min_voxels, block_shape=block,
                               overwrite=True, **engine)
    sizes = _sizes(out / "tables" / "skeleton_blocks" / "sizes")
    large = sizes.index[(sizes.index != 0) & (sizes >= min_voxels)].to_numpy(np.uint64)
    lap("skeletonize")
    summary["meshes"] = mesh_volume(segmentation, out / "segmentation" / "mesh", ids=large.tolist(),
                                    reduction_factor=reduction_factor, block_shape=block, overwrite=True, **engine)
    link_mesh_to_segmentation(out / "segmentation", "mesh")
    lap("mesh")
    summary["skeletons"] = write_skeletons(table, out / "segmentation")
    lap("write_skeletons")

    from connecto.connectome import Connectome

    connectome = Connectome.open(run_dir, version=version, database=database)
    write_segment_properties(out / "segmentation", sizes, connectome.neurons)
    summary["synapses"] = write_synapse_annotations(connectome.synapses, voxel_size, fragments_or_segments.roi,
                                                    out / "synapses")
    largest = sizes.drop(0, errors="ignore").sort_values(ascending=False).index[:3].tolist()
    state = export_state(voxel_size, fragments_or_segments.roi, base_url, raw=raw is not None, segments=largest)
    (out / "state.json").write_text(json.dumps(state, indent=1) + "\n")
    lap("properties_synapses_state")
    summary.update(segments=int((sizes.index != 0).sum()), largest_segment=int(largest[0]) if largest else None,
                   seconds=seconds)
    logger.info("export seconds by step: %s", seconds)
    return summary


# -- volumes ------------------------------------------------------------------------------
def _xyz(zyx) -> list:
    return [v for v in reversed(list(zyx))]


def _cloudvolume(path: Path, mip: int = 0, info: dict | None = None):
    from cloudvolume import CloudVolume

    return CloudVolume(f"file://{path.resolve()}", mip=mip, info=info, compress=False, progress=False,
                       fill_missing=False, bounded=True, non_aligned_writes=False, cache=False)


def pyramid_factors(voxel_size_nm, shape, chunk=RAW_CHUNK, max_mips: int = 6) -> list[tuple[int, int, int]]:
    """Downsampling factors (z, y, x) per extra mip: 2 on every axis within 1.5x of the finest
    axis (so 40, 4, 4 nm first halves y and x only), until a mip fits one chunk in y and x.

    >>> pyramid_factors((40, 4, 4), (64, 512, 512))
    [(1, 2, 2), (1, 2, 2), (1, 2, 2)]
    """
    size, shape, out = [float(v) for v in voxel_size_nm], [int(s) for s in shape], []
    while len(out) < max_mips and max(shape[1], shape[2]) > max(chunk[1], chunk[2]):
        finest = min(size)
        factor = tuple(2 if s < 1.5 * finest and n > 1 else 1 for s, n in zip(size, shape))
        out.append(factor)
        size = [s * f for s, f in zip(size, factor)]
        shape = [-(-n // f) for n, f in zip(shape, factor)]
    return out


def downsample_mean(data: np.ndarray, factor) -> np.ndarray:
    """Average pooling of a zyx array by integer ``factor`` (edges padded by repetition), rounded to its
    dtype: chunks.resample's area averaging on a unit grid."""
    from chunks.resample import resample_array

    factor = tuple(int(f) for f in factor)
    shape = tuple(-(-n // f) for n, f in zip(data.shape, factor))
    return resample_array(data, Roi((0, 0, 0), data.shape), (1, 1, 1), factor, Roi((0, 0, 0), shape), "area")


def write_image(raw: Volume, path: Path, *, scheduler=None, num_workers=None, progress=True) -> int:
    """Raw as a precomputed image with its pyramid (area averaging); returns the number of mips."""
    from cloudvolume import CloudVolume

    factors = pyramid_factors(raw.voxel_size_nm, raw.shape)
    info = CloudVolume.create_new_info(num_channels=1, layer_type="image", data_type=raw.dtype.name, encoding="raw",
                                       resolution=_xyz(raw.voxel_size_nm), voxel_offset=_xyz(raw.offset),
                                       volume_size=_xyz(raw.shape), chunk_size=_xyz(RAW_CHUNK))
    cv = _cloudvolume(path, info=info)
    for mip in range(1, len(factors) + 1):
        cv.add_scale(_xyz(_cumulative(factors, mip)), chunk_size=_xyz(RAW_CHUNK))
    cv.commit_info()
    _write_volume(raw, path, "raw", block=Coordinate(RAW_CHUNK) * 2, scheduler=scheduler, num_workers=num_workers,
                  progress=progress)
    for mip, factor in enumerate(factors, start=1):
        _downsample_mip(path, mip, factor)
    return 1 + len(factors)


def _cumulative(factors, upto: int) -> tuple[int, int, int]:
    total = np.ones(3, int)
    for factor in factors[:upto]:
        total *= np.asarray(factor)
    return tuple(int(v) for v in total)


def _downsample_mip(path: Path, mip: int, factor) -> None:
    """Mip ``mip`` from mip ``mip - 1``, a few chunks at a time (bounded memory)."""
    source, target = _cloudvolume(path, mip - 1), _cloudvolume(path, mip)
    lo, hi = np.asarray(target.bounds.minpt), np.asarray(target.bounds.maxpt)  # x, y, z
    step = np.asarray(target.chunk_size) * 4
    xyz_factor = np.asarray(_xyz(factor))
    for x in range(lo[0], hi[0], step[0]):
        for y in range(lo[1], hi[1], step[1]):
            for z in range(lo[2], hi[2], step[2]):
                begin, end = np.array([x, y, z]), np.minimum(np.array([x, y, z]) + step, hi)
                src_begin = begin * xyz_factor
                src_end = np.minimum(end * xyz_factor, np.asarray(source.bounds.maxpt))
                data = np.asarray(source[src_begin[0]:src_end[0], src_begin[1]:src_end[1], src_begin[2]:src_end[2]])
                zyx = data[..., 0].transpose(2, 1, 0)
                small = downsample_mean(zyx, factor)[: end[2] - begin[2], : end[1] - begin[1], : end[0] - begin[0]]
                target[begin[0]:end[0], begin[1]:end[1], begin[2]:end[2]] = small.transpose(2, 1, 0)[..., None]


def write_segmentation(labels: Volume, path: Path, *, mapping=None, scheduler=None, num_workers=None,
                       progress=True) -> Volume:
    """Labels (or fragments relabelled by ``mapping`` = (fragment ids, segment ids)) as a precomputed
    segmentation; returns it opened as a Volume for the mesh and skeleton stages."""
    from cloudvolume import CloudVolume

    info = CloudVolume.create_new_info(num_channels=1, layer_type="segmentation", data_type="uint64",
                                       encoding="compressed_segmentation", resolution=_xyz(labels.voxel_size_nm),
                                       voxel_offset=_xyz(labels.offset), volume_size=_xyz(labels.shape),
                                       chunk_size=_xyz(SEGMENTATION_CHUNK), compressed_segmentation_block_size=[8, 8, 8])
    _cloudvolume(path, info=info).commit_info()
    _write_volume(labels, path, "segmentation", block=Coordinate(SEGMENTATION_CHUNK) * 2, mapping=mapping,
                  scheduler=scheduler, num_workers=num_workers, progress=progress)
    return open_volume(f"precomputed://file://{path.resolve()}")


def _write_volume(source: Volume, path: Path, task: str, *, block, mapping=None, scheduler=None, num_workers=None,
                  progress=True) -> None:
    stage = functools.partial(_write_block, str(path), mapping)
    run_blockwise(stage, source.roi, block, task=f"export-{task}", inputs={"data": source},
                  markers_at=str(path / ".done"), params={"source": str(source.url)}, scheduler=scheduler,
                  num_workers=num_workers, overwrite=True, progress=progress)
    shutil.rmtree(path / ".done", ignore_errors=True)  # the export is rewritten whole; nothing to serve


def _write_block(path: str, mapping, block, inputs) -> None:
    data = inputs["data"]
    if mapping is not None:
        fragment_ids, segment_ids = mapping
        flat = data.ravel()
        where = np.clip(np.searchsorted(fragment_ids, flat), 0, len(fragment_ids) - 1)
        known = fragment_ids[where] == flat
        data = np.where(known, segment_ids[where], flat).astype(np.uint64).reshape(data.shape)
    cv = _cloudvolume(Path(path))
    begin, end = _xyz(block.write_roi.begin), _xyz(block.write_roi.end)
    cv[begin[0]:end[0], begin[1]:end[1], begin[2]:end[2]] = np.ascontiguousarray(data.transpose(2, 1, 0))[..., None]


def _mapping_at(run_dir: Path, version, database):
    from connecto.connectome.run import mapping_at, parse_version, run_threshold

    fragment_ids, segment_ids, _, _ = mapping_at(run_dir, run_threshold(run_dir), parse_version(version), database)
    order = np.argsort(fragment_ids)
    return np.asarray(fragment_ids, np.uint64)[order], np.asarray(segment_ids, np.uint64)[order]


# -- skeletons, properties, annotations ----------------------------------------------------
def write_skeletons(table, layer: Path) -> int:
    """The skeleton table (z, y, x nm) as precomputed skeletons with a ``radius`` attribute."""
    import osteoid

    cv = _cloudvolume(layer)
    cv.info["skeletons"] = "skeletons"
    cv.commit_info()
    cv.skeleton.meta.info = {"@type": "neuroglancer_skeletons", "transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
                             "vertex_attributes": [{"id": "radius", "data_type": "float32", "num_components": 1}],
                             "mip": 0, "sharding": None, "spatial_index": None}
    cv.skeleton.meta.commit_info()
    skeletons = []
    for segment_id, rows in table.groupby("segment_id", sort=True):
        rows = rows.sort_values("node_id")
        vertices = rows[["x_nm", "y_nm", "z_nm"]].to_numpy(np.float32)
        index = {int(n): i for i, n in enumerate(rows["node_id"].tolist())}
        edges = [(index[int(p)], index[int(n)]) for n, p in zip(rows["node_id"], rows["parent_id"]) if p >= 0]
        radii = rows["radius_nm"].fillna(0).to_numpy(np.float32)
        skeleton = osteoid.Skeleton(vertices, np.asarray(edges, np.uint32).reshape(-1, 2), radii=radii,
                                    segid=int(segment_id), extra_attributes=[
                                        {"id": "radius", "data_type": "float32", "num_components": 1}])
        skeletons.append(skeleton)
    if skeletons:
        cv.skeleton.upload(skeletons)
    return len(skeletons)


def write_segment_properties(layer: Path, sizes, neurons) -> None:
    """``segment_properties/info``: voxels and synapse counts (as pre, as post) of every segment."""
    ids = sizes.index[sizes.index != 0].to_numpy(np.uint64)
    counts = neurons.set_index("segment_id")[["n_pre", "n_post"]].reindex(ids).fillna(0).astype(np.int64)
    properties = [
        {"id": "label", "type": "label", "values": [f"{int(i)}" for i in ids]},
        {"id": "size_voxels", "type": "number", "data_type": "uint32",
         "values": np.minimum(sizes.loc[ids].to_numpy(), 2**32 - 1).astype(int).tolist()},
        {"id": "synapses_pre", "type": "number", "data_type": "uint32", "values": counts["n_pre"].tolist()},
        {"id": "synapses_post", "type": "number", "data_type": "uint32", "values": counts["n_post"].tolist()},
    ]
    directory = layer / "segment_properties"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "info").write_text(json.dumps({"@type": "neuroglancer_segment_properties", "inline": {
        "ids": [str(int(i)) for i in ids], "properties": properties}}))
    info_path = layer / "info"
    info = json.loads(info_path.read_text())
    info["segment_properties"] = "segment_properties"
    info_path.write_text(json.dumps(info, indent=1))


def write_synapse_annotations(synapses, voxel_size_nm, roi: Roi, path: Path) -> int:
    """Synapses as precomputed annotations: lines pre -> post in voxels (x, y, z, at voxel centres),
    related to ``pre_segment`` and ``post_segment``, with ``score`` and ``size`` properties."""
    import neuroglancer
    from neuroglancer.write_annotations import AnnotationWriter

    space = neuroglancer.CoordinateSpace(names=["x", "y", "z"], units=["nm", "nm", "nm"],
                                         scales=[float(v) for v in _xyz(voxel_size_nm)])
    writer = AnnotationWriter(space, "line", relationships=["pre_segment", "post_segment"],
                              properties=[neuroglancer.AnnotationPropertySpec(id="score", type="float32"),
                                          neuroglancer.AnnotationPropertySpec(id="size", type="float32")])
    scale = np.asarray(_xyz(voxel_size_nm), np.float64)
    pre = synapses[["pre_x_nm", "pre_y_nm", "pre_z_nm"]].to_numpy(np.float64) / scale + 0.5
    post = synapses[["post_x_nm", "post_y_nm", "post_z_nm"]].to_numpy(np.float64) / scale + 0.5
    written = 0
    for i, row in enumerate(synapses[["synapse_id", "pre_segment", "post_segment", "score", "size"]]
                            .itertuples(index=False)):
        if np.isnan(pre[i]).any() or np.isnan(post[i]).any():
            continue
        writer.add_line(pre[i].tolist(), post[i].tolist(), id=int(row.synapse_id),
                        pre_segment=[int(row.pre_segment)] if row.pre_segment else [],
                        post_segment=[int(row.post_segment)] if row.post_segment else [],
                        score=float(row.score), size=float(row.size))
        written += 1
    writer.write(str(path))
    _bounds_cover_roi(path / "info", roi)
    return written


def _bounds_cover_roi(info_path: Path, roi: Roi) -> None:
    """Annotation bounds = the volume (the writer's default is the annotations' own extent, empty when none)."""
    info = json.loads(info_path.read_text())
    info["lower_bound"], info["upper_bound"] = _xyz(roi.begin), _xyz(roi.end)
    info_path.write_text(json.dumps(info))


# -- the viewer state ------------------------------------------------------------------------
def export_state(voxel_size_nm, roi: Roi, base_url: str = DEFAULT_BASE_URL, *, raw: bool = True,
                 segments=()) -> dict:
    """A Neuroglancer state with every layer of an export served at ``base_url``."""
    from connecto.connectome.neuroglancer import dimensions

    base = base_url.rstrip("/")
    layers = []
    if raw:
        layers.append({"type": "image", "name": "raw", "source": f"precomputed://{base}/raw"})
    layers.append({"type": "segmentation", "name": "segmentation", "source": f"precomputed://{base}/segmentation",
                   "segments": [str(int(s)) for s in segments]})
    layers.append({"type": "annotation", "name": "synapses", "source": f"precomputed://{base}/synapses",
                   "linkedSegmentationLayer": {"pre_segment": "segmentation", "post_segment": "segmentation"},
                   "annotationColor": "#ff00ff"})
    centre = [(b + e) / 2 for b, e in zip(_xyz(roi.begin), _xyz(roi.end))]
    return {"dimensions": dimensions(voxel_size_nm), "position": centre, "layers": layers, "layout": "4panel",
            "selectedLayer": {"layer": "segmentation"}}  # its side panel closed: the data gets the window


def served_state(out, url: str) -> dict:
    """``OUT/state.json`` with its sources moved to where OUT is served now."""
    text = (Path(out) / "state.json").read_text()
    state = json.loads(text)
    for layer in state["layers"]:
        source = layer.get("source")
        if isinstance(source, str) and source.startswith("precomputed://"):
            name = source.rstrip("/").rsplit("/", 1)[-1]
            layer["source"] = f"precomputed://{url.rstrip('/')}/{name}"
    return state


# -- helpers -------------------------------------------------------------------------------
def _run_config(run_dir: Path) -> dict:
    path = run_dir / "run.json"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no run.json); export precomputed needs a "
                                "reconstruction run (connecto reconstruct or connecto demo)")
    return json.loads(path.read_text()).get("config") or {}


def _prepare(out: Path, overwrite: bool) -> None:
    """Refuse an existing non-empty OUT unless ``overwrite``; then remove only the export's own entries."""
    if out.is_file():
        raise FileExistsError(f"{out} is a file; give a directory for the export")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} exists and is not empty; pass --overwrite to replace the export there")
        for name in LAYERS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _sizes(directory: Path):
    import pandas as pd

    files = sorted(directory.glob("*.parquet"))
    sizes = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return sizes.groupby("segment_id")["voxels"].sum()


def is_export(path) -> bool:
    return os.path.isfile(os.path.join(os.fspath(path), "state.json")) and \
        os.path.isdir(os.path.join(os.fspath(path), "segmentation"))
