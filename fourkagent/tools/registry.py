"""The main tool registry, built from one explicit list of tool modules."""

from __future__ import annotations

from fourkagent.tools.base import ToolRegistry
from fourkagent.tools.classical import brighten, denoise, sr


def build_main_registry() -> ToolRegistry:
    """Every tool fourkagent ships, in a fixed order (ties in Q-MoE go to the earlier tool)."""
    reg = ToolRegistry()
    for module in (sr, denoise, brighten):
        reg.add(*module.TOOLS)
    return reg


MAIN_REGISTRY = build_main_registry()
"""The registry nodes use unless a graph is built with another one."""
