"""execute: run every available expert of the current step on the current image (Q-MoE candidates)."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from typing_extensions import TypedDict

from fourkagent import tool_progress
from fourkagent.errors import FourKError
from fourkagent.imaging import Image
from fourkagent.nodes._common import Node, emit, profile_of, store_of, timed
from fourkagent.planning import budget
from fourkagent.planning.budget import Selection
from fourkagent.profiles import Profile
from fourkagent.scoring.paper import SCORERS
from fourkagent.scoring.sure import SURE_STEPS, sure_ratio, white_sigma
from fourkagent.state.records import Candidate, Event
from fourkagent.state.schema import State, Update
from fourkagent.tools.base import Tool, ToolRegistry
from fourkagent.tools.colorfix import adain_color_fix
from fourkagent.vocabulary import is_sr_step, step_category, step_scale

COLOR_FIX_MIN_SIDE = 1024
"""SR outputs whose long side reaches this get the reference's AdaIN colour fix."""


def select_tools(registry: ToolRegistry, profile: Profile, agenda: list[str], size: tuple[int, int],
                 spent: float = 0.0) -> Selection:
    """The experts ``agenda[0]`` runs on an image of ``size`` (h, w) after ``spent`` predicted seconds, and those
    the profile's time budget (or its Fast4K rule) drops (:func:`fourkagent.planning.budget.select`)."""
    step = agenda[0]
    tools = registry.for_step(step_category(step), step_scale(step), profile.priority)
    if not tools:
        tools = registry.for_step(step_category(step), step_scale(step))
    return budget.select(tools, profile, agenda, size, spent)


def sure_sigma(step: str, profile: Profile, img: Image) -> float | None:
    """The noise std SURE assumes for this step's candidates; None where it is not measured (other
    steps, the paper's scorer, which does not use it, or noise too correlated for SURE's white-noise model)."""
    if step not in SURE_STEPS or profile.scorer in SCORERS:
        return None
    return white_sigma(img)


class SureEntry(TypedDict, total=False):
    """What SURE adds to a :class:`~fourkagent.state.records.Candidate`."""

    sure_ratio: float


def sure_entry(tool: Callable[[Image], Image], img: Image, out: Image, sigma: float | None) -> SureEntry:
    """``{"sure_ratio": …}`` for a candidate record, or nothing (not measured, or the probe run failed: the
    candidate stands and is scored without it)."""
    if sigma is None:
        return {}
    try:
        return {"sure_ratio": round(sure_ratio(tool, img, sigma, out=out), 6)}
    except FourKError:
        return {}


def prefer_by_experience(tools: list[Tool], step: str, state: State) -> tuple[list[Tool], list[str]]:
    """Tools that won most often on similar images first (they also win Q-MoE ties); with the run option
    ``max_tools`` only that many run, and the names of the others are returned."""
    experience = state.get("experience")
    wins = experience.get("tool_wins", {}).get(step, {}) if experience else {}
    ranked = sorted(tools, key=lambda t: -wins.get(t.name, 0.0))  # stable: registry order among equals
    budget = (state.get("options") or {}).get("max_tools")
    if budget is None or int(budget) >= len(ranked):
        return ranked, []
    keep = max(1, int(budget))
    return ranked[:keep], [t.name for t in ranked[keep:]]


def _tile_event(step: str, tool: str, t0: float, done: int, total: int) -> None:
    """A ``tool_progress`` stream event: tiles done of total, seconds so far and the time left at this pace."""
    seconds = time.perf_counter() - t0
    emit({"event": "tool_progress", "step": step, "tool": tool, "done": done, "total": total,
          "seconds": round(seconds, 3), "eta_s": round(seconds / done * (total - done), 3)})


def make_execute(registry: ToolRegistry) -> Node:
    """Build the execute node bound to a tool registry."""

    @timed("execute")
    def execute(state: State) -> Update:
        """Run all experts of ``agenda[0]`` on the cursor image; failures are recorded, not raised."""
        step = state["agenda"][0]
        profile = profile_of(state)
        store = store_of(state)
        node = state["tree"][state["cursor"]]
        img = store.get(node["artifact"])
        spent = float(state.get("budget_spent_s") or 0.0)
        selection = select_tools(registry, profile, state["agenda"], img.shape[:2], spent)
        tools, skipped = prefer_by_experience(selection.tools, step, state)
        candidates: list[Candidate] = []
        events: list[Event] = []
        sigma = sure_sigma(step, profile, img)
        for tool in tools:
            emit({"event": "tool_start", "step": step, "tool": tool.name})
            t0 = time.perf_counter()
            predicted = budget.predicted_seconds(tool, img.shape[:2])
            record: Candidate = {"tool": tool.name, "artifact": None, "error": None,
                                 "predicted_s": None if predicted is None else round(predicted, 3), "seconds": 0.0}
            try:
                with tool_progress.reporting(partial(_tile_event, step, tool.name, t0)):
                    out = tool(img)
                if is_sr_step(step) and max(out.shape[:2]) >= COLOR_FIX_MIN_SIDE:
                    out = adain_color_fix(out, img)
                record["artifact"] = store.put(out)
                record["size"] = [out.shape[1], out.shape[0]]
                record |= sure_entry(tool, img, out, sigma)
            except FourKError as exc:
                record["error"] = str(exc)
            record["seconds"] = round(time.perf_counter() - t0, 4)
            candidates.append(record)
            events.append({"node": "execute", "tool": tool.name, "step": step, "seconds": record["seconds"],
                           "predicted_s": record["predicted_s"]})
            emit({"event": "tool_end", "step": step, **record})
        if selection.dropped:
            events.append({"node": "execute", "step": step, "dropped": selection.dropped})
        if skipped:
            events.append({"node": "execute", "step": step, "max_tools_skipped": skipped})
        return {"candidates": candidates, "events": events,
                "budget_spent_s": round(spent + budget.charged(tools, img.shape[:2]), 3)}

    return execute
