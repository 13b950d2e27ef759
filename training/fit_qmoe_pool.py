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
    COLUMNS, NONE_TOOL, THRESHOLD_GAIN_DB, TIE_DB, evaluate, experts_only, fit_all, generate, predict_rows, real_cases,
    sr_cases,
)
from fourkagent.scoring.learned import decide  # noqa: E402
from fourkagent.vocabulary import is_sr_step  # noqa: E402
from photo_pool import crops, photos  # noqa: E402

SAFE_TOOL = {"super-resolution": "sr_lanczos_x4", "super-resolution_2x": "sr_lanczos_x2"}
"""The candidate a fidelity profile falls back to: what a user would pick instead of the agent."""
MARGINS_DB = tuple(np.round(np.arange(0.0, 3.01, 0.05), 2))
TOOL_MARGINS_DB = tuple(np.round(np.arange(0.0, 5.01, 0.25), 2))
"""Grid of the per-tool SR margins (coarser: every combination of three tools is tried)."""


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


def restoration_dataset(split: str, side: int, cache: str, log: Callable[[str], None],
                        shard: tuple[int, int] = (0, 1)) -> dict[str, np.ndarray] | None:
    """The realistic restoration data of a split (``scoring/dataset.real_cases`` of one ``side``² crop per photo,
    every expert of each step): each photo's rows are kept in ``CACHE.d/NAME.npz`` as they are made (a stopped run
    resumes; ``shard=(k, n)`` makes photos k, k+n, … so n processes share the work), and merged into ``cache``
    once every photo is there (None before)."""
    from fourkagent.tools.registry import MAIN_REGISTRY

    if Path(cache).exists():
        return dict(np.load(cache, allow_pickle=False))
    views = pool_views(split, side)
    parts = Path(cache + ".d")
    parts.mkdir(exist_ok=True)
    for pi, (name, img) in enumerate(views.items()):
        part = parts / f"{name}.npz"
        if pi % shard[1] != shard[0] or part.exists():
            continue
        rows = generate({name: img}, MAIN_REGISTRY, log=log, make_cases=lambda clean, _: real_cases(clean, pi))
        np.savez(part, **(rows | {"photo": np.full(len(rows["gain"]), pi)}))
    files = [parts / f"{name}.npz" for name in views]
    if not all(f.exists() for f in files):
        log(f"{split}: {sum(f.exists() for f in files)} of {len(files)} photos made")
        return None
    data, offset = [], 0
    for f in files:
        d = dict(np.load(f, allow_pickle=False))
        data.append(d | {"case": d["case"] + offset})
        offset += int(d["case"].max()) + 1
    merged = {k: np.concatenate([d[k] for d in data]) for k in COLUMNS}
    np.savez(cache, **merged)
    return merged


def _case_keys(d: dict[str, np.ndarray]) -> dict[int, tuple]:
    """Case id → (photo, step, order of the case among that photo's cases of that step)."""
    out = {}
    for ph in np.unique(d["photo"]):
        for step in np.unique(d["step"][d["photo"] == ph]):
            ids = sorted(set(d["case"][(d["photo"] == ph) & (d["step"] == step)].tolist()))
            out.update({c: (int(ph), str(step), k) for k, c in enumerate(ids)})
    return out


def merge_tool_rows(base: dict[str, np.ndarray], extra: dict[str, np.ndarray], tool: str) -> dict[str, np.ndarray]:
    """``base`` with ``tool``'s rows taken from ``extra`` — data of the same photos and cases made by another
    :func:`generate` run (fewer tools, or the perceptual experts of ``perceptual_sr.py``) — matched by photo,
    step and the case's order within the photo; refuses data whose "doing nothing" rows differ (other cases)."""
    bk, ek = _case_keys(base), _case_keys(extra)
    ids = {v: c for c, v in bk.items()}
    none_b = {int(c): x for c, t, x in zip(base["case"], base["tool"], base["x"]) if t == NONE_TOOL}
    for c, t, x in zip(extra["case"], extra["tool"], extra["x"]):
        if t == NONE_TOOL and not np.allclose(none_b[ids[ek[int(c)]]], x, atol=1e-6, equal_nan=True):
            raise ValueError(f"case {ek[int(c)]} differs between the two data sets")
    m = extra["tool"] == tool
    rows = {k: extra[k][m] for k in COLUMNS}
    rows["case"] = np.array([ids[ek[int(c)]] for c in rows["case"]])
    keep = base["tool"] != tool
    return {k: np.concatenate([base[k][keep], rows[k]]) for k in COLUMNS}


