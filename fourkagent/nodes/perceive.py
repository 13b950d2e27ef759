"""perceive: load the input into the store, detect degradations, measure quality, choose the factor."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from langgraph.config import get_config
from langgraph.runtime import Runtime

from fourkagent.context import Context
from fourkagent.imageio import check_output_path, load_image
from fourkagent.nodes._common import timed
from fourkagent.perception.offline import perceive_offline
from fourkagent.planning.agenda import upscale_factor
from fourkagent.planning.search import ROOT
from fourkagent.profiles import load_profile
from fourkagent.state.artifacts import ArtifactStore
from fourkagent.state.schema import State


def _run_key(state: State) -> str:
    try:
        thread = get_config().get("configurable", {}).get("thread_id")
    except RuntimeError:
        thread = None
    if thread:
        return str(thread)
    digest = hashlib.sha256(repr((state["input_path"], state.get("profile"))).encode()).hexdigest()
    return f"anon-{digest[:16]}"


@timed("perceive")
def perceive(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Resolve the profile, store the input, and perceive it (offline detectors; VLM when configured)."""
    ctx = runtime.context if runtime.context is not None else Context()
    profile = load_profile(state.get("profile"))
    options = state.get("options") or {}
    if state.get("output_path"):
        check_output_path(state["output_path"], overwrite=bool(options.get("overwrite", False)))
    img, info = load_image(state["input_path"])
    run_dir = Path(ctx.home) / "runs" / _run_key(state)
    store = ArtifactStore(run_dir / "artifacts")
    aid = store.put(img)
    img = store.get(aid)
    perception = perceive_offline(img)
    perception["perceiver"] = "offline"
    if profile.perceiver == "vlm":
        perception["perceiver_note"] = (
            "profile asks for a VLM perceiver; none is configured (set FOURKAGENT_VLM_BASE_URL), "
            "used the offline detectors"
        )
    perception["factor"] = upscale_factor(info.width, info.height, profile)
    root = {
        "id": ROOT, "parent": None, "step": None, "tool": None, "artifact": aid, "score": None,
        "width": info.width, "height": info.height, "children": {}, "failed": False, "best": None,
    }
    return {
        "run_dir": str(run_dir),
        "profile_data": profile.model_dump(),
        "input_info": info.to_dict() | {"artifact": aid},
        "perception": perception,
        "tree": {ROOT: root},
        "cursor": ROOT,
        "rollbacks": [],
        "compromise": False,
    }
