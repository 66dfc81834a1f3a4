"""A tiny run directory with a known answer: a 2-D grid of fragments cut into vertical stripes.

Fragment at row y, column x has id ``ID0 + STEP * (y * width + x)`` (not positions, so a
test that confuses ids with indices fails). 4-neighbours touch; affinity is ``inside``
between fragments of one stripe and ``across`` between stripes, so the agglomeration at
threshold 0.5 gives one segment per stripe, whose id is its top-left fragment's id.
``necks`` lowers the affinity between row ``r`` and ``r + 1`` inside stripe ``s`` to
``neck`` (still merged at 0.5) so a split between the top and bottom has a known cut.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ID0, STEP = 101, 3


def fragment_id(y: int, x: int, width: int) -> int:
    return ID0 + STEP * (y * width + x)


def grid_edges(height: int, width: int, stripe: int, inside=0.9, across=0.1, necks=(), neck=0.6):
    rows = []
    for y in range(height):
        for x in range(width):
            for dy, dx in ((0, 1), (1, 0)):
                yy, xx = y + dy, x + dx
                if yy >= height or xx >= width:
                    continue
                same = x // stripe == xx // stripe
                affinity = inside if same else across
                if same and dy == 1 and (x // stripe, y) in necks:
                    affinity = neck
                rows.append((fragment_id(y, x, width), fragment_id(yy, xx, width), affinity))
    u, v, a = (np.array(c) for c in zip(*rows))
    return u.astype(np.uint64), v.astype(np.uint64), a.astype(np.float32)


def make_run(path, height: int = 6, width: int = 6, stripe: int = 2, necks=((0, 2),), split_files: bool = True,
             **affinities) -> Path:
    """Write graph/edges*.parquet, graph/fragments.parquet and agglomeration/merge_history.parquet."""
    path = Path(path)
    (path / "graph").mkdir(parents=True, exist_ok=True)
    (path / "agglomeration").mkdir(parents=True, exist_ok=True)
    u, v, a = grid_edges(height, width, stripe, necks=necks, **affinities)
    edges = pd.DataFrame({"u": u, "v": v, "contact_area": np.full(len(u), 10, np.int64), "affinity_mean": a,
                          "affinity_q50": a})
    if split_files:  # one file per "block", as the blockwise stage writes them
        half = len(edges) // 2
        edges.iloc[:half].to_parquet(path / "graph" / "edges_000.parquet", index=False)
        edges.iloc[half:].to_parquet(path / "graph" / "edges_001.parquet", index=False)
    else:
        edges.to_parquet(path / "graph" / "edges.parquet", index=False)
    ys, xs = np.mgrid[0:height, 0:width]
    ids = np.array([fragment_id(y, x, width) for y, x in zip(ys.ravel(), xs.ravel())], np.uint64)
    pd.DataFrame({"id": ids, "size": np.full(len(ids), 100, np.int64), "z": np.zeros(len(ids)),
                  "y": ys.ravel().astype(float) * 10 + 5, "x": xs.ravel().astype(float) * 10 + 5}
                 ).to_parquet(path / "graph" / "fragments.parquet", index=False)
    order = np.argsort(-a, kind="stable")
    pd.DataFrame({"u": u[order], "v": v[order], "score": (1.0 - a[order]).astype(np.float64)}
                 ).to_parquet(path / "agglomeration" / "merge_history.parquet", index=False)
    return path


def stripe_segment(s: int, stripe: int, width: int) -> int:
    """Version-0 segment id of stripe ``s``: its smallest fragment id (top-left)."""
    return fragment_id(0, s * stripe, width)


def stripe_fragments(s: int, height: int, width: int, stripe: int) -> list[int]:
    return sorted(fragment_id(y, x, width) for y in range(height) for x in range(s * stripe, (s + 1) * stripe))
