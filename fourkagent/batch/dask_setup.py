"""The Dask worker plugin of batch jobs (imported only when Dask runs a job)."""

from __future__ import annotations

import os
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin


class WorkerSetup(WorkerPlugin):
    """Sets a worker's CPU threads for images (OpenCV here; torch through each run's context) and imports the tool
    registry once, so its models load on first use and stay for every later image on that worker."""

    name = "fourkagent-setup"

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def setup(self, worker: Any) -> None:
        if self.threads:
            import cv2

            os.environ["FOURKAGENT_THREADS"] = str(self.threads)
            cv2.setNumThreads(self.threads)
        import fourkagent.tools.registry  # noqa: F401 - builds MAIN_REGISTRY once per worker process
