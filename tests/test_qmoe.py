"""The learned offline Q-MoE: centred on "do nothing", prefers real improvements, ranks experts sensibly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import photo

from fourkagent import degrade
from fourkagent.imaging import luma, psnr
from fourkagent.scoring.dataset import NONE_TOOL, cross_validate, experts_only, step_inputs, uses_sure
from fourkagent.scoring.features import (
    NAMES, STATE, _autocorr, _local_gain_spread, features, reference, state, sure_feature,
)
from fourkagent.scoring.learned import CAP_ORDER_DB, GRID, PRIORS, fit, fit_rank, fit_step, predict, shipped_model
from fourkagent.scoring.qmoe import DEFAULT_THRESHOLD, gain_to_q, score_candidates
from fourkagent.scoring.sure import probe_sigma, sure_ratio
from fourkagent.tools.registry import MAIN_REGISTRY

CLEAN = photo("coffee")[:192, 100:292]


def test_gain_mapping_is_centred() -> None:
    assert gain_to_q(0.0) == 0.5 and gain_to_q(3.0) > 0.8 and gain_to_q(-3.0) < 0.2
    assert gain_to_q(-0.1) > DEFAULT_THRESHOLD > gain_to_q(-1.0)


def test_shipped_model_covers_every_step_with_tools() -> None:
    steps = shipped_model()["steps"]
    for step in ("denoising", "deraining", "dehazing", "motion deblurring", "defocus deblurring",
                 "jpeg compression artifact removal", "brightening", "super-resolution", "super-resolution_2x"):
        assert step in steps, step


def test_denoised_beats_doing_nothing() -> None:
    noisy = degrade.add_noise(CLEAN, 25, seed=4)
    den = MAIN_REGISTRY.get("denoise_nlm")(noisy)
    assert psnr(den, CLEAN) > psnr(noisy, CLEAN) + 2
    s_den, s_none = score_candidates([den, noisy], noisy, "denoising", "fidelity")
    assert s_den.score > DEFAULT_THRESHOLD and s_den.score > s_none.score
    assert s_none.components["predicted_gain_db"] < s_den.components["predicted_gain_db"]


def test_neural_sr_beats_interpolation_on_a_held_out_view() -> None:
    view = np.ascontiguousarray(np.fliplr(CLEAN))  # flipped: not one of the training views
    lr = degrade.downscale(view, 4)
    outs = {t: MAIN_REGISTRY.get(t)(lr) for t in ("sr_lanczos_x4", "sr_span_x4")}
    if any(MAIN_REGISTRY.get(t).unavailable_reason() for t in outs):
        pytest.skip("SPAN weights not installed")
    assert psnr(outs["sr_span_x4"], view) > psnr(outs["sr_lanczos_x4"], view)
    s_lz, s_span = score_candidates(list(outs.values()), lr, "super-resolution", "fidelity")
    assert s_span.score > s_lz.score


def test_model_is_anchored_at_doing_nothing() -> None:
    rng = np.random.default_rng(0)
    dx = rng.normal(size=(400, 5))
    y = 2.0 * dx[:, 0] - 1.0 * dx[:, 1] ** 2
    model = fit(dx, y, ridge=1.0)
    assert abs(float(predict(model, np.zeros((1, 5)))[0])) < 1e-9
    pred = predict(model, dx)
    assert np.corrcoef(pred, y)[0, 1] > 0.95


def test_ranking_fit_picks_the_best_candidate_of_each_case() -> None:
    """Across cases a feature tracks the level of the gain; within a case another decides the winner."""
    rng = np.random.default_rng(1)

    def cases(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        level = rng.normal(0.0, 3.0, n).repeat(3)
        within = rng.normal(0.0, 1.0, 3 * n)
        dx = np.stack([level + rng.normal(0.0, 1.0, 3 * n), within - 0.5 * level, rng.normal(size=3 * n)], 1)
        return dx, level + 0.5 * within, np.arange(n).repeat(3)

    dx, y, case = cases(200)
    model = fit_rank(dx, y, case, l2=0.003, logit_db=2.0)
    assert abs(float(predict(model, np.zeros((1, 3)))[0])) < 1e-9  # one candidate doing nothing: 0 dB
    dx_t, y_t, case_t = cases(200)

    def picked_best(pred: np.ndarray) -> float:
        return float(np.mean([np.argmax(pred[case_t == c]) == np.argmax(y_t[case_t == c]) for c in range(200)]))

    ranked = picked_best(predict(model, dx_t))
    assert ranked > 0.9
    assert ranked >= picked_best(predict(fit(dx, y), dx_t))


def test_predictions_do_not_extrapolate_past_the_training_range() -> None:
    rng = np.random.default_rng(2)
    dx = rng.normal(size=(300, 2))
    y = 1.5 * dx[:, 0]
    model = fit_rank(dx, y, np.arange(100).repeat(3))
    far = predict(model, np.array([[50.0, 0.0], [0.5, 0.0], [-50.0, 0.0]]))
    assert far[0] <= y.max() + 1e-9  # a feature change far outside the data is bounded
    assert 0.3 < far[1] < 1.5  # inside the data the model still reads ~1.5 dB per unit
    assert far[2] > predict(model, dx).min() - 0.1  # and below: changes are clipped to the training range
    a, b = predict(model, np.array([[5.0, 0.0], [6.0, 0.0]]))
    assert a <= b <= y.max() and b - a < 0.05  # past the training range: (nearly) a tie, left to the registry order


def test_ranking_fit_stays_finite_when_pairs_are_separable_and_dB_weights_are_large() -> None:
    """Cases whose candidates differ by tens of dB and are perfectly ordered by one feature (like brightening)
    once drove the pairwise correction to thousands of dB, so every candidate saturated at the bound."""
    rng = np.random.default_rng(3)
    dx = rng.normal(size=(300, 3))
    y = np.clip(12.0 * dx[:, 0], -15, 15)
    case = np.arange(100).repeat(3)
    model = fit_rank(dx, y, case)
    pred = predict(model, dx)
    assert np.abs(pred).max() < 40.0
    assert len(np.unique(np.round(pred[pred > 0], 3))) > 0.9 * np.sum(pred > 0)  # not all saturated at the bound
    picks = [np.argmax(pred[case == c]) == np.argmax(y[case == c]) for c in range(100)]
    assert np.mean(picks) > 0.95


def test_state_interactions_learn_that_a_change_helps_only_some_inputs() -> None:
    """The same feature change gains on a "dark" input and loses on a normal one; doing nothing stays 0 dB."""
    rng = np.random.default_rng(4)
    dark = rng.random(600)
    s = np.stack([dark, rng.random(600)], 1)
    dx = rng.normal(1.0, 0.5, size=(600, 2))
    y = 6.0 * dx[:, 0] * (dark - 0.5)
    model = fit(dx, y, ridge=1.0, s=s, state_cols=[0])
    probe = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    gain_dark, gain_normal, nothing = predict(model, probe, np.array([[0.9, 0.5], [0.1, 0.5], [0.9, 0.5]]))
    assert gain_dark > 1.0 and gain_normal < -1.0 and abs(nothing) < 1e-9
    assert np.all(predict(fit(dx, y, ridge=1.0), probe[:2]) * np.array([1, -1]) < 1.0)  # without state: cannot tell


def test_penalties_are_chosen_by_cross_validation_over_photos() -> None:
    rng = np.random.default_rng(5)
    dx = rng.normal(size=(240, 3))
    y = 3.0 * dx[:, 0] - dx[:, 1] + rng.normal(0.0, 0.3, 240)
    case = np.arange(80).repeat(3)
    model = fit_step(dx, y, case, case % 8, keep_db=-0.2)
    assert model["params"] in [dict(p) for p in GRID]
    assert abs(float(predict(model, np.zeros((1, 3)))[0])) < 1e-9
    assert fit_step(dx, y, case, case % 8, keep_db=-0.2) == model  # deterministic


def test_removed_signal_features_tell_noise_from_structure() -> None:
    rng = np.random.default_rng(6)
    white = rng.normal(size=(128, 128)).astype(np.float32)
    smooth = cv2.GaussianBlur(white, (0, 0), 3.0)
    assert abs(_autocorr(white)) < 0.1 and _autocorr(smooth) > 0.9
    y = luma(CLEAN)
    assert _local_gain_spread(y, 0.5 + 1.5 * (y - 0.5)) < 0.02  # a global stretch changes contrast evenly
    ramp = np.linspace(0.3, 2.0, y.shape[0], dtype=np.float32)[:, None]
    assert _local_gain_spread(y, 0.5 + ramp * (y - 0.5)) > 0.2  # a depth-like (row-dependent) one does not


def test_reblur_evidence_prefers_the_sharp_truth_over_blur_and_ringing() -> None:
    blurred = degrade.motion_blur(CLEAN, 15, 30.0)
    ref = reference(blurred, "motion deblurring")
    assert ref.psf is not None and reference(blurred, "denoising").psf is None
    at = {n: NAMES.index(n) for n in ("reblur_residual", "ringing")}
    sharpened = np.clip(CLEAN + 1.5 * (CLEAN - cv2.GaussianBlur(CLEAN, (0, 0), 1.5)), 0, 1).astype(np.float32)
    truth, none, ring = (features(c, ref) for c in (CLEAN, blurred, sharpened))
    assert truth[at["reblur_residual"]] < none[at["reblur_residual"]] - 6.0  # the truth re-blurs to the input
    assert ring[at["ringing"]] > truth[at["ringing"]] + 0.5  # halos leave the input's local range
    assert features(CLEAN, reference(blurred, "denoising"))[[at["reblur_residual"], at["ringing"]]].tolist() == [0, 0]


TONE = ("exposure_error", "median_luma", "p99_luma")


def test_tone_features_at_training_sizes_are_statistics_of_the_whole_image() -> None:
    """The model was fitted on images of at most 256 px: there the tone features are the whole image's, unsubsampled."""
    small = cv2.resize(photo("astronaut"), (256, 256), interpolation=cv2.INTER_AREA)
    for step, inp in (("denoising", degrade.add_noise(small, 20, seed=1)), ("super-resolution", small[::4, ::4].copy())):
        ref = reference(inp, step)
        x, st, y = features(small, ref), state(ref), luma(small)
        assert x[[NAMES.index(k) for k in TONE]].tolist() == [
            abs(float(np.median(y)) - 0.45) * 4.0, float(np.median(y)) * 4.0, float(np.percentile(y, 99)) * 4.0]
        yb = luma(ref.base)
        assert st[[STATE.index("in_median_luma"), STATE.index("in_p99_luma")]].tolist() == [
            float(np.median(yb)), float(np.percentile(yb, 99))]


