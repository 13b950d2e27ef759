"""Find, read and validate profiles: predefined names, YAML files or inline mappings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fourkagent.errors import ProfileError
from fourkagent.paths import DEFAULT_PROFILE, profile_file, profile_files
from fourkagent.profiles.model import Profile

__all__ = ["DEFAULT_PROFILE", "list_profiles", "load_profile"]


def list_profiles() -> list[Profile]:
    """Every predefined profile, validated, in name order."""
    return [_from_file(p) for p in profile_files().values()]


def _from_mapping(data: Any, source: str) -> Profile:
    if not isinstance(data, dict):
        raise ProfileError(f"profile {source}: expected a mapping of settings, got {type(data).__name__}")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "(profile)"
        raise ProfileError(f"profile {source}: field '{field}': {err['msg']}") from None


def _from_file(path: Path) -> Profile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"profile {path}: cannot read ({exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ProfileError(f"profile {path}: invalid YAML{where}") from None
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    return _from_mapping(data, str(path))


def load_profile(spec: str | dict[str, Any] | Profile | None = None) -> Profile:
    """Resolve a profile from a predefined name, a YAML file path, an inline mapping or ``None`` (default).

    An inline mapping may name a ``base`` profile whose settings it overrides.

    Raises:
        ProfileError: unknown name, unreadable file, or a field that fails validation (named in the message).
    """
    if isinstance(spec, Profile):
        return spec
    if spec is None:
        spec = DEFAULT_PROFILE
    if isinstance(spec, dict):
        data = dict(spec)
        base = data.pop("base", None)
        if base is not None:
            merged = load_profile(str(base)).model_dump()
            merged.update(data)
            data = merged
        return _from_mapping(data, str(data.get("name", "(inline)")))
    return _from_file(profile_file(spec))  # a predefined name, else a YAML file
