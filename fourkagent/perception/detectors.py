"""Offline (weight-free) degradation detectors for the perception agent.

Every detector turns one or two measured quantities into a severity on the paper's five-point scale
with a confidence and the evidence it used. Thresholds are calibrated on synthetic degradations
(``fourkagent.degrade.LEVELS``): levels 1-2 map mostly to "very low"/"low" (absent), 3-5 to
"medium" and above (present); clean photos report every degradation absent.

Evidence (``Detection.evidence``; every kind also has ``score``, larger = worse, graded by 4 thresholds):
  noise          noise_sigma (0-255, patch-PCA on native-resolution crops; for JPEGs of quality >= 30 the
                 larger of that and the DCT-domain estimate, which sees the noise quantisation left)
  motion blur    motion_length (px, cepstral ray radius), motion_weight, ray_angle (deg), ray_excess,
                 anisotropy, cutoff_along / cutoff_across (cycles/px)
  defocus blur   defocus_radius (px, half the cepstral ring radius), ring_weight, ring_z, wide_ring_z /
                 wide_ring_radius (strongest ring of diameter >= 8 px), cutoff; noise-robust: robust_(wide_)ring_z
                 / _radius (the same rings of the rain-free luma's many-tile spectrum; radii = the disk's diameter)
  haze           dark_channel (median / airlight), dark_channel_p10, dark_channel_p2, airlight, contrast,
                 saturation (on a 64-px copy), smear_discount (grey images under strong motion blur);
                 noise-robust: dark_channel_smooth(_p10) (smoothed copy), dark_channel_textured (most textured
                 quarter of the blocks)
  rain           streak_energy (oriented line-filter energy of the top-hat), streak_coverage(2), streak_angle
  dark           mean_luminance, median_luminance, p90_luminance, bright_luminance (99.5th pct., 4x reduced)
  jpeg ...       blockiness (8x8 grid step ratio), jpeg_quality_est (from quantisation steps; 0 = none),
                 quant_fit
  low resolution effective_factor (0.5 / isotropic cut-off), cutoff, iso_cutoff, sector_hi (cut-off of the
                 second least attenuated direction), noise_limit, resample_period, resample_strength,
                 short_side_px; noise-robust: robust_cutoff / robust_limited (many-tile spectrum, floor
                 subtracted), rainfree_cutoff (the same after replacing rain streak pixels)
Keys after "noise-robust" feed only the calibration model; the scores do not use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from fourkagent.imaging import Image, as_image, luma
from fourkagent.perception import measures as M
from fourkagent.perception import spectral as S
from fourkagent.vocabulary import KINDS

SEVERITIES: tuple[str, ...] = ("very low", "low", "medium", "high", "very high")
PRESENT_FROM = 2  # index of "medium"
_RAIN_EDGES = (25.0, 37.0, 48.0, 58.0)
_JPEG_NOISE_FROM = 30.0  # JPEG quality from which noise and blur still show through the quantisation
_NEUTRAL_BLUR = dict.fromkeys(
    ("noise_limit", "ray_z", "ray_excess", "ray_angle", "ray_radius", "ring_z", "ring_radius", "axis_z", "offaxis_z",
     "wide_ring_z", "wide_ring_radius",
     "resample_period", "resample_strength", "anisotropy", "motion_weight", "motion_length", "ring_weight",
     "defocus_radius", "upsampled"), 0.0) | {"cutoff": 0.5, "cutoff_along": 0.5, "cutoff_across": 0.5,
                                            "iso_cutoff": 0.5, "sector_hi": 0.5}


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

    def __init__(self, img: Image, model_inputs: bool = True):
        """``model_inputs=False``: skip the evidence that feeds only the calibration model (scores and
        threshold verdicts do not change)."""
        self.img = as_image(img)
        self.model_inputs = model_inputs

    @cached_property
    def noise(self) -> float:
        s = M.noise_sigma(self.img)
        q = self.jpeg["jpeg_quality_est"]
        if q >= _JPEG_NOISE_FROM:  # JPEG quantised the noise away from the patches: count it in the DCT too
            s = max(s, M.jpeg_noise_sigma(self.img, q))
        return s

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
    def haze_robust(self) -> dict[str, float]:
        return M.haze_robust(self.img, self.haze["airlight"])

    @cached_property
    def streaks(self) -> dict[str, float]:
        return M.streak_measures(self.img, self.noise)

    @cached_property
    def gray(self) -> np.ndarray:
        """Luma of the central (at most 1024 px) region, native scale: the plane of the spectral analyses."""
        return luma(M.bounded(self.img, 1024))

    @cached_property
    def rain_angle(self) -> float | None:
        """Orientation (degrees) of rain streaks strong enough to be "very low" rain or worse; None: no rain."""
        st = self.streaks
        return st["streak_angle"] if st["streak_energy"] * 1000.0 >= _RAIN_EDGES[0] else None

    @cached_property
    def spectral_gray(self) -> np.ndarray:
        """:attr:`gray` with JPEG block edges ramped out (block edges spread content over every frequency)."""
        q = self.jpeg["jpeg_quality_est"]
        return M.deblock(self.gray, q) if q > 0 else self.gray

    @cached_property
    def spectra(self) -> dict | None:
        """Raw spectral measurements of the luma (None: too small or flat for spectral analysis)."""
        gray = self.gray
        if min(gray.shape) < 48 or float(gray.std()) < 1e-4:
            return None
        st = self.streaks
        rainy = self.rain_angle is not None
        strip = self.rain_angle  # rain: analyse the spectrum off the streaks' own
        rs = S.resampling_period(M.bounded(gray, 512))
        q = self.jpeg["jpeg_quality_est"]
        grid = q > 0
        gray = self.spectral_gray
        p, pn, n = S.power_spectrum(gray, M.noise_sigma(gray))  # the luma plane's own noise floor
        sb = S.spectral_blur(p, pn, n, jpeg_grid=grid, strip=strip)
        cs = S.cepstral_shape(S.cepstrum(p, pn, jpeg_grid=grid, strip=strip), exclude=strip)
        if rainy and cs["ray_excess"] < 3.0:  # weak ray: the most attenuated sector off the streaks
            d = np.abs((np.arange(12) * 15.0 + 7.5 - st["streak_angle"] + 90.0) % 180.0 - 90.0)
            cs["ray_angle"] = float(np.argmin(np.where(d > 30.0, sb["sector_cutoff"], np.inf)) * 15 + 7.5)
            cs["ray_excess"], cs["ray_radius"] = max(cs["ray_excess"], 1.5), 0.0  # no ray length there
        across = S.spectral_blur(p, pn, n, grid, wedge=(cs["ray_angle"] + 90.0) % 180.0, strip=strip)["cutoff"]
        return {"sb": sb, "cs": cs, "rs": rs, "across": across, "jpeg_quality": q}

    @cached_property
    def robust(self) -> dict[str, float]:
        """Noise-robust cut-offs (:func:`spectral.robust_cutoff`) of the luma and, under rain, of its streak-free
        version (:func:`measures.streak_free`; without rain the same value)."""
        if self.spectra is None:
            return {"robust_cutoff": 0.5, "robust_limited": 0.0, "rainfree_cutoff": 0.5}
        gray, strip, grid = self.spectral_gray, self.rain_angle, self.jpeg["jpeg_quality_est"] > 0
        out = S.robust_cutoff(gray, jpeg_grid=grid, strip=strip)
        out["rainfree_cutoff"] = out["robust_cutoff"]
        if strip is not None:  # rain: measure the scene between the streaks too
            out["rainfree_cutoff"] = S.robust_cutoff(self.rainfree_gray, jpeg_grid=grid, strip=strip)["robust_cutoff"]
        return out

    @cached_property
    def rainfree_gray(self) -> np.ndarray:
        """:attr:`spectral_gray` with rain streaks replaced (:func:`measures.streak_free`); itself without rain."""
        strip = self.rain_angle
        return self.spectral_gray if strip is None else M.streak_free(self.spectral_gray, strip, self.noise)

    @cached_property
    def robust_ring(self) -> dict[str, float]:
        """Defocus ring of the many-tile spectrum of :attr:`rainfree_gray` (:func:`spectral.tile_cepstral_shape`):
        noise-robust, and rain streaks (added over the blurred scene, sharp) no longer hide the disk's zeros."""
        if self.spectra is None:
            return dict.fromkeys(("robust_ring_z", "robust_ring_radius", "robust_wide_ring_z",
                                  "robust_wide_ring_radius"), 0.0)
        cs = S.tile_cepstral_shape(self.rainfree_gray, jpeg_grid=self.jpeg["jpeg_quality_est"] > 0,
                                   strip=self.rain_angle)
        return {f"robust_{k}": v for k, v in cs.items()}

    @cached_property
    def blur(self) -> dict[str, float]:
        """Spectral cut-offs, cepstral shape and resampling period, combined into blur-type evidence."""
        return _NEUTRAL_BLUR.copy() if self.spectra is None else _blur_evidence_from(self.spectra)


