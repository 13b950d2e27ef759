"""Offline (weight-free) degradation detectors for the perception agent.

Every detector turns one or two measured quantities into a severity on the paper's five-point scale
with a confidence and the evidence it used. Thresholds are calibrated on synthetic degradations
(``fourkagent.degrade.LEVELS``): levels 1-2 map mostly to "very low"/"low" (absent), 3-5 to
"medium" and above (present); clean photos report every degradation absent.

Evidence (``Detection.evidence``; every kind also has ``score``, larger = worse, graded by 4 thresholds):
  noise          noise_sigma (0-255, patch-PCA on native-resolution crops)
  motion blur    motion_length (px, cepstral ray radius), motion_weight, ray_angle (deg), ray_excess,
                 anisotropy, cutoff_along / cutoff_across (cycles/px)
  defocus blur   defocus_radius (px, half the cepstral ring radius), ring_weight, ring_z, cutoff
  haze           dark_channel (median / airlight), dark_channel_p10, dark_channel_p2, airlight, contrast,
                 saturation
  rain           streak_energy (oriented line-filter energy of the top-hat), streak_coverage(2), streak_angle
  dark           mean_luminance, median_luminance, p90_luminance, bright_luminance (99.5th pct., 4x reduced)
  jpeg ...       blockiness (8x8 grid step ratio), jpeg_quality_est (from quantisation steps; 0 = none),
                 quant_fit
  low resolution effective_factor (0.5 / isotropic cut-off), cutoff, iso_cutoff, noise_limit,
                 resample_period, resample_strength, short_side_px
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from fourkagent.imaging import Image, as_image, luma
from fourkagent.perception import measures as M
from fourkagent.perception import spectral as S

SEVERITIES: tuple[str, ...] = ("very low", "low", "medium", "high", "very high")
KINDS: tuple[str, ...] = (
    "noise",
    "motion blur",
    "defocus blur",
    "haze",
    "rain",
    "dark",
    "jpeg compression artifact",
    "low resolution",
)
PRESENT_FROM = 2  # index of "medium"
_RAIN_EDGES = (25.0, 37.0, 48.0, 58.0)
_NEUTRAL_BLUR = dict.fromkeys(
    ("noise_limit", "ray_z", "ray_excess", "ray_angle", "ray_radius", "ring_z", "ring_radius", "axis_z", "offaxis_z",
     "resample_period", "resample_strength", "anisotropy", "motion_weight", "motion_length", "ring_weight",
     "defocus_radius", "upsampled"), 0.0) | {"cutoff": 0.5, "cutoff_along": 0.5, "cutoff_across": 0.5,
                                            "iso_cutoff": 0.5}


@dataclass(frozen=True)
class Detection:
    """One degradation verdict: severity on the paper's scale, confidence in [0, 1], evidence."""

    kind: str
    severity: str
    confidence: float
    evidence: dict[str, float] = field(default_factory=dict)

    @property
    def present(self) -> bool:
        """True when the severity is "medium" or worse (the degradation enters the agenda)."""
        return SEVERITIES.index(self.severity) >= PRESENT_FROM

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "present": self.present,
            "confidence": round(float(self.confidence), 4),
            "evidence": {k: round(float(v), 4) for k, v in self.evidence.items()},
        }


def _grade(kind: str, score: float, edges: tuple[float, float, float, float], evidence: dict) -> Detection:
    """Map ``score`` (larger = worse) through 4 increasing thresholds to a severity.

    Confidence grows with the distance to the present/absent boundary (``edges[1]``), in units of
    the neighbouring bin width, so verdicts right at the boundary report about 0.5.
    """
    idx = int(np.searchsorted(np.asarray(edges), score, side="right"))
    b = edges[1]
    width = (edges[2] - edges[1]) if score >= b else (edges[1] - edges[0])
    margin = abs(score - b) / max(width, 1e-9)
    conf = float(np.clip(0.5 + 0.5 * np.tanh(1.5 * margin), 0.5, 0.99))
    ev = {k: float(v) for k, v in evidence.items()}
    ev["score"] = float(score)
    return Detection(kind, SEVERITIES[idx], round(conf, 4), ev)


