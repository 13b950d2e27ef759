"""Diffusion SR experts as tools: OSEDiff and PiSA-SR (one step), DiffBIR (50 steps, slow).

Each tool reads its diffusers-format folder from the user model dir at call time
(``$FOURKAGENT_MODEL_DIR/<folder>``, see :mod:`fourkagent.models.diffusion`) and is unavailable, with
the reason, when diffusers is not installed or the folder is missing or incomplete.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from fourkagent.imaging import Image
from fourkagent.models.diffusion import load_cached, missing_reason
from fourkagent.models.store import default_model_dir
from fourkagent.tools.base import Tool, ToolSpec

SEED = 0
"""Every diffusion tool run is seeded, so a run (and its resume) is reproducible."""


SETUP: dict[str, str] = {
    "osediff": "4kagent models pull osediff, then 4kagent models convert osediff --base SD21_BASE_DIR",
    "pisasr": "4kagent models add pisa_sr.pkl (PiSA-SR's release), then 4kagent models convert pisa-sr --base "
              "SD21_BASE_DIR",
}
"""How a user creates each one-step pipeline folder from the upstream release."""


def pipeline_dir(folder: str) -> Path:
    """Where the pipeline ``folder`` lives in the current user model dir."""
    return default_model_dir() / folder


def _run(folder: str, kind: str, scale: int, img: Image) -> Image:
    tile = int(os.environ.get("FOURKAGENT_LATENT_TILE", "0") or 0)
    sr = load_cached(pipeline_dir(folder), kind, **({"latent_tile": tile} if tile else {}))
    if kind == "diffbir":  # one loaded DiffBIR serves both factors
        from fourkagent.models.diffbir import DiffBIRSR

        assert isinstance(sr, DiffBIRSR)
        return sr(img, seed=SEED, scale=scale)
    return sr(img, seed=SEED)


def _missing(folder: str, kind: str) -> str | None:
    if kind == "diffbir":
        from fourkagent.models.diffbir import diffbir_missing_reason

        return diffbir_missing_reason(pipeline_dir(folder))
    return missing_reason(pipeline_dir(folder), SETUP.get(folder))


def _tool(name: str, folder: str, kind: str, desc: str, scale: int = 4) -> Tool:
    spec = ToolSpec(name, "super-resolution", desc, scale=scale, backend="diffusers", slow=kind == "diffbir",
                    preference="perception", weights=folder + "/")
    return Tool(spec, partial(_run, folder, kind, scale), partial(_missing, folder, kind))


TOOLS: list[Tool] = [
    _tool("sr_osediff_x4", "osediff", "one-step",
          "OSEDiff x4: one-step diffusion SR on SD-2.1-base (perceptual, diffusers, GPU recommended)"),
    _tool("sr_pisasr_x4", "pisasr", "one-step",
          "PiSA-SR x4: one-step pixel/semantic-aware diffusion SR on SD-2.1-base (perceptual, diffusers)"),
    _tool("sr_diffbir_x4", "diffbir", "diffbir",
          "DiffBIR v2 x4: BSRNet cleaning + IRControlNet on SD-2.1, 50 spaced steps, cfg 4 (perceptual, slow)"),
    _tool("sr_diffbir_x2", "diffbir", "diffbir",
          "DiffBIR v2 x2: BSRNet cleaning + IRControlNet on SD-2.1, 50 spaced steps, cfg 4 (perceptual, slow)", 2),
]
"""The diffusion SR experts, in registry order."""
