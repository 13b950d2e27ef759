"""Batch restoration: many images, one LangGraph thread each, run in-process or on Dask, resumable after a kill.

``run_batch`` (library) and ``4kagent batch`` (CLI); see ``docs/batch.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["BatchItem", "ImageRecord", "JobRecord", "collect", "read_job", "run_batch"]

if TYPE_CHECKING:
    from fourkagent.batch.engine import run_batch
    from fourkagent.batch.inputs import BatchItem, collect
    from fourkagent.batch.job import ImageRecord, JobRecord, read_job


def __getattr__(name: str) -> Any:
    """Light imports: ``fourkagent.batch.inputs`` and ``.job`` load no LangGraph, ``run_batch`` loads the engine."""
    if name == "run_batch":
        from fourkagent.batch.engine import run_batch

        return run_batch
    if name in ("BatchItem", "collect"):
        from fourkagent.batch import inputs

        return getattr(inputs, name)
    if name in ("ImageRecord", "JobRecord", "read_job"):
        from fourkagent.batch import job

        return getattr(job, name)
    raise AttributeError(name)
