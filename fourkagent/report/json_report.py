"""Build the JSON run report and the human summary from a finished state."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, cast

from fourkagent import __version__, devices
from fourkagent.planning.budget import Dropped, dropped_line
from fourkagent.planning.search import path_nodes
from fourkagent.state.records import FaceStage
from fourkagent.state.schema import State


def trajectory(state: State) -> list[dict[str, Any]]:
    """Accepted steps from the input to the final image."""
    tree = state["tree"]
    out = []
    for nid in path_nodes(tree, state["cursor"])[1:]:
        n = tree[nid]
        out.append({
            "node": nid, "step": n["step"], "tool": n["tool"], "score": n["score"], "failed": n["failed"],
            "size": [n["width"], n["height"]], "artifact": n["artifact"], "candidates": n.get("candidates", []),
        } | ({"note": n["note"]} if n.get("note") else {}))
    return out


def timings(state: State) -> dict[str, Any]:
    """Seconds per node and per tool, summed over the run (including resumed parts)."""
    per_node: dict[str, float] = defaultdict(float)
    per_tool: dict[str, float] = defaultdict(float)
    tool_runs: list[dict[str, Any]] = []
    dropped: list[Dropped] = []
    for e in state.get("events", []):
        if "tool" in e:
            per_tool[e["tool"]] += e["seconds"]
            tool_runs.append({"step": e.get("step"), "tool": e["tool"], "seconds": e["seconds"],
                              "predicted_s": e.get("predicted_s")})
        elif "seconds" in e:
            per_node[e["node"]] += e["seconds"]
        elif "dropped" in e:
            dropped.extend(e["dropped"])
    return {
        "per_node": {k: round(v, 3) for k, v in per_node.items()},
        "per_tool": {k: round(v, 3) for k, v in per_tool.items()},
        "total_nodes": round(sum(per_node.values()), 3),
        "total_tools": round(sum(per_tool.values()), 3),
        "tool_runs": tool_runs,
        "dropped": dropped,
        "budget": {
            "time_budget_s": state["profile_data"].get("time_budget_s"),
            "predicted_spent_s": round(float(state.get("budget_spent_s") or 0.0), 3),
            "costs_measured_on": costs_machine(),
        },
        "note": "finalize (which writes this report) is not included",
    }


def costs_machine() -> str:
    """Where the tools' seconds per megapixel were measured (``fourkagent/data/tool_costs.json``)."""
    import json

    from fourkagent.tools.base import COSTS_FILE

    try:
        return str(json.loads(COSTS_FILE.read_text(encoding="utf-8")).get("machine", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def budget_lines(timings: dict[str, Any]) -> list[str]:
    """The time budget's use (when the profile has one) and every expert dropped, per step, with why."""
    lines = []
    b = timings.get("budget") or {}
    if b.get("time_budget_s") is not None:
        lines.append(f"time budget: {b['predicted_spent_s']:.1f} of {b['time_budget_s']:.0f} s predicted for the "
                     f"run, overheads included (its experts took {timings['total_tools']:.1f} s)")
    by_step: dict[str, list[str]] = defaultdict(list)
    for d in timings.get("dropped") or []:
        by_step[d["step"]].append(dropped_line(d))
    lines.extend(f"  dropped at {step}: " + ", ".join(items) for step, items in by_step.items())
    return lines


def face_section(state: State) -> FaceStage:
    """The face stage record, always ``{status, reason, faces: [...], ...}``."""
    # completed below: a checkpoint may hold an older record, or none
    disabled = {"status": "skipped", "reason": "face restoration disabled by the profile"}
    rec = cast(FaceStage, dict(state.get("faces") or disabled))
    rec.setdefault("status", "skipped")
    rec.setdefault("reason", "")
    rec["faces"] = list(rec.get("faces") or [])
    return rec


def faces_line(faces: FaceStage) -> str:
    """One summary line for the face stage: status, reason and the experts chosen with their drift."""
    line = f"faces: {faces['status']} ({faces['reason']})"
    chosen = [
        f"{f['chosen']}" + (f" drift {f['identity_drift_deg']:.1f}°" if f.get("identity_drift_deg") is not None else "")
        for f in faces["faces"] if f.get("action") == "restored"
    ]
    return line + (": " + "; ".join(chosen) if chosen else "")


def build_report(state: State, output_path: str) -> dict[str, Any]:
    """Everything a person needs to see what the agent did and why."""
    tree = state["tree"]
    return {
        "fourkagent_version": __version__,
        "runtime": devices.describe(),  # torch device, precision, threads and torch version of this process
        "run_dir": state.get("run_dir"),
        "input": state["input_info"],
        "output": {"path": output_path, "size": [tree[state["cursor"]]["width"], tree[state["cursor"]]["height"]]},
        "profile": state["profile_data"],
        "perception": state["perception"],
        "steps": state.get("all_steps", []),
        "trajectory": trajectory(state),
        "rollbacks": state.get("rollbacks", []),
        "compromise": state.get("compromise", False),
        "tree": tree,
        "faces": face_section(state),
        "timings": timings(state),
    }


def summary(report: dict[str, Any]) -> str:
    """A few lines: size change, chosen tools with scores, rollbacks, time."""
    inp, out = report["input"], report["output"]
    lines = [f"{inp['width']}x{inp['height']} -> {out['size'][0]}x{out['size'][1]} ({report['profile']['name']})"]
    if report["perception"].get("size_note"):
        lines.append("size: " + report["perception"]["size_note"])
    found = [f"{d['kind']} ({d['severity']})" for d in report["perception"]["degradations"] if d.get("present")]
    lines.append("degradations: " + (", ".join(found) if found else "none detected"))
    for t in report["trajectory"]:
        mark = " (below threshold)" if t["failed"] else ""
        if t["tool"] is None:  # no tool changed the image: none is credited
            mark = mark or " (no candidate improved it)"
        lines.append(f"  {t['step']}: {t['tool'] or 'kept the input'} Q={t['score']:.3f}{mark}")
    if not report["trajectory"]:
        lines.append("  no step was needed")
    if report["rollbacks"]:
        lines.append(f"rollbacks: {len(report['rollbacks'])}" + (" (compromise)" if report["compromise"] else ""))
    lines.append(faces_line(report["faces"]))
    lines.extend(budget_lines(report["timings"]))
    lines.append(f"time in nodes: {report['timings']['total_nodes']:.1f} s")
    rt = report.get("runtime") or {}
    if rt:
        lines.append(f"device: {rt.get('device') or rt.get('requested')} (torch {rt.get('torch')})")
    return "\n".join(lines)
