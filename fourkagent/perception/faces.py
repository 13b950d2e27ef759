"""Face boxes for perception: dlib when installed, else OpenCV's bundled Haar cascade (frontal faces).

The full detector (5-point landmarks, scores) lives in :mod:`fourkagent.faces.detect`; this module
keeps the Haar fallback and the box-only ``detect_faces`` the perception code has always used.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from fourkagent.imaging import Image, luma

_DETECT_SIDE = 1024


@lru_cache(maxsize=1)
def _cascade() -> cv2.CascadeClassifier:
    return cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def haar_boxes(img: Image, min_size: int = 24, detect_side: int = _DETECT_SIDE) -> list[list[int]]:
    """Haar-cascade face boxes ``[x, y, w, h]`` in image coordinates (run at ≤ ``detect_side`` px)."""
    h, w = img.shape[:2]
    f = min(1.0, detect_side / max(h, w))
    gray = (luma(img) * 255).astype(np.uint8)
    if f < 1.0:
        gray = cv2.resize(gray, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    boxes = _cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    return sorted([[round(v / f) for v in b] for b in np.asarray(boxes).reshape(-1, 4).tolist()])


def detect_faces(img: Image, min_size: int = 24) -> list[list[int]]:
    """Face boxes ``[x, y, w, h]`` (dlib HOG when importable, Haar otherwise), smallest side ≥ ``min_size``."""
    from fourkagent.faces.detect import detect_faces as detect

    return [list(f.box) for f in detect(img) if min(f.box[2:]) >= min_size]
