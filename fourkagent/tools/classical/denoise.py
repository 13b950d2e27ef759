"""Classical denoisers driven by the estimated noise level: non-local means and wavelet shrinkage."""

from __future__ import annotations

import cv2
import numpy as np
import pywt

from fourkagent.imaging import Image, as_image, to_uint8
from fourkagent.tools.base import Tool, ToolSpec


def _sigma(img: Image) -> float:
    from fourkagent.perception.detectors import estimate_noise_sigma

    return float(estimate_noise_sigma(img))


def nlm(img: Image, sigma: float | None = None) -> Image:
    """OpenCV non-local means on RGB with strength set from the noise sigma (0-255 units)."""
    s = _sigma(img) if sigma is None else sigma
    if s < 1.0:
        return img
    search = 21 if img.shape[0] * img.shape[1] <= 1 << 20 else 11
    h = float(np.clip(0.65 * s, 2.0, 40.0))  # 0.65σ: best mean PSNR over σ 15-35 on 8 photos
    bgr = cv2.cvtColor(to_uint8(img), cv2.COLOR_RGB2BGR)
    out = cv2.fastNlMeansDenoisingColored(bgr, None, h, h, 7, search)
    return as_image(cv2.cvtColor(out, cv2.COLOR_BGR2RGB))


def _bayes_shrink(channel: np.ndarray, sigma: float, wavelet: str = "db2", levels: int = 3) -> np.ndarray:
    coeffs = pywt.wavedec2(channel, wavelet, mode="symmetric", level=levels)
    out = [coeffs[0]]
    for detail in coeffs[1:]:
        bands = []
        for band in detail:
            var_x = max(float(np.mean(band**2)) - sigma**2, 1e-12)
            thr = sigma**2 / np.sqrt(var_x)
            bands.append(pywt.threshold(band, thr, mode="soft"))
        out.append(tuple(bands))
    rec = pywt.waverec2(out, wavelet, mode="symmetric")
    return rec[: channel.shape[0], : channel.shape[1]]


def wavelet(img: Image, sigma: float | None = None) -> Image:
    """BayesShrink soft-thresholding of a 3-level db2 wavelet transform, in YCrCb."""
    s = (_sigma(img) if sigma is None else sigma) / 255.0
    if s < 1.0 / 255.0:
        return img
    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)
    levels = int(np.clip(np.log2(min(img.shape[:2])) - 3, 1, 3))
    chans = [_bayes_shrink(ycc[..., c].astype(np.float64), s, levels=levels) for c in range(3)]
    out = np.stack(chans, 2).astype(np.float32)
    return as_image(cv2.cvtColor(out, cv2.COLOR_YCrCb2RGB))


TOOLS: list[Tool] = [
    Tool(ToolSpec("denoise_nlm", "denoising", "Non-local means (OpenCV), strength from the estimated noise sigma"), nlm),
    Tool(ToolSpec("denoise_wavelet", "denoising", "BayesShrink wavelet soft-thresholding in YCrCb"), wavelet),
]
