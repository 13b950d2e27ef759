"""VLM perceiver and planner over any OpenAI-compatible chat endpoint (through ``langchain-openai``).

The perceiver sends the image (long side ≤ 512 px, base64 PNG in an ``image_url`` block) and the
NR-IQA report, and asks for a JSON answer (validated with pydantic): a severity on the paper's five
levels for each degradation of the paper's vocabulary, and a description of the image. The planner
asks for an order of the agenda, which must be a permutation of it and must not begin with a step
that already failed first. Every answer is validated; malformed output, timeouts, HTTP or
connection errors make the caller fall back to the offline detectors / planner, and the state says
why (``perceiver_note`` / ``planner_note``).
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

from pydantic import AliasChoices, BaseModel, Field, ValidationError, field_validator

from fourkagent.context import Context
from fourkagent.errors import FourKError
from fourkagent.imageio import encode_image
from fourkagent.imaging import Image, scale_by
from fourkagent.perception import prompts
from fourkagent.perception.detectors import PRESENT_FROM, SEVERITIES
from fourkagent.perception.iqa import iqa_text
from fourkagent.vocabulary import KINDS

MAX_SIDE = 512
"""Long side of the image sent to the VLM."""
MAX_RETRIES = 1
"""Retries of one call on connection errors, timeouts, 429 and 5xx (by the OpenAI client)."""

_SYNONYMS: dict[str, str] = {
    "low light": "dark", "low-light": "dark", "darkness": "dark", "underexposure": "dark",
    "jpeg": "jpeg compression artifact", "jpeg artifact": "jpeg compression artifact",
    "jpeg artifacts": "jpeg compression artifact", "jpeg compression artifacts": "jpeg compression artifact",
    "compression artifact": "jpeg compression artifact", "compression artifacts": "jpeg compression artifact",
    "motion": "motion blur", "defocus": "defocus blur", "out of focus": "defocus blur",
    "low-resolution": "low resolution", "fog": "haze", "rain streaks": "rain",
}


class VLMError(FourKError):
    """The VLM could not be reached or gave an answer that fails validation."""


class VLMDegradation(BaseModel):
    """One rated degradation as the VLM reports it (kind normalised; unknown kinds are dropped later)."""

    kind: str = Field(validation_alias=AliasChoices("kind", "degradation", "type", "name"))
    severity: str
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    evidence: str = ""

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, v: object) -> object:
        if isinstance(v, str):
            k = " ".join(v.strip().lower().replace("_", " ").split())
            return _SYNONYMS.get(k, k)
        return v

    @field_validator("confidence", mode="before")
    @classmethod
    def _confidence(cls, v: object) -> float | None:
        """Lenient: a percentage is scaled, anything unusable becomes None (unknown)."""
        try:
            c = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        c = c / 100.0 if 1.0 < c <= 100.0 else c
        return c if 0.0 <= c <= 1.0 else None

    @field_validator("evidence", mode="before")
    @classmethod
    def _evidence(cls, v: object) -> str:
        return "" if v is None else v if isinstance(v, str) else json.dumps(v)

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, v: object) -> object:
        s = " ".join(v.strip().lower().replace("_", " ").replace("-", " ").split()) if isinstance(v, str) else v
        if s not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {v!r}")
        return s


class VLMPerception(BaseModel):
    """The perception answer: rated degradations and a description of the content."""

    degradations: list[VLMDegradation]
    image_description: str = Field(min_length=1, validation_alias=AliasChoices("image_description", "description"))


class VLMPlan(BaseModel):
    """The planning answer: the order of the tasks (and the model's reason)."""

    plan: list[str] = Field(validation_alias=AliasChoices("plan", "order"))
    thought: str = ""


PERCEPTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "degradations": {"type": "array", "items": {
            "type": "object",
            "properties": {
                "kind": {"type": "string", "enum": list(KINDS)},
                "severity": {"type": "string", "enum": list(SEVERITIES)},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "evidence": {"type": "string"},
            },
            "required": ["kind", "severity"],
        }},
        "image_description": {"type": "string"},
    },
    "required": ["degradations", "image_description"],
}
"""JSON schema sent as ``response_format`` (servers with constrained decoding follow it exactly)."""


def vlm_configured(ctx: Context) -> bool:
    """Whether a VLM endpoint is configured (``FOURKAGENT_VLM_BASE_URL`` / ``Context.vlm_base_url``)."""
    return bool(ctx.vlm_base_url)


