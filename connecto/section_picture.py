"""The demo's section picture: raw | affinities | segmentation | truth, with titles.

The segmentation is coloured like the true neuron it overlaps most, so a correct segment has
its neuron's colour in the truth panel; errors are outlined: a **merge** (a segment over several
true neurons) in red, a **split** (a true neuron cut into several segments) in yellow. A second
overlap counts when it covers at least ``min_fraction`` of the segment (merge) or of the neuron
(split) and ``min_pixels`` pixels of the section.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MERGE_COLOUR = (255, 0, 0)
SPLIT_COLOUR = (255, 255, 0)
TITLE_HEIGHT = 18


def palette(ids: np.ndarray, seed: int = 1) -> dict[int, tuple[int, int, int]]:
    """A bright colour per id (0: black), the same for an id whatever else is in the section."""
    out = {}
    for i in np.asarray(ids, np.uint64).tolist():
        if i == 0:
            out[0] = (0, 0, 0)
            continue
        rng = np.random.default_rng([seed, i % (2**63)])
        out[int(i)] = tuple(int(c) for c in rng.integers(60, 256, 3))
    return out


def match_segments(segmentation: np.ndarray, truth: np.ndarray, *, min_fraction: float = 0.1,
                   min_pixels: int = 20) -> tuple[dict[int, int], set[int], set[int]]:
    """({segment: best-overlapping true neuron}, merged segments, split segments) in one section.
    Background (0) on either side is ignored."""
    pairs = pd.DataFrame({"s": segmentation.ravel(), "t": truth.ravel()})
    pairs = pairs[(pairs["s"] != 0) & (pairs["t"] != 0)]
    overlap = pairs.value_counts().rename("n").reset_index()
    if overlap.empty:
        return {}, set(), set()
    overlap = overlap.sort_values(["s", "n", "t"], ascending=[True, False, True])
    best = dict(zip(overlap.drop_duplicates("s")["s"].tolist(), overlap.drop_duplicates("s")["t"].tolist()))
    seg_size = overlap.groupby("s")["n"].transform("sum")
    truth_size = overlap.groupby("t")["n"].transform("sum")
    big = overlap["n"] >= min_pixels
    of_segment = overlap[big & (overlap["n"] >= min_fraction * seg_size)]
    of_truth = overlap[big & (overlap["n"] >= min_fraction * truth_size)]
    merged = set(of_segment.groupby("s")["t"].nunique().loc[lambda c: c > 1].index.tolist())
    split_truth = of_truth.groupby("t")["s"].nunique().loc[lambda c: c > 1].index
    split = set(of_truth[of_truth["t"].isin(split_truth)]["s"].tolist())
    return best, merged, split


def borders(labels: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another label: every segment's own outline, so two segments of
    one colour still show the line between them."""
    padded = np.pad(labels, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    return ((padded[:-2, 1:-1] != centre) | (padded[2:, 1:-1] != centre) | (padded[1:-1, :-2] != centre)
            | (padded[1:-1, 2:] != centre))


def segmentation_panel(segmentation: np.ndarray, truth: np.ndarray, **thresholds) -> np.ndarray:
    """RGB: each segment in its best true neuron's colour (unmatched: its own), errors outlined."""
    best, merged, split = match_segments(segmentation, truth, **thresholds)
    truth_colours = palette(np.unique(truth))
    own = palette(np.unique(segmentation), seed=2)
    ids, inverse = np.unique(segmentation, return_inverse=True)
    colours = np.array([truth_colours[best[i]] if i in best else own[i] for i in ids.tolist()], np.uint8)
    rgb = colours[inverse.reshape(segmentation.shape)]
    from scipy.ndimage import binary_dilation

    edge = binary_dilation(borders(segmentation))  # 2-3 pixels wide, inside each error segment below
    for segments, colour in ((split, SPLIT_COLOUR), (merged, MERGE_COLOUR)):  # a merge's red drawn last
        if segments:
            rgb[edge & np.isin(segmentation, list(segments))] = colour
    return rgb


def truth_panel(truth: np.ndarray) -> np.ndarray:
    colours = palette(np.unique(truth))
    ids, inverse = np.unique(truth, return_inverse=True)
    return np.array([colours[i] for i in ids.tolist()], np.uint8)[inverse.reshape(truth.shape)]


def titled(panels: list[tuple[str, np.ndarray]], gap: int = 4, footer: str | None = None) -> np.ndarray:
    """Panels side by side, each under its title, on white; an optional footer line."""
    from PIL import Image, ImageDraw

    height = max(p.shape[0] for _, p in panels)
    width = sum(p.shape[1] for _, p in panels) + gap * (len(panels) - 1)
    extra = TITLE_HEIGHT if footer else 0
    canvas = Image.new("RGB", (width, height + TITLE_HEIGHT + extra), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for title, panel in panels:
        canvas.paste(Image.fromarray(panel), (x, TITLE_HEIGHT))
        draw.text((x + 3, 3), title, fill=(0, 0, 0))
        x += panel.shape[1] + gap
    if footer:
        draw.text((3, height + TITLE_HEIGHT + 3), footer, fill=(0, 0, 0))
    return np.asarray(canvas)


def section_picture(raw: np.ndarray, affinity: np.ndarray, segmentation: np.ndarray, truth: np.ndarray,
                    **thresholds) -> np.ndarray:
    """The four panels of one section (2-D arrays), titled, with a legend."""
    grey = np.repeat(raw[..., None], 3, axis=2)
    aff = np.repeat(affinity[..., None], 3, axis=2)
    _, merged, split = match_segments(segmentation, truth, **thresholds)
    return titled([("raw", grey), ("affinity (mean)", aff),
                   (f"segmentation: {_count(len(merged), 'merge')}, {_count(len(split), 'split')}", segmentation_panel(
                       segmentation, truth, **thresholds)),
                   ("truth", truth_panel(truth))],
                  footer="segments in their best true neuron's colour; red outline: merge (one segment over "
                         "several neurons); yellow outline: split (one neuron in several segments)")


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
