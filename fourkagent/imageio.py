"""Image files at the boundary: safe, read-only reading and output-path checks (writing: ``imagewrite``).

Reading goes through Pillow (which validates the whole stream) and OpenCV for 16-bit colour,
which Pillow cannot hold. Alpha and the ICC profile are kept aside so the agent can carry them
to the output; everything unusual (frames, CMYK, dropped profiles) is recorded as a warning.
The writing side is re-exported here, so ``fourkagent.imageio`` stays the one import for both.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from fourkagent.errors import BadInputError, FourKError, RunError
from fourkagent.imagewrite import (
    PNG_SIGNATURE,
    _png_chunks,
    atomic_write,
    encode_image,
    fit_output,
    load_icc,
    output_notes,
    png_intact,
    remove_stale_parts,
    save_image,
    store_icc,
    upscale_alpha,
    write_output,
)
from fourkagent.imaging import Image, as_image
from fourkagent.paths import OUTPUT_FORMATS, check_not_input, check_output_path, input_file, read_input

__all__ = [
    "MAX_PIXELS_DEFAULT", "MIN_WORK_SIDE", "OUTPUT_FORMATS", "InputInfo", "LoadedImage", "atomic_write",
    "check_not_input", "check_output_path", "check_output_pixels", "encode_image", "fit_output", "load_icc",
    "load_image", "max_pixels", "output_notes", "pad_to_min", "png_intact", "read_image", "remove_stale_parts",
    "save_image", "store_icc", "upscale_alpha", "write_output",
]

MAX_PIXELS_DEFAULT = 400_000_000
"""Refuse inputs above this many pixels (decompression-bomb guard); override with FOURKAGENT_MAX_PIXELS."""
MAX_OUTPUT_PIXELS_DEFAULT = 300_000_000
"""Refuse runs whose result would be larger (about 3.6 GB per float copy); FOURKAGENT_MAX_OUTPUT_PIXELS."""
MIN_WORK_SIDE = 16
"""Images with a side below this are padded (symmetric) for the agent and cropped back at the end."""
_PILLOW_LIMIT_LOCK = threading.Lock()
"""Serialises reads: Pillow's bomb limit is a module global we lift while our own limit applies."""
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


