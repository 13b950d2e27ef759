"""The test set: real photos shipped with scikit-image (+ scikit-learn / matplotlib samples when installed),
degraded with fixed seeds into the paper's task families.

Families (ground truth = the clean crop, quantised to 8 bits; inputs are 8-bit too, as a user's file is):
- ``classical-x4``: bicubic ×4 down (antialiased, MATLAB-like), the Set5/Set14 protocol;
- ``realworld-x4``: defocus blur → bicubic ×4 down → Gaussian noise → JPEG, random strengths per case;
- ``multi``: MiO100-like pairs and triples of noise, blur, haze, rain, dark and JPEG at medium level, same size;
- ``face-x4``: the real-world chain on face crops (astronaut, Grace Hopper);
- ``x16``: a native 256² crop upscaled to 4096² (the DIV4K-50 size protocol; no 4096² ground truth exists
  among freely available photos, so only no-reference metrics and timings);
- ``to4k-1024``: a native 1024² crop to 4096² (timings; no ground truth).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fourkagent import degrade, photos
from fourkagent.bench import BenchError
from fourkagent.imaging import Image, as_image, resize, to_uint8

SKIMAGE_PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "stereo_motorcycle",
    "retina", "camera", "moon", "grass", "gravel", "brick", "coins", "clock", "cell",
)
"""Real photographs bundled with scikit-image (colour first, then grey; grey is replicated to RGB)."""

FACES: dict[str, tuple[int, int, int, int]] = {"astronaut": (175, 76, 91, 91), "grace_hopper": (180, 139, 187, 187)}
"""Face boxes ``(x, y, w, h)`` in the source photos (found by fourkagent's Haar detector, fixed here)."""

MULTI_COMBOS: tuple[tuple[str, ...], ...] = (
    ("noise", "jpeg compression artifact"), ("haze", "noise"), ("dark", "noise"), ("haze", "rain"),
    ("motion blur", "jpeg compression artifact"), ("defocus blur", "noise"), ("rain", "noise"),
    ("dark", "jpeg compression artifact"), ("haze", "noise", "jpeg compression artifact"),
    ("defocus blur", "dark", "jpeg compression artifact"), ("haze", "rain", "noise"),
    ("motion blur", "noise", "jpeg compression artifact"),
)
"""MiO100-style combinations (pairs, then triples), applied in capture order at level 3."""

CAPTURE_ORDER = ("haze", "motion blur", "defocus blur", "rain", "dark", "noise", "jpeg compression artifact")

FAMILIES = ("classical-x4", "realworld-x4", "multi", "face-x4", "x16", "to4k-1024")
QUICK_COUNTS = {"classical-x4": 3, "realworld-x4": 3, "multi": 3, "face-x4": 2, "x16": 1, "to4k-1024": 1}
"""Cases per family in the quick setting (12 distinct photos in all)."""


@dataclass(frozen=True)
class Case:
    """One benchmark input: the degraded image, its ground truth (if any) and how it was made."""

    id: str
    family: str
    source: str
    lr: Image
    hr: Image | None
    scale: int
    degradations: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)


def photo_sources() -> dict[str, Callable[[], np.ndarray]]:
    """Every offline photo loader available here, by name.

    Raises:
        BenchError: scikit-image is not installed (it provides most photos).
    """
    try:
        return photos.photo_sources(SKIMAGE_PHOTOS)
    except ImportError:
        raise BenchError("the benchmark needs scikit-image for its photos: pip install scikit-image") from None


def load_photo(name: str) -> Image:
    """A source photo as the internal float RGB type.

    Raises:
        BenchError: unknown or unavailable photo.
    """
    sources = photo_sources()
    if name not in sources:
        raise BenchError(f"photo {name!r} is not available here (have: {', '.join(sources)})")
    return photos.decode(sources[name])


def q8(img: Image) -> Image:
    """Quantise to 8 bits (what a saved PNG holds), back to float."""
    return as_image(to_uint8(img))


def center_crop(img: Image, side: int, multiple: int = 4) -> Image:
    """Centre square crop of at most ``side`` px, trimmed to a multiple of ``multiple``."""
    h, w = img.shape[:2]
    s = min(side, h, w) // multiple * multiple
    y, x = (h - s) // 2, (w - s) // 2
    return np.ascontiguousarray(img[y : y + s, x : x + s])


