"""The training side of the pool refit (training/fit_qmoe_pool.py): do-no-harm margins and merging data sets."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))


def test_do_no_harm_margin_is_the_smallest_that_keeps_the_pick_at_least_the_safe_tool() -> None:
    from fit_qmoe_pool import choose_margin, harmless, harmless_restoration

    # 10 SR cases: SPAN truly wins by 1 dB in 6 (predicted +1.2 over Lanczos), loses 2 dB in 4 (predicted +0.3)
    step, n = "super-resolution", 10
    win = np.arange(n) < 6
    ex = {"case": np.repeat(np.arange(n), 2), "step": np.array([step] * 2 * n),
          "tool": np.array(["sr_lanczos_x4", "sr_span_x4"] * n),
          "gain": np.ravel([[0.5, 1.5 if w else -1.5] for w in win])}
    pred = np.ravel([[0.2, 1.4 if w else 0.5] for w in win])
    assert harmless(ex, pred, step, 0.0) == pytest.approx((0.6, np.mean(np.where(win, 1.0, -2.0))))
    margin, ok, gained, table = choose_margin(lambda m: harmless(ex, pred, step, m), 0.95)
    assert 0.3 <= margin <= 1.2 and (ok, gained) == pytest.approx((1.0, 0.6))
    assert harmless(ex, pred, step, margin) == pytest.approx((1.0, 0.6))
    assert all(row[1] < 0.95 for row in table if row[0] < margin)  # the smallest that meets the share
    # restoration: doing nothing is the safe choice; a doubtful expert is dropped
    rex = {"case": np.arange(4), "step": np.array(["dehazing"] * 4), "gain": np.array([3.0, 2.0, -8.0, -6.0])}
    rpred = np.array([2.0, 1.5, 0.3, 0.1])
    assert harmless_restoration(rex, rpred, "dehazing", 0.0)[0] == 0.5
    assert harmless_restoration(rex, rpred, "dehazing", 1.0) == pytest.approx((1.0, 1.25))


def test_per_tool_margins_hold_back_only_the_tool_the_model_over_predicts() -> None:
    """SPAN's predictions are trustworthy, back-projection's are inflated by 2 dB: one uniform margin has to
    hold both back; per-tool margins keep SPAN's true wins and stop back-projection's false ones."""
    from fit_qmoe_pool import choose_margin, choose_tool_margins, harmless

    step, n, rng = "super-resolution", 20, np.random.default_rng(0)
    tools = ["sr_lanczos_x4", "sr_span_x4", "sr_backprojection_x4"]
    span_gain = rng.uniform(0.3, 1.0, n)  # SPAN wins by 0.3..1 dB, predicted exactly
    bp_gain = rng.uniform(-1.0, -0.3, n)  # back-projection loses, predicted +1..1.7 over Lanczos
    ex = {"case": np.repeat(np.arange(n), 3), "photo": np.repeat(np.arange(n) // 4, 3), "step": np.array([step] * 3 * n),
          "tool": np.array(tools * n), "gain": np.ravel(np.c_[np.zeros(n), span_gain, bp_gain])}
    pred = np.ravel(np.c_[np.zeros(n), span_gain, bp_gain + 2.0])
    uniform, ok, gained, _ = choose_margin(lambda m: harmless(ex, pred, step, m), 0.95)
    per_tool, tok, tgained = choose_tool_margins(ex, pred, step, 0.95)
    assert tok == 1.0 and tgained == pytest.approx(span_gain.mean())  # every SPAN win kept
    assert per_tool["sr_backprojection_x4"] > per_tool["sr_span_x4"]
    assert tgained > gained  # the uniform margin high enough to stop back-projection also drops SPAN wins
    assert harmless(ex, pred, step, per_tool) == pytest.approx((tok, tgained))


def test_merge_tool_rows_matches_cases_by_photo_step_and_order() -> None:
    """Rows of one more expert, generated apart (other case ids), join the cases they belong to; data of other
    cases are refused."""
    from fit_qmoe_pool import merge_tool_rows

    from fourkagent.scoring.dataset import COLUMNS, NONE_TOOL

    def data(tools: list[str], first_case: int, shift: float = 0.0) -> dict[str, np.ndarray]:
        rows = {k: [] for k in COLUMNS}
        for ph in range(2):
            for k in range(2):
                case = first_case + 2 * ph + k
                for t in [NONE_TOOL, *tools]:
                    x = np.full(3, 10.0 * ph + k + shift) + (0 if t == NONE_TOOL else 0.5)
                    for key, val in zip(COLUMNS, (ph, "super-resolution", case, True, t, x, float(case), np.zeros(2), np.nan, np.nan)):
                        rows[key].append(val)
        return {k: np.asarray(v) for k, v in rows.items()}

    base, extra = data(["sr_lanczos_x4"], 0), data(["sr_lanczos_x4", "sr_new_x4"], 100)
    merged = merge_tool_rows(base, extra, "sr_new_x4")
    new = merged["tool"] == "sr_new_x4"
    assert new.sum() == 4 and sorted(merged["case"][new]) == [0, 1, 2, 3]
    assert np.array_equal(merged["gain"][new], [100.0, 101.0, 102.0, 103.0])  # carried from the extra rows
    assert len(merged["tool"]) == len(base["tool"]) + 4
    with pytest.raises(ValueError):
        merge_tool_rows(base, data(["sr_new_x4"], 100, shift=1.0), "sr_new_x4")


def test_real_cases_hold_every_restoration_step_with_degradations_and_false_alarms() -> None:
    """Each restoration step gets its realistic degradations (measurably worse than the photo) and false
    alarms; the cases are the same on every call (fixed seeds) and differ between photos."""
    from conftest import photo

    from fourkagent.imaging import psnr
    from fourkagent.scoring.dataset import REAL_CASES, real_cases

    clean = np.ascontiguousarray(photo("astronaut")[100:164, 180:244])
    got = real_cases(clean, 3)
    assert {c[0] for c in got} == set(REAL_CASES)
    for step, (present, alarms) in REAL_CASES.items():
        mine = [c for c in got if c[0] == step]
        assert [c[4] for c in mine] == [True] * len(present) + [False] * len(alarms)
        assert all(c[1] == 1 and c[2].shape == clean.shape and c[3] is clean for c in mine)
        assert all(psnr(c[2], clean) < 40 for c in mine if c[4])  # really degraded
    again, other = real_cases(clean, 3), real_cases(clean, 4)
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(got, again))
    assert not all(np.array_equal(a[2], b[2]) for a, b in zip(got, other))


def test_restoration_data_are_made_in_shards_resumed_and_merged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two shards make disjoint photos; a photo already made is not made again; the merged data have one case id
    per case across photos and each photo's index."""
    import fit_qmoe_pool

    views = {n: np.full((8, 8, 3), v, np.float32) for n, v in (("a", 0.2), ("b", 0.5), ("c", 0.8))}
    made: list[str] = []

    def fake_generate(photos, registry, log=None, make_cases=None):  # two cases of two rows per photo
        (name,) = photos
        made.append(name)
        return {"photo": np.zeros(4, int), "step": np.array(["denoising"] * 4), "case": np.array([0, 0, 1, 1]),
                "present": np.ones(4, bool), "tool": np.array(["(none)", "t", "(none)", "t"]),
                "x": np.zeros((4, 2)), "gain": np.array([0.0, 1.0, 0.0, 2.0]), "s": np.zeros((4, 2)),
                "sure": np.full(4, np.nan), "lpips": np.full(4, np.nan)}

    monkeypatch.setattr(fit_qmoe_pool, "pool_views", lambda split, side: views)
    monkeypatch.setattr(fit_qmoe_pool, "generate", fake_generate)
    cache = str(tmp_path / "rr.npz")
    assert fit_qmoe_pool.restoration_dataset("fit", 8, cache, print, (0, 2)) is None  # photos a, c
    assert made == ["a", "c"]
    data = fit_qmoe_pool.restoration_dataset("fit", 8, cache, print, (1, 2))  # b, then all are there
    assert made == ["a", "c", "b"] and data is not None
    assert data["case"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert data["photo"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    again = fit_qmoe_pool.restoration_dataset("fit", 8, cache, print, (0, 1))  # from the merged cache
    assert made == ["a", "c", "b"] and np.array_equal(again["case"], data["case"])


def test_clean_input_rule_lowers_the_margin_only_where_inputs_measure_clean() -> None:
    """SPAN wins by ~1 dB on clean inputs (predicted +1.5 over Lanczos) and loses 2 dB on noisy ones (predicted
    +2): the uniform margin must hold both back; the rule gives the inputs measuring clean (σ̂ < cut-off, no
    JPEG lattice) a small margin, keeps the noisy ones held back, and finds a cut-off between the two groups."""
    from fit_qmoe_pool import choose_margin, harmless
    from fit_sr_margins import choose_clean_rule, clean_cases

    step, n, rng = "super-resolution", 24, np.random.default_rng(0)
    noisy = np.arange(n) % 2 == 1
    sigma = np.where(noisy, rng.uniform(12, 20, n), rng.uniform(1, 5, n))
    quality = np.where(np.arange(n) % 6 == 3, 50.0, 0.0)  # some noisy ones also blocky
    gain = np.where(noisy, -2.0, rng.uniform(0.5, 1.5, n))
    ex = {"case": np.repeat(np.arange(n), 2), "photo": np.repeat(np.arange(n), 2), "step": np.array([step] * 2 * n),
          "tool": np.array(["sr_lanczos_x4", "sr_span_x4"] * n), "gain": np.ravel(np.c_[np.zeros(n), gain])}
    pred = np.ravel(np.c_[np.zeros(n), np.where(noisy, 2.0, 1.5)])
    measures = {(i, step, 0): (float(sigma[i]), float(quality[i])) for i in range(n)}
    margin, ok, gained, _ = choose_margin(lambda m: harmless(ex, pred, step, m), 0.95)
    assert ok == 1.0 and gained == 0.0  # the uniform margin keeps Lanczos everywhere
    rule = choose_clean_rule(ex, pred, step, measures, margin, 0.95)
    assert 5 <= rule["noise_sigma_below"] <= 10 and rule["margin_db"] < 1.5
    assert rule["at_least_safe"] == 1.0 and rule["db_over_safe"] == pytest.approx(gain[~noisy].sum() / n)
    assert rule["clean_cases"] == int((~noisy).sum())
    assert np.array_equal(clean_cases(ex, measures, rule["noise_sigma_below"])[1::2], ~noisy)


def test_blocky_inputs_keep_the_safe_tool_when_every_margin_loses_there() -> None:
    """On inputs with a JPEG lattice the sharper expert loses 1 dB though predicted +2: the chosen blocky margin
    is the one that keeps Lanczos (0 dB lost), not a smaller one."""
    from fit_sr_margins import choose_blocky_margin

    step, n = "super-resolution", 10
    ex = {"case": np.repeat(np.arange(n), 2), "photo": np.repeat(np.arange(n), 2), "step": np.array([step] * 2 * n),
          "tool": np.array(["sr_lanczos_x4", "sr_span_x4"] * n), "gain": np.ravel(np.c_[np.zeros(n), -np.ones(n)])}
    pred = np.ravel(np.c_[np.zeros(n), np.linspace(1.0, 3.0, n)])
    measures = {(i, step, 0): (3.0, 60.0 if i % 2 else 0.0) for i in range(n)}  # odd cases blocky
    got = choose_blocky_margin(ex, pred, step, measures)
    assert got["cases"] == n // 2 and got["margin_db"] > 3.0 and got["at_least_safe"] == 1.0 and got["db_over_safe"] == 0.0
