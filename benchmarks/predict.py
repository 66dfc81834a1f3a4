"""Prediction benchmark: `connecto predict` throughput vs the bare forward pass, same run.

Measures, in one process on this machine:
1. the conv3d FLOP/s ceiling (one large 3x3x3 convolution, fp32 and bf16);
2. the bare forward pass of the network on as many voxels as the volume has, in blocks of
   the pipeline's block shape (no I/O, no context, torch using every core);
3. blockwise `predict_volume` on a 256^3 uint8 zarr volume (reading, context between
   blocks, writing uint8, done-markers) with the default blocks on the local cluster and on
   in-process threads, and in four blocks (threads), which pay the context between blocks.

    python benchmarks/predict.py [--size 256] [--checkpoint PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time

import numpy as np
import torch

from chunks import create_volume
from training.checkpoint import build_model, load_checkpoint, save_checkpoint
from training.config import ModelConfig
from training.predict import default_block_shape, predict_volume
from training.unet import UNet3d, fast_layout, parameter_count, receptive_field_radius

DEFAULT_MODEL = ModelConfig(widths=(12, 24, 48), downsample=((2, 2, 2), (2, 2, 2)))

from report import write_json


def conv3d_ceiling(dtype) -> float:
    """GFLOP/s of one 32->32 channel 3x3x3 convolution on 48x96x96 voxels."""
    conv = torch.nn.Conv3d(32, 32, 3, padding=1)
    x = torch.rand(1, 32, 48, 96, 96)
    flops = 2 * 32 * 32 * 27 * x[0, 0].numel()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
        conv(x)
        start = time.perf_counter()
        repeats = 3
        for _ in range(repeats):
            conv(x)
        seconds = (time.perf_counter() - start) / repeats
    return flops / seconds / 1e9


def network_flops_per_voxel(config: ModelConfig) -> float:
    """Multiply-adds x 2 of the convolutions per output voxel (same padding)."""
    flops, scale = 0.0, 1.0
    widths = config.widths
    prev = config.in_channels
    for level, w in enumerate(widths):
        flops += 2 * 27 * (prev * w + w * w) / scale
        prev = w
        if level < len(config.downsample):
            scale *= float(np.prod(config.downsample[level]))
    for level in reversed(range(len(widths) - 1)):
        scale /= float(np.prod(config.downsample[level]))
        flops += 2 * 27 * ((widths[level] + widths[level + 1]) * widths[level] + widths[level] ** 2) / scale
    flops += 2 * widths[0] * config.out_channels
    return flops


def bare_forward(model, block_shape, n_voxels: int, autocast: bool) -> float:
    """Seconds for forward passes over ``n_voxels`` voxels in blocks of ``block_shape``."""
    model = fast_layout(model)  # the layout predict uses: the fastest forward the model has
    x = torch.rand(1, 1, *block_shape)
    per_block = int(np.prod(block_shape))
    n_blocks = max(1, round(n_voxels / per_block))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        model(x)  # warm-up
        start = time.perf_counter()
        for _ in range(n_blocks):
            torch.sigmoid(model(x).float())
        seconds = time.perf_counter() - start
    return seconds * n_voxels / (n_blocks * per_block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--checkpoint", default=None, help="a trained checkpoint (default: the default model, random weights)")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="connecto-predict-bench-")
    try:
        checkpoint = args.checkpoint
        if checkpoint is None:
            torch.manual_seed(0)
            checkpoint = os.path.join(tmp, "model.pt")
            save_checkpoint(checkpoint, UNet3d(DEFAULT_MODEL), DEFAULT_MODEL, step=0, voxel_size_nm=(8, 8, 8))
        state = load_checkpoint(checkpoint)
        model = build_model(state).eval()
        config = model.config
        voxel_size = tuple(state.get("voxel_size_nm") or (8, 8, 8))
        shape = (args.size,) * 3
        n_vox = int(np.prod(shape))
        raw = create_volume(os.path.join(tmp, "raw.zarr"), shape, "uint8", voxel_size, chunk_shape=(64, 64, 64))
        rng = np.random.default_rng(0)
        for roi in raw.roi.blocks((64, args.size, args.size)):
            raw.write(roi, rng.integers(0, 256, tuple(roi.shape), dtype=np.uint8))
        block = default_block_shape(shape, raw.chunk_shape, config.total_downsample)  # what predict picks
        factor = config.total_downsample
        context = tuple(-(-r // f) * f for r, f in zip(receptive_field_radius(config), factor))

        ceiling = {d: conv3d_ceiling(d) for d in ("fp32", "bf16")}
        bare = {ac: bare_forward(model, tuple(block), n_vox, ac) for ac in (False, True)}
        pipeline = {}
        quarter = (shape[0] // 2, shape[1] // 2, shape[2])  # four blocks: context between them
        runs = (("local_cluster", "local", block), ("threads", None, block), ("threads_four_blocks", "threads", quarter))
        for name, scheduler, block_shape in runs:  # best of two: the first run after a cluster pays its exit
            seconds = []
            for _ in range(2):
                start = time.perf_counter()
                predict_volume(checkpoint, raw, os.path.join(tmp, f"aff-{name}.zarr"), block_shape=block_shape,
                               scheduler=scheduler, progress=False, overwrite=True)
                seconds.append(time.perf_counter() - start)
            pipeline[name] = min(seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    best = min(("local_cluster", "threads"), key=pipeline.get)  # the default blocks
    flops_vox = network_flops_per_voxel(config)
    figures = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, threads {torch.get_num_threads()}",
        "volume_shape": list(shape),
        "block_shape": list(block),
        "context": list(context),
        "model_parameters": parameter_count(model),
        "network_gflop_per_mvox": round(flops_vox / 1e3, 2),
        "conv3d_ceiling_gflops_fp32": round(ceiling["fp32"], 1),
        "conv3d_ceiling_gflops_bf16": round(ceiling["bf16"], 1),
        "bare_forward_mvox_per_s_fp32": round(n_vox / bare[False] / 1e6, 3),
        "bare_forward_mvox_per_s_bf16": round(n_vox / bare[True] / 1e6, 3),
        "pipeline_mvox_per_s_local_cluster": round(n_vox / pipeline["local_cluster"] / 1e6, 3),
        "pipeline_mvox_per_s_threads": round(n_vox / pipeline["threads"] / 1e6, 3),
        "pipeline_mvox_per_s_threads_four_blocks": round(n_vox / pipeline["threads_four_blocks"] / 1e6, 3),
        "ratio_vs_bare_forward_four_blocks_threads": round(bare[True] / pipeline["threads_four_blocks"], 3),
        "best_pipeline": best,
        "ratio_vs_bare_forward": round(bare[True] / pipeline[best], 3),
        "bare_forward_share_of_conv3d_ceiling_bf16": round(n_vox * flops_vox / bare[True] / 1e9 / ceiling["bf16"], 3),
    }
    print(f"predict benchmark on {figures['machine']}")
    print(f"model: {figures['model_parameters']} parameters, {figures['network_gflop_per_mvox']} GFLOP per Mvoxel; "
          f"volume {args.size}^3, blocks {tuple(block)}, context {context} (the receptive field)")
    print(f"  {'what':<40} {'Mvox/s':>8}")
    print(f"  {'bare forward fp32':<40} {figures['bare_forward_mvox_per_s_fp32']:8.3f}")
    print(f"  {'bare forward bf16 autocast':<40} {figures['bare_forward_mvox_per_s_bf16']:8.3f}")
    print(f"  {'connecto predict, local cluster':<40} {figures['pipeline_mvox_per_s_local_cluster']:8.3f}")
    print(f"  {'connecto predict, threads':<40} {figures['pipeline_mvox_per_s_threads']:8.3f}")
    print(f"  {'connecto predict, threads, 4 blocks':<40} {figures['pipeline_mvox_per_s_threads_four_blocks']:8.3f}")
    print(f"  ratio best pipeline ({best}) vs bare bf16 forward: {figures['ratio_vs_bare_forward']:.3f}")
    print(f"  conv3d ceiling: {ceiling['fp32']:.1f} GFLOP/s fp32, {ceiling['bf16']:.1f} GFLOP/s bf16; the bare forward "
          f"reaches {figures['bare_forward_share_of_conv3d_ceiling_bf16']:.0%} of the bf16 ceiling")
    write_json(args.json_path, figures)


if __name__ == "__main__":
    main()
