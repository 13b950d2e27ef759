"""Restoration tools: specs, registry and LangChain wrappers."""
