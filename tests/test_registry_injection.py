"""The registry passed to build_graph/run is the one every node uses (old-photo repair, experts, faces)."""

from __future__ import annotations

from pathlib import Path

from fourkagent import degrade
from fourkagent.imaging import Image
from fourkagent.runner import run
from fourkagent.tools.base import Tool, ToolRegistry, ToolSpec
from fourkagent.tools.classical import sr

from conftest import photo, write


def test_old_photo_repair_and_steps_use_the_injected_registry(tmp_path: Path) -> None:
    calls: list[str] = []

    def spy(name: str, fn):  # noqa: ANN001, ANN202
        def wrapped(img: Image) -> Image:
            calls.append(name)
            return fn(img)
        return wrapped

    old = Tool(ToolSpec("oldphoto_restore", "old photo restoration", "spy repair"), spy("old", lambda im: im))
    tools = [old, *(Tool(t.spec, spy(t.name, t.fn)) for t in sr.TOOLS)]
    img = degrade.downscale(photo("coffee")[:256, :256], 2)
    res = run(str(write(tmp_path, "in.png", img)), str(tmp_path / "out.png"),
              {"base": "OldP4K-P", "upscale_to_4k": False, "scale_factor": 2, "face_restore": False, "name": "test"}, registry=ToolRegistry(tools))
    assert Path(res["output_path"]).exists()
    assert calls[0] == "old"  # repaired before perception by the injected tool, not the shipped one
    assert any(c.startswith("sr_") for c in calls)