def face_crop(img: Image, box: tuple[int, int, int, int], side: int) -> Image:
    """A square crop twice the face box, centred on the face, resized (area) to ``side``."""
    x, y, w, h = box
    h_img, w_img = img.shape[:2]
    s = min(max(side, 2 * max(w, h)), h_img, w_img)
    cx, cy = x + w // 2, y + h // 2
    x0, y0 = min(max(0, cx - s // 2), w_img - s), min(max(0, cy - s // 2), h_img - s)
    crop = img[y0 : y0 + s, x0 : x0 + s]
    return crop if s == side else resize(crop, (side, side), "area" if s > side else "cubic")


def realworld_chain(hr: Image, seed: int) -> tuple[Image, dict[str, float]]:
    """Defocus blur → bicubic ×4 down → Gaussian noise → JPEG, strengths drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    p = {"blur_radius": round(float(rng.uniform(0.8, 2.0)), 2), "noise_sigma": round(float(rng.uniform(3, 15)), 1),
         "jpeg_quality": int(rng.integers(40, 81))}
    img = degrade.defocus_blur(hr, p["blur_radius"])
    img = degrade.add_noise(degrade.downscale(img, 4), p["noise_sigma"], seed=seed)
    return degrade.jpeg(img, p["jpeg_quality"]), p


def multi_degrade(hr: Image, kinds: tuple[str, ...], seed: int, level: int = 3) -> Image:
    """Apply ``kinds`` at ``level`` in capture order (haze first, JPEG last)."""
    img = hr
    for k in sorted(kinds, key=CAPTURE_ORDER.index):
        img = degrade.apply(img, k, level, seed=seed)
    return img


def build_cases(
    families: tuple[str, ...] = FAMILIES, quick: bool = True, hr_side: int | None = None,
    max_images: int | None = None, seed: int = 0,
) -> list[Case]:
    """The benchmark cases (deterministic for a seed).

    Raises:
        BenchError: unknown family.
    """
    bad = [f for f in families if f not in FAMILIES]
    if bad:
        raise BenchError(f"unknown famil{'y' if len(bad) == 1 else 'ies'} {', '.join(bad)} (have: {', '.join(FAMILIES)})")
    side = hr_side or (256 if quick else 480)
    names = [n for n in photo_sources() if n not in ("retina", "grace_hopper")]
    faces = [n for n in FACES if n in photo_sources()]
    cache: dict[str, Image] = {}

    def photo(n: str) -> Image:
        if n not in cache:
            cache[n] = load_photo(n)
        return cache[n]

    def pick(family: str, pool: list[str], offset: int) -> list[str]:
        n = QUICK_COUNTS[family] if quick else len(pool)
        n = min(n, max_images) if max_images else n
        return [pool[(offset + i) % len(pool)] for i in range(min(n, len(pool)))] if pool else []

    cases: list[Case] = []
    for fam in families:
        if fam == "classical-x4":
            for n in pick(fam, names, 0):
                hr = q8(center_crop(photo(n), side))
                cases.append(Case(f"{fam}/{n}", fam, n, q8(degrade.downscale(hr, 4)), hr, 4, ("low resolution",)))
        elif fam == "realworld-x4":
            for i, n in enumerate(pick(fam, names, 3 if quick else 0)):
                hr = q8(center_crop(photo(n), side))
                lr, p = realworld_chain(hr, seed + 100 + i)
                kinds = ("defocus blur", "low resolution", "noise", "jpeg compression artifact")
                cases.append(Case(f"{fam}/{n}", fam, n, q8(lr), hr, 4, kinds, p))
        elif fam == "multi":
            pool = [(n, MULTI_COMBOS[i % len(MULTI_COMBOS)]) for i, n in enumerate(names * 2)][: len(MULTI_COMBOS)]
            chosen = pool[6:9] if quick else pool
            for i, (n, kinds) in enumerate(chosen[: max_images or None]):
                hr = q8(center_crop(photo(n), side))
                lr = multi_degrade(hr, kinds, seed + 200 + i)
                tag = "+".join(k.split()[0] for k in kinds)
                cases.append(Case(f"{fam}/{n}/{tag}", fam, n, q8(lr), hr, 1, kinds, {"level": 3}))
        elif fam == "face-x4":
            for i, n in enumerate(pick(fam, faces, 0)):
                hr = q8(face_crop(photo(n), FACES[n], 192 if quick else 256))
                lr, p = realworld_chain(hr, seed + 300 + i)
                kinds = ("defocus blur", "low resolution", "noise", "jpeg compression artifact")
                cases.append(Case(f"{fam}/{n}", fam, n, q8(lr), hr, 4, kinds, p))
        elif fam == "x16":
            for n in pick(fam, names, 12 if quick else 0)[: 1 if quick else 4]:
                cases.append(Case(f"{fam}/{n}", fam, n, q8(center_crop(photo(n), 256)), None, 16, ()))
        elif fam == "to4k-1024" and "retina" in photo_sources():
            lr = q8(center_crop(photo("retina"), 1024))
            cases.append(Case(f"{fam}/retina", fam, "retina", lr, None, 4, ()))
    return cases
