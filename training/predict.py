"""Blockwise prediction (affinities, synapse maps) through the engine, seam-free.

Each block reads its write Roi grown by ``context`` voxels, runs the U-Net (same padding)
on that, and keeps the centre. The default context is the network's receptive field, so
no output voxel can tell whether it was predicted in a block or in the whole volume.
Context is not invented where the volume ends: at the volume's faces the network sees its
own zero padding, exactly as in training and in a whole-volume forward pass, so edge blocks
cost no extra computation. Block origins and context are multiples of the network's
pooling factors, so every block sees the pooling grid of a whole-volume prediction; the
result equals predicting the volume in one piece (``tests/training/test_predict.py``
measures the largest difference: below 1/255). Outputs are written as uint8 (0..255 = 0..1).

Memory is bounded by a budget, not by the volume: the block shape comes from the memory
limit (:mod:`training.predict_plan`), and the network is streamed along z
(:mod:`training.stream_forward`), so a block's memory grows with its y-x area, hardly with
its depth. The precision is a setting (:mod:`training.precision`).
A block computes with all of its worker's threads while the worker's other threads read
and write neighbouring blocks (``_COMPUTE``); Ctrl-C stops a running block between steps of a few planes."""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from math import gcd

import numpy as np

from chunks import Coordinate, Volume, create_volume, run_blockwise
from chunks.cluster import default_workers
from chunks.memory import release_free_memory

from .checkpoint import THRESHOLD_KEY, build_model, load_checkpoint, model_config_from_checkpoint, recommended_threshold
from .data import normalize_raw
from .unet import receptive_field_radius

logger = logging.getLogger(__name__)



# one block computes at a time per process: it uses all of the process's intra-op threads (the dask
# worker's thread count), while the worker's other threads read the next block and write the last
_COMPUTE = threading.Lock()


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


def forward(model, device, raw: np.ndarray, precision: str = "fp32", *, planes: int | None = None,
            should_stop=None) -> np.ndarray:
    """Probabilities (float32, c, z, y, x) for a raw array (z, y, x; uint8, other integers or float in [0, 1]).

    ``planes``: stream the network along z that many output planes at a time
    (:mod:`training.stream_forward`, same-padding models: the same output in memory that does
    not grow with the depth); None runs the plain forward."""
    return _forward(model, device, raw, precision, planes, should_stop, _probabilities)


def forward_uint8(model, device, raw: np.ndarray, precision: str = "fp32", *, planes: int | None = None,
                  should_stop=None) -> np.ndarray:
    """As :func:`forward`, rounded to uint8 (0..255 = 0..1) a few planes at a time: no float copy of the output."""
    return _forward(model, device, raw, precision, planes, should_stop, _to_uint8_tensor)


def _forward(model, device, raw, precision, planes, should_stop, finish) -> np.ndarray:
    import torch

    from .stream_forward import stream_forward

    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    streamed = planes and model.config.padding == "same"
    # streamed, uint8 raw stays as it is (1 byte per voxel) and is normalised a few planes at a time
    keep = streamed and raw.dtype == np.uint8
    x = torch.from_numpy(np.ascontiguousarray(raw if keep else normalize_raw(raw)))[None, None].to(device)
    with torch.inference_mode():
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            if streamed:
                out = stream_forward(model, x, planes=planes, should_stop=should_stop, finish=finish,
                                     prepare=_normalize_uint8 if keep else None)
            else:
                out = finish(model(x))
        return out[0].contiguous().cpu().numpy()  # (c, z, y, x) in C order


def _normalize_uint8(planes):
    """Planes of uint8 raw as the network's input, as :func:`training.data.normalize_raw` makes it."""
    return planes.float().div_(255.0)


def _probabilities(logits):
    import torch

    return torch.sigmoid(logits.float())


def _to_uint8_tensor(logits):
    import torch

    return torch.sigmoid(logits.float()).mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)


