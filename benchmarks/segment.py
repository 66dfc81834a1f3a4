"""Segmentation throughput and accuracy: connecto vs waterz, mwatershed and scikit-image.

Affinities come from ground truth plus Gaussian noise (a test of the segmentation alone,
independent of any learned model): the FIB-25 labels of ``../shared/data`` (z < 160),
mirrored up to ``--shape`` (default 256³), or, with ``--affinities classical``, the
README's classical baseline from the raw EM (Gaussian-smoothed, normalised intensity;
affinity = the smaller of the two voxel values).

Every method segments the same affinities in the same process; VOI/ARAND are against
the same truth, at the best threshold of a sweep (chosen on this volume, as the
README's baseline is). Peak memory of the blockwise pipeline is measured in a fresh
process per block shape, on the same volume on disk.

    python benchmarks/segment.py                    # 256³, all methods
    python benchmarks/segment.py --shape 128,128,128 --skip waterz,mwatershed --json out.json

With a reconstruction run of the FIB-25 volume (``connecto reconstruct
configs/reconstruct-fib25.toml``; ``--fib25-run``), it also times mean agglomeration of
that run's region graph (hundreds of thousands of fragments, long chains of merges),
beside waterz on the run's own affinities and fragments.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "fib25" / "training_sample2.h5"
FIB25_RUN = REPO / "runs" / "reconstruct-fib25"
THRESHOLDS = [round(0.05 * i, 2) for i in range(1, 20)]
SINGLE_BLOCK = {}  # method -> in-memory single-block segmentation at threshold 0.5


def load_volume(shape, noise: float, kind: str, seed: int = 0):
    """(uint8 affinities (3, z, y, x), ground truth (z, y, x)) at ``shape``."""
    import h5py

    from connecto.segment.affinities import affinities_from_labels

    if not DATA.exists():
        sys.exit(f"needs {DATA} (../shared/data)")
    with h5py.File(DATA, "r") as f:
        gt = f["labels"][:160]
        raw = f["raw"][:160] if kind == "classical" else None
    gt = _mirror_to(gt, shape)
    if kind == "classical":
        return classical_affinities(_mirror_to(raw, shape)), gt
    return affinities_from_labels(gt, noise=noise, seed=seed), gt


def classical_affinities(raw: np.ndarray) -> np.ndarray:
    """The README's classical baseline: smoothed raw normalised by its 1/99 percentiles, min of two voxels."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(raw.astype(np.float32), 1.0)
    low, high = np.percentile(smooth, [1, 99])
    value = np.clip((smooth - low) / (high - low), 0, 1)
    affs = np.zeros((3, *raw.shape), np.float32)
    for c in range(3):
        here = [slice(None)] * 3
        there = [slice(None)] * 3
        here[c], there[c] = slice(1, None), slice(None, -1)
        affs[c][tuple(here)] = np.minimum(value[tuple(here)], value[tuple(there)])
    return np.rint(affs * 255).astype(np.uint8)


def _mirror_to(volume: np.ndarray, shape) -> np.ndarray:
    pads = [(0, max(0, s - v)) for s, v in zip(shape, volume.shape)]
    out = np.pad(volume, pads, mode="symmetric") if any(p for _, p in pads) else volume
    return np.ascontiguousarray(out[tuple(slice(0, s) for s in shape)])


# --- methods --------------------------------------------------------------------------

def best_of(segment_at, thresholds, gt):
    """Evaluate a segmentation per threshold from a fragment x GT table; return the best row."""
    from connecto.segment.evaluate import evaluate

    best = None
    for threshold in thresholds:
        result = evaluate(segment_at(threshold), gt, top=0)
        row = {"threshold": threshold, "voi_split": result.voi_split, "voi_merge": result.voi_merge,
               "voi_sum": result.voi_sum, "arand": result.arand, "segments": result.num_segments}
        if best is None or row["voi_sum"] < best["voi_sum"]:
            best = row
    return best


def run_connecto(affs, gt, method: str):
    from connecto.segment.agglomerate import agglomerate_mean, mutex_watershed
    from connecto.segment.fragments import fragment_table, fragments, link_mask
    from connecto.segment.region_graph import region_graph
    from connecto.segment.relabel import relabel

    times = {}
    start = time.perf_counter()
    links = link_mask(affs)
    labels = fragments(affs, links=links)
    table = fragment_table(labels)
    times["fragments"] = time.perf_counter() - start
    start = time.perf_counter()
    edges = region_graph(labels, affs, links=links)
    times["region_graph"] = time.perf_counter() - start
    start = time.perf_counter()
    if method == "mutex":
        history = mutex_watershed(edges, table)
    else:
        history = agglomerate_mean(edges, table)
    times["agglomerate"] = time.perf_counter() - start
    thresholds = [1.0] if method == "mutex" else THRESHOLDS
    quality = best_of(lambda t: relabel(labels, history.mapping(t)), thresholds, gt)
    SINGLE_BLOCK[method] = relabel(labels, history.mapping(0.5))
    return times, quality, {"fragments": int(table.shape[0]), "edges": int(edges.shape[0])}


