"""Old-photo restoration: scratch/dust removal by detection + inpainting, and fade/cast correction.

Defects are thin or tiny structures that stand out from their surroundings in luma: the white
top-hat (bright) and black top-hat (dark) with a small disk, thresholded against the residual's
robust spread. Connected components are kept when they look like scratches (long and thin, at
least ~8% of the short side) or dust (a few pixels, compact, high contrast); they are inpainted
(Telea) from their surroundings. Fading and a warm (sepia/yellowed) cast are corrected by a
levels stretch of the robust 1/99 percentile range, blended in with the strength of the cast.
``simulate_old_photo`` makes test images with known clean originals.
"""

from __future__ import annotations

import cv2
import numpy as np

from fourkagent.imaging import Image
from fourkagent.tools.base import Tool, ToolSpec
from fourkagent.tools.classical import _filters as F


def _smoothstep(x: float, a: float, b: float) -> float:
    t = float(np.clip((x - a) / (b - a), 0.0, 1.0))
    return t * t * (3.0 - 2.0 * t)


def simulate_old_photo(img: Image, severity: int = 3, seed: int = 0) -> Image:
    """Synthetic old print: faded sepia tone curve, long thin scratches and dust specks."""
    rng = np.random.default_rng(seed)
    img = np.asarray(img, np.float32)
    h, w = img.shape[:2]
    s = float(np.clip(severity, 1, 5))
    gain = 1.0 - 0.09 * s
    lift = np.array([0.13, 0.10, 0.05], np.float32) * s / 3.0
    tint = np.array([1.0, 0.95, 0.82], np.float32)
    out = (img * gain + lift) * tint
    marks = np.zeros((h, w), np.float32)
    for _ in range(int(2 * s)):  # scratches: long, thin, mostly bright, slightly slanted
        x0 = rng.uniform(0, w)
        y0 = rng.uniform(0, h * 0.5)
        length = rng.uniform(0.3, 0.9) * h
        ang = np.radians(90 + rng.uniform(-12, 12))
        x1, y1 = x0 + length * np.cos(ang), y0 + length * np.sin(ang)
        val = rng.uniform(0.35, 0.6) * (1 if rng.random() < 0.75 else -1)
        cv2.line(marks, (round(x0), round(y0)), (round(x1), round(y1)), float(val), 1, cv2.LINE_AA)
    for _ in range(int(25 * s * h * w / 512**2) + 1):  # dust specks
        r = int(rng.integers(1, 3))
        val = rng.uniform(0.35, 0.6) * (1 if rng.random() < 0.5 else -1)
        cv2.circle(marks, (int(rng.integers(0, w)), int(rng.integers(0, h))), r, float(val), -1, cv2.LINE_AA)
    out = out + marks[..., None]
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


def _line(theta: float, length: int) -> np.ndarray:
    n = int(length) | 1
    c = n // 2
    k = np.zeros((n, n), np.uint8)
    dx, dy = np.cos(np.radians(theta)) * (n - 1) / 2.0, -np.sin(np.radians(theta)) * (n - 1) / 2.0
    cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1, 1)
    return k


