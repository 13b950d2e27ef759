"""`models convert`: upstream OSEDiff / PiSA-SR LoRA checkpoints (built here in their exact key format on a tiny
random SD-like base) merged into the diffusers folders the one-step wrapper loads; checked against LoRA
applied at run time, as PEFT's forward does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("diffusers")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel  # noqa: E402

from fourkagent import cli  # noqa: E402
from fourkagent.models import convert as conv  # noqa: E402
from fourkagent.models import store  # noqa: E402
from fourkagent.models.diffusion import OneStepSR, clear_cache  # noqa: E402
from fourkagent.models.diffusion_tools import TOOLS  # noqa: E402
from tests.conftest import photo  # noqa: E402
from tests.test_diffusion import EMBED, LATENT, _unet, _vae  # noqa: E402

RANK = 2
_UNET_GREP = ["to_k", "to_q", "to_v", "to_out.0", "conv", "conv1", "conv2", "conv_in", "conv_shortcut", "conv_out",
              "proj_out", "proj_in", "ff.net.2", "ff.net.0.proj"]  # upstream initialize_unet's l_grep


def _unet_targets(unet: torch.nn.Module) -> tuple[list[str], list[str], list[str]]:
    """Upstream ``initialize_unet``'s split of LoRA target modules into encoder / decoder / others."""
    enc, dec, oth = [], [], []
    for n, _ in unet.named_parameters():
        if "bias" in n or "norm" in n:
            continue
        for pattern in _UNET_GREP:
            if pattern in n and ("down_blocks" in n or "conv_in" in n):
                enc.append(n.replace(".weight", ""))
                break
            if pattern in n and ("up_blocks" in n or "conv_out" in n):
                dec.append(n.replace(".weight", ""))
                break
            if pattern in n:
                oth.append(n.replace(".weight", ""))
                break
    return enc, dec, oth


def _vae_targets(vae: torch.nn.Module) -> list[str]:
    """Upstream ``initialize_vae``: encoder convolutions / attention projections and quant_conv."""
    grep = ["conv1", "conv2", "conv_in", "conv_shortcut", "conv", "conv_out", "to_k", "to_q", "to_v", "to_out.0"]
    out = []
    for n, _ in vae.named_parameters():
        if "bias" in n or "norm" in n:
            continue
        if any(p in n for p in grep) and "encoder" in n or ("quant_conv" in n and "post_quant_conv" not in n):
            out.append(n.replace(".weight", ""))
    return list(dict.fromkeys(out))


def _lora(model: torch.nn.Module, modules: list[str], adapter: str, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """PEFT state-dict entries ``<module>.lora_A/B.<adapter>.weight`` for ``modules`` (random, rank ``RANK``)."""
    out = {}
    named = dict(model.named_modules())
    for m in modules:
        w = named[m].weight
        if w.ndim == 2:
            a, b = torch.randn(RANK, w.shape[1], generator=gen), torch.randn(w.shape[0], RANK, generator=gen)
        else:
            a = torch.randn(RANK, w.shape[1], *w.shape[2:], generator=gen)
            b = torch.randn(w.shape[0], RANK, 1, 1, generator=gen)
        out[f"{m}.lora_A.{adapter}.weight"], out[f"{m}.lora_B.{adapter}.weight"] = a * 0.05, b * 0.05
    return out


def _base(root: Path) -> Path:
    base = root / "sd21-base"
    torch.manual_seed(0)
    unet = _unet(LATENT)
    with torch.no_grad():
        unet.conv_out.weight.mul_(0.2)
    unet.save_pretrained(base / "unet")
    _vae().save_pretrained(base / "vae")
    PNDMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                  skip_prk_steps=True).save_pretrained(base / "scheduler")  # as SD-2.1-base ships it
    return base


def _osediff_ckpt(base: Path, path: Path) -> dict[str, Any]:
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(base, subfolder="vae")
    gen = torch.Generator().manual_seed(1)
    enc, dec, oth = _unet_targets(unet)
    sd_unet = {**_lora(unet, enc, "default_encoder", gen), **_lora(unet, dec, "default_decoder", gen),
               **_lora(unet, oth, "default_others", gen)}
    sd_unet["conv_in.base_layer.weight"] = torch.randn(unet.conv_in.weight.shape, generator=gen) * 0.1  # retrained
    sd_unet["conv_in.base_layer.bias"] = torch.randn(unet.conv_in.bias.shape, generator=gen) * 0.1
    venc = _vae_targets(vae)
    ckpt = {"unet_lora_encoder_modules": enc, "unet_lora_decoder_modules": dec, "unet_lora_others_modules": oth,
            "vae_lora_encoder_modules": venc, "rank_unet": RANK, "rank_vae": RANK, "state_dict_unet": sd_unet,
            "state_dict_vae": _lora(vae, venc, "default_encoder", gen)}
    torch.save(ckpt, path)
    return ckpt


