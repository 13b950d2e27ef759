"""rollback: the best candidate failed; back off in the ordering tree or, if all failed, compromise."""

from __future__ import annotations

from typing import Any

from fourkagent.nodes._common import timed
from fourkagent.planning.search import rollback as search_rollback
from fourkagent.state.schema import State


@timed("rollback")
def rollback(state: State) -> dict[str, Any]:
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
    entry = {
        "step": step, "from_node": state["cursor"], "failed_node": verdict["node"],
        "best_score": verdict["best_score"], "threshold": verdict["threshold"],
        "reason": reason, "action": action,
    }
    return {
        "tree": res.tree, "cursor": res.cursor, "agenda": res.agenda,
        "compromise": res.compromise, "rollbacks": [*state.get("rollbacks", []), entry],
    }
