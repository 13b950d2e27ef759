"""The main tool registry, built from one explicit list of tool modules."""

from __future__ import annotations

from fourkagent.tools import pretrained
from fourkagent.tools.base import ToolRegistry
from fourkagent.tools.classical import brighten, deblur, dehaze, denoise, derain, jpeg, oldphoto, sr

TOOL_MODULES = (sr, pretrained, denoise, brighten, deblur, dehaze, derain, jpeg, oldphoto)
"""Every module contributing tools, in registry order (ties in Q-MoE go to the earlier tool)."""


def build_main_registry() -> ToolRegistry:
    """Every tool fourkagent ships, in a fixed order."""
    reg = ToolRegistry()
    for module in TOOL_MODULES:
        reg.add(*module.TOOLS)
    return reg


MAIN_REGISTRY = build_main_registry()
"""The registry nodes use unless a graph is built with another one."""
