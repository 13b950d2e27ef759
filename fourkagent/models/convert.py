"""``4kagent models convert``: upstream one-step diffusion SR releases → our diffusers pipeline folders.

OSEDiff (``osediff.pkl``) and PiSA-SR (``pisa_sr.pkl``) ship PEFT LoRA weights for Stable Diffusion
2.1-base, saved as ``{k: v for k, v in unet.state_dict().items() if "lora" in k ...}`` after
``unet.add_adapter(LoraConfig(r=rank, ...), adapter_name=...)``; their keys read
``<module>.lora_A.<adapter>.weight`` / ``<module>.lora_B.<adapter>.weight`` (OSEDiff also stores its
retrained ``conv_in.base_layer.weight``/``.bias`` and a VAE-encoder LoRA). Converting folds every
adapter into the base weights exactly as PEFT's ``merge_and_unload`` does,
``W += (lora_alpha / r) · B·A`` (for convolutions ``B`` is 1×1 and the product runs over the rank), with
PEFT's default ``lora_alpha = 8`` (the upstream configs do not set it), then saves the merged UNet/VAE,
the scheduler and the prompt embedding in the folder layout :mod:`fourkagent.models.diffusion` loads,
plus the wrapper settings (OSEDiff: x0 at t = 999; PiSA-SR default mode: latent − UNet output at t = 1).
No PEFT is needed. The folder is written next to its final place and renamed only when complete.

DiffBIR v2 (``v2.pth``: the IRControlNet's state dict in LDM naming) is renamed to diffusers names by
:func:`fourkagent.models.diffbir.ldm_to_diffusers` and saved as ``controlnet/`` next to the unchanged
SD-2.1-base UNet/VAE/scheduler, the positive ("") and negative prompt embeddings and the settings
(50 steps, cfg 4, control scale 1, stage-1 model ``bsrnet-x4``, which stays a separate installed file).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fourkagent.errors import FourKError
from fourkagent.models.diffusion import CONFIG_FILE, save_prompt_embedding
from fourkagent.models.store import default_model_dir, installed
from fourkagent.weights import read_verified

PEFT_DEFAULT_ALPHA = 8.0
"""``LoraConfig.lora_alpha`` default; OSEDiff and PiSA-SR build their configs without setting it."""
_LORA_A = re.compile(r"^(?P<module>.+)\.lora_A\.(?P<adapter>[^.]+)\.weight$")


class ConvertError(FourKError):
    """An upstream checkpoint or base model cannot be converted (one-line reason)."""


@dataclass(frozen=True)
class Recipe:
    """How one upstream release becomes a pipeline folder."""

    name: str
    """Catalogue name of the upstream checkpoint."""
    folder: str
    """Pipeline folder in the model dir (the diffusion tool reads it)."""
    settings: dict[str, Any]
    """Wrapper settings written to the folder's ``fourkagent_pipeline.json``."""
    vae_key: str | None = None
    """Key of the VAE LoRA state dict, if the release has one."""


RECIPES: dict[str, Recipe] = {
    "osediff": Recipe("osediff", "osediff", {"timestep": 999, "target": "x0"}, vae_key="state_dict_vae"),
    "pisa-sr": Recipe("pisa-sr", "pisasr", {"timestep": 1, "target": "residual"}),
    "diffbir-v2": Recipe("diffbir-v2", "diffbir", {"steps": 50, "cfg_scale": 4.0, "control_scale": 1.0,
                                                   "cleaner": "bsrnet-x4"}),
}
"""Supported releases (PiSA-SR in its default mode: pixel and semantic LoRAs both at weight 1)."""


