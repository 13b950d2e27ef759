"""reflect: score every candidate (Q-MoE), keep the best as a new tree node, decide pass/fail."""

from __future__ import annotations

from typing import Literal

from fourkagent.nodes._common import emit, profile_of, store_of, timed
from fourkagent.planning.search import new_node
from fourkagent.scoring.paper import SCORERS, default_threshold, step_scorer
from fourkagent.scoring.qmoe import gain_to_q
from fourkagent.state.records import Candidate, NodeFields, Score, Verdict
from fourkagent.state.schema import State, Update
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


def _scored(cand: Candidate, score: float | None, components: dict[str, float], error: str | None,
            unchanged: bool = False) -> Score:
    """A candidate's entry in ``scores`` and in its tree node."""
    entry: Score = {"tool": cand["tool"], "artifact": cand["artifact"], "seconds": cand.get("seconds"),
                    "predicted_s": cand.get("predicted_s"), "score": score, "components": components, "error": error}
    if unchanged:
        entry["unchanged"] = True
    return entry


@timed("reflect")
def reflect(state: State) -> Update:
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
    perception = state.get("perception")
    description = str(perception.get("description") or "") if perception else ""
    inp = store.get(parent["artifact"])
    scorer = step_scorer(profile, inp, step, description)
    cands = state.get("candidates", [])
    unchanged = [c["tool"] for c in cands if c["artifact"] is not None and c["artifact"] == parent["artifact"]]
    ok = [(c, c["artifact"]) for c in cands if c["artifact"] is not None and c["tool"] not in unchanged]
    for cand, artifact in ok:
        scorer.add(store.get(artifact), sure_ratio=cand.get("sure_ratio"), tool=cand["tool"])
    absolute = profile.scorer in SCORERS  # the paper's scorers: absolute scores, the input gets its own
    if unchanged and absolute:
        scorer.add(inp)
    scores = scorer.scores()
    by_tool = {c["tool"]: s for (c, _), s in zip(ok, scores)}
    # the offline scorer's Q = 0.5 means "as good as doing nothing" by construction
    keep_q = (scores[-1].score if absolute else gain_to_q(0.0)) if unchanged else None
    scored: list[Score] = []
    for cand in cands:
        if cand["tool"] in unchanged:
            scored.append(_scored(cand, None, {}, "returned its input unchanged: not a candidate", unchanged=True))
            continue
        s = by_tool.get(cand["tool"])
        if s is None:
            scored.append(_scored(cand, None, {}, cand["error"]))
            continue
        scored.append(_scored(cand, s.score, s.components, None))
        emit({"event": "candidate_scored", "step": step, "tool": cand["tool"], "score": s.score})
    valid = [(c, c["score"], c["artifact"]) for c in scored if c["score"] is not None and c["artifact"] is not None]
    thr = threshold_of(state)
    note = None
    # nothing usable: a failed node holding the unchanged image
    best_tool, best_artifact, best_score = None, parent["artifact"], 0.0
    size = [parent["width"], parent["height"]]
    if valid:
        best, best_score, best_artifact = max(valid, key=lambda v: v[1])  # first of equals wins: registry order
        best_tool = best["tool"]
        size = next(c for c in cands if c["tool"] == best_tool)["size"]
    if keep_q is not None and (not valid or best_score <= keep_q):  # doing nothing wins ties
        best_tool, best_artifact, best_score = None, parent["artifact"], keep_q
        size = [parent["width"], parent["height"]]
        note = f"kept the input: no candidate improved it ({', '.join(unchanged)} returned it unchanged)"
    passed = (bool(valid) or keep_q is not None) and best_score >= thr
    verdict_tool, reason = best_tool, None
    if note:  # the rollback record quotes it: a failing one says why
        reason = note if passed else f"{note}; Q {keep_q:.3f} < threshold {thr:.3f}"
    elif not valid:
        reason = "no expert produced a valid image"
    if valid and not passed and not rollback_allowed(state) and step_scale(step) == 1:
        best_tool, best_artifact = None, parent["artifact"]
        size = [parent["width"], parent["height"]]
        reason = "no expert improved the image: the step keeps its input"
    fields: NodeFields = {"tool": best_tool, "artifact": best_artifact, "score": best_score, "width": size[0],
                          "height": size[1], "failed": not passed, "candidates": scored}
    if best_tool is None and reason is not None:
        fields["note"] = reason
    tree, child = new_node(state["tree"], state["cursor"], step, **fields)
    verdict: Verdict = {"step": step, "best_tool": verdict_tool, "best_score": best_score, "threshold": thr,
                        "passed": passed, "node": child}
    if reason is not None:
        verdict["reason"] = reason
    update: Update = {"scores": scored, "verdict": verdict, "tree": tree}
    if passed or not rollback_allowed(state):
        update |= {"cursor": child, "agenda": state["agenda"][1:]}
    return update


def route_after_reflect(state: State) -> Literal["rollback", "plan"]:
    """Roll back when the best candidate failed the threshold and rollback is allowed."""
    return "rollback" if (not state["verdict"]["passed"] and rollback_allowed(state)) else "plan"
