"""Expose registered tools as LangChain ``StructuredTool``s that work on artifact ids."""

from __future__ import annotations

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from fourkagent.errors import FourKError
from fourkagent.state.artifacts import ArtifactStore, flush_writes
from fourkagent.tools.base import Tool, ToolRegistry


class ToolArgs(BaseModel):
    """Arguments every restoration tool takes."""

    artifact_id: str = Field(description="id of the input image in the run's artifact store")


def as_structured_tool(tool: Tool, store: ArtifactStore) -> StructuredTool:
    """Wrap one tool: input artifact id → ``{"artifact_id", "width", "height"}`` or ``{"error"}``.

    Errors are returned to the caller (an LLM) as text, never raised.
    """

    def run(artifact_id: str) -> dict[str, object]:
        try:
            out = tool(store.get(artifact_id))
            aid = store.put(out)
            flush_writes()
        except FourKError as exc:
            return {"error": str(exc)}
        return {"artifact_id": aid, "width": int(out.shape[1]), "height": int(out.shape[0])}

    spec = tool.spec
    desc = f"[{spec.category}, x{spec.scale}] {spec.description}"
    return StructuredTool.from_function(func=run, name=spec.name, description=desc, args_schema=ToolArgs)


def structured_tools(registry: ToolRegistry, store: ArtifactStore) -> list[StructuredTool]:
    """Every available tool of a registry as a LangChain tool bound to ``store``."""
    return [as_structured_tool(t, store) for t in registry if t.unavailable_reason() is None]
