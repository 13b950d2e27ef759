"""Which files a run reads and writes, checked before any work: the input, the output path, the profile file.

Standard library and ``fourkagent.errors`` only, so the CLI can make these checks before numpy, OpenCV, LangGraph
and torch load (``cli_checks``); the run makes the same checks with the same functions (``imageio``,
``imagewrite``, ``profiles.loader``), so both report a mistake in the same words.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from fourkagent.errors import BadInputError, ProfileError, RunError

OUTPUT_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
"""Output extension -> Pillow format name (``imagewrite`` writes these)."""

DEFAULT_PROFILE = "FastGen4K-P"
"""The profile used when none is given (the reference's recommended default)."""


def input_file(path: str | os.PathLike[str]) -> Path:
    """The input path, if it names an existing regular file.

    Raises:
        BadInputError: missing, or not a regular file.
    """
    p = Path(path)
    if not p.exists():
        raise BadInputError(f"{p}: no such file")
    if not p.is_file():
        raise BadInputError(f"{p}: not a regular file")
    return p


def read_input(p: Path, max_pixels: int | None = None, peek: bool = False) -> bytes:
    """The bytes of an input file :func:`input_file` accepted, read-only (the only way an input is ever opened);
    with ``peek`` only its first byte.

    Raises:
        BadInputError: with ``max_pixels``, more bytes than even raw 16-bit RGBA of that many pixels could need;
            unreadable; empty.
    """
    try:
        if max_pixels is not None and p.stat().st_size > max_pixels * 8 + (1 << 20):
            raise BadInputError(f"{p}: {p.stat().st_size} bytes is too large for the {max_pixels}-pixel limit")
        with open(p, "rb") as fh:
            data = fh.read(1 if peek else -1)
    except OSError as exc:
        raise BadInputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise BadInputError(f"{p}: empty file")
    return data


def check_output_path(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """Validate an output path before a run starts.

    Raises:
        RunError: unsupported extension, missing or unwritable directory, an existing directory at the
            path, or an existing file without ``overwrite``.
    """
    p = Path(path)
    if p.suffix.lower() not in OUTPUT_FORMATS:
        raise RunError(f"{p}: unsupported output extension (use one of {', '.join(sorted(OUTPUT_FORMATS))})")
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
    """Refuse an output that is the input file itself (even with ``--overwrite``: inputs are never modified).

    Raises:
        RunError: both paths name the same file.
    """
    i, o = Path(input_path), Path(output_path)
    same = o.exists() and i.exists() and os.path.samefile(i, o)
    if same or i.resolve() == o.resolve():
        raise RunError(f"{o}: is the input file; inputs are never overwritten (choose another output)")


def profile_key(name: str) -> str:
    """The lookup key of a predefined profile name (case and ``_``/``-`` do not matter)."""
    return name.lower().replace("_", "-")


def profile_files() -> dict[str, Path]:
    """The predefined profiles' YAML files by :func:`profile_key`, in name order."""
    data = Path(str(resources.files("fourkagent") / "profiles" / "data"))  # not "fourkagent.profiles": pydantic
    return {profile_key(p.stem): p for p in sorted(data.glob("*.yaml"))}


def profile_file(spec: str) -> Path:
    """The YAML file a profile name or path means: a predefined name first, else a ``.yaml``/``.yml`` path or an
    existing path, which must then be a file (its contents are read and validated by ``profiles.load_profile``).

    Raises:
        ProfileError: unknown name, or no such file.
    """
    known = profile_files()
    if profile_key(spec) in known:
        return known[profile_key(spec)]
    path = Path(spec).expanduser()
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ProfileError(f"profile file {path} does not exist")
        return path
    raise ProfileError(f"unknown profile {spec!r}; `4kagent profiles` lists them, or pass a YAML file")
