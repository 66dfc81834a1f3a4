"""The training loop: AdamW on class-balanced BCE over every head's channels (and the MSE of a training-only
LSD head, ``model.lsd_head``), checkpoints, resume, validation log.

The heads (``model.outputs``): affinities, and/or synapses (cleft, pre side, post side;
see ``targets.synapse_targets``). ``out_dir`` receives ``checkpoint_<step>.pt`` every
``checkpoint_every`` steps, ``model.pt`` (the final weights without optimizer state and
without an LSD head: the file to ship) at the end, ``log.csv`` and ``log.json`` (step, train
loss, validation loss (and LSD loss) and each head's F1: boundary; cleft, pre side, post side)
and ``curve.png``.
Rerunning with the same config resumes from the latest checkpoint and continues with the
exact batches an uninterrupted run would have used.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time

import numpy as np

from .checkpoint import LSD_PREFIX, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import SYNAPSE_CHANNELS, Config, config_to_dict
from .data import Prefetcher, load_volume, make_batch
from .precision import resolve_precision

logger = logging.getLogger(__name__)


class NaNLossError(FloatingPointError):
    pass


def training_device():
    """The device to train on: a GPU when there is one."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_patch_shape(model_config, patch_shape) -> None:
    """A valid-padding network accepts only some input shapes; name one that works."""
    from .unet import output_shape

    try:
        output_shape(model_config, patch_shape)
    except ValueError as exc:
        raise ValueError(f"train.patch_shape: {exc}") from None


def weighted_bce(logits, target, weights):
    """Class-balanced BCE, normalised per channel and averaged over the channels that count in this batch.

    Per-channel normalisation gives every output the same say: pooled, the synapse model's
    cleft channel (counted everywhere) outweighed the side channels (counted near clefts
    only) about 6:1 and polarity was not learned in 1500 steps; per channel it is.
    """
    import torch.nn.functional as F

    per_voxel = F.binary_cross_entropy_with_logits(logits.float(), target, weight=weights, reduction="none")
    spatial = (0, *range(2, logits.dim()))
    sums, norms = per_voxel.sum(dim=spatial), weights.sum(dim=spatial)
    counted = norms > 0
    if not counted.any():
        return per_voxel.sum()  # nothing to learn from this batch: zero, with a graph
    return (sums[counted] / norms[counted]).mean()


def forward_for_training(model, raw):
    """(head logits, LSD logits or None): a model with an LSD head (``model.lsd_head``) evaluates it too."""
    if getattr(model, "lsd_head", None) is not None:
        return model.forward_with_lsds(raw)
    return model(raw), None


def masked_mse(logits, target, mask):
    """Mean squared error of sigmoid(logits) against ``target`` in [0, 1] (the LSD loss), within ``mask``."""
    import torch

    squared = (torch.sigmoid(logits.float()) - target) ** 2 * mask
    return squared.sum() / mask.sum().clamp(min=1.0)


def soft_dice_loss(logits, target, mask, eps: float = 1.0):
    """1 - soft Dice of the probabilities against the target within ``mask``, per channel over the batch, averaged
    over the channels (``train.dice_weight``): it counts each object's overlap, not its voxels, so small objects
    are not outvoted by large ones."""
    import torch

    p = torch.sigmoid(logits.float()) * mask
    t = target * mask
    dims = (0, *range(2, logits.dim()))
    dice = (2 * (p * t).sum(dim=dims) + eps) / (p.sum(dim=dims) + t.sum(dim=dims) + eps)
    return 1 - dice.mean()


