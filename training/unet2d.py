"""A 2D U-Net applied section by section, with neighbouring sections as input channels (2.5D).

For anisotropic serial-section EM (ssTEM at 4.6 x 4.6 x 50 nm) a 3D convolution spends two
thirds of its work across 50 nm gaps: measured on 2 CPU cores, a training step of a
3-level U-Net on one 256^2 section took 1.1 s as a 3D network (3x3x3 kernels, z = 1) and
0.14 s as a 2D one. This network keeps the 3D interface of :class:`training.unet.UNet3d`
(input (batch, 1, z, y, x), output (batch, channels, z, y, x), same padding), so training,
validation and checkpoints do not change: each section z is predicted from sections
z - z_context .. z + z_context (edge sections repeated at the volume's faces) stacked as
channels. ``ModelConfig.network = "unet2d"`` selects it; pooling factors' z entries must be 1.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig


class ConvPass2d(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.LeakyReLU(0.01, inplace=True),
        )


class SectionUNet(nn.Module):
    """2D U-Net per section (see the module docstring)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.padding != "same" or any(f[0] != 1 for f in config.downsample):
            raise ValueError(f"a unet2d model needs padding 'same' and z pooling factors of 1; got padding "
                             f"{config.padding!r}, downsample {[list(f) for f in config.downsample]}")
        self.config = config
        widths = config.widths
        previous = config.in_channels * (2 * config.z_context + 1)
        self.down = nn.ModuleList()
        for width in widths:
            self.down.append(ConvPass2d(previous, width))
            previous = width
        self.pool = nn.ModuleList(nn.MaxPool2d(tuple(f[1:]), stride=tuple(f[1:])) for f in config.downsample)
        self.up = nn.ModuleList(nn.Upsample(scale_factor=tuple(float(v) for v in f[1:]), mode="nearest")
                                for f in config.downsample)
        self.up_conv = nn.ModuleList(ConvPass2d(widths[i] + widths[i + 1], widths[i]) for i in range(len(widths) - 1))
        self.head = nn.Conv2d(widths[0], config.out_channels, 1)

    def sections(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, c, z, y, x) -> (batch * z, c * (2 k + 1), y, x): each section with its k neighbours per side."""
        b, c, z, h, w = x.shape
        k = self.config.z_context
        if k:
            index = torch.arange(-k, k + 1, device=x.device)[None, :] + torch.arange(z, device=x.device)[:, None]
            x = x[:, :, index.clamp(0, z - 1)]  # (b, c, z, 2k+1, y, x), faces repeated
        else:
            x = x[:, :, :, None]
        return x.permute(0, 2, 1, 3, 4, 5).reshape(b * z, c * (2 * k + 1), h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, z, h, w = x.shape
        y = self.sections(x).contiguous(memory_format=torch.channels_last)
        skips = []
        for level, conv in enumerate(self.down):
            y = conv(y)
            if level < len(self.pool):
                skips.append(y)
                y = self.pool[level](y)
        for level in reversed(range(len(self.up_conv))):
            y = self.up_conv[level](torch.cat([skips[level], self.up[level](y)], dim=1))
        y = self.head(y)
        return y.reshape(b, z, -1, h, w).permute(0, 2, 1, 3, 4)


def build_network(config: ModelConfig) -> nn.Module:
    """The network a model config describes: :class:`training.unet.UNet3d` or :class:`SectionUNet`."""
    if config.network == "unet2d":
        return SectionUNet(config)
    from .unet import UNet3d

    return UNet3d(config)


def fast(model: nn.Module) -> nn.Module:
    """``model`` in the memory layout its convolutions run fastest in on a CPU (channels last)."""
    if isinstance(model, SectionUNet):
        return model.to(memory_format=torch.channels_last)
    from .unet import fast_layout

    return fast_layout(model)
