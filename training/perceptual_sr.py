"""Which ×4 expert should a perception-priority profile keep? Data and a judge for the perceptual SR step.

The perceptual experts (Real-ESRGAN, SPAN-kendata, ClearReality, ESRGAN-thick, SRMD, Lanczos, back-projection:
``registry.for_step("super-resolution", 4, "perception")``) run on the realistic small inputs of
``scoring.dataset.sr_cases`` (clean, Gaussian and sensor noise, JPEG, blur, pairs) of the photo pool, and every
output is measured against the truth with NLPD (Laparra et al. 2016, the normalised Laplacian pyramid distance:
a full-reference distance fitted to human judgements with fixed filters, so it runs offline — LPIPS and DISTS
need VGG/AlexNet weights this machine cannot fetch) beside PSNR. NLPD is the judge: an output whose noise was
turned into texture, or whose blocks were smeared into strokes, is far from the truth in it.

``--split fit|validation`` writes the rows (``--data`` npz; ``scoring.dataset.generate`` keeps the distance in
its ``lpips`` column, here NLPD); ``--judge`` compares, on the validation split,
selection rules for the perceptual step by the NLPD of what they pick: the shipped scorer's perception-priority
Q, Real-ESRGAN always, each single expert, and the NLPD oracle. The test split is never touched.

Usage: python training/perceptual_sr.py --split fit --data $FOURKAGENT_CACHE/psr_fit.npz
       python training/perceptual_sr.py --judge --data $FOURKAGENT_CACHE/psr_validation.npz
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fourkagent.scoring.dataset import NONE_TOOL, generate, sr_cases  # noqa: E402
from fit_qmoe_pool import pool_views  # noqa: E402

STEP = "super-resolution"


def nlpd() -> Callable[[np.ndarray, np.ndarray], float]:
    """``(image, truth) -> NLPD`` on 8-bit-quantised images (pyiqa's implementation; no weights)."""
    import pyiqa
    import torch

    from fourkagent.imaging import to_uint8

    metric = pyiqa.create_metric("nlpd", device="cpu")

    def t(img: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(to_uint8(img).transpose(2, 0, 1).astype(np.float32) / 255.0)[None]

    return lambda out, truth: float(metric(t(out), t(truth)).item())


def x4_cases(clean: np.ndarray, seed: int) -> list:
    """The ×4 cases of :func:`sr_cases` (the perceptual step the profiles run)."""
    return [c for c in sr_cases(clean, seed) if c[1] == 4]


def build(split: str, side: int, out: Path) -> None:
    """Generate and save the rows of ``split``."""
    from fourkagent.tools.registry import MAIN_REGISTRY

    views = pool_views(split, side)
    print(f"{split}: {len(views)} photos", flush=True)
    data = generate(views, MAIN_REGISTRY, log=lambda s: print(s, flush=True), distance=nlpd(), make_cases=x4_cases,
                    preference="perception")
    np.savez(out, **data)
    print(f"wrote {out} ({len(data['gain'])} rows)")


def q_pick(case: dict[str, np.ndarray], priority: str = "perception") -> int:
    """The candidate the shipped scorer would keep, from the stored features (the same model inputs)."""
    from fourkagent.scoring.learned import shipped_model
    from fourkagent.scoring.qmoe import naturalness_weight, step_model

    model = step_model(shipped_model(), STEP, priority)
    return nlpd_pick(model, case, naturalness_weight(model, priority))


def nlpd_gain(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``data`` with ``gain`` replaced by the NLPD improvement over doing nothing (bicubic) in dB-like units,
    20·log10(NLPD of bicubic / NLPD of the candidate): the target of the perceptual SR model."""
    none = {int(c): d for c, t, d in zip(data["case"], data["tool"], data["lpips"]) if t == NONE_TOOL}
    ref = np.array([none[int(c)] for c in data["case"]])
    return data | {"gain": 20.0 * np.log10(ref / np.maximum(data["lpips"], 1e-6))}


def fit_model(fit: dict[str, np.ndarray]) -> dict:
    """The perceptual ×4 model: the Q-MoE regression (``scoring.dataset.fit_step_rows``) on the NLPD target."""
    from fourkagent.scoring.dataset import experts_only, fit_step_rows

    ex = experts_only(nlpd_gain(fit))
    return fit_step_rows(ex, ex["step"] == STEP)


WEIGHTS = tuple(np.round(np.arange(0.0, 1.01, 0.1), 1))
SAFE = "sr_realesrgan_x4"
"""What a user after looks would run instead of the agent."""
NIQE_SHARE = 0.70
"""The share of cases whose pick should be at least as natural (NIQE) as Real-ESRGAN's (the issue's target)."""


def cases_of(data: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The expert rows of each case, with the case's "doing nothing" features as ``none_x``."""
    out = []
    for c in np.unique(data["case"]):
        m = data["case"] == c
        case = {k: v[m] for k, v in data.items()}
        none = case["x"][case["tool"] == NONE_TOOL][0]
        keep = case["tool"] != NONE_TOOL
        out.append({k: v[keep] for k, v in case.items()} | {"none_x": none})
    return out


def nlpd_pick(model: dict, case: dict[str, np.ndarray], w: float) -> int:
    """The candidate with the best Q from ``model``'s predicted gain and NIQE naturalness (weight ``w``), by the
    scorer's own formula (``scoring.qmoe.mixed_q``)."""
    from fourkagent.scoring.features import NAMES
    from fourkagent.scoring.learned import predict
    from fourkagent.scoring.qmoe import mixed_q

    gains = predict(model, case["x"] - case["none_x"], case["s"], list(case["tool"]))
    d_niqe = case["x"][:, NAMES.index("d_niqe")]
    return int(np.argmax([mixed_q(g, d, w)[0] for g, d in zip(gains, d_niqe)]))


def against_safe(cases: list[dict[str, np.ndarray]], picks: list[int]) -> dict[str, float]:
    """Mean NLPD and PSNR gain of the picks; shares of cases where the pick is at least as natural as
    Real-ESRGAN's output by NIQE, and not farther from the truth by NLPD (within 2 %)."""
    from fourkagent.scoring.features import NAMES

    i = NAMES.index("d_niqe")
    nat, near = [], []
    for c, k in zip(cases, picks):
        r = int(np.flatnonzero(c["tool"] == SAFE)[0])
        nat.append(k == r or c["x"][k, i] >= c["x"][r, i])  # d_niqe: the NIQE drop, higher is more natural
        near.append(c["lpips"][k] <= 1.02 * c["lpips"][r])
    return {"nlpd": float(np.mean([c["lpips"][k] for c, k in zip(cases, picks)])),
            "psnr_gain_db": float(np.mean([c["gain"][k] for c, k in zip(cases, picks)])),
            "niqe_at_least_safe": float(np.mean(nat)), "nlpd_at_least_safe": float(np.mean(near)),
            "near_oracle": float(np.mean([c["lpips"][k] <= 1.02 * c["lpips"].min() for c, k in zip(cases, picks)]))}


def choose_weight(model: dict, cases: list[dict[str, np.ndarray]]) -> tuple[float, list[tuple[float, dict]]]:
    """The smallest NIQE weight of :data:`WEIGHTS` whose picks are at least as natural as Real-ESRGAN's in
    ≥ :data:`NIQE_SHARE` of ``cases`` (validation), and the table it was chosen from."""
    table = [(w, against_safe(cases, [nlpd_pick(model, c, w) for c in cases])) for w in WEIGHTS]
    meeting = [w for w, r in table if r["niqe_at_least_safe"] >= NIQE_SHARE]
    return (meeting[0] if meeting else max(table, key=lambda t: t[1]["niqe_at_least_safe"])[0]), table


def judge(data: dict[str, np.ndarray], model: dict | None = None) -> float | None:
    """Print how each rule does on ``data`` (validation) and, with ``model``, the NIQE-weight table; returns
    the chosen weight (None without a model)."""
    cases = cases_of(data)
    tools = sorted({str(t) for c in cases for t in c["tool"]})
    rules = {"oracle (NLPD)": lambda c: int(np.argmin(c["lpips"])), "shipped Q (perception)": q_pick,
             **{f"always {t}": (lambda c, t=t: int(np.flatnonzero(c["tool"] == t)[0])) for t in tools}}
    print(f"{len(cases)} cases (validation split). NLPD of the pick (lower is better), PSNR gain over bicubic, "
          f"shares: within 2 % of the NLPD oracle, NIQE ≥ Real-ESRGAN's, NLPD ≤ Real-ESRGAN's (+2 %)")
    print("| rule | NLPD | PSNR gain (dB) | ≈ oracle | NIQE ≥ Real-ESRGAN | NLPD ≤ Real-ESRGAN |")
    print("|---|---|---|---|---|---|")

    def row(name: str, r: dict) -> None:
        print(f"| {name} | {r['nlpd']:.4f} | {r['psnr_gain_db']:+.2f} | {100 * r['near_oracle']:.0f} % | "
              f"{100 * r['niqe_at_least_safe']:.0f} % | {100 * r['nlpd_at_least_safe']:.0f} % |")

    for name, rule in rules.items():
        row(name, against_safe(cases, [rule(c) for c in cases]))
    if model is None:
        return None
    w, table = choose_weight(model, cases)
    for wt, r in table:
        row(f"NLPD model, NIQE weight {wt}" + (" (chosen)" if wt == w else ""), r)
    return w


def ship(model: dict, w: float, val: dict[str, np.ndarray], out: Path) -> None:
    """Write the model (with its NIQE weight and validation figures) as the perception-priority ×4 model."""
    shipped = json.loads(out.read_text())
    cases = cases_of(val)
    shipped.setdefault("perception_steps", {})[STEP] = model | {"naturalness_weight": w, "target": "nlpd_db"}
    shipped.setdefault("validation", {})[f"perception:{STEP}"] = {
        "cases": len(cases), "naturalness_weight": w,
        **against_safe(cases, [nlpd_pick(model, c, w) for c in cases]),
        "shipped_before": against_safe(cases, [q_pick(c) for c in cases]),
        "always_" + SAFE: against_safe(cases, [int(np.flatnonzero(c["tool"] == SAFE)[0]) for c in cases])}
    out.write_text(json.dumps(shipped, indent=1))
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("fit", "validation"))
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--data", required=True, help="the rows of --split (written), or the validation rows (--judge)")
    ap.add_argument("--judge", action="store_true")
    ap.add_argument("--fit-data", default="", help="--judge: fit the NLPD model on these rows (the fit split)")
    ap.add_argument("--ship", default="", help="--judge --fit-data: write the model into this Q-MoE model file")
    args = ap.parse_args()
    if args.judge:
        val = dict(np.load(args.data, allow_pickle=False))
        model = fit_model(dict(np.load(args.fit_data, allow_pickle=False))) if args.fit_data else None
        w = judge(val, model)
        if args.ship and model is not None and w is not None:
            ship(model, w, val, Path(args.ship))
    else:
        build(args.split, args.side, Path(args.data))


if __name__ == "__main__":
    main()
