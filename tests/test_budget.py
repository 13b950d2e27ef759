"""The run's time budget: experts whose predicted cost breaks a step's share are dropped (at least the cheapest
runs), the run's overheads (start-up, perception, scoring, faces, writing) are charged in the same ledger, the
reports say what was dropped and why, a profile without a budget keeps the Fast4K rules, and a resumed run makes
the same decisions (they follow the predicted costs in the state, not the clock)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import photo, write

from fourkagent.context import Context
from fourkagent.imaging import Image, resize
from fourkagent.planning import budget
from fourkagent.planning.budget import Overheads, charged, opening, select, step_share
from fourkagent.profiles import load_profile
from fourkagent.report.html import html_path_for
from fourkagent.runner import resume, run
from fourkagent.tools.base import Tool, ToolRegistry, ToolSpec


def _spec(name: str, category: str, per_mp: float | None, scale: int = 1, slow: bool = False) -> ToolSpec:
    return ToolSpec(name, category, "test expert", scale=scale, slow=slow,  # type: ignore[arg-type]
                    seconds_per_mp=per_mp)


def _ident(img: Image) -> Image:
    return img


@pytest.fixture(autouse=True)
def no_overheads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The experts alone, unless a test sets overheads (the shipped ones are measured figures that change)."""
    monkeypatch.setattr(budget, "overheads", Overheads)


def _sr(name: str, per_mp: float) -> Tool:
    return Tool(_spec(name, "super-resolution", per_mp, scale=4), _ident)


def test_scoring_overhead_is_charged_a_step_keeps_fewer_experts(monkeypatch: pytest.MonkeyPatch) -> None:
    tools = [_sr("a", 0.1), _sr("b", 0.1), _sr("c", 0.1)]
    profile = load_profile({"base": "FastGen4K-P", "time_budget_s": 2.0})
    agenda, size, out_mp = ["super-resolution"], (256, 256), 1024 * 1024 / 1e6
    assert len(select(tools, profile, agenda, size).tools) == 3  # 0.31 s of experts alone
    monkeypatch.setattr(budget, "overheads", lambda: Overheads(sr_candidate_s_per_mp=0.8))
    sel = select(tools, profile, agenda, size)  # each candidate 0.94 s with its scoring: two fit the 2 s
    assert [t.name for t in sel.tools] == ["a", "b"]
    (drop,) = sel.dropped
    assert drop["tool"] == "c" and drop["predicted_s"] == round(0.9 * out_mp, 2)
    assert drop["share_s"] == 2.0 and drop["share_left_s"] == round(2.0 - 2 * 0.9 * out_mp, 2)
    assert charged(sel.tools, size) == pytest.approx(2 * 0.9 * out_mp)
    monkeypatch.setattr(budget, "overheads", lambda: Overheads(sr_candidate_s_per_mp=0.8, step_s_per_mp=0.5))
    sel = select(tools, profile, agenda, size)  # the step's own 0.52 s first: one candidate fits
    assert [t.name for t in sel.tools] == ["a"] and sel.dropped[0]["share_left_s"] == round(2.0 - 1.4 * out_mp, 2)
    assert charged(sel.tools, size) == pytest.approx(1.4 * out_mp)
    huge = Overheads(sr_candidate_s_per_mp=50.0)
    monkeypatch.setattr(budget, "overheads", lambda: huge)
    assert [t.name for t in select(tools, profile, agenda, size).tools] == ["a"]  # the cheapest always runs


def test_opening_charge_holds_the_runs_fixed_costs(monkeypatch: pytest.MonkeyPatch) -> None:
    o = Overheads(start_s=3.0, perceive_s=1.0, perceive_s_per_mp=10.0, faces_s_per_mp=0.5, face_s=2.0,
                  write_s_per_mp=0.25)
    monkeypatch.setattr(budget, "overheads", lambda: o)
    faces = load_profile({"base": "FastGen4K-P"})
    no_faces = faces.model_copy(update={"face_restore": False})
    inp, out = 256 * 256 / 1e6, 4096 * 4096 / 1e6
    assert opening(no_faces, (256, 256), (4096, 4096), faces=1) == pytest.approx(4.0 + 10 * inp + 0.25 * out)
    assert opening(faces, (256, 256), (4096, 4096), faces=2) == pytest.approx(4.0 + 10 * inp + 0.75 * out + 4.0)
    # none found in the input: one is reserved, as the result may show one the noise hid
    assert opening(faces, (256, 256), (4096, 4096), faces=0) == pytest.approx(4.0 + 10 * inp + 0.75 * out + 2.0)


def test_step_share_follows_the_output_megapixels_of_the_steps_left() -> None:
    agenda = ["denoising", "super-resolution", "super-resolution"]
    mp = [256 * 256, 1024 * 1024, 4096 * 4096]
    assert step_share(60.0, agenda, (256, 256)) == pytest.approx(60.0 * mp[0] / sum(mp))
    assert step_share(60.0, agenda[1:], (256, 256)) == pytest.approx(60.0 * mp[1] / sum(mp[1:]))
    assert step_share(60.0, agenda[2:], (1024, 1024)) == pytest.approx(60.0)
    assert step_share(-5.0, agenda[2:], (1024, 1024)) == 0.0  # overspent: only the cheapest expert runs


