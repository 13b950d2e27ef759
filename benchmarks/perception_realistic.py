"""Realistic perception cases for the benchmark and the calibration fit: ``fourkagent.degrade_real``'s degradations
(sensor and Gaussian noise, JPEG, camera shake, soft lens, depth haze, streak rain, low light, a good camera's file)
in capture order, singly and combined, at the sizes the agent sees, with their ground truth per perception kind.

Used by ``benchmarks/perception.py --realistic`` and ``training/fit_perception.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fourkagent import degrade  # noqa: E402
from fourkagent.imaging import resize  # noqa: E402
from fourkagent.vocabulary import KINDS  # noqa: E402


REAL_ORDER = ("preblur", "downscale", "haze", "shake", "blur", "rain", "dark", "mild", "sensor", "noise", "jpeg")
"""Capture order of the realistic stages: ``preblur`` + ``downscale`` make a ×4 small input from a large crop (as
``degrade_real.small_degraded`` does for ``benchmarks/realworld.py``), then the scene (depth haze), the camera
(shake, a soft lens), rain near the lens, exposure (low light), the sensor and the file (JPEG)."""
REAL_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "preblur": {"sigma": (0.8, 2.8)}, "haze": {"beta": (0.3, 2.2), "airlight": (0.75, 0.95)},
    "shake": {"length": (4.0, 20.0), "noise": (0.5, 3.0)}, "blur": {"sigma": (0.8, 2.8)},
    "rain": {"density": (0.0015, 0.007)}, "dark": {"exposure": (0.04, 0.4)},
    "mild": {"photons": (400.0, 1500.0), "quality": (85, 95)}, "sensor": {"photons": (15.0, 600.0)},
    "noise": {"sigma": (3.0, 30.0)}, "jpeg": {"quality": (25, 95)},
}
"""Strengths drawn per realistic stage (uniform; ``dark`` exposure and ``sensor`` photons log-uniform): wider than
``degrade_real``'s ``training`` ranges so that each kind has cases on both sides of its ground-truth boundary."""
REAL_TRUTH_BOUNDS: dict[str, tuple[str, float, float, bool]] = {
    "noise": ("sigma_real", 12.0, 18.0, True),
    "motion blur": ("shake_length", 10.0, 14.0, True),
    "defocus blur": ("blur_sigma", 1.25, 2.0, True),
    "haze": ("haze_beta", 0.7, 1.0, True),
    "rain": ("rain_density", 0.0025, 0.003, True),
    "dark": ("dark_exposure", 0.1, 0.2, False),
    "jpeg compression artifact": ("jpeg_quality", 30.0, 40.0, False),
}
"""Ground truth of a realistic case per kind: ``(measure, lo, hi, larger_is_present)``. With ``larger_is_present``
the kind is present (1) iff the measure is >= ``hi``, absent (0) iff <= ``lo`` (or the stage is not there), and
ambiguous (-1, left out of that kind's fit and scores) in between; otherwise mirrored (present iff <= ``lo``).
The bounds sit between the textbook levels 2 (absent) and 3 (present) of :data:`fourkagent.degrade.LEVELS`:

- noise: ``sigma_real``, the realised noise σ (0-255) of the noise stage (Gaussian, Bayer sensor noise after
  demosaicing, the good camera's ``mild`` noise, camera shake's own noise): the standard deviation of that stage's
  output minus the same stage without noise, on the case's image (textbook σ 10 / 20);
- motion blur: camera-shake trajectory extent in px (textbook linear length 9 / 15);
- defocus blur: Gaussian blur σ of a soft lens (a pillbox of radius r has σ = r / 2: textbook r 2.5 / 4); camera
  shake longer than 10 px is ambiguous for defocus (a curled trajectory is a blob);
- haze: depth-haze β (depth 0.2-1; textbook β 0.6 / 1.0 over depth 0.3-1);
- rain: streak-rain density (textbook 0.002 / 0.004 with shorter streaks);
- dark: low-light exposure in linear light, judged at the bright end like the detector (exposure e maps white to
  e^(1/2.2): e 0.1 -> 0.35 = textbook level 3's white, e 0.2 -> 0.48, about level 2's 0.5); noise in low light is
  ambiguous (-1: it is the exposure's own shot noise);
- JPEG: quality (textbook q 40 / 25; the detectors' own boundary is about q 32);
- low resolution: short side <= 133 px (the detectors' tiny-image rule, as for the textbook cases); a soft lens of
  σ >= 1.25 at full size is ambiguous (-1); a ×4 input's pre-blur (σ/4 px at its size) counts as nothing.

``mild`` (a good camera's file: faint sensor noise and JPEG q 85-95) and ``clean`` are absent in every kind but
low resolution's tiny-image rule."""
TINY_SIDE = 133
"""Short sides up to this are "low resolution" (the detectors' tiny-image rule)."""
REAL_SINGLES = ("mild", "sensor", "noise", "jpeg", "shake", "blur", "haze", "rain", "dark")
REAL_COMBOS: tuple[tuple[str, ...], ...] = (
    ("sensor", "jpeg"), ("noise", "jpeg"), ("haze", "sensor"), ("haze", "jpeg"), ("shake", "sensor"),
    ("shake", "jpeg"), ("rain", "jpeg"), ("rain", "sensor"), ("haze", "rain"), ("dark", "jpeg"), ("blur", "noise"),
    ("haze", "shake"), ("shake", "rain", "jpeg"), ("haze", "sensor", "jpeg"),
)
"""Realistic combinations (applied in :data:`REAL_ORDER`)."""
REAL_SMALL = (("mild",), ("mild",), ("noise",), ("noise",), ("sensor",), ("sensor",), ("sensor",), ("jpeg",),
              ("jpeg",), ("sensor", "jpeg"), ("sensor", "jpeg"), ("noise", "jpeg"), ("preblur",),
              ("preblur", "noise"), ("haze",), ("rain",))
