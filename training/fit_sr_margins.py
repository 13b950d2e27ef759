"""The SR steps' do-no-harm margin for clean inputs, chosen on the validation split.

The uniform margin of ``fit_qmoe_pool.refit_sr`` (×4: 2.6 dB) protects against the sharper experts' risk on
noisy and blocky inputs, where the model over-predicts SPAN and SRMD; on a clean or only blurred input the same
head start makes the step keep Lanczos where SPAN is ~1–3 dB better (the validation split's blur family: SPAN
+1.2 dB over Lanczos, picked 0 of 12 times). The rule chosen here gives inputs that measure clean at their own
size — no JPEG lattice (``jpeg_quality_est`` 0) and a noise σ̂ below a cut-off (``scoring/features.
input_noise_jpeg``) — a smaller margin: of the grid of (cut-off, margin) pairs, the one with the most dB over
Lanczos among those whose pick is at least Lanczos in ≥ ``share`` of all the split's cases (ties: the larger
margin, then the lower cut-off). Validation only: the cases' inputs are made again from the pool
(``scoring/dataset.sr_cases`` is deterministic) and measured, matched to the data rows by photo, step and order.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fit_qmoe_pool import MARGINS_DB, _case_keys, harmless, pool_views  # noqa: E402
from fourkagent.scoring.dataset import sr_cases  # noqa: E402
from fourkagent.scoring.features import input_noise_jpeg  # noqa: E402

SIGMA_CUTOFFS = (3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0)
"""Noise σ̂ cut-offs tried (0-255): clean 64–96 px crops of the pool measure σ̂ 0.5–7 (texture)."""

Measures = dict[tuple[int, str, int], tuple[float, float]]


def sr_input_measures(split: str, side: int) -> Measures:
    """(photo index, step, order of the case among the photo's cases of that step) → the case input's
    (noise σ̂, JPEG quality estimate), for the SR cases of ``split`` as ``fit_qmoe_pool.dataset`` makes them."""
    out: Measures = {}
    for pi, clean in enumerate(pool_views(split, side).values()):
        seen: dict[str, int] = {}
        for step, _, inp, _, _ in sr_cases(clean, pi):
            k = seen[step] = seen.get(step, -1) + 1
            out[(pi, step, k)] = input_noise_jpeg(inp)
    return out


def clean_cases(ex: dict[str, np.ndarray], measures: Measures, cutoff: float) -> np.ndarray:
    """Per row of ``ex``: whether its case's input is clean by the rule (no JPEG lattice, σ̂ < ``cutoff``)."""
    keys = _case_keys(ex)
    clean = {c: measures[k][1] == 0 and measures[k][0] < cutoff for c, k in keys.items()}
    return np.array([clean[int(c)] for c in ex["case"]])


def grouped_harmless(ex: dict[str, np.ndarray], pred: np.ndarray, step: str,
                     groups: list[tuple[np.ndarray, float]]) -> tuple[float, float]:
    """``harmless`` of ``step`` with one margin per group of rows (``(row mask, margin)``, the masks disjoint and
    covering the step's cases): the share of cases whose pick is at least the safe tool, and the mean dB over it."""
    total_ok = total_db = n = 0.0
    for mask, mg in groups:
        sub = {k: v[mask] for k, v in ex.items()}
        cases = len(np.unique(sub["case"][sub["step"] == step]))
        if cases:
            ok, db = harmless(sub, pred[mask], step, mg)
            total_ok, total_db, n = total_ok + ok * cases, total_db + db * cases, n + cases
    return total_ok / n, total_db / n


def split_harmless(ex: dict[str, np.ndarray], pred: np.ndarray, step: str, clean: np.ndarray, margin: float,
                   clean_margin: float) -> tuple[float, float]:
    """:func:`grouped_harmless` with ``clean_margin`` for the clean rows' cases and ``margin`` for the others."""
    return grouped_harmless(ex, pred, step, [(clean, clean_margin), (~clean, margin)])


def shipped_harmless(ex: dict[str, np.ndarray], pred: np.ndarray, step: str, measures: Measures,
                     model: dict) -> tuple[float, float]:
    """:func:`grouped_harmless` with the margins the runtime gives (``scoring/qmoe.StepScorer._head_start``):
    the step model's ``clean_input`` margin for clean inputs, at least its ``blocky_margin_db`` for inputs with a
    JPEG lattice, the uniform ``safe_margin_db`` otherwise."""
    rule = model.get("clean_input") or {"noise_sigma_below": 0.0, "margin_db": model["safe_margin_db"]}
    keys = _case_keys(ex)
    blocky = np.array([measures[keys[int(c)]][1] > 0 for c in ex["case"]])
    clean = clean_cases(ex, measures, rule["noise_sigma_below"]) & ~blocky
    uniform = float(model["safe_margin_db"])
    return grouped_harmless(ex, pred, step, [(clean, float(rule["margin_db"])), (~clean & ~blocky, uniform),
                                             (blocky, max(uniform, float(model.get("blocky_margin_db", 0.0))))])


def choose_clean_rule(ex: dict[str, np.ndarray], pred: np.ndarray, step: str, measures: Measures, margin: float,
                      share: float) -> dict:
    """The clean-input rule of ``step`` (module docstring) for the uniform ``margin``: ``{noise_sigma_below,
    margin_db, at_least_safe, db_over_safe, clean_cases, cases}``; the rule keeps ``margin`` for every input
    (cut-off 0) when no smaller margin meets ``share``."""
    best = (0.0, margin, *split_harmless(ex, pred, step, np.zeros(len(pred), bool), margin, margin))
    for cut in SIGMA_CUTOFFS:
        clean = clean_cases(ex, measures, cut)
        for mg in (m for m in MARGINS_DB if m < margin):
            ok, db = split_harmless(ex, pred, step, clean, margin, float(mg))
            if ok >= share and (round(db, 9), mg, -cut) > (round(best[3], 9), best[1], -best[0]):
                best = (cut, float(mg), ok, db)
    sel = ex["step"] == step
    clean = clean_cases(ex, measures, best[0]) if best[0] else np.zeros(len(pred), bool)
    return {"noise_sigma_below": best[0], "margin_db": best[1], "at_least_safe": best[2], "db_over_safe": best[3],
            "clean_cases": len(np.unique(ex["case"][sel & clean])), "cases": len(np.unique(ex["case"][sel]))}


BLOCKY_MARGINS_DB = tuple(np.round(np.arange(0.0, 10.01, 0.25), 2))
"""Margins tried for inputs with a JPEG lattice (wider than the uniform grid: the answer may be "keep Lanczos")."""


def choose_blocky_margin(ex: dict[str, np.ndarray], pred: np.ndarray, step: str, measures: Measures) -> dict:
    """The margin for inputs with a JPEG lattice: the most dB over the safe tool on those cases (ties: the higher
    share at least the safe tool, then the larger margin). On the validation split every margin loses dB against
    Lanczos there (the SR experts magnify the blocks; the model over-predicts them), so the choice keeps Lanczos."""
    keys = _case_keys(ex)
    blocky = np.array([measures[keys[int(c)]][1] > 0 for c in ex["case"]])
    sub = {k: v[blocky] for k, v in ex.items()}
    cases = len(np.unique(sub["case"][sub["step"] == step]))
    if not cases:
        return {"margin_db": None, "cases": 0}
    table = [(float(mg), *harmless(sub, pred[blocky], step, float(mg))) for mg in BLOCKY_MARGINS_DB]
    mg, ok, db = max(table, key=lambda r: (round(r[2], 9), r[1], r[0]))
    return {"margin_db": mg, "at_least_safe": ok, "db_over_safe": db, "cases": cases}


def clean_rules(out: Path, side: int, val_cache: str, share: float) -> None:
    """Choose each SR step's clean-input rule for the models in the model file ``out`` on the validation split's
    SR data (``fit_qmoe_pool.dataset``), write it into the step model (``clean_input``, read by
    ``scoring/qmoe.StepScorer``) and its record into ``validation``, and print the table."""
    from fit_qmoe_pool import dataset, predictions
    from fourkagent.scoring.dataset import experts_only

    model = json.loads(out.read_text())
    ex = experts_only(dataset("validation", side, val_cache, print))
    steps = sorted(s for s in set(ex["step"].tolist()) if model["steps"].get(s, {}).get("safe_tool"))
    pred = predictions({s: model["steps"][s] for s in steps}, ex)
    measures = sr_input_measures("validation", side)
    print("| step | validation cases (clean by the rule) | margin: uniform → clean inputs (dB) | σ̂ cut-off | "
          "pick ≥ Lanczos | dB over Lanczos: uniform → rule |")
    print("|---|---|---|---|---|---|")
    for step in steps:
        m = model["steps"][step]
        margin = float(m["safe_margin_db"])
        _, uniform_db = harmless(ex, pred, step, margin)
        rule = choose_clean_rule(ex, pred, step, measures, margin, share)
        blocky = choose_blocky_margin(ex, pred, step, measures)
        m.pop("clean_input", None)
        m.pop("blocky_margin_db", None)
        if rule["noise_sigma_below"]:
            m["clean_input"] = {"noise_sigma_below": rule["noise_sigma_below"], "margin_db": rule["margin_db"]}
        if blocky["margin_db"] is not None and blocky["margin_db"] > margin:
            m["blocky_margin_db"] = blocky["margin_db"]
        model.setdefault("validation", {}).setdefault(step, {})["clean_input"] = rule | {"db_over_safe_uniform": uniform_db}
        model["validation"][step]["blocky_input"] = blocky
        print(f"{step}: inputs with a JPEG lattice ({blocky['cases']} cases): margin {blocky['margin_db']} dB")
        print(f"| {step} | {rule['cases']} ({rule['clean_cases']}) | {margin:.2f} → {rule['margin_db']:.2f} | "
              f"{rule['noise_sigma_below']:g} | {100 * rule['at_least_safe']:.0f} % | {uniform_db:+.2f} → "
              f"{rule['db_over_safe']:+.2f} |")
    out.write_text(json.dumps(model, indent=1))
    print(f"wrote {out}")
