"""plan: build the run's steps once, then order what remains (never repeating a failed first step)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import AfterValidator, WithJsonSchema

from fourkagent.context import Context
from fourkagent.errors import RunError
from fourkagent.nodes._common import emit, profile_of, timed
from fourkagent.planning.agenda import build_steps
from fourkagent.perception.vlm import plan_with_vlm
from fourkagent.planning.order import PAIRWISE_EXPERIENCE, order_steps
from fourkagent.state.records import Experience
from fourkagent.state.schema import State, Update
from fourkagent.store.experience import ExperienceStore, dumps_table, loads_table
from fourkagent.vocabulary import RESTORE_TASKS, is_sr_step


def experience_table(signature: list[str], ctx: Context, steps: list[str] | None = None) -> Experience:
    """What past runs on similar images teach: pairwise ordering failure rates (the store blended with the
    paper's, or the paper's alone) and, per step, how often each tool won."""
    if ctx.use_experience:
        try:
            store = ExperienceStore(ctx.experience_url)
            wins = {s: store.tool_wins(signature, s) for s in dict.fromkeys(steps or [])}
            return {"source": "store", "pairwise": dumps_table(store.pairwise(signature)), "tool_wins": wins}
        except Exception as exc:  # an unreachable store must not stop a run
            source = f"paper (experience store unavailable: {type(exc).__name__})"
            return {"source": source, "pairwise": dumps_table(PAIRWISE_EXPERIENCE), "tool_wins": {}}
    return {"source": "paper", "pairwise": dumps_table(PAIRWISE_EXPERIENCE), "tool_wins": {}}


def wants_review(state: State, runtime: Runtime[Context], key: str) -> bool:
    """Whether the run asked for a human review point: ``options[key]`` or the context field ``key``."""
    return bool((state.get("options") or {}).get(key) or getattr(runtime.context, key, False))


def is_approval(answer: Any) -> bool:
    """A resume value that keeps the proposal as it is: ``True`` or ``"approve"``."""
    return answer is True or (isinstance(answer, str) and answer.strip().lower() == "approve")


def answer_type(parse: Callable[[Any], Any], schema: dict[str, Any]) -> Any:
    """An ``interrupt`` response type that runs ``parse`` on the resume value before LangGraph stores it,
    so a rejected answer raises ``parse``'s error and the same interrupt can be answered again."""
    return Annotated[Any, AfterValidator(parse), WithJsonSchema(schema)]


def check_plan(steps: Any, planned: list[str]) -> list[str]:
    """Validate a person's plan against the planned one.

    Any order and any subset of the restoration steps, plus other valid step names, each at most once;
    the super-resolution steps must stay as planned (the profile fixes the factor).

    Raises:
        RunError: not a list of step names, an unknown or repeated step, or changed SR steps.
    """
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        raise RunError(f"a plan must be a list of step names, got {repr(steps)[:80]}")
    unknown = [s for s in steps if s not in RESTORE_TASKS]
    if unknown:
        raise RunError(f"unknown step(s) {unknown} in the plan; valid steps: {', '.join(RESTORE_TASKS)}")
    restore = [s for s in steps if not is_sr_step(s)]
    repeated = sorted({s for s in restore if restore.count(s) > 1})
    if repeated:
        raise RunError(f"step(s) {repeated} appear more than once in the plan")
    sr_planned = sorted(s for s in planned if is_sr_step(s))
    if sorted(s for s in steps if is_sr_step(s)) != sr_planned:
        raise RunError(f"the plan must keep the super-resolution steps {sr_planned} (the profile fixes the factor)")
    return list(steps)


def review_plan(state: State, update: Update) -> Update:
    """Pause for a person to approve or edit the first plan; returns the state changes an edit makes."""
    perception = state["perception"]
    answer = interrupt({
        "type": "plan_review",
        "agenda": update["agenda"],
        "factor": perception["factor"],
        "degradations": [
            {"kind": d["kind"], "severity": d.get("severity")} for d in perception["degradations"] if d.get("present")
        ],
        "valid_steps": list(RESTORE_TASKS),
        "resume_with": 'true or "approve" to run this plan, or a list of steps to run instead, in order',
    }, response_schema=answer_type(
        lambda a: True if is_approval(a) else check_plan(a, update["all_steps"]),
        {"anyOf": [{"const": True}, {"const": "approve"}, {"type": "array", "items": {"enum": list(RESTORE_TASKS)}}]},
    ))
    if answer is True:
        return {}
    edited = list(answer)
    return {"all_steps": edited, "agenda": edited, "options": {**(state.get("options") or {}), "plan": edited}}


@timed("plan")
def plan(state: State, runtime: Runtime[Context]) -> Update:
    """Order the remaining steps with the offline planner (pairwise experience, SR last).

    The experience table is read once, at the first plan, and kept in the state so re-plans and
    resumed runs order exactly as the uninterrupted run would.
    """
    profile = profile_of(state)
    perception = state["perception"]
    update: Update = {}
    if "all_steps" not in state:
        present = [d["kind"] for d in perception["degradations"] if d.get("present")]
        steps = build_steps(present, perception["factor"], profile)
        ctx = runtime.context if runtime.context is not None else Context()
        experience = experience_table(sorted(present), ctx, steps)
        update |= {"all_steps": steps, "experience": experience}
        pending, exp = steps, experience["pairwise"]
    else:
        pending, exp = state.get("agenda", []), state["experience"]["pairwise"]
    tried = set() if state.get("compromise") else set(state["tree"][state["cursor"]]["children"])
    options = state.get("options") or {}
    if "all_steps" in update and options.get("plan") is not None:  # the caller fixed the plan
        update["all_steps"] = pending = check_plan(options["plan"], update["all_steps"])
    if options.get("plan") is not None and pending and pending[0] not in tried:
        update["agenda"] = list(pending)  # a fixed plan keeps its order until one of its steps fails
    else:  # the VLM planner when the run perceived with the VLM, else (or on a bad answer) the offline one
        table, ctx = loads_table(exp), runtime.context if runtime.context is not None else Context()
        order, note = plan_with_vlm(dict(perception), profile.perceiver, pending, tried, table, ctx)
        update["agenda"] = order or order_steps(pending, avoid_first=tried, experience=table)
        if note:
            update["perception"] = {**perception, "planner": "vlm" if order else "offline", "planner_note": note}
    if "all_steps" in update and wants_review(state, runtime, "review_plan"):
        update |= review_plan(state, update)
    emit({"event": "plan", "agenda": update["agenda"]})
    return update


def route_after_plan(state: State) -> Literal["execute", "face_restore", "finalize"]:
    """Run the next step, or go to faces/finalize when the agenda is empty."""
    if state.get("agenda"):
        return "execute"
    return "face_restore" if profile_of(state).face_restore else "finalize"
