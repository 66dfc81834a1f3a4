"""How the segment stage's time and memory grow with the volume: 1x, 8x, 64x voxels.

For each factor (8x doubles every axis of ``--base``) a synthetic volume is generated
(``connecto synth``, seed 5) and its affinities come from the shipped synthetic model
(``--affinities model``, ``connecto predict``) or from the synthetic labels plus noise
(``--affinities labels``, to keep 64x within minutes on a small machine). Then
``connecto segment`` runs in a fresh process per measurement, on a local dask cluster of
worker *processes* (``--workers``), so the driver and the workers are separate processes:

- hierarchical agglomeration at every factor; the exact global mode beside it at the
  factors up to ``--global-up-to``;
- time per voxel of each step, the driver's peak RSS and the largest worker's peak RSS
  (each process's own ``VmHWM``, read before any evaluation);
- fragment count, VOI/ARAND against the synthetic truth, and the VOI between the two modes;
- with ``--speedup-at F``: the segment stage at factor F on 1 and on 2 workers.

    python benchmarks/scale.py --base 64,256,256 --factors 1,8 --json bench-results/scale.json
    python benchmarks/scale.py --base 32,128,128 --factors 1,8,64 --affinities labels --global-up-to 8

JSON keys: ``runs`` (one row per measurement), ``peak_rss_ratio_8x`` (largest process,
hierarchical, 8x over 1x), ``time_per_voxel_ratio_8x``, ``voi_delta_vs_global`` (per
factor: hierarchical minus global VOI sum against the truth), ``voi_between_modes``,
``speedup_2_workers`` (the sum of the steps, 1 worker over 2),
``speedup_2_workers_with_cluster_start`` (the whole call, cluster start-up included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_json

CHECKPOINT = REPO / "connecto" / "data" / "synthetic_affinities.pt"
CONNECTO = Path(sys.executable).parent / "connecto"


def scaled(base, factor: int) -> tuple[int, int, int]:
    steps = round(factor ** (1 / 3))
    if steps ** 3 != factor:
        raise SystemExit(f"factor {factor} is not a cube (1, 8, 64, ...)")
    return tuple(b * steps for b in base)


def run(args, **kwargs) -> None:
    subprocess.run([str(a) for a in args], check=True, **kwargs)


def prepare(folder: Path, shape, kind: str, noise: float) -> tuple[str, str]:
    """(affinities URL, labels URL) of a synthetic volume of ``shape``."""
    truth = folder / "truth"
    affs = folder / "affinities.zarr"
    if (affs / "done" / "predict" / "complete.json").exists() or (folder / "affinities.done").exists():
        return str(affs), str(truth / "labels.zarr")  # --keep DIR of an earlier run: the same volumes
    run([CONNECTO, "synth", truth, "--shape", ",".join(map(str, shape)), "--seed", "5", "--no-progress"])
    if kind == "model":
        run([CONNECTO, "predict", CHECKPOINT, truth / "raw.zarr", affs, "--no-progress"])
    else:
        code = ("import sys; from chunks import open_volume, create_volume;"
                "from connecto.segment.affinities import affinities_from_labels;"
                "labels = open_volume(sys.argv[1]);"
                "out = create_volume(sys.argv[2], labels.shape, 'uint8', labels.voxel_size_nm, num_channels=3,"
                " chunk_shape=labels.chunk_shape);"
                "out.write(out.roi, affinities_from_labels(labels.read(), noise=float(sys.argv[3]), seed=5))")
        run([sys.executable, "-c", code, truth / "labels.zarr", affs, noise])
        (folder / "affinities.done").write_text(f"{kind} noise {noise}\n")
    return str(affs), str(truth / "labels.zarr")


def child(ns) -> None:
    """One measurement, in its own process: segment, then rusage, then (not measured) evaluation."""
    from chunks.cluster import connect
    from chunks.memory import peak_rss_mb  # VmHWM: ru_maxrss would carry the parent's peak over fork and exec
    from connecto.segment.blockwise import WARM_UP, SegmentParams, segment

    params = SegmentParams(agglomeration=ns.mode, min_size=ns.min_size)
    start = time.perf_counter()
    with connect("local", ns.workers, warm_up=WARM_UP) as client:  # what segment(scheduler="local") starts
        result = segment(ns.affinities, ns.run_dir, thresholds=[ns.threshold], params=params, scheduler=client,
                         num_workers=ns.workers, progress=False, overwrite=True)
        workers_mb = max(client.run(peak_rss_mb).values())
    seconds = time.perf_counter() - start
    driver_mb = peak_rss_mb()
    from connecto.segment.evaluate import evaluate

    truth = evaluate(result.segmentation.url.original or str(result.segmentation.url.path), ns.labels)
    row = {"seconds": round(seconds, 2), "steps": {k: round(v, 2) for k, v in result.seconds.items()},
           "driver_peak_rss_mb": round(driver_mb, 1), "largest_worker_peak_rss_mb": round(workers_mb, 1),
           "fragments": int(result.history.fragment_ids.size), "segments": int(truth.num_segments),
           "voi_split": round(truth.voi_split, 4), "voi_merge": round(truth.voi_merge, 4),
           "voi_sum": round(truth.voi_sum, 4), "arand": round(truth.arand, 4)}
    print("RESULT " + json.dumps(row))


def measure(affs, labels, run_dir, mode, workers, ns) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", "--mode", mode, "--workers", str(workers),
                          "--affinities-url", affs, "--labels-url", labels, "--run-dir", run_dir,
                          "--threshold", str(ns.threshold), "--min-size", str(ns.min_size)],
                         check=True, capture_output=True, text=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def between(a: str, b: str) -> float:
    from connecto.segment.evaluate import evaluate

    return round(float(evaluate(a, b, ignore_gt_labels=()).voi_sum), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="64,256,256")
    parser.add_argument("--factors", default="1,8")
    parser.add_argument("--affinities", choices=("model", "labels"), default="model")
    parser.add_argument("--noise", type=float, default=0.2, help="labels: Gaussian noise of the affinities")
    parser.add_argument("--global-up-to", type=int, default=8)
    parser.add_argument("--speedup-at", type=int, default=0, help="factor at which 1 and 2 workers are compared")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--min-size", type=int, default=100)
    parser.add_argument("--keep", default=None, help="keep the volumes in this directory (a rerun with the same "
                        "directory reuses them)")
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("mode", "affinities-url", "labels-url", "run-dir"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.child:
        ns.affinities, ns.labels = ns.affinities_url, ns.labels_url
        return child(ns)
    base = tuple(int(x) for x in ns.base.split(","))
    factors = [int(x) for x in ns.factors.split(",")]
    work = Path(ns.keep or tempfile.mkdtemp(prefix="connecto-scale-"))
    rows = []
    try:
        for factor in factors:
            shape = scaled(base, factor)
            voxels = shape[0] * shape[1] * shape[2]
            folder = work / f"{factor}x"
            start = time.perf_counter()
            affs, labels = prepare(folder, shape, ns.affinities, ns.noise)
            print(f"{factor}x {shape}: volume ready in {time.perf_counter() - start:.0f} s", flush=True)
            modes = ["hierarchical"] + (["global"] if factor <= ns.global_up_to else [])
            segs = {}
            for mode in modes:
                row = measure(affs, labels, str(folder / mode), mode, ns.workers, ns)
                row.update(factor=factor, shape=list(shape), voxels=voxels, mode=mode, workers=ns.workers,
                           ns_per_voxel={k: round(v / voxels * 1e9, 1) for k, v in row["steps"].items()},
                           ns_per_voxel_total=round(row["seconds"] / voxels * 1e9, 1))
                segs[mode] = str(folder / mode / "segmentation")
                rows.append(row)
                print(json.dumps(row), flush=True)
            if len(segs) == 2:
                rows[-1]["voi_between_modes"] = between(segs["hierarchical"], segs["global"])
            if factor == ns.speedup_at:
                one = measure(affs, labels, str(folder / "one-worker"), "hierarchical", 1, ns)
                one.update(factor=factor, mode="hierarchical", workers=1, voxels=voxels)
                rows.append(one)
                print(json.dumps(one), flush=True)
    finally:
        if not ns.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_and_write(rows, ns)


def print_and_write(rows, ns) -> None:
    def pick(factor, mode, workers=ns.workers):
        return next((r for r in rows if r["factor"] == factor and r["mode"] == mode and r["workers"] == workers),
                    None)

    figures = {"machine": f"{platform.machine()} {os.cpu_count()} cores ({platform.processor() or 'cpu'}), "
                          "shared with other work", "affinities": ns.affinities, "base": ns.base,
               "threshold": ns.threshold, "min_size": ns.min_size, "workers": ns.workers, "runs": rows}
    one = pick(1, "hierarchical")
    for factor in (8, 64):
        big = pick(factor, "hierarchical")
        if one and big:
            largest = lambda r: max(r["largest_worker_peak_rss_mb"], r["driver_peak_rss_mb"])
            figures[f"peak_rss_ratio_{factor}x"] = round(largest(big) / largest(one), 3)
            figures[f"driver_rss_ratio_{factor}x"] = round(big["driver_peak_rss_mb"] / one["driver_peak_rss_mb"], 3)
            figures[f"time_per_voxel_ratio_{factor}x"] = round(big["ns_per_voxel_total"] / one["ns_per_voxel_total"], 3)
    figures["voi_delta_vs_global"] = {
        f"{r['factor']}x": round(pick(r["factor"], "hierarchical")["voi_sum"] - r["voi_sum"], 4)
        for r in rows if r["mode"] == "global" and pick(r["factor"], "hierarchical")}
    figures["voi_between_modes"] = {f"{r['factor']}x": r["voi_between_modes"] for r in rows if "voi_between_modes" in r}
    if ns.speedup_at:
        two, single = pick(ns.speedup_at, "hierarchical", 2), pick(ns.speedup_at, "hierarchical", 1)
        if two and single:
            stage = lambda r: sum(r["steps"].values())
            figures["speedup_2_workers"] = round(stage(single) / stage(two), 3)
            # the whole segment() call: cluster start and the workers' warm-up included
            figures["speedup_2_workers_with_cluster_start"] = round(single["seconds"] / two["seconds"], 3)
    print(json.dumps({k: v for k, v in figures.items() if k != "runs"}, indent=1))
    write_json(ns.json_path, figures)


if __name__ == "__main__":
    main()
