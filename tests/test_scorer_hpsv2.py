"""The HPSv2-only Q-MoE scorer (``scorer: hpsv2`` / ``Reflection: hpsv2``): profile value, HPS-alone scores,
the 0.12 rollback threshold, HPS-only requirements; and the shared device placement of the perception IQA
metrics and user face models. Metrics are monkeypatched with fixed functions of the image (no weights)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fourkagent import degrade, devices  # noqa: E402
from fourkagent.errors import MissingWeightsError  # noqa: E402
from fourkagent.nodes.reflect import threshold_of  # noqa: E402
from fourkagent.profiles import load_profile  # noqa: E402
from fourkagent.profiles.model import Profile  # noqa: E402
from fourkagent.scoring import paper  # noqa: E402
from fourkagent.scoring.qmoe import DEFAULT_THRESHOLD  # noqa: E402
from tests.conftest import photo, scaling_registry, write  # noqa: E402


@pytest.fixture
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty torch-hub (pyiqa, CLIP) and Hugging Face caches in the test directory; CPU."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv(devices.DEVICE_ENV, "cpu")
    paper.clear_cache()
    yield tmp_path
    paper.clear_cache()


def _fixed_hps(monkeypatch: pytest.MonkeyPatch, calls: dict[str, int], level: float) -> None:
    """HPS = level + 0.1·mean (+0.01 for the default prompt); any NR-IQA metric creation is counted."""

    def create_metric(name: str, **options: Any) -> Any:
        calls[name] = calls.get(name, 0) + 1
        return lambda img: 1.0

    def create_hps() -> Any:
        calls["hps"] = calls.get("hps", 0) + 1
        return lambda img, text: level + 0.1 * float(img.mean()) + (0.01 if text == paper.DEFAULT_PROMPT else 0.0)

    monkeypatch.setattr(paper, "create_metric", create_metric)
    monkeypatch.setattr(paper, "create_hps", create_hps)
    monkeypatch.setattr(paper, "missing_pieces", lambda with_metrics=True: [])


def test_profile_keeps_hpsv2_apart_from_the_metric_mix(tmp_path: Path) -> None:
    f = tmp_path / "ref.yaml"
    f.write_text("Upscale4K: false\nScaleFactor: 4\nReflection: HPSv2\n")
    assert load_profile(str(f)).scorer == "hpsv2"
    assert Profile(scorer="hpsv2").scorer == "hpsv2" and Profile(Reflection="hpsv2+metric").scorer == "paper"
    f.write_text("Reflection: hpsv3\n")
    with pytest.raises(Exception, match="scorer"):
        load_profile(str(f))


def test_default_threshold_is_012_for_hps_alone() -> None:
    assert paper.default_threshold(Profile(scorer="hpsv2")) == paper.HPS_ONLY_THRESHOLD == 0.12
    assert paper.default_threshold(Profile(scorer="paper")) == 0.5
    assert paper.default_threshold(Profile()) == DEFAULT_THRESHOLD
    state: dict[str, Any] = {"profile_data": Profile(scorer="hpsv2").model_dump()}
    assert threshold_of(state) == 0.12  # type: ignore[arg-type]
    state["profile_data"]["threshold"] = 0.3
    assert threshold_of(state) == 0.3  # type: ignore[arg-type]
    state["options"] = {"threshold": 0.2}
    assert threshold_of(state) == 0.2  # type: ignore[arg-type]


def test_step_scorer_uses_hps_alone(caches: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, int] = {}
    _fixed_hps(monkeypatch, calls, 0.1)
    means = {"dark": 0.2, "mid": 0.5, "bright": 0.8}
    step = paper.step_scorer(Profile(scorer="hpsv2"), np.zeros((8, 8, 3), np.float32), "denoising", "")
    for m in means.values():
        step.add(np.full((40, 70, 3), m, np.float32))
    got = dict(zip(means, step.scores()))
    for name, m in means.items():
        assert got[name].score == pytest.approx(0.1 + 0.1 * m + 0.01, abs=1e-6)  # HPS alone, no mix added
        assert set(got[name].components) == {"hpsv2.1"}
    assert max(got, key=lambda n: got[n].score) == "bright"
    assert calls == {"hps": 1}  # no NR-IQA metric was created
    mixed = paper.step_scorer(Profile(scorer="paper"), np.zeros((8, 8, 3), np.float32), "denoising", "a cat")
    mixed.add(np.full((40, 70, 3), 0.5, np.float32))
    assert "mix" in mixed.scores()[0].components and calls["hps"] == 2  # the full scorer is a separate build


def test_requirements_name_only_hps(caches: Path) -> None:
    paper.require_scorer("offline")  # nothing to check
    with pytest.raises(MissingWeightsError) as info:
        paper.require_scorer("hpsv2")
    text = str(info.value)
    assert "\n" not in text and "scorer: hpsv2" in text and "`4kagent models pull hpsv2.1`" in text
    assert not any(m in text for m in paper.MIX_METRICS)
    with pytest.raises(MissingWeightsError) as info:
        paper.require_scorer("paper")
    assert all(m in str(info.value) for m in paper.MIX_METRICS)
    hps_file = paper.weight_paths(paper.HPS)[0]
    hps_file.parent.mkdir(parents=True)
    hps_file.write_bytes(b"x")
    assert not paper.missing_files(paper.HPS) and "hpsv2.1" not in "; ".join(paper.missing_pieces(False))


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: float) -> dict[str, Any]:
    from fourkagent.runner import run

    _fixed_hps(monkeypatch, {}, level)
    paper.clear_cache()

    reg = scaling_registry()
    src = write(tmp_path, "in.png", degrade.add_noise(photo()[100:164, 180:244], 10, seed=1))
    prof = {"upscale_to_4k": False, "require_sr_size": 1, "restore_option": ["denoising", "dehazing"],
            "Reflection": "hpsv2"}  # no threshold: the scorer's default
    res = run(str(src), str(tmp_path / f"out{level}.png"), prof, registry=reg)
    return json.loads(Path(res["report_path"]).read_text())


def test_run_rolls_back_only_below_012(tmp_path: Path, caches: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = _run(tmp_path, monkeypatch, 0.1)  # every Q ≈ 0.13-0.2: below 0.5 but above 0.12, so no rollback
    assert not good["rollbacks"] and not good["compromise"]
    for t in good["trajectory"]:
        scored = [c for c in t["candidates"] if not c.get("unchanged")]  # dn_keep returns its input: no candidate
        scores = {c["tool"]: c["score"] for c in scored}
        assert 0.12 <= t["score"] < 0.5 and not t["failed"] and t["score"] >= max(scores.values())
        assert t["tool"] is None or t["tool"] == max(scores, key=scores.get)
        assert all(set(c["components"]) == {"hpsv2.1"} for c in scored)
    # brighter mean wins: the input itself (which dn_keep returned) over dn_dim, credited to no tool
    assert [t["tool"] for t in good["trajectory"]] in ([None, "dh_boost"], ["dh_boost", None])
    bad = _run(tmp_path, monkeypatch, 0.0)  # every Q ≈ 0.03-0.1 < 0.12: every ordering fails, compromise
    assert bad["rollbacks"] and bad["compromise"]
    assert all(r["threshold"] == 0.12 for r in bad["rollbacks"])


def test_perception_iqa_reuses_the_scorers_metric_creation(caches: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fourkagent.perception import iqa

    made: list[tuple[str, dict[str, Any], str]] = []

    def create_metric(name: str, **options: Any) -> Any:
        made.append((name, options, str(devices.torch_device())))
        return lambda img: float(img.mean())

    monkeypatch.setattr(paper, "create_metric", create_metric)
    iqa._metric.cache_clear()
    weight = iqa.weight_files("musiq")[0]
    assert weight == paper.weight_paths("musiq")[0] and str(weight) in str(iqa.unavailable_reason("musiq"))
    weight.parent.mkdir(parents=True)
    weight.write_bytes(b"x")
    assert iqa.unavailable_reason("musiq") is None  # same detection as the scorer: the file is in pyiqa's cache
    img = photo()[:96, :96]
    rep = iqa.assess_iqa(img, "musiq,niqe")
    assert rep["iqa"]["musiq"] == pytest.approx(float(iqa.pyiqa_input(img).mean()), abs=1e-4)
    iqa.assess_iqa(img, "musiq")  # cached: not created again
    assert made == [("musiq", {"pretrained_model_path": str(weight)}, "cpu")]
    monkeypatch.setattr(devices, "cache_key", lambda: "cuda:0/half")  # another device: a new metric
    iqa.pyiqa_score("musiq", img)
    assert len(made) == 2
    iqa._metric.cache_clear()


class _FakeFaceDesc:
    """A spandrel-descriptor stand-in: purpose FaceSR, GFPGAN-like output tuple, records where it was moved."""

    purpose = "FaceSR"

    def __init__(self, supports_half: bool) -> None:
        self.supports_half = supports_half
        self.model = _Halve()
        self.moved_to: list[Any] = []

    def eval(self) -> _FakeFaceDesc:
        self.model.eval()
        return self

    def to(self, dev: Any) -> _FakeFaceDesc:
        self.moved_to.append(dev)  # stays on the CPU: this machine has no GPU
        return self

    def half(self) -> _FakeFaceDesc:
        self.model.half()
        return self

    def float(self) -> _FakeFaceDesc:
        self.model.float()
        return self

    @property
    def dtype(self) -> Any:
        return self.model.w.dtype

    @property
    def device(self) -> Any:
        return self.model.w.device


class _Halve(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, x: Any) -> Any:
        return x * self.w, None


@pytest.mark.parametrize("supports_half", [False, True])
def test_face_models_are_placed_per_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           supports_half: bool) -> None:
    import spandrel

    from fourkagent.faces import experts

    loads: list[str] = []

    class Loader:
        def __init__(self, device: str) -> None:
            assert device == "cpu"

        def load_from_file(self, path: str) -> _FakeFaceDesc:
            loads.append(path)
            return _FakeFaceDesc(supports_half)

    monkeypatch.setattr(spandrel, "ModelLoader", Loader)
    monkeypatch.setattr(experts, "_face_models", devices.ModelCache())
    monkeypatch.setenv(devices.DEVICE_ENV, "cpu")
    path = tmp_path / "GFPGANv1.4.pth"
    path.write_bytes(b"x")
    crop = photo()[:64, :64]
    out = experts._run_face_model(path, crop, 16)
    assert np.allclose(out, ((crop * 2 - 1) * 0.5 + 1) / 2, atol=1e-6)  # fp32 on the CPU, [-1, 1] in and out
    experts._run_face_model(path, crop, 16)
    assert len(loads) == 1  # cached for this device
    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(devices, "torch_device", lambda: gpu)
    monkeypatch.setattr(devices, "cache_key", lambda: "cuda:0/half")
    desc = experts._load_face_model(path)
    assert len(loads) == 2 and desc.moved_to == [gpu]  # a new copy for the new device
    assert desc.dtype == (torch.float16 if supports_half else torch.float32)  # fp16 only where spandrel allows it
