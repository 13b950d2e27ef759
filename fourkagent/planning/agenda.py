"""Upscale factor (the paper's rule) and the initial agenda of steps."""

from __future__ import annotations

from collections.abc import Iterable

from fourkagent.profiles.model import Profile
from fourkagent.vocabulary import DEGRADATION_TO_STEP, SR2, SR4, is_sr_step

TARGET_LONG_SIDE = 4000
"""The paper's 4K criterion: the output's long side reaches at least 4000 px."""

SR_STEPS: dict[int, list[str]] = {1: [], 2: [SR2], 4: [SR4], 8: [SR2, SR4], 16: [SR4, SR4]}
"""How a factor decomposes into SR steps (8 = ×2 then ×4, 16 = ×4 then ×4)."""


FINAL_RESIZE_MAX = 1.25
"""In 4K mode, a result short of 4000 px by at most this ratio is finished with a Lanczos resize instead of
another ×2 (491 px: ×8 → 3928 px then ×1.02, not ×16 → 7856 px at four times the cost and memory)."""


def upscale_factor(width: int, height: int, profile: Profile) -> int:
    """The total SR factor for an input size under a profile.

    With 4K on: the smallest of 2/4/8/16 bringing the long side to ≥ 4000 (1 if already there), or half of it
    when that reaches 4000 / :data:`FINAL_RESIZE_MAX` (see :func:`output_size`; at least one SR step stays).
    Otherwise the explicit scale; without one, ×4 only when the long side is below ``require_sr_size``.
    """
    long_side = max(width, height)
    if profile.upscale_to_4k:
        if long_side >= TARGET_LONG_SIDE:
            return 1
        full = next((f for f in (2, 4, 8, 16) if long_side * f >= TARGET_LONG_SIDE), 16)
        half = full // 2
        return half if half >= 2 and long_side * half * FINAL_RESIZE_MAX >= TARGET_LONG_SIDE else full
    if profile.scale_factor is not None:
        return profile.scale_factor
    has_sr = any(is_sr_step(t) for t in (profile.restore_option or []))
    return 4 if has_sr or long_side < profile.require_sr_size else 1


def output_size(width: int, height: int, factor: int, profile: Profile) -> tuple[tuple[int, int], str]:
    """The result's (width, height) and, when it is not simply ``factor`` × the input, why: in 4K mode a result
    short of 4000 px is resized to a 4000 px long side when the gap is within :data:`FINAL_RESIZE_MAX`, and
    said to fall short otherwise (×16 is the largest factor)."""
    w, h = width * factor, height * factor
    long_side = max(w, h)
    if not profile.upscale_to_4k or long_side >= TARGET_LONG_SIDE or factor == 1:
        return (w, h), ""
    if long_side * FINAL_RESIZE_MAX >= TARGET_LONG_SIDE:
        r = TARGET_LONG_SIDE / long_side
        size = (max(1, round(w * r)), max(1, round(h * r)))
        return size, (f"x{factor} gives {w}x{h}; a final Lanczos resize x{r:.3f} reaches {size[0]}x{size[1]} "
                      f"(x{2 * factor} would have made {2 * w}x{2 * h})")
    return (w, h), f"x{factor}, the largest factor, gives {w}x{h}: short of {TARGET_LONG_SIDE} px"


def build_steps(degradations: Iterable[str], factor: int, profile: Profile) -> list[str]:
    """The multiset of steps for a run: restoration steps (profile list or detected) then SR steps."""
    if profile.user_plan is not None:
        return list(profile.user_plan)
    if profile.restore_option is not None:
        restore = [t for t in profile.restore_option if not is_sr_step(t)]
    else:
        restore = [DEGRADATION_TO_STEP[d] for d in degradations if d in DEGRADATION_TO_STEP]
    if not profile.brightening:
        restore = [t for t in restore if t != "brightening"]
    seen: list[str] = []
    for t in restore:
        if t not in seen:
            seen.append(t)
    return seen + SR_STEPS[factor]