class _Analysis:
    """Lazily computed measurements shared by the detectors of one image."""

    def __init__(self, img: Image):
        self.img = as_image(img)

    @cached_property
    def noise(self) -> float:
        return M.noise_sigma(self.img)

    @cached_property
    def bright(self) -> dict[str, float]:
        return M.brightness(self.img)

    @cached_property
    def jpeg(self) -> dict[str, float]:
        return M.jpeg_measures(self.img)

    @cached_property
    def haze(self) -> dict[str, float]:
        return M.haze_measures(self.img)

    @cached_property
    def streaks(self) -> dict[str, float]:
        return M.streak_measures(self.img, self.noise)

    @cached_property
    def blur(self) -> dict[str, float]:
        """Spectral cut-offs, cepstral shape and resampling period, combined into blur-type evidence."""
        gray = luma(M.bounded(self.img, 1024))
        if min(gray.shape) < 48 or float(gray.std()) < 1e-4:  # too small or flat for spectral analysis
            return dict(_NEUTRAL_BLUR)
        p, pn, n = S.power_spectrum(gray, self.noise)
        grid = self.jpeg["jpeg_quality_est"] > 0
        sb = S.spectral_blur(p, pn, n, jpeg_grid=grid)
        cs = S.cepstral_shape(S.cepstrum(p, pn, jpeg_grid=grid))
        rs = S.resampling_period(M.bounded(gray, 512))
        sec = sb.pop("sector_cutoff")
        fc = sb["cutoff"]
        st = self.streaks
        rainy = st["streak_energy"] * 1000.0 >= _RAIN_EDGES[0]

        def off_streaks(angle: float) -> bool:
            return not rainy or abs((angle - st["streak_angle"] + 90.0) % 180.0 - 90.0) > 20.0

        if not off_streaks(cs["ray_angle"]):  # rain streaks also make a cepstral ray: use spectra only
            cs["ray_angle"], cs["ray_excess"] = float(np.argmin(sec) * 15 + 7.5), 1.5
            if not off_streaks(cs["ray_angle"]):
                cs["ray_excess"] = 0.0
        # motion: one cepstral ray (kernel length) along the most attenuated spectral direction
        i = int(cs["ray_angle"] // 15) % 12
        along = sec[i]
        across = S.spectral_blur(p, pn, n, grid, wedge=(cs["ray_angle"] + 90.0) % 180.0)["cutoff"]
        aniso = along / max(sec[(i + 6) % 12], 1e-6)
        if cs["ray_excess"] >= 3.0:
            mlen = cs["ray_radius"]
            # first sinc zero near 1/L along the ray; rain streaks (added, not convolved) fail this
            consistent = along * mlen >= 0.3 and (along <= 0.15 or along * mlen <= 1.6)
            motion_w = float(np.clip((cs["ray_excess"] - 1.5) / 2.0, 0.0, 1.0)) * consistent
            motion_w = min(motion_w, float(np.clip((0.85 - aniso) / 0.3, 0.0, 1.0)))
        else:  # weak ray (noise): rely on strong directional attenuation only
            mlen = 0.75 / max(along, 1e-3)
            motion_w = 0.8 * float(np.clip((0.6 - aniso) / 0.3, 0.0, 1.0)) * (cs["ray_excess"] >= 1.5)
        # defocus: a cepstral ring at the kernel diameter
        ring_w = float(np.clip((cs["ring_z"] - 3.0) / 1.5, 0.0, 1.0))
        radius = cs["ring_radius"] / 2.0
        upsampled = rs["resample_strength"] >= 0.2
        if upsampled:
            ring_w *= 0.5  # interpolation rings are not optics
        # remaining isotropic softness, beyond what motion (across its direction) or defocus explains
        fc_iso = across if motion_w > 0.5 else fc
        if ring_w > 0.5 and fc_iso * radius >= 0.22 and (radius >= 3.6 or fc_iso >= 0.09):
            fc_iso = 0.5  # the (mild or strong) defocus kernel explains the cut-off
        return {
            **sb, **cs, **rs, "cutoff_along": float(along), "cutoff_across": float(across),
            "anisotropy": float(aniso), "motion_weight": float(motion_w), "motion_length": float(mlen),
            "ring_weight": ring_w, "defocus_radius": float(radius), "iso_cutoff": float(fc_iso),
            "upsampled": float(upsampled),
        }


# --------------------------------------------------------------------------------------- detectors


def _noise(a: _Analysis) -> Detection:
    s = a.noise
    return _grade("noise", s, (8.0, 15.5, 27.0, 42.0), {"noise_sigma": s})


def _dark(a: _Analysis) -> Detection:
    b = a.bright
    # under-exposure caps the bright end: a night sky with bright stars is not "dark"
    score = 1.0 - b["bright_luminance"]
    return _grade("dark", score, (0.45, 0.645, 0.76, 0.86), b)


def _jpeg(a: _Analysis) -> Detection:
    j = a.jpeg
    if j["jpeg_quality_est"] > 0:  # quantisation lattice found: grade by the implied quality
        score = 100.0 - j["jpeg_quality_est"]
    else:  # re-sampled or re-noised JPEG: fall back to visible 8x8 blockiness
        score = float(np.interp(j["blockiness"], [1.0, 1.3, 1.6, 2.2, 3.0], [0.0, 50.0, 68.0, 80.0, 89.0]))
    return _grade("jpeg compression artifact", score, (50.0, 68.0, 80.0, 89.0), j)


def _haze(a: _Analysis) -> Detection:
    h = a.haze
    if h["saturation"] < 0.02:  # no colour: the dark channel is only the local minimum intensity
        return _grade("haze", h["dark_channel"], (0.55, 0.655, 0.78, 0.86), h)
    # dark-channel prior: haze-free colour scenes keep many patches with one channel near 0
    return _grade("haze", h["dark_channel"], (0.35, 0.505, 0.64, 0.76), h)


def _rain(a: _Analysis) -> Detection:
    r = a.streaks
    score = r["streak_energy"] * 1000.0
    return _grade("rain", score, _RAIN_EDGES, r)


def _blur_evidence(b: dict, keys: tuple[str, ...]) -> dict[str, float]:
    return {k: b[k] for k in keys}


def _motion(a: _Analysis) -> Detection:
    b = a.blur
    score = b["motion_length"] * b["motion_weight"]
    ev = _blur_evidence(b, ("motion_length", "motion_weight", "ray_angle", "ray_excess", "anisotropy",
                            "cutoff_along", "cutoff_across"))
    return _grade("motion blur", score, (7.0, 11.5, 18.0, 26.0), ev)


def _defocus(a: _Analysis) -> Detection:
    b = a.blur
    score = b["defocus_radius"] * b["ring_weight"] * (1.0 - 0.5 * b["motion_weight"])
    ev = _blur_evidence(b, ("defocus_radius", "ring_weight", "ring_z", "cutoff"))
    return _grade("defocus blur", score, (2.0, 3.6, 5.0, 7.0), ev)


def _low_resolution(a: _Analysis) -> Detection:
    h, w = a.img.shape[:2]
    b = a.blur
    short = float(min(h, w))
    factor = 0.5 / max(b["iso_cutoff"], 1e-3)  # effective down-sampling factor of the content
    factor /= 1.0 + 0.4 * b["motion_weight"]  # a real motion kernel is also a little wide across
    q = a.jpeg["jpeg_quality_est"]
    if q > 0:  # quantisation removes fine detail too
        factor /= 1.0 + 0.3 * (1.0 - q / 100.0)
    if b["upsampled"]:
        factor = max(factor, b["resample_period"])
    tiny = float(np.interp(short, [48.0, 96.0, 128.0, 160.0], [8.0, 5.0, 3.5, 1.0]))  # tiny image: SR input
    score = max(factor, tiny)
    ev = _blur_evidence(b, ("cutoff", "iso_cutoff", "noise_limit", "resample_period", "resample_strength"))
    ev.update(effective_factor=factor, short_side_px=short)
    return _grade("low resolution", score, (2.0, 3.1, 4.6, 6.5), ev)


_DETECTORS = {
    "noise": _noise,
    "motion blur": _motion,
    "defocus blur": _defocus,
    "haze": _haze,
    "rain": _rain,
    "dark": _dark,
    "jpeg compression artifact": _jpeg,
    "low resolution": _low_resolution,
}


def estimate_noise_sigma(img: Image) -> float:
    """Additive noise standard deviation in 0-255 units (patch-PCA, robust to texture and JPEG)."""
    return float(M.noise_sigma(as_image(img)))


def detect(img: Image, kind: str) -> Detection:
    """Run one detector; ``kind`` must be one of :data:`KINDS`."""
    if kind not in _DETECTORS:
        raise ValueError(f"unknown degradation kind {kind!r}; expected one of {KINDS}")
    return _DETECTORS[kind](_Analysis(img))


def detect_all(img: Image) -> list[Detection]:
    """One :class:`Detection` per kind, in :data:`KINDS` order (measurements computed once)."""
    a = _Analysis(img)
    return [_DETECTORS[k](a) for k in KINDS]
