"""Human in the loop: pause after the first plan (approve or edit it) and after a rollback compromise."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

from conftest import photo, write
from fourkagent import degrade
from fourkagent.context import Context
from fourkagent.errors import RunError
from fourkagent.graph import build_graph
from fourkagent.nodes.plan import check_plan

SR = "super-resolution"


@pytest.fixture
def noisy(tmp_path: Path) -> Path:
    """A 64×48 crop of a real photo with σ=20 noise."""
    return write(tmp_path, "noisy.png", degrade.add_noise(photo()[40:88, 180:244], 20, seed=1))


def _cfg(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def _trajectory(graph: Any, cfg: dict[str, Any]) -> list[str]:
    report = json.loads(Path(graph.get_state(cfg).values["report_path"]).read_text())
    return [t["step"] for t in report["trajectory"]]


@pytest.mark.slow
def test_edited_plan_is_what_runs_after_resume_in_a_new_process(noisy: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "cp.sqlite")
    out = tmp_path / "out.png"
    cfg = _cfg("review-1")
    inp = {"input_path": str(noisy), "output_path": str(out), "profile": "ExpSR-s4-F",
           "options": {"review_plan": True, "threshold": 0.0}}
    with sqlite3.connect(db, check_same_thread=False) as conn:
        g = build_graph(SqliteSaver(conn))
        first = g.invoke(inp, cfg, durability="sync")
        (intr,) = first["__interrupt__"]
        assert intr.value["type"] == "plan_review"
        assert intr.value["agenda"] == [SR]  # the profile plans SR only …
        assert "noise" in {d["kind"] for d in intr.value["degradations"]}  # … though it sees the noise
        assert g.get_state(cfg).next == ("plan",) and not out.exists()
    # another process answers: SR first, then dehazing before denoising — orders the planner never picks
    with sqlite3.connect(db, check_same_thread=False) as conn:
        g = build_graph(SqliteSaver(conn))
        with pytest.raises(RunError, match="unknown step"):
            g.invoke(Command(resume=[SR, "denoise"]), cfg, durability="sync")
        assert g.get_state(cfg).next == ("plan",)  # a rejected answer is not stored: answer again
        edited = [SR, "dehazing", "denoising"]
        g.invoke(Command(resume=edited), cfg, durability="sync")
        state = g.get_state(cfg).values
        assert state["all_steps"] == edited and state["options"]["plan"] == edited
        assert _trajectory(g, cfg) == edited  # kept in order through every re-plan
    assert out.exists()


def test_context_review_and_approval_keeps_the_planned_agenda(noisy: Path, tmp_path: Path) -> None:
    g = build_graph(InMemorySaver())
    cfg = _cfg("review-2")
    inp = {"input_path": str(noisy), "output_path": str(tmp_path / "o.png"), "profile": "ExpSR-s4-F",
           "options": {"threshold": 0.0}}
    (intr,) = g.invoke(inp, cfg, context=Context(review_plan=True))["__interrupt__"]
    g.invoke(Command(resume="approve"), cfg, context=Context(review_plan=True))
    assert _trajectory(g, cfg) == intr.value["agenda"] == [SR]


def test_no_pause_unless_asked(noisy: Path, tmp_path: Path) -> None:
    g = build_graph(InMemorySaver())
    res = g.invoke({"input_path": str(noisy), "output_path": str(tmp_path / "o.png"), "profile": "ExpSR-s4-F"},
                   _cfg("plain"))
    assert "__interrupt__" not in res and Path(res["output_path"]).exists()


def test_edit_that_drops_super_resolution_is_rejected(noisy: Path, tmp_path: Path) -> None:
    g = build_graph(InMemorySaver())
    cfg = _cfg("review-3")
    g.invoke({"input_path": str(noisy), "output_path": str(tmp_path / "o.png"), "profile": "ExpSR-s4-F",
              "options": {"review_plan": True}}, cfg)
    with pytest.raises(RunError, match="keep the super-resolution steps"):
        g.invoke(Command(resume=["denoising"]), cfg)


@pytest.mark.parametrize(
    ("steps", "message"),
    [("denoising", "list of step names"), (["denoising", "denoising", SR], "more than once"),
     ([SR, SR], "keep the super-resolution"), (["sharpen", SR], "unknown step")],
)
def test_check_plan_errors(steps: Any, message: str) -> None:
    with pytest.raises(RunError, match=message):
        check_plan(steps, ["denoising", SR])


def test_check_plan_accepts_subsets_reorders_and_new_steps() -> None:
    assert check_plan([SR], ["denoising", SR]) == [SR]
    assert check_plan(["dehazing", SR, "denoising"], ["denoising", SR]) == ["dehazing", SR, "denoising"]


@pytest.mark.parametrize(("answer", "steps_run"), [("stop", 1), (True, 2)])
def test_compromise_review_stop_or_go_on(noisy: Path, tmp_path: Path, answer: Any, steps_run: int) -> None:
    """Threshold 2 fails every step: both orderings are tried, then the run pauses at the compromise."""
    g = build_graph(InMemorySaver())
    cfg = _cfg(f"compromise-{answer}")
    inp = {"input_path": str(noisy), "output_path": str(tmp_path / "o.png"), "profile": "ExpSR-s4-F",
           "options": {"plan": ["denoising", SR], "threshold": 2.0, "review_compromise": True}}
    (intr,) = g.invoke(inp, cfg)["__interrupt__"]
    payload = intr.value
    assert payload["type"] == "compromise_review" and payload["rollbacks"] == 2
    assert len(payload["applied_steps"]) == 1 and len(payload["remaining_steps"]) == 1
    with pytest.raises(RunError, match="compromise review takes"):
        g.invoke(Command(resume="maybe"), cfg)
    g.invoke(Command(resume=answer), cfg)
    state = g.get_state(cfg).values
    assert len(_trajectory(g, cfg)) == steps_run
    assert _trajectory(g, cfg)[0] == payload["applied_steps"][0]
    assert ("stopped" in state["rollbacks"][-1]["action"]) == (answer == "stop")
    assert Path(state["output_path"]).exists()
