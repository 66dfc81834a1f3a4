"""The multitask LSD head: descriptor targets with known values, a training-only head, old checkpoints unchanged."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.training.conftest import tiny_config_text
from training.checkpoint import build_model, load_checkpoint, model_config_from_checkpoint, save_checkpoint
from training.config import ConfigError, ModelConfig, load_config
from training.predict import forward
from training.targets import LSD_CHANNELS, lsd_targets
from training.train import initialise_from, train
from training.unet import UNet3d

SHIPPED = Path(__file__).resolve().parents[2] / "connecto" / "data" / "fib25_affinities.pt"
C = {name: i for i, name in enumerate(LSD_CHANNELS)}


def window_moments(sigma: float, first: int = 0) -> tuple[float, float, float]:
    """(mean / sigma, variance / sigma^2, mass) of the voxels k >= ``first`` under a sampled Gaussian window
    of ``sigma`` voxels centred on voxel 0, cut at 3 sigma as scipy's filter cuts it; ``first`` = -radius:
    the whole window. A half window's continuous limit: mean sigma * sqrt(2 / pi), variance sigma^2 (1 - 2 / pi)."""
    radius = int(3 * sigma + 0.5)
    k = np.arange(-radius, radius + 1, dtype=float)
    g = np.exp(-k**2 / (2 * sigma**2))
    g /= g.sum()
    g_in = np.where(k >= first, g, 0.0)
    mean = (k * g_in).sum() / g_in.sum()
    return mean / sigma, ((k - mean) ** 2 * g_in).sum() / g_in.sum() / sigma**2, g_in.sum()


WHOLE = window_moments(3, first=-9)
HALF = window_moments(3, first=0)  # the face voxel and the 9 beyond it


def test_lsd_targets_of_a_filled_volume_and_a_half_space():
    labels = np.ones((30, 30, 60), np.uint64)
    labels[..., :30] = 2  # two half-spaces meeting at x = 29.5
    lsds, mask = lsd_targets(labels, (10, 10, 10), sigma_nm=30, downsample=1)  # sigma: 3 voxels
    assert lsds.shape == (10, 30, 30, 60) and mask.min() == 1
    inside = lsds[:, 15, 15, 10]  # deep inside label 2: the window sees only label 2
    assert inside[[C["offset_z"], C["offset_y"], C["offset_x"]]] == pytest.approx(0.5, abs=1e-3)
    assert inside[[C["variance_z"], C["variance_y"], C["variance_x"]]] == pytest.approx(WHOLE[1], abs=1e-3)
    assert inside[[C["pearson_zy"], C["pearson_zx"], C["pearson_yx"]]] == pytest.approx(0.5, abs=1e-3)
    assert inside[C["size"]] == pytest.approx(WHOLE[2], abs=1e-3) and WHOLE[2] > 0.99
    # at the face of label 1 (x = 30) the window's mass lies towards +x: half a window
    face = lsds[:, 15, 15, 30]
    assert face[C["offset_x"]] == pytest.approx(0.5 + 0.5 * HALF[0], abs=1e-3)
    assert face[C["variance_x"]] == pytest.approx(HALF[1], abs=1e-3)
    assert face[C["size"]] == pytest.approx(HALF[2], abs=1e-3)
    assert face[[C["offset_z"], C["offset_y"]]] == pytest.approx(0.5, abs=1e-3)
    assert lsds[C["offset_x"], 15, 15, 29] == pytest.approx(0.5 - 0.5 * HALF[0], abs=1e-3)  # label 2's face


def test_lsd_targets_of_a_thin_sheet_a_diagonal_band_and_unlabelled_voxels():
    labels = np.zeros((20, 40, 40), np.uint64)
    y, x = np.mgrid[:40, :40]
    labels[:, np.abs(y - x) <= 2] = 1  # a band along y = x: y and x correlate
    labels[:, np.abs(y + x - 39) <= 2] = 2  # across it, a band along y = -x: they anticorrelate
    labels[10] = 3  # a sheet one voxel thin in z
    lsds, mask = lsd_targets(labels, (10, 10, 10), sigma_nm=30, downsample=1)
    assert lsds[C["pearson_yx"], 5, 10, 10] > 0.9 and lsds[C["pearson_yx"], 5, 10, 29] < 0.1
    assert lsds[C["pearson_zy"], 5, 10, 10] == pytest.approx(0.5, abs=0.01)
    assert lsds[C["variance_z"], 10, 20, 20] < 0.01 and lsds[C["variance_y"], 10, 20, 20] > 0.95
    unlabelled = labels == 0
    assert (mask[:, unlabelled] == 0).all() and (mask[:, ~unlabelled] == 1).all()
    assert (lsds[:, unlabelled] == 0).all() and lsds.min() >= 0 and lsds.max() <= 1