def test_a_small_early_step_runs_all_its_experts_when_they_cost_less_than_an_even_split() -> None:
    """By megapixels a 256² denoising step before two ×4 steps gets 0.2 s of 60: the floor gives it its full cost
    (here 9 s) when that is no more than an even split of what is left; a step that cannot run whole within the
    even split keeps its megapixel share (it would starve the large step after it)."""
    agenda = ["denoising", "super-resolution", "super-resolution"]
    by_mp = step_share(60.0, agenda, (256, 256))
    assert by_mp < 0.5
    assert step_share(60.0, agenda, (256, 256), full_s=9.0) == pytest.approx(9.0)
    assert step_share(60.0, agenda, (256, 256), full_s=45.0) == pytest.approx(by_mp)  # 45 > 60 / 3
    assert step_share(60.0, agenda[1:], (256, 256), full_s=50.0) == pytest.approx(60.0 / 17)  # 1 MP of 17
    assert step_share(60.0, agenda[2:], (1024, 1024), full_s=500.0) == pytest.approx(60.0)  # the last step: all left
    assert step_share(-1.0, agenda, (256, 256), full_s=9.0) == 0.0
    tools = [Tool(_spec("cheap", "denoising", 1.0), _ident), Tool(_spec("maxim", "denoising", 130.0), _ident)]
    profile = load_profile({"base": "FastGen4K-P", "time_budget_s": 60.0})
    sel = select(tools, profile, agenda, (256, 256))  # 0.066 MP: cheap 0.07 s, maxim 8.5 s
    assert [t.name for t in sel.tools] == ["cheap", "maxim"] and not sel.dropped


def test_expert_breaking_the_share_is_dropped_cheapest_kept() -> None:
    tools = [Tool(_spec("mid", "denoising", 10.0), _ident), Tool(_spec("heavy", "denoising", 100.0), _ident),
             Tool(_spec("cheap", "denoising", 1.0), _ident), Tool(_spec("unmeasured", "denoising", None), _ident)]
    profile = load_profile({"base": "FastGen4K-P", "time_budget_s": 12.0})
    sel = select(tools, profile, ["denoising"], (1000, 1000), spent=1.0)  # 11 s left, one step: share 11 s
    assert [t.name for t in sel.tools] == ["mid", "cheap", "unmeasured"]  # registry order kept
    (drop,) = sel.dropped
    assert drop == {"step": "denoising", "tool": "heavy", "rule": "budget", "predicted_s": 100.0, "share_s": 11.0,
                    "share_left_s": 0.0, "budget_left_s": 11.0}  # cheap (1 s) and mid (10 s) took the share
    broke = select(tools, profile, ["denoising"], (1000, 1000), spent=20.0)  # overspent: the cheapest alone
    assert [t.name for t in broke.tools] == ["cheap", "unmeasured"]
    assert sorted(d["tool"] for d in broke.dropped) == ["heavy", "mid"]


def test_profile_without_budget_keeps_the_fast4k_rules() -> None:
    tools = [Tool(_spec("fast", "denoising", None), _ident),
             Tool(_spec("heavy", "denoising", 100.0, slow=True), _ident)]
    fast4k = load_profile({"base": "FastGen4K-P", "time_budget_s": None})
    assert fast4k.fast4k and fast4k.time_budget_s is None
    assert [t.name for t in select(tools, fast4k, ["denoising"], (256, 256)).tools] == ["fast", "heavy"]  # 6.6 s
    step = select(tools, fast4k, ["denoising"], (600, 600))  # 36 s > 30 s step limit
    assert [t.name for t in step.tools] == ["fast"] and step.dropped[0]["rule"] == "step"
    side = select(tools, fast4k.model_copy(update={"fast4k_side_threshold": 500}), ["denoising"], (510, 100))
    assert [t.name for t in side.tools] == ["fast"] and side.dropped[0]["rule"] == "side"
    off = load_profile({"base": "FastGen4K-P", "time_budget_s": None, "fast4k": False})
    assert len(select(tools, off, ["denoising"], (2000, 2000)).tools) == 2


class Killed(BaseException):
    """Stands for the process dying inside a tool (not an error a run survives)."""


def _registry(kill: list[bool] | None = None) -> ToolRegistry:
    """Two denoisers (both fit step 1's share) and two ×4 SR experts; sr_heavy fits the budget only if step 1's
    predicted spending is forgotten. ``kill``: sr_cheap dies on its first call while ``kill[0]`` is True."""

    def blur(img: Image) -> Image:
        return cv2.GaussianBlur(img, (3, 3), 0.6)

    def up(img: Image) -> Image:
        if kill and kill[0]:
            kill[0] = False
            raise Killed
        return resize(img, img.shape[1] * 4, img.shape[0] * 4)

    return ToolRegistry([
        Tool(_spec("dn_cheap", "denoising", 1.0), blur),
        Tool(_spec("dn_heavy", "denoising", 100.0), lambda im: cv2.medianBlur(np.ascontiguousarray(im), 3)),
        Tool(_spec("sr_cheap", "super-resolution", 0.01, scale=4), up),
        Tool(_spec("sr_heavy", "super-resolution", 150.0, scale=4), lambda im: np.clip(up(im) * 1.02, 0, 1)),
    ])


