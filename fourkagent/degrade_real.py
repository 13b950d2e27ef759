"""Realistic degradations (beside :mod:`fourkagent.degrade`'s textbook ones), for benchmarks and fitting.

- :func:`sensor_noise`: a camera pipeline in miniature — linear light, RGGB Bayer mosaic, Poisson shot
  noise + Gaussian read noise per photosite, demosaicing (which correlates the noise across channels and
  neighbours), gamma, and JPEG at camera quality.
- :func:`camera_shake`: blur by a random hand-shake trajectory (a smoothed random walk), plus mild noise.
- :func:`depth_haze`: scattering with a depth map that varies across the frame (a random smooth
  far-to-near field), not a global ramp.
- :func:`low_light`: exposure cut in linear light with shot and read noise at the dark levels.

Every function takes and returns float32 HxWx3 RGB in [0, 1] and is deterministic for a given ``seed``.
"""

from __future__ import annotations

import cv2
import numpy as np

from fourkagent.degrade import add_noise, convolve, downscale, jpeg, rain
from fourkagent.imaging import Image, as_image, to_uint8

GAMMA = 2.2


def _mosaic_noise(linear: np.ndarray, photons: float, read: float, rng: np.random.Generator) -> np.ndarray:
    """Bayer-sample linear RGB, add shot (``photons`` at full scale) and read noise, demosaic; linear out."""
    h, w = linear.shape[:2]
    h2, w2 = h - h % 2, w - w % 2
    lin = linear[:h2, :w2]
    bayer = np.empty((h2, w2), np.float32)
    bayer[0::2, 0::2] = lin[0::2, 0::2, 0]  # R
    bayer[0::2, 1::2] = lin[0::2, 1::2, 1]  # G
    bayer[1::2, 0::2] = lin[1::2, 0::2, 1]  # G
    bayer[1::2, 1::2] = lin[1::2, 1::2, 2]  # B
    shot = rng.poisson(np.clip(bayer, 0, 1) * photons).astype(np.float32) / photons
    raw = np.clip(shot + rng.normal(0.0, read, bayer.shape).astype(np.float32), 0.0, 1.0)
    rgb = cv2.cvtColor((raw * 65535).astype(np.uint16), cv2.COLOR_BayerBG2RGB).astype(np.float32) / 65535
    out = linear.copy()
    out[:h2, :w2] = rgb
    return out


def sensor_noise(img: Image, photons: float = 60.0, read: float = 0.01, quality: int = 90, seed: int = 0) -> Image:
    """Smartphone-like noise: fewer ``photons`` = noisier; JPEG at ``quality`` (``0`` skips it)."""
    rng = np.random.default_rng(seed)
    linear = np.power(np.clip(img, 0, 1), GAMMA)
    noisy = np.power(_mosaic_noise(linear, photons, read, rng), 1 / GAMMA)
    out = as_image(noisy)
    return jpeg(out, quality) if quality else out


def shake_kernel(length: float, seed: int = 0, size: int | None = None) -> np.ndarray:
    """A camera-shake PSF: a random walk with inertia spanning ``length`` pixels, drawn sub-pixel, its centroid
    at the kernel's centre (the sharp image stays registered with the blurred one, as for a mid-exposure frame)."""
    rng = np.random.default_rng(seed)
    steps = 48
    vel = rng.normal(0, 1, 2)
    pts = [np.zeros(2)]
    for _ in range(steps):  # strong inertia: smooth arcs, as hand shake over one exposure mostly is
        vel = 0.95 * vel + rng.normal(0, 0.25, 2)
        pts.append(pts[-1] + vel)
    p = np.array(pts)
    p -= p.mean(axis=0)
    extent = max(np.ptp(p[:, 0]), np.ptp(p[:, 1]), 1e-6)
    p *= length / extent
    k = max(size or int(np.ceil(length)) + 3, 3) | 1  # room for the whole trajectory: nothing is clipped
    kernel = np.zeros((k, k), np.float32)
    c = k // 2
    for x, y in p:  # bilinear splat of each trajectory sample
        x0, y0 = int(np.floor(x + c)), int(np.floor(y + c))
        fx, fy = x + c - x0, y + c - y0
        for dy, dx, wgt in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
            if 0 <= y0 + dy < k and 0 <= x0 + dx < k:
                kernel[y0 + dy, x0 + dx] += wgt
    return kernel / max(float(kernel.sum()), 1e-8)