def test_lsd_targets_in_nm_on_anisotropic_voxels():
    """Offsets and variances are in units of sigma: a z face at 20 nm voxels reads as an x face at 10 nm."""
    labels = np.ones((40, 12, 12), np.uint64)
    labels[:20] = 2
    z_face, _ = lsd_targets(labels, (20, 10, 10), sigma_nm=60, downsample=1)
    x_face, _ = lsd_targets(labels.transpose(2, 1, 0).copy(), (10, 10, 20), sigma_nm=60, downsample=1)
    assert z_face[C["offset_z"], 20, 6, 6] == pytest.approx(x_face[C["offset_x"], 6, 6, 20], abs=1e-4)
    assert z_face[C["offset_z"], 20, 6, 6] == pytest.approx(0.5 + 0.5 * HALF[0], abs=1e-3)
    # downsample 2 (the default, 7x faster) stays close to the full computation
    fast, _ = lsd_targets(labels, (20, 10, 10), sigma_nm=60)
    assert np.abs(fast - z_face).mean() < 0.02


def _lsd_config(directory: Path, name: str, lsd: bool, steps: int = 6):
    text = tiny_config_text(directory / name, steps=steps)
    if lsd:
        text = text.replace("downsample = [[2, 2, 2]]", "downsample = [[2, 2, 2]]\nlsd_head = true")
        text = text.replace("threads = 1", "threads = 1\nlsd_sigma_nm = 16\nlsd_weight = 1.0")
    (directory / f"{name}.toml").write_text(text)
    return load_config(str(directory / f"{name}.toml"))


def test_lsd_head_trains_and_the_saved_model_predicts_affinities_only(tiny_training_files):
    record = train(_lsd_config(tiny_training_files, "mtlsd", lsd=True), progress=False)
    train(_lsd_config(tiny_training_files, "plain", lsd=False), progress=False)
    run = tiny_training_files / "mtlsd"
    assert np.isfinite(record["val_lsd_loss"]) and "val_lsd_loss" in json.loads((run / "log.json").read_text())[0]
    first, last = (load_checkpoint(str(run / f"checkpoint_{s}.pt")) for s in (2, 6))
    assert last["model_config"]["lsd_head"] is True
    assert not torch.equal(first["model"]["lsd_head.weight"], last["model"]["lsd_head.weight"]), "the head trains"
    plain = load_checkpoint(str(tiny_training_files / "plain" / "checkpoint_6.pt"))
    # same seed, same batches: only the LSD loss can make the trunks differ
    assert not torch.allclose(plain["model"]["down.0.0.weight"], last["model"]["down.0.0.weight"])

    shipped = load_checkpoint(str(run / "model.pt"))
    assert shipped["model_config"]["lsd_head"] is False and not [k for k in shipped["model"] if "lsd" in k]
    assert shipped["model"].keys() == plain["model"].keys()
    for key, value in shipped["model"].items():
        assert torch.equal(value, last["model"][key]), key
    raw = np.load(tiny_training_files / "raw.npy")[:8, :24, :24]
    from_final = forward(build_model(shipped).eval(), torch.device("cpu"), raw)
    from_checkpoint = forward(build_model(last).eval(), torch.device("cpu"), raw)
    assert from_final.shape == (3, 8, 24, 24)
    np.testing.assert_array_equal(from_final, from_checkpoint)


def test_shipped_and_early_checkpoints_load_as_before(tmp_path):
    state = load_checkpoint(str(SHIPPED))
    assert model_config_from_checkpoint(state).lsd_head is False
    model = build_model(state)
    assert model.lsd_head is None and model.state_dict().keys() == state["model"].keys()
    # early checkpoints carried lsd_head = true with no LSD weights: they load as the model they hold
    early = {**state, "model_config": {**state["model_config"], "lsd_head": True}}
    torch.save(early, tmp_path / "early.pt")
    reloaded = build_model(load_checkpoint(str(tmp_path / "early.pt")))
    assert reloaded.lsd_head is None
    # fine-tuning: the shipped trunk and affinity head, a fresh LSD head
    config = ModelConfig(**{**state["model_config"], "lsd_head": True})
    mtlsd = UNet3d(config)
    assert initialise_from(mtlsd, str(SHIPPED)) == len(state["model"])
    assert torch.equal(mtlsd.head.weight, state["model"]["head.weight"]) and mtlsd.lsd_head.weight.shape[0] == 10
    save_checkpoint(str(tmp_path / "final.pt"), mtlsd, config, step=1, inference=True)
    assert load_checkpoint(str(tmp_path / "final.pt"))["model"].keys() == state["model"].keys()


@pytest.mark.parametrize("section, line, message", [
    ("train", "lsd_weigth = 1.0", "unknown key 'train.lsd_weigth' (did you mean 'lsd_weight'?)"),
    ("train", 'lsd_sigma_nm = "80"', "train.lsd_sigma_nm = '80': expected a number > 0 (text is not a number)"),
    ("train", "lsd_weight = 0", "train.lsd_weight = 0: expected a number > 0"),
    ("model", 'lsd_head = "yes"', "model.lsd_head = 'yes': expected true or false (text is not true/false)"),
    ("model", "lsd_head = 1", "model.lsd_head = 1: expected true or false (a number is not true/false)"),
    ("model", 'lsd_head = true\nnetwork = "unet2d"', "model: lsd_head = true needs network 'unet3d' (got 'unet2d')"),
])
def test_lsd_config_mistakes_are_one_line(tmp_path, section, line, message):
    text = tiny_config_text(tmp_path / "run").replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(str(tmp_path / "c.toml"))
    assert message in str(error.value) and "\n" not in str(error.value)
