"""What a batch job works on: the input files (files, folders searched recursively, globs), the output path of each
(the input tree mirrored under the output folder) and each image's LangGraph thread id.

Standard library and light ``fourkagent`` modules only, so the CLI can check a job before LangGraph and torch load.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from fourkagent.errors import FourKError, RunError
from fourkagent.paths import OUTPUT_FORMATS, input_file, read_input

IMAGE_EXTENSIONS = frozenset(OUTPUT_FORMATS) | {".bmp"}
"""Files a folder search picks up (case does not matter). A file named on the command line is taken whatever its
extension (a non-image then fails alone, with its reason)."""
_GLOB_CHARS = re.compile(r"[*?\[]")
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


@dataclass(frozen=True)
class BatchItem:
    """One image of a job."""

    input: str
    """The input file as found (absolute)."""
    rel: str
    """Its path below the job's input root (POSIX separators): the output mirrors it."""
    output: str
    """Where its result goes (absolute)."""
    thread_id: str
    """Its LangGraph thread (and run) id: job id + content hash + profile; empty when the file cannot be read."""
    error: str = ""
    """Why it cannot even be hashed (unreadable, empty): it fails without being sent to a worker."""


def check_job_id(job_id: str) -> str:
    """A job id usable in thread ids and file names.

    Raises:
        RunError: empty, too long, or characters other than letters, digits, ``.``, ``_`` and ``-``.
    """
    if not _JOB_ID.match(job_id):
        raise RunError(f"bad job id {job_id!r}: use 1-80 letters, digits, '.', '_' or '-' "
                       "(starting with a letter or digit)")
    return job_id


def default_job_id(out_dir: str | os.PathLike[str]) -> str:
    """The job id when none is given: the output folder's name and a hash of its absolute path, so the same command
    run again names the same job."""
    path = Path(out_dir).resolve()
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.name).strip("-._")[:40] or "job"
    return f"{name}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


def _expand(spec: str) -> list[tuple[Path, Path]]:
    """``(file, root)`` pairs for one command-line input: a folder's image files (recursively, root = the folder),
    a glob's matches (folders among them searched too), or the file itself (root = its folder).

    Raises:
        BadInputError: a path that does not exist, or a glob that matches nothing.
    """
    if _GLOB_CHARS.search(spec) and not Path(spec).exists():
        matches = sorted(glob.glob(spec, recursive=True))
        if not matches:
            raise RunError(f"{spec}: no file matches")
        return [pair for m in matches for pair in _expand_path(Path(m), glob_match=True)]
    return _expand_path(Path(spec), glob_match=False)


def _expand_path(path: Path, glob_match: bool) -> list[tuple[Path, Path]]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        return [(p, path) for p in files]
    if glob_match and path.suffix.lower() not in IMAGE_EXTENSIONS:
        return []  # a glob like photos/* also matches notes and sidecars
    return [(input_file(path), path.parent)]


def _mirror_root(roots: list[Path]) -> Path:
    """The folder the output tree mirrors: the deepest folder holding every input root."""
    return Path(os.path.commonpath([str(r) for r in roots]))


def content_hash(path: Path) -> str:
    """SHA-256 of a file's bytes (read through ``paths.read_input``, the one way inputs are opened).

    Raises:
        BadInputError: unreadable or empty.
    """
    return hashlib.sha256(read_input(path)).hexdigest()


def thread_id(job_id: str, digest: str, profile_tag: str) -> str:
    """``<job>-<content hash, 16 hex>-<profile tag>``: the same image in the same job with the same profile is
    always the same thread, whatever its name or the order of the inputs."""
    return f"{job_id}-{digest[:16]}-{profile_tag}"


def collect(inputs: list[str], out_dir: str | os.PathLike[str], job_id: str, profile_tag: str,
            ext: str = ".png") -> list[BatchItem]:
    """Every input file of a job, in a stable order, with its output path and thread id.

    Two files with the same bytes get ``-2``, ``-3``… after the later ones' thread ids (in path order).

    Raises:
        FourKError: no input, a missing path, a glob matching nothing, the output folder inside an input folder
            (its results would become inputs), or two inputs mapping to the same output file.
    """
    if not inputs:
        raise RunError("batch needs at least one input (files, folders or globs)")
    out = Path(out_dir).resolve()
    pairs: dict[Path, Path] = {}
    for spec in inputs:
        for file, root in _expand(spec):  # absolute, symlinks kept: a link to a file elsewhere stays in its tree
            pairs.setdefault(Path(os.path.abspath(file)), Path(os.path.abspath(root)))
    folders = [Path(s).resolve() for s in inputs if Path(s).is_dir()]
    for folder in folders:
        if out == folder or folder in out.parents:
            raise RunError(f"{out}: the output folder is inside the input folder {folder} (choose another -o)")
    if not pairs:
        raise RunError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {' '.join(inputs)}")
    root = _mirror_root(list(pairs.values()))
    items: list[BatchItem] = []
    outputs: dict[Path, Path] = {}
    seen: dict[str, int] = {}
    for file in sorted(pairs, key=lambda f: f.relative_to(root).as_posix()):
        rel = file.relative_to(root)
        target = (out / rel).with_suffix(ext)
        if target in outputs:
            raise RunError(f"{outputs[target]} and {file} would both be written to {target} (rename one)")
        outputs[target] = file
        try:
            tid, error = thread_id(job_id, content_hash(file), profile_tag), ""
        except FourKError as exc:
            tid, error = "", " ".join(str(exc).split())
        if tid:
            seen[tid] = seen.get(tid, 0) + 1
            tid += f"-{seen[tid]}" if seen[tid] > 1 else ""
        items.append(BatchItem(str(file), rel.as_posix(), str(target), tid, error))
    return items
