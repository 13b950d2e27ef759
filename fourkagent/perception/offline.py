"""The offline perceiver: measured degradations, NR-IQA and a factual scene description."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fourkagent.imaging import Image, luma
from fourkagent.perception.iqa import assess_iqa, iqa_report

__all__ = ["describe", "iqa_report", "perceive_offline"]


def describe(img: Image, degradations: list[dict[str, Any]]) -> str:
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
