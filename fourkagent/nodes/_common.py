"""Helpers shared by the nodes: profile/store access, timing and progress events."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from fourkagent.profiles import Profile
from fourkagent.state.artifacts import ArtifactStore, flush_writes
from fourkagent.state.schema import State


def profile_of(state: State) -> Profile:
    """The run's resolved profile."""
    return Profile.model_validate(state["profile_data"])


def store_of(state: State) -> ArtifactStore:
    """The run's artifact store."""
    return ArtifactStore(f"{state['run_dir']}/artifacts")


def emit(event: dict[str, Any]) -> None:
    """Send a custom progress event to stream consumers (no-op outside a streaming run)."""
    try:
        from langgraph.config import get_stream_writer

        get_stream_writer()(event)
    except Exception:  # not inside a runnable context, or no custom stream requested
        pass


def timed(name: str) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    """Decorate a node so its update carries a ``{node, seconds}`` event."""

    def deco(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> dict[str, Any]:
            t0 = time.perf_counter()
            update = fn(*args, **kwargs)
            flush_writes()  # a checkpoint must never reference an artifact not yet on disk
            event = {"node": name, "seconds": round(time.perf_counter() - t0, 4)}
            update["events"] = [*update.get("events", []), event]
            return update

        return wrapper

    return deco