@dataclass(frozen=True)
class InputInfo:
    """What was read from the input file."""

    path: str
    width: int
    height: int
    mode: str
    bits: int
    format: str
    gray: bool = False
    """Single-channel input: written back as greyscale when there is no alpha."""
    has_alpha: bool = False
    has_icc: bool = False
    frames: int = 1
    orientation: int = 1
    """EXIF orientation that was applied (1 = none)."""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable form."""
        return asdict(self)


@dataclass(frozen=True)
class LoadedImage:
    """An input image: RGB pixels, its alpha (float HxW in [0, 1]) and ICC profile kept aside."""

    image: Image
    info: InputInfo
    alpha: np.ndarray | None = None
    icc: bytes | None = None


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise RunError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise RunError(f"{name}={raw!r} must be positive")
    return value


def max_pixels() -> int:
    """The input pixel limit (FOURKAGENT_MAX_PIXELS, default 400 M)."""
    return _env_int("FOURKAGENT_MAX_PIXELS", MAX_PIXELS_DEFAULT)


def check_output_pixels(path: str | os.PathLike[str], width: int, height: int, factor: int) -> None:
    """Refuse a run whose result would exceed FOURKAGENT_MAX_OUTPUT_PIXELS (default 300 M) before any work.

    Raises:
        BadInputError: the upscaled result would be too large to hold in memory.
    """
    limit = _env_int("FOURKAGENT_MAX_OUTPUT_PIXELS", MAX_OUTPUT_PIXELS_DEFAULT)
    w, h = width * factor, height * factor
    if w * h > limit:
        raise BadInputError(f"{path}: the x{factor} result would be {w}x{h}, above the {limit}-pixel output "
                            "limit (choose a smaller scale or raise FOURKAGENT_MAX_OUTPUT_PIXELS)")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def read_image(path: str | os.PathLike[str]) -> LoadedImage:
    """Read an image file read-only: EXIF-oriented RGB pixels, alpha and ICC profile apart.

    Grey, palette, CMYK (through its ICC profile when present), 16-bit PNG/TIFF and float inputs are
    converted; of an animated or multi-page file the first frame is used, with a warning.

    Raises:
        BadInputError: missing, not a file, empty, not an image, corrupt or truncated, or too large.
        RunError: FOURKAGENT_MAX_PIXELS is malformed.
    """
    p = input_file(path)
    limit = max_pixels()
    data = read_input(p, limit)
    try:
        return _decode(p, data, limit)
    except FourKError:
        raise
    except MemoryError:
        raise BadInputError(f"{p}: too large to decode in the available memory") from None
    except UnidentifiedImageError:
        raise BadInputError(f"{p}: not an image (or a format Pillow cannot read)") from None
    except Exception as exc:  # any decoder failure means a damaged file; never a traceback
        raise BadInputError(f"{p}: corrupt or truncated image ({_one_line(exc)})") from None


def load_image(path: str | os.PathLike[str]) -> tuple[Image, InputInfo]:
    """Read an image into the internal float RGB type (alpha and ICC dropped; see :func:`read_image`)."""
    loaded = read_image(path)
    return loaded.image, loaded.info


def _decode(p: Path, data: bytes, limit: int) -> LoadedImage:
    notes: list[str] = []
    with _PILLOW_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's bomb warning: our own limit is checked right after open
        saved, PILImage.MAX_IMAGE_PIXELS = PILImage.MAX_IMAGE_PIXELS, None
        try:
            return _decode_pillow(p, data, limit, notes)
        finally:
            PILImage.MAX_IMAGE_PIXELS = saved  # Pillow's global limit is left as we found it


def _decode_pillow(p: Path, data: bytes, limit: int, notes: list[str]) -> LoadedImage:
    with PILImage.open(io.BytesIO(data)) as im:
        w, h = im.size
        if w * h > limit:
            raise BadInputError(
                f"{p}: {w}x{h} = {w * h} pixels exceeds the limit of {limit} "
                "(possible decompression bomb; raise FOURKAGENT_MAX_PIXELS to allow it)"
            )
        if w < 1 or h < 1:
            raise BadInputError(f"{p}: image has no pixels ({w}x{h})")
        frames = int(getattr(im, "n_frames", 1) or 1)
        if frames > 1:
            im.seek(0)
            notes.append(f"{frames} frames (animated or multi-page): only the first frame was used")
        fmt, mode = im.format or "unknown", im.mode
        icc = im.info.get("icc_profile") or None
        im.load()  # decode everything now: truncation and CRC errors surface here
        orientation = _orientation(im, notes)
        if _is_16bit_colour(im, data):
            arr, alpha = _decode_16bit(data, h, w)
        else:
            arr, alpha, icc = _from_pil(im, icc, notes)
    arr, alpha = _orient(arr, orientation), (None if alpha is None else _orient(alpha, orientation))
    bits = 16 if arr.dtype != np.uint8 else 8
    gray = mode in _GRAY_MODES
    icc = _usable_icc(icc, gray and alpha is None, notes)
    img = as_image(arr)
    alpha_f = None if alpha is None else as_image(alpha)[..., 0]
    oh, ow = img.shape[:2]
    info = InputInfo(str(p), ow, oh, mode, bits, fmt, gray=gray, has_alpha=alpha_f is not None,
                     has_icc=icc is not None, frames=frames, orientation=orientation, warnings=notes)
    return LoadedImage(img, info, alpha_f, icc)


def _orientation(im: PILImage.Image, notes: list[str]) -> int:
    try:
        value = int(im.getexif().get(0x0112, 1) or 1)
    except Exception:
        notes.append("EXIF block unreadable: orientation ignored")
        return 1
    return value if 1 <= value <= 8 else 1


_ORIENT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1], 8: lambda a: np.rot90(a, 1),
}


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (as Pillow's ``exif_transpose``) to an HxW[xC] array."""
    fn = _ORIENT.get(orientation)
    return a if fn is None else np.ascontiguousarray(fn(a))


def _is_16bit_colour(im: PILImage.Image, data: bytes) -> bool:
    """16-bit RGB(A)/grey+alpha, which Pillow would silently reduce to 8 bits."""
    if im.format == "PNG" and len(data) > 25:
        return data[24] == 16 and data[25] in (2, 4, 6)
    if im.format == "TIFF":
        bps = getattr(im, "tag_v2", {}).get(258)
        return isinstance(bps, tuple) and len(bps) >= 2 and max(bps) == 16
    return False


