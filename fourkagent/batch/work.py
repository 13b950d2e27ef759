"""What one worker does with one image: run or resume its thread (``runner.run_or_resume``), then describe it as an
:class:`ImageRecord` and make its thumbnails. Runs in the driver (sequential engine) or in a Dask worker process."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fourkagent.batch.inputs import BatchItem
from fourkagent.batch.job import ImageRecord
from fourkagent.errors import FourKError

if TYPE_CHECKING:
    from fourkagent.tools.base import ToolRegistry

THUMB_DIR = ".fourkagent-thumbs"
"""Thumbnails of ``index.html``, under the job folder (named by thread id: they cannot clash with outputs)."""
ACTIONS = {"new": "ran", "partial": "resumed", "finished": "skipped"}


@dataclass(frozen=True)
class Settings:
    """What every image of a job shares (sent to the workers with each task)."""

    out_dir: str
    profile: str | None
    home: str = ""
    """The work directory (artifacts, SQLite checkpoints); ``""``: the worker's own ``$FOURKAGENT_HOME``."""
    checkpoint_url: str = ""
    threads: int = 0
    """CPU threads per image (0: the worker's ``$FOURKAGENT_THREADS`` or all its cores)."""
    device: str = ""
    overwrite: bool = False


def one_line(exc: BaseException) -> str:
    """An exception as one line (the project's errors already are; others get their type in front)."""
    text = " ".join(str(exc).split())
    return text if isinstance(exc, FourKError) else f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def failed(item: BatchItem, error: str, seconds: float | None = None) -> ImageRecord:
    return ImageRecord(item.input, item.output, item.thread_id, status="failed", error=error, seconds=seconds)


def process_image(item: BatchItem, settings: Settings, registry: ToolRegistry | None = None) -> ImageRecord:
    """Restore one image of a job, or go on with it, or read back what an earlier invocation finished.

    Errors of the image itself (bad input, a tool that cannot run...) come back as a failed record; anything else
    (a lost database connection, a bug) is raised, so a Dask task is retried.
    """
    from fourkagent.context import Context
    from fourkagent.runner import run_or_resume

    t0 = time.perf_counter()
    if item.error:
        return failed(item, item.error)
    ctx = Context(home=settings.home, checkpoint_url=settings.checkpoint_url, threads=settings.threads,
                  device=settings.device)
    Path(item.output).parent.mkdir(parents=True, exist_ok=True)
    try:
        res = run_or_resume(item.input, item.output, settings.profile, run_id=item.thread_id,
                            options={"overwrite": settings.overwrite}, context=ctx, registry=registry)
    except FourKError as exc:
        return failed(item, one_line(exc), round(time.perf_counter() - t0, 3))
    rec = ImageRecord(item.input, item.output, item.thread_id, action=ACTIONS[res["state"]])
    written = res.get("output_path")
    if not written or Path(written).resolve() != Path(item.output).resolve():
        return failed(item, f"thread {item.thread_id} holds an earlier run of this image with output {written}; "
                      "use another --job to restore it again")
    if not Path(written).is_file():
        return failed(item, f"finished earlier, but its output {written} is gone; use another --job to redo it")
    _describe(rec, res, Path(settings.out_dir))
    rec.thumbs = make_thumbs(item, Path(settings.out_dir))
    return rec


def _describe(rec: ImageRecord, res: dict[str, Any], out_dir: Path) -> None:
    """Fill steps, Q, time and report links from the run's JSON report."""
    rec.status = "done"
    report_path = Path(res.get("report_path") or "")
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # the image is written; a missing report is visible as missing links
    traj = report.get("trajectory") or []
    rec.steps = [f"{t.get('step')}: {t.get('tool') or 'kept the input'}" for t in traj]
    rec.final_q = traj[-1].get("score") if traj else None
    rec.seconds = (report.get("timings") or {}).get("total_nodes")
    rec.report_json = _rel(report_path, out_dir)
    html = report.get("report_html")
    rec.report_html = _rel(Path(html), out_dir) if html and Path(html).is_file() else ""


def _rel(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def make_thumbs(item: BatchItem, out_dir: Path) -> list[str]:
    """Before/after JPEG thumbnails for the index page (kept when already made); ``[]`` when either cannot be read."""
    from fourkagent.imageio import atomic_write, load_image
    from fourkagent.report.images import THUMB_QUALITY, THUMB_SIDE, fit, jpeg_bytes

    folder = out_dir / THUMB_DIR
    names = [folder / f"{item.thread_id}.{kind}.jpg" for kind in ("in", "out")]
    if not all(n.is_file() for n in names):
        folder.mkdir(parents=True, exist_ok=True)
        for src, dest in zip((item.input, item.output), names):
            try:
                img = load_image(src)[0]
            except (FourKError, OSError, MemoryError):
                return []
            atomic_write(dest, jpeg_bytes(fit(img, THUMB_SIDE), THUMB_QUALITY))
    return [_rel(n, out_dir) for n in names]
