"""Ingest images (stack, multi-page TIFF, HDF5, numpy) into a Volume, blockwise.

Memory is bounded by the block: each block reads only its slab of the source.
"""

from __future__ import annotations

import functools
import logging

from chunks import Coordinate, Roi, create_volume, run_blockwise
from chunks.sources import content_token, open_source

logger = logging.getLogger(__name__)

MAX_BLOCK_YX = 2048  # in-plane block extent; whole slices below it


def ingest_block(source, block, inputs):
    return {"raw": source.read(block.write_roi)}


def default_block_shape(shape: Coordinate, chunk_shape: Coordinate) -> Coordinate:
    """One chunk deep in z, whole slices in y and x up to MAX_BLOCK_YX (chunk multiples).

    Image stacks decode whole slices, so wide blocks avoid decoding a slice many times.
    """
    yx = [min(s, max(c, MAX_BLOCK_YX // c * c)) for s, c in zip(shape[1:], chunk_shape[1:])]
    return Coordinate(chunk_shape[0], *yx).ceil_div(chunk_shape) * chunk_shape


def ingest(
    source_spec: str,
    out_url: str,
    voxel_size_nm,
    *,
    chunk_shape=(64, 64, 64),
    offset=(0, 0, 0),
    block_shape=None,
    scheduler=None,
    num_workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
):
    """Copy ``source_spec`` into a new Volume at ``out_url`` and return the Volume.

    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp(); np.save(f"{d}/v.npy", np.arange(64, dtype=np.uint8).reshape(4, 4, 4))
    >>> vol = ingest(f"{d}/v.npy", f"{d}/v.zarr", (8, 8, 8), chunk_shape=(2, 4, 4), scheduler="sync", progress=False)
    >>> int(vol.read()[3, 3, 3])
    63
    """
    source = open_source(source_spec)
    voxel_size_nm = Coordinate(voxel_size_nm)
    chunk_shape = Coordinate(min(c, s) for c, s in zip(Coordinate(chunk_shape), source.shape))
    out = create_volume(
        out_url, source.shape, source.dtype, voxel_size_nm,
        offset=offset, chunk_shape=chunk_shape, overwrite=overwrite,
    )
    block_shape = Coordinate(block_shape) if block_shape else default_block_shape(source.shape, chunk_shape)
    logger.info("ingesting %s (%s %s) into %s", source_spec, source.shape, source.dtype, out_url)
    # the source is read in its own frame (offset 0); the volume may sit at an offset
    shifted = _ShiftedSource(source, out.offset)
    run_blockwise(
        functools.partial(ingest_block, shifted), out.roi, block_shape,
        task="ingest", outputs={"raw": out},
        params={"source": str(source_spec), "source_content": content_token(source),
                "voxel_size_nm": list(voxel_size_nm)},
        scheduler=scheduler, num_workers=num_workers, overwrite=overwrite, progress=progress,
    )
    return out


class _ShiftedSource:
    def __init__(self, source, offset):
        self.source, self.offset = source, Coordinate(offset)

    def read(self, roi: Roi):
        return self.source.read(roi.shift(-self.offset))
