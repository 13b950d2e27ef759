"""One agent run in its own process, so wall time and peak RSS belong to that run alone.

``python -m fourkagent.bench.worker '{"input": …, "output": …, "profile": …, "home": …}'`` prints one JSON
line: wall seconds, seconds inside nodes and tools, startup seconds, RSS after imports and peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil

from fourkagent.context import Context
from fourkagent.errors import FourKError
from fourkagent.runner import run


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB.

    ``VmHWM`` from ``/proc/self/status`` belongs to this process's own address space; ``ru_maxrss``
    (the fallback off Linux) survives fork + exec, so a child of a big parent would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str]) -> int:
    """Run the spec in ``argv[0]``; exit 2 with a one-line error on bad input."""
    spec = json.loads(argv[0])
    proc = psutil.Process()
    startup = time.time() - proc.create_time()
    rss0 = proc.memory_info().rss
    node_s: dict[str, float] = defaultdict(float)
    tool_s: dict[str, float] = defaultdict(float)

    def on_event(kind: str, chunk: dict[str, Any]) -> None:
        if kind != "node":
            return
        for update in chunk.values():
            for e in (update or {}).get("events", []) if isinstance(update, dict) else []:
                if "tool" in e:
                    tool_s[e["tool"]] += e["seconds"]
                elif "seconds" in e:
                    node_s[e["node"]] += e["seconds"]

    t0 = time.perf_counter()
    try:
        res = run(spec["input"], spec["output"], spec["profile"], options={"overwrite": True},
                  context=Context(home=spec["home"]), on_event=on_event)
    except FourKError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - t0
    peak = peak_rss_mib()
    print(json.dumps({
        "wall_s": round(wall, 3), "startup_s": round(startup, 3),
        "in_nodes_s": round(sum(node_s.values()), 3), "in_tools_s": round(sum(tool_s.values()), 3),
        "node_s": {k: round(v, 3) for k, v in node_s.items()}, "tool_s": {k: round(v, 3) for k, v in tool_s.items()},
        "rss_after_import_mb": round(rss0 / 2**20, 1), "peak_rss_mb": round(peak, 1),
        "report_path": res.get("report_path"), "output_path": res.get("output_path"),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
