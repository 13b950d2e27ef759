"""The small residual U-Net shared by every restorer this project trains (``training/train_restorers.py``).

Fully convolutional, any input size (reflect-padded to a multiple of ``2 ** (len(widths))`` inside
``forward``), residual output ``x[:, :3] + f(x)``. The input is pixel-unshuffled by 2 (so the first level already
works at half resolution, cheap on CPU), then encoded at 1/2, 1/4, 1/8 ... of the resolution with plain
3×3 residual blocks, decoded with pixel-shuffle upsampling and additive skips, and pixel-shuffled back.
With the default widths the receptive field spans well over 64 px, enough for motion blur ~30 px long.
``in_ch=6`` nets take a classical tool's output and the degraded image (``cat(base, degraded)``) and learn
a correction of the base.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_WIDTHS: tuple[int, ...] = (16, 32, 64)
"""Channels at 1/2, 1/4, 1/8 of the input resolution."""
DEFAULT_BLOCKS: tuple[int, ...] = (1, 1, 3)
"""Residual blocks per level (the last entry is the bottleneck)."""


class ResBlock(nn.Module):
    """``x + conv(act(conv(x)))`` with 3×3 convolutions."""

    def __init__(self, ch: int) -> None:
        """A block of ``ch`` channels."""
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.act = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual update."""
        return x + self.c2(self.act(self.c1(x)))


class RestorerUNet(nn.Module):
    """Residual U-Net: ``(B, in_ch, H, W)`` in [0, 1] → restored ``(B, 3, H, W)`` (not clipped)."""

    def __init__(self, widths: Sequence[int] = DEFAULT_WIDTHS, blocks: Sequence[int] = DEFAULT_BLOCKS,
                 in_ch: int = 3) -> None:
        """Build the net; ``widths[i]`` channels with ``blocks[i]`` residual blocks at scale 1/2^(i+1)."""
        super().__init__()
        widths, blocks = tuple(int(w) for w in widths), tuple(int(b) for b in blocks)
        if len(widths) != len(blocks) or len(widths) < 2:
            raise ValueError("widths and blocks need the same length (at least 2)")
        if in_ch < 3:
            raise ValueError("in_ch must be at least 3 (the residual base comes first)")
        self.widths, self.blocks, self.in_ch = widths, blocks, int(in_ch)
        self.head = nn.Conv2d(4 * self.in_ch, widths[0], 3, padding=1)
        levels = list(zip(widths[:-1], blocks[:-1]))
        self.enc = nn.ModuleList(nn.Sequential(*(ResBlock(w) for _ in range(b))) for w, b in levels)
        self.down = nn.ModuleList(nn.Conv2d(a, b, 2, stride=2) for a, b in zip(widths[:-1], widths[1:]))
        self.mid = nn.Sequential(*(ResBlock(widths[-1]) for _ in range(blocks[-1])))
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(b, 4 * a, 1), nn.PixelShuffle(2)) for a, b in zip(widths[:-1], widths[1:])
        )
        self.dec = nn.ModuleList(nn.Sequential(*(ResBlock(w) for _ in range(b))) for w, b in levels)
        self.tail = nn.Conv2d(widths[0], 12, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    @property
    def multiple(self) -> int:
        """Input sides are padded to a multiple of this."""
        return 2 ** len(self.widths)

    def config(self) -> dict[str, list[int] | int]:
        """Constructor arguments (stored beside the weights)."""
        return {"widths": list(self.widths), "blocks": list(self.blocks), "in_ch": self.in_ch}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore ``x`` (base image in channels 0-2); output has the input's size."""
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        xp = x
        if ph or pw:  # reflect-pad (replicate when the image is too small to reflect)
            xp = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        f = self.head(F.pixel_unshuffle(xp, 2))
        skips = []
        for enc, down in zip(self.enc, self.down):
            f = enc(f)
            skips.append(f)
            f = down(f)
        f = self.mid(f)
        for up, dec, skip in zip(reversed(self.up), reversed(self.dec), reversed(skips)):
            f = dec(up(f) + skip)
        out = xp[:, :3] + F.pixel_shuffle(self.tail(f), 2)
        return out[..., :h, :w]


def n_params(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
