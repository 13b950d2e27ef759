"""MAXIM (Tu et al., CVPR 2022) as UpscalerJS converted it: a jax2tf graph run by :mod:`fourkagent.models.tfgraph`.

The graph takes NHWC images in [0, 1] whose sides are multiples of 64 (its multi-axis gMLP blocks mix
fixed 16×16 grids and blocks at full resolution and three halvings) and returns the last stage's
restored image. :class:`Maxim` adapts it to the NCHW ``(1, 3, H, W) -> (1, 3, H, W)`` modules that
:func:`fourkagent.models.tiling.run_model` tiles: each tile is reflect-padded up to the next multiple
of 64 and the padding is cropped off the output.

MAXIM's grid mixing is global within whatever it is given, so a tiled result differs from a whole-image
one; ``benchmarks/maxim.py`` measures the difference against tile size (the chosen :data:`TILE`) and
the agreement of each converted graph with TensorFlow's own executor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own alias
from torch import nn

MULTIPLE = 64
"""The graph's input sides must be multiples of this."""
TILE = 256
"""Input tile side for tiled runs (see the module docstring; measured in ``benchmarks/maxim.py``)."""
OVERLAP = 32
"""Pixels shared by neighbouring tiles."""


class Maxim(nn.Module):
    """A MAXIM graph behind an NCHW interface that accepts any size."""

    def __init__(self, graph: nn.Module) -> None:
        """Wrap a converted graph (:class:`fourkagent.models.tfgraph.TFGraphModule`)."""
        super().__init__()
        self.graph = graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 3, H, W), not clipped."""
        h, w = x.shape[-2:]
        ph, pw = -h % MULTIPLE, -w % MULTIPLE
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        y = self.graph(x.permute(0, 2, 3, 1).contiguous())
        return y[:, :h, :w, :].permute(0, 3, 1, 2)
