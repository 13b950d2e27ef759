"""Where the MAXIM experts (npm, converted to torch) win: per category, on realistic degradations of photos
no model here was trained on, against every current expert of that category; plus seconds per megapixel,
and (``--agreement``) the converted graphs' agreement with TensorFlow's own executor.

    python benchmarks/maxim.py [--photos N] [--size 256] [--write benchmarks/maxim_notes.md]
    python benchmarks/maxim.py --speed [--write …]
    python benchmarks/maxim.py --agreement --tf-python /path/to/python-with-tensorflow --tarballs DIR

Photos: the photo pool's test split (``training/photo_pool.py``; earlier tables used five library photos
that the pool refit of the Q-MoE restoration steps now fits on; MAXIM was trained on
SIDD/GoPro/Rain13K/RESIDE/LOL/FiveK), the most detailed crop of each. Degradations: :mod:`fourkagent.degrade_real` (and a linear motion blur, the kind GoPro's frame
averaging makes). The last columns: the mean gain of the candidate the shipped Q-MoE picks (fidelity
priority, among the tools a fidelity profile's step gets) with and without the MAXIM experts among the
candidates, and how often it picks MAXIM. The table is written by this script, not by hand.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from fourkagent import degrade, degrade_real as dr  # noqa: E402
from fourkagent.bench.metrics import rgb_ssim as ssim  # noqa: E402
from fourkagent.imaging import Image, psnr, resize  # noqa: E402
from fourkagent.models import npm  # noqa: E402
from fourkagent.tools.registry import MAIN_REGISTRY  # noqa: E402

Degrade = Callable[[Image, int], Image]
CASES: dict[str, list[tuple[str, Degrade]]] = {
    "denoising": [("sensor noise, 60 photons + JPEG q90", lambda im, s: dr.sensor_noise(im, 60, seed=s)),
                  ("sensor noise, 20 photons + JPEG q90", lambda im, s: dr.sensor_noise(im, 20, seed=s))],
    "motion deblurring": [("linear motion 9 px + noise σ2 (GoPro-like)",
                           lambda im, s: degrade.add_noise(degrade.motion_blur(im, 9, 30.0 * s), 2, seed=s)),
                          ("camera shake 9 px", lambda im, s: dr.camera_shake(im, 9, seed=s)),
                          ("camera shake 17 px", lambda im, s: dr.camera_shake(im, 17, seed=s))],
    "dehazing": [("depth haze β 1.0", lambda im, s: dr.depth_haze(im, 1.0, seed=s)),
                 ("depth haze β 2.0", lambda im, s: dr.depth_haze(im, 2.0, seed=s))],
    "deraining": [("streak rain 0.3 %", lambda im, s: dr.streak_rain(im, 0.003, seed=s)),
                  ("streak rain 0.6 %", lambda im, s: dr.streak_rain(im, 0.006, seed=s))],
    "brightening": [("low light ×0.15 + noise", lambda im, s: dr.low_light(im, 0.15, seed=s)),
                    ("low light ×0.06 + noise", lambda im, s: dr.low_light(im, 0.06, seed=s))],
}


def photos(n: int, size: int) -> dict[str, Image]:
    """The most detailed ``size``² crop of the first ``n`` photos of the photo pool's test split
    (``training/photo_pool.py``: no fit here saw them; the Q-MoE restoration steps are fitted on the fit split)."""
    from fourkagent.imaging import as_image
    from photo_pool import crops, photos as pool_photos

    out = {}
    for name, img in list(sorted(pool_photos("test").items()))[:n]:
        got = list(crops(np.asarray(img), size, 1))
        if got:
            out[name] = as_image(got[0])
    return out


def qmoe_pick(step: str, inp: Image, tools: list, outs: list[Image]) -> int:
    """Index of the candidate the shipped Q-MoE (fidelity priority) picks, SURE measured as execute does."""
    from fourkagent.scoring.qmoe import score_candidates
    from fourkagent.scoring.sure import SURE_STEPS, sure_ratio, white_sigma

    sigma = white_sigma(inp) if step in SURE_STEPS else None
    ratios = None if sigma is None else [sure_ratio(t, inp, sigma, out=o) for t, o in zip(tools, outs)]
    scores = score_candidates(outs, inp, step, "fidelity", ratios, [t.name for t in tools])
    return int(np.argmax([s.score for s in scores]))


def value_table(n_photos: int, size: int, only: list[str] | None = None) -> list[str]:
    """One markdown row per (category, degradation)."""
    rows = ["| category | degradation (cases) | MAXIM expert | PSNR gain | SSIM gain | best current expert | "
            "PSNR gain | SSIM gain | MAXIM wins | Q-MoE pick, with MAXIM | Q-MoE pick, without | MAXIM picked |",
            "|" + "---|" * 12]
    imgs = photos(n_photos, size)
    for category, cases in CASES.items():
        if only and category not in only:
            continue
        tools = [t for t in MAIN_REGISTRY.for_step(category)]
        new = [t for t in tools if t.name.endswith(("_maxim", "_maxim_indoor", "_maxim_outdoor"))]
        fidelity = MAIN_REGISTRY.for_step(category, preference="fidelity")
        old = [t for t in tools if t not in new]
        if not new:
            rows.append(f"| {category} | – | not pulled | | | | | | | | | |")
            continue
        for label, fn in cases:
            gains: dict[str, list[tuple[float, float]]] = {t.name: [] for t in tools}
            picks: dict[bool, list[float]] = {True: [], False: []}
            maxim_picked = 0
            for i, (name, clean) in enumerate(imgs.items()):
                bad = fn(clean, i)
                base = (psnr(bad, clean), ssim(bad, clean))
                outs = [t(bad) for t in tools]
                for t, out in zip(tools, outs):
                    gains[t.name].append((psnr(out, clean) - base[0], ssim(out, clean) - base[1]))
                for with_new in (True, False):  # the candidates a fidelity profile's step gets
                    idx = [k for k, t in enumerate(tools) if (with_new or t not in new) and t in fidelity]
                    k = idx[qmoe_pick(category, bad, [tools[j] for j in idx], [outs[j] for j in idx])]
                    picks[with_new].append(gains[tools[k].name][-1][0])
                    maxim_picked += with_new and tools[k] in new
            mean = {k: np.mean(v, axis=0) for k, v in gains.items()}
            best_new = max(new, key=lambda t: mean[t.name][0])
            best_old = max(old, key=lambda t: mean[t.name][0])
            wins = sum(a[0] > b[0] for a, b in zip(gains[best_new.name], gains[best_old.name]))
            rows.append(f"| {category} | {label} ({len(imgs)}) | {best_new.name} | {mean[best_new.name][0]:+.2f} dB | "
                        f"{mean[best_new.name][1]:+.3f} | {best_old.name} | {mean[best_old.name][0]:+.2f} dB | "
                        f"{mean[best_old.name][1]:+.3f} | {wins}/{len(imgs)} | {np.mean(picks[True]):+.2f} dB | "
                        f"{np.mean(picks[False]):+.2f} dB | {maxim_picked}/{len(imgs)} |")
            print(rows[-1], flush=True)
    return rows


def speed_table(size: int) -> list[str]:
    """Seconds per output megapixel of every npm expert on one held-out crop (run it on an idle machine)."""
    from fourkagent.tools import npm as npm_tools

    rows = ["| tool | input | seconds | s per output MP |", "|---|---|---|---|"]
    img = next(iter(photos(1, size).values()))
    for e in npm_tools.TOOLS:
        if e.unavailable_reason():
            continue
        side = size if e.spec.scale == 1 else size * 3 // 4
        x = np.ascontiguousarray(img[:side, :side])
        e(x[:64, :64])  # load and warm up
        t0 = time.perf_counter()
        out = e(x)
        dt = time.perf_counter() - t0
        rows.append(f"| {e.name} | {side}² | {dt:.2f} | {dt / (out.shape[0] * out.shape[1] / 1e6):.1f} |")
        print(rows[-1], flush=True)
    return rows


def agreement_table(tf_python: str, tarballs: Path, size: int, only: list[str] | None = None) -> list[str]:
    """Max/mean |torch − TensorFlow| per model on a degraded held-out crop (``size``², a multiple of 64)."""
    rows = ["| model | input | max abs diff | mean abs diff | mean change made by the model (SR: vs bicubic) |", "|---|---|---|---|---|"]
    script = Path(__file__).with_name("tfjs_reference.py")
    img = next(iter(photos(1, size).values()))
    for name, entry in npm.NPM_MODELS.items():
        if only and name not in only:
            continue
        packed = entry.package.lstrip("@").replace("/", "-")  # npm pack's file name
        tgz = next(iter(tarballs.glob(f"{packed}-{entry.version}.tgz")), None)
        if tgz is None or npm.unavailable_reason(name):
            rows.append(f"| {name} | – | not available | | |")
            continue
        import torch

        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            with tarfile.open(tgz) as tar:
                tar.extractall(d, filter="data")
            x = dr.sensor_noise(img, 40, seed=1) if "denois" in name else img
            if entry.scale > 1:
                x = np.ascontiguousarray(x[: size // 4, : size // 4])
            np.save(d / "in.npy", x)
            subprocess.run([tf_python, str(script), str(d / "package" / entry.model_dir), str(d / "in.npy"),
                            str(d / "out.npy")], check=True, capture_output=True)
            ref = np.load(d / "out.npy")
        with torch.inference_mode():
            ours = npm.load(name)(torch.from_numpy(x)[None]).numpy()[0]
        diff = np.abs(ours - ref)
        base = x if entry.scale == 1 else resize(x, (ref.shape[1], ref.shape[0]), "cubic")
        rows.append(f"| {name} | {x.shape[0]}² held-out crop | {diff.max():.2e} | {diff.mean():.2e} | {np.abs(ref - base).mean():.3f} |")
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print (and optionally write) the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=5)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--agreement", action="store_true", help="compare with TensorFlow instead of the value table")
    ap.add_argument("--speed", action="store_true", help="seconds per megapixel instead of the value table")
    ap.add_argument("--tf-python", help="a Python interpreter with tensorflow-cpu installed")
    ap.add_argument("--tarballs", type=Path, help="folder with the npm tarballs (npm pack NAME@VERSION)")
    ap.add_argument("--models", nargs="*", help="only these npm models (agreement)")
    ap.add_argument("--categories", nargs="*", help="only these categories (value table)")
    ap.add_argument("--write", type=Path, help="append the table to this markdown file")
    args = ap.parse_args(argv)
    if args.agreement:
        if not (args.tf_python and args.tarballs):
            ap.error("--agreement needs --tf-python and --tarballs")
        title = f"Agreement with TensorFlow 2.21's GraphDef executor ({args.size}² held-out crop)"
        rows = agreement_table(args.tf_python, args.tarballs, args.size, args.models)
    elif args.speed:
        title = f"Seconds per output megapixel (2 CPU cores, {args.size}² input)"
        rows = speed_table(args.size)
    else:
        title = (f"MAXIM vs the current experts, with the Q-MoE refitted on the pool ({args.photos} photos of the "
                 f"pool's test split, {args.size}² crops, 2 CPU cores)")
        rows = value_table(args.photos, args.size, args.categories)
    text = f"\n### {title}\n\n" + "\n".join(rows) + "\n"
    print(text)
    if args.write:
        with args.write.open("a", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
