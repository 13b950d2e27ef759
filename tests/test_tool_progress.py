"""Progress inside tools: the tiled inference reports every tile, in order, as ``tool_progress`` stream events;
the CLI draws them as a tqdm bar only on a terminal and never with ``--quiet``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import photo, write

from fourkagent.cli_progress import progress
from fourkagent.imaging import Image
from fourkagent.runner import run
from fourkagent.tools.base import Tool, ToolRegistry, ToolSpec


def _tiled_tool() -> Tool:
    """A 1×1 convolution (×0.9) run in 32-px tiles: an 80² image is 4 × 4 = 16 tiles."""
    torch = pytest.importorskip("torch")
    from fourkagent.models.tiling import run_model

    net = torch.nn.Conv2d(3, 3, 1, bias=False)
    with torch.no_grad():
        net.weight.copy_(0.9 * torch.eye(3)[:, :, None, None])

    def fn(img: Image) -> Image:
        return run_model(net, img, 1, tile=32)

    return Tool(ToolSpec("dim_tiled", "denoising", "tiled test expert"), fn)


def _events(tmp_path: Path) -> list[dict[str, Any]]:
    src = write(tmp_path, "in.png", np.ascontiguousarray(photo("coffee")[100:180, 200:280]))
    seen: list[dict[str, Any]] = []
    profile = {"name": "progress-test", "user_plan": ["denoising"], "upscale_to_4k": False, "require_sr_size": 1,
               "face_restore": False}
    run(str(src), str(tmp_path / "out.png"), profile, registry=ToolRegistry([_tiled_tool()]),
        on_event=lambda kind, chunk: seen.append(chunk) if kind == "custom" else None)
    return seen


def test_tiled_tool_reports_its_tiles_in_order(tmp_path: Path) -> None:
    seen = _events(tmp_path)
    ticks = [e for e in seen if e.get("event") == "tool_progress"]
    assert [(e["done"], e["total"]) for e in ticks] == [(i, 16) for i in range(1, 17)]
    assert all(e["step"] == "denoising" and e["tool"] == "dim_tiled" for e in ticks)
    assert ticks[-1]["eta_s"] == 0 and all(e["eta_s"] >= 0 for e in ticks)
    order = [e.get("event") for e in seen if e.get("tool") == "dim_tiled"]
    assert order[0] == "tool_start" and order[1:17] == ["tool_progress"] * 16 and order[17] == "tool_end"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _feed(handler: Any) -> None:
    for done in range(1, 5):
        handler("custom", {"event": "tool_progress", "step": "denoising", "tool": "t", "done": done, "total": 4,
                           "seconds": done * 1.0, "eta_s": 4.0 - done})
    handler("custom", {"event": "tool_end", "step": "denoising", "tool": "t", "seconds": 4.0, "error": None})


def test_cli_bar_on_a_terminal_only_and_never_quiet() -> None:
    tty = _Terminal()
    _feed(progress(False, stream=tty, bar_delay=0))
    text = tty.getvalue()
    assert "denoising: t" in text and "4/4" in text and "tile" in text  # tqdm's bar, with its counts
    assert text.rstrip().endswith("denoising: t 4.0s")  # the tool's line follows the closed bar

    pipe = io.StringIO()  # not a terminal: the line only
    _feed(progress(False, stream=pipe, bar_delay=0))
    assert "tile" not in pipe.getvalue() and pipe.getvalue().strip().endswith("denoising: t 4.0s")

    quiet = _Terminal()
    _feed(progress(True, stream=quiet, bar_delay=0))
    assert quiet.getvalue() == ""
