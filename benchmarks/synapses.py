"""Synapse detection accuracy: partner and cleft F1 over difficulty, on synthetic volumes the model never saw.

For each difficulty a fresh synthetic volume (8 nm, dense synapses) is generated, the
synapse model predicts cleft / pre-side / post-side probability, and synapses are
detected against fragments and evaluated against the generator's truth (100 nm tolerance):

- ``truth fragments``: the true neurons as fragments: scores the synapse model alone;
- ``predicted fragments`` (default difficulty only): the fragments of a real reconstruction
  with the shipped affinity model; the predicted partners are the true neurons under the
  predicted pre/post points, as in CREMI;
- ``perfect prediction``: the model's own training targets as the prediction: the ceiling
  of the detector (a baseline measured in the same run).

With ``--cremi FILE`` it also evaluates a real CREMI-format sample (``volumes/raw``,
``volumes/labels/neuron_ids``, partner annotations) with ``--checkpoint`` (a model trained at
that sample's voxel size; the true neurons are the fragments).

With ``--joint CHECKPOINT`` (a model with ``outputs = ["affinities", "synapses"]``) it
compares one network with both heads to the two separate networks on the default-difficulty
volume: partner F1 and the VOI of the affinity head.

With ``--fib25-gallery PNG`` it runs the detector on the labelled part (z < 160) of the real
FIB-25 volume, which has no synapse labels, resampled from 10 to the model's 8 nm, with the
true neurons as fragments, and draws the top detections for a person to judge polarity.

    python benchmarks/synapses.py [--difficulties 0,0.15,0.3,0.5,0.7] [--cremi FILE]
                                  [--fib25-gallery PNG] [--joint CHECKPOINT] [--json PATH]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from connecto.demo import shipped_checkpoint, shipped_synapse_checkpoint
from connecto.synapses.detect import DetectParams, detect_synapses
from connecto.synapses.evaluate import evaluate_synapses
from connecto.synthetic import generate_arrays
from training.predict import predict_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_json

VOXEL = (8, 8, 8)
DEFAULT_DIFFICULTY = 0.3


def predict_array(checkpoint: str, raw: np.ndarray, voxel_size_nm, name: str) -> np.ndarray:
    """A model's uint8 prediction (c, z, y, x) of an in-memory raw array, through the blockwise pipeline."""
    from chunks import create_volume

    raw_volume = create_volume(f"memory://bench-{name}-raw", raw.shape, raw.dtype, voxel_size_nm,
                               chunk_shape=raw.shape, overwrite=True)
    raw_volume.write(raw_volume.roi, raw)
    out = predict_volume(checkpoint, raw_volume, f"memory://bench-{name}-pred", scheduler="threads",
                         overwrite=True, progress=False)
    return out.read(out.roi)


def perfect_prediction(vol) -> np.ndarray:
    from training.targets import synapse_targets

    partners = vol.synapses[["synapse_id", "pre_id", "post_id"]].to_numpy(np.int64)
    target, _ = synapse_targets(vol.labels, vol.clefts, partners, VOXEL, side_nm=40.0)
    return target


def score(prediction: np.ndarray, fragments: np.ndarray, truth, labels, params: DetectParams) -> dict:
    table = detect_synapses(prediction[0], prediction[1:], fragments, params=params, voxel_size_nm=VOXEL)
    result = evaluate_synapses(table, truth, 100.0, truth_labels=labels, voxel_size_nm=VOXEL)
    return {"partner_f1": result["partners"]["f1"], "partner_precision": result["partners"]["precision"],
            "partner_recall": result["partners"]["recall"], "cleft_f1": result["clefts"]["f1"],
            "detected": int(table["id"].nunique()), "true": int(truth["synapse_id"].nunique())}


def predicted_fragments(raw: np.ndarray) -> np.ndarray:
    """Fragments of the shipped affinity model's prediction (what a reconstruction detects synapses against)."""
    import tempfile

    from chunks import create_volume
    from connecto.segment.blockwise import compute_fragments

    affinities = predict_array(shipped_checkpoint(), raw, VOXEL, "affinities")
    affs = create_volume("memory://bench-affs", raw.shape, "uint8", VOXEL, num_channels=3, chunk_shape=(64, 64, 64),
                         overwrite=True)
    affs.write(affs.roi, affinities)
    with tempfile.TemporaryDirectory() as run:
        return compute_fragments(affs, run, scheduler="threads", progress=False).read()