def image_data_url(img: Image, max_side: int = MAX_SIDE) -> str:
    """``data:image/png;base64,...`` of ``img`` shrunk to a long side ≤ ``max_side`` (never enlarged)."""
    long_side = max(img.shape[:2])
    if long_side > max_side:
        img = scale_by(img, max_side / long_side, "area")
    return "data:image/png;base64," + base64.b64encode(encode_image(img, "PNG")).decode("ascii")


def _chat(ctx: Context) -> Any:
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as exc:
        raise VLMError("langchain-openai is not installed (pip install langchain-openai)") from exc
    return ChatOpenAI(
        model=ctx.vlm_model or "default", base_url=ctx.vlm_base_url, api_key=ctx.vlm_api_key or "none",
        timeout=ctx.vlm_timeout, max_retries=MAX_RETRIES, temperature=0.0,
    )


def _schema_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": False}}


def ask(ctx: Context, system: str, content: str | list[dict[str, Any]], schema: tuple[str, dict[str, Any]]) -> str:
    """One chat call; returns the answer's text. A server that rejects ``response_format`` (HTTP 400)
    is asked again without it (the prompt itself asks for JSON).

    Raises:
        VLMError: not configured, connection error, timeout, HTTP error, or empty answer.
    """
    from langchain_core.messages import HumanMessage, SystemMessage

    if not vlm_configured(ctx):
        raise VLMError("no VLM endpoint configured (set FOURKAGENT_VLM_BASE_URL)")
    import openai

    messages = [SystemMessage(system), HumanMessage(content=content)]
    llm = _chat(ctx)
    try:
        try:
            msg = llm.bind(response_format=_schema_format(*schema)).invoke(messages)
        except openai.BadRequestError:
            msg = llm.invoke(messages)
    except openai.APITimeoutError as exc:
        raise VLMError(f"timed out after {ctx.vlm_timeout:g} s") from exc
    except openai.APIConnectionError as exc:
        raise VLMError(f"cannot connect to {ctx.vlm_base_url}") from exc
    except openai.APIStatusError as exc:
        raise VLMError(f"HTTP {exc.status_code} from {ctx.vlm_base_url}") from exc
    except openai.APIError as exc:
        raise VLMError(f"{type(exc).__name__}: {str(exc)[:160]}") from exc
    text = msg.text.strip()
    if not text:
        raise VLMError("empty answer")
    return text


