"""The report's detail region: where a person should look closely, and where that is in every image of the run.

A face first (the face stage's boxes), otherwise the window that changed most between the input, bicubic-
upscaled, and the output (mean absolute difference of luma) — so the crop shows what the agent did, not the
most contrasted edge. The images of one run have different sizes (the input, each step's result, the written
output), so the chosen region is kept as a :class:`Region` in input pixels and mapped into each image by its
size ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from fourkagent.imaging import Image, luma, resize

Box = tuple[int, int, int, int]
"""``(x, y, w, h)`` in pixels of one image."""

ANALYSIS_SIDE = 1024
"""The change map is computed with the output area-averaged to at most this long side."""


@dataclass(frozen=True)
class Region:
    """A rectangle in input pixels (the frame the agent works in: the input, padded when it was tiny)."""

    x: float
    y: float
    w: float
    h: float
    reason: str = ""

    @classmethod
    def from_box(cls, box: Box, size: tuple[int, int], extent: tuple[float, float], reason: str = "") -> Region:
        """The region of ``box`` in an image of ``size`` (width, height) spanning ``extent`` input pixels."""
        sx, sy = size[0] / extent[0], size[1] / extent[1]
        return cls(box[0] / sx, box[1] / sy, box[2] / sx, box[3] / sy, reason)

    def box_in(self, size: tuple[int, int], extent: tuple[float, float], lo: int = 1, hi: int | None = None) -> Box:
        """The region in an image of ``size`` (width, height) spanning ``extent`` input pixels from its top-left
        corner, each side clamped to ``[lo, hi]`` around the region's centre, then to the image."""
        W, H = int(size[0]), int(size[1])
        sx, sy = W / extent[0], H / extent[1]
        top = hi if hi is not None else max(W, H)
        cw = min(W, max(1, int(np.clip(round(self.w * sx), lo, top))))
        ch = min(H, max(1, int(np.clip(round(self.h * sy), lo, top))))
        cx, cy = (self.x + self.w / 2) * sx, (self.y + self.h / 2) * sy
        x0 = int(np.clip(round(cx - cw / 2), 0, W - cw))
        y0 = int(np.clip(round(cy - ch / 2), 0, H - ch))
        return x0, y0, cw, ch


def _window(cx: float, cy: float, side: int, w: int, h: int) -> Box:
    cw, ch = min(side, w), min(side, h)
    return int(np.clip(round(cx - cw / 2), 0, w - cw)), int(np.clip(round(cy - ch / 2), 0, h - ch)), cw, ch


def face_window(faces: Sequence[dict[str, Any]], size: tuple[int, int], side: int, most: int | None = None) -> Box | None:
    """The window (``size``: the image's width, height) centred on the largest face — on its landmarks (eyes,
    nose, mouth) when it has them, else on its box — ``side`` px, or as large as the face up to ``most`` px.
    ``faces``: records with ``box`` ``[x, y, w, h]`` (and optionally ``landmarks``) in that image's pixels.
    ``None`` without a usable face."""
    w, h = size
    usable = [f for f in faces if len(f.get("box") or []) == 4 and f["box"][2] > 0 and f["box"][3] > 0]
    inside = [f for f in usable if 0 <= f["box"][0] + f["box"][2] / 2 < w and 0 <= f["box"][1] + f["box"][3] / 2 < h]
    if not inside:
        return None
    face = max(inside, key=lambda f: f["box"][2] * f["box"][3])
    bx, by, bw, bh = (float(v) for v in face["box"])
    pts = [p for p in face.get("landmarks") or [] if len(p) == 2]
    if pts:
        cx, cy = float(np.mean([p[0] for p in pts])), float(np.mean([p[1] for p in pts]))
        if not (bx <= cx <= bx + bw and by <= cy <= by + bh):
            cx, cy = bx + bw / 2, by + bh / 2
    else:
        cx, cy = bx + bw / 2, by + bh / 2
    grown = int(min(max(bw, bh), most if most is not None else side))
    return _window(cx, cy, max(side, grown), w, h)


def _argmax_window(score: np.ndarray, k: tuple[int, int], f: float, size: tuple[int, int], win: tuple[int, int]) -> Box:
    """Top-left of the ``k``-px window (analysis pixels) with the largest mean of ``score``, in image pixels."""
    kw, kh = k
    w, h = size
    cw, ch = win
    mean = cv2.boxFilter(score, -1, (kw, kh), normalize=True, borderType=cv2.BORDER_CONSTANT)
    # the box filter is centred: keep the centres whose window lies inside the image
    valid = mean[kh // 2 : score.shape[0] - (kh - 1 - kh // 2), kw // 2 : score.shape[1] - (kw - 1 - kw // 2)]
    if valid.size == 0:
        return 0, 0, cw, ch
    yy, xx = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return int(min(round(xx / f), w - cw)), int(min(round(yy / f), h - ch)), cw, ch


def changed_window(before: Image, after: Image, side: int) -> Box:
    """The ``side``-px window of ``after`` that differs most (mean absolute luma difference) from ``before``
    resized to it (bicubic); ``before`` must show the same extent of the scene."""
    h, w = after.shape[:2]
    f = min(1.0, ANALYSIS_SIDE / max(h, w))
    sw, sh = max(1, round(w * f)), max(1, round(h * f))
    a = luma(resize(after, (sw, sh), "area") if (sw, sh) != (w, h) else after)
    b = luma(resize(before, (sw, sh), "cubic"))
    cw, ch = min(side, w), min(side, h)
    return _argmax_window(np.abs(a - b), (max(1, round(cw * f)), max(1, round(ch * f))), f, (w, h), (cw, ch))


def textured_window(img: Image, side: int) -> Box:
    """The ``side``-px window with the most gradient energy (used when there is no input to compare with)."""
    h, w = img.shape[:2]
    f = min(1.0, ANALYSIS_SIDE / 2 / max(h, w))
    small = cv2.resize(luma(img), (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    energy = np.abs(cv2.Sobel(small, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(small, cv2.CV_32F, 0, 1))
    cw, ch = min(side, w), min(side, h)
    return _argmax_window(energy, (max(1, round(cw * f)), max(1, round(ch * f))), f, (w, h), (cw, ch))


def detail_box(before: Image | None, after: Image, side: int, faces: Sequence[dict[str, Any]] = (),
               face_side: int | None = None) -> tuple[Box, str]:
    """The detail window of ``after`` and why it was chosen: the largest face of ``faces`` (boxes in ``after``'s
    pixels; the window grows with the face up to ``face_side``), else the ``side``-px window that changed most
    from ``before`` (the input, same extent), else the most textured one."""
    h, w = after.shape[:2]
    box = face_window(faces, (w, h), side, face_side)
    if box is not None:
        return box, "centred on the largest face"
    if before is not None:
        return changed_window(before, after, side), "the region that changed most from the input (bicubic-upscaled)"
    return textured_window(after, side), "the most detailed region (no input to compare with)"


def faces_in(faces: Sequence[dict[str, Any]], sx: float, sy: float) -> list[dict[str, Any]]:
    """Face records with ``box`` and ``landmarks`` scaled by ``(sx, sy)`` (into another image's pixels)."""
    out = []
    for f in faces:
        box = f.get("box") or []
        if len(box) != 4:
            continue
        pts = [[p[0] * sx, p[1] * sy] for p in f.get("landmarks") or [] if len(p) == 2]
        out.append({"box": [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy], "landmarks": pts})
    return out