def _blur_evidence_from(sp: dict) -> dict[str, float]:
    """Combine the raw spectral measurements into motion, defocus and isotropic-softness evidence."""
    sb, cs, rs, across = dict(sp["sb"]), dict(sp["cs"]), sp["rs"], sp["across"]
    raw = sb.pop("sector_cutoff")
    sec = np.nan_to_num(raw, nan=0.5)  # a sector without a cut-off before the noise floor reads as sharp
    known = np.nan_to_num(raw, nan=sb["noise_limit"])  # ... but is only known to pass the noise floor
    fc = sb["cutoff"]
    # motion: one cepstral ray (kernel length) along the most attenuated spectral direction
    i = int(cs["ray_angle"] // 15) % 12
    along = sec[i]
    aniso = along / max(known[(i + 6) % 12], 1e-6)
    ray_fits = 0.3 <= along * cs["ray_radius"] <= 2.5  # first sinc zero near 1/L along the ray
    if cs["ray_excess"] >= 3.0:
        mlen = cs["ray_radius"]
        # rain streaks (added, not convolved) fail the sinc-zero test
        consistent = along * mlen >= 0.3 and (along <= 0.15 or along * mlen <= 1.6)
        motion_w = float(np.clip((cs["ray_excess"] - 1.5) / 2.0, 0.0, 1.0)) * consistent
        # the spectrum must also be directional, unless the ray is unmistakable (motion + isotropic blur)
        guard = (0.85 - aniso) / 0.3 if cs["ray_excess"] < 14.0 else (1.0 - aniso) / 0.15
        motion_w = min(motion_w, float(np.clip(guard, 0.0, 1.0)))
    else:  # weak ray (noise, isotropic blur on top): rely on strong directional attenuation
        mlen = cs["ray_radius"] if cs["ray_excess"] >= 1.2 and ray_fits else 0.85 / max(along, 1e-3)
        # across the blur the spectrum may reach the noise floor uncut: aniso is then only an upper bound
        open_across = bool(np.isnan(raw[(i + 6) % 12])) and aniso < 0.5
        directional = cs["ray_excess"] >= 1.5 or aniso < 0.4 or open_across
        motion_w = float(np.clip((0.65 - aniso) / 0.25, 0.0, 1.0)) * directional
    # defocus: a cepstral ring at the kernel diameter
    ring_w = float(np.clip((cs["ring_z"] - 3.0) / 1.5, 0.0, 1.0))
    radius, ring_z = cs["ring_radius"] / 2.0, cs["ring_z"]
    upsampled = rs["resample_strength"] >= 0.2
    if upsampled:
        ring_w *= 0.5  # interpolation rings are not optics
    # a wide ring (diameter >= 8 px) is optics even when a narrower interpolation ring is stronger,
    # unless it is only the echo of a small disk's own ring (about twice its diameter, much weaker)
    ratio = cs["wide_ring_radius"] / max(cs["ring_radius"], 1.0)
    echo = 1.6 <= ratio <= 2.2 or cs["wide_ring_z"] < 0.45 * cs["ring_z"]
    # mild JPEG quantisation fills the kernel's zeros (a weaker ring) but adds no ring of its own
    lo, span = (1.3, 0.4) if sp.get("jpeg_quality", 0.0) >= _JPEG_NOISE_FROM else (2.6, 0.8)
    wide_w = float(np.clip((cs["wide_ring_z"] - lo) / span, 0.0, 1.0)) * (not echo) * (0.5 if upsampled else 1.0)
    if wide_w * cs["wide_ring_radius"] / 2.0 > ring_w * radius:
        ring_w, radius, ring_z = wide_w, cs["wide_ring_radius"] / 2.0, cs["wide_ring_z"]
    # a motion kernel can ring weakly too; a strong ring is a disk whatever else blurred the image
    ring_damp = 0.5 * motion_w * (1.0 - float(np.clip((ring_z - 4.5) / 1.5, 0.0, 1.0)))
    # remaining isotropic softness: low resolution attenuates every direction, so the least attenuated
    # directions bound it (a directional blur leaves one sharp)
    sec_hi = float(np.sort(known)[-2])
    fc_iso = min(max(across if motion_w > 0.5 else fc, sec_hi), 0.5)
    if ring_w > 0.5 and fc_iso * radius >= 0.22 and (radius >= 3.6 or fc_iso >= 0.09):
        fc_iso = 0.5  # the (mild or strong) defocus kernel explains the cut-off
    return {
        **sb, **cs, **rs, "cutoff_along": float(along), "cutoff_across": float(across),
        "anisotropy": float(aniso), "motion_weight": float(motion_w), "motion_length": float(mlen),
        "ring_weight": ring_w * (1.0 - ring_damp), "defocus_radius": float(radius), "iso_cutoff": float(fc_iso),
        "upsampled": float(upsampled), "sector_hi": sec_hi,
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
    h = a.haze | (a.haze_robust if a.model_inputs else {})  # the noise-robust keys do not enter the score
    if h["saturation"] < 0.02:  # no colour: the dark channel is only the local minimum intensity
        # a strong motion smear, or quantisation that flattens whole 8x8 blocks, averages a grey texture's
        # dark pixels away, which reads as a lifted floor
        b, q = a.blur, a.jpeg["jpeg_quality_est"]
        smear = 0.1 * float(np.clip(max(b["motion_length"] * b["motion_weight"] / 11.5 - 1.0,
                                        (25.0 - q) / 15.0 if q > 0 else 0.0), 0.0, 1.0))
        return _grade("haze", h["dark_channel"] - smear, (0.55, 0.655, 0.78, 0.86), h | {"smear_discount": smear})
    # dark-channel prior: haze-free colour scenes keep many patches with one channel near 0
    return _grade("haze", h["dark_channel"], (0.35, 0.505, 0.64, 0.76), h | {"smear_discount": 0.0})


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
    score = b["defocus_radius"] * b["ring_weight"]
    ev = _blur_evidence(b, ("defocus_radius", "ring_weight", "ring_z", "wide_ring_z", "wide_ring_radius", "cutoff"))
    return _grade("defocus blur", score, (2.0, 3.6, 5.0, 7.0), ev | (a.robust_ring if a.model_inputs else {}))


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
    ev = _blur_evidence(b, ("cutoff", "iso_cutoff", "sector_hi", "noise_limit", "resample_period",
                            "resample_strength"))
    ev.update(effective_factor=factor, short_side_px=short, **(a.robust if a.model_inputs else {}))
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


def noise_and_jpeg_quality(img: Image) -> tuple[float, float]:
    """The noise detector's σ̂ (0-255, JPEG-aware) and the JPEG quality estimate (0: no quantisation lattice
    found), from one analysis: the noise estimate reads the JPEG measures, so two :func:`detect` calls would
    measure the JPEG lattice twice."""
    a = _Analysis(img, model_inputs=False)
    return float(a.noise), float(a.jpeg["jpeg_quality_est"])


def detect(img: Image, kind: str, calibrated: bool = True) -> Detection:
    """Run one detector; ``kind`` must be one of :data:`KINDS`.

    Default: the calibrated verdict, as in :func:`detect_all` (the model needs every detector's evidence, so
    all run). ``calibrated=False``: this detector alone with its threshold verdict - much faster for callers
    that only read ``evidence["score"]`` (identical either way; the calibration-only evidence is skipped).
    """
    if kind not in _DETECTORS:
        raise ValueError(f"unknown degradation kind {kind!r}; expected one of {KINDS}")
    if calibrated:
        return detect_all(img)[KINDS.index(kind)]
    return _DETECTORS[kind](_Analysis(img, model_inputs=False))


def detect_all(img: Image, calibrated: bool = True, model_inputs: bool = True) -> list[Detection]:
    """One :class:`Detection` per kind, in :data:`KINDS` order (measurements computed once).

    ``calibrated``: present/absent from the shipped calibration model (``evidence["p_present"]``; every
    other evidence value, ``score`` included, is unchanged); ``False`` or no usable model: the thresholds.
    ``model_inputs=False`` (uncalibrated only): skip the evidence that only the calibration model reads, for
    callers that want scores (Q-MoE's features score every candidate).
    """
    a = _Analysis(img, model_inputs=model_inputs or calibrated)
    raw = [_DETECTORS[k](a) for k in KINDS]
    if not calibrated:
        return raw
    from fourkagent.perception.calibration import calibrate  # late: calibration imports this module

    return calibrate(raw)
