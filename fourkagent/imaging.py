"""Internal image type helpers: float32 HxWx3 RGB in [0, 1], C-contiguous."""

from __future__ import annotations

import cv2
import numpy as np

Image = np.ndarray
"""Alias documenting the internal contract: float32, shape (H, W, 3), RGB, values in [0, 1]."""


def as_image(array: np.ndarray) -> Image:
    """Convert uint8/uint16/bool/float arrays (gray, RGB or RGBA) to the internal float RGB type."""
    a = np.asarray(array)
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    elif a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    else:
        a = a.astype(np.float32)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 array, got shape {a.shape}")
    return np.ascontiguousarray(np.clip(a, 0.0, 1.0), dtype=np.float32)


def to_uint8(img: Image) -> np.ndarray:
    """Round a float image to uint8."""
    scaled = np.clip(img, 0.0, 1.0) * np.float32(255.0)
    scaled += np.float32(0.5)
    return scaled.astype(np.uint8)


def to_uint16(img: Image) -> np.ndarray:
    """Round a float image to uint16 (the lossless artifact format)."""
    scaled = np.clip(img, 0.0, 1.0) * np.float32(65535.0)
    scaled += np.float32(0.5)
    return scaled.astype(np.uint16)


def luma(img: Image) -> np.ndarray:
    """ITU-R BT.601 luma in [0, 1] (the Y of YCbCr without offset)."""
    return (img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114).astype(np.float32)


def y_channel(img: Image) -> np.ndarray:
    """BT.601 studio-swing Y in [16/255, 235/255] as used by SR papers for Y-PSNR."""
    return (16.0 + 65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255.0


def resize(img: Image, size: tuple[int, int], method: str = "cubic") -> Image:
    """Resize to (width, height) with OpenCV; 'area' for shrinking, 'cubic'/'lanczos'/'linear' otherwise."""
    flags = {
        "cubic": cv2.INTER_CUBIC,
        "lanczos": cv2.INTER_LANCZOS4,
        "linear": cv2.INTER_LINEAR,
        "area": cv2.INTER_AREA,
        "nearest": cv2.INTER_NEAREST,
    }
    out = cv2.resize(img, size, interpolation=flags[method])
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


def scale_by(img: Image, factor: float, method: str = "cubic") -> Image:
    """Resize by a factor, rounding the output size to whole pixels (at least 1)."""
    h, w = img.shape[:2]
    return resize(img, (max(1, round(w * factor)), max(1, round(h * factor))), method)


def psnr(a: Image | np.ndarray, b: Image | np.ndarray, border: int = 0) -> float:
    """PSNR in dB between two arrays in [0, 1]; ``inf`` when identical."""
    if border:
        a = a[border:-border, border:-border]
        b = b[border:-border, border:-border]
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse))
