"""NR-IQA report: pyiqa metrics used when their files are in the cache, reported unavailable otherwise, never downloaded."""

from __future__ import annotations

import importlib.util
import math
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from fourkagent import degrade
from fourkagent.imaging import Image, scale_by
from fourkagent.perception import iqa
from fourkagent.perception.offline import perceive_offline
from fourkagent.scoring.niqe import prepare

from conftest import photo

HAS_PYIQA = all(importlib.util.find_spec(m) is not None for m in ("torch", "torchvision", "pyiqa"))
needs_pyiqa = pytest.mark.skipif(not HAS_PYIQA, reason="pyiqa/torch not installed")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No network but loopback, Hub offline, and an empty torch/pyiqa cache in the test directory."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network access attempted: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("FOURKAGENT_IQA_METRICS", raising=False)
    return tmp_path / "torch" / "hub"


@pytest.fixture(scope="module")
def img() -> Image:
    return photo()[::2, ::2].copy()  # 256×256 real photo


def test_missing_weights_are_unavailable_with_the_path(img: Image, offline: Path) -> None:
    rep = iqa.assess_iqa(img, "musiq,clipiqa+,topiq_nr,niqe")
    values, info = rep["iqa"], rep["iqa_info"]
    for name in ("musiq", "clipiqa+", "topiq_nr"):
        assert set(values[name]) == {"unavailable"}, name
    if HAS_PYIQA:
        assert str(offline / "pyiqa" / "musiq_koniq_ckpt-e95806b9.pth") in values["musiq"]["unavailable"]
    assert isinstance(values["niqe"], float) and math.isfinite(values["niqe"])
    assert info["metrics_used"] == ["niqe"]
    assert "pyiqa_input_size" not in info  # nothing ran through pyiqa


def test_default_set_is_the_papers_plus_piqe(img: Image) -> None:
    rep = iqa.assess_iqa(img)
    assert list(rep["iqa"]) == ["clipiqa+", "topiq_nr", "musiq", "niqe", "piqe"]
    assert rep["iqa_info"]["metrics_used"] == [k for k, v in rep["iqa"].items() if not isinstance(v, dict)]


def test_env_selects_metrics_and_unknown_names_are_reported(img: Image, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(iqa.METRICS_ENV, "niqe, brisqe")
    values = iqa.iqa_report(img)
    assert list(values) == ["niqe", "brisqe"]
    assert "unknown metric" in values["brisqe"]["unavailable"]


def test_without_pyiqa_only_niqe_is_computed(img: Image, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyiqa", None)  # find_spec → None, import fails
    rep = iqa.assess_iqa(img, "piqe,niqe")
    assert "pyiqa" in rep["iqa"]["piqe"]["unavailable"]
    assert rep["iqa_info"]["metrics_used"] == ["niqe"]


def test_checksum_mismatch_is_not_trusted(offline: Path) -> None:
    for path in iqa.weight_files("clipiqa+"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not the real file")
    reason = iqa.unavailable_reason("clipiqa+")
    assert reason is not None and "RN50.pt (checksum mismatch)" in reason
    assert "CLIP-IQA+_learned_prompts" not in reason  # that one exists (no checksum known)


@needs_pyiqa
def test_piqe_runs_offline_and_sees_noise(img: Image) -> None:
    clean = iqa.assess_iqa(img, "piqe")
    noisy = iqa.assess_iqa(degrade.add_noise(img, 30, seed=1), "piqe")
    assert clean["iqa_info"]["sources"] == {"piqe": "pyiqa"}
    assert 0.0 <= clean["iqa"]["piqe"] <= 100.0
    assert noisy["iqa"]["piqe"] > clean["iqa"]["piqe"] + 5.0


@needs_pyiqa
def test_weights_placed_in_the_cache_are_used_automatically(img: Image) -> None:
    import torch
    from pyiqa.archs.musiq_arch import MUSIQ

    path = iqa.weight_files("musiq")[0]
    assert "unavailable" in iqa.iqa_report(img, "musiq")["musiq"]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(MUSIQ(pretrained=False).state_dict(), path)  # stand-in weights with the real layout
    rep = iqa.assess_iqa(img, "musiq")
    assert isinstance(rep["iqa"]["musiq"], float) and math.isfinite(rep["iqa"]["musiq"])
    assert rep["iqa_info"]["metrics_used"] == ["musiq"]
    assert rep["iqa_info"]["pyiqa_input_size"] == [256, 256]


@needs_pyiqa
def test_a_corrupt_weight_file_is_reported_not_raised(img: Image) -> None:
    path = iqa.weight_files("musiq")[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"garbage")
    value = iqa.iqa_report(img, "musiq,niqe")
    assert value["musiq"]["unavailable"].startswith("pyiqa failed")
    assert isinstance(value["niqe"], float)


def test_large_inputs_are_bounded_for_pyiqa() -> None:
    big = scale_by(photo(), 4.0)  # 2048×2048
    assert max(iqa.pyiqa_input(big).shape[:2]) == iqa.PYIQA_MAX_SIDE
    small = photo()[:100, :80]
    assert iqa.pyiqa_input(small).shape == prepare(small).shape != small.shape  # the reference's resize rule


def test_offline_perception_records_the_metric_set(img: Image) -> None:
    p = perceive_offline(img, "niqe,musiq")
    assert p["iqa_info"]["metrics_used"] == ["niqe"]
    assert "unavailable" in p["iqa"]["musiq"]
    text = iqa.iqa_text(p["iqa"])
    assert text.splitlines() == [f"NIQE: {p['iqa']['niqe']:.4f} (lower is better)", "MUSIQ: unavailable"]
