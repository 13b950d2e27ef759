"""Durability: SIGKILL at every node boundary resumes byte-identically; damaged artifacts are recomputed;
failing tools are dropped with a reason, never crashing a run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import photo
from PIL import Image as PILImage
from PIL import ImageCms

from fourkagent.context import Context
from fourkagent.errors import FourKError
from fourkagent.graph.builder import build_graph
from fourkagent.imaging import resize, to_uint8
from fourkagent.runner import open_checkpointer, resume, run
from fourkagent.tools.base import Tool, ToolRegistry, ToolSpec

CLASSICAL = "[t for m in r.TOOL_MODULES if m.__name__.startswith('fourkagent.tools.classical') for t in m.TOOLS]"
CLI = [sys.executable, "-c", "import sys; import fourkagent.tools.registry as r; from fourkagent.tools.base import ToolRegistry; "
       f"r.MAIN_REGISTRY = ToolRegistry({CLASSICAL}); from fourkagent.cli import main; sys.exit(main(sys.argv[1:]))"]
"""``4kagent`` with the classical tools only (no torch import per process: these tests are about durability)."""
NODE_LINE = re.compile(r"^\[\s*[\d.]+s\] (\w+):")
"""A progress line the CLI prints after a node's update (its checkpoint writes are synced by then)."""
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
"""Made once: a new profile carries a new creation date, so the inputs would differ between calls."""
THRESHOLD = "0.999"
"""High enough that the SR step fails: reflect → rollback → compromise, so every node kind runs."""


def _inputs(root: Path) -> tuple[Path, Path]:
    """An RGBA input with an ICC profile (alpha and profile must survive kills too) and a profile file."""
    rgb = to_uint8(photo("astronaut")[40:64, 180:212])
    alpha = np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (24, 1))
    src = root / "in.png"
    PILImage.fromarray(np.dstack([rgb, alpha])).save(src, icc_profile=SRGB)
    prof = root / "kill.yaml"
    data = yaml.safe_load((Path(__file__).parents[1] / "fourkagent/profiles/data/ExpSR-s2-F.yaml").read_text())
    prof.write_text(yaml.safe_dump(data | {"name": "KillTest", "face_restore": True, "perception_agent": "offline"}))
    return src, prof


def classical_registry() -> ToolRegistry:
    """The registry the CLI above uses."""
    import fourkagent.tools.registry as r

    return ToolRegistry(eval(CLASSICAL, {"r": r}))


