"""Self-contained HTML run report: before/after, the tree of steps with crops, perception, timings.

The page has no external resource (inline CSS/JS, images as base64 JPEG), so it opens offline and
can be mailed. One detail region (a face, else the region that changed most: ``report/regions.py``) is
shown at 100 % in the output and, mapped by size, in every candidate of every step, so experts can be
compared on the same pixels; a legend explains each score column (``report/legend.py``); text is written as
text (escaped, unicode kept), never as JSON. Images are JPEG at bounded sizes, counts and bytes (``BUDGET``),
so a 4K run's report stays under 0.5 MB. The report JSON is embedded verbatim
(``<script id="report-data" type="application/json">``) so the page carries the same data.
"""

from __future__ import annotations

import base64
import io
import json
from html import escape
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from fourkagent.errors import ArtifactError
from fourkagent.imageio import atomic_write
from fourkagent.imaging import Image, resize, to_uint8
from fourkagent.report.legend import FACE_COLUMNS, STEP_COLUMNS, legend_html
from fourkagent.report.regions import Box, Region, detail_box, faces_in
from fourkagent.state.artifacts import ArtifactStore

THUMB_SIDE = 120
"""Longest side of every search-tree node thumbnail (the whole image)."""
VIEW_SIDE = 960
"""Longest side of the before/after slider images."""
CROP_SIDE, DETAIL_MAX = 256, 360
"""Side of the 100 % detail crops of the output; a face's window grows with the face up to ``DETAIL_MAX``."""
CAND_MIN, CAND_MAX = 64, 128
"""Side range of each step's candidate crops: the detail region mapped into the step's image, grown to
``CAND_MIN`` around its centre on small images and cut to ``CAND_MAX`` around it on large ones."""
CAND_SHOW = 128
"""Candidate crops smaller than this are shown enlarged by the integer factor that reaches it (pixelated: the
same 100 % pixels, larger on screen)."""
MAX_CAND_CROPS = 48
"""At most this many candidate crops are embedded (the accepted path's steps first)."""
VIEW_QUALITY, CROP_QUALITY, CAND_QUALITY, THUMB_QUALITY = 80, 85, 80, 70
"""Starting JPEG qualities of the slider, the detail crops, the candidate crops and the node thumbnails."""
BUDGET: dict[str, int] = {"after": 130_000, "before": 60_000, "detail": 30_000, "candidates": 120_000,
                          "thumbs": 50_000}
