"""``connecto reconstruct``: ingest -> predict -> fragments -> region graph -> agglomerate -> relabel
(-> synapse prediction -> synapse detection, with a synapse model).

One run directory holds every stage's output and ``run.json``: each stage's parameters,
a fingerprint of them and of everything upstream, the code version, seconds and peak
memory. Every stage is resumable (blockwise stages skip finished blocks). Rerunning
after changing one stage's parameters recomputes that stage and the ones after it only:
a stage whose fingerprint is unchanged and complete is skipped.

Layout of ``run_dir``: ``raw.zarr`` (when ingested), ``affinities.zarr``, ``fragments``,
``graph/``, ``agglomeration/``, ``segmentation``, with a synapse model
``synapse_prediction.zarr`` (cleft, pre side, post side), ``synapses.parquet`` (one row
per (synapse, post partner), against fragments: see :mod:`connecto.synapses.detect`) and
``clefts`` (each detected cleft's voxels labelled with its synapse id),
``evaluation.json`` (with ground truth), ``run.json``.

Synapses are detected against fragments, not segments, so they depend on the affinity
prediction and the fragment parameters only: changing the agglomeration threshold (or
proofreading) maps them to other segments without detecting them again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import resource
import subprocess
import time
from dataclasses import field
from math import gcd
from typing import Annotated, Any, Literal

from pydantic import AfterValidator

from chunks import open_volume
from chunks.cluster import connect
from chunks.memory import peak_rss_mb
from connecto.defaults import DEFAULT_SCHEDULER, DEFAULT_THRESHOLD
from connecto.segment.blockwise import WARM_UP as SEGMENT_WARM_UP
from connecto.segment.graph_store import join as _in_run  # a path in a run directory, local or in a bucket
from connecto.segment.params import AGGLOMERATIONS, METHODS, SegmentParams, default
from training.precision import PRECISIONS
from training.schema import (
    ConfigError,
    Fraction,
    Int,
    Margin,
    NonNegativeInt,
    PositiveInt,
    Shape,
    Text,
    VoxelSize,
    build,
    load_mapping,
    schema,
)

logger = logging.getLogger(__name__)

PATH_KEYS = ("raw", "run_dir", "checkpoint", "ground_truth", "synapse_checkpoint", "synapse_truth")


def _memory_limit(value):
    from training.predict_plan import parse_memory_limit

    parse_memory_limit(value)  # "lots" is refused here, not when prediction starts
    return value


MemoryLimit = Annotated[Text | Int | None, AfterValidator(_memory_limit)]


@schema
class ReconstructConfig:
    """What to reconstruct and how; the TOML/YAML file of ``connecto reconstruct`` maps onto it.

    Typed (:mod:`training.schema`): a wrong type, a value out of range or an unknown key is
    refused when the config is made, with one line naming the key, the value and what was
    expected; :func:`check_run` checks what needs the inputs before any stage runs.

    raw : a volume URL, or an ingest source (``FILE.h5:/raw``, an image stack, ``.tif``, ``.npy``).
    voxel_size_nm : needed when ``raw`` is an ingest source (z, y, x; numbers such as 4.6 are kept).
    checkpoint : the affinity model.
    threshold : merge-score threshold of the written segmentation, in [0, 1]; default: the one the
        model recommends (its checkpoint's ``extra["threshold"]``), else
        ``connecto.defaults.DEFAULT_THRESHOLD``. ``thresholds`` are additionally evaluated
        when ``ground_truth`` is given.
    aff_low, aff_high, method, min_size, agglomeration, fragment_absorb : as
        :class:`connecto.segment.params.SegmentParams`,
        whose defaults they share (``min_size`` 0: small segments are kept).
    segment_block_shape : blocks of the segmentation stages (and, with a synapse model, of
        synapse detection and the cleft volume, whose blocks must fit the synapse prediction's
        chunks: a multiple of them on every axis the block does not cover whole).
    synapse_checkpoint : a synapse model (``model.outputs = ["synapses"]``); without it no
        synapses are detected. ``synapse_params`` are :class:`connecto.synapses.detect.DetectParams`
        fields (threshold, min_size, dilation_nm, post_fraction, max_extent_nm).
    synapse_truth : a Parquet table of true synapses (the synthetic generator's
        ``synapses.parquet``); with ``ground_truth`` labels, cleft and partner F1 are evaluated.
    precision : ``"auto"`` (bf16 on a GPU that has it, or on a CPU with native bf16 where a
        one-off probe finds it faster; fp32 otherwise), ``"fp32"``, ``"bf16"``, ``"fp16"``.
    memory_limit : what one worker may use for a prediction block (``"1GiB"``, bytes); the
        prediction block shape follows from it unless ``predict_block_shape`` is given.
    scheduler : as the engine's (``"local"``: a local cluster of worker processes, a dask
        address, ``"sync"``); default ``"threads"``, a local cluster of threads in this process
        (``connecto.defaults.DEFAULT_SCHEDULER``, where the measurement behind it is).
    """

    raw: Text
    run_dir: Text
    checkpoint: Text
    voxel_size_nm: VoxelSize | None = None
    chunk_shape: Shape = (64, 64, 64)
    predict_block_shape: Shape | None = None
    context: Margin | None = None  # default: the model's receptive field
    precision: Literal[PRECISIONS] = "auto"  # see training.precision
    memory_limit: MemoryLimit = None  # per worker for a prediction block; default 1 GiB
    threshold: Fraction | None = None  # None: the model's recommendation, else DEFAULT_THRESHOLD
    thresholds: tuple[Fraction, ...] = ()
    aff_low: Fraction = default("aff_low")
    aff_high: Fraction = default("aff_high")
    method: Literal[METHODS] = default("method")
    min_size: NonNegativeInt = default("min_size")
    agglomeration: Literal[AGGLOMERATIONS] = default("agglomeration")  # global / hierarchical / auto (by size)
    fragment_absorb: NonNegativeInt = default("fragment_absorb")  # voxels; 0: off
    segment_block_shape: Shape | None = None
    ground_truth: Text | None = None
    synapse_checkpoint: Text | None = None
    synapse_params: dict[str, Any] = field(default_factory=dict)
    synapse_truth: Text | None = None
    scheduler: Text | None = None
    workers: PositiveInt | None = None

    def __post_init__(self):
        from connecto.synapses.detect import DetectParams

        SegmentParams(aff_low=self.aff_low, aff_high=self.aff_high, method=self.method, min_size=self.min_size,
                      agglomeration=self.agglomeration, fragment_absorb=self.fragment_absorb)
        build(DetectParams, self.synapse_params, prefix="synapse_params.")


def load_reconstruct_config(path: str, **overrides) -> ReconstructConfig:
    """Read a TOML or YAML reconstruct config; relative paths are relative to the file. Nothing is
    written: a config that does not fit the schema is refused here with a :class:`ConfigError`
    naming the file, the key, the value and what was expected."""
    values = {**load_mapping(path), **{k: v for k, v in overrides.items() if v is not None}}
    base = os.path.dirname(os.path.abspath(path))
    for key in PATH_KEYS:
        value = values.get(key)
        if isinstance(value, str) and value and "://" not in value and not os.path.isabs(value):
            values[key] = os.path.normpath(os.path.join(base, value))
    return build(ReconstructConfig, values, path)


def code_version() -> str:
    import connecto

    version = connecto.__version__
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=os.path.dirname(os.path.abspath(__file__)), check=True).stdout.strip()
        return f"{version}+g{commit}"
    except (OSError, subprocess.SubprocessError):
        return version


def _fingerprint(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_identity(path: str) -> str:
    """Content hash of a (small) file such as a checkpoint: a retrained model invalidates the run."""
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()[:16]


class _RunRecord:
    """run.json: stage records, written after every stage so a crash loses nothing recorded (local or in a
    bucket)."""

    def __init__(self, run_dir: str):
        from chunks.fs import read_json
        from chunks.urls import parse_url

        self.url = parse_url(run_dir)
        self.data = read_json(self.url, "run.json") or {"stages": {}}

    def is_done(self, stage: str, fingerprint: str) -> bool:
        record = self.data["stages"].get(stage, {})
        return record.get("fingerprint") == fingerprint and record.get("complete", False)

    def changed(self, stage: str, fingerprint: str) -> bool:
        record = self.data["stages"].get(stage)
        return record is not None and record.get("fingerprint") != fingerprint

    def start(self, stage: str, fingerprint: str, params: dict) -> None:
        self.data["stages"][stage] = {"fingerprint": fingerprint, "params": params, "complete": False,
                                      "code_version": code_version()}
        self.save()

    def finish(self, stage: str, seconds: float, **extra) -> None:
        peak_mb = peak_rss_mb()  # VmHWM: ru_maxrss can be a parent's peak carried over fork and exec
        workers_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        self.data["stages"][stage].update({"complete": True, "seconds": round(seconds, 2),
                                           "peak_memory_mb_driver": round(peak_mb, 1),
                                           "peak_memory_mb_largest_finished_worker": round(workers_mb, 1), **extra})
        self.save()

    def save(self) -> None:
        if self.url.protocol != "file":  # an object is replaced whole
            from chunks.fs import write_json

            write_json(self.url, "run.json", self.data)
            return
        path = self.url.join("run.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
        os.replace(path + ".tmp", path)


def model_threshold(checkpoint: str) -> float:
    """The threshold the model in ``checkpoint`` recommends (``extra["threshold"]``), else
    :data:`connecto.defaults.DEFAULT_THRESHOLD`."""
    from training.checkpoint import load_checkpoint, recommended_threshold

    recommended = recommended_threshold(load_checkpoint(checkpoint).get("extra"), where=checkpoint)
    return DEFAULT_THRESHOLD if recommended is None else recommended


def reconstruct(config: ReconstructConfig, *, progress: bool = True, echo=None) -> dict:
    """Run (or resume) every stage; returns run.json's content (whose ``config.threshold`` is
    the threshold used, the model's or the default one when the config gives none)."""
    from connecto.ingest import ingest
    from connecto.segment.blockwise import segment
    from connecto.segment.params import SegmentParams

    if config.threshold is None:
        config = dataclasses.replace(config, threshold=model_threshold(config.checkpoint))
    check_run(config)  # before anything is written
    echo = echo or (lambda message: logger.info(message))
    run_dir = config.run_dir if "://" in config.run_dir else os.path.abspath(config.run_dir)
    record = _RunRecord(run_dir)
    record.data["config"] = dataclasses.asdict(config)
    record.save()
    upstream = ""
    with connect(config.scheduler or DEFAULT_SCHEDULER, config.workers, warm_up=SEGMENT_WARM_UP) as client:
        scheduler = client if client is not None else "sync"
        engine = {"scheduler": scheduler, "progress": progress}

        # 1. ingest (only when raw is not already a volume)
        raw_volume = _try_open(config.raw)
        # whole-number sizes fingerprint as before they were floats ([8, 8, 8]): such runs are not recomputed
        voxel_size_nm = None if config.voxel_size_nm is None else \
            [int(v) if float(v).is_integer() else v for v in config.voxel_size_nm]
        ingest_params = {"raw": config.raw, "voxel_size_nm": voxel_size_nm, "chunk_shape": config.chunk_shape}
        upstream = ingest_fp = fp = _fingerprint("ingest", ingest_params)
        if raw_volume is None:
            overwrite = record.changed("ingest", fp)
            if not record.is_done("ingest", fp) or _damaged(echo, "ingest", _in_run(run_dir, "raw.zarr")):
                echo(f"ingest: {config.raw} -> {run_dir}/raw.zarr")
                record.start("ingest", fp, ingest_params)
                start = time.perf_counter()
                raw_volume = ingest(config.raw, _in_run(run_dir, "raw.zarr"), config.voxel_size_nm,
                                    chunk_shape=config.chunk_shape, overwrite=overwrite, **engine)
                record.finish("ingest", time.perf_counter() - start, voxels=int(raw_volume.shape.prod()))
            else:
                raw_volume = open_volume(_in_run(run_dir, "raw.zarr"))

        # 2. predict
        affinities_url = _in_run(run_dir, "affinities.zarr")
        upstream = predict_fp = _predict_stage(config, record, "predict", config.checkpoint, raw_volume,
                                               affinities_url, upstream, engine, echo)
        affinities = open_volume(affinities_url)

        # 3. fragments, region graph, agglomeration, relabel
        # merges above every threshold asked for are never used: not computing them saves time
        params = SegmentParams(aff_low=config.aff_low, aff_high=config.aff_high, method=config.method,
                               min_size=config.min_size, max_score=max((config.threshold, *config.thresholds)),
                               agglomeration=config.agglomeration, fragment_absorb=config.fragment_absorb)
        segment_params = {**dataclasses.asdict(params), "threshold": config.threshold,
                          "block_shape": config.segment_block_shape}
        if not params.fragment_absorb:  # off: runs from before the option resume
            segment_params.pop("fragment_absorb")
        upstream = fp = _fingerprint(upstream, "segment", segment_params)
        if not record.is_done("segment", fp) or _damaged(echo, "segment", _in_run(run_dir, "fragments"),
                                                         _in_run(run_dir, "segmentation")):
            echo("segment: fragments, region graph, agglomeration, relabel")
            overwrite = record.changed("segment", fp)
            record.start("segment", fp, segment_params)
            start = time.perf_counter()
            result = segment(affinities, run_dir, thresholds=[config.threshold], params=params,
                             block_shape=config.segment_block_shape, overwrite=overwrite, **engine)
            record.finish("segment", time.perf_counter() - start, seconds_by_step=
                          {k: round(v, 2) for k, v in result.seconds.items()},
                          fragments=int(result.history.fragment_ids.size),
                          segments=int(result.history.num_segments(config.threshold)))
        segment_fp = upstream

        # 4. synapses: predicted from raw, detected against fragments (not segments)
        if config.synapse_checkpoint:
            fragments_fp = _fingerprint(predict_fp, "fragments", params.aff_low, params.aff_high,
                                        config.segment_block_shape,
                                        *([params.fragment_absorb] if params.fragment_absorb else []))
            _synapse_stages(config, record, run_dir, raw_volume, ingest_fp, fragments_fp, engine, echo)
        upstream = segment_fp

    # 5. evaluation against ground truth (optional; cheap, always redone when asked)
    if config.ground_truth:
        synapses_fp = record.data["stages"].get("synapses", {}).get("fingerprint") if config.synapse_checkpoint else None
        fp = _fingerprint(upstream, "evaluate", config.ground_truth, config.thresholds, synapses_fp,
                          config.synapse_truth)
        if not record.is_done("evaluate", fp):
            echo(f"evaluate: against {config.ground_truth}")
            record.start("evaluate", fp, {"ground_truth": config.ground_truth, "thresholds": config.thresholds})
            start = time.perf_counter()
            evaluation = evaluate_run(run_dir, config.ground_truth, config.threshold, config.thresholds, params)
            if config.synapse_checkpoint and config.synapse_truth:
                evaluation["synapses"] = evaluate_run_synapses(run_dir, config.ground_truth, config.synapse_truth,
                                                               config.threshold)
            record.finish("evaluate", time.perf_counter() - start, **evaluation)
    return record.data


