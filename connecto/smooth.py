"""Gaussian smoothing of a raw volume: the simplest blockwise stage with context.

The block reads ``ceil(truncate * sigma)`` voxels of context, so the blockwise result
equals smoothing the whole volume at once (scipy's kernel radius), voxel for voxel.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from chunks import Coordinate, Volume, create_volume, run_blockwise

TRUNCATE = 3.0


def smooth(raw: np.ndarray, sigma_voxels) -> np.ndarray:
    """Gaussian-smooth ``raw`` (zyx), keeping its dtype (rounded for integers).

    Borders are handled by reflection, like ``scipy.ndimage.gaussian_filter``'s default.
    """
    out = ndimage.gaussian_filter(raw.astype(np.float32), sigma=tuple(sigma_voxels), truncate=TRUNCATE, mode="reflect")
    if np.issubdtype(raw.dtype, np.integer):
        info = np.iinfo(raw.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(raw.dtype)


def context_for(sigma_voxels) -> Coordinate:
    return Coordinate(int(TRUNCATE * s + 0.5) if s > 0 else 0 for s in sigma_voxels)


def smooth_block(sigma_voxels, block, inputs):
    raw = inputs["raw"]
    # at the volume edge the missing context is filled by reflection, as in the monolithic call
    before, after = block.missing_context(context_for(sigma_voxels))
    if any(before) or any(after):
        raw = np.pad(raw, list(zip(before, after)), mode="symmetric")
        sl = tuple(slice(b, b + s) for b, s in zip(before, block.read_roi.shape))
        out = smooth(raw, sigma_voxels)[sl]
    else:
        out = smooth(raw, sigma_voxels)
    return {"smoothed": out[block.write_slices()]}


def sigma_in_voxels(sigma_nm: float, voxel_size_nm) -> tuple[float, ...]:
    return tuple(sigma_nm / v for v in voxel_size_nm)


def smooth_volume(raw: Volume, out_url: str, sigma_nm: float, *, block_shape=None, scheduler=None,
                  num_workers=None, overwrite=False, progress=True) -> Volume:
    """Smooth ``raw`` with a Gaussian of ``sigma_nm`` nanometres into a new Volume at ``out_url``."""
    if not sigma_nm > 0:
        raise ValueError(f"sigma {sigma_nm} nm must be > 0")
    sigma = sigma_in_voxels(sigma_nm, raw.voxel_size_nm)
    out = create_volume(out_url, raw.shape, raw.dtype, raw.voxel_size_nm, offset=raw.offset,
                        chunk_shape=raw.chunk_shape, overwrite=overwrite)
    run_blockwise(
        functools.partial(smooth_block, sigma), raw.roi, block_shape or raw.chunk_shape,
        task="smooth", inputs={"raw": raw}, outputs={"smoothed": out}, context=context_for(sigma),
        params={"sigma_nm": sigma_nm}, scheduler=scheduler, num_workers=num_workers,
        overwrite=overwrite, progress=progress,
    )
    return out
