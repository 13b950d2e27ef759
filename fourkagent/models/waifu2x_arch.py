"""waifu2x UpConv7 (nagadomi/waifu2x ``upconv_7``): six unpadded 3x3 convolutions with LeakyReLU(0.1)
and a 4x4 stride-2 transposed convolution, i.e. a x2 upscaler whose output loses 7 input pixels per side.

spandrel 0.4.2 does not know this architecture. :class:`UpConv7` reflect-pads its input by
:data:`PAD` pixels first (as waifu2x-ncnn-vulkan does), so it maps (1, 3, H, W) to (1, 3, 2H, 2W)
and fits :func:`fourkagent.models.tiling.run_model`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PAD = 7
"""Input pixels each side that the unpadded convolutions and the deconvolution consume."""


class UpConv7(nn.Module):
    """waifu2x UpConv7 x2 (photo or anime weights; the noise level is in the weights, not the graph)."""

    def __init__(self, in_ch: int = 3, out_ch: int = 3, widths: tuple[int, ...] = (16, 32, 64, 128, 128, 256),
                 pad_input: bool = True) -> None:
        """``widths`` are the six convolutions' output channels; ``pad_input`` adds the reflect padding."""
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_ch
        for width in widths:
            layers += [nn.Conv2d(prev, width, 3), nn.LeakyReLU(0.1, inplace=True)]
            prev = width
        self.body = nn.Sequential(*layers)
        self.up = nn.ConvTranspose2d(prev, out_ch, 4, stride=2, padding=3)
        self.pad_input = pad_input
        self.scale = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> (N, C, 2H, 2W) (2H-4 without ``pad_input``); inputs of 7 px or less
        are edge-replicated instead of reflected."""
        if self.pad_input:
            mode = "reflect" if min(x.shape[-2:]) > PAD else "replicate"
            x = F.pad(x, (PAD, PAD, PAD, PAD), mode=mode)
        return self.up(self.body(x))