def test_tone_features_of_a_4k_image_measure_the_whole_image() -> None:
    """A Lanczos x4 keeps the tones: 1024 -> 4096 px reads like 256 -> 1024 and like the 256-px image (the central
    crop of a 4K image is a patch of one object: exposure_error 0.78 here, 0.9 for every candidate of the 4K demo)."""
    def up(a: np.ndarray) -> np.ndarray:
        return np.clip(cv2.resize(a, None, fx=4, fy=4, interpolation=cv2.INTER_LANCZOS4), 0, 1).astype(np.float32)

    small = cv2.resize(photo("astronaut"), (256, 256), interpolation=cv2.INTER_AREA)
    mid = up(small)
    at = [NAMES.index(k) for k in TONE]
    x_small = features(small, reference(small, "denoising"))[at]
    x_mid = features(mid, reference(small, "super-resolution"))[at]
    ref_big = reference(mid, "super-resolution")
    x_big = features(up(mid), ref_big)[at]
    assert np.abs(x_mid - x_small).max() < 0.03 and np.abs(x_big - x_small).max() < 0.03
    assert abs(state(ref_big)[STATE.index("in_median_luma")] - float(np.median(luma(small)))) < 0.01


def test_scorer_inputs_match_the_shipped_model() -> None:
    ref = reference(degrade.darken(CLEAN, 0.3), "brightening")
    x, st = features(CLEAN, ref), state(ref)
    assert x.shape == (len(NAMES),) and st.shape == (len(STATE),) and np.isfinite(x).all()
    assert st[STATE.index("in_dark")] > 1.0  # the dark input reads as dark (units of the detector boundary)
    model = shipped_model()
    assert model["features"] == list(NAMES) and model["state"] == list(STATE)


