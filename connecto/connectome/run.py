"""A connectome built from a reconstruction run directory, at the agglomeration or at a
proofreading version.

What it reads from ``RUN`` (written by ``connecto reconstruct`` and ``connecto proofread``):

- ``run.json``: ``config.threshold`` is the threshold of the run's segmentation;
- ``fragments``: the uint64 fragment Volume; its voxel size is the connectome's;
- ``graph/fragments-<block>.parquet``: per fragment ``id``, ``size`` (voxels), centroid
  ``z_nm, y_nm, x_nm`` and bounding box ``bbox_{z,y,x}0`` .. ``bbox_{z,y,x}1`` (world
  voxels, [0, 1)); when these statistics are missing they are computed from the fragment
  Volume, block by block;
- ``agglomeration/mapping-<threshold:.4f>.parquet``: fragment -> segment at the run's
  threshold, small segments absorbed (the mapping of ``RUN/segmentation``);
- ``proofreading.sqlite`` (or ``database=``): the edit log; version ``v`` is its mapping
  after edit ``v`` (version 0: the mapping the log was started from);
- ``synapses.parquet`` (optional): one row per (synapse, post partner) against fragments,
  the columns of :func:`connecto.synapses.detect.table_columns`;
- ``skeletons.parquet`` (optional; ``connecto skeletonize RUN/segmentation RUN``): the
  skeletons of ``RUN/segmentation``, carried for the segments that a version leaves as
  they were; ``skeletons.json`` names the mapping they came from, and skeletons of an
  older segmentation (another threshold) are not carried.

Fragments are immutable and segments are a mapping (DESIGN.md), so the connectome at a
version is the fragment statistics and the synapse table, both mapped through that
version's fragment -> segment mapping: no voxel is read when the fragment tables hold
their statistics.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .tables import map_fragments, map_synapses

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
SYNAPSE_FILE = "synapses.parquet"
SKELETON_FILE = "skeletons.parquet"
SKELETON_SOURCE = "skeletons.json"  # written beside it by connecto.connectome.skeleton_stage
HEAD = "head"
READER = "connecto-connectome"  # the author name a read-only look at the edit log opens with (it makes no edits)

CENTROID = ("z_nm", "y_nm", "x_nm")
BBOX = ("bbox_z0", "bbox_y0", "bbox_x0", "bbox_z1", "bbox_y1", "bbox_x1")
STATISTICS = ("id", "size", *CENTROID, *BBOX)


def is_run_directory(path: str | os.PathLike) -> bool:
    """True when ``path`` holds ``run.json``, a ``fragments`` Volume and ``agglomeration/``."""
    path = Path(path)
    return (path / RUN_FILE).is_file() and (path / "fragments").is_dir() and (path / "agglomeration").is_dir()


def tables_from_run(run_dir: str | os.PathLike, version=None, *, database=None) -> tuple[
        pd.DataFrame, pd.DataFrame, tuple[int, int, int], dict, pd.DataFrame | None]:
    """(neurons, synapses, voxel size in nm, meta, skeletons or None) of the run at ``version``.

    ``version``: None for the run's agglomeration at its threshold; an integer ``v >= 0``
    (or its string) for the proofreading edit log's mapping at version ``v``; ``"head"``
    for the log's latest version. A version the log lacks raises ValueError naming the
    versions it has.
    """
    run_dir = Path(run_dir)
    if parse_version(version) is None:  # the run's own segmentation: derived once, then read back
        key = cache_key(run_dir)
        cached = read_cache(run_dir, key)
        if cached is not None:
            return cached
        tables = _tables_from_run(run_dir, None, database)
        write_cache(run_dir, key, tables)
        return tables
    return _tables_from_run(run_dir, version, database)


def _tables_from_run(run_dir: Path, version, database) -> tuple:
    from chunks import open_volume
    from connecto.synapses.evaluate import one_row_per_partner

    threshold = run_threshold(run_dir)
    fragment_ids, segment_ids, version, described = mapping_at(run_dir, threshold, parse_version(version), database)
    fragments = open_volume(str(run_dir / "fragments"))
    voxel_size_nm = tuple(int(v) for v in fragments.voxel_size_nm)
    neurons = neuron_table(fragment_statistics(run_dir, fragments), fragment_ids, segment_ids, voxel_size_nm)
    # a post neuron cut into several fragments at one cleft is one partner, not several
    synapses = one_row_per_partner(map_synapses(fragment_synapses(run_dir), fragment_ids, segment_ids), "cleft_id")
    autapses = int(((synapses["pre_segment"] == synapses["post_segment"]) & (synapses["pre_segment"] != 0)).sum())
    if autapses:
        logger.info("%s: %d synapses have pre and post in one segment (autapses; kept)", run_dir, autapses)
    skeletons, carried = run_skeletons(run_dir, threshold, fragment_ids, segment_ids, version is None)
    meta = {"source": f"run {run_dir.resolve()} ({described})", "run_dir": str(run_dir.resolve()),
            "version": version, "threshold": threshold, "mapping": described, "n_autapses": autapses,
            "skeletons": carried}
    return neurons, synapses, voxel_size_nm, meta, skeletons


# --- skeletons ---------------------------------------------------------------------------

def run_skeletons(run_dir: Path, threshold: float, fragment_ids, segment_ids,
                  is_segmentation: bool = False) -> tuple[pd.DataFrame | None, str]:
    """The run's skeletons of the segments this mapping shares with ``RUN/segmentation``, and a
    line saying what was carried (None when the run has no current skeletons).
    ``is_segmentation``: the mapping is that of ``RUN/segmentation`` (every segment is unchanged)."""
    import hashlib

    table_path, source_path = run_dir / SKELETON_FILE, run_dir / SKELETON_SOURCE
    if not table_path.exists():
        return None, f"none: `connecto skeletonize {run_dir}/segmentation {run_dir}` makes them"
    source = json.loads(source_path.read_text()) if source_path.exists() else {}
    mapping_path = run_dir / "agglomeration" / f"mapping-{threshold:.4f}.parquet"
    current = hashlib.sha256(mapping_path.read_bytes()).hexdigest() if mapping_path.exists() else None
    if current is None or source.get("mapping_sha256") != current:
        logger.warning("%s was made from another segmentation than %s/segmentation at threshold %s; not carried "
                       "(rerun `connecto skeletonize %s/segmentation %s --overwrite`)", table_path, run_dir,
                       threshold, run_dir, run_dir)
        return None, "none: skeletons.parquet is of another segmentation"
    if is_segmentation:
        unchanged = np.unique(segment_ids)
    else:
        unchanged = unchanged_segments(*threshold_mapping(run_dir, threshold), fragment_ids, segment_ids)
    table = pd.read_parquet(table_path)
    skeletons = table[table["segment_id"].isin(unchanged)].reset_index(drop=True)
    changed = table["segment_id"].nunique() - skeletons["segment_id"].nunique()
    return skeletons, (f"{skeletons['segment_id'].nunique()} segments from {SKELETON_FILE}"
                       + (f"; {changed} left out, changed since they were skeletonised" if changed else ""))


def unchanged_segments(base_fragments, base_segments, fragment_ids, segment_ids) -> np.ndarray:
    """Segment ids that name the same fragments under both mappings (a fragment that moved
    changes the segment it left and the one it joined)."""
    base_order, order = np.argsort(base_fragments, kind="stable"), np.argsort(fragment_ids, kind="stable")
    if not np.array_equal(np.asarray(base_fragments)[base_order], np.asarray(fragment_ids)[order]):
        return np.empty(0, np.uint64)  # other fragments: nothing is known to be the same
    before, after = np.asarray(base_segments)[base_order], np.asarray(segment_ids)[order]
    moved = before != after
    return np.setdiff1d(np.unique(after), np.union1d(before[moved], after[moved]))


# --- the fragment -> segment mapping ---------------------------------------------------

def parse_version(version) -> int | str | None:
    """None, an integer version (from an int or a string of digits) or ``"head"``."""
    if version is None:
        return None
    if isinstance(version, (int, np.integer)) and not isinstance(version, bool):
        return int(version)
    text = str(version).strip()
    if text == HEAD:
        return HEAD
    if text.isdigit():
        return int(text)
    raise ValueError(f"version {version!r} is not a proofreading version of a run: give an integer >= 0, "
                     f"{HEAD!r} (the latest) or None (the run's agglomeration)")


def mapping_at(run_dir: Path, threshold: float, version: int | str | None, database=None) -> tuple[
        np.ndarray, np.ndarray, int | None, str]:
    """(fragment ids, segment ids, version number, description) of the mapping at ``version``."""
    if version is None:
        return *threshold_mapping(run_dir, threshold), None, f"agglomeration at threshold {threshold}"
    fragment_ids, segment_ids, number, base = proofread_mapping(run_dir, version, database)
    warn_if_base_differs(run_dir, threshold, *base)
    return fragment_ids, segment_ids, number, f"proofreading version {number}"


def run_threshold(run_dir: Path) -> float:
    """The threshold of the run's segmentation (``run.json``: ``config.threshold``)."""
    config = json.loads((run_dir / RUN_FILE).read_text()).get("config") or {}
    if config.get("threshold") is None:
        raise ValueError(f"{run_dir / RUN_FILE} has no config.threshold, so the run's agglomeration is unknown; "
                         "rerun `connecto reconstruct` on it")
    return float(config["threshold"])


