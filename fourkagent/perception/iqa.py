"""No-reference IQA report of an image: the paper's experts (CLIPIQA+, TOPIQ-NR, MUSIQ, NIQE) plus PIQE.

``niqe`` is always the project's numpy NIQE with its own fitted pristine model
(:mod:`fourkagent.scoring.niqe`). Every other metric runs through pyiqa when pyiqa, the Python
packages its architecture imports and its weight files are on this machine; otherwise it is reported
as ``{"unavailable": reason}``, never as a number. Nothing here downloads: weight files are looked up
where pyiqa (and its CLIP loader) would look, *before* pyiqa is asked for the metric, musiq/topiq get
that exact file as ``pretrained_model_path``, and the Hugging Face Hub is switched to offline mode.
So a user who puts the weights into the pyiqa cache gets the metric automatically.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import math
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from fourkagent.imaging import Image, scale_by
from fourkagent.scoring.niqe import niqe, prepare

PAPER_METRICS: tuple[str, ...] = ("clipiqa+", "topiq_nr", "musiq", "niqe")
"""The paper's NR-IQA experts (reported to the VLM perceiver and in the run report)."""
DEFAULT_METRICS: tuple[str, ...] = (*PAPER_METRICS, "piqe")
"""Default report: the paper's experts plus PIQE, the one pyiqa NR metric that needs no weight file."""
LOWER_BETTER: frozenset[str] = frozenset({"niqe", "piqe"})
PYIQA_MAX_SIDE = 1024
"""pyiqa metrics see the image shrunk to this long side (CPU time); NIQE sees it at full size."""
METRICS_ENV = "FOURKAGENT_IQA_METRICS"
_PIP_NAMES = {"clip": "openai-clip"}


@dataclass(frozen=True)
class PyiqaSpec:
    """What one pyiqa metric needs on disk (file names as in pyiqa 0.1.16) and how it is created."""

    modules: tuple[str, ...] = ()
    """Python packages its architecture imports beyond torch/torchvision/pyiqa."""
    files: tuple[tuple[str, str, str | None], ...] = ()
    """(cache, file name, sha256 or None); cache ``pyiqa`` = pyiqa's weight cache, ``clip`` = CLIP's."""
    weight_arg: bool = False
    """Pass the first file as ``pretrained_model_path`` (pyiqa then loads exactly the checked file)."""
    options: tuple[tuple[str, Any], ...] = ()


PYIQA_SPECS: dict[str, PyiqaSpec] = {
    "clipiqa+": PyiqaSpec(
        ("clip",),
        (
            ("pyiqa", "CLIP-IQA+_learned_prompts-603f3273.pth", None),
            ("clip", "RN50.pt", "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762"),
        ),
    ),
    # the CFANet checkpoint holds the ResNet-50 backbone too: no separate timm download
    "topiq_nr": PyiqaSpec(
        ("timm", "facexlib"), (("pyiqa", "cfanet_nr_koniq_res50-9a73138b.pth", None),), True,
        (("backbone_pretrain", False),),
    ),
    "musiq": PyiqaSpec((), (("pyiqa", "musiq_koniq_ckpt-e95806b9.pth", None),), True),
    "piqe": PyiqaSpec(),
}


def metric_names(spec: str | Sequence[str] | None = None) -> tuple[str, ...]:
    """The metrics to report: ``spec`` (comma-separated or a list), else ``$FOURKAGENT_IQA_METRICS``, else the default."""
    if spec is None or spec == "":
        spec = os.environ.get(METRICS_ENV, "")
    names = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    return tuple(dict.fromkeys(names)) or DEFAULT_METRICS


def _torch_hub_dir() -> Path:
    """``torch.hub.get_dir()``, computed the same way without importing torch when it is not loaded yet."""
    hub = sys.modules.get("torch.hub")
    if hub is not None:
        return Path(hub.get_dir())
    xdg = os.environ.get("XDG_CACHE_HOME", "~/.cache")
    return Path(os.environ.get("TORCH_HOME") or Path(xdg) / "torch").expanduser() / "hub"


def cache_dirs() -> dict[str, Path]:
    """Where pyiqa looks for its weights (its ``DEFAULT_CACHE_DIR``, ``<torch hub>/pyiqa``) and where its
    CLIP loader looks (``<torch hub>/clip``)."""
    hub = _torch_hub_dir()
    return {"pyiqa": hub / "pyiqa", "clip": hub / "clip"}


@lru_cache(maxsize=16)
def _sha256_ok(path: str, size: int, mtime: float, expected: str) -> bool:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == expected


def weight_files(name: str) -> list[Path]:
    """The files metric ``name`` needs, at the paths pyiqa would read them from."""
    dirs = cache_dirs()
    return [dirs[cache] / fname for cache, fname, _ in PYIQA_SPECS[name].files]


def unavailable_reason(name: str) -> str | None:
    """Why metric ``name`` cannot be computed here (None when it can). Imports nothing heavy."""
    if name == "niqe":
        return None
    spec = PYIQA_SPECS.get(name)
    if spec is None:
        return f"unknown metric {name!r} (known: {', '.join(['niqe', *PYIQA_SPECS])})"
    problems: list[str] = []
    missing_mods = [m for m in ("torch", "torchvision", "pyiqa", *spec.modules) if importlib.util.find_spec(m) is None]
    if missing_mods:
        problems.append(f"needs the Python package(s) {', '.join(_PIP_NAMES.get(m, m) for m in missing_mods)}")
    missing: list[str] = []
    for path, (_, _, sha) in zip(weight_files(name), spec.files):
        if not path.is_file():
            missing.append(str(path))
        elif sha is not None:
            st = path.stat()
            if not _sha256_ok(str(path), st.st_size, st.st_mtime, sha):
                missing.append(f"{path} (checksum mismatch)")
    if missing:
        problems.append(f"weights not installed: {', '.join(missing)} (never downloaded; put the file(s) there)")
    return "; ".join(problems) or None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """pyiqa prints progress to stdout; keep stdout clean (``--json``) and drop its warnings."""
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@lru_cache(maxsize=8)
def _metric(name: str, weight_path: str | None, pyiqa_dir: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with _quiet():
        import pyiqa
        from pyiqa.utils import download_util

        # pyiqa fixes its cache dir at import; keep it on the directory that was checked (TORCH_HOME may change)
        download_util.DEFAULT_CACHE_DIR = pyiqa_dir

        opts = dict(PYIQA_SPECS[name].options)
        if weight_path is not None:
            opts["pretrained_model_path"] = weight_path
        return pyiqa.create_metric(name, device="cpu", **opts)


def pyiqa_score(name: str, img: Image) -> float:
    """Score ``img`` with pyiqa metric ``name`` (caller has checked :func:`unavailable_reason`)."""
    import torch

    spec = PYIQA_SPECS[name]
    weight = str(weight_files(name)[0]) if spec.weight_arg else None
    metric = _metric(name, weight, str(cache_dirs()["pyiqa"]))
    x = torch.from_numpy(img.transpose(2, 0, 1).copy())[None]
    with _quiet(), torch.inference_mode():
        return float(metric(x).reshape(-1)[0])


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
