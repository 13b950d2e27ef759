"""Read ncnn model files: the ``.param`` text graph and the ``.bin`` weights (fp32/fp16/lookup-table tags)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class NcnnLayer:
    """One line of an ncnn ``.param`` file."""

    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, object] = field(default_factory=dict)
    """``key=value`` pairs; values are int, float or a list (array params, key < -23300)."""


def _number(text: str) -> int | float:
    return float(text) if any(ch in text for ch in ".eE") else int(text)


def parse_param(path: str | os.PathLike[str]) -> list[NcnnLayer]:
    """Parse a text ``.param`` file (magic 7767517).

    Raises:
        ValueError: not a text ncnn param file, or inconsistent counts.
    """
    lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
    if not lines or lines[0] != "7767517":
        raise ValueError(f"{path}: not an ncnn text .param file (magic 7767517)")
    layer_count, _blob_count = (int(v) for v in lines[1].split())
    layers = []
    for ln in lines[2:]:
        tok = ln.split()
        typ, name, nb, nt = tok[0], tok[1], int(tok[2]), int(tok[3])
        bottoms, tops = tok[4 : 4 + nb], tok[4 + nb : 4 + nb + nt]
        params: dict[int, object] = {}
        for kv in tok[4 + nb + nt :]:
            k_text, v_text = kv.split("=", 1)
            k = int(k_text)
            if k <= -23300:  # array: -23300 - id = count,v1,v2,...
                values = v_text.split(",")
                params[-23300 - k] = [_number(v) for v in values[1:]]
            else:
                params[k] = _number(v_text)
        layers.append(NcnnLayer(typ, name, bottoms, tops, params))
    if len(layers) != layer_count:
        raise ValueError(f"{path}: header says {layer_count} layers, found {len(layers)}")
    return layers


_FP16_TAG = 0x01306B47
_INT8_TAG = 0x000D4B38
_RAW_TAG = 0x0002C056


class _BinReader:
    """Sequential reader of an ncnn ``.bin`` following ncnn's ModelBinFromDataReader rules."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f".bin truncated: need {n} bytes at offset {self.pos}, have {len(self.data) - self.pos}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def _align4(self, nbytes: int) -> None:
        self.pos += (-nbytes) % 4

    def raw_f32(self, count: int) -> np.ndarray:
        """Untagged float32 data (biases, MemoryData)."""
        return np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)

    def tagged(self, count: int) -> np.ndarray:
        """Tagged weight data: fp16, fp32 (tag 0 or raw tag) or 8-bit table-quantised."""
        tag = int(np.frombuffer(self._take(4), dtype="<u4")[0])
        if tag == _FP16_TAG:
            out = np.frombuffer(self._take(2 * count), dtype="<f2").astype(np.float32)
            self._align4(2 * count)
            return out
        if tag in (0, _RAW_TAG):
            return self.raw_f32(count)
        if tag == _INT8_TAG:
            raise ValueError("int8-quantised ncnn weights are not supported")
        # any other non-zero tag: 256-entry float lookup table followed by uint8 indices
        table = self.raw_f32(256)
        idx = np.frombuffer(self._take(count), dtype=np.uint8)
        self._align4(count)
        return table[idx]


def read_weights(layers: list[NcnnLayer], bin_path: str | os.PathLike[str]) -> dict[str, dict[str, np.ndarray]]:
    """Read every layer's weights from ``.bin`` in layer order: ``{layer name: {"weight", "bias"}}``.

    Supports Convolution, Deconvolution (weights kept in ncnn's ``out, in, kh, kw`` order), PReLU and
    MemoryData (the layers of the SPAN, Real-ESRGAN, SRVGGNet and waifu2x graphs) and rejects other
    weighted layers.

    Raises:
        ValueError: unsupported weighted layer, truncated or over-long file.
    """
    reader = _BinReader(Path(bin_path).read_bytes())
    known_free = {"Input", "BinaryOp", "Split", "Swish", "Sigmoid", "Concat", "PixelShuffle", "Clip", "ReLU",
                  "Eltwise", "Interp", "Padding", "Crop", "TanH"}
    out: dict[str, dict[str, np.ndarray]] = {}
    for layer in layers:
        p = layer.params
        if layer.type in ("Convolution", "Deconvolution"):
            num_out, k_w = int(p.get(0, 0)), int(p.get(1, 0))
            k_h = int(p.get(11, k_w))
            size = int(p.get(6, 0))
            if p.get(8, 0):
                raise ValueError(f"{layer.name}: int8 convolution is not supported")
            w = reader.tagged(size)
            c_in = size // (num_out * k_h * k_w)
            if c_in * num_out * k_h * k_w != size:
                raise ValueError(f"{layer.name}: weight size {size} does not factor as {num_out}x?x{k_h}x{k_w}")
            entry = {"weight": w.reshape(num_out, c_in, k_h, k_w)}
            if p.get(5, 0):
                entry["bias"] = reader.raw_f32(num_out)
            out[layer.name] = entry
        elif layer.type == "PReLU":
            out[layer.name] = {"weight": reader.raw_f32(max(1, int(p.get(0, 0))))}
        elif layer.type == "MemoryData":
            dims = [int(p.get(k, 0)) for k in (0, 1, 11, 2)]  # w, h, d, c
            count = int(np.prod([d for d in dims if d > 0]))
            out[layer.name] = {"weight": reader.raw_f32(count)}
        elif layer.type not in known_free:
            raise ValueError(f"{layer.name}: unsupported ncnn layer type {layer.type}")
    if reader.pos != len(reader.data):
        raise ValueError(f"{bin_path}: {len(reader.data) - reader.pos} trailing bytes after the last weight")
    return out


# --------------------------------------------------------------------------- conversion
