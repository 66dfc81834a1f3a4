"""Cleft detection on real ssTEM (Drosophila larva VNC): five methods side by side, the U-Net and a random forest among them.

    python benchmarks/vnc_clefts.py [--json PATH] [--threads N] [--method M] [--predict FILE.h5:DATASET --clefts-out OUT.h5]

Data: ../shared/data/vnc/stack1_train.h5 (sections 0..14, 4.6 x 4.6 x 50 nm, cleft masks;
CC BY-NC-SA, never copied into the repository). Split by sections, as in configs/vnc-clefts.toml:
0..8 train both models, 9..11 ("tuning") choose each model's detection threshold and
minimum profile area, 12..14 ("validation") are never used for anything but the reported score.

The U-Net is trained by the same code as ``connecto train configs/vnc-clefts.toml``, into the
user's cache (``$CONNECTO_CACHE_DIR``, default ``~/.cache/connecto``) under a key of the
data's and the config's bytes: a rerun reuses the model (and the random forest), a changed
config or data trains anew. Weights never go into the package.

Methods, each detected with settings chosen on the tuning sections and scored on the validation sections:
``unet`` and ``random_forest`` (threshold and minimum profile area), ``geometric_mean`` (the same on
sqrt(U-Net x forest)), ``rescored`` (:mod:`connecto.synapses.rescore`): every 2D profile of U-Net >=
``--candidate-threshold`` (0.5) is a candidate, a classifier of whole profiles (``--profile-classifier``, extra
trees) trained on the candidates of the training sections scores it, and candidates from a score cut chosen on
the tuning sections are the clefts; and ``forest_unet`` (:class:`connecto.synapses.rescore.ForestWithUNet`): the
random forest's settings and training pixels with the U-Net probability and its smoothings as 4 more features
(threshold and minimum area as the others).

Choosing the method: the run also pools each method's 2D-profile counts (matched, predicted, true) of the tuning
and the validation sections and names the method with the best pooled F1 over sections 9..14. ``METHOD`` (what
``--predict`` uses unless ``--method`` says otherwise) is fixed in this file to the method that measurement chose
when it was set, so that ``--predict`` does not change from run to run; once chosen that way, sections 12..14 no
longer give an unbiased estimate of the chosen method's accuracy.

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
SCORE_CUTS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # the rescored method's cuts tried on the tuning sections
METHOD = "forest_unet"  # the method --predict uses (--method): the best pooled 2D-profile F1 over 9..14, measured 2026-12-03
CANDIDATE_THRESHOLD = 0.5  # U-Net probability of a candidate profile (--candidate-threshold)
PROFILE_CLASSIFIER = "extra_trees"  # --profile-classifier
METHODS = ("unet", "random_forest", "geometric_mean", "rescored", "forest_unet")


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
    from connecto.synapses.baseline import PixelClassifier

    path = os.path.join(directory, f"forest{'' if trees == 100 else trees}.joblib")
    return _cached_forest(path, lambda: PixelClassifier(n_estimators=trees, seed=seed, n_jobs=-1).fit(
        raw[slice(*TRAIN)], clefts[slice(*TRAIN)]))


def _cached_forest(path: str, fit):
    """(the forest at ``path``, or ``fit()`` saved there; its training seconds; whether it was trained now)."""
    import joblib

    if os.path.exists(path):
        forest = joblib.load(path)
        forest.forest.n_jobs = -1  # every core for prediction
        with open(path + ".json") as f:
            return forest, float(json.load(f)["seconds"]), False
    started = time.perf_counter()
    forest = fit()
    seconds = time.perf_counter() - started
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".json", "w") as f:
        json.dump({"seconds": seconds}, f)
    joblib.dump(forest, path + ".tmp")
    os.replace(path + ".tmp", path)
    return forest, seconds, True


def train_forest_unet(raw: np.ndarray, unet: np.ndarray, clefts: np.ndarray, directory: str, seed: int = 0,
                      trees: int = 100):
    """The random forest on its filter features plus the U-Net's probability and smoothings, trained on the training
    sections (cached beside the U-Net it depends on as forest_unet.joblib), the training seconds, and whether it was
    trained now."""
    from connecto.synapses.rescore import ForestWithUNet

    path = os.path.join(directory, f"forest_unet{'' if trees == 100 else trees}.joblib")
    train = slice(*TRAIN)
    return _cached_forest(path, lambda: ForestWithUNet(n_estimators=trees, seed=seed, n_jobs=-1).fit(
        raw[train], unet[train], clefts[train]))


def counts(result: dict) -> dict:
    """The 2D-profile precision, recall, F1 and counts of a :func:`match_objects` result."""
    return {k: result[k] for k in ("precision", "recall", "f1", "matched", "predicted", "true")}


def pooled(*parts: dict) -> dict:
    """Precision, recall and F1 of the summed matched / predicted / true counts of ``parts`` (not a mean of F1s)."""
    from connecto.synapses.cleft_metrics import prf

    return prf(*(sum(p[k] for p in parts) for k in ("matched", "predicted", "true")))


def choose_detection(probability: np.ndarray, truth: np.ndarray, voxel_size_nm) -> dict:
    """The threshold and minimum profile area with the best 2D-profile F1 on the tuning sections."""
    from connecto.synapses.cleft_metrics import match_objects
    from connecto.synapses.clefts import cleft_objects, profiles

    true_profiles = profiles(truth)
    best = None
    for threshold in THRESHOLDS:
        for min_area in MIN_AREAS_NM2:
            objects = cleft_objects(probability, voxel_size_nm, threshold=threshold, min_area_nm2=min_area)
            result = match_objects(profiles(objects), true_profiles)
            if best is None or result["f1"] > best["tuning_profile_f1"]:
                best = {"threshold": threshold, "min_area_nm2": min_area, "tuning_profile_f1": result["f1"],
                        "tuning_profiles_2d": counts(result)}
    return best


def choose_cut(candidates: np.ndarray, table, scores: np.ndarray, truth: np.ndarray) -> dict:
    """The rescored method's score cut with the best 2D-profile F1 on the tuning sections (``candidates``, ``table``
    and ``scores`` of those sections only)."""
    from connecto.synapses.cleft_metrics import match_objects
    from connecto.synapses.clefts import profiles

    true_profiles = profiles(truth)
    best = None
    for cut in SCORE_CUTS:
        kept = np.isin(candidates, table["id"].to_numpy(np.uint64)[scores >= cut]) * candidates
        result = match_objects(kept, true_profiles)
        if best is None or result["f1"] > best["tuning_profile_f1"]:
            best = {"score_cut": cut, "tuning_profile_f1": result["f1"], "tuning_profiles_2d": counts(result)}
    return best


def rescore(unet: np.ndarray, forest: np.ndarray, raw: np.ndarray, clefts: np.ndarray, candidate_threshold: float,
            kind: str):
    """The rescored method on a whole annotated stack (sections TRAIN, TUNE, VALIDATION): the profile classifier
    trained on the training sections' candidates, its detection (cut) chosen on the tuning sections, the
    validation sections' cleft objects, and the candidate counts."""
    from connecto.synapses.rescore import ProfileClassifier, candidate_labels, candidate_profiles, keep_candidates

    candidates, table = candidate_profiles(unet, forest, raw, candidate_threshold)
    part = {name: (table["z"] >= a) & (table["z"] < b) for name, (a, b) in
            (("train", TRAIN), ("tuning", TUNE), ("validation", VALIDATION))}
    train = slice(*TRAIN)
    labels = candidate_labels(candidates[train], table[part["train"]], clefts[train])
    classifier = ProfileClassifier(kind=kind, n_jobs=-1).fit(table[part["train"]], labels)
    tune, val = slice(*TUNE), slice(*VALIDATION)
    detection = choose_cut(candidates[tune], table[part["tuning"]], classifier.score(table[part["tuning"]]),
                           clefts[tune])
    detection.update({"candidate_threshold": candidate_threshold, "profile_classifier": kind})
    objects = keep_candidates(candidates[val], table[part["validation"]], classifier.score(table[part["validation"]]),
                              detection["score_cut"])
    counts = {name: int(sel.sum()) for name, sel in part.items()}
    counts["train_on_true_clefts"] = int(labels.sum())
    return classifier, detection, objects, counts


