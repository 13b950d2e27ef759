"""Single-image dehazing with physical priors (haze model ``I = J t + A (1 - t)``).

``dehaze_dcp``: He et al.'s dark-channel prior, transmission refined with a guided filter.
``dehaze_cap``: Zhu et al.'s colour-attenuation prior (depth linear in brightness minus
saturation, with their published coefficients), locally minimum-filtered and guided-filter refined.
Both estimate the atmospheric light from the haziest (brightest dark-channel) pixels and scale the
correction by a haze gate (the darkest pixels are lifted by a veil): 0 leaves the image untouched.
Both take their strength from the *sure veil* (:func:`veil`): the lower envelope of the dark channel
over windows of 1/6 of the short side. The plain dark channel also counts a pale scene's own
brightness as haze (bright walls, skin, stained tissue at light haze: over-dehazed by up to 8 dB);
the envelope counts only what lifts every pixel around, and DCP adds back 15 % of the local excess
for depth edges; CAP's scattering coefficient is fitted to the envelope instead of fixed at 1.
Both remove ``OMEGA`` = 0.95 of the estimated haze (He et al.'s value): a smooth (defocused) scene has a
high dark channel everywhere, the envelope cannot tell it from a veil, and removing all of it over-dehazes.
Measured, mean PSNR gain over ``degrade.haze`` levels 1..5 (before → after): 16 photos at 192 px, DCP 7.26 →
8.95 dB (every level better; level 1: 1.98 → 5.71), CAP 5.20 → 6.65 dB (level 3 −0.2, the others better);
the same photos ×4 down-scaled (96 px): DCP 6.06 → 8.07, CAP 4.66 → 6.12; 96 px after a radius-4 defocus:
DCP 4.04 → 4.92, CAP 4.09 → 2.64 (with all of the haze removed: DCP 3.21); other depth maps (horizontal, step,
radial, random; grey and bluish airlight): DCP +0.3..+1.6 dB, CAP +0.4..+2.0 dB.
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


def _min_filter(a: np.ndarray, size: int) -> np.ndarray:
    """``size`` x ``size`` minimum filter (reflected borders)."""
    if size <= 1:
        return a
    return cv2.erode(a, cv2.getStructuringElement(cv2.MORPH_RECT, (size, size)), borderType=cv2.BORDER_REFLECT)


def dark_channel(img: Image, patch: int) -> np.ndarray:
    """Min over colour channels, then a ``patch`` x ``patch`` minimum filter."""
    return _min_filter(img.min(axis=2), patch)


VEIL_WINDOW = 6.0
"""The veil (depth) is taken as smooth over windows of 1/this of the image's short side."""
LOCAL_SHARE = 0.15
"""Share of the dark channel's excess over the veil that DCP still counts as haze (depth edges)."""


def veil(dark: np.ndarray) -> np.ndarray:
    """The sure haze veil (1 - t) from a dark channel normalised by the airlight: its lower envelope over
    windows of 1/``VEIL_WINDOW`` of the short side (minimum filter, then a box filter of the same size).
    A scene's own pale surfaces lift the dark channel only where they are; a veil lifts every pixel."""
    q = int(max(1, round(min(dark.shape[:2]) / VEIL_WINDOW)))
    return np.clip(cv2.blur(_min_filter(dark, q), (q, q), borderType=cv2.BORDER_REFLECT), 0.0, 0.95)


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


OMEGA = 0.95
"""Share of the estimated haze that is removed (He et al.'s value; see the module docstring)."""


def dehaze_dcp(img: Image, local_share: float = LOCAL_SHARE) -> Image:
    """Dark-channel-prior dehazing: haze = the sure veil plus ``local_share`` of the dark channel's excess
    over it, guided-filter refined."""
    img = np.asarray(img, np.float32)
    p = _patch(img)
    dark = dark_channel(img, p)
    A = airlight(img, dark)
    g = haze_gate(dark, A)
    if g <= 0.0:
        return img.copy()
    dn = dark_channel(img / A, p)
    v = veil(dn)
    t = 1.0 - OMEGA * g * (v + local_share * (dn - v))
    t = _refine(img, t)
    return _recover(img, t, A)


def dehaze_cap(img: Image) -> Image:
    """Colour-attenuation-prior dehazing (linear depth model from value and saturation); the scattering
    coefficient is the median over the image of ``-ln(1 - veil) / depth`` (pixels with depth > 0.2)."""
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
    depth = np.maximum(_refine(img, _min_filter(depth, p)), 1e-3)
    beta = -np.log1p(-veil(dark_channel(img / A, _patch(img)))) / depth
    far = depth > 0.2
    t = np.exp(-OMEGA * g * (float(np.median(beta[far])) if far.any() else 1.0) * depth)
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
