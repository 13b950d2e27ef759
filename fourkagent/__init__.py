"""fourkagent: agentic any-image-to-4K super-resolution as a LangGraph agent."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
