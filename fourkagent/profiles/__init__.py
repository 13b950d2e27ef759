"""Profiles as data: a typed model, the predefined YAML catalogue and a loader."""

from __future__ import annotations

from fourkagent.profiles.model import Profile
from fourkagent.profiles.loader import DEFAULT_PROFILE, list_profiles, load_profile

__all__ = ["DEFAULT_PROFILE", "Profile", "list_profiles", "load_profile"]
