"""The CLI's progress lines on stderr: a stamp per line, one line per finished node and per tool, download bars."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def stamp(t0: float) -> str:
    """``[  12.3s]``: seconds since ``t0``."""
    return f"[{time.perf_counter() - t0:6.1f}s]"


BAR_DELAY_S = 2.0
"""A tool's tile bar shows only once the tool has run this long (shorter tools print just their line)."""


def progress(quiet: bool, t0: float | None = None, stream: TextIO | None = None, bar_delay: float = BAR_DELAY_S) -> Any:
    """The run's event handler (``runner.EventHandler``): a stamped line per node and per tool on ``stream``
    (stderr), a tile bar with ETA (tqdm) inside tools that run over ``bar_delay`` seconds when the stream is a
    terminal; nothing if ``quiet``."""
    t0 = time.perf_counter() if t0 is None else t0
    out = stream or sys.stderr
    bars: dict[tuple[str, str], Any] = {}
    tty = out.isatty()

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    def tile_bar(chunk: dict[str, Any]) -> None:
        key = (chunk["step"], chunk["tool"])
        bar = bars.get(key)
        if bar is None or chunk["done"] <= bar.n:  # a tool's first tile, or a new tiled pass of the same tool
            from tqdm import tqdm

            close(key)
            bar = bars[key] = tqdm(total=chunk["total"], desc=f"  {key[0]}: {key[1]}", unit="tile", file=out,
                                   delay=bar_delay, leave=False, dynamic_ncols=True, mininterval=0, miniters=1)
        bar.update(chunk["done"] - bar.n)

    def close(key: tuple[str, str]) -> None:
        bar = bars.pop(key, None)
        if bar is not None:
            bar.close()

    def handler(kind: str, chunk: dict[str, Any]) -> None:
        if quiet:
            return
        if kind == "custom":
            ev = chunk.get("event")
            if ev == "tool_progress" and tty:
                tile_bar(chunk)
            elif ev == "tool_end":
                close((chunk["step"], chunk["tool"]))
                res = f"error: {chunk['error']}" if chunk.get("error") else f"{chunk['seconds']:.1f}s"
                say(f"{stamp(t0)}   {chunk['step']}: {chunk['tool']} {res}")
            elif ev == "candidate_scored":
                say(f"{stamp(t0)}   {chunk['step']}: {chunk['tool']} Q={chunk['score']:.3f}")
            return
        for node, update in chunk.items():
            say(f"{stamp(t0)} {node}: {describe(node, update or {})}")

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
