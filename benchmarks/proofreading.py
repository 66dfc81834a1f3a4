"""Proofreading benchmark: edit latency and mapping at a version on a 1M-fragment region graph.

The region graph is a size^3 grid of fragments (6-connected, ~3M edges) cut into "neurons"
by a Voronoi partition (affinity ~0.85 inside a cell, ~0.15 across); the merge history
merges every edge above 0.5, so version 0 has one segment per cell (~1000 fragments).
Measured through the public API on an SQLite log (WAL, synchronous=FULL):

- merge latency: merges of touching segments by segment id (plan + commit + fsync);
  they also grow segments of ~10k and ~100k fragments;
- split latency (igraph min cut) on segments of ~1k, ~10k and ~100k fragments, each
  split then undone; networkx beside igraph on the smaller ones;
- mapping at a version: a fresh editor asks for random past versions (snapshots every
  100 edits), beside a full replay from version 0.

Goals (issue 10): merge < 50 ms, split < 500 ms, mapping at a version < 1 s.

    python benchmarks/proofreading.py [--size 100] [--cells 1000] [--merges 200] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

# run as a script, this file's folder comes first on sys.path and its name would shadow the package
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import numpy as np
import pandas as pd

from proofreading import Proofreader


def make_run(path: Path, size: int, cells: int, seed: int = 0) -> dict:
    """Write graph/edges_*.parquet, graph/fragments.parquet, agglomeration/merge_history.parquet."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    n = size**3
    ids = np.arange(1, n + 1, dtype=np.uint64)
    zyx = np.stack(np.unravel_index(np.arange(n), (size,) * 3), axis=1).astype(np.float32)
    seeds = rng.uniform(0, size, (cells, 3))
    cell = cKDTree(seeds).query(zyx, workers=-1)[1]
    index = np.arange(n).reshape((size,) * 3)
    us, vs = [], []
    for axis in range(3):
        lo = np.take(index, np.arange(size - 1), axis=axis).ravel()
        hi = np.take(index, np.arange(1, size), axis=axis).ravel()
        us.append(lo)
        vs.append(hi)
    u, v = np.concatenate(us), np.concatenate(vs)
    same = cell[u] == cell[v]
    affinity = np.where(same, rng.uniform(0.7, 1.0, len(u)), rng.uniform(0.0, 0.3, len(u))).astype(np.float32)
    (path / "graph").mkdir(parents=True)
    (path / "agglomeration").mkdir()
    for k, part in enumerate(np.array_split(np.arange(len(u)), 8)):  # one file per "block"
        pd.DataFrame({"u": ids[u[part]], "v": ids[v[part]], "contact_area": np.full(len(part), 50, np.int64),
                      "affinity_mean": affinity[part]}).to_parquet(path / "graph" / f"edges_{k:03d}.parquet")
    pd.DataFrame({"id": ids, "size": np.full(n, 1000, np.int64), "z": zyx[:, 0], "y": zyx[:, 1], "x": zyx[:, 2]}
                 ).to_parquet(path / "graph" / "fragments.parquet")
    merged = affinity > 0.5
    order = np.argsort(-affinity[merged], kind="stable")
    pd.DataFrame({"u": ids[u[merged]][order], "v": ids[v[merged]][order],
                  "score": (1.0 - affinity[merged][order]).astype(np.float64)}
                 ).to_parquet(path / "agglomeration" / "merge_history.parquet")
    return {"n_fragments": n, "n_edges": len(u), "cells": cells, "cell_of": cell, "ids": ids,
            "boundary": np.stack([u[~same], v[~same]], axis=1)}


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, (time.perf_counter() - start) * 1000


