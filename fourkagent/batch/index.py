"""``OUT_DIR/index.html``: a job at a glance — failures first with their reasons, then each image with its before and
after thumbnails, chosen steps, final Q, time and a link to its own report. Text is escaped with the run report's
helpers; the thumbnails are files beside it (``work.THUMB_DIR``), so the page stays small for thousands of images."""

from __future__ import annotations

from html import escape
from pathlib import Path
from urllib.parse import quote

from fourkagent.batch.job import INDEX_FILE, ImageRecord, JobRecord
from fourkagent.report.markup import CSS, fmt, table


_JS = """window.addEventListener('load', function(){
  var ok = 0, broken = 0;
  document.querySelectorAll('img.thumb').forEach(function(i){ if (i.naturalWidth > 0) ok++; else broken++; });
  document.body.setAttribute('data-thumbs', ok + ' shown, ' + broken + ' missing');
});"""
"""Marks the page once loaded with how many thumbnails could be shown (a moved job folder shows them missing)."""


def _link(rel: str, text: str) -> str:
    return f'<a href="{escape(quote(rel))}">{escape(text)}</a>' if rel else ""


def _thumbs(rec: ImageRecord) -> list[str]:
    if len(rec.thumbs) != 2:
        return ['<span class="sub">–</span>'] * 2
    return [f'<img class="thumb" alt="{kind}" src="{escape(quote(src))}">' for kind, src in zip(("input", "output"),
                                                                                                 rec.thumbs)]


def _name(rec: ImageRecord, out_dir: str) -> str:
    out = Path(rec.output)
    rel = out.relative_to(out_dir).as_posix() if out.is_relative_to(out_dir) else str(out)
    return f'{_link(rel, rel) if rec.status == "done" else escape(rel)}<br><span class="sub">{escape(rec.input)}</span>'


def render_index(job: JobRecord) -> str:
    """The page for a job record."""
    c = job.counts()
    failures = [[escape(i.input), f'<span class="err">{escape(i.error)}</span>'] for i in job.failures()]
    rows = [[*_thumbs(i), _name(i, job.out_dir), escape(" → ".join(i.steps)) or "–", fmt(i.final_q),
             fmt(i.seconds, 1), escape(i.action or "–"), _link(i.report_html, "report")]
            for i in job.images if i.status == "done"]
    pending = [[escape(i.input), escape(i.output)] for i in job.images if i.status == "pending"]
    state = "finished" if job.finished else "not finished"
    parts = [
        f"<h1>Batch job {escape(job.job_id)}</h1>",
        f'<p id="counts" data-done="{c["done"]}" data-failed="{c["failed"]}" data-pending="{c["pending"]}">'
        f'{c["done"]} done, {c["failed"]} failed, {c["pending"]} pending of {len(job.images)} ({state}); '
        f"profile {escape(job.profile or 'default')}, engine {escape(job.engine)} ({job.workers} worker(s)); "
        f'<a href="job.json">job.json</a></p>',
    ]
    if failures:
        parts += [f'<h2 id="failures">Failed ({len(failures)})</h2>', table(["input", "reason"], failures, "failures")]
    parts += ['<h2 id="images">Images</h2>', '<div class="scroll">' + table(
        ["input", "output", "image", "steps", "Q", "seconds", "this run", "report"], rows, "images") + "</div>"]
    if pending:
        parts += [f'<h2 id="pending">Pending ({len(pending)})</h2>', table(["input", "output"], pending, "pending")]
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>fourkagent batch {escape(job.job_id)}</title><style>{CSS}</style></head><body>"
            + "\n".join(parts) + f"<script>{_JS}</script></body></html>")


def write_index(job: JobRecord) -> Path:
    """Write ``index.html`` into the job folder atomically; returns its path."""
    from fourkagent.imagewrite import atomic_write

    return atomic_write(Path(job.out_dir) / INDEX_FILE, render_index(job).encode("utf-8"))
