"""What the bench compares: interpolation, every single tool, fixed tool chains, and the agent.

- ``bicubic`` / ``lanczos``: plain resize to the target size (``input`` on same-size families);
- ``identity``: the ground truth itself (a sanity check of the metric pipeline: PSNR = inf, SSIM = 1);
- ``tool:NAME``: one registry tool; a restoration tool is followed by bicubic to the target size, an SR
  tool is repeated until the factor is reached (×2 twice for ×4; not applicable when its scale does not divide);
- ``chain:A+B+…``: tools in order, then bicubic to the target size if needed;
- ``chain:oracle``: the ground-truth degradations' steps in the planner's order, each done by the tool
  with the best mean Y-PSNR in this bench's single-tool results (a fixed, degradation-aware pipeline);
- ``agent:PROFILE``: the full agent via ``fourkagent.runner.run`` in a subprocess (wall time, peak RSS).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fourkagent.bench import BenchError
from fourkagent.bench.dataset import Case
from fourkagent.imaging import Image, resize
from fourkagent.planning.agenda import SR_STEPS, upscale_factor
from fourkagent.planning.order import order_steps
from fourkagent.profiles import load_profile
from fourkagent.tools.base import Tool, ToolRegistry
from fourkagent.vocabulary import DEGRADATION_TO_STEP, step_category, step_scale

MULTI_X1: dict[str, Any] = {"base": "GenMIR-P", "name": "GenMIR-P-x1", "scale_factor": None, "require_sr_size": 1}
"""GenMIR-P at the input size, as the paper evaluates MiO100 (its reference YAML has ``ScaleFactor: null``)."""

PROFILES: dict[str, tuple[tuple[str | dict[str, Any], ...], tuple[str | dict[str, Any], ...]]] = {
    "classical-x4": (("ExpSR-s4-F", "ExpSR-s4-P"), ("ExpSR-s4-F", "ExpSR-s4-P")),
    "realworld-x4": (("GenSR-s4-P",), ("GenSR-s4-P", "AerSR-s4-F", "ExpSR-s4-P")),
    "multi": ((MULTI_X1,), (MULTI_X1,)),
    "face-x4": (("GenSRFR-s4-P",), ("GenSRFR-s4-P", "ExpSRFR-s4-P")),
    "x16": (("FastGen4K-P",), ("FastGen4K-P", "Gen4K-F")),
    "to4k-1024": (("FastGen4K-P",), ("FastGen4K-P", "Gen4K-F")),
}
"""Agent profiles per family: (quick, full)."""

DEFAULT_METHODS = ("bicubic", "lanczos", "tools", "chain:oracle", "agent")


@dataclass(frozen=True)
class Method:
    """A named way of producing an output from a case."""

    name: str
    kind: str
    """``resize``, ``identity``, ``tools``, ``oracle`` or ``agent``."""
    tools: tuple[str, ...] = ()
    profile: str | dict[str, Any] | None = None
    interp: str = "cubic"


def profile_label(profile: str | dict[str, Any]) -> str:
    """A short name for a profile (its ``name`` for inline mappings)."""
    return profile if isinstance(profile, str) else str(profile.get("name") or profile.get("base"))


def _sr_repeats(tool: Tool, scale: int) -> int | None:
    """How many times an SR tool must run to reach ``scale``, or ``None`` if it cannot."""
    if tool.spec.scale <= 1 or scale <= 1:
        return None
    k = round(math.log(scale, tool.spec.scale))
    return k if tool.spec.scale**k == scale else None


def expand(spec: list[str], case: Case, registry: ToolRegistry, quick: bool, profiles: list[str] | None) -> list[Method]:
    """The methods a spec list means for one case (inapplicable ones left out).

    Raises:
        BenchError: an unknown method keyword or tool name.
    """
    out: list[Method] = []
    for item in spec:
        if item in ("bicubic", "lanczos"):
            m = Method(item, "resize", interp="cubic" if item == "bicubic" else "lanczos")
            out.append(m if case.scale > 1 else Method("input", "resize"))
        elif item == "identity":
            if case.hr is not None:
                out.append(Method("identity", "identity"))
        elif item == "tools":
            if quick and case.hr is None:
                continue  # no ground truth: single tools would only add time
            for t in registry:
                if t.unavailable_reason() is None and not (quick and t.spec.slow) and _applicable(t, case):
                    out.append(Method(f"tool:{t.name}", "tools", (t.name,)))
        elif item.startswith("tool:") or item.startswith("chain:"):
            names = tuple(item.split(":", 1)[1].split("+"))
            if names == ("oracle",):
                if case.degradations and not (quick and case.hr is None):
                    out.append(Method("chain:oracle", "oracle"))
                continue
            for n in names:
                if n not in registry:
                    raise BenchError(f"unknown tool {n!r} in method {item!r} (see `4kagent tools`)")
            if len(names) > 1 or _applicable(registry.get(names[0]), case):
                out.append(Method(item, "tools", names))
        elif item == "agent" or item.startswith("agent:"):
            chosen = [item.split(":", 1)[1]] if ":" in item else profiles or list(PROFILES[case.family][0 if quick else 1])
            out.extend(Method(f"agent:{profile_label(p)}", "agent", profile=p) for p in chosen if _factor_fits(p, case))
        else:
            raise BenchError(f"unknown method {item!r} (bicubic, lanczos, identity, tools, tool:NAME, chain:A+B, "
                             "chain:oracle, agent, agent:PROFILE)")
    return list({m.name: m for m in reversed(out)}.values())[::-1]  # first of equal names wins


def _factor_fits(profile: str | dict[str, Any], case: Case) -> bool:
    """Whether a profile upscales this case by exactly the case's factor (else its output has no reference size)."""
    h, w = case.lr.shape[:2]
    return upscale_factor(w, h, load_profile(profile)) == case.scale