def score(probability: np.ndarray, truth: np.ndarray, segments: np.ndarray, voxel_size_nm, detection: dict) -> dict:
    """Object and CREMI scores of the clefts detected in ``probability``, and the share whose sides lie in distinct
    cells."""
    from connecto.synapses.clefts import cleft_objects

    objects = cleft_objects(probability, voxel_size_nm, threshold=detection["threshold"],
                            min_area_nm2=detection["min_area_nm2"])
    return score_objects(objects, truth, segments, voxel_size_nm)


def score_objects(objects: np.ndarray, truth: np.ndarray, segments: np.ndarray, voxel_size_nm) -> dict:
    """Object and CREMI scores of cleft ``objects``, and the share whose sides lie in distinct cells."""
    from connecto.synapses.cleft_metrics import evaluate_clefts
    from connecto.synapses.sanity import cleft_sides_share

    result = evaluate_clefts(objects, truth, voxel_size_nm)
    result["sanity_sides_on_distinct_cells"] = cleft_sides_share(objects, segments, voxel_size_nm)
    return result


def machine() -> dict:
    import torch

    return {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "torch": torch.__version__}


def predict_out(model, state, method: str, detection: dict, spec: str, out: str, force: bool, forest=None,
                classifier=None, forest_unet=None) -> dict:
    """Detect clefts in the stack ``spec`` with ``method`` and write ``out`` (see the module docstring)."""
    from connecto.synapses.clefts import cleft_objects, detect_to_h5
    from connecto.synapses.rescore import rescored_clefts

    def objects_of(raw, unet, voxel):
        if method == "unet":
            return cleft_objects(unet, voxel, threshold=detection["threshold"], min_area_nm2=detection["min_area_nm2"])
        if method == "forest_unet":
            return cleft_objects(forest_unet.predict(raw, unet), voxel, threshold=detection["threshold"],
                                 min_area_nm2=detection["min_area_nm2"])
        probability = forest.predict(raw)
        if method == "rescored":
            return rescored_clefts(unet, probability, raw, classifier, cut=detection["score_cut"],
                                   candidate_threshold=detection["candidate_threshold"])
        if method == "geometric_mean":
            probability = np.sqrt(unet * probability)
        return cleft_objects(probability, voxel, threshold=detection["threshold"],
                             min_area_nm2=detection["min_area_nm2"])

    try:
        return detect_to_h5(model, state, spec, out, force=force, objects_of=objects_of, method=method)
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
    parser.add_argument("--method", default=METHOD, choices=METHODS,
                        help="the method --predict uses (default: %(default)s; every method is scored)")
    parser.add_argument("--candidate-threshold", type=float, default=CANDIDATE_THRESHOLD,
                        help="U-Net probability of the rescored method's candidate profiles (default: %(default)s)")
    parser.add_argument("--profile-classifier", default=PROFILE_CLASSIFIER, choices=("extra_trees", "random_forest"),
                        help="the rescored method's classifier of candidate profiles (default: %(default)s)")
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
    probabilities, predict_seconds = {}, {}
    for name, predict in (("unet", lambda r: predict_clefts(model, r)), ("random_forest", forest.predict)):
        t0 = time.perf_counter()
        probabilities[name] = predict(raw[:VALIDATION[1]])  # every section: the rescored method trains on 0..8
        predict_seconds[name] = round(time.perf_counter() - t0, 1)
    probabilities["geometric_mean"] = np.sqrt(probabilities["unet"] * probabilities["random_forest"])
    # the U-Net's probabilities above (one prediction of all sections) are forest_unet's input, in training and after
    forest_unet, forest_unet_seconds, forest_unet_trained = train_forest_unet(
        raw, probabilities["unet"], clefts, directory, trees=args.trees)
    t0 = time.perf_counter()
    probabilities["forest_unet"] = np.zeros_like(probabilities["unet"])
    scored = slice(TUNE[0], VALIDATION[1])  # it needs no probabilities of its training sections
    probabilities["forest_unet"][scored] = forest_unet.predict(raw[scored], probabilities["unet"][scored])
    seconds_6 = time.perf_counter() - t0
    predict_seconds["forest_unet"] = round(seconds_6 * (VALIDATION[1] / (VALIDATION[1] - TUNE[0])), 1)
    for name, seconds, trained in (("unet", unet_seconds, unet_trained),
                                   ("random_forest", forest_seconds, forest_trained),
                                   ("geometric_mean", unet_seconds + forest_seconds, unet_trained or forest_trained),
                                   ("forest_unet", unet_seconds + forest_unet_seconds,
                                    unet_trained or forest_unet_trained)):
        probability = probabilities[name]
        detection = choose_detection(probability[tune], clefts[tune], voxel)
        results["methods"][name] = {
            "detection": detection,
            "validation": score(probability[val], clefts[val], segments, voxel, detection),
            "train_seconds": round(seconds, 1), "trained_in_this_run": trained,
            "predict_seconds_15_sections": round(
                sum(predict_seconds.get(n, 0.0) for n in {"geometric_mean": ("unet", "random_forest"),
                                                          "forest_unet": ("unet", "forest_unet")}.get(name, (name,))),
                1)}
    t0 = time.perf_counter()
    classifier, detection, objects, counts = rescore(probabilities["unet"], probabilities["random_forest"],
                                                     raw[:VALIDATION[1]], clefts, args.candidate_threshold,
                                                     args.profile_classifier)
    results["methods"]["rescored"] = {
        "detection": detection, "validation": score_objects(objects, clefts[val], segments, voxel),
        "candidate_profiles": counts, "train_seconds": round(unet_seconds + forest_seconds, 1),
        "trained_in_this_run": unet_trained or forest_trained,
        "rescore_seconds_candidates_training_and_cut": round(time.perf_counter() - t0, 1),
        "predict_seconds_15_sections": round(predict_seconds["unet"] + predict_seconds["random_forest"], 1)}
    results["methods"]["forest_unet"]["predict_seconds_15_sections_note"] = (
        f"its own part extrapolated from {seconds_6:.1f} s on sections {TUNE[0]}..{VALIDATION[1] - 1}")
    for name, x in results["methods"].items():
        x["pooled_tuning_and_validation_profiles_2d"] = pooled(x["detection"]["tuning_profiles_2d"],
                                                               x["validation"]["profiles_2d"])
    best = max(results["methods"], key=lambda n: results["methods"][n]["pooled_tuning_and_validation_profiles_2d"]
               ["f1"])  # ties: the first in METHODS
    results["best_pooled_method"] = best
    results["default_method"] = METHOD
    results["method"] = args.method
    with open(os.path.join(directory, "detection.json"), "w") as f:
        json.dump({k: v["detection"] for k, v in results["methods"].items()}, f, indent=1)
    if args.predict:
        results["predict"] = predict_out(model, state, args.method, results["methods"][args.method]["detection"],
                                         args.predict, args.clefts_out, args.force, forest, classifier, forest_unet)
    results["seconds"] = round(time.perf_counter() - started, 1)
    print_table(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


LABELS = {"unet": "U-Net", "random_forest": "random forest", "geometric_mean": "geo. mean", "rescored": "rescored",
          "forest_unet": "forest+U-Net"}


def print_table(results: dict) -> None:
    m = results["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, GPU {m['gpu']}")
    split = results["split_sections"]
    print(f"sections: train {split['train']}, tuning {split['tuning']}, validation {split['validation']} "
          f"(voxel {results['voxel_size_nm']} nm)")
    names = [n for n in METHODS if n in results["methods"]]
    methods = [results["methods"][n] for n in names]
    print(f"{'validation (sections 12..14)':34s}" + "".join(
        f" {LABELS[n] + (' *' if n == results['method'] else ''):>15s}" for n in names))
    rows = [("2D profiles precision", "profiles_2d", "precision"), ("2D profiles recall", "profiles_2d", "recall"),
            ("2D profiles F1", "profiles_2d", "f1"), ("3D objects precision", "objects_3d", "precision"),
            ("3D objects recall", "objects_3d", "recall"), ("3D objects F1", "objects_3d", "f1"),
            ("CREMI false-positive distance nm", "cremi", "false_positive_distance_mean_nm"),
            ("CREMI false-negative distance nm", "cremi", "false_negative_distance_mean_nm")]
    for label, group, key in rows:
        print(f"{label:34s}" + "".join(f" {x['validation'][group][key]:15.3f}" for x in methods))
    for label, key in (("profiles matched / predicted / true", "profiles_2d"),
                       ("objects matched / predicted / true", "objects_3d")):
        print(f"{label:34s}" + "".join(
            f" {'/'.join(str(x['validation'][key][k]) for k in ('matched', 'predicted', 'true')):>15s}"
            for x in methods))
    for label, key in (("precision", "precision"), ("recall", "recall"), ("F1", "f1")):
        print(f"{'tuning (9..11) 2D profiles ' + label:34s}" + "".join(
            f" {x['detection']['tuning_profiles_2d'][key] if key != 'f1' else x['detection']['tuning_profile_f1']:15.3f}"
            for x in methods))
    print(f"{'tuning matched / predicted / true':34s}" + "".join(
        f" {'/'.join(str(x['detection']['tuning_profiles_2d'][k]) for k in ('matched', 'predicted', 'true')):>15s}"
        for x in methods))
    for label, key in (("precision", "precision"), ("recall", "recall"), ("F1", "f1")):
        print(f"{'pooled (9..14) 2D profiles ' + label:34s}" + "".join(
            f" {x['pooled_tuning_and_validation_profiles_2d'][key]:15.3f}" for x in methods))
    print(f"{'detection (chosen on tuning)':34s}" + "".join(
        f" {_detection(x['detection']):>15s}" for x in methods))
    print(f"{'sanity: sides in distinct cells':34s}" + "".join(
        f" {x['validation']['sanity_sides_on_distinct_cells']['share']:15.3f}" for x in methods) +
        f"   (true clefts: {results['sanity_true_clefts']['share']:.3f}; a sanity check, not a score)")
    for name in ("unet", "random_forest"):
        x = results["methods"][name]
        print(f"{LABELS[name]}: trained in {x['train_seconds']:.0f} s{'' if x['trained_in_this_run'] else ' (cached)'}"
              f", predicted 15 sections in {x['predict_seconds_15_sections']:.1f} s")
    x = results["methods"]["forest_unet"]
    print(f"{LABELS['forest_unet']}: the forest trained on the U-Net's probabilities in "
          f"{x['train_seconds'] - results['methods']['unet']['train_seconds']:.0f} s"
          f"{'' if x['trained_in_this_run'] else ' (cached)'}, U-Net and forest predict 15 sections in "
          f"{x['predict_seconds_15_sections']:.1f} s ({x['predict_seconds_15_sections_note']})")
    r = results["methods"]["rescored"]
    counts = r["candidate_profiles"]
    print(f"rescored: {r['detection']['profile_classifier']} on {counts['train']} candidate profiles of the training "
          f"sections ({counts['train_on_true_clefts']} on true clefts), U-Net >= "
          f"{r['detection']['candidate_threshold']}; {r['rescore_seconds_candidates_training_and_cut']:.1f} s")
    print("* the method --predict uses (--method)")
    best = results["best_pooled_method"]
    print(f"best pooled 2D-profile F1 over sections 9..14 in this run: {LABELS[best]} ({best}); the fixed default "
          f"(METHOD) is {results['default_method']}" + ("" if best == results["default_method"] else
                                                          " - they differ: this run would choose another method") +
          "; chosen on 12..14 too, so 12..14 is no unbiased estimate of the chosen method")
    if "predict" in results:
        p = results["predict"]
        print(f"predicted {p['input']} {tuple(p['shape'])}: {p['clefts']} clefts -> {p['clefts_out']}")
    print(f"total {results['seconds']} s; cache {results['cache']}")


def _detection(detection: dict) -> str:
    if "score_cut" in detection:
        return f"cut {detection['score_cut']:.2f}"
    return f"{detection['threshold']:.2f},{detection['min_area_nm2'] / 1000:.0f}k nm2"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--train-only":
        directory = cache_directory(DATA, CONFIG)
        print(directory, flush=True)
        print(train_unet(CONFIG, os.path.join(directory, "unet"), progress=False))
    else:
        sys.exit(main())
