"""The shipped models on a GPU: same outputs as on the CPU, and forward/training speed side by side.

Needs only torch and numpy (the GPU machines here lack the rest of connecto's
dependencies), so it imports ``training.checkpoint`` and ``training.unet`` alone. For each
shipped checkpoint it runs one forward pass of the same random-EM-like input on the CPU
(float32) and on the GPU (float32 and bf16 autocast, as ``training.predict.forward``
does) and reports the largest probability difference; then times the bf16 forward of a
``--shape`` block on the GPU (in the default and in the channels-last layout that
prediction and training use) and on the CPU (every core, channels-last), and a training
step (forward, BCE, backward, AdamW) on each.

    python benchmarks/gpu_forward.py [--shape 128,256,256] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.checkpoint import build_model, load_checkpoint  # noqa: E402
from training.unet import fast_layout  # noqa: E402

CHECKPOINTS = ("fib25_affinities.pt", "synthetic_affinities.pt", "synthetic_synapses.pt")


def forward(model, device, x, autocast):
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        return torch.sigmoid(model(x.to(device)).float()).cpu()


def timed(fn, repeats, sync):
    fn()  # warm-up (cuDNN picks its algorithms)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="128,256,256", help="z,y,x of the timed block")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no GPU: this benchmark compares a GPU with the CPU")
    gpu, cpu = torch.device("cuda"), torch.device("cpu")
    sync_gpu, sync_cpu = torch.cuda.synchronize, (lambda: None)
    torch.backends.cudnn.benchmark = True
    shape = tuple(int(s) for s in args.shape.split(","))
    rng = np.random.default_rng(0)
    figures = {"gpu": torch.cuda.get_device_name(), "cpu": f"{platform.machine()} {os.cpu_count()} cores",
               "torch": torch.__version__, "timed_shape": list(shape), "models": {}}
    for name in CHECKPOINTS:
        model = build_model(load_checkpoint(str(REPO / "connecto" / "data" / name))).eval()
        small = torch.from_numpy(rng.normal(0, 1, (1, 1, 64, 96, 96)).astype(np.float32))
        reference = forward(model, cpu, small, autocast=False)
        model_gpu = model.to(gpu)
        diff_fp32 = float((forward(model_gpu, gpu, small, autocast=False) - reference).abs().max())
        diff_bf16 = float((forward(model_gpu, gpu, small, autocast=True) - reference).abs().max())
        x = torch.from_numpy(rng.normal(0, 1, (1, 1, *shape)).astype(np.float32))
        voxels = float(np.prod(shape))
        gpu_plain_s = timed(lambda: forward(model_gpu, gpu, x, True), args.repeats, sync_gpu)
        model_gpu = fast_layout(model_gpu)
        gpu_s = timed(lambda: forward(model_gpu, gpu, x, True), args.repeats, sync_gpu)
        model_cpu = fast_layout(model.to(cpu))
        cpu_s = timed(lambda: forward(model_cpu, cpu, x, True), 1, sync_cpu)
        row = {"max_abs_diff_gpu_fp32_vs_cpu_fp32": round(diff_fp32, 5),
               "max_abs_diff_gpu_bf16_vs_cpu_fp32": round(diff_bf16, 5),
               "gpu_bf16_forward_default_layout_mvox_per_s": round(voxels / gpu_plain_s / 1e6, 2),
               "gpu_bf16_forward_mvox_per_s": round(voxels / gpu_s / 1e6, 2),
               "cpu_bf16_forward_mvox_per_s": round(voxels / cpu_s / 1e6, 3),
               "ratio_gpu_vs_cpu_forward": round(cpu_s / gpu_s, 1)}
        for label, device, sync, repeats in (("gpu", gpu, sync_gpu, args.repeats), ("cpu", cpu, sync_cpu, 1)):
            model = fast_layout(model.to(device)).train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            patch = torch.from_numpy(rng.normal(0, 1, (1, 1, 64, 128, 128)).astype(np.float32)).to(device)

            def step():
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    logits = model(patch)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), torch.zeros_like(
                    logits, dtype=torch.float32))
                loss.backward()
                optimizer.step()

            row[f"{label}_train_step_ms"] = round(timed(step, repeats, sync) * 1e3, 1)
        row["ratio_gpu_vs_cpu_train_step"] = round(row["cpu_train_step_ms"] / row["gpu_train_step_ms"], 1)
        figures["models"][name] = row
    print(f"GPU {figures['gpu']} vs CPU {figures['cpu']}, torch {figures['torch']}, forward of {shape}:")
    print(f"  {'model':<26} {'diff fp32':>9} {'diff bf16':>9} {'GPU NCDHW':>10} {'GPU Mvox/s':>10} {'CPU Mvox/s':>10} "
          f"{'x':>6} {'GPU step ms':>11} {'CPU step ms':>11} {'x':>6}")
    for name, r in figures["models"].items():
        print(f"  {name:<26} {r['max_abs_diff_gpu_fp32_vs_cpu_fp32']:9.5f} {r['max_abs_diff_gpu_bf16_vs_cpu_fp32']:9.5f} "
              f"{r['gpu_bf16_forward_default_layout_mvox_per_s']:10.2f} "
              f"{r['gpu_bf16_forward_mvox_per_s']:10.2f} {r['cpu_bf16_forward_mvox_per_s']:10.3f} "
              f"{r['ratio_gpu_vs_cpu_forward']:6.1f} {r['gpu_train_step_ms']:11.1f} {r['cpu_train_step_ms']:11.1f} "
              f"{r['ratio_gpu_vs_cpu_train_step']:6.1f}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
