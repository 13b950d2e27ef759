"""Diffusion-based perceptual SR experts via diffusers: OSEDiff / PiSA-SR (one step) here, DiffBIR v2 in
:mod:`fourkagent.models.diffbir`.

A pipeline folder in the user model dir is in diffusers format::

    <model_dir>/<name>/unet/                       UNet2DConditionModel (config.json + weights)
    <model_dir>/<name>/vae/                        AutoencoderKL
    <model_dir>/<name>/scheduler/                  scheduler_config.json (DDPM / DDIM / ...)
    <model_dir>/<name>/prompt_embeds.safetensors   key "prompt_embeds", (1, L, D): the text-encoder output
                                                   of the conditioning prompt (precomputed once, so no text
                                                   encoder is loaded at run time)
    <model_dir>/<name>/fourkagent_pipeline.json    optional wrapper settings written by ``models convert``
                                                   (e.g. PiSA-SR: ``{"timestep": 1, "target": "residual"}``)
    <model_dir>/diffbir/controlnet/                DiffBIR only: the IRControlNet; its prompt file also holds
                                                   ``negative_prompt_embeds`` (see :mod:`fourkagent.models.diffbir`)

The one-step wrapper bicubic-upscales the LR image, VAE-encodes it and denoises in latent space. The UNet sees
only latent tiles (``latent_tile`` with ``latent_overlap``); the tiles' model outputs are blended with
the cross-fade weights of :mod:`fourkagent.models.tiling` (zero next to a tile's inner edge, then linear)
before every scheduler step, so seams are blended and a 4096² output never
needs the whole latent in the UNet. The VAE runs with diffusers' own tiling. The device is
:func:`fourkagent.devices.torch_device` (fp16 on CUDA, fp32 elsewhere); everything under ``torch.inference_mode()``; noise comes from a seeded CPU
``torch.Generator`` so results do not depend on the device's RNG.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from fourkagent.errors import MissingWeightsError, ToolError
from fourkagent.imaging import Image, resize
from fourkagent.models.tiling import span_weights, tile_spans

if TYPE_CHECKING:
    import torch

PROMPT_FILE = "prompt_embeds.safetensors"
"""The precomputed prompt embedding inside a pipeline folder."""
CONFIG_FILE = "fourkagent_pipeline.json"
"""Optional wrapper settings inside a pipeline folder (keyword arguments of the wrapper class)."""
SUBFOLDERS = ("unet", "vae", "scheduler")
"""The diffusers components a pipeline folder must hold."""
DEFAULT_LATENT_TILE = 96
"""Latent tile side (768 px for SD's 8× VAE)."""
DEFAULT_LATENT_OVERLAP = 32
"""Latent pixels shared by neighbouring tiles."""


def missing_reason(folder: Path, setup: str | None = None) -> str | None:
    """Why the pipeline in ``folder`` cannot run here (diffusers absent, folder or part missing), or ``None``;
    ``setup`` says how to create a missing folder (default: which parts to install)."""
    if importlib.util.find_spec("diffusers") is None:
        return "needs diffusers (pip install diffusers)"
    if not folder.is_dir():
        how = setup or f"install unet/, vae/, scheduler/, {PROMPT_FILE} there"
        return f"no diffusers pipeline folder at {folder} ({how})"
    missing = [s + "/" for s in SUBFOLDERS if not (folder / s).is_dir()]
    if not (folder / PROMPT_FILE).is_file():
        missing.append(PROMPT_FILE)
    if missing:
        return f"{folder} lacks {', '.join(missing)}"
    return None


def save_prompt_embedding(folder: str | Path, embeds: torch.Tensor, negative: torch.Tensor | None = None) -> Path:
    """Write a precomputed prompt embedding ``(1, L, D)`` (e.g. the CLIP text encoder's output) into ``folder``,
    with the negative prompt's (key ``negative_prompt_embeds``, used by classifier-free guidance) when given."""
    from safetensors.torch import save_file

    path = Path(folder) / PROMPT_FILE
    tensors = {"prompt_embeds": embeds}
    if negative is not None:
        tensors["negative_prompt_embeds"] = negative
    save_file({k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}, str(path))
    return path


def pick_device() -> tuple[str, torch.dtype]:
    """The current device (:mod:`fourkagent.devices`) and dtype: fp16 on CUDA (SD UNets and VAEs support
    half precision), else fp32.

    Raises:
        DeviceError: the requested device is not available.
    """
    from fourkagent import devices

    dev = devices.torch_device()
    return str(dev), devices.autocast_dtype(supports_half=True, device=dev)


def pipeline_config(folder: Path) -> dict[str, Any]:
    """The wrapper settings stored in ``folder`` (empty when there are none).

    Raises:
        ToolError: the settings file is not a JSON object.
    """
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ToolError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(cfg, dict):
        raise ToolError(f"{path}: expected a JSON object")
    return cfg


def _aligned_spans(length: int, tile: int, overlap: int, mult: int) -> list[tuple[int, int]]:
    """``tile_spans`` on a grid of ``mult`` (``length`` must be a multiple of ``mult``)."""
    spans = tile_spans(length // mult, max(1, tile // mult), -(-overlap // mult))
    return [(a * mult, b * mult) for a, b in spans]


class DiffusionSR:
    """Shared loading, tiling and VAE code of the one-step and the DiffBIR wrapper."""

    def __init__(self, unet: Any, vae: Any, scheduler: Any, prompt_embeds: torch.Tensor, *, scale: int = 4,
                 device: str | None = None, dtype: torch.dtype | None = None,
                 latent_tile: int = DEFAULT_LATENT_TILE, latent_overlap: int = DEFAULT_LATENT_OVERLAP,
                 vae_tile: int | None = None) -> None:
        """Wrap loaded components; ``vae_tile`` (pixels) overrides the VAE's own tile size."""
        dev, dt = pick_device()
        self.device, self.dtype = device or dev, dtype or dt
        self.vae_dtype = _vae_dtype(vae.config, self.dtype)
        self.unet = _placed(unet, self.device, self.dtype)
        self.vae = _placed(vae, self.device, self.vae_dtype)
        self.vae.enable_tiling()
        self.vae_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        if vae_tile:
            self.vae.tile_sample_min_size = int(vae_tile)
            self.vae.tile_latent_min_size = int(vae_tile) // self.vae_factor
        self.unet_factor = 2 ** (len(unet.config.block_out_channels) - 1)
        self.scheduler = scheduler
        self.prompt_embeds = prompt_embeds.to(self.device, self.dtype)
        self.scale, self.latent_tile, self.latent_overlap = scale, int(latent_tile), int(latent_overlap)
        self.latent_channels = int(vae.config.latent_channels)
        self.sf = float(getattr(vae.config, "scaling_factor", 1.0))
        self.lock = threading.Lock()

    SETTINGS: tuple[str, ...] = ()
    """Keyword arguments a pipeline folder's ``fourkagent_pipeline.json`` may set."""

    @classmethod
    def from_pretrained(cls, folder: str | Path, **kwargs: Any) -> DiffusionSR:
        """Load a diffusers-format folder (local files only; see the module doc); the folder's settings
        file fills keyword arguments not given.

        Raises:
            MissingWeightsError: diffusers is absent or the folder is incomplete.
            ToolError: a component fails to load.
        """
        folder = Path(folder)
        reason = missing_reason(folder)
        if reason:
            raise MissingWeightsError(reason)
        for key, value in pipeline_config(folder).items():
            if key in cls.SETTINGS:
                kwargs.setdefault(key, value)
        try:
            import diffusers
            from safetensors.torch import load_file

            dtype = kwargs.setdefault("dtype", pick_device()[1])
            opts: dict[str, Any] = {"local_files_only": True, "low_cpu_mem_usage": False}
            unet = diffusers.UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=dtype, **opts)
            vae_cfg = diffusers.AutoencoderKL.load_config(folder, subfolder="vae", local_files_only=True)
            vae = diffusers.AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=_vae_dtype(vae_cfg, dtype),
                                                          **opts)
            cfg = diffusers.DDIMScheduler.load_config(folder, subfolder="scheduler", local_files_only=True)
            sched_cls = getattr(diffusers, str(cfg.get("_class_name", "DDIMScheduler")), diffusers.DDIMScheduler)
            scheduler = sched_cls.from_config(cfg)
            embeds = load_file(str(folder / PROMPT_FILE))["prompt_embeds"]
        except Exception as exc:  # noqa: BLE001 - any load failure becomes one line
            raise ToolError(f"cannot load diffusion pipeline {folder}: {type(exc).__name__}: {exc}") from exc
        if embeds.ndim != 3 or embeds.shape[-1] != unet.config.cross_attention_dim:
            raise ToolError(f"{folder / PROMPT_FILE}: shape {tuple(embeds.shape)}, expected "
                            f"(1, L, {unet.config.cross_attention_dim})")
        return cls(unet, vae, scheduler, embeds, **kwargs)

    # -- pixel <-> latent -------------------------------------------------------------------------
    def _prepare(self, img: Image) -> tuple[torch.Tensor, tuple[int, int]]:
        """Bicubic-upscale, reflect-pad to the model grid; returns (1, 3, H', W') in [-1, 1] and the output size."""
        import torch

        arr = np.asarray(img, dtype=np.float32)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ToolError(f"expected an HxWx3 image, got shape {arr.shape}")
        h, w = arr.shape[0] * self.scale, arr.shape[1] * self.scale
        up = resize(arr, (w, h), "cubic") if self.scale != 1 else arr
        m = self.vae_factor * self.unet_factor
        ph, pw = -h % m, -w % m
        if ph or pw:
            up = np.pad(up, ((0, ph), (0, pw), (0, 0)), mode="reflect" if min(h, w) > max(ph, pw) else "edge")
        x = torch.from_numpy(np.ascontiguousarray(up.transpose(2, 0, 1)))[None]
        return x.mul(2.0).sub(1.0), (h, w)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """VAE-encode (tiled) to the latent mean, scaled; float32 on the device."""
        dist = self.vae.encode(x.to(self.device, self.vae_dtype)).latent_dist
        return dist.mode().float() * self.sf

    def decode(self, z: torch.Tensor, size: tuple[int, int]) -> Image:
        """VAE-decode (tiled), crop to ``size`` (h, w); float32 HxWx3 in [0, 1]."""
        y = self.vae.decode((z / self.sf).to(self.vae_dtype)).sample.float()
        y = y[0, :, : size[0], : size[1]].add(1.0).div(2.0).clamp(0.0, 1.0)
        return np.ascontiguousarray(y.permute(1, 2, 0).cpu().numpy(), dtype=np.float32)

    # -- tiled UNet -------------------------------------------------------------------------------
    def tiled(self, z: torch.Tensor, fn: Callable[[slice, slice], torch.Tensor]) -> torch.Tensor:
        """``fn(rows, cols)`` (a model output for that latent tile) evaluated tile by tile and cross-faded."""
        import torch

        _, _, h, w = z.shape
        tile, ov, m = self.latent_tile, min(self.latent_overlap, self.latent_tile // 2), self.unet_factor
        ys, xs = _aligned_spans(h, tile, ov, m), _aligned_spans(w, tile, ov, m)
        trim = 3 * ov // 8  # as in fourkagent.models.tiling: a tile's outermost shared pixels get weight 0
        out = torch.zeros((1, self.latent_channels, h, w), dtype=torch.float32, device=z.device)
        acc = torch.zeros((1, 1, h, w), dtype=torch.float32, device=z.device)
        for iy, (y0, y1) in enumerate(ys):
            wy = span_weights(ys, iy, trim)
            for ix, (x0, x1) in enumerate(xs):
                wx = span_weights(xs, ix, trim)
                eps = fn(slice(y0, y1), slice(x0, x1))
                wt = torch.from_numpy(np.outer(wy, wx)).to(z.device)[None, None]
                out[:, :, y0:y1, x0:x1].addcmul_(eps[:, : self.latent_channels], wt)
                acc[:, :, y0:y1, x0:x1].add_(wt)
        return out.div_(acc.clamp_min_(1e-8))

    def tiled_unet(self, z: torch.Tensor, t: Any) -> torch.Tensor:
        """The UNet's output on ``z``, tile by tile, cross-faded."""
        return self.tiled(z, lambda sy, sx: self.unet(z[:, :, sy, sx].to(self.dtype), t,
                                                      encoder_hidden_states=self.prompt_embeds).sample.float())

    def __call__(self, img: Image, seed: int = 0) -> Image:
        """Super-resolve ``img`` (float32 HxWx3 RGB in [0, 1]) by ``scale``."""
        import torch

        with self.lock, torch.inference_mode():
            x, size = self._prepare(img)
            gen = torch.Generator("cpu").manual_seed(int(seed))
            return self.decode(self.denoise(self.encode(x), gen), size)

    def denoise(self, z: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Map the LR latent to the restored latent (subclasses)."""
        raise NotImplementedError


def _vae_dtype(config: Any, dtype: torch.dtype) -> torch.dtype:
    """fp32 for a VAE whose config asks to be upcast (``force_upcast``), else ``dtype``."""
    import torch

    upcast = config.get("force_upcast", False) if isinstance(config, dict) else getattr(config, "force_upcast", False)
    return torch.float32 if bool(upcast) else dtype


def _placed(model: Any, device: str, dtype: torch.dtype) -> Any:
    """``model`` on ``device`` in ``dtype`` (cast only when needed), in eval mode."""
    if next(model.parameters()).dtype != dtype:
        model = model.to(dtype=dtype)
    return model.to(device).eval()


def _x0(sched: Any, model_out: torch.Tensor, z: torch.Tensor, t: int) -> torch.Tensor:
    """The clean-latent estimate from a model output at timestep ``t`` (epsilon / v / sample prediction)."""
    a = sched.alphas_cumprod[int(t)].to(z)
    kind = sched.config.get("prediction_type", "epsilon")
    if kind == "epsilon":
        return (z - (1 - a).sqrt() * model_out) / a.sqrt()
    if kind == "v_prediction":
        return a.sqrt() * z - (1 - a).sqrt() * model_out
    if kind == "sample":
        return model_out
    raise ToolError(f"unsupported scheduler prediction_type {kind!r}")


class OneStepSR(DiffusionSR):
    """OSEDiff / PiSA-SR: the LR latent is treated as the noisy latent at one fixed timestep and denoised
    in a single UNet evaluation (deterministic: no noise is drawn)."""

    SETTINGS = ("timestep", "target")

    def __init__(self, *args: Any, timestep: int = 999, target: str = "x0", **kwargs: Any) -> None:
        """``timestep``: the fixed timestep of the one step (OSEDiff 999, PiSA-SR 1); ``target``: ``x0``
        (OSEDiff: the scheduler's clean-latent formula) or ``residual`` (PiSA-SR: latent − UNet output)."""
        super().__init__(*args, **kwargs)
        if target not in ("x0", "residual"):
            raise ToolError(f"unknown one-step target {target!r} (x0 or residual)")
        self.timestep, self.target = int(timestep), target

    def denoise(self, z: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """One tiled UNet step at ``timestep``, then the x0 formula or the residual."""
        import torch

        t = torch.tensor([self.timestep], device=z.device)
        out = self.tiled_unet(z, t)
        return z - out if self.target == "residual" else _x0(self.scheduler, out, z, self.timestep)


def _kind(kind: str) -> type[DiffusionSR]:
    """The wrapper class of a pipeline kind: ``one-step`` or ``diffbir``."""
    if kind == "diffbir":
        from fourkagent.models.diffbir import DiffBIRSR

        return DiffBIRSR
    if kind != "one-step":
        raise ToolError(f"unknown diffusion pipeline kind {kind!r}")
    return OneStepSR



_cache: dict[tuple[str, str, str, str], DiffusionSR] = {}
_cache_lock = threading.Lock()


def load_cached(folder: Path, kind: str, **kwargs: Any) -> DiffusionSR:
    """Load (once per folder and kind) a ``one-step`` or ``diffbir`` wrapper."""
    key = (str(folder.resolve()), kind, repr(sorted(kwargs.items())), repr(pick_device()))
    with _cache_lock:
        if key not in _cache:
            _cache[key] = _kind(kind).from_pretrained(folder, **kwargs)
        return _cache[key]


def clear_cache() -> None:
    """Forget loaded pipelines (frees their memory)."""
    with _cache_lock:
        _cache.clear()
