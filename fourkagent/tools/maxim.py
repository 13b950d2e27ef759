"""MAXIM experts trained on real degradations (SIDD noise, GoPro blur, Rain13K, RESIDE haze, LOL low light,
FiveK retouch), pulled from npm and converted to torch (:mod:`fourkagent.models.npm`).

Each tool is unavailable (with the pull command as reason) until ``4kagent models pull maxim-…`` ran;
the README's set-up pulls them. They run tiled (:data:`fourkagent.models.maxim.TILE`) on the current
device and cost tens of seconds per megapixel on two CPU cores (``seconds_per_mp``, measured by
``benchmarks/maxim.py``), so every one is ``slow`` and Fast4K drops it where a step would cost more than
the profile's step budget.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from fourkagent.devices import ModelCache
from fourkagent.errors import MissingWeightsError
from fourkagent.imaging import Image
from fourkagent.tools.base import Category, Tool, ToolSpec

if TYPE_CHECKING:
    from fourkagent.models.maxim import Maxim


@dataclass(frozen=True)
class _Entry:
    tool: str
    model: str
    """Key of :data:`fourkagent.models.npm.NPM_MODELS`."""
    category: Category
    what: str
    seconds_per_mp: float


_ENTRIES: tuple[_Entry, ...] = (
    _Entry("denoise_maxim", "maxim-denoising", "denoising", "real sensor noise (SIDD)", 85.0),
    _Entry("deblur_motion_maxim", "maxim-deblurring", "motion deblurring", "real camera-shake blur (GoPro)", 85.0),
    _Entry("derain_maxim", "maxim-deraining", "deraining", "rain streaks (Rain13K)", 60.0),
    _Entry("dehaze_maxim_outdoor", "maxim-dehazing-outdoor", "dehazing", "outdoor haze (RESIDE OTS)", 60.0),
    _Entry("dehaze_maxim_indoor", "maxim-dehazing-indoor", "dehazing", "indoor haze (RESIDE ITS)", 60.0),
    _Entry("brighten_maxim", "maxim-enhancement", "brightening", "real low light (LOL)", 60.0),
    _Entry("retouch_maxim", "maxim-retouching", "brightening", "global tone and colour retouch (MIT-Adobe FiveK)", 60.0),
)

_loaded = ModelCache()


def _availability(model: str) -> str | None:
    """Why the model cannot run here, or ``None`` (cheap: no torch import)."""
    for module in ("torch", "safetensors"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install {module})"
    from fourkagent.models.npm import unavailable_reason

    return unavailable_reason(model)


def get_model(model: str) -> Maxim:
    """The converted MAXIM on the current device (fp32), loaded once per process and device.

    Raises:
        MissingWeightsError: not pulled, or torch/safetensors missing.
        DeviceError: the requested device is not available.
    """
    reason = _availability(model)
    if reason:
        raise MissingWeightsError(f"MAXIM model unavailable: {reason}")
    from fourkagent.models.maxim import Maxim
    from fourkagent.models.npm import load

    return _loaded.load(model, lambda: Maxim(load(model)), supports_half=False)


def _run(model: str, img: Image) -> Image:
    from fourkagent.models.maxim import OVERLAP, TILE
    from fourkagent.models.tiling import run_model

    return run_model(get_model(model), img, 1, tile=TILE, overlap=OVERLAP)


def _tool(e: _Entry) -> Tool:
    spec = ToolSpec(e.tool, e.category, f"MAXIM trained on {e.what}; npm {e.model} converted to torch",
                    backend="torch", slow=True, weights=f"npm:{e.model}", seconds_per_mp=e.seconds_per_mp)
    return Tool(spec, partial(_run, e.model), partial(_availability, e.model))


TOOLS: list[Tool] = [_tool(e) for e in _ENTRIES]
"""Every MAXIM expert (unavailable ones say which pull command brings them)."""