def test_scorer_prefers_the_candidate_sure_says_is_better_when_the_images_tie() -> None:
    """Two candidates with the same pixels (every image feature ties): the lower SURE ratio wins; without
    ratios (old state, a tool that failed the probe) the step still scores with the model's fallback."""
    noisy = degrade.add_noise(CLEAN, 20, seed=5)
    den = MAIN_REGISTRY.get("denoise_wavelet")
    out = den(noisy)
    ratio = sure_ratio(den, noisy, probe_sigma(noisy), out=out)
    assert 0.0 < ratio < 0.6  # a real denoiser on real noise removes most of its power
    model = shipped_model()["steps"]["denoising"]
    assert "sure" in model["extra"] and "fallback" in model
    good, poor, none = score_candidates([out, out, out], noisy, "denoising", "fidelity", sure_ratios=[ratio, 0.9, None])
    assert good.score > poor.score
    assert good.components["sure_ratio"] == round(ratio, 4) and "sure_ratio" not in none.components
    (plain,) = score_candidates([out], noisy, "denoising", "fidelity")
    assert none.score == plain.score and plain.score > DEFAULT_THRESHOLD  # fallback: the denoiser still passes


def test_dataset_feeds_sure_ratios_of_denoising_rows_to_the_model() -> None:
    rng = np.random.default_rng(7)
    n_case, tools = 40, ["a", "b", "c"]
    rows: dict[str, list] = {k: [] for k in ("photo", "step", "case", "present", "tool", "x", "gain", "s", "sure")}
    for c in range(n_case):
        for t in [NONE_TOOL, *tools]:
            ratio = 1.0 if t == NONE_TOOL else float(rng.uniform(0.05, 1.0))
            for k, v in (("photo", c % 8), ("step", "denoising"), ("case", c), ("present", True), ("tool", t),
                         ("x", rng.normal(size=len(NAMES)) * 0.01), ("s", rng.random(len(STATE))), ("sure", ratio),
                         ("gain", 0.0 if t == NONE_TOOL else 10 * np.log10(1 / ratio))):
                rows[k].append(v)
    data = {k: np.asarray(v) for k, v in rows.items()}
    ex = experts_only(data)
    m = np.ones(len(ex["gain"]), bool)
    assert uses_sure(ex, m) and step_inputs(ex, m).shape[1] == len(NAMES) + 1
    assert np.allclose(step_inputs(ex, m)[:, -1], sure_feature(ex["sure"]))
    ex_cv, pred = cross_validate(data)
    picks = [np.argmax(pred[ex_cv["case"] == c]) == np.argmax(ex_cv["gain"][ex_cv["case"] == c]) for c in range(n_case)]
    assert np.mean(picks) > 0.75  # held-out photos: the SURE input orders the candidates (chance: 1/3)


