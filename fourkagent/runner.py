"""Run and resume the agent with a SQLite or PostgreSQL checkpointer (crash-safe: every node's checkpoint is synced)."""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver

from fourkagent import devices
from fourkagent.context import Context
from fourkagent.errors import ArtifactError, RunError
from fourkagent.graph.builder import build_graph
from fourkagent.recovery import MAX_RECOVERIES, resume_point
from fourkagent.tools.base import ToolRegistry

EventHandler = Callable[[str, dict[str, Any]], None]
"""Receives ("node", {node: update}) after each node and ("custom", event) for tool progress."""


def new_run_id() -> str:
    """A fresh, sortable run id."""
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


@contextmanager
def open_checkpointer(home: str | Path, url: str = "") -> Iterator[Any]:
    """The SQLite checkpointer at ``<home>/checkpoints.sqlite`` (WAL mode, safe for concurrent runs), or with a
    ``postgresql://`` ``url`` a PostgreSQL one (tables created on first use; needs the ``postgres`` extra).

    Raises:
        RunError: another kind of URL, the PostgreSQL extra missing, or the database unreachable.
    """
    if url:
        with _postgres_checkpointer(url) as saver:
            yield saver
        return
    Path(home).mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(Path(home) / "checkpoints.sqlite"), check_same_thread=False, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


@contextmanager
def _postgres_checkpointer(url: str) -> Iterator[Any]:
    if not url.startswith(("postgresql://", "postgres://")):
        scheme = url.split(":", 1)[0]
        raise RunError(f"unsupported checkpointer URL {scheme}:…; use postgresql://… (default: SQLite in home)")
    try:
        from langgraph.checkpoint.postgres import PostgresSaver
    except ImportError:
        raise RunError("a postgresql:// checkpointer needs: pip install 'fourkagent[postgres]'") from None
    try:
        cm = PostgresSaver.from_conn_string(url)
        saver = cm.__enter__()
        saver.setup()
    except Exception as exc:  # psycopg.OperationalError and friends: one line, without the password
        raise RunError(f"cannot open the PostgreSQL checkpointer: {' '.join(str(exc).split())[:300]}") from None
    try:
        yield saver
    finally:
        cm.__exit__(None, None, None)


def _stream(graph: Any, payload: Any, config: dict[str, Any], ctx: Context, on_event: EventHandler | None) -> None:
    with devices.use_device(ctx.device, ctx.threads):  # every tool of the run asks fourkagent.devices
        for mode, chunk in graph.stream(payload, config, context=ctx, stream_mode=["updates", "custom"],
                                        durability="sync"):
            if on_event is not None:
                on_event("node" if mode == "updates" else "custom", chunk)


def _stream_recovering(graph: Any, payload: Any, config: dict[str, Any], ctx: Context,
                        on_event: EventHandler | None, start: dict[str, Any] | None = None) -> list[str]:
    """Stream from ``start`` (default ``config``); when a missing or corrupted artifact stops the run, go on
    from the latest checkpoint whose artifacts are intact (the damaged steps are recomputed).

    Returns the damaged artifact ids that were recomputed.
    """
    start = start or config
    recovered: list[str] = []
    for attempt in range(MAX_RECOVERIES + 1):
        try:
            _stream(graph, payload, start, ctx, on_event)
            break
        except ArtifactError:
            start, damaged = resume_point(graph, config)
            if not damaged or attempt == MAX_RECOVERIES:
                raise  # nothing on disk to repair (e.g. a failed write): a real error
            _notify_recovery(on_event, start, damaged)
            recovered += damaged
            payload = None
    return recovered


def _notify_recovery(on_event: EventHandler | None, start: dict[str, Any], damaged: list[str]) -> None:
    """Tell stream consumers which artifacts were damaged and which checkpoint the run goes on from."""
    if on_event is not None:
        checkpoint = start["configurable"].get("checkpoint_id")
        on_event("custom", {"event": "recovery", "damaged": damaged, "checkpoint": checkpoint})


def _result(graph: Any, config: dict[str, Any]) -> dict[str, Any]:
    values = graph.get_state(config).values
    return {k: values.get(k) for k in ("output_path", "report_path", "summary", "run_dir")}


def _outcome(graph: Any, config: dict[str, Any], recovered: list[str]) -> dict[str, Any]:
    """What run, resume and run_or_resume return: the thread's result, its run id, the recomputed artifacts."""
    run_id = config["configurable"]["thread_id"]
    return _result(graph, config) | {"run_id": run_id} | ({"recovered": recovered} if recovered else {})


