"""Experts from npm packages, converted to torch (:mod:`fourkagent.models.npm`): MAXIM trained on real
degradations (SIDD noise, GoPro blur, Rain13K, RESIDE haze, LOL low light, FiveK retouch) and
ESRGAN-thick ×2/×4 (idealo's RRDN, a perceptual SR model).

Each tool is unavailable (with the pull command as reason) until ``4kagent models pull`` ran; the
README's set-up pulls them. They run tiled on the current device; their measured cost per output megapixel
(``fourkagent/data/tool_costs.json``, from ``benchmarks/tool_costs.py``) lets a profile's time budget drop them
where a step would cost more than its share (:mod:`fourkagent.planning.budget`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from fourkagent.devices import ModelCache
from fourkagent.errors import MissingWeightsError
from fourkagent.imaging import Image
from fourkagent.tools.base import Preference, Tool, ToolSpec
from fourkagent.vocabulary import Category

if TYPE_CHECKING:
    from fourkagent.models.nhwc import NHWCModel


@dataclass(frozen=True)
class _Entry:
    tool: str
    model: str
    """Key of :data:`fourkagent.models.npm.NPM_MODELS`."""
    what: str
    preference: Preference = "both"


_ENTRIES: tuple[_Entry, ...] = (
    _Entry("denoise_maxim", "maxim-denoising", "MAXIM trained on real sensor noise (SIDD)"),
    _Entry("deblur_motion_maxim", "maxim-deblurring", "MAXIM trained on real camera-shake blur (GoPro)"),
    _Entry("derain_maxim", "maxim-deraining", "MAXIM trained on rain streaks (Rain13K)"),
    _Entry("dehaze_maxim_outdoor", "maxim-dehazing-outdoor", "MAXIM trained on outdoor haze (RESIDE OTS)"),
    _Entry("dehaze_maxim_indoor", "maxim-dehazing-indoor", "MAXIM trained on indoor haze (RESIDE ITS)"),
    # perception only: on low light with sensor noise they lose 2.6-3.5 dB PSNR to auto levels and the shipped
    # Q-MoE still picked brighten_maxim in 3 of 5 strong cases (benchmarks/maxim_notes.md)
    _Entry("brighten_maxim", "maxim-enhancement", "MAXIM trained on real low light (LOL)", "perception"),
    _Entry("retouch_maxim", "maxim-retouching", "MAXIM trained on global tone/colour retouch (MIT-Adobe FiveK)",
           "perception"),
    _Entry("sr_esrgan_thick_x4", "esrgan-thick-x4", "ESRGAN-thick ×4 (idealo RRDN, perceptual, DIV2K)",
           "perception"),
    _Entry("sr_esrgan_thick_x2", "esrgan-thick-x2", "ESRGAN-thick ×2 (idealo RRDN, perceptual, DIV2K)",
           "perception"),
)

_loaded = ModelCache()


def _availability(model: str) -> str | None:
    """Why the model cannot run here, or ``None`` (cheap: no torch import)."""
    for module in ("torch", "safetensors"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install {module})"
    from fourkagent.models.npm import unavailable_reason

    return unavailable_reason(model)


def get_model(model: str) -> NHWCModel:
    """The converted model on the current device (fp32), loaded once per process and device.

    Raises:
        MissingWeightsError: not pulled, or torch/safetensors missing.
        DeviceError: the requested device is not available.
    """
    reason = _availability(model)
    if reason:
        raise MissingWeightsError(f"npm model unavailable: {reason}")
    from fourkagent.models.nhwc import MAXIM_MULTIPLE, NHWCModel
    from fourkagent.models.npm import find, load

    entry = find(model)
    multiple = MAXIM_MULTIPLE if entry.arch == "MAXIM" else 1
    return _loaded.load(model, lambda: NHWCModel(load(model), multiple, entry.scale), supports_half=False)


def _run(model: str, img: Image) -> Image:
    from fourkagent.models.nhwc import MAXIM_OVERLAP, MAXIM_TILE
    from fourkagent.models.npm import find
    from fourkagent.models.tiling import run_model

    entry = find(model)
    if entry.arch == "MAXIM":
        return run_model(get_model(model), img, 1, tile=MAXIM_TILE, overlap=MAXIM_OVERLAP)
    return run_model(get_model(model), img, entry.scale)


def _tool(e: _Entry) -> Tool:
    from fourkagent.models.npm import NPM_MODELS

    m = NPM_MODELS[e.model]
    category: Category = m.category
    spec = ToolSpec(e.tool, category, f"{e.what}; npm {m.spec} converted to torch", scale=m.scale, backend="torch",
                    slow=True, preference=e.preference, weights=f"npm:{e.model}")
    return Tool(spec, partial(_run, e.model), partial(_availability, e.model))


TOOLS: list[Tool] = [_tool(e) for e in _ENTRIES]
"""Every npm expert (unavailable ones say which pull command brings them)."""
