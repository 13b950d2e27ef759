"""Classical low-light enhancement: CLAHE, adaptive gamma and the reference's constant shift."""

from __future__ import annotations

import cv2
import numpy as np

from fourkagent.imaging import Image, as_image
from fourkagent.tools.base import Tool, ToolSpec


def clahe(img: Image, clip: float = 2.0, tiles: int = 8) -> Image:
    """Contrast-limited adaptive histogram equalisation of Lab lightness (16-bit precision)."""
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2Lab)
    light = np.clip(lab[..., 0] / 100.0 * 65535.0, 0, 65535).astype(np.uint16)
    eq = cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles, tiles)).apply(light)
    lab[..., 0] = eq.astype(np.float32) / 65535.0 * 100.0
    return as_image(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB))


def _with_value(img: Image, new_v: np.ndarray) -> Image:
    v = img.max(axis=2)
    ratio = new_v / np.maximum(v, 1e-4)
    return as_image(img * ratio[..., None])


def adaptive_gamma(img: Image, target: float = 0.45) -> Image:
    """Gamma on HSV value chosen so the median brightness moves to ``target``; hue/saturation kept."""
    v = img.max(axis=2)
    med = float(np.clip(np.median(v), 1e-3, 0.999))
    g = float(np.clip(np.log(target) / np.log(med), 0.2, 1.0))
    return _with_value(img, np.power(v, g))


def constant_shift(img: Image, shift: float = 40.0 / 255.0) -> Image:
    """The reference's +40 (of 255) shift on HSV value."""
    v = img.max(axis=2)
    return _with_value(img, np.clip(v + shift, 0.0, 1.0))


TOOLS: list[Tool] = [
    Tool(ToolSpec("brighten_clahe", "brightening", "CLAHE on Lab lightness (clip 2, 8×8 tiles)"), clahe),
    Tool(ToolSpec("brighten_gamma", "brightening", "Adaptive gamma on HSV value towards a natural median"), adaptive_gamma),
    Tool(ToolSpec("brighten_shift", "brightening", "Constant +40/255 shift of HSV value (reference tool)"), constant_shift),
]
