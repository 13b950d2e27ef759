"""fourkagent inside a parent graph: as the ``restore_image`` tool of a chat agent, and as a subgraph node."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from PIL import Image as PILImage

from conftest import photo, write
from fourkagent.embed import restore_image, subgraph_node, to_input
from fourkagent.errors import BadInputError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def example() -> ModuleType:
    """examples/embed_in_agent.py, imported as a module."""
    spec = importlib.util.spec_from_file_location("embed_in_agent", ROOT / "examples" / "embed_in_agent.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def small_photo(tmp_path: Path) -> Path:
    """A 64×48 crop of a real photo."""
    return write(tmp_path, "small.png", photo()[40:88, 180:244])


def _size(path: str | Path) -> tuple[int, int]:
    with PILImage.open(path) as im:
        return im.size


def test_chat_agent_calls_restore_image_tool(example: ModuleType, small_photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "chat_out.png"
    agent = example.build_chat_agent(example.scripted_model(str(small_photo), "ExpSR-s4-F", str(out)), InMemorySaver())
    cfg = {"configurable": {"thread_id": "chat-1"}}
    custom: list[dict[str, Any]] = []
    for mode, chunk in agent.stream({"messages": [HumanMessage(f"restore {small_photo}")]}, cfg,
                                    stream_mode=["updates", "custom"]):
        if mode == "custom":
            custom.append(chunk)
    messages = agent.get_state(cfg).values["messages"]
    assert [m.type for m in messages] == ["human", "ai", "tool", "ai"]
    tool_msg = messages[2]
    assert isinstance(tool_msg, ToolMessage) and tool_msg.status == "success"
    result = json.loads(tool_msg.content)
    assert result["output_path"] == str(out) and _size(out) == (256, 192)
    assert result["summary"].startswith("64x48 -> 256x192")
    assert Path(result["report_path"]).exists() and result["run_id"]
    # the agent's own progress events reach the parent's stream
    forwarded = {e["event"] for e in custom if e.get("source") == "restore_image"}
    assert {"tool_start", "tool_end", "candidate_scored"} <= forwarded


def test_restore_image_tool_reports_bad_input_as_one_line(tmp_path: Path) -> None:
    text = restore_image.invoke({"image_path": str(tmp_path / "missing.png")})
    assert text.startswith("restore_image failed:") and "\n" not in text


def test_subgraph_node_in_a_pipeline(example: ModuleType, small_photo: Path) -> None:
    pipe = example.build_pipeline("ExpSR-s4-F", InMemorySaver())
    res = pipe.invoke({"image_path": str(small_photo)}, {"configurable": {"thread_id": "pipe-1"}})
    assert res["caption"] == "restored image 256x192"
    assert Path(res["restored_path"]).exists() and res["restore_summary"].startswith("64x48 -> 256x192")


def test_subgraph_plan_review_pauses_the_parent(small_photo: Path, tmp_path: Path) -> None:
    """With a parent checkpointer, the subgraph's interrupt surfaces in the parent and resumes through it."""
    from typing_extensions import TypedDict

    class Parent(TypedDict, total=False):
        photo: str
        target: str
        result: str

    g = StateGraph(Parent)
    g.add_node("restore", subgraph_node(image_key="photo", output_path_key="target", output_key="result",
                                        summary_key=None, profile="ExpSR-s4-F",
                                        options={"review_plan": True, "threshold": 0.0}))
    g.add_edge(START, "restore")
    g.add_edge("restore", END)
    parent = g.compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "parent-1"}}
    target = tmp_path / "target.png"
    first = parent.invoke({"photo": str(small_photo), "target": str(target)}, cfg)
    (intr,) = first["__interrupt__"]
    assert intr.value["type"] == "plan_review" and not target.exists()
    done = parent.invoke(Command(resume=["denoising", "super-resolution"]), cfg)
    assert done["result"] == str(target) and _size(target) == (256, 192)
    report = json.loads(target.with_name("target.report.json").read_text())
    assert [t["step"] for t in report["trajectory"]] == ["denoising", "super-resolution"]


def test_to_input_maps_parent_keys() -> None:
    assert to_input({"image_path": "a.png", "dst": "b.png"}, output_path_key="dst", profile="ExpSR-s4-F") == {
        "input_path": "a.png", "output_path": "b.png", "profile": "ExpSR-s4-F", "options": {}}
    with pytest.raises(BadInputError, match="image_path"):
        to_input({"other": 1})
