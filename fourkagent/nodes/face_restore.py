"""face_restore: find faces on the result and restore them with the face experts available here."""

from __future__ import annotations

from typing import Any

from fourkagent.nodes._common import store_of, timed
from fourkagent.perception.faces import detect_faces
from fourkagent.state.schema import State


@timed("face_restore")
def face_restore(state: State) -> dict[str, Any]:
    """Detect faces on the current image; record them, or the reason the stage was skipped."""
    store = store_of(state)
    img = store.get(state["tree"][state["cursor"]]["artifact"])
    faces = detect_faces(img)
    if not faces:
        return {"faces": {"status": "skipped", "reason": "no face found", "faces": []}}
    return {
        "faces": {
            "status": "skipped",
            "reason": "no face-restoration expert is installed; faces kept as restored by the general tools",
            "faces": [{"box": f} for f in faces],
        }
    }
