"""Upscale factor rule, agenda building, ordering and the bounded rollback search."""

from __future__ import annotations

import itertools

import pytest

from fourkagent.planning.agenda import build_steps, upscale_factor
from fourkagent.planning.order import order_steps
from fourkagent.planning.search import ROOT, new_node, path_steps, rollback
from fourkagent.profiles import load_profile
from fourkagent.vocabulary import SR2, SR4


@pytest.mark.parametrize(
    ("side", "factor"), [(256, 16), (300, 16), (500, 8), (512, 8), (1000, 4), (1024, 4), (2000, 2), (2048, 2), (4000, 1), (5000, 1)]
)
def test_4k_factor_rule(side: int, factor: int) -> None:
    assert upscale_factor(side, side // 2, load_profile("Gen4K-P")) == factor


def test_explicit_scale_and_sr_steps() -> None:
    assert upscale_factor(4000, 3000, load_profile("ExpSR-s4-F")) == 4
    assert build_steps([], 8, load_profile("ExpSR-s8-F")) == [SR2, SR4]
    assert build_steps(["noise"], 16, load_profile("Gen4K-P")) == ["denoising", SR4, SR4]
    assert build_steps(["noise", "dark"], 4, load_profile("Gen4K-P")) == ["denoising", SR4]  # brightening off
    assert build_steps(["noise", "dark"], 4, load_profile("GenMIR-P")) == ["denoising", "brightening", SR4]
    assert build_steps(["noise"], 4, load_profile("ExpSR-s4-F")) == [SR4]  # explicit task list wins


def test_order_follows_experience_and_keeps_sr_last() -> None:
    order = order_steps([SR4, "brightening", "denoising", "deraining", "dehazing"])
    assert order[-1] == SR4
    assert order.index("denoising") < order.index("brightening")
    assert order.index("deraining") < order.index("dehazing")


def test_restoration_moves_after_sr_only_for_a_clear_gain_in_past_failures() -> None:
    """A restoration step after ×4 SR runs on 16 times the pixels: a few points fewer failures with SR first do
    not pay for that; many do."""
    slight = {("denoising", SR4): (0.30, 0.25)}  # SR first fails 5 points less
    clear = {("denoising", SR4): (0.45, 0.10)}
    assert order_steps(["denoising", SR4], experience=slight) == ["denoising", SR4]
    assert order_steps(["denoising", SR4], experience=clear) == [SR4, "denoising"]
    assert order_steps(["denoising", SR4, SR4], experience=clear) == [SR4, "denoising", SR4]  # not after both


def test_order_avoids_tried_first_steps() -> None:
    assert order_steps(["denoising", SR4], avoid_first={"denoising"})[0] == SR4


def _simulate(steps: list[str]) -> tuple[list[tuple[str, str]], str, list[str], dict]:
    """Every step always fails: run the search to its compromise, recording (node, first step) pairs."""
    tree = {ROOT: {"id": ROOT, "parent": None, "step": None, "children": {}, "failed": False, "best": None, "score": None}}
    cursor, agenda, tried = ROOT, order_steps(steps), []
    for _ in range(1000):
        step = agenda[0]
        tried.append((cursor, step))
        tree, child = new_node(tree, cursor, step, score=0.1 + 0.01 * len(tree), failed=True)
        res = rollback(tree, cursor, step, agenda[1:], steps)
        tree, cursor = res.tree, res.cursor
        if res.compromise:
            return tried, cursor, res.agenda, tree
        agenda = order_steps(res.agenda, avoid_first=set(tree[cursor]["children"]))
    raise AssertionError("rollback search did not terminate")


def test_rollback_search_visits_each_first_step_once_and_compromises() -> None:
    steps = ["denoising", "dehazing", SR4]
    tried, best, remaining, tree = _simulate(steps)
    assert len(tried) == len(set(tried)), "a (node, first step) pair was tried twice"
    assert {s for n, s in tried if n == ROOT} == set(steps)
    # compromise continues from the best-scoring image seen, with the steps it still lacks
    assert tree[best]["score"] == max(n["score"] for n in tree.values() if n["failed"])
    assert sorted(remaining + path_steps(tree, best)) == sorted(steps)


def test_rollback_moves_to_parent_when_node_is_exhausted() -> None:
    steps = ["denoising", SR4]
    tree = {ROOT: {"id": ROOT, "parent": None, "step": None, "children": {}, "failed": False, "best": None, "score": None}}
    tree, n1 = new_node(tree, ROOT, "denoising", score=0.9)
    tree, n2 = new_node(tree, n1, SR4, score=0.2, failed=True)
    res = rollback(tree, n1, SR4, [], steps)
    assert res.cursor == ROOT and res.agenda == ["denoising", SR4] and not res.compromise
    assert res.backtracked == [n1]
    tree, n3 = new_node(res.tree, ROOT, SR4, score=0.3, failed=True)
    res = rollback(tree, ROOT, SR4, ["denoising"], steps)
    assert res.compromise and res.cursor == n3  # best image seen among the failures
    assert res.agenda == ["denoising"]
    assert path_steps(res.tree, res.cursor) == [SR4]


def test_orderings_are_finite() -> None:
    for steps in (["denoising"], ["denoising", SR4], ["deraining", "dehazing", "denoising", SR4]):
        tried, _, _, _ = _simulate(steps)
        assert len(tried) <= sum(len(list(itertools.permutations(steps, k))) for k in range(1, len(steps) + 1))


@pytest.mark.parametrize(("side", "factor", "long_out"), [
    (491, 8, 4000),  # x8 gives 3928: finished with a x1.018 resize, not x16 (7856 px)
    (900, 4, 4000),  # x4 gives 3600 (x8 would be 7200)
    (1700, 2, 4000),
    (400, 8, 4000),  # 3200 * 1.25 = 4000: the edge of the rule
    (399, 16, 6384),  # just beyond: x16
    (256, 16, 4096),
    (160, 16, 2560),  # the largest factor falls short, and says so
])
def test_4k_reaches_4000_the_cheap_way(side: int, factor: int, long_out: int) -> None:
    from fourkagent.planning.agenda import output_size

    profile = load_profile("Gen4K-P")
    assert upscale_factor(side, side // 2, profile) == factor
    (w, h), why = output_size(side, side // 2, factor, profile)
    assert max(w, h) == long_out and abs(w / h - 2) < 0.01
    assert ("resize" in why) == (long_out == 4000 and side * factor < 4000)
    assert ("short of" in why) == (long_out < 4000)


def test_explicit_scale_output_is_exactly_factor_times() -> None:
    from fourkagent.planning.agenda import output_size

    assert output_size(491, 300, 4, load_profile("ExpSR-s4-F")) == ((1964, 1200), "")


def test_vocabulary_is_consistent() -> None:
    from fourkagent import vocabulary as V

    assert V.RESTORABLE_KINDS == tuple(k for k in V.KINDS if k != "low resolution")
    assert set(V.DEGRADATION_TO_STEP.values()) <= set(V.CATEGORIES) and set(V.RESTORE_TASKS) <= {*V.CATEGORIES, V.SR2}
    assert {V.STEP_TO_DEGRADATION[s]: s for s in V.STEP_TO_DEGRADATION} == V.DEGRADATION_TO_STEP
    assert [V.step_scale(s) for s in ("denoising", V.SR2, V.SR4)] == [1, 2, 4]
    assert [V.step_category(s) for s in ("dehazing", V.SR2, V.SR4)] == ["dehazing", V.SR4, V.SR4]
    assert V.is_sr_step(V.SR2) and V.is_sr_step(V.SR4) and not V.is_sr_step("brightening")
