"""Image statistics for comparing a synthetic volume with real EM (the realism check).

``image_statistics(raw, labels)`` measures what a person notices first: the grey-level
histogram, how much darker label boundaries are than interiors (and how fast the darkening
fades with distance), and the slope of the radially averaged power spectrum of the sections.
"""

from __future__ import annotations

import numpy as np


def boundary_contrast(raw: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Mean grey level at label-boundary voxels and elsewhere, and 1 - boundary / interior.

    Boundary voxels have a 6-neighbour with another label (both sides of each interface).
    """
    from .labels import boundary_mask

    boundary = boundary_mask(labels)
    b, i = float(raw[boundary].mean()), float(raw[~boundary].mean())
    return {"boundary_mean": b, "interior_mean": i, "contrast": 1.0 - b / i,
            "boundary_fraction": float(boundary.mean())}


def membrane_profile(raw: np.ndarray, labels: np.ndarray, max_distance: int = 5) -> list[float]:
    """Mean grey level by distance (voxels, rounded down) from the nearest boundary voxel."""
    from scipy import ndimage

    from .labels import boundary_mask

    distance = ndimage.distance_transform_edt(~boundary_mask(labels)).astype(int)
    return [float(raw[distance == k].mean()) for k in range(max_distance + 1) if np.any(distance == k)]


def spectrum_slope(raw: np.ndarray, every: int = 4) -> float:
    """Slope of log power vs log spatial frequency of y-x sections (mid frequencies)."""
    sections = raw[::every].astype(np.float64)
    n = min(sections.shape[1:])
    power = 0.0
    for s in sections:
        s = s[:n, :n] - s[:n, :n].mean()
        power = power + np.abs(np.fft.fftshift(np.fft.fft2(s))) ** 2
    yy, xx = np.indices(power.shape)
    radius = np.hypot(yy - n // 2, xx - n // 2).astype(int)
    profile = np.bincount(radius.ravel(), power.ravel()) / np.maximum(np.bincount(radius.ravel()), 1)
    k = np.arange(len(profile))
    sel = (k >= max(2, n // 64)) & (k <= n // 2 - 1)
    return float(np.polyfit(np.log(k[sel]), np.log(profile[sel]), 1)[0])


def image_statistics(raw: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """Histogram percentiles, mean and std; with labels, boundary contrast and membrane profile."""
    raw = np.asarray(raw)
    out = {
        "mean": float(raw.mean()), "std": float(raw.std()),
        "percentiles": {str(p): float(v) for p, v in zip((1, 5, 25, 50, 75, 95, 99),
                                                           np.percentile(raw, (1, 5, 25, 50, 75, 95, 99)))},
        "spectrum_slope": spectrum_slope(raw),
    }
    if labels is not None:
        out.update(boundary_contrast(raw, labels))
        out["mean_grey_by_distance_to_boundary"] = membrane_profile(raw, labels)
    return out
