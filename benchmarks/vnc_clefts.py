"""Cleft detection on real ssTEM (Drosophila larva VNC): the U-Net and a random-forest baseline, side by side.

    python benchmarks/vnc_clefts.py [--json PATH] [--threads N] [--predict FILE.h5:DATASET --clefts-out OUT.h5]

Data: ../shared/data/vnc/stack1_train.h5 (sections 0..14, 4.6 x 4.6 x 50 nm, cleft masks;
CC BY-NC-SA, never copied into the repository). Split by sections, as in configs/vnc-clefts.toml:
0..8 train both models, 9..11 ("tuning") choose each model's detection threshold and
minimum profile area, 12..14 ("validation") are never used for anything but the reported score.

The U-Net is trained by the same code as ``connecto train configs/vnc-clefts.toml``, into the
user's cache (``$CONNECTO_CACHE_DIR``, default ``~/.cache/connecto``) under a key of the
data's and the config's bytes: a rerun reuses the model (and the random forest), a changed
config or data trains anew. Weights never go into the package.

``--predict FILE.h5:DATASET --clefts-out OUT.h5`` also detects clefts in another stack (e.g.
held-out sections, as few as 5 of 1024^2) and writes ``OUT.h5`` dataset ``clefts`` (uint64
object ids, the input's shape) and ``synapses`` (the synapse table as a compound dataset;
also ``OUT.synapses.csv``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # last: benchmarks/proofreading.py must not shadow the package
from report import cpu_name

DATA = os.path.join(ROOT, "..", "shared", "data", "vnc", "stack1_train.h5")
CONFIG = os.path.join(ROOT, "configs", "vnc-clefts.toml")
KEY_VERSION = "vnc-clefts-1"  # bump when what is cached changes meaning
TRAIN, TUNE, VALIDATION = (0, 9), (9, 12), (12, 15)
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
MIN_AREAS_NM2 = (0.0, 2000.0, 5000.0, 10000.0, 15000.0)


def cache_key(data: str, config: str) -> str:
    digest = hashlib.sha256(KEY_VERSION.encode())
    for path in (data, config):
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def cache_directory(data: str, config: str) -> str:
    from training.precision import cache_dir

    return os.path.join(cache_dir(), "vnc-clefts", cache_key(data, config))


def train_unet(config_path: str, out_dir: str, progress: bool, threads: int | None = None) -> tuple[str, float, bool]:
    """The cleft U-Net's model.pt in ``out_dir`` (trained now unless it is there), the training seconds, and
    whether it was trained now. ``threads``: CPU threads for training instead of the config's (speed only)."""
    from training.config import load_config
    from training.train import train

    model = os.path.join(out_dir, "model.pt")
    if os.path.exists(model):
        with open(os.path.join(out_dir, "log.json")) as f:
            return model, training_seconds(json.load(f)), False
    config = load_config(config_path)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, out_dir=out_dir,
                                                                   threads=threads or config.train.threads))
    started = time.perf_counter()
    train(config, progress=progress)
    return model, time.perf_counter() - started, True


def training_seconds(rows: list[dict]) -> float:
    """Training time from a training log: each call's clock starts at 0, so a resumed run adds its segments."""
    total = previous = 0.0
    for row in rows:
        if row["seconds"] < previous:
            total += previous
        previous = row["seconds"]
    return total + previous


def train_forest(raw: np.ndarray, clefts: np.ndarray, directory: str, seed: int = 0, trees: int = 100):
    """The random-forest baseline trained on the training sections (cached as forest.joblib), the training seconds,
    and whether it was trained now."""
    import joblib

    from connecto.synapses.baseline import PixelClassifier

    path = os.path.join(directory, f"forest{'' if trees == 100 else trees}.joblib")
    if os.path.exists(path):
        forest = joblib.load(path)
        forest.forest.n_jobs = -1  # every core for prediction
        with open(path + ".json") as f:
            return forest, float(json.load(f)["seconds"]), False
    started = time.perf_counter()
    forest = PixelClassifier(n_estimators=trees, seed=seed, n_jobs=-1).fit(raw[slice(*TRAIN)], clefts[slice(*TRAIN)])
    seconds = time.perf_counter() - started
    os.makedirs(directory, exist_ok=True)
    with open(path + ".json", "w") as f:
        json.dump({"seconds": seconds}, f)
    joblib.dump(forest, path + ".tmp")
    os.replace(path + ".tmp", path)
    return forest, seconds, True