def difficulty_curve(difficulties, shape, checkpoint: str, params: DetectParams) -> list[dict]:
    rows = []
    for i, difficulty in enumerate(difficulties):
        vol = generate_arrays(shape, VOXEL, seed=900 + i, difficulty=difficulty, n_synapses=80)
        start = time.perf_counter()
        prediction = predict_array(checkpoint, vol.raw, VOXEL, f"d{i}")
        predict_s = time.perf_counter() - start
        start = time.perf_counter()
        model = score(prediction, vol.labels, vol.synapses, vol.labels, params)
        detect_s = time.perf_counter() - start
        ceiling = score(perfect_prediction(vol), vol.labels, vol.synapses, vol.labels, params)
        row = {"difficulty": difficulty, **{f"{k}_truth_fragments": v for k, v in model.items()},
               "partner_f1_perfect_prediction": ceiling["partner_f1"],
               "predict_mvox_per_s": vol.raw.size / predict_s / 1e6, "detect_mvox_per_s": vol.raw.size / detect_s / 1e6}
        if difficulty == DEFAULT_DIFFICULTY:
            fragments = predicted_fragments(vol.raw)
            pipeline = score(prediction, fragments, vol.synapses, vol.labels, params)
            row.update({f"{k}_predicted_fragments": v for k, v in pipeline.items() if "f1" in k})
        rows.append(row)
    return rows


def cremi_scores(path: str, checkpoint: str, params: DetectParams) -> dict:
    from connecto.synapses.cremi import read_cremi

    cremi = read_cremi(path)
    if cremi.labels is None:
        raise SystemExit(f"{path} has no volumes/labels/neuron_ids: the true neurons are needed as fragments")
    prediction = predict_array(checkpoint, cremi.raw, cremi.voxel_size_nm, "cremi")
    table = detect_synapses(prediction[0], prediction[1:], cremi.labels, params=params,
                            voxel_size_nm=cremi.voxel_size_nm, offset_nm=cremi.offset_nm)
    result = evaluate_synapses(table, cremi.partners, 100.0, truth_labels=cremi.labels,
                               voxel_size_nm=cremi.voxel_size_nm, offset_nm=cremi.offset_nm)
    return {"file": path, "partner_f1": result["partners"]["f1"], "partner_precision": result["partners"]["precision"],
            "partner_recall": result["partners"]["recall"], "cleft_f1": result["clefts"]["f1"],
            "detected": int(table["id"].nunique()), "true_pairs": len(cremi.partners)}


FIB25 = Path(__file__).resolve().parents[2] / "shared" / "data" / "fib25" / "training_sample2.h5"


def fib25_gallery(path: str, checkpoint: str, params: DetectParams, labelled_z: int = 160) -> dict:
    """Detect synapses on FIB-25 (resampled to 8 nm) and write the gallery PNG; returns counts."""
    import h5py
    from scipy import ndimage

    from connecto.synapses.gallery import write_gallery

    if not FIB25.exists():
        raise SystemExit(f"FIB-25 not found at {FIB25} (the ../shared checkout beside the repository)")
    with h5py.File(FIB25, "r") as f:
        raw, labels = f["raw"][:labelled_z], f["labels"][:labelled_z]
    zoom = 10.0 / VOXEL[0]
    raw8 = ndimage.zoom(raw, zoom, order=1)
    labels8 = ndimage.zoom(labels, zoom, order=0)
    prediction = predict_array(checkpoint, raw8, VOXEL, "fib25")
    table = detect_synapses(prediction[0], prediction[1:], labels8, params=params, voxel_size_nm=VOXEL)
    write_gallery(raw8, prediction[0], table, path, voxel_size_nm=VOXEL, n=12,
                  title=f"FIB-25 z<{labelled_z} (resampled 10 -> 8 nm), top detections of the synthetic-trained "
                        "model: cleft (magenta), pre (cyan) -> post (arrows)")
    return {"gallery": path, "detected": int(table["id"].nunique()), "rows": len(table),
            "voxels": int(raw8.size), "mean_score": float(table["score"].mean()) if len(table) else None}


