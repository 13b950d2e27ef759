"""Weights safety: hash-verified loading, safetensors first, torch only with weights_only."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from fourkagent.errors import MissingWeightsError, WeightsError
from fourkagent.weights import expected_sha256, load_state_dict, read_verified, sha256_file

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")


@pytest.fixture
def st_file(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray], str]:
    """A small safetensors file written by the test, its tensors and sha256."""
    from safetensors.numpy import save_file

    tensors = {"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), "conv.bias": np.ones(2, np.float32)}
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path))
    return path, tensors, hashlib.sha256(path.read_bytes()).hexdigest()


def test_verified_safetensors_load(st_file: tuple[Path, dict[str, np.ndarray], str]) -> None:
    path, tensors, digest = st_file
    assert sha256_file(path) == digest
    for expected in (digest, digest[:12].upper()):
        got = load_state_dict(path, expected, framework="numpy")
        assert set(got) == set(tensors) and all(np.array_equal(got[k], tensors[k]) for k in tensors)


def test_tampered_file_is_refused(st_file: tuple[Path, dict[str, np.ndarray], str]) -> None:
    path, _, digest = st_file
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # one bit in the last weight
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256 mismatch.*refusing"):
        load_state_dict(path, digest, framework="numpy")


def test_sidecar_digest_and_required_hash(st_file: tuple[Path, dict[str, np.ndarray], str]) -> None:
    path, _, digest = st_file
    with pytest.raises(WeightsError, match="no expected sha256"):
        load_state_dict(path, require_hash=True, framework="numpy")
    side = path.with_name(path.name + ".sha256")
    side.write_text(f"{digest}  model.safetensors\n")
    assert expected_sha256(path) == digest
    assert "conv.bias" in load_state_dict(path, require_hash=True, framework="numpy")
    side.write_text("0" * 64)
    with pytest.raises(WeightsError, match="mismatch"):
        load_state_dict(path, framework="numpy")
    with pytest.raises(WeightsError, match="not a hex digest"):
        load_state_dict(path, "not-a-hash", framework="numpy")


def test_missing_unknown_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="not installed"):
        read_verified(tmp_path / "absent.safetensors")
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(WeightsError, match="unknown weights format"):
        load_state_dict(tmp_path / "m.onnx")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\xff" * 64)
    with pytest.raises(WeightsError, match="not a valid safetensors"):
        load_state_dict(junk, hashlib.sha256(junk.read_bytes()).hexdigest(), framework="numpy")


class Payload:
    """Unpickling this would run code (creates a marker file): the safe loader must refuse it."""

    marker: Path | None = None

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))


@needs_torch
def test_torch_checkpoint_weights_only(tmp_path: Path) -> None:
    import torch

    good = tmp_path / "good.pth"
    torch.save({"w": torch.arange(6.0).reshape(2, 3)}, good)
    got = load_state_dict(good, sha256_file(good))
    assert torch.equal(got["w"], torch.arange(6.0).reshape(2, 3))

    marker = tmp_path / "pwned"
    Payload.marker = marker
    evil = tmp_path / "evil.pth"
    torch.save({"w": Payload()}, evil)
    with pytest.raises(WeightsError, match="refused by the safe loader"):
        load_state_dict(evil, sha256_file(evil))
    assert not marker.exists()


@needs_torch
def test_safetensors_through_torch(st_file: tuple[Path, dict[str, np.ndarray], str]) -> None:
    path, tensors, digest = st_file
    got = load_state_dict(path, digest)
    assert np.array_equal(got["conv.weight"].numpy(), tensors["conv.weight"])