def run_connecto_on(fragment_fn, affs, gt):
    """Other fragments, then connecto's region graph and mean agglomeration."""
    from connecto.segment.agglomerate import agglomerate_mean
    from connecto.segment.fragments import fragment_table
    from connecto.segment.region_graph import region_graph
    from connecto.segment.relabel import relabel

    times = {}
    start = time.perf_counter()
    labels = fragment_fn(affs)
    times["fragments"] = time.perf_counter() - start
    start = time.perf_counter()
    edges = region_graph(labels, affs)
    edges["linked"] = False
    times["region_graph"] = time.perf_counter() - start
    start = time.perf_counter()
    history = agglomerate_mean(edges, fragment_table(labels))
    times["agglomerate"] = time.perf_counter() - start
    quality = best_of(lambda t: relabel(labels, history.mapping(t)), THRESHOLDS, gt)
    return times, quality, {"fragments": int(history.fragment_ids.size), "edges": len(edges)}


def run_waterz(affs, gt, fragments=None):
    import waterz

    floats = (affs / 255.0).astype(np.float32)
    start = time.perf_counter()
    segmentations = [s.copy() for s in waterz.agglomerate(
        floats, THRESHOLDS, fragments=None if fragments is None else fragments.copy())]
    seconds = time.perf_counter() - start
    by_threshold = dict(zip(THRESHOLDS, segmentations))
    quality = best_of(lambda t: by_threshold[t], THRESHOLDS, gt)
    return {"waterz.agglomerate": seconds}, quality, {}


def run_mwatershed(affs, gt, bias=0.5):
    import mwatershed

    weights = affs.astype(np.float64) / 255.0 - bias
    start = time.perf_counter()
    labels = mwatershed.agglom(weights, offsets=[[-1, 0, 0], [0, -1, 0], [0, 0, -1]])
    seconds = time.perf_counter() - start
    quality = best_of(lambda t: labels, [bias], gt)
    return {"mwatershed.agglom": seconds}, quality, {}


# --- a real region graph: the FIB-25 reconstruction run -----------------------------------

def run_region_graph(run_dir: Path, max_scores, skip_waterz: bool) -> dict:
    """Mean agglomeration of a run's region graph (per max_score), and waterz on its affinities + fragments."""
    from chunks import open_volume
    from connecto.segment.agglomerate import agglomerate_mean
    from connecto.segment.graph_store import read_edges, read_fragments

    edges, fragments = read_edges(str(run_dir)), read_fragments(str(run_dir))
    result = {"run": str(run_dir), "fragments": len(fragments), "edges": len(edges), "connecto": []}
    for max_score in max_scores:
        start = time.perf_counter()
        history = agglomerate_mean(edges, fragments, max_score=max_score)
        result["connecto"].append({"max_score": max_score, "seconds": time.perf_counter() - start,
                                   "merges": len(history.merges)})
    if not skip_waterz:
        import waterz

        affs = (open_volume(run_dir / "affinities.zarr").read() / 255.0).astype(np.float32)
        labels = open_volume(run_dir / "fragments").read()
        result["waterz"] = []
        for threshold in max_scores:
            start = time.perf_counter()
            for _ in waterz.agglomerate(affs, [threshold], fragments=labels.copy()):
                pass
            result["waterz"].append({"threshold": threshold, "seconds": time.perf_counter() - start})
    return result


def report_region_graph(result: dict) -> None:
    print(f"\nregion graph of {result['run']} ({result['fragments']} fragments, {result['edges']} edges):")
    for row in result["connecto"]:
        print(f"  connecto mean agglomeration, max_score {row['max_score']:.2f}: {row['seconds']:.2f} s, "
              f"{row['merges']} merges")
    for row in result.get("waterz", []):
        print(f"  waterz on the run's affinities and fragments (region graph included), threshold "
              f"{row['threshold']:.2f}: {row['seconds']:.2f} s")


# --- blockwise and peak memory ---------------------------------------------------------

BLOCKWISE_CHILD = """
import json, sys, time
from connecto.segment.blockwise import segment
affs, run, block = sys.argv[1], sys.argv[2], tuple(int(v) for v in sys.argv[3].split(','))
start = time.perf_counter()
result = segment(affs, run, thresholds=[0.5], block_shape=block, scheduler='sync', progress=False)
seconds = time.perf_counter() - start
# VmHWM: this process's own peak (ru_maxrss would carry the parent's peak over the exec)
peak = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) / 1024
print(json.dumps({'seconds': seconds, 'stages': result.seconds, 'segmentation': str(result.segmentation.url),
                  'peak_rss_mib': peak}))
"""


