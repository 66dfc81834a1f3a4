"""A picture of a synthetic volume: sections of the image, the labels and the clefts side by side."""

from __future__ import annotations

import numpy as np


def label_colours(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """RGB (uint8) with a random bright colour per label id, black for 0."""
    ids, inverse = np.unique(labels, return_inverse=True)
    colours = np.random.default_rng(seed).integers(60, 256, (len(ids), 3)).astype(np.uint8)
    colours[ids == 0] = 0
    return colours[inverse.reshape(labels.shape)]


def busiest_section(clefts: np.ndarray, exclude: np.ndarray | None = None) -> int:
    """The z with the most cleft voxels (the middle one without clefts); ``exclude``: bool per z."""
    counts = (clefts > 0).sum(axis=(1, 2)).astype(float)
    if exclude is not None:
        counts[np.asarray(exclude, bool)] = -1
    return int(np.argmax(counts)) if counts.max() > 0 else clefts.shape[0] // 2


def panels(raw: np.ndarray, labels: np.ndarray, clefts: np.ndarray, z: int | None = None) -> np.ndarray:
    """One row: the image section, its labels, and the image with clefts in red (RGB uint8)."""
    z = busiest_section(clefts) if z is None else z
    grey = np.repeat(raw[z][..., None], 3, axis=2)
    overlay = grey.copy()
    overlay[clefts[z] > 0] = (255, 40, 40)
    gap = np.full((raw.shape[1], 4, 3), 255, np.uint8)
    return np.concatenate([grey, gap, label_colours(labels[z]), gap, overlay], axis=1)


def montage(rows: list[np.ndarray], scale: int = 1) -> np.ndarray:
    """Stack rows (RGB, padded to the widest) with white gaps; enlarge by ``scale``."""
    width = max(r.shape[1] for r in rows)
    padded = []
    for r in rows:
        pad = np.full((r.shape[0], width - r.shape[1], 3), 255, np.uint8)
        padded += [np.concatenate([r, pad], axis=1), np.full((4, width, 3), 255, np.uint8)]
    image = np.concatenate(padded[:-1], axis=0)
    return image.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else image
