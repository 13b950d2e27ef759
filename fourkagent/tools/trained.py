"""Restoration tools backed by the small CNNs this project trains (``training/train_restorers.py``).

Each tool has ``<name>.safetensors`` + ``<name>.json`` (architecture, training config, data hash, held-out
metrics, sha256 of the weights) in ``fourkagent/models/weights/``. A net with ``bases`` in its record refines
those classical tools' outputs: it sees ``cat(b1(x), ..., bk(x), x)`` and predicts a correction of ``b1(x)``;
the classical tools run on the whole image (their blur estimates are global). A net with ``noise_map`` also
gets a constant channel of the image's estimated noise σ (``noise_channel``). The net runs tiled
(:mod:`fourkagent.models.tiling`, blended overlaps) under ``torch.inference_mode``. Importing this module is
cheap: torch and the weights load on a tool's first call, once per process, hash-checked.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fourkagent.devices import ModelCache
from fourkagent.errors import MissingWeightsError
from fourkagent.imaging import Image, as_image
from fourkagent.tools.base import Tool, ToolSpec

if TYPE_CHECKING:
    from fourkagent.models.restorer_arch import RestorerUNet

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "models" / "weights"
"""Where the trained weights and their records ship."""
TILE, OVERLAP = 256, 32
"""Input tile side and blended overlap (pixels) of the tiled inference."""
NOISE_SCALE = 50.0
"""The noise-map channel holds the estimated σ (0-255 units) divided by this."""

_SPECS: tuple[tuple[str, str, str], ...] = (
    ("derain_cnn", "deraining", "Small residual U-Net trained here on synthetic rain over free photos"),
    ("deblur_motion_cnn", "motion deblurring", "Small residual U-Net trained here to deblur linear motion"),
    ("deblur_defocus_cnn", "defocus deblurring", "Small residual U-Net trained here to deblur defocus"),
    ("denoise_cnn", "denoising", "Small residual U-Net trained here to denoise (σ 0-55, estimated from the image)"),
)
"""(tool name, category, description) of every trained tool; only those whose weights ship are registered."""

_loaded = ModelCache()


@lru_cache(maxsize=None)
def record(name: str) -> dict[str, Any]:
    """The JSON record of tool ``name``.

    Raises:
        MissingWeightsError: no record (the weights are not shipped).
    """
    path = WEIGHTS_DIR / f"{name}.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise MissingWeightsError(f"trained model {name} is not shipped ({path} missing)") from None


def _availability(name: str) -> str | None:
    """Why tool ``name`` cannot run here, or ``None`` (cheap: no torch import)."""
    for module in ("torch", "safetensors"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install torch safetensors)"
    if not (WEIGHTS_DIR / f"{name}.safetensors").is_file():
        return f"weights {name}.safetensors are not shipped"
    return None


def load_net(name: str) -> RestorerUNet:
    """The trained net of tool ``name`` on the current device (:mod:`fourkagent.devices`, fp32), loaded
    (hash-checked) once per process and device.

    Raises:
        MissingWeightsError: torch/safetensors missing or the weights are not shipped.
        WeightsError: the weights file does not match the sha256 of its record.
    """
    reason = _availability(name)
    if reason:
        raise MissingWeightsError(f"trained model {name} unavailable: {reason}")
    return _loaded.load(name, lambda: _build(name), supports_half=False)


def _build(name: str) -> RestorerUNet:
    """Load the shipped weights of ``name`` (hash-checked) into its network."""
    from fourkagent.models.restorer_arch import RestorerUNet
    from fourkagent.weights import load_state_dict

    rec = record(name)
    net = RestorerUNet(rec["widths"], rec["blocks"], rec.get("in_ch", 3))
    net.load_state_dict(load_state_dict(WEIGHTS_DIR / f"{name}.safetensors", sha256=rec["sha256"]))
    return net.eval()


def base_tool(name: str) -> Tool:
    """A classical tool by name (a base a hybrid net refines)."""
    from fourkagent.tools.classical import deblur, denoise, derain

    tools = {t.name: t for t in (*deblur.TOOLS, *denoise.TOOLS, *derain.TOOLS)}
    return tools[name]


def noise_channel(img: Image) -> np.ndarray:
    """``(H, W, 1)`` constant map of the estimated noise σ of ``img`` / ``NOISE_SCALE``."""
    from fourkagent.perception.detectors import estimate_noise_sigma

    return np.full((*img.shape[:2], 1), estimate_noise_sigma(img) / NOISE_SCALE, np.float32)


def apply_net(net: RestorerUNet, img: Image, bases: Sequence[str] = (), noise_map: bool = False,
              tile: int | None = TILE, overlap: int = OVERLAP, threads: int | None = None) -> Image:
    """Run ``net`` on ``img`` tiled (``tile=None``: whole image) on ``cat(bases(img), img[, noise map])``;
    ``threads=None`` uses every core."""
    from fourkagent.models.tiling import run_model, tiled_forward

    img = np.asarray(img, np.float32)
    if not bases and not noise_map:
        return run_model(net, img, 1, tile=tile, overlap=overlap, threads=threads)
    import torch

    parts = [*(base_tool(b)(img) for b in bases), img, *([noise_channel(img)] if noise_map else [])]
    x = np.concatenate(parts, axis=2).transpose(2, 0, 1)
    y = tiled_forward(net, torch.from_numpy(np.ascontiguousarray(x))[None], 1, tile=tile, overlap=overlap,
                      threads=threads)
    return as_image(y[0].permute(1, 2, 0).numpy())


def restore(name: str, img: Image, tile: int | None = TILE) -> Image:
    """Apply trained tool ``name`` to ``img``."""
    rec = record(name)
    return apply_net(load_net(name), img, rec.get("bases", ()), rec.get("noise_map", False), tile=tile)


def _tools() -> list[Tool]:
    out = []
    for name, category, description in _SPECS:
        if not (WEIGHTS_DIR / f"{name}.json").is_file():
            continue
        bases = record(name).get("bases", [])
        desc = f"{description}, refining {' + '.join(bases)}" if bases else description
        slow = any(base_tool(b).spec.slow for b in bases)
        spec = ToolSpec(name, category, desc, backend="torch", slow=slow,  # type: ignore[arg-type]
                        weights=f"fourkagent:{name}.safetensors")
        out.append(Tool(spec, partial(restore, name), partial(_availability, name)))
    return out


TOOLS: list[Tool] = _tools()
"""The trained tools whose weights ship with the package."""
