"""The reference's Q-MoE scorer: Q = HPSv2.1(image, description) + M(image).

M = (CLIPIQA+ + MANIQA + 0.01·MUSIQ + (1 − NIQE/10)) / 4 (only with ``Reflection: hpsv2+metric``);
NR-IQA inputs are resized by the reference's rule (``niqe.prepare``: ≤120 px ×4, ≤240 px ×2, >4200 px
×0.5, bicubic); HPSv2.1 sees the whole image through its own preprocessing; rollback when the best Q is
below 0.5 (0.12 for the ``hpsv2`` scorer, ``Reflection: hpsv2``, which uses HPSv2.1 alone). The metrics
are the reference's: pyiqa's ``clipiqa+``, ``maniqa``, ``musiq`` and ``niqe`` made by ``pyiqa.create_metric``
from the weights ``4kagent models pull`` placed in pyiqa's cache, and HPSv2.1 = the ``HPS_v2.1_compressed.pt`` checkpoint on open_clip's ViT-H-14
(``open-clip-torch``, or the copy inside the ``hpsv2`` package), scored as ``hpsv2.score`` does. Nothing
downloads (the Hugging Face hub is put offline). All run on :func:`fourkagent.devices.torch_device`.
The scorer takes the metric callables as arguments, so its arithmetic is testable with fixed outputs.
:func:`create_metric` and the weight checks here are also what the perception IQA report uses.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fourkagent import devices
from fourkagent.errors import MissingWeightsError, WeightsError
from fourkagent.imaging import Image
from fourkagent.models.catalogue import metric_files
from fourkagent.models.store import metric_path
from fourkagent.weights import sha256_file
from fourkagent.scoring.niqe import prepare
from fourkagent.scoring.qmoe import DEFAULT_THRESHOLD, Score, StepScorer

if TYPE_CHECKING:
    import torch

    from fourkagent.profiles.model import Profile

PAPER_THRESHOLD = 0.5
HPS_ONLY_THRESHOLD = 0.12
SCORERS: dict[str, bool] = {"paper": True, "hpsv2": False}
"""Profile scorers this module implements → whether the NR-IQA mix is added (``hpsv2``: HPSv2.1 alone)."""
MIX_METRICS: tuple[str, ...] = ("clipiqa+", "maniqa", "musiq", "niqe")
"""pyiqa metric names of the NR-IQA mix."""
HPS = "hpsv2.1"
HPS_MODEL = "ViT-H-14"
HPS_SIZE = 224
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_PROMPT = "An image"
"""The reference's HPS prompt when the perceiver gave no description."""
PACKAGES: dict[str, tuple[tuple[str, ...], ...]] = {
    HPS: (("torch",), ("open_clip", "hpsv2")),
    "clipiqa+": (("torch",), ("torchvision",), ("pyiqa",), ("clip",)),
    "maniqa": (("torch",), ("torchvision",), ("pyiqa",), ("timm",)),
    "musiq": (("torch",), ("torchvision",), ("pyiqa",)),
    "niqe": (("torch",), ("torchvision",), ("pyiqa",)),
    "piqe": (("torch",), ("torchvision",), ("pyiqa",)),
    "topiq_nr": (("torch",), ("torchvision",), ("pyiqa",), ("timm",), ("facexlib",)),
}
"""Python modules each metric imports; inner tuples are alternatives (any one will do)."""
_PIP = {"open_clip": "open-clip-torch", "clip": "openai-clip"}

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
        comps = {HPS: float(self.hps(img, description or DEFAULT_PROMPT))}
        q = comps[HPS]
        if self.with_metrics:
            small = prepare(img)
            values = {name: float(self.metrics[name](small)) for name in MIX_METRICS}
            comps |= values
            comps["mix"] = metric_mix(values)
            q += comps["mix"]
        return Score(round(q, 6), {k: round(v, 6) for k, v in comps.items()})


# -- what this machine has ----------------------------------------------------------------------
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
    return sha256_file(path) == expected


def weight_paths(metric: str) -> list[Path]:
    """The files ``metric`` needs (catalogue), at the paths pyiqa / CLIP / the hub cache read them from."""
    return [metric_path(m) for m in metric_files(metric)]


def file_problems(metric: str) -> list[tuple[Path, str]]:
    """``(path, "missing" | "checksum mismatch")`` for each weight file of ``metric`` that is not usable."""
    out = []
    for m in metric_files(metric):
        path = metric_path(m)
        if not path.is_file():
            out.append((path, "missing"))
        elif m.sha256 is not None and not _sha256_ok(str(path), (st := path.stat()).st_size, st.st_mtime, m.sha256):
            out.append((path, "checksum mismatch"))
    return out


