"""Offline degradation detectors: API, calibration on real photos, and cross-confusion checks."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from fourkagent import degrade
from fourkagent.imaging import as_image, resize
from fourkagent.perception import measures as M
from fourkagent.perception.detectors import (
    SEVERITIES,
    Detection,
    detect,
    detect_all,
    estimate_noise_sigma,
)
from fourkagent.vocabulary import KINDS

skdata = pytest.importorskip("skimage.data")

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "camera", "moon")
# already dim photos (99.5th luminance percentile ~0.6): at 0.7x exposure they *are* dark in absolute terms
DIM_PHOTOS = {"moon", "retina"}
_CACHE: dict[str, np.ndarray] = {}


def photo(name: str, max_side: int = 512) -> np.ndarray:
    """A scikit-image sample photo, centre-cropped to ``max_side`` (pixel scale kept)."""
    if name not in _CACHE:
        img = as_image(getattr(skdata, name)())
        h, w = img.shape[:2]
        y0, x0 = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
        _CACHE[name] = np.ascontiguousarray(img[y0 : y0 + max_side, x0 : x0 + max_side])
    return _CACHE[name]


def degraded(img: np.ndarray, kind: str, level: int, seed: int = 0) -> np.ndarray:
    """``degrade.apply``, except "low resolution" is judged on content: down-scale, then up-scale back."""
    if kind == "low resolution":
        f = int(degrade.LEVELS[kind][level - 1]["factor"])
        return resize(degrade.downscale(img, f), (img.shape[1], img.shape[0]), "cubic")
    return degrade.apply(img, kind, level, seed=seed)


def sev(d: Detection) -> int:
    return SEVERITIES.index(d.severity)


# ------------------------------------------------------------------------------------------- API


def test_vocabulary_and_api():
    assert SEVERITIES == ("very low", "low", "medium", "high", "very high")
    assert KINDS == ("noise", "motion blur", "defocus blur", "haze", "rain", "dark", "jpeg compression artifact",
                     "low resolution")
    dets = detect_all(photo("astronaut"))
    assert [d.kind for d in dets] == list(KINDS)
    for d in dets:
        assert d.severity in SEVERITIES
        assert 0.0 <= d.confidence <= 1.0
        assert d.evidence and all(isinstance(v, float) for v in d.evidence.values())
        blob = json.loads(json.dumps(d.to_dict()))
        assert blob["kind"] == d.kind and blob["present"] == d.present
    assert Detection("noise", "medium", 0.7, {}).present
    assert not Detection("noise", "low", 0.7, {}).present
    with pytest.raises(ValueError):
        detect(photo("astronaut"), "fog")


def test_accepts_uint8_and_gray():
    gray = skdata.camera()  # uint8, 2-D
    d = detect(gray, "noise")
    assert d.kind == "noise" and not d.present


def test_detect_matches_detect_all():
    img = degraded(photo("coffee"), "noise", 4)
    one = {d.kind: d for d in detect_all(img)}
    for kind in ("noise", "dark", "low resolution"):
        assert detect(img, kind) == one[kind]


def test_evidence_keys():
    ev = {d.kind: d.evidence for d in detect_all(photo("chelsea"))}
    assert "noise_sigma" in ev["noise"]
    assert "mean_luminance" in ev["dark"] and "bright_luminance" in ev["dark"]
    assert "blockiness" in ev["jpeg compression artifact"] and "jpeg_quality_est" in ev["jpeg compression artifact"]
    assert "dark_channel" in ev["haze"]
    assert "streak_energy" in ev["rain"]
    assert "motion_length" in ev["motion blur"] and "anisotropy" in ev["motion blur"]
    assert "defocus_radius" in ev["defocus blur"]
    assert "effective_factor" in ev["low resolution"]
    assert {"robust_cutoff", "robust_limited", "rainfree_cutoff"} <= set(ev["low resolution"])
    assert {"dark_channel_smooth", "dark_channel_smooth_p10", "dark_channel_textured"} <= set(ev["haze"])
    robust_ring = {"robust_ring_z", "robust_ring_radius", "robust_wide_ring_z", "robust_wide_ring_radius"}
    assert robust_ring <= set(ev["defocus blur"])
    fast = {d.kind: d.evidence for d in detect_all(photo("chelsea"), calibrated=False, model_inputs=False)}
    assert not robust_ring & set(fast["defocus blur"])  # calibration-only evidence is skipped
    assert all(fast[k] == {e: v for e, v in ev[k].items() if e in fast[k]} for k in KINDS)


# --------------------------------------------------------------------------------- noise sigma


@pytest.mark.parametrize("name", ["astronaut", "coffee", "camera"])
def test_noise_sigma_accuracy(name):
    for sigma in (10, 20, 35, 50):
        est = estimate_noise_sigma(degrade.add_noise(photo(name), sigma, seed=1))
        assert abs(est - sigma) <= 0.15 * sigma + 2.5, (name, sigma, est)


def test_noise_sigma_ignores_jpeg():
    for name in ("astronaut", "chelsea"):
        assert estimate_noise_sigma(degrade.jpeg(photo(name), 10)) < 8.0


# ------------------------------------------------------------------------------------ calibration


@pytest.mark.parametrize("name", PHOTOS)
def test_clean_photo_reports_nothing(name):
    present = [d.kind for d in detect_all(photo(name)) if d.present]
    assert present == [], (name, present)


# four photos per kind (rotating through the set) keeps the suite fast
_MONO = [(kind, PHOTOS[(3 * i + j) % len(PHOTOS)]) for i, kind in enumerate(KINDS) for j in range(4)]


@pytest.mark.parametrize("kind,name", _MONO)
def test_levels_monotone_and_present_from_medium(kind, name):
    img = photo(name)
    dets = [detect(degraded(img, kind, level, seed=level), kind) for level in range(1, 6)]
    sevs = [sev(d) for d in dets]
    assert all(b >= a for a, b in zip(sevs, sevs[1:])), (kind, name, [d.severity for d in dets])
    assert all(d.present for d in dets[2:]), (kind, name, [d.severity for d in dets])
    if not (kind == "dark" and name in DIM_PHOTOS):
        assert not dets[0].present, (kind, name, [d.severity for d in dets])


def test_tiny_image_is_low_resolution():
    tiny = degrade.apply(photo("astronaut"), "low resolution", 5)  # 64 x 64 pixels
    assert detect(tiny, "low resolution").present
    assert not detect(degrade.apply(photo("astronaut"), "low resolution", 1), "low resolution").present


# ------------------------------------------------------------------------------------- confusions


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "camera"])
def test_jpeg_is_not_noise(name):
    dets = {d.kind: d for d in detect_all(degraded(photo(name), "jpeg compression artifact", 5))}
    assert dets["jpeg compression artifact"].present
    assert not dets["noise"].present


@pytest.mark.parametrize("name", ["coffee", "rocket"])
def test_noise_is_not_jpeg_or_rain(name):
    dets = {d.kind: d for d in detect_all(degraded(photo(name), "noise", 5))}
    assert dets["noise"].present
    assert not dets["jpeg compression artifact"].present
    assert not dets["rain"].present


@pytest.mark.parametrize("name", ["astronaut", "moon"])
def test_defocus_is_not_motion_or_low_resolution(name):
    dets = {d.kind: d for d in detect_all(degraded(photo(name), "defocus blur", 4))}
    assert dets["defocus blur"].present
    assert not dets["motion blur"].present
    assert not dets["low resolution"].present


@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_motion_is_not_defocus(name):
    dets = {d.kind: d for d in detect_all(degraded(photo(name), "motion blur", 4))}
    assert dets["motion blur"].present
    assert not dets["defocus blur"].present


@pytest.mark.parametrize("name", ["coffee", "chelsea"])
def test_low_resolution_is_not_defocus(name):
    dets = {d.kind: d for d in detect_all(degraded(photo(name), "low resolution", 4))}
    assert dets["low resolution"].present
    assert not dets["defocus blur"].present


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_dark_is_not_haze_and_haze_is_not_dark(name):
    dark = {d.kind: d for d in detect_all(degraded(photo(name), "dark", 4))}
    assert dark["dark"].present and not dark["haze"].present
    hazy = {d.kind: d for d in detect_all(degraded(photo(name), "haze", 4))}
    assert hazy["haze"].present and not hazy["dark"].present


@pytest.mark.parametrize("name", ["rocket", "chelsea"])
def test_rain_is_not_noise_or_motion(name):
    dets = {d.kind: d for d in detect_all(degraded(photo(name), "rain", 4, seed=3))}
    assert dets["rain"].present
    assert not dets["noise"].present
    assert not dets["motion blur"].present


def test_pair_noise_and_dark():
    img = degrade.add_noise(degrade.darken(photo("astronaut"), 0.22), 35, seed=2)
    present = {d.kind for d in detect_all(img) if d.present}
    assert {"noise", "dark"} <= present


# --------------------------------------------------------------------------------- combined degradations


def chain(name: str, *steps: tuple[str, int]) -> dict[str, Detection]:
    """Apply ``(kind, level)`` steps in order to a photo; the detections by kind."""
    img = photo(name)
    for i, (kind, level) in enumerate(steps):
        img = degraded(img, kind, level, seed=i + 1)
    return {d.kind: d for d in detect_all(img)}


@pytest.mark.parametrize("name", ["coffee", "camera", "astronaut"])
def test_noise_survives_mild_jpeg(name):
    # sigma 20 under JPEG quality 40: patch-PCA sees little, the DCT coefficients still carry it
    assert chain(name, ("noise", 3), ("jpeg compression artifact", 2))["noise"].present
    assert not chain(name, ("noise", 2), ("jpeg compression artifact", 2))["noise"].present  # sigma 10: absent


def test_jpeg_noise_sigma_tracks_noise_and_ignores_clean_blocks():
    img = photo("astronaut")
    for sigma in (20, 35):
        for quality in (60, 40):
            noisy = degrade.jpeg(degrade.add_noise(img, sigma, seed=1), quality)
            est = M.jpeg_noise_sigma(noisy, M.jpeg_measures(noisy)["jpeg_quality_est"])
            assert abs(est - sigma) <= 0.2 * sigma, (sigma, quality, est)
    clean = degrade.jpeg(img, 40)
    assert M.jpeg_noise_sigma(clean, M.jpeg_measures(clean)["jpeg_quality_est"]) < 8.0


@pytest.mark.parametrize("name", ["coffee", "astronaut"])
def test_noise_does_not_hide_low_resolution(name):
    dets = chain(name, ("low resolution", 3), ("noise", 3))
    assert dets["low resolution"].present and dets["noise"].present


def test_motion_under_heavy_noise():
    dets = chain("astronaut", ("motion blur", 3), ("noise", 4))
    assert dets["motion blur"].present and dets["noise"].present
    assert not dets["low resolution"].present


@pytest.mark.parametrize("name", ["chelsea", "astronaut"])
def test_directional_blur_is_not_low_resolution(name):
    # a motion kernel leaves the direction across it sharp; JPEG must not turn that into "low resolution"
    dets = chain(name, ("motion blur", 4), ("jpeg compression artifact", 1))
    assert dets["motion blur"].present
    assert not dets["low resolution"].present


def test_motion_and_defocus_together():
    dets = chain("astronaut", ("motion blur", 5), ("defocus blur", 4))
    assert dets["motion blur"].present and dets["defocus blur"].present
    assert 5.0 <= dets["defocus blur"].evidence["defocus_radius"] <= 7.0  # true radius 6


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_defocus_behind_mild_resampling(name):
    # a x2 down/up-scale weakens the disk's ring; the wide ring still reads as optics, not as low resolution
    dets = chain(name, ("defocus blur", 5), ("low resolution", 2))
    assert dets["defocus blur"].present
    assert not dets["low resolution"].present


@pytest.mark.parametrize("radius", [4.0, 6.0, 8.0])
def test_defocus_radius_is_measured(radius):
    d = detect(degrade.defocus_blur(photo("chelsea"), radius), "defocus blur")
    assert abs(d.evidence["defocus_radius"] - radius) <= 0.3, d.evidence


@pytest.mark.parametrize("name", ["camera", "moon"])
def test_noise_does_not_colour_a_grey_photo_hazy(name):
    dets = chain(name, ("noise", 1))
    assert dets["haze"].evidence["saturation"] < 0.02
    assert not dets["haze"].present


def test_heavy_quantisation_of_grey_texture_is_not_haze():
    hazy = chain("moon", ("haze", 3))
    assert hazy["haze"].present
    blocky = chain("moon", ("jpeg compression artifact", 5))
    assert blocky["haze"].evidence["smear_discount"] > 0.05
    assert not blocky["haze"].present


def test_rain_streaks_do_not_fake_blur():
    for name in ("chelsea", "rocket", "astronaut"):
        dets = chain(name, ("rain", 3))
        assert dets["rain"].present
        assert not dets["low resolution"].present and not dets["motion blur"].present
        assert not dets["defocus blur"].present


# ------------------------------------------------------------- noise-robust evidence (calibration model inputs)


def raw_evidence(name: str, *steps: tuple[str, int]) -> dict[str, dict[str, float]]:
    """Raw (uncalibrated) evidence by kind after applying ``(kind, level)`` steps to a photo."""
    img = photo(name)
    for i, (kind, level) in enumerate(steps):
        img = degraded(img, kind, level, seed=i + 1)
    return {d.kind: d.evidence for d in detect_all(img, calibrated=False)}


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_robust_cutoff_survives_heavy_noise(name):
    x2 = raw_evidence(name, ("low resolution", 1))["low resolution"]["robust_cutoff"]
    x4 = raw_evidence(name, ("low resolution", 3))["low resolution"]["robust_cutoff"]
    noisy = raw_evidence(name, ("low resolution", 3), ("noise", 4))["low resolution"]  # sigma 35
    assert x4 < 0.14 and x2 > 1.4 * x4
    assert abs(noisy["robust_cutoff"] - x4) <= 0.12 * x4, (noisy, x4)


@pytest.mark.parametrize("name", ["chelsea", "astronaut", "coffee"])
def test_rainfree_cutoff_measures_blur_under_rain(name):
    dry = raw_evidence(name, ("low resolution", 5))["low resolution"]["robust_cutoff"]
    wet = raw_evidence(name, ("low resolution", 5), ("rain", 4))["low resolution"]
    assert abs(wet["rainfree_cutoff"] - dry) <= 0.25 * dry, (wet, dry)
    sharp_wet = raw_evidence(name, ("rain", 4))["low resolution"]["rainfree_cutoff"]
    assert sharp_wet > 2.0 * dry


@pytest.mark.parametrize("name", ["chelsea", "astronaut", "immunohistochemistry"])
def test_smoothed_dark_channel_ignores_noise_and_grows_with_haze(name):
    levels = [raw_evidence(name, ("haze", lv))["haze"] if lv else raw_evidence(name)["haze"] for lv in range(5)]
    for key in ("dark_channel_smooth", "dark_channel_textured"):
        assert all(a[key] < b[key] for a, b in zip(levels, levels[1:])), key
    noisy = raw_evidence(name, ("haze", 3), ("noise", 5))["haze"]  # sigma 50
    assert abs(noisy["dark_channel_smooth"] - levels[3]["dark_channel_smooth"]) < 0.05
    assert levels[3]["dark_channel"] - noisy["dark_channel"] > 0.1  # what the plain dark channel does


def test_textured_dark_channel_discounts_a_bright_flat_sky():
    clean, hazy = raw_evidence("camera")["haze"], raw_evidence("camera", ("haze", 3))["haze"]
    assert clean["dark_channel_textured"] < clean["dark_channel_smooth"] - 0.2  # the sky lifts the median only
    assert hazy["dark_channel_textured"] > clean["dark_channel_textured"] + 0.3


@pytest.mark.parametrize("name", ["astronaut", "coffee", "immunohistochemistry"])
def test_robust_ring_sees_defocus_under_rain(name):
    wet = raw_evidence(name, ("defocus blur", 3), ("rain", 3))["defocus blur"]  # disk r 4: ring at diameter 8
    assert wet["robust_ring_z"] >= 1.5 and abs(wet["robust_ring_radius"] - 8.0) <= 1.0, wet
    assert wet["ring_z"] < wet["robust_ring_z"] - 0.9  # the plain ring drowns in the streaks' spectrum
    rain_only = raw_evidence(name, ("rain", 3))["defocus blur"]
    assert rain_only["robust_ring_z"] < 1.1 and rain_only["robust_ring_z"] < wet["robust_ring_z"] - 0.8


# ------------------------------------------------------------------------------------------ speed


def test_speed_1024():
    img = resize(photo("astronaut"), (1024, 1024), "cubic")
    detect_all(img)  # warm-up (caches, lazy imports)
    t = time.perf_counter()
    detect_all(img)
    assert time.perf_counter() - t < 2.0  # budget is 1 s; slack for loaded CI machines


def test_what_the_upscale_factor_magnifies_is_reported() -> None:
    from fourkagent.perception.offline import factor_aware

    img = as_image(skdata.coffee())[100:228, 200:328]
    q50 = degrade.jpeg(img, 50)
    noisy = degrade.add_noise(img, 14, seed=2)
    for src, kind in ((q50, "jpeg compression artifact"), (noisy, "noise")):
        dets = [d.to_dict() | {"present": d.present} for d in detect_all(src)]
        before = next(d for d in dets if d["kind"] == kind)
        after = next(d for d in factor_aware(dets, 4) if d["kind"] == kind)
        assert after["present"], (kind, before["evidence"])
        assert before["present"] or "magnifies" in after["reason"]
        assert next(d for d in factor_aware(dets, 1) if d["kind"] == kind)["present"] == before["present"]
    clean = [d.to_dict() | {"present": d.present} for d in detect_all(img)]
    assert [d["present"] for d in factor_aware(clean, 16)] == [d["present"] for d in clean]  # nothing invented
    mild = [d.to_dict() | {"present": d.present} for d in detect_all(degrade.jpeg(img, 92))]
    assert not next(d for d in factor_aware(mild, 4) if d["kind"] == "jpeg compression artifact")["present"]