def _applicable(tool: Tool, case: Case) -> bool:
    return tool.spec.scale == 1 or _sr_repeats(tool, case.scale) is not None


def oracle_steps(case: Case) -> list[str]:
    """The steps a perfect perceiver would plan for a case, in the planner's order."""
    restore = [DEGRADATION_TO_STEP[d] for d in case.degradations if d in DEGRADATION_TO_STEP]
    return order_steps(list(dict.fromkeys(restore)) + SR_STEPS[case.scale])


def oracle_tools(case: Case, registry: ToolRegistry, best: dict[tuple[str, int], str]) -> tuple[str, ...]:
    """One tool per oracle step: the bench's best for that (category, scale), else the registry's first."""
    names: list[str] = []
    for step in oracle_steps(case):
        key = (step_category(step), step_scale(step))
        avail = registry.for_step(*key)
        if key in best:
            names.append(best[key])
        elif avail:
            names.append(avail[0].name)
    return tuple(names)


def apply_tools(img: Image, names: tuple[str, ...], registry: ToolRegistry, scale: int) -> Image:
    """Run tools in order (a lone SR tool repeats to reach ``scale``), then bicubic to the target size."""
    h, w = img.shape[:2]
    if len(names) == 1 and (k := _sr_repeats(registry.get(names[0]), scale)):
        names = names * k
    for n in names:
        img = registry.get(n)(img)
    if img.shape[:2] != (h * scale, w * scale):
        img = resize(img, (w * scale, h * scale), "cubic")
    return img


def apply_local(method: Method, case: Case, registry: ToolRegistry, best: dict[tuple[str, int], str]) -> Image:
    """Output of a non-agent method."""
    h, w = case.lr.shape[:2]
    if method.kind == "identity":
        assert case.hr is not None
        return case.hr
    if method.kind == "resize":
        return case.lr if case.scale == 1 else resize(case.lr, (w * case.scale, h * case.scale), method.interp)
    names = oracle_tools(case, registry, best) if method.kind == "oracle" else method.tools
    return apply_tools(case.lr, names, registry, case.scale)


def run_agent(
    lr_path: Path, out_path: Path, profile: str | dict[str, Any], home: Path, timeout: float = 1800.0
) -> dict[str, Any]:
    """Run the agent on one file in a fresh process; returns the worker's record (or ``{"error": …}``)."""
    spec = {"input": str(lr_path), "output": str(out_path), "profile": profile, "home": str(home)}
    env = dict(os.environ, FOURKAGENT_HOME=str(home))
    try:
        proc = subprocess.run([sys.executable, "-m", "fourkagent.bench.worker", json.dumps(spec)],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"agent exited {proc.returncode}: {tail[:200]}"}
    return dict(json.loads(lines[-1]))
