"""No-reference features of a (step input, candidate) pair, for the learned Q-MoE scorer.

Every feature compares the candidate with "doing nothing" (the step input, or its bicubic upscale for
SR), so the same model ranks candidates of any image; the model uses changes against the features of the
input itself. Exposure features (median, 99th percentile, clipped highlights) estimate whether a tone curve
went too far; the removed signal's lag-1 autocorrelation tells noise removal (white) from structure
removal, and the spread of the local contrast change tells a depth-dependent dehaze from a global stretch.
For motion deblurring the kernel the tools estimate on the input gives two more: how well the candidate
re-blurred explains the input, and how far it rings past the input's local range (0 for other steps).
:func:`state` measures the step input alone (raw detector scores, exposure): the learned model's slopes may
depend on it. Raw ``evidence["score"]`` values are used, never calibrated verdicts. Large images are
measured on a central crop, except the tone statistics (medians, percentiles, clipping: whole-image quantities),
measured on an even subsample of the whole image (:func:`_tone`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fourkagent.imaging import Image, luma, psnr
from fourkagent.scoring.niqe import niqe
from fourkagent.scoring.sure import ratio_to_db
from fourkagent.vocabulary import KINDS, step_scale

SCALES: dict[str, float] = {
    "noise": 15.5, "motion blur": 11.5, "defocus blur": 3.6, "haze": 0.47, "rain": 37.0, "dark": 0.62,
    "jpeg compression artifact": 68.0, "low resolution": 2.9,
}
"""Each detector score's present/absent boundary: differences are expressed in these units."""

NAMES: tuple[str, ...] = (
    "d_niqe", *(f"d_{k.replace(' ', '_')}" for k in KINDS),
    "lowpass_psnr", "removed_ratio", "leakage", "grad_ratio", "d_median_luma", "d_contrast", "clipped", "d_saturation",
    "exposure_error", "coarse_psnr", "hf_ratio", "white_point_error",
    "median_luma", "p99_luma", "highlights_clipped", "removed_autocorr", "local_gain_spread",
    "reblur_residual", "ringing",
)
"""Feature names, in vector order."""
STATE: tuple[str, ...] = (
    *(f"in_{k.replace(' ', '_')}" for k in KINDS), "in_median_luma", "in_p99_luma",
)
"""Names of the step input's own measurements (:func:`state`): what the model's slopes may depend on."""

_SIDE = 384


def _crop(img: Image, side: int = _SIDE) -> Image:
    h, w = img.shape[:2]
    if h <= side and w <= side:
        return img
    y, x = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return img[y : y + side, x : x + side]


_TONE_SIDE = 512


