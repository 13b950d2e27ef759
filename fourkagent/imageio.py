"""Image files at the boundary: safe reading (Pillow) and atomic writing."""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from fourkagent.errors import BadInputError, RunError
from fourkagent.imaging import Image, as_image, to_uint8, to_uint16

MAX_PIXELS_DEFAULT = 400_000_000
"""Refuse inputs above this many pixels (decompression-bomb guard); override with FOURKAGENT_MAX_PIXELS."""

OUTPUT_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


@dataclass(frozen=True)
class InputInfo:
    """What was read from the input file."""

    path: str
    width: int
    height: int
    mode: str
    bits: int
    format: str

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable form."""
        return asdict(self)


def _max_pixels() -> int:
    return int(os.environ.get("FOURKAGENT_MAX_PIXELS", MAX_PIXELS_DEFAULT))


def load_image(path: str | os.PathLike[str]) -> tuple[Image, InputInfo]:
    """Read an image file read-only into the internal float RGB type.

    EXIF orientation is applied; grey, palette, CMYK and 16-bit inputs are converted; alpha is dropped.

    Raises:
        BadInputError: missing, unreadable, not an image, or too large.
    """
    p = Path(path)
    if not p.exists():
        raise BadInputError(f"{p}: no such file")
    if not p.is_file():
        raise BadInputError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise BadInputError(f"{p}: empty file")
    limit = _max_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            PILImage.MAX_IMAGE_PIXELS = limit
            with open(p, "rb") as fh, PILImage.open(fh) as im:
                fmt = im.format or "unknown"
                if im.width * im.height > limit:
                    raise BadInputError(f"{p}: {im.width}x{im.height} exceeds the {limit}-pixel limit")
                im = ImageOps.exif_transpose(im)
                mode = im.mode
                arr = _to_array(im)
    except BadInputError:
        raise
    except (UnidentifiedImageError, PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise BadInputError(f"{p}: not a readable image ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadInputError(f"{p}: corrupt or truncated image ({exc})") from None
    bits = 16 if arr.dtype == np.uint16 else 8
    img = as_image(arr)
    h, w = img.shape[:2]
    return img, InputInfo(str(p), w, h, mode, bits, fmt)


def _to_array(im: PILImage.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.int64)
        return np.clip(a, 0, 65535).astype(np.uint16)
    if im.mode == "F":
        return np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)
    if im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    return np.asarray(im)


def check_output_path(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """Validate an output path before a run starts.

    Raises:
        RunError: unsupported extension, missing directory, or an existing file without ``overwrite``.
    """
    p = Path(path)
    if p.suffix.lower() not in OUTPUT_FORMATS:
        raise RunError(f"{p}: unsupported output extension (use one of {', '.join(sorted(OUTPUT_FORMATS))})")
    if not p.parent.exists():
        raise RunError(f"{p.parent}: output directory does not exist")
    if p.exists() and not overwrite:
        raise RunError(f"{p}: already exists (pass --overwrite to replace it)")
    return p


def encode_image(img: Image, fmt: str, bits: int = 8, quality: int = 95) -> bytes:
    """Encode to PNG/TIFF/JPEG/WebP bytes; 16 bits per channel for PNG/TIFF when ``bits == 16``."""
    if bits == 16 and fmt == "PNG":
        ok, buf = cv2.imencode(".png", to_uint16(img)[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise RunError("PNG encoding failed")
        return buf.tobytes()
    if bits == 16 and fmt == "TIFF":
        ok, buf = cv2.imencode(".tiff", to_uint16(img)[..., ::-1])
        if not ok:
            raise RunError("TIFF encoding failed")
        return buf.tobytes()
    kwargs: dict[str, object] = {"compress_level": 1} if fmt == "PNG" else {}
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = quality
    out = io.BytesIO()
    PILImage.fromarray(to_uint8(img)).save(out, format=fmt, **kwargs)
    return out.getvalue()


def atomic_write(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write bytes to a temp file beside ``path``, fsync, then rename over it; nothing partial remains."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_image(img: Image, path: str | os.PathLike[str], bits: int = 8, quality: int = 95) -> Path:
    """Write an image atomically; the format follows the extension.

    Raises:
        RunError: unsupported extension, or the file system refused the write.
    """
    p = Path(path)
    fmt = OUTPUT_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise RunError(f"{p}: unsupported output extension")
    try:
        return atomic_write(p, encode_image(img, fmt, bits, quality))
    except OSError as exc:
        raise RunError(f"{p}: cannot write output ({exc.strerror or exc})") from None
