"""Embed fourkagent in your own LangGraph app, two ways (offline: the chat model is a scripted fake).

1. A chat agent whose model calls the ``restore_image`` LangChain tool (one call = one whole run).
2. A pipeline whose ``restore`` node is fourkagent as a subgraph (parent key ``image_path`` in,
   ``restored_path`` / ``restore_summary`` out), followed by a node of your own.

    python examples/embed_in_agent.py [IMAGE] [PROFILE]     # default: the bundled example, ExpSR-s4-F
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from typing_extensions import TypedDict

from fourkagent.embed import restore_image, subgraph_node


class ScriptedToolModel(FakeMessagesListChatModel):
    """A fake chat model that plays back scripted messages; ``bind_tools`` keeps it as is."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedToolModel:  # type: ignore[override]
        """Accept the tools (the script already knows which to call)."""
        return self


def scripted_model(image_path: str, profile: str, output_path: str | None = None) -> ScriptedToolModel:
    """A model that first asks for ``restore_image`` on the image, then answers in words."""
    args: dict[str, Any] = {"image_path": image_path, "profile": profile}
    if output_path:
        args["output_path"] = output_path
    call = AIMessage(content="", tool_calls=[{"name": "restore_image", "args": args, "id": "call-restore-1"}])
    return ScriptedToolModel(responses=[call, AIMessage(content="Done: the restored image is ready.")])


def build_chat_agent(model: Any, checkpointer: Any = None) -> CompiledStateGraph:
    """agent ⇄ tools: the model decides to call ``restore_image``; the tool result goes back to it."""
    bound = model.bind_tools([restore_image])

    def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [bound.invoke(state["messages"])]}

    g = StateGraph(MessagesState)
    g.add_node("agent", agent)
    g.add_node("tools", ToolNode([restore_image]))
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", tools_condition, ["tools", END])
    g.add_edge("tools", "agent")
    return g.compile(checkpointer=checkpointer)


class PipelineState(TypedDict, total=False):
    """A parent app's own state: it knows nothing of fourkagent's keys."""

    image_path: str
    restored_path: str
    restore_summary: str
    caption: str


def caption(state: PipelineState) -> dict[str, str]:
    """The parent's own next step: here, describe the restored file's size."""
    from PIL import Image

    with Image.open(state["restored_path"]) as im:
        return {"caption": f"restored image {im.width}x{im.height}"}


def build_pipeline(profile: str = "ExpSR-s4-F", checkpointer: Any = None) -> CompiledStateGraph:
    """restore (fourkagent as a subgraph node) → caption."""
    g = StateGraph(PipelineState)
    g.add_node("restore", subgraph_node(image_key="image_path", output_key="restored_path", profile=profile))
    g.add_node("caption", caption)
    g.add_edge(START, "restore")
    g.add_edge("restore", "caption")
    g.add_edge("caption", END)
    return g.compile(checkpointer=checkpointer)


def main(argv: list[str]) -> int:
    """Run both embeddings on one image and print what the parent graphs saw."""
    here = Path(__file__).resolve().parent.parent
    image = argv[0] if argv else str(here / "fourkagent" / "examples" / "astronaut_256_noisy.png")
    profile = argv[1] if len(argv) > 1 else "ExpSR-s4-F"
    chat = build_chat_agent(scripted_model(image, profile), InMemorySaver())
    out = chat.invoke({"messages": [HumanMessage(f"Please restore {image}")]}, {"configurable": {"thread_id": "chat"}})
    for m in out["messages"]:
        print(f"[{m.type}] {m.content}"[:400])
    pipe = build_pipeline(profile, InMemorySaver())
    res = pipe.invoke({"image_path": image}, {"configurable": {"thread_id": "pipeline"}})
    print(f"pipeline: {res['caption']} at {res['restored_path']}\n{res['restore_summary']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
