"""The compiled agent graph (``graph`` is served by ``langgraph dev``; it has no checkpointer)."""

from fourkagent.graph.builder import build_graph

graph = build_graph()

__all__ = ["build_graph", "graph"]
