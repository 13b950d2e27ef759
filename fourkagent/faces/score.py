"""The identity-preserving score of a face candidate.

``score = 0.5·quality + 0.5·mix − 0.3·drift/max_drift`` where
- ``quality``: NR-IQA of the crop, NIQE relative to the unrestored crop (``qmoe.naturalness``: 0.5 = as
  natural as doing nothing);
- ``mix``: the Q-MoE mix of naturalness, low-pass fidelity to the unrestored crop and the residual of the
  degradations the experts target (relative to the unrestored crop, measured at the face's native scale,
  where they live), weighted by the profile's priority (``qmoe.WEIGHTS``);
- ``drift``: angle (degrees) between the candidate's face embedding and the reference face's.
Candidates drifting more than the limit are rejected outright (the paper only penalises drift; we also
refuse identity swaps). The limit is ``max_drift``, widened to the unrestored crop's own drift + 5° when
the reference itself is far (a tiny or very degraded reference face).

Non-generative experts must also bring the face at least ``IDENTITY_GAIN_DEG`` closer to the reference
than the unrestored crop is. Measured on the bundled photos (degraded ×2/×4, noise, JPEG; 93 candidates):
the change of drift from the input face correlates only weakly with the change of distance to the
ground-truth face (r ≈ 0.2); candidates drifting 2–4° more lost 1.2° of ground-truth identity on
average, those within ±0.5° were a coin flip, and the two that came ≥ 0.5° closer both gained. Offline
general tools rarely pass, so the unrestored face is usually kept: the stage mainly undoes identity drift
that general SR introduced, and refuses to add any.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fourkagent.faces.identity import angle_deg, embed_aligned, embedder_unavailable
from fourkagent.imaging import Image, resize
from fourkagent.scoring.niqe import niqe
from fourkagent.scoring.heuristic import WEIGHTS, fidelity, naturalness, residual, target_score
from fourkagent.vocabulary import STEP_TO_DEGRADATION

MAX_DRIFT_DEG = 20.0
"""Identity drift above this is an identity change. dlib descriptor angles measured here: a face vs its
degraded-and-upscaled self 1–18° (×2–×4, σ ≤ 10), up to 27° (×8 or σ = 25); different people 19–38°."""
DRIFT_MARGIN_DEG = 5.0
IDENTITY_GAIN_DEG = 0.5
"""How much closer to the reference than the unrestored crop a non-generative candidate must be."""
W_QUALITY, W_MIX, W_IDENTITY = 0.5, 0.5, 0.3
FACE_STEP = "face restoration"


@dataclass(frozen=True)
class FaceScore:
    """One candidate's score, its components and why it was rejected (``None`` if it was not)."""

    score: float
    components: dict[str, float | None] = field(default_factory=dict)
    rejected: str | None = None


class FaceScorer:
    """Scores candidates of one face against its unrestored crop and reference embedding."""

    def __init__(
        self,
        unrestored: Image,
        reference: np.ndarray | None,
        categories: list[str],
        priority: str = "perception",
        max_drift: float = MAX_DRIFT_DEG,
        native_side: int | None = None,
    ) -> None:
        """Measure the baseline once (NIQE, embedding, drift limit) for every candidate of this face."""
        self.unrestored = unrestored
        self.native_side = native_side or unrestored.shape[0]
        self.priority = priority if priority in WEIGHTS else "perception"
        targets = sorted({STEP_TO_DEGRADATION[c] for c in categories if c in STEP_TO_DEGRADATION})
        self.before = {k: target_score(self._native(unrestored), k) for k in targets}
        self.base_niqe = niqe(unrestored)
        self.identity_note = embedder_unavailable()
        self.reference = None
        self.limit = max_drift
        self.base_drift = 0.0
        if self.identity_note is None:
            own = embed_aligned(unrestored)
            self.reference = own if reference is None else np.asarray(reference, np.float64)
            self.base_drift = angle_deg(own, self.reference)
            self.limit = max(max_drift, self.base_drift + DRIFT_MARGIN_DEG)

    def _native(self, crop: Image) -> Image:
        n = self.native_side
        return resize(crop, (n, n), "area") if n < crop.shape[0] else crop

    def drift(self, crop: Image) -> float | None:
        """Identity drift of ``crop`` from the reference in degrees (``None`` without an embedder)."""
        return None if self.reference is None else angle_deg(embed_aligned(crop), self.reference)

    def __call__(self, crop: Image, generative: bool = False, baseline: bool = False) -> FaceScore:
        """Score one candidate crop (``baseline``: it is the unrestored crop, exempt from the gain rule)."""
        quality = naturalness(crop, self.base_niqe)
        comps: dict[str, float] = {"naturalness": quality, "fidelity": fidelity(crop, self.unrestored, FACE_STEP)}
        if self.before:
            small = self._native(crop)
            comps["residual"] = float(np.mean([residual(small, k, b) for k, b in self.before.items()]))
        w = WEIGHTS[self.priority]
        mix = sum(w[k] * v for k, v in comps.items()) / sum(w[k] for k in comps)
        drift = self.drift(crop)
        penalty = 0.0 if drift is None else drift / self.limit
        total = W_QUALITY * quality + W_MIX * mix - W_IDENTITY * penalty
        rejected = None
        if drift is not None and drift > self.limit:
            rejected = f"identity drift {drift:.1f}° > {self.limit:.1f}°"
        elif drift is not None and not (generative or baseline) and drift > self.base_drift - IDENTITY_GAIN_DEG:
            rejected = (
                f"identity drift {drift:.1f}° not {IDENTITY_GAIN_DEG:.1f}° below the unrestored face's "
                f"{self.base_drift:.1f}°"
            )
        elif drift is None and generative:
            rejected = f"identity cannot be measured ({self.identity_note}); generative face models refused"
        out: dict[str, float | None] = {
            "quality": quality,
            "mix": mix,
            **{f"mix_{k}": v for k, v in comps.items() if k != "naturalness"},
            "identity_drift_deg": drift,
            "identity_penalty": W_IDENTITY * penalty,
        }
        return FaceScore(
            round(float(total), 6),
            {k: (None if v is None else round(float(v), 4)) for k, v in out.items()},
            rejected,
        )
