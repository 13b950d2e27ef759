"""Q-MoE benchmark: does the scorer pick the expert that is best against ground truth, and is the agent worth it?

Usage: python benchmarks/qmoe.py [--side 192] [--data CACHE.npz] [--corner CACHE2.npz] [--agent-cases 20] [--out DIR]

Part 1, selection accuracy (≥ 10 real photos × 7 degradations × 5 levels + SR ×2/×4): every expert of the
matching step runs; Q-MoE's pick is compared with the PSNR oracle (agreement = within 0.05 dB of the best)
and the dB lost is measured, and with the LPIPS oracle (within 0.005) when LPIPS weights are on disk
(reference: always the step's best fixed expert). False alarms (each step on the clean photo and on another degradation, where
doing nothing is right) measure whether Q-MoE keeps the input when no expert helps. The learned scorer is cross-validated by photo (2 folds): no photo is scored by
a model fitted on it. Reference selectors: NIQE alone, and the first registered expert.
Part 2, agentic value: a ×4 bicubic downscale of each photo, then two degradations of noise/blur/haze/rain/dark/JPEG
applied to the low-resolution image (so the input shows them, as in MiO100-style mixed degradation); the agent
(GenMIR-P with fidelity priority: brightening allowed, ×4, offline) against Lanczos and the best fixed tool chain
(the one chain with the best mean PSNR over all cases).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fourkagent import degrade
from fourkagent.bench.metrics import fr_unavailable
from fourkagent.photos import sample_photos
from fourkagent.imaging import Image, psnr, resize
from fourkagent.scoring.dataset import KINDS, cross_validate, evaluate, load_or_generate, merge
from fourkagent.scoring.features import NAMES
from fourkagent.tools.registry import MAIN_REGISTRY


AGENT_PROFILE = {"base": "GenMIR-P", "priority": "fidelity", "name": "GenMIR-F"}
"""Multi-degradation restoration with brightening, ×4, PSNR-oriented experts (the metric here is PSNR)."""


def selection_table(data: dict[str, np.ndarray]) -> str:
    """Markdown: per step, agreement and loss of Q-MoE (cross-validated), NIQE alone, first expert."""
    ex, pred = cross_validate(data)
    learned = evaluate(ex, pred)
    niqe = evaluate(ex, ex["x"][:, NAMES.index("d_niqe")])
    first = evaluate(ex, -np.asarray([_first_index(ex, i) for i in range(len(ex["gain"]))], float))
    fixed = evaluate(ex, _fixed_expert(ex))
    lines = ["| step | cases | Q-MoE agreement | Q-MoE loss (dB) | NIQE-only agreement / loss | first-expert agreement / loss "
             "| best fixed expert agreement / loss | false alarms kept safe | decision loss incl. doing nothing (dB) "
             "| Q-MoE vs LPIPS oracle: agreement / excess LPIPS |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for step, r in learned.items():
        n, f, b = niqe[step], first[step], fixed[step]
        fa = f"{100 * r['false_alarms_safe']:.0f} % of {r['false_alarms']}" if r["false_alarms"] else "–"
        lp = (f"{100 * r['lpips_agreement']:.0f} % / {r['lpips_loss']:.4f}" if r["lpips_agreement"] is not None
              else "n/a")
        lines.append(f"| {step} | {r['cases']} | {100 * r['agreement']:.0f} % | {r['loss_db']:.2f} | "
                     f"{100 * n['agreement']:.0f} % / {n['loss_db']:.2f} | {100 * f['agreement']:.0f} % / {f['loss_db']:.2f} "
                     f"| {100 * b['agreement']:.0f} % / {b['loss_db']:.2f} | {fa} | {r['decision_loss_db']:.2f} | {lp} |")
    w = [r["cases"] for r in learned.values()]
    tot = {k: np.average([r[k] for r in learned.values()], weights=w) for k in ("agreement", "loss_db")}
    n_fa = sum(r["false_alarms"] for r in learned.values())
    safe = sum(r["false_alarms_safe"] * r["false_alarms"] for r in learned.values() if r["false_alarms"])
    lines.append(f"| **all** | {sum(w)} | **{100 * tot['agreement']:.0f} %** | **{tot['loss_db']:.2f}** | | | | "
                 f"{100 * safe / max(n_fa, 1):.0f} % of {n_fa} | | {_lpips_total(learned, w)} |")
    return "\n".join(lines)


def _lpips_total(learned: dict[str, dict], weights: list[int]) -> str:
    """The LPIPS-oracle agreement over all steps, or why there is none (LPIPS weights are never downloaded)."""
    rows = [(r, n) for r, n in zip(learned.values(), weights) if r["lpips_agreement"] is not None]
    if not rows:
        return f"n/a: LPIPS {fr_unavailable('lpips') or 'not in this data cache'}"
    n = sum(c for _, c in rows)
    return (f"**{100 * sum(r['lpips_agreement'] * c for r, c in rows) / n:.0f} %** / "
            f"{sum(r['lpips_loss'] * c for r, c in rows) / n:.4f}")


def _fixed_expert(data: dict[str, np.ndarray]) -> np.ndarray:
    """Scores that always pick the step's expert with the best mean gain over its cases with the degradation
    present (chosen on all photos: an in-sample reference, not cross-validated)."""
    present = data["present"].astype(bool)
    key = np.asarray([f"{s}|{t}" for s, t in zip(data["step"], data["tool"])])
    mean = {}
    for k in set(key):
        rows = key == k
        mean[k] = float(np.mean(data["gain"][rows & present] if np.any(rows & present) else data["gain"][rows]))
    return np.asarray([mean[k] for k in key])


def _first_index(data: dict[str, np.ndarray], i: int) -> int:
    rows = np.flatnonzero(data["case"] == data["case"][i])
    return int(np.flatnonzero(rows == i)[0])


def _chains() -> tuple[list[str], list[str]]:
    """The fixed chains' parts: every available restoration tool (or none) then one ×4 SR tool of the
    agent's priority (the same toolbox the agent draws from)."""
    restore = [t.name for t in MAIN_REGISTRY if t.spec.category not in ("super-resolution", "old photo restoration")
               and t.unavailable_reason() is None]
    sr = [t.name for t in MAIN_REGISTRY.for_step("super-resolution", 4, AGENT_PROFILE["priority"])]
    return restore, sr


