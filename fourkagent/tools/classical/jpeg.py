"""JPEG compression-artifact removal that knows the 8x8 grid and the quantiser.

The block grid offset is found from the block-boundary steps, and the JPEG quality is estimated by
testing, for every IJG quality 1..100, how well the luma block-DCT coefficients sit on the lattice
of that quality's quantisation table (a circular-mean periodicity score). Knowing the table gives
the quantisation constraint set: each coefficient of the original lies in its quantisation cell.

``jpeg_deblock``: grid-aware deblocking (ramp across 8x8 boundaries, luma; 16x16 chroma grid for
4:2:0), adaptive to the boundary step against the local activity, followed by a projection of the
luma onto the quantisation constraint set and luma-guided chroma smoothing.
``jpeg_dct_qcs``: translation-averaged re-quantisation (Nosratinia's shifted-DCT denoising) and
projection onto the constraint set, on luma and on the half-resolution chroma planes.
Both return the input unchanged when no JPEG quantisation lattice is found.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np

from fourkagent.imaging import Image
from fourkagent.tools.base import Tool, ToolSpec
from fourkagent.tools.classical import _filters as F

LUMA_TABLE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    np.float64,
)
CHROMA_TABLE = np.full((8, 8), 99.0)
CHROMA_TABLE[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]

_N = np.arange(8)
_DCT = np.sqrt(2.0 / 8.0) * np.cos(np.pi * (2 * _N[None, :] + 1) * _N[:, None] / 16.0)
_DCT[0] /= np.sqrt(2.0)
_MIN_SCORE = 0.6
_UV = np.add.outer(np.arange(8), np.arange(8)).ravel()
_LOW_AC = (_UV >= 1) & (_UV <= 6)  # low/mid AC positions (DC excluded: flat blocks are trivially periodic)


def ijg_table(base: np.ndarray, quality: int) -> np.ndarray:
    """The IJG (libjpeg/PIL) quantisation table for ``quality`` 1..100."""
    q = int(np.clip(quality, 1, 100))
    scale = 5000.0 / q if q < 50 else 200.0 - 2.0 * q
    return np.clip(np.floor((base * scale + 50.0) / 100.0), 1.0, 255.0)


def _rows(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply ``m`` (8x8) to every horizontal run of 8 samples (one GEMM)."""
    h, w = x.shape
    return (x.reshape(h, w // 8, 8) @ m.T).reshape(h, w)


def block_dct(x: np.ndarray) -> np.ndarray:
    """Orthonormal 8x8 block DCT of an array whose sides are multiples of 8 (same layout)."""
    return _rows(_rows(x, _DCT).T, _DCT).T


def block_idct(c: np.ndarray) -> np.ndarray:
    """Inverse of :func:`block_dct`."""
    return _rows(_rows(c, _DCT.T).T, _DCT.T).T


def grid_offset(y: np.ndarray) -> tuple[int, int]:
    """(row, col) offset of the 8x8 block grid: where the mean boundary step is largest."""

    def best(axis: int) -> int:
        d = np.abs(np.diff(y, axis=axis)).mean(axis=1 - axis)  # step between i and i+1
        if d.size < 16:
            return 0
        energy = [d[(k - 1) % 8 :: 8].mean() for k in range(8)]  # boundary before index k (mod 8)
        return int(np.argmax(energy))

    return best(0), best(1)


def _aligned(x: np.ndarray, oy: int, ox: int) -> tuple[slice, slice]:
    h, w = x.shape
    hh, ww = (h - oy) // 8 * 8, (w - ox) // 8 * 8
    return slice(oy, oy + hh), slice(ox, ox + ww)


def _lattice_score(c: np.ndarray, table: np.ndarray) -> float:
    """Weighted circular-mean periodicity of AC coefficients ``c`` (N x 64) w.r.t. ``table``."""
    t = table.ravel()
    use = (t >= 3) & _LOW_AC
    cc, tt = c[:, use], t[use]
    m = np.abs(cc) >= tt / 2.0
    cnt = m.sum(axis=0)
    ok = cnt >= 16
    if ok.sum() < 2:  # too little evidence (e.g. only a few high-frequency positions)
        return 0.0
    ph = (2.0 * np.pi) * cc / tt
    re = np.where(m, np.cos(ph), 0.0).sum(axis=0)
    im = np.where(m, np.sin(ph), 0.0).sum(axis=0)
    s = np.hypot(re, im)[ok] / cnt[ok]
    return float(np.average(s, weights=cnt[ok]))


def _block_coefs(plane: np.ndarray, offset: tuple[int, int], max_blocks: int = 1024) -> np.ndarray | None:
    """Block-DCT coefficients (N x 64, float32) of the grid-aligned part, evenly subsampled."""
    sy, sx = _aligned(plane, *offset)
    x = plane[sy, sx]
    if x.shape[0] < 8 or x.shape[1] < 8:
        return None
    c = block_dct(x)
    hb, wb = x.shape[0] // 8, x.shape[1] // 8
    c = c.reshape(hb, 8, wb, 8).transpose(0, 2, 1, 3).reshape(-1, 64)
    if c.shape[0] > max_blocks:
        c = c[np.linspace(0, c.shape[0] - 1, max_blocks).astype(int)]
    return c.astype(np.float32)


def estimate_quality(plane: np.ndarray, base: np.ndarray, offset: tuple[int, int] = (0, 0)) -> tuple[int, float]:
    """``(quality, score)``: the coarsest IJG quality whose table explains the coefficient lattice.

    ``plane`` is in 0..255 units with the JPEG level shift applied. ``score`` is the weighted
    circular-mean periodicity of the AC coefficients (about 0.1-0.4 for never-compressed images,
    >= 0.8 for JPEGs).
    """
    c = _block_coefs(plane, offset)
    if c is None:
        return 100, 0.0
    scores = np.full(101, -1.0)
    for q in range(1, 101):
        scores[q] = _lattice_score(c, ijg_table(base, q))
    # the coarsest table that fits (finer tables whose steps divide the true ones fit too), then
    # climb to the local maximum (neighbouring qualities share most steps)
    q = int(np.nonzero(scores >= scores.max() - 0.05)[0][0])
    while q < 100 and scores[q + 1] > scores[q]:
        q += 1
    return q, float(scores[q])


def project_qcs(x: np.ndarray, ref: np.ndarray, table: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """Clip the block-DCT coefficients of ``x`` to the quantisation cells of ``ref`` (aligned part)."""
    sy, sx = _aligned(x, *offset)
    out = x.copy()
    if sy.stop - sy.start < 8 or sx.stop - sx.start < 8:
        return out
    cx = block_dct(x[sy, sx])
    cr = block_dct(ref[sy, sx])
    h, w = cx.shape
    tb = np.tile(table, (h // 8, w // 8))
    k = np.round(cr / tb)
    out[sy, sx] = block_idct(np.clip(cx, (k - 0.5) * tb, (k + 0.5) * tb))
    return out


def shifted_requant(x: np.ndarray, table: np.ndarray, step: int = 2) -> np.ndarray:
    """Average over grid shifts of JPEG-style re-quantisation (Nosratinia's translation averaging)."""
    h, w = x.shape
    H, W = -(-h // 8) * 8 + 8, -(-w // 8) * 8 + 8
    pad = np.pad(x, ((8, H - h), (8, W - w)), mode="symmetric")
    acc = np.zeros_like(x)
    shifts = list(itertools.product(range(0, 8, step), range(0, 8, step)))
    for sy, sx in shifts:
        sub = pad[8 - sy : 8 - sy + H, 8 - sx : 8 - sx + W]
        c = block_dct(sub)
        tb = np.tile(table, (H // 8, W // 8))
        r = block_idct(tb * np.round(c / tb))
        acc += r[sy : sy + h, sx : sx + w]
    return acc / len(shifts)


def _down2(c: np.ndarray) -> np.ndarray:
    h, w = c.shape
    return c[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def _inv_fancy(x: np.ndarray) -> np.ndarray:
    """Undo the [1 6 1]/8 blur that libjpeg's fancy upsampling + 2x2 averaging leaves (Jacobi)."""
    c = x.copy()
    for axis in (0, 1):
        target = c.copy()
        for _ in range(8):
            p = np.pad(c, [(1, 1) if a == axis else (0, 0) for a in range(2)], mode="edge")
            lo = p[:-2] if axis == 0 else p[:, :-2]
            hi = p[2:] if axis == 0 else p[:, 2:]
            c = c + (target - (6.0 * c + lo + hi) / 8.0)
    return c


def _up2(c: np.ndarray, h: int, w: int) -> np.ndarray:
    up = cv2.resize(c.astype(np.float32), (c.shape[1] * 2, c.shape[0] * 2), interpolation=cv2.INTER_LINEAR)
    return np.pad(up, ((0, h - up.shape[0]), (0, w - up.shape[1])), mode="edge").astype(np.float64)


class _Jpeg:
    """Decoded planes (0..255, level-shifted), grid offset, estimated quality and tables."""

    def __init__(self, img: Image) -> None:
        ycc = F.rgb_to_ycc(img).astype(np.float64) * 255.0
        self.y = ycc[..., 0] - 128.0
        self.c = [ycc[..., 1], ycc[..., 2]]
        self.offset = (0, 0)
        self.quality, self.score = estimate_quality(self.y, LUMA_TABLE)
        if self.score < _MIN_SCORE:  # a cropped JPEG: look for the shifted grid
            off = grid_offset(self.y)
            if off != (0, 0):
                q, sc = estimate_quality(self.y, LUMA_TABLE, off)
                if sc > self.score:
                    self.offset, self.quality, self.score = off, q, sc
        self.found = self.score >= _MIN_SCORE and min(self.y.shape) >= 8
        self.tl = ijg_table(LUMA_TABLE, self.quality)
        self.tc = ijg_table(CHROMA_TABLE, self.quality)
        # 4:2:0 chroma on the half-resolution lattice (only for an unshifted grid)
        self.half: list[np.ndarray] | None = None
        if self.found and self.offset == (0, 0) and min(self.y.shape) >= 16:
            half = [_inv_fancy(_down2(c)) for c in self.c]
            coefs = _block_coefs(half[0], (0, 0))
            if coefs is not None and _lattice_score(coefs, self.tc) >= _MIN_SCORE:
                self.half = half

    def to_rgb(self, y: np.ndarray, c: list[np.ndarray]) -> Image:
        ycc = np.stack([y + 128.0, c[0], c[1]], axis=2) / 255.0
        return np.ascontiguousarray(np.clip(F.ycc_to_rgb(ycc.astype(np.float32)), 0.0, 1.0), dtype=np.float32)


def _guided_chroma(y: np.ndarray, c: np.ndarray) -> np.ndarray:
    return F.guided_filter(y.astype(np.float32), c.astype(np.float32), 2, 1e-3 * 255.0**2).astype(np.float64)


def _deblock_axis(x: np.ndarray, grid: int, start: int, alpha: float, beta: float, axis: int) -> np.ndarray:
    """Ramp out the block-boundary step across one axis where it is not a real edge."""
    x = np.moveaxis(x, axis, 1).copy()
    n = x.shape[1]
    idx = np.arange(start if start >= 3 else start + grid, n - 2, grid)
    idx = idx[idx >= 3]
    if idx.size == 0:
        return np.moveaxis(x, 1, axis)
    p2, p1, p0, q0, q1, q2 = (x[:, idx + o] for o in (-3, -2, -1, 0, 1, 2))
    step = (q0 - p0) - 0.5 * ((p0 - p1) + (q1 - q0))
    activity = np.maximum(np.abs(p2 - p1) + np.abs(p1 - p0), np.abs(q2 - q1) + np.abs(q1 - q0))
    s = np.clip(1.0 - np.abs(step) / alpha, 0.0, 1.0) * np.clip(1.0 - activity / beta, 0.0, 1.0) * step
    for o, wt in ((-3, 1 / 8), (-2, 2 / 8), (-1, 3 / 8)):
        x[:, idx + o] += s * wt
    for o, wt in ((0, 3 / 8), (1, 2 / 8), (2, 1 / 8)):
        x[:, idx + o] -= s * wt
    return np.moveaxis(x, 1, axis)


def deblock_plane(x: np.ndarray, grid: int, offset: tuple[int, int], alpha: float, beta: float) -> np.ndarray:
    """Grid-aware deblocking of one plane (columns, then rows)."""
    x = _deblock_axis(x, grid, offset[1], alpha, beta, 1)
    return _deblock_axis(x, grid, offset[0], alpha, beta, 0)


def jpeg_deblock(img: Image) -> Image:
    """Grid-aware adaptive deblocking + luma quantisation-constraint projection + guided chroma."""
    img = np.asarray(img, np.float32)
    j = _Jpeg(img)
    if not j.found:
        return img.copy()
    dc = j.tl[0, 0]
    y = deblock_plane(j.y, 8, j.offset, 1.5 * dc, 2.0 * dc)
    y = project_qcs(y, j.y, j.tl, j.offset)
    cgrid = 16 if j.half is not None else 8
    c = [deblock_plane(ch, cgrid, j.offset, 1.5 * j.tc[0, 0], 2.0 * j.tc[0, 0]) for ch in j.c]
    c = [_guided_chroma(y, ch) for ch in c]
    return j.to_rgb(y, c)


def jpeg_dct_qcs(img: Image) -> Image:
    """Shifted-DCT re-quantisation averaging + quantisation-constraint projection (luma and chroma)."""
    img = np.asarray(img, np.float32)
    j = _Jpeg(img)
    if not j.found:
        return img.copy()
    y = project_qcs(shifted_requant(j.y, j.tl), j.y, j.tl, j.offset)
    h, w = y.shape
    if j.half is not None:
        c = []
        for half in j.half:
            r = project_qcs(shifted_requant(half, j.tc), half, j.tc, (0, 0))
            full = _guided_chroma(y, _up2(r, h, w))
            # one more projection of the luma-guided chroma onto the half-resolution constraint set
            hh = _inv_fancy(_down2(full))
            c.append(full + _up2(project_qcs(hh, half, j.tc, (0, 0)) - hh, h, w))
    else:
        c = [_guided_chroma(y, ch) for ch in j.c]
    return j.to_rgb(y, c)


TOOLS: list[Tool] = [
    Tool(
        ToolSpec(
            "jpeg_deblock",
            "jpeg compression artifact removal",
            "JPEG deblocking: grid-aware adaptive boundary ramp + quantisation-constraint projection + guided chroma.",
        ),
        jpeg_deblock,
    ),
    Tool(
        ToolSpec(
            "jpeg_dct_qcs",
            "jpeg compression artifact removal",
            "JPEG artifacts: estimated quantiser, shifted-DCT re-quantisation averaging + constraint projection.",
        ),
        jpeg_dct_qcs,
    ),
]
