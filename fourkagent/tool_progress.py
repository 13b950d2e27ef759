"""Progress inside a running tool: the tiled inference (:func:`fourkagent.models.tiling.tiled_forward`) reports
each finished tile to whoever is listening in this context (the execute node turns it into ``tool_progress``
stream events, which the CLI draws as a bar). Outside :func:`reporting` a tick does nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Sink = Callable[[int, int], None]
"""Receives ``(done, total)`` after each tile."""

_sink: ContextVar[Sink | None] = ContextVar("fourkagent_tool_progress", default=None)


@contextmanager
def reporting(sink: Sink) -> Iterator[None]:
    """Send the ticks of the tools run inside this block to ``sink``."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)


def tick(done: int, total: int) -> None:
    """``done`` of ``total`` units (tiles) of the running tool are finished."""
    sink = _sink.get()
    if sink is not None:
        sink(done, total)
