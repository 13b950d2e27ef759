"""The reference scorer's arithmetic, resize rule, threshold, and winner on fixed metric outputs."""

from __future__ import annotations

import numpy as np
import pytest

from fourkagent.errors import MissingWeightsError
from fourkagent.scoring.niqe import nriqa_factor
from fourkagent.scoring.paper import PaperScorer, metric_mix, require


def test_mix_arithmetic() -> None:
    v = {"clipiqa+": 0.6, "maniqa": 0.4, "musiq": 50.0, "niqe": 5.0}
    assert metric_mix(v) == pytest.approx((0.6 + 0.4 + 0.5 + 0.5) / 4)


def test_resize_rule() -> None:
    assert [nriqa_factor(s) for s in (64, 120, 121, 240, 241, 4200, 4201)] == [8, 8, 2, 2, 1, 1, 0.5]


def test_scores_and_winner_match_a_hand_computation() -> None:
    # candidates are told apart by their mean value; every metric is a fixed function of it
    images = {name: np.full((50, 50, 3), m, np.float32) for name, m in (("a", 0.2), ("b", 0.5), ("c", 0.8))}
    seen_sizes = []

    def metric(scale: float, offset: float):
        def fn(img):
            seen_sizes.append(img.shape[:2])
            return offset + scale * float(img.mean())
        return fn

    metrics = {"clipiqa+": metric(0.5, 0.1), "maniqa": metric(-0.4, 0.6), "musiq": metric(30.0, 40.0), "niqe": metric(-4.0, 7.0)}
    hps = lambda img, text: 0.2 + 0.1 * float(img.mean()) + (0.01 if text == "a cat" else 0.0)  # noqa: E731
    scorer = PaperScorer(hps, metrics)
    got = {n: scorer.score(im, "a cat").score for n, im in images.items()}
    for n, im in images.items():
        m = float(im.mean())
        hand = (0.2 + 0.1 * m + 0.01) + ((0.1 + 0.5 * m) + (0.6 - 0.4 * m) + 0.01 * (40 + 30 * m) + (1 - (7 - 4 * m) / 10)) / 4
        assert got[n] == pytest.approx(hand, abs=1e-5)
    assert max(got, key=got.get) == "c"
    assert all(s == (400, 400) for s in seen_sizes), "NR-IQA inputs must be resized ×8 for a 50-px image"
    assert scorer.threshold == 0.5 and PaperScorer(hps, metrics, with_metrics=False).threshold == 0.12


def test_missing_weights_are_named() -> None:
    with pytest.raises(MissingWeightsError, match="hpsv2.1, maniqa"):
        require({"hpsv2.1": None, "clipiqa+": object(), "maniqa": None, "musiq": object(), "niqe": object()})


def test_paper_profile_without_weights_fails_in_one_line(tmp_path) -> None:
    import subprocess
    import sys

    from conftest import photo, write

    src = write(tmp_path, "in.png", photo("chelsea")[:32, :32])
    prof = tmp_path / "paper.yaml"
    prof.write_text("upscale_to_4k: false\nscale_factor: 2\nReflection: hpsv2+metric\n")
    res = subprocess.run([sys.executable, "-m", "fourkagent.cli", "restore", str(src), "-o", str(tmp_path / "o.png"),
                          "-p", str(prof)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "paper scorer" in res.stderr and "hpsv2" in res.stderr
