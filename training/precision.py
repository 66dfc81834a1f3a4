"""Numeric precision per device: ``"auto" | "fp32" | "bf16" | "fp16"``.

bf16 autocast is only worth it where the hardware computes bf16 natively. On a CPU without
it (no AVX512-BF16 / AMX), oneDNN emulates bf16 and a 3D convolution runs about 20x slower
than in fp32 (measured on a 2-core x86_64 CPU: one 12->12 channel 3x3x3 conv on 24x64x64,
0.10 s fp32, 2.0 s bf16). So ``auto`` never assumes a CPU feature:

- on a CUDA GPU: bf16 where the GPU supports it, else fp32;
- on a CPU: bf16 only where the CPU has native bf16 *and* a short probe of the model's own
  layers shows bf16 at least 5% faster than fp32; otherwise fp32. The probe runs once per
  machine, torch version, thread count and architecture and is cached in
  ``$CONNECTO_CACHE_DIR`` (default ``$XDG_CACHE_HOME/connecto`` or ``~/.cache/connecto``).

``CONNECTO_PRECISION=fp32`` (or bf16, fp16) in the environment decides what ``auto`` picks
without probing (the test suite uses it to run in fp32 on any CPU). An explicit
``fp32``/``bf16``/``fp16`` is always honoured; bf16 on a CPU without native bf16 logs a
warning, as it will be slow.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
ENV_PRECISION = "CONNECTO_PRECISION"
# bf16 must beat fp32 by this much in the probe: below it the two are within noise and fp32 is exact
BF16_MIN_GAIN = 0.05
PROBE_SHAPE = (32, 64, 64)  # voxels per probe forward: about 0.1 s in fp32 on 2 cores for the default model


@dataclass(frozen=True)
class PrecisionChoice:
    """What runs (``precision``: fp32, bf16 or fp16), what was asked for, and why."""

    precision: str
    requested: str
    reason: str
    probe_seconds: dict | None = None  # {"fp32": s, "bf16": s} when a probe decided

    @property
    def autocast_dtype(self):
        """The torch dtype for ``torch.autocast``, or None for fp32."""
        import torch

        return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def check_precision(value: str, what: str = "precision") -> str:
    """``value`` when it is one of :data:`PRECISIONS`; a ValueError naming the choices otherwise."""
    if value not in PRECISIONS:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(PRECISIONS)}")
    return value


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX); False when unknown."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def resolve_precision(requested: str, device, model=None, *, native_bf16: Callable[[], bool] | None = None,
                      probe: Callable[[object], dict] | None = None, cache_dir: str | None = None) -> PrecisionChoice:
    """The precision to run ``model`` with on ``device`` (a ``torch.device`` or ``"cpu"``/``"cuda"``).

    ``native_bf16`` (default :func:`cpu_has_native_bf16`) and ``probe`` (default
    :func:`probe_seconds`, returning ``{"fp32": s, "bf16": s}``) are injectable for tests.
    """
    check_precision(requested)
    device_type = getattr(device, "type", str(device))
    if requested != "auto":
        if requested == "bf16" and device_type == "cpu" and not (native_bf16 or cpu_has_native_bf16)():
            logger.warning("bf16 was asked for, but this CPU has no native bf16: expect it to be about 20x slower "
                           "than fp32 (precision = \"auto\" picks the faster)")
        return PrecisionChoice(requested, requested, "asked for")
    forced = os.environ.get(ENV_PRECISION, "").strip()
    if forced:
        if forced == "auto" or forced not in PRECISIONS:
            raise ValueError(f"{ENV_PRECISION}={forced!r} is not one of fp32, bf16, fp16")
        return PrecisionChoice(forced, requested, f"{ENV_PRECISION}={forced}")
    if device_type == "cuda":
        import torch

        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", requested, "CUDA GPU with bf16")
        return PrecisionChoice("fp32", requested, "CUDA GPU without bf16")
    if device_type != "cpu":
        return PrecisionChoice("fp32", requested, f"{device_type} device")
    if not (native_bf16 or cpu_has_native_bf16)():
        return PrecisionChoice("fp32", requested, "CPU without native bf16")
    if model is None:
        return PrecisionChoice("fp32", requested, "CPU with native bf16, no model to probe")
    seconds = _cached_probe(model, probe or probe_seconds, cache_dir)
    faster = seconds["bf16"] <= (1 - BF16_MIN_GAIN) * seconds["fp32"]
    reason = f"CPU with native bf16; probe: bf16 {seconds['bf16']:.3f} s, fp32 {seconds['fp32']:.3f} s"
    return PrecisionChoice("bf16" if faster else "fp32", requested, reason, probe_seconds=seconds)


def probe_seconds(model, shape=PROBE_SHAPE, repeats: int = 2) -> dict:
    """Best-of-``repeats`` seconds of one inference forward of ``model`` on ``shape`` in fp32 and bf16 (CPU).

    bf16 is timed once first and given up after one slow pass, so a CPU that emulates bf16
    costs one probe forward, not many."""
    import torch

    from .unet import fitting_input_shape

    config = getattr(model, "config", None)
    if config is not None:
        shape = fitting_input_shape(config, shape)
    x = torch.rand(1, getattr(config, "in_channels", 1), *shape)
    result = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        times = []
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            model(x)  # warm-up: oneDNN picks and caches its kernels
            for _ in range(repeats):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
                if name == "bf16" and "fp32" in result and times[-1] > 3 * result["fp32"]:
                    break
        result[name] = min(times)
    return result


def cache_dir() -> str:
    explicit = os.environ.get("CONNECTO_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "connecto")


def machine_key(model) -> str:
    """What a probe result depends on: CPU model, torch version and threads, the network's architecture."""
    import torch

    config = getattr(model, "config", None)
    arch = json.dumps(asdict(config), sort_keys=True, default=str) if config is not None else type(model).__name__
    return f"{_cpu_name()}|{platform.machine()}|torch {torch.__version__}|threads {torch.get_num_threads()}|{arch}"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


def _cached_probe(model, probe, directory: str | None) -> dict:
    path = os.path.join(directory or cache_dir(), "precision-probe.json")
    key = machine_key(model)
    cached = _read_json(path)
    if key in cached:
        return cached[key]
    seconds = {k: float(v) for k, v in probe(model).items()}
    logger.info("precision probe: %s", seconds)
    cached = _read_json(path)  # another process may have written meanwhile
    cached[key] = seconds
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(cached, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home: probe again next time, say why once
        logger.warning("cannot cache the precision probe in %s: %s", path, exc)
    return seconds


def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            value = json.load(f)
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}