PROFILE: dict[str, Any] = {"name": "budget-test", "user_plan": ["denoising", "super-resolution"],
                           "upscale_to_4k": False, "face_restore": False, "with_rollback": False, "time_budget_s": 10.0}
"""64² input: step 1's share is 10 × 64²/(64² + 256²) = 0.59 s, both denoisers fit (0.41 s predicted); 9.59 s are
left for SR, where sr_heavy's 9.83 s breaks them (it would fit the 10 s of a run that forgot step 1)."""


def _drops(report: dict[str, Any]) -> list[dict[str, Any]]:
    return report["timings"]["dropped"]


def test_run_drops_the_expert_that_breaks_the_budget_and_reports_it(tmp_path: Path) -> None:
    src = write(tmp_path, "in.png", np.ascontiguousarray(photo("coffee")[100:164, 200:264]))
    res = run(str(src), str(tmp_path / "out.png"), PROFILE, registry=_registry())
    report = json.loads(Path(res["report_path"]).read_text())
    (drop,) = _drops(report)
    assert drop["tool"] == "sr_heavy" and drop["step"] == "super-resolution" and drop["rule"] == "budget"
    assert drop["predicted_s"] == pytest.approx(150.0 * 256 * 256 / 1e6, abs=0.01)
    assert drop["budget_left_s"] == pytest.approx(10.0 - 101.0 * 64 * 64 / 1e6, abs=0.01)
    ran = [(r["step"], r["tool"]) for r in report["timings"]["tool_runs"]]
    assert ran == [("denoising", "dn_cheap"), ("denoising", "dn_heavy"), ("super-resolution", "sr_cheap")]
    spent = 101.0 * 64 * 64 / 1e6 + 0.01 * 256 * 256 / 1e6
    assert report["timings"]["budget"]["predicted_spent_s"] == pytest.approx(spent, abs=1e-3)
    line = ("dropped at super-resolution: sr_heavy (9.8 s predicted, scoring included > 9.6 s left of the step's "
            "9.6 s share)")
    assert line in res["summary"]
    assert "time budget: 0.4 of 10 s predicted" in res["summary"]
    page = html_path_for(res["output_path"]).read_text(encoding="utf-8")
    assert "Dropped experts" in page and "<td>sr_heavy</td><td>budget</td>" in page


def test_resumed_run_makes_the_same_decisions(tmp_path: Path) -> None:
    src = write(tmp_path, "in.png", np.ascontiguousarray(photo("coffee")[100:164, 200:264]))
    homes = [Context(home=str(tmp_path / h)) for h in ("ref", "victim")]  # each its own (empty) experience store
    ref = run(str(src), str(tmp_path / "ref.png"), PROFILE, context=homes[0], registry=_registry())
    kill = [True]
    with pytest.raises(Killed):  # dies in the SR step, after the denoising step's checkpoints
        run(str(src), str(tmp_path / "victim.png"), PROFILE, run_id="victim", context=homes[1],
            registry=_registry(kill))
    assert not (tmp_path / "victim.png").exists()
    res = resume("victim", context=homes[1], registry=_registry(kill))
    a, b = (json.loads(Path(r["report_path"]).read_text()) for r in (ref, res))
    assert _drops(a) == _drops(b) and [d["tool"] for d in _drops(b)] == ["sr_heavy"]
    assert a["timings"]["budget"]["predicted_spent_s"] == b["timings"]["budget"]["predicted_spent_s"]
    assert (tmp_path / "ref.png").read_bytes() == (tmp_path / "victim.png").read_bytes()


def test_run_charges_its_overheads_in_the_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start-up and perception open the ledger, each candidate's scoring is charged: with 6 s of fixed costs only
    the cheap SR expert fits what is left (the small denoising step, 0.4 s in all, runs whole: its floor), and the
    report's predicted total holds them all."""
    monkeypatch.setattr(budget, "overheads", lambda: Overheads(start_s=5.0, perceive_s=1.0, candidate_s_per_mp=2.0,
                                                                 sr_candidate_s_per_mp=4.0))
    src = write(tmp_path, "in.png", np.ascontiguousarray(photo("coffee")[100:164, 200:264]))
    res = run(str(src), str(tmp_path / "out.png"), PROFILE, registry=_registry())
    report = json.loads(Path(res["report_path"]).read_text())
    ran = [(r["step"], r["tool"]) for r in report["timings"]["tool_runs"]]
    assert ran == [("denoising", "dn_cheap"), ("denoising", "dn_heavy"), ("super-resolution", "sr_cheap")]
    inp, out = 64 * 64 / 1e6, 256 * 256 / 1e6
    spent = 6.0 + (1.0 + 2.0) * inp + (101.0 + 2.0) * inp + (0.01 + 4.0) * out
    assert report["timings"]["budget"]["predicted_spent_s"] == pytest.approx(spent, abs=5e-3)  # charges rounded to ms
