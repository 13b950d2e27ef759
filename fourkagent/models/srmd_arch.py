"""SRMD (Zhang, Zuo & Zhang, CVPR 2018): super-resolution for multiple degradations, as srmd-ncnn-vulkan ships it.

Twelve 3×3 convolutions (ReLU between them) and a pixel shuffle. The input is the low-resolution image
plus constant *degradation maps*: 15 channels holding the PCA projection of the blur kernel the model
should assume and, for SRMD (not the noise-free SRMDNF), one channel holding the noise level σ/255.
The blur projection is the bicubic-downsampling kernel's, as srmd-ncnn-vulkan's pre-processing shader
writes it; σ is what the caller measured (``fourkagent.perception.measures.noise_sigma``). So SRMD is a
*non-blind* SR model: given a noisy low-resolution image and its σ it upscales and denoises in one pass,
without amplifying the noise as a clean-input SR model does.

:class:`SRMD` builds the maps itself from the σ it is given; :class:`AtNoiseLevel` fixes σ, so it maps
(1, 3, H, W) to (1, 3, sH, sW) and fits :func:`fourkagent.models.tiling.run_model`. The input is
edge-replicated by :data:`PAD` pixels (the convolutions' receptive radius), as the ncnn pre-processing
clamps its reads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own alias
from torch import nn

PAD = 12
"""Input pixels each side the twelve 3×3 convolutions see past a tile's edge."""
BICUBIC_PCA = (
    -1.12360956e-08, -1.36899159e-08, 1.85637958e-02, 2.86066886e-08, 3.35292965e-02, 8.37272935e-08,
    -2.54424009e-07, -3.16234976e-02, -1.35169253e-02, -1.10466090e-08, 3.84753793e-02, 3.79465739e-08,
    -2.44916752e-01, -8.02213490e-01, -5.40549755e-01,
)
"""PCA projection of the bicubic kernel (srmd-ncnn-vulkan's ``degradation_vector``)."""


class SRMD(nn.Module):
    """SRMD / SRMDNF ×``scale``: 3 image + 15 kernel (+ 1 noise) input channels, ``width`` features."""

    def __init__(self, in_ch: int = 19, width: int = 128, depth: int = 12, scale: int = 4) -> None:
        """``in_ch`` 19 for SRMD (with a noise map), 18 for SRMDNF; ``depth`` convolutions in all."""
        super().__init__()
        if in_ch not in (18, 19):
            raise ValueError(f"SRMD takes 18 or 19 input channels, not {in_ch}")
        layers: list[nn.Module] = []
        prev = in_ch
        for _ in range(depth - 1):
            layers += [nn.Conv2d(prev, width, 3, padding=1), nn.ReLU(inplace=True)]
            prev = width
        layers.append(nn.Conv2d(prev, 3 * scale * scale, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.scale = scale
        self.in_ch = in_ch

    def maps(self, x: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
        """The network input: ``x`` (N, 3, H, W) with the degradation-map channels appended (``sigma``: noise
        level in 0-255 units; SRMDNF has no noise map)."""
        n, _, h, w = x.shape
        extra = [torch.tensor(BICUBIC_PCA, dtype=x.dtype, device=x.device)]
        if self.in_ch == 19:
            extra.append(torch.full((1,), float(sigma) / 255.0, dtype=x.dtype, device=x.device))
        planes = torch.cat(extra)[None, :, None, None].expand(n, -1, h, w)
        return torch.cat([x, planes], dim=1)

    def forward(self, x: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 3, sH, sW), not clipped; ``sigma`` is the input's noise level (0-255)."""
        h, w = x.shape[-2:]
        y = self.body(self.maps(F.pad(x, (PAD, PAD, PAD, PAD), mode="replicate"), sigma))
        y = F.pixel_shuffle(y, self.scale)
        s = self.scale
        return y[:, :, PAD * s : (PAD + h) * s, PAD * s : (PAD + w) * s]


class AtNoiseLevel(nn.Module):
    """An :class:`SRMD` run at one noise level (a view: the weights are shared, not copied)."""

    def __init__(self, net: SRMD, sigma: float) -> None:
        """Wrap ``net`` for inputs whose noise level is ``sigma`` (0-255 units)."""
        super().__init__()
        self.net = net
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 3, sH, sW)."""
        return self.net(x, self.sigma)