"""Bytes (base64) allowed per image kind: the slider's output and input views and each detail crop are
re-encoded at lower quality (the views also smaller) until they fit; candidate crops and node thumbnails stop
being embedded once their pool is spent (the accepted path's first). With the embedded JSON and the tables,
a 4K run's page stays under 0.5 MB."""

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:16px;color:#1d2430;background:#f6f7f9}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;border-bottom:1px solid #ccd;padding-bottom:4px;margin-top:28px}
.sub{color:#556}pre{background:#fff;border:1px solid #dde;padding:8px;overflow:auto}
table{border-collapse:collapse;background:#fff;margin:6px 0}
td,th{border:1px solid #dde;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#eef1f5}.num{text-align:right;font-variant-numeric:tabular-nums}
.cmp{position:relative;display:inline-block;line-height:0;user-select:none}
.cmp img{display:block;max-width:100%}
.cmp .before{position:absolute;top:0;left:0;width:100%;height:100%;clip-path:inset(0 50% 0 0)}
.cmp .bar{position:absolute;top:0;bottom:0;left:50%;width:2px;background:#fff;box-shadow:0 0 3px #000}
.cmp input{position:absolute;left:0;right:0;bottom:6px;width:100%;margin:0}
.lbl{position:absolute;top:6px;background:#000a;color:#fff;padding:2px 6px;font-size:12px;line-height:1.3}
.crops{display:flex;gap:10px;flex-wrap:wrap;align-items:flex-start}.crops figure{margin:0}
.crops img{image-rendering:pixelated;border:1px solid #bbc}
figcaption{font-size:12px;color:#556}
ul.tree,ul.tree ul{list-style:none;padding-left:22px;border-left:2px solid #ccd;margin:4px 0}
ul.tree{border-left:none;padding-left:0}
.node{background:#fff;border:1px solid #ccd;border-radius:6px;padding:6px 8px;margin:6px 0;display:inline-block}
.node.failed{border-color:#d66;background:#fff6f6}.node.onpath{border-color:#3a8a4a;box-shadow:0 0 0 2px #3a8a4a55}
.badge{display:inline-block;border-radius:3px;padding:0 5px;font-size:12px;margin-left:4px;color:#fff;background:#778}
.badge.ok{background:#3a8a4a}.badge.fail{background:#c44}.badge.final{background:#2a5db0}
.thumb{max-width:120px;max-height:120px;border:1px solid #bbc;vertical-align:middle}
.cand .best td{background:#eef8ee}.err{color:#b22}.bar-h{background:#7a9cc6;height:10px;display:inline-block}
details{margin:4px 0}summary{cursor:pointer}.scroll{overflow-x:auto;max-width:100%}
img.crop{image-rendering:pixelated;border:1px solid #bbc;vertical-align:middle}
dl.legend{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:4px 0 8px;font-size:13px}
dl.legend dt{font-family:ui-monospace,monospace;font-weight:600}dl.legend dd{margin:0}
th[title]{text-decoration:underline dotted;cursor:help}
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


def fitted_uri(img: Image, quality: int, max_chars: int, shrink: bool = False) -> str:
    """:func:`data_uri` at ``quality``, stepped down to 50 until it takes at most ``max_chars``; with
    ``shrink`` the image is then made smaller (a view, not a 100 % crop) until it fits."""
    while True:
        for q in dict.fromkeys((quality, quality - 10, quality - 20, 50)):
            uri = data_uri(img, max(q, 50))
            if len(uri) <= max_chars:
                return uri
        if not shrink or max(img.shape[:2]) <= 64:
            return uri
        img = fit(img, round(max(img.shape[:2]) * 0.8))


def _priority(tree: dict[str, Any], traj: list[dict[str, Any]]) -> list[str]:
    """Node ids, the accepted path's first (root, then the trajectory), then the others in tree order."""
    root = [k for k, v in tree.items() if v.get("parent") is None]
    return list(dict.fromkeys(root + [t["node"] for t in traj if t["node"] in tree] + list(tree)))


class _Images:
    """Artifacts of the run store, loaded on demand (a missing artifact gives ``None``), and the node thumbnails."""

    def __init__(self, store: ArtifactStore | None) -> None:
        self.store = store
        self.thumbs: dict[str, str] = {}

    def image(self, aid: str | None) -> Image | None:
        if not aid or self.store is None:
            return None
        try:
            return self.store.get(aid, verify=False)
        except ArtifactError:
            return None

    def prepare_thumbs(self, tree: dict[str, Any], order: list[str]) -> None:
        """Encode the node thumbnails in ``order`` until the ``thumbs`` budget is spent."""
        spent = 0
        for nid in order:
            img = self.image(tree[nid].get("artifact")) if spent < BUDGET["thumbs"] else None
            if img is not None:
                self.thumbs[nid] = data_uri(fit(img, THUMB_SIDE), THUMB_QUALITY)
                spent += len(self.thumbs[nid])

    def tag(self, nid: str, alt: str) -> str:
        uri = self.thumbs.get(nid)
        if uri is None:
            return '<span class="sub">(no thumbnail)</span>'
        return f'<img class="thumb" alt="{escape(alt)}" src="{uri}">'


class _Crops:
    """The detail region in every candidate of every step: one box per image size, the crops encoded in
    priority order until ``MAX_CAND_CROPS`` or the ``candidates`` budget is reached."""

    def __init__(self, images: _Images, region: Region | None, work: tuple[int, int]) -> None:
        self.images, self.region, self.work = images, region, work
        self.figs: dict[tuple[str, int], str] = {}
        self.skipped = 0

    def box(self, size: tuple[int, int]) -> Box | None:
        """The crop box in an image of ``size`` (width, height) of the run's working frame."""
        if self.region is None:
            return None
        return self.region.box_in(size, self.work, CAND_MIN, CAND_MAX)

    def _crop(self, node: dict[str, Any], cand: dict[str, Any]) -> Image | None:
        img = self.images.image(cand.get("artifact"))
        box = self.box((int(node["width"]), int(node["height"])))
        if img is None or box is None:
            return None
        x, y, w, h = box
        ih, iw = img.shape[:2]
        if (iw, ih) != (int(node["width"]), int(node["height"])):  # an odd-sized candidate: same region, same size
            cx, cy, cw, ch = self.box((iw, ih)) or box
            return resize(img[cy : cy + ch, cx : cx + cw], (w, h), "area")
        return img[y : y + h, x : x + w]

    def prepare(self, tree: dict[str, Any], order: list[str]) -> None:
        spent = 0
        for nid in order:
            node = tree[nid]
            for i, c in enumerate(node.get("candidates") or []):
                if not c.get("artifact"):
                    continue
                if len(self.figs) >= MAX_CAND_CROPS or spent >= BUDGET["candidates"]:
                    self.skipped += 1
                    continue
                crop = self._crop(node, c)
                if crop is None:
                    continue
                h, w = crop.shape[:2]
                k = max(1, -(-CAND_SHOW // max(w, h)))
                uri = data_uri(crop, CAND_QUALITY)
                spent += len(uri)
                mark = " ✔" if c.get("tool") == node.get("tool") and c.get("score") is not None else ""
                self.figs[(nid, i)] = (
                    f'<figure><img class="crop" alt="{escape(str(c.get("tool")))} crop" width="{w * k}" '
                    f'height="{h * k}" data-w="{w}" data-h="{h}" src="{uri}"><figcaption>'
                    f'{escape(str(c.get("tool")))}{mark}<br>Q {_fmt(c.get("score"))}</figcaption></figure>'
                )

    def strip(self, nid: str, node: dict[str, Any]) -> str:
        """The note on the crop box and the candidates' crops side by side."""
        cands = node.get("candidates") or []
        box = self.box((int(node["width"]), int(node["height"])))
        if box is None or not cands:
            return ""
        x, y, w, h = box
        k = max(1, -(-CAND_SHOW // max(w, h)))
        shown = f", shown ×{k}" if k > 1 else ""
        figs = "".join(self.figs.get((nid, i), "") for i in range(len(cands)))
        missing = sum(1 for i, c in enumerate(cands) if c.get("artifact") and (nid, i) not in self.figs)
        more = (f" {missing} not embedded (report size limit: at most {MAX_CAND_CROPS} crops, "
                f"{BUDGET['candidates'] // 1000} kB)." if missing else "")
        return (f'<p class="sub crop-note">Detail region in this step: x={x}, y={y}, {w}×{h} px of its '
                f'{node["width"]}×{node["height"]} images at 100 %{shown}, the same pixels for every candidate.'
                f'{more}</p><div class="crops cand-crops" data-node="{escape(nid)}">{figs}</div>')


def _fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return escape(str(v))


def _plain(v: Any) -> str:
    """A value as escaped text (not JSON): strings as they are, lists comma-separated, nested mappings ``k: v``."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, dict):
        return "; ".join(f"{escape(str(k))}: {_plain(x)}" for k, x in v.items()) or "–"
    if isinstance(v, (list, tuple)):
        return ", ".join(_plain(x) for x in v) or "–"
    return escape(str(v))


def _table(head: list[str], rows: list[list[str]], cls: str = "", help: dict[str, str] | None = None) -> str:
    def th(h: str) -> str:
        tip = (help or {}).get(h)
        return f'<th title="{escape(tip)}">{escape(h)}</th>' if tip else f"<th>{escape(h)}</th>"

    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><tr>{"".join(th(h) for h in head)}</tr>{body}</table>'


def _compare(before: Image, after: Image, box: Box, extent: tuple[float, float], reason: str) -> str:
    """The slider over a downscaled view, and 100 % crops of the detail region (``box``, in ``after``'s pixels;
    ``before`` and ``after`` both span ``extent`` input pixels)."""
    view = fit(after, VIEW_SIDE)
    vh, vw = view.shape[:2]
    # the input at its own size (at most the view's): the browser stretches it, no upscaled noise to encode
    before_uri = fitted_uri(fit(before, max(vw, vh)), VIEW_QUALITY, BUDGET["before"], shrink=True)
    slider = (
        f'<div class="cmp" style="max-width:{vw}px"><img class="after" alt="output" width="{vw}" height="{vh}" '
        f'src="{fitted_uri(view, VIEW_QUALITY, BUDGET["after"], shrink=True)}">'
        f'<img class="before" alt="input" src="{before_uri}"><div class="bar"></div>'
        '<span class="lbl" style="left:6px">input (resized)</span><span class="lbl" style="right:6px">output</span>'
        '<input type="range" min="0" max="100" value="50" aria-label="before/after"></div>'
    )
    x, y, w, h = box
    oh, ow = after.shape[:2]
    ih, iw = before.shape[:2]
    bx, by, bw, bh = Region.from_box(box, (ow, oh), extent).box_in((iw, ih), extent)
    src = before[by : by + bh, bx : bx + bw]
    crops = [("input, nearest", resize(src, (w, h), "nearest")), ("input, bicubic", resize(src, (w, h), "cubic")),
             ("output, 100 %", after[y : y + h, x : x + w])]
    figs = "".join(
        f'<figure><img alt="{escape(c)}" width="{w}" height="{h}" '
        f'src="{fitted_uri(im, CROP_QUALITY, BUDGET["detail"])}"><figcaption>{escape(c)}</figcaption></figure>'
        for c, im in crops
    )
    note = (f'<p class="sub" id="detail-region" data-box="{x},{y},{w},{h}">Detail region: x={x}, y={y}, {w}×{h} px '
            f"of the output — {escape(reason)}. Each step's candidates below show the same region.</p>")
    return f'{slider}{note}<div class="crops">{figs}</div>'


def _score_keys(tree: dict[str, Any]) -> list[str]:
    return sorted({k for n in tree.values() for c in n.get("candidates") or [] for k in (c.get("components") or {})})


def _candidates(nid: str, node: dict[str, Any], crops: _Crops) -> str:
    cands = node.get("candidates") or []
    keys = sorted({k for c in cands for k in (c.get("components") or {})})
    rows = []
    for c in cands:
        comps = c.get("components") or {}
        mark = " ✔" if c.get("tool") == node.get("tool") and c.get("score") is not None else ""
        rows.append([
            escape(str(c.get("tool"))) + mark,
            f'<span class="num" data-score="{c.get("score")}">{_fmt(c.get("score"))}</span>',
            *[f'<span class="num">{_fmt(comps.get(k))}</span>' for k in keys],
            _fmt(c.get("seconds"), 2),
            f'<span class="err">{escape(c["error"])}</span>' if c.get("error") else "",
        ])
    head = ["tool", "Q", *keys, "seconds", "error"]
    return crops.strip(nid, node) + '<div class="scroll">' + _table(head, rows, "cand", STEP_COLUMNS) + "</div>"


def _node(tree: dict[str, Any], nid: str, on_path: set[str], final: str, images: _Images, crops: _Crops) -> str:
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
        body += _candidates(nid, n, crops) + "</details>"
    kids = "".join(_node(tree, c, on_path, final, images, crops) for c in (n.get("children") or {}).values())
    kids_html = f"<ul>{kids}</ul>" if kids else ""
    return (
        f'<li><div class="{cls}" data-node="{escape(nid)}">{images.tag(nid, nid)} '
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
        f'<p id="description">{escape(str(p.get("description", "")))}</p><p>Perceiver: {escape(str(p.get("perceiver")))}; '
        f'upscale factor ×{escape(str(p.get("factor")))}; IQA: {iqa}</p>{notes}'
        + _table(["degradation", "present", "severity", "confidence", "evidence"], rows)
    )


_FACE_SHOWN = ("action", "reason", "chosen", "score", "identity_drift_deg", "identity_limit_deg", "tilt_deg",
               "native_side", "identity_note", "paste_region", "seconds", "detector")


def _faces(faces: dict[str, Any], out: Image | None, scale: tuple[float, float]) -> str:
    """The face stage: each face's crop (boxes are in the restored image; ``scale`` maps them into ``out``),
    what happened to it, and its candidates' scores with a legend."""
    html = f'<p>Status: {escape(str(faces.get("status")))} — {escape(str(faces.get("reason", "")))}</p>'
    if faces.get("note"):
        html += f'<p class="sub">{escape(str(faces["note"]))}</p>'
    rows, tables, keys = [], [], ["score"]
    for i, f in enumerate(faces.get("faces") or []):
        box = f.get("box") or []
        crop = ""
        if out is not None and len(box) == 4:
            x, y = round(box[0] * scale[0]), round(box[1] * scale[1])
            w, h = round(box[2] * scale[0]), round(box[3] * scale[1])
            part = out[max(0, y) : y + h, max(0, x) : x + w]
            if part.size:
                crop = f'<img class="thumb" alt="face {i}" src="{data_uri(fit(part, THUMB_SIDE), THUMB_QUALITY)}">'
        details = "<br>".join(f"{escape(k)}: {_plain(f[k])}" for k in _FACE_SHOWN if f.get(k) is not None)
        rows.append([str(i), _plain(box), crop, details])
        cands = f.get("candidates") or []
        if cands:
            ckeys = list(dict.fromkeys(k for c in cands for k in (c.get("components") or {})))
            keys += ckeys
            crow = [[escape(str(c.get("expert"))), escape(str(c.get("kind"))), _fmt(c.get("score")),
                     *[_fmt((c.get("components") or {}).get(k)) for k in ckeys], _fmt(c.get("seconds"), 2),
                     escape(str(c.get("rejected") or c.get("error") or ""))] for c in cands]
            tables.append(f"<h3>Face {i}: candidates</h3>" + '<div class="scroll">' + _table(
                ["expert", "kind", "score", *ckeys, "seconds", "rejected"], crow, "cand", FACE_COLUMNS) + "</div>")
    if not rows:
        return html
    legend = legend_html(keys, FACE_COLUMNS, "What the face score columns mean") if tables else ""
    return html + _table(["#", "box [x, y, w, h]", "face", "details"], rows) + "".join(tables) + legend


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
    """The report page for a run report (``build_report``'s dict); images come from ``store``. ``output``: the
    written output (the input's size × factor); without it the final tree image is shown."""
    images = _Images(store)
    tree: dict[str, Any] = report.get("tree") or {}
    traj = report.get("trajectory") or []
    root = next((k for k, v in tree.items() if v.get("parent") is None), None)
    final = traj[-1]["node"] if traj else root
    on_path = {t["node"] for t in traj} | ({root} if root else set())
    inp, out = report["input"], report["output"]
    size_in = (int(inp["width"]), int(inp["height"]))
    work = tuple(int(v) for v in inp.get("work_size") or size_in)
    extent: tuple[int, int] = size_in  # input pixels the shown output spans (the padding is cropped off)
    if output is None and final is not None:
        output = images.image(tree[final].get("artifact"))
        extent = (work[0], work[1])
    before = images.image(inp.get("artifact"))  # the working frame: the input, padded if it was tiny
    if before is not None:
        bh, bw = before.shape[:2]
        before = before[: max(1, round(extent[1] * bh / work[1])), : max(1, round(extent[0] * bw / work[0]))]
    faces = report.get("faces") or {}
    face_scale = (1.0, 1.0)
    region: Region | None = None
    compare = "<p>(images unavailable)</p>"
    if output is not None:
        oh, ow = output.shape[:2]
        fw, fh = (tree[final]["width"], tree[final]["height"]) if final in tree else (ow, oh)
        # face boxes are in the restored image (the working frame at the final size): into the output's pixels
        face_scale = (ow / extent[0] * work[0] / fw, oh / extent[1] * work[1] / fh)
        box, reason = detail_box(before, output, CROP_SIDE, faces_in(faces.get("faces") or [], *face_scale),
                                 DETAIL_MAX)
        region = Region.from_box(box, (ow, oh), extent, reason)
        if before is not None:
            compare = _compare(before, output, box, extent, reason)
    order = _priority(tree, traj)
    images.prepare_thumbs(tree, order)
    crops = _Crops(images, region, (work[0], work[1]))
    crops.prepare(tree, order)
    legend = legend_html(["Q", *_score_keys(tree), "seconds"], STEP_COLUMNS, "What the score columns mean")
    parts = [
        f"<h1>fourkagent run report</h1><p class=\"sub\">{escape(Path(str(inp.get('path'))).name)} "
        f"{inp['width']}×{inp['height']} → {escape(Path(str(out['path'])).name)} {out['size'][0]}×{out['size'][1]} · "
        f"profile {escape(str(report['profile'].get('name')))} · fourkagent {escape(str(report.get('fourkagent_version')))}"
        f" · {_runtime(report.get('runtime') or {})} · <span id=\"node-count\">?</span> tree nodes</p>",
        f"<pre>{escape(str(report.get('summary', '')))}</pre>",
        "<h2>Before / after</h2>",
        compare,
        "<h2>Trajectory</h2>",
        _table(["#", "node", "step", "tool", "Q", "result"], [
            [str(i + 1), escape(t["node"]), escape(t["step"]), escape(str(t["tool"])),
             f'<span data-score="{t["score"]}">{_fmt(t["score"])}</span>', "below threshold" if t["failed"] else "passed"]
            for i, t in enumerate(traj)], help=STEP_COLUMNS) if traj else "<p>No step was needed.</p>",
        "<h2>Search tree (every node, accepted or failed)</h2>",
        legend,
        f'<ul class="tree">{_node(tree, root, on_path, str(final), images, crops)}</ul>' if root else "",
        "<h2>Rollbacks</h2>",
        _table(["step", "from", "failed node", "best Q", "threshold", "reason", "action"], [
            [escape(r["step"]), escape(r["from_node"]), escape(str(r.get("failed_node"))), _fmt(r.get("best_score")),
             _fmt(r.get("threshold")), escape(r["reason"]), escape(r["action"])] for r in report.get("rollbacks", [])])
        + ("<p><b>Compromise:</b> every ordering failed; the run continued from the best image seen.</p>"
           if report.get("compromise") else "") if report.get("rollbacks") else "<p>No rollback.</p>",
        "<h2>Perception</h2>", _perception(report.get("perception") or {}),
        "<h2>Faces</h2>", _faces(faces, output, face_scale),
        "<h2>Timings</h2>",
        f"<p>Time in nodes: {_fmt(report['timings'].get('total_nodes'), 2)} s</p><h3>Per node</h3>"
        + _bars(report["timings"].get("per_node", {})) + "<h3>Per tool</h3>" + _bars(report["timings"].get("per_tool", {})),
        "<h2>Profile</h2>",
        _table(["key", "value"], [[escape(k), _plain(v)] for k, v in report["profile"].items()], "profile"),
    ]
    blob = json.dumps(report, default=str, ensure_ascii=False).replace("</", "<\\/")
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
