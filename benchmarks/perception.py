"""Benchmark of the offline degradation detectors on synthetic degradations of real photos.

Run ``python benchmarks/perception.py`` (add ``--quick`` for a subset, ``--seed N`` to reshuffle the
pairs, ``--split tune|holdout`` to use only the photos the detectors were tuned on (the first 9) or only
the held-out ones (the last 4); the default uses all and also reports F1 on the held-out photos'
cases). Ground truth: a degradation is present iff its level is >= 3. "low resolution" is synthesised
about content: bicubic downscale by the level's factor, then bicubic upscale back to
the original pixel size (the detectors judge content, the agent takes the SR factor from the pixel
size). Pairs are composed in capture order: haze, motion, defocus, low resolution, rain (an
overlay near the lens), dark, noise, JPEG. Needs scikit-image (sample photos).

Tables: the threshold verdicts, the shipped calibration (``fourkagent/perception/calibration.py``; its fit saw
these photos, other crops and seeds), and with ``--lopo`` the calibration refitted without each test photo
(leave-photo-out: photos the model never saw; needs ``training/fit_perception.py``'s feature cache and
scikit-learn; slow: 13 refits).
``--realistic``: the realistic cases of ``benchmarks/perception_realistic.py`` on the pool's split.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fourkagent import degrade  # noqa: E402
from fourkagent.imaging import resize  # noqa: E402
from fourkagent.photos import decode, photo_sources  # noqa: E402
from fourkagent.perception.calibration import (  # noqa: E402
    MODEL_FILE,
    calibrate,
    evidence_of,
    feature_matrix,
    load_model,
    model_from_dict,
    predict_proba,
    verdict,
)
from fourkagent.perception.detectors import KINDS, Detection, detect_all  # noqa: E402
from benchmarks.perception_realistic import FALSE_ALARM_STAGES, REAL_TRUTH_BOUNDS, realistic_cases  # noqa: E402

MODEL_PATH = Path(__file__).resolve().parents[1] / "fourkagent" / "data" / MODEL_FILE

PHOTOS = (
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
    "camera", "moon", "grass", "gravel", "coins", "stereo_motorcycle",
)
TUNE = PHOTOS[:9]
"""Photos the detector thresholds were tuned on; the others are held out."""
HOLDOUT = PHOTOS[9:]
ORDER = ("haze", "motion blur", "defocus blur", "low resolution", "rain", "dark", "noise",
         "jpeg compression artifact")
SHORT = {"noise": "noise", "motion blur": "motion", "defocus blur": "defocus", "haze": "haze", "rain": "rain",
         "dark": "dark", "jpeg compression artifact": "jpeg", "low resolution": "lowres"}


def load_photo(name: str, max_side: int = 512) -> np.ndarray:
    """A scikit-image sample photo as the internal type, centre-cropped to ``max_side`` (pixel scale kept)."""
    img = decode(photo_sources([name])[name])
    h, w = img.shape[:2]
    y0, x0 = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
    return np.ascontiguousarray(img[y0 : y0 + max_side, x0 : x0 + max_side])


def low_resolution(img: np.ndarray, level: int) -> np.ndarray:
    """Content low resolution: downscale by the level's factor, upscale back to the same pixel size."""
    f = int(degrade.LEVELS["low resolution"][level - 1]["factor"])
    h, w = img.shape[:2]
    return resize(degrade.downscale(img, f), (w, h), "cubic")


def synthesize(img: np.ndarray, spec: dict[str, int], seed: int = 0,
               angles: dict[str, float] | None = None) -> np.ndarray:
    """Apply ``{kind: level}`` in capture order (``angles``: optional motion blur / rain directions, degrees)."""
    out = img
    for kind in ORDER:
        if kind not in spec:
            continue
        if kind == "low resolution":
            out = low_resolution(out, spec[kind])
        elif angles and kind in angles:
            params = dict(degrade.LEVELS[kind][spec[kind] - 1]) | {"angle": angles[kind]}
            params |= {"seed": seed} if kind == "rain" else {}
            out = degrade.DEGRADATIONS[kind](out, **params)
        else:
            out = degrade.apply(out, kind, spec[kind], seed=seed)
    return out


