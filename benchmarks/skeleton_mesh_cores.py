"""Skeletonise and mesh FIB-25's ground-truth bodies stored as one chunk: one block (the old default,
one busy core) against the default block plan (parallel_block_shape: two blocks per worker).

    python benchmarks/skeleton_mesh_cores.py [--workers 2] [--json PATH]

Prints the wall time of each and the machine; both runs use the same engine and worker count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fib25" / "training_sample2.h5"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from chunks import create_volume
    from connecto.connectome.meshes import mesh_volume
    from connecto.connectome.skeleton_stage import parallel_block_shape, skeletonize_volume

    with h5py.File(DATA) as f:
        labels = f["labels"][:]  # 160, 250, 250 uint64, 10 nm
    work = Path(tempfile.mkdtemp(prefix="skel-mesh-bench-"))
    volume = create_volume(str(work / "labels.zarr"), labels.shape, np.uint64, (10, 10, 10), chunk_shape=labels.shape)
    volume.write(volume.roi, labels)
    plans = {"one_block": tuple(labels.shape), "default_plan": tuple(parallel_block_shape(volume, args.workers))}
    out: dict = {"machine": f"{platform.node()} {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f} at start",
                 "volume_zyx": list(labels.shape), "workers": args.workers, "block_shapes": plans, "seconds": {}}
    for name, block in plans.items():
        start = time.perf_counter()
        skeletonize_volume(volume, work / f"skel-{name}", min_voxels=1000, block_shape=block,
                           num_workers=args.workers, progress=False)
        out["seconds"][f"skeletonize_{name}"] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        mesh_volume(volume, work / f"mesh-{name}", block_shape=block, num_workers=args.workers, progress=False)
        out["seconds"][f"mesh_{name}"] = round(time.perf_counter() - start, 2)
    out["load_average_at_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