@pytest.fixture(autouse=True)
def _light(monkeypatch: pytest.MonkeyPatch) -> None:
    """NIQE only in perception (no pyiqa import), for in-process runs and the CLI subprocesses."""
    monkeypatch.setenv("FOURKAGENT_IQA_METRICS", "niqe")
    monkeypatch.setattr("fourkagent.tools.registry.MAIN_REGISTRY", classical_registry())


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An uninterrupted in-process run: its output bytes, node order and node events."""
    root = tmp_path_factory.mktemp("ref")
    src, prof = _inputs(root)
    nodes: list[str] = []
    ctx = Context(home=str(root / "home"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FOURKAGENT_IQA_METRICS", "niqe")
        res = run(str(src), str(root / "ref.png"), str(prof), run_id="ref", options={"threshold": float(THRESHOLD)},
                  context=ctx, registry=classical_registry(),
                  on_event=lambda kind, chunk: nodes.extend(chunk) if kind == "node" else None)
    return {"bytes": Path(res["output_path"]).read_bytes(), "nodes": nodes, "events": _node_events(ctx.home, "ref")}


def _node_events(home: str, run_id: str) -> list[str]:
    with open_checkpointer(home) as saver:
        values = build_graph(saver).get_state({"configurable": {"thread_id": run_id}}).values
    return [e["node"] for e in values["events"] if set(e) == {"node", "seconds"}]


def _kill_at(args: list[str], until: str) -> tuple[str | None, int, list[str]]:
    """Run the CLI and SIGKILL it right after its first ``until`` node line.

    Returns the node killed at, the exit status and the node lines printed before it.
    """
    proc = subprocess.Popen(CLI + args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=dict(os.environ))
    assert proc.stderr is not None
    before: list[str] = []
    node = None
    for line in proc.stderr:
        assert "Traceback" not in line and "libpng" not in line, line
        m = NODE_LINE.match(line)
        if not m or m.group(1).startswith("__"):  # "__metadata__": marks updates replayed from saved writes
            continue
        if m.group(1) != until:
            before.append(m.group(1))
            continue
        node = m.group(1)
        proc.send_signal(signal.SIGKILL)
        break
    proc.wait(timeout=300)
    return node, proc.returncode, before


def _damage_candidates(home: str, run_id: str) -> list[str]:
    """Delete the first candidate artifact of the last execute and corrupt the others; returns their ids."""
    with open_checkpointer(home) as saver:
        values = build_graph(saver).get_state({"configurable": {"thread_id": run_id}}).values
    arts = Path(values["run_dir"]) / "artifacts"
    ids = [c["artifact"] for c in values["candidates"] if c["artifact"]]
    (arts / f"{ids[0]}.png").unlink()
    for aid in ids[1:]:
        data = bytearray((arts / f"{aid}.png").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (arts / f"{aid}.png").write_bytes(bytes(data))
    return ids


@pytest.mark.slow
def test_sigkill_at_every_node_boundary_resumes_byte_identically(tmp_path: Path, reference: dict[str, Any]) -> None:
    """One victim, SIGKILLed right after each distinct node's first line, resumed each time.

    After the kill at reflect its candidates are deleted/corrupted: the resume must notice and
    recompute the step (execute runs again) instead of failing or using damaged pixels.
    """
    seq = reference["nodes"]
    targets = list(dict.fromkeys(seq))
    assert targets == ["perceive", "plan", "execute", "reflect", "rollback", "face_restore", "finalize"], seq
    src, prof = _inputs(tmp_path)
    out = tmp_path / "out.png"
    home = os.environ["FOURKAGENT_HOME"]
    args = ["restore", str(src), "-o", str(out), "-p", str(prof), "--threshold", THRESHOLD, "--run-id", "victim"]
    kills: list[str] = []
    prev, damaged = -1, False
    for target in targets:
        i = seq.index(target)
        node, rc, before = _kill_at(args, until=target)
        assert node == target
        if damaged:
            assert before == ["execute", "reflect"], f"damaged step not recomputed: {before}"
            damaged = False
        else:  # nothing finished ran again; the node killed last may be replayed from its saved writes
            assert before in (seq[prev + 1:i], seq[max(prev, 0):i]), (target, before)
        assert rc == -signal.SIGKILL or (target == "finalize" and rc == 0)
        if rc == -signal.SIGKILL:
            kills.append(node)
        if target == "reflect":
            _damage_candidates(home, "victim")
            damaged = True
        prev, args = i, ["restore", "--resume", "victim"]
    done = subprocess.run(CLI + args, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == reference["bytes"]
    assert _node_events(home, "victim") == reference["events"], "a finished node's work was recorded twice"
    assert len(kills) >= len(targets) - 1 and set(kills) >= set(targets[:-1])
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]
    print(f"\nkills survived: {len(kills)} ({', '.join(kills)})")


@pytest.mark.parametrize("target", ["input", "alpha", "icc", "best", "candidate", "unused"])
def test_damaged_artifact_found_on_resume(tmp_path: Path, reference: dict[str, Any], target: str) -> None:
    """Stop at a checkpoint, damage one artifact, resume: recomputed when a later node needs it, else ignored."""
    src, prof = _inputs(tmp_path)
    out = tmp_path / "out.png"
    stop_after = "execute" if target == "candidate" else "reflect"  # candidates matter only until reflect ran
    config = {"configurable": {"thread_id": "v"}}
    with open_checkpointer(os.environ["FOURKAGENT_HOME"]) as saver:
        graph = build_graph(saver)
        payload = {"input_path": str(src), "output_path": str(out), "profile": str(prof),
                   "options": {"threshold": float(THRESHOLD)}}
        graph.invoke(payload, config, context=Context(), interrupt_after=[stop_after], durability="sync")
        values = graph.get_state(config).values
    arts = Path(values["run_dir"]) / "artifacts"
    info, cands = values["input_info"], values["candidates"]
    best = values["tree"][values["verdict"]["node"]]["artifact"] if stop_after == "reflect" else None
    aid = {"input": info["artifact"], "alpha": info["alpha_artifact"], "icc": info["icc"], "best": best,
           "candidate": cands[0]["artifact"],
           "unused": next((c["artifact"] for c in cands if c["artifact"] != best), None)}[target]
    path = arts / f"{aid}.{'icc' if target == 'icc' else 'png'}"
    path.write_bytes(path.read_bytes()[:-7] + b"garbage")
    res = resume("v")
    assert out.read_bytes() == reference["bytes"]
    if target == "unused":  # only listed in the report: no node reads it again, nothing to recompute
        assert "recovered" not in res
        return
    assert aid in res["recovered"]
    assert path.exists() and path.with_name(path.name + ".corrupt").exists()


def test_artifact_lost_mid_run_is_recomputed(tmp_path: Path, reference: dict[str, Any]) -> None:
    """An artifact deleted while the run goes on (not cached in this process) is recomputed, not fatal."""
    from fourkagent.recovery import _evict
    from fourkagent.state.artifacts import ArtifactStore

    src, prof = _inputs(tmp_path)
    out = tmp_path / "out.png"
    removed: list[str] = []

    def lose_best(kind: str, chunk: dict[str, Any]) -> None:
        if kind == "node" and "rollback" in chunk and not removed:
            with open_checkpointer(os.environ["FOURKAGENT_HOME"]) as saver:
                values = build_graph(saver).get_state({"configurable": {"thread_id": "m"}}).values
            store = ArtifactStore(Path(values["run_dir"]) / "artifacts")
            aid = values["tree"][values["verdict"]["node"]]["artifact"]  # the best image seen: the compromise goes on from it
            store.path(aid).unlink()
            _evict(store, aid)
            removed.append(aid)

    res = run(str(src), str(out), str(prof), run_id="m", options={"threshold": float(THRESHOLD)}, on_event=lose_best)
    assert removed and res["recovered"] == removed
    assert out.read_bytes() == reference["bytes"]


def _lanczos_x2(img: np.ndarray) -> np.ndarray:
    return resize(img, (img.shape[1] * 2, img.shape[0] * 2), "lanczos")


def _bad_tools() -> list[Tool]:
    def raises(img: np.ndarray) -> np.ndarray:
        raise RuntimeError("injected failure")

    def nan(img: np.ndarray) -> np.ndarray:
        out = _lanczos_x2(img)
        out[0, 0, 0] = np.nan
        return out

    def inf(img: np.ndarray) -> np.ndarray:
        return np.full((img.shape[0] * 2, img.shape[1] * 2, 3), np.inf, np.float32)

    def wrong_shape(img: np.ndarray) -> np.ndarray:
        return img

    def not_array(img: np.ndarray) -> Any:
        return "not an image"

    specs = {"bad_raise": raises, "bad_nan": nan, "bad_inf": inf, "bad_shape": wrong_shape, "bad_type": not_array}
    return [Tool(ToolSpec(n, "super-resolution", "injected", scale=2), fn) for n, fn in specs.items()]


def test_failing_tools_are_dropped_with_reasons(tmp_path: Path) -> None:
    src, _ = _inputs(tmp_path)
    good = Tool(ToolSpec("good_lanczos", "super-resolution", "lanczos", scale=2), _lanczos_x2)
    reg = ToolRegistry([*_bad_tools(), good])
    res = run(str(src), str(tmp_path / "o.png"), "ExpSR-s2-F", registry=reg)
    report = json.loads(Path(res["report_path"]).read_text())
    step = report["trajectory"][0]
    errors = {c["tool"]: c["error"] for c in step["candidates"]}
    assert step["tool"] == "good_lanczos" and errors["good_lanczos"] is None
    assert "injected failure" in errors["bad_raise"] and "NaN or Inf" in errors["bad_nan"]
    assert "NaN or Inf" in errors["bad_inf"] and "shape" in errors["bad_shape"] and "shape" in errors["bad_type"]
    assert PILImage.open(res["output_path"]).size == (64, 48)


def test_every_tool_failing_still_gives_the_right_size(tmp_path: Path) -> None:
    src, _ = _inputs(tmp_path)
    res = run(str(src), str(tmp_path / "o.png"), "ExpSR-s2-F", registry=ToolRegistry(_bad_tools()))
    report = json.loads(Path(res["report_path"]).read_text())
    assert PILImage.open(res["output_path"]).size == (64, 48) and report["output"]["size"] == [64, 48]
    assert any("resized with Lanczos" in w for w in report["warnings"])
    tried = [c for n in report["tree"].values() for c in n.get("candidates", [])]
    assert len(tried) >= 5 and all(c["error"] for c in tried)


def test_resume_of_unknown_run_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FourKError, match="no run with id"):
        resume("nope")
