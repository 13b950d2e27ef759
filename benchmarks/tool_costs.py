"""Seconds per output megapixel of every tool, on this machine, at 1 and 2 CPU threads.

Each thread count runs in its own process (``OMP_NUM_THREADS`` = ``FOURKAGENT_THREADS`` = n, OpenCV and
torch set to n; a user's run uses every core). A tool is warmed up once on a 64² crop (weights load or convert
there), then timed on crops of the shipped noisy astronaut, or a Lanczos upscale of it for sizes above 256
(``--sizes``; best of ``--repeat``). Each row has wall and process CPU seconds (all threads) and the load
average. The shipped figure is a tool's CPU seconds per output MP (``--ship-wall``: wall) at its largest size at
the largest thread count (``--ship-threads`` picks another): per-tile and per-call overheads weigh least at the
largest size. On the shared 2-core machine wall seconds swing 2-4x with other jobs' load, and so do the CPU
seconds of 2 torch threads (they spin while waiting for each other); the CPU seconds of 1 thread are the work
itself, about what the tool takes on one idle core (an upper bound for 2 idle cores: docs/toolbox.md).
``--overheads`` also times what a run spends besides its experts (``benchmarks/overheads.py``). ``--rows FILE``
re-reads the JSON lines a measurement printed on stderr instead of measuring. ``--write-costs`` merges them
into ``fourkagent/data/tool_costs.json`` (``tools``, ``measured_at``, ``overheads``), which fills
``ToolSpec.seconds_per_mp`` and the run budget's overheads; ``--write`` writes the markdown table.

    python benchmarks/tool_costs.py                       # slow tools and the neural SR experts
    python benchmarks/tool_costs.py --all --write benchmarks/tool_costs.md --write-costs --machine "..."
    # the demo's experts at its sizes (×4 to 4096², denoisers at 256²) and the overheads, as shipped 2026-12-08:
    python benchmarks/tool_costs.py --tools sr_lanczos_x4 sr_backprojection_x4 sr_clearreality_x4 \
        sr_spankendata_x4 sr_srmd_x4 sr_span_x4 --sizes 1024 --threads 1 2 --ship-threads 1 --write-costs
    python benchmarks/tool_costs.py --tools denoise_nlm denoise_wavelet denoise_cnn denoise_waifu2x --sizes 256 \
        --threads 1 2 --repeat 3 --overheads --ship-threads 1 --write-costs
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
        if n > min(img.shape[:2]):
            return np.clip(cv2.resize(img, (n, n), interpolation=cv2.INTER_LANCZOS4), 0, 1).astype(np.float32)
        y, x = (img.shape[0] - n) // 2, (img.shape[1] - n) // 2
        return np.ascontiguousarray(img[y:y + n, x:x + n])

    for name in names:
        tool = MAIN_REGISTRY.get(name)
        tool(crop(64))  # load / convert the weights outside the timing
        for n in sizes:
            best, cpu, a = float("inf"), float("inf"), crop(n)
            for _ in range(repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                out = tool(a)
                best, cpu = min(best, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
            mp = out.shape[0] * out.shape[1] / 1e6
            row = {"tool": name, "threads": threads, "size": n, "seconds": round(best, 4),
                   "s_per_mp": round(best / mp, 4), "cpu_s": round(cpu, 4), "cpu_s_per_mp": round(cpu / mp, 4),
                   "load": round(os.getloadavg()[0], 2)}
            print(json.dumps(row), flush=True)


def measure(names: list[str], threads: list[int], sizes: list[int], repeat: int,
            overheads: bool = False) -> list[dict[str, float | str]]:
    """Rows of every worker process, one process per thread count."""
    rows = []
    for n in threads:
        env = os.environ | {"OMP_NUM_THREADS": str(n), "FOURKAGENT_THREADS": str(n), "MKL_NUM_THREADS": str(n)}
        cmd = [sys.executable, __file__, "--worker", str(n), "--sizes", *map(str, sizes), "--repeat", str(repeat),
               *(["--overheads"] if overheads else []), "--tools", *names]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode:
            sys.exit(f"worker ({n} threads) failed: {proc.stderr.strip().splitlines()[-1:]}")
        for line in proc.stdout.splitlines():
            rows.append(json.loads(line))
            print(line, file=sys.stderr, flush=True)
    return rows


def shipped(rows: list[dict], threads: int, wall: bool = False) -> dict[str, tuple[float, int]]:
    """The figure each tool ships, and its input size: its CPU s/MP (``wall``: wall s/MP; rows without CPU
    seconds: wall) at its largest size at ``threads``."""
    out: dict[str, tuple[float, int]] = {}
    for r in sorted(rows, key=lambda r: r["size"]):
        if r["threads"] == threads and not str(r["tool"]).startswith("overhead:"):
            per_mp = r["s_per_mp"] if wall else r.get("cpu_s_per_mp", r["s_per_mp"])
            out[str(r["tool"])] = (round(float(per_mp), 3), int(r["size"]))
    return out


def write_costs(rows: list[dict], threads: int, machine: str, wall: bool = False) -> None:
    """Merge the rows' figures at ``threads`` into the costs file; each re-measured tool's ``measured_at`` says
    where its figure comes from (the file's ``measured`` covers the others)."""
    from benchmarks.overheads import shipped as shipped_overheads

    data = json.loads(COSTS.read_text(encoding="utf-8")) if COSTS.exists() else {"tools": {}}
    new = shipped(rows, threads, wall)
    load = max((float(r.get("load", 0.0)) for r in rows if r["threads"] == threads), default=0.0)
    note = (f"{'wall' if wall else 'CPU'} seconds, {threads} thread(s), {time.strftime('%Y-%m-%d')}, "
            f"load average up to {load:.1f}")
    data["tools"] = dict(sorted((data["tools"] | {k: v for k, (v, _) in new.items()}).items()))
    data["measured_at"] = dict(sorted((data.get("measured_at", {}) | {
        k: f"{n}² input, {note}" for k, (_, n) in new.items()}).items()))
    if any(str(r["tool"]).startswith("overhead:") for r in rows):
        data["overheads"] = data.get("overheads", {}) | shipped_overheads(rows, threads)
        data["overheads_measured"] = f"demo sizes (benchmarks/overheads.py), {note}"
    data["machine"] = machine or data.get("machine", "")
    COSTS.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


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
    ap.add_argument("--ship-wall", action="store_true", help="ship wall seconds, not process CPU seconds")
    ap.add_argument("--overheads", action="store_true", help="also time the run's overheads (benchmarks/overheads.py)")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.tools, args.worker, args.sizes, args.repeat)
        if args.overheads:
            from benchmarks.overheads import worker as overheads_worker

            overheads_worker(args.worker, max(args.repeat, 2))
        return
    if args.rows:
        rows = [json.loads(line) for line in args.rows.read_text(encoding="utf-8").splitlines() if line.strip()]
        timed = [r for r in rows if not str(r["tool"]).startswith("overhead:")] or rows
        args.sizes, args.threads = sorted({r["size"] for r in timed}), sorted({r["threads"] for r in timed})
    else:
        names = selected(args.tools, args.all) if args.tools or not args.overheads else []
        rows = measure(names, args.threads, args.sizes, args.repeat, args.overheads)
    text = table([r for r in rows if not str(r["tool"]).startswith("overhead:")], args.sizes, args.threads)
    print(text)
    if args.write:
        args.write.write_text(text + "\n", encoding="utf-8")
    if args.write_costs:
        write_costs(rows, args.ship_threads or max(args.threads), args.machine, args.ship_wall)


if __name__ == "__main__":
    main()
