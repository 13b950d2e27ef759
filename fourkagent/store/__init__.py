"""Persistent records across runs: the experience store the planner learns from."""