def parse_json_answer(text: str, model: type[BaseModel]) -> Any:
    """The first JSON object in ``text`` (fences and prose around it are ignored), validated by ``model``.

    Raises:
        VLMError: no JSON object, invalid JSON, or a schema violation.
    """
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise VLMError(f"answer has no JSON object: {text[:80]!r}")
    try:
        return model.model_validate(json.loads(text[start : end + 1]))
    except json.JSONDecodeError as exc:
        raise VLMError(f"answer is not valid JSON ({exc.msg})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise VLMError(f"answer fails validation at {where or 'top level'}: {first['msg']}") from exc


def _merge(answer: VLMPerception, offline: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every kind of the vocabulary with the VLM's severity (most severe if repeated; "very low" if
    not mentioned), the offline verdict kept as evidence; also the kinds outside the vocabulary."""
    rated: dict[str, VLMDegradation] = {}
    ignored: list[str] = []
    for d in answer.degradations:
        if d.kind not in KINDS:
            ignored.append(d.kind)
        elif d.kind not in rated or SEVERITIES.index(d.severity) > SEVERITIES.index(rated[d.kind].severity):
            rated[d.kind] = d
    off = {d["kind"]: d for d in offline}
    out = []
    for kind in KINDS:
        d = rated.get(kind)
        evidence: dict[str, Any] = {"vlm": (d.evidence or "rated") if d else "not mentioned"}
        if kind in off:
            evidence["offline"] = f"{off[kind]['severity']} (confidence {off[kind]['confidence']:.2f})"
        severity = d.severity if d else SEVERITIES[0]
        out.append({
            "kind": kind, "severity": severity, "present": SEVERITIES.index(severity) >= PRESENT_FROM,
            "confidence": d.confidence if d else None, "evidence": evidence,
        })
    return out, ignored


def perceive_vlm(img: Image, offline: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Perception by the VLM, built on the offline result ``offline`` (from ``perceive_offline``).

    Returns the VLM's degradations and description (``perceiver`` = "vlm"; the offline verdicts stay
    under ``offline``), or ``offline`` unchanged with ``perceiver`` = "offline" and a
    ``perceiver_note`` saying why the VLM was not used.
    """
    base = {**offline, "perceiver": "offline"}
    if not vlm_configured(ctx):
        return base | {"perceiver_note": "profile asks for a VLM perceiver; none is configured "
                                         "(set FOURKAGENT_VLM_BASE_URL), used the offline detectors"}
    text = prompts.PERCEPTION_PROMPT.format(
        kinds=", ".join(KINDS), severities=", ".join(SEVERITIES), iqa_result=iqa_text(offline.get("iqa", {})),
    )
    content = [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": image_data_url(img)}}]
    t0 = time.perf_counter()
    try:
        answer = parse_json_answer(ask(ctx, prompts.PERCEPTION_SYSTEM, content, ("perception", PERCEPTION_SCHEMA)),
                                   VLMPerception)
    except VLMError as exc:
        return base | {"perceiver_note": f"VLM perceiver failed ({exc}); used the offline detectors"}
    degradations, ignored = _merge(answer, offline["degradations"])
    vlm_info: dict[str, Any] = {"model": ctx.vlm_model or "default", "base_url": ctx.vlm_base_url,
                                "seconds": round(time.perf_counter() - t0, 3)}
    if ignored:
        vlm_info["ignored_kinds"] = ignored
    return {
        **offline, "degradations": degradations, "description": answer.image_description.strip(),
        "perceiver": "vlm", "vlm": vlm_info,
        "offline": {"degradations": offline["degradations"], "description": offline["description"]},
    }


def experience_text(table: dict[tuple[str, str], tuple[float, float]]) -> str:
    """The pairwise experience as prompt lines: "a before b fails x% of the time; b before a y%"."""
    return "\n".join(
        f"- {a} before {b} fails {fa:.0%} of the time; {b} before {a} fails {fb:.0%}."
        for (a, b), (fa, fb) in table.items()
    ) or "- none recorded"


def _degradation_text(degradations: Sequence[str | dict[str, Any]]) -> str:
    parts = [d if isinstance(d, str) else f"{d['kind']} ({d.get('severity')})"
             for d in degradations if isinstance(d, str) or d.get("present", True)]
    return ", ".join(parts) or "none"


def vlm_order_explained(
    steps: Sequence[str], description: str, degradations: Sequence[str | dict[str, Any]], experience: str,
    avoid_first: Collection[str], ctx: Context,
) -> tuple[list[str] | None, str]:
    """Ask the VLM for an order of ``steps``: (order, note), order None when the answer is unusable."""
    steps = list(steps)
    avoid = sorted(set(avoid_first) & set(steps))
    note = prompts.REPLAN_NOTE.format(failed=", ".join(avoid), which=" or ".join(avoid)) if avoid else ""
    text = prompts.PLAN_PROMPT.format(
        image_description=description, degradations=_degradation_text(degradations),
        tasks=json.dumps(steps), experience=experience, failure_note=note,
    )
    schema = {"type": "object", "properties": {"thought": {"type": "string"},
              "plan": {"type": "array", "items": {"type": "string", "enum": sorted(set(steps))}}},
              "required": ["plan"]}
    try:
        plan = parse_json_answer(ask(ctx, prompts.PLAN_SYSTEM, text, ("plan", schema)), VLMPlan).plan
    except VLMError as exc:
        return None, f"VLM planner failed ({exc}); used the offline planner"
    if Counter(plan) != Counter(steps):
        return None, f"VLM plan {plan} is not a permutation of {steps}; used the offline planner"
    if plan[0] in avoid:
        return None, f"VLM plan starts with {plan[0]!r}, which already failed first; used the offline planner"
    return plan, "ordered by the VLM planner"


def vlm_order(
    steps: Sequence[str], description: str, degradations: Sequence[str | dict[str, Any]], experience_text: str,
    avoid_first: Collection[str], ctx: Context,
) -> list[str] | None:
    """A VLM-chosen permutation of ``steps`` not starting in ``avoid_first``, or None (fall back)."""
    return vlm_order_explained(steps, description, degradations, experience_text, avoid_first, ctx)[0]


def plan_with_vlm(
    perception: dict[str, Any], perceiver: str, steps: Sequence[str], avoid_first: Collection[str],
    experience: dict[tuple[str, str], tuple[float, float]], ctx: Context,
) -> tuple[list[str] | None, str | None]:
    """The plan node's VLM ordering: only when the profile asks for the VLM and perception used it
    (a VLM that already failed is not waited for again) and there is something to order."""
    if perceiver != "vlm" or perception.get("perceiver") != "vlm" or len(steps) < 2:
        return None, None
    return vlm_order_explained(steps, perception.get("description", ""), perception.get("degradations", []),
                               experience_text(experience), avoid_first, ctx)