def joint_vs_separate(joint_checkpoint: str, separate_checkpoint: str, shape, params: DetectParams) -> dict:
    """One network with both heads vs the separate synapse network (plus the shipped affinity model),
    on the default-difficulty volume of the curve: partner F1 and the affinity head's VOI."""
    from connecto.segment.blockwise import SegmentParams, segment_array
    from connecto.segment.evaluate import evaluate
    from connecto.segment.relabel import relabel
    from training.checkpoint import load_checkpoint, model_config_from_checkpoint

    config = model_config_from_checkpoint(load_checkpoint(joint_checkpoint))
    if tuple(config.outputs) != ("affinities", "synapses"):
        raise SystemExit(f"--joint {joint_checkpoint} has the heads {config.outputs}, not affinities and synapses")
    vol = generate_arrays(shape, VOXEL, seed=900 + 2, difficulty=DEFAULT_DIFFICULTY, n_synapses=80)
    joint = predict_array(joint_checkpoint, vol.raw, VOXEL, "joint")
    candidates = {"separate": (predict_array(separate_checkpoint, vol.raw, VOXEL, "separate"),
                               predict_array(shipped_checkpoint(), vol.raw, VOXEL, "affinities")),
                  "joint": (joint[config.channels_of("synapses")], joint[config.channels_of("affinities")])}
    out = {}
    for name, (synapses, affinities) in candidates.items():
        fragments, history = segment_array(affinities, SegmentParams(max_score=0.5))
        quality = evaluate(relabel(fragments, history.mapping(0.5)), vol.labels)
        found = score(synapses, vol.labels, vol.synapses, vol.labels, params)
        out[name] = {"partner_f1": found["partner_f1"], "cleft_f1": found["cleft_f1"],
                     "voi_sum_threshold_0_5": quality.voi_sum, "arand_threshold_0_5": quality.arand}
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--difficulties", default="0,0.15,0.3,0.5,0.7",
                        help="comma-separated synthetic difficulties (0 clean .. 1 hard; default difficulty 0.3)")
    parser.add_argument("--shape", default="96,160,160", help="synthetic volume shape z,y,x (8 nm voxels)")
    parser.add_argument("--checkpoint", default=shipped_synapse_checkpoint(), help="synapse model")
    parser.add_argument("--cremi", default=None, metavar="FILE", help="also evaluate on a CREMI-format HDF5 sample")
    parser.add_argument("--fib25-gallery", default=None, metavar="PNG",
                        help="also detect on real FIB-25 (no synapse labels) and draw the top detections")
    parser.add_argument("--joint", default=None, metavar="CHECKPOINT",
                        help="also compare a network with both heads (affinities and synapses) to the separate models")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)
    params = DetectParams()
    difficulties = [float(d) for d in args.difficulties.split(",") if d]
    shape = tuple(int(s) for s in args.shape.split(","))
    rows = difficulty_curve(difficulties, shape, args.checkpoint, params)
    print(f"synapse detection, {shape} voxels at 8 nm, {platform.machine()} {platform.processor() or ''}".strip())
    header = ("difficulty", "true", "detected", "partner F1", "precision", "recall", "cleft F1", "F1 perfect pred.",
              "F1 pred. fragments")
    print(" | ".join(header))
    for r in rows:
        print(" | ".join(str(v) for v in (
            r["difficulty"], r["true_truth_fragments"], r["detected_truth_fragments"],
            f"{r['partner_f1_truth_fragments']:.3f}", f"{r['partner_precision_truth_fragments']:.3f}",
            f"{r['partner_recall_truth_fragments']:.3f}", f"{r['cleft_f1_truth_fragments']:.3f}",
            f"{r['partner_f1_perfect_prediction']:.3f}",
            f"{r['partner_f1_predicted_fragments']:.3f}" if "partner_f1_predicted_fragments" in r else "-")))
    figures = {"machine": f"{platform.node()} {platform.machine()}", "shape": list(shape), "voxel_size_nm": VOXEL,
               "checkpoint": args.checkpoint, "detect_params": asdict(params),
               "tolerance_nm": 100.0, "by_difficulty": rows}
    if args.cremi:
        figures["cremi"] = cremi_scores(args.cremi, args.checkpoint, params)
        print(f"CREMI {args.cremi}: partner F1 {figures['cremi']['partner_f1']:.3f}, "
              f"cleft F1 {figures['cremi']['cleft_f1']:.3f}")
    if args.joint:
        figures["joint_vs_separate"] = joint_vs_separate(args.joint, args.checkpoint, shape, params)
        for name, row in figures["joint_vs_separate"].items():
            print(f"{name:>8}: partner F1 {row['partner_f1']:.3f}, cleft F1 {row['cleft_f1']:.3f}, "
                  f"VOI sum {row['voi_sum_threshold_0_5']:.3f}, ARAND {row['arand_threshold_0_5']:.3f} (threshold 0.5)")
    if args.fib25_gallery:
        figures["fib25"] = fib25_gallery(args.fib25_gallery, args.checkpoint, params)
        print(f"FIB-25: {figures['fib25']['detected']} synapses detected; gallery {args.fib25_gallery}")
    write_json(args.json_path, figures)
    return figures


if __name__ == "__main__":
    main()
