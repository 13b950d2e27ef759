"""Run a batch job: collect the inputs, send each image to an engine (in-process, or Dask), record every result in
``job.json`` as it comes, and write ``index.html`` at the end.

Durability is LangGraph's: each image is one checkpointed thread (``runner.run_or_resume``); an engine only decides
where and when an image runs. Dask retries a task whose worker died (the scheduler's ``allowed-failures``) or that
raised an unexpected error (``retries``); the retried task resumes the image from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fourkagent.batch.index import write_index
from fourkagent.batch.inputs import BatchItem, check_job_id, collect, default_job_id
from fourkagent.batch.job import JOB_FILE, ImageRecord, JobRecord, read_job, redact, register, write_job
from fourkagent.batch.work import Settings, failed, one_line, process_image
from fourkagent.errors import RunError
from fourkagent.paths import OUTPUT_FORMATS

if TYPE_CHECKING:
    from fourkagent.tools.base import ToolRegistry

RETRIES = 2
"""Extra tries of a task that raised an unexpected error (an image's own errors are results, not retried)."""
ALLOWED_FAILURES = 2
"""Worker deaths a task may cause and still be sent to another worker (a third gives ``KilledWorker``); local
clusters only (a remote scheduler keeps its own setting)."""
JOB_WRITE_SECONDS = 1.0
"""``job.json`` is rewritten after an image at most this often (and at the end): it is a view of the checkpoints,
which alone decide what a rerun does."""
OnDone = Callable[[ImageRecord], None]


def profile_tag(profile: str | None) -> str:
    """The profile part of thread ids: its name and a hash of all its settings (an edited YAML is another tag).

    Raises:
        ProfileError: unknown or invalid profile.
    """
    from fourkagent.profiles import load_profile
    from fourkagent.paths import profile_key

    p = load_profile(profile)
    digest = hashlib.sha256(json.dumps(p.model_dump(), sort_keys=True, default=str).encode()).hexdigest()
    return f"{profile_key(p.name)}-{digest[:6]}"


def check_engine(workers: int, scheduler: str | None, checkpoint: str) -> str:
    """The engine name for these options.

    Raises:
        RunError: fewer than 1 worker, a non-PostgreSQL checkpoint URL, or a remote scheduler without one.
    """
    if workers < 1:
        raise RunError(f"--workers must be at least 1, got {workers}")
    if checkpoint and not checkpoint.startswith(("postgresql://", "postgres://")):
        raise RunError("--checkpoint takes a postgresql://… URL (local runs keep SQLite in the home directory)")
    if scheduler:
        if not checkpoint:
            raise RunError("--scheduler needs --checkpoint postgresql://… (workers on other machines cannot share "
                           "a SQLite file)")
        return "dask"
    return "dask-local" if workers > 1 else "sequential"


def run_batch(
    inputs: list[str],
    out_dir: str | os.PathLike[str],
    profile: str | None = None,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    checkpoint: str = "",
    job_id: str | None = None,
    ext: str = ".png",
    overwrite: bool = False,
    home: str = "",
    device: str = "",
    threads: int = 0,
    registry: ToolRegistry | None = None,
    progress: bool = False,
) -> JobRecord:
    """Restore every image of ``inputs`` (files, folders, globs) into ``out_dir``; returns the job record.

    Running it again with the same arguments finishes only what is missing. ``registry`` (default: every shipped
    tool) is sent once to each Dask worker. ``threads``: CPU threads per image (default: all cores, divided among
    the local workers).

    Raises:
        FourKError: bad arguments or inputs (no image fails the whole job: each failure is in the record).
    """
    from fourkagent.context import Context

    engine = check_engine(workers, scheduler, checkpoint)
    ext = ext if ext.startswith(".") else f".{ext}"
    if ext.lower() not in OUTPUT_FORMATS:
        raise RunError(f"unsupported output extension {ext} (use one of {', '.join(sorted(OUTPUT_FORMATS))})")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RunError(f"{out}: not a directory")
    job_id = check_job_id(job_id or default_job_id(out))
    items = collect(inputs, out, job_id, profile_tag(profile), ext)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(home=home, checkpoint_url=checkpoint)
    if engine == "dask-local" and not threads:
        from fourkagent.devices import cpu_count

        threads = max(1, cpu_count() // workers)
    settings = Settings(str(out.resolve()), profile, home="" if engine == "dask" and not home else ctx.home,
                        checkpoint_url=checkpoint, threads=threads, device=device, overwrite=overwrite)
    where = redact(checkpoint) if checkpoint else str(Path(ctx.home) / "checkpoints.sqlite")
    job = _start_job(items, settings.out_dir, job_id, str(profile or ""), engine, workers, where)
    register(ctx.home, job)
    index = {item.thread_id or item.input: i for i, item in enumerate(items)}
    with _progress_bar(len(items), job_id, progress) as bar:

        last_write = [0.0]

        def done(rec: ImageRecord) -> None:
            job.images[index[rec.thread_id or rec.input]] = rec
            if time.monotonic() - last_write[0] >= JOB_WRITE_SECONDS:  # a rerun skips thousands of images a second
                write_job(job)
                last_write[0] = time.monotonic()
            bar(rec)

        for item in items:
            if item.error:
                done(failed(item, item.error))
        todo = [i for i in items if not i.error]
        if engine == "sequential":
            _sequential(todo, settings, registry, done)
        else:
            _dask(todo, settings, registry, done, workers, scheduler)
    job.finished = True
    write_job(job)
    write_index(job)
    return job


def _start_job(items: list[BatchItem], out_dir: str, job_id: str, profile: str, engine: str, workers: int,
               checkpoint: str) -> JobRecord:
    """The job record, every image pending, except what an earlier invocation's ``job.json`` says is done."""
    job = JobRecord(job_id, out_dir, profile, engine, workers, checkpoint)
    before: dict[str, ImageRecord] = {}
    if (Path(out_dir) / JOB_FILE).is_file():
        try:
            old = read_job(Path(out_dir) / JOB_FILE)
            job.started = old.started if old.job_id == job_id else job.started
            before = {i.thread_id: i for i in old.images if old.job_id == job_id and i.status == "done"}
        except RunError:
            pass  # damaged: rebuilt from the checkpoints
    for item in items:
        prev = before.get(item.thread_id)
        keep = prev is not None and prev.output == item.output
        job.images.append(ImageRecord.from_dict(vars(prev) | {"action": ""}) if keep and prev else
                          ImageRecord(item.input, item.output, item.thread_id))
    write_job(job)
    return job


@contextmanager
def _progress_bar(total: int, job_id: str, show: bool) -> Iterator[OnDone]:
    """A tqdm bar on stderr: images finished, failed, skipped (done earlier), rate and ETA."""
    from tqdm import tqdm

    counts = {"failed": 0, "skipped": 0}
    with tqdm(total=total, desc=job_id, unit="img", file=sys.stderr, disable=not show, dynamic_ncols=True) as bar:

        def update(rec: ImageRecord) -> None:
            counts["failed"] += rec.status == "failed"
            counts["skipped"] += rec.action == "skipped"
            bar.set_postfix(counts, refresh=False)
            bar.update(1)

        yield update


def _sequential(items: list[BatchItem], settings: Settings, registry: ToolRegistry | None, done: OnDone) -> None:
    for item in items:
        try:
            rec = process_image(item, settings, registry)
        except Exception as exc:  # noqa: BLE001 - one image's unexpected error must not stop the job
            rec = failed(item, one_line(exc))
        done(rec)


def _dask(items: list[BatchItem], settings: Settings, registry: ToolRegistry | None, done: OnDone, workers: int,
          scheduler: str | None) -> None:
    try:
        import dask
        from dask.distributed import Client, LocalCluster, as_completed

        from fourkagent.batch.dask_setup import WorkerSetup
    except ImportError:
        raise RunError("--workers above 1 and --scheduler need Dask: pip install 'fourkagent[batch]'") from None

    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}), _client(
            Client, LocalCluster, workers, scheduler) as client:
        client.register_plugin(WorkerSetup(settings.threads))
        reg = client.scatter(registry, broadcast=True) if registry is not None else None
        futures = {client.submit(process_image, item, settings, reg, key=f"fourkagent-{item.thread_id}", pure=False,
                                 retries=RETRIES): item for item in items}
        for fut in as_completed(futures):
            try:
                rec = fut.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker, or the error of the last retry
                rec = failed(futures[fut], one_line(exc))
            done(rec)


@contextmanager
def _client(client_cls: Any, cluster_cls: Any, workers: int, scheduler: str | None) -> Iterator[Any]:
    """A client of the remote scheduler, or of a local cluster of ``workers`` processes (closed at the end)."""
    if scheduler:
        try:
            client = client_cls(scheduler, timeout="30s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise RunError(f"cannot reach the Dask scheduler {scheduler}: {one_line(exc)}") from None
        with client:
            yield client
        return
    with cluster_cls(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                     silence_logs=logging.ERROR) as cluster, client_cls(cluster) as client:
        yield client
