"""Writing images safely: format from the extension, 16-bit/alpha/ICC kept where the format can hold them,
atomic replacement (temp file, fsync, rename) so no partial file is ever left behind.
"""

from __future__ import annotations

import errno
import functools
import glob
import hashlib
import io
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image as PILImage

from fourkagent.errors import ArtifactError, RunError
from fourkagent.imaging import Image, luma, resize, to_uint8, to_uint16
from fourkagent.paths import OUTPUT_FORMATS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(type, start, end) of each chunk of a PNG, up to IEND."""
    pos = 8
    while pos + 8 <= len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, end = data[pos + 4:pos + 8], pos + 12 + n
        yield kind, pos, end
        if kind == b"IEND":
            return
        pos = end


def png_intact(data: bytes) -> bool:
    """Whether a PNG is complete and every chunk's CRC matches (checked before decoding: no libpng noise)."""
    if data[:8] != PNG_SIGNATURE:
        return False
    last = b""
    for kind, start, end in _png_chunks(data):
        if end > len(data) or struct.unpack(">I", data[end - 4:end])[0] != zlib.crc32(data[start + 4:end - 4]):
            return False
        last = kind
    return last == b"IEND"


def fit_output(
    img: Image, work_size: tuple[int, int], size: tuple[int, int], target: tuple[int, int]
) -> tuple[Image, list[str]]:
    """Crop the padding off the agent's result and make sure it has the target (width, height).

    ``work_size`` is the (padded) image the agent worked on and ``size`` the original input size.
    """
    (ww, wh), (w, h), (tw, th) = work_size, size, target
    rh, rw = img.shape[:2]
    out = img[: max(1, round(h * rh / wh)), : max(1, round(w * rw / ww))]
    notes: list[str] = []
    if out.shape[:2] != (th, tw):
        notes.append(f"the result was {out.shape[1]}x{out.shape[0]}, not {tw}x{th}: resized with Lanczos")
        out = resize(out, (tw, th), "lanczos")
    return np.ascontiguousarray(out), notes


def write_output(img: Image, path: str | os.PathLike[str], info: Mapping[str, Any], factor: int, store: Any,
                 quality: int = 95, size: tuple[int, int] | None = None) -> tuple[Image, list[str]]:
    """Write the agent's result as the user's output file; returns the written RGB image and notes.

    Crops the padding of tiny inputs, guarantees ``factor`` × the input size (then the planned ``size``, when
    the plan finishes with a resize: ``planning.agenda.output_size``), upscales the input's alpha
    (from ``store``, an ArtifactStore) and re-attaches it, embeds the ICC profile, keeps 16 bits and
    greyscale when the input had them and the format allows.
    """
    w, h = int(info["width"]), int(info["height"])
    target = (w * factor, h * factor)
    work = info.get("work_size") or (w, h)
    out, notes = fit_output(img, (int(work[0]), int(work[1])), (w, h), target)
    if size is not None and tuple(size) != target:  # planned, reported by perceive: not a warning
        target = (int(size[0]), int(size[1]))
        out = resize(out, target, "lanczos")
    alpha = None
    if info.get("alpha_artifact"):
        alpha = upscale_alpha(store.get(info["alpha_artifact"])[..., 0], target)
    icc = load_icc(store.root, info["icc"]) if info.get("icc") else None
    bits = int(info.get("bits", 8))
    save_image(out, path, bits, quality, alpha=alpha, icc=icc, gray=bool(info.get("gray")) and alpha is None)
    return out, notes + output_notes(path, bits, alpha is not None)