def _payload(input_path: str, output_path: str | None, profile: str | dict[str, Any] | None,
             options: dict[str, Any] | None) -> dict[str, Any]:
    """A new run's graph input."""
    payload: dict[str, Any] = {"input_path": str(input_path), "options": options or {}}
    if output_path is not None:
        payload["output_path"] = str(output_path)
    if profile is not None:
        payload["profile"] = profile
    return payload


@contextmanager
def _open_thread(run_id: str, context: Context | None,
                 registry: ToolRegistry | None) -> Iterator[tuple[Any, Any, dict[str, Any], Context]]:
    """``(graph, snapshot, config, context)`` of a thread, its checkpointer open (the device checked first)."""
    ctx = context or Context()
    devices.check(ctx.device)
    config = {"configurable": {"thread_id": run_id}}
    with open_checkpointer(ctx.home, ctx.checkpoint_url) as saver:
        graph = build_graph(saver, registry=registry)
        yield graph, graph.get_state(config), config, ctx


def run(
    input_path: str,
    output_path: str | None = None,
    profile: str | dict[str, Any] | None = None,
    *,
    run_id: str | None = None,
    options: dict[str, Any] | None = None,
    context: Context | None = None,
    registry: ToolRegistry | None = None,
    on_event: EventHandler | None = None,
) -> dict[str, Any]:
    """Restore one image; returns output path, report path, summary and the run id.

    Raises:
        FourKError: bad input, bad profile, existing output without ``overwrite``, an existing run id, or an
            unknown or unavailable device (``context.device``).
    """
    run_id = run_id or new_run_id()
    with _open_thread(run_id, context, registry) as (graph, snap, config, ctx):
        if snap.values:
            raise RunError(f"run id {run_id!r} already exists; use --resume {run_id} or another id")
        recovered = _stream_recovering(graph, _payload(input_path, output_path, profile, options), config, ctx,
                                       on_event)
        return _outcome(graph, config, recovered)


def resume(
    run_id: str,
    *,
    context: Context | None = None,
    registry: ToolRegistry | None = None,
    on_event: EventHandler | None = None,
) -> dict[str, Any]:
    """Continue a killed run from its last checkpoint (input, output and profile come from the saved state).

    Raises:
        RunError: no run with that id, or an unavailable device.
    """
    with _open_thread(run_id, context, registry) as (graph, snap, config, ctx):
        if not snap.values and not snap.next:
            raise RunError(f"no run with id {run_id!r} in {ctx.home}")
        return _outcome(graph, config, _continue(graph, snap, config, ctx, on_event))


def _continue(graph: Any, snap: Any, config: dict[str, Any], ctx: Context, on_event: EventHandler | None) -> list[str]:
    """Go on from a thread's last checkpoint (nothing to do when it finished); returns the recomputed artifact ids."""
    if not (snap.next or snap.tasks):  # tasks: a node finished but was killed before its checkpoint was made
        return []
    start, damaged = resume_point(graph, config)  # a damaged artifact sends us back to an intact checkpoint
    if damaged:
        _notify_recovery(on_event, start, damaged)
    return damaged + _stream_recovering(graph, None, config, ctx, on_event, start=start)


def run_or_resume(
    input_path: str,
    output_path: str,
    profile: str | dict[str, Any] | None,
    *,
    run_id: str,
    options: dict[str, Any] | None = None,
    context: Context | None = None,
    registry: ToolRegistry | None = None,
    on_event: EventHandler | None = None,
) -> dict[str, Any]:
    """:func:`run` for a new ``run_id``; for one that exists, :func:`resume` it (a finished run is only read back).

    The result has ``state``: ``"new"`` (started here), ``"partial"`` (went on from a checkpoint) or ``"finished"``
    (nothing to do). Batch jobs use it so that re-running a job finishes only what is missing.

    Raises:
        FourKError: as :func:`run` and :func:`resume`.
    """
    with _open_thread(run_id, context, registry) as (graph, snap, config, ctx):
        if snap.values or snap.next:
            state = "partial" if (snap.next or snap.tasks) else "finished"
            recovered = _continue(graph, snap, config, ctx, on_event)
        else:
            state = "new"
            recovered = _stream_recovering(graph, _payload(input_path, output_path, profile, options), config, ctx,
                                           on_event)
        return _outcome(graph, config, recovered) | {"state": state}
