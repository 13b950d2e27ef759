"""Benchmark of the classical restoration experts on synthetic degradations of real photos.

For every category and tool: mean PSNR/SSIM gain over the degraded input at severity levels
2..4 (``fourkagent.degrade.LEVELS``; the old-photo tool uses ``simulate_old_photo`` severities
2..4) over real photos from ``skimage.data`` (colour and gray, plus matplotlib's sample photos
when installed), the PSNR of the output against the input on *clean* photos (how much a tool
changes an undegraded image; higher is better, ``inf`` = untouched), and seconds per megapixel on
a 1024x1024 degraded photo. Prints a markdown table.

    python benchmarks/tools_classical.py [--size 384] [--quick]
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fourkagent import degrade  # noqa: E402
from fourkagent.bench.metrics import rgb_ssim as ssim  # noqa: E402
from fourkagent.imaging import as_image, psnr, resize, y_channel  # noqa: E402
from fourkagent.photos import decode, photo_sources  # noqa: E402
from fourkagent.planning.agenda import DEGRADATION_TO_STEP  # noqa: E402
from fourkagent.tools.base import Tool  # noqa: E402
from fourkagent.tools.classical import oldphoto  # noqa: E402
from fourkagent.tools.registry import MAIN_REGISTRY  # noqa: E402

SKIMAGE_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "camera",
    "coins",
    "moon",
    "clock",
    "brick",
    "grass",
    "page",
)
"""Real photographs in skimage.data (moon is a 2x pixel-replicated scan: used at native size)."""

CASES = [
    *((step, MAIN_REGISTRY.for_step(step), kind) for kind, step in DEGRADATION_TO_STEP.items()),
    ("old photo restoration", MAIN_REGISTRY.for_step("old photo restoration"), "old photo"),
]
"""(category, its available tools, the degradation it removes) for every restoration category."""


def _fit(a: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to at most ``size`` x ``size``."""
    h, w = a.shape[:2]
    t, l = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return a[t : t + size, l : l + size]


def load_photos(size: int) -> dict[str, np.ndarray]:
    """Real photos as float RGB, centre-cropped to ``size`` (moon is used at half size: it is a 2x scan)."""
    out: dict[str, np.ndarray] = {}
    for name, loader in photo_sources(SKIMAGE_PHOTOS).items():
        if name in ("china", "flower"):
            continue
        img = decode(loader)
        out[name] = _fit(img[::2, ::2] if name == "moon" else img, size)
    return out


def degrade_for(kind: str, img: np.ndarray, level: int) -> np.ndarray:
    if kind == "old photo":
        return oldphoto.simulate_old_photo(img, level, seed=level)
    return degrade.apply(img, kind, level, seed=level)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=384, help="centre-crop size of the test photos")
    ap.add_argument("--quick", action="store_true", help="5 photos, level 3 only (smoke run)")
    ap.add_argument("--only", default="", metavar="PATTERNS",
                    help="comma-separated globs; run only tools whose name or category matches one "
                         "(e.g. 'denoising,jpeg*,brighten_*,sr_*_x4')")
    args = ap.parse_args()
    patterns = [p.strip() for p in args.only.split(",") if p.strip()]
    photos = load_photos(args.size)
    levels = (3,) if args.quick else (2, 3, 4)
    if args.quick:
        photos = dict(list(photos.items())[:5])
    big = as_image(cv2.resize(load_photos(512)["astronaut"], (1024, 1024), interpolation=cv2.INTER_CUBIC))
    print(f"{len(photos)} photos ({', '.join(photos)}), crop {args.size}px, levels {levels}\n")
    head = "| category | tool | " + " | ".join(f"dPSNR L{lv}" for lv in levels)
    head += " | mean dPSNR | mean dSSIM | worst dPSNR | clean PSNR median/min | s/MP |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for category, tools, kind in CASES:
        for tool in _selected(tools, patterns):
            per_level: dict[int, list[float]] = {lv: [] for lv in levels}
            dssim: list[float] = []
            for img in photos.values():
                for lv in levels:
                    bad = degrade_for(kind, img, lv)
                    out = tool(bad)
                    per_level[lv].append(psnr(out, img) - psnr(bad, img))
                    dssim.append(ssim(out, img) - ssim(bad, img))
            clean = [psnr(tool(img), img) for img in photos.values()]
            x = degrade_for(kind, big, 3)
            t0 = time.perf_counter()
            tool(x)
            sec = (time.perf_counter() - t0) / (x.shape[0] * x.shape[1] / 1e6)
            allp = [v for vs in per_level.values() for v in vs]
            cells = " | ".join(f"{np.mean(per_level[lv]):+.2f}" for lv in levels)
            cl = np.minimum(np.array(clean), 99.0)
            print(
                f"| {category} | {tool.name} | {cells} | {np.mean(allp):+.2f} | {np.mean(dssim):+.3f} | "
                f"{np.min(allp):+.2f} | {np.median(cl):.1f}/{np.min(cl):.1f} | {sec:.2f} |"
            )
    print("\nclean PSNR: output vs. the undegraded input (99 = unchanged); s/MP on a 1024x1024 level-3 image.")
    sr_table(photos, big, patterns)


def _selected(tools: list[Tool], patterns: list[str]) -> list[Tool]:
    """The tools whose name or category matches one of ``patterns`` (all tools when there are none)."""
    return [t for t in tools if not patterns
            or any(fnmatch.fnmatch(t.name, p) or fnmatch.fnmatch(t.spec.category, p) for p in patterns)]


def sr_table(photos: dict[str, np.ndarray], big: np.ndarray, patterns: list[str] | None = None) -> None:
    """Clean SR: Y-PSNR gain over bicubic per tool, and seconds per output megapixel."""
    print("\n| SR tool | scale | preference | Y-PSNR gain over bicubic (dB) | worst photo | s per output MP |")
    print("|---|---|---|---|---|---|")
    for scale in (4, 2):
        for tool in _selected(MAIN_REGISTRY.for_step("super-resolution", scale), patterns or []):
            gains = []
            for img in photos.values():
                h, w = (img.shape[0] // scale) * scale, (img.shape[1] // scale) * scale
                hr = img[:h, :w]
                lr = degrade.downscale(hr, scale)
                base = resize(lr, (w, h), "cubic")
                gains.append(psnr(y_channel(tool(lr)), y_channel(hr), scale) - psnr(y_channel(base), y_channel(hr), scale))
            small = cv2.resize(big, (256, 256), interpolation=cv2.INTER_AREA)
            t0 = time.perf_counter()
            tool(small)
            sec = (time.perf_counter() - t0) / ((256 * scale) ** 2 / 1e6)
            print(f"| {tool.name} | x{scale} | {tool.spec.preference} | {np.mean(gains):+.2f} | {np.min(gains):+.2f} | {sec:.2f} |")


if __name__ == "__main__":
    main()
