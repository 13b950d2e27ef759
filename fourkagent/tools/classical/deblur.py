"""Blind motion and defocus deblurring: cepstral PSF estimation + regularised deconvolution.

Motion: a linear-motion PSF (length, angle) is estimated from the image cepstrum (deepest
cepstral minimum, then matched-filter refinement). Defocus: a pillbox radius is found by matching
the cepstrum of candidate disk PSFs. Deconvolution runs on a symmetric-padded, edge-tapered frame
whose padding is re-estimated (unknown-boundary fill), with either a gradient-Tikhonov Wiener
filter or half-quadratic TV. The regularisation weight grows with the PSF size and the estimated
noise level. When the blur evidence is weak (sharp image, unrelated degradation) the tools return
the input unchanged.
"""

from __future__ import annotations

import numpy as np

from fourkagent.imaging import Image
from fourkagent.tools.base import Tool, ToolSpec
from fourkagent.tools.classical import _filters as F

_MOTION_MIN_MATCH = 0.3
_MOTION_MIN_PEAK = 8.0
_DISK_MIN_MATCH = 0.5


def _noise_excess(img: Image) -> float:
    """Estimated noise std above the level that texture alone produces on clean blurred images."""
    n = F.estimate_noise(F.luma64(img).astype(np.float32))
    return max(n - 0.0015, 0.0)


def _finish(img: Image, out: np.ndarray) -> Image:
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


def estimate_motion(img: Image) -> tuple[float, float] | None:
    """``(length, angle)`` of the linear motion blur, or ``None`` when there is no clear evidence.

    Evidence: a deep cepstral peak, a good match of the model PSF's cepstrum, and (on images large
    enough to split) the same blur found independently in both halves of the image -- motion blur
    is global, while cepstral peaks caused by image structure are not.
    """
    y = F.luma64(img)
    length, angle, peak, match = F.estimate_motion_psf(y)
    if match < _MOTION_MIN_MATCH or peak < _MOTION_MIN_PEAK or length < 2.0:
        return None
    h, w = y.shape
    halves = (y[:, : w // 2], y[:, w // 2 :]) if w >= h else (y[: h // 2], y[h // 2 :])
    if min(halves[0].shape) >= 64:
        for part in halves:
            lh, ah, _, _ = F.estimate_motion_psf(part, refine=False)
            dang = abs((ah - angle + 90.0) % 180.0 - 90.0)
            if abs(lh - length) > max(1.5, 0.1 * length) or dang > max(5.0, 60.0 / length):
                return None
    return length, angle


def estimate_defocus(img: Image) -> float | None:
    """Pillbox radius of the defocus blur, or ``None`` when there is no clear evidence."""
    radius, match = F.estimate_disk_radius(F.luma64(img))
    if match < _DISK_MIN_MATCH or radius < 0.75:
        return None
    return radius


def motion_wiener(img: Image) -> Image:
    """Blind linear-motion deblurring with a gradient-regularised Wiener filter."""
    est = estimate_motion(img)
    if est is None:
        return img.copy()
    length, angle = est
    lam = 1.2e-5 * length**2 + 700.0 * _noise_excess(img) ** 2
    return _finish(img, F.deconv_color(img, F.motion_psf(length, angle), lam))


def motion_tv(img: Image) -> Image:
    """Blind linear-motion deblurring with half-quadratic TV deconvolution."""
    est = estimate_motion(img)
    if est is None:
        return img.copy()
    length, angle = est
    lam = 1.5e-6 * length**2 + 0.2 * _noise_excess(img)
    return _finish(img, F.deconv_color(img, F.motion_psf(length, angle), lam, "tv"))


def defocus_wiener(img: Image) -> Image:
    """Blind defocus deblurring (pillbox radius from the cepstrum) with a Wiener filter."""
    radius = estimate_defocus(img)
    if radius is None:
        return img.copy()
    lam = 3e-4 + 700.0 * _noise_excess(img) ** 2
    return _finish(img, F.deconv_color(img, F.disk_psf(radius), lam))


def defocus_tv(img: Image) -> Image:
    """Blind defocus deblurring (pillbox radius from the cepstrum) with TV deconvolution."""
    radius = estimate_defocus(img)
    if radius is None:
        return img.copy()
    lam = 3e-5 + 0.15 * _noise_excess(img)
    return _finish(img, F.deconv_color(img, F.disk_psf(radius), lam, "tv"))


TOOLS: list[Tool] = [
    Tool(
        ToolSpec(
            "deblur_motion_wiener",
            "motion deblurring",
            "Blind linear-motion deblur: cepstral length/angle estimate + boundary-aware gradient-Wiener.",
        ),
        motion_wiener,
    ),
    Tool(
        ToolSpec(
            "deblur_motion_tv",
            "motion deblurring",
            "Blind linear-motion deblur: cepstral length/angle estimate + half-quadratic TV deconvolution.",
            slow=True,
        ),
        motion_tv,
    ),
    Tool(
        ToolSpec(
            "deblur_defocus_wiener",
            "defocus deblurring",
            "Blind defocus deblur: cepstral disk-radius estimate + boundary-aware gradient-Wiener.",
        ),
        defocus_wiener,
    ),
    Tool(
        ToolSpec(
            "deblur_defocus_tv",
            "defocus deblurring",
            "Blind defocus deblur: cepstral disk-radius estimate + half-quadratic TV deconvolution.",
            slow=True,
        ),
        defocus_tv,
    ),
]
