"""The graph's state: small, JSON-like, checkpointable. Pixels live in the artifact store.

The records the fields hold (tree nodes, candidates, scores, verdicts, rollbacks, perception, faces, …) are
typed and documented in :mod:`fourkagent.state.records`.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from typing_extensions import Required, TypedDict

from fourkagent.state.records import (
    Candidate, Event, Experience, FaceRefs, FaceStage, InputInfo, Perception, Rollback, RunOptions, Score, Tree,
    Verdict,
)


class InputState(TypedDict, total=False):
    """What a caller provides (the Studio form and the subgraph contract)."""

    input_path: Required[str]
    """The image to restore; opened read-only."""
    output_path: str
    """Where to write the result; defaults to ``<run dir>/output.png``."""
    profile: str | dict[str, Any]
    """A predefined profile name, a YAML path, or an inline mapping (``base`` + overrides)."""
    options: RunOptions
    """Per-run overrides (:class:`~fourkagent.state.records.RunOptions`)."""


class OutputState(TypedDict, total=False):
    """What a run returns."""

    output_path: str
    report_path: str
    summary: str


class RunFields(TypedDict, total=False):
    """The fields the nodes own."""

    run_dir: str
    """Directory holding this run's artifacts (``<home>/runs/<run key>``)."""
    profile_data: dict[str, Any]
    """The resolved profile (all fields of :class:`fourkagent.profiles.Profile`), fixed at the start of the run."""
    input_info: InputInfo
    """Input file facts and the stored input's artifact id."""
    perception: Perception
    """Degradations, IQA, description, factor and output size, perceiver used."""
    all_steps: list[str]
    """The multiset of steps this run must apply (restoration + SR), fixed after the first plan."""
    experience: Experience
    """Experience used by this run, read once at the first plan so re-plans and resumes are deterministic."""
    agenda: list[str]
    """Remaining steps from the cursor, in planned order (first = next to execute)."""
    tree: Tree
    """The image tree: node id → :class:`~fourkagent.state.records.TreeNode`."""
    cursor: str
    """Node id of the image currently being worked on."""
    candidates: list[Candidate]
    """Last execute's outputs, one per expert."""
    scores: list[Score]
    """Last reflect's scores, one per candidate."""
    verdict: Verdict
    """Last reflect's decision."""
    rollbacks: list[Rollback]
    """Every rollback, in order."""
    budget_spent_s: float
    """Predicted seconds (measured cost per megapixel × output size) of every expert run so far; the profile's
    ``time_budget_s`` minus this is what the remaining steps may spend. Predicted, not measured, so that the
    decisions depend on the state alone (see :mod:`fourkagent.planning.budget`)."""
    compromise: bool
    """True once every ordering failed and the run continued from the best image seen."""
    face_refs: FaceRefs
    """Identity references from the low-quality input (perceive, face profiles only)."""
    faces: FaceStage
    """The face stage record."""
    events: Annotated[list[Event], operator.add]
    """Append-only log of node and tool timings (the only field with a reducer)."""


class State(InputState, OutputState, RunFields, total=False):
    """Full state. No reducers except ``events`` (append-only log); nodes return partial updates (:class:`Update`)."""


class Update(OutputState, RunFields, total=False):
    """What a node returns: only the fields it changes (plan also stores an edited plan in ``options``)."""

    options: RunOptions
