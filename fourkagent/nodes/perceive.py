"""perceive: load the input into the store, detect degradations, measure quality, choose the factor."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, cast

from langgraph.config import get_config
from langgraph.runtime import Runtime

from fourkagent.context import Context
from fourkagent.imageio import (
    check_not_input, check_output_path, check_output_pixels, pad_to_min, read_image, store_icc,
)
from fourkagent.imaging import Image, as_image
from fourkagent.faces.pipeline import reference_faces
from fourkagent.nodes._common import RuntimeNode, timed
from fourkagent.perception.offline import describe, factor_aware, perceive_offline
from fourkagent.perception.vlm import perceive_vlm
from fourkagent.planning import budget
from fourkagent.planning.agenda import output_size, upscale_factor
from fourkagent.planning.search import ROOT
from fourkagent.profiles import load_profile
from fourkagent.state.artifacts import ArtifactStore
from fourkagent.state.records import FaceRefs, InputInfo, Perception, TreeNode
from fourkagent.state.schema import State, Update
from fourkagent.tools.base import ToolRegistry


def _run_key(state: State) -> str:
    try:
        thread = get_config().get("configurable", {}).get("thread_id")
    except RuntimeError:
        thread = None
    if thread:
        return str(thread)
    digest = hashlib.sha256(repr((state["input_path"], state.get("profile"))).encode()).hexdigest()
    return f"anon-{digest[:16]}"


def old_photo_first(
    img: Image, store: ArtifactStore, registry: ToolRegistry | None = None
) -> tuple[Image, str, list[dict[str, Any]]]:
    """Scratch/dust repair and fade correction before perception; failures leave the input as is."""
    from fourkagent.errors import FourKError

    if registry is None:
        from fourkagent.tools.registry import MAIN_REGISTRY

        registry = MAIN_REGISTRY
    try:
        fixed = registry.get("oldphoto_restore")(img)
    except FourKError as exc:
        return img, store.put(img), [{"tool": "oldphoto_restore", "error": str(exc)}]
    aid = store.put(fixed)
    return store.get(aid), aid, [{"tool": "oldphoto_restore", "artifact": aid}]


def make_perceive(registry: ToolRegistry | None = None) -> RuntimeNode:
    """Build the perceive node bound to a tool registry (``None``: the main one, looked up when used)."""

    @timed("perceive")
    def perceive(state: State, runtime: Runtime[Context]) -> Update:
        """Resolve the profile, store the input, and perceive it (offline detectors; VLM when configured)."""
        return _perceive(state, runtime, registry)

    return perceive


def _perceive(state: State, runtime: Runtime[Context], registry: ToolRegistry | None) -> Update:
    ctx = runtime.context if runtime.context is not None else Context()
    profile = load_profile(state.get("profile"))
    if profile.scorer != "offline":  # learned metrics missing: stop before any work
        from fourkagent.scoring.paper import require_scorer

        require_scorer(profile.scorer)
    options = state.get("options") or {}
    if state.get("output_path"):
        check_output_path(state["output_path"], overwrite=bool(options.get("overwrite", False)))
        check_not_input(state["input_path"], state["output_path"])
    loaded = read_image(state["input_path"])
    info = loaded.info
    factor = upscale_factor(info.width, info.height, profile)
    check_output_pixels(state["input_path"], info.width, info.height, factor)  # refuse before any work
    run_dir = Path(ctx.home) / "runs" / _run_key(state)
    store = ArtifactStore(run_dir / "artifacts")
    aid = store.put(pad_to_min(loaded.image))  # tiny/thin inputs: padded here, cropped back in finalize
    img = store.get(aid)
    extra: dict[str, Any] = {"artifact": aid, "work_size": [img.shape[1], img.shape[0]]}
    if loaded.alpha is not None:  # upscaled apart and re-attached by finalize
        extra["alpha_artifact"] = store.put(as_image(loaded.alpha))
    if loaded.icc is not None:
        extra["icc"] = store_icc(store.root, loaded.icc)
    preprocess: list[dict[str, Any]] = []
    if profile.old_photo_restoration:  # the reference repairs old photos once, before perception
        img, root_aid, preprocess = old_photo_first(img, store, registry)
    else:
        root_aid = aid
    # the perception and faces modules build these records as plain dicts
    perception = cast(Perception, perceive_offline(img, ctx.iqa_metrics))
    perception["perceiver"] = "offline"
    perception["preprocess"] = preprocess
    if profile.perceiver == "vlm":  # the VLM's verdicts, or offline with a note saying why not
        perception = cast(Perception, perceive_vlm(img, dict(perception), ctx))
    perception["factor"] = factor
    size, why = output_size(info.width, info.height, factor, profile)
    perception["output_size"] = list(size)
    if why:
        perception["size_note"] = why
    perception["degradations"] = factor_aware(perception["degradations"], factor)
    if perception.get("perceiver") == "offline":  # a VLM's own description is kept
        perception["description"] = describe(img, perception["degradations"])
    root: TreeNode = {
        "id": ROOT, "parent": None, "step": None, "tool": None, "artifact": root_aid, "score": None,
        "width": img.shape[1], "height": img.shape[0], "children": {}, "failed": False, "best": None,
    }
    update: Update = {
        "run_dir": str(run_dir),
        "profile_data": profile.model_dump(),
        "input_info": cast(InputInfo, info.to_dict() | extra),
        "perception": perception,
        "tree": {ROOT: root},
        "cursor": ROOT,
        "rollbacks": [],
        "compromise": False,
    }
    if profile.face_restore:  # identity references
        update["face_refs"] = cast(FaceRefs, reference_faces(img))
    refs = update.get("face_refs")  # the budget's ledger opens with the run's fixed costs
    faces = len(refs.get("faces", [])) if refs else 0
    update["budget_spent_s"] = round(budget.opening(profile, img.shape[:2], size, faces), 3)
    return update


perceive = make_perceive()
"""The perceive node with the main tool registry."""
