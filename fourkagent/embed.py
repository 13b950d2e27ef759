"""Use fourkagent inside other LangGraph / LangChain apps: as a subgraph node, or as one tool.

``subgraph_node`` maps a parent graph's keys onto our input schema, runs the compiled agent as a
subgraph (it shares the parent's checkpointer, so parent runs resume through it and its interrupts
reach the parent), and maps the result back. ``restore_image`` is a LangChain tool for chat agents:
one call runs a whole, separately resumable restoration (``fourkagent.runner.run``).
"""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from langchain_core.tools import ToolException, tool
from langgraph.config import get_config
from langgraph.runtime import Runtime

from fourkagent.context import Context
from fourkagent.errors import BadInputError, FourKError

ParentNode = Callable[[Mapping[str, Any], Runtime[Any]], dict[str, Any]]


def to_input(
    state: Mapping[str, Any],
    *,
    image_key: str = "image_path",
    output_path_key: str | None = None,
    profile: str | dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Our ``InputState`` from a parent state: the image path, an optional output path, profile, options.

    Raises:
        BadInputError: the parent state has no image path under ``image_key``.
    """
    path = state.get(image_key)
    if not path:
        raise BadInputError(f"parent state has no image path under {image_key!r}")
    payload: dict[str, Any] = {"input_path": str(path), "options": dict(options or {})}
    if output_path_key and state.get(output_path_key):
        payload["output_path"] = str(state[output_path_key])
    if profile is not None:
        payload["profile"] = profile
    return payload


def from_output(
    result: Mapping[str, Any], *, output_key: str, summary_key: str | None, report_key: str | None
) -> dict[str, Any]:
    """The parent's update from our ``OutputState``."""
    update = {output_key: result.get("output_path")}
    if summary_key:
        update[summary_key] = result.get("summary")
    if report_key:
        update[report_key] = result.get("report_path")
    return update


def default_output(ctx: Context, input_path: str) -> str:
    """``<home>/outputs/<stem>-<tag>.png``, the tag unique to this node execution (stable when resumed)."""
    ns = get_config().get("configurable", {}).get("checkpoint_ns", "")
    tag = hashlib.sha256(f"{ns}|{input_path}".encode()).hexdigest()[:10]
    out_dir = Path(ctx.home) / "outputs"
    out_dir.mkdir(parents=True, exist_ok=True)
    return str(out_dir / f"{Path(input_path).stem}-{tag}.png")


def subgraph_node(
    *,
    image_key: str = "image_path",
    output_key: str = "restored_path",
    summary_key: str | None = "restore_summary",
    report_key: str | None = None,
    output_path_key: str | None = None,
    profile: str | dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    context: Context | None = None,
    graph: Any = None,
) -> ParentNode:
    """A node for a parent ``StateGraph`` that restores ``state[image_key]`` with the agent as a subgraph.

    Args:
        image_key / output_path_key: parent keys holding the input path and (optionally) the output path;
            without one the result goes to ``default_output`` (``<home>/outputs/``).
        output_key / summary_key / report_key: parent keys that receive the output path, summary, report path.
        profile, options: passed to the agent's input (e.g. ``{"review_plan": True}`` pauses the parent run).
        context: our runtime settings; default: the parent's context when it is a fourkagent ``Context``,
            else ``Context()`` (environment variables).
        graph: a compiled fourkagent graph; default ``build_graph()`` (no checkpointer: it uses the parent's).
    """
    if graph is None:
        from fourkagent.graph import build_graph

        graph = build_graph()

    def restore(state: Mapping[str, Any], runtime: Runtime[Any]) -> dict[str, Any]:
        """Run fourkagent on the parent's image and return the parent's update."""
        ctx = context or (runtime.context if isinstance(runtime.context, Context) else Context())
        payload = to_input(
            state, image_key=image_key, output_path_key=output_path_key, profile=profile, options=options
        )
        payload.setdefault("output_path", default_output(ctx, payload["input_path"]))
        result = graph.invoke(payload, context=ctx)
        return from_output(result, output_key=output_key, summary_key=summary_key, report_key=report_key)

    return restore


def _forwarder() -> Callable[[str, dict[str, Any]], None] | None:
    """Forward the agent's custom progress events to the calling graph's stream, if there is one."""
    try:
        from langgraph.config import get_stream_writer

        writer = get_stream_writer()
    except Exception:  # not called from inside a graph
        return None

    caller = contextvars.copy_context()  # the writer needs the caller's runnable config

    def forward(kind: str, chunk: dict[str, Any]) -> None:
        if kind == "custom":
            caller.run(writer, {"source": "restore_image", **chunk})

    return forward


@tool(parse_docstring=True)
def restore_image(image_path: str, output_path: str | None = None, profile: str | None = None) -> dict[str, Any]:
    """Restore and upscale an image (denoise, deblur, dehaze, ... then super-resolve towards 4K).

    Args:
        image_path: Path of the image to restore (read only).
        output_path: Where to write the result; default: inside the run directory.
        profile: fourkagent profile name, e.g. FastGen4K-P (default, to 4K) or ExpSR-s4-F (exactly x4).
    """
    from fourkagent.runner import run

    on_event = _forwarder()
    try:
        # A fresh contextvars context: the run is a top-level graph run with its own SQLite checkpointer,
        # not a subgraph of the caller's graph (whose config would otherwise be inherited).
        res = contextvars.Context().run(run, image_path, output_path, profile, on_event=on_event)
    except FourKError as exc:
        raise ToolException(f"restore_image failed: {exc}") from exc
    return {k: res[k] for k in ("output_path", "report_path", "summary", "run_id")}


restore_image.handle_tool_error = True
