"""DiffBIR v2 on diffusers: a tiny IRControlNet written here in DiffBIR's LDM layout and equations (the
independent reference) → ``models convert diffbir-v2`` → the diffusers ControlNet reproduces its residuals;
the spaced CFG sampler, tiling, colour fix and the tools on tiny random components (offline, CPU)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from diffusers import DDPMScheduler  # noqa: E402
from diffusers.utils import logging as diffusers_logging  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from fourkagent import cli  # noqa: E402
from fourkagent.models import convert as conv  # noqa: E402
from fourkagent.models import diffbir as db  # noqa: E402
from fourkagent.models import diffusion, diffusion_tools, store  # noqa: E402
from tests._diffbir_reference import CTX, MC, RefControlledUnet, RefIRControlNet, _unet  # noqa: E402
from tests.conftest import photo  # noqa: E402
from tests.test_diffusion import LATENT, _vae  # noqa: E402

diffusers_logging.set_verbosity_error()


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The tiny models run ~30× faster on one thread than on two busy cores (thread start-up per op)."""
    before = torch.get_num_threads()
    monkeypatch.setenv("FOURKAGENT_THREADS", "1")  # fourkagent.devices sets torch's threads from it
    yield
    torch.set_num_threads(before)


def _cleaner(img: np.ndarray) -> np.ndarray:
    """A stand-in ×4 stage 1 (bicubic)."""
    x = torch.from_numpy(img.transpose(2, 0, 1).copy())[None]
    return F.interpolate(x, scale_factor=4, mode="bicubic")[0].clamp(0, 1).permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("diffbir")
    base = root / "sd21-base"
    _unet(RefControlledUnet(12)).save_pretrained(base / "unet")
    torch.manual_seed(6)
    _vae().save_pretrained(base / "vae")
    DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).save_pretrained(base / "scheduler")
    torch.save(RefIRControlNet(11).state_dict(), root / "v2.pth")
    gen = torch.Generator().manual_seed(7)
    save_file({"prompt_embeds": torch.randn(1, 6, CTX, generator=gen),
               "negative_prompt_embeds": torch.randn(1, 6, CTX, generator=gen)}, str(root / "embeds.safetensors"))
    dest = conv.convert("diffbir-v2", base, source=root / "v2.pth", model_dir=root / "models",
                        prompt_embeds=root / "embeds.safetensors")
    return {"root": root, "base": base, "v2": root / "v2.pth", "embeds": root / "embeds.safetensors", "folder": dest}


def _sr(world: dict[str, Path], **kw: object) -> db.DiffBIRSR:
    opts: dict[str, object] = {"steps": 4, "min_condition_side": 32, "latent_tile": 64, "cleaner": _cleaner}
    return db.DiffBIRSR.from_pretrained(world["folder"], **(opts | kw))


def test_converted_controlnet_reproduces_the_reference_residuals(world: dict[str, Path]) -> None:
    ref = RefIRControlNet(11).eval()
    sr = _sr(world)
    assert {p.name for p in world["folder"].iterdir()} == {"unet", "vae", "scheduler", "controlnet",
                                                           "prompt_embeds.safetensors", "fourkagent_pipeline.json"}
    cfg = json.loads((world["folder"] / "fourkagent_pipeline.json").read_text())
    assert (cfg["steps"], cfg["cfg_scale"], cfg["cleaner"]) == (50, 4.0, "bsrnet-x4")
    assert cfg["merged_weights"] == len(ref.state_dict())
    gen = torch.Generator().manual_seed(1)
    x, c = torch.randn(2, LATENT, 16, 16, generator=gen), torch.randn(2, LATENT, 16, 16, generator=gen)
    ctx, t = torch.randn(2, 6, CTX, generator=gen), torch.tensor([17, 730])
    with torch.no_grad():
        want = ref(x, c, t, ctx)
        down, mid = sr.controlnet(x, t, encoder_hidden_states=ctx, controlnet_cond=c, return_dict=False)
    got = [*down, mid]
    assert len(got) == len(want) == 5
    for g, w in zip(got, want):
        assert g.shape == w.shape and float(w.abs().mean()) > 1e-2
        assert torch.allclose(g, w, atol=1e-5), float((g - w).abs().max())


