"""The run's vocabulary: degradation kinds, agenda steps, tool categories, and the kind ↔ step map.

Standard library only, so the CLI's instant paths can import it without numpy, torch or cv2.
"""

from __future__ import annotations

from typing import Literal, get_args

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
"""The paper's degradation kinds, in the order the detectors report them. The shipped model files
(``fourkagent/data/*.json``) store feature and state names built in this order: never reorder it."""

SR4 = "super-resolution"
"""The ×4 super-resolution step (also the tool category of every SR scale)."""
SR2 = "super-resolution_2x"
"""The ×2 super-resolution step."""
SR_SCALES: dict[str, int] = {SR4: 4, SR2: 2}
"""SR step → its scale factor."""

DEGRADATION_TO_STEP: dict[str, str] = {
    "noise": "denoising",
    "motion blur": "motion deblurring",
    "defocus blur": "defocus deblurring",
    "haze": "dehazing",
    "rain": "deraining",
    "dark": "brightening",
    "jpeg compression artifact": "jpeg compression artifact removal",
}
"""The paper's degradation vocabulary mapped to restoration subtasks (low resolution → SR by factor)."""

RESTORABLE_KINDS: tuple[str, ...] = tuple(DEGRADATION_TO_STEP)
"""The kinds a restoration step removes: :data:`KINDS` without low resolution, in the same order."""

STEP_TO_DEGRADATION: dict[str, str] = {step: kind for kind, step in DEGRADATION_TO_STEP.items()}
"""The degradation each restoration step is meant to remove."""

Category = Literal[
    "brightening",
    "defocus deblurring",
    "motion deblurring",
    "dehazing",
    "denoising",
    "deraining",
    "jpeg compression artifact removal",
    "super-resolution",
    "face restoration",
    "old photo restoration",
]
"""The paper's subtask names, used as tool categories (``super-resolution`` covers every scale; see
``ToolSpec.scale``)."""

CATEGORIES: tuple[str, ...] = get_args(Category)
"""Every :data:`Category`, in declaration order."""

RESTORE_TASKS: tuple[str, ...] = (
    *(c for c in CATEGORIES if c not in ("face restoration", "old photo restoration")),
    SR2,
)
"""Agenda steps a profile or a plan may name (the paper's subtasks; SR ×2 is its own step; faces and old photos
are profile switches, not agenda steps)."""


def is_sr_step(step: str) -> bool:
    """Whether an agenda step is a super-resolution step (of any scale)."""
    return step in SR_SCALES


def step_scale(step: str) -> int:
    """Scale of one agenda step (1 for restoration)."""
    return SR_SCALES.get(step, 1)


def step_category(step: str) -> str:
    """Registry category of an agenda step (both SR scales map to super-resolution)."""
    return SR4 if is_sr_step(step) else step
