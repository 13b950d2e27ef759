"""A real smartphone-noise photo through the agent, beside what a user would pick instead.

The photo: ``assets/fixture.png`` of the npm package ``@upscalerjs/maxim-denoising`` 0.1.0 (256², a crop of a
SIDD smartphone photo: heavy, spatially correlated colour noise; the package's pinned ``dist.integrity`` is the
catalogue's, ``fourkagent/models/npm.py``), fetched with the npm client (or ``--from`` a tarball you have) and
cached under ``$FOURKAGENT_CACHE/photos``. No fit of this project has seen it. The package also ships
``assets/result.png``, MAXIM's own output on it (upstream TF.js): a denoised pseudo-reference at 1×.

Methods (×4 unless noted): Lanczos, Real-ESRGAN alone (what a user after looks would pick), the agent with
GenSR-s4-P (perceptual ×4), AerSR-s4-F (fidelity ×4) and the default FastGen4K-P (4096²; brought to ×4 with an
area downscale for the comparison). Measures: NIQE of the ×4 output (lower = more natural; it rewards texture,
noise included), and PSNR of the output brought back to 1× (area) against MAXIM's published result — agreement
with a strong real-noise denoiser, not a ground truth. Writes ``benchmarks/real_noise.md`` and a 100 % crop strip
``benchmarks/real_noise_x4.jpg`` (input nearest ×4 | each method, same region) to look at.

Usage: python benchmarks/real_noise.py [--from maxim-denoising-0.1.0.tgz] [--methods ...]
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fourkagent.context import default_cache_dir  # noqa: E402
from fourkagent.imaging import Image, as_image, psnr, resize, to_uint8  # noqa: E402
from realworld import run_agent  # noqa: E402

PACKAGE = "maxim-denoising"
ASSETS = {"fixture": "package/assets/fixture.png", "result": "package/assets/result.png"}
SHA256 = {"fixture": "37f83757cd94eb5e5b7a2bd0a158bb6d683988b047d898bf661029256009a0b0",
          "result": "913fa0b2e69a463a952fd05c55f227800a2a51ad060624e5cd36a68d03822189"}
METHODS = ("lanczos", "sr_realesrgan_x4", "agent:GenSR-s4-P", "agent:AerSR-s4-F", "agent:FastGen4K-P")
OUT = Path(__file__).resolve().parent
SCALE = 4
CROP = 256
"""Side of the 100 % crops (×4 pixels)."""


def assets(from_file: str | None) -> dict[str, Image]:
    """The fixture and MAXIM's result, from the cache or the pinned npm tarball (integrity-checked)."""
    from PIL import Image as PILImage

    from fourkagent.models.npm import _npm_pack, find, sri_sha512
    from fourkagent.weights import sha256_file

    cache = default_cache_dir("photos")
    paths = {k: cache / f"{PACKAGE}-0.1.0-{k}.png" for k in ASSETS}
    if not all(p.exists() and sha256_file(p) == SHA256[k] for k, p in paths.items()):
        entry = find(PACKAGE)
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            tarball = Path(from_file) if from_file else _npm_pack(entry, Path(tmp))
            if sri_sha512(tarball) != entry.integrity:
                raise SystemExit(f"{tarball}: integrity mismatch for {entry.spec}; refusing it")
            with tarfile.open(tarball, "r:gz") as tar:
                for k, member in ASSETS.items():
                    paths[k].write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
        for k, p in paths.items():
            if sha256_file(p) != SHA256[k]:
                raise SystemExit(f"{p}: sha256 differs from the pinned one")
    return {k: as_image(np.asarray(PILImage.open(p).convert("RGB"))) for k, p in paths.items()}


def method_output(noisy: Image, method: str, work: Path) -> tuple[Image, str]:
    """The ×4 output of ``method`` on ``noisy`` and what it did (the agent's steps)."""
    from fourkagent.bench.methods import apply_tools
    from fourkagent.tools.registry import MAIN_REGISTRY

    h, w = noisy.shape[:2]
    if method == "lanczos":
        return resize(noisy, (SCALE * w, SCALE * h), "lanczos"), ""
    if not method.startswith("agent:"):
        return apply_tools(noisy, (method,), MAIN_REGISTRY, SCALE), ""
    out, extra = run_agent(noisy, method.split(":", 1)[1], work)
    if out.shape[:2] != (SCALE * h, SCALE * w):
        out = resize(out, (SCALE * w, SCALE * h), "area")
    return out, " > ".join(s.split(":", 1)[1] for s in extra["steps"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--from", dest="from_file", default=None, help="the maxim-denoising 0.1.0 npm tarball")
    ap.add_argument("--methods", default=",".join(METHODS))
    args = ap.parse_args(argv)
    from PIL import Image as PILImage

    from fourkagent.scoring.niqe import niqe

    a = assets(args.from_file)
    noisy, ref = a["fixture"], a["result"]
    h, w = noisy.shape[:2]
    y0, x0 = (SCALE * h - CROP) // 2, (SCALE * w - CROP) // 2  # the centre: the grey cross and four patches
    strip = [np.repeat(np.repeat(noisy, SCALE, 0), SCALE, 1)[y0:y0 + CROP, x0:x0 + CROP]]
    rows = [f"| input (nearest) | – | {niqe(np.repeat(np.repeat(noisy, SCALE, 0), SCALE, 1)):.2f} | "
            f"{psnr(noisy, ref):.2f} | – |"]
    with tempfile.TemporaryDirectory() as tmp:
        for m in args.methods.split(","):
            t0 = time.perf_counter()
            out, steps = method_output(noisy, m, Path(tmp))
            seconds = time.perf_counter() - t0
            back = resize(out, (w, h), "area")
            rows.append(f"| {m} | {steps or '–'} | {niqe(out):.2f} | {psnr(back, ref):.2f} | {seconds:.0f} |")
            strip.append(out[y0:y0 + CROP, x0:x0 + CROP])
            print(rows[-1], flush=True)
    gap = np.ones((CROP, 4, 3))
    PILImage.fromarray(to_uint8(np.concatenate([x for s in strip for x in (s, gap)][:-1], 1))).save(
        OUT / "real_noise_x4.jpg", quality=90)
    table = ("<!-- written by benchmarks/real_noise.py; do not edit -->\n"
             "## A real smartphone-noise photo ×4 (maxim-denoising's fixture, 256², seen by no fit)\n\n"
             "| method | steps | NIQE (×4 output) | PSNR to MAXIM's result at 1× (dB) | seconds |\n|---|---|---|---|---|\n"
             + "\n".join(rows) + "\n\nCrops (`real_noise_x4.jpg`, 256² of the ×4 centre): input (nearest) | "
             + " | ".join(args.methods.split(",")) + ". FastGen4K-P's 4096² output is brought to ×4 (area) here.\n")
    (OUT / "real_noise.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
