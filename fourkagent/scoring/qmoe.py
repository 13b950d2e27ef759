"""Q-MoE: score every expert's candidate for a step and decide whether the best one passes.

The offline scorer (default) predicts each candidate's PSNR gain over "doing nothing" (the step input,
or its bicubic upscale for SR) from no-reference features (``scoring/features.py``: NIQE change, every
detector's change, consistency with the input, removed-signal statistics, exposure) with the model of
``scoring/learned.py``, fitted by this project on synthetic degradations of free real photos; denoising
candidates also bring their SURE ratio (``scoring/sure.py``, measured by execute), and every candidate its
tool name (for the model's tool prior). The gain
maps to Q = 0.5 + 0.5·tanh(gain / 2 dB), so Q = 0.5 means "as good as doing nothing" at every step and
size, and one threshold means the same everywhere. Perception-priority profiles mix in NIQE naturalness.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fourkagent.imaging import Image
from fourkagent.scoring.features import (
    NAMES, STATE, Reference, features, input_noise_jpeg, reference, state, sure_feature, sure_gain_db,
)
from fourkagent.scoring.learned import predict, shipped_model

DEFAULT_THRESHOLD = 0.45
"""Rollback when the best candidate scores below this: a predicted loss of more than ~0.2 dB."""
GAIN_SCALE_DB = 2.0
NATURALNESS_WEIGHT = {"fidelity": 0.0, "perception": 0.3}
"""Share of NIQE naturalness in Q per profile priority (a step model may set its own ``naturalness_weight``:
the perceptual ×4 model, whose gain is an NLPD improvement, ``training/perceptual_sr.py``)."""

_SHOWN = ("d_niqe", "coarse_psnr", "removed_ratio", "exposure_error")
"""Raw features copied into each score's components for the report."""


@dataclass(frozen=True)
class Score:
    """A candidate's Q and the components it was computed from."""

    score: float
    components: dict[str, float] = field(default_factory=dict)


def gain_to_q(gain_db: float) -> float:
    """Map a predicted PSNR gain to Q in (0, 1); 0 dB → 0.5."""
    return float(0.5 + 0.5 * np.tanh(gain_db / GAIN_SCALE_DB))


def mixed_q(gain_db: float, d_niqe: float, naturalness_weight: float) -> tuple[float, float]:
    """Q from a predicted gain and the NIQE change (``d_niqe``, higher = more natural), and the naturalness term."""
    nat = float(np.clip(0.5 + d_niqe / 10.0, 0.0, 1.0))
    return (1.0 - naturalness_weight) * gain_to_q(gain_db) + naturalness_weight * nat, nat


def naturalness_weight(model: dict | None, priority: str) -> float:
    """The step model's own NIQE weight where it has one, else the priority's."""
    return float((model or {}).get("naturalness_weight", NATURALNESS_WEIGHT.get(priority, 0.0)))


def step_model(shipped: dict, step: str, priority: str) -> dict | None:
    """The model of ``step`` for a profile priority: perception-priority profiles use ``perception_steps`` where
    the file has one (the SR steps: ×4 predicts the perceptual distance NLPD to the truth instead of PSNR, fitted
    on the pool's perceptual experts; the PSNR models with their do-no-harm margins are for fidelity profiles),
    otherwise ``steps``."""
    if priority != "fidelity" and step in shipped.get("perception_steps", {}):
        return shipped["perception_steps"][step]
    return shipped.get("steps", {}).get(step)


