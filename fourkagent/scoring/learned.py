"""The learned offline Q-MoE model: per step, a linear score of no-reference feature changes.

Features are taken relative to "doing nothing" (``dx = x − x_none``, where ``x_none`` are the features of
the step input itself, or its bicubic upscale for SR), expanded with their squares, and the model has no
intercept: doing nothing is predicted to gain exactly 0 dB, and each candidate is scored on its own.

:func:`fit` is a ridge regression of the PSNR gain. :func:`fit_rank`, what is shipped, adds a correction
trained on the candidates of the same case only, pairwise and weighted by the dB at stake (regressing the
gains of different images is a poor way to rank the candidates of one image); in 2-fold cross-validation by
photo it loses less PSNR than the regression alone (``benchmarks/qmoe.py``).
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
"""L2 penalty of the ranking fit (on standardised features)."""
LOGIT_DB = 0.5
"""dB of predicted gain difference per logit of the pairwise correction."""
PAIR_FLOOR_DB = 0.05
"""Added to every pair's weight: near-ties still say something about the ordering."""
Model = dict[str, Any]


def expand(dx: np.ndarray) -> np.ndarray:
    """Model inputs: the feature changes and their squares."""
    dx = np.atleast_2d(dx)
    return np.hstack([dx, dx * dx])


def fit(dx: np.ndarray, y: np.ndarray, ridge: float = RIDGE) -> Model:
    """Fit gains ``y`` (dB) on feature changes ``dx`` (rows: candidates)."""
    z = expand(dx)
    std = z.std(0) + 1e-6
    zs = z / std
    coef = np.linalg.solve(zs.T @ zs + ridge * np.eye(zs.shape[1]), zs.T @ y)
    return {"std": std.tolist(), "coef": coef.tolist(), "n": int(len(y)), "max_gain": float(np.max(y))}


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
    dx: np.ndarray, y: np.ndarray, case: np.ndarray, l2: float = RANK_L2, logit_db: float = LOGIT_DB
) -> Model:
    """The shipped model: the regression, plus a correction trained to order each case's candidates.

    ``dx`` feature changes, ``y`` gains in dB, ``case`` an id shared by the candidates of one case. The
    correction is a pairwise logistic model whose logits start from the regression's predicted difference
    (one logit per ``logit_db`` dB) and which maximises the dB-weighted likelihood of ordering each pair
    right; it is added back in dB. Like the regression it has no intercept: doing nothing still scores 0 dB.
    """
    model = fit(dx, y)
    z = expand(dx) / np.asarray(model["std"])
    base = z @ np.asarray(model["coef"])
    pairs = _pairs(np.hstack([z, base[:, None]]), y, case)
    if len(pairs[1]) == 0:
        return model
    d, w = pairs[0][:, :-1], pairs[1]
    coef = _logistic(d, w + PAIR_FLOOR_DB, l2, pairs[0][:, -1] / logit_db)
    return model | {"rank": (coef * logit_db).tolist(), "fit": "regression + pairwise correction"}


def predict(model: Model, dx: np.ndarray) -> np.ndarray:
    """Predicted PSNR gain (dB) of each candidate."""
    z = expand(dx) / np.asarray(model["std"])
    gain = z @ np.asarray(model["coef"])
    if "rank" in model:
        gain = gain + z @ np.asarray(model["rank"])
    # softly bounded by the best gain seen in training (order kept): candidates unlike the training experts
    # (e.g. GAN outputs) would otherwise extrapolate to any Q
    top = float(model.get("max_gain", np.inf))
    if np.isfinite(top) and top > 0:
        gain = np.where(gain > 0, top * np.tanh(gain / top), gain)
    return gain


@lru_cache(maxsize=1)
def shipped_model() -> dict[str, Any]:
    """The model shipped in ``fourkagent/data/qmoe_model.json`` ({} when absent)."""
    try:
        text = resources.files("fourkagent.data").joinpath("qmoe_model.json").read_text()
    except FileNotFoundError:
        return {}
    return json.loads(text)
