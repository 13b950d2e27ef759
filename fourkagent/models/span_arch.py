"""SPAN, the Swift Parameter-free Attention Network (Wan et al., CVPR-W 2024), in plain torch.

Structure (per the paper): a re-parameterisable 3x3 convolution ``Conv3XC`` (a 1x1 skip plus a
1x1 -> 3x3 -> 1x1 chain that fuses into one 3x3 kernel), six SPAB blocks whose attention map is
``sigmoid(f(x)) - 0.5`` (no parameters), a 1x1 fusion over four feature maps and a pixel-shuffle
upsampler.

Parameter names and shapes follow the community convention used by ``spandrel`` so a state dict
of :class:`SPAN` saved to ``.pth``/``.safetensors`` is detected and loaded by
``spandrel.ModelLoader`` as SPAN. Spandrel rebuilds ``eval_conv`` from the branch weights on every
forward, so the branch weights must always describe the same kernel as ``eval_conv``;
:meth:`Conv3XC.set_fused` embeds a fused kernel exactly into the branches to keep that true.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)
"""DIV2K mean, the SPAN default (and the value spandrel assumes)."""
DEFAULT_IMG_RANGE = 255.0
"""Input scale after mean subtraction, the SPAN default (and the value spandrel assumes)."""


class Conv3XC(nn.Module):
    """A 3x3 convolution trained as ``1x1 skip + (1x1 -> 3x3 -> 1x1)`` and run as one fused 3x3 conv."""

    def __init__(self, c_in: int, c_out: int, gain: int = 2) -> None:
        """Create the branches (``sk``, ``conv``) and the fused ``eval_conv`` for ``c_in -> c_out``."""
        super().__init__()
        self.c_in, self.c_out, self.gain = c_in, c_out, gain
        mid_in, mid_out = c_in * gain, c_out * gain
        self.sk = nn.Conv2d(c_in, c_out, 1)
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, mid_in, 1),
            nn.Conv2d(mid_in, mid_out, 3),  # no padding: the input is zero-padded before the chain
            nn.Conv2d(mid_out, c_out, 1),
        )
        self.eval_conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.eval_conv.weight.requires_grad_(False)
        self.eval_conv.bias.requires_grad_(False)
        self.reparameterize()

    @torch.no_grad()
    def fused_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single 3x3 (weight, bias) equivalent to the branches."""
        a, b, c = self.conv
        w1 = a.weight[:, :, 0, 0]  # (mid_in, c_in)
        w3 = c.weight[:, :, 0, 0]  # (c_out, mid_out)
        # chain weight: W[o, i] = sum_m,n w3[o, n] * w2[n, m] * w1[m, i]
        w = torch.einsum("on,nmyx,mi->oiyx", w3, b.weight, w1)
        # the bias of the 1x1 in front travels through every tap of the 3x3
        b2 = b.bias + torch.einsum("nmyx,m->n", b.weight, a.bias)
        bias = w3 @ b2 + c.bias
        w = w.clone()
        w[:, :, 1, 1] += self.sk.weight[:, :, 0, 0]
        return w.contiguous(), (bias + self.sk.bias).contiguous()

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Refresh ``eval_conv`` from the branch weights (call after changing the branches)."""
        w, b = self.fused_kernel()
        self.eval_conv.weight.copy_(w)
        self.eval_conv.bias.copy_(b)

    @torch.no_grad()
    def set_fused(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Load a fused 3x3 kernel and write branches that reproduce it exactly.

        The chain becomes identity 1x1 -> ``weight`` -> identity 1x1 (the extra ``gain`` channels
        and the skip are zero), so re-fusing gives back ``weight``/``bias`` bit for bit.
        """
        weight = weight.to(self.eval_conv.weight)
        bias = bias.to(self.eval_conv.bias)
        if tuple(weight.shape) != (self.c_out, self.c_in, 3, 3) or tuple(bias.shape) != (self.c_out,):
            raise ValueError(f"fused kernel has shape {tuple(weight.shape)}/{tuple(bias.shape)}")
        a, b, c = self.conv
        for p in (a.weight, a.bias, b.weight, b.bias, c.weight, c.bias, self.sk.weight, self.sk.bias):
            p.zero_()
        a.weight[: self.c_in, :, 0, 0] = torch.eye(self.c_in)
        b.weight[: self.c_out, : self.c_in] = weight
        b.bias[: self.c_out] = bias
        c.weight[:, : self.c_out, 0, 0] = torch.eye(self.c_out)
        self.eval_conv.weight.copy_(weight)
        self.eval_conv.bias.copy_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Branches while training, the fused conv otherwise."""
        if self.training:
            return self.conv(F.pad(x, (1, 1, 1, 1))) + self.sk(x)
        return self.eval_conv(x)


class SPAB(nn.Module):
    """Swift parameter-free attention block: three Conv3XC, SiLU, attention ``sigmoid(y) - 0.5``."""

    def __init__(self, channels: int) -> None:
        """Create a block of ``channels`` features."""
        super().__init__()
        self.c1_r = Conv3XC(channels, channels)
        self.c2_r = Conv3XC(channels, channels)
        self.c3_r = Conv3XC(channels, channels)
        self.act1 = nn.SiLU()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the block output and the first activated feature (used by the last block's tap)."""
        h1 = self.act1(self.c1_r(x))
        h3 = self.c3_r(self.act1(self.c2_r(h1)))
        attention = torch.sigmoid(h3) - 0.5
        return (h3 + x) * attention, h1


