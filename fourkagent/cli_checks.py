"""What the CLI checks before it loads anything: standard library, ``yaml`` and light ``fourkagent`` modules only.

A run starts by importing numpy, OpenCV, LangGraph and torch (seconds on a small machine); a mistyped path or
profile should not wait for that. The path and profile checks are the run's own (``fourkagent.paths``, which
``imageio`` and ``profiles.loader`` use), made first so the mistake is reported in a fraction of a second. The run
makes its checks again; nothing relies on this module for safety.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from fourkagent.errors import RunError
from fourkagent.paths import (
    DEFAULT_PROFILE,
    check_not_input,
    check_output_path,
    input_file,
    profile_file,
    profile_files,
    read_input,
)

__all__ = ["DEFAULT_PROFILE", "check_input", "check_not_input", "check_output_path", "check_profile",
           "check_run_exists", "profile_catalogue"]


def profile_catalogue() -> list[tuple[str, str]]:
    """``(name, description)`` of each predefined profile, read from its YAML without validating it (for listing)."""
    import yaml

    rows = []
    for path in profile_files().values():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data = data if isinstance(data, dict) else {}
        rows.append((str(data.get("name", path.stem)), str(data.get("description", ""))))
    return rows


def check_profile(spec: str | None) -> None:
    """A predefined name, or a file that exists (its contents are validated by ``profiles.load_profile``).

    Raises:
        ProfileError: unknown name or missing file (``paths.profile_file``, as the loader).
    """
    if spec is not None:
        profile_file(spec)


def check_run_exists(home: str | os.PathLike[str], run_id: str) -> None:
    """For ``--resume``: refuse a run id that ``<home>/checkpoints.sqlite`` (``runner.open_checkpointer``) certainly
    lacks — no database, or no checkpoint of that thread. Anything unclear (a home that is not a directory, a locked,
    damaged or differently shaped database) is left to the run, which reports it itself.

    Raises:
        RunError: as ``runner.resume``.
    """
    home_dir = Path(home)
    if home_dir.exists() and not home_dir.is_dir():
        return
    db = home_dir / "checkpoints.sqlite"
    row: tuple[int] | None = None
    if db.is_file():
        try:
            conn = sqlite3.connect(str(db), timeout=5)
            try:
                row = conn.execute("SELECT 1 FROM checkpoints WHERE thread_id = ? LIMIT 1", (run_id,)).fetchone()
            finally:
                conn.close()
        except sqlite3.Error:
            return
    if row is None:
        raise RunError(f"no run with id {run_id!r} in {home}")


def check_input(path: str | os.PathLike[str]) -> None:
    """The input exists, is a regular file, can be opened for reading and is not empty (decoding comes later).

    Raises:
        BadInputError: as ``imageio.read_image`` (``paths.input_file``, ``paths.read_input``).
    """
    read_input(input_file(path), peek=True)