def _chain_psnr(restore: list[str], sr: list[str], lr: Image, clean: Image) -> dict[str, float]:
    """PSNR of every chain ``[restore →] sr`` on one case (each restoration output computed once)."""
    out = {}
    for r in [None, *restore]:
        mid = lr if r is None else MAIN_REGISTRY.get(r)(lr)
        for s in sr:
            out[" -> ".join(x for x in (r, s) if x)] = psnr(MAIN_REGISTRY.get(s)(mid), clean)
    return out


def agentic(photos: dict[str, Image], n_cases: int, seed: int = 0) -> tuple[list[dict], str]:
    """Agent vs Lanczos vs the best fixed chain on mixed degradations (×4 SR at the end)."""
    from fourkagent.context import Context
    from fourkagent.imageio import load_image, save_image
    from fourkagent.runner import run

    rng = np.random.default_rng(seed)
    pairs = [p for p in itertools.combinations(KINDS, 2)]
    names = list(photos)
    cases = []
    for i in range(n_cases):
        a, b = pairs[int(rng.integers(len(pairs)))]
        clean = photos[names[i % len(names)]]
        lv = int(rng.integers(3, 5))
        lr = degrade.downscale(clean, 4)
        lr = degrade.apply(degrade.apply(lr, a, lv, seed=i), b, lv, seed=i + 100)
        cases.append((names[i % len(names)], (a, b), lv, clean, lr))
    restore, sr = _chains()
    per_case: list[dict[str, float]] = []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(home=tmp, use_experience=False, iqa_metrics="niqe")
        for j, (name, kinds, lv, clean, lr) in enumerate(cases):
            per_case.append(_chain_psnr(restore, sr, lr, clean))
            src = Path(tmp) / f"in{j}.png"
            save_image(lr, src)
            t0 = time.perf_counter()
            res = run(str(src), str(Path(tmp) / f"out{j}.png"), AGENT_PROFILE, context=ctx)
            out, _ = load_image(res["output_path"])
            report = json.loads(Path(res["report_path"]).read_text())
            rows.append({"photo": name, "degradations": list(kinds), "level": lv,
                         "seconds": round(time.perf_counter() - t0, 2), "agent": psnr(out, clean),
                         "lanczos": psnr(resize(lr, (clean.shape[1], clean.shape[0]), "lanczos"), clean),
                         "plan": [f"{t['step']}:{t['tool']}" for t in report["trajectory"]]})
    best = max(per_case[0], key=lambda c: np.mean([p[c] for p in per_case]))
    for r, p in zip(rows, per_case):
        r["best_chain"] = float(p[best])
    return rows, best


