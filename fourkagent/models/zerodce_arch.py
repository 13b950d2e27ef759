"""Zero-DCE low-light enhancement (Guo et al., CVPR 2020): DCE-Net predicts per-pixel curve parameters
``A_i`` and the image is mapped through ``n`` quadratic curves ``x <- x + s * A_i * x * (1 - x)``.

Written to load the ``.pth`` of the PyPI package ``neuro-low-light`` 0.1.0 (keys ``dce_net.conv1..7``,
8 iterations, trained with the curve sign ``s = -1`` and a clamp to [0, 1] after every iteration).
spandrel 0.4.2 does not know Zero-DCE.
"""

from __future__ import annotations

import torch
from torch import nn


class DCENet(nn.Module):
    """Seven 3x3 convolutions (32 channels) with symmetric skip concatenations; ``tanh`` curve maps."""

    def __init__(self, iterations: int = 8, width: int = 32) -> None:
        """``iterations`` curve maps of 3 channels each; ``width`` feature channels."""
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.conv3 = nn.Conv2d(width, width, 3, padding=1)
        self.conv4 = nn.Conv2d(width, width, 3, padding=1)
        self.conv5 = nn.Conv2d(2 * width, width, 3, padding=1)
        self.conv6 = nn.Conv2d(2 * width, width, 3, padding=1)
        self.conv7 = nn.Conv2d(2 * width, 3 * iterations, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 3 * iterations, H, W) curve parameters in [-1, 1]."""
        relu = torch.relu
        x1 = relu(self.conv1(x))
        x2 = relu(self.conv2(x1))
        x3 = relu(self.conv3(x2))
        x4 = relu(self.conv4(x3))
        x5 = relu(self.conv5(torch.cat([x4, x3], 1)))
        x6 = relu(self.conv6(torch.cat([x5, x2], 1)))
        return torch.tanh(self.conv7(torch.cat([x6, x1], 1)))


class ZeroDCE(nn.Module):
    """DCE-Net plus the iterated light-enhancement curve; maps (N, 3, H, W) in [0, 1] to the same size."""

    def __init__(self, iterations: int = 8, width: int = 32, sign: float = -1.0, clamp: bool = True) -> None:
        """``sign``/``clamp``: the curve convention the weights were trained with (see the module doc)."""
        super().__init__()
        self.dce_net = DCENet(iterations, width)
        self.iterations, self.sign, self.clamp = iterations, float(sign), clamp
        self.scale = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The enhanced image (curve parameters are not returned)."""
        curves = self.dce_net(x)
        out = x
        for a in torch.split(curves, 3, dim=1):
            out = out + self.sign * a * out * (1 - out)
            if self.clamp:
                out = out.clamp(0.0, 1.0)
        return out

    @staticmethod
    def iterations_in(state: dict[str, torch.Tensor]) -> int:
        """Number of curve iterations a ``dce_net.*`` state dict was trained with."""
        return int(state["dce_net.conv7.weight"].shape[0]) // 3
