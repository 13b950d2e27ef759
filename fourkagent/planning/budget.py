"""Which experts a step may run: the run's time budget, or the reference's Fast4K rules.

**Time budget** (profile ``time_budget_s``). Every tool carries its measured cost, ``seconds_per_mp`` (seconds per
output megapixel on the machine named in ``fourkagent/data/tool_costs.json``), so its cost on a step is predicted
from the step's output size. The run's budget is shared among the steps still on the agenda in proportion to
their output megapixels (a ×4 step to 4096² gets 16 times the share of the ×4 step before it, as it costs 16 times
as much per tool), and a step keeps its experts cheapest first while their predicted costs add up to its share;
the cheapest is always kept. Tools without a measured cost are kept and cost nothing in the ledger.

**Deterministic by design.** What a step has "spent" is the *predicted* cost of the experts it ran
(``State.budget_spent_s``), never their measured wall time. Live timing would make the same input take other
paths on a loaded and an idle machine, make a resumed run differ from an uninterrupted one (the checkpoint holds
the earlier steps' decisions, but the steps after the resume point would see other timings), and make tests
depend on the clock. With predicted costs the decisions are a function of the state alone: a resume, a replay
and a test make the same ones. The price: a run on a slower or busier machine overruns the budget in proportion
(the report shows predicted and measured seconds side by side), and the budget covers the experts only, not
perception, scoring, the face stage or writing the output.

**Fast4K** (profile ``fast4k`` without a budget): the reference's rule drops tools marked slow when the image's
long side reaches ``fast4k_side_threshold``, and a slow tool whose predicted cost for the step exceeds
``fast4k_step_seconds``. With a budget set, the budget alone decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from typing_extensions import TypedDict

from fourkagent.profiles import Profile
from fourkagent.tools.base import Tool
from fourkagent.vocabulary import step_scale


class Dropped(TypedDict):
    """One expert a step did not run, and why (recorded in the events, shown in the reports)."""

    step: str
    tool: str
    rule: Literal["budget", "side", "step"]
    """``budget``: its predicted cost broke the step's share of the run budget; ``side``: Fast4K's long-side
    threshold; ``step``: Fast4K's per-step seconds."""
    predicted_s: float | None
    """Its predicted seconds for this step (None: no measured cost)."""
    share_s: float | None
    """What the step could spend (budget rule) or the step limit (``step`` rule)."""
    share_left_s: float | None
    """What was left of the step's share after the cheaper experts kept before it (budget rule only)."""
    budget_left_s: float | None
    """The run's budget left before this step (budget rule only)."""


@dataclass(frozen=True)
class Selection:
    """The experts a step runs (cheapest first under a budget, registry order otherwise) and those dropped."""

    tools: list[Tool]
    dropped: list[Dropped]


def predicted_seconds(tool: Tool, size: tuple[int, int]) -> float | None:
    """The tool's measured cost for an input of ``size`` (h, w), where its ``seconds_per_mp`` is known."""
    per_mp = tool.spec.seconds_per_mp
    return None if per_mp is None else per_mp * size[0] * size[1] * tool.spec.scale**2 / 1e6


def charged(tools: list[Tool], size: tuple[int, int]) -> float:
    """What running ``tools`` on an input of ``size`` costs the budget (unknown costs count zero)."""
    return sum(predicted_seconds(t, size) or 0.0 for t in tools)


def step_share(left: float, agenda: list[str], size: tuple[int, int]) -> float:
    """The part of ``left`` seconds that ``agenda[0]`` may spend on an input of ``size`` (h, w): ``left`` split
    over the agenda's steps in proportion to their output megapixels."""
    outputs = []
    h, w = size
    for step in agenda:
        h, w = h * step_scale(step), w * step_scale(step)
        outputs.append(h * w)
    return max(0.0, left) * outputs[0] / sum(outputs) if outputs else 0.0


def _by_budget(tools: list[Tool], step: str, share: float, left: float, size: tuple[int, int]) -> Selection:
    known = sorted((t for t in tools if t.spec.seconds_per_mp is not None), key=lambda t: predicted_seconds(t, size))
    kept = [t for t in tools if t.spec.seconds_per_mp is None]
    dropped: list[Dropped] = []
    total = 0.0
    for i, t in enumerate(known):
        cost = predicted_seconds(t, size) or 0.0
        if i == 0 or total + cost <= share:  # the cheapest measured expert always runs
            kept.append(t)
            total += cost
        else:
            dropped.append(Dropped(step=step, tool=t.name, rule="budget", predicted_s=round(cost, 2),
                                   share_s=round(share, 2), share_left_s=round(share - total, 2),
                                   budget_left_s=round(left, 2)))
    return Selection(sorted(kept, key=tools.index), dropped)


def _by_fast4k(tools: list[Tool], step: str, profile: Profile, size: tuple[int, int]) -> Selection:
    large = max(size) >= profile.fast4k_side_threshold
    limit = profile.fast4k_step_seconds
    dropped: list[Dropped] = []
    for t in tools:
        cost = predicted_seconds(t, size)
        rule: Literal["side", "step"] | None = (
            "side" if large else "step" if cost is not None and cost > limit else None) if t.spec.slow else None
        if rule is not None:
            dropped.append(Dropped(step=step, tool=t.name, rule=rule, predicted_s=None if cost is None else round(
                cost, 2), share_s=limit if rule == "step" else None, share_left_s=None, budget_left_s=None))
    if len(dropped) == len(tools):  # at least one tool per step
        dropped = dropped[1:]
    names = {d["tool"] for d in dropped}
    return Selection([t for t in tools if t.name not in names], dropped)


def select(tools: list[Tool], profile: Profile, agenda: list[str], size: tuple[int, int],
           spent: float = 0.0) -> Selection:
    """The experts ``agenda[0]`` runs on an image of ``size`` (h, w), given ``spent`` predicted seconds so far."""
    step = agenda[0]
    if profile.time_budget_s is not None:
        left = profile.time_budget_s - spent
        return _by_budget(tools, step, step_share(left, agenda, size), left, size)
    if profile.fast4k:
        return _by_fast4k(tools, step, profile, size)
    return Selection(list(tools), [])


def dropped_line(d: Dropped) -> str:
    """``sr_realesrgan_x4 (268.4 s predicted > 27.8 s left of the step's 51.8 s share)`` and the like."""
    pred = "cost unknown" if d["predicted_s"] is None else f"{d['predicted_s']:.1f} s predicted"
    if d["rule"] == "budget":
        return f"{d['tool']} ({pred} > {d['share_left_s']:.1f} s left of the step's {d['share_s']:.1f} s share)"
    if d["rule"] == "step":
        return f"{d['tool']} ({pred} > {d['share_s']:.0f} s Fast4K step limit)"
    return f"{d['tool']} (Fast4K: slow tool, long side ≥ threshold)"
