"""Train the small CNN restorers shipped in ``fourkagent/models/weights/`` (derain, motion/defocus deblur, denoise).

Data: random crops of the free real photos of :func:`fourkagent.photos.photo_sources` (plus a few more
scikit-image photos) except the held-out ones (``HELD_OUT``, never trained on), with random flips/rotations/
downscales and synthetic degradations drawn over a wider range than ``fourkagent.degrade.LEVELS`` (random
motion length/angle, defocus radius, rain density/length/angle/strength, noise σ), mild noise on the
non-noise tasks, and a few undegraded crops (the net must leave clean images alone). Net:
:class:`fourkagent.models.restorer_arch.RestorerUNet`; L1 loss, Adam, cosine learning rate; fixed seeds, a
fixed number of steps, 2 threads: the same command gives the same weights on the same machine.

``--base TOOL`` (repeatable) trains a hybrid: a pool of larger degraded crops is run once through those
classical tools (on the whole crop, as at inference); the net sees ``cat(tool outputs, degraded)`` and learns
a correction of the first tool's output.

Evaluation on the held-out photos at ``degrade.apply`` levels 2-4: PSNR/SSIM gain over the degraded input
and over every classical tool of the category, PSNR on clean photos, seconds per megapixel (1024²).

Usage: nice -n 10 python training/train_restorers.py --task derain|motion|defocus|denoise [--out DIR] [--eval-only]
       [--steps N] [--base CLASSICAL_TOOL ...] [--noise-map] [--pool N] [--clean-fraction F] [--threads N]
(``RECIPES`` holds each task's shipped settings; the options override them.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from fourkagent import degrade
from fourkagent.bench.metrics import rgb_ssim as ssim
from fourkagent.imaging import Image, as_image, psnr, to_uint8
from fourkagent.models.restorer_arch import RestorerUNet, n_params
from fourkagent.photos import SKIMAGE_PHOTOS, decode, photo_sources

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "fourkagent" / "models" / "weights"
HELD_OUT: tuple[str, ...] = ("astronaut", "coffee", "chelsea", "camera", "grace_hopper")
"""Photos never trained on: the evaluation set (portrait, still life, animal fur, grey street, old portrait)."""
EXTRA_SKIMAGE: tuple[str, ...] = ("coins", "clock", "stereo_motorcycle")
"""More bundled scikit-image photos used for training only."""
LEVELS = (2, 3, 4)


@dataclass(frozen=True)
class Task:
    """One trainable restorer."""

    kind: str
    """Degradation name in ``fourkagent.degrade`` (its ``apply`` levels are the evaluation)."""
    category: str
    """The paper's category, i.e. which classical tools it competes with."""
    tool: str
    """The tool name it is registered under."""


TASKS: dict[str, Task] = {
    "derain": Task("rain", "deraining", "derain_cnn"),
    "motion": Task("motion blur", "motion deblurring", "deblur_motion_cnn"),
    "defocus": Task("defocus blur", "defocus deblurring", "deblur_defocus_cnn"),
    "denoise": Task("noise", "denoising", "denoise_cnn"),
}


@dataclass
class Config:
    """Training hyper-parameters (recorded beside the weights)."""

    task: str
    bases: tuple[str, ...] = ()
    """Classical tools whose outputs the net combines and refines (empty: it restores the degraded image alone)."""
    noise_map: bool = False
    """Feed the estimated noise σ of the (margin-included) degraded crop as an extra constant channel."""
    steps: int = 2400
    batch: int = 16
    crop: int = 96
    lr: float = 2e-3
    lr_min: float = 2e-5
    seed: int = 0
    clean_fraction: float = 0.06
    widths: tuple[int, ...] = (16, 32, 64)
    blocks: tuple[int, ...] = (1, 1, 3)
    pool: int = 480
    """Hybrid only: number of precomputed (base outputs, degraded, clean) crops."""
    pool_side: int = 256
    threads: int = 1
    """torch threads; 1 because on the shared 2-core machine 2 threads ran 2.5× slower per step (measured)."""


