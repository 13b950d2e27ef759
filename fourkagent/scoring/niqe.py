"""NIQE (Mittal et al. 2013) in numpy, with a pristine model fitted by this project on clean photos.

The pristine model (``fourkagent/data/niqe_pristine.npz``: mean and covariance of 36 patch features)
is produced by ``training/fit_niqe.py``; lower NIQE means more natural-looking.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import cv2
import numpy as np
from scipy.special import gamma as gamma_fn

from fourkagent.imaging import Image, luma

PATCH = 96
_ALPHAS = np.arange(0.2, 10.0, 0.001)
_RHO = gamma_fn(2.0 / _ALPHAS) ** 2 / (gamma_fn(1.0 / _ALPHAS) * gamma_fn(3.0 / _ALPHAS))
_ORDER = np.argsort(_RHO)


def _alpha_from_rho(rho: np.ndarray) -> np.ndarray:
    idx = np.clip(np.searchsorted(_RHO[_ORDER], rho), 0, len(_ALPHAS) - 1)
    return _ALPHAS[_ORDER][idx]


def mscn(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean-subtracted contrast-normalised coefficients and the local sigma (gray in 0-255)."""
    mu = cv2.GaussianBlur(gray, (7, 7), 7.0 / 6.0, borderType=cv2.BORDER_REPLICATE)
    var = cv2.GaussianBlur(gray * gray, (7, 7), 7.0 / 6.0, borderType=cv2.BORDER_REPLICATE) - mu * mu
    sigma = np.sqrt(np.abs(var))
    return (gray - mu) / (sigma + 1.0), sigma


def _aggd(x: np.ndarray) -> np.ndarray:
    """AGGD fit per row of ``x`` → (alpha, mean, left var, right var)."""
    neg = np.where(x < 0, x, 0.0)
    pos = np.where(x > 0, x, 0.0)
    n_neg = np.maximum((x < 0).sum(1), 1)
    n_pos = np.maximum((x > 0).sum(1), 1)
    sl = np.sqrt((neg**2).sum(1) / n_neg) + 1e-12
    sr = np.sqrt((pos**2).sum(1) / n_pos) + 1e-12
    g = sl / sr
    r = np.mean(np.abs(x), 1) ** 2 / (np.mean(x**2, 1) + 1e-12)
    big_r = r * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    alpha = _alpha_from_rho(big_r)
    ratio = gamma_fn(2.0 / alpha) / gamma_fn(1.0 / alpha)
    scale = np.sqrt(gamma_fn(1.0 / alpha) / gamma_fn(3.0 / alpha))
    mean = (sr - sl) * ratio * scale
    return np.stack([alpha, mean, sl**2, sr**2], 1)


def _ggd(x: np.ndarray) -> np.ndarray:
    """Symmetric GGD fit per row → (alpha, variance)."""
    var = np.mean(x**2, 1) + 1e-12
    rho = np.mean(np.abs(x), 1) ** 2 / var
    return np.stack([_alpha_from_rho(rho), var], 1)


def _patches(a: np.ndarray, size: int) -> np.ndarray:
    h, w = (a.shape[0] // size) * size, (a.shape[1] // size) * size
    a = a[:h, :w]
    return a.reshape(h // size, size, w // size, size).swapaxes(1, 2).reshape(-1, size * size)


def _scale_features(gray: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    m, sigma = mscn(gray)
    shifts = [(0, 1), (1, 0), (1, 1), (1, -1)]
    pm = _patches(m, size)
    feats = [_ggd(pm)]
    for dy, dx in shifts:
        shifted = np.roll(m, (-dy, -dx), axis=(0, 1))
        feats.append(_aggd(_patches(m * shifted, size)))
    return np.concatenate(feats, 1), _patches(sigma, size).mean(1)


def patch_features(img: Image, max_patches: int | None = 400) -> tuple[np.ndarray, np.ndarray]:
    """36 NIQE features per 96×96 patch (two scales) and each patch's mean local sigma."""
    gray = (luma(img) * 255.0).astype(np.float64)
    h, w = gray.shape
    h, w = (h // PATCH) * PATCH, (w // PATCH) * PATCH
    gray = gray[:h, :w]
    f1, sharp = _scale_features(gray, PATCH)
    half = cv2.resize(gray, (w // 2, h // 2), interpolation=cv2.INTER_CUBIC)
    f2, _ = _scale_features(half, PATCH // 2)
    feats = np.concatenate([f1, f2], 1)
    if max_patches is not None and len(feats) > max_patches:
        keep = np.linspace(0, len(feats) - 1, max_patches).astype(int)
        feats, sharp = feats[keep], sharp[keep]
    return feats, sharp


@lru_cache(maxsize=1)
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """The shipped pristine mean (36,) and covariance (36, 36)."""
    with resources.files("fourkagent.data").joinpath("niqe_pristine.npz").open("rb") as fh:
        data = np.load(fh)
        return data["mu"].astype(np.float64), data["cov"].astype(np.float64)


def nriqa_factor(long_side: int) -> float:
    """The reference's NR-IQA resize factor: ≤120 → ×4 then ×2 (×8), ≤240 → ×2, >4200 → ×0.5."""
    if long_side <= 120:
        return 8.0
    if long_side <= 240:
        return 2.0
    return 0.5 if long_side > 4200 else 1.0


def prepare(img: Image) -> Image:
    """Resize an image for NR-IQA as the reference does (bicubic; area when shrinking)."""
    factor = nriqa_factor(max(img.shape[:2]))
    if factor == 1.0:
        return img
    h, w = img.shape[:2]
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return np.clip(cv2.resize(img, (round(w * factor), round(h * factor)), interpolation=interp), 0, 1)


_CROP = 4 * PATCH
_GRID = 3


def _crops(img: Image) -> list[Image]:
    """Large images are measured on a fixed 3×3 grid of 384-px crops (same statistics, bounded time)."""
    h, w = img.shape[:2]
    if h * w <= 2048 * 2048:
        return [img]
    ys = np.linspace(0, h - _CROP, _GRID).astype(int)
    xs = np.linspace(0, w - _CROP, _GRID).astype(int)
    return [img[y : y + _CROP, x : x + _CROP] for y in ys for x in xs]


def niqe(img: Image, max_patches: int | None = 400) -> float:
    """NIQE score of an image (lower is better); small images are enlarged as in ``prepare``."""
    img = prepare(img)
    if min(img.shape[:2]) < 2 * PATCH:
        f = 2 * PATCH / min(img.shape[:2])
        img = np.clip(cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC), 0, 1)
    feats = np.concatenate([patch_features(c, max_patches)[0] for c in _crops(img)])
    feats = feats[np.isfinite(feats).all(1)]
    mu_p, cov_p = pristine_model()
    mu_d = feats.mean(0)
    cov_d = np.cov(feats, rowvar=False) if len(feats) > 1 else np.zeros_like(cov_p)
    diff = mu_p - mu_d
    return float(np.sqrt(max(diff @ np.linalg.pinv((cov_p + cov_d) / 2.0) @ diff, 0.0)))
