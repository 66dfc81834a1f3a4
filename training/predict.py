"""Blockwise prediction (affinities, synapse maps) through the engine, seam-free.

Each block reads its write Roi grown by ``context`` voxels, runs the U-Net (same padding)
on that, and keeps the centre. The default context is the network's receptive field, so
no output voxel can tell whether it was predicted in a block or in the whole volume.
Context is not invented where the volume ends: at the volume's faces the network sees its
own zero padding, exactly as in training and in a whole-volume forward pass, so edge blocks
cost no extra computation. Block origins and context are multiples of the network's
pooling factors, so every block sees the pooling grid of a whole-volume prediction; the
result equals predicting the volume in one piece (``tests/training/test_predict.py``
measures the largest difference: below 1/255). Outputs are written as uint8 (0..255 = 0..1)."""

from __future__ import annotations

import functools
import logging
import os
from math import gcd

import numpy as np

from chunks import Coordinate, Volume, create_volume, run_blockwise
from chunks.cluster import default_workers

from .checkpoint import build_model, load_checkpoint, model_config_from_checkpoint
from .data import normalize_raw
from .unet import receptive_field_radius

logger = logging.getLogger(__name__)



@functools.lru_cache(maxsize=2)
def _cached_model(checkpoint: str, mtime: float, threads: int | None):
    """One model per worker process (and checkpoint file version)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    from .unet import fast_layout

    state = load_checkpoint(checkpoint)
    model = build_model(state).eval()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return fast_layout(model.to(device)), device


def forward(model, device, raw: np.ndarray, autocast: bool = True) -> np.ndarray:
    """Affinity probabilities (float32, c, z, y, x) for a normalised raw array (z, y, x)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))[None, None].to(device)
    with torch.inference_mode():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(x)
        return torch.sigmoid(logits.float())[0].contiguous().cpu().numpy()  # (c, z, y, x) in C order


def to_uint8(probabilities: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(probabilities * 255.0), 0, 255).astype(np.uint8)


def predict_padded(model, device, raw: np.ndarray, before, after, factor, autocast: bool = True) -> np.ndarray:
    """Predict on ``raw`` mirrored by ``before``/``after`` voxels (and up to a multiple of ``factor``).

    Returns probabilities for the un-padded ``raw`` region.
    """
    padded_shape = [b + s + a for b, s, a in zip(before, raw.shape, after)]
    extra = [(-s) % f for s, f in zip(padded_shape, factor)]
    pad = [(b, a + e) for b, a, e in zip(before, after, extra)]
    x = np.pad(normalize_raw(raw), pad, mode="symmetric") if any(p != (0, 0) for p in pad) else normalize_raw(raw)
    out = forward(model, device, x, autocast)
    sl = tuple(slice(b, b + s) for b, s in zip(before, raw.shape))
    return out[(slice(None), *sl)]


def predict_valid(model, device, raw: np.ndarray, before, after, autocast: bool = True) -> np.ndarray:
    """A valid-padding model's probabilities for the centre of ``raw`` (``before``/``after`` voxels of
    context on each side; missing context at the volume's faces comes mirrored)."""
    from .unet import output_shape, valid_input_shape

    margin = valid_margin(model.config)
    want = tuple(s - b - a for s, b, a in zip(raw.shape, before, after))
    input_shape = valid_input_shape(model.config, want)
    # mirror what the volume lacks, then pad the end up to a shape the network accepts
    pad = [(m - b, i - (m - b) - s) for m, b, i, s in zip(margin, before, input_shape, raw.shape)]
    x = np.pad(normalize_raw(raw), pad, mode="symmetric") if any(p != (0, 0) for p in pad) else normalize_raw(raw)
    out = forward(model, device, x, autocast)
    assert out.shape[1:] == output_shape(model.config, input_shape)
    return out[(slice(None), *(slice(0, w) for w in want))]


