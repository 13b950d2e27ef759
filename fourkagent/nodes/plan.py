"""plan: build the run's steps once, then order what remains (never repeating a failed first step)."""

from __future__ import annotations

from typing import Any, Literal

from fourkagent.nodes._common import profile_of, timed
from fourkagent.planning.agenda import build_steps
from fourkagent.planning.order import order_steps
from fourkagent.state.schema import State


@timed("plan")
def plan(state: State) -> dict[str, Any]:
    """Order the remaining steps with the offline planner (pairwise experience, SR last)."""
    profile = profile_of(state)
    perception = state["perception"]
    update: dict[str, Any] = {}
    if "all_steps" not in state:
        present = [d["kind"] for d in perception["degradations"] if d.get("present")]
        steps = build_steps(present, perception["factor"], profile)
        update["all_steps"] = steps
        pending = steps
    else:
        pending = state.get("agenda", [])
    tried = set() if state.get("compromise") else set(state["tree"][state["cursor"]]["children"])
    update["agenda"] = order_steps(pending, avoid_first=tried)
    return update


def route_after_plan(state: State) -> Literal["execute", "face_restore", "finalize"]:
    """Run the next step, or go to faces/finalize when the agenda is empty."""
    if state.get("agenda"):
        return "execute"
    return "face_restore" if profile_of(state).face_restore else "finalize"