def camera_shake(img: Image, length: float = 15.0, noise: float = 2.0, seed: int = 0) -> Image:
    """Blur by :func:`shake_kernel` in linear light, then Gaussian noise of ``noise`` (0-255 units)."""
    rng = np.random.default_rng(seed + 1)
    linear = np.power(np.clip(img, 0, 1), GAMMA)
    blurred = np.power(np.clip(convolve(linear, shake_kernel(length, seed)), 0, 1), 1 / GAMMA)
    return as_image(blurred + rng.normal(0, noise / 255, img.shape).astype(np.float32))


def depth_map(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A smooth depth field in [0.2, 1] (1 = far): a tilted ground plane plus low-frequency variation."""
    rng = np.random.default_rng(seed)
    h, w = shape
    tilt = np.linspace(1.0, 0.2, h, dtype=np.float32)[:, None] * np.ones((1, w), np.float32)
    coarse = cv2.resize(rng.random((4, 4)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    d = 0.7 * tilt + 0.3 * coarse
    return np.clip((d - d.min()) / max(np.ptp(d), 1e-6) * 0.8 + 0.2, 0.2, 1.0)


def depth_haze(img: Image, beta: float = 1.5, airlight: float = 0.85, seed: int = 0) -> Image:
    """I = J t + A (1 - t), t = exp(-beta · depth) over :func:`depth_map`, with a slightly tinted airlight."""
    rng = np.random.default_rng(seed)
    t = np.exp(-beta * depth_map(img.shape[:2], seed))[..., None]
    a = np.clip(airlight + rng.normal(0, 0.03, 3), 0.5, 1.0).astype(np.float32)
    return as_image(img * t + a * (1 - t))


def low_light(img: Image, exposure: float = 0.1, photons: float = 400.0, read: float = 0.004, seed: int = 0) -> Image:
    """Under-exposure by ``exposure`` in linear light with sensor noise at the resulting low signal."""
    rng = np.random.default_rng(seed)
    linear = np.power(np.clip(img, 0, 1), GAMMA) * exposure
    return as_image(np.power(_mosaic_noise(linear, photons, read, rng), 1 / GAMMA))


def streak_rain(img: Image, density: float = 0.004, seed: int = 0) -> Image:
    """Rain streaks of mixed lengths and a shared slant, with a slight veil."""
    rng = np.random.default_rng(seed)
    angle = float(rng.uniform(60, 80))
    out = rain(img, density * 0.6, length=int(rng.integers(11, 17)), angle=angle, seed=seed)
    out = rain(out, density * 0.4, length=int(rng.integers(21, 31)), angle=angle + 3, seed=seed + 1)
    return as_image(0.92 * out + 0.08 * 0.8)


LR_FAMILIES: tuple[str, ...] = ("clean", "noise", "sensor", "jpeg", "blur", "sensor+jpeg", "blur+noise")
"""Small-image degradations for SR cases (:func:`small_degraded`)."""
LR_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "benchmark": {"blur_sigma": (1.2, 2.4), "noise_sigma": (8, 20), "noise_sigma_with_blur": (5, 12),
                  "photons": (25, 100), "jpeg_quality": (30, 75), "jpeg_quality_with_noise": (50, 85)},
    "training": {"blur_sigma": (0.8, 2.8), "noise_sigma": (3, 25), "noise_sigma_with_blur": (2, 15),
                 "photons": (15, 200), "jpeg_quality": (25, 90), "jpeg_quality_with_noise": (40, 92)},
}
"""Strength ranges: ``benchmark`` (``benchmarks/realworld.py``) and the wider ``training`` ones (Q-MoE data)."""


def _gaussian_blur(img: Image, sigma: float) -> Image:
    k = int(np.ceil(3 * sigma))
    g = np.exp(-0.5 * (np.arange(-k, k + 1) / sigma) ** 2)
    return convolve(img, np.outer(g, g) / np.outer(g, g).sum())


def small_degraded(hr: Image, family: str, scale: int, rng: np.random.Generator, seed: int = 0,
                   ranges: str = "benchmark") -> tuple[Image, dict[str, float]]:
    """A small, degraded version of ``hr`` and its drawn strengths: optional Gaussian blur of the large image
    (``blur``: a soft lens or a bad resize), bicubic ``scale``× downscale, then Gaussian noise (``noise``),
    Bayer sensor noise (``sensor``) and/or JPEG with 4:2:0 chroma (``jpeg``), as named in ``family`` (one of
    :data:`LR_FAMILIES`; ``+`` joins two). Quantised to 8 bits like a file."""
    r = LR_RANGES[ranges]
    p: dict[str, float] = {}
    img = hr
    if "blur" in family:
        p["blur_sigma"] = round(float(rng.uniform(*r["blur_sigma"])), 2)
        img = _gaussian_blur(img, p["blur_sigma"])
    img = downscale(img, scale)
    if "noise" in family.split("+"):
        p["noise_sigma"] = round(float(rng.uniform(*r["noise_sigma_with_blur" if "blur" in family else "noise_sigma"])), 1)
        img = add_noise(img, p["noise_sigma"], seed=seed)
    if "sensor" in family:
        p["photons"] = round(float(rng.uniform(*r["photons"])), 1)
        img = sensor_noise(img, photons=p["photons"], quality=0, seed=seed)
    if "jpeg" in family:
        lo, hi = r["jpeg_quality" if family == "jpeg" else "jpeg_quality_with_noise"]
        p["jpeg_quality"] = int(rng.integers(lo, hi + 1))
        img = jpeg(img, int(p["jpeg_quality"]))
    return as_image(to_uint8(img)), p


RESTORATION_KINDS: tuple[str, ...] = ("shake", "haze", "rain", "dark", "mild")
"""Full-size degradations of :func:`real_degraded` beside :data:`LR_FAMILIES` (``mild``: a good camera's
file — faint sensor noise and high-quality JPEG — the "clean" input of a false alarm)."""


def real_degraded(img: Image, kind: str, rng: np.random.Generator, seed: int = 0) -> Image:
    """``img`` degraded at its own size by ``kind`` (one of :data:`LR_FAMILIES` or :data:`RESTORATION_KINDS`),
    strengths drawn from ``rng`` over the ``training`` ranges (camera shake 5–17 px, depth haze β 0.6–2.2,
    streak rain 0.2–0.7 %, low light ×0.04–0.3), quantised to 8 bits like a file."""
    if kind in LR_FAMILIES:
        return small_degraded(img, kind, 1, rng, seed, ranges="training")[0]
    if kind == "shake":
        out = camera_shake(img, float(rng.uniform(5, 17)), float(rng.uniform(0.5, 3)), seed=seed)
    elif kind == "haze":
        out = depth_haze(img, float(rng.uniform(0.6, 2.2)), float(rng.uniform(0.75, 0.95)), seed=seed)
    elif kind == "rain":
        out = streak_rain(img, float(rng.uniform(0.002, 0.007)), seed=seed)
    elif kind == "dark":
        out = low_light(img, float(rng.uniform(0.04, 0.3)), seed=seed)
    elif kind == "mild":
        out = sensor_noise(img, photons=float(rng.uniform(400, 1500)), quality=int(rng.integers(85, 96)), seed=seed)
    else:
        raise ValueError(f"unknown degradation {kind!r}")
    return as_image(to_uint8(out))
