"""The compiled graph has the seven explicit nodes and the conditional edges of the design."""

from __future__ import annotations

from fourkagent.graph import build_graph, graph

NODES = {"perceive", "plan", "execute", "reflect", "rollback", "face_restore", "finalize"}


def _edges(g) -> set[tuple[str, str, bool]]:
    return {(e.source, e.target, e.conditional) for e in g.get_graph().edges}


def test_seven_nodes_exist() -> None:
    assert NODES <= set(graph.get_graph().nodes)


def test_conditional_edges() -> None:
    edges = _edges(graph)
    assert ("reflect", "rollback", True) in edges
    assert ("reflect", "plan", True) in edges
    assert ("plan", "execute", True) in edges
    assert ("plan", "face_restore", True) in edges
    assert ("plan", "finalize", True) in edges
    assert ("rollback", "plan", False) in edges
    assert ("execute", "reflect", False) in edges


def test_exported_graph_has_no_checkpointer() -> None:
    assert graph.checkpointer is None
    from langgraph.checkpoint.memory import InMemorySaver

    assert build_graph(InMemorySaver()).checkpointer is not None


def test_input_and_output_schemas_are_narrow() -> None:
    inp = graph.get_input_jsonschema()["properties"]
    out = graph.get_output_jsonschema()["properties"]
    assert set(inp) == {"input_path", "output_path", "profile", "options"}
    assert set(out) == {"output_path", "report_path", "summary"}
