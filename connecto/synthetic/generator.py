"""Entry points: ``generate`` (blockwise, to Volumes + Parquet) and ``generate_arrays`` (in memory).

>>> vol = generate_arrays((16, 32, 32), (8, 8, 8), seed=1, n_synapses=0)
>>> vol.raw.dtype, vol.labels.dtype, vol.labels.shape, bool((vol.labels > 0).all())
(dtype('uint8'), dtype('uint64'), (16, 32, 32), True)
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from chunks import Coordinate, Roi, create_volume, run_blockwise
from chunks.blocks import default_block_shape

from .block import synthesize
from .config import GENERATOR_VERSION, SynthConfig
from .model import SynthModel, model_for
from .tables import truth_tables, write_tables

logger = logging.getLogger(__name__)

VOLUMES = ("raw", "labels", "clefts")
FORMATS = ("zarr", "precomputed")
TARGET_BLOCK = 128  # default block edge in voxels (rounded to chunks): context stays a small share


@dataclass(frozen=True, eq=False)
class SyntheticVolume:
    """A generated volume in memory: arrays (zyx) and truth tables."""

    config: SynthConfig
    raw: np.ndarray      # uint8
    labels: np.ndarray   # uint64 neuron ids, dense
    clefts: np.ndarray   # uint64 synapse ids, 0 elsewhere
    tables: dict[str, pd.DataFrame]

    @property
    def neurons(self) -> pd.DataFrame:
        return self.tables["neurons"]

    @property
    def synapses(self) -> pd.DataFrame:
        return self.tables["synapses"]


@dataclass(frozen=True, eq=False)
class SyntheticResult:
    """What ``generate`` wrote: volume URLs, the tables' location and the resolved config."""

    config: SynthConfig
    volumes: dict[str, str]
    tables_url: str
    tables: dict[str, pd.DataFrame]
    seconds: float


def make_config(shape=None, voxel_size_nm=(8, 8, 8), *, config: SynthConfig | None = None, **params) -> SynthConfig:
    """A SynthConfig from keyword parameters, or ``config`` with ``params`` replacing its fields."""
    if config is not None:
        if shape is not None:
            params["shape"] = shape
        return SynthConfig.from_dict({**config.to_dict(), **params}).resolve()
    if shape is None:
        raise ValueError("shape is required: voxels per axis z,y,x, e.g. (64, 64, 64)")
    return SynthConfig.from_dict({"shape": shape, "voxel_size_nm": voxel_size_nm, **params}).resolve()


def synth_block(model: SynthModel, block, inputs) -> dict[str, np.ndarray]:
    """Engine stage: the block's write Roi of every output (the model pickles as its config)."""
    return synthesize(model, block.write_roi.begin, block.write_roi.shape)


def generate_arrays(shape=None, voxel_size_nm=(8, 8, 8), *, block_shape=None, config: SynthConfig | None = None,
                    **params) -> SyntheticVolume:
    """Generate a volume in memory (tests, notebooks); ``params`` are SynthConfig fields.

    ``block_shape`` renders in blocks of that shape (the result is the same for any shape).
    """
    cfg = make_config(shape, voxel_size_nm, config=config, **params)
    model = model_for(cfg)
    total = Roi((0, 0, 0), cfg.shape)
    out = {name: np.zeros(cfg.shape, np.uint8 if name == "raw" else np.uint64) for name in VOLUMES}
    for roi in total.blocks(Coordinate(block_shape) if block_shape is not None else cfg.shape):
        for name, data in synthesize(model, roi.begin, roi.shape).items():
            out[name][roi.to_slices()] = data
    return SyntheticVolume(cfg, out["raw"], out["labels"], out["clefts"], truth_tables(model))


def volume_urls(out, fmt: str = "zarr") -> tuple[dict[str, str], str]:
    """(volume URLs by name, tables URL) for a directory URL or an explicit mapping."""
    if isinstance(out, Mapping):
        missing = [k for k in (*VOLUMES, "tables") if k not in out]
        if missing:
            raise ValueError(f"output mapping lacks {missing}; expected keys {list(VOLUMES) + ['tables']}")
        return {k: str(out[k]) for k in VOLUMES}, str(out["tables"])
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {FORMATS}")
    base = os.fspath(out)
    if "://" not in base:
        base = os.path.abspath(base)
    base = base.rstrip("/")
    if fmt == "precomputed":
        root = base if "://" in base else "file://" + base
        return {k: f"precomputed://{root}/{k}" for k in VOLUMES}, base
    suffix = "" if base.startswith("memory://") else ".zarr"
    return {k: f"{base}/{k}{suffix}" for k in VOLUMES}, base


def generate(
    out,
    shape=None,
    voxel_size_nm=(8, 8, 8),
    *,
    config: SynthConfig | None = None,
    chunk_shape=(64, 64, 64),
    block_shape=None,
    format: str = "zarr",
    scheduler=None,
    num_workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **params,
) -> SyntheticResult:
    """Generate a synthetic EM volume with its truth, blockwise, and write it.

    Parameters
    ----------
    out : a directory (local path, ``file://``, ``s3://``, ``gs://``, ``memory://name``) that
        receives ``raw``, ``labels`` and ``clefts`` volumes and the Parquet tables; or a
        mapping with the keys ``raw``, ``labels``, ``clefts`` (volume URLs) and ``tables``.
    shape, voxel_size_nm, **params : SynthConfig fields (seed, density, n_synapses, difficulty, ...);
        or ``config`` (with ``params`` replacing fields of it).
    chunk_shape : chunks of the written volumes; ``block_shape`` a multiple of it
        (default: about 128 voxels a side).
    format : ``"zarr"`` or ``"precomputed"`` for a directory ``out``.
    scheduler, num_workers, overwrite, progress : as for every blockwise stage.

    Memory is bounded by the block: each block renders its own voxels (plus context).
    """
    import time

    start = time.perf_counter()
    cfg = make_config(shape, voxel_size_nm, config=config, **params)
    urls, tables_url = volume_urls(out, format)
    chunk_shape = Coordinate(min(c, s) for c, s in zip(Coordinate(chunk_shape), cfg.shape))
    if block_shape is None:
        block_shape = default_block_shape(cfg.shape, chunk_shape, TARGET_BLOCK)
    block_shape = Coordinate(block_shape)
    volumes = {
        name: create_volume(urls[name], cfg.shape, "uint8" if name == "raw" else "uint64", cfg.voxel_size_nm,
                            chunk_shape=chunk_shape, overwrite=overwrite)
        for name in VOLUMES
    }
    model = model_for(cfg)
    run_blockwise(
        functools.partial(synth_block, model), Roi((0, 0, 0), cfg.shape), block_shape,
        task="synth", outputs=volumes,
        params={"generator_version": GENERATOR_VERSION, **cfg.to_dict()},
        scheduler=scheduler, num_workers=num_workers, overwrite=overwrite, progress=progress,
    )
    write_tables(model, tables_url, urls)  # last: a refused or killed run leaves earlier tables alone
    seconds = time.perf_counter() - start
    logger.info("synthetic volume %s written in %.1f s", urls["raw"], seconds)
    return SyntheticResult(cfg, urls, tables_url, truth_tables(model), seconds)