def choose_detection(probability: np.ndarray, truth: np.ndarray, voxel_size_nm) -> dict:
    """The threshold and minimum profile area with the best 2D-profile F1 on the tuning sections."""
    from connecto.synapses.cleft_metrics import match_objects
    from connecto.synapses.clefts import cleft_objects, profiles

    true_profiles = profiles(truth)
    best = None
    for threshold in THRESHOLDS:
        for min_area in MIN_AREAS_NM2:
            objects = cleft_objects(probability, voxel_size_nm, threshold=threshold, min_area_nm2=min_area)
            f1 = match_objects(profiles(objects), true_profiles)["f1"]
            if best is None or f1 > best["tuning_profile_f1"]:
                best = {"threshold": threshold, "min_area_nm2": min_area, "tuning_profile_f1": f1}
    return best


def score(probability: np.ndarray, truth: np.ndarray, segments: np.ndarray, voxel_size_nm, detection: dict) -> dict:
    """Object and CREMI scores of the detected clefts, and the share whose sides lie in distinct cells."""
    from connecto.synapses.cleft_metrics import evaluate_clefts
    from connecto.synapses.clefts import cleft_objects
    from connecto.synapses.sanity import cleft_sides_share

    objects = cleft_objects(probability, voxel_size_nm, threshold=detection["threshold"],
                            min_area_nm2=detection["min_area_nm2"])
    result = evaluate_clefts(objects, truth, voxel_size_nm)
    result["sanity_sides_on_distinct_cells"] = cleft_sides_share(objects, segments, voxel_size_nm)
    return result


def machine() -> dict:
    import torch

    return {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "torch": torch.__version__}


