"""Offline planner: order agenda steps by the paper's pairwise experience, SR last."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence

from fourkagent.vocabulary import SR2, SR4, is_sr_step, step_scale

PAIRWISE_EXPERIENCE: dict[tuple[str, str], tuple[float, float]] = {
    ("deraining", SR4): (0.14, 0.32),
    ("motion deblurring", SR4): (0.16, 0.19),
    ("denoising", "brightening"): (0.32, 0.35),
    ("jpeg compression artifact removal", "defocus deblurring"): (0.20, 0.28),
    ("deraining", "dehazing"): (0.21, 0.24),
}
"""(a, b) → (failure rate with a first, with b first), from the paper's distilled experience (AgenticIR)."""

DEFAULT_RANK: tuple[str, ...] = (
    "deraining",
    "jpeg compression artifact removal",
    "denoising",
    "motion deblurring",
    "defocus deblurring",
    "dehazing",
    "brightening",
    SR2,
    SR4,
)
"""Fallback order where no experience exists: artefacts that SR would amplify go first, SR last."""

_MISORDER_PENALTY = 0.05
LATE_RESTORATION_COST = 0.15
"""Cost, in failure-rate units, of a restoration step placed after a ×4 SR step, which makes it run on 16 times
the pixels (a denoising step after ×4 to 4096² took ~40 s of the demo's 126 s): past runs must show at least 15
points fewer failures with that order before the planner pays for it. It grows with the pixels added (after ×2:
a fifth of it; after ×4 twice: 17 times it)."""
_BRUTE_FORCE_MAX = 7


def _rank(step: str) -> int:
    return DEFAULT_RANK.index(step) if step in DEFAULT_RANK else len(DEFAULT_RANK)


def pair_cost(first: str, second: str, experience: dict[tuple[str, str], tuple[float, float]]) -> float:
    """Expected failure contribution of running ``first`` before ``second``."""
    if (first, second) in experience:
        return experience[(first, second)][0]
    if (second, first) in experience:
        return experience[(second, first)][1]
    return _MISORDER_PENALTY if _rank(first) > _rank(second) else 0.0


def order_cost(order: Sequence[str], experience: dict[tuple[str, str], tuple[float, float]]) -> float:
    """Sum of pairwise costs over every ordered pair of distinct steps, plus :data:`LATE_RESTORATION_COST` for
    every restoration step after SR, in proportion to the pixels SR added before it."""
    pixels, late = 1, 0.0
    for step in order:
        if is_sr_step(step):
            pixels *= step_scale(step) ** 2
        else:
            late += (pixels - 1) / 15
    return sum(pair_cost(a, b, experience) for a, b in itertools.combinations(order, 2) if a != b) + \
        LATE_RESTORATION_COST * late


def order_steps(
    steps: Sequence[str],
    avoid_first: Collection[str] = (),
    experience: dict[tuple[str, str], tuple[float, float]] | None = None,
) -> list[str]:
    """Cheapest ordering of ``steps`` whose first step is not in ``avoid_first``.

    SR steps keep their relative order (×2 before ×4) and stay after restoration unless the only
    untried first steps are SR. Deterministic: ties resolve by the default rank.
    """
    exp = PAIRWISE_EXPERIENCE if experience is None else experience
    base = sorted(steps, key=_rank)
    if not base:
        return []
    if len(base) > _BRUTE_FORCE_MAX:
        candidates: list[tuple[str, ...]] = [tuple(base)]
    else:
        candidates = sorted(set(itertools.permutations(base)), key=lambda o: [_rank(s) for s in o])
    allowed = [c for c in candidates if c[0] not in avoid_first and _sr_in_order(c)] or [
        c for c in candidates if c[0] not in avoid_first
    ]
    if not allowed:
        return list(base)
    return list(min(allowed, key=lambda o: order_cost(o, exp)))


def _sr_in_order(order: Sequence[str]) -> bool:
    sr = [s for s in order if is_sr_step(s)]
    return sr == sorted(sr, key=_rank)
