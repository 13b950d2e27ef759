"""finalize: write the output atomically and the JSON report beside it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from fourkagent.context import Context
from fourkagent.imageio import atomic_write, write_output
from fourkagent.nodes._common import store_of, timed
from fourkagent.report.html import html_path_for, write_html_report
from fourkagent.report.json_report import build_report, summary
from fourkagent.state.schema import State, Update
from fourkagent.vocabulary import step_scale


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
def finalize(state: State, runtime: Runtime[Context]) -> Update:
    """Save the final image (16-bit when the input was, for PNG/TIFF) and the report."""
    out_path = state.get("output_path") or str(Path(state["run_dir"]) / "output.png")
    store, info = store_of(state), state["input_info"]
    img = store.get(state["tree"][state["cursor"]]["artifact"])
    factor = math.prod(step_scale(s) for s in state.get("all_steps", []))
    quality = int((state.get("options") or {}).get("quality", 95))
    perception = state.get("perception")
    size = perception.get("output_size") if perception else None
    img, notes = write_output(img, out_path, info, factor, store, quality,  # crop, alpha, ICC, 16-bit
                              size=(size[0], size[1]) if size else None)
    report = build_report(state, out_path)
    report["output"]["size"] = [img.shape[1], img.shape[0]]
    report["warnings"] = [*info.get("warnings", []), *notes]
    rpath = report_path_for(out_path)
    ctx = runtime.context if runtime.context is not None else Context()
    report["experience"] = {"used": state["experience"].get("source") if "experience" in state else None,
                            "this_run": record_experience(state, report, ctx)}
    text = summary(report) + "".join(f"\nwarning: {w}" for w in report["warnings"])
    report["summary"] = text
    report["report_html"] = str(html_path_for(out_path))
    atomic_write(rpath, json.dumps(report, indent=2, default=str).encode())
    write_html_report(report, store_of(state), report["report_html"], output=img)
    return {"output_path": out_path, "report_path": str(rpath), "summary": text}
