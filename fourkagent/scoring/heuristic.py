"""Hand-set quality components (used by the face stage): naturalness, target residual, fidelity.

Each is in [0, 1] and centred so 0.5 means "no better and no worse than the input".
"""

from __future__ import annotations

import cv2
import numpy as np

from fourkagent.imaging import Image, luma, psnr
from fourkagent.scoring.niqe import niqe
from fourkagent.vocabulary import step_scale

WEIGHTS: dict[str, dict[str, float]] = {
    "perception": {"naturalness": 0.45, "residual": 0.35, "fidelity": 0.20},
    "fidelity": {"naturalness": 0.25, "residual": 0.35, "fidelity": 0.40},
}
"""Mix of the three components per profile priority."""

_ANALYSIS_SIDE = 1024


def _center(img: Image, side: int = _ANALYSIS_SIDE) -> Image:
    h, w = img.shape[:2]
    if h <= 2 * side and w <= 2 * side:
        return img
    y, x = (h - min(h, side)) // 2, (w - min(w, side)) // 2
    return img[y : y + side, x : x + side]


def target_score(img: Image, kind: str) -> float:
    """The perception detector's continuous score for ``kind`` (larger = worse)."""
    from fourkagent.perception.detectors import detect

    return float(detect(_center(img), kind, calibrated=False).evidence["score"])  # raw score: one detector


def naturalness(img: Image, baseline: float) -> float:
    """0.5 + (baseline NIQE − NIQE)/10, clipped to [0, 1]."""
    return float(np.clip(0.5 + (baseline - niqe(img)) / 10.0, 0.0, 1.0))


def residual(img: Image, kind: str, before: float) -> float:
    """0.5 + 0.5 × the fraction of the input's ``kind`` score removed (1 = fully removed, < 0.5 = worse)."""
    after = target_score(img, kind)
    return float(np.clip(0.5 + 0.5 * (before - after) / max(abs(before), 1e-6), 0.0, 1.0))


def fidelity(out: Image, inp: Image, step: str) -> float:
    """Consistency of a candidate with its step input, in [0, 1]."""
    if step == "brightening":
        g_in, g_out = (cv2.Laplacian(luma(_center(x)), cv2.CV_32F).ravel() for x in (inp, out))
        if g_in.std() < 1e-6 or g_out.std() < 1e-6:
            return 0.0
        return float(np.clip(np.corrcoef(g_in, g_out)[0, 1], 0.0, 1.0))
    if step_scale(step) > 1:
        h, w = inp.shape[:2]
        back = cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA)
        return float(np.clip((psnr(back, inp) - 20.0) / 25.0, 0.0, 1.0))
    low_in = cv2.GaussianBlur(inp, (0, 0), 2.0)
    low_out = cv2.GaussianBlur(out, (0, 0), 2.0)
    return float(np.clip((psnr(low_out, low_in) - 15.0) / 25.0, 0.0, 1.0))
