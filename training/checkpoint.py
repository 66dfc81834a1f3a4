"""Checkpoints: config + weights (+ optimizer and step for resuming), loaded with ``weights_only=True``."""

from __future__ import annotations

import dataclasses
import glob
import os
import re

from .config import ModelConfig, config_to_dict

FORMAT = "connecto-affinities-v1"

# extra[THRESHOLD_KEY]: the merge-score threshold the model recommends for segmenting its
# affinities (save_checkpoint(..., extra={"threshold": 0.6})); prediction copies it into the
# affinity volume's attributes under the same key, where segmentation finds it.
THRESHOLD_KEY = "threshold"
LSD_PREFIX = "lsd_head."  # the weights of the training-only LSD head (training.unet.UNet3d.lsd_head)


def save_checkpoint(path: str, model, model_config: ModelConfig, *, step: int, optimizer=None,
                    raw_dtype: str = "uint8", voxel_size_nm=None, extra: dict | None = None,
                    precision: str | None = None, inference: bool = False) -> None:
    """Write atomically (temp file + rename): a crash never leaves a half-written checkpoint.

    ``precision`` records what the model was trained in (fp32, bf16, fp16). ``inference``: only what
    prediction uses, without a training-only LSD head (its weights and ``lsd_head`` in the config), so
    the file is the one a model trained without the head would be: the file to ship."""
    import torch

    weights = model.state_dict()
    if inference and model_config.lsd_head:
        weights = {k: v for k, v in weights.items() if not k.startswith(LSD_PREFIX)}
        model_config = dataclasses.replace(model_config, lsd_head=False)
    state = {
        "format": FORMAT,
        "model_config": _plain(config_to_dict(model_config)),
        "model": weights,
        "step": int(step),
        "raw_dtype": raw_dtype,
        "voxel_size_nm": list(voxel_size_nm) if voxel_size_nm is not None else None,
        "extra": extra or {},
        "precision": precision,
    }
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str, expected_config: ModelConfig | None = None, map_location="cpu") -> dict:
    """Load a checkpoint safely; refuse one whose model differs from ``expected_config``."""
    import torch

    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise ValueError(f"cannot load checkpoint {path!r}: {_load_failure(exc)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a connecto model checkpoint (format {FORMAT})")
    config = model_config_from_checkpoint(state)
    if expected_config is not None and config != expected_config:
        diffs = [f"{k}: checkpoint {getattr(config, k)} != config {getattr(expected_config, k)}"
                 for k in config_to_dict(config) if getattr(config, k) != getattr(expected_config, k)]
        raise ValueError(f"checkpoint {path!r} was trained with another model ({'; '.join(diffs)}); "
                         "use the config it was trained with or start a new out_dir")
    return state


def recommended_threshold(values: dict | None, *, where: str) -> float | None:
    """``values[THRESHOLD_KEY]`` (a checkpoint's ``extra``, an affinity volume's attributes) as a
    threshold in [0, 1], or None when absent; ``where`` names the source in the error.

    >>> recommended_threshold({"threshold": 0.6}, where="model.pt")
    0.6
    """
    value = (values or {}).get(THRESHOLD_KEY)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{where}: recommended threshold {value!r} ({THRESHOLD_KEY!r}) must be a number in [0, 1]")
    return float(value)


def _load_failure(exc: Exception) -> str:
    """Why torch could not load a file, in one line, without torch's advice to load it with
    ``weights_only=False`` (which would run whatever code the file holds). Any failure other than
    refused code (zip, pickle or struct errors of a cut or foreign file) means a broken file."""
    message = str(exc)
    code = re.search(r"unsupported (?:global: )?GLOBAL ([\w.]+)", message, flags=re.IGNORECASE)
    if code:
        return (f"it holds Python objects ({code.group(1)}) that no model file needs, and was not run; "
                "use a checkpoint written by connecto train")
    return "it is not a torch checkpoint, or it is truncated or corrupt; use a checkpoint written by connecto train"


def model_config_from_checkpoint(state: dict) -> ModelConfig:
    values = dict(state["model_config"])
    if values.get("lsd_head") and not any(k.startswith(LSD_PREFIX) for k in state.get("model", {})):
        values["lsd_head"] = False  # early checkpoints carried the flag unused, with no LSD weights
    return ModelConfig(**values)


def build_model(state: dict):
    from .unet2d import build_network

    model = build_network(model_config_from_checkpoint(state))
    model.load_state_dict(state["model"])
    return model


def latest_checkpoint(out_dir: str) -> str | None:
    paths = glob.glob(os.path.join(out_dir, "checkpoint_*.pt"))
    if not paths:
        return None
    return max(paths, key=lambda p: int(re.search(r"checkpoint_(\d+)\.pt$", p).group(1)))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
