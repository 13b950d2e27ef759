"""Face experts: what can restore an aligned 512² face crop here.

Offline there are no face-restoration weights in any reachable package, so the experts are:
- ``unrestored``: the crop as it is (always present; choosing it leaves the face untouched);
- every available registry tool of the restoration categories below, run on the crop shrunk to the face's
  *native* scale (the resolution it had in the low-quality input, where its noise, JPEG blocks and blur
  live; after ×4 SR they are smeared over 4+ pixels and the tools' estimators no longer see them), then
  brought back to 512² with the best ×4 SR tool (``<tool>@native+<sr>``);
- every available neural ×4 SR tool run on the native-scale crop (``<tool>@native``): a 512² crop makes
  models affordable that are too slow for a whole 4K image;
- GFPGAN / CodeFormer / RestoreFormer (any model spandrel loads as ``FaceSR``) whose weights a user put
  in the model directory (``<model dir>/`` or ``<model dir>/faces/``); registered only when the files exist,
  run on :func:`fourkagent.devices.place`'s device (fp16 on CUDA only where spandrel declares ``supports_half``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fourkagent import devices
from fourkagent.errors import MissingWeightsError, ToolError
from fourkagent.imaging import Image, resize
from fourkagent.tools.base import Tool, ToolRegistry

RESTORE_CATEGORIES: tuple[str, ...] = (
    "denoising",
    "jpeg compression artifact removal",
    "motion deblurring",
    "defocus deblurring",
)
"""Registry categories whose tools run on face crops."""
MIN_NATIVE = 48
"""The native-scale crop is never smaller than this (pixels)."""
FACE_MODEL_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt")
FACE_MODEL_NAMES = ("gfpgan", "codeformer", "restoreformer", "gpen")
"""File names containing one of these (or any model file under ``faces/``) are face-model candidates."""

ExpertKind = Literal["unrestored", "tool", "sr-native", "face-model"]


@dataclass(frozen=True)
class FaceExpert:
    """A way to restore an aligned face crop: ``fn(crop, native_side) -> crop`` of the same size."""

    name: str
    kind: ExpertKind
    category: str
    """The registry category it comes from (``face restoration`` for the crop itself and face models)."""
    fn: Callable[[Image, int], Image]
    generative: bool = False
    """True for models that synthesise facial detail (only accepted when identity can be measured)."""

    def __call__(self, crop: Image, native_side: int | None = None) -> Image:
        """Run the expert (``native_side``: the crop's side at the face's native scale, default 1/4).

        Raises:
            ToolError: the expert failed or returned a wrong shape.
        """
        side = crop.shape[0] // 4 if native_side is None else native_side
        out = self.fn(crop, int(np.clip(side, MIN_NATIVE, crop.shape[0])))
        if out.shape != crop.shape or not np.isfinite(out).all():
            raise ToolError(f"{self.name} returned shape {out.shape} (expected {crop.shape}) or non-finite values")
        return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


class NoChange(Exception):
    """An expert's tool left the crop unchanged (nothing for it to restore); not a failure."""


def native_side(matrix_scale: float, upscale: float, size: int) -> int:
    """Side of the crop at the face's native scale (``matrix_scale``: crop px per image px;
    ``upscale``: image px per input px), clipped to ``[MIN_NATIVE, size]``."""
    return int(np.clip(round(size / max(matrix_scale * upscale, 1e-6)), MIN_NATIVE, size))


def _identity(crop: Image, side: int) -> Image:
    return crop


def _upscale_back(small: Image, size: int, sr: Tool | None) -> Image:
    """``small`` back to ``size``²: ×4 SR (when it does not overshoot) then cubic resize."""
    if sr is not None and small.shape[0] * 2 < size:
        small = sr(small)
    if small.shape[0] == size:
        return small
    return resize(small, (size, size), "cubic")


def _restore_native(tool: Tool, sr: Tool | None, crop: Image, side: int) -> Image:
    small = resize(crop, (side, side), "area") if side < crop.shape[0] else crop
    restored = tool(small)
    if np.array_equal(restored, small):
        raise NoChange(f"{tool.name} found nothing to restore")
    return _upscale_back(restored, crop.shape[0], sr)


