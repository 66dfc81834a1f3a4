"""The cleft model on real ssTEM (a crop of ../shared/data/vnc): training with a model card, the
random-forest baseline, the rescored candidate profiles, the benchmark's --predict output,
evaluate-synapses on cleft volumes, and the model card's warning for the synthetic synapse model
on FIB-25."""

import importlib.util
import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

VOXEL = (50.0, 4.6, 4.6)
CROP = (slice(0, 8), slice(384, 512), slice(704, 832))  # 8 sections of 128^2: 12 cleft profiles


@pytest.fixture(scope="module")
def vnc(request):
    path = Path(__file__).resolve().parents[3] / "shared" / "data" / "vnc" / "stack1_train.h5"
    if not path.exists():
        pytest.skip(f"real EM data not found at {path}")
    with h5py.File(path, "r") as f:
        return f["raw"][CROP], f["synapses"][CROP]


def _benchmark():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "vnc_clefts.py"
    spec = importlib.util.spec_from_file_location("vnc_clefts_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_crop_holds_clefts(vnc):
    from connecto.synapses.clefts import profiles

    clefts = vnc[1]
    assert 0.005 < clefts.mean() < 0.1
    assert all(profiles(clefts[z:z + 1]).max() >= 1 for z in (5, 6, 7))


def test_random_forest_beats_a_trivial_predictor(vnc):
    from sklearn.metrics import average_precision_score

    from connecto.synapses.baseline import PixelClassifier

    raw, clefts = vnc
    forest = PixelClassifier(n_estimators=20, positives=3000, negatives=6000, n_jobs=1).fit(raw[:5], clefts[:5])
    probability = forest.predict(raw[5:])
    assert probability.shape == raw[5:].shape and probability.dtype == np.float32
    truth = clefts[5:].ravel() > 0
    ap = average_precision_score(truth, probability.ravel())
    # a constant predictor's average precision is the cleft fraction (here about 0.03)
    assert ap > 5 * truth.mean(), (ap, truth.mean())


def test_training_writes_a_model_card_and_predict_writes_cleft_ids(vnc, tmp_path):
    from connecto.synapses.clefts import load_cleft_model
    from training.config import config_from_dict
    from training.train import train

    raw, clefts = vnc
    np.save(tmp_path / "raw.npy", raw)
    np.save(tmp_path / "clefts.npy", clefts)
    config = config_from_dict({
        "model": {"network": "unet2d", "z_context": 1, "widths": [4, 8], "downsample": [[1, 2, 2]],
                  "outputs": ["clefts"]},
        "train": {"out_dir": str(tmp_path / "run"), "steps": 3, "patch_shape": [3, 64, 64], "voxel_size_nm": VOXEL,
                  "validate_every": 3, "checkpoint_every": 3, "threads": 1,
                  "volumes": [{"raw": str(tmp_path / "raw.npy"), "clefts": str(tmp_path / "clefts.npy"),
                               "voxel_size_nm": VOXEL, "validation_slab_z": [5, 8]}]}})
    record = train(config, progress=False)
    assert record["step"] == 3 and "val_cleft_f1" in record
    model, state = load_cleft_model(str(tmp_path / "run" / "model.pt"))
    card = state["extra"]["model_card"]
    assert card["voxel_size_nm"] == list(VOXEL) and card["training_data"] == ["raw.npy"]
    assert card["intensity"]["mean"] == pytest.approx(raw[:5].mean() / 255, abs=0.01)

    held_out = tmp_path / "held_out.h5"
    with h5py.File(held_out, "w") as f:
        f["raw"] = raw[:5]
    out = tmp_path / "out.h5"
    detection = {"threshold": 0.5, "min_area_nm2": 0.0}
    summary = _benchmark().predict_out(model, state, "unet", detection, f"{held_out}:raw", str(out), force=False)
    with h5py.File(out, "r") as f:
        assert f["clefts"].shape == (5, 128, 128) and f["clefts"].dtype == np.uint64
        assert int(f["clefts"][:].max()) == summary["clefts"] == len(f["synapses"])

    from connecto.cli import cli

    run = CliRunner().invoke(cli, ["detect-clefts", str(tmp_path / "run" / "model.pt"), f"{held_out}:raw",
                                   str(tmp_path / "cli.h5"), "--threshold", "0.5", "--min-area-nm2", "0"])
    assert run.exit_code == 0, run.output
    with h5py.File(tmp_path / "cli.h5", "r") as f:
        assert f["clefts"].shape == (5, 128, 128) and json.loads(run.output)["clefts"] == len(f["synapses"])
    assert (tmp_path / "cli.synapses.csv").exists()
    refused = CliRunner().invoke(cli, ["predict", str(tmp_path / "run" / "model.pt"), f"{held_out}:raw",
                                       str(tmp_path / "p.zarr")])
    assert refused.exit_code == 1 and "connecto detect-clefts" in refused.output

    with h5py.File(tmp_path / "fib_like.h5", "w") as f:
        f.create_dataset("raw", data=raw[:5]).attrs["voxel_size_nm"] = [10.0, 10.0, 10.0]
    with pytest.raises(SystemExit, match=r"voxel size 10x10x10 nm, the model was trained at 50x4\.6x4\.6 nm.*--force"):
        _benchmark().predict_out(model, state, "unet", detection, f"{tmp_path / 'fib_like.h5'}:raw", str(out), force=False)


def test_synthetic_synapse_model_warns_on_fib25(shared_data, caplog):
    from connecto.demo import shipped_synapse_checkpoint
    from training.checkpoint import load_checkpoint
    from training.data import normalize_raw
    from training.model_card import check_data

    with h5py.File(shared_data / "fib25" / "training_sample2.h5", "r") as f:
        raw = normalize_raw(f["raw"][:16, :64, :64])
    state = load_checkpoint(shipped_synapse_checkpoint())
    with caplog.at_level(logging.WARNING, logger="training.model_card"):
        problems = check_data(state, voxel_size_nm=(10, 10, 10), raw=raw, where="the synthetic synapse model")
    assert problems == ["voxel size 10x10x10 nm, the model was trained at 8x8x8 nm"]
    assert len(caplog.records) == 1 and "\n" not in caplog.records[0].getMessage()
    assert check_data(state, voxel_size_nm=(8, 8, 8), raw=raw) == []


def test_a_card_flags_far_intensities():
    from training.model_card import card_problems, make_card

    rng = np.random.default_rng(0)
    card = make_card([rng.normal(0.5, 0.2, 10000).clip(0, 1)], ["stack1.h5:raw"], VOXEL)
    assert card_problems(card, voxel_size_nm=VOXEL, raw=rng.normal(0.5, 0.2, 5000).clip(0, 1)) == []
    low_contrast = card_problems(card, raw=rng.normal(0.5, 0.1, 5000))
    assert len(low_contrast) == 1 and low_contrast[0].startswith("intensity mean 0.50 / std 0.10")
    assert len(card_problems(card, raw=rng.normal(0.7, 0.2, 5000))) == 1


def test_evaluate_synapses_scores_cleft_volumes(tmp_path):
    from connecto.cli import cli

    from .test_synapses_clefts import _truth_and_prediction

    truth, pred = _truth_and_prediction()
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f.create_dataset("truth", data=truth).attrs["voxel_size_nm"] = VOXEL
        f["pred"] = pred.astype(np.float32) * 0.7  # a probability map
    result = CliRunner().invoke(cli, ["evaluate-synapses", f"{tmp_path}/c.h5:pred", f"{tmp_path}/c.h5:truth",
                                      "--threshold", "0.6", "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "r.json").read_text())
    assert (scores["profiles_2d"]["matched"], scores["profiles_2d"]["predicted"], scores["profiles_2d"]["true"]) == \
        (2, 4, 3)
    assert scores["voxel_size_nm"] == list(VOXEL) and scores["cremi"]["false_negative_distance_mean_nm"] > 0
    higher = CliRunner().invoke(cli, ["evaluate-synapses", f"{tmp_path}/c.h5:pred", f"{tmp_path}/c.h5:truth",
                                      "--threshold", "0.8"])
    assert json.loads(higher.output)["profiles_2d"]["predicted"] == 0


def test_the_benchmark_chooses_detection_on_tuning_sections_only_from_its_grid():
    truth = np.zeros((2, 64, 64), np.uint8)
    truth[0, 10:30, 10:40] = 1  # 600 px: 12700 nm^2
    truth[1, 40:60, 20:50] = 1
    probability = truth * 0.97 + 0.0
    probability[0, 50:52, 50:52] = 0.99  # a small bright speck: gone with a minimum area
    probability[1, 5:25, 5:35] = 0.85  # a large dim false cleft: gone with a higher threshold
    best = _benchmark().choose_detection(probability.astype(np.float32), truth, VOXEL)
    assert best["tuning_profile_f1"] == 1.0
    assert 0.85 < best["threshold"] <= 0.95 and 0 < best["min_area_nm2"] <= 12700


def test_the_benchmark_runs_on_a_crop_and_writes_json_and_clefts(tmp_path, monkeypatch, capsys):
    src = Path(__file__).resolve().parents[3] / "shared" / "data" / "vnc" / "stack1_train.h5"
    if not src.exists():
        pytest.skip(f"real EM data not found at {src}")
    crop = (slice(0, 15), slice(448, 576), slice(224, 352))  # 4 cleft profiles in sections 12..14
    data = tmp_path / "stack.h5"
    with h5py.File(src, "r") as f, h5py.File(data, "w") as out:
        for name in ("raw", "synapses", "membranes"):
            out[name] = f[name][crop]
        out.attrs["voxel_size_nm"] = VOXEL
        held_out = f["raw"][10:15, crop[1], crop[2]]
    config = tmp_path / "c.toml"
    config.write_text(f"""[model]
network = "unet2d"
z_context = 1
widths = [4, 8]
downsample = [[1, 2, 2]]
outputs = ["clefts"]
[train]
steps = 2
patch_shape = [3, 64, 64]
voxel_size_nm = [50, 4.6, 4.6]
validate_every = 2
threads = 1
[[train.volumes]]
raw = "{data}:/raw"
clefts = "{data}:/synapses"
voxel_size_nm = [50, 4.6, 4.6]
labelled_z = [0, 12]
validation_slab_z = [9, 12]
""")
    with h5py.File(tmp_path / "held_out.h5", "w") as f:
        f["raw"] = held_out
    monkeypatch.setenv("CONNECTO_CACHE_DIR", str(tmp_path / "cache"))
    args = ["--data", str(data), "--config", str(config), "--trees", "5", "--json", str(tmp_path / "r.json"),
            "--predict", f"{tmp_path / 'held_out.h5'}:raw", "--clefts-out", str(tmp_path / "out.h5")]
    assert _benchmark().main(args) == 0
    printed = capsys.readouterr().out
    assert "2D profiles F1" in printed and "random forest" in printed
    results = json.loads((tmp_path / "r.json").read_text())
    bench = _benchmark()
    assert f"{bench.LABELS[bench.METHOD]} *" in printed  # the fixed default, beside the other methods of the run
    assert set(results["methods"]) == set(bench.METHODS) == {"unet", "random_forest", "geometric_mean", "rescored",
                                                             "forest_unet"}
    for method in bench.METHODS:
        x = results["methods"][method]
        validation, tuning = x["validation"]["profiles_2d"], x["detection"]["tuning_profiles_2d"]
        assert validation["true"] == 4 and 0.0 <= validation["f1"] <= 1.0
        assert tuning["f1"] == x["detection"]["tuning_profile_f1"]
        pooled = x["pooled_tuning_and_validation_profiles_2d"]  # counts summed over 9..14, not F1s averaged
        assert [pooled[k] for k in ("matched", "predicted", "true")] == [
            tuning[k] + validation[k] for k in ("matched", "predicted", "true")]
        assert x["trained_in_this_run"]
    best = max(results["methods"][m]["pooled_tuning_and_validation_profiles_2d"]["f1"] for m in bench.METHODS)
    assert results["methods"][results["best_pooled_method"]]["pooled_tuning_and_validation_profiles_2d"]["f1"] == best
    assert "best pooled 2D-profile F1 over sections 9..14" in printed
    assert results["method"] == results["default_method"] == bench.METHOD
    rescored = results["methods"]["rescored"]
    assert rescored["detection"]["score_cut"] in bench.SCORE_CUTS
    assert rescored["detection"]["candidate_threshold"] == 0.5
    assert rescored["detection"]["profile_classifier"] == "extra_trees"
    with h5py.File(tmp_path / "out.h5", "r") as f:
        assert f["clefts"].shape == (5, 128, 128) and f["clefts"].dtype == np.uint64
        assert f["clefts"].attrs["method"] == bench.METHOD
    assert _benchmark().main(args) == 0  # the second run reuses both models
    again = json.loads((tmp_path / "r.json").read_text())
    assert not again["methods"]["unet"]["trained_in_this_run"]
    assert again["methods"]["unet"]["validation"] == results["methods"]["unet"]["validation"]


def test_the_loss_and_schedule_keys_default_to_the_old_training():
    from training.config import TrainConfig

    defaults = {f: TrainConfig.__dataclass_fields__[f].default for f in ("balance_clip", "dice_weight", "lr_schedule")}
    assert defaults == {"balance_clip": 20.0, "dice_weight": 0.0, "lr_schedule": "constant"}


def test_soft_dice_loss_counts_overlap_and_balance_clip_caps_weights():
    import torch

    from training.targets import balance_weights
    from training.train import soft_dice_loss

    target = torch.zeros(1, 1, 1, 32, 32)
    target[..., 10:14, 4:28] = 1
    mask = torch.ones_like(target)
    right, wrong = soft_dice_loss(target * 40 - 20, target, mask), soft_dice_loss(20 - target * 40, target, mask)
    assert right.item() < 0.01 and wrong.item() > 0.99
    assert soft_dice_loss(target * 40 - 20, target, torch.zeros_like(mask)).item() < 0.01  # nothing counted
    w20, w2 = (balance_weights(target[0].numpy(), mask[0].numpy(), clip=c) for c in (20.0, 2.0))
    assert w20.max() == pytest.approx(1024 / (2 * 96)) and w2.max() == 2.0  # 96 of 1024 pixels positive


def test_a_cosine_schedule_ends_near_zero(vnc, tmp_path):
    import torch

    from training.checkpoint import load_checkpoint
    from training.config import config_from_dict
    from training.train import train

    raw, clefts = vnc
    with h5py.File(tmp_path / "crop.h5", "w") as f:
        f["raw"], f["clefts"] = raw, clefts
    config = config_from_dict({
        "model": {"network": "unet2d", "z_context": 1, "widths": [4, 8], "downsample": [[1, 2, 2]],
                  "outputs": ["clefts"]},
        "train": {"out_dir": str(tmp_path / "run"), "steps": 4, "patch_shape": [3, 64, 64], "voxel_size_nm": VOXEL,
                  "learning_rate": 0.01, "lr_schedule": "cosine", "dice_weight": 1.0, "balance_clip": 2.0,
                  "threads": 1, "checkpoint_every": 4, "validate_every": 4,
                  "volumes": [{"raw": f"{tmp_path}/crop.h5:/raw", "clefts": f"{tmp_path}/crop.h5:/clefts",
                               "voxel_size_nm": VOXEL, "validation_slab_z": [5, 8]}]}})
    record = train(config, progress=False)
    assert np.isfinite(record["train_loss"])
    state = load_checkpoint(str(tmp_path / "run" / "checkpoint_4.pt"), map_location=torch.device("cpu"))
    lr = state["optimizer"]["param_groups"][0]["lr"]
    assert lr == pytest.approx(0.01 * 0.5 * (1 + np.cos(np.pi * 3 / 4)))  # the last step's: 3 of 4 done


def _candidate_stack(seed: int):
    """A stack (3 sections of 96^2) of U-Net-like probabilities: true clefts (long, bright in the forest's map too,
    dark in raw, continued in the next section) and cleft-like false places (as bright for the U-Net, dim in the
    forest's map, not continued); and its truth."""
    rng = np.random.default_rng(seed)
    unet = rng.uniform(0, 0.3, (3, 96, 96)).astype(np.float32)
    forest = rng.uniform(0, 0.3, unet.shape).astype(np.float32)
    raw = rng.integers(150, 200, unet.shape).astype(np.uint8)
    truth = np.zeros(unet.shape, np.uint8)
    for y in (10, 40, 70):
        x = int(rng.integers(5, 40))
        truth[0:2, y:y + 4, x:x + 30] = 1  # a true cleft in sections 0 and 1
        unet[0:2, y:y + 4, x:x + 30] = 0.95
        forest[0:2, y:y + 4, x:x + 30] = 0.9
        raw[0:2, y:y + 4, x:x + 30] = 60
        unet[2, y + 10:y + 14, x + 40:x + 50] = 0.95  # a false one, in section 2 only
        forest[2, y + 10:y + 14, x + 40:x + 50] = 0.2
    return unet, forest, raw, truth


def test_candidate_profiles_describe_each_profile_without_the_truth():
    from connecto.synapses.rescore import FEATURES, candidate_labels, candidate_profiles

    unet, forest, raw, truth = _candidate_stack(0)
    candidates, table = candidate_profiles(unet, forest, raw, candidate_threshold=0.5)
    assert candidates.dtype == np.uint64 and len(table) == 9 and list(table.columns) == ["id", "z", *FEATURES]
    assert sorted(table["z"].value_counts().to_dict().items()) == [(0, 3), (1, 3), (2, 3)]
    assert set(table["area"]) == {120, 40}
    true_rows = table["z"] < 2
    assert (table.loc[true_rows, "link_sections"] == 1).all() and (table.loc[~true_rows, "link_sections"] == 0).all()
    assert (table.loc[true_rows, "forest_mean"] > 0.85).all() and (table.loc[~true_rows, "forest_mean"] < 0.25).all()
    assert (table.loc[true_rows, "ring_contrast"] > 50).all()  # dark inside, bright around
    assert list(candidate_labels(candidates, table, truth)) == list(true_rows.astype(int))
    with pytest.raises(ValueError, match="one shape"):
        candidate_profiles(unet, forest[:2], raw)


def test_the_profile_classifier_keeps_true_profiles_and_drops_cleft_like_ones():
    from connecto.synapses.cleft_metrics import match_objects
    from connecto.synapses.clefts import cleft_objects, profiles
    from connecto.synapses.rescore import ProfileClassifier, candidate_labels, candidate_profiles, rescored_clefts

    unet, forest, raw, truth = _candidate_stack(1)
    candidates, table = candidate_profiles(unet, forest, raw)
    classifier = ProfileClassifier(n_estimators=50, n_jobs=1).fit(table, candidate_labels(candidates, table, truth))
    unet2, forest2, raw2, truth2 = _candidate_stack(2)  # an unseen stack
    objects = rescored_clefts(unet2, forest2, raw2, classifier, cut=0.5)
    assert match_objects(profiles(objects), profiles(truth2))["f1"] == 1.0
    assert objects.max() == 3  # 3D objects: each true cleft's two profiles linked
    # the U-Net's threshold alone keeps the 3 false profiles with the 6 true ones
    plain = match_objects(profiles(cleft_objects(unet2, VOXEL, threshold=0.5, min_area_nm2=0)), profiles(truth2))
    assert (plain["matched"], plain["predicted"]) == (6, 9)
    candidates2, table2 = candidate_profiles(unet2, forest2, raw2)
    cut = _benchmark().choose_cut(candidates2, table2, classifier.score(table2), truth2)
    assert cut["tuning_profile_f1"] == 1.0 and cut["score_cut"] in _benchmark().SCORE_CUTS
    # one kind of candidate only (e.g. a barely trained U-Net): one score for all, no error
    single = ProfileClassifier(n_jobs=1).fit(table, np.zeros(len(table), int))
    assert (single.score(table) == 0).all()
    with pytest.raises(ValueError, match="one label per candidate"):
        ProfileClassifier(n_jobs=1).fit(table, np.zeros(2, int))


def test_the_forest_with_unet_features_uses_both_the_image_and_the_unet():
    from connecto.synapses.baseline import PixelClassifier
    from connecto.synapses.cleft_metrics import match_objects
    from connecto.synapses.clefts import cleft_objects, profiles
    from connecto.synapses.rescore import ForestWithUNet

    settings = {"n_estimators": 20, "positives": 720, "negatives": 6000, "n_jobs": 1}
    unet, _, raw, truth = _candidate_stack(1)
    unet2, _, raw2, truth2 = _candidate_stack(2)  # an unseen stack

    def f1(probability, truth):
        return match_objects(profiles(cleft_objects(probability, VOXEL, threshold=0.5, min_area_nm2=0)),
                             profiles(truth))

    # the U-Net's cleft-like false places are bright in raw: the image drops them
    forest = ForestWithUNet(**settings).fit(raw, unet, truth)
    probability = forest.predict(raw2, unet2)
    assert probability.shape == raw2.shape and probability.dtype == np.float32
    assert f1(probability, truth2)["f1"] == 1.0
    assert (f1(unet2, truth2)["matched"], f1(unet2, truth2)["predicted"]) == (6, 9)  # the U-Net alone keeps them
    # raw without any cleft contrast: only the U-Net's probability tells clefts apart
    def flat(stack, seed):
        unet, _, _, truth = stack
        unet = np.where(truth > 0, unet, np.minimum(unet, 0.3))
        return np.random.default_rng(seed).integers(100, 200, unet.shape).astype(np.uint8), unet, truth

    raw, unet, truth = flat(_candidate_stack(1), 0)
    raw2, unet2, truth2 = flat(_candidate_stack(2), 1)
    assert f1(ForestWithUNet(**settings).fit(raw, unet, truth).predict(raw2, unet2), truth2)["f1"] == 1.0
    image_only = PixelClassifier(**settings).fit(raw, truth).predict(raw2)
    assert f1(image_only, truth2)["f1"] < 0.5
    with pytest.raises(ValueError, match="one shape"):
        forest.predict(raw2, unet2[:2])
