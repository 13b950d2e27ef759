"""Bench results as CSV, JSON and Markdown tables (quality per family, performance, machine, notes)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from fourkagent import __version__
from fourkagent.bench.metrics import FR_OURS, LOWER_IS_BETTER, PYIQA_FR

LABELS = {"psnr_y": "PSNR-Y", "ssim_y": "SSIM-Y", "psnr_rgb": "PSNR-RGB", "ssim_rgb": "SSIM-RGB", "lpips": "LPIPS",
          "dists": "DISTS", "niqe": "NIQE", "piqe": "PIQE", "clipiqa+": "CLIPIQA+", "musiq": "MUSIQ",
          "topiq_nr": "TOPIQ-NR"}
DIGITS = {"ssim_y": 4, "ssim_rgb": 4, "lpips": 4, "dists": 4, "clipiqa+": 4, "topiq_nr": 4}


def _label(metric: str) -> str:
    return LABELS.get(metric, metric) + (" ↓" if metric in LOWER_IS_BETTER else " ↑")


def machine() -> dict[str, Any]:
    """Cores, CPU, memory, library versions and torch threads (when torch imports)."""
    import cv2
    import numpy as np
    import psutil

    cpu = platform.processor()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info: dict[str, Any] = {
        "cpu": cpu, "logical_cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1), "load_avg_1m": round(os.getloadavg()[0], 2),
        "os": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
        "opencv": cv2.__version__, "fourkagent": __version__, "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    try:
        import torch

        info |= {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    except Exception as exc:
        info["torch"] = f"not importable ({type(exc).__name__})"
    return info


def _num(v: Any, key: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v:.{DIGITS.get(key, 2)}f}" if isinstance(v, float) else str(v)


def _mean(vals: list[float]) -> float | None:
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    finite = [v for v in vals if math.isfinite(v)]
    return float(sum(finite) / len(finite)) if finite else float("inf")


def _md(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def summary_table(rows: list[dict[str, Any]]) -> str:
    """Agent vs baselines per family: interpolation, the best single tool, the oracle chain, each agent profile."""
    body = []
    fams: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if not r.get("error"):
            fams[r["family"]][r["method"]].append(r)
    for fam, methods in fams.items():
        mean = {m: {k: _mean([r.get(k) for r in rs]) for k in ("psnr_y", "ssim_y", "niqe", "seconds", "peak_rss_mb")}
                for m, rs in methods.items()}
        tools = [m for m in mean if m.startswith("tool:") and mean[m]["psnr_y"] is not None]
        best = max(tools, key=lambda m: mean[m]["psnr_y"] or 0.0, default=None)
        base = [m for m in mean if m in ("bicubic", "lanczos", "input")]
        show = base + ([best] if best else []) + [m for m in mean if m.startswith(("chain:", "agent:"))]
        for m in show:
            v = mean[m]
            name = f"`{m}`" + (" (best single tool)" if m == best else "")
            rss = "–" if v["peak_rss_mb"] is None else f"{v['peak_rss_mb']:.0f}"
            body.append([fam, name, _num(v["psnr_y"], "psnr_y"), _num(v["ssim_y"], "ssim_y"), _num(v["niqe"], "niqe"),
                         _num(v["seconds"], "s"), rss])
    return _md(["family", "method", "PSNR-Y ↑", "SSIM-Y ↑", "NIQE ↓", "time s", "peak RSS MiB"], body)


def quality_tables(rows: list[dict[str, Any]], metric_names: list[str]) -> str:
    """One Markdown table per family: mean of each metric over the family's cases, per method."""
    out: list[str] = []
    fams: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        fams[r["family"]][r["method"]].append(r)
    for fam, methods in fams.items():
        have_ref = any(r.get("psnr_y") is not None for rs in methods.values() for r in rs)
        cols = [m for m in metric_names if have_ref or m not in (*FR_OURS, *PYIQA_FR)]
        body = []
        for name, rs in methods.items():
            ok = [r for r in rs if not r.get("error")]
            cells = [_num(_mean([r.get(m) for r in ok]), m) for m in cols]
            err = f" ({len(rs) - len(ok)} failed)" if len(ok) < len(rs) else ""
            body.append([f"`{name}`{err}", str(len(ok)), *cells, _num(_mean([r["seconds"] for r in ok]), "s")])
        n_cases = len({r["case"] for rs in methods.values() for r in rs})
        scale = next(iter(methods.values()))[0]["scale"]
        out.append(f"### {fam} (×{scale}, {n_cases} image{'s' if n_cases != 1 else ''})\n\n"
                   + _md(["method", "n", *[_label(m) for m in cols], "time s"], body))
    return "\n\n".join(out)


