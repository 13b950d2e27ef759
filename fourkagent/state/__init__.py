"""Typed graph state and the content-addressed artifact store."""

from fourkagent.state.artifacts import ArtifactStore
from fourkagent.state.schema import InputState, OutputState, State

__all__ = ["ArtifactStore", "InputState", "OutputState", "State"]