def _png_critical(data: bytes) -> bytes:
    """The PNG without ancillary chunks (OpenCV then has nothing to warn about on stderr)."""
    keep = (b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND")
    return data[:8] + b"".join(data[s:e] for kind, s, e in _png_chunks(data) if kind in keep)


def _decode_16bit(data: bytes, h: int, w: int) -> tuple[np.ndarray, np.ndarray | None]:
    src = _png_critical(data) if data[:8] == PNG_SIGNATURE else data
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # libtiff warnings would hit stderr
    try:
        a = cv2.imdecode(np.frombuffer(src, np.uint8), cv2.IMREAD_UNCHANGED)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if a is None or a.shape[:2] != (h, w) or a.dtype != np.uint16:
        raise ValueError("16-bit decoder could not read the pixels")
    if a.ndim == 2:
        return a, None
    channels = a.shape[2]
    if channels == 2:
        return a[..., 0], a[..., 1]
    if channels == 3:
        return a[..., ::-1], None
    return a[..., 2::-1], a[..., 3]


def _from_pil(
    im: PILImage.Image, icc: bytes | None, notes: list[str]
) -> tuple[np.ndarray, np.ndarray | None, bytes | None]:
    """Pixels (uint8, uint16 or float), alpha and the (possibly replaced) ICC profile of a decoded image."""
    mode = im.mode
    if mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    elif mode in ("1", "La"):
        im = im.convert("L" if mode == "1" else "LA")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode == "CMYK":
        im, icc = _cmyk_to_rgb(im, icc, notes)
    elif mode == "RGB" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode.startswith("I"):
        if im.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
            im = im.convert("I")
        return np.clip(np.asarray(im, dtype=np.int64), 0, 65535).astype(np.uint16), None, icc
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float32)
        if np.isfinite(a).all() and (a.min() < 0.0 or a.max() > 1.0):
            notes.append("floating-point pixels outside [0, 1] were clipped")
        return np.clip(np.nan_to_num(a), 0.0, 1.0), None, icc
    if im.mode in ("LA", "RGBA"):
        a = np.asarray(im)
        return a[..., :-1].squeeze(-1) if im.mode == "LA" else a[..., :3], a[..., -1], icc
    if im.mode not in ("L", "RGB"):
        im = im.convert("RGB")
    return np.asarray(im), None, icc


def _cmyk_to_rgb(im: PILImage.Image, icc: bytes | None, notes: list[str]) -> tuple[PILImage.Image, bytes | None]:
    """CMYK → sRGB through the embedded profile when it has one (output tagged sRGB), else naively."""
    if icc:
        try:
            from PIL import ImageCms

            srgb = ImageCms.createProfile("sRGB")
            out = ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), srgb, outputMode="RGB")
            if out is not None:
                notes.append("CMYK converted to sRGB through its ICC profile")
                return out, ImageCms.ImageCmsProfile(srgb).tobytes()
        except Exception:
            pass
    notes.append("CMYK converted to RGB without a usable colour profile (colours are approximate)")
    return im.convert("RGB"), None


def _usable_icc(icc: bytes | None, gray_out: bool, notes: list[str]) -> bytes | None:
    """The profile if it fits the output's colour space (RGB, or GRAY for a greyscale output)."""
    if not icc:
        return None
    space = icc[16:20] if len(icc) >= 128 else b""
    if space == (b"GRAY" if gray_out else b"RGB "):
        return icc
    what = space.decode("latin-1").strip() or "malformed"
    notes.append(f"ICC profile ({what}) does not fit the {'greyscale' if gray_out else 'RGB'} output: not carried over")
    return None


def pad_to_min(img: Image, min_side: int = MIN_WORK_SIDE) -> Image:
    """Pad bottom/right (symmetric) so both sides reach ``min_side``; tools and detectors need a few pixels."""
    h, w = img.shape[:2]
    ph, pw = max(0, min_side - h), max(0, min_side - w)
    if not (ph or pw):
        return img
    return np.ascontiguousarray(np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="symmetric"))
