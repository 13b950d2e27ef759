"""Self-contained HTML run report: before/after, the tree of steps with thumbnails, perception, timings.

The page has no external resource (inline CSS/JS, images as base64 JPEG), so it opens offline and
can be mailed. Thumbnails are at most ``THUMB_SIDE`` px and the comparison view ``VIEW_SIDE`` px,
so a 4K run's report stays well under 2 MB. The report JSON is embedded verbatim
(``<script id="report-data" type="application/json">``) so the page carries the same data.
"""

from __future__ import annotations

import base64
import io
import json
from html import escape
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image as PILImage

from fourkagent.errors import ArtifactError
from fourkagent.imageio import atomic_write
from fourkagent.imaging import Image, luma, resize, to_uint8
from fourkagent.state.artifacts import ArtifactStore

THUMB_SIDE = 160
"""Longest side of every candidate/node thumbnail."""
VIEW_SIDE = 960
"""Longest side of the before/after slider images."""
CROP_SIDE = 256
"""Side of the 100 % detail crops."""

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:16px;color:#1d2430;background:#f6f7f9}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;border-bottom:1px solid #ccd;padding-bottom:4px;margin-top:28px}
.sub{color:#556}pre{background:#fff;border:1px solid #dde;padding:8px;overflow:auto}
table{border-collapse:collapse;background:#fff;margin:6px 0}
td,th{border:1px solid #dde;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#eef1f5}.num{text-align:right;font-variant-numeric:tabular-nums}
.cmp{position:relative;display:inline-block;line-height:0;user-select:none}
.cmp img{display:block;max-width:100%}.cmp .before{position:absolute;top:0;left:0;clip-path:inset(0 50% 0 0)}
.cmp .bar{position:absolute;top:0;bottom:0;left:50%;width:2px;background:#fff;box-shadow:0 0 3px #000}
.cmp input{position:absolute;left:0;right:0;bottom:6px;width:100%;margin:0}
.lbl{position:absolute;top:6px;background:#000a;color:#fff;padding:2px 6px;font-size:12px;line-height:1.3}
.crops{display:flex;gap:10px;flex-wrap:wrap}.crops figure{margin:0}
.crops img{image-rendering:pixelated;border:1px solid #bbc}
figcaption{font-size:12px;color:#556}
ul.tree,ul.tree ul{list-style:none;padding-left:22px;border-left:2px solid #ccd;margin:4px 0}
ul.tree{border-left:none;padding-left:0}
.node{background:#fff;border:1px solid #ccd;border-radius:6px;padding:6px 8px;margin:6px 0;display:inline-block}
.node.failed{border-color:#d66;background:#fff6f6}.node.onpath{border-color:#3a8a4a;box-shadow:0 0 0 2px #3a8a4a55}
.badge{display:inline-block;border-radius:3px;padding:0 5px;font-size:12px;margin-left:4px;color:#fff;background:#778}
.badge.ok{background:#3a8a4a}.badge.fail{background:#c44}.badge.final{background:#2a5db0}
.thumb{max-width:160px;max-height:160px;border:1px solid #bbc;vertical-align:middle}
.cand .best td{background:#eef8ee}.err{color:#b22}.bar-h{background:#7a9cc6;height:10px;display:inline-block}
details{margin:4px 0}summary{cursor:pointer}.scroll{overflow-x:auto;max-width:100%}
.node{max-width:100%;box-sizing:border-box}.cand td,.cand th{font-size:12px}
"""

JS = """
(function(){
  var data = JSON.parse(document.getElementById('report-data').textContent);
  document.querySelectorAll('.cmp').forEach(function(box){
    var r = box.querySelector('input'), b = box.querySelector('.before'), bar = box.querySelector('.bar');
    function set(v){ b.style.clipPath = 'inset(0 ' + (100 - v) + '% 0 0)'; bar.style.left = v + '%'; }
    r.addEventListener('input', function(){ set(+r.value); });
    set(+r.value);
  });
  var n = document.querySelectorAll('.node').length;
  if (n !== Object.keys(data.tree || {}).length) { throw new Error('tree nodes missing: ' + n); }
  document.getElementById('node-count').textContent = String(n);
  document.body.setAttribute('data-ready', '1');
})();
"""


def html_path_for(output_path: str | Path) -> Path:
    """``<output stem>.report.html`` beside the output."""
    p = Path(output_path)
    return p.with_name(f"{p.stem}.report.html")


def fit(img: Image, side: int) -> Image:
    """Downscale (area) so the longest side is at most ``side``; smaller images are returned as is."""
    h, w = img.shape[:2]
    f = side / max(h, w)
    if f >= 1.0:
        return img
    return resize(img, (max(1, round(w * f)), max(1, round(h * f))), "area")


def data_uri(img: Image, quality: int = 85) -> str:
    """A base64 ``data:image/jpeg`` URI of an image."""
    buf = io.BytesIO()
    PILImage.fromarray(to_uint8(img)).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def detail_box(img: Image, side: int = CROP_SIDE) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of the ``side``-px window with the most gradient energy (the most detailed region)."""
    h, w = img.shape[:2]
    cw, ch = min(side, w), min(side, h)
    f = min(1.0, 512 / max(h, w))
    small = cv2.resize(luma(img), (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    energy = np.abs(cv2.Sobel(small, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(small, cv2.CV_32F, 0, 1))
    kw, kh = max(1, round(cw * f)), max(1, round(ch * f))
    mean = cv2.boxFilter(energy, -1, (kw, kh), normalize=True, borderType=cv2.BORDER_CONSTANT)
    # the box filter is centred: keep centres whose window lies inside the image
    valid = mean[kh // 2 : small.shape[0] - (kh - 1 - kh // 2), kw // 2 : small.shape[1] - (kw - 1 - kw // 2)]
    if valid.size == 0:
        return 0, 0, cw, ch
    yy, xx = np.unravel_index(int(np.argmax(valid)), valid.shape)
    x, y = min(round(xx / f), w - cw), min(round(yy / f), h - ch)
    return int(x), int(y), cw, ch


class _Thumbs:
    """Thumbnail data URIs of artifacts, loaded once each; a missing artifact gives ``None``."""

    def __init__(self, store: ArtifactStore | None) -> None:
        self.store = store
        self.cache: dict[str, str | None] = {}

    def image(self, aid: str | None) -> Image | None:
        if not aid or self.store is None:
            return None
        try:
            return self.store.get(aid, verify=False)
        except ArtifactError:
            return None

    def uri(self, aid: str | None) -> str | None:
        key = str(aid)
        if key not in self.cache:
            img = self.image(aid)
            self.cache[key] = None if img is None else data_uri(fit(img, THUMB_SIDE), 80)
        return self.cache[key]

    def tag(self, aid: str | None, alt: str) -> str:
        uri = self.uri(aid)
        if uri is None:
            return '<span class="sub">(no image)</span>'
        return f'<img class="thumb" alt="{escape(alt)}" src="{uri}">'


def _fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return escape(str(v))


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><tr>{th}</tr>{body}</table>'


def _compare(before: Image, after: Image) -> str:
    """The slider over a downscaled view, and 100 % crops of the most detailed region."""
    view = fit(after, VIEW_SIDE)
    vh, vw = view.shape[:2]
    before_view = resize(before, (vw, vh), "cubic")
    slider = (
        f'<div class="cmp" style="max-width:{vw}px"><img class="after" alt="output" src="{data_uri(view)}">'
        f'<img class="before" alt="input" src="{data_uri(before_view)}"><div class="bar"></div>'
        '<span class="lbl" style="left:6px">input (resized)</span><span class="lbl" style="right:6px">output</span>'
        '<input type="range" min="0" max="100" value="50" aria-label="before/after"></div>'
    )
    x, y, w, h = detail_box(after)
    oh, ow = after.shape[:2]
    ih, iw = before.shape[:2]
    bx0, by0 = int(x * iw / ow), int(y * ih / oh)
    bx1, by1 = max(bx0 + 1, round((x + w) * iw / ow)), max(by0 + 1, round((y + h) * ih / oh))
    src = before[by0:by1, bx0:bx1]
    crops = [("input, nearest", resize(src, (w, h), "nearest")), ("input, bicubic", resize(src, (w, h), "cubic")),
             ("output, 100 %", after[y : y + h, x : x + w])]
    figs = "".join(
        f'<figure><img alt="{escape(c)}" width="{w}" height="{h}" src="{data_uri(im, 90)}">'
        f"<figcaption>{escape(c)}</figcaption></figure>"
        for c, im in crops
    )
    note = f'<p class="sub">Detail region: x={x}, y={y}, {w}×{h} px of the output (most gradient energy).</p>'
    return f'{slider}{note}<div class="crops">{figs}</div>'


def _candidates(node: dict[str, Any], thumbs: _Thumbs) -> str:
    cands = node.get("candidates") or []
    keys = sorted({k for c in cands for k in (c.get("components") or {})})
    rows = []
    for c in cands:
        comps = c.get("components") or {}
        mark = " ✔" if c.get("tool") == node.get("tool") and c.get("score") is not None else ""
        rows.append([
            thumbs.tag(c.get("artifact"), str(c.get("tool"))),
            escape(str(c.get("tool"))) + mark,
            f'<span class="num" data-score="{c.get("score")}">{_fmt(c.get("score"))}</span>',
            *[f'<span class="num">{_fmt(comps.get(k))}</span>' for k in keys],
            _fmt(c.get("seconds"), 2),
            f'<span class="err">{escape(c["error"])}</span>' if c.get("error") else "",
        ])
    return '<div class="scroll">' + _table(["image", "tool", "Q", *keys, "seconds", "error"], rows, "cand") + "</div>"


def _node(tree: dict[str, Any], nid: str, on_path: set[str], final: str, thumbs: _Thumbs) -> str:
    n = tree[nid]
    if n.get("parent") is None:
        title, badges = "input", ""
    else:
        title = f'{escape(str(n.get("step")))} → {escape(str(n.get("tool")))} Q={_fmt(n.get("score"))}'
        ok = '<span class="badge ok">passed</span>'
        badges = '<span class="badge fail">below threshold</span>' if n.get("failed") else ok
    if nid == final:
        badges += '<span class="badge final">final image</span>'
    cls = "node" + (" failed" if n.get("failed") else "") + (" onpath" if nid in on_path else "")
    size = f'{n.get("width")}×{n.get("height")}'
    body = ""
    if n.get("candidates"):
        body = f'<details{" open" if nid in on_path else ""}><summary>{len(n["candidates"])} candidates</summary>'
        body += _candidates(n, thumbs) + "</details>"
    kids = "".join(_node(tree, c, on_path, final, thumbs) for c in (n.get("children") or {}).values())
    kids_html = f"<ul>{kids}</ul>" if kids else ""
    return (
        f'<li><div class="{cls}" data-node="{escape(nid)}">{thumbs.tag(n.get("artifact"), nid)} '
        f"<b>{escape(nid)}</b> {title} <span class=\"sub\">{size}</span>{badges}{body}</div>{kids_html}</li>"
    )


def _perception(p: dict[str, Any]) -> str:
    rows = [[
        escape(d["kind"]), "yes" if d.get("present") else "no", escape(str(d.get("severity"))),
        _fmt(d.get("confidence"), 2),
        "<br>".join(f"{escape(k)}={_fmt(v)}" for k, v in (d.get("evidence") or {}).items()),
    ] for d in p.get("degradations", [])]
    iqa = ", ".join(
        f'{escape(k)} = <span title="{escape(str(v.get("unavailable")))}">n/a</span>' if isinstance(v, dict)
        else f"{escape(k)} = {_fmt(v)}" for k, v in (p.get("iqa") or {}).items()
    ) or "–"
    notes = "".join(f'<p class="sub">{escape(str(p[k]))}</p>' for k in ("perceiver_note",) if p.get(k))
    return (
        f'<p>{escape(str(p.get("description", "")))}</p><p>Perceiver: {escape(str(p.get("perceiver")))}; '
        f'upscale factor ×{escape(str(p.get("factor")))}; IQA: {iqa}</p>{notes}'
        + _table(["degradation", "present", "severity", "confidence", "evidence"], rows)
    )


def _faces(faces: dict[str, Any], out: Image | None) -> str:
    html = f'<p>Status: {escape(str(faces.get("status")))} — {escape(str(faces.get("reason", "")))}</p>'
    rows = []
    for i, f in enumerate(faces.get("faces") or []):
        box = f.get("box") or []
        crop = ""
        if out is not None and len(box) == 4:
            x, y, w, h = (int(v) for v in box)
            part = out[max(0, y) : y + h, max(0, x) : x + w]
            if part.size:
                crop = f'<img class="thumb" alt="face {i}" src="{data_uri(fit(part, THUMB_SIDE), 80)}">'
        extra = {k: v for k, v in f.items() if k != "box"}
        rows.append([str(i), escape(str(box)), crop, escape(json.dumps(extra, default=str)) if extra else ""])
    return html + (_table(["#", "box [x, y, w, h]", "face", "details"], rows) if rows else "")


def _bars(values: dict[str, float]) -> str:
    top = max(values.values(), default=0.0) or 1.0
    rows = [[escape(k), f'<span class="num">{v:.3f}</span>',
             f'<span class="bar-h" style="width:{200 * v / top:.0f}px"></span>']
            for k, v in sorted(values.items(), key=lambda kv: -kv[1])]
    return _table(["name", "seconds", ""], rows)


def _runtime(rt: dict[str, Any]) -> str:
    """``device cuda:0 (NVIDIA …, fp16) · torch 2.x`` from the report's runtime record."""
    extra = ", ".join(x for x in (rt.get("gpu"), "fp16" if rt.get("half_precision") else None,
                                  f"{rt['threads']} threads" if rt.get("threads") else None) if x)
    dev = escape(str(rt.get("device") or rt.get("requested") or "unknown")) + (f" ({escape(extra)})" if extra else "")
    return f'device <span id="device">{dev}</span> · torch {escape(str(rt.get("torch")))}'


def render_html(report: dict[str, Any], store: ArtifactStore | None = None, output: Image | None = None) -> str:
    """The report page for a run report (``build_report``'s dict); images come from ``store``."""
    thumbs = _Thumbs(store)
    tree: dict[str, Any] = report.get("tree") or {}
    traj = report.get("trajectory") or []
    root = next((k for k, v in tree.items() if v.get("parent") is None), None)
    final = traj[-1]["node"] if traj else root
    on_path = {t["node"] for t in traj} | ({root} if root else set())
    before = thumbs.image(report["input"].get("artifact"))
    if output is None and final is not None:
        output = thumbs.image(tree[final].get("artifact"))
    inp, out = report["input"], report["output"]
    parts = [
        f"<h1>fourkagent run report</h1><p class=\"sub\">{escape(Path(str(inp.get('path'))).name)} "
        f"{inp['width']}×{inp['height']} → {escape(Path(str(out['path'])).name)} {out['size'][0]}×{out['size'][1]} · "
        f"profile {escape(str(report['profile'].get('name')))} · fourkagent {escape(str(report.get('fourkagent_version')))}"
        f" · {_runtime(report.get('runtime') or {})} · <span id=\"node-count\">?</span> tree nodes</p>",
        f"<pre>{escape(str(report.get('summary', '')))}</pre>",
        "<h2>Before / after</h2>",
        _compare(before, output) if before is not None and output is not None else "<p>(images unavailable)</p>",
        "<h2>Trajectory</h2>",
        _table(["#", "node", "step", "tool", "Q", "result"], [
            [str(i + 1), escape(t["node"]), escape(t["step"]), escape(str(t["tool"])),
             f'<span data-score="{t["score"]}">{_fmt(t["score"])}</span>', "below threshold" if t["failed"] else "passed"]
            for i, t in enumerate(traj)]) if traj else "<p>No step was needed.</p>",
        "<h2>Search tree (every node, accepted or failed)</h2>",
        f'<ul class="tree">{_node(tree, root, on_path, str(final), thumbs)}</ul>' if root else "",
        "<h2>Rollbacks</h2>",
        _table(["step", "from", "failed node", "best Q", "threshold", "reason", "action"], [
            [escape(r["step"]), escape(r["from_node"]), escape(str(r.get("failed_node"))), _fmt(r.get("best_score")),
             _fmt(r.get("threshold")), escape(r["reason"]), escape(r["action"])] for r in report.get("rollbacks", [])])
        + ("<p><b>Compromise:</b> every ordering failed; the run continued from the best image seen.</p>"
           if report.get("compromise") else "") if report.get("rollbacks") else "<p>No rollback.</p>",
        "<h2>Perception</h2>", _perception(report.get("perception") or {}),
        "<h2>Faces</h2>", _faces(report.get("faces") or {}, output),
        "<h2>Timings</h2>",
        f"<p>Time in nodes: {_fmt(report['timings'].get('total_nodes'), 2)} s</p><h3>Per node</h3>"
        + _bars(report["timings"].get("per_node", {})) + "<h3>Per tool</h3>" + _bars(report["timings"].get("per_tool", {})),
        "<h2>Profile</h2>",
        _table(["key", "value"], [[escape(k), escape(json.dumps(v, default=str))] for k, v in report["profile"].items()]),
    ]
    blob = json.dumps(report, default=str).replace("</", "<\\/")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>fourkagent report: {escape(Path(str(out['path'])).name)}</title><style>{CSS}</style></head><body>"
        + "\n".join(parts)
        + f'<script id="report-data" type="application/json">{blob}</script><script>{JS}</script></body></html>'
    )


def write_html_report(
    report: dict[str, Any], store: ArtifactStore | None, path: str | Path, output: Image | None = None
) -> Path:
    """Render and atomically write the HTML report; returns its path."""
    return atomic_write(path, render_html(report, store, output).encode("utf-8"))
