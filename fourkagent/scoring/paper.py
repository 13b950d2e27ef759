"""The reference's Q-MoE scorer: Q = HPSv2.1(image, description) + M(image).

M = (CLIPIQA+ + MANIQA + 0.01·MUSIQ + (1 − NIQE/10)) / 4 (only with ``Reflection: hpsv2+metric``);
NR-IQA inputs are resized by the reference's rule (``niqe.prepare``); rollback when the best Q is
below 0.5 (0.12 when HPSv2 alone is used). The learned metrics need weights the user installs; the
scorer takes the metric callables as arguments so its arithmetic is testable with fixed outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fourkagent.errors import MissingWeightsError
from fourkagent.imaging import Image
from fourkagent.scoring.niqe import prepare
from fourkagent.scoring.qmoe import Score

PAPER_THRESHOLD = 0.5
HPS_ONLY_THRESHOLD = 0.12
MIX_METRICS: tuple[str, ...] = ("clipiqa+", "maniqa", "musiq", "niqe")
"""pyiqa metric names of the NR-IQA mix."""

Metric = Callable[[Image], float]
HpsFn = Callable[[Image, str], float]


def metric_mix(values: Mapping[str, float]) -> float:
    """M = (CLIPIQA+ + MANIQA + 0.01·MUSIQ + (1 − NIQE/10)) / 4."""
    return (values["clipiqa+"] + values["maniqa"] + 0.01 * values["musiq"] + (1.0 - values["niqe"] / 10.0)) / 4.0


@dataclass(frozen=True)
class PaperScorer:
    """HPSv2.1 plus (optionally) the NR-IQA mix, exactly as the reference computes it."""

    hps: HpsFn
    metrics: Mapping[str, Metric]
    with_metrics: bool = True

    @property
    def threshold(self) -> float:
        """The reference's rollback threshold for this variant."""
        return PAPER_THRESHOLD if self.with_metrics else HPS_ONLY_THRESHOLD

    def score(self, img: Image, description: str) -> Score:
        """Q of one candidate, with HPS and each metric as components."""
        comps = {"hpsv2.1": float(self.hps(img, description or "An image"))}
        q = comps["hpsv2.1"]
        if self.with_metrics:
            small = prepare(img)
            values = {name: float(self.metrics[name](small)) for name in MIX_METRICS}
            comps |= values
            comps["mix"] = metric_mix(values)
            q += comps["mix"]
        return Score(round(q, 6), {k: round(v, 6) for k, v in comps.items()})


def require(available: Mapping[str, object | None], with_metrics: bool = True) -> None:
    """Fail with one line naming every missing piece the paper scorer needs.

    Raises:
        MissingWeightsError: HPSv2.1 or a mix metric is not installed.
    """
    needed = ["hpsv2.1", *(MIX_METRICS if with_metrics else ())]
    missing = [n for n in needed if available.get(n) is None]
    if missing:
        raise MissingWeightsError(
            f"the paper scorer needs {', '.join(missing)}, not installed here; install their weights "
            "(`4kagent models pull` where you have internet) or use the offline scorer (scorer: offline)"
        )


def missing_pieces() -> list[str]:
    """What this machine lacks for the paper scorer (empty when everything is installed)."""
    import importlib.util

    from fourkagent.perception.iqa import unavailable_reason

    missing = []
    if importlib.util.find_spec("hpsv2") is None:
        missing.append("hpsv2.1 (pip install hpsv2, plus its HPS_v2.1 weights)")
    for name in ("clipiqa+", "musiq"):
        reason = unavailable_reason(name)
        if reason:
            missing.append(f"{name} ({reason})")
    missing.append("maniqa (its pyiqa weights are not yet wired into fourkagent)")
    return missing


def require_installed() -> None:
    """Fail early, in one line, when a profile asks for the paper scorer on a machine that lacks it.

    Raises:
        MissingWeightsError: naming every missing piece.
    """
    missing = missing_pieces()
    if missing:
        raise MissingWeightsError(
            "the paper scorer (scorer: paper / Reflection: hpsv2+metric) needs " + "; ".join(missing)
            + " — use scorer: offline, the default"
        )
