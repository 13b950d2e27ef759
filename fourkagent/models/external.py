"""Tools from user-installed weights: every installed spandrel-loadable model becomes a registered ``Tool``.

Building the tools is cheap (no torch import, no hashing). On a tool's first call its file is read
once, checked against the catalogue's (or the install record's) sha256, loaded with the safe loader
(:mod:`fourkagent.weights`), detected by spandrel, cached in-process and run with tiled inference.
Face models (GFPGAN, CodeFormer) are left to the face stage, which finds them in the same directory.
"""

from __future__ import annotations

import importlib.util
import os
from functools import partial
from pathlib import Path
from typing import Any

from fourkagent.devices import ModelCache
from fourkagent.errors import FourKError, ToolError
from fourkagent.imaging import Image
from fourkagent.models.store import Installed, describe_weights, installed
from fourkagent.tools.base import Tool, ToolSpec
from fourkagent.vocabulary import CATEGORIES

SLOW_ARCHS = frozenset({"SwinIR", "HAT", "DAT", "DRCT", "ATD", "GRL", "RGT", "IPT", "Swin2SR", "SCUNet", "NAFNet",
                        "FBCNN", "Restormer", "MPRNet", "Uformer", "KBNet", "FFTformer", "RetinexFormer"})
"""Architectures too heavy for 4K-sized inputs on a CPU (Fast4K drops them above the size threshold)."""
_SLOW_ESRGAN_BLOCKS = 8
_loaded = ModelCache()
"""((path, sha256), device/precision key) -> the spandrel descriptor placed on that device."""


class _Module:
    """Adapts a spandrel descriptor (which pads inputs to its size requirements) to ``tiled_forward``.

    A greyscale model (SwinIR's JPEG CAR) is applied to each RGB channel as a batch of three.
    """

    def __init__(self, desc: Any) -> None:
        self.desc = desc

    def parameters(self) -> Any:
        """The wrapped model's parameters (``tiled_forward`` reads the device from them)."""
        return self.desc.model.parameters()

    def __call__(self, x: Any) -> Any:
        """Forward one tile."""
        if self.desc.input_channels == 1:
            n, c, h, w = x.shape
            y = self.desc(x.reshape(n * c, 1, h, w))
            return y.reshape(n, c, *y.shape[-2:])
        return self.desc(x)


def descriptor(item: Installed) -> Any:
    """The checked spandrel descriptor of ``item`` on the current device (fp16 on CUDA when it supports half)."""
    return _loaded.load((str(item.path), item.sha256), lambda: _checked(item))


def _checked(item: Installed) -> Any:
    """Load ``item`` with spandrel (hash-verified) and check its scale and channels."""
    desc = describe_weights(item.path, item.sha256).eval()
    if int(desc.scale) != item.scale:
        raise ToolError(f"{item.path.name}: a x{desc.scale} model, recorded as x{item.scale}")
    if (desc.input_channels, desc.output_channels) not in ((3, 3), (1, 1)):
        raise ToolError(f"{item.path.name}: {desc.input_channels}->{desc.output_channels} channels; "
                        "only RGB or greyscale models run as tools")
    return desc


def run(item: Installed, tile: int | None, img: Image) -> Image:
    """Run the installed spandrel model ``item`` on ``img``, tiled (``tile`` px; None: the default)."""
    from fourkagent.models.tiling import run_model

    return run_model(_Module(descriptor(item)), img, item.scale, tile=tile)  # type: ignore[arg-type]


def _availability(item: Installed) -> str | None:
    if item.problem:
        return item.problem
    if not item.path.is_file():
        return f"{item.path} was removed"
    loader = item.entry.loader if item.entry else "spandrel"
    if loader == "diffusers":
        note = item.entry.note if item.entry and item.entry.note else "no wrapper installed"
        return f"{item.name} is a diffusion release, not a spandrel model: {note}"
    if loader == "spandrel-extra" and importlib.util.find_spec("spandrel_extra_arches") is None:
        return f"{item.arch} is not in spandrel 0.4.2 core (pip install spandrel-extra-arches)"
    missing = [m for m in ("torch", "spandrel") if importlib.util.find_spec(m) is None]
    if missing:
        return f"needs {', '.join(missing)} (pip install {' '.join(missing)})"
    return None


def _is_slow(item: Installed) -> bool:
    if item.entry is not None:
        return item.entry.slow
    if item.arch == "ESRGAN":  # RRDBNet: slow when large; size is a cheap proxy (23 blocks ≈ 64 MB)
        return item.path.stat().st_size > _SLOW_ESRGAN_BLOCKS * 2_800_000
    return item.arch in SLOW_ARCHS


def _tool(item: Installed) -> Tool:
    entry = item.entry
    name = entry.tool_name if entry else "ext_" + "".join(c if c.isalnum() else "_" for c in item.name.lower())
    category = item.category if item.category in CATEGORIES else "super-resolution"
    problem = None if item.category in CATEGORIES else f"unknown category {item.category!r} in its install record"
    desc = f"{item.arch} x{item.scale} from {item.path.name} (user-installed{', ' + entry.licence if entry else ''})"
    spec = ToolSpec(name, category, desc, scale=item.scale, backend="torch", slow=_is_slow(item),  # type: ignore[arg-type]
                    preference=entry.preference if entry else "both", weights=str(item.path))
    tile = int(os.environ.get("FOURKAGENT_TILE", "0") or 0) or 256
    return Tool(spec, partial(run, item, tile), lambda: problem or _availability(item))


def external_tools(model_dir: str | os.PathLike[str] | None = None) -> list[Tool]:
    """One tool per installed, non-face weights file; broken files give unavailable tools, never errors."""
    tools: list[Tool] = []
    names: set[str] = set()
    try:
        items = installed(model_dir)
    except (OSError, FourKError) as exc:
        return [_broken_dir(Path(model_dir or "."), exc)]
    for item in items:
        if item.category == "face restoration":
            continue
        tool = _tool(item)
        if tool.name in names:  # two files claim one name: keep the first
            continue
        names.add(tool.name)
        tools.append(tool)
    return tools


def _broken_dir(root: Path, exc: Exception) -> Tool:
    reason = f"model directory {root} unreadable ({type(exc).__name__}: {exc})"

    def fail(img: Image) -> Image:
        raise ToolError(reason)

    spec = ToolSpec("ext_model_dir", "super-resolution", "user-installed models", scale=1, backend="torch")
    return Tool(spec, fail, lambda: reason)
