"""rollback: the best candidate failed; back off in the ordering tree or, if all failed, compromise."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from fourkagent.context import Context
from fourkagent.errors import RunError
from fourkagent.nodes._common import emit, timed
from fourkagent.nodes.plan import answer_type, is_approval, wants_review
from fourkagent.planning.search import path_steps
from fourkagent.planning.search import rollback as search_rollback
from fourkagent.state.records import Rollback, Tree
from fourkagent.state.schema import State, Update


def _compromise_answer(answer: Any) -> str:
    if isinstance(answer, str) and answer.strip().lower() == "stop":
        return "stop"
    if is_approval(answer):
        return "approve"
    raise RunError(f'a compromise review takes true, "approve" or "stop", got {repr(answer)[:80]}')


def review_compromise(state: State, entry: Rollback, tree: Tree, best: str, left: list[str]) -> bool:
    """Pause for a person to accept the compromise; True when they answer ``"stop"`` (finish now).

    Raises:
        RunError: the resume value is neither an approval nor ``"stop"``.
    """
    node = tree[best]
    answer = interrupt({
        "type": "compromise_review",
        "failed_step": entry["step"], "reason": entry["reason"],
        "best_node": best, "best_score": node["score"], "best_size": [node["width"], node["height"]],
        "applied_steps": path_steps(tree, best), "remaining_steps": left,
        "rollbacks": len(state.get("rollbacks", [])) + 1,
        "resume_with": 'true or "approve" to go on from the best image, or "stop" to finish with it now',
    }, response_schema=answer_type(_compromise_answer, {"enum": [True, "approve", "stop"]}))
    return answer == "stop"


@timed("rollback")
def rollback(state: State, runtime: Runtime[Context]) -> Update:
    """Record why the step failed and move the cursor as the paper's tree search does."""
    verdict = state["verdict"]
    step = verdict["step"]
    res = search_rollback(state["tree"], state["cursor"], step, state["agenda"][1:], state["all_steps"])
    reason = verdict.get("reason") or (
        f"best candidate {verdict['best_tool']} scored {verdict['best_score']:.3f} "
        f"< threshold {verdict['threshold']:.3f}"
    )
    if res.compromise:
        action = f"every ordering failed: continue from the best image seen ({res.cursor})"
    elif res.backtracked:
        action = f"all orderings below {', '.join(res.backtracked)} failed: back to {res.cursor}"
    else:
        action = f"retry from {res.cursor} with a different first step"
    entry: Rollback = {
        "step": step, "from_node": state["cursor"], "failed_node": verdict["node"],
        "best_score": verdict["best_score"], "threshold": verdict["threshold"],
        "reason": reason, "action": action,
    }
    agenda = res.agenda
    if res.compromise and wants_review(state, runtime, "review_compromise"):
        if review_compromise(state, entry, res.tree, res.cursor, res.agenda):
            agenda, entry["action"] = [], f"{action}; the reviewer stopped the run there"
    emit({"event": "rollback", **entry})
    return {
        "tree": res.tree, "cursor": res.cursor, "agenda": agenda,
        "compromise": res.compromise, "rollbacks": [*state.get("rollbacks", []), entry],
    }