class SPAN(nn.Module):
    """The SPAN super-resolution network: RGB in [0, 1] -> RGB upscaled by ``upscale``."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        feature_channels: int = 48,
        upscale: int = 4,
        *,
        norm: bool = True,
        img_range: float = DEFAULT_IMG_RANGE,
        rgb_mean: tuple[float, float, float] = DEFAULT_RGB_MEAN,
    ) -> None:
        """Create the network; ``norm`` applies ``(x - rgb_mean) * img_range`` to the input."""
        super().__init__()
        self.num_in_ch, self.num_out_ch = num_in_ch, num_out_ch
        self.feature_channels, self.upscale = feature_channels, upscale
        self.img_range = float(img_range)
        self.register_buffer("mean", torch.tensor(rgb_mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        if not norm:
            self.register_buffer("no_norm", torch.zeros(1))  # the marker spandrel reads
        else:
            self.no_norm = None
        c = feature_channels
        self.conv_1 = Conv3XC(num_in_ch, c)
        self.block_1 = SPAB(c)
        self.block_2 = SPAB(c)
        self.block_3 = SPAB(c)
        self.block_4 = SPAB(c)
        self.block_5 = SPAB(c)
        self.block_6 = SPAB(c)
        self.conv_cat = nn.Conv2d(4 * c, c, 1)
        self.conv_2 = Conv3XC(c, c)
        self.upsampler = nn.Sequential(nn.Conv2d(c, num_out_ch * upscale * upscale, 3, padding=1), nn.PixelShuffle(upscale))

    @property
    def config(self) -> dict[str, object]:
        """Constructor arguments that rebuild this network."""
        return {
            "num_in_ch": self.num_in_ch,
            "num_out_ch": self.num_out_ch,
            "feature_channels": self.feature_channels,
            "upscale": self.upscale,
            "norm": self.no_norm is None,
            "img_range": self.img_range,
            "rgb_mean": tuple(float(v) for v in self.mean.flatten()),
        }

    def conv3xc_layers(self) -> dict[str, Conv3XC]:
        """All re-parameterisable convolutions by their state-dict prefix."""
        return {name: m for name, m in self.named_modules() if isinstance(m, Conv3XC)}

    def reparameterize(self) -> None:
        """Refresh every fused ``eval_conv`` from its branches."""
        for m in self.conv3xc_layers().values():
            m.reparameterize()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale ``x`` of shape (N, C, H, W)."""
        if self.no_norm is None:
            x = (x - self.mean.to(x.dtype)) * self.img_range
        feat = self.conv_1(x)
        b1, _ = self.block_1(feat)
        b2, _ = self.block_2(b1)
        b3, _ = self.block_3(b2)
        b4, _ = self.block_4(b3)
        b5, _ = self.block_5(b4)
        b6, b6_tap = self.block_6(b5)
        fused = self.conv_cat(torch.cat([feat, self.conv_2(b6), b1, b6_tap], dim=1))
        return self.upsampler(fused)