def check_run(config: ReconstructConfig) -> None:
    """Refuse, before any stage runs, what a later stage would refuse after the earlier ones ran.

    The raw data's dtype and voxel size must be the models' (the config's ``voxel_size_nm`` when
    ``raw`` is an ingest source; a volume's own, which a differing ``voxel_size_nm`` may not
    contradict); ``checkpoint`` must predict 3 affinities and ``synapse_checkpoint`` synapses only;
    ``predict_block_shape`` must be a multiple of both models' pooling factors; the ground truth must
    cover the raw data's region; and with a synapse model ``segment_block_shape`` must fit the
    chunks of the synapse prediction, in which the cleft volume is written block by block.
    """
    from training.checkpoint import load_checkpoint, model_config_from_checkpoint
    from training.predict import check_block_shape, check_raw_matches, same_voxel_size

    raw = _open_raw_or_source(config.raw)
    if raw is None or not _is_volume(raw):
        if config.voxel_size_nm is None:
            raise ConfigError(f"raw {config.raw!r} is not a volume; give voxel_size_nm (z,y,x) to ingest it")
        voxel_size_nm = config.voxel_size_nm
    else:
        voxel_size_nm = raw.voxel_size_nm
        if config.voxel_size_nm is not None and not same_voxel_size(config.voxel_size_nm, voxel_size_nm):
            raise ConfigError(f"voxel_size_nm = {list(config.voxel_size_nm)}, but raw {config.raw} is a volume of "
                              f"voxel size {list(voxel_size_nm)} nm; voxel_size_nm is for ingesting an image source: "
                              "remove it, or resample the volume")
    dtype = None if raw is None else raw.dtype
    models = [("checkpoint", config.checkpoint, ("affinities",))]
    if config.synapse_checkpoint:
        models.append(("synapse_checkpoint", config.synapse_checkpoint, ("synapses",)))
    for key, checkpoint, heads in models:
        state = load_checkpoint(checkpoint)
        model = model_config_from_checkpoint(state)
        if model.outputs != heads or (heads == ("affinities",) and model.out_channels != 3):
            raise ConfigError(f"{key} {checkpoint} predicts {list(model.channel_names)}; expected a model with "
                              + ("model.outputs = ['affinities'] and 3 offsets (z, y, x)" if key == "checkpoint" else
                                 "model.outputs = ['synapses'] (cleft, pre side, post side)"))
        check_raw_matches(state, checkpoint, config.raw, dtype=dtype, voxel_size_nm=voxel_size_nm)
        check_block_shape(model, config.predict_block_shape, config.context, checkpoint)
    if config.ground_truth:  # evaluated last: a typo here would be found after all the work
        from chunks.sources import open_readable

        try:
            truth = open_readable(config.ground_truth)
        except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
            raise ConfigError(f"ground_truth {config.ground_truth} cannot be read: {exc}") from None
        if config.synapse_checkpoint and config.synapse_truth and "://" not in config.synapse_truth \
                and not os.path.exists(config.synapse_truth):
            raise ConfigError(f"synapse_truth {config.synapse_truth} does not exist")
    if raw is None:
        return  # not readable now: the ingest stage says why
    if config.ground_truth and truth.roi != raw.roi:
        raise ConfigError(f"ground_truth {config.ground_truth} covers {truth.roi} (shape {truth.roi.shape}), "
                          f"raw {config.raw} {raw.roi} (shape {raw.roi.shape}); evaluation needs the same region")
    if config.synapse_checkpoint and config.segment_block_shape:
        _check_cleft_blocks(config, raw.roi.shape)


