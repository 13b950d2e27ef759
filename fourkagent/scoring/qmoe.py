"""Q-MoE: score every expert's candidate for a step and decide whether the best one passes.

The offline scorer mixes three components in [0, 1], each centred so that 0.5 means "no better and no
worse than doing nothing", which lets one threshold mean the same at every step and every size:
- ``naturalness``: 0.5 + (NIQE of the baseline − NIQE of the candidate)/10, where the baseline is the
  step input (restoration) or its bicubic upscale (SR); NIQE uses this project's fitted pristine model;
- ``residual``: 1 − severity/4 of the step's target degradation, re-measured on the candidate
  (restoration steps only: an SR output's softness is judged by naturalness);
- ``fidelity``: consistency with the step input (SR: re-downscaled output vs input; restoration:
  low-pass agreement; brightening: agreement of edge structure).
Weights depend on the profile's priority; components that do not apply are dropped and the rest renormalised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from fourkagent.imaging import Image, luma, psnr
from fourkagent.planning.agenda import step_scale
from fourkagent.scoring.niqe import niqe

DEFAULT_THRESHOLD = 0.45
"""Rollback when the best candidate scores below this (profiles may override)."""

STEP_TARGET: dict[str, str] = {
    "denoising": "noise",
    "motion deblurring": "motion blur",
    "defocus deblurring": "defocus blur",
    "dehazing": "haze",
    "deraining": "rain",
    "brightening": "dark",
    "jpeg compression artifact removal": "jpeg compression artifact",
}
"""The degradation each step is meant to remove."""

WEIGHTS: dict[str, dict[str, float]] = {
    "perception": {"naturalness": 0.45, "residual": 0.35, "fidelity": 0.20},
    "fidelity": {"naturalness": 0.25, "residual": 0.35, "fidelity": 0.40},
}

_ANALYSIS_SIDE = 1024


@dataclass(frozen=True)
class Score:
    """A candidate's Q and the components it was mixed from."""

    score: float
    components: dict[str, float] = field(default_factory=dict)


def _center(img: Image, side: int = _ANALYSIS_SIDE) -> Image:
    h, w = img.shape[:2]
    if h <= 2 * side and w <= 2 * side:
        return img
    y, x = (h - min(h, side)) // 2, (w - min(w, side)) // 2
    return img[y : y + side, x : x + side]


def baseline_niqe(inp: Image, step: str) -> float:
    """NIQE of doing nothing: the step input, or its bicubic upscale for SR steps."""
    scale = step_scale(step)
    if scale == 1:
        return niqe(inp)
    h, w = inp.shape[:2]
    return niqe(np.clip(cv2.resize(inp, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC), 0.0, 1.0))


def naturalness(img: Image, baseline: float) -> float:
    """0.5 + (baseline NIQE − NIQE)/10, clipped to [0, 1]."""
    return float(np.clip(0.5 + (baseline - niqe(img)) / 10.0, 0.0, 1.0))


def residual(img: Image, kind: str) -> float:
    """1 − severity/4 of ``kind`` measured on the candidate (1 = fully removed)."""
    from fourkagent.perception.detectors import SEVERITIES, detect

    det = detect(_center(img), kind)
    return 1.0 - SEVERITIES.index(det.severity) / (len(SEVERITIES) - 1)


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


def score_candidate(
    out: Image, inp: Image, step: str, priority: str = "perception", baseline: float | None = None
) -> Score:
    """The offline Q of one candidate for ``step``, with its components (pass ``baseline`` to reuse it)."""
    base = baseline_niqe(inp, step) if baseline is None else baseline
    comps = {"naturalness": naturalness(out, base), "fidelity": fidelity(out, inp, step)}
    if step in STEP_TARGET:
        comps["residual"] = residual(out, STEP_TARGET[step])
    w = WEIGHTS[priority]
    total = sum(w[k] for k in comps)
    q = sum(w[k] * v for k, v in comps.items()) / total
    return Score(round(float(q), 6), {k: round(float(v), 6) for k, v in comps.items()})
