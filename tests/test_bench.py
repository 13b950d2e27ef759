"""The benchmark harness end to end on two tiny real-photo cases, its metrics and its tables."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from fourkagent.bench.dataset import FAMILIES, build_cases, center_crop, load_photo, multi_degrade
from fourkagent.bench.metrics import full_reference, ssim
from fourkagent.bench.run import run_bench
from fourkagent.bench.tables import write_results
from fourkagent.cli import main as cli_main
from fourkagent.degrade import add_noise


def test_dataset_is_deterministic_and_covers_the_families() -> None:
    a = build_cases(FAMILIES, quick=True, hr_side=64, max_images=1, seed=5)
    b = build_cases(FAMILIES, quick=True, hr_side=64, max_images=1, seed=5)
    assert {c.family for c in a} == set(FAMILIES)
    for x, y in zip(a, b, strict=True):
        assert x.id == y.id and np.array_equal(x.lr, y.lr)
        if x.hr is not None:
            assert x.lr.shape[0] * x.scale == x.hr.shape[0]
    sizes = {c.family: c.lr.shape[:2] for c in a}
    assert sizes["x16"] == (256, 256) and sizes["to4k-1024"] == (1024, 1024)
    c = build_cases(("realworld-x4",), quick=True, hr_side=64, max_images=1, seed=6)[0]
    assert not np.array_equal(c.lr, a[[x.family for x in a].index("realworld-x4")].lr)  # the seed matters


def test_metrics_identity_and_known_values() -> None:
    ref = center_crop(load_photo("camera"), 96)
    same = full_reference(ref, ref, 4)
    assert math.isinf(same["psnr_y"]) and math.isinf(same["psnr_rgb"])
    assert same["ssim_y"] == pytest.approx(1.0) and same["ssim_rgb"] == pytest.approx(1.0)
    noisy = full_reference(add_noise(ref, 10, seed=1), ref, 0)
    assert 26.0 < noisy["psnr_rgb"] < 29.5  # sigma 10/255 (minus clipping) is about 28 dB
    assert 0.0 < noisy["ssim_y"] < 0.95
    rng = np.random.default_rng(0)
    a = rng.random((40, 40)) * 255
    assert ssim(a, a) == pytest.approx(1.0) and ssim(a, 255 - a) < 0.0


def test_bench_two_tiny_images_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOURKAGENT_IQA_METRICS", "niqe")  # the agent's perception without torch/pyiqa (time)
    cases = build_cases(("classical-x4", "multi"), quick=True, hr_side=64, max_images=1, seed=0)
    assert len(cases) == 2
    lines: list[str] = []
    res = run_bench(cases=cases, methods=("identity", "lanczos", "bicubic", "tool:denoise_nlm", "chain:oracle",
                                          "agent:ExpSR-s4-F"),
                    out_dir=tmp_path, use_pyiqa=False, log=lines.append)
    rows = {(r["case"], r["method"]): r for r in res["rows"]}
    sr, mio = cases[0].id, cases[1].id
    assert math.isinf(rows[(sr, "identity")]["psnr_y"]) and rows[(sr, "identity")]["ssim_y"] == pytest.approx(1.0)
    lz = rows[(sr, "lanczos")]
    assert math.isfinite(lz["psnr_y"]) and 15.0 < lz["psnr_y"] < 40.0 and lz["out_size"] == "64x64"
    assert (mio, "input") in rows and (mio, "lanczos") not in rows  # same-size family: the input is the baseline
    agent = rows[(sr, "agent:ExpSR-s4-F")]
    assert agent["error"] is None and math.isfinite(agent["psnr_y"])
    assert agent["peak_rss_mb"] >= agent["rss_after_import_mb"] > 50 and 0 < agent["in_nodes_s"] <= agent["wall_s"]
    assert (mio, "agent:ExpSR-s4-F") not in rows  # ×4 profile does not fit a same-size case
    assert rows[(mio, "chain:oracle")]["tools"]  # a restoration chain was chosen for the known degradations
    assert len(lines) == len(res["rows"])

    paths = write_results(res, tmp_path)
    md = paths["md"].read_text()
    assert "### classical-x4" in md and "### multi" in md and "PSNR-Y ↑" in md
    assert "| `identity` | 1 | inf |" in md  # the reference against itself
    assert "Agent performance" in md and "peak RSS" in md and "usable cores" in md and "agent vs baselines" in md
    data = json.loads(paths["json"].read_text())
    assert any(r["psnr_y"] == "inf" for r in data["rows"])
    with paths["csv"].open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(res["rows"]) and {"psnr_y", "ssim_rgb", "niqe", "seconds"} <= set(table[0])
    assert (tmp_path / "reports" / f"{sr.replace('/', '_')}__ExpSR-s4-F.report.html").exists()


def test_multi_degradation_applies_every_kind() -> None:
    hr = center_crop(load_photo("coffee"), 64)
    one = multi_degrade(hr, ("noise",), seed=1)
    two = multi_degrade(hr, ("noise", "dark"), seed=1)
    assert two.mean() < one.mean() - 0.05  # darkened as well as noisy


def test_bad_arguments_give_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", "--families", "nope", "-o", "/tmp/unused-bench"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown family nope" in err
    assert cli_main(["bench", "--families", "multi", "--methods", "tool:no_such_tool", "--max-images", "1"]) == 2
    assert "unknown tool 'no_such_tool'" in capsys.readouterr().err
