"""Which experts a step may run: the run's time budget, or the reference's Fast4K rules.

**Time budget** (profile ``time_budget_s``): seconds for the whole run as the user waits for it, start-up to the
written output. Every tool carries its measured cost, ``seconds_per_mp`` (seconds per output megapixel on the
machine named in ``fourkagent/data/tool_costs.json``), so its cost on a step is predicted from the step's output
size; the same file's ``overheads``, measured the same way (``benchmarks/tool_costs.py --overheads``), predict
what the run spends around the experts (:class:`Overheads`). The ledger (``State.budget_spent_s``) opens at
perceive with the run's fixed costs: start-up, perception of the input, the face stage and writing the output at
the planned output size (:func:`opening`). What is left is shared among the steps still on the agenda in
proportion to their output megapixels (a ×4 step to 4096² gets 16 times the share of the ×4 step before it, as it
costs 16 times as much per tool), but a step whose experts all together cost less than an even split of what is
left runs them all if it is a restoration step (:func:`step_share`: a 256² restoration step is cheap and decides
what the ×4 steps magnify);
a step first pays its own overhead (measuring its input for Q-MoE), then keeps
its experts cheapest first while their costs — each expert's run plus validating, storing and scoring its
candidate — add up to the rest of its share. The cheapest is always kept. A tool without a measured cost is kept;
only its candidate's overhead is charged.

**Deterministic by design.** What a step has "spent" is the *predicted* cost of the experts it ran and of their
overheads, never their measured wall time. Live timing would make the same input take other paths on a loaded and
an idle machine, make a resumed run differ from an uninterrupted one (the checkpoint holds the earlier steps'
decisions, but the steps after the resume point would see other timings), and make tests depend on the clock.
With predicted costs the decisions are a function of the state alone: a resume, a replay and a test make the same
ones. The price: a run on a slower or busier machine overruns the budget in proportion (the report shows
predicted and measured seconds side by side). Not predicted: rollbacks (a failed step's retries are charged as
they come, so later steps get less), SURE's extra denoiser probe, and the OS's own start-up of Python.

**Fast4K** (profile ``fast4k`` without a budget): the reference's rule drops tools marked slow when the image's
long side reaches ``fast4k_side_threshold``, and a slow tool whose predicted cost for the step exceeds
``fast4k_step_seconds``. With a budget set, the budget alone decides.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, fields
from typing import Literal

from typing_extensions import TypedDict

from fourkagent.profiles import Profile
from fourkagent.tools.base import COSTS_FILE, Tool
from fourkagent.vocabulary import is_sr_step, step_scale


@dataclass(frozen=True)
class Overheads:
    """What a run spends besides its experts, measured like the tools' costs (``overheads`` in the costs file;
    zero where missing). ``_mp``: per megapixel of the size named."""

    start_s: float = 0.0
    """Process start to the first node: imports, the graph, the tool registry."""
    perceive_s: float = 0.0
    perceive_s_per_mp: float = 0.0
    """Perception of the input (detectors, NR-IQA, reference faces when the profile restores faces), fixed
    seconds plus seconds per input megapixel."""
    step_s_per_mp: float = 0.0
    """Per step: Q-MoE measuring the step's input (its reference), per output megapixel."""
    candidate_s_per_mp: float = 0.0
    """Per candidate of a restoration step: validating and storing it, and scoring it, per output megapixel."""
    sr_candidate_s_per_mp: float = 0.0
    """Per candidate of an SR step: the same plus the AdaIN colour fix, per output megapixel."""
    faces_s_per_mp: float = 0.0
    """The face stage's detection on the result, per output megapixel (profiles that restore faces)."""
    face_s: float = 0.0
    """Restoring one face (each face found in the input)."""
    write_s_per_mp: float = 0.0
    """finalize: the output file, the JSON and HTML reports, per output megapixel."""


@functools.cache
def overheads() -> Overheads:
    """The measured overheads (all zero if the costs file has none or is unreadable)."""
    try:
        raw = json.loads(COSTS_FILE.read_text(encoding="utf-8")).get("overheads") or {}
        known = {f.name for f in fields(Overheads)}
        return Overheads(**{k: float(v) for k, v in raw.items() if k in known})
    except (OSError, ValueError, TypeError, AttributeError):
        return Overheads()


class Dropped(TypedDict):
    """One expert a step did not run, and why (recorded in the events, shown in the reports)."""

    step: str
    tool: str
    rule: Literal["budget", "side", "step"]
    """``budget``: its predicted cost broke the step's share of the run budget; ``side``: Fast4K's long-side
    threshold; ``step``: Fast4K's per-step seconds."""
    predicted_s: float | None
    """Its predicted seconds for this step (None: no measured cost); under the budget rule with its candidate's
    validation, storing and scoring."""
    share_s: float | None
    """What the step could spend (budget rule) or the step limit (``step`` rule)."""
    share_left_s: float | None
    """What was left of the step's share after its overhead and the cheaper experts kept before it (budget rule
    only)."""
    budget_left_s: float | None
    """The run's budget left before this step (budget rule only)."""


@dataclass(frozen=True)
class Selection:
    """The experts a step runs (cheapest first under a budget, registry order otherwise) and those dropped."""

    tools: list[Tool]
    dropped: list[Dropped]


def _mp(size: tuple[int, int], scale: int = 1) -> float:
    return size[0] * size[1] * scale**2 / 1e6


