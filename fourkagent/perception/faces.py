"""Face detection offline with OpenCV's bundled Haar cascade (frontal faces)."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from fourkagent.imaging import Image, luma

_DETECT_SIDE = 1024


@lru_cache(maxsize=1)
def _cascade() -> cv2.CascadeClassifier:
    return cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def detect_faces(img: Image, min_size: int = 24) -> list[list[int]]:
    """Face boxes ``[x, y, w, h]`` in image coordinates (detection runs at ≤ 1024 px long side)."""
    h, w = img.shape[:2]
    f = min(1.0, _DETECT_SIDE / max(h, w))
    gray = (luma(img) * 255).astype(np.uint8)
    if f < 1.0:
        gray = cv2.resize(gray, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    boxes = _cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    return sorted([[round(v / f) for v in b] for b in np.asarray(boxes).reshape(-1, 4).tolist()])
