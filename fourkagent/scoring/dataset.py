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
from fourkagent.tools.base import ToolRegistry

KINDS = ["noise", "motion blur", "defocus blur", "haze", "rain", "dark", "jpeg compression artifact"]
TIE_DB = 0.05
"""A pick within this many dB of the best candidate counts as agreeing with the oracle."""


def cases(clean: Image, levels: tuple[int, ...] = (1, 2, 3, 4, 5)) -> list[tuple[str, int, Image, Image]]:
    """(step, scale, degraded input, ground truth) for one photo; SR cases on three rotated views."""
    out = [(DEGRADATION_TO_STEP[k], 1, degrade.apply(clean, k, lv, seed=lv), clean) for k in KINDS for lv in levels]
    for k in range(3):
        view = np.ascontiguousarray(np.rot90(clean, k))
        out.append(("super-resolution", 4, degrade.downscale(view, 4), view))
        out.append(("super-resolution_2x", 2, degrade.downscale(view, 2), view))
    return out


NONE_TOOL = "(none)"
"""The "do nothing" row of every case (the step input, or its bicubic upscale for SR)."""


def _add(rows: dict[str, list], photo: int, step: str, case: int, tool: str, x: np.ndarray, gain: float) -> None:
    for key, val in (("photo", photo), ("step", step), ("case", case), ("tool", tool), ("x", x), ("gain", gain)):
        rows[key].append(val)


def generate(photos: dict[str, Image], registry: ToolRegistry, log: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """One row per (photo, case, expert): photo index, step, case id, tool, features, PSNR gain (dB)."""
    rows: dict[str, list] = {"photo": [], "step": [], "case": [], "tool": [], "x": [], "gain": []}
    case_id = 0
    for pi, (name, clean) in enumerate(photos.items()):
        t0 = time.perf_counter()
        for step, scale, inp, truth in cases(clean):
            cat = "super-resolution" if step.startswith("super-resolution") else step
            # SR: the PSNR oracle is only meaningful for fidelity experts (GAN experts serve perception)
            tools = registry.for_step(cat, scale, "fidelity" if scale > 1 else None)
            if len(tools) < 2:
                continue
            ref = reference(inp, step)
            base_psnr = psnr(ref.base, truth)
            _add(rows, pi, step, case_id, NONE_TOOL, features(ref.base, ref), 0.0)  # doing nothing anchors Q at 0 dB
            for tool in tools:
                try:
                    out = tool(inp)
                except FourKError:
                    continue
                gain = float(np.clip(psnr(out, truth) - base_psnr, -15, 15))
                _add(rows, pi, step, case_id, tool.name, features(out, ref), gain)
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
                pred[test] = predict(model, ex["dx"][test], ex["case"][test])
    return ex, pred


def evaluate(data: dict[str, np.ndarray], pred: np.ndarray) -> dict[str, dict[str, float]]:
    """Per step: agreement of the argmax of ``pred`` over the experts with the PSNR oracle, mean and max dB lost."""
    out: dict[str, dict[str, float]] = {}
    experts = data["tool"] != NONE_TOOL
    for step in sorted(set(data["step"])):
        agree, loss = [], []
        for case in sorted(set(data["case"][data["step"] == step])):
            m = (data["case"] == case) & experts
            gains, p = data["gain"][m], pred[m]
            pick = int(np.argmax(p))
            agree.append(gains[pick] >= gains.max() - TIE_DB)
            loss.append(gains.max() - gains[pick])
        out[str(step)] = {"cases": len(agree), "agreement": float(np.mean(agree)),
                          "loss_db": float(np.mean(loss)), "max_loss_db": float(np.max(loss))}
    return out
