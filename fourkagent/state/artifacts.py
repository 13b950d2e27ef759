"""Content-addressed, lossless artifact store: images live on disk, the state holds their ids."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from fourkagent.errors import ArtifactError
from fourkagent.imageio import atomic_write
from fourkagent.imaging import Image, to_uint16

ARTIFACT_SUFFIX = ".png"


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
        """Store an image (quantised to 16 bits) and return its id."""
        pixels = to_uint16(img)
        aid = self._digest(pixels)
        target = self.path(aid)
        if not target.exists():
            ok, buf = cv2.imencode(ARTIFACT_SUFFIX, pixels[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
            if not ok:
                raise ArtifactError(f"cannot encode artifact {aid[:12]}")
            atomic_write(target, buf.tobytes())
        return aid

    def get(self, artifact_id: str, verify: bool = True) -> Image:
        """Load an artifact as a float image.

        Raises:
            ArtifactError: missing, unreadable, or (with ``verify``) its pixels do not match its id.
        """
        p = self.path(artifact_id)
        data = cv2.imread(str(p), cv2.IMREAD_UNCHANGED) if p.exists() else None
        if data is None or data.dtype != np.uint16 or data.ndim != 3:
            raise ArtifactError(f"artifact {artifact_id[:12]} is missing or unreadable in {self.root}")
        pixels = np.ascontiguousarray(data[..., ::-1])
        if verify and self._digest(pixels) != artifact_id:
            raise ArtifactError(f"artifact {artifact_id[:12]} is corrupted (hash mismatch)")
        return pixels.astype(np.float32) / 65535.0

    def __contains__(self, artifact_id: object) -> bool:
        """Whether a file for that id exists (not verified)."""
        return isinstance(artifact_id, str) and self.path(artifact_id).exists()