def affinity_f1(probabilities: np.ndarray, target: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> float:
    """F1 of boundary detection (affinity < threshold is a boundary), within the mask."""
    m = mask > 0
    pred_boundary = (probabilities < threshold) & m
    true_boundary = (target < 0.5) & m
    tp = np.sum(pred_boundary & true_boundary)
    fp = np.sum(pred_boundary & ~true_boundary)
    fn = np.sum(~pred_boundary & true_boundary & m)
    return float(2 * tp / max(1, 2 * tp + fp + fn))


def train(config: Config, progress: bool = True, stop_after: int | None = None) -> dict:
    """Train (or resume) and return the final log record.

    ``stop_after`` ends the run after that many steps of this call (for tests of resuming).
    """
    import torch

    from .model_card import CARD_KEY, make_card
    from .unet import crop_to, parameter_count
    from .unet2d import build_network, fast

    tc, mc = config.train, config.model
    if tc is None:
        raise ValueError("the config has no [train] section")
    check_patch_shape(mc, tc.patch_shape)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    os.makedirs(tc.out_dir, exist_ok=True)
    with open(os.path.join(tc.out_dir, "config.json"), "w") as f:
        json.dump(config_to_dict(config), f, indent=1)
    torch.manual_seed(tc.seed)
    device = training_device()
    model = fast(build_network(mc).to(device))
    choice = resolve_precision(tc.precision, device, model)
    autocast_dtype = choice.autocast_dtype
    # fp16 gradients underflow without loss scaling; bf16 and fp32 need none
    scaler = torch.amp.GradScaler(device.type, enabled=choice.precision == "fp16")
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.learning_rate, weight_decay=tc.weight_decay)
    start_step = 0
    resume_from = latest_checkpoint(tc.out_dir)
    if tc.init_from and not resume_from:
        initialise_from(model, tc.init_from)
    if resume_from:
        state = load_checkpoint(resume_from, expected_config=mc, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_step = state["step"]
        logger.info("resuming from %s at step %d", resume_from, start_step)
    volumes = [load_volume(v, synapses="synapses" in mc.outputs, clefts="clefts" in mc.outputs) for v in tc.volumes]
    card = {CARD_KEY: make_card([v.raw[slice(*v.train_z)] for v in volumes], [v.raw for v in tc.volumes],
                                tc.voxel_size_nm)}
    for spec, vol in zip(tc.volumes, volumes):
        if tuple(spec.voxel_size_nm) != tuple(tc.voxel_size_nm):
            logger.warning("volume %s has voxel size %s nm, the model is trained for %s nm",
                           spec.raw, spec.voxel_size_nm, tc.voxel_size_nm)
    log_rows = _read_log(tc.out_dir, upto=start_step)
    end_step = tc.steps if stop_after is None else min(tc.steps, start_step + stop_after)
    prefetch = Prefetcher(lambda s: make_batch(volumes, mc, tc, s), start_step, end_step)
    logger.info("model: %d parameters, device %s, precision %s (%s)", parameter_count(model), device,
                choice.precision, choice.reason)

    from tqdm.auto import tqdm

    bar = tqdm(total=tc.steps, initial=start_step, unit="step", desc="train", disable=not progress)
    running, started = [], time.perf_counter()
    record: dict = {}
    for _ in range(start_step, end_step):
        step, batch = prefetch.get()
        raw, target, weights, mask = (torch.from_numpy(a).to(device) for a in batch)
        model.train()
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits, lsd_logits = forward_for_training(model, raw)
        target, weights, mask = (crop_to(a, logits.shape[-3:]) for a in (target, weights, mask))
        n = logits.shape[1]  # the heads' channels; an LSD head's targets follow them
        loss = weighted_bce(logits, target[:, :n], weights[:, :n])
        if tc.dice_weight:
            loss = loss + tc.dice_weight * soft_dice_loss(logits, target[:, :n], weights[:, :n] > 0)
        if lsd_logits is not None:
            loss = loss + tc.lsd_weight * masked_mse(lsd_logits, target[:, n:], mask[:, n:])
        if tc.lr_schedule == "cosine":
            for group in optimizer.param_groups:
                group["lr"] = tc.learning_rate * 0.5 * (1 + math.cos(math.pi * step / tc.steps))
        if not torch.isfinite(loss):
            last = latest_checkpoint(tc.out_dir)
            raise NaNLossError(f"loss became {loss.item()} at step {step + 1}; stopped. The last good checkpoint is "
                               f"{last or 'none (no checkpoint written yet)'}; lower learning_rate or check the data")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        scaler.step(optimizer)
        scaler.update()
        running.append(loss.item())
        bar.update(1)
        done = step + 1
        if done % tc.validate_every == 0 or done == tc.steps:
            val = validate(model, volumes, config, device, autocast_dtype) if volumes[0].validation_z else {}
            record = {"step": done, "train_loss": float(np.mean(running)), **val,
                      "seconds": round(time.perf_counter() - started, 1)}
            running = []
            log_rows.append(record)
            _write_log(tc.out_dir, log_rows)
            bar.set_postfix({k: round(v, 4) for k, v in record.items() if k.startswith(("train_loss", "val_"))})
        if done % tc.checkpoint_every == 0 or done == tc.steps:
            save_checkpoint(os.path.join(tc.out_dir, f"checkpoint_{done}.pt"), model, mc, step=done,
                            optimizer=optimizer, voxel_size_nm=tc.voxel_size_nm, precision=choice.precision,
                            extra=card)
    bar.close()
    if end_step == tc.steps:
        # the final weights alone (no optimizer state): the file to ship or share
        save_checkpoint(os.path.join(tc.out_dir, "model.pt"), model, mc, step=tc.steps,
                        voxel_size_nm=tc.voxel_size_nm, precision=choice.precision, extra=card, inference=True)
    if log_rows:
        plot_curve(tc.out_dir, log_rows)
    return record or (log_rows[-1] if log_rows else {})


def foreground_f1(probabilities: np.ndarray, target: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> float:
    """F1 of detecting target 1 (probability >= threshold), within the mask; 1.0 when neither has any."""
    m = mask > 0
    pred, true = (probabilities >= threshold) & m, (target > 0.5) & m
    tp, fp, fn = np.sum(pred & true), np.sum(pred & ~true), np.sum(~pred & true)
    return float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 1.0


def head_metrics(model_config, probabilities: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict:
    """Validation metrics per head: boundary F1 for affinities; cleft, pre-side and post-side F1 for synapses."""
    out = {}
    if "affinities" in model_config.outputs:
        sl = (slice(None), model_config.channels_of("affinities"))
        out["val_affinity_f1"] = affinity_f1(probabilities[sl], target[sl], mask[sl])
    if "synapses" in model_config.outputs:
        first = model_config.channels_of("synapses").start
        for i, name in enumerate(SYNAPSE_CHANNELS):
            sl = (slice(None), first + i)
            out[f"val_{name}_f1"] = foreground_f1(probabilities[sl], target[sl], mask[sl])
    if "clefts" in model_config.outputs:
        sl = (slice(None), model_config.channels_of("clefts").start)
        out["val_cleft_f1"] = foreground_f1(probabilities[sl], target[sl], mask[sl])
    return out


def initialise_from(model, checkpoint: str) -> int:
    """Copy the tensors of ``checkpoint`` whose name and shape match ``model``'s; returns how many.

    The trunk (everything but the 1x1x1 heads) must match: only the heads may differ (a new LSD head
    starts from random weights).
    """
    state = load_checkpoint(checkpoint)["model"]
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    trunk_missing = sorted(k for k in own if k not in matching and not k.startswith(("head.", LSD_PREFIX)))
    if trunk_missing:
        raise ValueError(f"init_from {checkpoint!r} has another trunk: {', '.join(trunk_missing[:3])}"
                         f"{' ...' if len(trunk_missing) > 3 else ''} differ (only the heads may)")
    model.load_state_dict(matching, strict=False)
    logger.info("initialised %d of %d tensors from %s", len(matching), len(own), checkpoint)
    return len(matching)


def validate(model, volumes, config: Config, device, autocast_dtype, n_patches: int = 4) -> dict:
    """Loss and per-head F1 on fixed patches of the validation slab (the same patches every time)."""
    import torch

    from .unet import crop_to

    tc, mc = config.train, config.model
    losses, lsd_losses, metrics = [], [], []
    model.eval()
    with torch.no_grad():
        for i in range(n_patches):
            raw, target, weights, mask = make_batch(volumes, mc, tc, step=10**9 + i, validation=True)
            raw_t = torch.from_numpy(raw).to(device)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                logits, lsd_logits = forward_for_training(model, raw_t)
            target, weights, mask = (crop_to(a, logits.shape[-3:]) for a in (target, weights, mask))
            n = logits.shape[1]
            losses.append(weighted_bce(logits, torch.from_numpy(target[:, :n]).to(device),
                                       torch.from_numpy(weights[:, :n]).to(device)).item())
            if lsd_logits is not None:
                lsd_losses.append(masked_mse(lsd_logits, torch.from_numpy(target[:, n:]).to(device),
                                             torch.from_numpy(mask[:, n:]).to(device)).item())
            metrics.append(head_metrics(mc, torch.sigmoid(logits.float()).cpu().numpy(), target[:, :n], mask[:, :n]))
    lsd = {"val_lsd_loss": float(np.mean(lsd_losses))} if lsd_losses else {}
    return {"val_loss": float(np.mean(losses)), **lsd,
            **{k: float(np.mean([m[k] for m in metrics])) for k in metrics[0]}}


def _read_log(out_dir: str, upto: int) -> list[dict]:
    path = os.path.join(out_dir, "log.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [r for r in json.load(f) if r["step"] <= upto]


def _write_log(out_dir: str, rows: list[dict]) -> None:
    with open(os.path.join(out_dir, "log.json"), "w") as f:
        json.dump(rows, f, indent=1)
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k != "step", k))
    with open(os.path.join(out_dir, "log.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def plot_curve(out_dir: str, rows: list[dict]) -> str | None:
    """curve.png: training and validation loss, and each validation F1, over steps."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plotting is optional
        return None
    steps = [r["step"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax1.plot(steps, [r["train_loss"] for r in rows], label="train loss")
    if "val_loss" in rows[-1]:
        ax1.plot(steps, [r.get("val_loss", math.nan) for r in rows], label="validation loss")
        if "val_lsd_loss" in rows[-1]:
            ax1.plot(steps, [r.get("val_lsd_loss", math.nan) for r in rows], label="validation LSD loss")
        for key in sorted(k for k in rows[-1] if k.startswith("val_") and k.endswith("_f1")):
            label = "boundary" if key == "val_affinity_f1" else key[4:-3].replace("_", " ")
            ax2.plot(steps, [r.get(key, math.nan) for r in rows], label=label)
        ax2.legend()
    ax1.set_xlabel("step")
    ax1.legend()
    ax2.set_xlabel("step")
    ax2.set_ylabel("validation F1")
    fig.suptitle(os.path.basename(os.path.abspath(out_dir)))
    fig.tight_layout()
    path = os.path.join(out_dir, "curve.png")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
