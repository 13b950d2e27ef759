"""Tool specs, the tool type and the registry every restoration tool is listed in."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from fourkagent.errors import FourKError, ToolError
from fourkagent.imaging import Image
from fourkagent.vocabulary import Category

COSTS_FILE = Path(__file__).resolve().parents[1] / "data" / "tool_costs.json"
"""Measured seconds per output megapixel per tool, and the machine they were measured on
(written by ``benchmarks/tool_costs.py --write-costs``)."""


@functools.cache
def measured_costs() -> dict[str, float]:
    """Tool name → measured seconds per output megapixel (empty if the file is missing or unreadable)."""
    try:
        return {str(k): float(v) for k, v in json.loads(COSTS_FILE.read_text(encoding="utf-8"))["tools"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


Backend = Literal["classical", "torch", "ncnn", "diffusers"]
Preference = Literal["fidelity", "perception", "both"]


@dataclass(frozen=True)
class ToolSpec:
    """What the planner and the CLI know about a tool."""

    name: str
    """Unique tool id, e.g. ``sr_backprojection_x4``."""
    category: Category
    """The paper's subtask this tool serves."""
    description: str
    """One line for ``4kagent tools`` and the LLM planner."""
    scale: int = 1
    """Output/input size ratio (1 for restoration tools)."""
    backend: Backend = "classical"
    """How the tool computes: classical numpy/OpenCV, torch, ncnn or diffusers."""
    slow: bool = False
    """Dropped by the reference's Fast4K rule when the current image's long side is at or above the profile
    threshold (profiles without a time budget)."""
    preference: Preference = "both"
    """Which profile priority (fidelity/perception) includes this tool (SR scales, and restoration experts
    that only suit one priority)."""
    weights: str | None = None
    """Name of the weights file it needs, if any."""
    seconds_per_mp: float | None = None
    """Measured cost per output megapixel, where known: filled from :data:`COSTS_FILE` (which wins over a value
    given here); a profile's time budget predicts each step's cost from it (:mod:`fourkagent.planning.budget`)."""

    def __post_init__(self) -> None:
        """Take the measured cost from :data:`COSTS_FILE` where it has one for this tool."""
        measured = measured_costs().get(self.name)
        if measured is not None:
            object.__setattr__(self, "seconds_per_mp", measured)


class DuplicateToolError(FourKError, ValueError):
    """Raised when a tool name is registered twice."""


@dataclass(frozen=True)
class Tool:
    """A spec plus the callable ``fn(image) -> image`` (float32 HxWx3 RGB in [0, 1])."""

    spec: ToolSpec
    fn: Callable[[Image], Image]
    availability: Callable[[], str | None] = field(default=lambda: None)
    """Returns ``None`` when the tool can run here, otherwise the reason it cannot."""

    @property
    def name(self) -> str:
        """The tool's unique name."""
        return self.spec.name

    def unavailable_reason(self) -> str | None:
        """Why this tool cannot run here, or ``None``."""
        return self.availability()

    def __call__(self, img: Image) -> Image:
        """Run the tool and validate its output (finite, right shape, in range).

        Raises:
            ToolError: the tool raised, or returned NaN/Inf, a wrong shape or a wrong dtype.
        """
        h, w = img.shape[:2]
        try:
            out = self.fn(img)
        except FourKError:
            raise
        except Exception as exc:  # a broken tool must never crash a run
            raise ToolError(f"{self.name} failed: {type(exc).__name__}: {exc}") from exc
        expected = (h * self.spec.scale, w * self.spec.scale, 3)
        if not isinstance(out, np.ndarray) or out.shape != expected:
            shape = getattr(out, "shape", type(out).__name__)
            raise ToolError(f"{self.name} returned shape {shape}, expected {expected}")
        if not np.isfinite(out).all():
            raise ToolError(f"{self.name} returned NaN or Inf values")
        return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


class ToolRegistry:
    """An ordered, explicit collection of tools; ``add`` is atomic."""

    def __init__(self, tools: list[Tool] | None = None) -> None:
        """Create a registry, optionally filled with ``tools``."""
        self._tools: dict[str, Tool] = {}
        if tools:
            self.add(*tools)

    def add(self, *tools: Tool) -> None:
        """Register tools; on a duplicate name nothing is added.

        Raises:
            DuplicateToolError: a name is already registered or repeated in ``tools``.
        """
        names = [t.name for t in tools]
        dup = {n for n in names if names.count(n) > 1 or n in self._tools}
        if dup:
            raise DuplicateToolError(f"tool(s) already registered: {', '.join(sorted(dup))}")
        for t in tools:
            self._tools[t.name] = t

    def get(self, name: str) -> Tool:
        """Look a tool up by name.

        Raises:
            ToolError: no tool of that name.
        """
        try:
            return self._tools[name]
        except KeyError:
            raise ToolError(f"unknown tool {name!r}; see `4kagent tools`") from None

    def __contains__(self, name: object) -> bool:
        """Whether a tool of that name is registered."""
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        """Iterate in registration order."""
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        """Number of registered tools."""
        return len(self._tools)

    def for_step(
        self,
        category: str,
        scale: int = 1,
        preference: str | None = None,
    ) -> list[Tool]:
        """Available tools of a category (and SR scale), filtered by profile preference."""
        out = []
        for t in self._tools.values():
            s = t.spec
            if s.category != category or (category == "super-resolution" and s.scale != scale):
                continue
            if preference and s.preference not in ("both", preference):
                continue
            if t.unavailable_reason() is None:
                out.append(t)
        return out
