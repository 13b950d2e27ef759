"""Low-level, weight-free image measurements used by the degradation detectors.

All functions take the internal image type (float32 HxWx3 RGB in [0, 1]) or a float32 gray plane.
Pixel-level measures (noise, JPEG) sample native-resolution crops; the others work on a bounded view.
"""

from __future__ import annotations

import cv2
import numpy as np

from fourkagent.imaging import luma


def crops(plane: np.ndarray, size: int, count: int, align: int = 1) -> list[np.ndarray]:
    """Up to ``count`` deterministic, evenly spread ``size``x``size`` crops (whole plane if small)."""
    h, w = plane.shape[:2]
    if h * w <= size * size * count:
        return [plane]
    n = int(np.ceil(np.sqrt(count)))
    ys = np.linspace(0, h - size, n).astype(int) // align * align
    xs = np.linspace(0, w - size, n).astype(int) // align * align
    out = [plane[y : y + size, x : x + size] for y in ys for x in xs]
    return out[:count] if len(out) > count else out


def bounded(img: np.ndarray, max_side: int = 1024) -> np.ndarray:
    """Central crop of at most ``max_side`` per side (keeps pixel scale)."""
    h, w = img.shape[:2]
    y0, x0 = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
    return img[y0 : y0 + max_side, x0 : x0 + max_side]


# ----------------------------------------------------------------------------------------- noise


def _pca_sigma(patches: np.ndarray) -> float:
    """Noise std from patch-covariance eigenvalues (Chen, Zhu & Heng, ICCV 2015)."""
    x = patches - patches.mean(axis=0, keepdims=True)
    cov = (x.T @ x) / max(1, x.shape[0] - 1)
    eig = np.sort(np.linalg.eigvalsh(cov.astype(np.float64)))[::-1]
    eig = np.maximum(eig, 0.0)
    for i in range(eig.size):
        tail = eig[i:]
        tau = tail.mean()
        if np.sum(tail > tau) >= np.sum(tail < tau):
            return float(np.sqrt(tau))
    return float(np.sqrt(eig[-1]))