def missing_files(metric: str) -> list[Path]:
    """Weight files of ``metric`` absent where pyiqa / the hub cache look for them (checksums: :func:`file_problems`)."""
    return [path for path in weight_paths(metric) if not path.is_file()]


def missing_packages(metric: str) -> list[str]:
    """pip names of the packages ``metric`` needs and this environment lacks."""
    out = []
    for alternatives in PACKAGES.get(metric, ()):
        if all(importlib.util.find_spec(m) is None for m in alternatives):
            out.append(_PIP.get(alternatives[0], alternatives[0]))
    return out


def needed(with_metrics: bool = True) -> tuple[str, ...]:
    """The metrics the scorer variant uses."""
    return (HPS, *MIX_METRICS) if with_metrics else (HPS,)


def require(available: Mapping[str, object | None], with_metrics: bool = True) -> None:
    """Fail with one line naming every missing piece the paper scorer needs.

    Raises:
        MissingWeightsError: HPSv2.1 or a mix metric is not installed.
    """
    missing = [n for n in needed(with_metrics) if available.get(n) is None]
    if missing:
        raise MissingWeightsError(
            f"the paper scorer needs {', '.join(missing)}, not installed here; install their weights "
            f"(`4kagent models pull {' '.join(missing)}` where you have internet) or use the offline scorer (scorer: offline)"
        )


def missing_pieces(with_metrics: bool = True) -> list[str]:
    """What this machine lacks for the paper scorer, one phrase per metric (empty when all is there)."""
    out = []
    for name in needed(with_metrics):
        parts = [f"pip install {' '.join(pkgs)}"] if (pkgs := missing_packages(name)) else []
        if missing_files(name):
            parts.append(f"`4kagent models pull {name}`")
        if parts:
            out.append(f"{name} ({'; '.join(parts)})")
    return out


def require_installed(with_metrics: bool = True) -> None:
    """Fail early, in one line, when a profile asks for the paper scorer (``with_metrics``) or its
    HPSv2-only variant on a machine that lacks what that variant uses.

    Raises:
        MissingWeightsError: naming every missing metric and the command that installs it.
    """
    missing = missing_pieces(with_metrics)
    if missing:
        which = "paper scorer (scorer: paper / Reflection: hpsv2+metric)" if with_metrics else \
            "HPSv2 scorer (scorer: hpsv2 / Reflection: hpsv2)"
        raise MissingWeightsError(f"the {which} needs {', '.join(missing)} — or use scorer: offline, the default")


def require_scorer(scorer: str) -> None:
    """:func:`require_installed` for a profile's ``scorer`` value; nothing to check for ``offline``.

    Raises:
        MissingWeightsError: as :func:`require_installed`.
    """
    if scorer in SCORERS:
        require_installed(SCORERS[scorer])


# -- the metrics themselves ---------------------------------------------------------------------
@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """pyiqa prints progress to stdout; keep stdout clean (``--json``) and drop its warnings."""
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def as_8bit(img: Image) -> Image:
    """``img`` on the 8-bit grid, as the reference's metrics read the tools' PNG outputs."""
    return np.round(np.clip(np.asarray(img, np.float32), 0.0, 1.0) * 255.0).astype(np.float32) / 255.0


def _tensor(img: Image, dev: torch.device) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.ascontiguousarray(as_8bit(img).transpose(2, 0, 1)))[None].to(dev)


def create_metric(name: str, **options: Any) -> Metric:
    """pyiqa metric ``name`` on the current device, from the weights in pyiqa's cache (never downloads);
    ``options`` go to ``pyiqa.create_metric`` (e.g. ``pretrained_model_path``). Scores 8-bit-quantised input."""
    import torch

    dev = devices.torch_device()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # MANIQA's timm backbone comes from the hub cache
    with quiet():
        import pyiqa
        from pyiqa.utils import download_util

        # pyiqa fixes its cache dir at import; point it where `models pull` put the files (TORCH_HOME may change)
        download_util.DEFAULT_CACHE_DIR = str(cache_dirs()["pyiqa"])
        metric = pyiqa.create_metric(name, device=dev, **options)

    def score(img: Image) -> float:
        with quiet(), torch.inference_mode():
            return float(metric(_tensor(img, dev)).reshape(-1)[0])

    return score


