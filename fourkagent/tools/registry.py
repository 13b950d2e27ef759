"""The main tool registry, built from one explicit list of tool modules."""

from __future__ import annotations

from fourkagent.models import diffusion_tools
from fourkagent.tools import npm, packaged, pretrained, trained
from fourkagent.tools.base import Tool, ToolRegistry
from fourkagent.tools.classical import brighten, deblur, dehaze, denoise, derain, jpeg, oldphoto, sr

TOOL_MODULES = (
    sr, pretrained, diffusion_tools, denoise, brighten, deblur, dehaze, derain, jpeg, oldphoto, packaged, trained, npm,
)
"""Every module contributing tools, in registry order (ties in Q-MoE go to the earlier tool)."""


def build_main_registry() -> ToolRegistry:
    """Every tool fourkagent ships, in a fixed order."""
    reg = ToolRegistry()
    for module in TOOL_MODULES:
        reg.add(*module.TOOLS)
    reg.add(*_user_model_tools(reg))
    return reg


def _user_model_tools(reg: ToolRegistry) -> list[Tool]:
    """Tools from weights in the user model directory; a broken directory or file never breaks the registry
    (a broken file shows as an unavailable tool with its reason)."""
    try:
        from fourkagent.models.external import external_tools
        from fourkagent.models.store import default_model_dir

        return [t for t in external_tools(default_model_dir()) if t.name not in reg]
    except Exception:  # noqa: BLE001 - optional extras must not take the shipped tools down
        return []


MAIN_REGISTRY = build_main_registry()
"""The registry nodes use unless a graph is built with another one."""
