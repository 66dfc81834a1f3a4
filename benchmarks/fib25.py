"""FIB-25 end to end: reconstruct the real volume with the real-data model and compare to published anchors.

Reconstructs ``raw`` of ../shared/data/fib25/training_sample2.h5 (250^3, 10 nm) with the
FIB-25 checkpoint (trained on z < 120 of the labelled part, see configs/fib25.toml),
then evaluates against the ground truth on
- the validation slab z in [120, 160): labelled voxels the model never saw in training;
- the developer crop z < 160: the voxels the anchors in ../shared/data/README.md use
  (this includes the model's training voxels, so it flatters connecto).
Prints VOI split/merge, ARAND and segment count beside FFN and NeuroProof, end-to-end
voxels/s and each stage's share of the time.

    python benchmarks/fib25.py [--raw FILE.h5:DATASET] [--segmentation-out FILE.h5] [--scheduler S] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from chunks import open_volume
from connecto.reconstruct import ReconstructConfig, reconstruct
from connecto.segment.evaluate import evaluate

REPO = Path(__file__).resolve().parents[1]
FIB25 = REPO.parent / "shared" / "data" / "fib25" / "training_sample2.h5"
CHECKPOINT = REPO / "connecto" / "data" / "fib25_affinities.pt"
VALIDATION_Z = (120, 160)
# google/ffn's FIB-25 result on the validation slab's voxels (the accuracy issue's table)
FFN_VALIDATION_SLAB = {"voi_split": 0.615, "voi_merge": 0.760, "voi_sum": 1.375, "arand": 0.090, "segments": 85}
ANCHORS = {  # ../shared/data/README.md, developer crop z < 160
    "FFN": {"voi_split": 0.824, "voi_merge": 0.788, "voi_sum": 1.612, "arand": 0.186, "segments": 183},
    "NeuroProof overseg": {"voi_split": 2.381, "voi_merge": 0.322, "voi_sum": 2.703, "arand": 0.335, "segments": 2234},
    "waterz t=0.7 (classical)": {"voi_split": 2.451, "voi_merge": 1.345, "voi_sum": 3.796, "arand": 0.464, "segments": 365},
}

from report import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", default=f"{FIB25}:/raw", help="FILE.h5:DATASET (default: the shared FIB-25 raw)")
    parser.add_argument("--labels", default=f"{FIB25}:/labels", help="ground truth FILE.h5:DATASET (z < 160)")
    parser.add_argument("--checkpoint", default=str(CHECKPOINT))
    # chosen by VOI sum on the training part (z < 120) of the labels, never on the validation slab
    parser.add_argument("--threshold", type=float, default=0.75)
    parser.add_argument("--min-size", type=int, default=500)
    parser.add_argument("--fragment-absorb", type=int, default=500, help="as connecto segment (0: off)")
    parser.add_argument("--segmentation-out", default=None, help="write the full segmentation as FILE.h5:/segmentation")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--scheduler", default=None, help="as connecto reconstruct --scheduler (default: its default)")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    if not Path(str(args.raw).split(".h5")[0] + ".h5").exists():
        raise SystemExit(f"raw data not found: {args.raw} (the ../shared checkout beside the repository)")

    tmp = tempfile.mkdtemp(prefix="connecto-fib25-")
    try:
        config = ReconstructConfig(raw=args.raw, run_dir=os.path.join(tmp, "run"), checkpoint=args.checkpoint,
                                   voxel_size_nm=(10, 10, 10), threshold=args.threshold, min_size=args.min_size,
                                   fragment_absorb=args.fragment_absorb, workers=args.workers, scheduler=args.scheduler)
        start = time.perf_counter()
        record = reconstruct(config, progress=False)
        seconds = time.perf_counter() - start
        segmentation = open_volume(os.path.join(config.run_dir, "segmentation"))
        seg = segmentation.read()
        import h5py

        labels_path, dataset = args.labels.split(".h5:")
        with h5py.File(labels_path + ".h5") as f:
            gt = f[dataset.strip("/")][:]
        results = {
            "validation_slab": evaluate(seg[VALIDATION_Z[0]:VALIDATION_Z[1]], gt[VALIDATION_Z[0]:VALIDATION_Z[1]]),
            "developer_crop": evaluate(seg[: gt.shape[0]], gt),
        }
        if args.segmentation_out:
            with h5py.File(args.segmentation_out, "w") as f:
                f.create_dataset("segmentation", data=seg.astype(np.uint64), compression="gzip")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    stages = {k: v["seconds"] for k, v in record["stages"].items() if "seconds" in v}
    total_stage = sum(stages.values())
    voxels = int(np.prod(seg.shape))
    figures = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "scheduler": args.scheduler or "default",
        "checkpoint": os.path.basename(args.checkpoint),
        "threshold": args.threshold,
        "min_size": args.min_size,
        "fragment_absorb": args.fragment_absorb,
        "volume_shape": list(seg.shape),
        "end_to_end_seconds": round(seconds, 1),
        "end_to_end_mvox_per_s": round(voxels / seconds / 1e6, 3),
        "stage_seconds": stages,
        "stage_share": {k: round(v / total_stage, 3) for k, v in stages.items()},
        **{f"{part}_{key}": round(float(getattr(r, key)), 4) if key != "num_segments" else int(r.num_segments)
           for part, r in results.items() for key in ("voi_split", "voi_merge", "voi_sum", "arand", "num_segments")},
        "anchors_developer_crop": ANCHORS,
        "ffn_validation_slab": FFN_VALIDATION_SLAB,
    }
    print(f"FIB-25 end to end on {figures['machine']}: {seg.shape} voxels in {seconds:.1f} s "
          f"= {figures['end_to_end_mvox_per_s']:.3f} Mvox/s (FFN published: ~0.037 Mvox/s on a P100 GPU)")
    print("  time per stage: " + ", ".join(f"{k} {v:.1f} s ({figures['stage_share'][k]:.0%})" for k, v in stages.items()))
    print(f"  {'segmentation':<34} {'VOI split':>9} {'VOI merge':>9} {'VOI sum':>8} {'ARAND':>7} {'#seg':>6}")
    rows = (("connecto, validation slab z120-160", results["validation_slab"]),
            ("connecto, developer crop z<160*", results["developer_crop"]))
    for name, r in rows[:1]:
        print(f"  {name:<34} {r.voi_split:9.3f} {r.voi_merge:9.3f} {r.voi_sum:8.3f} {r.arand:7.3f} {r.num_segments:6d}")
    a = FFN_VALIDATION_SLAB
    print(f"  {'FFN, validation slab z120-160':<34} {a['voi_split']:9.3f} {a['voi_merge']:9.3f} {a['voi_sum']:8.3f} "
          f"{a['arand']:7.3f} {a['segments']:6d}")
    for name, r in rows[1:]:
        print(f"  {name:<34} {r.voi_split:9.3f} {r.voi_merge:9.3f} {r.voi_sum:8.3f} {r.arand:7.3f} {r.num_segments:6d}")
    for name, a in ANCHORS.items():
        print(f"  {name + ', z<160':<34} {a['voi_split']:9.3f} {a['voi_merge']:9.3f} {a['voi_sum']:8.3f} "
              f"{a['arand']:7.3f} {a['segments']:6d}")
    print("  * z<160 includes the model's training voxels (z<120); the validation slab does not.")
    write_json(args.json_path, figures)


if __name__ == "__main__":
    main()
