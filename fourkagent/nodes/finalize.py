"""finalize: write the output atomically and the JSON report beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fourkagent.imageio import atomic_write, save_image
from fourkagent.nodes._common import store_of, timed
from fourkagent.report.json_report import build_report, summary
from fourkagent.state.schema import State


def report_path_for(output_path: str | Path) -> Path:
    """``<output stem>.report.json`` beside the output."""
    p = Path(output_path)
    return p.with_name(f"{p.stem}.report.json")


@timed("finalize")
def finalize(state: State) -> dict[str, Any]:
    """Save the final image (16-bit when the input was, for PNG/TIFF) and the report."""
    out_path = state.get("output_path") or str(Path(state["run_dir"]) / "output.png")
    img = store_of(state).get(state["tree"][state["cursor"]]["artifact"])
    save_image(img, out_path, bits=int(state["input_info"].get("bits", 8)))
    report = build_report(state, out_path)
    rpath = report_path_for(out_path)
    text = summary(report)
    report["summary"] = text
    atomic_write(rpath, json.dumps(report, indent=2, default=str).encode())
    return {"output_path": out_path, "report_path": str(rpath), "summary": text}