def test_controlled_unet_matches_diffbir(world: dict[str, Path]) -> None:
    """ControlLDM's forward: the 13 (here 5) scaled residuals go to the middle output and the skips, in order."""
    ref_cn, ref_unet, sr = RefIRControlNet(11).eval(), RefControlledUnet(12).eval(), _sr(world)
    gen = torch.Generator().manual_seed(13)
    x, c = torch.randn(2, LATENT, 16, 16, generator=gen), torch.randn(2, LATENT, 16, 16, generator=gen)
    ctx, t = torch.randn(2, 6, CTX, generator=gen), torch.tensor([3, 901])
    with torch.no_grad():
        control = ref_cn(x, c, t, ctx)
        plain = ref_unet(x, t, ctx, [torch.zeros_like(a) for a in control])
        for scale in (1.0, 0.5):
            sr.control_scale = scale
            want = ref_unet(x, t, ctx, [a * scale for a in control])
            got = sr.eps(x, c, t, ctx)
            assert (want - plain).abs().mean() > 1e-2
            assert torch.allclose(got, want, atol=1e-4), float((got - want).abs().max())


def test_zero_controlnet_gives_the_plain_unet(world: dict[str, Path]) -> None:
    sr = _sr(world)
    gen = torch.Generator().manual_seed(2)
    x, c, emb = (torch.randn(1, LATENT, 16, 16, generator=gen), torch.randn(1, LATENT, 16, 16, generator=gen),
                 sr.prompt_embeds)
    t = torch.tensor([500])
    with torch.no_grad():
        plain = sr.unet(x, t, encoder_hidden_states=emb).sample
        assert (sr.eps(x, c, t, emb) - plain).abs().mean() > 1e-3  # the control changes the prediction ...
        for m in [*sr.controlnet.controlnet_down_blocks, sr.controlnet.controlnet_mid_block]:
            m.weight.zero_()
            m.bias.zero_()
        assert torch.allclose(sr.eps(x, c, t, emb), plain, atol=1e-6)  # ... and vanishes with zero convs


def test_spaced_schedule_matches_guided_diffusion_and_ddpm() -> None:
    assert db.spaced_timesteps(1000, 50)[:5] == [0, 20, 41, 61, 82] and db.spaced_timesteps(1000, 50)[-1] == 999
    assert len(db.spaced_timesteps(1000, 50)) == 50
    cfg = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}
    betas = db.training_betas(cfg)
    assert betas[0] == pytest.approx(0.00085) and betas[-1] == pytest.approx(0.012)
    # unspaced, the schedule is DDPM's posterior with "fixed_small" variance
    sched = DDPMScheduler(**cfg, clip_sample=False)
    ours = db.SpacedSchedule(betas, 1000)
    gen = torch.Generator().manual_seed(3)
    x, eps = torch.randn(1, 4, 8, 8, generator=gen), torch.randn(1, 4, 8, 8, generator=gen)
    for t in (999, 400, 1):
        want = sched.step(eps, t, x, generator=torch.Generator().manual_seed(9)).prev_sample
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(9))
        assert torch.allclose(ours.step(t, x, eps, "epsilon", noise), want, atol=1e-4), t


def test_wavelet_colour_fix_takes_the_condition_low_frequencies() -> None:
    gen = torch.Generator().manual_seed(4)
    style = torch.rand(1, 3, 40, 48, generator=gen)
    assert torch.allclose(db.wavelet_colour_fix(style + 0.3, style), style, atol=1e-5)  # a colour cast is removed
    ramp = torch.linspace(0.0, 0.6, 48)[None, None, None, :] * torch.tensor([1.0, 0.2, -0.5])[None, :, None, None]
    content = torch.rand(1, 3, 40, 48, generator=gen) * 0.2 + ramp  # a smooth colour field over detail
    fixed = db.wavelet_colour_fix(content, style)
    assert (fixed - content).abs().mean() > 0.05
    assert abs(float(fixed.mean() - style.mean())) < 0.02 < 0.3 < abs(float(content.mean() - style.mean()))


def test_end_to_end_seeded_cfg_and_tiling(world: dict[str, Path]) -> None:
    lr = photo()[100:116, 180:196]
    sr = _sr(world)
    t0 = time.process_time()
    a = sr(lr, seed=1)
    print(f"tiny DiffBIR 16->64 px, 4 steps: {time.process_time() - t0:.2f} s CPU")
    assert a.shape == (64, 64, 3) and a.dtype == np.float32 and np.isfinite(a).all()
    assert 0.0 <= a.min() and a.max() <= 1.0 and a.std() > 0.01
    assert np.array_equal(a, sr(lr, seed=1)) and np.abs(a - sr(lr, seed=2)).mean() > 1e-3
    # the negative prompt matters under CFG (cfg 4) and not without it (cfg 1)
    sr.negative_embeds = sr.negative_embeds + 1.0
    assert np.abs(sr(lr, seed=1) - a).mean() > 1e-3
    one = _sr(world, cfg_scale=1.0)
    b = one(lr, seed=1)
    one.negative_embeds = one.negative_embeds + 1.0
    assert np.array_equal(b, one(lr, seed=1)) and np.abs(b - a).mean() > 1e-3
    # ×2 output and a non-square input
    assert _sr(world, scale=2)(photo()[100:116, 180:204], seed=1).shape == (32, 48, 3)
    assert sr(photo()[100:116, 180:204], seed=1, scale=2).shape == (32, 48, 3)
    # latent tiles of 12 (8 shared) on the 16² latent: GroupNorm and attention see only their tile, so the
    # result drifts a little from the untiled one (measured 0.030; tiles of 8 with 4 shared: 0.055)
    tiled = _sr(world, latent_tile=12, latent_overlap=8)(lr, seed=1)
    print(f"tiled vs untiled mean |diff| {np.abs(tiled - a).mean():.4f}")
    assert np.abs(tiled - a).mean() < 0.05


