"""The U-Net's inference forward pass in z-slabs: the same output, a fraction of the memory.

A plain forward holds every full-resolution activation of a block at once: the skip path,
the upsampled deep features, their concatenation and each convolution's output, about
430 bytes per voxel for the default model in fp32. Each level's two 3x3x3 convolutions
(same padding) are local, so they can run slab by slab along z with a halo of 2 planes
and give exactly the planes a whole pass gives; only each level's skip path and output
need to exist for the whole block. The deep levels shrink by the pooling factors, the
full-resolution output is the few output channels, so the peak falls to roughly the
skip path of the first level (measured: 124-152 bytes per voxel in fp32 and about 95 in bf16,
against 414 and 238 for the plain forward): blocks 3-4x larger fit one memory budget, and
larger blocks waste less work on context.

It is also faster than the plain forward on a CPU (the slabs' working sets stay in cache;
figures at ``SLABS``). torch has no such streamed execution for a U-Net (activation
checkpointing saves memory for the backward pass, not within one forward), hence this
module. Only same-padding models run this way; valid-padding models keep the plain forward.

Between slabs ``should_stop()`` is asked, so a long block can be interrupted in well
under a second.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

HALO = 2  # two 3x3x3 convolutions per level
# slabs per level. Measured on 2 cores (FIB-25 model, 128^3, after warm-up): plain forward 2.34 Mvox/s
# fp32, 6.5 bf16; 4 slabs 2.62 / 6.2; 8 slabs 2.81 / 6.8; 16 slabs 2.99 / 7.1 (smaller working sets
# stay in cache), at about a quarter (fp32) to 40% (bf16) of the plain forward's peak memory
SLABS = 16
MIN_PLANES = 8


class Interrupted(Exception):
    """Raised between slabs when ``should_stop()`` says so."""


def slab_forward(model, x, *, slabs: int = SLABS, should_stop: Callable[[], bool] | None = None,
                 finish: Callable | None = None):
    """Logits of ``model`` (a same-padding :class:`training.unet.UNet3d`) for ``x`` (1, C, z, y, x), computed in
    ``slabs`` z-slabs at every level (each at least 8 planes deep). ``finish`` maps each slab's logits
    (e.g. to uint8 probabilities) before they are assembled, so no full-size float output exists."""
    import torch

    if model.config.padding != "same":
        raise ValueError("slab_forward needs a same-padding model; valid-padding models use model(x)")
    stop = should_stop or (lambda: False)
    with torch.inference_mode():
        skips = []
        for level, conv in enumerate(model.down):
            encode = functools.partial(_encoder_slab, conv, x, level == 0)
            x = _in_slabs(encode, x.shape[2], _planes(x.shape[2], slabs), stop)
            if level < len(model.pool):
                skips.append(x)
                x = model.pool[level](x)
        for level in reversed(range(len(model.up_conv))):
            head = functools.partial(_head, model.head, finish) if level == 0 else None
            decode = functools.partial(_up_block, model, level, skips[level], x, head)
            x = _in_slabs(decode, skips[level].shape[2], _planes(skips[level].shape[2], slabs), stop)
            skips[level] = decode = None  # done with: free the skip path before the next level
        return x


def _encoder_slab(conv, source, input_level: bool, a: int, b: int, depth: int):
    return _conv_pass(conv, source[:, :, a:b], a == 0, b == depth, input_level)


def _head(head, finish, y):
    return finish(head(y)) if finish else head(y)


def _planes(depth: int, slabs: int) -> int:
    return max(MIN_PLANES, -(-depth // slabs))


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
    for slabs of 8-12 planes of the deeper levels runs about 4x slower (measured on 2 cores,
    24->24 channels on 10x64x64: 35 ms against 8 ms): call oneDNN directly there.
    """
    import torch
    import torch.nn.functional as F

    if (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and torch.backends.mkldnn.is_available()):
        return torch.ops.aten.mkldnn_convolution(x, weight, bias, [0, 1, 1], [1, 1, 1], [1, 1, 1], 1)
    return F.conv3d(x, weight, bias, padding=(0, 1, 1))


def _up_block(model, level: int, skip, deep, head, a: int, b: int, depth: int):
    """Decoder level ``level`` on input planes [a, b) of its resolution: upsample, concatenate, convolve
    (+ head)."""
    import torch

    factor = model.config.downsample[level][0]
    lo, hi = a // factor, -(-b // factor)
    up = model.up[level](deep[:, :, lo:hi])[:, :, a - lo * factor:b - lo * factor]
    y = _conv_pass(model.up_conv[level], torch.cat([skip[:, :, a:b], up], dim=1), a == 0, b == depth)
    del up
    return head(y) if head is not None else y


def _in_slabs(compute: Callable[[int, int, int], object], depth: int, planes: int, stop: Callable[[], bool]):
    """Run ``compute(a, b, depth)`` (a level's convolutions on input planes [a, b), which returns the exact
    planes: [a, b) less ``HALO`` on each side that is not a volume face) over slabs of ``planes`` planes and
    assemble the whole."""
    import torch

    out = None
    for z0 in range(0, depth, planes):
        if stop():
            raise Interrupted("stopped between slabs")
        z1 = min(depth, z0 + planes)
        a, b = max(0, z0 - HALO), min(depth, z1 + HALO)
        y = compute(a, b, depth)
        begin = a if a == 0 else a + HALO  # the exact planes; a volume face needs no halo
        if y.shape[2] != (b if b == depth else b - HALO) - begin:
            raise RuntimeError(f"slab [{a}, {b}) gave {y.shape[2]} planes")
        y = y[:, :, z0 - begin:z1 - begin]
        if out is None:
            out = torch.empty((y.shape[0], y.shape[1], depth, *y.shape[3:]), dtype=y.dtype,
                              memory_format=torch.channels_last_3d)
        out[:, :, z0:z1] = y
        del y
    return out