def test_tool_prior_is_learned_when_one_tool_wins_beyond_the_features_and_ignores_unknown_tools() -> None:
    rng = np.random.default_rng(8)
    n = 120
    dx = rng.normal(size=(3 * n, 2))
    tools = np.tile(np.array(["steady", "other", "third"]), n)
    y = 0.5 * dx[:, 0] + rng.normal(0.0, 0.3, 3 * n) + np.where(tools == "steady", 2.0, 0.0)
    case = np.arange(n).repeat(3)
    model = fit_step(dx, y, case, case % 8, keep_db=-0.2, tools=tools)
    prior = model["prior"]
    assert {"blend": prior["blend"], "shrink": prior["shrink"]} in PRIORS[1:]
    probe = np.zeros((2, 2))
    with_prior = predict(model, probe, tools=["steady", "other"])
    assert with_prior[0] > with_prior[1] + 1.0
    unknown = predict(model, probe, tools=["user_tool", None])
    assert np.allclose(unknown, predict(model, probe))  # unknown tools (or none given): no prior
    plain = fit_step(dx, 0.5 * dx[:, 0], case, case % 8, keep_db=-0.2, tools=tools)
    assert "prior" not in plain  # nothing to explain beyond the features: no prior chosen


def test_known_tools_keep_their_order_past_the_gain_bound_and_unknown_tools_tie_at_it() -> None:
    model = {"std": [1.0, 1.0], "coef": [1.0, 0.0], "max_gain": 5.0, "tools": ["a", "b"]}  # gain = dx
    dx = np.array([[9.0], [7.0], [30.0], [4.0]])
    gains = predict(model, dx, tools=["a", "b", "gan", "a"])
    assert gains[0] > gains[1] > 5.0 == gains[2] > gains[3] == 4.0  # a beats b past the bound; gan is capped
    assert gains.max() <= 5.0 + CAP_ORDER_DB
    bare = {k: v for k, v in model.items() if k != "tools"}  # a model saved without its tools: a hard bound
    assert np.allclose(predict(bare, dx, tools=["a", "b", "gan", "a"]), [5.0, 5.0, 5.0, 4.0])


