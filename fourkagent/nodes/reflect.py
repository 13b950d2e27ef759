"""reflect: score every candidate (Q-MoE), keep the best as a new tree node, decide pass/fail."""

from __future__ import annotations

from typing import Any, Literal

from fourkagent.nodes._common import emit, profile_of, store_of, timed
from fourkagent.planning.agenda import step_scale
from fourkagent.planning.search import new_node
from fourkagent.scoring.paper import default_threshold, step_scorer
from fourkagent.state.schema import State


def threshold_of(state: State) -> float:
    """Per-run override, else the profile's threshold, else the scorer default."""
    opt = (state.get("options") or {}).get("threshold")
    if opt is not None:
        return float(opt)
    prof = state["profile_data"].get("threshold")
    return float(prof) if prof is not None else default_threshold(profile_of(state))


def rollback_allowed(state: State) -> bool:
    """Rollback is on in the profile and the run has not already compromised."""
    return bool(profile_of(state).with_rollback and not state.get("compromise", False))


@timed("reflect")
def reflect(state: State) -> dict[str, Any]:
    """Score candidates against the step input; add the best as a child of the cursor node.

    When the best candidate fails and no rollback can follow (rollback off, or after a compromise),
    a restoration step keeps its input image: doing nothing beats an expert that makes things worse.
    """
    step = state["agenda"][0]
    profile = profile_of(state)
    store = store_of(state)
    parent = state["tree"][state["cursor"]]
    description = str((state.get("perception") or {}).get("description") or "")
    scorer = step_scorer(profile, store.get(parent["artifact"]), step, description)
    cands = state.get("candidates", [])
    ok = [c for c in cands if c["artifact"] is not None]
    for cand in ok:
        scorer.add(store.get(cand["artifact"]), sure_ratio=cand.get("sure_ratio"), tool=cand["tool"])
    by_tool = {c["tool"]: s for c, s in zip(ok, scorer.scores())}
    scored: list[dict[str, Any]] = []
    for cand in cands:
        entry = {"tool": cand["tool"], "artifact": cand["artifact"], "seconds": cand.get("seconds")}
        s = by_tool.get(cand["tool"])
        if s is None:
            scored.append(entry | {"score": None, "components": {}, "error": cand["error"]})
            continue
        scored.append(entry | {"score": s.score, "components": s.components, "error": None})
        emit({"event": "candidate_scored", "step": step, "tool": cand["tool"], "score": s.score})
    valid = [c for c in scored if c["score"] is not None]
    thr = threshold_of(state)
    if valid:
        best = max(valid, key=lambda c: c["score"])  # first of equals wins: registry order
        size = next(c for c in cands if c["tool"] == best["tool"])["size"]
    else:  # nothing usable: a failed node holding the unchanged image
        best = {"tool": None, "artifact": parent["artifact"], "score": 0.0}
        size = [parent["width"], parent["height"]]
    passed = bool(valid) and best["score"] >= thr
    verdict = {"step": step, "best_tool": best["tool"], "best_score": best["score"], "threshold": thr, "passed": passed}
    if not valid:
        verdict["reason"] = "no expert produced a valid image"
    if valid and not passed and not rollback_allowed(state) and step_scale(step) == 1:
        best = {"tool": None, "artifact": parent["artifact"], "score": best["score"]}
        size = [parent["width"], parent["height"]]
        verdict["reason"] = "no expert improved the image: the step keeps its input"
    tree, child = new_node(
        state["tree"], state["cursor"], step, tool=best["tool"], artifact=best["artifact"],
        score=best["score"], width=size[0], height=size[1], failed=not passed, candidates=scored,
    )
    verdict["node"] = child
    update: dict[str, Any] = {"scores": scored, "verdict": verdict, "tree": tree}
    if passed or not rollback_allowed(state):
        update |= {"cursor": child, "agenda": state["agenda"][1:]}
    return update


def route_after_reflect(state: State) -> Literal["rollback", "plan"]:
    """Roll back when the best candidate failed the threshold and rollback is allowed."""
    return "rollback" if (not state["verdict"]["passed"] and rollback_allowed(state)) else "plan"