def performance_table(rows: list[dict[str, Any]]) -> str:
    """Agent runs: wall time, time in nodes and tools, graph + checkpoint overhead, peak RSS."""
    body = []
    for r in rows:
        if not r["method"].startswith("agent:") or r.get("error"):
            continue
        wall = r["wall_s"]
        body.append([
            r["case"], f"`{r['method'][6:]}`", f"{r['lr_size']} → {r['out_size']}", f"{wall:.1f}",
            f"{r['in_nodes_s']:.1f}", f"{r['in_tools_s']:.1f}", f"{100 * (wall - r['in_nodes_s']) / wall:.0f} %",
            f"{100 * (wall - r['in_tools_s']) / wall:.0f} %", f"{r['peak_rss_mb']:.0f}", f"{r['startup_s']:.1f}",
        ])
    head = ["case", "profile", "size", "wall s", "in nodes s", "in tools s", "graph+ckpt overhead",
            "outside tools", "peak RSS MiB", "process start s"]
    return _md(head, body) if body else "(no agent run)"


def node_table(rows: list[dict[str, Any]], families: tuple[str, ...] = ("x16", "to4k-1024")) -> str:
    """Seconds per node and per tool for the agent runs of the 4K families."""
    body = []
    for r in rows:
        if r["family"] in families and r["method"].startswith("agent:") and not r.get("error"):
            nodes = ", ".join(f"{k} {v:.1f}" for k, v in r["node_s"].items())
            tools = ", ".join(f"{k} {v:.1f}" for k, v in r["tool_s"].items())
            body.append([r["case"], f"`{r['method'][6:]}`", nodes, tools])
    return _md(["case", "profile", "seconds per node", "seconds per tool"], body) if body else ""


def markdown(result: dict[str, Any]) -> str:
    """The whole report: machine, quality per family, performance, per-node times, notes."""
    m = result["machine"]
    mach = (f"{m['cpu']}, {m['usable_cores']} usable cores ({m['logical_cores']} logical), {m['memory_gib']} GiB; "
            f"Python {m['python']}, numpy {m['numpy']}, OpenCV {m['opencv']}, torch {m.get('torch')}"
            + (f" ({m['torch_threads']} threads)" if "torch_threads" in m else "")
            + f"; load average at start {m['load_avg_1m']}; {m['date']}")
    parts = [
        f"## fourkagent bench ({result['setting']}, {result['n_cases']} cases, {result['wall_s'] / 60:.1f} min)",
        f"Machine: {mach}.",
        "Full-reference metrics on 8-bit images, border = scale; PSNR/SSIM on BT.601 Y and on RGB; "
        "NIQE is fourkagent's (lower is better) on the central ≤1024² crop. Means over the family's images.",
        "### Summary: agent vs baselines (means per family)\n\n" + summary_table(result["rows"]),
        "*time s*: the method's own wall time (agent: `runner.run` in its process, without interpreter start); "
        "*peak RSS*: agent runs only (each in its own process).",
        quality_tables(result["rows"], result["metrics"]),
        "### Agent performance (each run in its own process)\n\n" + performance_table(result["rows"])
        + "\n\n*graph+ckpt overhead* = (wall − time inside nodes) / wall: graph, SQLite checkpoints, "
        "streaming; *outside tools* = (wall − time inside tools) / wall, which adds scoring, perception and "
        "artifact I/O. Process start (interpreter + imports) is not in wall.",
    ]
    nodes = node_table(result["rows"])
    if nodes:
        parts.append("### Where the time goes (4K runs)\n\n" + nodes)
    if result["notes"]:
        parts.append("### Notes\n\n" + "\n".join(f"- {k}: {v}" for k, v in result["notes"].items()))
    return "\n\n".join(parts) + "\n"


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def write_results(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write results.json, results.csv and RESULTS.md into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "csv": out_dir / "results.csv", "md": out_dir / "RESULTS.md"}
    paths["json"].write_text(json.dumps(_jsonable(result), indent=1, allow_nan=False))
    keys: list[str] = []
    for r in result["rows"]:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    for r in result["rows"]:
        w.writerow({k: json.dumps(v) if isinstance(v, (dict, list, tuple)) else _num(v, k) if isinstance(v, float)
                    and not math.isfinite(v) else v for k, v in r.items()})
    paths["csv"].write_text(buf.getvalue())
    paths["md"].write_text(markdown(result))
    return paths
