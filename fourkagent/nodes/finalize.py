"""finalize: write the output atomically and the JSON report beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from fourkagent.context import Context
from fourkagent.imageio import atomic_write, save_image
from fourkagent.nodes._common import store_of, timed
from fourkagent.report.json_report import build_report, summary
from fourkagent.state.schema import State


def report_path_for(output_path: str | Path) -> Path:
    """``<output stem>.report.json`` beside the output."""
    p = Path(output_path)
    return p.with_name(f"{p.stem}.report.json")


def record_experience(state: State, report: dict[str, Any], ctx: Context) -> str:
    """Add this run to the experience store; returns a status for the report (never raises)."""
    if not ctx.use_experience:
        return "disabled"
    try:
        from fourkagent.store.experience import ExperienceStore, records_from_state

        run, steps = records_from_state(dict(state), report["timings"]["total_nodes"])
        ExperienceStore(ctx.experience_url).record(run, steps)
        return "recorded"
    except Exception as exc:  # the image is written; a store problem must not fail the run
        return f"not recorded ({type(exc).__name__}: {exc})"


@timed("finalize")
def finalize(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Save the final image (16-bit when the input was, for PNG/TIFF) and the report."""
    out_path = state.get("output_path") or str(Path(state["run_dir"]) / "output.png")
    img = store_of(state).get(state["tree"][state["cursor"]]["artifact"])
    save_image(img, out_path, bits=int(state["input_info"].get("bits", 8)))
    report = build_report(state, out_path)
    rpath = report_path_for(out_path)
    ctx = runtime.context if runtime.context is not None else Context()
    report["experience"] = {"used": state.get("experience", {}).get("source"),
                            "this_run": record_experience(state, report, ctx)}
    text = summary(report)
    report["summary"] = text
    atomic_write(rpath, json.dumps(report, indent=2, default=str).encode())
    return {"output_path": out_path, "report_path": str(rpath), "summary": text}
