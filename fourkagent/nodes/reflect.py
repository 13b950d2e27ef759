"""reflect: score every candidate (Q-MoE), keep the best as a new tree node, decide pass/fail."""

from __future__ import annotations

from typing import Any, Literal

from fourkagent.nodes._common import emit, profile_of, store_of, timed
from fourkagent.planning.search import new_node
from fourkagent.scoring.qmoe import DEFAULT_THRESHOLD, baseline_niqe, score_candidate
from fourkagent.state.schema import State


def threshold_of(state: State) -> float:
    """Per-run override, else the profile's threshold, else the scorer default."""
    opt = (state.get("options") or {}).get("threshold")
    if opt is not None:
        return float(opt)
    prof = state["profile_data"].get("threshold")
    return float(prof) if prof is not None else DEFAULT_THRESHOLD


@timed("reflect")
def reflect(state: State) -> dict[str, Any]:
    """Score candidates against the step input; add the best as a child of the cursor node."""
    step = state["agenda"][0]
    profile = profile_of(state)
    store = store_of(state)
    parent = state["tree"][state["cursor"]]
    inp = store.get(parent["artifact"])
    scored: list[dict[str, Any]] = []
    baseline = baseline_niqe(inp, step)
    for cand in state.get("candidates", []):
        entry = {"tool": cand["tool"], "artifact": cand["artifact"], "seconds": cand.get("seconds")}
        if cand["artifact"] is None:
            scored.append(entry | {"score": None, "components": {}, "error": cand["error"]})
            continue
        out = store.get(cand["artifact"])
        s = score_candidate(out, inp, step, profile.priority, baseline)
        scored.append(entry | {"score": s.score, "components": s.components, "error": None})
        emit({"event": "candidate_scored", "step": step, "tool": cand["tool"], "score": s.score})
    valid = [c for c in scored if c["score"] is not None]
    thr = threshold_of(state)
    rollback_on = profile.with_rollback and not state.get("compromise", False)
    if valid:
        best = max(valid, key=lambda c: c["score"])  # first of equals wins: registry order
        size = next(c for c in state["candidates"] if c["tool"] == best["tool"])["size"]
    else:  # nothing usable: a failed node holding the unchanged image
        best = {"tool": None, "artifact": parent["artifact"], "score": 0.0}
        size = [parent["width"], parent["height"]]
    passed = bool(valid) and best["score"] >= thr
    tree, child = new_node(
        state["tree"], state["cursor"], step, tool=best["tool"], artifact=best["artifact"],
        score=best["score"], width=size[0], height=size[1], failed=not passed, candidates=scored,
    )
    verdict = {"step": step, "node": child, "best_tool": best["tool"], "best_score": best["score"],
               "threshold": thr, "passed": passed}
    if not valid:
        verdict["reason"] = "no expert produced a valid image"
    update: dict[str, Any] = {"scores": scored, "verdict": verdict, "tree": tree}
    if passed or not rollback_on:
        update |= {"cursor": child, "agenda": state["agenda"][1:]}
    return update


def route_after_reflect(state: State) -> Literal["rollback", "plan"]:
    """Roll back when the best candidate failed the threshold and rollback is allowed."""
    verdict = state["verdict"]
    rollback_on = profile_of(state).with_rollback and not state.get("compromise", False)
    return "rollback" if (not verdict["passed"] and rollback_on) else "plan"
