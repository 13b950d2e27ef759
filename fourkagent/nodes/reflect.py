"""reflect: score every candidate (Q-MoE), keep the best as a new tree node, decide pass/fail."""

from __future__ import annotations

from typing import Any, Literal

from fourkagent.nodes._common import emit, profile_of, store_of, timed
from fourkagent.planning.search import new_node
from fourkagent.scoring.paper import SCORERS, default_threshold, step_scorer
from fourkagent.scoring.qmoe import gain_to_q
from fourkagent.state.schema import State
from fourkagent.vocabulary import step_scale


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

    A tool that returned its input unchanged (e.g. a denoiser that finds no noise to remove) is not a
    candidate: it is not scored (the tool prior would credit it with the tool's usual gain) and not credited.
    It offers "keep the input" instead, at the Q of doing nothing; when no candidate beats that, the step
    keeps its input with no tool.
    """
    step = state["agenda"][0]
    profile = profile_of(state)
    store = store_of(state)
    parent = state["tree"][state["cursor"]]
    description = str((state.get("perception") or {}).get("description") or "")
    inp = store.get(parent["artifact"])
    scorer = step_scorer(profile, inp, step, description)
    cands = state.get("candidates", [])
    unchanged = [c["tool"] for c in cands if c["artifact"] is not None and c["artifact"] == parent["artifact"]]
    ok = [c for c in cands if c["artifact"] is not None and c["tool"] not in unchanged]
    for cand in ok:
        scorer.add(store.get(cand["artifact"]), sure_ratio=cand.get("sure_ratio"), tool=cand["tool"])
    absolute = profile.scorer in SCORERS  # the paper's scorers: absolute scores, the input gets its own
    if unchanged and absolute:
        scorer.add(inp)
    scores = scorer.scores()
    by_tool = {c["tool"]: s for c, s in zip(ok, scores)}
    # the offline scorer's Q = 0.5 means "as good as doing nothing" by construction
    keep_q = (scores[-1].score if absolute else gain_to_q(0.0)) if unchanged else None
    scored: list[dict[str, Any]] = []
    for cand in cands:
        entry = {"tool": cand["tool"], "artifact": cand["artifact"], "seconds": cand.get("seconds"),
                 "predicted_s": cand.get("predicted_s")}
        if cand["tool"] in unchanged:
            scored.append(entry | {"score": None, "components": {}, "unchanged": True,
                                   "error": "returned its input unchanged: not a candidate"})
            continue
        s = by_tool.get(cand["tool"])
        if s is None:
            scored.append(entry | {"score": None, "components": {}, "error": cand["error"]})
            continue
        scored.append(entry | {"score": s.score, "components": s.components, "error": None})
        emit({"event": "candidate_scored", "step": step, "tool": cand["tool"], "score": s.score})
    valid = [c for c in scored if c["score"] is not None]
    thr = threshold_of(state)
    note = None
    if valid:
        best = max(valid, key=lambda c: c["score"])  # first of equals wins: registry order
        size = next(c for c in cands if c["tool"] == best["tool"])["size"]
    if keep_q is not None and (not valid or best["score"] <= keep_q):  # doing nothing wins ties
        best = {"tool": None, "artifact": parent["artifact"], "score": keep_q}
        size = [parent["width"], parent["height"]]
        note = f"kept the input: no candidate improved it ({', '.join(unchanged)} returned it unchanged)"
    elif not valid:  # nothing usable: a failed node holding the unchanged image
        best = {"tool": None, "artifact": parent["artifact"], "score": 0.0}
        size = [parent["width"], parent["height"]]
    passed = (bool(valid) or keep_q is not None) and best["score"] >= thr
    verdict = {"step": step, "best_tool": best["tool"], "best_score": best["score"], "threshold": thr, "passed": passed}
    if note:  # the rollback record quotes it: a failing one says why
        verdict["reason"] = note if passed else f"{note}; Q {keep_q:.3f} < threshold {thr:.3f}"
    elif not valid:
        verdict["reason"] = "no expert produced a valid image"
    if valid and not passed and not rollback_allowed(state) and step_scale(step) == 1:
        best = {"tool": None, "artifact": parent["artifact"], "score": best["score"]}
        size = [parent["width"], parent["height"]]
        verdict["reason"] = "no expert improved the image: the step keeps its input"
    tree, child = new_node(
        state["tree"], state["cursor"], step, tool=best["tool"], artifact=best["artifact"],
        score=best["score"], width=size[0], height=size[1], failed=not passed, candidates=scored,
        **({"note": verdict["reason"]} if best["tool"] is None and "reason" in verdict else {}),
    )
    verdict["node"] = child
    update: dict[str, Any] = {"scores": scored, "verdict": verdict, "tree": tree}
    if passed or not rollback_allowed(state):
        update |= {"cursor": child, "agenda": state["agenda"][1:]}
    return update


def route_after_reflect(state: State) -> Literal["rollback", "plan"]:
    """Roll back when the best candidate failed the threshold and rollback is allowed."""
    return "rollback" if (not state["verdict"]["passed"] and rollback_allowed(state)) else "plan"
