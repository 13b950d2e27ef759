"""Stein's unbiased risk estimate (SURE): a denoiser's error against the unseen clean image.

For white Gaussian noise of known σ, ``y = x + n``, and any (weakly differentiable) denoiser ``f``::

    E‖f(y) − x‖² / N = E‖y − f(y)‖² / N − σ² + 2σ² · div f(y) / N

The divergence is estimated by Monte-Carlo (Ramani, Blu & Unser 2008): one extra run of the denoiser on
``y + ε b`` with a random ±1 probe ``b``, ``div ≈ bᵀ (f(y + ε b) − f(y)) / ε``. Doing nothing has
SURE = σ² exactly, so ``10·log10(σ² / SURE)`` predicts the candidate's PSNR gain over its input without
ground truth.

The estimate assumes additive white noise. Clipping at black and white breaks it (a σ 50 night sky keeps
half its noise), so the sums run over the pixels whose denoised value lies at least ``kσ`` inside [0, 1]
(k = 2, lowered to 1.5, 1, 0.5 until :data:`MIN_SHARE` of the pixels qualify; doing nothing still scores σ²
exactly). On the 16 benchmark photos × 5 noise levels with our four denoisers (192 px), the pick by SURE
alone loses 0.25 dB against the PSNR oracle, 0.60 dB with every pixel summed (at σ 50: 0.27 vs 1.14 dB).
JPEG or a wrong σ (texture read as noise at σ 5) still bias it, so Q-MoE uses it as one feature among
others rather than as the score. The probe runs on a central crop, so its cost does not grow with the image.

Real sensor noise is not white: demosaicing and JPEG correlate it across neighbours and channels. A white
probe then measures the wrong thing — a denoiser trained on real noise (MAXIM, SIDD) barely reacts to it
and SURE calls it useless, while it is the best denoiser by 2 dB. :func:`noise_whiteness` tells the two
apart (2 × the noise σ of the 2×2-binned image over the image's own: ≈ 1 for white noise, more when the
noise is correlated or the image has little noise), and :func:`white_sigma` gives no σ — so no SURE, and
Q-MoE scores on its features alone — above :data:`WHITE_RATIO_MAX`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fourkagent.imaging import Image
from fourkagent.perception.measures import noise_sigma

PROBE_EPS = 0.05
"""Probe amplitude as a fraction of σ (small enough for a local derivative, large enough for 8-bit tools)."""
MAX_GAIN_DB = 20.0
"""Predicted gains are capped here (a SURE at or below zero means "the noise is gone", not infinity)."""
SIDE = 256
"""Side of the central crop the estimate is computed on."""
CLIP_MARGINS: tuple[float, ...] = (2.0, 1.5, 1.0, 0.5)
"""Margins (in σ) from black and white tried in turn for the pixels SURE sums over."""
MIN_SHARE = 0.1
"""The share of pixels a margin must leave; below it at every margin, all pixels are used."""
SURE_STEPS: tuple[str, ...] = ("denoising",)
"""Steps whose candidates get a SURE estimate (execute measures it, the Q-MoE model of the step uses it)."""
WHITE_RATIO_MAX = 1.6
"""Largest :func:`noise_whiteness` at which SURE is used. Measured on 256² centre crops of 8 photos: Gaussian
noise σ 10 gives 1.05–1.79 (σ 25: 1.02–1.20); Bayer-pipeline sensor noise (``degrade_real.sensor_noise``,
20 or 60 photons, JPEG q90) 1.61–2.91; clean photos 1.56–4.0."""


def central_crop(img: Image, side: int = SIDE) -> Image:
    """The central ``side`` × ``side`` window (the whole image when it is smaller)."""
    h, w = img.shape[:2]
    y, x = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return img[y : y + side, x : x + side]


def unclipped(out: Image, sigma: float) -> np.ndarray:
    """The pixels whose estimate ``out`` lies far enough inside [0, 1] for noise of std ``sigma`` not to have
    been clipped (the widest margin of :data:`CLIP_MARGINS` keeping :data:`MIN_SHARE`; else every pixel)."""
    for k in CLIP_MARGINS:
        keep = (out > k * sigma) & (out < 1.0 - k * sigma)
        if keep.mean() >= MIN_SHARE:
            return keep
    return np.ones(out.shape, bool)


def sure_mse(denoiser: Callable[[Image], Image], noisy: Image, out: Image, sigma: float, seed: int = 0) -> float:
    """Per-pixel SURE of ``out = denoiser(noisy)`` for noise std ``sigma`` (image units, 0-1), over the
    :func:`unclipped` pixels."""
    if sigma <= 0.0:
        return float(np.mean((noisy - out) ** 2))
    b = np.random.default_rng(seed).choice(np.array([-1.0, 1.0], np.float32), size=noisy.shape)
    eps = PROBE_EPS * sigma
    probed = denoiser((noisy + eps * b).astype(np.float32))  # not clipped: the identity must score exactly 1
    keep = unclipped(out, sigma)
    div = float(np.sum((b * (probed - out))[keep], dtype=np.float64)) / eps
    n = int(keep.sum())
    return float(np.sum(((noisy - out) ** 2)[keep], dtype=np.float64)) / n - sigma**2 + 2.0 * sigma**2 * div / n


def _whiteness(crop: Image, sigma: float) -> float:
    """2·σ(2×2-binned ``crop``) / ``sigma`` (the crop's own noise σ)."""
    h, w = crop.shape[0] - crop.shape[0] % 2, crop.shape[1] - crop.shape[1] % 2
    a = crop[:h, :w]
    binned = (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 4.0
    return float(2.0 * noise_sigma(binned) / max(sigma, 1e-6))


def noise_whiteness(img: Image, side: int = SIDE) -> float:
    """2·σ(2×2-binned crop) / σ(crop) on the central crop: ≈ 1 for white noise, larger when it is correlated."""
    crop = central_crop(img, side)
    return _whiteness(crop, float(noise_sigma(crop)))


def white_sigma(img: Image, side: int = SIDE) -> float | None:
    """The σ SURE should assume for ``img`` (as :func:`probe_sigma`), or ``None`` where its noise is not white
    enough for SURE; the crop's σ is measured once for both."""
    crop = central_crop(img, side)
    sigma = float(noise_sigma(crop))
    return max(sigma, 1.0) if _whiteness(crop, sigma) <= WHITE_RATIO_MAX else None


def probe_sigma(img: Image, side: int = SIDE) -> float:
    """The noise std (0-255 units, at least 1) SURE assumes: measured on the same central crop."""
    return max(float(noise_sigma(central_crop(img, side))), 1.0)


def sure_ratio(denoiser: Callable[[Image], Image], inp: Image, sigma: float, out: Image | None = None,
               side: int = SIDE, seed: int = 0) -> float:
    """SURE of ``denoiser`` on ``inp`` relative to doing nothing (σ²): 1 = no better, 0 = perfect.

    ``sigma`` is the noise std in 0-255 units. ``out`` (the denoiser's output on the whole of ``inp``) is
    reused when ``inp`` fits in the crop; otherwise the denoiser runs on the central crop. Costs one or two
    denoiser runs on at most ``side``². The ratio may fall below 0 (σ over-estimated, or a denoiser whose
    response to the small probe is flat); the ranking it gives is still informative, so it is not floored.
    """
    s = float(sigma) / 255.0
    if s <= 0.0:
        return 1.0
    crop = central_crop(inp, side)
    crop_out = out if out is not None and crop.shape == inp.shape else denoiser(crop)
    return sure_mse(denoiser, crop, crop_out, s, seed) / (s * s)


def ratio_to_db(ratio: float) -> float:
    """The PSNR gain a SURE ratio predicts, capped at :data:`MAX_GAIN_DB`."""
    return float(10.0 * np.log10(1.0 / max(ratio, 10.0 ** (-MAX_GAIN_DB / 10.0))))
