"""What a run spends besides its experts, timed like the tools' costs (``benchmarks/tool_costs.py --overheads``).

One worker process per thread count (``OMP_NUM_THREADS`` = ``FOURKAGENT_THREADS`` = OpenCV = torch threads, as
in tool_costs.py) times, on the bundled noisy astronaut and the demo's path from it (denoised, ClearReality ×4 to
1024², again to 4096², made before timing; its face is found and restored like the demo's):

* ``start_s``: a fresh Python importing the CLI, building the graph and the tool registry (its own process);
* ``perceive_s`` + ``perceive_s_per_mp``: perceive's work on the input (store, detectors and NR-IQA,
  description, reference faces), cold at 256² (models load there: the fixed part) and warm at 256² and 512²;
* ``step_s_per_mp``: Q-MoE measuring a step's input (its reference) and ranking, per output MP (×4 to 4096²);
* ``sr_candidate_s_per_mp``: one SR candidate at 4096²: AdaIN colour fix, store (16-bit PNG written) and
  Q-MoE features; ``candidate_s_per_mp``: a denoising candidate at 1024² (store and features; at 256² the
  per-call part, ~0.08 s, weighs more than the per-MP one, and the figure under-predicts it there);
* ``faces_s_per_mp`` + ``face_s``: the face stage on the 4096² result (detection per MP; the rest per face);
* ``write_s_per_mp``: writing the 4096² output (PNG) and the HTML page's images of it.

Each figure is the best of ``repeat`` runs; the rows are JSON lines, ``tool`` = ``overhead:<name>``, with wall and
process CPU seconds; the shipped figures come from the CPU seconds, like the tools' (``tool_costs.py``).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
START = ("import fourkagent.cli; from fourkagent.graph.builder import build_graph; "
         "from fourkagent.tools.registry import MAIN_REGISTRY; build_graph(registry=MAIN_REGISTRY)")


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """The fastest wall seconds and the fewest process CPU seconds (all threads) of ``repeat`` calls."""
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


def worker(threads: int, repeat: int) -> list[dict[str, Any]]:
    """Rows ``{"tool": "overhead:<name>", "threads", "size", "seconds", "value"}`` (value: the shipped figure)."""
    import cv2
    import numpy as np

    from fourkagent.context import Context
    from fourkagent.devices import set_cpu_threads
    from fourkagent.faces.pipeline import detect_faces, reference_faces, restore_faces
    from fourkagent.imageio import load_image
    from fourkagent.imagewrite import write_output
    from fourkagent.perception.offline import describe, perceive_offline
    from fourkagent.scoring.qmoe import StepScorer
    from fourkagent.state.artifacts import ArtifactStore, flush_writes
    from fourkagent.tools.colorfix import adain_color_fix

    cv2.setNumThreads(threads)
    set_cpu_threads(threads)
    rows: list[dict[str, Any]] = []

    def row(name: str, size: int, t: tuple[float, float], value: float) -> None:
        """``value``: the shipped figure, from the CPU seconds (see ``tool_costs.py``'s docstring)."""
        r = {"tool": f"overhead:{name}", "threads": threads, "size": size, "seconds": round(t[0], 4),
             "cpu_s": round(t[1], 4), "s_per_mp": round(value, 4), "load": round(os.getloadavg()[0], 2)}
        rows.append(r)
        print(json.dumps(r), flush=True)

    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", START], check=True, cwd=ROOT)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = (time.perf_counter() - t0, r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
    img, info = load_image(ROOT / "fourkagent" / "examples" / "astronaut_256_noisy.png")

    def up(a: np.ndarray, n: int) -> np.ndarray:
        return np.clip(cv2.resize(a, (n, n), interpolation=cv2.INTER_LANCZOS4), 0, 1).astype(np.float32)

    from fourkagent.tools.registry import MAIN_REGISTRY

    i512 = up(img, 512)
    sr = MAIN_REGISTRY.get("sr_clearreality_x4")
    i1024 = sr(MAIN_REGISTRY.get("denoise_cnn")(img))  # the demo's path, so that its face is found and restored
    out = sr(i1024)
    mp = {256: 256 * 256 / 1e6, 512: 512 * 512 / 1e6, 4096: 4096 * 4096 / 1e6}
    metrics = Context().iqa_metrics
    with tempfile.TemporaryDirectory() as tmp:
        store = ArtifactStore(Path(tmp) / "artifacts")

        def perceive(a: np.ndarray) -> None:
            store.put(a)
            p = perceive_offline(a, metrics)
            describe(a, p["degradations"])
            reference_faces(a)
            flush_writes()

        cold = _best(lambda: perceive(img), 1)
        w256, w512 = _best(lambda: perceive(img), repeat), _best(lambda: perceive(i512), repeat)
        per_mp = max(0.0, (w512[1] - w256[1]) / (mp[512] - mp[256]))
        row("start", 0, start, start[1])
        row("perceive", 256, cold, cold[1] - per_mp * mp[256])
        row("perceive_per_mp", 512, w512, per_mp)

        def sr_step() -> StepScorer:
            s = StepScorer(i1024, "super-resolution")
            s.add(out, tool="sr_lanczos_x4")
            s.scores()
            return s

        step = _best(lambda: StepScorer(i1024, "super-resolution").scores(), repeat)
        scorer = StepScorer(i1024, "super-resolution")

        def sr_candidate() -> None:
            fixed = adain_color_fix(out, i1024)
            aid = store.put(np.clip(fixed + np.float32(np.random.rand() * 1e-3), 0, 1))  # a new artifact each time
            flush_writes()
            scorer.add(store.get(aid), tool="sr_lanczos_x4")

        sr_step()  # warm
        row("step_per_mp", 4096, step, step[1] / mp[4096])
        cand = _best(sr_candidate, repeat)
        row("sr_candidate_per_mp", 4096, cand, cand[1] / mp[4096])
        dn = StepScorer(i1024, "denoising")  # at 1 MP: at 256² fixed per-call costs (~0.08 s) would dominate

        def dn_candidate() -> None:
            aid = store.put(cv2.GaussianBlur(i1024, (3, 3), 0.5 + np.random.rand()))
            flush_writes()
            dn.add(store.get(aid), tool="denoise_nlm")

        dn_cand = _best(dn_candidate, repeat)
        row("candidate_per_mp", 1024, dn_cand, dn_cand[1] / (1024 * 1024 / 1e6))
        refs = reference_faces(img)
        detect = _best(lambda: detect_faces(out, detect_side=256), repeat)
        faces = _best(lambda: restore_faces(out, refs), repeat)
        n = max(1, len(refs.get("faces", [])))
        row("faces_per_mp", 4096, detect, detect[1] / mp[4096])
        row("face", 4096, faces, max(0.0, faces[1] - detect[1]) / n)

        def write() -> None:
            written, _ = write_output(out, Path(tmp) / "out.png", info.to_dict(), 16, store, 95)
            small = cv2.resize(written, (1024, 1024), interpolation=cv2.INTER_AREA)  # the page's views of it
            cv2.imencode(".jpg", (small * 255).astype(np.uint8))

        wr = _best(write, repeat)
        row("write_per_mp", 4096, wr, wr[1] / mp[4096])
    return rows


NAMES = {"start": "start_s", "perceive": "perceive_s", "perceive_per_mp": "perceive_s_per_mp",
         "step_per_mp": "step_s_per_mp", "sr_candidate_per_mp": "sr_candidate_s_per_mp",
         "candidate_per_mp": "candidate_s_per_mp", "faces_per_mp": "faces_s_per_mp", "face": "face_s",
         "write_per_mp": "write_s_per_mp"}
"""Row name → the key in ``tool_costs.json``'s ``overheads`` (:class:`fourkagent.planning.budget.Overheads`)."""


def shipped(rows: list[dict[str, Any]], threads: int) -> dict[str, float]:
    """The ``overheads`` entry from the rows at ``threads``."""
    return {NAMES[r["tool"].split(":", 1)[1]]: round(float(r["s_per_mp"]), 4) for r in rows
            if str(r["tool"]).startswith("overhead:") and r["threads"] == threads}
