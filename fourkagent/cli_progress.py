"""The CLI's progress lines on stderr: a stamp per line, one line per finished node and per tool, download bars."""

from __future__ import annotations

import sys
import time
from typing import Any


def stamp(t0: float) -> str:
    """``[  12.3s]``: seconds since ``t0``."""
    return f"[{time.perf_counter() - t0:6.1f}s]"


def progress(quiet: bool, t0: float | None = None) -> Any:
    """The run's event handler (``runner.EventHandler``): a stamped line per node and per tool, none if ``quiet``."""
    t0 = time.perf_counter() if t0 is None else t0

    def handler(kind: str, chunk: dict[str, Any]) -> None:
        if quiet:
            return
        now = stamp(t0)
        if kind == "custom":
            ev = chunk.get("event")
            if ev == "tool_end":
                res = f"error: {chunk['error']}" if chunk.get("error") else f"{chunk['seconds']:.1f}s"
                print(f"{now}   {chunk['step']}: {chunk['tool']} {res}", file=sys.stderr, flush=True)
            elif ev == "candidate_scored":
                print(f"{now}   {chunk['step']}: {chunk['tool']} Q={chunk['score']:.3f}", file=sys.stderr, flush=True)
            return
        for node, update in chunk.items():
            print(f"{now} {node}: {describe(node, update or {})}", file=sys.stderr, flush=True)

    return handler


def describe(node: str, update: dict[str, Any]) -> str:
    """What a finished node did, in a few words."""
    if node == "perceive":
        p = update.get("perception", {})
        found = [d["kind"] for d in p.get("degradations", []) if d.get("present")]
        return f"factor x{p.get('factor')}, degradations: {', '.join(found) or 'none'}"
    if node == "plan":
        return "agenda: " + (" -> ".join(update.get("agenda", [])) or "(done)")
    if node == "execute":
        from fourkagent.planning.budget import dropped_line

        drops = [dropped_line(d) for e in update.get("events", []) for d in e.get("dropped", [])]
        return "dropped " + ", ".join(drops) if drops else "done"
    if node == "reflect":
        v = update.get("verdict", {})
        ok = "ok" if v.get("passed") else "below threshold"
        best = "none" if v.get("best_score") is None else f"{v['best_tool'] or 'kept the input'} Q={v['best_score']:.3f}"
        return f"{v.get('step')}: best {best} ({ok})"
    if node == "rollback":
        return (update.get("rollbacks") or [{}])[-1].get("action", "")
    if node == "face_restore":
        return str((update.get("faces") or {}).get("reason", ""))
    if node == "finalize":
        return f"wrote {update.get('output_path')}"
    return "done"


def bar(label: str, done: int, total: int | None) -> None:
    """A download's progress bar, redrawn in place (``models pull``)."""
    if total:
        n = int(30 * done / total)
        text = f"\r{label} [{'#' * n}{'.' * (30 - n)}] {done / 2**20:7.1f}/{total / 2**20:.1f} MiB"
    else:
        text = f"\r{label} {done / 2**20:7.1f} MiB"
    print(text, end="\n" if total and done >= total else "", file=sys.stderr, flush=True)