def test_fidelity_sr_on_a_noisy_input_is_not_worse_than_lanczos() -> None:
    """The SR scorer saw noisy small inputs (``dataset.sr_cases``): sharp experts that amplify the noise lose, and
    a fidelity profile's pick is at least as good as Lanczos (do no harm)."""
    view = np.ascontiguousarray(np.flipud(CLEAN))
    lr = degrade.add_noise(degrade.downscale(view, 4), 15, seed=3)
    names = [t for t in ("sr_lanczos_x4", "sr_span_x4", "sr_backprojection_x4", "sr_srmd_x4")
             if not MAIN_REGISTRY.get(t).unavailable_reason()]
    outs = [MAIN_REGISTRY.get(t)(lr) for t in names]
    gains = {t: psnr(o, view) for t, o in zip(names, outs)}
    assert gains["sr_span_x4"] < gains["sr_lanczos_x4"]  # the case is the one that fooled the old scorer
    scores = score_candidates(outs, lr, "super-resolution", "fidelity", tools=names)
    pick = names[int(np.argmax([s.score for s in scores]))]
    assert gains[pick] >= gains["sr_lanczos_x4"] - 0.05, (pick, gains)


def test_do_no_harm_gives_the_safe_tool_a_head_start_only_in_fidelity_profiles() -> None:
    model = shipped_model()["steps"]["super-resolution"]
    assert model.get("safe_tool") == "sr_lanczos_x4" and model.get("safe_margin_db", 0) > 0
    lr = degrade.apply(degrade.downscale(photo("coffee")[:384, 100:484], 4), "noise", 3, seed=1)  # noisy: uniform margin
    outs = [MAIN_REGISTRY.get(t)(lr) for t in ("sr_lanczos_x4", "sr_backprojection_x4")]
    tools = ["sr_lanczos_x4", "sr_backprojection_x4"]
    fid = score_candidates(outs, lr, "super-resolution", "fidelity", tools=tools)
    per = score_candidates(outs, lr, "super-resolution", "perception", tools=tools)
    assert "do_no_harm_db" not in fid[0].components and "do_no_harm_db" not in per[1].components
    margin = model.get("tool_margins_db", {}).get("sr_backprojection_x4", model["safe_margin_db"])
    assert margin > 0 and fid[1].components["do_no_harm_db"] == pytest.approx(-margin)
    saved = dict(model)
    try:
        model["safe_margin_db"], model["tool_margins_db"] = 0.0, {}  # the same model without the head start
        raw = score_candidates(outs, lr, "super-resolution", "fidelity", tools=tools)
    finally:
        model.clear()
        model.update(saved)
    assert raw[0].components == fid[0].components  # the safe tool itself is unchanged
    assert fid[1].components["predicted_gain_db"] == pytest.approx(raw[1].components["predicted_gain_db"] - margin, abs=1e-3)


def test_a_clean_input_gets_the_smaller_sr_margin_a_noisy_or_blocky_one_the_uniform_margin() -> None:
    """The shipped ×4 model's clean-input rule (chosen on the validation split): SPAN's risk is amplified noise
    and blocks, so only an input measuring clean at its own size gets the smaller head start, and one with a JPEG
    lattice the larger ``blocky_margin_db``."""
    from fourkagent.scoring.features import input_noise_jpeg

    model = shipped_model()["steps"]["super-resolution"]
    rule = model["clean_input"]
    assert 0 <= rule["margin_db"] < model["safe_margin_db"]
    tools = ["sr_lanczos_x4", "sr_span_x4"]
    clean = degrade.downscale(photo("coffee")[:384, 100:484], 4)  # 96², as the realistic benchmark's inputs
    noisy = degrade.apply(clean, "noise", 3, seed=1)
    blocky = degrade.apply(clean, "jpeg compression artifact", 3, seed=1)
    assert input_noise_jpeg(clean)[0] < rule["noise_sigma_below"] and input_noise_jpeg(clean)[1] == 0
    assert input_noise_jpeg(noisy)[0] >= rule["noise_sigma_below"] and input_noise_jpeg(blocky)[1] > 0
    blocky_margin = max(model["safe_margin_db"], model.get("blocky_margin_db", 0.0))  # blocks: Lanczos kept
    for lr, margin in ((clean, rule["margin_db"]), (noisy, model["safe_margin_db"]), (blocky, blocky_margin)):
        outs = [MAIN_REGISTRY.get(t)(lr) for t in tools]
        scores = score_candidates(outs, lr, "super-resolution", "fidelity", tools=tools)
        assert "do_no_harm_db" not in scores[0].components
        assert scores[1].components.get("do_no_harm_db", 0.0) == pytest.approx(-margin)


