"""Blockwise engine benchmark.

(a) Copy a 512^3 uint8 zarr volume through ``run_blockwise`` (default local dask cluster)
    and with a bare zarr copy loop in the same run; report the throughput ratio.
(b) Per-block overhead of the engine for trivial blocks (no I/O but the done-marker),
    per scheduler, beside a bare dask.distributed no-op task measured in the same run.

    python benchmarks/engine.py [--size 512] [--block 128] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time

import numpy as np
from report import write_json

from chunks import Roi, create_volume, run_blockwise
from chunks.cluster import connect, default_workers


def copy_block(block, inputs):
    return {"out": inputs["src"]}


def noop_block(block, inputs):
    return None


def _noop():
    return None


def make_source(path: str, size: int, chunk: int):
    vol = create_volume(path, (size,) * 3, "uint8", (8, 8, 8), chunk_shape=(chunk,) * 3, overwrite=True)
    rng = np.random.default_rng(0)
    for roi in vol.roi.blocks((chunk, size, size)):
        # EM-like compressibility: smooth-ish noise, not pure random bytes
        slab = rng.integers(90, 170, tuple(roi.shape), dtype=np.uint8)
        vol.write(roi, slab)
    return vol


def bare_zarr_copy(src_path: str, dst_path: str, size: int, chunk: int, block: int) -> float:
    import zarr

    src = zarr.open_array(src_path, mode="r")
    dst = zarr.create_array(dst_path, shape=src.shape, chunks=(chunk,) * 3, dtype=src.dtype, overwrite=True)
    start = time.perf_counter()
    for roi in Roi((0, 0, 0), (size,) * 3).blocks((block,) * 3):
        sl = roi.to_slices()
        dst[sl] = src[sl]
    return time.perf_counter() - start


def engine_copy(src, dst_path: str, block: int, scheduler, workers) -> float:
    dst = create_volume(dst_path, src.shape, src.dtype, src.voxel_size_nm, chunk_shape=src.chunk_shape, overwrite=True)
    start = time.perf_counter()
    run_blockwise(copy_block, src.roi, (block,) * 3, task="copy", inputs={"src": src}, outputs={"out": dst},
                  scheduler=scheduler, num_workers=workers, progress=False, overwrite=True)
    return time.perf_counter() - start


def per_block_overhead(tmp: str, n_blocks: int, scheduler, workers) -> float:
    roi = Roi((0, 0, 0), (n_blocks, 1, 1))
    markers = os.path.join(tmp, f"markers-{scheduler}")
    shutil.rmtree(markers, ignore_errors=True)
    with connect(scheduler, workers) as client:  # cluster start-up is not per-block overhead
        start = time.perf_counter()
        run_blockwise(noop_block, roi, (1, 1, 1), task="noop", markers_at=markers,
                      scheduler=client if client is not None else "sync", progress=False)
        return (time.perf_counter() - start) / n_blocks * 1000


def bare_dask_task_ms(n: int, workers: int) -> float:
    with connect("local", workers) as client:
        client.gather(client.map(lambda i: None, range(10), pure=False))  # warm up
        start = time.perf_counter()
        futures = [client.submit(_noop, pure=False) for _ in range(n)]
        client.gather(futures)
        return (time.perf_counter() - start) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--trivial-blocks", type=int, default=400)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="connecto-bench-")
    try:
        src = make_source(os.path.join(tmp, "src.zarr"), args.size, args.chunk)
        bare_s = bare_zarr_copy(src.url.path, os.path.join(tmp, "bare.zarr"), args.size, args.chunk, args.block)
        engine_s = engine_copy(src, os.path.join(tmp, "engine.zarr"), args.block, None, args.workers)
        with connect(None, args.workers) as client:  # a started cluster, as reconstruct shares one across stages
            engine_copy(src, os.path.join(tmp, "warmup.zarr"), args.block, client, None)
            warm_s = engine_copy(src, os.path.join(tmp, "engine-warm.zarr"), args.block, client, None)
        sync_s = engine_copy(src, os.path.join(tmp, "sync.zarr"), args.block, "sync", None)
        threads_s = engine_copy(src, os.path.join(tmp, "threads.zarr"), args.block, "threads", args.workers)
        mvox = args.size**3 / 1e6
        overhead = {s: per_block_overhead(tmp, args.trivial_blocks, s, args.workers) for s in ("sync", "threads", "local")}
        bare_task = bare_dask_task_ms(args.trivial_blocks, args.workers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    figures = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
        "workers": args.workers,
        "volume_shape": [args.size] * 3,
        "chunk_shape": [args.chunk] * 3,
        "block_shape": [args.block] * 3,
        "bare_zarr_copy_s": round(bare_s, 3),
        "engine_copy_local_cluster_s": round(engine_s, 3),
        "engine_copy_local_cluster_started_s": round(warm_s, 3),
        "engine_copy_sync_s": round(sync_s, 3),
        "engine_copy_threads_incl_start_s": round(threads_s, 3),
        "bare_zarr_copy_mvox_per_s": round(mvox / bare_s, 1),
        "engine_copy_local_cluster_mvox_per_s": round(mvox / engine_s, 1),
        "ratio_engine_vs_bare_zarr_copy": round(bare_s / warm_s, 3),
        "ratio_engine_incl_cluster_start_vs_bare_zarr_copy": round(bare_s / engine_s, 3),
        "ratio_engine_sync_vs_bare_zarr_copy": round(bare_s / sync_s, 3),
        "per_block_overhead_ms_sync": round(overhead["sync"], 3),
        "per_block_overhead_ms_threads": round(overhead["threads"], 3),
        "per_block_overhead_ms_local_processes": round(overhead["local"], 3),
        "bare_dask_task_ms": round(bare_task, 3),
    }
    print(f"engine benchmark on {figures['machine']} ({args.workers} workers)")
    print(f"(a) copy {args.size}^3 uint8, chunks {args.chunk}^3, blocks {args.block}^3")
    print(f"    {'method':<36} {'seconds':>8} {'Mvox/s':>8} {'ratio vs bare':>14}")
    print(f"    {'bare zarr copy loop':<36} {bare_s:8.2f} {mvox / bare_s:8.1f} {1.0:14.2f}")
    print(f"    {'engine, local cluster (started)':<36} {warm_s:8.2f} {mvox / warm_s:8.1f} {bare_s / warm_s:14.2f}")
    print(f"    {'engine, local cluster (incl. start)':<36} {engine_s:8.2f} {mvox / engine_s:8.1f} {bare_s / engine_s:14.2f}")
    print(f"    {'engine, threads (incl. start)':<36} {threads_s:8.2f} {mvox / threads_s:8.1f} {bare_s / threads_s:14.2f}")
    print(f"    {'engine, sync (no dask)':<36} {sync_s:8.2f} {mvox / sync_s:8.1f} {bare_s / sync_s:14.2f}")
    print(f"(b) per-block overhead, {args.trivial_blocks} trivial blocks (done-marker only)")
    for name, key in (("sync", "sync"), ("threads", "threads"), ("local processes", "local")):
        print(f"    {name:<36} {overhead[key]:8.3f} ms/block")
    print(f"    {'bare dask.distributed no-op task':<36} {bare_task:8.3f} ms/task")
    write_json(args.json_path, figures)


if __name__ == "__main__":
    main()
