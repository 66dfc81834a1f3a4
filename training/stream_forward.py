"""The U-Net's inference forward pass streamed along z: the plain forward's output, in memory
that does not grow with the block's depth.

A plain forward holds every full-resolution activation of a block at once, about 430 bytes
per voxel for the default model in fp32. Each level's two 3x3x3 convolutions (same padding)
are local in z, pooling and nearest upsampling too, so every activation plane depends on a
few planes of the level before it. This module computes the output a few planes at a time
and each intermediate tensor only as far as the next output planes need it: every tensor
of the network (each level's encoder output, its pooled copy, each decoder level's output)
is a :class:`_Planes` window that computes planes on demand, in z order, and drops the
planes no consumer will ask for again. What stays whole is the input (as given: uint8 raw
is 1 byte per voxel, converted to float by ``prepare`` a few planes at a time) and the
output (``finish`` maps each step's logits, e.g. to uint8, before it is stored).

Memory is then the input and output arrays plus windows proportional to the block's
y-x area (measured, :mod:`training.predict_plan`), so blocks may be far larger for one
memory budget and less work is spent on context recomputed between blocks.

Exactness: a convolution pass over input planes [a-2, b+2) gives exactly planes [a, b)
(zero padding in z only at the block's faces), as a whole pass would; the tests compare
with ``model(x)``. torch has no such streamed execution for a U-Net (activation
checkpointing saves memory for the backward pass, not within one forward), hence this
module. Only same-padding models run this way; valid-padding models keep the plain forward.

Between steps ``should_stop()`` is asked, so a long block can be interrupted in well
under a second.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

HALO = 2  # two 3x3x3 convolutions per level
# output planes per step; each window computes at least MIN_PLANES planes of its own level at once. Measured
# on 2 cores (FIB-25 model, 128x256x256; MIN_PLANES/PLANES: fp32 / bf16 Mvox/s): 8/16 1.63-1.69 / 2.8-3.5, 16/16 1.66-1.69 /
# 3.1-3.3, 16/32 1.67-1.68 / 3.1-3.2, 4/8 1.65-1.69 / 3.4: the same speed, and 4/8 holds the fewest planes
# (885 activation values per pixel in windows against 1557 for 8/16)
PLANES = 8
MIN_PLANES = 4


class Interrupted(Exception):
    """Raised between steps when ``should_stop()`` says so."""


class _Planes:
    """Planes of one tensor (1, C, depth, y, x) along z, computed on demand by ``compute(a, b)`` (planes
    [a, b)), at least ``min_planes`` at a time, and kept as the pieces computed (a request inside one
    piece is a view, one across pieces a copy of just what it asks for). Each consumer asks with a
    nondecreasing start; pieces wholly before the lowest start any consumer may still ask for are dropped."""

    def __init__(self, depth: int, compute: Callable, min_planes: int, consumers: int):
        self.depth, self.compute, self.min_planes = depth, compute, min_planes
        self.hi = 0
        self.pieces: list = []  # (first plane, tensor) in z order, contiguous
        self.floors = [0] * consumers

    def get(self, a: int, b: int, consumer: int = 0):
        import torch

        a, b = max(0, a), min(self.depth, b)
        if self.pieces and a < self.pieces[0][0]:
            raise RuntimeError(f"planes [{a}, {b}) asked after planes before {self.pieces[0][0]} were dropped")
        if b > self.hi:
            end = min(self.depth, max(b, self.hi + self.min_planes))
            self.pieces.append((self.hi, self.compute(self.hi, end)))
            self.hi = end
        parts = [t[:, :, max(a, z) - z:min(b, z + t.shape[2]) - z] for z, t in self.pieces
                 if z < b and z + t.shape[2] > a]
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
        self.floors[consumer] = a
        keep = min(self.floors)
        while self.pieces and self.pieces[0][0] + self.pieces[0][1].shape[2] <= keep:
            self.pieces.pop(0)
        return out

    @property
    def held(self) -> int:
        """Values held now (for tests and memory estimates)."""
        return sum(t.numel() for _, t in self.pieces)


def stream_forward(model, x, *, planes: int = PLANES, should_stop: Callable[[], bool] | None = None,
                   finish: Callable | None = None, prepare: Callable | None = None):
    """Logits of ``model`` (a same-padding :class:`training.unet.UNet3d`) for ``x`` (1, C, z, y, x), computed
    ``planes`` output planes at a time. ``prepare`` maps planes of ``x`` to the network's input (e.g. uint8
    to normalised float); ``finish`` maps each step's logits (e.g. to uint8 probabilities) before they are
    assembled, so neither a full-size float input nor a float output exists."""
    import torch

    if model.config.padding != "same":
        raise ValueError("stream_forward needs a same-padding model; valid-padding models use model(x)")
    stop = should_stop or (lambda: False)
    depth = x.shape[2]
    prepare = prepare or (lambda planes_of_x: planes_of_x)
    with torch.inference_mode():
        last = _network(model, x, depth, prepare)
        out = None
        for z0 in range(0, depth, planes):
            if stop():
                raise Interrupted("stopped between steps")
            z1 = min(depth, z0 + planes)
            y = model.head(last.get(z0, z1))
            y = finish(y) if finish else y
            if out is None:
                out = torch.empty((y.shape[0], y.shape[1], depth, *y.shape[3:]), dtype=y.dtype,
                                  memory_format=torch.channels_last_3d)
            out[:, :, z0:z1] = y
            del y
        return out


def _network(model, x, depth: int, prepare) -> _Planes:
    """The windows of every tensor of ``model`` on input ``x``; returns the last decoder level's."""
    factors = [int(f[0]) for f in model.config.downsample]
    levels = len(model.down)
    depths = [depth]
    for f in factors:
        depths.append(depths[-1] // f)
    encoders: list[_Planes] = []
    source = None  # the previous level's pooled window
    for level, conv in enumerate(model.down):
        compute = functools.partial(_encode, conv, level, x, prepare, source, depths[level])
        # consumers: the pooling to the next level (0) and the decoder's skip path (1); the deepest: the decoder
        consumers = 2 if level < levels - 1 else 1
        encoders.append(_Planes(depths[level], compute, MIN_PLANES, consumers))
        if level < levels - 1:
            pool = functools.partial(_pool, model.pool[level], encoders[level], factors[level])
            source = _Planes(depths[level + 1], pool, MIN_PLANES, 1)
    deep = encoders[-1]
    for level in reversed(range(levels - 1)):
        compute = functools.partial(_decode, model, level, encoders[level], deep, factors[level], depths[level])
        deep = _Planes(depths[level], compute, MIN_PLANES, 1)
    return deep


def _conv_input(a: int, b: int, depth: int) -> tuple[int, int, int]:
    """The input planes [a_in, b_in) a convolution pass needs for output planes [a, b), and where its exact
    output begins (a volume face needs no halo)."""
    a_in, b_in = max(0, a - HALO), min(depth, b + HALO)
    return a_in, b_in, (a_in if a_in == 0 else a_in + HALO)


def _encode(conv, level: int, x, prepare, source, depth: int, a: int, b: int):
    a_in, b_in, begin = _conv_input(a, b, depth)
    if level == 0:
        y = _conv_pass(conv, prepare(x[:, :, a_in:b_in]), a_in == 0, b_in == depth, input_level=True)
    else:
        y = _conv_pass(conv, source.get(a_in, b_in), a_in == 0, b_in == depth)
    return y[:, :, a - begin:b - begin]


def _pool(pool, encoder: _Planes, factor: int, a: int, b: int):
    return pool(encoder.get(a * factor, b * factor, consumer=0))


def _decode(model, level: int, encoder: _Planes, deep: _Planes, factor: int, depth: int, a: int, b: int):
    """Decoder level ``level``, output planes [a, b): upsample, concatenate with the skip path, convolve."""
    import torch

    a_in, b_in, begin = _conv_input(a, b, depth)
    lo, hi = a_in // factor, -(-b_in // factor)
    up = model.up[level](deep.get(lo, hi))[:, :, a_in - lo * factor:b_in - lo * factor]
    skip = encoder.get(a_in, b_in, consumer=1)
    y = _conv_pass(model.up_conv[level], torch.cat([skip, up], dim=1), a_in == 0, b_in == depth)
    return y[:, :, a - begin:b - begin]


def _conv_pass(conv_pass, x, first: bool, last: bool, input_level: bool = False):
    """A level's convolutions on planes of ``x``: zero padding in z only at the volume's faces (``first``,
    ``last``), so each convolution computes just the planes that are exact (2 fewer per interior side).
    On the input level the first convolution runs in fp32 (:func:`training.unet.input_pass`)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from .unet import input_pass

    def conv(layer, x):
        if first or last:
            x = F.pad(x, (0, 0, 0, 0, int(first), int(last)))
        return _conv3d(x.contiguous(memory_format=torch.channels_last_3d), layer.weight, layer.bias)

    layers = list(conv_pass)
    if input_level:
        return input_pass(layers, x, first_conv=lambda inp: conv(layers[0], inp), then=conv)
    for layer in layers:
        x = conv(layer, x) if isinstance(layer, nn.Conv3d) else layer(x)
    return x


def _conv3d(x, weight, bias):
    """A 3x3x3 convolution without z padding (same padding in y, x).

    In fp32 on a CPU torch sends a convolution whose N*C*D*H is at most 20480 to a reference
    kernel instead of oneDNN (a heuristic for small inputs, ``use_mkldnn`` in ATen), which
    for steps of 8-12 planes of the deeper levels runs about 4x slower (measured on 2 cores,
    24->24 channels on 10x64x64: 35 ms against 8 ms): call oneDNN directly there.
    """
    import torch
    import torch.nn.functional as F

    if (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and torch.backends.mkldnn.is_available()):
        return torch.ops.aten.mkldnn_convolution(x, weight, bias, [0, 1, 1], [1, 1, 1], [1, 1, 1], 1)
    return F.conv3d(x, weight, bias, padding=(0, 1, 1))
