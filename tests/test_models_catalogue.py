"""External weights: catalogue, model store (add/pull), spandrel tools, `4kagent models` (all offline)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("spandrel")
st = pytest.importorskip("safetensors.torch")

from fourkagent import cli  # noqa: E402
from fourkagent.errors import FourKError, WeightsError  # noqa: E402
from fourkagent.models import catalogue, store  # noqa: E402
from fourkagent.models.catalogue import MODELS, ModelEntry  # noqa: E402
from fourkagent.models.external import external_tools  # noqa: E402
from fourkagent.vocabulary import CATEGORIES  # noqa: E402
from fourkagent.weights import sha256_file  # noqa: E402
from tests.conftest import photo  # noqa: E402


def _nets() -> dict[str, tuple[torch.nn.Module, int, str]]:
    """Tiny random-weight instances of real spandrel architectures: name -> (net, scale, arch id)."""
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.NAFNet import NAFNet
    from spandrel.architectures.SPAN import SPAN
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(0)
    return {
        "tiny_esrgan": (ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4), 4, "ESRGAN"),
        "tiny_swinir": (SwinIR(upscale=2, in_chans=3, img_size=16, window_size=4, embed_dim=12, depths=[1],
                               num_heads=[2], mlp_ratio=2, upsampler="pixelshuffledirect"), 2, "SwinIR"),
        "tiny_compact": (Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2), 2, "Compact"),
        "tiny_span": (SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=4), 4, "SPAN"),
        "tiny_nafnet": (NAFNet(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1], dec_blk_nums=[1]), 1, "NAFNet"),
    }


def _save(net: torch.nn.Module, path: Path) -> Path:
    sd = {k: v.contiguous() for k, v in net.state_dict().items()}
    if path.suffix == ".safetensors":
        st.save_file(sd, str(path))
    else:
        torch.save(sd, path)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int, str]]:
    src = tmp_path_factory.mktemp("src")
    out = {}
    for i, (name, (net, scale, arch)) in enumerate(_nets().items()):
        out[name] = (_save(net, src / f"{name}{'.pth' if i % 2 else '.safetensors'}"), scale, arch)
    return out


def test_catalogue_is_complete_data() -> None:
    names = {m.name for m in MODELS}
    assert len(names) == len(MODELS)
    for arch in ("SwinIR", "HAT", "Restormer", "NAFNet", "SCUNet", "MPRNet", "FBCNN", "ESRGAN", "GFPGAN",
                 "CodeFormer", "DiffBIR", "X-Restormer"):
        assert any(m.arch == arch for m in MODELS), arch
    for m in MODELS:
        assert m.category in CATEGORIES and m.scale in (1, 2, 4) and m.url.startswith("https://")
        assert m.sha256 is None or len(m.sha256) == 64
    restormer = [m for m in MODELS if m.arch == "Restormer"]
    assert restormer and all(m.loader == "spandrel-extra" and "spandrel" in m.note for m in restormer)
    assert catalogue.find_model("DiffBIR-v2").loader == "diffusers"  # type: ignore[union-attr]
    assert set(catalogue.METRIC_NAMES) >= {"hpsv2.1", "clipiqa+", "maniqa", "musiq", "topiq_nr"}
    # pyiqa metric files go exactly where fourkagent.perception.iqa looks for them
    from fourkagent.perception.iqa import weight_files

    for metric in ("clipiqa+", "musiq", "topiq_nr"):
        assert {store.metric_path(m) for m in catalogue.metric_files(metric)} == set(weight_files(metric))


def test_add_list_register_and_run(tmp_path: Path, weights: dict[str, tuple[Path, int, str]],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    mdir = tmp_path / "models"
    for name, (path, scale, arch) in weights.items():
        item = store.add(path, model_dir=mdir, category="denoising" if scale == 1 else None)
        assert (item.name, item.scale, item.arch) == (name, scale, arch)
        assert item.sha256 == sha256_file(path)
    listed = {i.name: i for i in store.installed(mdir, verify=True)}
    assert set(listed) == set(weights) and all(i.problem is None for i in listed.values())
    monkeypatch.setenv("FOURKAGENT_TILE", "24")  # several tiles per image: exercises padding + blending
    tools = {t.name: t for t in external_tools(mdir)}
    assert set(tools) == {f"ext_{n}" for n in weights}
    img = photo()[100:150, 180:224]  # 50×44 real photo crop
    for name, (_, scale, arch) in weights.items():
        t = tools[f"ext_{name}"]
        assert t.unavailable_reason() is None and t.spec.backend == "torch" and t.spec.scale == scale
        assert t.spec.slow == (arch in ("SwinIR", "NAFNet"))
        out = t(img)
        assert out.shape == (50 * scale, 44 * scale, 3) and out.dtype == np.float32 and out.std() > 0


def test_hash_mismatch_installs_nothing(tmp_path: Path, weights: dict[str, tuple[Path, int, str]],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = weights["tiny_compact"][0]
    fake = ModelEntry("test-compact", "super-resolution", 2, "Compact", "MIT", "https://example.invalid/x/c.pth",
                      "c.safetensors", sha256="0" * 64)
    monkeypatch.setattr(catalogue, "MODELS", (fake,))
    monkeypatch.setattr(store, "MODELS", (fake,))
    mdir = tmp_path / "models"
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        store.add(path, "test-compact", model_dir=mdir)
    assert not mdir.exists() or not any(mdir.iterdir())
    # a file replaced after install: its tool refuses to load it, the registry still builds
    ok = store.add(weights["tiny_span"][0], model_dir=mdir)
    ok.path.write_bytes(ok.path.read_bytes()[:-8] + b"\0" * 8)
    tool = next(t for t in external_tools(mdir) if t.name == "ext_tiny_span")
    with pytest.raises(FourKError, match="sha256 mismatch"):
        tool(photo()[:32, :32])
    ok.path.write_bytes(b"garbage")  # a different size: shown unavailable with the reason
    tool = next(t for t in external_tools(mdir) if t.name == "ext_tiny_span")
    assert "expected" in (tool.unavailable_reason() or "")


class _Server(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    drop_once: set[str] = set()
    ranges: list[str | None] = []

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        body = self.files.get(self.path)
        self.ranges.append(self.headers.get("Range"))
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if self.path in self.drop_once:  # half the file, then the connection drops
            self.drop_once.discard(self.path)
            self.wfile.write(body[start : start + (len(body) - start) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture
def server(weights: dict[str, tuple[Path, int, str]], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    data = {name: path.read_bytes() for name, (path, _, _) in weights.items()}
    _Server.files = {"/m/esrgan.pth": data["tiny_esrgan"], "/m/span.pth": data["tiny_span"],
                     "/m/bad.pth": data["tiny_compact"]}
    _Server.drop_once, _Server.ranges = set(), []
    entries = (
        ModelEntry("test-esrgan", "super-resolution", 4, "ESRGAN", "MIT", "https://example.invalid/r/esrgan.pth",
                   "esrgan.safetensors", sha256=sha256_file(weights["tiny_esrgan"][0])),
        ModelEntry("test-span", "super-resolution", 4, "SPAN", "MIT", "https://example.invalid/r/span.pth", "span.pth"),
        ModelEntry("test-bad", "super-resolution", 2, "Compact", "MIT", "https://example.invalid/r/bad.pth",
                   "bad.pth", sha256="ab" * 32),
        ModelEntry("test-missing", "denoising", 1, "NAFNet", "MIT", "https://example.invalid/r/none.pth", "none.pth"),
    )
    monkeypatch.setattr(catalogue, "MODELS", entries)
    monkeypatch.setattr(store, "MODELS", entries)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/m"
    httpd.shutdown()
    httpd.server_close()


def test_pull_success_resume_and_errors(tmp_path: Path, server: str) -> None:
    mdir = tmp_path / "models"
    seen: list[tuple[int, int | None]] = []
    [path] = store.pull(["test-esrgan"], server, model_dir=mdir, progress=lambda _n, d, t: seen.append((d, t)))
    assert path == mdir / "esrgan.safetensors" and sha256_file(path) == catalogue.MODELS[0].sha256
    assert seen[-1][0] == seen[-1][1] == path.stat().st_size
    assert [i.name for i in store.installed(mdir)] == ["test-esrgan"]

    _Server.drop_once.add("/m/span.pth")
    with pytest.raises(FourKError, match="interrupted.*resume"):
        store.pull(["test-span"], server, model_dir=mdir)
    part = mdir / "span.pth.part"
    assert part.is_file() and 0 < part.stat().st_size and not (mdir / "span.pth").exists()
    store.pull(["test-span"], server, model_dir=mdir)
    assert _Server.ranges[-1] == f"bytes={len(_Server.files['/m/span.pth']) // 2}-"
    assert (mdir / "span.pth").read_bytes() == _Server.files["/m/span.pth"] and not part.exists()

    with pytest.raises(FourKError, match="sha256 mismatch.*removed"):
        store.pull(["test-bad"], server, model_dir=mdir)
    assert not list(mdir.glob("bad.pth*"))
    with pytest.raises(FourKError, match="HTTP 404"):
        store.pull(["test-missing"], server, model_dir=mdir)
    assert not list(mdir.glob("none.pth*"))
    with pytest.raises(FourKError, match="unknown model"):
        store.pull(["no-such-model"], server, model_dir=mdir)
    with pytest.raises(FourKError, match="cannot reach"):  # nothing listens on port 9 of 127.0.0.1
        store.pull(["test-missing"], "http://127.0.0.1:9/m", model_dir=mdir, timeout=5)
    assert {t.name for t in external_tools(mdir)} == {"ext_test_esrgan", "ext_test_span"}


def test_cli_models(tmp_path: Path, weights: dict[str, tuple[Path, int, str]], server: str,
                    capsys: pytest.CaptureFixture[str]) -> None:
    mdir = str(tmp_path / "models")
    assert cli.main(["models", "--model-dir", mdir, "add", str(weights["tiny_compact"][0])]) == 0
    assert cli.main(["models", "--model-dir", mdir, "pull", "test-span", "--base-url", server]) == 0
    capsys.readouterr()
    assert cli.main(["models", "--model-dir", mdir, "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tiny_compact"]["installed"] and rows["test-span"]["installed"]
    assert not rows["test-esrgan"]["installed"] and rows["musiq"]["kind"] == "metric"
    assert cli.main(["models", "--model-dir", mdir]) == 0
    text = capsys.readouterr().out
    assert "tiny_compact" in text and "test-esrgan" in text and "installed=yes" in text and "installed=no" in text
    assert cli.main(["models", "--model-dir", mdir, "pull", "test-missing", "--base-url", server]) == 2
    err = capsys.readouterr().err
    assert "HTTP 404" in err and err.count("\n") == 1
    assert cli.main(["models", "--model-dir", mdir, "add", str(tmp_path / "nope.pth")]) == 2