def defect_mask(img: Image) -> np.ndarray:
    """Boolean mask of scratches (long thin lines) and dust specks (tiny isolated spots)."""
    h, w = img.shape[:2]
    if min(h, w) < 16:
        return np.zeros((h, w), bool)
    y = F.luma64(img).astype(np.float32)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    bright = y - cv2.morphologyEx(y, cv2.MORPH_OPEN, k, borderType=cv2.BORDER_REFLECT)
    dark = cv2.morphologyEx(y, cv2.MORPH_CLOSE, k, borderType=cv2.BORDER_REFLECT) - y
    resid = np.maximum(bright, dark)
    spread = float(np.median(resid)) * 1.4826 + 1e-4
    texture = cv2.blur(resid, (15, 15), borderType=cv2.BORDER_REFLECT)  # local detail level
    strong = (resid > max(0.08, 6.0 * spread)) & (resid > 4.0 * texture)
    # scratches: thin structures that survive an opening with a 15-px line at some angle
    s8 = strong.astype(np.uint8)
    thick = cv2.dilate(s8, np.ones((3, 3), np.uint8))  # so slanted 1-px lines fit a line element
    linear = np.zeros_like(s8)
    for a in range(0, 180, 15):
        linear |= cv2.morphologyEx(thick, cv2.MORPH_OPEN, _line(a, 15), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    linear &= s8
    keep_lines = np.zeros_like(s8)
    joined = cv2.dilate(linear, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    if n > 1:
        extent = np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]).astype(np.float64)
        area = stats[1:, cv2.CC_STAT_AREA]
        ok = np.zeros(n, bool)
        ok[1:] = (extent >= max(20.0, 0.08 * min(h, w))) & (area <= 5.0 * extent)
        keep_lines = ok[labels].astype(np.uint8) & s8
    # dust: tiny compact isolated spots
    isolated = (resid > max(0.15, 8.0 * spread)) & (resid > 8.0 * texture)
    spots = (isolated.astype(np.uint8) & (1 - cv2.dilate(keep_lines, np.ones((3, 3), np.uint8)))).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(spots, connectivity=8)
    keep_dust = np.zeros_like(s8)
    if n > 1:
        extent = np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT])
        ok = np.zeros(n, bool)
        ok[1:] = (stats[1:, cv2.CC_STAT_AREA] <= 16) & (extent <= 6)
        keep_dust = ok[labels].astype(np.uint8)
    mask = cv2.dilate(keep_lines | keep_dust, np.ones((3, 3), np.uint8))
    return mask.astype(bool)


def correct_fade(img: Image, exclude: np.ndarray | None = None) -> Image:
    """Undo yellowing/fading: partial black-lift removal and white stretch (one affine map for all
    channels) plus half of the per-channel range difference (cast). Blended in with the strength
    of the warm cast (red range above blue), so neutral or cool images are left as they are."""
    px = img[~exclude] if exclude is not None and int((~exclude).sum()) > 100 else img.reshape(-1, 3)
    lo = np.percentile(px, 1.0, axis=0)
    hi = np.percentile(px, 99.0, axis=0)
    g = _smoothstep(float((lo[0] - lo[2]) + (hi[0] - hi[2])), 0.08, 0.2)
    L, H = float(lo.min()), float(hi.max())
    if g <= 0.0 or H - L < 0.05:
        return img.copy()
    t_lo, t_hi = 0.5 * L, min(1.0, H + 0.5 * (1.0 - H))
    scale = (t_hi - t_lo) / (H - L)
    out = (img - L) * scale + t_lo
    lo2, hi2 = (lo - L) * scale + t_lo, (hi - L) * scale + t_lo
    base = float(lo2.min())
    gain = 1.0 + 0.5 * ((hi2.max() - base) / np.maximum(hi2 - base, 0.05) - 1.0)
    out = (out - base) * gain.astype(np.float32) + base
    out = g * out + (1.0 - g) * img
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


def restore_old_photo(img: Image) -> Image:
    """Inpaint detected scratches/dust, then correct fading and colour cast."""
    img = np.asarray(img, np.float32)
    mask = defect_mask(img)
    out = img.copy()
    if mask.any():
        # OpenCV's float inpainting is unstable; 8-bit is exact enough for the filled pixels only
        u8 = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
        filled = cv2.inpaint(u8, mask.astype(np.uint8), 3, cv2.INPAINT_TELEA).astype(np.float32) / 255.0
        out[mask] = filled[mask]
    return correct_fade(out, mask)


TOOLS: list[Tool] = [
    Tool(
        ToolSpec(
            "oldphoto_restore",
            "old photo restoration",
            "Old photo: scratch/dust detection (top-hat + shape) with inpainting, then fade/colour-cast levels.",
        ),
        restore_old_photo,
    ),
]