def run_blockwise(affs, block_shapes, workdir: Path) -> list[dict]:
    """Each block shape in a fresh process (its peak memory), checked against the single-block result."""
    from chunks import create_volume, open_volume
    from connecto.segment.evaluate import evaluate

    vol = create_volume(workdir / "affs", affs.shape[1:], np.uint8, (10, 10, 10), chunk_shape=(64, 64, 64),
                        num_channels=3, overwrite=True)
    vol.write(vol.roi, affs)
    rows = []
    for block in block_shapes:
        run_dir = workdir / f"run-{block[0]}"
        out = subprocess.run([sys.executable, "-c", BLOCKWISE_CHILD, str(workdir / "affs"), str(run_dir),
                              ",".join(map(str, block))], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
        row = {"block": list(block), **json.loads(out.stdout.strip().splitlines()[-1])}
        if "mean" in SINGLE_BLOCK:
            seam = evaluate(open_volume(row.pop("segmentation")).read(), SINGLE_BLOCK["mean"], ignore_gt_labels=())
            row["voi_vs_single_block"] = seam.voi_sum
        rows.append(row)
    return rows


# --- report --------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="256,256,256", help="volume shape z,y,x (default 256,256,256)")
    parser.add_argument("--noise", type=float, default=0.2, help="Gaussian noise on GT affinities (default 0.2)")
    parser.add_argument("--affinities", choices=["gt", "classical"], default="gt",
                        help="gt: from labels plus noise; classical: the README's baseline from raw EM")
    parser.add_argument("--skip", default="", help="comma-separated methods to skip: waterz, mwatershed, skimage, "
                                                   "blockwise, region-graph")
    parser.add_argument("--fib25-run", default=str(FIB25_RUN),
                        help=f"a FIB-25 reconstruction run whose region graph to agglomerate (default {FIB25_RUN})")
    parser.add_argument("--blocks", default="64,128,256",
                        help="cubic block sizes for the blockwise runs (peak memory, VOI against one block)")
    parser.add_argument("--json", dest="json_path", default=None, help="write the results as JSON to PATH")
    args = parser.parse_args(argv)
    shape = tuple(int(v) for v in args.shape.split(","))
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    affs, gt = load_volume(shape, args.noise, args.affinities)
    voxels = int(np.prod(shape))
    print(f"volume {shape} ({voxels / 1e6:.1f} Mvox), affinities: {args.affinities}"
          + (f" (noise {args.noise})" if args.affinities == "gt" else "") + f", cores: {os.cpu_count()}")

    from connecto.segment.fragments import distance_watershed, fragments

    runs = {"connecto mean": lambda: run_connecto(affs, gt, "mean"),
            "connecto mutex": lambda: run_connecto(affs, gt, "mutex")}
    if "waterz" not in skip:
        runs["waterz (own fragments)"] = lambda: run_waterz(affs, gt)
        runs["waterz (connecto fragments)"] = lambda: run_waterz(affs, gt, fragments(affs))
    if "mwatershed" not in skip:
        runs["mwatershed (voxel mutex)"] = lambda: run_mwatershed(affs, gt)
    if "skimage" not in skip:
        runs["skimage fragments + connecto"] = lambda: run_connecto_on(distance_watershed, affs, gt)

    rows = []
    for name, fn in runs.items():
        times, quality, sizes = fn()
        total = sum(times.values())
        rows.append({"method": name, "seconds": total, "mvox_per_s": voxels / total / 1e6, "times": times,
                     **quality, **sizes})
    print(f"\n{'method':<30} {'seconds':>8} {'Mvox/s':>7} {'thr':>5} {'VOI split':>9} {'merge':>7} "
          f"{'sum':>7} {'ARAND':>7} {'segments':>8}  stages")
    for r in rows:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r["times"].items())
        print(f"{r['method']:<30} {r['seconds']:>8.2f} {r['mvox_per_s']:>7.2f} {r['threshold']:>5.2f} "
              f"{r['voi_split']:>9.4f} {r['voi_merge']:>7.4f} {r['voi_sum']:>7.4f} {r['arand']:>7.4f} "
              f"{r['segments']:>8d}  {stages}")

    blockwise = []
    if "blockwise" not in skip:
        sizes = [int(b) for b in args.blocks.split(",")]
        with tempfile.TemporaryDirectory() as tmp:
            blockwise = run_blockwise(affs, [(b, b, b) for b in sizes], Path(tmp))
        print("\nblockwise (engine, scheduler=sync, zarr on disk; peak RSS of the whole process), threshold 0.5:")
        for r in blockwise:
            stages = ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items())
            print(f"  block {r['block']}: {r['seconds']:.2f} s ({voxels / r['seconds'] / 1e6:.2f} Mvox/s), "
                  f"peak RSS {r['peak_rss_mib']:.0f} MiB, VOI vs single block "
                  f"{r.get('voi_vs_single_block', float('nan')):.4f}  ({stages})")
    region_graph = None
    if "region-graph" not in skip:
        if (Path(args.fib25_run) / "graph").exists():
            region_graph = run_region_graph(Path(args.fib25_run), [0.6, 1.0], "waterz" in skip)
            report_region_graph(region_graph)
        else:
            print(f"\nno region graph at {args.fib25_run}/graph: "
                  "run connecto reconstruct configs/reconstruct-fib25.toml first")
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump({"shape": shape, "noise": args.noise, "affinities": args.affinities, "methods": rows,
                       "blockwise": blockwise, "fib25_region_graph": region_graph}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
