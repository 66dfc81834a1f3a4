"""A PNG gallery of the strongest detections, for a person to judge: raw crop, cleft, pre -> post arrows.

Each panel is the section (z) through a synapse's cleft point: the raw image of a square
``2 * half_width_nm`` around it, the predicted cleft (probability >= threshold) tinted, and
an arrow from the presynaptic point to each postsynaptic point (projected onto the section).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def top_synapses(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` synapses with the highest score (ties: larger clefts first); one group of rows each."""
    best = table.groupby("id").agg(score=("score", "first"), size=("size", "first"))
    chosen = best.sort_values(["score", "size"], ascending=False).head(n).index
    return table[table["id"].isin(chosen)]


def write_gallery(raw: np.ndarray, cleft_prob: np.ndarray, table: pd.DataFrame, path: str, *, voxel_size_nm,
                  offset_nm=(0, 0, 0), n: int = 12, half_width_nm: float = 400.0, threshold: float = 0.5,
                  title: str = "") -> str:
    """Write the gallery of the top ``n`` synapses of ``table`` (detect.table_columns) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .detect import as_probability

    vs, offset = np.asarray(voxel_size_nm, float), np.asarray(offset_nm, float)
    prob = as_probability(cleft_prob, "cleft probability")
    chosen = top_synapses(table, n)
    groups = list(chosen.groupby("id", sort=False))
    groups.sort(key=lambda g: -g[1]["score"].iloc[0])
    cols = 4
    rows = max(1, -(-len(groups) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    half = np.ceil(half_width_nm / vs[1:]).astype(int)
    for ax, (synapse_id, rows_of) in zip(axes.ravel(), groups):
        cleft = np.rint((rows_of[["cleft_z_nm", "cleft_y_nm", "cleft_x_nm"]].iloc[0].to_numpy() - offset) / vs)
        z, y, x = cleft.astype(int)
        y0, x0 = max(y - half[0], 0), max(x - half[1], 0)
        y1, x1 = min(y + half[0] + 1, raw.shape[1]), min(x + half[1] + 1, raw.shape[2])
        ax.imshow(raw[z, y0:y1, x0:x1], cmap="gray", interpolation="nearest")
        tint = np.zeros((y1 - y0, x1 - x0, 4))
        tint[prob[z, y0:y1, x0:x1] >= threshold] = (1.0, 0.0, 1.0, 0.35)
        ax.imshow(tint, interpolation="nearest")
        pre = (rows_of[["pre_y_nm", "pre_x_nm"]].iloc[0].to_numpy() - offset[1:]) / vs[1:] - (y0, x0)
        for post in (rows_of[["post_y_nm", "post_x_nm"]].to_numpy() - offset[1:]) / vs[1:] - (y0, x0):
            ax.annotate("", xy=(post[1], post[0]), xytext=(pre[1], pre[0]),
                        arrowprops={"arrowstyle": "->", "color": "yellow", "lw": 1.5})
        ax.plot(pre[1], pre[0], "o", color="cyan", ms=4)
        ax.set_title(f"#{int(synapse_id)} z={z}  score {rows_of['score'].iloc[0]:.2f}  "
                     f"{len(rows_of)} post", fontsize=7)
    if not groups:
        axes[0, 0].text(0.5, 0.5, "no synapses detected", ha="center", va="center")
    fig.suptitle(title or "top synapse detections: cleft (magenta), pre (cyan dot) -> post (arrows)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
