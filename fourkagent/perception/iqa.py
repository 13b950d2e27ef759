"""No-reference IQA report of an image: the paper's experts (CLIPIQA+, TOPIQ-NR, MUSIQ, NIQE) plus PIQE.

``niqe`` is always the project's numpy NIQE with its own fitted pristine model
(:mod:`fourkagent.scoring.niqe`). Every other metric runs through pyiqa when pyiqa, the Python
packages its architecture imports and its weight files are on this machine; otherwise it is reported
as ``{"unavailable": reason}``, never as a number. Detection and creation are the paper scorer's
(:mod:`fourkagent.scoring.paper`): weight files (the catalogue's, checksummed where published) are looked
up where pyiqa (and its CLIP loader) would look, *before* pyiqa is asked for the metric, musiq/topiq get
that exact file as ``pretrained_model_path``, the Hugging Face Hub is switched to offline mode, and the
metric runs on :func:`fourkagent.devices.torch_device`. Nothing here downloads, so a user who puts the
weights into the pyiqa cache (``4kagent models pull``) gets the metric automatically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from fourkagent import devices
from fourkagent.imaging import Image, scale_by
from fourkagent.scoring import paper
from fourkagent.scoring.niqe import niqe, prepare
from fourkagent.scoring.paper import cache_dirs as cache_dirs  # re-exported: where pyiqa / CLIP look

PAPER_METRICS: tuple[str, ...] = ("clipiqa+", "topiq_nr", "musiq", "niqe")
"""The paper's NR-IQA experts (reported to the VLM perceiver and in the run report)."""
DEFAULT_METRICS: tuple[str, ...] = (*PAPER_METRICS, "piqe")
"""Default report: the paper's experts plus PIQE, the one pyiqa NR metric that needs no weight file."""
LOWER_BETTER: frozenset[str] = frozenset({"niqe", "piqe"})
PYIQA_MAX_SIDE = 1024
"""pyiqa metrics see the image shrunk to this long side (CPU time); NIQE sees it at full size."""
METRICS_ENV = "FOURKAGENT_IQA_METRICS"


@dataclass(frozen=True)
class PyiqaSpec:
    """How one pyiqa metric is created here (its packages and files: ``paper.PACKAGES``, the catalogue)."""

    weight_arg: bool = False
    """Pass the first file as ``pretrained_model_path`` (pyiqa then loads exactly the checked file)."""
    options: tuple[tuple[str, Any], ...] = ()


PYIQA_SPECS: dict[str, PyiqaSpec] = {
    "clipiqa+": PyiqaSpec(),
    # the CFANet checkpoint holds the ResNet-50 backbone too: no separate timm download
    "topiq_nr": PyiqaSpec(True, (("backbone_pretrain", False),)),
    "musiq": PyiqaSpec(True),
    "piqe": PyiqaSpec(),
}


def metric_names(spec: str | Sequence[str] | None = None) -> tuple[str, ...]:
    """The metrics to report: ``spec`` (comma-separated or a list), else ``$FOURKAGENT_IQA_METRICS``, else the default."""
    if spec is None or spec == "":
        spec = os.environ.get(METRICS_ENV, "")
    names = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    return tuple(dict.fromkeys(names)) or DEFAULT_METRICS


def weight_files(name: str) -> list[Path]:
    """The files metric ``name`` needs, at the paths pyiqa would read them from."""
    return paper.weight_paths(name)


def unavailable_reason(name: str) -> str | None:
    """Why metric ``name`` cannot be computed here (None when it can). Imports nothing heavy."""
    if name == "niqe":
        return None
    spec = PYIQA_SPECS.get(name)
    if spec is None:
        return f"unknown metric {name!r} (known: {', '.join(['niqe', *PYIQA_SPECS])})"
    problems: list[str] = []
    missing_mods = paper.missing_packages(name)
    if missing_mods:
        problems.append(f"needs the Python package(s) {', '.join(missing_mods)}")
    missing = [str(path) if why == "missing" else f"{path} ({why})" for path, why in paper.file_problems(name)]
    if missing:
        problems.append(f"weights not installed: {', '.join(missing)} (never downloaded; put the file(s) there)")
    return "; ".join(problems) or None


@lru_cache(maxsize=8)
def _metric(name: str, weight_path: str | None, pyiqa_dir: str, device_key: str) -> paper.Metric:
    """The paper scorer's pyiqa metric, once per (weights, cache dir, device): the key only selects the cache."""
    opts = dict(PYIQA_SPECS[name].options)
    if weight_path is not None:
        opts["pretrained_model_path"] = weight_path
    return paper.create_metric(name, **opts)


def pyiqa_score(name: str, img: Image) -> float:
    """Score ``img`` with pyiqa metric ``name`` on the current device (caller checked :func:`unavailable_reason`)."""
    weight = str(weight_files(name)[0]) if PYIQA_SPECS[name].weight_arg else None
    return _metric(name, weight, str(cache_dirs()["pyiqa"]), devices.cache_key())(img)


def pyiqa_input(img: Image) -> Image:
    """The image pyiqa metrics see: the reference's NR-IQA resize rule, then at most ``PYIQA_MAX_SIDE``."""
    img = prepare(img)
    long_side = max(img.shape[:2])
    return scale_by(img, PYIQA_MAX_SIDE / long_side, "area") if long_side > PYIQA_MAX_SIDE else img


def assess_iqa(img: Image, metrics: str | Sequence[str] | None = None) -> dict[str, Any]:
    """NR-IQA of ``img``: ``{"iqa": metric → value | {"unavailable": reason}, "iqa_info": {...}}``.

    ``iqa_info`` records ``metrics_used`` (the metrics that produced a number), what each one
    computed with, and the size pyiqa metrics saw. Never raises for a metric: a failure is reported.
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    small: Image | None = None
    for name in metric_names(metrics):
        reason = unavailable_reason(name)
        if reason is None and name == "niqe":
            values[name], sources[name] = round(niqe(img), 4), "fourkagent numpy NIQE (project-fitted pristine model)"
            continue
        if reason is None:
            small = pyiqa_input(img) if small is None else small
            try:
                score = pyiqa_score(name, small)
                if not math.isfinite(score):
                    raise ValueError(f"non-finite score {score}")
                values[name], sources[name] = round(score, 4), "pyiqa"
                continue
            except Exception as exc:  # a broken install or a bad weight file must not stop perception
                reason = f"pyiqa failed: {type(exc).__name__}: {str(exc)[:200]}"
        values[name] = {"unavailable": reason}
    info: dict[str, Any] = {
        "metrics_used": [k for k, v in values.items() if not isinstance(v, dict)],
        "sources": sources,
        "lower_better": sorted(LOWER_BETTER & set(values)),
    }
    if small is not None:
        info["pyiqa_input_size"] = [int(small.shape[1]), int(small.shape[0])]
    return {"iqa": values, "iqa_info": info}


def iqa_report(img: Image, metrics: str | Sequence[str] | None = None) -> dict[str, Any]:
    """Metric → value, or ``{"unavailable": reason}``."""
    return assess_iqa(img, metrics)["iqa"]


def iqa_text(iqa: dict[str, Any]) -> str:
    """The report as prompt text, one ``NAME: value`` line per metric (the reference's format)."""
    lines = []
    for name, value in iqa.items():
        label = name.upper()
        if isinstance(value, dict):
            lines.append(f"{label}: unavailable")
        else:
            lines.append(f"{label}: {value:.4f}" + (" (lower is better)" if name in LOWER_BETTER else " (higher is better)"))
    return "\n".join(lines)
