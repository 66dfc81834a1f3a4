"""Training data: volumes loaded once, patches sampled reproducibly by step number.

Every batch is a function of (seed, step) only, so a run resumed from a checkpoint sees
exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

import numpy as np

from chunks.sources import open_readable

from .augment import augment
from .config import ModelConfig, TrainConfig, VolumeSpec
from .targets import affinities_from_labels, balance_weights, lsd_targets, membranes_to_labels, synapse_targets


@dataclass
class TrainingVolume:
    raw: np.ndarray  # float32 [0, 1]
    labels: np.ndarray  # uint64, 0 = unlabelled (or boundary when background_is_boundary)
    voxel_size_nm: tuple[int, int, int]
    background_is_boundary: bool
    train_z: tuple[int, int]
    validation_z: tuple[int, int] | None
    clefts: np.ndarray | None = None  # uint64 synapse ids, 0 elsewhere
    partners: np.ndarray | None = None  # (n, 3) int64 rows (synapse_id, pre_id, post_id)
    cleft_voxels: np.ndarray | None = None  # (m, 3) zyx of every cleft voxel: where synapse patches centre


def read_array(spec: str) -> np.ndarray:
    """A whole array from a volume URL or an ingest spec (FILE.h5:/dataset, .npy, .tif, stack)."""
    source = open_readable(spec)
    return source.read(source.roi)


def normalize_raw(raw: np.ndarray) -> np.ndarray:
    """uint8 (or any integer) raw to float32 in [0, 1]; the same in training and prediction."""
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) / 255.0
    if np.issubdtype(raw.dtype, np.integer):
        return raw.astype(np.float32) / float(np.iinfo(raw.dtype).max)
    return raw.astype(np.float32)


def read_partners(path: str) -> np.ndarray:
    """(synapse_id, pre_id, post_id) rows of a synapse table (Parquet; the synthetic generator's format)."""
    import pandas as pd

    table = pd.read_parquet(path)
    missing = {"synapse_id", "pre_id", "post_id"} - set(table.columns)
    if missing:
        raise ValueError(f"synapse table {path} lacks the columns {sorted(missing)}; it needs one row per "
                         "(synapse_id, pre_id, post_id), with ids as in the cleft and label volumes")
    return table[["synapse_id", "pre_id", "post_id"]].to_numpy(np.int64)


def load_volume(spec: VolumeSpec, synapses: bool = False, clefts: bool = False) -> TrainingVolume:
    """Raw and labels (and, for a synapse head, clefts and partners; for a cleft head, clefts) of one
    training volume. Without labels (a model whose only head is clefts) every voxel counts as labelled."""
    raw = read_array(spec.raw)
    if spec.labels is None:
        if synapses or not clefts:
            raise ValueError(f"training volume {spec.raw} names no labels; only a model whose one head is "
                             "clefts trains without them")
        labels, membranes = np.broadcast_to(np.zeros((), np.uint64), raw.shape), True  # no memory
    else:
        labels = read_array(spec.labels)
        membranes = labels.dtype in (np.uint8, np.bool_) and labels.max() <= 1
        if membranes:
            labels = membranes_to_labels(labels)
        labels = labels.astype(np.uint64)
    z_end = spec.labelled_z[1] if spec.labelled_z else labels.shape[0]
    z_begin = spec.labelled_z[0] if spec.labelled_z else 0
    z_end = min(z_end, labels.shape[0], raw.shape[0])
    if labels.shape[1:] != raw.shape[1:]:
        raise ValueError(f"labels {spec.labels} of shape {labels.shape} do not match raw {spec.raw} of shape {raw.shape} in y, x")
    val = tuple(spec.validation_slab_z) if spec.validation_slab_z else None
    if val and not (z_begin <= val[0] < val[1] <= z_end):
        raise ValueError(f"validation_slab_z {val} must lie inside the labelled z range [{z_begin}, {z_end})")
    train_z = (z_begin, val[0]) if val and val[1] == z_end else (z_begin, z_end)
    if val and val[1] != z_end and val[0] != z_begin:
        raise ValueError(f"validation_slab_z {val} must be at the start or end of the labelled range [{z_begin}, {z_end})")
    if val and val[0] == z_begin and val[1] != z_end:
        train_z = (val[1], z_end)
    volume = TrainingVolume(normalize_raw(raw), labels, tuple(spec.voxel_size_nm), membranes, train_z, val)
    if synapses:
        if not (spec.clefts and spec.synapses):
            raise ValueError(f"the model has a synapse head, but training volume {spec.raw} gives no clefts and "
                             "synapses (a cleft label volume and a Parquet table of synapse_id, pre_id, post_id)")
        volume.clefts = read_array(spec.clefts).astype(np.uint64)
        if volume.clefts.shape != labels.shape:
            raise ValueError(f"clefts {spec.clefts} of shape {volume.clefts.shape} do not match labels {spec.labels} "
                             f"of shape {labels.shape}")
        volume.partners = read_partners(spec.synapses)
        volume.cleft_voxels = np.argwhere(volume.clefts != 0)
    elif clefts:
        if not spec.clefts:
            raise ValueError(f"the model has a cleft head, but training volume {spec.raw} gives no clefts "
                             "(a cleft mask or a volume of cleft ids)")
        volume.clefts = read_array(spec.clefts)
        if volume.clefts.shape != raw.shape:
            raise ValueError(f"clefts {spec.clefts} of shape {volume.clefts.shape} do not match raw {spec.raw} "
                             f"of shape {raw.shape}")
        volume.cleft_voxels = np.argwhere(volume.clefts != 0)
    return volume


def sample_patch(volume: TrainingVolume, z_range, shape, rng, min_labelled: float, tries: int = 50,
                 near_synapse: bool = False):
    """A random patch inside ``z_range`` with at least ``min_labelled`` of its voxels labelled.

    Returns (raw, labels, clefts or None). With ``near_synapse`` the patch holds a random
    cleft voxel of ``z_range`` at a random place (when the range has one).
    """
    z0, z1 = z_range
    if z1 - z0 < shape[0] or any(s < p for s, p in zip(volume.raw.shape[1:], shape[1:])):
        raise ValueError(f"patch shape {tuple(shape)} does not fit the volume part z {z_range} x {volume.raw.shape[1:]}")
    lowest = np.array([z0, 0, 0])
    highest = np.array([z1, *volume.raw.shape[1:]]) - np.asarray(shape)
    centres = None
    if near_synapse and volume.cleft_voxels is not None:
        inside = (volume.cleft_voxels[:, 0] >= z0) & (volume.cleft_voxels[:, 0] < z1)
        centres = volume.cleft_voxels[inside] if inside.any() else None
    for _ in range(tries):
        if centres is not None:
            voxel = centres[rng.integers(0, len(centres))]
            begin = np.clip(voxel - rng.integers(0, np.asarray(shape)), lowest, highest)
        else:
            begin = np.array([rng.integers(lo, hi + 1) for lo, hi in zip(lowest, highest)])
        sl = tuple(slice(int(b), int(b) + s) for b, s in zip(begin, shape))
        labels = volume.labels[sl]
        if volume.background_is_boundary or (labels != 0).mean() >= min_labelled:
            break  # else the last try: better some data than none
    clefts = volume.clefts[sl] if volume.clefts is not None else None
    return volume.raw[sl], labels, clefts


def _augment_with_clefts(raw, labels, clefts, rng):
    """Augment raw, labels and clefts with the same geometry: one label per (label, cleft) pair."""
    if clefts is None:
        return (*augment(raw, labels, rng), None)
    label_ids, label_index = np.unique(labels, return_inverse=True)
    cleft_ids, cleft_index = np.unique(clefts, return_inverse=True)
    pair = (label_index * len(cleft_ids) + cleft_index).reshape(labels.shape).astype(np.int64)
    raw, pair = augment(raw, pair, rng)
    return raw, label_ids[pair // len(cleft_ids)], cleft_ids[pair % len(cleft_ids)]


def make_batch(volumes, model: ModelConfig, train: TrainConfig, step: int, validation: bool = False):
    """(raw, target, weights, mask) arrays for one step, deterministic in (seed, step)."""
    rng = np.random.default_rng([train.seed, step, int(validation)])
    raws, targets, weights, masks = [], [], [], []
    for _ in range(train.batch_size):
        vol = volumes[rng.integers(0, len(volumes))] if not validation else volumes[0]
        z_range = vol.validation_z if validation else vol.train_z
        near_synapse = ("synapses" in model.outputs or "clefts" in model.outputs) and \
            rng.random() < train.synapse_patch_fraction
        raw, labels, clefts = sample_patch(vol, z_range, train.patch_shape, rng, train.min_labelled_fraction,
                                           near_synapse=near_synapse)
        if train.augment and not validation:
            raw, labels, clefts = _augment_with_clefts(raw, labels, clefts, rng)
        parts = [_head_targets(output, vol, labels, clefts, model, train) for output in model.outputs]
        if model.lsd_head:  # training-only channels after the heads' own (training.train splits them off)
            parts.append(lsd_targets(labels, vol.voxel_size_nm, train.lsd_sigma_nm))
        target = np.concatenate([p[0] for p in parts])
        mask = np.concatenate([p[1] for p in parts])
        raws.append(raw[np.newaxis])
        targets.append(target)
        masks.append(mask)
        weights.append(balance_weights(target, mask, clip=train.balance_clip) * mask)
    return tuple(np.stack(a).astype(np.float32) for a in (raws, targets, weights, masks))


def _head_targets(output: str, vol: TrainingVolume, labels, clefts, model: ModelConfig, train: TrainConfig):
    """(target, mask) of one head for one patch."""
    if output == "synapses":
        return synapse_targets(labels, clefts, vol.partners, vol.voxel_size_nm, train.synapse_side_nm)
    if output == "clefts":
        target = (clefts != 0)[np.newaxis].astype(np.float32)
        return target, np.ones_like(target)
    aff, mask = affinities_from_labels(labels, model.offsets, vol.background_is_boundary)
    if vol.background_is_boundary:
        # per-section labels say nothing about links across sections
        for c, off in enumerate(model.offsets):
            if off[0] != 0:
                mask[c] = 0
    return aff, mask


class Prefetcher:
    """Builds the batches of steps start..end in a background thread, in order."""

    def __init__(self, fn, start: int, end: int, depth: int = 2):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, args=(fn, start, end), daemon=True)
        self._thread.start()

    def _run(self, fn, start, end):
        for step in range(start, end):
            try:
                self._queue.put((step, fn(step), None))
            except Exception as exc:  # noqa: BLE001 - handed to the training loop
                self._queue.put((step, None, exc))
                return

    def get(self):
        step, batch, error = self._queue.get()
        if error is not None:
            raise error
        return step, batch
