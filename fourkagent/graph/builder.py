"""Wire the nodes into the agent graph."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from fourkagent.context import Context
from fourkagent.nodes.execute import make_execute
from fourkagent.nodes.face_restore import make_face_restore
from fourkagent.nodes.finalize import finalize
from fourkagent.nodes.perceive import make_perceive
from fourkagent.nodes.plan import plan, route_after_plan
from fourkagent.nodes.reflect import reflect, route_after_reflect
from fourkagent.nodes.rollback import rollback
from fourkagent.state.schema import InputState, OutputState, State
from fourkagent.tools.base import ToolRegistry

RECURSION_LIMIT = 1000
"""Supersteps allowed per run: rollback search over orderings can take many."""


def build_graph(
    checkpointer: Any = None, *, registry: ToolRegistry | None = None
) -> CompiledStateGraph[State, Context, InputState, OutputState]:
    """Compile the agent: perceive → plan ⇄ (execute → reflect [→ rollback]) → face_restore → finalize.

    Args:
        checkpointer: a LangGraph checkpointer (SQLite for resumable CLI runs); ``None`` for servers.
        registry: the tool registry (default: every tool fourkagent ships).
    """
    if registry is None:
        from fourkagent.tools.registry import MAIN_REGISTRY

        registry = MAIN_REGISTRY
    g = StateGraph(State, input_schema=InputState, output_schema=OutputState, context_schema=Context)
    g.add_node("perceive", make_perceive(registry))
    g.add_node("plan", plan)
    g.add_node("execute", make_execute(registry))
    g.add_node("reflect", reflect)
    g.add_node("rollback", rollback)
    g.add_node("face_restore", make_face_restore(registry))
    g.add_node("finalize", finalize)
    g.add_edge(START, "perceive")
    g.add_edge("perceive", "plan")
    g.add_conditional_edges("plan", route_after_plan, ["execute", "face_restore", "finalize"])
    g.add_edge("execute", "reflect")
    g.add_conditional_edges("reflect", route_after_reflect, ["rollback", "plan"])
    g.add_edge("rollback", "plan")
    g.add_edge("face_restore", "finalize")
    g.add_edge("finalize", END)
    compiled = g.compile(checkpointer=checkpointer, name="fourkagent")
    return compiled.with_config({"recursion_limit": RECURSION_LIMIT})
