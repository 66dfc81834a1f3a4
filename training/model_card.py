"""Model cards: what a checkpoint was trained on, and a one-line warning when new data differs.

A card (a checkpoint's ``extra["model_card"]``, written by ``connecto train``) records the
training data's names, the voxel size (nm, z y x) and the intensity statistics of the
normalised raw data the network saw (mean, standard deviation, 1st / 50th / 99th
percentile, in [0, 1]). Before predicting, :func:`card_problems` compares new data with it:

- voxel size: any axis more than ``VOXEL_TOLERANCE`` (10%) off (the checkpoint's
  ``voxel_size_nm`` also serves models trained before cards existed);
- intensity: mean more than ``MEAN_TOLERANCE`` (0.5) training standard deviations away, or
  a standard deviation outside [1/``STD_RATIO``, ``STD_RATIO``] (1.5x) of the training one.

Measured (normalised mean / std): ssTEM VNC stack 1, sections 0..8: 0.505 / 0.212; stack 2
0.500 / 0.213 (fits); ISBI 2012 (also ssTEM, Drosophila VNC) 0.486 / 0.167 (fits, ratio 0.79);
FIB-25 0.499 / 0.130 (ratio 0.61: warned). The synthetic synapse model (8 nm) on FIB-25 (10 nm)
is off in voxel size.
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np

logger = logging.getLogger(__name__)

CARD_KEY = "model_card"
VOXEL_TOLERANCE = 0.10
MEAN_TOLERANCE = 0.5
STD_RATIO = 1.5
SAMPLE_VOXELS = 2_000_000


def intensity_stats(raw: np.ndarray, max_voxels: int = SAMPLE_VOXELS) -> dict:
    """Mean, std and 1/50/99th percentiles of normalised raw values (a strided sample of at most ``max_voxels``)."""
    flat = np.asarray(raw).reshape(-1)
    step = max(1, flat.size // max_voxels)
    sample = flat[::step].astype(np.float64)
    p1, p50, p99 = np.percentile(sample, [1, 50, 99])
    return {"mean": float(sample.mean()), "std": float(sample.std()), "p1": float(p1), "p50": float(p50),
            "p99": float(p99)}


def make_card(raws, names, voxel_size_nm) -> dict:
    """The card of a model trained on the normalised raw arrays ``raws`` (named ``names``) at ``voxel_size_nm``."""
    per_volume = [intensity_stats(r, SAMPLE_VOXELS // max(1, len(raws))) for r in raws]
    pooled = {k: float(np.mean([s[k] for s in per_volume])) for k in per_volume[0]} if per_volume else {}
    return {"training_data": [data_name(n) for n in names], "voxel_size_nm": [float(v) for v in voxel_size_nm],
            "intensity": pooled, "intensity_units": "normalised raw, [0, 1]"}


def data_name(spec: str) -> str:
    """A readable name for a raw spec: the file (and dataset), without the directories."""
    path, _, dataset = str(spec).partition(".h5:")
    return os.path.basename(path) + (".h5:" + dataset if dataset else "")


def card_of(state: dict) -> dict:
    """A checkpoint's card; for checkpoints without one, what the checkpoint itself records (voxel size)."""
    card = dict((state.get("extra") or {}).get(CARD_KEY) or {})
    if "voxel_size_nm" not in card and state.get("voxel_size_nm") is not None:
        card["voxel_size_nm"] = [float(v) for v in state["voxel_size_nm"]]
    return card


def card_problems(card: dict, *, voxel_size_nm=None, raw: np.ndarray | None = None) -> list[str]:
    """How data (its ``voxel_size_nm``; its normalised ``raw``, or a sample) differs from a card; [] when it fits."""
    problems = []
    trained = card.get("voxel_size_nm")
    if trained is not None and voxel_size_nm is not None and any(
            abs(float(a) - float(b)) > VOXEL_TOLERANCE * float(b) for a, b in zip(voxel_size_nm, trained)):
        problems.append(f"voxel size {_nm(voxel_size_nm)} nm, the model was trained at {_nm(trained)} nm")
    stats = card.get("intensity")
    if stats and raw is not None:
        new = intensity_stats(raw)
        off_mean = abs(new["mean"] - stats["mean"]) > MEAN_TOLERANCE * max(stats["std"], 1e-6)
        ratio = new["std"] / max(stats["std"], 1e-6)
        if off_mean or not 1 / STD_RATIO <= ratio <= STD_RATIO:
            problems.append(f"intensity mean {new['mean']:.2f} / std {new['std']:.2f}, the training data's "
                            f"{stats['mean']:.2f} / {stats['std']:.2f}")
    return problems


def check_data(state: dict, *, voxel_size_nm=None, raw: np.ndarray | None = None, where: str = "the model",
               force: bool = True) -> list[str]:
    """Warn in one line (``force``) or refuse with a ValueError when data does not fit the model's card;
    returns the problems (one string each, [] when the data fits)."""
    problems = card_problems(card_of(state), voxel_size_nm=voxel_size_nm, raw=raw)
    if problems:
        trained_on = ", ".join(card_of(state).get("training_data") or []) or "unrecorded data"
        message = f"data differs from what {where} was trained on ({trained_on}): {'; '.join(problems)}"
        if not force:
            raise ValueError(message + "; use --force to predict anyway")
        logger.warning(message)
    return problems


def check_checkpoint_data(checkpoint: str, raw_url: str) -> list[str]:
    """Before predicting the volume ``raw_url`` with ``checkpoint``: a one-line warning when it differs from the
    model's card (a central crop of at most 16 x 256 x 256 voxels stands for the intensities), and a
    ValueError for a section-wise cleft model, which ``connecto detect-clefts`` predicts."""
    from chunks import Roi, open_volume

    from .checkpoint import load_checkpoint, model_config_from_checkpoint
    from .data import normalize_raw

    state = load_checkpoint(checkpoint)
    if model_config_from_checkpoint(state).network == "unet2d":
        raise ValueError(f"{checkpoint} is a section-wise cleft model; predict it with connecto detect-clefts")
    raw = open_volume(raw_url)
    shape = [min(s, m) for s, m in zip(raw.shape, (16, 256, 256))]
    begin = [o + (s - c) // 2 for o, s, c in zip(raw.roi.begin, raw.shape, shape)]
    sample = normalize_raw(raw.read(Roi(tuple(begin), tuple(shape))))
    return check_data(state, voxel_size_nm=raw.voxel_size_nm, raw=sample, where=checkpoint)


def _nm(values) -> str:
    return "x".join(f"{float(v):g}" for v in values if not math.isnan(float(v)))
