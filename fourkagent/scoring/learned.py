"""The learned offline Q-MoE model: per step, a score of no-reference feature changes.

Features are taken relative to "doing nothing" (``dx = x − x_none``, where ``x_none`` are the features of
the step input itself, or its bicubic upscale for SR), clipped to the range seen in training, expanded with
their squares and, optionally, their products with measurements of the step input (``s``, e.g. how dark
the input is: the same change helps a dark input and hurts a normal one). The model has no intercept:
doing nothing is predicted to gain exactly 0 dB, and each candidate is scored on its own.

:func:`fit` is a ridge regression of the PSNR gain. :func:`fit_rank` adds a correction trained on the
candidates of the same case only, pairwise and weighted by the dB at stake (regressing the gains of
different images is a poor way to rank the candidates of one image). :func:`fit_step`, what is shipped,
chooses the penalties of both per step by an inner cross-validation by photo on the training photos, then
(leaving one training photo out) whether to blend in an external gain estimate (``anchor``: SURE's for
denoising) and a tool prior (the tool's mean training gain, or a shrunk per-tool bias; tools the fit never
saw get none).
Fitted by ``training/fit_qmoe.py`` on synthetic degradations of free real photos and shipped as JSON.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

RIDGE = 100.0
RANK_L2 = 10.0
"""L2 penalty of the ranking fit (on standardised features; pair weights have mean 1)."""
LOGIT_DB = 0.5
"""dB of predicted gain difference per logit of the pairwise correction."""
PAIR_FLOOR_DB = 0.05
"""Added to every pair's weight: near-ties still say something about the ordering."""
GRID: tuple[dict[str, float], ...] = tuple(
    {"ridge": r, "l2": l2, "logit_db": ld} for r in (30.0, 100.0) for l2 in (0.01, 0.03, 0.1, 0.3, 1.0) for ld in (0.5, 1.0, 2.0)
)
"""Penalties :func:`fit_step` chooses from."""
Model = dict[str, Any]


CAP_ORDER_DB = 0.5
"""Range above the model's gain bound in which candidates of tools it was trained on keep their predicted order
(a hard bound made them ties, decided by registry order: 0.74 → 0.64 dB lost on defocus in photo-grouped CV)."""
CLIP_MARGIN = 0.01
"""Changes beyond the training range are squashed into this fraction of the range past it (order kept)."""


