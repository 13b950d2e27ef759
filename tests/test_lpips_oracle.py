"""LPIPS where its weights are on disk: the bench metric and the Q-MoE benchmark's LPIPS oracle.

LPIPS weights are never downloaded here: the test writes random-weight checkpoints of the real architectures
(torchvision's AlexNet, LPIPS's linear heads) where pyiqa and the torch hub cache read them, so the real
loading code runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import photo

from fourkagent import degrade
from fourkagent.bench import metrics
from fourkagent.scoring.dataset import NONE_TOOL, evaluate, experts_only, generate
from fourkagent.tools.base import Tool, ToolRegistry, ToolSpec

LPIPS_CHANNELS = (64, 192, 384, 256, 256)
"""AlexNet feature widths LPIPS puts a linear head on."""
DISTS_CHANNELS = 3 + 64 + 128 + 256 + 512 + 512
"""Image plus VGG16 stage widths DISTS weighs."""


def _random_weights(name: str) -> None:
    """Random-weight files of full-reference metric ``name`` where pyiqa and the torch hub cache read them: the
    torchvision backbone (its big classifier matrices stored as one broadcast value) and the metric's head."""
    import torch
    import torchvision

    torch.manual_seed(0)
    head_file, backbone_file = metrics.fr_files(name)
    net = (torchvision.models.alexnet() if name == "lpips" else torchvision.models.vgg16()).state_dict()
    net = {k: torch.zeros(1).expand(v.shape) if v.ndim == 2 else v for k, v in net.items()}
    if name == "lpips":
        head = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(LPIPS_CHANNELS)}
    else:
        head = {k: 0.1 + 0.01 * torch.randn(1, DISTS_CHANNELS, 1, 1) for k in ("alpha", "beta")}
    for path, state in ((backbone_file, net), (head_file, head)):
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache in the test directory."""
    pytest.importorskip("pyiqa")
    pytest.importorskip("torchvision")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert all(str(f).startswith(str(tmp_path)) for m in metrics.PYIQA_FR for f in metrics.fr_files(m))
    return tmp_path / "torch"


@pytest.mark.parametrize("name", sorted(metrics.PYIQA_FR))
def test_fr_metric_runs_from_the_files_on_disk_and_grows_with_the_damage(hub: Path, name: str) -> None:
    assert metrics.fr_unavailable(name)
    _random_weights(name)
    assert metrics.fr_unavailable(name) is None
    dist = metrics.fr_distance(name)
    assert dist is not None
    clean = photo()[64:192, 160:288]
    same, mild, strong = (dist(img, clean) for img in (clean, degrade.add_noise(clean, 5), degrade.add_noise(clean, 30)))
    assert same == pytest.approx(0.0, abs=1e-5) and 0.0 < mild < strong
    bench = metrics.Metrics()
    assert name in bench.names and bench.compute(degrade.add_noise(clean, 30), clean, 4)[name] == pytest.approx(strong)


def test_without_weights_lpips_is_reported_missing_and_never_computed(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    reason = metrics.fr_unavailable("lpips")
    assert reason and "never downloaded" in reason and metrics.fr_distance("lpips") is None
    assert "lpips" not in metrics.Metrics().names


def _deblurrers() -> ToolRegistry:
    """Two motion-deblurring candidates: a mild and an over-strong unsharp mask."""
    import cv2

    def unsharp(amount: float) -> Tool:
        def run(img: np.ndarray) -> np.ndarray:
            soft = cv2.GaussianBlur(img, (0, 0), 2.0)
            return np.clip(img + amount * (img - soft), 0.0, 1.0).astype(np.float32)

        return Tool(ToolSpec(f"unsharp_{amount:g}", "motion deblurring", "unsharp mask"), run)

    return ToolRegistry([unsharp(0.6), unsharp(6.0)])


def test_qmoe_data_records_lpips_and_the_benchmark_scores_picks_against_the_lpips_oracle(hub: Path) -> None:
    _random_weights("lpips")
    clean = photo("chelsea")[100:164, 150:214]
    data = generate({"chelsea": clean}, _deblurrers(), distance=metrics.fr_distance("lpips"))
    assert set(data["step"]) == {"motion deblurring"} and np.isfinite(data["lpips"]).all()
    ex = experts_only(data)
    oracle = np.zeros(len(ex["lpips"]))
    for case in set(ex["case"]):
        m = ex["case"] == case
        oracle[m] = -ex["lpips"][m]  # scores that pick the lowest LPIPS
    best, worst = evaluate(ex, oracle)["motion deblurring"], evaluate(ex, -oracle)["motion deblurring"]
    assert best["lpips_agreement"] == 1.0 and best["lpips_loss"] == 0.0
    assert worst["lpips_loss"] > 0.0 and worst["lpips_agreement"] < 1.0
    none_rows = data["tool"] == NONE_TOOL
    assert (data["lpips"][none_rows] > 0).all()  # the blurred input is not the truth


def test_data_without_lpips_reports_none() -> None:
    clean = photo("chelsea")[100:164, 150:214]
    data = generate({"chelsea": clean}, _deblurrers())
    assert np.isnan(data["lpips"]).all()
    ex = experts_only(data)
    r = evaluate(ex, ex["gain"])["motion deblurring"]
    assert r["agreement"] == 1.0 and r["lpips_agreement"] is None and r["lpips_loss"] is None
