"""Shared fixtures: real photos from scikit-image, degraded with known parameters; isolated work dirs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from fourkagent import degrade
from fourkagent.imageio import save_image
from fourkagent.imaging import Image, as_image

if TYPE_CHECKING:
    from fourkagent.tools.base import ToolRegistry


def photo(name: str = "astronaut") -> Image:
    """A real photo from scikit-image as the internal float type."""
    from skimage import data

    return as_image(getattr(data, name)())


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own FOURKAGENT_HOME (runs, checkpoints)."""
    home = tmp_path / "home"
    monkeypatch.setenv("FOURKAGENT_HOME", str(home))
    return home


@pytest.fixture
def noisy_small(tmp_path: Path) -> tuple[Path, Image]:
    """A 96×96 crop of the astronaut's face region, ×2 down and σ=15 noise; returns (path, clean ×2 reference)."""
    clean = photo()[32:224, 160:352]
    lr = degrade.add_noise(degrade.downscale(clean, 2), 15, seed=3)
    path = tmp_path / "noisy_small.png"
    save_image(lr, path)
    return path, clean


def write(tmp_path: Path, name: str, img: Image) -> Path:
    """Save an image losslessly into the test directory."""
    p = tmp_path / name
    save_image(img, p)
    return p


def load_u8(path: Path) -> np.ndarray:
    """Read back an 8-bit output as float."""
    from PIL import Image as PILImage

    return as_image(np.asarray(PILImage.open(path).convert("RGB")))


def scaling_registry() -> ToolRegistry:
    """Four tools that only scale brightness (two denoising, two dehazing): for scorer tests with fixed metrics."""
    from fourkagent.tools.base import Tool, ToolRegistry, ToolSpec

    def tool(name: str, cat: str, gain: float) -> Tool:
        return Tool(ToolSpec(name, cat, name), lambda img: np.clip(img * gain, 0.0, 1.0).astype(np.float32))

    return ToolRegistry([tool("dn_dim", "denoising", 0.7), tool("dn_keep", "denoising", 1.0),
                         tool("dh_dim", "dehazing", 0.8), tool("dh_boost", "dehazing", 1.2)])
