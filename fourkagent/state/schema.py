"""The graph's state: small, JSON-like, checkpointable. Pixels live in the artifact store."""

from __future__ import annotations

import operator
from typing import Annotated, Any

from typing_extensions import Required, TypedDict


class InputState(TypedDict, total=False):
    """What a caller provides (the Studio form and the subgraph contract)."""

    input_path: Required[str]
    """The image to restore; opened read-only."""
    output_path: str
    """Where to write the result; defaults to ``<run dir>/output.png``."""
    profile: str | dict[str, Any]
    """A predefined profile name, a YAML path, or an inline mapping (``base`` + overrides)."""
    options: dict[str, Any]
    """Per-run overrides: ``overwrite`` (bool), ``threshold`` (float), ``quality`` (JPEG/WebP, int),
    ``review_plan`` (bool: pause after the first plan for approval or an edited plan; needs a checkpointer),
    ``review_compromise`` (bool: pause after a rollback compromise; resume ``"approve"`` or ``"stop"``),
    ``plan`` (list of steps: a fixed plan run in this order; a plan review's edit is stored here),
    ``max_tools`` (int: run only the experts that won most often on similar images, this many per step)."""


class OutputState(TypedDict, total=False):
    """What a run returns."""

    output_path: str
    report_path: str
    summary: str


class State(InputState, OutputState, total=False):
    """Full state. No reducers except ``events`` (append-only log); nodes return partial updates."""

    run_dir: str
    """Directory holding this run's artifacts (``<home>/runs/<run key>``)."""
    profile_data: dict[str, Any]
    """The resolved profile (all fields), fixed at the start of the run."""
    input_info: dict[str, Any]
    """Input file facts: path, width, height, mode, bits, format, artifact id."""
    perception: dict[str, Any]
    """Degradations (kind, severity, confidence, evidence), IQA, description, factor, perceiver used."""
    all_steps: list[str]
    """The multiset of steps this run must apply (restoration + SR), fixed after the first plan."""
    experience: dict[str, Any]
    """Experience used by this run: {source, pairwise: [[a, b, fail a first, fail b first]], tool_wins:
    {step: {tool: weight}}}, read once at the first plan so re-plans and resumes are deterministic."""
    agenda: list[str]
    """Remaining steps from the cursor, in planned order (first = next to execute)."""
    tree: dict[str, dict[str, Any]]
    """The image tree: node id → {parent, step, tool, artifact, score, children, failed, best}."""
    cursor: str
    """Node id of the image currently being worked on."""
    candidates: list[dict[str, Any]]
    """Last execute's outputs: {tool, artifact | None, error, seconds}."""
    scores: list[dict[str, Any]]
    """Last reflect's scores per candidate: {tool, artifact, score, components}."""
    verdict: dict[str, Any]
    """Last reflect's decision: {step, node, best_tool, best_score, threshold, passed}."""
    rollbacks: list[dict[str, Any]]
    """Every rollback: {step, from_node, best_score, threshold, reason, action}."""
    budget_spent_s: float
    """Predicted seconds (measured cost per megapixel × output size) of every expert run so far; the profile's
    ``time_budget_s`` minus this is what the remaining steps may spend. Predicted, not measured, so that the
    decisions depend on the state alone (see :mod:`fourkagent.planning.budget`)."""
    compromise: bool
    """True once every ordering failed and the run continued from the best image seen."""
    face_refs: dict[str, Any]
    """Identity references from the low-quality input (perceive, face profiles only):
    ``{size: [w, h], detector, embedder, faces: [{box, landmarks, score, detector, embedding (128 floats)}],
    error?}``."""
    faces: dict[str, Any]
    """Face stage record ``{status: done | skipped, reason, faces: [...], detector, embedder, ...}``; each
    face: ``box``, ``landmarks``, ``reference``, ``action`` (restored | kept | skipped), ``reason``,
    ``chosen`` expert, ``score``, ``identity_drift_deg``, ``candidates`` (expert, score, components, rejected)."""
    events: Annotated[list[dict[str, Any]], operator.add]
    """Append-only log of node and tool timings: {node, seconds, ...}."""
