"""Throughput of ``4kagent batch``: images per minute with 1 and 2 workers, and the peak memory of each process.

Inputs: ``--images`` crops (``--side`` px) of the photo pool's test split (``training/photo_pool.py``), the most
detailed crop of each photo, cycling through the photos when more crops than photos are asked for. Each worker
count runs the same job from scratch (its own output folder and work directory), with the experience store off
so every image gets the same plan whatever ran before it. The wall time includes starting the Dask cluster.
Resident memory of the driver and every worker process is sampled every 0.1 s (psutil).

A driver killed mid-job and rerun (no image computed twice) is checked by ``tests/test_batch.py``.

Usage: python benchmarks/batch.py [--images 6] [--side 192] [--profile ExpSR-s2-F] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))


def make_inputs(folder: Path, n: int, side: int) -> None:
    """``n`` PNG crops of the test split's photos into ``folder``."""
    from PIL import Image

    from photo_pool import crops, photos

    pool = sorted(photos("test").items())
    per = -(-n // len(pool))
    made = 0
    for k in range(per):
        for name, img in pool:
            got = list(crops(np.asarray(img), side, per))
            if k < len(got) and made < n:
                Image.fromarray(np.asarray(got[k], dtype=np.uint8)).save(folder / f"{name}-{k}.png")
                made += 1


def sample(peaks: dict[int, int], stop: threading.Event) -> None:
    """Peak RSS per process of this process tree until ``stop``."""
    me = psutil.Process()
    while not stop.is_set():
        for p in [me, *me.children(recursive=True)]:
            try:
                peaks[p.pid] = max(peaks.get(p.pid, 0), p.memory_info().rss)
            except psutil.Error:
                pass
        time.sleep(0.1)


def one_job(src: Path, work: Path, profile: str, workers: int) -> tuple[float, int, list[int]]:
    """Wall seconds, images done and the two largest peak RSS (bytes) of one job run from scratch."""
    from fourkagent.batch import run_batch

    peaks: dict[int, int] = {}
    stop = threading.Event()
    th = threading.Thread(target=sample, args=(peaks, stop), daemon=True)
    th.start()
    t0 = time.perf_counter()
    job = run_batch([str(src)], work / "out", profile, workers=workers, home=str(work / "home"))
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    done = sum(1 for i in job.images if i.status == "done")
    return wall, done, sorted(peaks.values(), reverse=True)[:2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--side", type=int, default=192)
    ap.add_argument("--profile", default="ExpSR-s2-F")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    os.environ["FOURKAGENT_EXPERIENCE"] = "0"
    load = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="fourkagent-batch-bench-"))
    src = root / "in"
    src.mkdir()
    make_inputs(src, args.images, args.side)
    rows = ["| workers | images | wall (s) | images / min | speed-up | peak RSS of the two largest processes (MiB) |",
            "|---|---|---|---|---|---|"]
    base = None
    for w in args.workers:
        wall, done, peaks = one_job(src, root / f"w{w}", args.profile, w)
        base = base or wall
        rows.append(f"| {w} | {done} | {wall:.1f} | {60 * done / wall:.1f} | {base / wall:.2f}× | "
                    + ", ".join(f"{p / 2**20:.0f}" for p in peaks) + " |")
        print(rows[-1], flush=True)
    print(f"\n{args.images} crops of {args.side}² from the test split, profile {args.profile}, "
          f"{os.cpu_count()} cores, load average before: {load:.1f}\n")
    print("\n".join(rows))
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
