"""Build the JSON run report and the human summary from a finished state."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fourkagent import __version__
from fourkagent.planning.search import path_nodes
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
        })
    return out


def timings(state: State) -> dict[str, Any]:
    """Seconds per node and per tool, summed over the run (including resumed parts)."""
    per_node: dict[str, float] = defaultdict(float)
    per_tool: dict[str, float] = defaultdict(float)
    for e in state.get("events", []):
        if "tool" in e:
            per_tool[e["tool"]] += e["seconds"]
        elif "seconds" in e:
            per_node[e["node"]] += e["seconds"]
    return {
        "per_node": {k: round(v, 3) for k, v in per_node.items()},
        "per_tool": {k: round(v, 3) for k, v in per_tool.items()},
        "total_nodes": round(sum(per_node.values()), 3),
    }


def build_report(state: State, output_path: str) -> dict[str, Any]:
    """Everything a person needs to see what the agent did and why."""
    tree = state["tree"]
    return {
        "fourkagent_version": __version__,
        "input": state["input_info"],
        "output": {"path": output_path, "size": [tree[state["cursor"]]["width"], tree[state["cursor"]]["height"]]},
        "profile": state["profile_data"],
        "perception": state["perception"],
        "steps": state.get("all_steps", []),
        "trajectory": trajectory(state),
        "rollbacks": state.get("rollbacks", []),
        "compromise": state.get("compromise", False),
        "tree": tree,
        "faces": state.get("faces") or {"status": "skipped", "reason": "face restoration disabled by the profile"},
        "timings": timings(state),
    }


def summary(report: dict[str, Any]) -> str:
    """A few lines: size change, chosen tools with scores, rollbacks, time."""
    inp, out = report["input"], report["output"]
    lines = [f"{inp['width']}x{inp['height']} -> {out['size'][0]}x{out['size'][1]} ({report['profile']['name']})"]
    found = [f"{d['kind']} ({d['severity']})" for d in report["perception"]["degradations"] if d.get("present")]
    lines.append("degradations: " + (", ".join(found) if found else "none detected"))
    for t in report["trajectory"]:
        mark = " (below threshold)" if t["failed"] else ""
        lines.append(f"  {t['step']}: {t['tool']} Q={t['score']:.3f}{mark}")
    if not report["trajectory"]:
        lines.append("  no step was needed")
    if report["rollbacks"]:
        lines.append(f"rollbacks: {len(report['rollbacks'])}" + (" (compromise)" if report["compromise"] else ""))
    lines.append(f"faces: {report['faces'].get('reason') or report['faces'].get('status')}")
    lines.append(f"time in nodes: {report['timings']['total_nodes']:.1f} s")
    return "\n".join(lines)
