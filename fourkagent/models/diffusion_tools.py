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


def pipeline_dir(folder: str) -> Path:
    """Where the pipeline ``folder`` lives in the current user model dir."""
    return default_model_dir() / folder


def _run(folder: str, kind: str, steps: int, img: Image) -> Image:
    tile = int(os.environ.get("FOURKAGENT_LATENT_TILE", "0") or 0)
    kwargs = {"latent_tile": tile} if tile else {}
    if kind == "multi-step":
        kwargs["steps"] = steps
    return load_cached(pipeline_dir(folder), kind, **kwargs)(img, seed=SEED)


def _tool(name: str, folder: str, kind: str, steps: int, desc: str) -> Tool:
    spec = ToolSpec(name, "super-resolution", desc, scale=4, backend="diffusers", slow=kind == "multi-step",
                    preference="perception", weights=folder + "/")
    return Tool(spec, partial(_run, folder, kind, steps), lambda: missing_reason(pipeline_dir(folder)))


TOOLS: list[Tool] = [
    _tool("sr_osediff_x4", "osediff", "one-step", 1,
          "OSEDiff x4: one-step diffusion SR on SD-2.1-base (perceptual, diffusers, GPU recommended)"),
    _tool("sr_pisasr_x4", "pisasr", "one-step", 1,
          "PiSA-SR x4: one-step pixel/semantic-aware diffusion SR on SD-2.1-base (perceptual, diffusers)"),
    _tool("sr_diffbir_x4", "diffbir", "multi-step", 50,
          "DiffBIR x4: 50-step latent diffusion restoration + SR (perceptual, slow, diffusers)"),
]
"""The diffusion SR experts, in registry order."""