def _padded_input(raw: np.ndarray, before, after, factor):
    """``raw`` (as it is) mirrored by ``before``/``after`` voxels (and up to a multiple of ``factor``)."""
    padded_shape = [b + s + a for b, s, a in zip(before, raw.shape, after)]
    extra = [(-s) % f for s, f in zip(padded_shape, factor)]
    pad = [(b, a + e) for b, a, e in zip(before, after, extra)]
    return np.pad(raw, pad, mode="symmetric") if any(p != (0, 0) for p in pad) else raw


def predict_padded(model, device, raw: np.ndarray, before, after, factor, precision: str = "fp32", *,
                   planes: int | None = None, uint8: bool = False, should_stop=None) -> np.ndarray:
    """Predict on ``raw`` mirrored by ``before``/``after`` voxels (and up to a multiple of ``factor``).

    Returns probabilities (or with ``uint8`` their uint8 rounding) for the un-padded ``raw`` region.
    """
    run = forward_uint8 if uint8 else forward
    out = run(model, device, _padded_input(raw, before, after, factor), precision, planes=planes,
              should_stop=should_stop)
    sl = tuple(slice(b, b + s) for b, s in zip(before, raw.shape))
    return out[(slice(None), *sl)]


def predict_valid(model, device, raw: np.ndarray, before, after, precision: str = "fp32", *,
                  uint8: bool = False) -> np.ndarray:
    """A valid-padding model's probabilities for the centre of ``raw`` (``before``/``after`` voxels of
    context on each side; missing context at the volume's faces comes mirrored)."""
    from .unet import output_shape, valid_input_shape

    margin = valid_margin(model.config)
    want = tuple(s - b - a for s, b, a in zip(raw.shape, before, after))
    input_shape = valid_input_shape(model.config, want)
    # mirror what the volume lacks, then pad the end up to a shape the network accepts
    pad = [(m - b, i - (m - b) - s) for m, b, i, s in zip(margin, before, input_shape, raw.shape)]
    x = np.pad(raw, pad, mode="symmetric") if any(p != (0, 0) for p in pad) else raw
    out = (forward_uint8 if uint8 else forward)(model, device, x, precision)
    if out.shape[1:] != output_shape(model.config, input_shape):
        raise RuntimeError(f"the network gave {out.shape[1:]} voxels for input {input_shape}, expected "
                           f"{output_shape(model.config, input_shape)}")
    return out[(slice(None), *(slice(0, w) for w in want))]


