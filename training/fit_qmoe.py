"""Fit the learned offline Q-MoE scorer shipped in ``fourkagent/data/qmoe_model.json``.

Data (``fourkagent/scoring/dataset.py``): every free real photo of ``photos.sample_photos`` (centre crops),
every degradation of the paper's vocabulary at severities 1-5 (SR: ×4 and ×2 bicubic downscale of three
rotated views), every registered expert of the matching step, with its SURE ratio on denoising steps.
Target: PSNR gain over doing nothing (dB). Per step the fit chooses by inner CV its penalties, feature set,
input-state set and tool prior (``scoring/learned.py``).
Prints 2-fold cross-validation by photo (penalties chosen per step by an inner CV on the training photos),
then fits on all photos. ``--corner`` adds a second view of every photo for training (CV still scores the
centre views only). Deterministic (fixed seeds).

``--pool`` refits only the SR steps, on the photo pool (``training/photo_pool.py``): realistic SR cases
(``scoring/dataset.sr_cases``: small inputs clean, noisy, sensor-noisy, JPEG, blurred, and pairs) of one
``--side`` crop of every fit-split photo; it measures the fitted steps on the validation split (photos and
source packages the fit never saw), chooses there each SR step's do-no-harm margin (the head start of the
safe candidate, Lanczos: the smallest margin with which the pick is at least Lanczos in ≥ ``--safe-share`` of
validation cases), and replaces those steps in ``--out``, keeping the others.
Then (``training/fit_sr_margins.py``; alone with ``--sr-clean-margins``) it chooses, also on validation, a smaller
margin for inputs that measure clean at their own size (no JPEG lattice, noise σ̂ below a cut-off).
``--pool-restoration`` refits the restoration steps on the photo pool: realistic cases at the photo's size
(``scoring/dataset.real_cases``: sensor and Gaussian noise, JPEG, blur, camera shake, depth haze, streak rain,
low light, and false alarms — a good camera's file or another degradation) of one ``--side`` crop (128) of
every photo, every expert of the step (MAXIM's among them); fitted on the fit split, measured on validation,
where each step's do-no-harm margin is chosen as below. ``--shard k/n`` lets n processes make the data.
``--restoration-margins`` chooses the restoration steps' do-no-harm margins for fidelity profiles on the
validation split's synthetic cases (every degradation at five levels, plus false alarms; ``--side`` crops),
for the models in ``--out``: the smallest margin with which the decision loses nothing against doing nothing
in ≥ ``--safe-share`` of cases.

Usage: python training/fit_qmoe.py [--side 192] [--data CACHE.npz] [--corner CACHE2.npz] [--out MODEL.json]
       python training/fit_qmoe.py --pool [--side 256] [--data FIT.npz] [--val-data VAL.npz] [--add-tool NAME]
       python training/fit_qmoe.py --sr-clean-margins [--val-data VAL.npz]
       python training/fit_qmoe.py --pool-restoration --data FIT.npz --val-data VAL.npz [--side 128] [--shard k/n]
       python training/fit_qmoe.py --restoration-margins [--side 192] [--val-data VAL.npz]
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
    ap.add_argument("--pool", action="store_true", help="refit the SR steps on the photo pool (see above)")
    ap.add_argument("--val-data", default="", help="--pool: cache of the validation split's data (npz)")
    ap.add_argument("--safe-share", type=float, default=0.95)
    ap.add_argument("--per-tool-margins", action="store_true",
                    help="--pool: ship one do-no-harm margin per SR tool (see fit_qmoe_pool.refit_sr)")
    ap.add_argument("--add-tool", default="", help="--pool: first add this x4 expert's rows to both splits' data")
    ap.add_argument("--restoration-margins", action="store_true",
                    help="choose the restoration steps' do-no-harm margins on the validation split (see above)")
    ap.add_argument("--pool-restoration", action="store_true",
                    help="refit the restoration steps on the photo pool's realistic cases (see above)")
    ap.add_argument("--sr-clean-margins", action="store_true",
                    help="only choose the SR steps' clean-input margins for the models in --out (see fit_sr_margins.py)")
    ap.add_argument("--shard", default="0/1", help="--pool-restoration: make photos k, k+n, … of each split (k/n)")
    args = ap.parse_args()
    if args.pool_restoration:
        from fit_qmoe_pool import refit_restoration, restoration_dataset

        side = args.side if args.side != 192 else 128
        k, n = (int(v) for v in args.shard.split("/"))
        log = lambda s: print(s, flush=True)  # noqa: E731
        made = [restoration_dataset(split, side, cache, log, (k, n))
                for split, cache in (("fit", args.data), ("validation", args.val_data))]
        if all(d is not None for d in made):
            refit_restoration(Path(args.out), *made, args.safe_share)
        return
    if args.restoration_margins:
        from fit_qmoe_pool import restoration_margins

        restoration_margins(Path(args.out), args.side, args.val_data, args.safe_share)
        return
    if args.sr_clean_margins:
        from fit_sr_margins import clean_rules

        clean_rules(Path(args.out), args.side if args.side != 192 else 256, args.val_data, args.safe_share)
        return
    if args.pool:
        from fit_qmoe_pool import add_tool, refit_sr
        from fit_sr_margins import clean_rules

        side = args.side if args.side != 192 else 256
        for split, cache in (("fit", args.data), ("validation", args.val_data)):
            if args.add_tool:
                add_tool(split, side, cache, args.add_tool, log=lambda s: print(s, flush=True))
        refit_sr(Path(args.out), side, args.data, args.val_data, args.safe_share, args.per_tool_margins)
        clean_rules(Path(args.out), side, args.val_data, args.safe_share)
        return
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