def predict_out(model, state, detection: dict, spec: str, out: str, force: bool) -> dict:
    """Detect clefts in the stack ``spec`` and write ``out`` (see the module docstring)."""
    from connecto.synapses.clefts import detect_to_h5

    try:
        return detect_to_h5(model, state, spec, out, threshold=detection["threshold"],
                            min_area_nm2=detection["min_area_nm2"], force=force)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: {spec}: {exc}") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results to PATH")
    parser.add_argument("--data", default=DATA, help="the annotated stack (default: %(default)s)")
    parser.add_argument("--config", default=CONFIG, help="the U-Net's training config (default: %(default)s)")
    parser.add_argument("--predict", default=None, metavar="FILE.h5:DATASET", help="also detect clefts in this stack")
    parser.add_argument("--clefts-out", default=None, metavar="OUT.h5", help="where --predict writes its clefts")
    parser.add_argument("--force", action="store_true",
                        help="predict even when the stack's voxel size differs from the model's")
    parser.add_argument("--progress", action="store_true", help="show the training progress bar")
    parser.add_argument("--trees", type=int, default=100, help="the random forest's trees (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for the U-Net's training (default: the config's, else torch's); on a "
                             "CPU shared with other work 1 thread is faster than 2")
    args = parser.parse_args(argv)
    if bool(args.predict) != bool(args.clefts_out):
        parser.error("--predict and --clefts-out go together")

    import h5py

    from connecto.synapses.clefts import load_cleft_model, objects_3d, predict_clefts
    from connecto.synapses.sanity import cleft_sides_share

    started = time.perf_counter()
    with h5py.File(args.data, "r") as f:
        raw, clefts, membranes = f["raw"][:], f["synapses"][:], f["membranes"][VALIDATION[0]:VALIDATION[1]]
        voxel = [float(v) for v in f.attrs.get("voxel_size_nm", (50.0, 4.6, 4.6))]
    directory = cache_directory(args.data, args.config)
    model_path, unet_seconds, unet_trained = train_unet(args.config, os.path.join(directory, "unet"), args.progress,
                                                        args.threads)
    model, state = load_cleft_model(model_path)
    forest, forest_seconds, forest_trained = train_forest(raw, clefts, directory, trees=args.trees)

    results = {"machine": machine(), "data": os.path.abspath(args.data), "voxel_size_nm": voxel,
               "split_sections": {"train": list(TRAIN), "tuning": list(TUNE), "validation": list(VALIDATION)},
               "cache": directory, "methods": {}}
    tune, val = slice(*TUNE), slice(*VALIDATION)
    from training.targets import membranes_to_labels

    segments = membranes_to_labels(membranes)  # the true cells of the validation sections (2D), for the sanity check
    results["sanity_true_clefts"] = cleft_sides_share(objects_3d(clefts[val]), segments, voxel)
    for name, predict, seconds, trained in (("unet", lambda r: predict_clefts(model, r), unet_seconds, unet_trained),
                                            ("random_forest", forest.predict, forest_seconds, forest_trained)):
        t0 = time.perf_counter()
        probability = predict(raw[TUNE[0]:VALIDATION[1]])
        predict_seconds = time.perf_counter() - t0
        n_tune = TUNE[1] - TUNE[0]
        detection = choose_detection(probability[:n_tune], clefts[tune], voxel)
        results["methods"][name] = {
            "detection": detection,
            "validation": score(probability[n_tune:], clefts[val], segments, voxel, detection),
            "train_seconds": round(seconds, 1), "trained_in_this_run": trained,
            "predict_seconds_6_sections": round(predict_seconds, 1)}
    with open(os.path.join(directory, "detection.json"), "w") as f:
        json.dump({k: v["detection"] for k, v in results["methods"].items()}, f, indent=1)
    if args.predict:
        results["predict"] = predict_out(model, state, results["methods"]["unet"]["detection"], args.predict,
                                         args.clefts_out, args.force)
    results["seconds"] = round(time.perf_counter() - started, 1)
    print_table(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def print_table(results: dict) -> None:
    m = results["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, GPU {m['gpu']}")
    split = results["split_sections"]
    print(f"sections: train {split['train']}, tuning {split['tuning']}, validation {split['validation']} "
          f"(voxel {results['voxel_size_nm']} nm)")
    print(f"{'validation (sections 12..14)':34s} {'U-Net':>10s} {'random forest':>14s}")
    rows = [("2D profiles precision", "profiles_2d", "precision"), ("2D profiles recall", "profiles_2d", "recall"),
            ("2D profiles F1", "profiles_2d", "f1"), ("3D objects precision", "objects_3d", "precision"),
            ("3D objects recall", "objects_3d", "recall"), ("3D objects F1", "objects_3d", "f1"),
            ("CREMI false-positive distance nm", "cremi", "false_positive_distance_mean_nm"),
            ("CREMI false-negative distance nm", "cremi", "false_negative_distance_mean_nm")]
    u, r = results["methods"]["unet"], results["methods"]["random_forest"]
    for label, group, key in rows:
        print(f"{label:34s} {u['validation'][group][key]:10.3f} {r['validation'][group][key]:14.3f}")
    for label, key in (("profiles matched / predicted / true", "profiles_2d"),
                       ("objects matched / predicted / true", "objects_3d")):
        cell = [f"{x['validation'][key]['matched']}/{x['validation'][key]['predicted']}/{x['validation'][key]['true']}"
                for x in (u, r)]
        print(f"{label:34s} {cell[0]:>10s} {cell[1]:>14s}")
    for label, key in (("threshold (chosen on tuning)", "threshold"), ("min profile area nm^2", "min_area_nm2"),
                       ("tuning 2D profile F1", "tuning_profile_f1")):
        print(f"{label:34s} {u['detection'][key]:10.3f} {r['detection'][key]:14.3f}")
    print(f"{'sanity: sides in distinct cells':34s} "
          f"{u['validation']['sanity_sides_on_distinct_cells']['share']:10.3f} "
          f"{r['validation']['sanity_sides_on_distinct_cells']['share']:14.3f}   (true clefts: "
          f"{results['sanity_true_clefts']['share']:.3f}; a sanity check, not a score)")
    cached = [f"{x['train_seconds']:.0f}{'' if x['trained_in_this_run'] else ' (cached)'}" for x in (u, r)]
    print(f"{'train seconds':34s} {cached[0]:>10s} {cached[1]:>14s}")
    print(f"{'predict seconds (6 sections)':34s} {u['predict_seconds_6_sections']:10.1f} "
          f"{r['predict_seconds_6_sections']:14.1f}")
    if "predict" in results:
        p = results["predict"]
        print(f"predicted {p['input']} {tuple(p['shape'])}: {p['clefts']} clefts -> {p['clefts_out']}")
    print(f"total {results['seconds']} s; cache {results['cache']}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--train-only":
        directory = cache_directory(DATA, CONFIG)
        print(directory, flush=True)
        print(train_unet(CONFIG, os.path.join(directory, "unet"), progress=False))
    else:
        sys.exit(main())