def _soft_clip(dx: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Identity inside ``[lo, hi]``; outside, a tanh approach to ``CLIP_MARGIN`` of the range beyond it."""
    w = CLIP_MARGIN * (hi - lo) + 1e-9
    above, below = dx > hi, dx < lo
    out = np.where(above, hi + w * np.tanh((dx - hi) / w), dx)
    return np.where(below, lo - w * np.tanh((lo - dx) / w), out)


def expand(dx: np.ndarray, s: np.ndarray | None = None, model: Model | None = None) -> np.ndarray:
    """Model inputs: the feature changes (softly clipped to the model's training range), their squares and, when the
    model uses the input's state, the products of the changes with it."""
    dx = np.atleast_2d(np.asarray(dx, np.float64))
    if model is not None and "lo" in model:
        dx = _soft_clip(dx, np.asarray(model["lo"]), np.asarray(model["hi"]))
    if model is not None and model.get("cols") is not None:
        dx = dx[:, model["cols"]]
    parts = [dx, dx * dx]
    cols = (model or {}).get("state_cols")
    if cols and s is None:
        raise ValueError("this model's slopes depend on the step input's state: pass s")
    if cols:
        st = np.atleast_2d(np.asarray(s, np.float64))[:, cols]
        parts.append((dx[:, :, None] * st[:, None, :]).reshape(len(dx), -1))
    return np.hstack(parts)


def _spec(dx: np.ndarray, s: np.ndarray | None, state_cols: list[int] | None, cols: list[int] | None) -> Model:
    """The input description of a model: clip range of the changes, which of them and which state columns
    it uses."""
    spec: Model = {"lo": dx.min(0).tolist(), "hi": dx.max(0).tolist(), "cols": None if cols is None else list(cols)}
    if state_cols and s is not None:
        spec["state_cols"] = list(state_cols)
    return spec


def fit(dx: np.ndarray, y: np.ndarray, ridge: float = RIDGE, s: np.ndarray | None = None,
        state_cols: list[int] | None = None, cols: list[int] | None = None) -> Model:
    """Fit gains ``y`` (dB) on feature changes ``dx`` (rows: candidates; only columns ``cols`` when given),
    optionally with input state ``s`` (its columns ``state_cols``)."""
    spec = _spec(dx, s, state_cols, cols)
    z = expand(dx, s, spec)
    std = z.std(0) + 1e-6
    zs = z / std
    coef = np.linalg.solve(zs.T @ zs + ridge * np.eye(zs.shape[1]), zs.T @ y)
    return spec | {"std": std.tolist(), "coef": coef.tolist(), "n": int(len(y)), "max_gain": float(np.max(y))}


def _pairs(z: np.ndarray, y: np.ndarray, case: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Differences of every ordered pair of candidates of the same case, oriented so the better comes first,
    and the dB between them."""
    diffs, weights = [], []
    for c in np.unique(case):
        rows = np.flatnonzero(case == c)
        for a in range(len(rows)):
            for b in range(a + 1, len(rows)):
                i, j = rows[a], rows[b]
                if y[i] < y[j]:
                    i, j = j, i
                diffs.append(z[i] - z[j])
                weights.append(y[i] - y[j])
    if not diffs:
        return np.zeros((0, z.shape[1])), np.zeros(0)
    return np.asarray(diffs), np.asarray(weights)


def _logistic(d: np.ndarray, w: np.ndarray, l2: float, offset: np.ndarray, iters: int = 50) -> np.ndarray:
    """Weighted L2-regularised logistic regression without intercept (Newton's method) on P(first is better),
    with a fixed ``offset`` added to every pair's logit."""
    coef = np.zeros(d.shape[1])
    reg = l2 * np.eye(d.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(offset + d @ coef, -30, 30)))
        grad = d.T @ (w * (p - 1.0)) + l2 * coef
        hess = (d * (w * p * (1.0 - p))[:, None]).T @ d + reg
        step = np.linalg.solve(hess, grad)
        coef -= step
        if np.abs(step).max() < 1e-8:
            break
    return coef


def fit_rank(
    dx: np.ndarray, y: np.ndarray, case: np.ndarray, l2: float = RANK_L2, logit_db: float = LOGIT_DB,
    ridge: float = RIDGE, s: np.ndarray | None = None, state_cols: list[int] | None = None,
    cols: list[int] | None = None,
) -> Model:
    """The regression, plus a correction trained to order each case's candidates.

    ``dx`` feature changes, ``y`` gains in dB, ``case`` an id shared by the candidates of one case. The
    correction is a pairwise logistic model whose logits start from the regression's predicted difference
    (one logit per ``logit_db`` dB) and which maximises the dB-weighted likelihood of ordering each pair
    right (weights normalised to mean 1, so ``l2`` means the same for every step); it is added back in dB.
    Like the regression it has no intercept: doing nothing still scores 0 dB.
    """
    model = fit(dx, y, ridge, s, state_cols, cols)
    z = expand(dx, s, model) / np.asarray(model["std"])
    base = z @ np.asarray(model["coef"])
    pairs = _pairs(np.hstack([z, base[:, None]]), y, case)
    if len(pairs[1]) == 0:
        return model
    d, w = pairs[0][:, :-1], pairs[1] + PAIR_FLOOR_DB
    coef = _logistic(d, w / w.mean(), l2 * len(w), pairs[0][:, -1] / logit_db)
    return model | {"rank": (coef * logit_db).tolist(), "fit": "regression + pairwise correction",
                    "params": {"ridge": ridge, "l2": l2, "logit_db": logit_db}}


def _raw(model: Model, dx: np.ndarray, s: np.ndarray | None) -> np.ndarray:
    """The regression (plus pairwise correction) before the tool prior and the bound."""
    z = expand(dx, s, model) / np.asarray(model["std"])
    gain = z @ np.asarray(model["coef"])
    return gain + z @ np.asarray(model["rank"]) if "rank" in model else gain


def _apply_prior(prior: dict[str, Any], gain: np.ndarray, tools: np.ndarray | list[str] | None) -> np.ndarray:
    """``(1 − blend)·gain + blend·mean[tool] + bias[tool]`` for the tools the prior knows; others unchanged."""
    if tools is None:
        return gain
    blend, mean, bias = float(prior["blend"]), prior["mean"], prior["bias"]
    out = gain.copy()
    for i, t in enumerate(tools):
        if t in mean:
            out[i] = (1.0 - blend) * gain[i] + blend * mean[t] + bias.get(t, 0.0)
    return out


def _anchored(model: Model, gain: np.ndarray, anchor: np.ndarray | None) -> np.ndarray:
    """The gain blended with an external per-candidate estimate (``anchor``, dB) by the model's ``anchor_blend``;
    unchanged where the model has none or ``anchor`` is not given."""
    a = float(model.get("anchor_blend", 0.0))
    return gain if anchor is None or a == 0.0 else (1.0 - a) * gain + a * np.asarray(anchor, np.float64)


def predict(model: Model, dx: np.ndarray, s: np.ndarray | None = None,
            tools: np.ndarray | list[str] | None = None, anchor: np.ndarray | None = None) -> np.ndarray:
    """Predicted PSNR gain (dB) of each candidate (``s``: the step input's state, when the model uses it;
    ``tools``: the candidates' tool names, for the model's tool prior — unknown tools get none; ``anchor``: an
    external gain estimate such as SURE's, for models fitted with one)."""
    gain = _anchored(model, _raw(model, dx, s), anchor)
    if "prior" in model:
        gain = _apply_prior(model["prior"], gain, tools)
    # bounded by the best gain seen in training: candidates unlike the training experts (e.g. GAN outputs)
    # would otherwise extrapolate to any Q. Unknown tools past it are ties the model cannot order: the
    # registry order (the toolbox's preferred expert first) decides between them, as for any tie. Tools the
    # model was trained on keep their order past it, within ``CAP_ORDER_DB`` above it.
    top = float(model.get("max_gain", np.inf))
    if np.isfinite(top) and top > 0:
        over = np.maximum(gain - top, 0.0)
        known = np.isin(np.asarray(tools if tools is not None else [], dtype=str), model.get("tools", []))
        gain = np.minimum(gain, top)
        if known.shape == gain.shape:
            gain = gain + np.where(known, CAP_ORDER_DB * np.tanh(over / CAP_ORDER_DB), 0.0)
    return gain


def decide(gains: np.ndarray, pred: np.ndarray, keep_db: float) -> tuple[int, float]:
    """One case's decision: the best-predicted candidate, and the gain kept (its gain when its prediction
    reaches ``keep_db``, else 0 dB: the input is kept)."""
    i = int(np.argmax(pred))
    return i, float(gains[i]) if pred[i] >= keep_db else 0.0


def decision_loss(y: np.ndarray, case: np.ndarray, pred: np.ndarray, keep_db: float) -> float:
    """Mean dB lost per case by :func:`decide` against the best of the candidates and doing nothing."""
    lost = [max(float(y[m].max()), 0.0) - decide(y[m], pred[m], keep_db)[1] for m in (case == c for c in np.unique(case))]
    return float(np.mean(lost)) if lost else 0.0


PRIORS: tuple[dict[str, Any], ...] = (
    {"blend": 0.0, "shrink": None}, {"blend": 0.0, "shrink": 30.0},
    *({"blend": b, "shrink": None} for b in (0.25, 0.5, 0.75, 0.9, 1.0)),
)
"""Tool priors :func:`fit_step` chooses from (the first: none): a per-tool bias (the mean residual of the tool's
training rows, shrunk to 0 by ``shrink`` pseudo-rows), or a blend with the tool's mean training gain."""


ANCHOR_BLENDS: tuple[float, ...] = (0.5, 0.75, 0.9, 1.0)
"""Shares of an external gain estimate (``anchor``) :func:`fit_step` chooses from. At least half: the estimate
(SURE's) is unbiased where its assumptions hold, while the choice is made leaving one of a few photos out, which
dropped it altogether in one fold of the photo-grouped CV (denoising 0.41 dB lost; with a share ≥ 0.5: 0.11 dB)."""
PRIOR_MARGIN_DB = 0.05
"""A tool prior is only kept when it lowers the held-out decision loss by this much per photo (it overrides
the features for whole tools; without the margin it cost motion deblurring 0.15 dB and JPEG 0.05 dB in CV)."""


def tool_prior(model: Model, dx: np.ndarray, y: np.ndarray, tools: np.ndarray, s: np.ndarray | None,
               blend: float, shrink: float | None, anchor: np.ndarray | None = None) -> Model:
    """``model`` with a tool prior fitted on its training rows (``blend``/``shrink`` as in :data:`PRIORS`)."""
    names = sorted({str(t) for t in tools})
    mean = {t: float(np.mean(y[tools == t])) for t in names}
    mixed = _apply_prior({"blend": blend, "mean": mean, "bias": {}}, _anchored(model, _raw(model, dx, s), anchor), tools)
    bias = {} if shrink is None else {t: float(np.sum((y - mixed)[tools == t]) / (np.sum(tools == t) + shrink))
                                      for t in names}
    return model | {"prior": {"blend": blend, "shrink": shrink, "mean": mean, "bias": bias}}


def _with_extras(model: Model, dx: np.ndarray, y: np.ndarray, tools: np.ndarray | None, s: np.ndarray | None,
                 anchor: np.ndarray | None, anchor_blend: float, prior: dict[str, Any]) -> Model:
    """``model`` with an anchor share and (when ``prior`` is not the first of :data:`PRIORS`) a tool prior."""
    model = model | {"anchor_blend": anchor_blend} if anchor_blend else model
    return model if tools is None or prior is PRIORS[0] else tool_prior(model, dx, y, tools, s, anchor=anchor, **prior)


def _choose_extras(dx: np.ndarray, y: np.ndarray, case: np.ndarray, photo: np.ndarray, keep_db: float,
                   s: np.ndarray | None, params: dict[str, Any], tools: np.ndarray | None,
                   anchor: np.ndarray | None) -> tuple[float, dict[str, Any]]:
    """The anchor share and tool prior that lose least in a leave-one-photo-out cross-validation (the model's
    penalties fixed to ``params``; a finer split than the penalties' 2 folds, since these choices are few and
    decide whole tools)."""
    sub = (lambda a, m: None if a is None else a[m])  # noqa: E731
    blends = ANCHOR_BLENDS if anchor is not None else (0.0,)
    priors = PRIORS if tools is not None else PRIORS[:1]
    losses = np.zeros((len(blends), len(priors)))
    for p in np.unique(photo):
        t = photo == p
        m = fit_rank(dx[~t], y[~t], case[~t], s=sub(s, ~t), **params)
        for i, a in enumerate(blends):
            for j, prior in enumerate(priors):
                fm = _with_extras(m, dx[~t], y[~t], sub(tools, ~t), sub(s, ~t), sub(anchor, ~t), a, prior)
                pred = predict(fm, dx[t], sub(s, t), sub(tools, t), sub(anchor, t))
                losses[i, j] += decision_loss(y[t], case[t], pred, keep_db)
    i, j = np.unravel_index(int(np.argmin(losses)), losses.shape)  # first of equals: no anchor, no prior
    plain = int(np.argmin(losses[:, 0]))  # the anchor share without a tool prior
    if losses[i, j] > losses[plain, 0] - PRIOR_MARGIN_DB * len(np.unique(photo)):
        return blends[plain], PRIORS[0]  # the tool prior is not clearly better: none
    return blends[i], priors[j]


def fit_step(dx: np.ndarray, y: np.ndarray, case: np.ndarray, photo: np.ndarray, keep_db: float,
             s: np.ndarray | None = None, state_cols: list[int] | None = None,
             subsets: tuple[list[int] | None, ...] = (None,), tools: np.ndarray | None = None,
             anchor: np.ndarray | None = None) -> Model:
    """:func:`fit_rank` with the penalties of :data:`GRID` and the feature columns of ``subsets`` (``None``: all)
    that lose least in a 2-fold
    cross-validation by ``photo`` on these rows (decision loss, doing nothing included, at threshold
    ``keep_db``); then, given the rows' ``tools`` and an external gain estimate ``anchor`` (dB, e.g. SURE's),
    the tool prior of :data:`PRIORS` and anchor share of :data:`ANCHOR_BLENDS` chosen leaving one photo out."""
    photos = np.unique(photo)
    folds = [np.isin(photo, photos[k::2]) for k in range(2)] if len(photos) >= 4 else []
    sub = (lambda a, m: None if a is None else a[m])  # noqa: E731
    options = [p | {"cols": c, "state_cols": state_cols} for c in subsets for p in GRID]
    best, best_loss = options[0], np.inf
    for params in options if folds else ():
        loss = 0.0
        for test in folds:
            model = fit_rank(dx[~test], y[~test], case[~test], s=sub(s, ~test), **params)
            loss += decision_loss(y[test], case[test], predict(model, dx[test], sub(s, test)), keep_db)
        if loss < best_loss - 1e-9:
            best, best_loss = params, loss
    final = fit_rank(dx, y, case, s=s, **best)
    if (tools is None and anchor is None) or not folds:
        return final
    anchor_blend, prior = _choose_extras(dx, y, case, photo, keep_db, s, best, tools, anchor)
    return _with_extras(final, dx, y, tools, s, anchor, anchor_blend, prior)


@lru_cache(maxsize=1)
def shipped_model() -> dict[str, Any]:
    """The model shipped in ``fourkagent/data/qmoe_model.json`` ({} when absent)."""
    try:
        text = resources.files("fourkagent.data").joinpath("qmoe_model.json").read_text()
    except FileNotFoundError:
        return {}
    return json.loads(text)