def add_tool(split: str, side: int, cache: str, tool: str, log: Callable[[str], None]) -> None:
    """Add an ×4 expert's rows to the cached SR data of ``split`` (its cases, run with Lanczos beside it)."""
    from fourkagent.tools.base import ToolRegistry
    from fourkagent.tools.registry import MAIN_REGISTRY

    base = dataset(split, side, cache, log)
    mini = ToolRegistry()
    mini.add(MAIN_REGISTRY.get(SAFE_TOOL["super-resolution"]), MAIN_REGISTRY.get(tool))
    extra = generate(pool_views(split, side), mini, log=log, preference="perception",
                     make_cases=lambda clean, i: [c for c in sr_cases(clean, i) if c[1] == 4])
    np.savez(cache, **merge_tool_rows(base, extra, tool))
    log(f"{cache}: {int(np.sum(extra['tool'] == tool))} rows of {tool} added")


def predictions(models: dict[str, dict], ex: dict[str, np.ndarray]) -> np.ndarray:
    """Predicted gains of expert rows ``ex`` (``experts_only``) by the per-step ``models``."""
    pred = np.zeros(len(ex["gain"]))
    for step, model in models.items():
        m = ex["step"] == step
        if m.any():
            pred[m] = predict_rows(model, ex, m)
    return pred


