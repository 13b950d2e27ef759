"""face_restore: restore the faces of the result with the face experts, guided by the input's faces.

Runs after the last restoration/SR step when the profile enables faces. The identity references were
taken from the low-quality input at perceive time (``state["face_refs"]``); the faces found on the result
must match them in number and position, else the stage is skipped with the reason. A restored image
becomes a new node of the image tree (step ``face restoration``) so finalize writes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from langgraph.runtime import Runtime

from fourkagent.context import Context
from fourkagent.faces.pipeline import reference_faces, restore_faces
from fourkagent.nodes._common import emit, profile_of, store_of, timed
from fourkagent.planning.search import new_node
from fourkagent.state.records import FaceRefs, FaceStage
from fourkagent.state.schema import State, Update
from fourkagent.tools.base import ToolRegistry

FACE_STEP = "face restoration"


def _references(state: State) -> FaceRefs:
    """The input's faces (from perceive; re-detected for states checkpointed before they existed)."""
    refs = state.get("face_refs")
    if refs is None:
        refs = cast(FaceRefs, reference_faces(store_of(state).get(state["input_info"]["artifact"])))
    return refs


def make_face_restore(registry: ToolRegistry | None = None) -> Callable[..., Update]:
    """Build the face_restore node bound to a tool registry (``None``: the main one, looked up when used)."""

    @timed("face_restore")
    def face_restore(state: State, runtime: Runtime[Context] | None = None) -> Update:
        """Restore faces on the current image; record per-face results, or the reason the stage was skipped."""
        return _face_restore(state, runtime, registry)

    return face_restore


def _face_restore(state: State, runtime: Runtime[Context] | None, registry: ToolRegistry | None) -> Update:
    ctx = runtime.context if runtime is not None and runtime.context is not None else Context()
    store = store_of(state)
    cur = state["tree"][state["cursor"]]
    img = store.get(cur["artifact"])
    refs = _references(state)
    try:
        new, stage = restore_faces(
            img, dict(refs), registry=registry, priority=profile_of(state).priority, model_dir=ctx.model_dir
        )
    except Exception as exc:  # the face stage is optional: a failure keeps the image as it is
        reason = f"face stage failed: {type(exc).__name__}: {exc}"
        return {"faces": {"status": "skipped", "reason": reason, "faces": []}}
    record = cast(FaceStage, stage)  # the faces module builds the record as a plain dict
    record["input_faces"] = len(refs.get("faces", []))
    emit({"node": "face_restore", "status": record["status"], "reason": record["reason"]})
    if new is img:
        return {"faces": record}
    restored = [f for f in record["faces"] if f.get("action") == "restored"]
    tree, nid = new_node(
        state["tree"], state["cursor"], FACE_STEP,
        tool=", ".join(sorted({f["chosen"] for f in restored if f["chosen"] is not None})),
        artifact=store.put(new),
        score=round(sum(f["score"] for f in restored) / len(restored), 6),
        width=cur["width"], height=cur["height"], candidates=[],
    )
    return {"faces": record, "tree": tree, "cursor": nid}


face_restore = make_face_restore()
"""The face_restore node with the main tool registry."""
