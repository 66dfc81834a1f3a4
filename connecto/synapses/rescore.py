"""Cleft profiles rescored: the cleft U-Net proposes, a small classifier of whole profiles decides.

On real ssTEM the U-Net gives nearly every true cleft profile a probability >= 0.9, but also
many unannotated cleft-like places; a minimum area drops those and the small true profiles
with them. Here every 2D profile of ``unet >= candidate_threshold`` (8-connected, per
section) is a candidate, described by :data:`FEATURES`:

- ``area`` (pixels), ``major``/``minor`` axis lengths, ``eccentricity`` (scikit-image);
- U-Net probability inside: ``unet_max``, ``unet_mean``, ``unet_area_90`` / ``unet_area_98`` (pixels >= 0.9 / 0.98);
- the pixel classifier's (:mod:`connecto.synapses.baseline`) probability inside: ``forest_max``,
  ``forest_mean``, ``forest_area_90``;
- the raw intensity inside (``raw_mean``) and the ring within ``RING_PX`` pixels around it minus
  that (``ring_contrast``); the U-Net's and the forest's mean probability in the ring;
- the adjacent sections: how many hold a candidate pixel under the profile (``link_sections``),
  how many such pixels (``link_area``), and their highest U-Net probability (``neighbour_unet_max``).

A classifier (scikit-learn extra trees by default) learns from candidates of annotated
sections whether a candidate overlaps a true profile; :func:`rescored_clefts` keeps the candidates
whose score reaches ``cut`` and links them into 3D objects as :func:`connecto.synapses.clefts.cleft_objects`
does. No annotation is an input of the features.

:class:`ForestWithUNet` is the other way of combining the two: the baseline's pixel forest
(:class:`connecto.synapses.baseline.PixelClassifier`, the same settings and sampled pixels) on its
filter features plus the U-Net probability and its Gaussian smoothings at :data:`UNET_SIGMAS` pixels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FEATURES = ("area", "major", "minor", "eccentricity", "unet_max", "unet_mean", "unet_area_90", "unet_area_98",
            "forest_max", "forest_mean", "forest_area_90", "raw_mean", "ring_contrast", "ring_unet", "ring_forest",
            "link_sections", "link_area", "neighbour_unet_max")
RING_PX = 5
UNET_SIGMAS = (1.0, 3.0, 8.0)  # Gaussian smoothings (pixels) of the U-Net probability that ForestWithUNet sees


def candidate_profiles(unet: np.ndarray, forest: np.ndarray, raw: np.ndarray,
                       candidate_threshold: float = 0.5) -> tuple[np.ndarray, pd.DataFrame]:
    """(candidate profiles: uint64 ids unique over the stack, 0 = none; one row per candidate: ``id``, ``z`` and
    :data:`FEATURES`) of the U-Net's and the forest's cleft probabilities and the raw stack (all z, y, x)."""
    from scipy.ndimage import binary_dilation
    from skimage.measure import regionprops

    from .clefts import profiles

    if not unet.shape == forest.shape == raw.shape:
        raise ValueError(f"the U-Net's (shape {unet.shape}) and the forest's (shape {forest.shape}) probabilities "
                         f"and raw (shape {raw.shape}) must have one shape")
    above = unet >= candidate_threshold
    candidates = profiles(above)
    rows = []
    depth = unet.shape[0]
    for z in range(depth):
        neighbours = [n for n in (z - 1, z + 1) if 0 <= n < depth]
        for region in regionprops(candidates[z].astype(np.int64)):
            box = tuple(slice(max(0, s.start - RING_PX), s.stop + RING_PX) for s in region.slice)
            inside = candidates[z][box] == region.label
            ring = binary_dilation(inside, iterations=RING_PX) & ~inside
            u, f, r = unet[z][box][inside], forest[z][box][inside], raw[z][box][inside].astype(np.float64)
            links = [int((above[n][box] & inside).sum()) for n in neighbours]
            rows.append({"id": region.label, "z": z, "area": region.area, "major": region.axis_major_length,
                         "minor": region.axis_minor_length, "eccentricity": region.eccentricity,
                         "unet_max": u.max(), "unet_mean": u.mean(), "unet_area_90": int((u >= 0.9).sum()),
                         "unet_area_98": int((u >= 0.98).sum()), "forest_max": f.max(), "forest_mean": f.mean(),
                         "forest_area_90": int((f >= 0.9).sum()), "raw_mean": r.mean(),
                         "ring_contrast": raw[z][box][ring].mean() - r.mean() if ring.any() else 0.0,
                         "ring_unet": unet[z][box][ring].mean() if ring.any() else 0.0,
                         "ring_forest": forest[z][box][ring].mean() if ring.any() else 0.0,
                         "link_sections": sum(a > 0 for a in links), "link_area": sum(links),
                         "neighbour_unet_max": max((float(unet[n][box][inside].max()) for n in neighbours),
                                                   default=0.0)})
    table = pd.DataFrame(rows, columns=["id", "z", *FEATURES])
    return candidates, table.astype({"id": np.uint64, "z": np.int64})


def candidate_labels(candidates: np.ndarray, table: pd.DataFrame, truth: np.ndarray) -> np.ndarray:
    """1 for each candidate of ``table`` that overlaps a true cleft voxel of ``truth`` (same shape), else 0."""
    if candidates.shape != truth.shape:
        raise ValueError(f"candidates (shape {candidates.shape}) and truth (shape {truth.shape}) must have one shape")
    hit = np.unique(candidates[(truth > 0) & (candidates > 0)])
    return np.isin(table["id"].to_numpy(np.uint64), hit).astype(np.int64)


class ProfileClassifier:
    """Scores candidate profiles (:func:`candidate_profiles`' table) with extremely randomised trees
    (``kind="extra_trees"``, the default) or a random forest (``kind="random_forest"``)."""

    def __init__(self, kind: str = "extra_trees", n_estimators: int = 500, min_samples_leaf: int = 2, seed: int = 0,
                 n_jobs: int | None = None):
        if kind not in ("extra_trees", "random_forest"):
            raise ValueError(f"unknown profile classifier {kind!r} (extra_trees or random_forest)")
        self.kind, self.n_estimators, self.min_samples_leaf, self.seed, self.n_jobs = (kind, n_estimators,
                                                                                       min_samples_leaf, seed, n_jobs)
        self.model = self.constant = None

    def fit(self, table: pd.DataFrame, labels: np.ndarray) -> ProfileClassifier:
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

        labels = np.asarray(labels)
        if len(table) != labels.size:
            raise ValueError(f"the profile classifier needs one label per candidate ({len(table)} candidates, "
                             f"{labels.size} labels)")
        self.constant = None
        if np.unique(labels).size < 2:  # nothing to tell apart (e.g. a barely trained U-Net): one score for all
            self.constant, self.model = (float(labels[0]) if labels.size else 0.0), "constant"
            return self
        make = ExtraTreesClassifier if self.kind == "extra_trees" else RandomForestClassifier
        self.model = make(n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                          random_state=self.seed, n_jobs=self.n_jobs)
        self.model.fit(table[list(FEATURES)].to_numpy(np.float64), labels)
        return self

    def score(self, table: pd.DataFrame) -> np.ndarray:
        """The probability that each candidate is a true cleft profile (float64, one per row)."""
        if self.model is None:
            raise ValueError("the profile classifier is not trained yet; call fit first")
        if len(table) == 0:
            return np.zeros(0)
        if self.constant is not None:
            return np.full(len(table), self.constant)
        return self.model.predict_proba(table[list(FEATURES)].to_numpy(np.float64))[:, 1]


def keep_candidates(candidates: np.ndarray, table: pd.DataFrame, scores: np.ndarray, cut: float) -> np.ndarray:
    """Cleft objects (uint64 3D ids, 0 = none) of the candidates whose score is at least ``cut``."""
    from .clefts import objects_3d

    kept = table["id"].to_numpy(np.uint64)[np.asarray(scores) >= cut]
    return objects_3d(np.isin(candidates, kept))


def rescored_clefts(unet: np.ndarray, forest: np.ndarray, raw: np.ndarray, classifier: ProfileClassifier, *,
                    candidate_threshold: float = 0.5, cut: float = 0.5) -> np.ndarray:
    """Cleft objects (uint64, 0 = none) of a stack: candidates, scored by ``classifier``, kept from ``cut``."""
    candidates, table = candidate_profiles(unet, forest, raw, candidate_threshold)
    return keep_candidates(candidates, table, classifier.score(table), cut)


def unet_features(section: np.ndarray) -> np.ndarray:
    """The U-Net probability of one section (y, x) and its Gaussian smoothings at :data:`UNET_SIGMAS`: (4, y, x)."""
    from scipy.ndimage import gaussian_filter

    probability = section.astype(np.float32)
    return np.stack([probability] + [gaussian_filter(probability, sigma) for sigma in UNET_SIGMAS])


class ForestWithUNet:
    """Cleft probability from the baseline's random forest (same trees, leaf size, balanced classes and sampled
    pixels) on the baseline's filter features plus :func:`unet_features`, section by section. ``fit`` and
    ``predict`` take the U-Net's probabilities beside raw, predicted the same way for training and new sections."""

    def __init__(self, **kwargs):
        from .baseline import PixelClassifier

        self.pixels = PixelClassifier(**kwargs)  # the settings, and the sampling of training pixels
        self.forest = None

    def _features(self, raw: np.ndarray, unet: np.ndarray) -> np.ndarray:
        from .baseline import section_features

        return np.concatenate([section_features(raw, self.pixels.sigmas), unet_features(unet)])

    def fit(self, raw: np.ndarray, unet: np.ndarray, masks: np.ndarray) -> ForestWithUNet:
        """Learn from the sections of ``raw`` (z, y, x), the U-Net's probabilities and the cleft ``masks``."""
        from sklearn.ensemble import RandomForestClassifier

        from .baseline import sample_pixels

        if not raw.shape == unet.shape == masks.shape:
            raise ValueError(f"raw (shape {raw.shape}), the U-Net's probabilities (shape {unet.shape}) and the masks "
                             f"(shape {masks.shape}) must have one shape")
        p = self.pixels
        (z, y, x), labels = sample_pixels(masks, np.random.default_rng(p.seed), p.positives, p.negatives)
        rows = np.empty((labels.size, 1 + 7 * len(p.sigmas) + 1 + len(UNET_SIGMAS)), np.float32)
        for section in np.unique(z):
            at = z == section
            rows[at] = self._features(raw[section], unet[section])[:, y[at], x[at]].T
        self.forest = RandomForestClassifier(n_estimators=p.n_estimators, min_samples_leaf=p.min_samples_leaf,
                                             class_weight="balanced", random_state=p.seed, n_jobs=p.n_jobs)
        self.forest.fit(rows, labels)
        return self

    def predict(self, raw: np.ndarray, unet: np.ndarray) -> np.ndarray:
        """Cleft probability (float32, raw's shape) of each pixel of ``raw`` (z, y, x) with the U-Net's ``unet``."""
        if self.forest is None:
            raise ValueError("the pixel classifier is not trained yet; call fit first")
        if raw.shape != unet.shape:
            raise ValueError(f"raw (shape {raw.shape}) and the U-Net's probabilities (shape {unet.shape}) must have "
                             f"one shape")
        out = np.zeros(raw.shape, np.float32)
        for section in range(raw.shape[0]):
            features = self._features(raw[section], unet[section])
            out[section] = self.forest.predict_proba(features.reshape(features.shape[0], -1).T)[:, 1].reshape(
                raw.shape[1:])
        return out
