"""AdaIN-style colour fix: match each channel's mean and std of an SR output to its input (as the reference)."""

from __future__ import annotations

import numpy as np

from fourkagent.imaging import Image


def adain_color_fix(out: Image, reference: Image, eps: float = 1e-5) -> Image:
    """Transfer per-channel mean/std of ``reference`` to ``out`` (sizes may differ)."""
    mo, so = out.reshape(-1, 3).mean(0), out.reshape(-1, 3).std(0)
    mr, sr = reference.reshape(-1, 3).mean(0), reference.reshape(-1, 3).std(0)
    fixed = (out - mo) / (so + eps) * sr + mr
    return np.ascontiguousarray(np.clip(fixed, 0.0, 1.0), dtype=np.float32)