"""Stages of the ×4 small inputs (after ``downscale``): the ``benchmarks/realworld.py`` families (clean is added
separately), a good camera's file, and one haze and one rain case."""
FALSE_ALARM_STAGES = frozenset({"mild", "sensor", "noise", "jpeg", "preblur", "downscale"})
"""A realistic case made only of these stages (or none) has neither rain nor haze: its rain / haze verdicts are
the false alarms ``--realistic`` counts (noisy, JPEG'd, mild and clean inputs)."""


def draw_realistic(stages: Sequence[str], rng: np.random.Generator) -> dict[str, dict[str, float]]:
    """Strengths for ``stages`` drawn from :data:`REAL_RANGES` (``downscale`` is ×4), in :data:`REAL_ORDER`."""
    out: dict[str, dict[str, float]] = {}
    for st in sorted(stages, key=REAL_ORDER.index):
        if st == "downscale":
            out[st] = {"factor": 4}
            continue
        p = {}
        for name, (lo, hi) in REAL_RANGES[st].items():
            if isinstance(lo, int):
                p[name] = int(rng.integers(lo, hi + 1))
            elif (st, name) in (("dark", "exposure"), ("sensor", "photons")):
                p[name] = round(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))), 4)
            else:
                p[name] = round(float(rng.uniform(lo, hi)), 5)
        out[st] = p
    return out


def realistic(img: np.ndarray, stages: dict[str, dict[str, float]], seed: int = 0) -> tuple[np.ndarray, dict]:
    """Apply realistic ``stages`` (:func:`draw_realistic`) in :data:`REAL_ORDER`; quantised to 8 bits like a file.

    Returns the image and the measures the ground truth reads (:data:`REAL_TRUTH_BOUNDS`)."""
    from fourkagent.degrade_real import _gaussian_blur, camera_shake, depth_haze, low_light, sensor_noise, streak_rain
    from fourkagent.imaging import as_image, to_uint8

    out, m = as_image(img), {}
    for st, p in sorted(stages.items(), key=lambda kv: REAL_ORDER.index(kv[0])):
        if st == "preblur":
            out = _gaussian_blur(out, p["sigma"])
        elif st == "downscale":
            out = degrade.downscale(out, int(p["factor"]))
        elif st == "haze":
            out, m["haze_beta"] = depth_haze(out, p["beta"], p["airlight"], seed=seed), p["beta"]
        elif st == "shake":
            clean = out
            out = camera_shake(clean, p["length"], p["noise"], seed=seed)
            m["shake_length"], m["sigma_real"] = p["length"], p["noise"]
        elif st == "blur":
            out, m["blur_sigma"] = _gaussian_blur(out, p["sigma"]), p["sigma"]
        elif st == "rain":
            out, m["rain_density"] = streak_rain(out, p["density"], seed=seed), p["density"]
        elif st == "dark":
            out, m["dark_exposure"] = low_light(out, p["exposure"], seed=seed), p["exposure"]
        elif st in ("mild", "sensor"):
            ref = sensor_noise(out, photons=1e9, read=0.0, quality=0, seed=seed)  # the same pipeline, no noise
            out = sensor_noise(out, photons=p["photons"], quality=0, seed=seed)
            m["sigma_real"] = round(float(np.std(out - ref)) * 255.0, 3)
            if st == "mild":
                out = degrade.jpeg(out, int(p["quality"]))
        elif st == "noise":
            ref = out
            out = degrade.add_noise(out, p["sigma"], seed=seed)
            m["sigma_real"] = round(float(np.std(out - ref)) * 255.0, 3)
        elif st == "jpeg":
            out, m["jpeg_quality"] = degrade.jpeg(out, int(p["quality"])), p["quality"]
    return as_image(to_uint8(out)), m


