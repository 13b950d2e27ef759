"""The learned offline Q-MoE model: per step, a ridge regression on no-reference feature changes.

Features are taken relative to "doing nothing" (``dx = x − x_none``, where ``x_none`` are the features of
the step input itself, or its bicubic upscale for SR), expanded with their squares, and the model has no
intercept: doing nothing is predicted to gain exactly 0 dB, and each candidate is scored on its own.
Fitted by ``training/fit_qmoe.py`` on synthetic degradations of free real photos and shipped as JSON.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

RIDGE = 100.0
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
    return {"std": std.tolist(), "coef": coef.tolist(), "n": int(len(y))}


def predict(model: Model, dx: np.ndarray) -> np.ndarray:
    """Predicted PSNR gain (dB) of each candidate."""
    return (expand(dx) / np.asarray(model["std"])) @ np.asarray(model["coef"])


@lru_cache(maxsize=1)
def shipped_model() -> dict[str, Any]:
    """The model shipped in ``fourkagent/data/qmoe_model.json`` ({} when absent)."""
    try:
        text = resources.files("fourkagent.data").joinpath("qmoe_model.json").read_text()
    except FileNotFoundError:
        return {}
    return json.loads(text)
