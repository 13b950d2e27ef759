"""Shared fixtures: real photos from scikit-image, degraded with known parameters; isolated work dirs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fourkagent import degrade
from fourkagent.imageio import save_image
from fourkagent.imaging import Image, as_image


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
