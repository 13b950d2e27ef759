"""What the CLI checks before it loads anything: standard library, ``yaml`` and ``fourkagent.errors`` only.

A run starts by importing numpy, OpenCV, LangGraph and torch (seconds on a small machine); a mistyped path or
profile should not wait for that. These functions repeat the first checks of a run with the same messages —
``imageio.check_output_path``, the profile-catalogue lookup of ``profiles.loader``, ``imageio.check_not_input``
and the opening of ``imageio.read_image`` — so the mistake is reported in a fraction of a second. The run makes
its own checks again; nothing relies on this module for safety.
"""

from __future__ import annotations

import os
import sqlite3
from importlib import resources
from pathlib import Path

from fourkagent.errors import BadInputError, ProfileError, RunError

DEFAULT_PROFILE = "FastGen4K-P"
"""``profiles.loader.DEFAULT_PROFILE`` (kept equal by a test; importing it would load numpy and pydantic)."""

OUTPUT_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".webp")
"""The keys of ``imagewrite.OUTPUT_FORMATS`` (kept equal by a test; importing it would load OpenCV)."""


def _key(name: str) -> str:
    return name.lower().replace("_", "-")  # as profiles.loader


def profile_files() -> dict[str, Path]:
    """The predefined profiles' YAML files by lookup key, in name order (the files ``profiles.loader`` reads)."""
    data = Path(str(resources.files("fourkagent") / "profiles" / "data"))
    return {_key(p.stem): p for p in sorted(data.glob("*.yaml"))}


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
        ProfileError: unknown name or missing file (the loader's messages).
    """
    if spec is None or _key(spec) in profile_files():
        return
    path = Path(spec).expanduser()
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():  # as profiles.loader: then it must be a file
        if not path.is_file():
            raise ProfileError(f"profile file {path} does not exist")
        return
    raise ProfileError(f"unknown profile {spec!r}; `4kagent profiles` lists them, or pass a YAML file")


def check_output(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """As ``imageio.check_output_path``: extension, writable directory, not a directory, not existing.

    Raises:
        RunError: the first of those that fails.
    """
    p = Path(path)
    if p.suffix.lower() not in OUTPUT_EXTENSIONS:
        raise RunError(f"{p}: unsupported output extension (use one of {', '.join(sorted(OUTPUT_EXTENSIONS))})")
    if not p.parent.is_dir():
        raise RunError(f"{p.parent}: output directory does not exist")
    if not os.access(p.parent, os.W_OK | os.X_OK):
        raise RunError(f"{p.parent}: output directory is not writable")
    if p.is_dir():
        raise RunError(f"{p}: is a directory")
    if p.exists() and not overwrite:
        raise RunError(f"{p}: already exists (pass --overwrite to replace it)")
    return p


def check_not_input(input_path: str | os.PathLike[str], output_path: str | os.PathLike[str]) -> None:
    """As ``imageio.check_not_input``: the output may not be the input file, even with ``--overwrite``.

    Raises:
        RunError: both paths name the same file.
    """
    i, o = Path(input_path), Path(output_path)
    same = o.exists() and i.exists() and os.path.samefile(i, o)
    if same or i.resolve() == o.resolve():
        raise RunError(f"{o}: is the input file; inputs are never overwritten (choose another output)")


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
        BadInputError: with ``imageio.read_image``'s message for the same fault.
    """
    p = Path(path)
    if not p.exists():
        raise BadInputError(f"{p}: no such file")
    if not p.is_file():
        raise BadInputError(f"{p}: not a regular file")
    try:
        with open(p, "rb") as fh:  # read-only, one byte
            first = fh.read(1)
    except OSError as exc:
        raise BadInputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if not first:
        raise BadInputError(f"{p}: empty file")