RECIPES: dict[str, dict[str, Any]] = {
    "derain": {"bases": ("derain_oriented", "derain_guided"), "steps": 3200, "pool": 800, "clean_fraction": 0.2},
    "motion": {"bases": ("deblur_motion_tv", "deblur_motion_wiener"), "steps": 1800, "pool": 360},
    "defocus": {"bases": ("deblur_defocus_tv", "deblur_defocus_wiener"), "steps": 2000},
    "denoise": {"noise_map": True, "steps": 2400},
}
"""The settings of the shipped weights (``--task X`` alone reproduces them); command-line options override."""


# ---------------------------------------------------------------- photos


def _photos(keep: Callable[[str], bool]) -> dict[str, Image]:
    names = tuple(dict.fromkeys(SKIMAGE_PHOTOS + EXTRA_SKIMAGE))
    return {n: decode(f) for n, f in photo_sources(names).items() if keep(n)}


def training_photos() -> dict[str, Image]:
    """Every available free photo except the held-out ones, full size, in a fixed order."""
    return _photos(lambda n: n not in HELD_OUT)


def held_out_photos() -> dict[str, Image]:
    """The held-out evaluation photos, full size."""
    return _photos(lambda n: n in HELD_OUT)


def data_hash(photos: dict[str, Image]) -> str:
    """sha256 over the names and 8-bit pixels of ``photos`` (identifies the training data)."""
    h = hashlib.sha256()
    for name, img in photos.items():
        h.update(f"{name}:{img.shape}".encode())
        h.update(to_uint8(img).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------- random degradations


def _rain_layer(shape: tuple[int, int], density: float, length: int, angle: float, seed: int) -> np.ndarray:
    """The streak layer ``degrade.rain`` adds (0..0.6), obtained by raining on a black image."""
    return degrade.rain(np.zeros((*shape, 3), np.float32), density, length, angle, seed)[..., 0]


def random_degradation(task: str, img: Image, rng: np.random.Generator) -> Image:
    """``img`` degraded for ``task`` with parameters drawn over a wider range than ``degrade.LEVELS``."""
    if task == "denoise":
        sigma = rng.uniform(0.0, 55.0)
        return degrade.add_noise(img, sigma, seed=int(rng.integers(1 << 31)))
    if task == "motion":
        out = degrade.motion_blur(img, int(rng.integers(3, 38)), float(rng.uniform(0.0, 180.0)))
    elif task == "defocus":
        out = degrade.defocus_blur(img, float(rng.uniform(0.7, 9.5)))
    elif task == "derain":
        layer = _rain_layer(img.shape[:2], float(np.exp(rng.uniform(np.log(4e-4), np.log(0.018)))),
                            int(rng.integers(7, 32)), float(rng.uniform(45.0, 135.0)), int(rng.integers(1 << 31)))
        out = as_image(img + rng.uniform(0.35, 1.05) / 0.6 * layer[..., None])
    else:
        raise ValueError(f"unknown task {task!r}")
    if rng.random() < 0.3:  # mild sensor noise so the net does not over-fit noise-free inputs
        out = degrade.add_noise(out, rng.uniform(0.0, 2.0), seed=int(rng.integers(1 << 31)))
    return out


def random_crop(photos: list[Image], size: int, rng: np.random.Generator) -> Image:
    """A random ``size``² crop (random photo, downscale 1-2×, flip, 90° rotation) with some texture."""
    for _ in range(20):
        img = photos[int(rng.integers(len(photos)))]
        f = float(rng.uniform(1.0, 2.0)) if rng.random() < 0.5 else 1.0
        side = min(int(round(size * f)), *img.shape[:2])
        y, x = int(rng.integers(img.shape[0] - side + 1)), int(rng.integers(img.shape[1] - side + 1))
        crop = img[y : y + side, x : x + side]
        if side != size:
            crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        if crop.std() > 0.03:
            break
    crop = np.rot90(crop, int(rng.integers(4)))
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return as_image(crop)


def make_batch(photos: list[Image], task: str, batch: int, crop: int, rng: np.random.Generator,
               clean_fraction: float = 0.06, noise_map: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(degraded[, noise map], clean)`` tensors ``(batch, 3 or 4, crop, crop)``; crops are degraded with a margin
    (no border effects)."""
    from fourkagent.tools.trained import noise_channel

    margin = 24
    xs, ys = [], []
    for _ in range(batch):
        big = random_crop(photos, crop + 2 * margin, rng)
        bad = big if rng.random() < clean_fraction else random_degradation(task, big, rng)
        bad = np.round(bad * 255.0) / 255.0 if rng.random() < 0.5 else bad  # 8-bit inputs half the time
        bad = np.concatenate([bad, noise_channel(bad)], axis=2) if noise_map else bad
        xs.append(bad[margin:-margin, margin:-margin])
        ys.append(big[margin:-margin, margin:-margin])
    return _nchw(xs), _nchw(ys)


def _nchw(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2), dtype=np.float32))


def build_pool(photos: list[Image], cfg: Config, rng: np.random.Generator,
               log: Callable[[str], None] = print) -> np.ndarray:
    """``(n, k + 2, side, side, 3)`` float16 stack of (k base outputs, degraded, clean) crops for a hybrid net."""
    from fourkagent.tools.trained import base_tool

    tools, margin, side = [base_tool(b) for b in cfg.bases], 24, cfg.pool_side
    pool = np.empty((cfg.pool, len(tools) + 2, side, side, 3), np.float16)
    t0 = time.perf_counter()
    for i in range(cfg.pool):
        big = random_crop(photos, side + 2 * margin, rng)
        bad = big if rng.random() < cfg.clean_fraction else random_degradation(cfg.task, big, rng)
        bad = np.round(bad * 255.0) / 255.0 if rng.random() < 0.5 else bad
        bad, clean = bad[margin:-margin, margin:-margin], big[margin:-margin, margin:-margin]
        bad = np.ascontiguousarray(bad)
        pool[i] = (*(t(bad) for t in tools), bad, clean)
        if (i + 1) % 100 == 0:
            log(f"pool {i + 1}/{cfg.pool} {time.perf_counter() - t0:.0f}s")
    return pool


def pool_batch(pool: np.ndarray, batch: int, crop: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cat(bases, degraded), clean)`` tensors: random crops of random pool entries, random dihedral transform."""
    side, k = pool.shape[2], pool.shape[1] - 1
    xs = []
    for _ in range(batch):
        y, x = rng.integers(side - crop + 1, size=2)
        a = np.rot90(pool[int(rng.integers(len(pool))), :, y : y + crop, x : x + crop], int(rng.integers(4)), (1, 2))
        xs.append(a[:, :, ::-1] if rng.random() < 0.5 else a)
    t = torch.from_numpy(np.stack(xs).astype(np.float32)).permute(0, 1, 4, 2, 3)  # (B, images, C, H, W)
    return t[:, :k].reshape(batch, 3 * k, crop, crop).contiguous(), t[:, k].contiguous()


# ---------------------------------------------------------------- training


def train_step(net: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """One L1 step with gradient clipping; returns the loss."""
    net.train()
    loss = (net(x) - y).abs().mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
    opt.step()
    return loss.item()


def train(cfg: Config, photos: list[Image], log: Callable[[str], None] = print) -> RestorerUNet:
    """Train a net for ``cfg`` (deterministic for a given config and photo list)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    pool = build_pool(photos, cfg, rng, log) if cfg.bases else None
    if pool is not None:
        base_l1 = np.mean([np.abs(p[0] - p[-1], dtype=np.float32).mean() for p in pool])
        log(f"L1 of the first base on the pool: {base_l1:.4f}")
    net = RestorerUNet(cfg.widths, cfg.blocks, in_ch=3 * (len(cfg.bases) + 1) + int(cfg.noise_map))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    warm, floor = max(1, min(100, cfg.steps // 10)), cfg.lr_min / cfg.lr

    def factor(s: int) -> float:  # linear warm-up, then cosine from lr to lr_min
        cosine = 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps))
        return min(1.0, (s + 1) / warm) * (floor + (1 - floor) * cosine)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    t0, run = time.perf_counter(), 0.0
    for step in range(1, cfg.steps + 1):
        if pool is not None:
            x, y = pool_batch(pool, cfg.batch, cfg.crop, rng)
        else:
            x, y = make_batch(photos, cfg.task, cfg.batch, cfg.crop, rng, cfg.clean_fraction, cfg.noise_map)
        loss = train_step(net, opt, x, y)
        sched.step()
        run = loss if step == 1 else 0.98 * run + 0.02 * loss
        if step % 100 == 0 or step == cfg.steps:
            lr = sched.get_last_lr()[0]
            log(f"step {step}/{cfg.steps} loss {run:.4f} lr {lr:.2e} {time.perf_counter() - t0:.0f}s")
    return net.eval()


# ---------------------------------------------------------------- evaluation


def evaluate(task: str, restore: Callable[[Image], Image], photos: dict[str, Image],
             classical: dict[str, Callable[[Image], Image]]) -> dict[str, Any]:
    """Mean PSNR/SSIM of input, CNN and each classical tool on ``photos`` at ``degrade.apply`` levels 2-4."""
    kind = TASKS[task].kind
    names = ["input", "cnn", *classical]
    rows: dict[str, dict[int, list[tuple[float, float]]]] = {n: {lv: [] for lv in LEVELS} for n in names}
    for img in photos.values():
        for lv in LEVELS:
            bad = degrade.apply(img, kind, lv, seed=lv)
            outs = {"input": bad, "cnn": restore(bad)} | {n: f(bad) for n, f in classical.items()}
            for n, out in outs.items():
                rows[n][lv].append((psnr(out, img), ssim(out, img)))
    res: dict[str, Any] = {}
    for n in names:
        per = {lv: np.mean(v, axis=0) for lv, v in rows[n].items()}
        res[n] = {"psnr": {str(lv): round(float(p[0]), 3) for lv, p in per.items()},
                  "ssim": {str(lv): round(float(p[1]), 4) for lv, p in per.items()},
                  "mean_psnr": round(float(np.mean([p[0] for p in per.values()])), 3),
                  "mean_ssim": round(float(np.mean([p[1] for p in per.values()])), 4)}
    best = max(classical, key=lambda n: res[n]["mean_psnr"]) if classical else None
    res["summary"] = {
        "gain_vs_input_db": round(res["cnn"]["mean_psnr"] - res["input"]["mean_psnr"], 3),
        "gain_vs_input_ssim": round(res["cnn"]["mean_ssim"] - res["input"]["mean_ssim"], 4),
        "best_classical": best,
        "gain_vs_best_classical_db": round(res["cnn"]["mean_psnr"] - res[best]["mean_psnr"], 3) if best else None,
        "gain_vs_best_classical_ssim": round(res["cnn"]["mean_ssim"] - res[best]["mean_ssim"], 4) if best else None,
        "clean_psnr_min": round(min(psnr(restore(img), img) for img in photos.values()), 2),
    }
    return res


def seconds_per_mp(restore: Callable[[Image], Image]) -> float:
    """Seconds per megapixel on a 1024² photo (the first held-out photo upscaled)."""
    img = next(iter(held_out_photos().values()))
    big = as_image(cv2.resize(img, (1024, 1024), interpolation=cv2.INTER_CUBIC))
    t0 = time.perf_counter()
    restore(big)
    return round((time.perf_counter() - t0) / 1.048576, 3)


def classical_tools(task: str) -> dict[str, Callable[[Image], Image]]:
    """The registered classical tools of the task's category."""
    from fourkagent.tools.registry import MAIN_REGISTRY

    return {t.name: t for t in MAIN_REGISTRY.for_step(TASKS[task].category) if t.spec.backend == "classical"}


# ---------------------------------------------------------------- export


def save(net: RestorerUNet, cfg: Config, extra: dict[str, Any], out_dir: Path) -> Path:
    """Write ``<tool>.safetensors`` and ``<tool>.json`` (config, data hash, metrics, weights sha256)."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    tool = TASKS[cfg.task].tool
    path = out_dir / f"{tool}.safetensors"
    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(path),
              metadata={"arch": "RestorerUNet", "config": json.dumps(net.config())})
    path.chmod(0o644)  # safetensors writes 0600; package data must be world-readable
    rec = {"tool": tool, "arch": "RestorerUNet", **net.config(), "params": n_params(net),
           "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "train_config": asdict(cfg), **extra}
    (out_dir / f"{tool}.json").write_text(json.dumps(rec, indent=1) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", required=True, choices=sorted(TASKS))
    ap.add_argument("--steps", type=int)
    ap.add_argument("--base", action="append", dest="bases", help="classical tool the net refines (repeatable)")
    ap.add_argument("--noise-map", action="store_const", const=True, help="feed the estimated noise σ as a channel")
    ap.add_argument("--clean-fraction", type=float, help="share of undegraded crops")
    ap.add_argument("--pool", type=int, help="hybrid: number of precomputed crops")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--out", default=str(WEIGHTS_DIR))
    ap.add_argument("--eval-only", action="store_true",
                    help="evaluate the shipped weights of the task (and refresh the metrics in --out's record)")
    args = ap.parse_args()
    from fourkagent.tools.trained import apply_net, load_net, record

    given = {k: v for k in ("steps", "bases", "noise_map", "clean_fraction", "pool", "threads")
             if (v := getattr(args, k)) is not None}
    cfg = Config(task=args.task, **(RECIPES[args.task] | given))
    cfg.bases = tuple(cfg.bases)
    torch.set_num_threads(cfg.threads)
    train_set = training_photos()
    held = held_out_photos()
    bases, noise_map = cfg.bases, cfg.noise_map
    if args.eval_only:
        tool = TASKS[args.task].tool
        net, bases = load_net(tool), tuple(record(tool).get("bases", ()))
        noise_map = bool(record(tool).get("noise_map", False))
        rec: dict[str, Any] = {}
    else:
        print(f"training {args.task} on {len(train_set)} photos ({', '.join(train_set)}); held out: {', '.join(held)}")
        t0 = time.perf_counter()
        net = train(cfg, list(train_set.values()))
        rec = {"bases": list(bases), "noise_map": noise_map, "train_seconds": round(time.perf_counter() - t0, 1),
               "data_sha256": data_hash(train_set), "train_photos": list(train_set), "held_out": list(held),
               "torch": torch.__version__}
    restore = lambda im: apply_net(net, im, bases, noise_map, threads=cfg.threads)  # noqa: E731
    metrics = evaluate(args.task, restore, held, classical_tools(args.task))
    metrics["seconds_per_mp"] = seconds_per_mp(restore)
    print(json.dumps(metrics["summary"], indent=1), f"s/MP {metrics['seconds_per_mp']}")
    for n, r in metrics.items():
        if isinstance(r, dict) and "psnr" in r:
            print(f"{n:24s} " + " ".join(f"L{lv} {r['psnr'][str(lv)]:.2f}/{r['ssim'][str(lv)]:.3f}" for lv in LEVELS))
    if not args.eval_only:
        print("wrote", save(net, cfg, rec | {"held_out_metrics": metrics}, Path(args.out)))
    elif (path := Path(args.out) / f"{TASKS[args.task].tool}.json").is_file():  # refresh the recorded metrics
        path.write_text(json.dumps(json.loads(path.read_text()) | {"held_out_metrics": metrics}, indent=1) + "\n")
        print("updated", path)


if __name__ == "__main__":
    main()