def valid_margin(config) -> tuple[int, int, int]:
    """Input voxels a valid-padding model consumes on each side of its output."""
    from .unet import output_shape, valid_input_shape

    input_shape = valid_input_shape(config, config.total_downsample)
    return tuple((i - o) // 2 for i, o in zip(input_shape, output_shape(config, input_shape)))


def predict_block(checkpoint, factor, precision, block, inputs):
    from chunks.engine import stop_requested

    from .stream_forward import PLANES

    model, device = _cached_model(checkpoint, os.path.getmtime(checkpoint), worker_threads())
    raw = inputs["raw"]
    with _COMPUTE:
        if model.config.padding == "valid":
            before = block.write_roi.begin - block.read_roi.begin
            after = block.read_roi.end - block.write_roi.end
            return {"affinities": predict_valid(model, device, raw, before, after, precision, uint8=True)}
        # the block's origin must sit on the pooling grid of the read array (it does unless the
        # read was clipped by an amount that is no multiple of the factors)
        before = tuple((-(w - r)) % f for w, r, f in zip(block.write_roi.begin, block.read_roi.begin, factor))
        # streamed along z: memory that does not grow with the block's depth (training.stream_forward)
        out = predict_padded(model, device, raw, before, (0, 0, 0), factor, precision, planes=PLANES, uint8=True,
                             should_stop=stop_requested)
        release_free_memory()  # the block's activations, before the next block allocates its own
    return {"affinities": out[(slice(None), *block.write_slices())]}


def worker_threads() -> int:
    """Intra-op threads for this process: its dask worker's thread count (one block computes at a time, see
    ``_COMPUTE``), so threads x workers = cores; every core outside a dask worker."""
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return default_workers()


def _worker_precision(checkpoint: str, precision: str):
    """The precision ``precision`` means on this machine (its device, its CPU) for the model in ``checkpoint``."""
    from .precision import resolve_precision

    model, device = _cached_model(checkpoint, os.path.getmtime(checkpoint), worker_threads())
    return resolve_precision(precision, device, model)


def _resolve_where_blocks_run(scheduler, checkpoint: str, precision: str):
    """``auto`` is decided by the machines that predict: here for local schedulers, on a worker of a
    cluster (whose GPU or CPU may differ from this machine's; workers are assumed alike)."""
    remote = not isinstance(scheduler, str) or "://" in scheduler
    if precision == "auto" and remote:
        from chunks.cluster import connect

        with connect(scheduler) as client:
            return client.submit(_worker_precision, checkpoint, precision, pure=False).result()
    return _worker_precision(checkpoint, precision)


def check_raw(raw: Volume, state: dict, checkpoint: str) -> None:
    """Refuse raw data that differs from what the model was trained on."""
    check_raw_matches(state, checkpoint, raw.url, dtype=raw.dtype, voxel_size_nm=raw.voxel_size_nm)


def check_raw_matches(state: dict, checkpoint: str, raw: str, *, dtype=None, voxel_size_nm=None) -> None:
    """Refuse raw data of ``dtype`` and ``voxel_size_nm`` (either None: unknown, not checked) that differs from
    what the model in ``checkpoint`` (its loaded ``state``) was trained on. Voxel sizes compare as numbers:
    8 and 8.0 are the same size, 8.5 and 8 are not."""
    if dtype is not None and str(np.dtype(dtype)) != state.get("raw_dtype", "uint8"):
        raise ValueError(f"raw {raw} is {np.dtype(dtype)}, but the model in {checkpoint} was trained on "
                         f"{state.get('raw_dtype')} images; convert the raw volume first")
    trained = state.get("voxel_size_nm")
    if trained is not None and voxel_size_nm is not None and not same_voxel_size(trained, voxel_size_nm):
        raise ValueError(f"raw {raw} has voxel size {_nm(voxel_size_nm)} nm, but the model in {checkpoint} "
                         f"was trained at {_nm(trained)} nm; resample the raw volume (`connecto resample`, or "
                         "`connecto predict --resample`) or use a matching model")


def same_voxel_size(a, b) -> bool:
    """Whether two voxel sizes (nm, z y x) are the same numbers (8 == 8.0; 8.5 != 8)."""
    return len(a) == len(b) and all(math.isclose(float(x), float(y), rel_tol=1e-9) for x, y in zip(a, b))


def _nm(voxel_size_nm) -> tuple:
    return tuple(int(v) if float(v).is_integer() else float(v) for v in voxel_size_nm)  # (8, 8, 8), (8.5, 8, 8)


def check_block_shape(config, block_shape, context, checkpoint: str = "the model") -> None:
    """Refuse a prediction ``block_shape`` (or None: planned, always fits) that is no multiple of the pooling
    factors of the model of ``config``, and a ``context`` (None: the default) a valid-padding model cannot use."""
    factor = Coordinate(config.total_downsample)
    if block_shape is not None and any(b % f for b, f in zip(Coordinate(block_shape), factor)):
        raise ValueError(f"block shape {Coordinate(block_shape)} must be a multiple of the model's pooling factors "
                         f"{factor} ({checkpoint})")
    if config.padding == "valid" and context is not None and Coordinate(context) != Coordinate(valid_margin(config)):
        raise ValueError(f"a valid-padding model reads exactly its margin {tuple(valid_margin(config))} around each "
                         f"block; context {tuple(context)} cannot be changed")


def predict_volume(checkpoint: str, raw: Volume, out_url: str, *, block_shape=None, context=None,
                   chunk_shape=None, scheduler=None, num_workers=None, overwrite=False, progress=True,
                   precision: str = "auto", memory_limit=None, roi=None, choice_out: dict | None = None) -> Volume:
    """Predict ``raw`` with the model in ``checkpoint`` into a uint8 Volume at ``out_url``, one channel per model
    output channel (affinities, or cleft / pre side / post side for a synapse model; the volume's attribute
    ``channels`` names them). The default scheduler is ``"threads"``; a dask address or Client runs it there.

    ``precision``: ``"auto"`` (see :mod:`training.precision`), ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    ``memory_limit``: bytes (or ``"1GiB"``) a worker may use for one block, default 1 GiB; the block
    shape is chosen from it (:mod:`training.predict_plan`) unless ``block_shape`` is given.
    ``choice_out``: a dict that receives what ran (precision, why, block shape, estimated peak).
    """
    from .precision import check_precision
    from .predict_plan import block_bytes, bytes_per_voxel, largest_read_shape, parse_memory_limit, plan_block_shape

    check_precision(precision)
    limit = parse_memory_limit(memory_limit)
    checkpoint = os.path.abspath(checkpoint)
    state = load_checkpoint(checkpoint)
    config = model_config_from_checkpoint(state)
    check_raw(raw, state, checkpoint)
    # an affinity model's recommended merge threshold, checked before the work
    threshold = recommended_threshold(state.get("extra"), where=checkpoint) if "affinities" in config.outputs else None
    if scheduler is None:  # torch computes without the GIL: one process, its threads share the blocks
        scheduler = "threads"
    choice = _resolve_where_blocks_run(scheduler, checkpoint, precision)
    factor = Coordinate(config.total_downsample)
    check_block_shape(config, block_shape, context, checkpoint)
    if config.padding == "valid":  # the network's own margin is the context: blockwise equals whole-volume
        context = Coordinate(valid_margin(config))
    else:
        if context is None:  # the receptive field: blockwise equals whole-volume prediction
            context = receptive_field_radius(config)
        context = Coordinate(context).ceil_div(factor) * factor
    roi = raw.roi if roi is None else roi
    chunk_shape = Coordinate(chunk_shape or raw.chunk_shape)
    if block_shape is None:
        streamed = config.padding == "same"

        def per_voxel(depth: int) -> float:
            return bytes_per_voxel(config, choice.precision, depth if streamed else None)

        block_shape = plan_block_shape(roi.shape, chunk_shape, factor, context, limit, per_voxel)
    block_shape = Coordinate(block_shape)
    # every block must start on the output's chunk grid
    chunk_shape = Coordinate(gcd(c, b) for c, b in zip(chunk_shape, block_shape))
    out = create_volume(out_url, raw.shape, "uint8", raw.voxel_size_nm, offset=raw.offset,
                        chunk_shape=chunk_shape, num_channels=config.out_channels, overwrite=overwrite,
                        layer_type="image")
    estimate = block_bytes(config, choice.precision, largest_read_shape(roi.shape, block_shape, context),
                           streamed=True)
    logger.info("predict: %s (%s), blocks %s, context %s, about %.0f MiB per block", choice.precision,
                choice.reason, tuple(block_shape), tuple(context), estimate / 2**20)
    if choice_out is not None:
        choice_out.update({**choice.to_dict(), "block_shape": list(block_shape), "context": list(context),
                           "memory_limit_bytes": limit, "estimated_block_bytes": int(estimate)})
    stage = functools.partial(predict_block, checkpoint, tuple(factor), choice.precision)
    run_blockwise(stage, roi, block_shape, task="predict", inputs={"raw": raw}, outputs={"affinities": out},
                  context=context, scheduler=scheduler, num_workers=num_workers, overwrite=overwrite,
                  progress=progress,
                  params={"checkpoint": checkpoint, "context": list(context), "precision": choice.precision,
                          "offsets": [list(o) for o in config.offsets]})
    attrs = {"channels": list(config.channel_names), "checkpoint": os.path.basename(checkpoint),
             "precision": choice.precision}
    if "affinities" in config.outputs:
        attrs["affinity_offsets"] = [list(o) for o in config.offsets]
        attrs[THRESHOLD_KEY] = threshold  # the model's recommended threshold, or None (clears an older one)
    out.update_attrs(attrs)
    return out