def threshold_mapping(run_dir: Path, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(fragment ids, segment ids) of ``agglomeration/mapping-<threshold>.parquet``."""
    path = run_dir / "agglomeration" / f"mapping-{threshold:.4f}.parquet"
    if not path.exists():
        present = sorted(p.name for p in (run_dir / "agglomeration").glob("mapping-*.parquet"))
        raise FileNotFoundError(f"{path} does not exist (the run's threshold is {threshold}; mappings there: "
                                f"{present or 'none'}); rerun `connecto reconstruct` to write it")
    table = pd.read_parquet(path, columns=["fragment", "segment"])
    return table["fragment"].to_numpy(np.uint64), table["segment"].to_numpy(np.uint64)


def proofread_mapping(run_dir: Path, version: int | str, database=None) -> tuple[np.ndarray, np.ndarray, int, tuple]:
    """(fragment ids, segment ids, version) of the edit log at ``version`` (an int or
    ``"head"``), and (fragment ids, segment ids) of its version 0."""
    from proofreading import Proofreader
    from proofreading.proofreader import DATABASE_NAME

    log = database if database is not None else run_dir / DATABASE_NAME
    is_file = not str(log).startswith(("postgresql://", "postgres://"))
    if is_file and not Path(log).exists():
        raise ValueError(f"version {version!r} does not exist: {run_dir} has no proofreading edit log ({log}); "
                         "without a version (--version) the run's agglomeration opens, and `connecto proofread` starts a log")
    with Proofreader.open(run_dir, READER, database=database) as reader:
        head = reader.head_version
        number = head if version == HEAD else version
        if not 0 <= number <= head:
            raise ValueError(f"version {version} does not exist in the edit log {log}: it has versions 0..{head} "
                             "(0: the mapping the log started from; no --version: the run's agglomeration)")
        mapping, base = reader.mapping(number), reader.mapping(0)
    return mapping.fragment_ids, mapping.segment_ids, number, (base.fragment_ids, base.segment_ids)


def warn_if_base_differs(run_dir: Path, threshold: float, fragment_ids, segment_ids) -> None:
    """Log a warning when the edit log's version 0 (``fragment_ids``, ``segment_ids``) is not
    the run's agglomeration: a log started from another threshold, or from the run's
    threshold without its small-segment absorption (``Proofreader.open(threshold=)`` does
    not absorb; a run with ``min_size`` does)."""
    try:
        run_fragments, run_segments = threshold_mapping(run_dir, threshold)
    except FileNotFoundError:
        return
    if not same_partition(fragment_ids, segment_ids, run_fragments, run_segments):
        logger.warning("version 0 of the edit log of %s differs from the run's agglomeration at threshold %s "
                       "(agglomeration/mapping-%.4f.parquet: another threshold, or small segments not absorbed); "
                       "a log started with initial_mapping= that file makes them equal", run_dir, threshold, threshold)


def same_partition(fragments_a, segments_a, fragments_b, segments_b) -> bool:
    """True when two mappings group their common fragments into the same sets (ids may differ)."""
    common = np.intersect1d(fragments_a, fragments_b)
    a = map_fragments(common, fragments_a, segments_a)
    b = map_fragments(common, fragments_b, segments_b)
    pairs = np.unique(np.stack([a, b], axis=1), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


# --- neurons -------------------------------------------------------------------------------

def fragment_statistics(run_dir: Path, fragments) -> pd.DataFrame:
    """Per fragment: id, size (voxels), centroid (nm), bbox (world voxels): from the fragment
    tables (only these columns read), or computed from the fragment Volume where they lack them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = sorted((run_dir / "graph").glob("fragments-*.parquet"))
    tables = []
    for path in paths:
        missing = [c for c in STATISTICS if c not in pq.read_schema(path).names]
        if missing:
            logger.warning("the fragment tables of %s lack %s; computing them from the fragment volume", run_dir,
                           missing)
            return volume_statistics(fragments)
        tables.append(pq.read_table(path, columns=list(STATISTICS)))
    if not tables:
        return volume_statistics(fragments)
    return pa.concat_tables(tables).to_pandas()


# --- the derived tables of a run's segmentation, kept beside it ------------------------------

CACHE_DIR = "connectome-cache"
CACHE_FORMAT = 1  # bump when the derived tables change


def cache_key(run_dir: Path) -> dict:
    """What the run's connectome (at its agglomeration) is derived from: each input file's size and
    modification time, and the code version. Any change means a rebuild."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        code = version("connecto-em")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        code = "unknown"
    inputs = [run_dir / RUN_FILE, run_dir / SYNAPSE_FILE, run_dir / SKELETON_FILE, run_dir / SKELETON_SOURCE,
              *sorted((run_dir / "agglomeration").glob("mapping-*.parquet")),
              *sorted((run_dir / "graph").glob("fragments-*.parquet")), run_dir / "fragments" / "zarr.json"]
    files = {}
    for path in inputs:
        try:
            stat = path.stat()
            files[str(path.relative_to(run_dir))] = [stat.st_size, stat.st_mtime_ns]
        except FileNotFoundError:
            files[str(path.relative_to(run_dir))] = None
    return {"format": CACHE_FORMAT, "code": code, "files": files}


def read_cache(run_dir: Path, key: dict) -> tuple | None:
    """The cached (neurons, synapses, voxel size, meta, skeletons) when made from the same inputs."""
    directory = run_dir / CACHE_DIR
    try:
        record = json.loads((directory / "cache.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    if record.get("key") != key:
        return None
    try:
        neurons = pd.read_parquet(directory / "neurons.parquet")
        synapses = pd.read_parquet(directory / "synapses.parquet")
        skeletons = pd.read_parquet(directory / "skeletons.parquet") if record.get("skeletons") else None
    except (OSError, ValueError) as exc:
        logger.warning("ignoring the connectome cache in %s (%s); rebuilding it", directory, exc)
        return None
    return neurons, synapses, tuple(record["voxel_size_nm"]), record["meta"], skeletons


def write_cache(run_dir: Path, key: dict, tables: tuple) -> None:
    """Keep the derived tables in ``RUN/connectome-cache`` (written whole, then renamed into place);
    a run directory that cannot be written to is simply not cached."""
    import shutil
    import tempfile

    neurons, synapses, voxel_size_nm, meta, skeletons = tables
    staging = None
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{CACHE_DIR}-", dir=run_dir))
        neurons.to_parquet(staging / "neurons.parquet", index=False)
        synapses.to_parquet(staging / "synapses.parquet", index=False)
        if skeletons is not None:
            skeletons.to_parquet(staging / "skeletons.parquet", index=False)
        record = {"key": key, "voxel_size_nm": list(voxel_size_nm), "meta": meta, "skeletons": skeletons is not None}
        (staging / "cache.json").write_text(json.dumps(record, indent=1, default=str))
        target = run_dir / CACHE_DIR
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    except OSError as exc:
        logger.info("no connectome cache for %s: %s", run_dir, exc)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def volume_statistics(fragments, block_shape=None) -> pd.DataFrame:
    """Fragment statistics (:data:`STATISTICS`) of a fragment Volume, read block by block."""
    from chunks import Coordinate
    from connecto.segment.fragments import fragment_table

    chunk = fragments.chunk_shape
    block = Coordinate(block_shape) if block_shape is not None else Coordinate(c * max(1, 128 // c) for c in chunk)
    parts = [fragment_table(fragments.read(roi), offset=roi.begin, voxel_size_nm=fragments.voxel_size_nm)
             for roi in fragments.roi.blocks(block)]
    table = aggregate(pd.concat(parts, ignore_index=True), "id")
    return table.rename_axis("id").reset_index()[list(STATISTICS)]


def aggregate(table: pd.DataFrame, key: str) -> pd.DataFrame:
    """Rows of (size, centroid, bbox) grouped by ``key``: sizes add, centroids are
    size-weighted means, bounding boxes the union. Indexed by ``key``, sorted."""
    weighted = table[list(CENTROID)].mul(table["size"], axis=0).add_suffix("_sum")
    frame = pd.concat([table[[key, "size", *BBOX]], weighted], axis=1)
    spec = {"size": "sum", **{f"{c}_sum": "sum" for c in CENTROID}, **{b: "min" for b in BBOX[:3]},
            **{b: "max" for b in BBOX[3:]}}
    out = frame.groupby(key, sort=True).agg(spec)
    for c in CENTROID:
        out[c] = out.pop(f"{c}_sum") / out["size"]
    return out


def neuron_table(statistics: pd.DataFrame, fragment_ids, segment_ids, voxel_size_nm) -> pd.DataFrame:
    """One row per segment with voxels: the neuron columns of :mod:`.tables` (counts of
    synapses are added by the Connectome)."""
    segment = map_fragments(statistics["id"].to_numpy(np.uint64), fragment_ids, segment_ids)
    per_segment = aggregate(statistics.assign(segment=segment), "segment")
    voxel = np.asarray(voxel_size_nm, np.float64)
    size = per_segment["size"].to_numpy(np.int64)
    columns = {"segment_id": per_segment.index.to_numpy(np.uint64), "size_voxels": size,
               "size_um3": size * (float(np.prod(voxel)) / 1e9),
               **{c: per_segment[c].to_numpy(np.float64) for c in CENTROID}}
    for axis, name in enumerate("zyx"):
        columns[f"bbox_min_{name}_nm"] = per_segment[f"bbox_{name}0"].to_numpy(np.float64) * voxel[axis]
    for axis, name in enumerate("zyx"):
        columns[f"bbox_max_{name}_nm"] = per_segment[f"bbox_{name}1"].to_numpy(np.float64) * voxel[axis]
    return pd.DataFrame(columns)


# --- synapses ----------------------------------------------------------------------------

def fragment_synapses(run_dir: Path) -> pd.DataFrame:
    """The run's synapse table against fragments, one row per (synapse, post partner):
    ``synapse_id`` 1..n in (detected id, post fragment) order, the detected id as
    ``cleft_id`` (shared by the posts of one polyadic synapse). Empty without the file."""
    from connecto.synapses.detect import empty_table, table_columns

    path = run_dir / SYNAPSE_FILE
    table = pd.read_parquet(path) if path.exists() else empty_table()
    missing = [c for c in table_columns() if c not in table]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {missing}; a run's synapse table has the columns "
                         f"{table_columns()} (connecto.synapses.detect)")
    table = table.sort_values(["id", "post_fragment"], kind="stable", ignore_index=True)
    table = table.rename(columns={"id": "cleft_id"})
    table.insert(0, "synapse_id", np.arange(1, len(table) + 1, dtype=np.uint64))
    return table
