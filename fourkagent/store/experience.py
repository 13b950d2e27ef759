"""Experience store (SQLAlchemy; SQLite by default, any SQLAlchemy URL works).

Every finished run records its degradation signature, the steps it tried in which order, the tools
that won, scores, rollbacks and time. The planner turns the records of runs with a similar signature
into pairwise ordering failure rates, blended with the paper's distilled experience as a prior.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from fourkagent.planning.order import PAIRWISE_EXPERIENCE

PRIOR_WEIGHT = 10.0
"""Pseudo-count of the paper's experience: after ~10 similar observations the store dominates."""
MIN_SIMILARITY = 0.5
"""Jaccard similarity of degradation signatures below which a past run is ignored."""


class _Base(DeclarativeBase):
    pass


class RunRecord(_Base):
    """One finished run."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created: Mapped[float] = mapped_column(Float)
    profile: Mapped[str] = mapped_column(String(64))
    signature: Mapped[list[str]] = mapped_column(JSON)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    steps: Mapped[list[str]] = mapped_column(JSON)
    order: Mapped[list[str]] = mapped_column(JSON)
    tools: Mapped[list[str]] = mapped_column(JSON)
    scores: Mapped[list[float]] = mapped_column(JSON)
    rollbacks: Mapped[int] = mapped_column(Integer)
    compromise: Mapped[bool] = mapped_column(Boolean)
    seconds: Mapped[float] = mapped_column(Float)


class StepRecord(_Base):
    """One executed step (a node of a run's image tree): what ran before it, after it, and the outcome."""

    __tablename__ = "steps"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    signature: Mapped[list[str]] = mapped_column(JSON)
    step: Mapped[str] = mapped_column(String(64))
    before: Mapped[list[str]] = mapped_column(JSON)
    after: Mapped[list[str]] = mapped_column(JSON)
    tool: Mapped[str | None] = mapped_column(String(128), nullable=True)
    score: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """Similarity of two degradation signatures (two empty signatures are identical)."""
    sa, sb = set(a), set(b)
    return 1.0 if not sa and not sb else len(sa & sb) / len(sa | sb)


class ExperienceStore:
    """Records runs and answers what worked on similar images."""

    def __init__(self, url: str) -> None:
        """Open (and create the tables of) the store at a SQLAlchemy URL."""
        self.url = url
        self.engine: Engine = create_engine(url)
        _Base.metadata.create_all(self.engine)

    def record(self, run: dict[str, Any], steps: list[dict[str, Any]]) -> int:
        """Store one run (fields of ``RunRecord``) and its step outcomes; returns the run's id."""
        with Session(self.engine) as s, s.begin():
            rec = RunRecord(created=time.time(), **run)
            s.add(rec)
            s.flush()
            for st in steps:
                s.add(StepRecord(run_id=rec.id, signature=run["signature"], **st))
            return int(rec.id)

    def _similar_steps(self, signature: Iterable[str]) -> list[tuple[float, StepRecord]]:
        with Session(self.engine) as s:
            rows = s.scalars(select(StepRecord)).all()
            out = [(jaccard(signature, r.signature), r) for r in rows]
            return [(w, r) for w, r in out if w >= MIN_SIMILARITY]

    def pairwise(self, signature: Iterable[str]) -> dict[tuple[str, str], tuple[float, float]]:
        """Failure rates (a first, b first) per step pair, from similar runs blended with the paper's prior.

        A step's outcome counts for "x before it" for every x already applied, and for "it before y"
        for every y still pending.
        """
        fails: dict[tuple[str, str], float] = defaultdict(float)
        total: dict[tuple[str, str], float] = defaultdict(float)
        for w, r in self._similar_steps(signature):
            pairs = [(x, r.step) for x in r.before] + [(r.step, y) for y in r.after]
            for pair in pairs:
                if pair[0] == pair[1]:
                    continue
                total[pair] += w
                fails[pair] += w * (not r.passed)
        keys = {tuple(sorted(p)) for p in total} | set(PAIRWISE_EXPERIENCE)
        table: dict[tuple[str, str], tuple[float, float]] = {}
        for a, b in keys:
            if (b, a) in PAIRWISE_EXPERIENCE and (a, b) not in PAIRWISE_EXPERIENCE:
                a, b = b, a
            prior = PAIRWISE_EXPERIENCE.get((a, b))
            rates = []
            for pair, idx in (((a, b), 0), ((b, a), 1)):
                p = prior[idx] if prior else 0.25
                k = PRIOR_WEIGHT if prior else 1.0
                rates.append((p * k + fails[pair]) / (k + total[pair]))
            table[(a, b)] = (round(rates[0], 4), round(rates[1], 4))
        return table

    def tool_wins(self, signature: Iterable[str], step: str) -> dict[str, float]:
        """How often (similarity-weighted) each tool was chosen for ``step`` on similar images."""
        wins: dict[str, float] = defaultdict(float)
        for w, r in self._similar_steps(signature):
            if r.step == step and r.tool:
                wins[r.tool] += w
        return dict(wins)

    def summary(self) -> dict[str, Any]:
        """Counts and per-step pass rates, for ``4kagent experience``."""
        with Session(self.engine) as s:
            runs = s.scalars(select(RunRecord)).all()
            steps = s.scalars(select(StepRecord)).all()
            per_step: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            tools: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for r in steps:
                per_step[r.step][0] += int(r.passed)
                per_step[r.step][1] += 1
                if r.tool:
                    tools[r.step][r.tool] += 1
            return {
                "url": self.url,
                "runs": len(runs),
                "rollbacks": sum(r.rollbacks for r in runs),
                "compromises": sum(int(r.compromise) for r in runs),
                "steps": {k: {"passed": v[0], "tried": v[1]} for k, v in sorted(per_step.items())},
                "winning_tools": {k: dict(v) for k, v in sorted(tools.items())},
            }


def records_from_state(state: dict[str, Any], seconds: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Turn a finished run's state into a run record and its step outcomes."""
    from fourkagent.planning.search import path_nodes, path_steps

    tree, all_steps = state["tree"], state.get("all_steps", [])
    signature = sorted(d["kind"] for d in state["perception"]["degradations"] if d.get("present"))
    path = path_nodes(tree, state["cursor"])[1:]
    run = {
        "profile": str(state["profile_data"].get("name", "custom")),
        "signature": signature,
        "width": int(state["input_info"]["width"]),
        "height": int(state["input_info"]["height"]),
        "steps": list(all_steps),
        "order": [tree[n]["step"] for n in path],
        "tools": [tree[n]["tool"] for n in path],
        "scores": [tree[n]["score"] for n in path],
        "rollbacks": len(state.get("rollbacks", [])),
        "compromise": bool(state.get("compromise", False)),
        "seconds": round(seconds, 3),
    }
    steps = []
    for nid, node in tree.items():
        if node["parent"] is None:
            continue
        before = path_steps(tree, node["parent"])
        left = list(all_steps)
        for s in [*before, node["step"]]:
            if s in left:
                left.remove(s)
        steps.append({"step": node["step"], "before": before, "after": sorted(set(left)), "tool": node["tool"],
                      "score": float(node["score"] or 0.0), "passed": not node["failed"]})
    return run, steps


def dumps_table(table: dict[tuple[str, str], tuple[float, float]]) -> list[list[Any]]:
    """JSON-friendly form of a pairwise table (for the state)."""
    return [[a, b, fa, fb] for (a, b), (fa, fb) in sorted(table.items())]


def loads_table(rows: list[list[Any]]) -> dict[tuple[str, str], tuple[float, float]]:
    """Inverse of ``dumps_table``."""
    return {(a, b): (float(fa), float(fb)) for a, b, fa, fb in rows}


__all__ = ["ExperienceStore", "RunRecord", "StepRecord", "dumps_table", "jaccard", "loads_table", "records_from_state"]