def predicted_seconds(tool: Tool, size: tuple[int, int]) -> float | None:
    """The tool's measured cost for an input of ``size`` (h, w), where its ``seconds_per_mp`` is known."""
    per_mp = tool.spec.seconds_per_mp
    return None if per_mp is None else per_mp * _mp(size, tool.spec.scale)


def candidate_seconds(tool: Tool, size: tuple[int, int]) -> float:
    """Predicted seconds of one candidate besides the tool: validating, storing and scoring it (+ the colour fix
    of SR outputs)."""
    o = overheads()
    return (o.sr_candidate_s_per_mp if tool.spec.scale > 1 else o.candidate_s_per_mp) * _mp(size, tool.spec.scale)


def expert_seconds(tool: Tool, size: tuple[int, int]) -> float:
    """What keeping ``tool`` on a step costs the budget: its run (zero if unmeasured) and its candidate's."""
    return (predicted_seconds(tool, size) or 0.0) + candidate_seconds(tool, size)


def step_seconds(size: tuple[int, int], scale: int) -> float:
    """A step's own overhead on an input of ``size`` (h, w) going ×``scale``: Q-MoE measuring its input."""
    return overheads().step_s_per_mp * _mp(size, scale)


def charged(tools: list[Tool], size: tuple[int, int]) -> float:
    """What a step running ``tools`` on an input of ``size`` costs the budget: the step's overhead and every
    expert's run and candidate (unknown tool costs count zero)."""
    if not tools:
        return 0.0
    return step_seconds(size, max(t.spec.scale for t in tools)) + sum(expert_seconds(t, size) for t in tools)


def opening(profile: Profile, size: tuple[int, int], out_size: tuple[int, int], faces: int = 0) -> float:
    """The ledger's opening charge for an input of ``size`` (h, w) written at ``out_size`` (either order): the
    run's fixed costs — start-up, perception, the face stage and writing. The face stage is charged for the
    ``faces`` found in the input, and at least one: a face the degraded input hides may be found on the result
    (the demo's noisy 256² astronaut), and an unused reserve costs experts, not time."""
    o = overheads()
    out = _mp(out_size)
    face = o.faces_s_per_mp * out + o.face_s * max(1, faces) if profile.face_restore else 0.0
    return o.start_s + o.perceive_s + o.perceive_s_per_mp * _mp(size) + face + o.write_s_per_mp * out


def step_share(left: float, agenda: list[str], size: tuple[int, int], full_s: float = 0.0) -> float:
    """The part of ``left`` seconds that ``agenda[0]`` may spend on an input of ``size`` (h, w): ``left`` split
    over the agenda's steps in proportion to their output megapixels, but what running every expert of the step
    costs (``full_s``) where that is no more than an even split of ``left``. The floor keeps a small early step whole: by
    megapixels a 256² denoising step before two ×4 steps to 4096² gets 0.2 s of 50 and would run only the
    cheapest denoisers, while MAXIM, the one trained on real camera noise, costs 9 s there — and what that step
    leaves behind, the ×4 steps magnify sixteen times. A step that cannot run whole within the even split keeps
    its megapixel share: a 1 MP ×4 step taking half of what is left would starve the 16 MP step after it. SR steps
    get no floor (:func:`select` passes ``full_s=0``): at 1 MP the floor would run Real-ESRGAN (25 s), which won
    none of twelve held-out ×4 steps, where the 4096² step needs the time for ClearReality."""
    outputs = []
    h, w = size
    for step in agenda:
        h, w = h * step_scale(step), w * step_scale(step)
        outputs.append(h * w)
    if not outputs or left <= 0:
        return 0.0
    by_mp = left * outputs[0] / sum(outputs)
    return max(by_mp, full_s) if full_s <= left / len(outputs) else by_mp


def _by_budget(tools: list[Tool], step: str, share: float, left: float, size: tuple[int, int]) -> Selection:
    known = sorted((t for t in tools if t.spec.seconds_per_mp is not None), key=lambda t: expert_seconds(t, size))
    kept = [t for t in tools if t.spec.seconds_per_mp is None]
    total = step_seconds(size, step_scale(step)) + sum(candidate_seconds(t, size) for t in kept)
    dropped: list[Dropped] = []
    for i, t in enumerate(known):
        cost = expert_seconds(t, size)
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
        full = 0.0 if is_sr_step(step) else charged(tools, size)  # the floor is for restoration steps
        return _by_budget(tools, step, step_share(left, agenda, size, full), left, size)
    if profile.fast4k:
        return _by_fast4k(tools, step, profile, size)
    return Selection(list(tools), [])


def _secs(x: float | None) -> str:
    """Seconds with one decimal, two below 1 s (``0.12 > 0.07``, not ``0.1 > 0.1``)."""
    return "?" if x is None else f"{x:.1f}" if abs(x) >= 1 else f"{x:.2f}"


def dropped_line(d: Dropped) -> str:
    """``sr_realesrgan_x4 (268.4 s predicted, scoring included > 27.8 s left of the step's 51.8 s share)`` and
    the like."""
    pred = "cost unknown" if d["predicted_s"] is None else f"{_secs(d['predicted_s'])} s predicted"
    if d["rule"] == "budget":
        return (f"{d['tool']} ({pred}, scoring included > {_secs(d['share_left_s'])} s left of the step's "
                f"{_secs(d['share_s'])} s share)")
    if d["rule"] == "step":
        return f"{d['tool']} ({pred} > {d['share_s']:.0f} s Fast4K step limit)"
    return f"{d['tool']} (Fast4K: slow tool, long side ≥ threshold)"
