"""The --device override: parsing, precedence, precision policy, clear errors, and the device in the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fourkagent import cli, devices  # noqa: E402
from fourkagent.context import Context  # noqa: E402
from fourkagent.errors import FourKError  # noqa: E402
from fourkagent.runner import run  # noqa: E402
from fourkagent.tools.base import Tool, ToolRegistry, ToolSpec  # noqa: E402
from tests.conftest import photo, write  # noqa: E402


@pytest.mark.parametrize("spec,want", [(None, "auto"), ("", "auto"), (" CPU ", "cpu"), ("cuda", "cuda"),
                                       ("cuda:3", "cuda:3"), ("mps", "mps"), ("Auto", "auto")])
def test_parse_accepts_the_documented_names(spec: str | None, want: str) -> None:
    assert devices.parse(spec) == want


@pytest.mark.parametrize("spec", ["tpu", "cuda:", "cuda:x", "gpu", "cpu:0", "cuda 0"])
def test_parse_refuses_anything_else(spec: str) -> None:
    with pytest.raises(devices.DeviceError, match="unknown device"):
        devices.parse(spec)
    with pytest.raises(FourKError):
        Context(device=spec)


def test_precedence_contextvar_then_env_then_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(devices.DEVICE_ENV, raising=False)
    monkeypatch.delenv(devices.THREADS_ENV, raising=False)
    assert devices.requested() == ("auto", 0)
    monkeypatch.setenv(devices.DEVICE_ENV, "cpu")
    monkeypatch.setenv(devices.THREADS_ENV, "3")
    assert devices.requested() == ("cpu", 3)
    with devices.use_device("cuda:1", threads=1):
        assert devices.requested() == ("cuda:1", 1)
        with devices.use_device("mps"):
            assert devices.requested() == ("mps", 0)
        assert devices.requested() == ("cuda:1", 1)
    assert devices.requested() == ("cpu", 3)
    assert Context().device == "cpu"  # the context reads the same variable


def test_cpu_and_auto_resolve_here_and_set_threads() -> None:
    assert devices.resolve("cpu") == torch.device("cpu")
    want_auto = "cuda" if torch.cuda.is_available() else "cpu"
    assert devices.resolve("auto").type == want_auto
    before = torch.get_num_threads()
    try:
        with devices.use_device("cpu", threads=1):
            assert devices.torch_device() == torch.device("cpu") and torch.get_num_threads() == 1
        with devices.use_device("cpu"):
            devices.torch_device()
            assert torch.get_num_threads() == devices.cpu_count()  # all usable cores by default
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:7"])
def test_unavailable_cuda_is_one_clear_error(spec: str) -> None:
    with pytest.raises(devices.DeviceError) as info:
        devices.check(spec)
    msg = str(info.value)
    assert "\n" not in msg and spec in msg and "not available" in msg and "--device cpu" in msg
    with devices.use_device(spec), pytest.raises(devices.DeviceError):
        devices.torch_device()  # a tool asking gets the same error


def test_half_precision_only_on_cuda_for_models_that_support_it(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")

    class Desc:  # a spandrel-like descriptor
        supports_half = True

    assert devices.autocast_dtype(Desc(), device=cuda) == torch.float16
    assert devices.autocast_dtype(Desc(), device=cpu) == torch.float32
    assert devices.autocast_dtype(torch.nn.Conv2d(3, 3, 1), device=cuda) == torch.float32  # unknown: no fp16
    assert devices.autocast_dtype(None, supports_half=True, device=cuda) == torch.float16
    monkeypatch.setenv(devices.HALF_ENV, "0")
    assert devices.autocast_dtype(Desc(), device=cuda) == torch.float32
    net, dev, dtype = devices.place(torch.nn.Conv2d(3, 3, 1).double(), supports_half=True)
    assert dev.type in ("cpu", "cuda") and next(net.parameters()).dtype == dtype == torch.float32


def test_cli_refuses_unknown_and_unavailable_devices_in_one_line(tmp_path: Path) -> None:
    src = write(tmp_path, "in.png", photo()[:40, :40])
    bad = ["tpu"] + ([] if torch.cuda.is_available() else ["cuda"])
    for spec in bad:
        res = subprocess.run([sys.executable, "-m", "fourkagent.cli", "restore", str(src), "-o", str(tmp_path / "o.png"),
                              "--device", spec], capture_output=True, text=True, timeout=300)
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
        assert f"device '{spec}'" in res.stderr
        assert not (tmp_path / "o.png").exists()
    args = cli.build_parser().parse_args(["restore", "a.png", "-o", "b.png", "--device", "cuda:1", "--threads", "3"])
    assert (args.device, args.threads) == ("cuda:1", 3)


def _probe_tool(seen: list[tuple[str, int, str]]) -> Tool:
    """A torch denoiser that records what the device module told it."""

    def fn(img: np.ndarray) -> np.ndarray:
        dev = devices.torch_device()
        x = torch.from_numpy(img).to(dev)
        seen.append((*devices.requested(), str(dev)))
        return (x * 0.98 + 0.01).cpu().numpy()

    return Tool(ToolSpec("probe_denoise", "denoising", "records the device", backend="torch"), fn)


def _profile() -> dict[str, object]:
    return {"upscale_to_4k": False, "require_sr_size": 1, "restore_option": ["denoising"], "with_rollback": False}


def test_explicit_cpu_run_uses_cpu_and_the_report_says_so(tmp_path: Path) -> None:
    src = write(tmp_path, "in.png", photo()[100:148, 180:228])
    seen: list[tuple[str, int, str]] = []
    before = torch.get_num_threads()
    try:
        res = run(str(src), str(tmp_path / "out.png"), _profile(), context=Context(device="cpu", threads=1),
                  registry=ToolRegistry([_probe_tool(seen)]))
    finally:
        torch.set_num_threads(before)
    assert seen and all(s == ("cpu", 1, "cpu") for s in seen)
    report = json.loads(Path(res["report_path"]).read_text())
    rt = report["runtime"]
    assert rt["device"] == "cpu" and rt["requested"] == "cpu" and rt["torch"] == torch.__version__
    assert rt["half_precision"] is False and rt["threads"] == 1
    assert "device: cpu" in res["summary"]
    html = Path(res["report_path"]).with_name("out.report.html").read_text()
    assert 'id="device">cpu' in html and torch.__version__ in html


def test_graph_context_device_reaches_tools_without_the_runner(tmp_path: Path) -> None:
    from fourkagent.graph import build_graph

    src = write(tmp_path, "in.png", photo()[100:148, 180:228])
    seen: list[tuple[str, int, str]] = []
    graph = build_graph(None, registry=ToolRegistry([_probe_tool(seen)]))
    before = torch.get_num_threads()
    try:
        graph.invoke({"input_path": str(src), "output_path": str(tmp_path / "g.png"), "profile": _profile()},
                     context=Context(device="cpu", threads=1))
    finally:
        torch.set_num_threads(before)
    assert seen and all(s == ("cpu", 1, "cpu") for s in seen)