def grow_segment(pr: Proofreader, data: dict, start_cell: int, target: int, merge_ms: list) -> int:
    """Merge touching segments breadth-first from one cell until the segment has >= target fragments."""
    ids, boundary, cell_of = data["ids"], data["boundary"], data["cell_of"]
    cell_pairs = np.unique(np.sort(cell_of[boundary], axis=1), axis=0)
    neighbours: dict[int, list[int]] = {}
    for a, b in cell_pairs.tolist():
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    representative = {c: int(ids[np.flatnonzero(cell_of == c)[0]]) for c in range(data["cells"])}
    segment = pr.segment_of(representative[start_cell])
    queue, seen = deque(neighbours[start_cell]), {start_cell}
    while len(pr.fragments_of(segment)) < target and queue:
        c = queue.popleft()
        if c in seen:
            continue
        seen.add(c)
        queue.extend(neighbours[c])
        other = pr.segment_of(representative[c])
        if other == segment:
            continue
        edit, ms = timed(pr.merge, segment, other)
        merge_ms.append(ms)
        segment = edit.new_segments[0]
    return segment


def split_far_apart(pr: Proofreader, segment: int, data: dict, backend: str | None = None) -> float:
    """Split ``segment`` between its two fragments farthest apart along z+y+x, time it, undo it."""
    fragments = pr.fragments_of(segment)
    pos = (fragments - 1).astype(np.int64)
    size = round(data["n_fragments"] ** (1 / 3))
    key = np.stack(np.unravel_index(pos, (size,) * 3)).sum(axis=0)
    source, sink = int(fragments[np.argmin(key)]), int(fragments[np.argmax(key)])
    previous = pr.split_backend
    pr.split_backend = backend or previous
    try:
        _, ms = timed(pr.split, segment, [source], [sink])
    finally:
        pr.split_backend = previous
    pr.undo()
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100, help="grid edge: size^3 fragments (100 -> 1M)")
    parser.add_argument("--cells", type=int, default=1000, help="Voronoi cells (version-0 segments)")
    parser.add_argument("--merges", type=int, default=200, help="random merges of touching segments")
    parser.add_argument("--splits", type=int, default=5, help="splits per segment size")
    parser.add_argument("--networkx", action=argparse.BooleanOptionalAction, default=True,
                        help="also time networkx min cuts on the ~1k and ~10k segments")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="connecto-proofread-bench-"))
    try:
        figures = run_benchmark(tmp / "run", args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(figures)
    if args.json_path:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_path)), exist_ok=True)
        with open(args.json_path, "w") as f:
            json.dump(figures, f, indent=1)
        print(f"wrote {args.json_path}")


