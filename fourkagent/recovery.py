"""Resume safety: find the latest checkpoint whose artifacts are intact, so damaged steps are recomputed.

A checkpoint references artifacts by id (their content hash). When one is missing or fails its hash
check, the run cannot go on from that checkpoint; instead we walk the checkpoint's ancestors
(``parent_config``) to the newest one whose referenced artifacts are all intact and resume from it
(LangGraph time travel re-executes the nodes after it). Nodes are deterministic, so the recomputed
artifacts get the same ids and the output is byte-identical to an undamaged run. Damaged files are
moved aside (``*.corrupt``) so the store writes them again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fourkagent.errors import ArtifactError
from fourkagent.imageio import load_icc, png_intact, remove_stale_parts
from fourkagent.state.artifacts import ArtifactStore

MAX_RECOVERIES = 3
"""How many times one invocation may fall back to an earlier checkpoint before giving up."""


def referenced_artifacts(values: Mapping[str, Any], next_nodes: Sequence[str]) -> tuple[list[str], list[str]]:
    """(image artifact ids, ICC ids) that the nodes still to run may read from a checkpoint's state.

    Every tree node's image counts (rollback may return to any of them); the last execute's candidates
    count only while ``reflect`` is pending (afterwards they are just ids in the report).
    """
    info = values.get("input_info") or {}
    ids = [info.get("artifact"), info.get("alpha_artifact")]
    ids += [n.get("artifact") for n in (values.get("tree") or {}).values()]
    if "reflect" in next_nodes:
        ids += [c.get("artifact") for c in values.get("candidates") or []]
    return [i for i in dict.fromkeys(ids) if i], ([info["icc"]] if info.get("icc") else [])


class ArtifactChecker:
    """Verifies artifacts on disk (never trusting the in-process cache), remembering verdicts."""

    def __init__(self) -> None:
        """Start with no verdicts."""
        self._verdicts: dict[tuple[str, str], bool] = {}

    def damaged(self, values: Mapping[str, Any], next_nodes: Sequence[str]) -> list[str]:
        """Ids of the missing or corrupted artifacts a checkpoint depends on (empty when it is usable)."""
        run_dir = values.get("run_dir")
        if not run_dir:
            return []
        store = ArtifactStore(Path(run_dir) / "artifacts")
        images, iccs = referenced_artifacts(values, next_nodes)
        bad = []
        for aid, is_icc in [(i, False) for i in images] + [(i, True) for i in iccs]:
            key = (str(store.root), aid)
            if key not in self._verdicts:
                self._verdicts[key] = _icc_intact(store, aid) if is_icc else _image_intact(store, aid)
            if not self._verdicts[key]:
                bad.append(aid)
        return bad


def _image_intact(store: ArtifactStore, aid: str) -> bool:
    _evict(store, aid)
    path = store.path(aid)
    try:
        if not png_intact(path.read_bytes()):  # damaged PNGs are caught before libpng prints to stderr
            raise ArtifactError(f"artifact {aid[:12]} is damaged")
        store.get(aid, verify=True)
    except (OSError, ArtifactError):
        _quarantine(store.path(aid))
        return False
    return True


def _icc_intact(store: ArtifactStore, icc_id: str) -> bool:
    try:
        load_icc(store.root, icc_id)
    except ArtifactError:
        _quarantine(store.root / f"{icc_id}.icc")
        return False
    return True


def _evict(store: ArtifactStore, aid: str) -> None:
    """Drop an artifact from the store's in-process cache so the file itself is read (and rewritten)."""
    from fourkagent.state import artifacts

    with artifacts._cache_lock:
        artifacts._cache.pop((str(store.root), aid), None)


def _quarantine(path: Path) -> None:
    """Move a damaged file aside; the store will write a fresh copy under the original name."""
    if path.exists():
        path.replace(path.with_name(path.name + ".corrupt"))


def _upcoming(snap: Any) -> list[str]:
    """Nodes still to run from a snapshot; an execute killed before its checkpoint counts its reflect."""
    done = [t.name for t in snap.tasks if t.name not in snap.next]  # finished, writes saved, no checkpoint yet
    return [*snap.next, *(["reflect"] if "execute" in done else [])]


def resume_point(graph: Any, config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The config to continue a thread from, and the damaged artifact ids that made it go back.

    Returns ``config`` itself when the latest checkpoint's artifacts are intact; otherwise the config
    of its newest ancestor checkpoint whose artifacts are all intact.

    Raises:
        ArtifactError: no usable checkpoint (should not happen: the first one references no artifact).
    """
    snap = graph.get_state(config)
    if snap.values.get("run_dir"):
        remove_stale_parts(Path(snap.values["run_dir"]) / "artifacts")
    checker = ArtifactChecker()
    damaged: list[str] = []
    while bad := checker.damaged(snap.values, _upcoming(snap)):
        damaged += [b for b in bad if b not in damaged]
        if snap.parent_config is None:
            raise ArtifactError(f"no checkpoint of this run has intact artifacts (damaged: {damaged[0][:12]})")
        snap = graph.get_state(snap.parent_config)
    return (snap.config if damaged else config), damaged
