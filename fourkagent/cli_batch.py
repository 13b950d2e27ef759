"""``4kagent batch``: restore many images (files, folders, globs) into a folder, resumable, in-process or on Dask."""

from __future__ import annotations

import argparse
import sys

from fourkagent.errors import FourKError

EXIT_FAILED = 1
"""Exit status of a job that finished with failed images (bad arguments: 2, as every command)."""


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    b = sub.add_parser("batch", help="restore many images into a folder (resumable; parallel on Dask)",
                       description="Each image is one resumable run; run the same command again after a crash or a "
                                   "kill to finish what is missing (finished images are never redone).")
    b.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders (searched recursively) or globs")
    b.add_argument("-o", "--output", metavar="OUT_DIR", help="output folder: the input tree is mirrored in it")
    b.add_argument("-p", "--profile", help="profile name or YAML file (default FastGen4K-P)")
    b.add_argument("--workers", type=int, default=1, help="local Dask worker processes (default 1: in-process)")
    b.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://host:8786 "
                   "(needs --checkpoint)")
    b.add_argument("--checkpoint", metavar="URL", default="",
                   help="postgresql://… checkpointer shared by the workers (default: SQLite in the home directory; "
                   "$FOURKAGENT_CHECKPOINT_URL)")
    b.add_argument("--job", metavar="JOB_ID", help="job id (default: from the output folder, so the same command is "
                   "the same job)")
    b.add_argument("--ext", default=".png", help="output extension: .png (default), .tif, .jpg, .webp")
    b.add_argument("--overwrite", action="store_true", help="replace output files that exist before the job")
    b.add_argument("--device", help="torch device for neural tools (as restore)")
    b.add_argument("--threads", type=int, help="CPU threads per image (default: all cores, divided among the workers)")
    b.add_argument("--status", metavar="JOB_ID", help="print a job's state from its job.json (found through "
                   "<home>/jobs/JOB_ID.json; a job folder or job.json path also works) and exit")
    b.add_argument("--json", action="store_true", help="print the job record as JSON")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    b.set_defaults(fn=cmd_batch)


def cmd_batch(args: argparse.Namespace) -> int:
    from fourkagent import cli_checks
    from fourkagent.batch.job import find_job, read_job, status_text
    from fourkagent.context import Context

    ctx = Context(home=args.home or "", checkpoint_url=args.checkpoint or "")
    if args.status:
        job = read_job(find_job(ctx.home, args.status))
        print(job.to_json() if args.json else status_text(job))
        return 0 if job.finished and not job.failures() else EXIT_FAILED
    if not args.inputs or not args.output:
        raise FourKError("batch needs INPUT... and -o OUT_DIR (or --status JOB_ID)")
    cli_checks.check_profile(args.profile)
    from fourkagent.batch.engine import run_batch

    try:
        job = run_batch(args.inputs, args.output, args.profile, workers=args.workers, scheduler=args.scheduler,
                        checkpoint=ctx.checkpoint_url, job_id=args.job, ext=args.ext, overwrite=args.overwrite,
                        home=ctx.home, device=args.device or "", threads=max(0, args.threads or 0),
                        progress=not args.quiet)
    except KeyboardInterrupt:
        print("4kagent: interrupted; run the same command again to finish the job", file=sys.stderr)
        return 130
    print(job.to_json() if args.json else status_text(job))
    return EXIT_FAILED if job.failures() else 0
