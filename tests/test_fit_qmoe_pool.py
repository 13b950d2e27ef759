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