def _tone(img: Image, side: int = _TONE_SIDE) -> Image:
    """The view for tone statistics: the whole image, every k-th pixel so at most ``side`` px remain per side
    (images up to ``side`` px whole: at the model's training sizes, ≤ 256 px, the values the crop gave). A central
    crop of a 4K image is a patch of one object (4K demo, 1024 → 4096 px SR: exposure_error ~1.0 for every
    candidate and in_median_luma of a dark patch; the whole image: 0.2)."""
    k = -(-max(img.shape[:2]) // side)
    return img if k <= 1 else img[::k, ::k]


@dataclass(frozen=True)
class Reference:
    """Measurements of "doing nothing" for a step, computed once and shared by its candidates."""

    step: str
    base: Image
    """The step input, or its bicubic upscale for SR steps (same size as a candidate)."""
    niqe: float
    scores: dict[str, float]
    sigma: float
    psf: np.ndarray | None = None
    """Motion deblurring: the blur kernel estimated on the (cropped) input, for the re-blur evidence."""


def detector_scores(img: Image) -> dict[str, float]:
    """Every detector's continuous score (larger = worse)."""
    from fourkagent.perception.detectors import detect_all

    dets = detect_all(img, calibrated=False, model_inputs=False)  # raw scores only
    return {d.kind: float(d.evidence["score"]) for d in dets}


def reference(inp: Image, step: str) -> Reference:
    """Measure the step input (or its bicubic upscale for SR)."""
    s = step_scale(step)
    base = inp if s == 1 else np.clip(
        cv2.resize(inp, (inp.shape[1] * s, inp.shape[0] * s), interpolation=cv2.INTER_CUBIC), 0.0, 1.0
    )
    crop = _crop(base)
    scores = detector_scores(crop)
    return Reference(step, base, niqe(base), scores, max(scores["noise"], 1.0), _motion_psf(crop, step))


def input_noise_jpeg(img: Image) -> tuple[float, float]:
    """The step input's own noise σ̂ (0-255, the noise detector's estimate) and JPEG quality estimate (0: no
    quantisation lattice found), measured at the input's size: for SR the :func:`reference` scores are measured
    on the bicubic upscale, which smooths the noise and the blocks away. The SR steps' do-no-harm margin depends
    on these (``scoring/qmoe.py``)."""
    from fourkagent.perception.detectors import noise_and_jpeg_quality

    return noise_and_jpeg_quality(img)


def _motion_psf(crop: Image, step: str) -> np.ndarray | None:
    """The motion kernel the deblurring tools would estimate (None for other steps, or without evidence)."""
    if step != "motion deblurring":
        return None
    from fourkagent.tools.classical import _filters as F
    from fourkagent.tools.classical.deblur import estimate_motion

    est = estimate_motion(crop)
    return None if est is None else F.motion_psf(*est).astype(np.float32)


def _reblur_evidence(yb: np.ndarray, yo: np.ndarray, psf: np.ndarray | None) -> tuple[float, float]:
    """Motion deblurring evidence of a candidate: how well it explains the input once re-blurred with the
    input's kernel (RMS of ``psf * out − input`` away from the borders, dB of 0-255 units) and its ringing
    (mean amount, 0-255, by which it leaves the input's local min-max range over the kernel's support).
    (0, 0) without a kernel. Photo-grouped CV of the motion step: 0.34 → ~0.25 dB lost."""
    if psf is None:
        return 0.0, 0.0
    m = max(psf.shape) + 2
    if min(yb.shape) <= 4 * m:
        return 0.0, 0.0
    res = (cv2.filter2D(yo, -1, psf, borderType=cv2.BORDER_REFLECT) - yb)[m:-m, m:-m]
    box = np.ones((m, m), np.uint8)
    over = np.maximum(yo - cv2.dilate(yb, box), 0.0) + np.maximum(cv2.erode(yb, box) - yo, 0.0)
    return float(20.0 * np.log10(np.sqrt(np.mean(res * res)) * 255.0 + 1e-2)), float(np.mean(over)) * 255.0


def sure_feature(ratio: np.ndarray | float) -> np.ndarray:
    """The Q-MoE input made of SURE ratios (``scoring/sure.py``): the share of the input's noise power the
    candidate removes, ``1 − ratio`` (doing nothing: 0), clipped to [−1, 1] (a ratio below 0 means σ was
    over-estimated, not a better denoiser)."""
    return np.clip(1.0 - np.asarray(ratio, np.float64), -1.0, 1.0)


def sure_gain_db(ratio: np.ndarray | float) -> np.ndarray:
    """The PSNR gains SURE ratios predict (``scoring.sure.ratio_to_db``), as an array."""
    return np.asarray([ratio_to_db(float(r)) for r in np.ravel(ratio)], np.float64)


def _grad(y: np.ndarray) -> float:
    gx = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3)
    return float(np.mean(np.sqrt(gx * gx + gy * gy))) + 1e-6


def _coarse(img: Image) -> Image:
    """The whole image area-averaged ×4 down: low-frequency content and global tone."""
    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)


def state(ref: Reference) -> np.ndarray:
    """The step input's measurements (see ``STATE``): detector scores in units of their boundaries, exposure."""
    y = luma(_tone(ref.base))
    return np.asarray([*(ref.scores[k] / SCALES[k] for k in KINDS), float(np.median(y)), float(np.percentile(y, 99))])


