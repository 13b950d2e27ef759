"""The typed profile: the paper's seven parameters plus rollback, scorer and threshold."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from fourkagent.vocabulary import RESTORE_TASKS

_PERCEIVERS = {"offline": "offline", "vlm": "vlm", "llama_vision": "vlm", "depictqa": "vlm", "gpt4v": "vlm", "vlmagent": "vlm"}
_SCORERS = {"offline": "offline", "paper": "paper", "hpsv2+metric": "paper", "hpsv2": "hpsv2", "hpsv2.1": "hpsv2"}
"""Accepted names (ours and the reference's) → scorer: ``paper`` (HPSv2.1 + NR-IQA mix), ``hpsv2`` (HPSv2.1 alone)."""


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Profile(BaseModel):
    """A run configuration. Keys may use our snake_case names or the reference's YAML names."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = "custom"
    description: str = ""
    perception_agent: str = Field("offline", validation_alias=_alias("perception_agent", "PerceptionAgent"))
    """offline | vlm (reference names llama_vision, depictqa, gpt4v, vlmagent map to vlm)."""
    upscale_to_4k: bool = Field(True, validation_alias=_alias("upscale_to_4k", "Upscale4K"))
    """Reach a long side of at least 4000 px with the smallest factor of 2/4/8/16."""
    scale_factor: Literal[2, 4, 8, 16] | None = Field(None, validation_alias=_alias("scale_factor", "ScaleFactor"))
    """Explicit factor, used when ``upscale_to_4k`` is off."""
    require_sr_size: int = Field(300, ge=1, validation_alias=_alias("require_sr_size"))
    """Without 4K or explicit scale: super-resolve ×4 only when the long side is below this."""
    restore_option: list[str] | None = Field(None, validation_alias=_alias("restore_option", "RestoreOption"))
    """Explicit task list (skips degradation detection), e.g. ``[denoising, super-resolution]``."""
    face_restore: bool = Field(False, validation_alias=_alias("face_restore", "FaceRestore"))
    brightening: bool = Field(False, validation_alias=_alias("brightening", "Brightening"))
    """If off, brightening is removed from the agenda (as in the reference)."""
    priority: Literal["fidelity", "perception"] = Field(
        "perception", validation_alias=_alias("priority", "RestorePerference", "RestorePreference")
    )
    fast4k: bool = Field(False, validation_alias=_alias("fast4k", "Fast4K"))
    fast4k_side_threshold: int = Field(1024, ge=1, validation_alias=_alias("fast4k_side_threshold", "Fast4kSideThres"))
    fast4k_step_seconds: float = Field(30.0, gt=0, validation_alias=_alias("fast4k_step_seconds"))
    """Fast4K also drops a slow expert whose measured cost (seconds per output megapixel on 2 CPU cores × the
    step's output megapixels) exceeds this, whatever the input's side."""
    time_budget_s: float | None = Field(None, gt=0, validation_alias=_alias("time_budget_s"))
    """Predicted seconds the whole run may take, start-up to the written output: the run's overheads
    (perception, Q-MoE scoring per candidate, the face stage, writing) are charged first, and each step keeps its
    cheapest experts within what is left of its share (:mod:`fourkagent.planning.budget`). When set, it replaces
    the Fast4K rules above."""
    with_rollback: bool = True
    scorer: str = Field("offline", validation_alias=_alias("scorer", "Reflection"))
    """offline (default, no downloads) | paper (HPSv2.1 + NR-IQA mix; reference name hpsv2+metric)
    | hpsv2 (HPSv2.1 alone, rollback threshold 0.12; reference name hpsv2)."""
    threshold: float | None = Field(None, ge=0.0, le=10.0)
    """Q-MoE rollback threshold; ``None`` means the scorer's default."""
    old_photo_restoration: bool = Field(False, validation_alias=_alias("old_photo_restoration", "OldPhotoRestoration"))
    user_plan: list[str] | None = Field(None, validation_alias=_alias("user_plan", "User_Define_Plan"))
    """Fixed plan: skip perception-driven planning and run exactly these steps."""
    seed: int = Field(1994, validation_alias=_alias("seed", "PerceptionAgent_Seed"))

    @field_validator("perception_agent")
    @classmethod
    def _perceiver(cls, v: str) -> str:
        key = v.strip().lower()
        if key not in _PERCEIVERS:
            raise ValueError(f"unknown perception agent {v!r} (use one of {', '.join(_PERCEIVERS)})")
        return key

    @field_validator("scorer")
    @classmethod
    def _scorer(cls, v: str) -> str:
        key = v.strip().lower()
        if key not in _SCORERS:
            raise ValueError(f"unknown scorer {v!r} (use one of {', '.join(_SCORERS)})")
        return _SCORERS[key]

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("restore_option", "user_plan", mode="before")
    @classmethod
    def _tasks(cls, v: object) -> object:
        if isinstance(v, str):
            v = [t.strip() for t in v.split("+") if t.strip()]
        if isinstance(v, list):
            bad = [t for t in v if t not in RESTORE_TASKS]
            if bad:
                raise ValueError(f"unknown task(s) {bad} (use: {', '.join(RESTORE_TASKS)})")
        return v

    @property
    def perceiver(self) -> Literal["offline", "vlm"]:
        """The perceiver family this profile asks for."""
        return "vlm" if _PERCEIVERS[self.perception_agent] == "vlm" else "offline"
