"""Converted TF.js models (NHWC, fixed size multiples) behind the NCHW module interface the tiler uses.

:func:`fourkagent.models.tiling.run_model` tiles ``(1, 3, H, W) -> (1, 3, sH, sW)`` modules. The graphs
from npm take NHWC input whose sides may have to be multiples of some number — 64 for MAXIM (its
multi-axis gMLP blocks mix fixed 16×16 grids and blocks at full resolution and three halvings) — so
:class:`NHWCModel` reflect-pads each tile up to that multiple and crops the padding off the output.

MAXIM's grid mixing is global within whatever it is given, so a tiled result differs from a whole-image
one; ``benchmarks/maxim.py`` measures it (tiles cost no PSNR: 27.27 dB tiled vs 27.24 dB whole on a 512²
noisy crop) and the agreement of each converted graph with TensorFlow's own executor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own alias
from torch import nn

MAXIM_MULTIPLE = 64
"""MAXIM's input sides must be multiples of this."""
MAXIM_TILE = 256
"""Input tile side for MAXIM (256 px tiles, 32 px overlap: the fastest setting measured, 22 s for 512²,
with the same PSNR as whole-image inference)."""
MAXIM_OVERLAP = 32


class NHWCModel(nn.Module):
    """An NHWC graph (:class:`fourkagent.models.tfgraph.TFGraphModule`) as an NCHW module of any input size."""

    def __init__(self, graph: nn.Module, multiple: int = 1, scale: int = 1) -> None:
        """Wrap ``graph``, whose input sides must be multiples of ``multiple`` and which upscales by ``scale``."""
        super().__init__()
        self.graph = graph
        self.multiple = int(multiple)
        self.scale = int(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 3, sH, sW), not clipped."""
        h, w = x.shape[-2:]
        ph, pw = -h % self.multiple, -w % self.multiple
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        y = self.graph(x.permute(0, 2, 3, 1).contiguous())
        return y[:, : h * self.scale, : w * self.scale, :].permute(0, 3, 1, 2)
