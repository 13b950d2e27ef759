"""Face detection with 5-point landmarks, offline.

dlib's HOG frontal-face detector and its 5-point shape predictor (from the ``dlib-bin`` and
``face-recognition-models`` wheels) are used when importable; otherwise OpenCV's Haar cascade gives
boxes and the landmarks are placed from the box with the canonical template (coarser alignment).

Landmarks follow dlib's 5-point order: image-right eye outer and inner corner, image-left eye outer and
inner corner, base of the nose.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from fourkagent.errors import MissingWeightsError
from fourkagent.faces.align import TEMPLATE, TEMPLATE_SIZE
from fourkagent.imaging import Image, scale_by, to_uint8

DETECT_SIDE = 1024
"""Detection runs on the image resized to at most this long side (landmarks at full resolution)."""
EFFECTIVE_SIDE = 768
"""dlib's pyramid upsamples small images (≤ 2 times) until their long side reaches this."""
MIN_SCORE = 0.3
"""dlib HOG detections scoring below this are dropped (clothing patches score ≈ 0.1)."""

_PIP_HINT = "pip install dlib-bin face-recognition-models"


@dataclass(frozen=True)
class Face:
    """One detected face in image coordinates."""

    box: tuple[int, int, int, int]
    """``x, y, w, h``."""
    landmarks: tuple[tuple[float, float], ...]
    """Five ``(x, y)`` points in dlib's 5-point order."""
    score: float
    """Detector confidence (dlib's SVM margin; 1.0 for Haar)."""
    detector: str
    """``dlib-hog`` or ``opencv-haar``."""

    @property
    def size(self) -> int:
        """Smallest side of the box in pixels."""
        return min(self.box[2], self.box[3])

    @property
    def center(self) -> tuple[float, float]:
        """Centre of the box."""
        x, y, w, h = self.box
        return x + w / 2.0, y + h / 2.0

    def points(self) -> np.ndarray:
        """Landmarks as a float32 (5, 2) array."""
        return np.asarray(self.landmarks, np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "box": list(self.box),
            "landmarks": [[round(x, 2), round(y, 2)] for x, y in self.landmarks],
            "score": round(self.score, 4),
            "detector": self.detector,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Face:
        """Inverse of :meth:`to_dict`."""
        return cls(
            tuple(int(v) for v in d["box"]),  # type: ignore[arg-type]
            tuple((float(x), float(y)) for x, y in d["landmarks"]),
            float(d.get("score", 1.0)),
            str(d.get("detector", "unknown")),
        )


def dlib_unavailable() -> str | None:
    """Why dlib's detector and models cannot be used here, or ``None``."""
    if importlib.util.find_spec("dlib") is None:
        return f"dlib is not installed ({_PIP_HINT})"
    if importlib.util.find_spec("face_recognition_models") is None:
        return f"face-recognition-models is not installed ({_PIP_HINT})"
    return None


def model_path(name: str) -> str:
    """Path of a model file shipped in ``face-recognition-models`` (its package is not imported).

    Raises:
        MissingWeightsError: the package or the file is missing.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(f"face model {name} unavailable: {_PIP_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise MissingWeightsError(f"face model {name} missing from face-recognition-models")
    return str(path)


@lru_cache(maxsize=1)
def _dlib_models() -> tuple[Any, Any]:
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(model_path("shape_predictor_5_face_landmarks.dat"))


def landmarks_from_box(box: tuple[int, int, int, int]) -> tuple[tuple[float, float], ...]:
    """Approximate 5 landmarks for a box (eye line at 38 % of its height, eye distance 42 % of its width)."""
    x, y, w, h = box
    eyes_t = (TEMPLATE[:2].mean(0) + TEMPLATE[2:4].mean(0)) / 2.0
    iod_t = float(np.linalg.norm(TEMPLATE[:2].mean(0) - TEMPLATE[2:4].mean(0)))
    s = 0.42 * w / iod_t
    centre = np.array([x + w / 2.0, y + 0.38 * h])
    pts = (TEMPLATE - eyes_t) * s + centre
    return tuple((float(px), float(py)) for px, py in pts)


def _dlib_faces(img: Image, detect_side: int, min_score: float) -> list[Face]:
    import dlib

    detector, predictor = _dlib_models()
    f = min(1.0, detect_side / max(img.shape[:2]))
    small = to_uint8(scale_by(img, f, "area") if f < 1.0 else img)
    long_side = max(small.shape[:2])
    upsample = int(np.clip(math.ceil(math.log2(EFFECTIVE_SIDE / long_side)), 0, 2)) if long_side < EFFECTIVE_SIDE else 0
    rects, scores, _ = detector.run(small, upsample, min_score)
    full = to_uint8(img)
    h, w = img.shape[:2]
    out = []
    for r, sc in zip(rects, scores):
        x0, y0 = max(0, round(r.left() / f)), max(0, round(r.top() / f))
        x1, y1 = min(w, round((r.right() + 1) / f)), min(h, round((r.bottom() + 1) / f))
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        shape = predictor(full, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        pts = tuple((float(p.x), float(p.y)) for p in shape.parts())
        out.append(Face((x0, y0, x1 - x0, y1 - y0), pts, float(sc), "dlib-hog"))
    return out


def detect_faces(img: Image, detect_side: int | None = None, min_score: float = MIN_SCORE) -> list[Face]:
    """Faces with 5 landmarks, sorted left to right (then top to bottom).

    Args:
        img: the image (float RGB).
        detect_side: long side the detector works at (default ``min(long side, 1024)``); pass the
            reference image's long side to detect on an enlarged result at the reference's scale.
        min_score: dlib detections below this margin are dropped.
    """
    side = min(max(img.shape[:2]), detect_side or DETECT_SIDE, DETECT_SIDE)
    if dlib_unavailable() is None:
        faces = _dlib_faces(img, side, min_score)
    else:
        from fourkagent.perception.faces import haar_boxes

        faces = [
            Face(tuple(b), landmarks_from_box(tuple(b)), 1.0, "opencv-haar")  # type: ignore[arg-type]
            for b in haar_boxes(img, detect_side=side)
        ]
    return sorted(faces, key=lambda fc: (fc.box[0], fc.box[1]))


def detector_name() -> str:
    """The detector :func:`detect_faces` uses here."""
    return "dlib-hog" if dlib_unavailable() is None else "opencv-haar"


__all__ = [
    "Face", "TEMPLATE_SIZE", "detect_faces", "detector_name", "dlib_unavailable", "landmarks_from_box", "model_path",
]
