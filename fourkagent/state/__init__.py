"""Typed graph state (records in :mod:`fourkagent.state.records`) and the content-addressed artifact store."""

from fourkagent.state.artifacts import ArtifactStore
from fourkagent.state.schema import InputState, OutputState, State, Update

__all__ = ["ArtifactStore", "InputState", "OutputState", "State", "Update"]
