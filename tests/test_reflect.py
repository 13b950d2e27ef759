"""reflect: a tool that returns its input unchanged is not a candidate, and is never credited with a step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from conftest import photo

from fourkagent import degrade
from fourkagent.imaging import as_image
from fourkagent.nodes.execute import make_execute
from fourkagent.nodes.reflect import reflect
from fourkagent.profiles.loader import load_profile
from fourkagent.report.json_report import summary, trajectory
from fourkagent.state.artifacts import ArtifactStore
from fourkagent.tools.base import Tool, ToolRegistry, ToolSpec
from fourkagent.tools.registry import MAIN_REGISTRY

CROP = photo("astronaut")[100:356, 150:406]
CLEAN = as_image(cv2.GaussianBlur(CROP, (0, 0), 1.0))  # smooth like a denoised SR output: σ estimate ~0.04
DEMO = ToolRegistry([MAIN_REGISTRY.get(n) for n in ("denoise_nlm", "denoise_wavelet", "denoise_cnn")])
"""The demo's 1024-px denoising experts (Fast4K drops the slow ones at that size)."""


def _step(tmp_path: Path, img: np.ndarray, registry: ToolRegistry,
          options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run execute then reflect for one denoising step on ``img``; the state after it and reflect's update."""
    art = ArtifactStore(tmp_path / "artifacts").put(img)
    state: dict[str, Any] = {
        "agenda": ["denoising"], "cursor": "n0", "run_dir": str(tmp_path), "options": options or {},
        "profile_data": load_profile("FastGen4K-P").model_dump(),
        "tree": {"n0": {"id": "n0", "parent": None, "step": None, "children": {}, "failed": False, "tool": None,
                        "artifact": art, "score": None, "width": img.shape[1], "height": img.shape[0]}},
    }
    state |= make_execute(registry)(state)
    update = reflect(state)
    return state | update, update


def test_an_already_clean_image_keeps_its_input_and_credits_no_denoiser(tmp_path: Path) -> None:
    """The demo's 1024-px denoising step came after SRMD had removed the noise: NLM and wavelet estimate σ < 1
    and return their input, which used to win at Q 0.5 and be reported as "denoising: denoise_nlm"."""
    state, update = _step(tmp_path, CLEAN, DEMO)
    cands = {c["tool"]: c for c in update["scores"]}
    for name in ("denoise_nlm", "denoise_wavelet"):
        assert cands[name]["unchanged"] and cands[name]["score"] is None  # not a candidate, not scored
        assert "unchanged" in cands[name]["error"]
    node = state["tree"][update["verdict"]["node"]]
    assert node["tool"] is None and node["artifact"] == state["tree"]["n0"]["artifact"]
    assert node["score"] == 0.5 and not node["failed"] and update["verdict"]["passed"]  # doing nothing passes
    assert node["note"].startswith("kept the input: no candidate improved it")
    assert update["cursor"] == update["verdict"]["node"]  # no rollback: the step is done

    report = {"input": {"width": 256, "height": 256}, "output": {"size": [256, 256]},
              "profile": {"name": "FastGen4K-P"}, "perception": {"degradations": []},
              "trajectory": trajectory(state), "rollbacks": [], "compromise": False,
              "faces": {"status": "skipped", "reason": "off", "faces": []}, "timings": {"total_nodes": 1.0}}
    assert "  denoising: kept the input Q=0.500 (no candidate improved it)" in summary(report).splitlines()
    assert "denoise_nlm" not in summary(report)


def test_a_denoiser_that_works_still_beats_a_no_op(tmp_path: Path) -> None:
    noop = Tool(ToolSpec("dn_none", "denoising", "returns its input"), lambda im: im)
    reg = ToolRegistry([noop, MAIN_REGISTRY.get("denoise_nlm")])
    noisy = degrade.add_noise(CROP, 25.0, seed=3)
    state, update = _step(tmp_path, noisy, reg)
    cands = {c["tool"]: c for c in update["scores"]}
    assert cands["dn_none"]["unchanged"] and cands["dn_none"]["score"] is None
    assert cands["denoise_nlm"]["score"] > 0.5 and "unchanged" not in cands["denoise_nlm"]
    node = state["tree"][update["verdict"]["node"]]
    assert node["tool"] == "denoise_nlm" and "note" not in node and update["verdict"]["passed"]


def test_keeping_the_input_below_a_strict_threshold_fails_and_says_why(tmp_path: Path) -> None:
    _, update = _step(tmp_path, CLEAN, DEMO, {"threshold": 0.6})
    v = update["verdict"]
    assert v["best_tool"] is None and v["best_score"] == 0.5 and not v["passed"]
    assert v["reason"].startswith("kept the input") and "< threshold 0.600" in v["reason"]