def test_sampler_tiles_are_blended(world: dict[str, Path]) -> None:
    sr = _sr(world, latent_tile=8, latent_overlap=4)
    z = torch.randn(1, LATENT, 16, 16, generator=torch.Generator().manual_seed(5))
    calls: list[tuple[int, int]] = []

    def fn(sy: slice, sx: slice) -> torch.Tensor:
        calls.append((sy.start, sx.start))
        return z[:, :, sy, sx] * 2

    assert torch.allclose(sr.tiled(z, fn), z * 2, atol=1e-6)  # a pointwise map is reproduced exactly
    assert sorted(set(calls)) == [(y, x) for y in (0, 4, 8) for x in (0, 4, 8)]
    k = torch.randn(LATENT, LATENT, 3, 3, generator=torch.Generator().manual_seed(6))
    full = F.conv2d(z, k, padding=1)
    blended = sr.tiled(z, lambda sy, sx: F.conv2d(z[:, :, sy, sx], k, padding=1))
    assert torch.allclose(blended, full, atol=1e-5)  # a 3×3 map too: tile edges (wrong padding) get weight 0
    sr.latent_overlap = 0
    hard = (sr.tiled(z, lambda sy, sx: F.conv2d(z[:, :, sy, sx], k, padding=1)) - full).abs()
    assert float(hard[..., 7:9].mean()) > 0.1 and float(hard[..., 2:6, 2:6].max()) < 1e-5  # hard cuts: a seam at 8


def _tiny_bsrnet(path: Path) -> None:
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(8)
    torch.save(ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4).state_dict(), path)


