"""The experience store records runs, answers for similar images, and changes the plan after failures."""

from __future__ import annotations

import pytest

import json
from pathlib import Path

from conftest import write

from fourkagent import degrade
from fourkagent.context import Context
from fourkagent.planning.order import order_steps
from fourkagent.runner import run
from fourkagent.store.experience import ExperienceStore, jaccard
from fourkagent.vocabulary import SR4


def _fail_denoise_first(store: ExperienceStore, times: int) -> None:
    for _ in range(times):
        run = {"profile": "t", "signature": ["noise"], "width": 8, "height": 8, "steps": ["denoising", SR4],
               "order": [], "tools": [], "scores": [], "rollbacks": 1, "compromise": False, "seconds": 1.0}
        store.record(run, [
            {"step": "denoising", "before": [], "after": [SR4], "tool": "x", "score": 0.1, "passed": False},
            {"step": SR4, "before": [], "after": ["denoising"], "tool": "y", "score": 0.9, "passed": True},
            {"step": "denoising", "before": [SR4], "after": [], "tool": "x", "score": 0.9, "passed": True},
        ])


def test_recorded_failures_change_the_plan(tmp_path: Path) -> None:
    store = ExperienceStore(f"sqlite:///{tmp_path / 'a.sqlite'}")
    default = order_steps(["denoising", SR4], experience=store.pairwise(["noise"]))
    assert default == ["denoising", SR4]
    _fail_denoise_first(store, 20)
    learned = store.pairwise(["noise"])
    assert learned[("denoising", SR4)][0] > learned[("denoising", SR4)][1]
    assert order_steps(["denoising", SR4], experience=learned) == [SR4, "denoising"]
    # a dissimilar signature is not affected
    assert order_steps(["denoising", SR4], experience=store.pairwise(["haze", "rain"])) == ["denoising", SR4]


def test_similarity() -> None:
    assert jaccard([], []) == 1.0 and jaccard(["noise"], ["noise", "haze"]) == 0.5 and jaccard(["a"], ["b"]) == 0.0


@pytest.mark.slow
def test_runs_record_into_a_store_at_another_url(tmp_path: Path, noisy_small) -> None:
    src, _ = noisy_small
    url = f"sqlite:///{tmp_path / 'elsewhere' / 'exp.sqlite'}"
    (tmp_path / "elsewhere").mkdir()
    ctx = Context(experience_url=url)
    res = run(str(src), str(tmp_path / "o.png"), "AerSR-s4-F", context=ctx)
    report = json.loads(Path(res["report_path"]).read_text())
    assert report["experience"] == {"used": "store", "this_run": "recorded"}
    summ = ExperienceStore(url).summary()
    assert summ["runs"] == 1 and summ["steps"]["denoising"]["tried"] >= 1
    assert not (Path(ctx.home) / "experience.sqlite").exists()


@pytest.mark.slow
def test_plan_node_uses_the_store(tmp_path: Path) -> None:
    img = degrade.add_noise(degrade.downscale(__import__("conftest").photo("chelsea")[:256, :256], 2), 30, seed=2)
    src = write(tmp_path, "n.png", img)
    url = f"sqlite:///{tmp_path / 'e.sqlite'}"
    store = ExperienceStore(url)
    _fail_denoise_first(store, 30)
    res = run(str(src), str(tmp_path / "o.png"), "AerSR-s4-F", context=Context(experience_url=url))
    report = json.loads(Path(res["report_path"]).read_text())
    assert report["tree"]["n1"]["step"] == SR4, "the learned ordering was not tried first"
    assert report["experience"]["used"] == "store"
    res2 = run(str(src), str(tmp_path / "o2.png"), "AerSR-s4-F", context=Context(use_experience=False))
    report2 = json.loads(Path(res2["report_path"]).read_text())
    assert report2["tree"]["n1"]["step"] == "denoising" and report2["experience"]["used"] == "paper"


def test_winning_tools_come_first_and_a_budget_runs_only_them(tmp_path: Path, noisy_small) -> None:
    src, _ = noisy_small
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    store = ExperienceStore(url)
    for _ in range(3):  # on noisy images, the wavelet denoiser won before
        run_rec = {"profile": "t", "signature": ["noise"], "width": 8, "height": 8, "steps": ["denoising", SR4],
                   "order": ["denoising"], "tools": ["denoise_wavelet"], "scores": [0.9], "rollbacks": 0,
                   "compromise": False, "seconds": 1.0}
        store.record(run_rec, [{"step": "denoising", "before": [], "after": [SR4], "tool": "denoise_wavelet",
                                "score": 0.9, "passed": True}])
    res = run(str(src), str(tmp_path / "b.png"), "AerSR-s4-F", options={"max_tools": 1},
              context=Context(experience_url=url))
    report = json.loads(Path(res["report_path"]).read_text())
    den = next(t for t in report["trajectory"] if t["step"] == "denoising")
    assert [c["tool"] for c in den["candidates"]] == ["denoise_wavelet"]
    assert report["experience"]["used"] == "store"
    sr = next(t for t in report["trajectory"] if t["step"] == SR4)
    assert len(sr["candidates"]) == 1  # the budget applies to every step; no SR wins recorded: registry order