def lora_merge_terms(state: Mapping[str, Any], lora_alpha: float = PEFT_DEFAULT_ALPHA) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split an upstream PEFT state dict into (replacements, deltas), both keyed by plain diffusers names.

    Replacements are trained base weights (``x.base_layer.weight`` → ``x.weight``, or plain keys);
    deltas are ``scale · B·A`` per adapted weight, summed over adapters, in float32.

    Raises:
        ConvertError: a LoRA A matrix without its B, or shapes that do not multiply.
    """
    import torch

    replace: dict[str, Any] = {}
    deltas: dict[str, Any] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ConvertError(f"{key}: expected a tensor, found {type(value).__name__}")
        m = _LORA_A.match(key)
        if m is None:
            if ".lora_" not in key:
                replace[key.replace(".base_layer.", ".")] = value
            elif ".lora_B." not in key or key.replace(".lora_B.", ".lora_A.") not in state:
                raise ConvertError(f"{key}: unsupported LoRA entry (only plain PEFT LoRA A/B pairs are merged)")
            continue
        b_key = f"{m['module']}.lora_B.{m['adapter']}.weight"
        if b_key not in state:
            raise ConvertError(f"{key} has no matching {b_key}")
        a, b = value.float(), state[b_key].float()
        r = a.shape[0]
        if b.shape[1] != r:
            raise ConvertError(f"{m['module']}: lora_A has rank {r}, lora_B {tuple(b.shape)}")
        if a.ndim == 2:
            delta = b @ a
        elif a.ndim == 4 and b.shape[2:] == (1, 1):
            delta = torch.einsum("or,rikl->oikl", b[:, :, 0, 0], a)
        else:
            raise ConvertError(f"{m['module']}: unsupported LoRA shapes {tuple(a.shape)} / {tuple(b.shape)}")
        target = m["module"].replace(".base_layer", "") + ".weight"
        deltas[target] = deltas.get(target, 0) + delta * (lora_alpha / r)
    return replace, deltas


def merge_lora(model: Any, state: Mapping[str, Any], lora_alpha: float = PEFT_DEFAULT_ALPHA) -> int:
    """Fold an upstream PEFT LoRA state dict into ``model`` in place; returns how many weights changed.

    Raises:
        ConvertError: a key the model does not have, or a shape mismatch (the wrong base model).
    """
    import torch

    replace, deltas = lora_merge_terms(state, lora_alpha)
    own = model.state_dict()
    unknown = [k for k in [*replace, *deltas] if k not in own]
    if unknown:
        raise ConvertError(f"{len(unknown)} checkpoint weight(s) are not in the base model (e.g. {unknown[0]}); "
                           "is --base a Stable Diffusion 2.1-base folder?")
    with torch.no_grad():
        for key, value in [*replace.items(), *deltas.items()]:
            if own[key].shape != value.shape:
                raise ConvertError(f"{key}: checkpoint shape {tuple(value.shape)}, base model {tuple(own[key].shape)}")
        for key, value in replace.items():
            own[key].copy_(value.to(own[key].dtype))
        for key, delta in deltas.items():
            own[key].copy_((own[key].float() + delta).to(own[key].dtype))
    return len(set(replace) | set(deltas))


def load_upstream(path: str | os.PathLike[str], sha256: str | None = None) -> dict[str, Any]:
    """An upstream OSEDiff / PiSA-SR checkpoint (see :func:`_torch_load`).

    Raises:
        ConvertError: unreadable or not such a checkpoint. WeightsError: hash mismatch.
    """
    obj = _torch_load(Path(path), sha256)
    if not isinstance(obj, dict) or "state_dict_unet" not in obj:
        raise ConvertError(f"{Path(path).name}: not an OSEDiff / PiSA-SR checkpoint (no state_dict_unet)")
    return obj


def load_diffbir(path: str | os.PathLike[str], sha256: str | None = None) -> dict[str, Any]:
    """DiffBIR's ``v2.pth``: the ControlNet state dict (unwrapped from ``state_dict`` and a ``module.``
    prefix, as upstream's loader does).

    Raises:
        ConvertError: unreadable or not a dict of tensors. WeightsError: hash mismatch.
    """
    import torch

    obj = _torch_load(Path(path), sha256)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConvertError(f"{Path(path).name}: not a DiffBIR ControlNet state dict (expected a dict of tensors)")
    if all(str(k).startswith("module.") for k in obj):
        obj = {str(k)[len("module."):]: v for k, v in obj.items()}
    return obj


def _torch_load(p: Path, sha256: str | None) -> Any:
    """A ``.pkl``/``.pth`` checkpoint (tensors, lists, ints, strings) loaded with ``torch.load(weights_only=True)``
    after the hash check.

    Raises:
        ConvertError: unreadable or unsafe. WeightsError: hash mismatch.
    """
    import torch

    data = read_verified(p, sha256)
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for unsafe content, EOFError/RuntimeError for damage
        raise ConvertError(f"{p.name}: refused by the safe loader ({type(exc).__name__}: "
                           f"{(str(exc).splitlines() or [''])[0][:160]})") from None
    return obj


def encode_prompt(base: Path, prompt: str) -> Any:
    """The base model's CLIP text-encoder output for ``prompt`` (1, 77, D), as the upstream ``encode_prompt``.

    Raises:
        ConvertError: transformers or the base's tokenizer/text encoder is missing.
    """
    try:
        from transformers import AutoTokenizer, CLIPTextModel
    except ImportError:
        raise ConvertError("encoding the prompt needs transformers (pip install transformers), or pass "
                           "--prompt-embeds FILE (a safetensors file with key prompt_embeds)") from None
    import torch

    try:
        tok = AutoTokenizer.from_pretrained(base, subfolder="tokenizer", local_files_only=True)
        enc = CLIPTextModel.from_pretrained(base, subfolder="text_encoder", local_files_only=True).eval()
    except Exception as exc:  # noqa: BLE001 - any load failure is one line
        raise ConvertError(f"cannot load tokenizer/text_encoder from {base}: {type(exc).__name__}: {exc}") from None
    ids = tok(prompt, max_length=tok.model_max_length, padding="max_length", truncation=True, return_tensors="pt")
    with torch.no_grad():
        return enc(ids.input_ids)[0]


def _prompt_embeds(base: Path, prompt: str, embeds_file: str | os.PathLike[str] | None,
                   key: str = "prompt_embeds") -> Any:
    if embeds_file is None:
        return encode_prompt(base, prompt)
    from safetensors.torch import load_file

    try:
        return load_file(str(embeds_file))[key]
    except Exception as exc:  # noqa: BLE001
        raise ConvertError(f"{embeds_file}: no {key} tensor ({type(exc).__name__}: {exc})") from None


def _irc(state: dict[str, Any], unet: Any) -> Any:
    """The IRControlNet of a ``v2.pth`` state dict, shaped after the base ``unet``."""
    from fourkagent.models.diffbir import build_controlnet, controlnet_config, ldm_to_diffusers

    cfg = controlnet_config(dict(unet.config))
    try:
        return build_controlnet(cfg, ldm_to_diffusers(state, cfg))
    except ValueError as exc:
        raise ConvertError(f"not a DiffBIR v2 IRControlNet for this base ({exc}); is --base a Stable Diffusion "
                           "2.1-base folder?") from None


def _source(recipe: Recipe, model_dir: Path, src: str | os.PathLike[str] | None) -> tuple[Path, str | None]:
    if src is not None:
        return Path(src), None
    item = next((i for i in installed(model_dir) if i.name == recipe.name), None)
    if item is None or item.problem:
        why = item.problem if item else "not installed"
        raise ConvertError(f"{recipe.name}: {why}; run `4kagent models pull {recipe.name}` (or `models add FILE`), "
                           "or pass --from FILE")
    return item.path, item.sha256


def convert(name: str, base: str | os.PathLike[str], *, source: str | os.PathLike[str] | None = None,
            model_dir: str | os.PathLike[str] | None = None, prompt: str = "",
            prompt_embeds: str | os.PathLike[str] | None = None, lora_alpha: float = PEFT_DEFAULT_ALPHA,
            overwrite: bool = False, negative_prompt: str | None = None) -> Path:
    """Build ``<model_dir>/<folder>`` for upstream release ``name`` from ``base`` (a local SD-2.1-base
    diffusers folder with unet/, vae/, scheduler/ and, unless ``prompt_embeds`` is given, text_encoder/ and
    tokenizer/); returns the folder. DiffBIR also stores the ``negative_prompt`` embedding (default: 4KAgent's;
    from ``prompt_embeds``' key ``negative_prompt_embeds`` when a file is given).

    Raises:
        ConvertError: unknown release, missing inputs, mismatched base, existing folder.
    """
    key = name.strip().lower()
    recipe = RECIPES.get(key)
    if recipe is None:
        raise ConvertError(f"cannot convert {name!r}; supported: {', '.join(RECIPES)}")
    root = Path(model_dir) if model_dir else default_model_dir()
    dest, base = root / recipe.folder, Path(base)
    if dest.exists() and not overwrite:
        raise ConvertError(f"{dest} exists; pass --overwrite to replace it")
    missing = [s for s in ("unet", "vae", "scheduler") if not (base / s).is_dir()]
    if missing:
        raise ConvertError(f"{base} is not a diffusers SD-2.1-base folder (lacks {', '.join(missing)}/)")
    src, sha = _source(recipe, root, source)
    diffbir = recipe.name == "diffbir-v2"
    ckpt = load_diffbir(src, sha) if diffbir else load_upstream(src, sha)
    try:
        import diffusers
    except ImportError:
        raise ConvertError("converting needs diffusers (pip install diffusers)") from None
    opts: dict[str, Any] = {"local_files_only": True, "low_cpu_mem_usage": False}
    try:
        unet = diffusers.UNet2DConditionModel.from_pretrained(base, subfolder="unet", **opts)
        vae = diffusers.AutoencoderKL.from_pretrained(base, subfolder="vae", **opts)
        sched = diffusers.DDPMScheduler.from_config(diffusers.DDPMScheduler.load_config(base, subfolder="scheduler"))
    except Exception as exc:  # noqa: BLE001
        raise ConvertError(f"cannot load the base model from {base}: {type(exc).__name__}: {exc}") from None
    controlnet, negative, extra = None, None, {}
    if diffbir:
        from fourkagent.models.diffbir import NEGATIVE_KEY, NEGATIVE_PROMPT

        controlnet, merged = _irc(ckpt, unet), len(ckpt)
        neg = NEGATIVE_PROMPT if negative_prompt is None else negative_prompt
        negative = _prompt_embeds(base, neg, prompt_embeds, NEGATIVE_KEY)
        extra = {"negative_prompt": neg if prompt_embeds is None else None}
    else:
        merged = merge_lora(unet, ckpt["state_dict_unet"], lora_alpha)
        if recipe.vae_key and ckpt.get(recipe.vae_key):
            merged += merge_lora(vae, ckpt[recipe.vae_key], lora_alpha)
        extra = {"lora_alpha": lora_alpha}
    embeds = _prompt_embeds(base, prompt, prompt_embeds)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{recipe.folder}.", dir=root))
    try:
        unet.save_pretrained(tmp / "unet")
        vae.save_pretrained(tmp / "vae")
        sched.save_pretrained(tmp / "scheduler")
        if controlnet is not None:
            from fourkagent.models.diffbir import CONTROLNET, save_controlnet

            save_controlnet(controlnet, tmp / CONTROLNET)
        save_prompt_embedding(tmp, embeds, negative)
        info = {**recipe.settings, "converted_from": recipe.name, "source": str(src), "base": str(base), **extra,
                "merged_weights": merged, "prompt": prompt if prompt_embeds is None else None}
        (tmp / CONFIG_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
