"""Synthetic EM generator benchmark, and its realism check against FIB-25.

(a) Generate a 256^3 volume (8 nm voxels) with its truth (raw, labels, clefts as zarr, the
    Parquet tables) through ``connecto.synthetic.generate`` on the default local dask cluster;
    report the model build, the blockwise rendering and the total (goal: < 60 s on 2 cores).
(b) Image statistics of a synthetic volume at 10 nm beside the real FIB-25 volume in
    ../shared/data/fib25 (histogram, membrane-to-interior contrast, power spectrum slope).
(c) Optionally a montage of sections (image, labels, clefts) as a PNG.

    python benchmarks/synthetic.py [--shape 256,256,256] [--voxel-size 8,8,8] [--workers N]
        [--json PATH] [--montage docs/synthetic_montage.png] [--no-realism] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from report import cpu_name

from chunks import parse_coordinate
from chunks.cluster import default_workers

GOAL_SECONDS = 60.0
FIB25 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fib25" / "training_sample2.h5"


def machine() -> dict:
    return {"cores": default_workers(), "cpu": cpu_name(), "python": platform.python_version(),
            "load_average_1min_at_start": round(os.getloadavg()[0], 2)}


def directory_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def bench_generate(shape, voxel_size, workers, out_dir: Path) -> dict:
    from connecto.synthetic.generator import generate, make_config
    from connecto.synthetic.model import model_for

    cfg = make_config(shape, voxel_size, seed=0)
    start = time.perf_counter()
    model = model_for(cfg)  # what generate() does first; timed apart
    model_seconds = time.perf_counter() - start
    result = generate(out_dir, config=cfg, num_workers=workers, progress=False, overwrite=True)
    total = time.perf_counter() - start
    voxels = int(np.prod(shape))
    return {
        "shape_zyx": list(shape), "voxel_size_nm_zyx": list(voxel_size), "workers": workers,
        "model_build_seconds": round(model_seconds, 2),
        "render_and_write_seconds": round(total - model_seconds, 2),
        "total_seconds": round(total, 2),
        "megavoxels_per_second": round(voxels / total / 1e6, 3),
        "goal_seconds": GOAL_SECONDS, "goal_met": total < GOAL_SECONDS,
        "neurons": len(result.tables["neurons"]), "skeleton_nodes": len(model.skeletons.neuron),
        "synapses": int(result.tables["synapses"]["synapse_id"].nunique()),
        "synapse_partners": len(result.tables["synapses"]),
        "mitochondria": len(result.tables["mitochondria"]), "vesicles": len(result.tables["vesicles"]),
        "output_mb_on_disk": round(directory_mb(out_dir), 1),
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def bench_realism(shape=(64, 128, 128)) -> dict | None:
    from connecto.synthetic import generate_arrays, image_statistics

    if not FIB25.exists():
        return None
    import h5py

    crop = tuple(slice(0, s) for s in shape)
    with h5py.File(FIB25) as f:  # GT covers z < 160
        raw, labels = f["raw"][crop], f["labels"][crop]
    real = image_statistics(raw, labels)
    vol = generate_arrays(shape, (10, 10, 10), seed=0)  # FIB-25 is 10 nm isotropic
    synthetic = image_statistics(vol.raw, vol.labels)
    return {"crop_zyx": list(shape), "voxel_size_nm": 10, "fib25": real, "synthetic_difficulty_0.3": synthetic,
            "bodies_in_crop": {"fib25": len(np.unique(labels)), "synthetic": len(np.unique(vol.labels))}}


def write_montage(path: Path) -> None:
    from PIL import Image

    from connecto.synthetic import generate_arrays
    from connecto.synthetic.montage import busiest_section, montage, panels
    from connecto.synthetic.sections import section_params

    fib = generate_arrays((48, 160, 160), (8, 8, 8), seed=1, n_synapses=8)
    tem = generate_arrays((16, 320, 320), (40, 4, 4), seed=2, n_synapses=6, axon_radius_nm=45.0,
                          dendrite_radius_nm=120.0)
    hard = generate_arrays((48, 160, 160), (8, 8, 8), seed=4, n_synapses=4, difficulty=0.8)
    missing = section_params(hard.config, np.arange(hard.raw.shape[0])).missing
    rows = [panels(fib.raw, fib.labels, fib.clefts),
            panels(tem.raw[:, ::2, ::2], tem.labels[:, ::2, ::2], tem.clefts[:, ::2, ::2]),
            panels(hard.raw, hard.labels, hard.clefts, z=busiest_section(hard.clefts, exclude=missing))]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(montage(rows, scale=2)).save(path, optimize=True)


def print_table(gen: dict, realism: dict | None, info: dict) -> None:
    print(f"machine: {info['cores']} cores ({info['cpu']}), load average at start {info['load_average_1min_at_start']}")
    print(f"\nsynthetic volume {tuple(gen['shape_zyx'])} at {tuple(gen['voxel_size_nm_zyx'])} nm, "
          f"{gen['workers']} workers")
    rows = [("model build (neurons, synapses, organelles)", f"{gen['model_build_seconds']:.1f} s"),
            ("render + write raw, labels, clefts, tables", f"{gen['render_and_write_seconds']:.1f} s"),
            ("total", (f"{gen['total_seconds']:.1f} s  (goal < {GOAL_SECONDS:.0f} s: "
                      f"{'met' if gen['goal_met'] else 'NOT met'})")),
            ("throughput", f"{gen['megavoxels_per_second']:.2f} Mvoxel/s"),
            ("neurons / skeleton nodes", f"{gen['neurons']} / {gen['skeleton_nodes']}"),
            ("synapses / partners", f"{gen['synapses']} / {gen['synapse_partners']}"),
            ("mitochondria / vesicles", f"{gen['mitochondria']} / {gen['vesicles']}"),
            ("output on disk", f"{gen['output_mb_on_disk']:.1f} MB"),
            ("driver peak RSS", f"{gen['driver_peak_rss_mb']:.0f} MB")]
    for name, value in rows:
        print(f"  {name:44s} {value}")
    if realism:
        real, syn = realism["fib25"], realism["synthetic_difficulty_0.3"]
        print(f"\nrealism: crop {tuple(realism['crop_zyx'])} at 10 nm       FIB-25   synthetic")
        for key in ("mean", "std", "boundary_mean", "interior_mean", "contrast", "spectrum_slope"):
            print(f"  {key:38s} {real[key]:8.2f} {syn[key]:10.2f}")
        for p in ("5", "50", "95"):
            print(f"  {'percentile ' + p:38s} {real['percentiles'][p]:8.1f} {syn['percentiles'][p]:10.1f}")
        key = "mean_grey_by_distance_to_boundary"
        prof = " ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(real[key], syn[key]))
        print(f"  {'grey by distance to boundary (real/syn)':38s} {prof}")
        bodies = realism["bodies_in_crop"]
        print(f"  {'neurons in the crop':38s} {bodies['fib25']:8d} {bodies['synthetic']:10d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="256,256,256")
    parser.add_argument("--voxel-size", default="8,8,8")
    parser.add_argument("--workers", type=int, default=None, help="local workers (default: cores)")
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("--montage", help="write a PNG montage of sections here")
    parser.add_argument("--no-realism", action="store_true", help="skip the comparison with FIB-25")
    parser.add_argument("--keep", help="write the volume here and keep it (default: a temporary directory)")
    args = parser.parse_args()
    shape = tuple(parse_coordinate(args.shape, name="shape"))
    voxel_size = tuple(parse_coordinate(args.voxel_size, name="voxel size"))
    workers = args.workers or default_workers()
    info = machine()

    out_dir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="synth-bench-"))
    try:
        gen = bench_generate(shape, voxel_size, workers, out_dir)
    finally:
        if not args.keep:
            shutil.rmtree(out_dir, ignore_errors=True)
    realism = None if args.no_realism else bench_realism()
    if args.montage:
        write_montage(Path(args.montage))
    print_table(gen, realism, info)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"machine": info, "generate": gen, "realism_vs_fib25": realism},
                                              indent=1))


if __name__ == "__main__":
    main()