def test_the_safe_sr_tool_is_never_predicted_below_doing_nothing_in_fidelity_profiles() -> None:
    """An SR step must upscale, so Lanczos — what the user gets without the agent — is its floor: on a flat input
    (flat colour patches, like a denoised photo of a wall and unlike every photo of the SR data) the model's own
    Lanczos prediction is far below bicubic, but the fidelity score does not fall below 0.5, so the step passes
    with it instead of rolling back."""
    from fourkagent.scoring.qmoe import DEFAULT_THRESHOLD

    flat = np.zeros((96, 96, 3), np.float32)
    flat[:] = (0.42, 0.38, 0.38)
    flat[:40, :40], flat[:40, 56:] = (0.8, 0.35, 0.4), (0.95, 0.8, 0.3)
    flat[56:, :40], flat[56:, 56:] = (0.75, 0.7, 0.72), (0.6, 0.55, 0.6)
    tools = ["sr_lanczos_x4", "sr_backprojection_x4", "sr_span_x4"]
    outs = [MAIN_REGISTRY.get(t)(flat) for t in tools]
    fid = score_candidates(outs, flat, "super-resolution", "fidelity", tools=tools)
    assert fid[0].components["model_gain_db"] < -1.0  # the model alone: Lanczos far below bicubic
    assert fid[0].components["predicted_gain_db"] == 0.0 and fid[0].score >= 0.5 > DEFAULT_THRESHOLD
    assert max(s.score for s in fid) == fid[0].score  # the step keeps Lanczos
    per = score_candidates(outs, flat, "super-resolution", "perception", tools=tools)  # perceptual: no floor
    assert "model_gain_db" not in per[0].components


def test_perception_profiles_score_sr_with_their_own_models() -> None:
    from fourkagent.scoring.qmoe import step_model

    shipped = shipped_model()
    assert step_model(shipped, "super-resolution", "fidelity") is shipped["steps"]["super-resolution"]
    assert step_model(shipped, "super-resolution", "perception") is shipped["perception_steps"]["super-resolution"]
    assert step_model(shipped, "denoising", "perception") is shipped["steps"]["denoising"]


def test_a_step_model_may_set_its_own_naturalness_weight() -> None:
    """The perceptual ×4 model carries the NIQE weight chosen with it (``training/perceptual_sr.py``)."""
    model = shipped_model()["perception_steps"]["super-resolution"]
    lr = degrade.downscale(CLEAN, 4)
    tools = ["sr_lanczos_x4", "sr_backprojection_x4"]
    outs = [MAIN_REGISTRY.get(t)(lr) for t in tools]
    saved = dict(model)
    try:
        model["naturalness_weight"] = 1.0  # naturalness only
        only_nat = score_candidates(outs, lr, "super-resolution", "perception", tools=tools)
        model["naturalness_weight"] = 0.0  # the model's gain only
        only_gain = score_candidates(outs, lr, "super-resolution", "perception", tools=tools)
    finally:
        model.clear()
        model.update(saved)
    for a, b in zip(only_nat, only_gain):
        assert a.score == pytest.approx(a.components["naturalness"], abs=1e-4)
        assert b.score == pytest.approx(gain_to_q(b.components["predicted_gain_db"]), abs=1e-4)


def test_perceptual_sr_does_not_keep_noise_turned_into_texture() -> None:
    """A noisy small input: SPAN-kendata sharpens the noise into coloured texture (~10 dB below the others),
    SRMD removes the noise it measures, ClearReality and Real-ESRGAN clean it. The perceptual ×4 model (NLPD
    target + NIQE) ranks the texture last; the previous one (PSNR model of clean inputs + NIQE) ranked it first."""
    view = np.ascontiguousarray(np.fliplr(CLEAN))
    lr = degrade.add_noise(degrade.downscale(view, 4), 15, seed=5)
    names = [t for t in ("sr_srmd_x4", "sr_spankendata_x4", "sr_clearreality_x4")
             if not MAIN_REGISTRY.get(t).unavailable_reason()]
    if "sr_spankendata_x4" not in names or len(names) < 2:
        pytest.skip(f"needs SPAN-kendata and another packaged x4 expert, have {names}")
    outs = [MAIN_REGISTRY.get(t)(lr) for t in names]
    truth = np.array([psnr(o, view) for o in outs])
    q = np.array([s.score for s in score_candidates(outs, lr, "super-resolution", "perception", tools=names)])
    worst = int(np.argmin(truth))
    assert names[worst] == "sr_spankendata_x4" and truth[worst] < np.delete(truth, worst).min() - 5  # the case
    assert int(np.argmin(q)) == worst and q[worst] < DEFAULT_THRESHOLD + 0.2, (names, truth, q)