def _over_safe(ex: dict[str, np.ndarray], pred: np.ndarray, step: str, names: list[str],
               combos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``combos`` (one head start per tool of ``names``; the safe tool gets none): the share of
    ``step``'s cases whose pick is at least the safe tool (within ``TIE_DB``), and the mean dB over it."""
    col = {t: i for i, t in enumerate(names)}
    ok, gained, ncases = np.zeros(len(combos)), np.zeros(len(combos)), 0
    for c in np.unique(ex["case"][ex["step"] == step]):
        m = ex["case"] == c
        tools, gains, p = ex["tool"][m], ex["gain"][m], pred[m].copy()
        safe = np.flatnonzero(tools == SAFE_TOOL[step])
        if not len(safe):
            continue
        p[safe] = np.maximum(p[safe], 0.0)  # as the runtime scores it (scoring/qmoe.StepScorer._safe_floor)
        head = np.zeros((len(combos), len(tools)))
        for j, t in enumerate(tools):
            if t != SAFE_TOOL[step]:
                head[:, j] = combos[:, col[str(t)]]
        pick = np.argmax(p[None, :] - head, axis=1)
        ok += gains[pick] >= gains[safe[0]] - TIE_DB
        gained += gains[pick] - gains[safe[0]]
        ncases += 1
    return ok / ncases, gained / ncases


def _tools_of(ex: dict[str, np.ndarray], step: str) -> list[str]:
    """The candidate tools of ``step`` other than the safe one."""
    return sorted({str(t) for t in ex["tool"][ex["step"] == step]} - {SAFE_TOOL[step]})


def harmless(ex: dict[str, np.ndarray], pred: np.ndarray, step: str, margin: float | dict[str, float]) -> tuple[float, float]:
    """With ``margin`` dB of head start for the safe tool (one number, or one per candidate tool; a tool missing
    from the dict gets none): the share of ``step``'s cases whose pick is at least the safe tool (within
    ``TIE_DB``), and the mean dB gained over the safe tool."""
    names = _tools_of(ex, step)
    row = [margin.get(t, 0.0) if isinstance(margin, dict) else margin for t in names]
    ok, gained = _over_safe(ex, pred, step, names, np.array([row], dtype=float))
    return float(ok[0]), float(gained[0])


def choose_tool_margins(ex: dict[str, np.ndarray], pred: np.ndarray, step: str, share: float,
                        grid: tuple[float, ...] = TOOL_MARGINS_DB) -> tuple[dict[str, float], float, float]:
    """One head start per candidate tool of ``step`` (the model over-predicts some experts more than others):
    of every combination of ``grid`` values, the one with the most dB over the safe tool among those whose pick
    is at least the safe tool in ≥ ``share`` of cases (ties: the larger margins); its share and dB. None meeting
    the share: the uniform choice of :func:`choose_margin` for every tool."""
    names = _tools_of(ex, step)
    combos = np.array(np.meshgrid(*[grid] * len(names), indexing="ij")).reshape(len(names), -1).T
    ok, gained = _over_safe(ex, pred, step, names, combos)
    meeting = np.flatnonzero(ok >= share)
    if not len(meeting):
        margin, s, g, _ = choose_margin(lambda mg: harmless(ex, pred, step, mg), share)
        return {t: margin for t in names}, s, g
    best = max(meeting, key=lambda k: (round(gained[k], 9), combos[k].sum()))
    return {t: float(v) for t, v in zip(names, combos[best])}, float(ok[best]), float(gained[best])


def leave_photo_out(ex: dict[str, np.ndarray], pred: np.ndarray, step: str, share: float) -> tuple[float, float]:
    """How per-tool margins chosen without one photo do on that photo, over every validation photo: the share of
    cases at least the safe tool and the mean dB over it (an estimate of how the choice itself generalises)."""
    sel = ex["step"] == step
    ok = gained = n = 0.0
    for ph in np.unique(ex["photo"][sel]):
        rest = {k: v[ex["photo"] != ph] for k, v in ex.items()}
        one = {k: v[ex["photo"] == ph] for k, v in ex.items()}
        margins, _, _ = choose_tool_margins(rest, pred[ex["photo"] != ph], step, share)
        cases = len(np.unique(one["case"][one["step"] == step]))
        if not cases:
            continue
        s, g = harmless(one, pred[ex["photo"] == ph], step, margins)
        ok, gained, n = ok + s * cases, gained + g * cases, n + cases
    return ok / n, gained / n


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


def ship_restoration_margin(model: dict, step_model: dict, ex: dict[str, np.ndarray], pred: np.ndarray, step: str,
                            share: float, record: dict) -> dict:
    """Choose ``step``'s do-no-harm margin for the predictions ``pred`` (:func:`choose_margin` over
    :func:`harmless_restoration`), set it in ``step_model`` and record it with ``record`` in ``model["validation"]``;
    returns that record."""
    margin, ok, kept, table = choose_margin(lambda m: harmless_restoration(ex, pred, step, m), share)
    step_model |= {"safe_tool": None, "safe_margin_db": float(margin)}
    model.setdefault("validation", {})[step] = record | {
        "safe_margin_db": float(margin), "at_least_doing_nothing": ok, "at_least_doing_nothing_without_margin": table[0][1],
        "mean_db_kept": kept, "mean_db_kept_without_margin": table[0][2]}
    return model["validation"][step]


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
    steps = sorted(s for s in set(ex["step"]) if not is_sr_step(str(s)) and s in model["steps"])
    pred = predictions({s: model["steps"][s] for s in steps}, ex)
    print("| step | validation cases | decision ≥ doing nothing (no margin → margin) | margin (dB) | mean dB kept |")
    print("|---|---|---|---|---|")
    for step in steps:
        v = ship_restoration_margin(model, model["steps"][step], ex, pred, step, share,
                                    {"cases": int(len(np.unique(ex["case"][ex["step"] == step])))})
        print(f"| {step} | {v['cases']} | {100 * v['at_least_doing_nothing_without_margin']:.0f} % → "
              f"{100 * v['at_least_doing_nothing']:.0f} % | {v['safe_margin_db']:.2f} | "
              f"{v['mean_db_kept_without_margin']:+.2f} → {v['mean_db_kept']:+.2f} |")
    out.write_text(json.dumps(model, indent=1))
    print(f"wrote {out}")


def refit_sr(out: Path, side: int, fit_cache: str, val_cache: str, share: float, per_tool: bool = False) -> None:
    """Refit the SR steps (see the module docstring) and write them into the model file ``out``. The per-tool
    margins are measured and reported either way, and shipped only with ``per_tool``: chosen on these SR data
    (6 blocky cases of 84) they passed (96 % ≥ Lanczos), but the end-to-end validation benchmark
    (``benchmarks/realworld.py``, JPEG q 30–75) showed SRMD at margin 0 losing to Lanczos on JPEG (≥ Lanczos
    100 → 58 %) and sensor+JPEG (75 → 42 %)."""
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
        tool_margins, tok, tgained = choose_tool_margins(ex, pred, step, share)
        lopo = leave_photo_out(ex, pred, step, share)
        m |= {"safe_tool": SAFE_TOOL[step], "safe_margin_db": margin}
        if per_tool:
            m["tool_margins_db"] = tool_margins
        report[step] |= {"safe_margin_db": margin, "at_least_safe_uniform": ok, "db_over_safe_uniform": gained,
                         "at_least_safe_without_margin": table[0][1], "tool_margins_db": tool_margins,
                         "at_least_safe": tok, "db_over_safe": tgained,
                         "at_least_safe_leave_photo_out": lopo[0], "db_over_safe_leave_photo_out": lopo[1]}
        model["steps"][step] = m
        model.get("cross_validation", {}).pop(step, None)  # the in-sample CV of the model replaced
        model.setdefault("validation", {})[step] = report[step]
        log(f"{step}: uniform margin {margin} dB, per tool {tool_margins}; (margin, share ≥ safe, dB over safe): "
            + ", ".join(f"({a:.2f}, {b:.2f}, {c:+.2f})" for a, b, c in table[::5]))
    model["pool"] = {"fit_photos": int(fit_data["photo"].max() + 1), "validation_photos": int(val_data["photo"].max() + 1),
                     "side": side, "rows": int(len(fit_data["gain"])), "steps": sorted(models),
                     "none_rows_excluded": int(np.sum(fit_data["tool"] == NONE_TOOL))}
    out.write_text(json.dumps(model, indent=1))
    print("| step | validation cases | agreement | loss vs oracle (dB) | margin per tool (dB) | pick ≥ Lanczos: no margin"
          " → uniform → per tool (leave-photo-out) | dB over Lanczos: uniform → per tool (leave-photo-out) |")
    print("|---|---|---|---|---|---|---|")
    for step in sorted(models):
        r = report[step]
        per_tool = ", ".join(f"{t.split('_')[1]} {v:.2f}" for t, v in r["tool_margins_db"].items())
        print(f"| {step} | {r['cases']} | {100 * r['agreement']:.0f} % | {r['loss_db']:.2f} | {per_tool} | "
              f"{100 * r['at_least_safe_without_margin']:.0f} % → {100 * r['at_least_safe_uniform']:.0f} % → "
              f"{100 * r['at_least_safe']:.0f} % ({100 * r['at_least_safe_leave_photo_out']:.0f} %) | "
              f"{r['db_over_safe_uniform']:+.2f} → {r['db_over_safe']:+.2f} ({r['db_over_safe_leave_photo_out']:+.2f}) |")
    print(f"wrote {out}")


KEEP_SHIPPED: tuple[str, ...] = ("denoising",)
"""Restoration steps whose shipped model the pool refit does not replace. Denoising: measured as the runtime
scores (SURE only where the input's noise is white), the shipped model keeps +2.76 dB on the validation split's
realistic cases and the refit +2.82 (+2.85 with SURE fitted on the white-noise cases only): no clear gain, and it
loses on Bayer sensor noise (+4.02 → +3.75 dB, MAXIM picked in 11 → 8 of 24 cases, where MAXIM is best in 19)."""


def refit_restoration(out: Path, fit_data: dict[str, np.ndarray], val_data: dict[str, np.ndarray], share: float) -> None:
    """Refit every restoration step of ``fit_data`` (``restoration_dataset`` of the fit split) but
    :data:`KEEP_SHIPPED`, choose its do-no-harm margin on ``val_data`` (validation split) as
    :func:`restoration_margins` does, print the shipped models against the new ones on the validation cases, and
    write the new steps into the model file ``out``. Fitted without the SURE ratio (the data have one for every
    denoising case, the runtime only for white noise)."""
    model = json.loads(out.read_text())
    no_sure = lambda d: d | {"sure": np.full(len(d["gain"]), np.nan)}  # noqa: E731
    steps = sorted({str(t) for t in np.unique(fit_data["step"])} - set(KEEP_SHIPPED))
    keep = np.isin(fit_data["step"], steps)
    new = fit_all(no_sure({k: v[keep] for k, v in fit_data.items()}))
    ex = experts_only(no_sure(val_data))
    old_pred = predictions({s: model["steps"][s] for s in steps if s in model["steps"]}, ex)
    new_pred = predictions(new, ex)
    old_rep, new_rep = evaluate(ex, old_pred), evaluate(ex, new_pred)
    print("| step | validation cases (false alarms) | agreement: shipped → refit | dB lost vs oracle | "
          "decision ≥ doing nothing: shipped (its margin) → refit (margin) | mean dB kept |")
    print("|---|---|---|---|---|---|")
    for step in steps:
        old_margin = float(model["steps"].get(step, {}).get("safe_margin_db", 0.0))
        old_ok, old_kept = harmless_restoration(ex, old_pred, step, old_margin)
        o, r = old_rep[step], new_rep[step]
        model["steps"][step] = new[step]
        model.get("cross_validation", {}).pop(step, None)
        v = ship_restoration_margin(model, new[step], ex, new_pred, step, share,
                                    r | {"data": "pool: scoring/dataset.real_cases"})
        print(f"| {step} | {r['cases']} ({r['false_alarms']}) | {100 * o['agreement']:.0f} % → {100 * r['agreement']:.0f} % "
              f"| {o['loss_db']:.2f} → {r['loss_db']:.2f} | {100 * old_ok:.0f} % ({old_margin:.2f}) → "
              f"{100 * v['at_least_doing_nothing']:.0f} % ({v['safe_margin_db']:.2f}) | {old_kept:+.2f} → "
              f"{v['mean_db_kept']:+.2f} |")
    model["pool_restoration"] = {"fit_photos": int(len(np.unique(fit_data["photo"]))),
                                 "validation_photos": int(len(np.unique(val_data["photo"]))),
                                 "rows": int(np.sum(keep)), "steps": steps, "kept_shipped": list(KEEP_SHIPPED)}
    out.write_text(json.dumps(model, indent=1))
    print(f"wrote {out} (kept as shipped: {', '.join(KEEP_SHIPPED)})")