def hps_preprocess(img: Image, size: int = HPS_SIZE) -> torch.Tensor:
    """HPSv2's evaluation transform (``light_augmentation``): long side → ``size`` (bicubic, antialiased),
    zero-padded to a centred square, OpenAI CLIP normalisation; (1, 3, size, size) float32."""
    import torch
    import torchvision.transforms.functional as tf

    x = torch.from_numpy(np.ascontiguousarray(as_8bit(img).transpose(2, 0, 1)))
    h, w = x.shape[1:]
    s = size / float(max(h, w))
    nh, nw = round(h * s), round(w * s)
    if (nh, nw) != (h, w):
        x = tf.resize(x, [nh, nw], tf.InterpolationMode.BICUBIC, antialias=True)
    ph, pw = size - nh, size - nw
    x = tf.pad(x, [pw // 2, ph // 2, pw - pw // 2, ph - ph // 2], fill=0)
    return tf.normalize(x, OPENAI_MEAN, OPENAI_STD)[None]


def _open_clip() -> Any:
    try:
        import open_clip
    except ImportError:
        from hpsv2.src import open_clip  # type: ignore[import-not-found,no-redef]
    return open_clip


def create_hps(model_name: str = HPS_MODEL, checkpoint: str | os.PathLike[str] | None = None) -> HpsFn:
    """HPSv2.1 as ``hpsv2.score(img, prompt, hps_version="v2.1")`` computes it: the checkpoint's full CLIP
    state dict on an un-pretrained ``model_name``, image · text feature similarity (fp16 autocast on CUDA).

    Raises:
        WeightsError: the checkpoint is unreadable or does not fit the model.
    """
    import torch

    oc = _open_clip()
    dev = devices.torch_device()
    path = Path(checkpoint) if checkpoint else metric_path(next(m for m in metric_files(HPS) if m.file.endswith(".pt")))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        model = oc.create_model(model_name, pretrained=None, precision="fp32", device="cpu", output_dict=True)
        model.load_state_dict(state)
    except Exception as exc:  # unsafe pickle, damage, or a checkpoint of another architecture
        raise WeightsError(f"{path.name}: cannot load HPSv2.1 ({type(exc).__name__}: "
                           f"{(str(exc).splitlines() or [''])[0][:160]})") from None
    model = model.to(dev).eval()
    tokenizer = oc.get_tokenizer(model_name)
    lock = threading.Lock()

    def score(img: Image, prompt: str) -> float:
        with lock, torch.inference_mode(), torch.autocast(dev.type, torch.float16, enabled=dev.type == "cuda"):
            out = model(hps_preprocess(img).to(dev), tokenizer([prompt]).to(dev))
            return float((out["image_features"] @ out["text_features"].T).diagonal()[0])

    return score


_scorers: dict[tuple[bool, str], PaperScorer] = {}
_lock = threading.Lock()


def load_scorer(with_metrics: bool = True) -> PaperScorer:
    """The paper scorer with its real metrics, built once per process and device.

    Raises:
        MissingWeightsError: a metric's package or weights are missing (one line naming the pulls).
    """
    require_installed(with_metrics)
    key = (with_metrics, devices.cache_key())
    with _lock:
        if key not in _scorers:
            metrics = {n: create_metric(n) for n in MIX_METRICS} if with_metrics else {}
            _scorers[key] = PaperScorer(create_hps(), metrics, with_metrics)
        return _scorers[key]


def clear_cache() -> None:
    """Forget the built scorers (frees the models)."""
    with _lock:
        _scorers.clear()


class PaperStepScorer:
    """The paper scorer behind :class:`fourkagent.scoring.qmoe.StepScorer`'s interface (``add``/``scores``)."""

    def __init__(self, description: str, scorer: PaperScorer | None = None, with_metrics: bool = True) -> None:
        """Score candidates against the perceiver's ``description`` (HPS prompt) with ``scorer``, else the
        loaded paper scorer (``with_metrics=False``: its HPSv2-only variant)."""
        self.scorer = scorer or load_scorer(with_metrics)
        self.description = description or DEFAULT_PROMPT
        self._scores: list[Score] = []

    def add(self, out: Image, sure_ratio: float | None = None, tool: str | None = None) -> None:
        """Score one candidate now (pixels are not kept; ``sure_ratio`` and ``tool`` are accepted for the offline
        scorer's interface and ignored)."""
        self._scores.append(self.scorer.score(out, self.description))

    def scores(self) -> list[Score]:
        """Q and components of every added candidate, in order."""
        return list(self._scores)


def step_scorer(profile: Profile, inp: Image, step: str, description: str = "") -> StepScorer | PaperStepScorer:
    """The profile's Q-MoE scorer for one step: the offline one, the paper's, or the paper's HPSv2-only one."""
    if profile.scorer in SCORERS:
        return PaperStepScorer(description, with_metrics=SCORERS[profile.scorer])
    return StepScorer(inp, step, profile.priority)


def default_threshold(profile: Profile) -> float:
    """The profile's rollback threshold when it sets none: the paper's 0.5, 0.12 for HPSv2 alone, or the
    offline scorer's."""
    if profile.scorer in SCORERS:
        return PAPER_THRESHOLD if SCORERS[profile.scorer] else HPS_ONLY_THRESHOLD
    return DEFAULT_THRESHOLD
