"""EM augmentations, each a small pure function of (raw, labels, rng).

``raw`` is float32 in [0, 1] (z, y, x); ``labels`` the matching label patch. Geometric
augmentations move both; intensity ones only ``raw``. Affinity targets are computed
after augmentation, so flips and transposes never need to permute affinity channels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def flip_transpose(raw, labels, rng):
    """Random flips along each axis and a random in-plane (y, x) transpose when y and x sizes match."""
    for axis in range(3):
        if rng.random() < 0.5:
            raw, labels = np.flip(raw, axis), np.flip(labels, axis)
    if raw.shape[1] == raw.shape[2] and rng.random() < 0.5:
        raw, labels = raw.transpose(0, 2, 1), labels.transpose(0, 2, 1)
    return np.ascontiguousarray(raw), np.ascontiguousarray(labels)


def intensity(raw, labels, rng, scale=0.1, shift=0.1, gamma=0.3):
    """Random contrast scale, brightness shift and gamma."""
    raw = raw * (1 + rng.uniform(-scale, scale)) + rng.uniform(-shift, shift)
    raw = np.clip(raw, 0, 1) ** np.exp(rng.uniform(-gamma, gamma))
    return raw.astype(np.float32), labels


def gaussian_noise(raw, labels, rng, max_sigma=0.05):
    sigma = rng.uniform(0, max_sigma)
    return np.clip(raw + rng.normal(0, sigma, raw.shape), 0, 1).astype(np.float32), labels


def gaussian_blur(raw, labels, rng, max_sigma=1.0):
    """In-plane blur of random strength (as from defocus)."""
    sigma = rng.uniform(0, max_sigma)
    return ndimage.gaussian_filter(raw, (0, sigma, sigma)).astype(np.float32), labels


def missing_section(raw, labels, rng):
    """Blank one section (a lost or unimaged slice); labels stay, so the network learns to bridge it."""
    raw = raw.copy()
    raw[rng.integers(0, raw.shape[0])] = 0
    return raw, labels


def misalign(raw, labels, rng, max_shift=4):
    """Shift all sections from a random z on by a random in-plane offset (a section alignment error)."""
    if raw.shape[0] < 2:
        return raw, labels
    z = rng.integers(1, raw.shape[0])
    shift = tuple(int(s) for s in rng.integers(-max_shift, max_shift + 1, 2))
    raw, labels = raw.copy(), labels.copy()
    raw[z:] = np.roll(raw[z:], shift, axis=(1, 2))
    labels[z:] = np.roll(labels[z:], shift, axis=(1, 2))
    return raw, labels


def elastic(raw, labels, rng, control_spacing=16, max_displacement=2.0):
    """Smooth random in-plane deformation: a coarse displacement grid, upsampled; labels by nearest neighbour."""
    shape = raw.shape
    coarse = [max(2, s // control_spacing + 1) for s in shape[1:]]
    grids = np.meshgrid(*(np.arange(s, dtype=np.float32) for s in shape), indexing="ij")
    coords = [grids[0]]
    for axis in (1, 2):
        disp = rng.normal(0, max_displacement, coarse).astype(np.float32)
        zoom = [s / c for s, c in zip(shape[1:], coarse)]
        disp = ndimage.zoom(disp, zoom, order=1)[: shape[1], : shape[2]]
        coords.append(grids[axis] + disp[np.newaxis])
    coords = np.stack(coords)
    raw = ndimage.map_coordinates(raw, coords, order=1, mode="reflect").astype(np.float32)
    labels = ndimage.map_coordinates(labels, coords, order=0, mode="reflect")
    return raw, labels


DEFAULT_PIPELINE = (
    (flip_transpose, 1.0),
    (elastic, 0.5),
    (misalign, 0.1),
    (intensity, 0.8),
    (gaussian_blur, 0.2),
    (gaussian_noise, 0.5),
    (missing_section, 0.05),
)


def augment(raw, labels, rng, pipeline=DEFAULT_PIPELINE):
    """Apply each augmentation of ``pipeline`` with its probability."""
    for fn, probability in pipeline:
        if rng.random() < probability:
            raw, labels = fn(raw, labels, rng)
    return raw, labels