def _pisasr_ckpt(base: Path, path: Path) -> dict[str, Any]:
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
    gen = torch.Generator().manual_seed(2)
    enc, dec, oth = _unet_targets(unet)
    sd: dict[str, torch.Tensor] = {}
    ckpt: dict[str, Any] = {"lora_rank_unet_pix": RANK, "lora_rank_unet_sem": RANK}
    for kind in ("pix", "sem"):
        ckpt |= {f"unet_lora_encoder_modules_{kind}": enc, f"unet_lora_decoder_modules_{kind}": dec,
                 f"unet_lora_others_modules_{kind}": oth}
        for part, mods in (("encoder", enc), ("decoder", dec), ("others", oth)):
            sd |= _lora(unet, mods, f"default_{part}_{kind}", gen)
    ckpt["state_dict_unet"] = sd
    torch.save(ckpt, path)
    return ckpt


def _runtime_lora(model: torch.nn.Module, state: dict[str, torch.Tensor], alpha: float = 8.0) -> torch.nn.Module:
    """``model`` with LoRA applied in its forward pass (y = base(x) + α/r · B(A(x))), not merged."""
    named = dict(model.named_modules())
    with torch.no_grad():
        for k, v in state.items():
            if ".base_layer." in k:
                dict(model.named_parameters())[k.replace(".base_layer.", ".")].copy_(v)
    for k, a in state.items():
        if ".lora_A." not in k:
            continue
        mod_name = k.split(".lora_A.")[0]
        b = state[k.replace(".lora_A.", ".lora_B.")]
        base = named[mod_name]
        s = alpha / a.shape[0]
        if a.ndim == 2:
            fn = (lambda a, b, s: lambda x: s * (x @ a.T) @ b.T)(a, b, s)
        else:
            fn = (lambda a, b, s, m: lambda x: s * F.conv2d(F.conv2d(x, a, stride=m.stride, padding=m.padding), b))(a, b, s, base)
        base.register_forward_hook((lambda fn: lambda mod, inp, out: out + fn(inp[0]))(fn))
    return model


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("convert")
    base = _base(root)
    embeds = root / "embeds.safetensors"
    from safetensors.torch import save_file

    save_file({"prompt_embeds": torch.randn(1, 77, EMBED, generator=torch.Generator().manual_seed(3))}, str(embeds))
    out = {"root": root, "base": base, "embeds": embeds, "osediff": root / "osediff.pkl", "pisa": root / "pisa_sr.pkl"}
    _osediff_ckpt(base, out["osediff"])
    _pisasr_ckpt(base, out["pisa"])
    return out


def test_lora_terms_follow_peft_shapes() -> None:
    a, b = torch.randn(2, 3, 3, 3), torch.randn(5, 2, 1, 1)
    rep, deltas = conv.lora_merge_terms({"x.conv.lora_A.d.weight": a, "x.conv.lora_B.d.weight": b,
                                         "x.conv.base_layer.bias": torch.zeros(5)})
    assert set(rep) == {"x.conv.bias"} and set(deltas) == {"x.conv.weight"}
    want = F.conv2d(a.permute(1, 0, 2, 3), b).permute(1, 0, 2, 3) * (8.0 / 2)  # PEFT's get_delta_weight for convs
    assert torch.allclose(deltas["x.conv.weight"], want, atol=1e-6)
    with pytest.raises(conv.ConvertError, match="no matching"):
        conv.lora_merge_terms({"x.lora_A.d.weight": torch.randn(2, 4)})


