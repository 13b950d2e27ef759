"""Seconds per output megapixel of every tool, on this machine, at 1 and 2 CPU threads.

Each thread count runs in its own process (``OMP_NUM_THREADS`` = ``FOURKAGENT_THREADS`` = n, OpenCV and
torch set to n). A tool is warmed up once on a 64² crop (weights load or convert there), then timed on a
128² and a 256² crop of the shipped noisy astronaut (best of ``--repeat``). The shipped figure is the 256²
one at the largest thread count (``--ship-threads`` picks another): per-tile and per-call overheads weigh least
there. ``--rows FILE`` re-reads the JSON lines a measurement printed on stderr instead of measuring. ``--write-costs`` puts
it into ``fourkagent/data/tool_costs.json``, which fills ``ToolSpec.seconds_per_mp`` (the run budget's
prediction); ``--write`` writes the markdown table.

    python benchmarks/tool_costs.py                       # slow tools and the neural SR experts
    python benchmarks/tool_costs.py --all --write benchmarks/tool_costs.md --write-costs --machine "..."
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COSTS = ROOT / "fourkagent" / "data" / "tool_costs.json"


def selected(patterns: list[str], every: bool) -> list[str]:
    """Names of the available tools to time: those matching ``patterns``, else every tool (``every``), else
    the slow ones and the neural SR experts."""
    from fourkagent.tools.registry import MAIN_REGISTRY

    out = []
    for t in MAIN_REGISTRY:
        s = t.spec
        if t.unavailable_reason() is not None:
            continue
        if patterns:
            keep = any(fnmatch.fnmatch(t.name, p) for p in patterns)
        else:
            keep = every or s.slow or (s.category == "super-resolution" and s.backend != "classical")
        if keep:
            out.append(t.name)
    return out


def worker(names: list[str], threads: int, sizes: list[int], repeat: int) -> None:
    """Time ``names`` in this process at ``threads`` threads; one JSON line per (tool, size) on stdout."""
    import cv2
    import numpy as np

    from fourkagent.devices import set_cpu_threads
    from fourkagent.imageio import load_image
    from fourkagent.tools.registry import MAIN_REGISTRY

    cv2.setNumThreads(threads)
    set_cpu_threads(threads)
    img, _ = load_image(ROOT / "fourkagent" / "examples" / "astronaut_256_noisy.png")

    def crop(n: int) -> np.ndarray:
        y, x = (img.shape[0] - n) // 2, (img.shape[1] - n) // 2
        return np.ascontiguousarray(img[y:y + n, x:x + n])

    for name in names:
        tool = MAIN_REGISTRY.get(name)
        tool(crop(64))  # load / convert the weights outside the timing
        for n in sizes:
            best = float("inf")
            for _ in range(repeat):
                t0 = time.perf_counter()
                out = tool(crop(n))
                best = min(best, time.perf_counter() - t0)
            mp = out.shape[0] * out.shape[1] / 1e6
            row = {"tool": name, "threads": threads, "size": n, "seconds": round(best, 4),
                   "s_per_mp": round(best / mp, 4)}
            print(json.dumps(row), flush=True)


def measure(names: list[str], threads: list[int], sizes: list[int], repeat: int) -> list[dict[str, float | str]]:
    """Rows of every worker process, one process per thread count."""
    rows = []
    for n in threads:
        env = os.environ | {"OMP_NUM_THREADS": str(n), "FOURKAGENT_THREADS": str(n), "MKL_NUM_THREADS": str(n)}
        cmd = [sys.executable, __file__, "--worker", str(n), "--sizes", *map(str, sizes), "--repeat", str(repeat),
               "--tools", *names]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode:
            sys.exit(f"worker ({n} threads) failed: {proc.stderr.strip().splitlines()[-1:]}")
        for line in proc.stdout.splitlines():
            rows.append(json.loads(line))
            print(line, file=sys.stderr, flush=True)
    return rows


def shipped(rows: list[dict], size: int, threads: int) -> dict[str, float]:
    """The figure a tool ships: its s/MP at ``size`` and ``threads``."""
    return {str(r["tool"]): round(float(r["s_per_mp"]), 3) for r in rows if r["size"] == size and r["threads"] == threads}


def table(rows: list[dict], sizes: list[int], threads: list[int]) -> str:
    """Markdown: one row per tool, s/MP per (threads, size), and the 1→2 thread speed-up at the largest size."""
    from fourkagent.tools.registry import MAIN_REGISTRY

    cell = {(r["tool"], r["threads"], r["size"]): float(r["s_per_mp"]) for r in rows}
    cols = [(t, s) for t in threads for s in sizes]
    head = ["tool", "scale", "slow", *(f"{t} thr {s}²" for t, s in cols)]
    if len(threads) > 1:
        head.append(f"speed-up {min(threads)}→{max(threads)} thr")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in dict.fromkeys(r["tool"] for r in rows):
        spec = MAIN_REGISTRY.get(str(name)).spec
        vals = [f"{cell[(name, t, s)]:.3f}" if (name, t, s) in cell else "–" for t, s in cols]
        row = [str(name), f"×{spec.scale}", "yes" if spec.slow else "", *vals]
        if len(threads) > 1:
            lo, hi = cell.get((name, min(threads), max(sizes))), cell.get((name, max(threads), max(sizes)))
            row.append(f"{lo / hi:.2f}" if lo and hi else "–")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tools", nargs="*", default=[], help="tool names or globs (default: slow + neural SR)")
    ap.add_argument("--all", action="store_true", help="every available tool")
    ap.add_argument("--sizes", nargs="+", type=int, default=[128, 256])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--write", type=Path, help="write the markdown table here")
    ap.add_argument("--rows", type=Path, help="JSON lines of an earlier measurement (its stderr) instead of measuring")
    ap.add_argument("--write-costs", action="store_true", help=f"merge the shipped figures into {COSTS.name}")
    ap.add_argument("--ship-threads", type=int, help="thread count of the shipped figures (default: the largest)")
    ap.add_argument("--machine", default="", help="how the machine is named in the costs file (with --write-costs)")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.tools, args.worker, args.sizes, args.repeat)
        return
    if args.rows:
        rows = [json.loads(line) for line in args.rows.read_text(encoding="utf-8").splitlines() if line.strip()]
        args.sizes, args.threads = sorted({r["size"] for r in rows}), sorted({r["threads"] for r in rows})
    else:
        rows = measure(selected(args.tools, args.all), args.threads, args.sizes, args.repeat)
    text = table(rows, args.sizes, args.threads)
    print(text)
    if args.write:
        args.write.write_text(text + "\n", encoding="utf-8")
    if args.write_costs:
        data = json.loads(COSTS.read_text(encoding="utf-8")) if COSTS.exists() else {"tools": {}}
        threads = args.ship_threads or max(args.threads)
        data["tools"] = dict(sorted((data["tools"] | shipped(rows, max(args.sizes), threads)).items()))
        data["machine"] = args.machine or data.get("machine", "")
        data["measured"] = f"{max(args.sizes)}² input, {threads} thread(s), {time.strftime('%Y-%m-%d')}"
        COSTS.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