def build_cases(photos: list[str], rng: np.random.Generator, n_pairs: int) -> list[tuple[str, dict[str, int]]]:
    cases: list[tuple[str, dict[str, int]]] = [(p, {}) for p in photos]
    for p in photos:
        for kind in KINDS:
            for level in range(1, 6):
                cases.append((p, {kind: level}))
    pairs = list(itertools.combinations(KINDS, 2))
    for i in range(n_pairs):
        k1, k2 = pairs[i % len(pairs)]
        cases.append((photos[int(rng.integers(len(photos)))], {k1: int(rng.integers(1, 6)), k2: int(rng.integers(1, 6))}))
    return cases


def score_table(title: str, cases: list[tuple[str, dict[str, int]]], preds: list[set[str]],
                held: Sequence[str]) -> list[tuple]:
    """Print per-kind TP/FP/FN, P/R/F1 (all, singles, held-out photos) and the confusion; returns the errors."""
    tp, fp, fn = (dict.fromkeys(KINDS, 0) for _ in range(3))
    stp, sfp, sfn = (dict.fromkeys(KINDS, 0) for _ in range(3))  # single-degradation and clean cases only
    htp, hfp, hfn = (dict.fromkeys(KINDS, 0) for _ in range(3))  # cases on held-out photos only
    confusion = {t: dict.fromkeys(KINDS, 0) for t in (*KINDS, "clean")}  # true kind -> predicted-present counts
    truth_count = dict.fromkeys((*KINDS, "clean"), 0)
    errors = []
    for (photo, spec), pred in zip(cases, preds):
        truth = {k for k, lv in spec.items() if lv >= 3}
        for k in KINDS:
            for t_, f_p, f_n, on in ((tp, fp, fn, True), (stp, sfp, sfn, len(spec) <= 1),
                                     (htp, hfp, hfn, photo in held)):
                if not on:
                    continue
                if k in pred and k in truth:
                    t_[k] += 1
                elif k in pred:
                    f_p[k] += 1
                elif k in truth:
                    f_n[k] += 1
        for t in truth or {"clean"}:
            truth_count[t] += 1
            for k in pred:
                confusion[t][k] += 1
        if pred != truth:
            errors.append((photo, spec, sorted(pred - truth), sorted(truth - pred)))
    print(f"\n== {title}")
    print(f"{'kind':<28}{'TP':>5}{'FP':>5}{'FN':>5}{'prec':>8}{'recall':>8}{'F1':>7}{'F1 singles':>12}"
          f"{'F1 held-out':>13}")
    f1s, sf1s, hf1s = [], [], []
    for k in KINDS:
        p = tp[k] / max(1, tp[k] + fp[k])
        r = tp[k] / max(1, tp[k] + fn[k])
        f1 = 2 * p * r / max(1e-9, p + r)
        sf1 = 2 * stp[k] / max(1, 2 * stp[k] + sfp[k] + sfn[k])
        hf1 = 2 * htp[k] / max(1, 2 * htp[k] + hfp[k] + hfn[k])
        f1s.append(f1)
        sf1s.append(sf1)
        hf1s.append(hf1)
        hcol = f"{hf1:>13.3f}" if held else f"{'-':>13}"
        print(f"{k:<28}{tp[k]:>5}{fp[k]:>5}{fn[k]:>5}{p:>8.3f}{r:>8.3f}{f1:>7.3f}{sf1:>12.3f}{hcol}")
    hmean = f"{np.mean(hf1s):>13.3f}" if held else f"{'-':>13}"
    print(f"{'macro F1':<43}{np.mean(f1s):>22.3f}{np.mean(sf1s):>12.3f}{hmean}")
    print("confusion: rows = true present kind (or clean/all-absent), columns = predicted-present rate")
    print(f"{'true/pred':<14}{'n':>5}" + "".join(f"{SHORT[k]:>9}" for k in KINDS))
    for t in (*KINDS, "clean"):
        n = truth_count[t]
        row = "".join(f"{confusion[t][k] / max(1, n):>9.2f}" for k in KINDS)
        print(f"{SHORT.get(t, t):<14}{n:>5}" + row)
    return errors


