"""Fit the learned offline Q-MoE scorer shipped in ``fourkagent/data/qmoe_model.json``.

Data (``fourkagent/scoring/dataset.py``): every free real photo of ``photos.sample_photos`` (centre crops),
every degradation of the paper's vocabulary at severities 1-5 (SR: ×4 and ×2 bicubic downscale of three
rotated views), every registered expert of the matching step, with its SURE ratio on denoising steps.
Target: PSNR gain over doing nothing (dB). Per step the fit chooses by inner CV its penalties, feature set,
input-state set and tool prior (``scoring/learned.py``).
Prints 2-fold cross-validation by photo (penalties chosen per step by an inner CV on the training photos),
then fits on all photos. ``--corner`` adds a second view of every photo for training (CV still scores the
centre views only). Deterministic (fixed seeds).

Usage: python training/fit_qmoe.py [--side 192] [--data CACHE.npz] [--corner CACHE2.npz] [--out MODEL.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


from fourkagent.scoring.dataset import cross_validate, evaluate, fit_all, load_or_generate, merge
from fourkagent.scoring.features import NAMES, STATE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=192)
    ap.add_argument("--data", default="")
    ap.add_argument("--corner", default="", help="also a second view of every photo (cached in this npz)")
    ap.add_argument("--out", default=str(Path(__file__).parents[1] / "fourkagent/data/qmoe_model.json"))
    args = ap.parse_args()
    data = load_or_generate(args.side, args.data, log=lambda s: print(s, flush=True))
    if args.corner:
        data = merge(data, load_or_generate(args.side, args.corner, corner=True, log=lambda s: print(s, flush=True)))
    cv = evaluate(*cross_validate(data))
    model = {"version": 6, "features": list(NAMES), "state": list(STATE), "steps": fit_all(data), "cross_validation": cv,
             "photos": int(data["photo"].max() + 1), "rows": int(len(data["gain"])), "side": args.side}
    Path(args.out).write_text(json.dumps(model, indent=1))
    print("| step | cases | CV agreement | CV loss (dB) |\n|---|---|---|---|")
    for step, r in cv.items():
        print(f"| {step} | {r['cases']} | {100 * r['agreement']:.0f} % | {r['loss_db']:.2f} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
