"""Run the bench: build the cases, run every method, measure, and write the tables."""

from __future__ import annotations

import argparse
import math
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fourkagent.bench import BenchError, add_arguments
from fourkagent.bench.dataset import FAMILIES, Case, build_cases, photo_sources, q8
from fourkagent.bench.methods import DEFAULT_METHODS, Method, apply_local, expand, oracle_tools, run_agent
from fourkagent.bench.metrics import Metrics
from fourkagent.bench.tables import machine, markdown, write_results
from fourkagent.errors import FourKError
from fourkagent.imageio import load_image, save_image
from fourkagent.imaging import Image
from fourkagent.tools.base import ToolRegistry
from fourkagent.tools.registry import MAIN_REGISTRY
from fourkagent.vocabulary import STEP_TO_DEGRADATION

Log = Callable[[str], None]


def _size(img: Image) -> str:
    return f"{img.shape[1]}x{img.shape[0]}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def best_tools(rows: list[dict[str, Any]], cases: dict[str, Case], registry: ToolRegistry) -> dict[tuple[str, int], str]:
    """Per (category, scale): the single tool with the best mean Y-PSNR on the cases it is meant for.

    A restoration tool counts on cases whose known degradations include its target; an SR tool on
    cases of its own scale. Ties go to the earlier tool in the registry.
    """
    scores: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["kind"] != "tools" or r.get("error") or r.get("psnr_y") is None or len(r["tools"]) != 1:
            continue
        t = registry.get(r["tools"][0])
        case = cases[r["case"]]
        target = STEP_TO_DEGRADATION.get(t.spec.category)
        meant = case.scale == t.spec.scale if t.spec.scale > 1 else target in case.degradations
        if meant and math.isfinite(r["psnr_y"]):
            scores[t.name].append(r["psnr_y"])
    best: dict[tuple[str, int], tuple[float, str]] = {}
    for t in registry:
        if scores.get(t.name):
            key, mean = (t.spec.category, t.spec.scale), sum(scores[t.name]) / len(scores[t.name])
            if key not in best or mean > best[key][0]:
                best[key] = (mean, t.name)
    return {k: v[1] for k, v in best.items()}


def _measure(row: dict[str, Any], out: Image, case: Case, metrics: Metrics) -> None:
    expected = (case.lr.shape[0] * case.scale, case.lr.shape[1] * case.scale)
    row["out_size"] = _size(out)
    ref = case.hr if out.shape[:2] == expected else None
    if out.shape[:2] != expected:
        row["error"] = f"output {_size(out)} is not {expected[1]}x{expected[0]}"
    row |= metrics.compute(q8(out), ref, case.scale if case.scale > 1 else 0)


def _run_one(
    method: Method, case: Case, ctx: dict[str, Any], metrics: Metrics, best: dict[tuple[str, int], str]
) -> dict[str, Any]:
    registry: ToolRegistry = ctx["registry"]
    row: dict[str, Any] = {"case": case.id, "family": case.family, "source": case.source, "method": method.name,
                           "kind": method.kind, "scale": case.scale, "lr_size": _size(case.lr), "error": None,
                           "tools": list(oracle_tools(case, registry, best) if method.kind == "oracle" else method.tools)}
    t0 = time.perf_counter()
    try:
        if method.kind != "agent":
            out = apply_local(method, case, registry, best)
            row["seconds"] = round(time.perf_counter() - t0, 3)
            _measure(row, out, case, metrics)
            return row
        work: Path = ctx["tmp"]
        lr_path = work / f"{_slug(case.id)}.png"
        if not lr_path.exists():
            save_image(case.lr, lr_path)
        out_path = work / "out" / f"{_slug(case.id)}__{_slug(method.name[6:])}.png"
        out_path.parent.mkdir(exist_ok=True)
        rec = run_agent(lr_path, out_path, method.profile or "", work / "home")
        row["seconds"] = rec.get("wall_s", round(time.perf_counter() - t0, 3))
        if rec.get("error"):
            row["error"] = rec["error"]
            return row
        row |= {k: v for k, v in rec.items() if k not in ("report_path", "output_path")}
        _measure(row, load_image(out_path)[0], case, metrics)
        if ctx.get("reports"):
            dest: Path = ctx["reports"]
            dest.mkdir(parents=True, exist_ok=True)
            for suffix in (".report.json", ".report.html"):
                src = out_path.with_name(out_path.stem + suffix)
                if src.exists():
                    shutil.copy2(src, dest / src.name)
        out_path.unlink(missing_ok=True)
    except FourKError as exc:
        row["error"] = str(exc)
        row.setdefault("seconds", round(time.perf_counter() - t0, 3))
    return row


