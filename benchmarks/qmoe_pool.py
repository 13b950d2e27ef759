"""The shipped Q-MoE models on a split of the photo pool: selection against the PSNR oracle, and do no harm.

Reporting only (the test split is never used to choose anything): the data are made as the pool fits make them
(``training/fit_qmoe_pool.py``: SR cases of one 256² crop per photo; restoration cases, ``scoring/dataset.
real_cases``, of one 128² crop) and cached, then the **shipped** models score them. Per step: cases, agreement with
the PSNR oracle (within 0.05 dB), dB lost against it, and the do-no-harm measure of fidelity profiles — SR: the
pick (with the shipped margins, the clean-input rule included) at least Lanczos, mean dB over Lanczos;
restoration: the decision (margin applied, threshold, doing nothing allowed) at least doing nothing, mean dB kept.
Restoration steps are scored without the SURE ratio (the refitted steps were fitted without it; the runtime gives
denoising a SURE ratio only where the input's noise is white, which these data do not record).

Writes ``benchmarks/qmoe_pool_<split>.md``.
Usage: python benchmarks/qmoe_pool.py --split test [--sr-data F.npz] [--restoration-data F.npz] [--no-restoration]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from fit_qmoe_pool import dataset, harmless_restoration, predictions, restoration_dataset  # noqa: E402
from fit_sr_margins import shipped_harmless, sr_input_measures  # noqa: E402
from fourkagent.scoring.dataset import evaluate, experts_only  # noqa: E402
from fourkagent.scoring.learned import shipped_model  # noqa: E402

OUT = Path(__file__).resolve().parent


def sr_rows(split: str, cache: str, model: dict) -> list[str]:
    """Table rows of the SR steps."""
    ex = experts_only(dataset(split, 256, cache, print))
    steps = sorted(s for s in set(ex["step"].tolist()) if s in model["steps"])
    pred = predictions({s: model["steps"][s] for s in steps}, ex)
    rep, measures, rows = evaluate(ex, pred), sr_input_measures(split, 256), []
    for step in steps:
        ok, db = shipped_harmless(ex, pred, step, measures, model["steps"][step])
        r = rep[step]
        rows.append(f"| {step} | {r['cases']} | {100 * r['agreement']:.0f} % | {r['loss_db']:.2f} | pick ≥ Lanczos "
                    f"{100 * ok:.0f} %, {db:+.2f} dB over Lanczos |")
    return rows


def restoration_rows(split: str, cache: str, model: dict) -> list[str]:
    """Table rows of the restoration steps."""
    data = restoration_dataset(split, 128, cache, print)
    if data is None:
        raise SystemExit("restoration data incomplete")
    ex = experts_only(data | {"sure": np.full(len(data["gain"]), np.nan)})
    steps = sorted(s for s in set(ex["step"].tolist()) if s in model["steps"])
    pred = predictions({s: model["steps"][s] for s in steps}, ex)
    rep, rows = evaluate(ex, pred), []
    for step in steps:
        ok, kept = harmless_restoration(ex, pred, step, float(model["steps"][step].get("safe_margin_db", 0.0)))
        r = rep[step]
        rows.append(f"| {step} | {r['cases']} ({r['false_alarms']} false alarms) | {100 * r['agreement']:.0f} % | "
                    f"{r['loss_db']:.2f} | decision ≥ doing nothing {100 * ok:.0f} %, {kept:+.2f} dB kept |")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=("validation", "test"), default="test")
    ap.add_argument("--sr-data", default="")
    ap.add_argument("--restoration-data", default="")
    ap.add_argument("--no-restoration", action="store_true")
    args = ap.parse_args(argv)
    model = shipped_model()
    rows = sr_rows(args.split, args.sr_data, model)
    if not args.no_restoration:
        rows += restoration_rows(args.split, args.restoration_data, model)
    text = ("<!-- written by benchmarks/qmoe_pool.py; do not edit -->\n"
            f"## Shipped Q-MoE models on the pool's {args.split} split\n\n"
            "| step | cases | agreement with the PSNR oracle | dB lost vs the oracle | do no harm (fidelity profiles) |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows) + "\n\nAgreement and dB lost: the model's own pick among the "
            "experts (no margins); do no harm: the pick with the shipped margins (SR: the Lanczos floor, the clean-input "
            "and JPEG-lattice rules) against the safe choice. The test split is reported here, never used to choose.\n")
    (OUT / f"qmoe_pool_{args.split}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
