"""Alignment to a canonical 512×512 face and seamless paste-back.

The template places dlib's 5 landmarks where FFHQ-aligned 512² faces have them (eye centres at
(193, 240) and (319, 240) as in the FFHQ/GFPGAN template; eye corners ±0.19 and the nose base 0.72
eye distances from the eye centres, the ratios dlib's landmarks show on real photos). A similarity
transform (rotation, uniform scale, translation) maps a face onto it; paste-back warps the restored crop
with the inverse transform and blends it through an eroded, feathered elliptical face mask, so pixels
where the mask is 0 are left bit-for-bit unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from fourkagent.imaging import Image

TEMPLATE_SIZE = 512
TEMPLATE = np.array(
    [[342.9, 240.2], [294.9, 240.2], [169.0, 239.9], [217.0, 239.9], [256.3, 330.5]], dtype=np.float32
)
"""dlib 5-point landmarks of the canonical face in a 512² crop."""

MASK_EPS = 1.0 / 1024
"""Mask values below this are set to exactly 0 (those pixels are never written)."""


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (2×3) mapping ``src`` points onto ``dst`` points."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    n = len(src)
    a = np.zeros((2 * n, 4))
    a[0::2] = np.c_[src[:, 0], -src[:, 1], np.ones(n), np.zeros(n)]
    a[1::2] = np.c_[src[:, 1], src[:, 0], np.zeros(n), np.ones(n)]
    (p, q, tx, ty), *_ = np.linalg.lstsq(a, dst.reshape(-1), rcond=None)
    return np.array([[p, -q, tx], [q, p, ty]], dtype=np.float64)


def alignment_matrix(landmarks: np.ndarray, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """Image → crop transform putting ``landmarks`` (5×2) on the template of a ``size``² crop."""
    return similarity_transform(landmarks, TEMPLATE * (size / TEMPLATE_SIZE))


def transform_scale(matrix: np.ndarray) -> float:
    """Crop pixels per image pixel of a similarity transform."""
    return float(np.hypot(matrix[0, 0], matrix[1, 0]))


def transform_angle(matrix: np.ndarray) -> float:
    """In-plane tilt (degrees, counter-clockwise as displayed) of the face this transform straightens."""
    return float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])))


@dataclass(frozen=True)
class Aligned:
    """An aligned face crop and the image → crop transform."""

    crop: Image
    matrix: np.ndarray


def align_face(img: Image, landmarks: np.ndarray, size: int = TEMPLATE_SIZE) -> Aligned:
    """Warp the face onto the canonical ``size``² crop (reflected borders; low-pass first when shrinking)."""
    m = alignment_matrix(landmarks, size)
    s = transform_scale(m)
    src, m_src = img, m
    if s < 0.6:  # the face is much larger than the crop: anti-alias the region it comes from
        x0, y0, x1, y1 = _bbox(cv2.invertAffineTransform(m), (0, 0, size, size), img.shape, margin=8)
        if x1 > x0 and y1 > y0:
            src = cv2.GaussianBlur(img[y0:y1, x0:x1], (0, 0), 0.45 / s)
            m_src = m.copy()
            m_src[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    crop = cv2.warpAffine(src, m_src, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)
    return Aligned(np.ascontiguousarray(np.clip(crop, 0.0, 1.0), dtype=np.float32), m)


@lru_cache(maxsize=4)
def face_mask(size: int = TEMPLATE_SIZE) -> np.ndarray:
    """Soft face mask in crop space: an ellipse (brows to chin) eroded then feathered; 0 near the crop edge."""
    k = size / TEMPLATE_SIZE
    hard = np.zeros((size, size), np.uint8)
    cv2.ellipse(hard, (round(256 * k), round(282 * k)), (round(150 * k), round(182 * k)), 0, 0, 360, 255, -1)
    r = max(1, round(14 * k))
    hard = cv2.erode(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    soft = cv2.GaussianBlur(hard.astype(np.float32) / 255.0, (0, 0), 12 * k, borderType=cv2.BORDER_CONSTANT)
    soft[soft < MASK_EPS] = 0.0
    soft.setflags(write=False)
    return soft


def match_color(restored: Image, reference: Image, mask: np.ndarray, blur: float = 4.0) -> Image:
    """Match per-channel mean and std of ``restored`` to ``reference`` inside the mask (low-passed stats)."""
    sel = (mask > 0.5).astype(np.uint8)
    if sel.sum() < 16:
        return restored
    mr, sr = (v.ravel() for v in cv2.meanStdDev(cv2.GaussianBlur(reference, (0, 0), blur), mask=sel))
    mo, so = (v.ravel() for v in cv2.meanStdDev(cv2.GaussianBlur(restored, (0, 0), blur), mask=sel))
    gain = np.clip(sr / np.maximum(so, 1e-5), 0.67, 1.5).astype(np.float32)
    out = (restored - mo.astype(np.float32)) * gain + mr.astype(np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _bbox(
    matrix: np.ndarray, rect: tuple[int, int, int, int], shape: tuple[int, ...], margin: int = 2
) -> tuple[int, int, int, int]:
    """Bounding box (clipped to the image) of ``rect`` (x0, y0, x1, y1) mapped through ``matrix``."""
    x0, y0, x1, y1 = rect
    corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], np.float64)
    pts = corners @ matrix.T
    h, w = shape[:2]
    bx0, by0 = np.floor(pts.min(0)).astype(int) - margin
    bx1, by1 = np.ceil(pts.max(0)).astype(int) + margin
    return max(0, int(bx0)), max(0, int(by0)), min(w, int(bx1)), min(h, int(by1))


@dataclass(frozen=True)
class Pasted:
    """Result of a paste-back: the new image and the blend mask over ``region`` (x0, y0, x1, y1)."""

    image: Image
    region: tuple[int, int, int, int]
    mask: np.ndarray

    def full_mask(self) -> np.ndarray:
        """The blend mask at image size (0 outside the region)."""
        out = np.zeros(self.image.shape[:2], np.float32)
        x0, y0, x1, y1 = self.region
        out[y0:y1, x0:x1] = self.mask
        return out


def paste_back(img: Image, crop: Image, matrix: np.ndarray, mask: np.ndarray | None = None) -> Pasted:
    """Blend ``crop`` (aligned by ``matrix``) back into a copy of ``img`` through the soft mask."""
    size = crop.shape[0]
    mask = face_mask(size) if mask is None else mask
    ys, xs = np.nonzero(mask)
    out = img.copy()
    if len(xs) == 0:
        return Pasted(out, (0, 0, 0, 0), np.zeros((0, 0), np.float32))
    inv = cv2.invertAffineTransform(matrix)
    x0, y0, x1, y1 = _bbox(inv, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), img.shape)
    if x1 <= x0 or y1 <= y0:
        return Pasted(out, (0, 0, 0, 0), np.zeros((0, 0), np.float32))
    inv_r = inv.copy()
    inv_r[:, 2] -= (x0, y0)
    dsize = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(crop, inv_r, dsize, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    m = cv2.warpAffine(mask, inv_r, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    m[m < MASK_EPS] = 0.0
    region = out[y0:y1, x0:x1]
    blend = region + m[..., None] * (np.clip(warped, 0.0, 1.0) - region)
    out[y0:y1, x0:x1] = np.where(m[..., None] > 0, blend, region)
    return Pasted(out, (x0, y0, x1, y1), m)