def test_cli_convert_and_tools(world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    mdir = tmp_path / "models"
    monkeypatch.setenv("FOURKAGENT_MODEL_DIR", str(mdir))
    tools = {t.name: t for t in diffusion_tools.TOOLS}
    x4, x2 = tools["sr_diffbir_x4"], tools["sr_diffbir_x2"]
    assert x4.spec.slow and x2.spec.slow and (x4.spec.scale, x2.spec.scale) == (4, 2)
    assert "no diffusers pipeline folder" in str(x4.unavailable_reason())
    rc = cli.main(["models", "--model-dir", str(mdir), "convert", "diffbir-v2", "--base", str(world["base"]),
                   "--from", str(world["v2"]), "--prompt-embeds", str(world["embeds"])])
    assert rc == 0 and "diffbir" in capsys.readouterr().out
    assert "bsrnet-x4 is not installed" in str(x4.unavailable_reason())
    _tiny_bsrnet(tmp_path / "BSRNet.pth")
    assert store.add(tmp_path / "BSRNet.pth", model_dir=mdir).name == "bsrnet-x4"
    assert x4.unavailable_reason() is None
    cfg_path = mdir / "diffbir" / "fourkagent_pipeline.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps(cfg | {"steps": 3, "min_condition_side": 32}))  # settings come from the folder
    monkeypatch.setenv("FOURKAGENT_LATENT_TILE", "8")
    diffusion.clear_cache()
    lr = photo()[100:116, 180:196]
    out = x4(lr)
    assert out.shape == (64, 64, 3) and np.isfinite(out).all() and np.array_equal(out, x4(lr))
    assert x2(lr).shape == (32, 32, 3)
    assert len(diffusion._cache) == 1  # both factors share one loaded pipeline
    diffusion.clear_cache()


def test_convert_refusals(world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, v2, embeds = world["base"], world["v2"], world["embeds"]
    only_pos = tmp_path / "pos.safetensors"
    save_file({"prompt_embeds": torch.zeros(1, 6, CTX)}, str(only_pos))
    with pytest.raises(conv.ConvertError, match="no negative_prompt_embeds"):
        conv.convert("diffbir-v2", base, source=v2, model_dir=tmp_path, prompt_embeds=only_pos)
    sd = torch.load(v2, weights_only=True)
    torch.save(sd | {"input_hint_block.0.weight": torch.zeros(16, 3, 3, 3)}, tmp_path / "plain.pth")
    with pytest.raises(conv.ConvertError, match="input_hint_block: a plain ControlNet"):
        conv.convert("diffbir-v2", base, source=tmp_path / "plain.pth", model_dir=tmp_path, prompt_embeds=embeds)
    torch.save(sd | {"label_emb.0.weight": torch.zeros(4, 4)}, tmp_path / "extra.pth")
    with pytest.raises(conv.ConvertError, match="1 key.s. not mapped .e.g. label_emb.0.weight"):
        conv.convert("diffbir-v2", base, source=tmp_path / "extra.pth", model_dir=tmp_path, prompt_embeds=embeds)
    torch.save(sd | {"input_blocks.0.0.weight": torch.zeros(MC, LATENT, 3, 3)}, tmp_path / "four.pth")
    with pytest.raises(conv.ConvertError, match="expected .C, 8, 3, 3"):
        conv.convert("diffbir-v2", base, source=tmp_path / "four.pth", model_dir=tmp_path, prompt_embeds=embeds)
    wide = {k: torch.zeros(*v.shape[:-1], v.shape[-1] * 2) if "attn2.to_k" in k else v for k, v in sd.items()}
    torch.save(wide, tmp_path / "wide.pth")  # cross-attention width of another base model
    with pytest.raises(conv.ConvertError, match="Stable Diffusion 2.1-base"):
        conv.convert("diffbir-v2", base, source=tmp_path / "wide.pth", model_dir=tmp_path, prompt_embeds=embeds)
    torch.save({"state_dict_unet": {}, "rank_unet": 4}, tmp_path / "osediff.pkl")
    with pytest.raises(conv.ConvertError, match="not a DiffBIR ControlNet state dict"):
        conv.convert("diffbir-v2", base, source=tmp_path / "osediff.pkl", model_dir=tmp_path)
    assert not (tmp_path / "diffbir").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert cli.main(["models", "--model-dir", str(tmp_path), "convert", "diffbir-v2", "--base", str(base),
                     "--from", str(tmp_path / "plain.pth"), "--prompt-embeds", str(world["embeds"])]) == 2
    err = capsys.readouterr().err.strip()
    assert "input_hint_block" in err and len(err.splitlines()) == 1


def test_convert_encodes_the_prompts_with_the_base_text_encoder(world: dict[str, Path], tmp_path: Path) -> None:
    """Without --prompt-embeds, the base's tokenizer + CLIP text encoder (tiny ones built here) encode the
    empty positive prompt and 4KAgent's negative prompt, padded to the tokenizer's 77 tokens."""
    transformers = pytest.importorskip("transformers")
    import shutil

    base = tmp_path / "sd21-base"
    shutil.copytree(world["base"], base)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz,-":
        vocab[ch], vocab[ch + "</w>"] = len(vocab), len(vocab) + 1
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    tok = transformers.CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"), model_max_length=77)
    tok.save_pretrained(base / "tokenizer")
    torch.manual_seed(14)
    enc = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=CTX, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, projection_dim=CTX, bos_token_id=0, eos_token_id=1, pad_token_id=1)).eval()
    enc.save_pretrained(base / "text_encoder")
    dest = conv.convert("diffbir-v2", base, source=world["v2"], model_dir=tmp_path / "models")
    from safetensors.torch import load_file

    stored = load_file(str(dest / "prompt_embeds.safetensors"))
    with torch.no_grad():
        for key, text in (("prompt_embeds", ""), ("negative_prompt_embeds", db.NEGATIVE_PROMPT)):
            ids = tok(text, max_length=77, padding="max_length", truncation=True, return_tensors="pt").input_ids
            assert stored[key].shape == (1, 77, CTX)
            assert torch.allclose(stored[key], enc(ids).last_hidden_state, atol=1e-6), key
    assert (stored["prompt_embeds"] - stored["negative_prompt_embeds"]).abs().mean() > 1e-3
    cfg = json.loads((dest / "fourkagent_pipeline.json").read_text())
    assert (cfg["prompt"], cfg["negative_prompt"]) == ("", db.NEGATIVE_PROMPT)
    sr = db.DiffBIRSR.from_pretrained(dest, steps=2, min_condition_side=32, cleaner=_cleaner)
    out = sr(photo()[100:108, 180:188])
    assert out.shape == (32, 32, 3) and np.isfinite(out).all()
