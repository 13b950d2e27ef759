"""The photo pool's catalogue and split rules, and the realistic small-image degradations (no download here)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import photo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from photo_pool import DEB_PHOTOS, SOURCES, SPLITS, PoolError, crops, photos, split_of  # noqa: E402

from fourkagent.degrade_real import LR_FAMILIES, small_degraded  # noqa: E402
from fourkagent.imaging import psnr  # noqa: E402
from fourkagent.scoring.dataset import sr_cases  # noqa: E402


def test_splits_are_by_source_and_every_photo_is_pinned() -> None:
    by_split = {s: {p.source for p in DEB_PHOTOS if split_of(p) == s} for s in SPLITS}
    assert all(by_split.values())
    assert not (by_split["test"] & (by_split["fit"] | by_split["validation"]))
    assert not (by_split["fit"] & by_split["validation"])
    digests = [p.sha256 for p in DEB_PHOTOS]
    assert len(set(digests)) == len(digests) and all(len(d) == 64 for d in digests)
    assert all(len(s.sha256) == 64 and s.version for s in SOURCES.values())


def test_an_unknown_split_is_refused() -> None:
    with pytest.raises(PoolError, match="unknown split"):
        photos("train")


def test_crops_take_the_most_detailed_region_first_and_never_overlap() -> None:
    img = np.zeros((300, 700, 3), np.uint8)
    rng = np.random.default_rng(0)
    img[:, 450:650] = rng.integers(0, 255, (300, 200, 3))  # the only textured region
    got = list(crops(img, 200, 3))
    assert len(got) == 3 and got[0].std() > 50  # the textured block first
    assert got[1].std() < got[0].std()
    assert list(crops(img, 400, 2)) == []  # smaller than the crop: none


@pytest.mark.parametrize("family", LR_FAMILIES)
def test_small_degraded_is_small_deterministic_and_worse_than_a_clean_downscale(family: str) -> None:
    hr = photo("coffee")[:256, :256]
    a, pa = small_degraded(hr, family, 4, np.random.default_rng(1), 1)
    b, _ = small_degraded(hr, family, 4, np.random.default_rng(1), 1)
    clean, _ = small_degraded(hr, "clean", 4, np.random.default_rng(1), 1)
    assert a.shape == (64, 64, 3) and np.array_equal(a, b)
    assert set(pa) == {k for k, fam in (("blur_sigma", "blur"), ("noise_sigma", "noise"), ("photons", "sensor"),
                                        ("jpeg_quality", "jpeg")) if fam in family.split("+")}
    if family != "clean":
        assert psnr(a, clean) < 40


def test_sr_cases_pair_each_small_input_with_its_truth() -> None:
    hr = photo("coffee")[:128, :128]
    cases = sr_cases(hr, 0)
    assert {c[0] for c in cases} == {"super-resolution", "super-resolution_2x"}
    for step, scale, lr, truth, present in cases:
        assert truth.shape[0] == lr.shape[0] * scale and present
    assert len([c for c in cases if c[1] == 4]) == len(LR_FAMILIES)