class StepScorer:
    """Scores the candidates of one step together (the model ranks candidates against each other)."""

    def __init__(self, inp: Image, step: str, priority: str = "perception") -> None:
        """Measure the step input once."""
        self.step = step
        self.priority = priority
        self._inp = inp
        self._measures: tuple[float, float] | None = None
        self.ref: Reference = reference(inp, step)
        self._none = features(self.ref.base, self.ref)
        self._state = state(self.ref)
        self._x: list[np.ndarray] = []
        self._sure: list[float | None] = []
        self._tools: list[str | None] = []

    def add(self, out: Image, sure_ratio: float | None = None, tool: str | None = None) -> None:
        """Measure one candidate (call in candidate order; pixels are not kept). ``sure_ratio``: its SURE
        ratio (``scoring/sure.py``) where the step measures one; ``tool``: the expert's name, for the model's
        tool prior (unknown or None: no prior)."""
        self._x.append(features(out, self.ref))
        self._sure.append(None if sure_ratio is None or not np.isfinite(sure_ratio) else float(sure_ratio))
        self._tools.append(tool)

    def _gains(self, model: dict, x: np.ndarray) -> np.ndarray:
        """The model's predicted gains; candidates without a SURE ratio get its ``fallback`` (no SURE input)."""
        s = np.repeat(self._state[None], len(x), 0)
        dx = x - self._none
        if "sure" not in model.get("extra", ()):
            return predict(model, dx, s, self._tools)
        has = np.array([r is not None for r in self._sure])
        gains = predict(model["fallback"], dx, s, self._tools)
        if has.any():
            ratios = np.array([1.0 if r is None else r for r in self._sure])
            full = predict(model, np.hstack([dx, sure_feature(ratios)[:, None]]), s, self._tools, sure_gain_db(ratios))
            gains = np.where(has, full, gains)
        return gains

    def _head_start(self, model: dict | None) -> np.ndarray:
        """Do no harm: for a fidelity profile, the dB by which each candidate must beat the step's safe choice —
        the margin chosen on the validation split (``training/fit_qmoe_pool.py``; a smaller one for a clean
        input where the model has a ``clean_input`` rule, :meth:`_clean_input`, a larger one, ``blocky_margin_db``,
        for an input with a JPEG lattice: the SR experts magnify its blocks). The safe choice is a tool
        (Lanczos for SR: the other candidates get the margin chosen for them, when Lanczos is among them; a tool
        without one gets the uniform margin) or, for a restoration
        step, doing nothing (every candidate gets it, so a doubtful expert falls below the rollback threshold and
        the step keeps its input). Zeros otherwise."""
        margin = float((model or {}).get("safe_margin_db", 0.0))
        if self.priority != "fidelity" or not margin:
            return np.zeros(len(self._x))
        safe = (model or {}).get("safe_tool")
        if safe is None:
            return np.full(len(self._x), margin)
        if safe not in self._tools:
            return np.zeros(len(self._x))
        rule = (model or {}).get("clean_input")
        if rule and self._clean_input(rule):
            margin = float(rule["margin_db"])
        blocky = (model or {}).get("blocky_margin_db")
        if blocky is not None and self._input_measures()[1] > 0:
            margin = max(margin, float(blocky))
        per_tool = (model or {}).get("tool_margins_db", {})  # tools the validation did not see: the uniform one
        return np.array([0.0 if t == safe else float(per_tool.get(t, margin)) for t in self._tools])

    def _safe_floor(self, model: dict | None, gains: np.ndarray) -> np.ndarray:
        """For a fidelity profile, the SR step's safe tool (Lanczos) is predicted at least as good as doing
        nothing (bicubic, which the step cannot return: it must upscale): a Lanczos output is what the user would
        get without the agent. The SR models extrapolate on inputs unlike their data — on a flat, denoised photo
        they predicted Lanczos 5.7 dB below bicubic, the step "failed" (Q 0.00), and the rollback ran ×4 on the
        noisy input instead — so the safe tool's predicted gain is floored at 0 (Q 0.5, above the threshold):
        the step passes with Lanczos, and every other tool must still beat it by its margin."""
        safe = (model or {}).get("safe_tool")
        if self.priority != "fidelity" or safe is None or safe not in self._tools:
            return gains
        out = gains.copy()
        i = self._tools.index(safe)
        out[i] = max(out[i], 0.0)
        return out

    def _clean_input(self, rule: dict) -> bool:
        """Whether the step input is clean by the model's ``clean_input`` rule (chosen on the validation split,
        ``training/fit_sr_margins.py``): no JPEG lattice and a noise σ̂ below ``noise_sigma_below``, both measured
        at the input's size. A clean input gets the rule's smaller margin: the sharper experts' risk is amplified
        noise and blocks, which a clean input does not have."""
        sigma, quality = self._input_measures()
        return quality == 0 and sigma < float(rule["noise_sigma_below"])

    def _input_measures(self) -> tuple[float, float]:
        """The step input's noise σ̂ and JPEG quality estimate (measured once)."""
        if self._measures is None:
            self._measures = input_noise_jpeg(self._inp)
        return self._measures

    def scores(self) -> list[Score]:
        """Q and components of every added candidate, in order."""
        if not self._x:
            return []
        x = np.stack(self._x)
        shipped = shipped_model()
        # a model fitted on other features (stale file) is not used: naturalness only
        current = shipped.get("features") == list(NAMES) and shipped.get("state", list(STATE)) == list(STATE)
        model = step_model(shipped, self.step, self.priority) if current else None
        if model is not None:
            gains = self._gains(model, x)
        else:  # a step the model was not trained for: naturalness only
            gains = 0.5 * x[:, NAMES.index("d_niqe")]
        raw = gains.copy()
        gains = self._safe_floor(model, gains) - (head := self._head_start(model))
        w = naturalness_weight(model, self.priority)
        out = []
        for gain, r, row, ratio, h in zip(gains.tolist(), raw.tolist(), x, self._sure, head.tolist()):
            q, nat = mixed_q(gain, float(row[NAMES.index("d_niqe")]), w)
            comps = {"predicted_gain_db": gain, "naturalness": nat}
            if r < gain + h:
                comps["model_gain_db"] = r
            comps |= {k: float(row[NAMES.index(k)]) for k in _SHOWN}
            if ratio is not None:
                comps["sure_ratio"] = ratio
            if h:
                comps["do_no_harm_db"] = -h
            out.append(Score(round(q, 6), {k: round(v, 4) for k, v in comps.items()}))
        return out


def score_candidates(outs: list[Image], inp: Image, step: str, priority: str = "perception",
                     sure_ratios: list[float | None] | None = None, tools: list[str | None] | None = None) -> list[Score]:
    """Convenience: score a list of candidate images for ``step`` (optionally with their SURE ratios and tools)."""
    scorer = StepScorer(inp, step, priority)
    for i, o in enumerate(outs):
        scorer.add(o, None if sure_ratios is None else sure_ratios[i], None if tools is None else tools[i])
    return scorer.scores()