def noise_sigma(img: np.ndarray, patch: int = 7, max_patches: int = 30000, seed: int = 0) -> float:
    """Additive white noise std in 0-255 units, from unclipped patches of native-resolution crops.

    ``img`` is an RGB image (every channel sampled) or a single plane.
    """
    if min(img.shape[:2]) < 2 * patch:
        return 0.0
    rng = np.random.default_rng(seed)
    dy, dx = np.divmod(np.arange(patch * patch), patch)
    samples = []
    planes = 1 if img.ndim == 2 else img.shape[2]
    for c in crops(img, 256, 9):
        wy, wx = c.shape[0] - patch + 1, c.shape[1] - patch + 1
        k = min(wy * wx, max_patches // (9 * planes) + 1)
        iy, ix = np.divmod(rng.choice(wy * wx, size=k, replace=False), wx)
        c = c.reshape(c.shape[0], c.shape[1], planes)
        for ch in range(planes):
            samples.append(c[iy[:, None] + dy, ix[:, None] + dx, ch])
    x = np.concatenate(samples).astype(np.float64)
    lo, hi = x.min(axis=1), x.max(axis=1)
    ok = (lo > 0.5 / 255.0) & (hi < 254.5 / 255.0)
    sigma = _pca_sigma(x[ok] if ok.sum() >= 2000 else x)
    mean = x.mean(axis=1)
    for _ in range(2):  # drop patches whose noise is likely clipped at 0 or 1, then re-estimate
        ok = (mean > 2.5 * sigma) & (mean < 1.0 - 2.5 * sigma)
        if ok.sum() < 400:
            break
        sigma = _pca_sigma(x[ok])
    return 255.0 * sigma


def deblock(gray: np.ndarray, quality: float) -> np.ndarray:
    """Luma plane (0-1) with the 8x8 JPEG block edges ramped out (strength from the estimated quality)."""
    from fourkagent.tools.classical.jpeg import deblock_plane

    q = float(np.clip(quality, 1.0, 100.0))
    dc = 16.0 * (50.0 / q if q < 50.0 else 2.0 - q / 50.0)  # libjpeg's DC quantisation step at this quality
    dc = max(dc, 1.0)
    return (deblock_plane(gray.astype(np.float64) * 255.0, 8, (0, 0), 1.5 * dc, 2.0 * dc) / 255.0).astype(np.float32)


def jpeg_noise_sigma(img: np.ndarray, quality: float) -> float:
    """Noise std (0-255, per RGB channel) that survived JPEG at ``quality``, from its DCT coefficients.

    Quantisation removes most of the noise's high frequencies (patch-PCA then sees little), but it leaves
    a Gaussian count of non-zero coefficients wherever the step is near the noise level: in the flattest
    blocks (chosen on the odd (u+v) positions), the non-zero rate p at each even position with step Q gives
    sigma = Q / (2 Phi^-1(1 - p/2)). Content is heavy-tailed, so its estimates fall with Q; when the coarse
    steps read much lower than the fine ones the blocks are texture and 0 is returned (no verdict).
    """
    from statistics import NormalDist

    from fourkagent.tools.classical.jpeg import LUMA_TABLE, ijg_table

    y = luma(img).astype(np.float64) * 255.0
    blocks = []
    for c in crops(y, 256, 9, align=8):
        h, w = (c.shape[0] // 8) * 8, (c.shape[1] // 8) * 8
        blocks.append(c[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8))
    b = np.concatenate(blocks) if blocks else np.zeros((0, 8, 8))
    b = b[(b.min(axis=(1, 2)) > 2.0) & (b.max(axis=(1, 2)) < 253.0)]  # clipped blocks lose noise
    if len(b) < 64:
        return 0.0
    table = ijg_table(LUMA_TABLE, int(round(quality)))
    nonzero = np.abs(_DCT8 @ (b - 128.0) @ _DCT8.T) >= 0.5 * table
    parity = np.add.outer(np.arange(8), np.arange(8))
    count = nonzero[:, parity % 2 == 1].sum(axis=1)
    p = nonzero[count <= np.percentile(count, 25)].mean(axis=0)
    est = sorted(
        (table[u, v], table[u, v] / (2.0 * NormalDist().inv_cdf(1.0 - p[u, v] / 2.0)))
        for u in range(8) for v in range(8)
        if parity[u, v] % 2 == 0 and parity[u, v] > 0 and 0.02 <= p[u, v] <= 0.95
    )
    if len(est) < 4:
        return 0.0
    sig = np.array([e for _, e in est])
    half = len(sig) // 2
    if np.median(sig[:half]) > 1.4 * np.median(sig[half:]):
        return 0.0
    return float(np.median(sig[half:]) / 0.67)  # luma noise of independent RGB noise is 0.67 sigma


# ------------------------------------------------------------------------------------ brightness


def brightness(img: np.ndarray) -> dict[str, float]:
    """Luminance statistics; the bright end is read on a 4x area-reduced copy (noise-robust)."""
    y = luma(img)
    ys = cv2.resize(y, (max(1, y.shape[1] // 4), max(1, y.shape[0] // 4)), interpolation=cv2.INTER_AREA)
    sub = y[:: max(1, y.shape[0] // 512), :: max(1, y.shape[1] // 512)]
    return {
        "mean_luminance": float(sub.mean()),
        "median_luminance": float(np.median(sub)),
        "p90_luminance": float(np.percentile(ys, 90)),
        "bright_luminance": float(np.percentile(ys, 99.5)),
    }


# ------------------------------------------------------------------------------------------ JPEG

_DCT8 = np.array(
    [[(np.sqrt(0.125) if k == 0 else 0.5) * np.cos(np.pi * (2 * n + 1) * k / 16) for n in range(8)] for k in range(8)]
)
# libjpeg's standard luminance table entries for DC, AC(0,1) and AC(1,0)
_STD_Q = {(0, 0): 16.0, (0, 1): 11.0, (1, 0): 12.0}


def _quality_from_step(step: float, base: float) -> float:
    """Invert libjpeg's quality scaling for a table entry ``base`` quantised to ``step``."""
    scale = (100.0 * step - 50.0) / base  # percent
    scale = max(scale, 1.0)
    return float(np.clip(100.0 - scale / 2.0 if scale <= 100.0 else 5000.0 / scale, 1.0, 100.0))


def _step(c: np.ndarray, qmax: int = 160) -> tuple[float, float]:
    """Largest quantisation step q in 2..qmax whose lattice fits the coefficients ``c``; (q, fit)."""
    best, fit = 0.0, 0.0
    for q in range(2, qmax + 1):
        sel = c[np.abs(c) >= 0.6 * q]
        if sel.size < 40:
            break
        s = float(np.mean(np.cos(2 * np.pi * sel / q)))
        if s > 0.6:
            best, fit = float(q), s
    return best, fit


def jpeg_measures(img: np.ndarray) -> dict[str, float]:
    """8x8 blockiness and the JPEG quality implied by the luminance quantisation steps (0 = none found)."""
    y255 = luma(img).astype(np.float64) * 255.0
    if min(y255.shape) < 24:
        return {"blockiness": 1.0, "jpeg_quality_est": 0.0, "quant_fit": 0.0}
    blocks = []
    block_ratio = []
    for c in crops(y255, 256, 9, align=8):
        h, w = (c.shape[0] // 8) * 8, (c.shape[1] // 8) * 8
        c = c[:h, :w]
        # blockiness: mean |step| across the 8-px grid vs inside blocks, both directions
        for d in (np.abs(np.diff(c, axis=1)), np.abs(np.diff(c, axis=0)).T):
            phase = np.array([d[:, p::8].mean() for p in range(8)])
            # a grid of period 8 only: pixel-doubled or 4x-upscaled content also steps at phase 7
            ref = max(float(np.median(phase[:7])), float(phase[[1, 3, 5]].max()))
            block_ratio.append((phase[7] + 0.5) / (ref + 0.5))
        b = c.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
        keep = (b.min(axis=(1, 2)) > 0.5) & (b.max(axis=(1, 2)) < 254.5)
        blocks.append(b[keep])
    b = np.concatenate(blocks) if blocks else np.zeros((0, 8, 8))
    out = {"blockiness": float(np.median(block_ratio)) if block_ratio else 1.0}
    qualities, fits = [], []
    if len(b) > 2500:
        b = b[np.random.default_rng(0).choice(len(b), 2500, replace=False)]
    if len(b) >= 64:
        d2 = _DCT8[:2]
        coef = d2 @ (b - 128.0) @ d2.T  # only the (0,0), (0,1), (1,0) coefficients are needed
        for (u, v), base in _STD_Q.items():
            q, fit = _step(coef[:, u, v])
            if q > 0:
                qualities.append(_quality_from_step(q, base))
                fits.append(fit)
    found = len(qualities) >= 2
    out["jpeg_quality_est"] = float(np.median(qualities)) if found else 0.0
    out["quant_fit"] = float(np.mean(fits)) if found else 0.0
    return out


def small(img: np.ndarray, side: int = 256) -> np.ndarray:
    """Area-downscaled copy whose longer side is at most ``side``."""
    h, w = img.shape[:2]
    f = side / max(h, w)
    if f >= 1.0:
        return img
    return cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def haze_measures(img: np.ndarray) -> dict[str, float]:
    """Dark-channel statistics (He et al.) relative to the estimated airlight, and global contrast."""
    s = small(img, 256)
    k = max(3, (min(s.shape[:2]) // 32) | 1)
    dc = cv2.erode(s.min(axis=2), cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    flat = dc.ravel()
    top = np.argsort(flat)[-max(1, flat.size // 1000) :]
    airlight = float(s.reshape(-1, 3)[top].mean())
    y = luma(s)
    c = small(s, 64)  # colourfulness on a coarse copy: sensor noise must not make a grey image colourful
    return {
        "dark_channel": float(np.median(dc) / max(airlight, 1e-3)),
        "dark_channel_p10": float(np.percentile(dc, 10) / max(airlight, 1e-3)),
        "dark_channel_p2": float(np.percentile(dc, 2) / max(airlight, 1e-3)),
        "airlight": airlight,
        "contrast": float(y.std() / max(y.mean(), 1e-3)),
        "saturation": float(np.mean(c.max(axis=2) - c.min(axis=2)) / max(float(c.max(axis=2).mean()), 1e-3)),
    }


def haze_robust(img: np.ndarray, airlight: float) -> dict[str, float]:
    """Noise-robust dark-channel statistics relative to ``airlight`` (from :func:`haze_measures`).

    ``dark_channel_smooth`` / ``_smooth_p10``: the dark channel of a Gaussian-smoothed copy (sensor noise
    puts random minima in every patch and pulls the plain dark channel down, hiding haze under noise).
    ``dark_channel_textured``: the dark-channel level (5th percentile of the smoothed per-pixel minimum) of the
    most textured quarter of 16-px blocks: the prior that haze-free content has dark pixels holds where there
    is structure, not on bright flat backgrounds (sky, pale stained tissue, paper), which lift the plain
    median on pale photos that carry no haze.
    """
    s = small(img, 256)
    g = cv2.GaussianBlur(s, (0, 0), 1.5)
    mn = g.min(axis=2)
    k = max(3, (min(s.shape[:2]) // 32) | 1)
    dc = cv2.erode(mn, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    a = max(airlight, 1e-3)
    out = {"dark_channel_smooth": float(np.median(dc) / a), "dark_channel_smooth_p10": float(np.percentile(dc, 10) / a)}
    b = 16 if min(s.shape[:2]) >= 64 else 8
    h, w = (s.shape[0] // b) * b, (s.shape[1] // b) * b
    if h == 0 or w == 0:
        return out | {"dark_channel_textured": out["dark_channel_smooth"]}

    def blocks(plane: np.ndarray) -> np.ndarray:
        return plane[:h, :w].reshape(h // b, b, w // b, b).transpose(0, 2, 1, 3).reshape(-1, b * b)

    con = blocks(luma(g)).std(axis=1)
    top = con >= np.percentile(con, 75)
    out["dark_channel_textured"] = float(np.median(np.percentile(blocks(mn)[top], 5, axis=1)) / a)
    return out


_LINES: dict[int, list[np.ndarray]] = {}


def _line_kernels(length: int = 15, n_ang: int = 12) -> list[np.ndarray]:
    if length not in _LINES:
        ks = []
        for i in range(n_ang):
            k = np.zeros((length, length), np.float32)
            k[length // 2, :] = 1.0
            rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), i * 180.0 / n_ang, 1.0)
            k = cv2.warpAffine(k, rot, (length, length), flags=cv2.INTER_LINEAR)
            ks.append(k / k.sum())
        _LINES[length] = ks
    return _LINES[length]


def streak_measures(img: np.ndarray, noise: float) -> dict[str, float]:
    """Thin bright streaks with one common orientation (rain): oriented line-filter energy of the top-hat.

    Measured on a native-resolution crop, normalised by the 99th luminance percentile (exposure-free).
    """
    y = luma(bounded(img, 384))
    y = y / max(float(np.percentile(y, 99)), 0.15)
    th = y - cv2.morphologyEx(y, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    resp = np.stack([cv2.filter2D(th, -1, k, borderType=cv2.BORDER_REFLECT) for k in _line_kernels()])
    e = (resp**2).mean(axis=(1, 2))
    best = int(np.argmax(e))
    perp = (best + 6) % 12
    excess = resp[best] - np.maximum(resp[perp], np.maximum(resp[(best + 3) % 12], resp[(best + 9) % 12]))
    return {
        "streak_energy": float(np.sqrt(max(e[best] - np.median(e), 0.0))),
        "streak_coverage": float(np.mean(excess > 0.15)),
        "streak_coverage2": float(np.mean(excess > 0.25)),
        "streak_angle": float(best * 15.0),
    }


# ---------------------------------------------------------------------------------- rain-free view


def streak_free(gray: np.ndarray, angle: float, noise: float) -> np.ndarray:
    """``gray`` with thin bright streaks along ``angle`` (degrees, rain) replaced by its morphological opening.

    A pixel is a streak pixel where the top-hat's line-filter response along ``angle`` exceeds the one across
    it by more than max(3 % of the 99th percentile, half the noise sigma (0-255)); the mask is dilated by one
    pixel. Blur measured on the result sees the scene, not the streaks added over it.
    """
    op = cv2.morphologyEx(gray, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    th = gray - op
    ks = _line_kernels()
    i = int(round(angle / 15.0)) % len(ks)
    along = cv2.filter2D(th, -1, ks[i], borderType=cv2.BORDER_REFLECT)
    across = cv2.filter2D(th, -1, ks[(i + 6) % len(ks)], borderType=cv2.BORDER_REFLECT)
    thr = max(0.03 * float(np.percentile(gray, 99)), 0.5 * noise / 255.0)
    mask = cv2.dilate((along - across > thr).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return np.where(mask, op, gray)