def realistic_table(title: str, metas: list[dict], preds: list[set[str]]) -> dict[str, float]:
    """Print per-kind P/R/F1 of realistic cases (ambiguous labels left out; all, full-size views, ×4 inputs) and
    the rain / haze false-alarm rates; returns the summary numbers."""
    groups = {"all": lambda m: True, "full-size": lambda m: "downscale" not in m["stages"],
              "x4 small": lambda m: "downscale" in m["stages"]}
    print(f"\n== {title}")
    print(f"{'kind':<28}{'TP':>5}{'FP':>5}{'FN':>5}{'prec':>8}{'recall':>8}{'F1':>7}{'F1 full-size':>14}"
          f"{'F1 x4 small':>13}")
    summary: dict[str, float] = {}
    f1s = {g: [] for g in groups}
    for k in KINDS:
        cells = {}
        for g, on in groups.items():
            tp = sum(1 for m, p in zip(metas, preds) if on(m) and m["truth"][k] == 1 and k in p)
            fp = sum(1 for m, p in zip(metas, preds) if on(m) and m["truth"][k] == 0 and k in p)
            fn = sum(1 for m, p in zip(metas, preds) if on(m) and m["truth"][k] == 1 and k not in p)
            f1 = 2 * tp / max(1, 2 * tp + fp + fn)
            cells[g] = (tp, fp, fn, tp / max(1, tp + fp), tp / max(1, tp + fn), f1)
            if tp + fn > 0:  # a kind with no present case in the group has no F1 there
                f1s[g].append(f1)
        tp, fp, fn, pr, rc, f1 = cells["all"]
        has = {g: any(on(m) and m["truth"][k] == 1 for m in metas) for g, on in groups.items()}
        cols = "".join(f"{cells[g][5]:>{w}.3f}" if has[g] else f"{'-':>{w}}" for g, w in (("full-size", 14),
                                                                                          ("x4 small", 13)))
        print(f"{k:<28}{tp:>5}{fp:>5}{fn:>5}{pr:>8.3f}{rc:>8.3f}{f1:>7.3f}{cols}")
        summary[f"f1:{k}"] = f1
    print(f"{'macro F1 (kinds with present cases)':<50}{np.mean(f1s['all']):>15.3f}{np.mean(f1s['full-size']):>14.3f}"
          f"{np.mean(f1s['x4 small']):>13.3f}")
    summary["macro_f1"] = float(np.mean(f1s["all"]))

    def fa_group(m: dict) -> str | None:
        st = set(m["stages"]) - {"downscale", "preblur"}
        if not set(m["stages"]) <= FALSE_ALARM_STAGES:
            return None
        return "noisy / JPEG" if st & {"sensor", "noise", "jpeg"} else "mild / clean"

    print("false alarms (cases without rain or haze): reported rate")
    print(f"{'inputs':<30}{'n':>5}{'rain':>8}{'haze':>8}")
    for name in ("noisy / JPEG", "mild / clean"):
        for size, on in (("all sizes", groups["all"]), ("x4 small", groups["x4 small"])):
            idx = [i for i, m in enumerate(metas) if fa_group(m) == name and on(m)]
            rain = np.mean(["rain" in preds[i] for i in idx]) if idx else 0.0
            haze = np.mean(["haze" in preds[i] for i in idx]) if idx else 0.0
            print(f"{name + ', ' + size:<30}{len(idx):>5}{rain:>8.3f}{haze:>8.3f}")
            summary[f"fa_rain:{name}:{size}"], summary[f"fa_haze:{name}:{size}"] = float(rain), float(haze)
    return summary