def _autocorr(r: np.ndarray) -> float:
    """Mean lag-1 correlation (horizontal, vertical) of a signal: ~0 for white noise, ~1 for image structure."""
    r = r - r.mean()
    den = float(np.mean(r * r)) + 1e-10
    return 0.5 * (float(np.mean(r[:, 1:] * r[:, :-1])) + float(np.mean(r[1:] * r[:-1]))) / den


def _local_gain_spread(yb: np.ndarray, yo: np.ndarray, blocks: int = 6) -> float:
    """Spread (std) over a grid of blocks of the log contrast change: 0 for a global tone curve or stretch."""
    h, w = yb.shape
    bh, bw = h // blocks, w // blocks
    if bh < 4 or bw < 4:
        return 0.0
    g = [np.log((yo[i:i + bh, j:j + bw].std() + 2e-3) / (yb[i:i + bh, j:j + bw].std() + 2e-3))
         for i in range(0, bh * blocks, bh) for j in range(0, bw * blocks, bw)]
    return float(np.std(g))


def features(out: Image, ref: Reference) -> np.ndarray:
    """The feature vector of a candidate (see ``NAMES``)."""
    base_c, out_c = _crop(ref.base), _crop(out)
    scores = detector_scores(out_c)
    yb, yo = luma(base_c), luma(out_c)
    removed = yb - yo
    e_rem = cv2.GaussianBlur(np.abs(removed), (0, 0), 2.0)
    e_grad = cv2.GaussianBlur(np.abs(cv2.Laplacian(yo, cv2.CV_32F, ksize=3)), (0, 0), 2.0)
    leak = float(np.corrcoef(e_rem.ravel(), e_grad.ravel())[0, 1]) if e_rem.std() > 1e-7 and e_grad.std() > 1e-7 else 0.0
    low_b = cv2.GaussianBlur(base_c, (0, 0), 2.0)
    low_o = cv2.GaussianBlur(out_c, (0, 0), 2.0)
    sat = lambda im: float(np.mean(im.max(2) - im.min(2)))  # noqa: E731
    out_t = _tone(out)  # tone statistics: on the whole image
    yt = luma(out_t)
    med_o, peak_o = np.median(yt), out_t.max(axis=2)  # per-pixel max channel: white point, highlights
    vec = [
        ref.niqe - niqe(out),
        *((ref.scores[k] - scores[k]) / SCALES[k] for k in KINDS),
        min(psnr(low_o, low_b), 60.0) / 10.0,
        float(np.std(removed)) * 255.0 / ref.sigma,
        leak,
        float(np.log(_grad(yo) / _grad(yb))),
        float(med_o - np.median(luma(_tone(ref.base)))) * 4.0,
        float(np.log((yo.std() + 1e-3) / (yb.std() + 1e-3))),
        float(np.mean((out_t <= 0.005) | (out_t >= 0.995))) * 10.0,
        (sat(out_c) - sat(base_c)) * 10.0,
        abs(float(med_o) - 0.45) * 4.0,
        min(psnr(_coarse(out), _coarse(ref.base)), 60.0) / 10.0,
        float(np.log((cv2.Laplacian(yo, cv2.CV_32F).var() + 1e-8) / (cv2.Laplacian(yb, cv2.CV_32F).var() + 1e-8))),
        abs(float(np.percentile(peak_o, 99.9)) - 1.0) * 4.0,  # white point: 1.0 when highlights reach white
        float(med_o) * 4.0,
        float(np.percentile(yt, 99)) * 4.0,
        float(np.mean(peak_o >= 0.995)) * 20.0,
        _autocorr(removed) if removed.std() > 1e-6 else 0.0,
        _local_gain_spread(yb, yo),
        *_reblur_evidence(yb, yo, ref.psf),
    ]
    return np.nan_to_num(np.asarray(vec, np.float64), nan=0.0, posinf=6.0, neginf=-6.0)