@pytest.mark.parametrize("name", ["osediff", "pisa-sr"])
def test_converted_unet_matches_runtime_lora(name: str, world: dict[str, Path], tmp_path: Path) -> None:
    src = world["osediff" if name == "osediff" else "pisa"]
    dest = conv.convert(name, world["base"], source=src, model_dir=tmp_path, prompt_embeds=world["embeds"])
    assert dest == tmp_path / ("osediff" if name == "osediff" else "pisasr")
    assert {p.name for p in dest.iterdir()} == {"unet", "vae", "scheduler", "prompt_embeds.safetensors",
                                                "fourkagent_pipeline.json"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    ckpt = torch.load(src, weights_only=True)
    ref = _runtime_lora(UNet2DConditionModel.from_pretrained(world["base"], subfolder="unet"), ckpt["state_dict_unet"]).eval()
    got = UNet2DConditionModel.from_pretrained(dest, subfolder="unet").eval()
    base = UNet2DConditionModel.from_pretrained(world["base"], subfolder="unet").eval()
    z = torch.randn(1, LATENT, 16, 16, generator=torch.Generator().manual_seed(4))
    emb = torch.randn(1, 77, EMBED, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        r, g, b = (m(z, 999, encoder_hidden_states=emb).sample for m in (ref, got, base))
    assert (r - b).abs().mean() > 1e-2  # the LoRA changes the model ...
    assert torch.allclose(g, r, atol=1e-4)  # ... and the merged weights do exactly what runtime LoRA does
    if name == "osediff":  # the VAE encoder LoRA is merged too
        vref = _runtime_lora(AutoencoderKL.from_pretrained(world["base"], subfolder="vae"), ckpt["state_dict_vae"]).eval()
        vgot = AutoencoderKL.from_pretrained(dest, subfolder="vae").eval()
        x = torch.rand(1, 3, 32, 32) * 2 - 1
        with torch.no_grad():
            assert torch.allclose(vgot.encode(x).latent_dist.mean, vref.encode(x).latent_dist.mean, atol=1e-4)
    cfg = json.loads((dest / "fourkagent_pipeline.json").read_text())
    sr = OneStepSR.from_pretrained(dest, latent_tile=64)
    if name == "osediff":
        assert (cfg["timestep"], cfg["target"], sr.timestep, sr.target) == (999, "x0", 999, "x0")
    else:  # PiSA-SR default mode: latent minus the UNet's output at t = 1
        assert (sr.timestep, sr.target) == (1, "residual")
        zz = torch.randn(1, LATENT, 8, 8, generator=torch.Generator().manual_seed(6))
        with torch.no_grad():
            want = zz - ref(zz, 1, encoder_hidden_states=sr.prompt_embeds).sample
            assert torch.allclose(sr.denoise(zz, torch.Generator()), want, atol=1e-4)
    out = sr(photo()[100:116, 180:196])
    assert out.shape == (64, 64, 3) and np.isfinite(out).all()


def test_cli_convert_then_the_tool_runs(world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    mdir = tmp_path / "models"
    monkeypatch.setenv("FOURKAGENT_MODEL_DIR", str(mdir))
    installed = store.add(world["pisa"], model_dir=mdir)  # the release is a .pkl: accepted for this catalogue entry
    assert installed.name == "pisa-sr"
    tool = next(t for t in TOOLS if t.name == "sr_pisasr_x4")
    assert "no diffusers pipeline folder" in (tool.unavailable_reason() or "")
    rc = cli.main(["models", "--model-dir", str(mdir), "convert", "pisa-sr", "--base", str(world["base"]),
                   "--prompt-embeds", str(world["embeds"])])
    assert rc == 0 and "pisasr" in capsys.readouterr().out
    clear_cache()
    assert tool.unavailable_reason() is None
    monkeypatch.setenv("FOURKAGENT_LATENT_TILE", "64")
    out = tool(photo()[100:116, 180:196])
    assert out.shape == (64, 64, 3)
    rc = cli.main(["models", "--model-dir", str(mdir), "convert", "pisa-sr", "--base", str(world["base"]),
                   "--prompt-embeds", str(world["embeds"])])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err  # never replaced silently


def test_refusals_are_one_line_and_leave_nothing(world: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(conv.ConvertError, match="not installed.*models pull diffbir-v2"):
        conv.convert("diffbir-v2", world["base"], model_dir=tmp_path)
    with pytest.raises(conv.ConvertError, match="cannot convert"):
        conv.convert("hat-srx4", world["base"], model_dir=tmp_path)
    with pytest.raises(conv.ConvertError, match="not installed.*models pull osediff"):
        conv.convert("osediff", world["base"], model_dir=tmp_path)
    with pytest.raises(conv.ConvertError, match="not a diffusers SD-2.1-base folder"):
        conv.convert("osediff", tmp_path, source=world["osediff"], model_dir=tmp_path)
    bad = torch.load(world["osediff"], weights_only=True)
    bad["state_dict_unet"]["mid_block.nonexistent.lora_A.default_others.weight"] = torch.zeros(RANK, 4)
    bad["state_dict_unet"]["mid_block.nonexistent.lora_B.default_others.weight"] = torch.zeros(4, RANK)
    torch.save(bad, tmp_path / "bad.pkl")
    with pytest.raises(conv.ConvertError, match="not in the base model.*Stable Diffusion 2.1-base"):
        conv.convert("osediff", world["base"], source=tmp_path / "bad.pkl", model_dir=tmp_path,
                     prompt_embeds=world["embeds"])
    import importlib.util

    if importlib.util.find_spec("transformers") is None:
        with pytest.raises(conv.ConvertError, match="needs transformers"):
            conv.convert("osediff", world["base"], source=world["osediff"], model_dir=tmp_path)
    assert not (tmp_path / "osediff").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".osediff")]
    (tmp_path / "evil.pkl").write_bytes(b"\x80\x04cos\nsystem\n(S'true'\ntR.")  # a pickle that runs code
    with pytest.raises(conv.ConvertError, match="refused by the safe loader"):
        conv.convert("osediff", world["base"], source=tmp_path / "evil.pkl", model_dir=tmp_path)