def run_benchmark(run: Path, args) -> dict:
    rng = np.random.default_rng(1)
    start = time.perf_counter()
    data = make_run(run, args.size, args.cells)
    generate_s = time.perf_counter() - start

    pr, open_first_ms = timed(Proofreader.open, run, "bench", threshold=0.5, snapshot_every=100)
    _, graph_ms = timed(lambda: pr.graph)
    _, import_ms = timed(__import__, "igraph")  # once per process, like the graph
    n_segments0 = len(pr.mapping().segments())

    merge_ms: list[float] = []
    ids, boundary = data["ids"], data["boundary"]
    while len(merge_ms) < args.merges:  # random merges of touching segments
        u, v = boundary[rng.integers(len(boundary))]
        a, b = pr.segment_of(int(ids[u])), pr.segment_of(int(ids[v]))
        if a != b:
            merge_ms.append(timed(pr.merge, a, b)[1])
    random_merges = len(merge_ms)

    split_ms: dict[str, list[float]] = {"1k": [], "10k": [], "100k": []}
    nx_ms: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for label, target in (("1k", 0), ("10k", 10_000), ("100k", 100_000)):
        start_cell = int(rng.integers(args.cells))
        segment = grow_segment(pr, data, start_cell, target, merge_ms)
        sizes[label] = len(pr.fragments_of(segment))
        for _ in range(args.splits):
            split_ms[label].append(split_far_apart(pr, segment, data))
        if args.networkx and label in ("1k", "10k"):
            nx_ms[label] = split_far_apart(pr, segment, data, backend="networkx")

    head = pr.version
    fresh = Proofreader.open(run, "reader")
    versions = sorted(int(v) for v in rng.integers(0, head + 1, 20))
    at_version_ms = [timed(fresh.mapping, v)[1] for v in versions]
    head_fresh_ms = timed(fresh.mapping, head)[1]
    full_replay_ms = timed(fresh.mapping, head, use_snapshots=False)[1]
    _, open_again_ms = timed(Proofreader.open, run, "again")
    db_mb = os.path.getsize(run / "proofreading.sqlite") / 1e6
    pr.close()
    fresh.close()

    all_splits = [ms for values in split_ms.values() for ms in values]
    figures = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.processor() or 'cpu'}, "
                   f"{platform.python_implementation()} {platform.python_version()}",
        "n_fragments": data["n_fragments"],
        "n_edges": data["n_edges"],
        "n_segments_version0": n_segments0,
        "generate_s": round(generate_s, 2),
        "open_first_ms": round(open_first_ms, 1),
        "open_again_ms": round(open_again_ms, 1),
        "graph_load_ms": round(graph_ms, 1),
        "igraph_import_ms": round(import_ms, 1),
        "merges": len(merge_ms),
        "random_merges": random_merges,
        "merge_ms_median": round(statistics.median(merge_ms), 2),
        "merge_ms_p90": round(float(np.percentile(merge_ms, 90)), 2),
        "merge_ms_max": round(max(merge_ms), 2),
        "split_ms_median": round(statistics.median(all_splits), 1),
        "split_ms_max": round(max(all_splits), 1),
        "edits": head,
    }
    for label, values in split_ms.items():
        figures[f"split_segment_fragments_{label}"] = sizes[label]
        figures[f"split_ms_median_{label}"] = round(statistics.median(values), 1)
    for label, ms in nx_ms.items():
        figures[f"split_ms_networkx_{label}"] = round(ms, 1)
    figures.update({
        "mapping_at_version_ms": round(statistics.median(at_version_ms), 1),
        "mapping_at_version_ms_max": round(max(at_version_ms), 1),
        "mapping_at_head_fresh_ms": round(head_fresh_ms, 1),
        "mapping_full_replay_ms": round(full_replay_ms, 1),
        "database_mb": round(db_mb, 2),
        "goals_met": {"merge_lt_50ms": statistics.median(merge_ms) < 50,
                      "split_lt_500ms": statistics.median(all_splits) < 500,
                      "mapping_at_version_lt_1s": max(at_version_ms) < 1000},
    })
    return figures


def print_table(fig: dict) -> None:
    print(f"proofreading benchmark on {fig['machine']}")
    print(f"region graph: {fig['n_fragments']:,} fragments, {fig['n_edges']:,} edges, "
          f"{fig['n_segments_version0']:,} segments at version 0 (generated in {fig['generate_s']} s)")
    rows = [
        ("open (first: agglomeration -> log)", f"{fig['open_first_ms']:.0f} ms", ""),
        ("open (existing log)", f"{fig['open_again_ms']:.0f} ms", ""),
        ("region graph load (once per process)", f"{fig['graph_load_ms']:.0f} ms", ""),
        ("igraph import (once per process)", f"{fig['igraph_import_ms']:.0f} ms", ""),
        (f"merge, median of {fig['merges']}", f"{fig['merge_ms_median']:.1f} ms",
         f"p90 {fig['merge_ms_p90']:.1f}, max {fig['merge_ms_max']:.1f}; goal < 50 ms"),
    ]
    for label in ("1k", "10k", "100k"):
        extra = f"networkx {fig[f'split_ms_networkx_{label}']:.0f} ms" if f"split_ms_networkx_{label}" in fig else ""
        rows.append((f"split igraph, {fig[f'split_segment_fragments_{label}']:,}-fragment segment",
                     f"{fig[f'split_ms_median_{label}']:.1f} ms", extra))
    rows += [
        ("split, median of all", f"{fig['split_ms_median']:.1f} ms", f"max {fig['split_ms_max']:.1f}; goal < 500 ms"),
        (f"mapping at a version (fresh reader, {fig['edits']} edits)", f"{fig['mapping_at_version_ms']:.1f} ms",
         f"max {fig['mapping_at_version_ms_max']:.1f}; goal < 1 s"),
        ("mapping at head, full replay from v0", f"{fig['mapping_full_replay_ms']:.0f} ms", "no snapshots"),
        ("edit log size", f"{fig['database_mb']:.1f} MB", ""),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>10}  {note}")


if __name__ == "__main__":
    main()
