"""The checkpointer can be swapped: a run paused mid-way resumes from PostgreSQL in a new worker, bit-exactly."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _postgres import postgres_server, why_unavailable
from conftest import photo, write
from fourkagent import degrade
from fourkagent.graph import build_graph

_reason = why_unavailable()
if _reason is None and importlib.util.find_spec("langgraph.checkpoint.postgres") is None:
    _reason = "langgraph-checkpoint-postgres not installed (pip install langgraph-checkpoint-postgres psycopg[binary])"
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

PROFILE = {"base": "ExpSR-s4-F", "restore_option": ["denoising", "super-resolution"]}


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1, stopped after the module."""
    with postgres_server() as url:
        yield url


def _input(src: Path, out: Path) -> dict[str, Any]:
    return {"input_path": str(src), "output_path": str(out), "profile": PROFILE}


def _choices(report_path: str) -> list[tuple[str, str, float]]:
    """(step, chosen tool, score) along the final trajectory of a report."""
    report = json.loads(Path(report_path).read_text())
    return [(t["step"], t["tool"], t["score"]) for t in report["trajectory"]]


@pytest.mark.slow
def test_resume_from_postgres_matches_an_uninterrupted_run(pg_url: str, tmp_path: Path) -> None:
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver

    src = write(tmp_path, "noisy.png", degrade.add_noise(photo()[40:88, 180:244], 15, seed=2))
    ref_out, out = tmp_path / "reference.png", tmp_path / "resumed.png"
    reference = build_graph().invoke(_input(src, ref_out))

    cfg = {"configurable": {"thread_id": "pg-run-1"}}
    with PostgresSaver.from_conn_string(pg_url) as saver:  # worker 1: stops after the first reflect
        saver.setup()
        graph = build_graph(saver)
        graph.invoke(_input(src, out), cfg, interrupt_after=["reflect"], durability="sync")
        snap = graph.get_state(cfg)
        assert snap.next == ("plan",) and not out.exists()
        done_first = [n["step"] for n in snap.values["tree"].values() if n["step"]]
        assert len(done_first) == 1
    with psycopg.connect(pg_url) as conn:
        (count,) = conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = %s", ("pg-run-1",)).fetchone()
    assert count >= 4  # input, perceive, plan, execute, reflect …: the state lives in PostgreSQL

    with PostgresSaver.from_conn_string(pg_url) as saver:  # worker 2: a fresh connection and graph
        graph = build_graph(saver)
        assert graph.get_state(cfg).next == ("plan",)
        resumed = graph.invoke(None, cfg, durability="sync")
        assert not graph.get_state(cfg).next

    assert out.read_bytes() == ref_out.read_bytes()
    assert _choices(resumed["report_path"]) == _choices(reference["report_path"])
    # both steps ran (their order is the agent's: after denoising, a failed SR step rolls back to SR first)
    assert sorted(c[0] for c in _choices(reference["report_path"])) == ["denoising", "super-resolution"]