def realistic_main(args: argparse.Namespace, models: list[tuple[str, str | None]]) -> int:
    """``--realistic``: the realistic cases of the pool split's photos, scored by every model in ``models``."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
    from photo_pool import photos as pool_photos

    from fourkagent.imaging import as_image

    key = (args.pool, args.seed, "realistic-v1")
    cache = Path(args.raw_cache) if args.raw_cache else None
    if cache is not None and cache.exists() and (got := pickle.loads(cache.read_bytes()))[0] == key:
        metas, raw, elapsed = got[1], got[2], None
    else:
        metas, raw = [], []
        t0 = time.perf_counter()
        for name, img in sorted(pool_photos(args.pool, library=False).items()):
            for meta, deg in realistic_cases(name, as_image(img), args.seed):
                metas.append(meta)
                raw.append(detect_all(deg, calibrated=False))
        elapsed = time.perf_counter() - t0
        if cache is not None:
            cache.write_bytes(pickle.dumps((key, metas, raw)))
    photos = sorted({m["photo"] for m in metas})
    timing = "" if elapsed is None or args.no_timing else f" ({elapsed:.0f} s)"
    print(f"{len(metas)} realistic cases from {len(photos)} photos of the pool's {args.pool} split (never fitted on), "
          f"seed {args.seed}{timing}: {', '.join(photos)}")
    print("cases per photo: clean, single and combined realistic degradations (fourkagent.degrade_real) on 512/256-px "
          "crops, a 256-px crop of the half-size photo and a 96-200 px crop; x4 small inputs (a 384-px crop and a "
          "400-800 px crop, bicubic /4) clean, mild, noisy, JPEG'd, pre-blurred, hazy, rainy. Ground truth: "
          "benchmarks.perception.REAL_TRUTH_BOUNDS (ambiguous labels left out)")
    for title, path in models:
        if title == "thresholds":
            preds = [{d.kind for d in dets if d.present} for dets in raw]
        else:
            preds = [{d.kind for d in calibrate(dets, path) if d.present} for dets in raw]
        realistic_table(title, metas, preds)
    return 0


def leave_photo_out(cases: list[tuple[str, dict[str, int]]], raw: list[list[Detection]],
                    cache: str) -> list[set[str]]:
    """Verdicts of models refitted on the training cache without the case's photo (all its views/seeds)."""
    from training.fit_perception import (
        REAL_SEEDS, SEEDS, all_photos, extract_photo, extract_realistic, fit_model, load_cases,
    )

    names = sorted(all_photos())
    Path(cache).mkdir(parents=True, exist_ok=True)
    for n, seed in itertools.product(names, SEEDS):  # builds a missing cache (about 25 s per photo and seed)
        extract_photo((n, seed, cache))
    for n, seed in itertools.product(names, REAL_SEEDS):  # realistic cases: about 8 s per photo and seed
        extract_realistic((n, seed, cache))
    rows = load_cases(cache, names)
    x = feature_matrix([evidence_of(dets) for dets in raw])
    preds: list[set[str]] = [set() for _ in cases]
    for photo in sorted({p for p, _ in cases}):
        model = model_from_dict(fit_model([r for r in rows if r["photo"] != photo]))
        idx = [i for i, (p, _) in enumerate(cases) if p == photo]
        prob = predict_proba(model, x[idx])
        for i, pr in zip(idx, prob):
            thr = {d.kind for d in raw[i] if d.present}
            preds[i] = {k for k, q in zip(KINDS, pr) if verdict(k, k in thr, float(q))}
    return preds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="6 photos, fewer pairs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--errors", action="store_true", help="list every misclassified case (final verdicts)")
    ap.add_argument("--split", choices=("all", "tune", "holdout"), default="all",
                    help="photos: all, the tuning photos only, or the held-out photos only")
    ap.add_argument("--pool", choices=("validation", "test"), default=None,
                    help="the photo pool's split instead (training/photo_pool.py: photos nothing was fitted on)")
    ap.add_argument("--lopo", action="store_true",
                    help="also leave-photo-out: refit the calibration without each test photo (needs the training "
                         "feature cache, built if missing: ~10 min)")
    ap.add_argument("--cache", default="/tmp/fourk_perception_features_v4", help="training feature cache (--lopo)")
    ap.add_argument("--realistic", action="store_true",
                    help="realistic cases (fourkagent.degrade_real, incl. x4 small inputs and false-alarm inputs) "
                         "on the photos of --pool's split instead of the textbook table")
    ap.add_argument("--models", nargs="*", default=[], metavar="MODEL.json",
                    help="also score these calibration model files (e.g. the model before a refit)")
    ap.add_argument("--raw-cache", default=None, metavar="FILE",
                    help="keep the raw detections here and reuse them (re-scoring other models)")
    args = ap.parse_args(argv)
    extra = [(f"calibration model {Path(m).name}" + (": never fitted on these photos" if args.pool else ""), m)
             for m in args.models]
    if args.realistic:
        if not args.pool:
            ap.error("--realistic needs --pool validation|test")
        shipped = [("shipped calibration (photos never fitted on)", None)] if load_model() is not None else []
        return realistic_main(args, [("thresholds", None), *shipped, *extra])

    if args.pool:  # photos of the pool's split: none of them was ever fitted or tuned on (validation, test)
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
        from photo_pool import crops, photos as pool_photos

        images = {n: np.ascontiguousarray(next(crops(img, 512, 1)), np.float32) / 255.0
                  for n, img in sorted(pool_photos(args.pool, library=False).items())}
        photos = list(images)
        global HOLDOUT
        HOLDOUT = tuple(photos)
    else:
        pool = {"all": PHOTOS, "tune": TUNE, "holdout": HOLDOUT}[args.split]
        photos = list(pool[:6] if args.quick else pool)
        images = {p: load_photo(p) for p in photos}
    rng = np.random.default_rng(args.seed)
    cases = build_cases(photos, rng, 84 if args.quick else 280)

    t0 = time.perf_counter()
    key = (args.pool or args.split, args.quick, args.seed, "textbook-v1")
    cache = Path(args.raw_cache) if args.raw_cache else None
    if cache is not None and cache.exists() and (got := pickle.loads(cache.read_bytes()))[0] == key:
        raw = got[1]
    else:
        raw = [detect_all(synthesize(images[photo], spec, seed=i), calibrated=False)
               for i, (photo, spec) in enumerate(cases)]
        if cache is not None:
            cache.write_bytes(pickle.dumps((key, raw)))
    elapsed = time.perf_counter() - t0
    print(f"{len(cases)} cases from {len(photos)} photos, seed {args.seed} ({elapsed:.1f} s, "
          f"{1000 * elapsed / len(cases):.0f} ms/case)")
    held = [p for p in photos if p in HOLDOUT]
    print(f"photos: {', '.join(photos)}; held out from the thresholds' tuning: {', '.join(held) or 'none'}")
    model = load_model()
    fit = json.loads(MODEL_PATH.read_text()).get("fit", {}) if model is not None else {}
    print(f"calibration model: {'none (thresholds only)' if model is None else MODEL_PATH.name}; fitted on "
          f"{fit.get('cases', '?')} cases of {len(fit.get('photos', []))} photos "
          f"({'none of the above among them' if args.pool else 'all of the above among them'})")

    tables = [("thresholds (no calibration)", [{d.kind for d in dets if d.present} for dets in raw])]
    if model is not None:
        tables.append(("shipped calibration (" + (f"photos of the pool's {args.pool} split: never fitted on"
                                                   if args.pool else "its fit saw these photos, other crops/seeds") + ")",
                       [{d.kind for d in calibrate(dets) if d.present} for dets in raw]))
    for title, path in extra:
        tables.append((title, [{d.kind for d in calibrate(dets, path) if d.present} for dets in raw]))
    if args.lopo:
        t1 = time.perf_counter()
        tables.append(("leave-photo-out calibration (refit without the test photo: unseen photos)",
                       leave_photo_out(cases, raw, args.cache)))
        print(f"leave-photo-out refits: {time.perf_counter() - t1:.0f} s")
    errors = []
    for title, preds in tables:
        errors = score_table(title, cases, preds, held)
    if args.errors:
        print(f"\nerrors of the last table (photo, spec, false-present, missed): {len(errors)}")
        for e in errors:
            print("  ", *e)

    # pixel-size low resolution: degrade.apply's plain down-scale (no up-scaling back)
    hits, cal_hits = [], {m: [] for m in (None, *args.models)}
    lr = KINDS.index("low resolution")
    for p in photos:
        for level in range(1, 6):
            dets = detect_all(degrade.apply(images[p], "low resolution", level), calibrated=False)
            hits.append(dets[lr].present == (level >= 3))
            for m, h in cal_hits.items():
                h.append(calibrate(dets, m)[lr].present == (level >= 3))
    others = "".join(f", {Path(m).name} {np.mean(h):.3f}" for m, h in cal_hits.items() if m is not None)
    print(f"\npixel-size low resolution (plain down-scale, tiny-image rule), accuracy over {len(hits)} cases: "
          f"thresholds {np.mean(hits):.3f}, calibrated {np.mean(cal_hits[None]):.3f}{others}")

    if not args.no_timing:
        print("\ntiming of detect_all (median of 3):")
        base = load_photo("astronaut", 10**6)
        for side in (1024, 4096):
            img = resize(base, (side, side), "cubic")
            img = degrade.add_noise(img, 5.0, seed=1)
            runs = []
            for _ in range(3):
                t = time.perf_counter()
                detect_all(img)
                runs.append(time.perf_counter() - t)
            print(f"  {side}x{side}: {np.median(runs):.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
