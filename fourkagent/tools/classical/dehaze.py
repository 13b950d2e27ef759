"""Single-image dehazing with physical priors (haze model ``I = J t + A (1 - t)``).

``dehaze_dcp``: He et al.'s dark-channel prior, transmission refined with a guided filter.
``dehaze_cap``: Zhu et al.'s colour-attenuation prior (depth linear in brightness minus
saturation, with their published coefficients), locally minimum-filtered and guided-filter refined.
Both estimate the atmospheric light from the haziest (brightest dark-channel) pixels and scale the
correction by a haze gate (the darkest pixels are lifted by a veil): 0 leaves the image untouched.
Known limit: gray, low-contrast scenes without any dark pixel look hazy to both priors.
"""

from __future__ import annotations

import cv2
import numpy as np

from fourkagent.imaging import Image
from fourkagent.tools.base import Tool, ToolSpec
from fourkagent.tools.classical import _filters as F


def _patch(img: Image) -> int:
    """Dark-channel patch size scaled to the image (15 px at 300 px short side, at most 31)."""
    return int(np.clip(round(min(img.shape[:2]) / 20.0), 1, 31))


def _smoothstep(x: float, a: float, b: float) -> float:
    t = float(np.clip((x - a) / (b - a), 0.0, 1.0))
    return t * t * (3.0 - 2.0 * t)


def haze_gate(dark: np.ndarray, A: np.ndarray) -> float:
    """0..1 evidence of a haze veil: haze lifts even the darkest pixels (1st percentile of the
    dark channel, relative to the airlight, from ~0.02 on clear photos to >= 0.15 under haze)."""
    return _smoothstep(float(np.percentile(dark, 1.0)) / float(A.mean()), 0.02, 0.10)


def dark_channel(img: Image, patch: int) -> np.ndarray:
    """Min over colour channels, then a ``patch`` x ``patch`` minimum filter."""
    m = img.min(axis=2)
    if patch <= 1:
        return m
    return cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_RECT, (patch, patch)), borderType=cv2.BORDER_REFLECT)


def airlight(img: Image, dark: np.ndarray) -> np.ndarray:
    """Atmospheric light: mean colour of the brightest 10% of the 0.1% haziest pixels."""
    flat = dark.ravel()
    n = max(1, flat.size // 1000)
    idx = np.argpartition(flat, -n)[-n:]
    cand = img.reshape(-1, 3)[idx]
    bright = cand.sum(axis=1)
    top = cand[bright >= np.quantile(bright, 0.9)]
    return np.clip(top.mean(axis=0), 0.05, 1.0).astype(np.float32)


def _recover(img: Image, t: np.ndarray, A: np.ndarray, t0: float = 0.1) -> Image:
    t = np.clip(t, t0, 1.0)[..., None]
    out = (img - A) / t + A
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


def _refine(img: Image, t: np.ndarray) -> np.ndarray:
    r = max(2, 2 * _patch(img))
    return F.fast_guided_filter(F.luma64(img).astype(np.float32), t.astype(np.float32), r, 1e-3)


def dehaze_dcp(img: Image, omega: float = 0.9) -> Image:
    """Dark-channel-prior dehazing with guided-filter transmission refinement."""
    img = np.asarray(img, np.float32)
    p = _patch(img)
    dark = dark_channel(img, p)
    A = airlight(img, dark)
    g = haze_gate(dark, A)
    if g <= 0.0:
        return img.copy()
    t = 1.0 - omega * g * dark_channel(img / A, p)
    t = _refine(img, t)
    return _recover(img, t, A)


def dehaze_cap(img: Image) -> Image:
    """Colour-attenuation-prior dehazing (linear depth model from value and saturation)."""
    img = np.asarray(img, np.float32)
    p = max(1, _patch(img) // 2)
    dark = dark_channel(img, p)
    A = airlight(img, dark)
    g = haze_gate(dark, A)
    if g <= 0.0:
        return img.copy()
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    v, s = hsv[..., 2], hsv[..., 1]
    depth = 0.121779 + 0.959710 * v - 0.780245 * s
    depth = cv2.erode(depth, cv2.getStructuringElement(cv2.MORPH_RECT, (p, p)), borderType=cv2.BORDER_REFLECT)
    depth = _refine(img, depth)
    t = np.exp(-g * depth)
    return _recover(img, t, A)


TOOLS: list[Tool] = [
    Tool(
        ToolSpec("dehaze_dcp", "dehazing", "Dark-channel-prior dehazing with guided-filter transmission refinement."),
        dehaze_dcp,
    ),
    Tool(
        ToolSpec(
            "dehaze_cap", "dehazing", "Colour-attenuation-prior dehazing (depth from brightness minus saturation)."
        ),
        dehaze_cap,
    ),
]
