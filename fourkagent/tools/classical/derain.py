"""Rain-streak removal guided by the dominant streak orientation.

Rain streaks are thin, bright, achromatic and share one orientation. The orientation is found by
opening the white top-hat of the channel-minimum with line elements at 36 angles; the strongest
angle, its contrast against the other angles and the streaks' finite length (a long line element
kills them, while natural straight edges survive) give a 0..1 rain evidence that scales the
correction (0 on clean photos).

``derain_oriented``: the rain layer is the achromatic residual of a morphological opening across
the streaks, kept only where it is elongated along them (directional opening); it is subtracted.
``derain_guided``: the first estimate is used as the guide of a guided filter applied to the rainy
image (a low-pass that follows the rain-free structure), and the achromatic positive detail left
above that low-pass is thresholded away.
"""

from __future__ import annotations

import cv2
import numpy as np

from fourkagent.imaging import Image
from fourkagent.tools.base import Tool, ToolSpec
from fourkagent.tools.classical import _filters as F

_BORDER = cv2.BORDER_REFLECT
_ANGLES = tuple(range(0, 180, 5))


def line_kernel(theta: float, length: int) -> np.ndarray:
    """Binary line structuring element of ``length`` px at ``theta`` degrees (counter-clockwise)."""
    n = int(length) | 1
    c = n // 2
    k = np.zeros((n, n), np.uint8)
    dx = np.cos(np.radians(theta)) * (length - 1) / 2.0
    dy = -np.sin(np.radians(theta)) * (length - 1) / 2.0
    cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1, 1)
    return k


def _open(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    return cv2.morphologyEx(x, cv2.MORPH_OPEN, k, borderType=_BORDER)


def _smoothstep(x: float, a: float, b: float) -> float:
    t = float(np.clip((x - a) / (b - a), 0.0, 1.0))
    return t * t * (3.0 - 2.0 * t)


def detect_rain(img: Image, crop: int = 512) -> tuple[float, float]:
    """``(angle, evidence)``: dominant bright-streak orientation and a 0..1 rain evidence."""
    h, w = img.shape[:2]
    t, l = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    m = np.ascontiguousarray(img[t : t + crop, l : l + crop].min(axis=2))
    if min(m.shape) < 16:
        return 0.0, 0.0
    tophat = m - _open(m, np.ones((5, 5), np.uint8))
    resp = np.array([_open(tophat, line_kernel(a, 11)).mean() for a in _ANGLES])
    i = int(np.argmax(resp))
    angle = float(_ANGLES[i])
    if resp[i] <= 1e-6:
        return angle, 0.0
    contrast = resp[i] / (float(np.median(resp)) + 1e-9)
    finite = resp[i] / (_open(tophat, line_kernel(angle, 31)).mean() + 1e-9)
    return angle, _smoothstep(contrast, 1.6, 2.6) * _smoothstep(finite, 2.5, 4.5)


def rain_layer(img: Image, angle: float, across: int = 7, along: int = 7) -> np.ndarray:
    """Achromatic rain layer: per-channel residual of an opening across the streaks (min over
    channels), then a directional opening that keeps only what is elongated along them."""
    k = line_kernel(angle + 90.0, across)
    resid = np.minimum.reduce([img[..., c] - _open(np.ascontiguousarray(img[..., c]), k) for c in range(3)])
    return _open(np.ascontiguousarray(resid), line_kernel(angle, along))


def derain_oriented(img: Image) -> Image:
    """Subtract the orientation-aware morphological rain layer."""
    img = np.asarray(img, np.float32)
    angle, g = detect_rain(img)
    if g <= 0.0:
        return img.copy()
    rain = rain_layer(img, angle)
    return np.ascontiguousarray(np.clip(img - g * rain[..., None], 0.0, 1.0), dtype=np.float32)


def derain_guided(img: Image, radius: int = 6, eps: float = 1e-2) -> Image:
    """Guided low-pass with a rain-suppressed guide, then removal of the achromatic bright detail."""
    img = np.asarray(img, np.float32)
    angle, g = detect_rain(img)
    if g <= 0.0:
        return img.copy()
    guide = np.clip(img - rain_layer(img, angle)[..., None], 0.0, 1.0)
    low = F.guided_filter(F.luma64(guide).astype(np.float32), img, radius, eps)
    detail = img - low
    achrom = np.maximum(detail.min(axis=2, keepdims=True), 0.0)  # bright, colourless detail = rain
    out = img - g * achrom
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


TOOLS: list[Tool] = [
    Tool(
        ToolSpec(
            "derain_oriented",
            "deraining",
            "Rain-streak removal: dominant streak angle + directional morphological rain-layer subtraction.",
        ),
        derain_oriented,
    ),
    Tool(
        ToolSpec(
            "derain_guided",
            "deraining",
            "Rain-streak removal: guided low-pass on a rain-suppressed guide + bright achromatic detail thresholding.",
        ),
        derain_guided,
    ),
]
