"""Offline (weight-free) degradation detectors for the perception agent.

Every detector turns one or two measured quantities into a severity on the paper's five-point scale
with a confidence and the evidence it used. Thresholds are calibrated on synthetic degradations
(``fourkagent.degrade.LEVELS``): levels 1-2 map mostly to "very low"/"low" (absent), 3-5 to
"medium" and above (present); clean photos report every degradation absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from fourkagent.imaging import Image, as_image, luma
from fourkagent.perception import measures as M

SEVERITIES: tuple[str, ...] = ("very low", "low", "medium", "high", "very high")
KINDS: tuple[str, ...] = (
    "noise",
    "motion blur",
    "defocus blur",
    "haze",
    "rain",
    "dark",
    "jpeg compression artifact",
    "low resolution",
)
PRESENT_FROM = 2  # index of "medium"


@dataclass(frozen=True)
class Detection:
    """One degradation verdict: severity on the paper's scale, confidence in [0, 1], evidence."""

    kind: str
    severity: str
    confidence: float
    evidence: dict[str, float] = field(default_factory=dict)

    @property
    def present(self) -> bool:
        """True when the severity is "medium" or worse (the degradation enters the agenda)."""
        return SEVERITIES.index(self.severity) >= PRESENT_FROM

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "present": self.present,
            "confidence": round(float(self.confidence), 4),
            "evidence": {k: round(float(v), 4) for k, v in self.evidence.items()},
        }


def _grade(kind: str, score: float, edges: tuple[float, float, float, float], evidence: dict) -> Detection:
    """Map ``score`` (larger = worse) through 4 increasing thresholds to a severity.

    Confidence grows with the distance to the present/absent boundary (``edges[1]``), in units of
    the neighbouring bin width, so verdicts right at the boundary report about 0.5.
    """
    idx = int(np.searchsorted(np.asarray(edges), score, side="right"))
    b = edges[1]
    width = (edges[2] - edges[1]) if score >= b else (edges[1] - edges[0])
    margin = abs(score - b) / max(width, 1e-9)
    conf = float(np.clip(0.5 + 0.5 * np.tanh(1.5 * margin), 0.5, 0.99))
    ev = {k: float(v) for k, v in evidence.items()}
    ev["score"] = float(score)
    return Detection(kind, SEVERITIES[idx], round(conf, 4), ev)


class _Analysis:
    """Lazily computed measurements shared by the detectors of one image."""

    def __init__(self, img: Image):
        self.img = as_image(img)

    @cached_property
    def noise(self) -> float:
        return M.noise_sigma(self.img)

    @cached_property
    def gray(self) -> np.ndarray:
        return luma(M.bounded(self.img, 768))

    @cached_property
    def bright(self) -> dict[str, float]:
        return M.brightness(self.img)

    @cached_property
    def edges(self) -> dict[str, float]:
        return M.edge_blur(self.gray, self.noise)


# --------------------------------------------------------------------------------------- detectors


def _noise(a: _Analysis) -> Detection:
    s = a.noise
    return _grade("noise", s, (8.0, 15.5, 27.0, 42.0), {"noise_sigma": s})


def _dark(a: _Analysis) -> Detection:
    b = a.bright
    # bright end and body of the histogram both have to be low: a night sky with stars is not dark
    score = 1.0 - (0.6 * b["p99_luminance"] + 0.4 * min(1.0, 2.0 * b["p90_luminance"]))
    return _grade("dark", score, (0.35, 0.55, 0.68, 0.8), b)


def _low_resolution(a: _Analysis) -> Detection:
    h, w = a.img.shape[:2]
    e = a.edges
    short = float(min(h, w))
    tiny = float(np.interp(short, [48.0, 96.0, 128.0, 160.0], [4.0, 3.0, 2.5, 0.0]))
    score = max(e["edge_sigma"], tiny)
    ev = {"edge_sigma": e["edge_sigma"], "short_side_px": short}
    return _grade("low resolution", score, (1.0, 1.45, 2.5, 3.5), ev)


def _motion(a: _Analysis) -> Detection:
    e = a.edges
    score = e["sigma_max"] * e["blur_anisotropy"]
    return _grade("motion blur", score, (1.5, 3.0, 5.0, 7.0), e)


def _defocus(a: _Analysis) -> Detection:
    e = a.edges
    score = e["edge_sigma"] * (1.0 - e["blur_anisotropy"])
    return _grade("defocus blur", score, (1.0, 1.8, 3.0, 4.0), e)


def _stub(kind: str):
    def run(a: _Analysis) -> Detection:
        return Detection(kind, "very low", 0.5, {})

    return run


_DETECTORS = {
    "noise": _noise,
    "motion blur": _motion,
    "defocus blur": _defocus,
    "haze": _stub("haze"),
    "rain": _stub("rain"),
    "dark": _dark,
    "jpeg compression artifact": _stub("jpeg compression artifact"),
    "low resolution": _low_resolution,
}


def estimate_noise_sigma(img: Image) -> float:
    """Additive noise standard deviation in 0-255 units (patch-PCA, robust to texture and JPEG)."""
    return float(M.noise_sigma(as_image(img)))


def detect(img: Image, kind: str) -> Detection:
    """Run one detector; ``kind`` must be one of :data:`KINDS`."""
    if kind not in _DETECTORS:
        raise ValueError(f"unknown degradation kind {kind!r}; expected one of {KINDS}")
    return _DETECTORS[kind](_Analysis(img))


def detect_all(img: Image) -> list[Detection]:
    """One :class:`Detection` per kind, in :data:`KINDS` order (measurements computed once)."""
    a = _Analysis(img)
    return [_DETECTORS[k](a) for k in KINDS]