def run_bench(
    *, quick: bool = True, out_dir: str | Path | None = None, families: tuple[str, ...] = FAMILIES,
    methods: tuple[str, ...] = DEFAULT_METHODS, profiles: list[str] | None = None, max_images: int | None = None,
    hr_side: int | None = None, seed: int = 0, copy_reports: bool = True, registry: ToolRegistry | None = None,
    log: Log | None = None, cases: list[Case] | None = None, use_pyiqa: bool = True,
) -> dict[str, Any]:
    """Run the bench and return ``{setting, machine, metrics, rows, notes, wall_s, n_cases}`` (written to ``out_dir``).

    Raises:
        BenchError: unknown family, method or tool, or no photo source.
    """
    t_start = time.perf_counter()
    registry = registry or MAIN_REGISTRY
    cases = cases if cases is not None else build_cases(families, quick, hr_side, max_images, seed)
    if not cases:
        raise BenchError("no benchmark case: check --families and --max-images")
    plan = {c.id: expand(list(methods), c, registry, quick, profiles) for c in cases}
    info = machine()
    by_id = {c.id: c for c in cases}
    metrics = Metrics(use_pyiqa=use_pyiqa)
    rows: list[dict[str, Any]] = []
    best: dict[tuple[str, int], str] = {}
    say = log or (lambda s: None)
    with tempfile.TemporaryDirectory(prefix="fourkagent-bench-") as tmp:
        ctx = {"registry": registry, "tmp": Path(tmp),
               "reports": Path(out_dir) / "reports" if (out_dir and copy_reports) else None}
        for phase in ("local", "oracle+agent"):
            if phase == "oracle+agent":
                best = best_tools(rows, by_id, registry)
            for case in cases:
                for m in plan[case.id]:
                    if (m.kind in ("oracle", "agent")) != (phase == "oracle+agent"):
                        continue
                    row = _run_one(m, case, ctx, metrics, best)
                    rows.append(row)
                    score = "" if row.get("psnr_y") is None else f" PSNR-Y {row['psnr_y']:.2f}"
                    status = f" ERROR {row['error']}" if row.get("error") else f"{score} NIQE {row.get('niqe', 0):.2f}"
                    say(f"[{time.perf_counter() - t_start:7.1f}s] {case.id} {m.name} {row['seconds']:.2f}s{status}")
    order = {(c.id, m.name): i for i, c in enumerate(cases) for m in plan[c.id]}
    rows.sort(key=lambda r: order.get((r["case"], r["method"]), 0))
    notes = dict(metrics.notes)
    if best:
        picks = ", ".join(f"{k[0]} ×{k[1]} → {v}" for k, v in best.items())
        notes["chain:oracle"] = f"best single tool per step (mean Y-PSNR where meant): {picks}"
    notes["16× ground truth"] = "none (no freely available 4096² photo); x16 and to4k-1024 report NIQE and timings only"
    notes["photos"] = ", ".join(sorted({c.source for c in cases})) + f" (available here: {len(photo_sources())})"
    if quick:
        notes["quick"] = ("subsampled cases; slow tools, and single tools on cases without ground truth, skipped; "
                          "--full runs all")
    return {"setting": "quick" if quick else "full", "machine": info, "metrics": metrics.names, "rows": rows,
            "notes": notes, "n_cases": len(cases), "wall_s": round(time.perf_counter() - t_start, 1),
            "best_tools": {f"{k[0]} x{k[1]}": v for k, v in best.items()}}


def _split(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def run_from_args(args: argparse.Namespace) -> int:
    """``4kagent bench``: run, write results, print the Markdown tables."""
    if args.list:
        print("families: " + ", ".join(FAMILIES))
        print("photos: " + ", ".join(photo_sources()))
        print("methods: " + ", ".join(DEFAULT_METHODS) + ", identity, tool:NAME, chain:A+B, agent:PROFILE")
        print("tools: " + ", ".join(t.name for t in MAIN_REGISTRY if t.unavailable_reason() is None))
        m = Metrics(use_pyiqa=not args.no_pyiqa)
        print("metrics: " + ", ".join(m.names) + "".join(f"\n  {k}: {v}" for k, v in m.notes.items()))
        return 0
    out = Path(args.out)
    log = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    result = run_bench(
        quick=not args.full, out_dir=out, families=tuple(_split(args.families) or FAMILIES),
        methods=tuple(_split(args.methods) or DEFAULT_METHODS), profiles=_split(args.profiles),
        max_images=args.max_images, hr_side=args.hr_side, seed=args.seed, copy_reports=not args.no_reports, log=log,
        use_pyiqa=not args.no_pyiqa,
    )
    paths = write_results(result, out)
    print(markdown(result))
    print(f"results: {paths['csv']}, {paths['json']}, {paths['md']}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.bench`` / ``python -m fourkagent.bench.run``: one-line errors, exit 2."""
    p = argparse.ArgumentParser(prog="bench", description="Benchmark fourkagent against baselines on real photos.")
    add_arguments(p)
    try:
        return run_from_args(p.parse_args(argv))
    except FourKError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
