"""A batch job's record: ``OUT_DIR/job.json`` (one entry per image, rewritten atomically as images finish) and the
job registry ``<home>/jobs/<job id>.json`` that lets ``4kagent batch --status JOB_ID`` find it."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from fourkagent.errors import RunError

JOB_FILE = "job.json"
INDEX_FILE = "index.html"
STATUSES = ("done", "failed", "pending")


@dataclass
class ImageRecord:
    """One image of a job, as ``job.json`` lists it."""

    input: str
    output: str
    thread_id: str
    status: str = "pending"
    """``done``, ``failed`` or ``pending`` (not finished yet: the job was stopped)."""
    action: str = ""
    """What this invocation did: ``ran`` (started it), ``resumed`` (went on from a checkpoint), ``skipped``
    (finished by an earlier invocation: nothing recomputed), or ``""`` when it did not get to it."""
    steps: list[str] = field(default_factory=list)
    """The accepted steps, ``"step: tool"``, in order."""
    final_q: float | None = None
    """Q-MoE score of the last accepted step."""
    seconds: float | None = None
    """Time in the agent's nodes for this image, summed over every invocation (the run report's
    ``timings.total_nodes``); for a failed image, the wall time of the failed attempt."""
    error: str = ""
    """One line: why it failed."""
    report_html: str = ""
    """Its own HTML report, relative to the job folder."""
    report_json: str = ""
    thumbs: list[str] = field(default_factory=list)
    """Before and after thumbnails (JPEG, relative to the job folder) for ``index.html``."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class JobRecord:
    """The whole job, as ``job.json`` holds it."""

    job_id: str
    out_dir: str
    profile: str
    engine: str
    """``sequential``, ``dask-local`` (``--workers N``) or ``dask`` (``--scheduler``)."""
    workers: int
    checkpoint: str
    """Where the threads' checkpoints are: the SQLite file, or the PostgreSQL URL without its password."""
    started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    finished: bool = False
    images: list[ImageRecord] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Images per status."""
        return {s: sum(1 for i in self.images if i.status == s) for s in STATUSES}

    def failures(self) -> list[ImageRecord]:
        return [i for i in self.images if i.status == "failed"]

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"counts": self.counts()}, indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        names = {f.name for f in fields(cls)} - {"images"}
        job = cls(**{k: v for k, v in data.items() if k in names})
        job.images = [ImageRecord.from_dict(i) for i in data.get("images") or []]
        return job


def redact(url: str) -> str:
    """A database URL without its password (``postgresql://user:***@host/db``)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def write_job(job: JobRecord) -> Path:
    """Write ``job.json`` atomically (a kill leaves the previous version)."""
    from fourkagent.imagewrite import atomic_write

    job.updated = time.time()
    return atomic_write(Path(job.out_dir) / JOB_FILE, job.to_json().encode())


def read_job(path: str | os.PathLike[str]) -> JobRecord:
    """A job file.

    Raises:
        RunError: missing or not a job file.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        return JobRecord.from_dict(data)
    except FileNotFoundError:
        raise RunError(f"{p}: no such job file") from None
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise RunError(f"{p}: not a job file ({type(exc).__name__})") from None


def register(home: str | os.PathLike[str], job: JobRecord) -> Path:
    """Note in ``<home>/jobs/<job id>.json`` where the job's file is."""
    from fourkagent.imagewrite import atomic_write

    (Path(home) / "jobs").mkdir(parents=True, exist_ok=True)
    entry = {"job_id": job.job_id, "job_file": str(Path(job.out_dir) / JOB_FILE)}
    return atomic_write(Path(home) / "jobs" / f"{job.job_id}.json", json.dumps(entry).encode())


def find_job(home: str | os.PathLike[str], ref: str) -> Path:
    """The job file ``ref`` means: a job id in the registry of ``home``, else a job folder or a ``job.json`` path.

    Raises:
        RunError: nothing found.
    """
    entry = Path(home) / "jobs" / f"{ref}.json"
    if re.match(r"^[A-Za-z0-9._-]+$", ref) and entry.is_file():
        try:
            return Path(json.loads(entry.read_text(encoding="utf-8"))["job_file"])
        except (OSError, ValueError, KeyError, TypeError):
            raise RunError(f"{entry}: damaged job registry entry") from None
    p = Path(ref)
    if p.is_dir() and (p / JOB_FILE).is_file():
        return p / JOB_FILE
    if p.is_file():
        return p
    raise RunError(f"no job {ref!r} in {Path(home) / 'jobs'} (pass the job id, its output folder or its job.json)")


def status_text(job: JobRecord) -> str:
    """The job in a few lines: counts, state, then each failure with its reason."""
    c = job.counts()
    state = "finished" if job.finished else "not finished (still running, or stopped: run the same command again)"
    lines = [f"job {job.job_id}: {c['done']} done, {c['failed']} failed, {c['pending']} pending of "
             f"{len(job.images)} — {state}", f"job file: {Path(job.out_dir) / JOB_FILE}",
             f"index: {Path(job.out_dir) / INDEX_FILE}"]
    lines += [f"failed: {i.input}: {i.error.removeprefix(f'{i.input}: ')}" for i in job.failures()]
    return "\n".join(lines)
