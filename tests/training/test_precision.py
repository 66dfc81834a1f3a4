"""precision = "auto" | "fp32" | "bf16" | "fp16": what auto picks on each kind of machine, and where it is recorded."""

import json
import logging

import pytest
import torch

from training.config import ModelConfig
from training.precision import PrecisionChoice, check_precision, resolve_precision
from training.unet import UNet3d


@pytest.fixture
def model():
    return UNet3d(ModelConfig(widths=(4, 8), downsample=((2, 2, 2),)))


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("CONNECTO_PRECISION", raising=False)


def _never(*_):
    raise AssertionError("the probe must not run here")


def test_a_cpu_without_native_bf16_runs_fp32_without_probing(model, no_env, tmp_path):
    choice = resolve_precision("auto", "cpu", model, native_bf16=lambda: False, probe=_never, cache_dir=str(tmp_path))
    assert choice == PrecisionChoice("fp32", "auto", "CPU without native bf16")
    assert choice.autocast_dtype is None


def test_a_cpu_with_native_bf16_runs_bf16_where_the_probe_finds_it_faster_and_caches_it(model, no_env, tmp_path):
    calls = []

    def probe(m):
        calls.append(m)
        return {"fp32": 1.0, "bf16": 0.4}

    choice = resolve_precision("auto", "cpu", model, native_bf16=lambda: True, probe=probe, cache_dir=str(tmp_path))
    assert choice.precision == "bf16" and choice.autocast_dtype == torch.bfloat16
    assert choice.probe_seconds == {"fp32": 1.0, "bf16": 0.4} and "probe" in choice.reason
    again = resolve_precision("auto", "cpu", model, native_bf16=lambda: True, probe=_never, cache_dir=str(tmp_path))
    assert again.precision == "bf16" and len(calls) == 1  # cached per machine, torch version, threads, model
    cached = json.loads((tmp_path / "precision-probe.json").read_text())
    (key,) = cached
    assert f"torch {torch.__version__}" in key and "threads" in key and '"widths": [4, 8]' in key
    other = UNet3d(ModelConfig(widths=(4, 8, 16), downsample=((2, 2, 2), (2, 2, 2))))
    with pytest.raises(AssertionError, match="must not run"):  # another architecture is probed anew
        resolve_precision("auto", "cpu", other, native_bf16=lambda: True, probe=_never, cache_dir=str(tmp_path))


@pytest.mark.parametrize("bf16_seconds", [1.5, 0.97])
def test_native_bf16_that_is_not_clearly_faster_runs_fp32(model, no_env, tmp_path, bf16_seconds):
    choice = resolve_precision("auto", "cpu", model, native_bf16=lambda: True,
                               probe=lambda m: {"fp32": 1.0, "bf16": bf16_seconds}, cache_dir=str(tmp_path))
    assert choice.precision == "fp32"


def test_the_real_probe_times_both_precisions(model, no_env, tmp_path):
    choice = resolve_precision("auto", "cpu", model, native_bf16=lambda: True, cache_dir=str(tmp_path))
    assert set(choice.probe_seconds) == {"fp32", "bf16"} and all(s > 0 for s in choice.probe_seconds.values())
    faster = choice.probe_seconds["bf16"] <= 0.95 * choice.probe_seconds["fp32"]
    assert choice.precision == ("bf16" if faster else "fp32")


def test_a_cuda_gpu_runs_bf16_where_it_has_it(model, no_env, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", torch.device("cuda"), model, probe=_never).precision == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", torch.device("cuda"), model, probe=_never).precision == "fp32"


def test_an_explicit_precision_is_honoured_and_emulated_bf16_is_warned_about(model, no_env, caplog):
    assert resolve_precision("fp16", "cpu", model, probe=_never).precision == "fp16"
    with caplog.at_level(logging.WARNING, logger="training.precision"):
        choice = resolve_precision("bf16", "cpu", model, native_bf16=lambda: False, probe=_never)
    assert choice.precision == "bf16" and "no native bf16" in caplog.text and "20x slower" in caplog.text


def test_the_environment_decides_what_auto_picks(model, monkeypatch):
    monkeypatch.setenv("CONNECTO_PRECISION", "fp32")
    choice = resolve_precision("auto", "cpu", model, native_bf16=lambda: True, probe=_never)
    assert (choice.precision, choice.reason) == ("fp32", "CONNECTO_PRECISION=fp32")
    monkeypatch.setenv("CONNECTO_PRECISION", "fast")
    with pytest.raises(ValueError, match="CONNECTO_PRECISION='fast' is not one of fp32, bf16, fp16"):
        resolve_precision("auto", "cpu", model)


def test_unknown_precisions_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="precision 'bf17' is not one of auto, fp32, bf16, fp16"):
        check_precision("bf17")
    from training.config import config_from_dict

    with pytest.raises(ValueError, match="train.precision = 'half': expected one of 'auto', 'fp32', 'bf16', 'fp16'"):
        config_from_dict({"train": {"volumes": [{"raw": "r.npy", "labels": "l.npy", "voxel_size_nm": [8, 8, 8]}],
                                    "precision": "half"}})
    from connecto.reconstruct import ReconstructConfig

    with pytest.raises(ValueError, match="precision = 'quick': expected one of 'auto', 'fp32'"):
        ReconstructConfig(raw="r.zarr", run_dir="run", checkpoint="m.pt", precision="quick")
    with pytest.raises(ValueError, match="memory_limit = 'lots': memory limit 'lots' is not a size"):
        ReconstructConfig(raw="r.zarr", run_dir="run", checkpoint="m.pt", memory_limit="lots")


def test_configs_from_before_precision_still_load():
    from training.config import config_from_dict

    volumes = [{"raw": "r.npy", "labels": "l.npy", "voxel_size_nm": [8, 8, 8]}]
    on = config_from_dict({"train": {"volumes": volumes, "mixed_precision": True}})
    off = config_from_dict({"train": {"volumes": volumes, "mixed_precision": False}})
    assert (on.train.precision, off.train.precision) == ("auto", "fp32")


def test_training_records_its_precision_in_the_checkpoint(tiny_training_files):
    from tests.training.conftest import tiny_config_text
    from training.checkpoint import load_checkpoint
    from training.config import load_config
    from training.train import train

    (tiny_training_files / "c.toml").write_text(tiny_config_text(tiny_training_files / "run", steps=2))
    train(load_config(str(tiny_training_files / "c.toml")), progress=False)
    assert load_checkpoint(str(tiny_training_files / "run" / "model.pt"))["precision"] == "fp32"
