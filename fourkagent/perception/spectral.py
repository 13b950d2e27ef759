"""Spectral blur analysis for the detectors: power spectrum, cepstrum, blur shape, resampling period."""

from __future__ import annotations

import cv2
import numpy as np

from fourkagent.perception.measures import crops

_HANN: dict[int, np.ndarray] = {}
_STRIP_HALF = 30.0  # degrees around the rain streaks' own spectral direction left out
_RAY_FROM = 5  # shortest motion length (px) the cepstral ray is searched at
_RELIABLE = 1.5  # a radial bin is content while its power exceeds this multiple of the noise floor


def power_spectrum(gray: np.ndarray, noise: float, size: int = 256, count: int = 6) -> tuple[np.ndarray, float, int]:
    """Welch power spectrum (Hann window) of native-resolution crops; also the white-noise power per bin."""
    n = min(size, gray.shape[0], gray.shape[1])
    n -= n % 2
    if n not in _HANN:
        _HANN[n] = np.outer(np.hanning(n), np.hanning(n)).astype(np.float32)
    win = _HANN[n]
    p = np.zeros((n, n), np.float64)
    cs = crops(gray, n, count)
    if len(cs) == 1:  # small image: overlapping corner + centre crops
        h, w = gray.shape
        pos = {(0, 0), (h - n, 0), (0, w - n), (h - n, w - n), ((h - n) // 2, (w - n) // 2)}
        cs = [gray[y : y + n, x : x + n] for y, x in pos]
    for c in cs:
        c = c[:n, :n]
        p += np.abs(np.fft.fft2((c - c.mean()) * win)) ** 2
    p /= len(cs)
    pn = (noise / 255.0) ** 2 * float((win**2).sum())
    return p, pn, n


def cepstrum(p: np.ndarray, pn: float, jpeg_grid: bool = False, strip: float | None = None) -> np.ndarray:
    """Real cepstrum of the noise-compensated power spectrum, centred (fftshift).

    With ``jpeg_grid`` the spectral lines of the 8x8 block grid (k/8 cycles/px) are first replaced by
    the mean of their neighbours so that the grid does not imprint a lattice on the cepstrum. With
    ``strip`` (rain streak orientation, degrees) the streaks' own spectral wedge takes, per radius, the
    mean log power of the other directions.
    """
    if jpeg_grid:
        n = p.shape[0]
        p = p.copy()
        for k in range(1, 8):
            c = round(k * n / 8)
            for axis in (0, 1):
                for i in (c - 1, c, c + 1):
                    lo, hi = np.take(p, (i - 3) % n, axis=axis), np.take(p, (i + 3) % n, axis=axis)
                    idx = [slice(None)] * 2
                    idx[axis] = i % n
                    p[tuple(idx)] = 0.5 * (lo + hi)
    ps = np.maximum(p - pn, 0.0) + 0.25 * pn + 1e-12 * p.max() + 1e-24
    logp = np.log(ps)
    if strip is not None:
        n = p.shape[0]
        f = np.fft.fftfreq(n)
        fy, fx = np.meshgrid(f, f, indexing="ij")
        wedge = np.abs((np.degrees(np.arctan2(-fy, fx)) - strip) % 180.0 - 90.0) <= _STRIP_HALF
        r = np.rint(np.hypot(fx, fy) * n).astype(int)
        keep = ~wedge
        mean = np.bincount(r[keep], logp[keep], minlength=r.max() + 1) / np.maximum(
            np.bincount(r[keep], minlength=r.max() + 1), 1)
        logp = np.where(wedge, mean[r], logp)
    return np.fft.fftshift(np.real(np.fft.ifft2(logp)))


def _polar(c: np.ndarray, rmax: int, n_ang: int = 90) -> np.ndarray:
    """Sample a centred map on a (angle, radius) grid: angles over [0, 180) degrees, radii 0..rmax-1."""
    n = c.shape[0]
    th = np.arange(n_ang) * np.pi / n_ang
    r = np.arange(rmax, dtype=np.float64)
    mx = (n // 2 + np.cos(th)[:, None] * r[None, :]).astype(np.float32)
    my = (n // 2 - np.sin(th)[:, None] * r[None, :]).astype(np.float32)
    return cv2.remap(c.astype(np.float32), mx, my, cv2.INTER_LINEAR)


def _content_mask(fx: np.ndarray, fy: np.ndarray, jpeg_grid: bool, strip: float | None, grid_width: float) -> np.ndarray:
    """Frequencies that carry scene content: off the 8x8 block grid's harmonics at k/8 cycles/px (within
    ``grid_width``) when ``jpeg_grid``, and outside the wedge across rain streaks at ``strip`` degrees."""
    valid = np.ones(fx.shape, bool)
    if jpeg_grid:
        for k in range(1, 5):
            valid &= (np.abs(np.abs(fx) - k / 8) > grid_width) & (np.abs(np.abs(fy) - k / 8) > grid_width)
    if strip is not None:
        ang = np.degrees(np.arctan2(-fy, fx)) % 180.0  # y up, like the cepstral ray angle
        valid &= np.abs((ang - strip) % 180.0 - 90.0) > _STRIP_HALF
    return valid


def spectral_blur(p: np.ndarray, pn: float, n: int, jpeg_grid: bool = False,
                  wedge: float | None = None, strip: float | None = None) -> dict[str, float]:
    """Cut-off frequencies of the whitened (f^2-weighted) noise-free spectrum, overall and per 15-degree sector.

    ``strip``: the orientation (degrees) of rain streaks; the +-30 degree wedge of frequency directions
    across them, where thin streaks put their energy, is left out. Sectors without a cut-off before the
    noise floor read NaN (unknown), the overall cut-off then 0.5.
    """
    f = np.fft.fftfreq(n)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    rad = np.hypot(fx, fy)
    ps = np.maximum(p - pn, 0.0) * rad**2
    valid = (rad > 0) & _content_mask(fx, fy, jpeg_grid, strip, 1.5 / n)
    edges = np.linspace(0.0, 0.5, 41)
    ang = np.degrees(np.arctan2(-fy, fx)) % 180.0  # y up, like the cepstral ray angle
    rb = np.clip(np.digitize(rad, edges) - 1, 0, 39)
    sb = (ang // 15).astype(int) % 12

    def profile(mask: np.ndarray, values: np.ndarray = ps) -> np.ndarray:
        """Mean of ``values`` per radial bin (NaN where the mask has no bin)."""
        den = np.bincount(rb[mask], minlength=40)
        return np.where(den > 0, np.bincount(rb[mask], values[mask], minlength=40) / np.maximum(den, 1), np.nan)

    praw = profile(valid, p)
    reliable = ~(praw <= _RELIABLE * pn)  # signal above the white-noise floor (NaN: no bin, no verdict)
    last = 40 if reliable.all() else max(int(np.argmin(reliable)), 4)

    def cutoff(mask: np.ndarray, unknown: float = 0.5) -> float:
        prof = profile(mask)
        band = prof[1:5]  # reference band 0.0125 - 0.0625 cycles/px
        if np.isnan(band).all():
            return unknown
        rel = prof / (float(np.nanmean(band)) + 1e-20)
        prev = rel[3]
        for i in range(4, last):
            if np.isnan(rel[i]):
                continue
            if rel[i] < 0.1:
                lo = max(prev, 0.1) if not np.isnan(prev) else 0.1
                t = float(np.clip((lo - 0.1) / max(lo - rel[i], 1e-12), 0.0, 1.0))
                return float(edges[i - 1] + 0.0125 * (0.5 + t))
            prev = rel[i]
        return 0.5 if last >= 40 else unknown  # no cut-off at all (sharp), or none before the noise floor

    if wedge is not None:  # narrow (+-4 degree) wedge around one frequency direction
        d = np.abs((ang - wedge + 90.0) % 180.0 - 90.0)
        return {"cutoff": cutoff(valid & (d <= 4.0))}
    return {
        "cutoff": cutoff(valid),
        "noise_limit": float(edges[last]) if last < 40 else 0.5,
        "sector_cutoff": np.array([cutoff(valid & (sb == s), np.nan) for s in range(12)]),
    }


def _peak(y: np.ndarray) -> float:
    """Sub-sample position of the maximum of ``y`` (parabola through the peak and its neighbours)."""
    k = int(np.argmax(y))
    if 0 < k < y.size - 1:
        den = y[k - 1] - 2.0 * y[k] + y[k + 1]
        if den < 0:
            return k + float(np.clip(0.5 * (y[k - 1] - y[k + 1]) / den, -0.5, 0.5))
    return float(k)


def cepstral_shape(cep: np.ndarray, rmax: int = 48, exclude: float | None = None) -> dict[str, float]:
    """Ray (motion), ring (defocus) and axis-cross (separable resampling) strengths of cepstral dips.

    ``exclude``: an orientation (degrees, e.g. of rain streaks) whose +-30 degrees cannot hold the ray.
    """
    q = -_polar(cep, rmax)[:, 3:]  # dips of the cepstrum are positive here; skip the centre
    scale = 1.4826 * np.median(np.abs(q - np.median(q))) + 1e-9
    ray = q[:, _RAY_FROM - 3 :].max(axis=1) / scale  # shorter rays are texture, grids and streak ends
    allowed = np.ones(90, bool)
    if exclude is not None:
        allowed = np.abs((np.arange(90) * 2.0 - exclude + 90.0) % 180.0 - 90.0) > 30.0
    best = int(np.argmax(np.where(allowed, ray, -np.inf)))
    dist = np.minimum(np.abs(np.arange(90) - best), 90 - np.abs(np.arange(90) - best))
    other = ray[(dist >= 10) & allowed].max()
    med = np.median(q, axis=0)
    ring = med / scale
    # separable resampling (bicubic up-scaling) puts its cepstral energy on the two image axes
    aq = np.abs(q - med)
    axis = float(0.5 * (aq[[89, 0, 1]].max(axis=0) + aq[44:47].max(axis=0)).mean() / (np.median(aq, axis=0).mean() + 1e-9))
    return {
        "ray_z": float(ray[best]),
        "ray_excess": float(ray[best] - other),
        "ray_angle": float(best * 2.0),
        "ray_radius": float(_RAY_FROM + int(np.argmax(q[best, _RAY_FROM - 3 :]))),
        "ring_z": float(ring.max()),
        "ring_radius": float(3 + _peak(ring)),
        # the strongest ring at a diameter >= 8 px (a medium or stronger defocus)
        "wide_ring_z": float(ring[5:].max()),
        "wide_ring_radius": float(8 + _peak(ring[5:])),
        "axis_z": axis,
        "offaxis_z": float(np.median(ray)),
    }


# ------------------------------------------------------------------------------------- haze/rain


def resampling_period(gray: np.ndarray) -> dict[str, float]:
    """Periodic second-difference energy left by integer-factor interpolation (up-scaled content).

    For each axis, |second difference| is averaged per pixel phase modulo f (f = 2..6); the strength is
    the spread of the phase means relative to their mean. An 8x8 JPEG grid is a single-phase spike
    modulo 8 and does not repeat with period 2 or 4, so periods must repeat inside the 8-profile
    (period 8 itself is left out: it cannot be told from a JPEG grid).
    """
    out = {}
    best_f, best_s = 0, 0.0
    if min(gray.shape) < 24:
        return {"resample_period": 0.0, "resample_strength": 0.0}
    for axis in (1, 0):
        d = np.abs(np.diff(gray.astype(np.float32), n=2, axis=axis)).mean(axis=1 - axis)
        m = float(d.mean()) + 1e-6
        s8 = np.array([d[k::8].mean() for k in range(8)])
        scores = {}
        for f in range(2, 7):
            prof = np.array([d[k::f].mean() for k in range(f)])
            s = (prof.max() - prof.min()) / m
            if f in (2, 4):  # must repeat inside the modulo-8 profile (a JPEG grid does not)
                rep = np.abs(s8 - np.roll(s8, f)).max() / m
                s = max(0.0, s - rep)
            scores[f] = s
        out[axis] = scores
    for f in range(2, 7):
        s = min(out[0][f], out[1][f])
        if s > best_s * 1.3:
            best_f, best_s = f, s
    return {"resample_period": float(best_f), "resample_strength": float(best_s)}


def _tiles(gray: np.ndarray, n: int, max_tiles: int) -> np.ndarray:
    """Up to ``max_tiles`` half-overlapping ``n``² tiles spread evenly over ``gray``, each minus its mean (float64)."""
    h, w = gray.shape
    step = n // 2
    pos = [(y, x) for y in range(0, h - n + 1, step) for x in range(0, w - n + 1, step)]
    pos = [pos[i] for i in np.unique(np.linspace(0, len(pos) - 1, min(max_tiles, len(pos))).astype(int))]
    tiles = np.stack([gray[y : y + n, x : x + n] for y, x in pos]).astype(np.float64)
    return tiles - tiles.mean(axis=(1, 2), keepdims=True)


def robust_cutoff(gray: np.ndarray, jpeg_grid: bool = False, strip: float | None = None,
                  size: int = 128, max_tiles: int = 64) -> dict[str, float]:
    """Noise-robust isotropic cut-off: the whitened spectrum averaged over many half-overlapping tiles.

    The white-noise floor is read from the spectrum itself (median power at 0.42-0.5 cycles/px, where blurred
    or up-scaled content has none) and subtracted; averaging ~50 tiles makes the content power measurable well
    below that floor, so the cut-off (whitened power down to 10 % of the 0.008-0.031 cycles/px band) stays
    put under strong noise, where :func:`spectral_blur` (5 large tiles, floor from the patch-PCA sigma) only
    sees the noise. ``robust_limited`` = 1 when the content vanished into the floor before that 10 % point
    (the cut-off is then an upper bound). ``jpeg_grid`` / ``strip`` exclude the 8x8 grid lines / the rain
    streaks' wedge as in :func:`spectral_blur`.
    """
    h, w = gray.shape
    n = min(size, h, w)
    n -= n % 2
    if n < 32:
        return {"robust_cutoff": 0.5, "robust_limited": 0.0}
    tiles = _tiles(gray, n, max_tiles)
    if n not in _HANN:
        _HANN[n] = np.outer(np.hanning(n), np.hanning(n)).astype(np.float32)
    tiles = tiles * _HANN[n]
    p = (np.abs(np.fft.fft2(tiles)) ** 2).mean(axis=0)
    f = np.fft.fftfreq(n)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    rad = np.hypot(fx, fy)
    valid = _content_mask(fx, fy, jpeg_grid, strip, 1.0 / n)
    hi = valid & (rad >= 0.42) & (rad <= 0.5)
    floor = float(np.median(p[hi])) if hi.any() else 0.0
    nb = n // 2 + 1
    rb = np.rint(rad * n).astype(int)
    m = valid & (rb < nb)
    cnt = np.bincount(rb[m], minlength=nb)
    prof = np.bincount(rb[m], p[m], minlength=nb) / np.maximum(cnt, 1)
    se = prof / np.sqrt(np.maximum(cnt * len(tiles) / 4.0, 1.0))  # overlapping Hann tiles: ~1/4 independent
    fr = np.arange(nb) / n
    white = (prof - floor) * fr**2
    ref = float(white[1:5].mean())
    if ref <= 0.0:
        return {"robust_cutoff": 0.5, "robust_limited": 1.0}
    for i in range(4, nb):
        if cnt[i] == 0:
            continue
        if prof[i] - floor < 2.0 * se[i]:
            return {"robust_cutoff": float(fr[i]), "robust_limited": 1.0}
        if white[i] < 0.1 * ref:
            a, b = white[i - 1] / ref, white[i] / ref
            t = float(np.clip((a - 0.1) / max(a - b, 1e-12), 0.0, 1.0))
            return {"robust_cutoff": float(fr[i - 1] + t / n), "robust_limited": 0.0}
    return {"robust_cutoff": 0.5, "robust_limited": 0.0}


def tile_cepstral_shape(gray: np.ndarray, jpeg_grid: bool = False, strip: float | None = None,
                        size: int = 128, max_tiles: int = 64) -> dict[str, float]:
    """:func:`cepstral_shape` of the power spectrum averaged over up to ``max_tiles`` half-overlapping tiles.

    The white-noise floor is the median power at 0.42-0.5 cycles/px (as in :func:`robust_cutoff`); averaging
    many tiles keeps a defocus disk's cepstral ring (its spectral zeros) measurable under noise. ``jpeg_grid`` /
    ``strip`` as in :func:`cepstrum`. Ring radii are cepstral (the disk's diameter, px); on tiles under 96 px the
    radii past the tile's half read zero. A plane under 48 px returns no ring (zeros).
    """
    h, w = gray.shape
    n = min(size, h, w)
    n -= n % 2
    if n < 48:
        return {"ring_z": 0.0, "ring_radius": 0.0, "wide_ring_z": 0.0, "wide_ring_radius": 0.0}
    tiles = _tiles(gray, n, max_tiles)
    tiles = tiles * np.outer(np.hanning(n), np.hanning(n))
    p = (np.abs(np.fft.fft2(tiles)) ** 2).mean(axis=0)
    f = np.fft.fftfreq(n)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    rad = np.hypot(fx, fy)
    floor = float(np.median(p[(rad >= 0.42) & (rad <= 0.5)]))
    cs = cepstral_shape(cepstrum(p, floor, jpeg_grid=jpeg_grid, strip=strip), exclude=strip)
    return {k: cs[k] for k in ("ring_z", "ring_radius", "wide_ring_z", "wide_ring_radius")}
