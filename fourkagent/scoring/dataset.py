"""Ground-truth data for the learned Q-MoE: every expert on synthetic degradations of free real photos.

Used by ``training/fit_qmoe.py`` (fit the shipped model) and ``benchmarks/qmoe.py`` (measure selection
accuracy with cross-validation by photo, so no photo is scored by a model that saw it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from fourkagent import degrade
from fourkagent.errors import FourKError
from fourkagent.imaging import Image, psnr
from fourkagent.planning.agenda import DEGRADATION_TO_STEP
from fourkagent.scoring.features import NAMES, features, reference
from fourkagent.scoring.learned import fit_rank, predict
from fourkagent.scoring.qmoe import DEFAULT_THRESHOLD, GAIN_SCALE_DB
from fourkagent.tools.base import ToolRegistry

KINDS = ["noise", "motion blur", "defocus blur", "haze", "rain", "dark", "jpeg compression artifact"]
TIE_DB = 0.05
"""A pick within this many dB of the best candidate counts as agreeing with the oracle."""
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
        out.append(("super-resolution", 4, degrade.downscale(view, 4), view, True))
        out.append(("super-resolution_2x", 2, degrade.downscale(view, 2), view, True))
    return out


NONE_TOOL = "(none)"
"""The "do nothing" row of every case (the step input, or its bicubic upscale for SR)."""


def _add(rows: dict[str, list], photo: int, step: str, case: int, present: bool, tool: str, x: np.ndarray,
         gain: float) -> None:
    for key, val in (("photo", photo), ("step", step), ("case", case), ("present", present), ("tool", tool), ("x", x),
                     ("gain", gain)):
        rows[key].append(val)


def generate(photos: dict[str, Image], registry: ToolRegistry, log: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """One row per (photo, case, expert): photo index, step, case id, degradation present, tool, features,
    PSNR gain (dB)."""
    rows: dict[str, list] = {"photo": [], "step": [], "case": [], "present": [], "tool": [], "x": [], "gain": []}
    case_id = 0
    for pi, (name, clean) in enumerate(photos.items()):
        t0 = time.perf_counter()
        for step, scale, inp, truth, present in cases(clean):
            cat = "super-resolution" if step.startswith("super-resolution") else step
            # SR: the PSNR oracle is only meaningful for fidelity experts (GAN experts serve perception)
            tools = registry.for_step(cat, scale, "fidelity" if scale > 1 else None)
            if len(tools) < 2:
                continue
            ref = reference(inp, step)
            base_psnr = min(psnr(ref.base, truth), MAX_PSNR)  # finite for the clean false alarm
            _add(rows, pi, step, case_id, present, NONE_TOOL, features(ref.base, ref), 0.0)  # doing nothing: 0 dB
            for tool in tools:
                try:
                    out = tool(inp)
                except FourKError:
                    continue
                gain = float(np.clip(min(psnr(out, truth), MAX_PSNR) - base_psnr, -15, 15))
                _add(rows, pi, step, case_id, present, tool.name, features(out, ref), gain)
            case_id += 1
        if log:
            log(f"  {name}: {time.perf_counter() - t0:.0f} s")
    return {k: np.asarray(v) for k, v in rows.items()}


def experts_only(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The expert rows, with ``dx`` = features minus the case's "doing nothing" features."""
    none = {int(c): x for c, t, x in zip(data["case"], data["tool"], data["x"]) if t == NONE_TOOL}
    keep = data["tool"] != NONE_TOOL
    out = {k: v[keep] for k, v in data.items()}
    out["dx"] = out["x"] - np.stack([none[int(c)] for c in out["case"]])
    return out


def fit_all(data: dict[str, np.ndarray]) -> dict[str, dict]:
    """One model per step, on every photo."""
    ex = experts_only(data)
    out = {}
    for step in sorted(set(ex["step"])):
        m = ex["step"] == step
        out[str(step)] = fit_rank(ex["dx"][m], ex["gain"][m], ex["case"][m])
    return out


def cross_validate(data: dict[str, np.ndarray], folds: int = 2) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Expert rows and their predicted gains, each photo's from a model fitted without that photo."""
    ex = experts_only(data)
    fold = ex["photo"] % folds
    pred = np.zeros(len(ex["gain"]))
    for f in range(folds):
        for step in sorted(set(ex["step"])):
            train = (fold != f) & (ex["step"] == step)
            test = (fold == f) & (ex["step"] == step)
            if train.sum() > 2 * len(NAMES) and test.any():
                model = fit_rank(ex["dx"][train], ex["gain"][train], ex["case"][train])
                pred[test] = predict(model, ex["dx"][test])
    return ex, pred


def evaluate(data: dict[str, np.ndarray], pred: np.ndarray) -> dict[str, dict[str, float]]:
    """Per step, how the scores in ``pred`` choose.

    Selection (cases with the degradation present): agreement of the best-scored expert with the PSNR
    oracle, mean and max dB lost. Decision (every case, doing nothing included): the best-scored expert is
    kept when its predicted gain reaches the rollback threshold, else the input is kept; ``decision_loss_db``
    is the dB lost against the best option, ``false_alarms_safe`` the share of false-alarm cases where the
    decision did not lose more than ``TIE_DB`` (``None`` where the data has no such case).
    """
    out: dict[str, dict[str, float]] = {}
    experts = data["tool"] != NONE_TOOL
    present = data["present"].astype(bool) if "present" in data else np.ones(len(experts), bool)
    for step in sorted(set(data["step"])):
        agree, loss, decision, safe = [], [], [], []
        for case in sorted(set(data["case"][data["step"] == step])):
            m = (data["case"] == case) & experts
            gains, p = data["gain"][m], pred[m]
            pick = int(np.argmax(p))
            kept = gains[pick] if p[pick] >= THRESHOLD_GAIN_DB else 0.0
            lost = max(gains.max(), 0.0) - kept
            decision.append(lost)
            if present[m].all():
                agree.append(gains[pick] >= gains.max() - TIE_DB)
                loss.append(gains.max() - gains[pick])
            else:
                safe.append(lost <= TIE_DB)
        out[str(step)] = {"cases": len(agree), "agreement": float(np.mean(agree)) if agree else None,
                          "loss_db": float(np.mean(loss)) if loss else None,
                          "max_loss_db": float(np.max(loss)) if loss else None,
                          "decision_loss_db": float(np.mean(decision)), "false_alarms": len(safe),
                          "false_alarms_safe": float(np.mean(safe)) if safe else None}
    return out
