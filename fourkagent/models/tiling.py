"""Tiled, memory-bounded inference for image-to-image torch modules (SR or restoration).

A module maps ``(1, 3, H, W)`` in [0, 1] to ``(1, 3, sH, sW)``. The image is cut into overlapping
tiles; across each shared strip a tile's output weight is zero next to its own edge (where the
module saw the zero padding of the tile edge rather than real neighbours; ``trim``, 3/8 of the
overlap by default) and then cross-fades linearly with its neighbour's, so seams are blended
smoothly and the weights always sum to one. Image borders keep weight one. Only one tile's activations live at a time, so peak memory is set by ``tile``, not by the
image: the output accumulators are the only image-sized buffers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fourkagent.devices import float_tensor, set_cpu_threads
from fourkagent.tool_progress import tick

if TYPE_CHECKING:
    import torch

DEFAULT_TILE = 256
"""Input-pixel tile side; SPAN at 256 px uses roughly 0.3 GB of activations."""
DEFAULT_OVERLAP = 32
"""Input pixels shared by neighbouring tiles (SPAN's receptive-field radius is 21 px)."""


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the fewest tiles no longer than ``tile`` that cover ``[0, length)``
    with neighbours sharing at least ``overlap`` pixels; tiles are equal-sized and evenly spread."""
    if length <= tile:
        return [(0, length)]
    if overlap >= tile:
        raise ValueError(f"overlap ({overlap}) must be smaller than tile ({tile})")
    n = -(-(length - overlap) // (tile - overlap))
    size = min(tile, -(-(length + (n - 1) * overlap) // n))
    starts = [round(i * (length - size) / (n - 1)) for i in range(n)]
    return [(s, s + size) for s in starts]


def _ramp(size: int, lead: int, trail: int, trim: int) -> np.ndarray:
    """1-D tile weights over ``size`` output pixels.

    ``lead``/``trail`` are the widths shared with the previous/next tile (0 at an image border).
    Across a shared strip of width ``W`` the weight is 0 for the first ``t = min(trim, (W-1)//2)``
    pixels, then rises linearly to 1 over ``W - 2t`` pixels. The neighbour's mirrored ramp is
    exactly ``1 - w``, so weights of overlapping tiles sum to one.
    """
    w = np.ones(size, np.float32)
    for width, at_start in ((lead, True), (trail, False)):
        if width <= 0:
            continue
        t = min(trim, (width - 1) // 2)
        d = np.arange(width, dtype=np.float32)
        ramp = np.clip((d + 0.5 - t) / (width - 2 * t), 0.0, 1.0)
        if at_start:
            w[:width] = np.minimum(w[:width], ramp)
        else:
            w[size - width :] = np.minimum(w[size - width :], ramp[::-1])
    return w


def span_weights(spans: list[tuple[int, int]], i: int, trim: int, scale: int = 1) -> np.ndarray:
    """1-D blend weights of tile ``i`` of ``spans`` (input pixels) at output ``scale``, given the overlaps
    it shares with its neighbours."""
    a, b = spans[i]
    lead = spans[i - 1][1] - a if i else 0
    trail = b - spans[i + 1][0] if i + 1 < len(spans) else 0
    return _ramp((b - a) * scale, lead * scale, trail * scale, trim * scale)


def tiled_forward(
    module: torch.nn.Module,
    x: torch.Tensor,
    scale: int,
    tile: int | None = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    threads: int | None = None,
    trim: int | None = None,
) -> torch.Tensor:
    """Run ``module`` on ``x`` (1, C, H, W) tile by tile; returns (1, C_out, sH, sW) float32 on CPU.

    Tiles go to the module's device and dtype (see :mod:`fourkagent.devices`); on CPU torch uses
    ``threads`` (default: the requested count, else all cores). Each finished tile is reported to
    :func:`fourkagent.tool_progress.tick` (a whole-image run reports nothing).
    ``tile=None`` (or a tile at least as large as the image) runs the whole image at once.
    ``overlap`` is in input pixels; of each shared strip, ``trim`` input pixels next to a tile's
    edge get weight zero (default ``3 * overlap // 8``) and the rest is a linear cross-fade.
    """
    import torch

    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"expected a (1, C, H, W) tensor, got {tuple(x.shape)}")
    _, _, h, w = x.shape
    param = float_tensor(module)
    device, dtype = (x.device, x.dtype) if param is None else (param.device, param.dtype)
    if device.type == "cpu":
        set_cpu_threads(threads)
    with torch.inference_mode():
        if tile is None or (h <= tile and w <= tile):
            return module(x.to(device, dtype)).float().cpu()
        tile = int(tile)
        overlap = max(0, min(int(overlap), tile // 2))
        trim = 3 * overlap // 8 if trim is None else max(0, int(trim))
        ys, xs = tile_spans(h, tile, overlap), tile_spans(w, tile, overlap)
        out: torch.Tensor | None = None
        acc_w = torch.zeros((1, 1, h * scale, w * scale), dtype=torch.float32)
        done, total = 0, len(ys) * len(xs)
        for iy, (y0, y1) in enumerate(ys):
            wy = span_weights(ys, iy, trim, scale)
            for ix, (x0, x1) in enumerate(xs):
                wx = span_weights(xs, ix, trim, scale)
                y = module(x[:, :, y0:y1, x0:x1].to(device, dtype)).float().cpu()
                if out is None:
                    out = torch.zeros((1, y.shape[1], h * scale, w * scale), dtype=torch.float32)
                weight = torch.from_numpy(np.outer(wy, wx))[None, None]
                sy, sx = slice(y0 * scale, y1 * scale), slice(x0 * scale, x1 * scale)
                out[:, :, sy, sx].addcmul_(y, weight)
                acc_w[:, :, sy, sx].add_(weight)
                del y
                done += 1
                tick(done, total)
        assert out is not None
        return out.div_(acc_w.clamp_min_(1e-8))


def run_model(
    module: torch.nn.Module,
    img: np.ndarray,
    scale: int,
    tile: int | None = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    threads: int | None = None,
) -> np.ndarray:
    """Apply ``module`` to a float32 HxWx3 RGB image in [0, 1]; returns float32 (sH)x(sW)x3 clipped to [0, 1]."""
    import torch

    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {arr.shape}")
    x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
    y = tiled_forward(module, x, scale, tile=tile, overlap=overlap, threads=threads)
    with torch.inference_mode():
        out = y[0].clamp_(0.0, 1.0).permute(1, 2, 0).numpy()
        return np.ascontiguousarray(out, dtype=np.float32)
