"""Shared numeric helpers for the classical restoration tools.

Box/guided filters, noise estimation, PSF models, FFT deconvolution (gradient-regularised Wiener
and half-quadratic TV) on a symmetric-padded, edge-tapered frame whose padding is treated as
unknown (re-filled from the current estimate) against boundary ringing, and blind PSF estimation
by cepstral matched filtering (linear motion: length and angle; defocus: pillbox radius).
All helpers work on float32/float64 arrays of any size, including tiny images.
"""

from __future__ import annotations

import cv2
import numpy as np
import scipy.fft as sfft

_WORKERS = 2


# --------------------------------------------------------------------------- filters


def box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window with symmetric borders, per channel (shape preserved)."""
    r = max(int(r), 0)
    if r == 0:
        return x.copy()
    out = cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)
    return out.reshape(x.shape)


def _guided_coeffs(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Box-averaged linear coefficients ``a, b`` of the guided filter (``q = a * guide + b``)."""
    r = max(1, min(int(r), max(1, min(guide.shape[:2]) // 2 - 1)))
    g = guide[..., None] if src.ndim == 3 else guide
    mean_i = box(g, r)
    var_i = box(g * g, r) - mean_i * mean_i
    mean_p = box(src, r)
    cov_ip = box(g * src, r) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a, r), box(b, r)


def guided_filter(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter (box filters) with a gray guide (HxW) and a HxW or HxWxC source."""
    guide = np.ascontiguousarray(guide, np.float32)
    src = np.ascontiguousarray(src, np.float32)
    a, b = _guided_coeffs(guide, src, r, eps)
    return a * (guide[..., None] if src.ndim == 3 else guide) + b


def fast_guided_filter(guide: np.ndarray, src: np.ndarray, r: int, eps: float, max_side: int = 512) -> np.ndarray:
    """Guided filter with the coefficients computed on a subsampled grid (He & Sun's fast variant)."""
    guide = np.ascontiguousarray(guide, np.float32)
    src = np.ascontiguousarray(src, np.float32)
    h, w = guide.shape[:2]
    s = max(h, w) / float(max_side)
    if s <= 1.0 or r < 4:
        return guided_filter(guide, src, r, eps)
    size = (max(1, round(w / s)), max(1, round(h / s)))
    gs = cv2.resize(guide, size, interpolation=cv2.INTER_AREA)
    ps = cv2.resize(src, size, interpolation=cv2.INTER_AREA).reshape(gs.shape + src.shape[2:])
    a, b = _guided_coeffs(gs, ps, max(1, round(r / s)), eps)
    a = cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR).reshape(src.shape)
    b = cv2.resize(b, (w, h), interpolation=cv2.INTER_LINEAR).reshape(src.shape)
    return a * (guide[..., None] if src.ndim == 3 else guide) + b


def luma64(img: np.ndarray) -> np.ndarray:
    """BT.601 luma as float64."""
    return img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114


# --------------------------------------------------------------------------- PSF models


def motion_psf(length: float, angle: float) -> np.ndarray:
    """Linear motion PSF of ``length`` px at ``angle`` degrees (counter-clockwise as displayed), sum 1.

    A centred row of ones with fractional end weights, rotated with bilinear interpolation (the
    usual antialiased line model).
    """
    length = max(float(length), 1.0)
    size = int(np.ceil(length)) + 2
    size |= 1
    row = np.zeros(size, np.float32)
    c = size // 2
    half = length / 2.0
    xs = np.arange(size) - c
    # coverage of pixel [x-0.5, x+0.5] by the segment [-half, half]
    row[:] = np.clip(np.minimum(xs + 0.5, half) - np.maximum(xs - 0.5, -half), 0.0, 1.0)
    k = np.zeros((size, size), np.float32)
    k[c, :] = row
    rot = cv2.getRotationMatrix2D((float(c), float(c)), float(angle), 1.0)
    k = cv2.warpAffine(k, rot, (size, size), flags=cv2.INTER_LINEAR)
    s = float(k.sum())
    if s <= 1e-8:
        k = np.zeros((1, 1), np.float32)
        k[0, 0] = 1.0
        return k
    return k / s


def disk_psf(radius: float) -> np.ndarray:
    """Antialiased pillbox PSF of the given radius, sum 1."""
    radius = max(float(radius), 0.0)
    r = int(np.ceil(radius + 0.5))
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    k = np.clip(radius + 0.5 - np.sqrt(x * x + y * y), 0.0, 1.0).astype(np.float32)
    return k / float(k.sum())


# --------------------------------------------------------------------------- FFT deconvolution


def _pad_shape(h: int, w: int, m: int) -> tuple[int, int]:
    return sfft.next_fast_len(h + 2 * m, real=True), sfft.next_fast_len(w + 2 * m, real=True)


def _symmetric_pad(img: np.ndarray, m: int, shape: tuple[int, int]) -> np.ndarray:
    """Symmetric-pad by ``m`` then extend (symmetrically) to ``shape`` so the wrap-around is smooth-ish."""
    h, w = img.shape[:2]
    H, W = shape
    top, left = m, m
    bottom, right = H - h - top, W - w - left
    pads = [(top, bottom), (left, right)] + [(0, 0)] * (img.ndim - 2)
    # np.pad 'symmetric' handles pads larger than the array by repeated reflection
    return np.pad(img, pads, mode="symmetric")


def psf2otf(k: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Real-FFT optical transfer function of a centred PSF for an image of ``shape``."""
    kh, kw = k.shape
    big = np.zeros(shape, np.float32)
    big[:kh, :kw] = k
    big = np.roll(big, (-(kh // 2), -(kw // 2)), axis=(0, 1))
    return sfft.rfft2(big, workers=_WORKERS)


def _ramp(n: int, width: float) -> np.ndarray:
    d = np.minimum(np.arange(n), n - 1 - np.arange(n)).astype(np.float32)
    return np.clip(d / max(width, 1.0), 0.0, 1.0)


class _Frame:
    """A symmetric-padded FFT frame around an image, with the PSF's OTF and an interior mask."""

    def __init__(self, img: np.ndarray, k: np.ndarray) -> None:
        img = np.asarray(img, np.float32)
        self.h, self.w = img.shape[:2]
        self.m = m = 2 * max(k.shape) + 8
        self.shape = _pad_shape(self.h, self.w, m)
        self.three = img.ndim == 3
        self.big = _symmetric_pad(img, m, self.shape)
        K = psf2otf(k, self.shape)
        self.K = K[..., None] if self.three else K
        self.K2 = np.abs(self.K) ** 2
        dx = np.array([[0, 0, 0], [-1, 1, 0], [0, 0, 0]], np.float32)  # x[i] - x[i+1]
        fx = psf2otf(dx, self.shape)
        fy = psf2otf(dx.T.copy(), self.shape)
        self.fx = fx[..., None] if self.three else fx
        self.fy = fy[..., None] if self.three else fy
        self.G = np.abs(self.fx) ** 2 + np.abs(self.fy) ** 2
        mask = np.zeros(self.shape, np.float32)
        mask[m : m + self.h, m : m + self.w] = 1.0
        self.mask = mask[..., None] if self.three else mask
        # edge taper of the padded frame: blend towards its circular blur near the frame edge
        H, W = self.shape
        a = np.outer(_ramp(H, 1.5 * max(k.shape)), _ramp(W, 1.5 * max(k.shape)))
        if self.three:
            a = a[..., None]
        self.ext = a * self.big + (1.0 - a) * self.ifft(self.fft(self.big) * self.K)

    def fft(self, x: np.ndarray) -> np.ndarray:
        return sfft.rfft2(x, axes=(0, 1), workers=_WORKERS)

    def ifft(self, X: np.ndarray) -> np.ndarray:
        return sfft.irfft2(X, s=self.shape, axes=(0, 1), workers=_WORKERS).astype(np.float32)

    def fill(self, X: np.ndarray) -> None:
        """Replace the padded (unknown) region by the re-blurred current estimate."""
        self.ext = self.mask * self.big + (1.0 - self.mask) * self.ifft(X * self.K)

    def crop(self, x: np.ndarray) -> np.ndarray:
        m = self.m
        return np.ascontiguousarray(x[m : m + self.h, m : m + self.w], dtype=np.float32)


def wiener_deconv(img: np.ndarray, k: np.ndarray, lam: float, iters: int = 8) -> np.ndarray:
    """Gradient-regularised (Tikhonov) Wiener deconvolution of a HxW or HxWxC image.

    ``X = conj(K) Y / (|K|^2 + lam |grad|^2)`` on a symmetric-padded, edge-tapered frame; the
    padded region is then treated as unknown and refilled with the re-blurred estimate
    ``iters`` times, which removes most boundary ringing.
    """
    f = _Frame(img, k)
    filt = np.conj(f.K) / (f.K2 + lam * f.G + 1e-8)
    X = f.fft(f.ext) * filt
    for _ in range(iters):
        f.fill(X)
        X = f.fft(f.ext) * filt
    return f.crop(f.ifft(X))


def tv_deconv(img: np.ndarray, k: np.ndarray, lam: float, iters: int = 8, t0: float = 0.3) -> np.ndarray:
    """Half-quadratic-splitting TV deconvolution ``min |k*x-y|^2/2 + lam |grad x|_1``.

    Starts from a Wiener estimate; the shrinkage threshold starts at ``t0`` and halves every
    iteration (continuation); unknown boundaries are refilled as in :func:`wiener_deconv`.
    """
    f = _Frame(img, k)
    Kc = np.conj(f.K)
    X = f.fft(f.ext) * Kc / (f.K2 + 10 * lam * f.G + 1e-8)
    x = f.ifft(X)
    beta = lam / t0
    for _ in range(iters):
        f.fill(X)
        gx = x - np.roll(x, -1, axis=1)
        gy = x - np.roll(x, -1, axis=0)
        t = lam / beta
        wx = gx - np.clip(gx, -t, t)  # soft shrinkage
        wy = gy - np.clip(gy, -t, t)
        # adjoint of the forward differences, applied in the spatial domain (one FFT instead of two)
        div = wx - np.roll(wx, 1, axis=1) + wy - np.roll(wy, 1, axis=0)
        X = (Kc * f.fft(f.ext) + beta * f.fft(div)) / (f.K2 + beta * f.G + 1e-8)
        x = f.ifft(X)
        beta *= 2.0
    return f.crop(x)


_RGB2YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
_YCC2RGB = np.linalg.inv(_RGB2YCC).astype(np.float32)


def rgb_to_ycc(img: np.ndarray) -> np.ndarray:
    """Full-range YCbCr (JPEG/BT.601 matrix, no offsets)."""
    return np.asarray(img, np.float32) @ _RGB2YCC.T


def ycc_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycc`."""
    return np.asarray(ycc, np.float32) @ _YCC2RGB.T


def deconv_color(img: np.ndarray, k: np.ndarray, lam: float, method: str = "wiener") -> np.ndarray:
    """Deconvolve an RGB image: luma with ``method`` ('wiener' or 'tv'), chroma with a cheaper,
    more regularised Wiener filter (chroma carries little high-frequency detail)."""
    ycc = rgb_to_ycc(img)
    if method == "tv":
        y = tv_deconv(ycc[..., 0], k, lam)
        c = wiener_deconv(ycc[..., 1:], k, 15.0 * lam, iters=3)
    else:
        y = wiener_deconv(ycc[..., 0], k, lam)
        c = wiener_deconv(ycc[..., 1:], k, 3.0 * lam, iters=3)
    return ycc_to_rgb(np.concatenate([y[..., None], c], axis=2))


# --------------------------------------------------------------------------- blind PSF estimation


def center_crop(y: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` window of a gray image (all of it along a shorter side)."""
    h, w = y.shape
    sh, sw = min(h, size), min(w, size)
    t, l = (h - sh) // 2, (w - sw) // 2
    return y[t : t + sh, l : l + sw]


def _cepstrum(y: np.ndarray) -> np.ndarray:
    """Real cepstrum (unshifted) of a Hann-windowed gray image."""
    h, w = y.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    mag = np.abs(sfft.rfft2((y - y.mean()) * win, workers=_WORKERS))
    return sfft.irfft2(np.log(mag + 1e-3 * mag.mean() + 1e-12), s=(h, w), workers=_WORKERS)


class CepstrumMatcher:
    """Normalised correlation between an image cepstrum and the cepstra of candidate PSFs.

    ``log|Y| = log|X| + log|K|``: a PSF leaves its own cepstrum in the image's; the natural-image
    part is concentrated near the origin, which the annulus ``r >= r_min`` excludes.
    """

    def __init__(self, y: np.ndarray, r_min: float = 2.5, delta: float = 0.03) -> None:
        self.cy = _cepstrum(y)
        h, w = self.cy.shape
        yy = np.fft.fftfreq(h)[:, None] * h
        xx = np.fft.fftfreq(w)[None, :] * w
        self.r = np.hypot(yy, xx)
        self.r_min = r_min
        self.delta = delta
        self._masks: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def motion(self, length: float, angle: float) -> float:
        """Match of a linear-motion PSF (annulus out to ``2.5 * length + 5`` px)."""
        return self(motion_psf(length, angle), 2.5 * length + 5.0)

    def _mask(self, r_max: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.cy.shape
        key = int(np.ceil(min(r_max, min(h, w) / 2.0 - 1.0)))
        if key not in self._masks:
            idx = np.flatnonzero((self.r >= self.r_min) & (self.r <= key))
            cv = self.cy.ravel()[idx]
            cv = cv - cv.mean() if cv.size else cv
            self._masks[key] = (idx, cv / (np.linalg.norm(cv) + 1e-12))
        return self._masks[key]

    def __call__(self, k: np.ndarray, r_max: float) -> float:
        idx, cv = self._mask(r_max)
        if cv.size < 8:
            return 0.0
        h, w = self.cy.shape
        K = np.abs(sfft.rfft2(k.astype(np.float32), s=(h, w), workers=_WORKERS))
        ck = sfft.irfft2(np.log(K + np.float32(self.delta)), s=(h, w), workers=_WORKERS).ravel()[idx]
        ck = ck - ck.mean()
        return float(np.dot(cv, ck) / (np.linalg.norm(ck) + 1e-12))


def estimate_motion_psf(
    y: np.ndarray, max_len: int = 64, crop: int = 512, refine: bool = True
) -> tuple[float, float, float, float]:
    """Blind linear-motion estimate ``(length, angle_deg, peak_z, match)``.

    A box blur of length L along direction d puts a strong negative cepstral peak at +-L d: the
    deepest cepstral minimum (outside r < 2.5) gives a first (integer) estimate and ``peak_z``, its
    depth in robust standard deviations. Length then angle are refined (0.1 px, 0.25 deg) by
    matching the cepstrum of the model PSF to the image cepstrum; ``match`` is that normalised
    correlation (about 0.1 on sharp photos, 0.4-0.95 on motion-blurred ones). With
    ``refine=False`` only the integer cepstral estimate is returned (``match`` = 0).
    """
    y = center_crop(np.asarray(y, np.float64), crop)
    h, w = y.shape
    if min(h, w) < 32:
        return 0.0, 0.0, 0.0, 0.0
    c = np.fft.fftshift(_cepstrum(y))
    cy, cx = h // 2, w // 2
    R = min(max_len, min(h, w) // 3)
    yy, xx = np.mgrid[-cy : h - cy, -cx : w - cx]
    r = np.hypot(yy, xx)
    ann = (r >= 2.5) & (r <= R)
    half = ann & ((yy < 0) | ((yy == 0) & (xx > 0)))
    idx = int(np.argmin(np.where(half, c, np.inf)))
    py, px = np.unravel_index(idx, c.shape)
    sample = c[ann]
    med = float(np.median(sample))
    mad = float(np.median(np.abs(sample - med))) * 1.4826 + 1e-12
    peak_z = (med - float(c[py, px])) / mad
    dy, dx = float(py - cy), float(px - cx)
    length0 = float(np.hypot(dx, dy))
    angle0 = float(np.degrees(np.arctan2(-dy, dx)) % 180.0)
    if not refine:
        return length0, angle0, float(peak_z), 0.0
    # matched-filter refinement on a smaller crop
    match = CepstrumMatcher(center_crop(y, 256 if length0 < 40 else 384))
    best = (-np.inf, length0, angle0)
    for length in np.arange(max(length0 - 1.2, 1.5), length0 + 1.21, 0.1):
        s = match.motion(float(length), angle0)
        if s > best[0]:
            best = (s, float(length), angle0)
    for angle in np.arange(angle0 - 2.0, angle0 + 2.01, 0.25):
        s = match.motion(best[1], float(angle))
        if s > best[0]:
            best = (s, best[1], float(angle))
    return best[1], best[2] % 180.0, float(peak_z), float(best[0])


def estimate_disk_radius(y: np.ndarray, r_max: float = 12.0, crop: int = 256) -> tuple[float, float]:
    """Blind defocus (pillbox) radius ``(radius, match)`` by cepstral matched filtering.

    Coarse search over radii 0.5..r_max (0.25 px) then 0.05 px around the best; ``match`` is the
    normalised correlation (about 0.2-0.35 on sharp photos, 0.7-0.9 on disk-blurred ones).
    """
    y = center_crop(np.asarray(y, np.float64), crop)
    if min(y.shape) < 32:
        return 0.0, 0.0
    match = CepstrumMatcher(y)

    def score(rad: float) -> float:
        return match(disk_psf(rad), 4.0 * rad + 6.0)

    best = max((score(float(r)), float(r)) for r in np.arange(0.5, r_max + 1e-6, 0.25))
    fine = max((score(float(r)), float(r)) for r in np.arange(best[1] - 0.2, best[1] + 0.21, 0.05) if r > 0.3)
    if fine[0] > best[0]:
        best = fine
    return best[1], best[0]