def _record(rows: list[dict], key: str) -> str:
    """"wins / ties / losses" of the agent against the method ``key`` (a tie: within 0.05 dB)."""
    d = np.array([r["agent"] - r[key] for r in rows])
    return f"{100 * np.mean(d > 0):.0f} % | {int(np.sum(d > 0.05))} / {int(np.sum(np.abs(d) <= 0.05))} / {int(np.sum(d < -0.05))}"


def agentic_table(rows: list[dict], chain: str) -> str:
    """Markdown: mean PSNR, win rates and wins/ties/losses."""
    return "\n".join([
        f"{len(rows)} mixed-degradation ×4 cases; best fixed chain: `{chain}`\n",
        "| method | mean PSNR (dB) | agent better | agent wins / ties (±0.05 dB) / losses |", "|---|---|---|---|",
        f"| agent (GenMIR-P, fidelity) | {np.mean([r['agent'] for r in rows]):.2f} | | |",
        f"| Lanczos | {np.mean([r['lanczos'] for r in rows]):.2f} | {_record(rows, 'lanczos')} |",
        f"| best fixed chain | {np.mean([r['best_chain'] for r in rows]):.2f} | {_record(rows, 'best_chain')} |",
        f"\nagent wall time per case: {np.mean([r['seconds'] for r in rows]):.1f} s",
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=192, help="photo crop side for part 1")
    ap.add_argument("--agent-side", type=int, default=384, help="photo crop side for part 2 (input is ×4 smaller)")
    ap.add_argument("--data", default="", help="cache of the expert runs (npz; training/fit_qmoe.py writes the same)")
    ap.add_argument("--corner", default="", help="cache of a second view of every photo, used for training only")
    ap.add_argument("--agent-cases", type=int, default=20)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    t0 = time.perf_counter()
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    data = load_or_generate(args.side, args.data, log=log)
    if args.corner:  # extra training view: scored cases stay the centre views
        data = merge(data, load_or_generate(args.side, args.corner, corner=True, log=log))
    print(f"## Q-MoE selection accuracy ({int(data['photo'].max()) + 1} photos, {args.side} px, 2-fold CV by photo)\n")
    print(selection_table(data) + "\n")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.agent_cases:
        rows, chain = agentic(sample_photos(max_side=args.agent_side), args.agent_cases)
        print("## Agentic value\n\n" + agentic_table(rows, chain) + "\n")
        (out / "qmoe_agentic.json").write_text(json.dumps({"rows": rows, "best_chain": chain}, indent=1))
    print(f"total {time.perf_counter() - t0:.0f} s on {os.cpu_count()} cores")


if __name__ == "__main__":
    sys.exit(main())
