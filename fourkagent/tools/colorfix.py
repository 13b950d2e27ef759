"""AdaIN-style colour fix: match each channel's mean and std of an SR output to its input (as the reference)."""

from __future__ import annotations

import cv2
import numpy as np

from fourkagent.imaging import Image


def adain_color_fix(out: Image, reference: Image, eps: float = 1e-5) -> Image:
    """Transfer per-channel mean/std of ``reference`` to ``out`` (sizes may differ)."""
    mo, so = (v.ravel() for v in cv2.meanStdDev(out))
    mr, sr = (v.ravel() for v in cv2.meanStdDev(reference))
    gain = (sr / (so + eps)).astype(np.float32)
    fixed = out * gain
    fixed += (mr - mo * gain).astype(np.float32)
    return np.clip(fixed, 0.0, 1.0, out=fixed)
