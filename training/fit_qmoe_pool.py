"""The SR steps of the Q-MoE model refitted on the photo pool, with a do-no-harm margin chosen on validation.

Called by ``python training/fit_qmoe.py --pool`` (see its docstring). Fit split: data to fit; validation
split: the reported agreement / loss and the margin; the test split is not touched here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fourkagent.scoring.dataset import (  # noqa: E402
    NONE_TOOL, THRESHOLD_GAIN_DB, TIE_DB, evaluate, experts_only, fit_all, generate, predict_rows, sr_cases,
)
from fourkagent.scoring.learned import decide  # noqa: E402
from photo_pool import crops, photos  # noqa: E402

SAFE_TOOL = {"super-resolution": "sr_lanczos_x4", "super-resolution_2x": "sr_lanczos_x2"}
"""The candidate a fidelity profile falls back to: what a user would pick instead of the agent."""
MARGINS_DB = tuple(np.round(np.arange(0.0, 3.01, 0.05), 2))


def pool_views(split: str, side: int) -> dict[str, np.ndarray]:
    """One ``side``² crop (the most detailed) of every photo of ``split`` (float RGB)."""
    from fourkagent.imaging import as_image

    out = {}
    for name, img in sorted(photos(split).items()):
        got = list(crops(np.asarray(img), side, 1))
        if got:
            out[name] = as_image(got[0])
    return out


def dataset(split: str, side: int, cache: str, log: Callable[[str], None]) -> dict[str, np.ndarray]:
    """The realistic SR data of a split (from the npz ``cache`` when it exists; written otherwise)."""
    from fourkagent.tools.registry import MAIN_REGISTRY

    if cache and Path(cache).exists():
        return dict(np.load(cache, allow_pickle=False))
    views = pool_views(split, side)
    log(f"{split}: {len(views)} photos")
    data = generate(views, MAIN_REGISTRY, log=log, make_cases=lambda clean, i: sr_cases(clean, i))
    if cache:
        np.savez(cache, **data)
    return data


def predictions(models: dict[str, dict], ex: dict[str, np.ndarray]) -> np.ndarray:
    """Predicted gains of expert rows ``ex`` (``experts_only``) by the per-step ``models``."""
    pred = np.zeros(len(ex["gain"]))
    for step, model in models.items():
        m = ex["step"] == step
        if m.any():
            pred[m] = predict_rows(model, ex, m)
    return pred


def harmless(ex: dict[str, np.ndarray], pred: np.ndarray, step: str, margin: float) -> tuple[float, float]:
    """With ``margin`` dB of head start for the safe tool: the share of ``step``'s cases whose pick is at least
    the safe tool (within ``TIE_DB``), and the mean dB gained over the safe tool."""
    ok, gained = [], []
    for c in np.unique(ex["case"][ex["step"] == step]):
        m = ex["case"] == c
        tools, gains = ex["tool"][m], ex["gain"][m]
        safe = np.flatnonzero(tools == SAFE_TOOL[step])
        if not len(safe):
            continue
        p = pred[m] - margin * (tools != SAFE_TOOL[step])
        pick = int(np.argmax(p))
        ok.append(gains[pick] >= gains[safe[0]] - TIE_DB)
        gained.append(gains[pick] - gains[safe[0]])
    return float(np.mean(ok)), float(np.mean(gained))


def choose_margin(measure: Callable[[float], tuple[float, float]], share: float) -> tuple[float, float, float, list]:
    """The smallest margin of :data:`MARGINS_DB` whose ``measure(margin)`` share (``harmless`` or
    ``harmless_restoration`` of one step) is ≥ ``share`` (else the one with the highest share, then dB), its share
    and dB, and the table ``(margin, share, dB)`` it was chosen from."""
    table = [(float(m), *measure(float(m))) for m in MARGINS_DB]
    meeting = [row for row in table if row[1] >= share]
    best = meeting[0] if meeting else max(table, key=lambda r: (r[1], r[2]))
    return best[0], best[1], best[2], table


def harmless_restoration(ex: dict[str, np.ndarray], pred: np.ndarray, step: str, margin: float) -> tuple[float, float]:
    """With every candidate's prediction lowered by ``margin`` dB (doing nothing is the safe choice): the share of
    ``step``'s cases (false alarms included) whose decision loses at most ``TIE_DB`` against doing nothing, and
    the mean dB kept."""
    ok, kept = [], []
    for c in np.unique(ex["case"][ex["step"] == step]):
        m = ex["case"] == c
        _, got = decide(ex["gain"][m], pred[m] - margin, THRESHOLD_GAIN_DB)
        ok.append(got >= -TIE_DB)
        kept.append(got)
    return float(np.mean(ok)), float(np.mean(kept))


def restoration_margins(out: Path, side: int, val_cache: str, share: float) -> None:
    """Each restoration step's do-no-harm margin, chosen on the validation split's synthetic cases
    (``scoring/dataset.cases``: every degradation at five levels plus false alarms) for the shipped models:
    the smallest with which the decision loses nothing against doing nothing in ≥ ``share`` of cases."""
    from fourkagent.scoring.dataset import cases as restoration_cases
    from fourkagent.tools.registry import MAIN_REGISTRY

    if val_cache and Path(val_cache).exists():
        data = dict(np.load(val_cache, allow_pickle=False))
    else:
        data = generate(pool_views("validation", side), MAIN_REGISTRY, log=print,
                        make_cases=lambda clean, _: restoration_cases(clean))
        if val_cache:
            np.savez(val_cache, **data)
    model = json.loads(out.read_text())
    ex = experts_only(data)
    steps = sorted(s for s in set(ex["step"]) if not str(s).startswith("super-resolution") and s in model["steps"])
    pred = predictions({s: model["steps"][s] for s in steps}, ex)
    print("| step | validation cases | decision ≥ doing nothing (no margin → margin) | margin (dB) | mean dB kept |")
    print("|---|---|---|---|---|")
    for step in steps:
        margin, ok, kept, table = choose_margin(lambda m: harmless_restoration(ex, pred, step, m), share)
        model["steps"][step] |= {"safe_tool": None, "safe_margin_db": float(margin)}
        model.setdefault("validation", {})[step] = {
            "cases": int(len(np.unique(ex["case"][ex["step"] == step]))), "safe_margin_db": float(margin),
            "at_least_doing_nothing": ok, "at_least_doing_nothing_without_margin": table[0][1],
            "mean_db_kept": kept, "mean_db_kept_without_margin": table[0][2]}
        print(f"| {step} | {model['validation'][step]['cases']} | {100 * table[0][1]:.0f} % → {100 * ok:.0f} % | "
              f"{margin:.2f} | {table[0][2]:+.2f} → {kept:+.2f} |")
    out.write_text(json.dumps(model, indent=1))
    print(f"wrote {out}")


def refit_sr(out: Path, side: int, fit_cache: str, val_cache: str, share: float) -> None:
    """Refit the SR steps (see the module docstring) and write them into the model file ``out``."""
    log = lambda s: print(s, flush=True)  # noqa: E731
    fit_data = dataset("fit", side, fit_cache, log)
    val_data = dataset("validation", side, val_cache, log)
    models = fit_all(fit_data)
    ex = experts_only(val_data)
    pred = predictions(models, ex)
    report = evaluate(ex, pred)
    model = json.loads(out.read_text())
    for step, m in models.items():
        margin, ok, gained, table = choose_margin(lambda mg: harmless(ex, pred, step, mg), share)
        m |= {"safe_tool": SAFE_TOOL[step], "safe_margin_db": margin}
        report[step] |= {"safe_margin_db": margin, "at_least_safe": ok, "db_over_safe": gained,
                         "at_least_safe_without_margin": table[0][1]}
        model["steps"][step] = m
        model.get("cross_validation", {}).pop(step, None)  # the in-sample CV of the model replaced
        model.setdefault("validation", {})[step] = report[step]
        log(f"{step}: margin {margin} dB; (margin, share ≥ safe, dB over safe): "
            + ", ".join(f"({a:.2f}, {b:.2f}, {c:+.2f})" for a, b, c in table[::5]))
    model["pool"] = {"fit_photos": int(fit_data["photo"].max() + 1), "validation_photos": int(val_data["photo"].max() + 1),
                     "side": side, "rows": int(len(fit_data["gain"])), "steps": sorted(models),
                     "none_rows_excluded": int(np.sum(fit_data["tool"] == NONE_TOOL))}
    out.write_text(json.dumps(model, indent=1))
    print("| step | validation cases | agreement | loss vs oracle (dB) | margin (dB) | pick ≥ Lanczos (no margin → margin) | dB over Lanczos |")
    print("|---|---|---|---|---|---|---|")
    for step in sorted(models):
        r = report[step]
        print(f"| {step} | {r['cases']} | {100 * r['agreement']:.0f} % | {r['loss_db']:.2f} | {r['safe_margin_db']:.2f} | "
              f"{100 * r['at_least_safe_without_margin']:.0f} % → {100 * r['at_least_safe']:.0f} % | {r['db_over_safe']:+.2f} |")
    print(f"wrote {out}")
