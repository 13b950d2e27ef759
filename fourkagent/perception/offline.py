"""The offline perceiver: measured degradations, NR-IQA and a factual scene description."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fourkagent.imaging import Image, luma
from fourkagent.perception.iqa import assess_iqa, iqa_report

if TYPE_CHECKING:
    from fourkagent.state.records import Degradation

__all__ = ["describe", "factor_aware", "iqa_report", "perceive_offline"]

JPEG_REPORT_QUALITY = 75
"""JPEG of this estimated quality or lower is reported when the image will be upscaled: ×2–×16 magnifies the
8×8 blocks that the detectors' own boundary (about q 32) ignores at the input's size."""
NOISE_REPORT_SIGMA = 8.0
"""Noise of this estimated σ (0-255) or more is reported when the image will be upscaled ×4 or more. Chosen on
the photo pool's validation split (``benchmarks/realworld.py``): clean 96² crops measure σ̂ 0.4–6.4, Gaussian
noise σ 8.8–19 measures 9.2–19.4."""


def describe(img: Image, degradations: Sequence[Mapping[str, Any]]) -> str:
    """A short factual description from measurable properties (used in reports and prompts)."""
    h, w = img.shape[:2]
    sat = float(np.mean(img.max(2) - img.min(2)))
    colour = "greyscale" if sat < 0.02 else "colour"
    bright = float(luma(img).mean())
    tone = "dark" if bright < 0.25 else "bright" if bright > 0.7 else "normally exposed"
    present = [f"{d['kind']} ({d['severity']})" for d in degradations if d.get("present")]
    found = ", ".join(present) if present else "no significant degradation"
    return f"A {w}x{h} {colour} image, {tone} (mean luma {bright:.2f}); detected: {found}."


def perceive_offline(img: Image, iqa_metrics: str | Sequence[str] | None = None) -> dict[str, Any]:
    """Run every detector and the NR-IQA report (``iqa`` and ``iqa_info``, see :mod:`.iqa`) on ``img``."""
    from fourkagent.perception.detectors import detect_all

    dets = [d.to_dict() | {"present": d.present} for d in detect_all(img)]
    return {"degradations": dets, **assess_iqa(img, iqa_metrics), "description": describe(img, dets)}


def factor_aware(degradations: Sequence[Degradation], factor: int) -> list[Degradation]:
    """Degradations that the upscale ``factor`` will magnify reported present (JPEG at estimated quality ≤
    :data:`JPEG_REPORT_QUALITY` for any factor > 1, noise of σ̂ ≥ :data:`NOISE_REPORT_SIGMA` from ×4), with a
    ``reason``; the others unchanged. Returns new dicts."""
    out: list[Degradation] = []
    for d in degradations:
        ev = d.get("evidence") or {}
        why = ""
        if not d.get("present") and factor > 1:
            q = float(ev.get("jpeg_quality_est", 0.0))
            sigma = float(ev.get("noise_sigma", 0.0))
            if d["kind"] == "jpeg compression artifact" and 0 < q <= JPEG_REPORT_QUALITY:
                why = f"JPEG quality ≈ {q:.0f}: ×{factor} magnifies its blocks"
            elif d["kind"] == "noise" and factor >= 4 and sigma >= NOISE_REPORT_SIGMA:
                why = f"noise σ ≈ {sigma:.1f}: ×{factor} magnifies it"
        if not why:
            out.append(d.copy())
            continue
        sev = d.get("severity") if d.get("severity") not in ("very low", "low", None) else "medium"
        out.append(d | {"present": True, "severity": sev, "reason": why})
    return out
