"""Safe model-weights loading: hash-verified bytes, then safetensors or ``torch.load(weights_only=True)``.

The file is read once; its sha256 is checked against the expected digest (an argument, or a
``<file>.sha256`` sidecar) and the *same bytes* are deserialised, so a file swapped between the check
and the load cannot slip through. Pickle-based checkpoints are only ever loaded with
``weights_only=True``: a file holding arbitrary Python objects is refused. torch is imported lazily.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path
from typing import Any, Literal

from fourkagent.errors import MissingWeightsError, WeightsError

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
_HEX = re.compile(r"^[0-9a-f]{8,64}$")


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256", chunk: int = 1 << 20) -> bytes:
    """The raw ``algorithm`` (hashlib name) digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.digest()


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    return file_digest(path, "sha256", chunk).hex()


def expected_sha256(path: str | os.PathLike[str], sha256: str | None = None) -> str | None:
    """The digest a file must have: ``sha256`` if given, else the first word of ``<file>.sha256``, else None.

    Raises:
        WeightsError: the digest is not 8-64 hex characters.
    """
    p = Path(path)
    if sha256 is None:
        side = p.with_name(p.name + ".sha256")
        if not side.is_file():
            return None
        words = side.read_text(encoding="utf-8", errors="replace").split()
        sha256 = words[0] if words else ""
    digest = sha256.strip().lower()
    if not _HEX.match(digest):
        raise WeightsError(f"{p.name}: expected sha256 {sha256!r} is not a hex digest")
    return digest


def read_verified(path: str | os.PathLike[str], sha256: str | None = None, *, require_hash: bool = False) -> bytes:
    """Read a weights file and check its sha256 (a prefix of ≥ 8 hex digits is accepted).

    Raises:
        MissingWeightsError: the file does not exist or cannot be read.
        WeightsError: digest mismatch, or no expected digest while ``require_hash``.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise MissingWeightsError(f"weights file {p} is not installed") from None
    except OSError as exc:
        raise MissingWeightsError(f"weights file {p} cannot be read ({exc.strerror or exc})") from None
    want = expected_sha256(p, sha256)
    if want is None:
        if require_hash:
            raise WeightsError(f"{p.name}: no expected sha256 (pass one or add {p.name}.sha256); refusing to load")
        return data
    got = hashlib.sha256(data).hexdigest()
    if not got.startswith(want):
        raise WeightsError(
            f"{p.name}: sha256 mismatch (expected {want[:16]}..., got {got[:16]}...): "
            "the file is corrupted or was tampered with; refusing to load it"
        )
    return data


def load_state_dict(path: str | os.PathLike[str], sha256: str | None = None, *, require_hash: bool = False,
                    device: str = "cpu", framework: Literal["torch", "numpy"] = "torch") -> dict[str, Any]:
    """Load a state dict from ``.safetensors`` (preferred) or a torch checkpoint with ``weights_only=True``.

    A ``.safetensors`` file loads as numpy arrays with ``framework="numpy"`` or when torch is missing.

    Raises:
        MissingWeightsError: missing file, or torch needed but not installed.
        WeightsError: hash mismatch, unknown format, unreadable content, or pickled objects that are not
            plain tensors (refused by ``weights_only``).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SAFETENSORS_SUFFIXES + TORCH_SUFFIXES:
        known = ", ".join(SAFETENSORS_SUFFIXES + TORCH_SUFFIXES)
        raise WeightsError(f"{p.name}: unknown weights format (use one of {known})")
    data = read_verified(p, sha256, require_hash=require_hash)
    if suffix in SAFETENSORS_SUFFIXES:
        return _load_safetensors(p, data, device, framework)
    try:
        import torch
    except ImportError:
        raise MissingWeightsError(f"{p.name}: loading a torch checkpoint needs torch (pip install torch)") from None
    try:
        obj = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except Exception as exc:  # UnpicklingError for unsafe globals, RuntimeError/EOFError for damage
        raise WeightsError(f"{p.name}: refused by the safe loader ({type(exc).__name__}: {_first_line(exc)})") from None
    if not isinstance(obj, dict):
        raise WeightsError(f"{p.name}: expected a state dict, found {type(obj).__name__}")
    return obj


def _load_safetensors(p: Path, data: bytes, device: str, framework: str) -> dict[str, Any]:
    load_torch = None
    if framework == "torch":
        try:
            from safetensors.torch import load as load_torch
        except ImportError:  # no torch: numpy arrays
            load_torch = None
    try:
        if load_torch is not None:
            tensors = load_torch(data)
            return {k: v.to(device) for k, v in tensors.items()} if device != "cpu" else dict(tensors)
        from safetensors.numpy import load as load_numpy

        return dict(load_numpy(data))
    except ImportError:
        raise MissingWeightsError(f"{p.name}: loading safetensors needs the safetensors package") from None
    except Exception as exc:
        reason = f"{type(exc).__name__}: {_first_line(exc)}"
        raise WeightsError(f"{p.name}: not a valid safetensors file ({reason})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]
