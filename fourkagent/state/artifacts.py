"""Content-addressed, lossless artifact store: images live on disk, the state holds their ids."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from fourkagent.errors import ArtifactError
from fourkagent.imageio import atomic_write, png_intact
from fourkagent.imaging import Image, to_uint16

ARTIFACT_SUFFIX = ".png"
CACHE_BYTES = 640 * 1024 * 1024
"""In-process cache of recently stored/loaded pixels (a 4096² image is 96 MiB as uint16)."""

_cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


def _remember(key: tuple[str, str], pixels: np.ndarray) -> None:
    with _cache_lock:
        _cache[key] = pixels
        _cache.move_to_end(key)
        while sum(v.nbytes for v in _cache.values()) > CACHE_BYTES and len(_cache) > 1:
            _cache.popitem(last=False)


_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="artifact-writer")
_pending: list[Future[None]] = []


def flush_writes() -> None:
    """Wait until every artifact handed to ``put`` is on disk (nodes call this before they return).

    Raises:
        ArtifactError: a background write failed.
    """
    while _pending:
        fut = _pending.pop(0)
        exc = fut.exception()
        if exc is not None:
            raise ArtifactError(f"writing an artifact failed: {exc}") from exc


def _encode_and_write(target: Path, pixels: np.ndarray) -> None:
    ok, buf = cv2.imencode(ARTIFACT_SUFFIX, pixels[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ArtifactError(f"cannot encode artifact {target.name}")
    atomic_write(target, buf.tobytes())


def _recall(key: tuple[str, str]) -> np.ndarray | None:
    with _cache_lock:
        pixels = _cache.get(key)
        if pixels is not None:
            _cache.move_to_end(key)
        return pixels


class ArtifactStore:
    """Images stored as 16-bit RGB PNG named by the sha256 of their pixels.

    The id is ``sha256(uint16 pixels + shape)``, so equal images share one file, a file can be
    verified against its name, and a resumed run reads exactly the pixels an uninterrupted run did.
    Writes are atomic, so concurrent runs sharing one store never see a partial file.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Open (and create) a store at ``root``."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _digest(pixels: np.ndarray) -> str:
        h = hashlib.sha256()
        h.update(repr(pixels.shape).encode())
        h.update(np.ascontiguousarray(pixels).data)
        return h.hexdigest()

    def path(self, artifact_id: str) -> Path:
        """Where an artifact lives on disk."""
        return self.root / f"{artifact_id}{ARTIFACT_SUFFIX}"

    def put(self, img: Image) -> str:
        """Store an image (quantised to 16 bits) and return its id; the file is written in the background."""
        pixels = to_uint16(img)
        aid = self._digest(pixels)
        target = self.path(aid)
        known = _recall((str(self.root), aid)) is not None
        _remember((str(self.root), aid), pixels)
        if not known and not target.exists():
            _pending.append(_writer.submit(_encode_and_write, target, pixels))
        return aid

    def get(self, artifact_id: str, verify: bool = True) -> Image:
        """Load an artifact as a float image.

        Raises:
            ArtifactError: missing, unreadable, or (with ``verify``) its pixels do not match its id.
        """
        cached = _recall((str(self.root), artifact_id))
        if cached is not None:
            return cached.astype(np.float32) * np.float32(1.0 / 65535.0)
        p = self.path(artifact_id)
        raw = p.read_bytes() if p.exists() else b""
        # a damaged file is refused before decoding: libpng would print its own error line to the user
        data = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED) if png_intact(raw) else None
        if data is None or data.dtype != np.uint16 or data.ndim != 3:
            raise ArtifactError(f"artifact {artifact_id[:12]} is missing or unreadable in {self.root}")
        pixels = np.ascontiguousarray(data[..., ::-1])
        if verify and self._digest(pixels) != artifact_id:
            raise ArtifactError(f"artifact {artifact_id[:12]} is corrupted (hash mismatch)")
        _remember((str(self.root), artifact_id), pixels)
        return pixels.astype(np.float32) * np.float32(1.0 / 65535.0)

    def __contains__(self, artifact_id: object) -> bool:
        """Whether a file for that id exists (not verified)."""
        return isinstance(artifact_id, str) and self.path(artifact_id).exists()