def upscale_alpha(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an alpha plane to (width, height) with Lanczos, clipped to [0, 1]."""
    if alpha.shape[:2] == (size[1], size[0]):
        return alpha
    return resize(np.ascontiguousarray(alpha, dtype=np.float32), size, "lanczos")


def store_icc(root: str | os.PathLike[str], icc: bytes) -> str:
    """Keep a profile content-addressed in ``root`` (``<sha256>.icc``); returns its id."""
    icc_id = hashlib.sha256(icc).hexdigest()
    target = Path(root) / f"{icc_id}.icc"
    if not target.exists():
        atomic_write(target, icc)
    return icc_id


def load_icc(root: str | os.PathLike[str], icc_id: str) -> bytes:
    """Read a stored profile back.

    Raises:
        ArtifactError: missing, or its bytes do not match its id.
    """
    target = Path(root) / f"{icc_id}.icc"
    try:
        data = target.read_bytes()
    except OSError:
        raise ArtifactError(f"ICC profile {icc_id[:12]} is missing in {root}") from None
    if hashlib.sha256(data).hexdigest() != icc_id:
        raise ArtifactError(f"ICC profile {icc_id[:12]} is corrupted (hash mismatch)")
    return data


def output_notes(path: str | os.PathLike[str], bits: int, has_alpha: bool) -> list[str]:
    """What writing to this format changes (bit depth, alpha), in words for the report."""
    fmt = OUTPUT_FORMATS.get(Path(path).suffix.lower())
    notes = []
    if fmt in ("JPEG", "WEBP") and bits == 16:
        notes.append(f"{fmt} holds 8 bits per channel: the 16-bit result was written as 8-bit "
                     "(use .png or .tif to keep 16)")
    if fmt == "JPEG" and has_alpha:
        notes.append("JPEG has no alpha channel: the image was composited over white (use .png, .tif or .webp)")
    if fmt == "TIFF" and bits == 16 and _tifffile() is None:
        notes.append("16-bit TIFF written without its ICC profile (install tifffile to embed it)")
    return notes


def encode_image(img: Image, fmt: str, bits: int = 8, quality: int = 95, *, alpha: np.ndarray | None = None,
                 icc: bytes | None = None, gray: bool = False) -> bytes:
    """Encode to PNG/TIFF/JPEG/WebP bytes.

    16 bits per channel for PNG/TIFF when ``bits == 16``; ``alpha`` (float HxW) is attached (JPEG:
    composited over white); ``gray`` writes one channel; ``icc`` is embedded.
    """
    if fmt == "JPEG" and alpha is not None:
        a = alpha[..., None].astype(np.float32)
        img, alpha = img * a + (1.0 - a), None
    if fmt in ("JPEG", "WEBP"):
        bits = 8
    px = luma(img) if gray and alpha is None and fmt != "WEBP" else img
    if alpha is not None:
        px = np.dstack([img, alpha])
    if icc and icc[16:20] == (b"RGB " if px.ndim == 2 else b"GRAY"):
        icc = None  # a profile for the other colour space would be invalid
    if bits == 16 and fmt in ("PNG", "TIFF"):
        return _encode16(to_uint16(px), fmt, icc)
    kwargs: dict[str, object] = {"compress_level": 1} if fmt == "PNG" else {}
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = int(quality)
    if fmt == "WEBP" and alpha is not None:
        kwargs["exact"] = True  # keep colour under transparent pixels
    if icc:
        kwargs["icc_profile"] = icc
    out = io.BytesIO()
    PILImage.fromarray(to_uint8(px)).save(out, format=fmt, **kwargs)
    return out.getvalue()


def _tifffile() -> object | None:
    try:
        import tifffile
    except ImportError:
        return None
    return tifffile


def _encode16(u16: np.ndarray, fmt: str, icc: bytes | None) -> bytes:
    tiff = _tifffile() if fmt == "TIFF" else None
    if tiff is not None:
        out = io.BytesIO()
        kw: dict[str, object] = {"photometric": "minisblack" if u16.ndim == 2 else "rgb", "metadata": None}
        if u16.ndim == 3 and u16.shape[2] == 4:
            kw["extrasamples"] = ["unassalpha"]
        tiff.imwrite(out, u16, iccprofile=icc, **kw)  # type: ignore[attr-defined]
        return out.getvalue()
    bgr = u16 if u16.ndim == 2 else u16[..., [2, 1, 0, 3][: u16.shape[2]]]
    ext, params = (".png", [cv2.IMWRITE_PNG_COMPRESSION, 1]) if fmt == "PNG" else (".tiff", [])
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(bgr), params)
    if not ok:
        raise RunError(f"{fmt} encoding failed")
    data = buf.tobytes()
    return _png_add_iccp(data, icc) if icc and fmt == "PNG" else data


def _png_add_iccp(data: bytes, icc: bytes) -> bytes:
    """Insert an iCCP chunk right after IHDR."""
    body = b"ICC Profile\0\0" + zlib.compress(icc)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    return data[:33] + chunk + data[33:]


def atomic_write(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write bytes to a temp file beside ``path``, fsync, then rename over it; nothing partial remains.

    Temp files are named ``.<name>.<pid>.<random>.part``; ones left by a killed process are removed.
    """
    p = Path(path)
    remove_stale_parts(p.parent, p.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.{os.getpid()}.", suffix=".part", dir=p.parent)
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
    _fsync_dir(p.parent)
    return p


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (best effort: not every file system lets a directory be synced)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_parts(directory: str | os.PathLike[str], name: str = "*") -> int:
    """Delete ``.<name>.<pid>.*.part`` files whose writing process is gone (SIGKILL leftovers); returns the count."""
    try:
        leftovers = list(Path(directory).glob(f".{name if name == '*' else glob.escape(name)}.*.part"))
    except OSError:
        return 0
    removed = 0
    for part in leftovers:
        fields = part.name[:-len(".part")].rsplit(".", 2)  # [".<name>", "<pid>", "<random>"]
        if len(fields) == 3 and fields[1].isdigit() and int(fields[1]) != os.getpid() and not _alive(int(fields[1])):
            part.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


@functools.cache
def _umask() -> int:
    """The process umask, read once (reading it means setting it, which races with writer threads)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_image(img: Image, path: str | os.PathLike[str], bits: int = 8, quality: int = 95, *,
               alpha: np.ndarray | None = None, icc: bytes | None = None, gray: bool = False) -> Path:
    """Write an image atomically; the format follows the extension (see :func:`encode_image`).

    Raises:
        RunError: unsupported extension, or the file system refused the write (disk full, permissions);
            no partial file is left behind.
    """
    p = Path(path)
    fmt = OUTPUT_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise RunError(f"{p}: unsupported output extension")
    data = encode_image(img, fmt, bits, quality, alpha=alpha, icc=icc, gray=gray)
    try:
        return atomic_write(p, data)
    except OSError as exc:
        reason = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
        raise RunError(f"{p}: cannot write output ({reason})") from None