def valid_margin(config) -> tuple[int, int, int]:
    """Input voxels a valid-padding model consumes on each side of its output."""
    from .unet import output_shape, valid_input_shape

    input_shape = valid_input_shape(config, config.total_downsample)
    return tuple((i - o) // 2 for i, o in zip(input_shape, output_shape(config, input_shape)))


def predict_block(checkpoint, factor, autocast, threads, block, inputs):
    model, device = _cached_model(checkpoint, os.path.getmtime(checkpoint), threads)
    if model.config.padding == "valid":
        before = block.write_roi.begin - block.read_roi.begin
        after = block.read_roi.end - block.write_roi.end
        return {"affinities": to_uint8(predict_valid(model, device, inputs["raw"], before, after, autocast))}
    # the block's origin must sit on the pooling grid of the read array (it does unless the
    # read was clipped by an amount that is no multiple of the factors)
    before = tuple((-(w - r)) % f for w, r, f in zip(block.write_roi.begin, block.read_roi.begin, factor))
    probabilities = predict_padded(model, device, inputs["raw"], before, (0, 0, 0), factor, autocast)
    return {"affinities": to_uint8(probabilities[(slice(None), *block.write_slices())])}


def check_raw(raw: Volume, state: dict, checkpoint: str) -> None:
    """Refuse raw data that differs from what the model was trained on."""
    if str(raw.dtype) != state.get("raw_dtype", "uint8"):
        raise ValueError(f"raw {raw.url} is {raw.dtype}, but the model in {checkpoint} was trained on "
                         f"{state.get('raw_dtype')} images; convert the raw volume first")
    trained = state.get("voxel_size_nm")
    if trained is not None and tuple(trained) != tuple(raw.voxel_size_nm):
        raise ValueError(f"raw {raw.url} has voxel size {tuple(raw.voxel_size_nm)} nm, but the model in {checkpoint} "
                         f"was trained at {tuple(trained)} nm; resample the raw volume or use a matching model")


def predict_volume(checkpoint: str, raw: Volume, out_url: str, *, block_shape=None, context=None,
                   chunk_shape=None, scheduler=None, num_workers=None, overwrite=False, progress=True,
                   autocast: bool = True, threads_per_worker: int | None = None, roi=None) -> Volume:
    """Predict ``raw`` with the model in ``checkpoint`` into a uint8 Volume at ``out_url``, one channel per model
    output channel (affinities, or cleft / pre side / post side for a synapse model; the volume's attribute
    ``channels`` names them). The default scheduler is ``"threads"``; a dask address or Client runs it there.
    """
    checkpoint = os.path.abspath(checkpoint)
    state = load_checkpoint(checkpoint)
    config = model_config_from_checkpoint(state)
    check_raw(raw, state, checkpoint)
    if scheduler is None:  # torch computes without the GIL: threads share one big block (measured: 0.90 of
        scheduler = "threads"  # the bare forward, against 0.65 on a local process cluster); "local" for that
    factor = Coordinate(config.total_downsample)
    if config.padding == "valid":  # the network's own margin is the context: blockwise equals whole-volume
        margin = Coordinate(valid_margin(config))
        if context is not None and Coordinate(context) != margin:
            raise ValueError(f"a valid-padding model reads exactly its margin {tuple(margin)} around each block; "
                             f"context {tuple(context)} cannot be changed")
        context = margin
    else:
        if context is None:  # the receptive field: blockwise equals whole-volume prediction
            context = receptive_field_radius(config)
        context = Coordinate(context).ceil_div(factor) * factor
    chunk_shape = Coordinate(chunk_shape or raw.chunk_shape)
    workers = num_workers or default_workers()
    if block_shape is None:
        # big blocks: less context per voxel; torch's threads share the cores within a block
        # (measured on 2 cores, 256^3: one block 0.94 of the bare forward, four blocks 0.74)
        block_shape = default_block_shape(raw.shape, chunk_shape, factor)
    block_shape = Coordinate(block_shape)
    if threads_per_worker is None:  # share the cores among the blocks that run at once
        n_blocks = raw.roi.shape.ceil_div(block_shape).prod()
        threads_per_worker = max(1, default_workers() // min(workers, n_blocks))
    if any(b % f for b, f in zip(block_shape, factor)):
        raise ValueError(f"block shape {block_shape} must be a multiple of the model's pooling factors {factor}")
    # every block must start on the output's chunk grid
    chunk_shape = Coordinate(gcd(c, b) for c, b in zip(chunk_shape, block_shape))
    out = create_volume(out_url, raw.shape, "uint8", raw.voxel_size_nm, offset=raw.offset,
                        chunk_shape=chunk_shape, num_channels=config.out_channels, overwrite=overwrite,
                        layer_type="image")
    roi = raw.roi if roi is None else roi
    stage = functools.partial(predict_block, checkpoint, tuple(factor), autocast, threads_per_worker)
    run_blockwise(stage, roi, block_shape, task="predict", inputs={"raw": raw}, outputs={"affinities": out},
                  context=context, scheduler=scheduler, num_workers=num_workers, overwrite=overwrite,
                  progress=progress,
                  params={"checkpoint": checkpoint, "context": list(context), "autocast": autocast,
                          "offsets": [list(o) for o in config.offsets]})
    attrs = {"channels": list(config.channel_names), "checkpoint": os.path.basename(checkpoint)}
    if "affinities" in config.outputs:
        attrs["affinity_offsets"] = [list(o) for o in config.offsets]
    out.update_attrs(attrs)
    return out


def default_block_shape(shape, chunk_shape, factor, target_voxels: int = 16 * 1024**2) -> Coordinate:
    """Large blocks (about ``target_voxels``) keep the context overhead small; multiples of chunks and factors.

    16 Mvoxels take about 4 GB of activations per worker for the default model in fp32.
    """
    from math import lcm

    unit = Coordinate(lcm(c, f) for c, f in zip(chunk_shape, factor))
    block = Coordinate(min(s, u) for s, u in zip(shape, unit)).ceil_div(unit) * unit
    while block.prod() < target_voxels:
        grown = False
        for axis in (2, 1, 0):
            if block[axis] < shape[axis]:
                candidate = list(block)
                candidate[axis] += unit[axis]
                block = Coordinate(candidate)
                grown = True
                if block.prod() >= target_voxels:
                    break
        if not grown:
            break
    return block
