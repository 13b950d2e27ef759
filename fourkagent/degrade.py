"""Synthetic degradations with known parameters, for tests, benchmarks and training.

Every function takes and returns the internal image type (float32 HxWx3 RGB in [0, 1]) and is
deterministic for a given ``seed``.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image as PILImage

from fourkagent.imaging import Image, as_image, to_uint8


def downscale(img: Image, factor: int) -> Image:
    """Bicubic downscale with antialiasing (PIL, MATLAB-like), the classical SR protocol."""
    h, w = img.shape[:2]
    size = (max(1, w // factor), max(1, h // factor))
    chans = [
        np.asarray(PILImage.fromarray(img[..., c].astype(np.float32), mode="F").resize(size, PILImage.BICUBIC))
        for c in range(3)
    ]
    return as_image(np.stack(chans, axis=2))


def add_noise(img: Image, sigma: float, seed: int = 0) -> Image:
    """Additive white Gaussian noise with standard deviation ``sigma`` in 0-255 units."""
    rng = np.random.default_rng(seed)
    return as_image(img + rng.normal(0.0, sigma / 255.0, img.shape).astype(np.float32))


def motion_kernel(length: int, angle: float) -> np.ndarray:
    """Linear motion-blur kernel of ``length`` pixels at ``angle`` degrees, normalised to sum 1."""
    size = int(length) | 1
    k = np.zeros((size, size), np.float32)
    k[size // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D((size / 2 - 0.5, size / 2 - 0.5), angle, 1.0)
    k = cv2.warpAffine(k, rot, (size, size), flags=cv2.INTER_LINEAR)
    return k / max(float(k.sum()), 1e-8)


def disk_kernel(radius: float) -> np.ndarray:
    """Defocus (pillbox) kernel of the given radius, normalised to sum 1."""
    r = int(np.ceil(radius))
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    k = np.clip(radius + 0.5 - np.sqrt(x * x + y * y), 0.0, 1.0).astype(np.float32)
    return k / float(k.sum())


def convolve(img: Image, kernel: np.ndarray) -> Image:
    """Convolve every channel with ``kernel`` (reflect border)."""
    return as_image(cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT))


def motion_blur(img: Image, length: int, angle: float = 30.0) -> Image:
    """Linear motion blur."""
    return convolve(img, motion_kernel(length, angle))


def defocus_blur(img: Image, radius: float) -> Image:
    """Out-of-focus blur with a pillbox kernel."""
    return convolve(img, disk_kernel(radius))


def haze(img: Image, beta: float, airlight: float = 0.9) -> Image:
    """Atmospheric scattering model I = J t + A (1 - t) with a depth ramp (far at the top)."""
    h, w = img.shape[:2]
    depth = np.linspace(1.0, 0.3, h, dtype=np.float32)[:, None, None] * np.ones((1, w, 1), np.float32)
    t = np.exp(-beta * depth)
    return as_image(img * t + airlight * (1.0 - t))


def rain(img: Image, density: float, length: int = 15, angle: float = 75.0, seed: int = 0) -> Image:
    """Bright, slanted rain streaks; ``density`` is the fraction of pixels seeding a streak."""
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    seeds = (rng.random((h, w)) < density).astype(np.float32)
    streaks = cv2.filter2D(seeds, -1, motion_kernel(length, angle) * length, borderType=cv2.BORDER_REFLECT)
    streaks = cv2.GaussianBlur(np.clip(streaks, 0.0, 1.0), (3, 3), 0.6)
    return as_image(img + 0.6 * streaks[..., None])


def darken(img: Image, scale: float, gamma: float = 1.5) -> Image:
    """Low-light: compress exposure by ``scale`` after a gamma curve."""
    return as_image(scale * np.power(np.clip(img, 0.0, 1.0), gamma))


def jpeg(img: Image, quality: int) -> Image:
    """JPEG round trip at the given quality (4:2:0, like most cameras)."""
    buf = io.BytesIO()
    PILImage.fromarray(to_uint8(img)).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return as_image(np.asarray(PILImage.open(buf).convert("RGB")))


DEGRADATIONS: dict[str, Callable[..., Image]] = {
    "noise": add_noise,
    "motion blur": motion_blur,
    "defocus blur": defocus_blur,
    "haze": haze,
    "rain": rain,
    "dark": darken,
    "jpeg compression artifact": jpeg,
    "low resolution": downscale,
}
"""The paper's degradation vocabulary mapped to a synthesiser."""

LEVELS: dict[str, list[dict[str, float]]] = {
    "noise": [{"sigma": s} for s in (5, 10, 20, 35, 50)],
    "motion blur": [{"length": n} for n in (5, 9, 15, 21, 31)],
    "defocus blur": [{"radius": r} for r in (1.5, 2.5, 4.0, 6.0, 8.0)],
    "haze": [{"beta": b} for b in (0.3, 0.6, 1.0, 1.5, 2.2)],
    "rain": [{"density": d} for d in (0.001, 0.002, 0.004, 0.007, 0.012)],
    "dark": [{"scale": s} for s in (0.7, 0.5, 0.35, 0.22, 0.12)],
    "jpeg compression artifact": [{"quality": q} for q in (60, 40, 25, 15, 8)],
    "low resolution": [{"factor": f} for f in (2, 2, 4, 4, 8)],
}
"""Parameters for severities 1 (very low) .. 5 (very high) of every degradation."""


def apply(img: Image, kind: str, level: int, seed: int = 0) -> Image:
    """Apply degradation ``kind`` at severity ``level`` (1..5) with the preset parameters."""
    params = dict(LEVELS[kind][level - 1])
    if kind in ("noise", "rain"):
        params["seed"] = seed
    if kind == "low resolution":
        params["factor"] = int(params["factor"])
    return DEGRADATIONS[kind](img, **params)
