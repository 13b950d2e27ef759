"""Measure the converted SPAN models: Y-PSNR gain over bicubic, speed, peak memory, torch vs ncnn.

Run ``python -m fourkagent.models.span_benchmark psnr`` or ``... time --model spanx4_ch48 --size 1024``
(one timing per process, so ``ru_maxrss`` is that case's peak). Results print as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "immunohistochemistry")
"""skimage.data images that ship with scikit-image (no download)."""


def photo(name: str, multiple: int = 4) -> np.ndarray:
    """A skimage photo as the internal float RGB type, cropped to a multiple of ``multiple``."""
    from skimage import data

    from fourkagent.imaging import as_image

    img = as_image(getattr(data, name)())
    h, w = img.shape[:2]
    return np.ascontiguousarray(img[: h - h % multiple, : w - w % multiple])


def y_psnr_gain(model_name: str, names: tuple[str, ...] = PHOTOS, cache_dir: str | None = None) -> dict[str, dict[str, float]]:
    """``{photo: {"bicubic": dB, "model": dB, "gain": dB}}`` for clean xS SR (degrade.downscale), border = scale."""
    from fourkagent.degrade import downscale
    from fourkagent.imaging import psnr, resize, y_channel
    from fourkagent.models.ncnn_convert import SPAN_MODELS, load_span
    from fourkagent.models.tiling import run_model

    scale = SPAN_MODELS[model_name].scale
    net = load_span(model_name, cache_dir)
    out: dict[str, dict[str, float]] = {}
    for name in names:
        hr = photo(name, scale)
        lr = downscale(hr, scale)
        h, w = hr.shape[:2]
        bic = resize(lr, (w, h), "cubic")
        sr = run_model(net, lr, scale)
        pb = psnr(y_channel(bic), y_channel(hr), border=scale)
        pm = psnr(y_channel(sr), y_channel(hr), border=scale)
        out[name] = {"bicubic": pb, "model": pm, "gain": pm - pb}
    return out


def time_case(
    model_name: str, size: int, backend: str, tile: int | None, repeats: int = 1, threads: int | None = None
) -> dict[str, object]:
    """Seconds (best of ``repeats``) to upscale a ``size``² photo crop, and this process's peak RSS.

    Also reports this process's CPU seconds per run (``cpu_seconds``): with ``threads=1`` that is
    close to the pure compute cost even when other processes compete for the cores.
    """
    import psutil

    from fourkagent.imaging import resize
    from fourkagent.models.ncnn_convert import SPAN_MODELS, load_span, ncnn_reference
    from fourkagent.models.tiling import run_model

    img = resize(photo("astronaut"), (size, size), "area" if size < 512 else "cubic")
    scale = SPAN_MODELS[model_name].scale
    net = load_span(model_name) if backend == "torch" else None
    if net is not None:  # warm-up on a small input (torch import, first-call allocations, oneDNN setup)
        run_model(net, img[:64, :64], scale, threads=threads)
    else:
        ncnn_reference(model_name, img[:16, :16], threads=threads, precise=False)
    base = psutil.Process().memory_info().rss
    times, others, cpu = [], [], []
    for _ in range(repeats):
        cpu0, own0, t0 = _cpu_busy_seconds(), time.process_time(), time.perf_counter()
        if net is not None:
            out = run_model(net, img, scale, tile=tile, threads=threads)
        else:
            out = ncnn_reference(model_name, img, threads=threads, precise=False)
        wall = time.perf_counter() - t0
        times.append(wall)
        cpu.append(time.process_time() - own0)
        # CPU time other processes used meanwhile, as a fraction of all cores: contention indicator
        others.append(max(0.0, (_cpu_busy_seconds() - cpu0) - (time.process_time() - own0)) / (wall * _ncpu()))
        del out
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "model": model_name,
        "backend": backend,
        "size": size,
        "tile": tile if backend == "torch" else None,
        "threads": threads or _ncpu(),
        "seconds": min(times),
        "all_seconds": times,
        "others_cpu_share": others,
        "cpu_seconds": cpu,
        "rss_after_load_MiB": base / 2**20,
        "peak_rss_MiB": peak / 2**20,
        "extra_peak_MiB": (peak - base) / 2**20,
    }


def _ncpu() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _cpu_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine so far (/proc/stat: user+nice+system+irq+softirq+steal)."""
    import os

    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]
    return busy / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("psnr")
    q.add_argument("--models", nargs="*", default=None)
    t = sub.add_parser("time")
    t.add_argument("--model", default="spanx4_ch48")
    t.add_argument("--size", type=int, default=256)
    t.add_argument("--backend", choices=("torch", "ncnn"), default="torch")
    t.add_argument("--tile", type=int, default=256, help="0 = untiled")
    t.add_argument("--repeats", type=int, default=1)
    t.add_argument("--threads", type=int, default=None, help="default: all cores")
    a = p.parse_args(argv)
    if a.cmd == "psnr":
        from fourkagent.models.ncnn_convert import available_models

        for m in a.models or available_models():
            res = y_psnr_gain(m)
            gains = [v["gain"] for v in res.values()]
            print(json.dumps({"model": m, "mean_gain": float(np.mean(gains)), "per_photo": res}))
    else:
        print(json.dumps(time_case(a.model, a.size, a.backend, a.tile or None, a.repeats, a.threads)))


if __name__ == "__main__":
    main()
