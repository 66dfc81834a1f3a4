"""The cleft model's baseline: an ilastik-style pixel classifier (random forest on filter responses).

Per section (the sections of ssTEM are 50 nm apart, so filters are 2D), at each scale
``sigma`` of :data:`SIGMAS` (pixels; ilastik's default set without 0.3): Gaussian smoothing,
Laplacian of Gaussian, Gaussian gradient magnitude, the two Hessian eigenvalues and the two
structure-tensor eigenvalues (scipy.ndimage): 7 features per scale, plus the
raw value. A scikit-learn ``RandomForestClassifier`` learns cleft vs not from pixels sampled
from the training sections: every cleft pixel up to ``positives``, and ``negatives`` others
drawn at random, the way a user paints a few strokes in ilastik's pixel classification.
"""

from __future__ import annotations

import numpy as np

SIGMAS = (0.7, 1.0, 1.6, 3.5, 5.0, 10.0)


def section_features(section: np.ndarray, sigmas=SIGMAS) -> np.ndarray:
    """Features (n, y, x) float32 of one 2D section (uint8 or float).

    Derivatives are Gaussian derivatives at ``sigma`` (scipy.ndimage); the Laplacian is the
    Hessian's trace, the gradient magnitude and the structure tensor (smoothed at ``sigma``
    again) come from the same first derivatives; eigenvalues of the symmetric 2x2 tensors in
    closed form, larger first."""
    from scipy.ndimage import gaussian_filter

    image = section.astype(np.float32) / (255.0 if section.dtype == np.uint8 else 1.0)
    features = [image]
    for sigma in sigmas:
        d = {order: gaussian_filter(image, sigma, order=order) for order in
             ((0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2))}
        gy, gx = d[(1, 0)], d[(0, 1)]
        st = [gaussian_filter(a, sigma) for a in (gy * gy, gy * gx, gx * gx)]
        features += [d[(0, 0)], d[(2, 0)] + d[(0, 2)], np.hypot(gy, gx),
                     *_eigenvalues(d[(2, 0)], d[(1, 1)], d[(0, 2)]), *_eigenvalues(*st)]
    return np.stack(features).astype(np.float32)


def _eigenvalues(a: np.ndarray, b: np.ndarray, c: np.ndarray):
    """Eigenvalues (larger, smaller) of the symmetric 2x2 matrices [[a, b], [b, c]]."""
    mean, radius = (a + c) / 2, np.sqrt(((a - c) / 2) ** 2 + b * b)
    return mean + radius, mean - radius


def sample_pixels(masks: np.ndarray, rng, positives: int, negatives: int):
    """(section, y, x) indices of sampled training pixels and their labels (1 = cleft)."""
    flat = masks.reshape(-1) > 0
    pos, neg = np.flatnonzero(flat), np.flatnonzero(~flat)
    pos = rng.choice(pos, min(positives, pos.size), replace=False)
    neg = rng.choice(neg, min(negatives, neg.size), replace=False)
    index = np.concatenate([pos, neg])
    return np.unravel_index(index, masks.shape), np.concatenate([np.ones(pos.size), np.zeros(neg.size)])


class PixelClassifier:
    """Random-forest cleft probability, trained and applied section by section."""

    def __init__(self, n_estimators: int = 100, min_samples_leaf: int = 2, positives: int = 20000,
                 negatives: int = 60000, seed: int = 0, n_jobs: int | None = None, sigmas=SIGMAS):
        self.n_estimators, self.min_samples_leaf = n_estimators, min_samples_leaf
        self.positives, self.negatives, self.seed, self.n_jobs, self.sigmas = positives, negatives, seed, n_jobs, sigmas
        self.forest = None

    def fit(self, raw: np.ndarray, masks: np.ndarray) -> PixelClassifier:
        """Learn from the sections of ``raw`` (z, y, x) and their cleft ``masks``."""
        from sklearn.ensemble import RandomForestClassifier

        if raw.shape != masks.shape:
            raise ValueError(f"masks (shape {masks.shape}) must have the same shape as raw (shape {raw.shape})")
        rng = np.random.default_rng(self.seed)
        (z, y, x), labels = sample_pixels(masks, rng, self.positives, self.negatives)
        rows = np.empty((labels.size, 1 + 7 * len(self.sigmas)), np.float32)
        for section in np.unique(z):
            at = z == section
            rows[at] = section_features(raw[section], self.sigmas)[:, y[at], x[at]].T
        self.forest = RandomForestClassifier(n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                                             class_weight="balanced", random_state=self.seed, n_jobs=self.n_jobs)
        self.forest.fit(rows, labels)
        return self

    def predict(self, raw: np.ndarray) -> np.ndarray:
        """Cleft probability (float32, raw's shape) of each pixel of ``raw`` (z, y, x)."""
        if self.forest is None:
            raise ValueError("the pixel classifier is not trained yet; call fit first")
        out = np.zeros(raw.shape, np.float32)
        for section in range(raw.shape[0]):
            features = section_features(raw[section], self.sigmas)
            rows = features.reshape(features.shape[0], -1).T
            out[section] = self.forest.predict_proba(rows)[:, 1].reshape(raw.shape[1:])
        return out