def realistic_truth(stages: dict[str, dict[str, float]], measures: dict[str, float], short: int) -> dict[str, int]:
    """Ground truth of a realistic case per kind: 1 present, 0 absent, -1 ambiguous (see
    :data:`REAL_TRUTH_BOUNDS`)."""
    y: dict[str, int] = {}
    for kind, (key, lo, hi, larger) in REAL_TRUTH_BOUNDS.items():
        v = measures.get(key)
        if v is None:
            y[kind] = 0
        elif larger:
            y[kind] = 1 if v >= hi else 0 if v <= lo else -1
        else:
            y[kind] = 1 if v <= lo else 0 if v >= hi else -1
    if "dark" in stages:
        y["noise"] = -1
    if measures.get("shake_length", 0.0) > 10.0 and y["defocus blur"] == 0:
        y["defocus blur"] = -1
    soft = measures.get("blur_sigma", 0.0) >= 1.25
    y["low resolution"] = 1 if short <= TINY_SIDE else -1 if soft else 0
    return {k: y[k] for k in KINDS}


def random_crop(a: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    """A ``side``² crop (smaller where the image is) at a position drawn from ``rng``."""
    h, w = a.shape[:2]
    sh, sw = min(side, h), min(side, w)
    y, x = int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1))
    return np.ascontiguousarray(a[y : y + sh, x : x + sw])


def realistic_views(img: np.ndarray, rng: np.random.Generator) -> list[tuple[str, np.ndarray, bool]]:
    """Views of one photo for realistic cases: ``(name, image, x4)``: crops at native scale (512, 256 and a small
    96-200 px one), a 256-px crop of the half-size photo, and two ×4 inputs (``x4``: downscaled later by the
    cases' ``downscale`` stage) from a 384-px crop (96 px, as ``benchmarks/realworld.py``) and a 400-800 px one."""

    def crop(a: np.ndarray, side: int) -> np.ndarray:
        return random_crop(a, side, rng)

    h, w = img.shape[:2]
    half = resize(img, (w // 2, h // 2), "area")
    return [("native512", crop(img, 512), False), ("native256", crop(img, 256), False),
            ("half256", crop(half, 256), False), ("small", crop(img, int(rng.integers(96, 201))), False),
            ("x4_96", crop(img, 384), True), ("x4", crop(img, int(rng.integers(400, 801))), True)]


def realistic_specs(x4: bool, rng: np.random.Generator, n_combos: int = 4) -> list[tuple[str, ...]]:
    """The stage lists of one view: clean, every single stage (noise-like and ambiguous-prone ones twice), and
    ``n_combos`` random :data:`REAL_COMBOS`; for a ×4 view :data:`REAL_SMALL` (all after ``downscale``)."""
    if x4:
        return [("downscale",)] + [("downscale", *s) for s in REAL_SMALL]
    singles = [(s,) for s in REAL_SINGLES] + [(s,) for s in ("mild", "sensor", "jpeg", "shake", "haze", "rain", "dark")]
    combos = [REAL_COMBOS[int(i)] for i in rng.choice(len(REAL_COMBOS), n_combos, replace=False)]
    return [()] + singles + combos


def realistic_cases(name: str, img: np.ndarray, seed: int) -> Iterator[tuple[dict, np.ndarray]]:
    """Every realistic case of one photo and seed: (metadata row with ``stages``, ``measures``, ``truth``; image)."""
    rng = np.random.default_rng([seed, sum(map(ord, name)), 7])
    for vi, (view, base, x4) in enumerate(realistic_views(img, rng)):
        for ci, st in enumerate(realistic_specs(x4, rng)):
            stages = draw_realistic(st, rng)
            case_seed = seed * 100000 + vi * 1000 + ci
            deg, measures = realistic(base, stages, seed=case_seed)
            short = int(min(deg.shape[:2]))
            yield {"photo": name, "view": view, "stages": stages, "measures": measures, "seed": case_seed,
                   "short": short, "truth": realistic_truth(stages, measures, short)}, deg
