"""The records the graph state is made of, each field documented once here.

Every record is a ``TypedDict``: at runtime a plain dict, so the state stays JSON-like, LangGraph's
serializers checkpoint it as before and checkpoints written before these types existed still load. A type
checker (``tests/test_types.py`` runs mypy) checks that the nodes read and write only these keys.

``NotRequired`` marks a key some writers leave out; old checkpoints may also lack keys added later (the
readers use ``.get`` for those).
"""

from __future__ import annotations

from typing import Any, Literal

from typing_extensions import NotRequired, TypedDict

from fourkagent.planning.budget import Dropped

# ---------------------------------------------------------------------------------------------- input, options


class RunOptions(TypedDict, total=False):
    """Per-run overrides (``State.options``), all optional."""

    overwrite: bool
    """Replace an existing output file."""
    threshold: float
    """Q a step's best candidate must reach (overrides the profile's)."""
    quality: int
    """JPEG/WebP quality of the output (default 95)."""
    review_plan: bool
    """Pause after the first plan for approval or an edited plan (needs a checkpointer)."""
    review_compromise: bool
    """Pause after a rollback compromise; resume ``"approve"`` or ``"stop"``."""
    plan: list[str]
    """A fixed plan run in this order; a plan review's edit is stored here."""
    max_tools: int
    """Run only the experts that won most often on similar images, this many per step."""


class InputInfo(TypedDict):
    """What perceive read from the input file (``State.input_info``): the fields of
    :class:`fourkagent.imageio.InputInfo` (documented there), then where perceive stored the image."""

    path: str
    width: int
    height: int
    mode: str
    bits: int
    format: str
    gray: bool
    has_alpha: bool
    has_icc: bool
    frames: int
    orientation: int
    warnings: list[str]
    artifact: str
    """Artifact id of the (padded) input image."""
    work_size: list[int]
    """``[w, h]`` of that image: tiny or thin inputs are padded, and finalize crops back."""
    alpha_artifact: NotRequired[str]
    """The alpha channel, stored apart (upscaled and re-attached by finalize)."""
    icc: NotRequired[str]
    """File name of the input's ICC profile in the store (re-attached by finalize)."""


# ------------------------------------------------------------------------------------------------- perception


class Degradation(TypedDict):
    """One degradation verdict (offline detectors, or the VLM's)."""

    kind: str
    """One of :data:`fourkagent.vocabulary.KINDS`."""
    severity: str
    """On the paper's scale (``fourkagent.perception.detectors.SEVERITIES``: very low … very high)."""
    present: bool
    """Medium or worse (or reported for the upscale factor, see ``reason``): the kind enters the plan."""
    confidence: float | None
    """Detector confidence in [0, 1]; the VLM's verdicts carry the offline one, None for no offline verdict."""
    evidence: dict[str, Any]
    """Offline: the measures behind the verdict (floats); VLM: its own words and the offline verdict."""
    reason: NotRequired[str]
    """Why a degradation below medium is reported present: the upscale factor magnifies it."""


class OfflinePerception(TypedDict):
    """The offline verdicts a VLM perception replaced (kept for the report)."""

    degradations: list[Degradation]
    description: str


class Perception(TypedDict):
    """What perceive found (``State.perception``)."""

    degradations: list[Degradation]
    """Every kind of the vocabulary, present or not."""
    iqa: dict[str, Any]
    """NR-IQA metric → value, or ``{"unavailable": reason}``."""
    iqa_info: dict[str, Any]
    """``metrics_used``, ``sources``, ``lower_better`` and (pyiqa) ``pyiqa_input_size``."""
    description: str
    """A factual description (offline) or the VLM's."""
    perceiver: Literal["offline", "vlm"]
    """Who made the verdicts."""
    preprocess: list[dict[str, Any]]
    """Old-photo repair before perception: ``{tool, artifact}`` or ``{tool, error}``; empty otherwise."""
    factor: int
    """The upscale factor the profile chose for this input."""
    output_size: list[int]
    """``[w, h]`` the result is written at."""
    size_note: NotRequired[str]
    """Why the output size is not input × factor."""
    perceiver_note: NotRequired[str]
    """Why the VLM perceiver asked for was not used."""
    vlm: NotRequired[dict[str, Any]]
    """The VLM perception's ``model``, ``base_url``, ``seconds`` and ``ignored_kinds``."""
    offline: NotRequired[OfflinePerception]
    """The offline verdicts, when the VLM's replaced them."""
    planner: NotRequired[Literal["offline", "vlm"]]
    """Who ordered the steps, when the VLM planner was tried (written by plan)."""
    planner_note: NotRequired[str]
    """What the VLM planner did (written by plan)."""


class Experience(TypedDict):
    """Experience read once at the first plan, so re-plans and resumes order the same (``State.experience``)."""

    source: str
    """``store``, ``paper``, or ``paper (experience store unavailable: …)``."""
    pairwise: list[list[Any]]
    """Ordering failure rates ``[a, b, fail a first, fail b first]`` (``store.experience.dumps_table``)."""
    tool_wins: dict[str, dict[str, float]]
    """Step → tool → similarity-weighted wins on similar images (empty without the store)."""


# ------------------------------------------------------------------------------------------- execute, reflect


