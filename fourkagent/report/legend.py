"""Plain-language explanations of the score columns the HTML report shows.

The keys are the component names the scorers put in each candidate's ``components``:
``scoring/qmoe.py`` (offline Q-MoE: the learned gain, naturalness and the raw features in ``_SHOWN``),
``scoring/paper.py`` (HPSv2.1 and the reference's NR-IQA mix) and ``faces/score.py`` (face candidates).
A key without an entry is still listed in the legend, marked as unexplained, so a new component never
breaks the report.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

STEP_COLUMNS: dict[str, str] = {
    "Q": "The candidate's overall score, used to pick the expert (higher is better). With the offline scorer "
    "0.5 means 'no better than doing nothing'; a step whose best Q is under the profile's threshold is rolled back.",
    "seconds": "Time the expert took to produce this candidate.",
    "predicted s": "Its predicted time (measured seconds per output megapixel × this step's output size): what the "
                   "run's time budget was charged.",
    "predicted_gain_db": "PSNR gain over doing nothing (the step input, bicubic-upscaled for super-resolution) that "
    "the learned Q-MoE model predicts for this candidate, in dB, after any do-no-harm margin; 0 = no better.",
    "naturalness": "0.5 + d_niqe / 10, clipped to [0, 1]: above 0.5 the candidate looks more natural than the "
    "step input by NIQE; part of Q for perception-first profiles.",
    "d_niqe": "NIQE of the step input (bicubic-upscaled for super-resolution) minus the candidate's NIQE; NIQE "
    "measures unnatural image statistics, so positive means cleaner-looking.",
    "coarse_psnr": "PSNR between the candidate and the step input, both averaged 4× down, divided by 10 (3 = 30 dB, "
    "capped at 6): how well the candidate keeps the input's overall content and tones.",
    "removed_ratio": "How much the candidate removed from the input (standard deviation of the difference, central "
    "crop) relative to the estimated noise level: about 1 when only noise is removed, much more when detail goes too.",
    "exposure_error": "4 × the distance of the candidate's median brightness from mid-grey (0.45): 0 = well exposed, "
    "larger = too dark or too bright.",
    "sure_ratio": "Denoising steps: Stein's unbiased estimate of the denoiser's error relative to doing nothing "
    "(1 = no better, 0 = perfect), computed without the clean image on a central crop.",
    "do_no_harm_db": "Fidelity-first profiles: the margin in dB taken off this candidate's predicted gain because it is "
    "not the step's safe choice (Lanczos for super-resolution, keeping the input for restoration).",
    "model_gain_db": "Fidelity-first super-resolution: the model's own predicted gain for the safe choice (Lanczos) "
    "where it was below doing nothing; the step counts Lanczos as at least as good as doing nothing (0 dB), since an "
    "SR step must upscale and Lanczos is what the image would get without the agent.",
    "hpsv2.1": "Human Preference Score v2.1 of the candidate for the perceiver's description (paper scorer); higher "
    "is preferred by people.",
    "clipiqa+": "CLIP-IQA+ no-reference quality (0 to 1, higher is better; paper scorer).",
    "maniqa": "MANIQA no-reference quality (0 to 1, higher is better; paper scorer).",
    "musiq": "MUSIQ no-reference quality (about 0 to 100, higher is better; paper scorer).",
    "niqe": "NIQE naturalness distance (lower is better; paper scorer).",
    "mix": "The reference's metric mix (CLIP-IQA+ + MANIQA + 0.01·MUSIQ + (1 − NIQE/10)) / 4, added to the HPS to "
    "form Q (paper scorer).",
}
"""Columns of the per-step candidate tables (Q-MoE components, and the paper scorer's)."""

FACE_COLUMNS: dict[str, str] = {
    "score": "The face candidate's score: 0.5·quality + 0.5·mix − identity_penalty (higher is better).",
    "quality": "Naturalness of the face crop: 0.5 + (NIQE of the unrestored face − NIQE of this one) / 10, "
    "clipped to [0, 1]; 0.5 = as natural as doing nothing.",
    "mix": "Weighted mean of quality, mix_fidelity and mix_residual (weights set by the profile's priority).",
    "mix_fidelity": "Consistency with the unrestored face: PSNR between the two crops, both blurred, mapped to [0, 1] "
    "(15 dB → 0, 40 dB → 1).",
    "mix_residual": "Share of the input's detected degradations removed from the face: 0.5 = unchanged, 1 = all "
    "removed, below 0.5 = worse.",
    "identity_drift_deg": "Angle between the face-recognition embeddings of this crop and of the input's face, in "
    "degrees: larger means it looks less like the same person.",
    "identity_penalty": "0.3 × identity drift / the drift limit, subtracted from the score.",
}
"""Columns of the face candidate tables (``faces/score.py``)."""

UNEXPLAINED = "No description for this column yet."


def legend_html(keys: Iterable[str], columns: dict[str, str], title: str = "What the columns mean") -> str:
    """A ``<dl class="legend">`` with one entry per key (in the given order, duplicates dropped); keys
    without an explanation are listed with :data:`UNEXPLAINED`."""
    seen = list(dict.fromkeys(keys))
    if not seen:
        return ""
    items = "".join(
        f'<dt data-key="{escape(k)}">{escape(k)}</dt>'
        + (f"<dd>{escape(columns[k])}</dd>" if k in columns else f'<dd class="sub">{UNEXPLAINED}</dd>')
        for k in seen
    )
    return f'<details class="legend-box" open><summary>{escape(title)}</summary><dl class="legend">{items}</dl></details>'
