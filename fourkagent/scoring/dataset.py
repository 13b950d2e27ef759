"""Ground-truth data for the learned Q-MoE: every expert on synthetic degradations of free real photos.

Used by ``training/fit_qmoe.py`` (fit the shipped model) and ``benchmarks/qmoe.py`` (measure selection
accuracy with cross-validation by photo, so no photo is scored by a model that saw it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fourkagent import degrade
from fourkagent.degrade_real import LR_FAMILIES, real_degraded, small_degraded
from fourkagent.errors import FourKError
from fourkagent.imaging import Image, psnr
from fourkagent.scoring.features import NAMES, STATE, features, reference, state, sure_feature, sure_gain_db
from fourkagent.scoring.learned import decide, fit_step, predict
from fourkagent.scoring.qmoe import DEFAULT_THRESHOLD, GAIN_SCALE_DB
from fourkagent.scoring.sure import SURE_STEPS, probe_sigma, sure_ratio
from fourkagent.tools.base import ToolRegistry
from fourkagent.vocabulary import (
    DEGRADATION_TO_STEP,
    RESTORABLE_KINDS,
    SR2,
    SR4,
    STEP_TO_DEGRADATION,
    is_sr_step,
    step_category,
)

KINDS = RESTORABLE_KINDS
"""The kinds with a restoration step, degraded by :func:`cases` (the name ``benchmarks/qmoe.py`` imports)."""
TIE_DB = 0.05
"""A pick within this many dB of the best candidate counts as agreeing with the oracle."""
TIE_LPIPS = 0.005
"""A pick within this LPIPS distance of the lowest counts as agreeing with the LPIPS oracle."""
THRESHOLD_GAIN_DB = float(GAIN_SCALE_DB * np.arctanh(2.0 * DEFAULT_THRESHOLD - 1.0))
"""The predicted gain at which Q meets the default rollback threshold (about −0.2 dB)."""


MAX_PSNR = 60.0
"""PSNR of an image identical to the truth, for gains (an exact copy would be infinite)."""
FALSE_ALARM_LEVEL = 3
"""Severity of the other degradation in a false-alarm case."""


def cases(clean: Image, levels: tuple[int, ...] = (1, 2, 3, 4, 5)) -> list[tuple[str, int, Image, Image, bool]]:
    """(step, scale, input, ground truth, degradation present) for one photo.

    Besides every degradation at every level, each restoration step gets a false alarm: the photo with
    the next kind's degradation instead of its own, where doing nothing is right. (The clean photo is not
    used: against a truth identical to the input every change scores the −15 dB floor, which swamps the fit.)
    SR cases: ×4 and ×2 of three rotated views.
    """
    out = [(DEGRADATION_TO_STEP[k], 1, degrade.apply(clean, k, lv, seed=lv), clean, True) for k in KINDS for lv in levels]
    for i, k in enumerate(KINDS):
        other = KINDS[(i + 1) % len(KINDS)]
        out.append((DEGRADATION_TO_STEP[k], 1, degrade.apply(clean, other, FALSE_ALARM_LEVEL, seed=7), clean, False))
    for k in range(3):
        view = np.ascontiguousarray(np.rot90(clean, k))
        out.append((SR4, 4, degrade.downscale(view, 4), view, True))
        out.append((SR2, 2, degrade.downscale(view, 2), view, True))
    return out


SR_X2_FAMILIES: tuple[str, ...] = ("clean", "noise", "jpeg", "sensor+jpeg")
"""Small-image degradations of the ×2 SR cases (×4 cases: every one of ``degrade_real.LR_FAMILIES``)."""


def sr_cases(clean: Image, seed: int = 0) -> list[tuple[str, int, Image, Image, bool]]:
    """Realistic SR cases of one photo: ×4 of the photo made small and degraded in every way of
    ``degrade_real.LR_FAMILIES`` (clean, Gaussian or sensor noise, JPEG, blur, and two pairs), ×2 of
    :data:`SR_X2_FAMILIES`, strengths drawn from the ``training`` ranges (wider than the benchmark's). The SR
    scorer learns here that amplified noise and blocks are losses: fitted on clean downscales only, it
    preferred the sharpest expert on noisy inputs (−2.4 dB against Lanczos on a σ 10 face)."""
    out = []
    for scale, fams in ((4, LR_FAMILIES), (2, SR_X2_FAMILIES)):
        for i, fam in enumerate(fams):
            s = 1000 * seed + 10 * scale + i
            lr, _ = small_degraded(clean, fam, scale, np.random.default_rng(s), s, ranges="training")
            h, w = lr.shape[:2]
            out.append((SR4 if scale == 4 else SR2, scale, lr,
                        clean[: h * scale, : w * scale], True))
    return out


REAL_CASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "denoising": (("noise", "noise", "sensor", "sensor", "sensor+jpeg", "blur+noise"), ("mild", "jpeg", "blur")),
    "jpeg compression artifact removal": (("jpeg", "jpeg", "sensor+jpeg"), ("mild", "sensor")),
    "defocus deblurring": (("blur", "blur", "blur+noise"), ("mild", "sensor")),
    "motion deblurring": (("shake", "shake"), ("mild", "blur")),
    "dehazing": (("haze", "haze"), ("mild", "sensor", "jpeg")),
    "deraining": (("rain", "rain"), ("mild", "sensor", "jpeg", "noise")),
    "brightening": (("dark", "dark"), ("mild", "sensor")),
}
"""Per restoration step, the realistic degradations (``degrade_real.real_degraded``) it is fitted to undo, and
its false alarms: inputs with another degradation or none (``mild``: a good camera's file), where the right
decision is mostly to do nothing — a naturally misty landscape "dehazed" lost 12–17 dB in the end-to-end
validation benchmark with models fitted on textbook degradations only. Deraining's alarms include Gaussian noise:
perception reported rain on noisy small inputs, and the deraining step derained 2 such test cases at −3 to −4.5 dB."""


def real_cases(clean: Image, seed: int = 0) -> list[tuple[str, int, Image, Image, bool]]:
    """Realistic restoration cases of one photo (:data:`REAL_CASES`), at the photo's size, truth = the photo."""
    out = []
    for si, (step, (present, alarms)) in enumerate(REAL_CASES.items()):
        for j, kind in enumerate(present + alarms):
            s = 1000 * seed + 40 * si + j
            out.append((step, 1, real_degraded(clean, kind, np.random.default_rng(s), s), clean, j < len(present)))
    return out


NONE_TOOL = "(none)"
"""The "do nothing" row of every case (the step input, or its bicubic upscale for SR)."""


COLUMNS = ("photo", "step", "case", "present", "tool", "x", "gain", "s", "sure", "lpips")
Distance = Callable[[Image, Image], float]
"""``(image, truth) -> perceptual distance`` (LPIPS when its weights are on disk)."""


def _add(rows: dict[str, list], *values: object) -> None:
    for key, val in zip(COLUMNS, values, strict=True):
        rows[key].append(val)


CaseMaker = Callable[[Image, int], list[tuple[str, int, Image, Image, bool]]]
"""``(photo, photo index) -> cases`` (:func:`cases`, :func:`sr_cases`)."""


def generate(photos: dict[str, Image], registry: ToolRegistry, log: Callable[[str], None] | None = None,
             distance: Distance | None = None, make_cases: CaseMaker = lambda clean, _: cases(clean),
             preference: str = "fidelity") -> dict[str, np.ndarray]:
    """One row per (photo, case, expert): photo index, step, case id, degradation present, tool, features,
    PSNR gain (dB), the step input's state (``features.STATE``), for SURE steps the candidate's SURE ratio
    (``scoring/sure.py``; 1 for doing nothing, NaN elsewhere) and its ``distance`` to the truth (NaN without one).
    ``make_cases``: the cases of each photo (default :func:`cases`); ``preference``: whose SR experts run
    (fidelity: the PSNR oracle is only meaningful for them; perception: the GAN experts, judged by ``distance``)."""
    rows: dict[str, list] = {k: [] for k in COLUMNS}
    dist = distance or (lambda img, truth: np.nan)
    case_id = 0
    for pi, (name, clean) in enumerate(photos.items()):
        t0 = time.perf_counter()
        for step, scale, inp, truth, present in make_cases(clean, pi):
            tools = registry.for_step(step_category(step), scale, preference if scale > 1 else None)
            if len(tools) < 2:
                continue
            ref = reference(inp, step)
            st = state(ref)
            base_psnr = min(psnr(ref.base, truth), MAX_PSNR)  # finite for the clean false alarm
            sigma = probe_sigma(inp) if step in SURE_STEPS else None
            none_sure = 1.0 if sigma is not None else np.nan
            _add(rows, pi, step, case_id, present, NONE_TOOL, features(ref.base, ref), 0.0, st, none_sure,  # 0 dB
                 dist(ref.base, truth))
            for tool in tools:
                try:
                    out = tool(inp)
                    sure = np.nan if sigma is None else sure_ratio(tool, inp, sigma, out=out)
                except FourKError:
                    continue
                gain = float(np.clip(min(psnr(out, truth), MAX_PSNR) - base_psnr, -15, 15))
                _add(rows, pi, step, case_id, present, tool.name, features(out, ref), gain, st, sure, dist(out, truth))
            case_id += 1
        if log:
            log(f"  {name}: {time.perf_counter() - t0:.0f} s")
    return {k: np.asarray(v) for k, v in rows.items()}


def corner_views(side: int) -> dict[str, Image]:
    """A second view of every photo: the top-left ``side`` crop of its centre crop at twice the side (other
    content than the centre crop where the photo is large enough)."""
    from fourkagent.photos import sample_photos

    return {k: np.ascontiguousarray(v[:side, :side]) for k, v in sample_photos(max_side=2 * side).items()}


def load_or_generate(side: int, cache: str = "", corner: bool = False,
                     log: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """The dataset of the photos' centre (or ``corner``) views at ``side`` px, from the npz ``cache`` when it
    exists (written otherwise; with LPIPS distances when its weights are on disk)."""
    from fourkagent.bench.metrics import fr_distance
    from fourkagent.photos import sample_photos
    from fourkagent.tools.registry import MAIN_REGISTRY

    if cache and Path(cache).exists():
        data = dict(np.load(cache, allow_pickle=False))
        # caches written with a since-dropped last state column (in_black_background): the current columns
        return data | {"s": data["s"][:, : len(STATE)]} if "s" in data else data
    photos = corner_views(side) if corner else sample_photos(max_side=side)
    data = generate(photos, MAIN_REGISTRY, log=log, distance=fr_distance("lpips"))
    if cache:
        np.savez(cache, **data)
    return data


def merge(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Two datasets of the same photos as one: ``b`` is an extra view (``view`` 1, used for training only by
    :func:`cross_validate`); its case ids follow ``a``'s."""
    a = a | {"view": a.get("view", np.zeros(len(a["gain"]), int))}
    b = b | {"case": b["case"] + int(a["case"].max()) + 1, "view": np.ones(len(b["gain"]), int)}
    return {k: np.concatenate([a[k], b[k]]) for k in a if k in b}


def experts_only(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The expert rows, with ``dx`` = features minus the case's "doing nothing" features."""
    none = {int(c): x for c, t, x in zip(data["case"], data["tool"], data["x"]) if t == NONE_TOOL}
    keep = data["tool"] != NONE_TOOL
    out = {k: v[keep] for k, v in data.items()}
    out["dx"] = out["x"] - np.stack([none[int(c)] for c in out["case"]])
    return out


SR_STATE: tuple[str, ...] = ("in_noise", "in_jpeg_compression_artifact", "in_defocus_blur")
"""What an SR step's slopes may depend on: the same sharpening helps a clean input and hurts a noisy, blocky
or soft one."""


def state_columns(step: str) -> list[int] | None:
    """The input measurements a step's slopes may depend on (``features.STATE``): for a restoration step the
    score of the degradation it targets (how strongly it is present) and the input's median luma; for SR
    :data:`SR_STATE` (its data have degraded small inputs, :func:`sr_cases`)."""
    if is_sr_step(step):
        return [STATE.index(n) for n in SR_STATE]
    if step not in STEP_TO_DEGRADATION:
        return None
    return [STATE.index("in_" + STEP_TO_DEGRADATION[step].replace(" ", "_")), STATE.index("in_median_luma")]


def _state(data: dict[str, np.ndarray], m: np.ndarray) -> tuple[np.ndarray | None, list[int] | None]:
    """The rows' input state and the columns used (none for data generated without it)."""
    cols = state_columns(str(data["step"][m][0])) if "s" in data else None
    return (data["s"][m], cols) if cols else (None, None)


STEP_FEATURES: dict[str, tuple[str, ...]] = {
    "brightening": ("d_dark", "d_median_luma", "d_contrast", "clipped", "d_saturation", "exposure_error",
                    "white_point_error"),
}
"""A smaller feature set per step that its fit may choose instead of all features (by inner CV)."""
NO_TOOL_PRIOR: tuple[str, ...] = ("motion deblurring",)
"""Steps fitted without a tool prior (photo-grouped CV: motion 0.34 → 0.49 dB with one; every other
restoration step gained or tied)."""


def uses_sure(data: dict[str, np.ndarray], m: np.ndarray) -> bool:
    """Whether rows ``m`` (one step) are of a SURE step and every one has its SURE ratio."""
    return "sure" in data and str(data["step"][m][0]) in SURE_STEPS and bool(np.isfinite(data["sure"][m]).all())


def step_inputs(data: dict[str, np.ndarray], m: np.ndarray, model: dict | None = None) -> np.ndarray:
    """The model inputs of expert rows ``m``: their feature changes, plus the SURE feature (doing nothing: 0)
    where the step uses it (``model``: as that model does; None: whenever the rows have ratios)."""
    with_sure = uses_sure(data, m) if model is None else "sure" in model.get("extra", ())
    dx = data["dx"][m]
    return np.hstack([dx, sure_feature(data["sure"][m])[:, None]]) if with_sure else dx


def fit_step_rows(ex: dict[str, np.ndarray], m: np.ndarray) -> dict:
    """The model of one step fitted on the expert rows ``m`` (penalties, feature set, input-state set and tool
    prior chosen by inner CV by photo). A SURE step's model also keeps a ``fallback`` without the SURE
    feature, for candidates scored without a ratio."""
    s, cols = _state(ex, m)
    step = str(ex["step"][m][0])
    subsets = (None, *([[NAMES.index(n) for n in STEP_FEATURES[step]]] if step in STEP_FEATURES else []))

    def fit(dx: np.ndarray, anchor: np.ndarray | None = None) -> dict:
        return fit_step(dx, ex["gain"][m], ex["case"][m], ex["photo"][m], THRESHOLD_GAIN_DB, s, cols, subsets,
                        tools=None if step in NO_TOOL_PRIOR else ex["tool"][m], anchor=anchor)

    # the tools it was trained on keep their order past the gain bound (learned.predict; not in the inner CV)
    known = {"tools": sorted({str(t) for t in ex["tool"][m]})}
    plain = fit(ex["dx"][m]) | known
    if not uses_sure(ex, m):
        return plain
    return fit(step_inputs(ex, m), sure_gain_db(ex["sure"][m])) | {"extra": ["sure"], "fallback": plain} | known


def predict_rows(model: dict, data: dict[str, np.ndarray], m: np.ndarray) -> np.ndarray:
    """A step model's predicted gains of expert rows ``m``."""
    anchor = sure_gain_db(data["sure"][m]) if "sure" in model.get("extra", ()) else None
    return predict(model, step_inputs(data, m, model), _state(data, m)[0], data["tool"][m], anchor)


def fit_all(data: dict[str, np.ndarray]) -> dict[str, dict]:
    """One model per step, on every photo."""
    ex = experts_only(data)
    return {str(step): fit_step_rows(ex, ex["step"] == step) for step in sorted(set(ex["step"]))}


def cross_validate(data: dict[str, np.ndarray], folds: int = 2) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Expert rows of the main view and their predicted gains, each photo's from a model fitted without that
    photo (on every view of the other photos)."""
    ex = experts_only(data)
    fold = ex["photo"] % folds
    main = ex["view"] == 0 if "view" in ex else np.ones(len(fold), bool)
    pred = np.zeros(len(ex["gain"]))
    for f in range(folds):
        for step in sorted(set(ex["step"])):
            train = (fold != f) & (ex["step"] == step)
            test = (fold == f) & (ex["step"] == step) & main
            if train.sum() > 2 * len(NAMES) and test.any():
                pred[test] = predict_rows(fit_step_rows(ex, train), ex, test)
    return {k: v[main] for k, v in ex.items()}, pred[main]


def evaluate(data: dict[str, np.ndarray], pred: np.ndarray) -> dict[str, dict[str, float]]:
    """Per step, how the scores in ``pred`` choose.

    Selection (cases with the degradation present): agreement of the best-scored expert with the PSNR
    oracle, mean and max dB lost. Decision (every case, doing nothing included): the best-scored expert is
    kept when its predicted gain reaches the rollback threshold, else the input is kept; ``decision_loss_db``
    is the dB lost against the best option, ``false_alarms_safe`` the share of false-alarm cases where the
    decision did not lose more than ``TIE_DB`` (``None`` where the data has no such case). Where the data
    holds LPIPS distances, ``lpips_agreement`` / ``lpips_loss`` compare the pick with the LPIPS oracle
    (``None`` without them).
    """
    out: dict[str, dict[str, float]] = {}
    experts = data["tool"] != NONE_TOOL
    present = data["present"].astype(bool) if "present" in data else np.ones(len(experts), bool)
    lpips = data.get("lpips", np.full(len(experts), np.nan))
    for step in sorted(set(data["step"])):
        agree, loss, decision, safe, lp_agree, lp_loss = [], [], [], [], [], []
        for case in sorted(set(data["case"][data["step"] == step])):
            m = (data["case"] == case) & experts
            gains, p = data["gain"][m], pred[m]
            pick, kept = decide(gains, p, THRESHOLD_GAIN_DB)
            lost = max(gains.max(), 0.0) - kept
            decision.append(lost)
            if present[m].all():
                agree.append(gains[pick] >= gains.max() - TIE_DB)
                loss.append(gains.max() - gains[pick])
                if np.isfinite(lpips[m]).all():
                    lp_agree.append(lpips[m][pick] <= lpips[m].min() + TIE_LPIPS)
                    lp_loss.append(lpips[m][pick] - lpips[m].min())
            else:
                safe.append(lost <= TIE_DB)
        out[str(step)] = {"cases": len(agree), "agreement": float(np.mean(agree)) if agree else None,
                          "loss_db": float(np.mean(loss)) if loss else None,
                          "max_loss_db": float(np.max(loss)) if loss else None,
                          "decision_loss_db": float(np.mean(decision)), "false_alarms": len(safe),
                          "false_alarms_safe": float(np.mean(safe)) if safe else None,
                          "lpips_agreement": float(np.mean(lp_agree)) if lp_agree else None,
                          "lpips_loss": float(np.mean(lp_loss)) if lp_loss else None}
    return out
