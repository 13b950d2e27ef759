"""Helpers shared by the nodes: profile/store access, timing and progress events."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, Protocol

from langgraph.runtime import Runtime
from typing_extensions import ParamSpec

from fourkagent.context import Context
from fourkagent.profiles import Profile
from fourkagent.state.artifacts import ArtifactStore, flush_writes
from fourkagent.state.records import Event
from fourkagent.state.schema import State, Update

P = ParamSpec("P")


class Node(Protocol):
    """A node of the graph (a plain callable type would not let LangGraph pass ``state`` by name)."""

    def __call__(self, state: State) -> Update: ...


class RuntimeNode(Protocol):
    """A node that takes the run's context: what ``make_perceive`` builds (LangGraph passes ``runtime`` by name)."""

    def __call__(self, state: State, runtime: Runtime[Context]) -> Update: ...


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


def timed(name: str) -> Callable[[Callable[P, Update]], Callable[P, Update]]:
    """Decorate a node so its update carries a ``{node, seconds}`` event (the node's signature is kept)."""

    def deco(fn: Callable[P, Update]) -> Callable[P, Update]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Update:
            t0 = time.perf_counter()
            update = fn(*args, **kwargs)
            flush_writes()  # a checkpoint must never reference an artifact not yet on disk
            event: Event = {"node": name, "seconds": round(time.perf_counter() - t0, 4)}
            update["events"] = [*update.get("events", []), event]
            return update

        return wrapper

    return deco
