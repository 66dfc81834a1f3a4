"""Prediction benchmark: `connecto predict` per precision vs the bare forward pass, same run.

Measures, in one process on this machine:
1. whether the CPU has native bf16, and what ``precision="auto"`` picks (and why);
2. the bare forward pass of the network (plain ``model(x)``, no I/O, no context) on as many
   voxels as the volume has, in blocks of the pipeline's write block shape, for fp32 and,
   only where the CPU has native bf16 (or on a GPU), for bf16;
3. blockwise ``predict_volume`` on a 256^3 uint8 zarr volume with the default memory limit
   (1 GiB per worker: reading, context between blocks, slab forward where a block needs it,
   uint8 output, done-markers) for fp32, bf16 (native only) and auto;
4. with ``--memory``, the peak RSS of ``predict_volume`` in a fresh process for volumes of
   growing size (it must not grow with the volume).

    python benchmarks/predict.py [--size 256] [--checkpoint PATH] [--memory] [--json PATH]

Emulated bf16 is never timed (it is ~20x slower than fp32 and would take tens of minutes).
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

import numpy as np
import torch
from report import write_json

from chunks import create_volume
from chunks.blocks import plan_blocks
from training.checkpoint import build_model, load_checkpoint
from training.precision import cpu_has_native_bf16, resolve_precision
from training.predict import predict_volume
from training.unet import fast_layout, parameter_count

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CHECKPOINT = os.path.join(REPO, "connecto", "data", "fib25_affinities.pt")
MEMORY_SIZES = (128, 192, 256, 320)


def bare_forward(model, block_shape, n_voxels: int, precision: str, device) -> float:
    """Seconds for plain forward passes over ``n_voxels`` voxels in blocks of ``block_shape``."""
    x = torch.rand(1, 1, *block_shape, device=device)
    per_block = int(np.prod(block_shape))
    n_blocks = max(1, round(n_voxels / per_block))
    dtype = torch.bfloat16 if precision == "bf16" else None
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        model(x)  # warm-up
        _sync(device)
        start = time.perf_counter()
        for _ in range(n_blocks):
            torch.sigmoid(model(x).float())
        _sync(device)
        seconds = time.perf_counter() - start
    return seconds * n_voxels / (n_blocks * per_block)


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_raw(path: str, size: int, voxel_size):
    raw = create_volume(path, (size,) * 3, "uint8", voxel_size, chunk_shape=(64, 64, 64))
    rng = np.random.default_rng(0)
    for roi in raw.roi.blocks((64, size, size)):
        raw.write(roi, rng.integers(0, 256, tuple(roi.shape), dtype=np.uint8))
    return raw


def pipeline(checkpoint, raw, out, precision: str, memory_limit=None, repeats: int = 3) -> tuple[float, dict]:
    """Best-of-``repeats`` seconds of predict_volume (threads) and what it ran."""
    seconds, ran = [], {}
    for _ in range(repeats):
        start = time.perf_counter()
        predict_volume(checkpoint, raw, out, precision=precision, progress=False, overwrite=True, choice_out=ran,
                       memory_limit=memory_limit)
        seconds.append(time.perf_counter() - start)
    return min(seconds), ran


def peak_rss_mb(checkpoint: str, size: int, precision: str, tmp: str) -> float:
    """Peak RSS (MB) of a fresh process that predicts a ``size``^3 volume (its own high-water mark: ru_maxrss
    would report the parent's, which Linux carries across fork and exec)."""
    code = f"""
import sys
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
from predict import make_raw
from chunks.memory import peak_rss_mb
from training.predict import predict_volume
raw = make_raw({tmp!r} + "/mem-raw-{size}.zarr", {size}, (10, 10, 10))
predict_volume({checkpoint!r}, raw, {tmp!r} + "/mem-aff-{size}.zarr", precision={precision!r}, progress=False,
               overwrite=True)
print(peak_rss_mb())
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    parser.add_argument("--memory", action="store_true", help="also peak RSS for volumes of growing size")
    parser.add_argument("--large-limit", default="4GiB",
                        help="a second memory limit for the auto precision (default 4GiB: fewer, larger blocks)")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    checkpoint = os.path.abspath(args.checkpoint)
    state = load_checkpoint(checkpoint)
    model = fast_layout(build_model(state).eval().to(device))
    native = device.type == "cuda" and torch.cuda.is_bf16_supported() or device.type == "cpu" and cpu_has_native_bf16()
    os.environ.pop("CONNECTO_PRECISION", None)  # measure what auto really picks here
    auto = resolve_precision("auto", device, model)
    precisions = ["fp32", "bf16"] if native else ["fp32"]

    tmp = tempfile.mkdtemp(prefix="connecto-predict-bench-")
    try:
        raw = make_raw(os.path.join(tmp, "raw.zarr"), args.size, tuple(state.get("voxel_size_nm") or (10, 10, 10)))
        n_vox = int(raw.shape.prod())
        runs = {p: pipeline(checkpoint, raw, os.path.join(tmp, f"aff-{p}.zarr"), p) for p in precisions}
        runs["auto"] = pipeline(checkpoint, raw, os.path.join(tmp, "aff-auto.zarr"), "auto")
        runs["auto_large"] = pipeline(checkpoint, raw, os.path.join(tmp, "aff-large.zarr"), "auto", args.large_limit)
        bare = {p: bare_forward(model, tuple(runs[p][1]["block_shape"]), n_vox, p, device) for p in precisions}
        read_voxels = {name: sum(b.read_roi.size for b in plan_blocks(raw.roi, ran["block_shape"], ran["context"],
                                                                       raw.roi))
                       for name, (_, ran) in runs.items()}
        memory = {}
        if args.memory:
            for size in MEMORY_SIZES:
                memory[size] = peak_rss_mb(checkpoint, size, auto.precision, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    chosen = auto.precision
    fastest = min(runs[p][0] for p in precisions)
    figures = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores ({platform.processor() or 'cpu'}), "
                   f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}",
        "native_bf16": bool(native),
        "auto_precision": chosen,
        "auto_reason": auto.reason,
        "volume_shape": [args.size] * 3,
        "model_parameters": parameter_count(model),
        "memory_limit_bytes": runs["auto"][1]["memory_limit_bytes"],
    }
    for p in precisions:
        figures[f"bare_forward_mvox_per_s_{p}"] = round(n_vox / bare[p] / 1e6, 3)
        figures[f"pipeline_mvox_per_s_{p}"] = round(n_vox / runs[p][0] / 1e6, 3)
        figures[f"block_shape_{p}"] = runs[p][1]["block_shape"]
        figures[f"estimated_block_mib_{p}"] = round(runs[p][1]["estimated_block_bytes"] / 2**20)
        figures[f"ratio_vs_bare_forward_{p}"] = round(bare[p] / runs[p][0], 3)
    figures["pipeline_mvox_per_s_auto"] = round(n_vox / runs["auto"][0] / 1e6, 3)
    figures["ratio_vs_bare_forward"] = round(bare[chosen] / runs["auto"][0], 3)  # of the chosen precision
    # the same, against a bare forward over every voxel the blocks read (volume + context computed twice):
    # what the pipeline itself costs, without the context a memory limit forces
    figures["read_voxels_per_volume_voxel"] = round(read_voxels["auto"] / n_vox, 3)
    figures["ratio_vs_bare_forward_of_read_voxels"] = round(bare[chosen] * read_voxels["auto"] / n_vox
                                                            / runs["auto"][0], 3)
    figures["large_memory_limit_bytes"] = runs["auto_large"][1]["memory_limit_bytes"]
    figures["block_shape_auto_large_limit"] = runs["auto_large"][1]["block_shape"]
    figures["pipeline_mvox_per_s_auto_large_limit"] = round(n_vox / runs["auto_large"][0] / 1e6, 3)
    figures["ratio_vs_bare_forward_large_limit"] = round(bare[chosen] / runs["auto_large"][0], 3)
    figures["auto_slowdown_vs_fastest_precision"] = round(runs["auto"][0] / fastest - 1, 3)
    if memory:
        figures["peak_rss_mb_by_volume_edge"] = {str(k): round(v) for k, v in memory.items()}

    print(f"predict benchmark on {figures['machine']}")
    print(f"native bf16: {native}; auto picks {chosen} ({auto.reason})")
    print(f"volume {args.size}^3, memory limit {figures['memory_limit_bytes'] / 2**30:.2f} GiB per worker")
    print(f"  {'what':<34} {'Mvox/s':>8} {'vs bare':>8}  blocks")
    for p in precisions:
        print(f"  {'bare forward ' + p:<34} {figures[f'bare_forward_mvox_per_s_{p}']:8.3f}")
        print(f"  {'connecto predict ' + p:<34} {figures[f'pipeline_mvox_per_s_{p}']:8.3f} "
              f"{figures[f'ratio_vs_bare_forward_{p}']:8.3f}  {tuple(figures[f'block_shape_{p}'])}")
    print(f"  {'connecto predict auto (' + chosen + ')':<34} {figures['pipeline_mvox_per_s_auto']:8.3f} "
          f"{figures['ratio_vs_bare_forward']:8.3f}")
    print(f"  auto vs the fastest precision: {figures['auto_slowdown_vs_fastest_precision']:+.1%} time")
    print(f"  blocks read {figures['read_voxels_per_volume_voxel']:.2f}x the volume (context); against a bare "
          f"forward over what they read: {figures['ratio_vs_bare_forward_of_read_voxels']:.3f}")
    print(f"  {'auto, memory limit ' + args.large_limit:<34} {figures['pipeline_mvox_per_s_auto_large_limit']:8.3f} "
          f"{figures['ratio_vs_bare_forward_large_limit']:8.3f}  {tuple(figures['block_shape_auto_large_limit'])}")
    if memory:
        print("  peak RSS of predict in a fresh process: "
              + ", ".join(f"{k}^3 {v:.0f} MB" for k, v in memory.items()))
    write_json(args.json_path, figures)
    print(json.dumps({k: figures[k] for k in ("ratio_vs_bare_forward", "auto_precision")}))


if __name__ == "__main__":
    main()
