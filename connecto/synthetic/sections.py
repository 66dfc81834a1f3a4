"""Per-section effects and the final grey levels: drift, contrast jumps, shifts, missing sections, noise.

Sections are z-slices. Each section's parameters are hashes of (seed, global z), so every
block agrees on them. With ``artefact_rate`` r, a section is missing with chance r/3,
shifted in y/x by a few voxels with chance r/3 (the image only: labels and clefts stay in
the true frame, so a segmentation must cope with the shift), or has a contrast jump with
chance r/3. Intensity drifts slowly along z in any case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .noise import normal_grid, roi_coords, section_values, value_noise

MISSING_GREY = 0.42
SHIFT_NM = 20.0  # largest misalignment


def max_shift(cfg) -> int:
    """Largest y/x shift of a misaligned section, in voxels (0 without artefacts)."""
    if cfg.artefact_rate <= 0:
        return 0
    return max(1, round(SHIFT_NM / min(cfg.voxel_size_nm[1:])))


@dataclass(frozen=True)
class SectionParams:
    gain: np.ndarray
    offset: np.ndarray   # grey levels
    shift: np.ndarray    # (n, 2) y, x voxels
    missing: np.ndarray  # bool


def section_params(cfg, z: np.ndarray) -> SectionParams:
    """Parameters of the global sections ``z``."""
    seed, rate = cfg.seed, cfg.artefact_rate
    z = np.asarray(z, dtype=np.int64)
    kind = section_values(seed, 31, z)
    a, b = section_values(seed, 32, z), section_values(seed, 33, z)
    vz = cfg.voxel_size_nm[0]
    drift = value_noise(seed, 34, (int(z[0]), 0, 0), (len(z), 1, 1), (vz, 1, 1), 8.0 * vz)[:, 0, 0]
    strength = 0.015 + 0.05 * cfg.difficulty
    gain = 1.0 + strength * drift
    offset = 10.0 * strength / 0.05 * value_noise(seed, 35, (int(z[0]), 0, 0), (len(z), 1, 1), (vz, 1, 1),
                                                  8.0 * vz)[:, 0, 0]
    missing = kind < rate / 3
    shifted = (kind >= rate / 3) & (kind < 2 * rate / 3)
    jump = (kind >= 2 * rate / 3) & (kind < rate)
    gain = np.where(jump, gain * (0.7 + 0.6 * a), gain)
    offset = np.where(jump, offset + 40.0 * (b - 0.5), offset)
    s = max_shift(cfg)
    dy = np.rint((2 * a - 1) * s).astype(np.int64)
    dx = np.rint((2 * b - 1) * s).astype(np.int64)
    dx = np.where(shifted & (dy == 0) & (dx == 0), 1 if s else 0, dx)
    shift = np.where(shifted[:, None], np.stack([dy, dx], 1), 0)
    return SectionParams(gain.astype(np.float32), offset.astype(np.float32), shift, missing)


def finish(cfg, img: np.ndarray, begin) -> np.ndarray:
    """From an intensity image covering the write box grown by ``max_shift`` in y and x to uint8.

    ``begin`` is the global first voxel of the write box.
    """
    s = max_shift(cfg)
    shape = (img.shape[0], img.shape[1] - 2 * s, img.shape[2] - 2 * s)
    z = np.arange(begin[0], begin[0] + shape[0])
    p = section_params(cfg, z)
    out = np.empty(shape, np.float32)
    for i in range(shape[0]):  # one slice per section: the shifted window of the clean image
        dy, dx = p.shift[i]
        out[i] = img[i, s - dy:s - dy + shape[1], s - dx:s - dx + shape[2]]
    vs = cfg.voxel_size_nm
    shading = 1.0 + 0.03 * value_noise(cfg.seed, 41, begin, shape, vs, 3000.0)
    grey = out * shading * (255.0 * p.gain[:, None, None]) + p.offset[:, None, None]
    coords = roi_coords(begin, shape)
    grey += cfg.noise * (0.8 * normal_grid(cfg.seed, 42, *coords)
                         + 0.9 * value_noise(cfg.seed, 44, begin, shape, vs, 2.0 * min(vs)))
    if p.missing.any():
        flat = MISSING_GREY * 255.0 + 0.5 * cfg.noise * normal_grid(cfg.seed, 43, *coords)
        grey[p.missing] = flat[p.missing]
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)
