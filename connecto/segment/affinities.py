"""Affinity conventions, input checks, and uint8 affinities derived from labels (for tests).

Affinities are ``(3, z, y, x)``; channel ``c`` holds the affinity between voxel
``(z, y, x)`` and its neighbour at -1 along axis ``c`` (offsets ``(-1, 0, 0)``,
``(0, -1, 0)``, ``(0, 0, -1)``: the convention of lsd and waterz). The first plane of
channel ``c`` has no neighbour and is ignored. On disk they are uint8, 0..255 = 0..1;
the segmentation code works on uint8 throughout, so sums over contacts are exact
integers and a blockwise run adds up to exactly what a single-block run computes.
"""

from __future__ import annotations

import numpy as np

from training.targets import affinities_from_labels as _targets

OFFSETS = ((-1, 0, 0), (0, -1, 0), (0, 0, -1))
AFFINITY_MAX = 255


class AffinityError(ValueError):
    """Affinities of the wrong shape, dtype or with NaNs."""


def as_uint8_affinities(affs, where: str = "affinities") -> np.ndarray:
    """Check ``affs`` and return them as uint8 (floats in [0, 1] are scaled by 255 and rounded).

    ``where`` names the array in error messages (e.g. the block's Roi).
    """
    affs = np.asarray(affs)
    if affs.ndim != 4 or affs.shape[0] != 3:
        raise AffinityError(f"{where} have shape {affs.shape}; expected (3, z, y, x): channels z, y, x "
                            "for the offsets (-1,0,0), (0,-1,0), (0,0,-1)")
    if affs.dtype == np.uint8:
        return affs
    if affs.dtype.kind == "f":
        if np.isnan(affs).any():
            count = int(np.isnan(affs).sum())
            raise AffinityError(f"{where} contain {count} NaN values; expected numbers in [0, 1]")
        return np.rint(np.clip(affs, 0.0, 1.0) * AFFINITY_MAX).astype(np.uint8)
    raise AffinityError(f"{where} have dtype {affs.dtype}; expected uint8 (0..255 = 0..1) or float in [0, 1]")


def affinities_from_labels(labels: np.ndarray, *, noise: float = 0.0, seed: int | None = 0) -> np.ndarray:
    """uint8 affinities ``(3, z, y, x)`` from a label volume: 1 within an object, 0 across (for tests and benchmarks).

    The training targets (:func:`training.targets.affinities_from_labels`) for :data:`OFFSETS`
    (background and the first plane of each channel are 0), with optional noise, as uint8.

    Parameters
    ----------
    labels : integer labels (z, y, x); 0 is background.
    noise : standard deviation of Gaussian noise added to the 0/1 values before clipping.
    seed : seed of the noise.

    >>> labels = np.array([[[1, 1, 2]]])
    >>> affinities_from_labels(labels)[2].tolist()
    [[[0, 255, 0]]]
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels have shape {labels.shape}; expected (z, y, x)")
    affs, _ = _targets(labels, OFFSETS)
    if noise > 0:
        rng = np.random.default_rng(seed)
        affs += rng.normal(0.0, noise, size=affs.shape).astype(np.float32)
    return np.rint(np.clip(affs, 0.0, 1.0) * AFFINITY_MAX).astype(np.uint8)