def _sr_native(sr: Tool, crop: Image, side: int) -> Image:
    small = resize(crop, (side, side), "area") if side < crop.shape[0] else crop
    return _upscale_back(sr(small), crop.shape[0], None)


def face_model_files(model_dir: str | Path | None) -> list[Path]:
    """User-installed face-restoration weight files in ``model_dir`` (and its ``faces/`` folder)."""
    if not model_dir:
        return []
    root = Path(model_dir)
    found: list[Path] = []
    for folder, any_name in ((root, False), (root / "faces", True)):
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if p.is_file() and p.suffix.lower() in FACE_MODEL_SUFFIXES and (
                any_name or any(k in p.name.lower() for k in FACE_MODEL_NAMES)
            ):
                found.append(p)
    return found


_face_models = devices.ModelCache()


def _load_face_model(path: Path) -> Any:
    """A spandrel descriptor for a face-restoration file on the current device and dtype (fp32 unless spandrel
    says ``supports_half``), cached per path and :func:`fourkagent.devices.cache_key`."""
    if importlib.util.find_spec("spandrel") is None or importlib.util.find_spec("torch") is None:
        raise MissingWeightsError(f"{path.name} needs torch and spandrel (pip install torch spandrel)")
    return _face_models.load(str(path.resolve()), lambda: _read_face_model(path))


def _read_face_model(path: Path) -> Any:
    """Load a face-restoration file with spandrel (CodeFormer through spandrel_extra_arches when installed)."""
    from spandrel import ModelLoader

    if importlib.util.find_spec("spandrel_extra_arches") is not None:  # CodeFormer lives there
        import spandrel_extra_arches

        spandrel_extra_arches.install(ignore_duplicates=True)
    desc = ModelLoader(device="cpu").load_from_file(str(path))
    if getattr(desc, "purpose", None) != "FaceSR":
        raise ToolError(f"{path.name} is a {desc.architecture.name} model, not a face-restoration model")
    return desc.eval()


def _run_face_model(path: Path, crop: Image, side: int) -> Image:
    """GFPGAN-family forward: input and output in [-1, 1] at 512²."""
    import torch

    desc = _load_face_model(path)
    x = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None] * 2.0 - 1.0
    x = x.to(desc.device, desc.dtype)
    with torch.inference_mode():
        y = desc.model(x)
        y = y[0] if isinstance(y, (tuple, list)) else y
        out = ((y[0].float() + 1.0) / 2.0).clamp_(0.0, 1.0).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(out, dtype=np.float32)


def face_experts(
    registry: ToolRegistry | None = None,
    *,
    priority: str | None = None,
    model_dir: str | Path | None = None,
    heavy_sr: bool = True,
) -> list[FaceExpert]:
    """The experts available here, ``unrestored`` first.

    Args:
        registry: tool registry (default: the main one).
        priority: profile priority filtering SR tools (``fidelity``/``perception``).
        model_dir: where user-installed face models live.
        heavy_sr: include neural ×4 SR tools (on the native-scale crop, and to bring restored crops back).
    """
    if registry is None:
        from fourkagent.tools.registry import MAIN_REGISTRY

        registry = MAIN_REGISTRY
    experts = [FaceExpert("unrestored", "unrestored", "face restoration", _identity)]
    sr_tools = registry.for_step("super-resolution", 4, preference=priority)
    neural = [t for t in sr_tools if t.spec.backend != "classical"] if heavy_sr else []
    back = (neural or sr_tools or [None])[0]
    suffix = f"@native+{back.name}" if back is not None else "@native"
    for cat in RESTORE_CATEGORIES:
        for t in registry.for_step(cat):
            experts.append(FaceExpert(t.name + suffix, "tool", cat, partial(_restore_native, t, back)))
    for t in neural:
        experts.append(FaceExpert(f"{t.name}@native", "sr-native", "super-resolution", partial(_sr_native, t)))
    for path in face_model_files(model_dir):
        fn = partial(_run_face_model, path)
        experts.append(FaceExpert(f"face:{path.stem}", "face-model", "face restoration", fn, generative=True))
    return experts