class Candidate(TypedDict):
    """One expert's output from execute (``State.candidates``)."""

    tool: str
    artifact: str | None
    """The output's artifact id; None when the tool failed."""
    error: str | None
    """Why the tool failed."""
    predicted_s: float | None
    """Its predicted seconds (measured cost per megapixel; None: not measured)."""
    seconds: float
    """What it took."""
    size: NotRequired[list[int]]
    """``[w, h]`` of the output (successful runs)."""
    sure_ratio: NotRequired[float]
    """SURE's risk ratio for denoising candidates, where measured."""


class Score(TypedDict):
    """One candidate as reflect scored it (``State.scores`` and ``TreeNode.candidates``)."""

    tool: str
    artifact: str | None
    seconds: float | None
    predicted_s: float | None
    score: float | None
    """Q; None when not scored (failed, or returned its input unchanged)."""
    components: dict[str, float]
    """What Q was computed from (empty when not scored)."""
    error: str | None
    unchanged: NotRequired[bool]
    """True: the tool returned its input unchanged, so it was not a candidate."""


class Verdict(TypedDict):
    """Reflect's decision on the last step (``State.verdict``)."""

    step: str
    node: str
    """The tree node reflect added for this step."""
    best_tool: str | None
    """The winning expert; None when the input was kept or nothing produced a valid image."""
    best_score: float
    threshold: float
    passed: bool
    """``best_score`` reached the threshold."""
    reason: NotRequired[str]
    """Why no expert's output was kept (quoted by the rollback record)."""


# ---------------------------------------------------------------------------------------------- tree, rollback


class TreeNode(TypedDict):
    """One image of the image tree (``State.tree``, see :mod:`fourkagent.planning.search`)."""

    id: str
    parent: str | None
    """None for the root (the input)."""
    step: str | None
    """The step that made this image from its parent (None for the root)."""
    tool: str | None
    """The expert whose output this is; None for the root or a step that kept its input (faces: the
    experts chosen, comma-separated)."""
    artifact: str
    score: float | None
    """The step's best Q (faces: the restored faces' mean); None for the root."""
    width: int
    height: int
    children: dict[str, str]
    """First step tried from this image → the node it produced."""
    failed: bool
    """The step's best candidate was below the threshold."""
    best: str | None
    """Set by rollback when every ordering below this node failed: the best node beneath it."""
    candidates: NotRequired[list[Score]]
    """Every candidate of the step, scored (not on the root)."""
    note: NotRequired[str]
    """Why the step kept its input (no tool)."""


class NodeFields(TypedDict, total=False):
    """The fields :func:`fourkagent.planning.search.new_node` takes for a new :class:`TreeNode`."""

    tool: str | None
    artifact: str
    score: float | None
    width: int
    height: int
    failed: bool
    candidates: list[Score]
    note: str


class Rollback(TypedDict):
    """One rollback (``State.rollbacks``)."""

    step: str
    """The step that failed."""
    from_node: str
    """The cursor the step ran from."""
    failed_node: str
    """The node holding the failed step's best output."""
    best_score: float
    threshold: float
    reason: str
    action: str
    """Where the search went on (another first step, back up the tree, or the compromise)."""


# ------------------------------------------------------------------------------------------------------ faces


class FaceRefs(TypedDict):
    """Identity references from the low-quality input (``State.face_refs``; perceive, face profiles only)."""

    size: list[int]
    """``[w, h]`` of the image they were found on."""
    detector: str
    embedder: str | None
    """None when no identity embedder is available."""
    faces: list[dict[str, Any]]
    """Each: ``box``, ``landmarks``, ``score``, ``detector``, ``embedding`` (128 floats, with an embedder)."""
    error: NotRequired[str]
    """Why detection failed (the face stage then skips with it)."""


class FaceRecord(TypedDict, total=False):
    """One face of the result in the face stage record."""

    box: list[int]
    landmarks: list[list[float]]
    detector: str
    reference: dict[str, Any]
    """The matched input face's ``box`` and ``landmarks``."""
    action: Literal["restored", "kept", "skipped"]
    reason: str
    chosen: str | None
    """The expert whose crop won (or ``unrestored``)."""
    score: float
    """Detector score, then the chosen candidate's face score."""
    identity_drift_deg: float
    candidates: list[dict[str, Any]]
    """Each expert's ``expert``, ``kind``, ``seconds``, ``score``, ``components``, ``rejected``, ``error``."""
    tilt_deg: float
    native_side: int
    identity_limit_deg: float | None
    identity_note: str
    paste_region: list[int]
    seconds: float


class FaceStage(TypedDict):
    """The face stage record (``State.faces``)."""

    status: Literal["done", "skipped"]
    reason: str
    faces: list[FaceRecord]
    detector: NotRequired[str]
    embedder: NotRequired[str | None]
    note: NotRequired[str]
    """Faces found on the result but not in the input."""
    input_faces: NotRequired[int]
    """Faces in the input's references."""
    seconds: NotRequired[float]


# ----------------------------------------------------------------------------------------------------- events


class Event(TypedDict, total=False):
    """One entry of the append-only event log (``State.events``)."""

    node: str
    """The node that wrote it; with only ``seconds``, the node's own time."""
    seconds: float
    tool: str
    """An expert run (execute), with ``step``, ``seconds`` and ``predicted_s``."""
    step: str
    predicted_s: float | None
    dropped: list[Dropped]
    """Experts the time budget or Fast4K did not run."""
    max_tools_skipped: list[str]
    """Experts the ``max_tools`` option did not run."""


Tree = dict[str, TreeNode]
"""The image tree: node id → node."""