def _check_cleft_blocks(config: ReconstructConfig, shape) -> None:
    """The cleft volume is written in blocks of ``segment_block_shape`` on the synapse prediction's chunk grid
    (:func:`connecto.synapses.detect.write_cleft_volume`): every block must start on a chunk."""
    # the prediction's chunks (training.predict.predict_volume): chunk_shape, reduced to divide the given
    # prediction block (a planned block is a multiple of it), clipped to the volume (chunks.create_volume)
    chunks = config.chunk_shape if config.predict_block_shape is None else \
        tuple(gcd(c, b) for c, b in zip(config.chunk_shape, config.predict_block_shape))
    chunks = tuple(min(c, s) for c, s in zip(chunks, shape))
    block = config.segment_block_shape
    if all(b % c == 0 or b >= s for b, c, s in zip(block, chunks, shape)):
        return
    fits = [-(-b // c) * c for b, c in zip(block, chunks)]
    raise ConfigError(f"segment_block_shape = {list(block)} does not fit the synapse prediction's chunks "
                      f"{list(chunks)} (chunk_shape {list(config.chunk_shape)}"
                      + (f", predict_block_shape {list(config.predict_block_shape)}" if config.predict_block_shape
                         else "") + "), in which the cleft volume is written block by block; expected a multiple "
                      f"of {list(chunks)} on every axis the block does not cover whole, such as {fits}")


def _open_raw_or_source(url: str):
    """The Volume or ingest source at ``url``, or None when it cannot be opened (the stage that reads it says why)."""
    from chunks.sources import open_readable

    try:
        return open_readable(url)
    except (FileNotFoundError, ValueError, KeyError, OSError):
        return None


def _is_volume(readable) -> bool:
    from chunks import Volume

    return isinstance(readable, Volume)


def _predict_stage(config: ReconstructConfig, record: _RunRecord, stage: str, checkpoint: str, raw_volume,
                   out_url: str, upstream: str, engine: dict, echo) -> str:
    """Predict ``raw_volume`` with ``checkpoint`` into ``out_url`` unless done; returns the stage's fingerprint."""
    from training.predict import predict_volume

    params = {"checkpoint": checkpoint, "checkpoint_sha1": _file_identity(checkpoint), "context": config.context,
              "block_shape": config.predict_block_shape, "precision": config.precision}
    fp = _fingerprint(upstream, stage, params)
    if not record.is_done(stage, fp) or _damaged(echo, stage, out_url):
        echo(f"{stage.replace('_', ' ')}: with {os.path.basename(checkpoint)}")
        overwrite = record.changed(stage, fp)
        record.start(stage, fp, params)
        start = time.perf_counter()
        ran: dict = {}
        predict_volume(checkpoint, raw_volume, out_url, block_shape=config.predict_block_shape,
                       context=config.context, chunk_shape=config.chunk_shape, overwrite=overwrite,
                       precision=config.precision, memory_limit=config.memory_limit, choice_out=ran, **engine)
        record.finish(stage, time.perf_counter() - start, voxels=int(raw_volume.shape.prod()),
                      precision=ran["precision"], precision_reason=ran["reason"], block_shape=ran["block_shape"],
                      memory_limit_bytes=ran["memory_limit_bytes"], estimated_block_bytes=ran["estimated_block_bytes"])
    return fp


def _synapse_stages(config: ReconstructConfig, record: _RunRecord, run_dir: str, raw_volume, ingest_fp: str,
                    fragments_fp: str, engine: dict, echo) -> None:
    """Synapse prediction (``synapse_prediction.zarr``), detection (``synapses.parquet``) and the
    detected clefts labelled with their synapse ids (``clefts``)."""
    from connecto.synapses.detect import DetectParams, check_prediction, detect_synapses_blockwise, write_cleft_volume

    prediction_url = _in_run(run_dir, "synapse_prediction.zarr")
    fp = _predict_stage(config, record, "predict_synapses", config.synapse_checkpoint, raw_volume, prediction_url,
                        ingest_fp, engine, echo)
    prediction = open_volume(prediction_url)
    check_prediction(prediction)

    detect = DetectParams(**config.synapse_params)
    detect_params = {**dataclasses.asdict(detect), "block_shape": config.segment_block_shape}
    fp = _fingerprint(fp, fragments_fp, "synapses", detect_params)
    table_path = _in_run(run_dir, "synapses.parquet")
    if not record.is_done("synapses", fp) or _damaged(echo, "synapses", _in_run(run_dir, "clefts")):
        echo("synapses: clefts and partners against fragments")
        overwrite = record.changed("synapses", fp)
        record.start("synapses", fp, detect_params)
        start = time.perf_counter()
        table = detect_synapses_blockwise(prediction, None, open_volume(_in_run(run_dir, "fragments")),
                                          _in_run(run_dir, "synapses.blocks"), params=detect,
                                          block_shape=config.segment_block_shape, overwrite=overwrite, **engine)
        _write_parquet(table, table_path)
        write_cleft_volume(prediction, table, _in_run(run_dir, "clefts"), params=detect,
                           block_shape=config.segment_block_shape, overwrite=True, **engine)
        record.finish("synapses", time.perf_counter() - start, synapses=int(table["id"].nunique()),
                      rows=len(table))


def _write_parquet(table, path: str) -> None:
    """``table`` to ``path`` (local: through a temporary file and a rename; in a bucket: one object,
    replaced whole)."""
    from chunks.fs import filesystem
    from chunks.urls import parse_url

    url = parse_url(path)
    if url.protocol != "file":
        with filesystem(url).open(url.path, "wb") as f:
            table.to_parquet(f, index=False)
        return
    table.to_parquet(url.path + ".tmp", index=False)
    os.replace(url.path + ".tmp", url.path)


def evaluate_run_synapses(run_dir: str, ground_truth: str, synapse_truth: str, threshold: float,
                          tolerance_nm: float = 100.0) -> dict:
    """Cleft and partner P/R/F1 of the run's synapses, one row per (synapse, pre segment, post segment) at
    ``threshold``; predicted partners are the true neurons under their points."""
    import pandas as pd

    from chunks.sources import open_readable
    from connecto.synapses.evaluate import evaluate_synapses, one_row_per_partner, with_segments

    labels = open_readable(ground_truth)  # voxel for voxel with the run's volumes
    frame = open_volume(_in_run(run_dir, "fragments"))
    from connecto.segment.graph_store import read_table

    mapping = read_table(_in_run(run_dir, "agglomeration", f"mapping-{threshold:.4f}.parquet"))
    pred = one_row_per_partner(with_segments(read_table(_in_run(run_dir, "synapses.parquet")), mapping))
    truth = pd.read_parquet(synapse_truth)
    return evaluate_synapses(pred, truth, tolerance_nm, truth_labels=labels.read(labels.roi),
                             voxel_size_nm=tuple(frame.voxel_size_nm),
                             offset_nm=tuple(frame.offset * frame.voxel_size_nm))


def evaluate_run(run_dir: str, ground_truth: str, threshold: float, thresholds=(), params=None) -> dict:
    """VOI/ARAND of the run's segmentation (and of other thresholds from the merge history)."""
    from connecto.segment.evaluate import evaluate, open_labels
    from connecto.segment.graph_store import read_history
    from connecto.segment.params import SegmentParams
    from connecto.segment.sweep import evaluate_thresholds

    segmentation = open_volume(_in_run(run_dir, "segmentation"))
    result = evaluate(segmentation, ground_truth)
    out = {"voi_split": result.voi_split, "voi_merge": result.voi_merge, "voi_sum": result.voi_sum,
           "arand": result.arand, "segments": result.num_segments}
    if thresholds:
        table = evaluate_thresholds(open_volume(_in_run(run_dir, "fragments")), open_labels(ground_truth),
                                    read_history(run_dir), list(thresholds), run_dir=run_dir,
                                    params=params or SegmentParams())
        out["sweep"] = table.to_dict(orient="records")
    from chunks.fs import write_json
    from chunks.urls import parse_url

    write_json(parse_url(run_dir), "evaluation.json", {"threshold": threshold, **out, "worst": result.to_dict()})
    return out


def _damaged(echo, stage: str, *urls: str) -> bool:
    """True when a volume of a finished stage is gone, lost chunk files or was left unfinished (one listing
    each): the stage then runs again, and its engine recomputes only the blocks concerned."""
    from chunks.integrity import damage_at

    problems = [problem for url in urls for problem in damage_at(url)]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        echo(f"{stage}: {problems[0]}{more}; running it again")
    return bool(problems)


def _try_open(url: str):
    """The Volume at ``url``, or None when ``url`` is something to ingest first."""
    from chunks import Volume
    from chunks.sources import open_readable

    try:
        readable = open_readable(url)
    except (FileNotFoundError, ValueError, KeyError, OSError):
        return None
    return readable if isinstance(readable, Volume) else None

