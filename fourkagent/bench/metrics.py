"""Image-quality metrics for the bench; a metric that cannot run here is skipped with a note, never faked.

Full-reference (both images quantised to 8 bits first, as saved files are):
- ``psnr_y`` / ``ssim_y``: on BT.601 studio-swing Y (the SR papers' and pyiqa's ``test_y_channel``
  convention), ``crop_border`` = the scale factor (4 for ×4), as in the paper's classic-SR protocol;
- ``psnr_rgb`` / ``ssim_rgb``: on R, G, B (SSIM averaged over channels), same border;
- SSIM is Wang et al. 2004 with an 11×11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03 on 0–255
  values: the BasicSR/pyiqa implementation;
- ``lpips`` / ``dists``: pyiqa, only when pyiqa imports and its weight files (and torchvision's
  AlexNet/VGG16 checkpoints) are already on disk.
No-reference, on the central crop of at most 1024² (a 4096² output is judged at its own pixel scale):
``niqe`` (fourkagent's NIQE with its fitted pristine model; lower is better), and through
:mod:`fourkagent.perception.iqa` pyiqa's ``piqe`` (no weights; lower is better) and ``musiq`` /
``clipiqa+`` / ``topiq_nr`` when their weights are present. The paper's CLIPIQA / MANIQA-PIPAL
evaluation variants have no offline weights here and are not reported.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fourkagent.bench.dataset import q8
from fourkagent.imaging import Image, psnr, to_uint8, y_channel
from fourkagent.perception.iqa import cache_dirs, pyiqa_score, unavailable_reason
from fourkagent.scoring.niqe import niqe

FR_OURS = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")
PYIQA_FR: dict[str, tuple[tuple[str, str], ...]] = {
    "lpips": (("pyiqa", "LPIPS_v0.1_alex-df73285e.pth"), ("checkpoints", "alexnet-owt-7be5be79.pth")),
    "dists": (("pyiqa", "DISTS_weights-f5e65c96.pth"), ("checkpoints", "vgg16-397923af.pth")),
}
"""pyiqa 0.1.16 full-reference metrics and the files each loads (pyiqa cache, torch hub checkpoints)."""
PYIQA_NR = ("piqe", "musiq", "clipiqa+", "topiq_nr")
"""No-reference metrics through :mod:`fourkagent.perception.iqa` (its weight checks; nothing is downloaded)."""
LOWER_IS_BETTER = {"niqe", "lpips", "dists", "piqe"}


def rgb_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM over RGB images in [0, 1] with scikit-image (needs ``scikit-image``: benchmarks and training)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=2, data_range=1.0))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two single-channel arrays on the 0–255 scale (Gaussian 11×11, σ 1.5, valid region)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a, b = a.astype(np.float64), b.astype(np.float64)
    k = cv2.getGaussianKernel(11, 1.5)
    win = k @ k.T

    def f(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, win)[5:-5, 5:-5]

    mu_a, mu_b = f(a), f(b)
    va, vb, cov = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
    m = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
    return float(m.mean())


def _crop(a: np.ndarray, border: int) -> np.ndarray:
    return a[border:-border, border:-border] if border else a


def full_reference(out: Image, ref: Image, border: int) -> dict[str, float]:
    """PSNR and SSIM on Y and on RGB of 8-bit-quantised images (``inf`` PSNR / 1.0 SSIM when identical)."""
    o, r = to_uint8(out).astype(np.float64), to_uint8(ref).astype(np.float64)
    oy, ry = _crop(y_channel(o / 255.0) * 255.0, border), _crop(y_channel(r / 255.0) * 255.0, border)
    o, r = _crop(o, border), _crop(r, border)
    return {
        "psnr_y": psnr(oy / 255.0, ry / 255.0),
        "ssim_y": ssim(oy, ry),
        "psnr_rgb": psnr(o / 255.0, r / 255.0),
        "ssim_rgb": float(np.mean([ssim(o[..., c], r[..., c]) for c in range(3)])),
    }


def fr_files(name: str) -> list[Path]:
    """Where pyiqa full-reference metric ``name``'s weight files must be (pyiqa cache, torch hub checkpoints)."""
    hub = cache_dirs()["pyiqa"].parent
    return [hub / ("pyiqa" if c == "pyiqa" else "checkpoints") / f for c, f in PYIQA_FR[name]]


def fr_unavailable(name: str) -> str | None:
    """Why pyiqa full-reference metric ``name`` cannot run offline here (None when it can)."""
    if importlib.util.find_spec("pyiqa") is None:
        return "pyiqa is not installed"
    missing = [str(m) for m in fr_files(name) if not m.is_file()]
    return f"weights not on disk: {', '.join(missing)} (never downloaded)" if missing else None


@lru_cache(maxsize=4)
def _fr_metric_at(name: str, weights: str) -> Callable[..., Any]:
    import pyiqa

    return pyiqa.create_metric(name, device="cpu", pretrained_model_path=weights)


def _fr_distance(name: str) -> Callable[[Image, Image], float]:
    """pyiqa's ``name`` on 8-bit-quantised images, loading exactly the checked weight file (the backbone comes
    from the torch hub cache)."""
    metric = _fr_metric_at(name, str(fr_files(name)[0]))
    return lambda out, ref: float(metric(_tensor(q8(out)), _tensor(q8(ref))).item())


def fr_distance(name: str) -> Callable[[Image, Image], float] | None:
    """``(image, truth) -> distance`` for pyiqa full-reference metric ``name``, or None when its weights are not
    on disk (nothing is downloaded)."""
    return None if fr_unavailable(name) else _fr_distance(name)


def _tensor(img: Image) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].float()


class Metrics:
    """Computes every available metric; ``notes`` says which were skipped and why."""

    def __init__(self, nr_side: int = 1024, use_pyiqa: bool = True) -> None:
        """``nr_side``: no-reference metrics run on the central crop of at most this side (4096² outputs)."""
        self.nr_side = nr_side
        self.notes: dict[str, str] = {}
        if not use_pyiqa:
            self.notes["pyiqa"] = "skipped: disabled (--no-pyiqa)"
            self.fr: list[str] = []
            self.nr: list[str] = []
            return
        reasons = {m: fr_unavailable(m) for m in PYIQA_FR} | {m: unavailable_reason(m) for m in PYIQA_NR}
        self.notes |= {m: f"skipped: {r}" for m, r in reasons.items() if r}
        self.fr = [m for m in PYIQA_FR if not reasons[m]]
        self.nr = [m for m in PYIQA_NR if not reasons[m]]

    @property
    def names(self) -> list[str]:
        """Every metric this instance reports, in table order."""
        return [*FR_OURS, *self.fr, "niqe", *self.nr]

    def _center(self, img: Image) -> Image:
        h, w = img.shape[:2]
        s = self.nr_side
        if h <= s and w <= s:
            return img
        y, x = max(0, (h - s) // 2), max(0, (w - s) // 2)
        return img[y : y + s, x : x + s]

    def compute(self, out: Image, ref: Image | None, border: int) -> dict[str, float | None]:
        """All metrics for one output; full-reference ones are ``None`` without a reference."""
        res: dict[str, float | None] = {m: None for m in self.names}
        if ref is not None:
            res |= full_reference(out, ref, border)
            for m in self.fr:
                res[m] = _fr_distance(m)(out, ref)
        nr_img = self._center(q8(out))
        res["niqe"] = niqe(nr_img)
        for m in self.nr:
            res[m] = pyiqa_score(m, nr_img)
        return {k: (None if v is not None and math.isnan(v) else v) for k, v in res.items()}
