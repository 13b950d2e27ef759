"""SURE: an unbiased estimate of a denoiser's error without the clean image, and its use in execute."""

from __future__ import annotations

import pytest

from pathlib import Path

import cv2
import numpy as np
from conftest import photo

from fourkagent import degrade
from fourkagent.imaging import Image, as_image
from fourkagent.nodes.execute import make_execute
from fourkagent.profiles.loader import load_profile
from fourkagent.scoring import sure
from fourkagent.scoring.sure import probe_sigma, ratio_to_db, sure_mse, sure_ratio, unclipped
from fourkagent.state.artifacts import ArtifactStore
from fourkagent.tools.registry import MAIN_REGISTRY

CLEAN = photo("astronaut")[100:292, 150:342]
SIGMA = 25.0


def _blur(radius: float):
    def f(img: Image) -> Image:
        return as_image(cv2.GaussianBlur(img, (0, 0), radius))
    return f


def _true_mse(out: Image) -> float:
    return float(np.mean((out - CLEAN) ** 2))


def test_sure_matches_the_true_error_of_linear_denoisers() -> None:
    noise = np.random.default_rng(3).normal(0, SIGMA / 255, CLEAN.shape)
    noisy = (CLEAN + noise).astype(np.float32)  # unclipped: the Gaussian model SURE assumes
    s = SIGMA / 255
    for radius in (0.6, 1.0, 2.0):
        f = _blur(radius)
        out = f(noisy)
        keep = unclipped(out, s)  # the pixels SURE sums over
        est, true = sure_mse(f, noisy, out, s), float(np.mean(((out - CLEAN) ** 2)[keep]))
        assert abs(est - true) < 0.1 * true, (radius, est, true)


def test_sure_skips_pixels_whose_noise_was_clipped(monkeypatch) -> None:
    """The astronaut's white suit clips σ 35 noise at 1: summed over every pixel SURE says the blur is perfect
    (negative error); over the pixels well inside [0, 1] it matches the true error there."""
    s = 35.0 / 255
    noisy = degrade.add_noise(CLEAN, 35.0, seed=4)  # clipped to [0, 1]
    f = _blur(1.0)
    out = f(noisy)
    keep = unclipped(out, s)
    assert 0.2 < keep.mean() < 0.9
    est, true = sure_mse(f, noisy, out, s), float(np.mean(((out - CLEAN) ** 2)[keep]))
    assert abs(est - true) < 0.25 * true, (est, true)
    monkeypatch.setattr(sure, "MIN_SHARE", 2.0)  # no margin qualifies: every pixel is summed
    est_all = sure_mse(f, noisy, out, s)
    assert abs(est_all - _true_mse(out)) > 0.5 * _true_mse(out)
    assert abs(sure_ratio(lambda x: x.copy(), noisy, 35.0) - 1.0) < 1e-3  # doing nothing still scores σ² exactly


def test_doing_nothing_has_ratio_one_and_ratios_rank_like_the_truth() -> None:
    noisy = degrade.add_noise(CLEAN, SIGMA, seed=5)
    sigma = probe_sigma(noisy)
    assert abs(sigma - SIGMA) < 4.0
    assert abs(sure_ratio(lambda x: x.copy(), noisy, sigma) - 1.0) < 1e-3
    tools = [MAIN_REGISTRY.get(n) for n in ("denoise_nlm", "denoise_wavelet", "denoise_cnn")]
    outs = [t(noisy) for t in tools]
    ratios = [sure_ratio(t, noisy, sigma, out=o) for t, o in zip(tools, outs)]
    truth = [_true_mse(o) for o in outs]
    assert all(r < 1.0 for r in ratios)  # every denoiser beats the noisy input, and SURE knows it
    assert int(np.argmin(ratios)) == int(np.argmin(truth))
    assert ratio_to_db(min(ratios)) > 3.0


def test_large_inputs_are_probed_on_a_central_crop() -> None:
    big = degrade.add_noise(np.tile(CLEAN, (3, 3, 1)), SIGMA, seed=2)
    calls: list[tuple[int, int]] = []

    def tool(img: Image) -> Image:
        calls.append(img.shape[:2])
        return _blur(1.0)(img)

    r = sure_ratio(tool, big, SIGMA, out=tool(big))
    assert r < 1.0 and calls[1:] == [(256, 256), (256, 256)]


@pytest.mark.slow
def test_execute_records_sure_for_denoising_candidates(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    noisy = degrade.add_noise(CLEAN, SIGMA, seed=9)
    art = store.put(noisy)
    state = {
        "agenda": ["denoising"], "cursor": 0, "run_dir": str(tmp_path),
        "profile_data": load_profile("GenMIR-P").model_dump(), "options": {},
        "tree": [{"artifact": art, "width": noisy.shape[1], "height": noisy.shape[0]}],
    }
    cands = make_execute(MAIN_REGISTRY)(state)["candidates"]
    ok = [c for c in cands if c["artifact"] is not None]
    assert len(ok) >= 3 and all(c["sure_ratio"] < 0.5 for c in ok)  # σ 25: every denoiser removes most of the error
    state["agenda"] = ["dehazing"]
    assert all("sure_ratio" not in c for c in make_execute(MAIN_REGISTRY)(state)["candidates"])


def test_a_failing_probe_leaves_the_candidate_standing() -> None:
    from fourkagent.errors import ToolError
    from fourkagent.nodes.execute import sure_entry

    noisy = degrade.add_noise(CLEAN, SIGMA, seed=1)
    runs: list[int] = []

    def flaky(img: Image) -> Image:
        runs.append(1)
        if len(runs) > 1:
            raise ToolError("probe failed")
        return _blur(1.0)(img)

    out = flaky(noisy)
    assert sure_entry(flaky, noisy, out, probe_sigma(noisy)) == {}
    assert sure_entry(_blur(1.0), noisy, out, None) == {}
    assert sure_entry(_blur(1.0), noisy, out, probe_sigma(noisy))["sure_ratio"] < 1.0
