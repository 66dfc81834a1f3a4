"""A 3D U-Net for affinities (Ronneberger et al. 2015, Çiçek et al. 2016, as in lsd/funlib).

Two 3x3x3 convolutions per level (leaky ReLU, so no unit dies and the
network cannot collapse to a constant output), max-pooling by the configured factors
(e.g. (1, 2, 2) for anisotropic ssTEM), nearest upsampling + concatenation with the skip
path, and a 1x1x1 head with a sigmoid giving one affinity per offset. With ``padding="same"``
the output has the input's shape; with ``"valid"`` every convolution shrinks it and
skip paths are cropped to match.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .targets import LSD_CHANNELS


class ConvPass(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, padding: str):
        pad = 1 if padding == "same" else 0
        super().__init__(
            nn.Conv3d(in_channels, out_channels, 3, padding=pad),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Conv3d(out_channels, out_channels, 3, padding=pad),
            nn.LeakyReLU(0.01, inplace=True),
        )


def crop_to(x, shape):
    """The centre of ``x`` (a tensor or array, ..., z, y, x) with spatial ``shape``."""
    offsets = [(a - b) // 2 for a, b in zip(x.shape[-3:], shape)]
    return x[..., offsets[0]:offsets[0] + shape[0], offsets[1]:offsets[1] + shape[1], offsets[2]:offsets[2] + shape[2]]


class UNet3d(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        widths = config.widths
        self.down = nn.ModuleList()
        previous = config.in_channels
        for width in widths:
            self.down.append(ConvPass(previous, width, config.padding))
            previous = width
        self.pool = nn.ModuleList(nn.MaxPool3d(f, stride=f) for f in config.downsample)
        self.up = nn.ModuleList(nn.Upsample(scale_factor=tuple(float(v) for v in f), mode="nearest")
                                for f in config.downsample)
        self.up_conv = nn.ModuleList(
            ConvPass(widths[i] + widths[i + 1], widths[i], config.padding) for i in range(len(widths) - 1)
        )
        self.head = nn.Conv3d(widths[0], config.out_channels, 1)
        # training only: local shape descriptors from the same last feature map (model.lsd_head); without
        # it the weights hold no lsd_head.* tensors, as before the head existed
        self.lsd_head = nn.Conv3d(widths[0], len(LSD_CHANNELS), 1) if config.lsd_head else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Affinity logits, shape (batch, len(offsets), z, y, x); an LSD head, if any, is not evaluated."""
        return self.head(self.features(x))

    def forward_with_lsds(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(output logits, LSD logits (batch, 10, z, y, x)) for training a model with ``lsd_head``."""
        if self.lsd_head is None:
            raise ValueError("the model has no LSD head (model.lsd_head = false)")
        features = self.features(x)
        return self.head(features), self.lsd_head(features)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (batch, widths[0], z, y, x), the input of the 1x1x1 heads."""
        skips = []
        for level, conv in enumerate(self.down):
            x = conv(x) if level else input_pass(conv, x)
            if level < len(self.pool):
                skips.append(x)
                x = self.pool[level](x)
        for level in reversed(range(len(self.up_conv))):
            x = self.up[level](x)
            skip = skips[level]
            if self.config.padding == "valid":
                skip = crop_to(skip, x.shape[-3:])
            x = self.up_conv[level](torch.cat([skip, x], dim=1))
        return x


def input_pass(conv_pass, x: torch.Tensor, first_conv=None, then=None) -> torch.Tensor:
    """The first level's convolutions, the very first one in fp32 whatever the autocast.

    Under bf16 autocast the raw image itself would be rounded to bf16 (8 bits of mantissa)
    with the first layer's weights: measured on a synthetic volume with the shipped model,
    that alone moved uint8 affinities by up to 30/255 (1.4% of voxels by more than 3/255);
    with this one-input-channel convolution (about 2% of the network's work) in fp32, by up
    to 6/255 (0.005% of voxels by more than 3). ``first_conv`` replaces how the first
    convolution is applied and ``then(layer, x)`` how the later convolutions are (the slab
    forward pads z itself)."""
    layers = list(conv_pass)
    with torch.autocast(x.device.type, enabled=False):
        x = (first_conv or layers[0])(x.float())
    for layer in layers[1:]:
        x = then(layer, x) if then is not None and isinstance(layer, nn.Conv3d) else layer(x)
    return x


def fast_layout(model: nn.Module) -> nn.Module:
    """``model`` with its weights in channels-last memory (NDHWC), where oneDNN runs 3D convolutions
    about twice as fast (measured on 2 CPU cores, FIB-25 model: a 252^3 bf16 forward 3.7 s instead
    of 7.7 s, a training step 0.61 s instead of 1.25 s). Results are equal up to rounding; inputs
    and outputs keep their shapes (a one-channel input is already in this layout)."""
    return model.to(memory_format=torch.channels_last_3d)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _axis_output(config: ModelConfig, axis: int, size: int) -> int | None:
    """A valid-padding network's output size along one axis, or None when ``size`` does not fit its pooling."""
    for f in config.downsample:
        size -= 4  # two 3x3x3 convolutions
        if size <= 0 or size % f[axis]:
            return None
        size //= f[axis]
    size -= 4
    if size <= 0:
        return None
    for f in reversed(config.downsample):
        size = size * f[axis] - 4
    return size if size > 0 else None


def output_shape(config: ModelConfig, input_shape) -> tuple[int, int, int]:
    """The output shape for an input shape (equal for same padding); a shape the network cannot take raises."""
    if config.padding == "same":
        return tuple(input_shape)
    out = tuple(_axis_output(config, axis, int(s)) for axis, s in enumerate(input_shape))
    if None in out:
        raise ValueError(f"input shape {tuple(input_shape)} does not fit the valid-padding network's pooling; "
                         f"{fitting_input_shape(config, input_shape)} would")
    return out


def fitting_input_shape(config: ModelConfig, min_input_shape) -> tuple[int, int, int]:
    """The smallest input shape at least ``min_input_shape`` that the network takes."""
    if config.padding == "same":
        factor = config.total_downsample
        return tuple(-(-s // f) * f for s, f in zip(min_input_shape, factor))
    shape = []
    for axis, size in enumerate(min_input_shape):
        size = max(int(size), 1)
        while _axis_output(config, axis, size) is None:
            size += 1
        shape.append(size)
    return tuple(shape)


def valid_input_shape(config: ModelConfig, min_output_shape) -> tuple[int, int, int]:
    """The smallest input shape (pooling-compatible) whose output covers ``min_output_shape``."""
    if config.padding == "same":
        return fitting_input_shape(config, min_output_shape)
    shape = []
    for axis, want in enumerate(min_output_shape):
        size = int(want)
        while (_axis_output(config, axis, size) or 0) < want:
            size += 1
        shape.append(size)
    return tuple(shape)


def receptive_field_radius(config: ModelConfig) -> tuple[int, int, int]:
    """Voxels (z, y, x) on each side that can influence an output voxel.

    Two 3x3x3 convolutions per level add 2 voxels at that level's scale; each pooling
    window and nearest upsampling adds (factor - 1) at the finer scale. Blockwise
    prediction needs this much context to equal a whole-volume prediction.
    """
    radius = []
    for axis in range(3):
        r, scale = 0, 1
        for f in config.downsample:
            r += 2 * scale + (f[axis] - 1) * scale
            scale *= f[axis]
        r += 2 * scale
        for f in reversed(config.downsample):
            scale //= f[axis]
            r += (f[axis] - 1) * scale + 2 * scale
        radius.append(r)
    return tuple(radius)
