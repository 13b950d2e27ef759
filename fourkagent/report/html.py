"""Self-contained HTML run report: before/after, the tree of steps with crops, perception, timings.

The page has no external resource (inline CSS/JS, images as base64 JPEG), so it opens offline and
can be mailed. One detail region (a face, else the region that changed most: ``report/regions.py``) is
shown at 100 % in the output and, mapped by size, in every candidate of every step, so experts can be
compared on the same pixels; a legend explains each score column (``report/legend.py``); text is written as
text (escaped, unicode kept), never as JSON. Images are JPEG at bounded sizes, counts and bytes
(``report/images.py``), so a 4K run's report stays under 0.5 MB. The report JSON is embedded verbatim
(``<script id="report-data" type="application/json">``) so the page carries the same data.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from fourkagent.imageio import atomic_write
from fourkagent.imaging import Image, resize
from fourkagent.report.images import (
    BUDGET,
    CROP_QUALITY,
    CROP_SIDE,
    DETAIL_MAX,
    THUMB_QUALITY,
    THUMB_SIDE,
    VIEW_QUALITY,
    VIEW_SIDE,
    Crops,
    Images,
    data_uri,
    fit,
    fitted_uri,
    priority,
)
from fourkagent.report.legend import FACE_COLUMNS, STEP_COLUMNS, legend_html
from fourkagent.report.markup import CSS, JS, fmt, plain, table
from fourkagent.report.regions import Box, Region, detail_box, faces_in
from fourkagent.state.artifacts import ArtifactStore
from fourkagent.state.records import Tree, TreeNode


def html_path_for(output_path: str | Path) -> Path:
    """``<output stem>.report.html`` beside the output."""
    p = Path(output_path)
    return p.with_name(f"{p.stem}.report.html")


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


def _score_keys(tree: Tree) -> list[str]:
    return sorted({k for n in tree.values() for c in n.get("candidates") or [] for k in (c.get("components") or {})})


def _candidates(nid: str, node: TreeNode, crops: Crops) -> str:
    cands = node.get("candidates") or []
    keys = sorted({k for c in cands for k in (c.get("components") or {})})
    rows = []
    for c in cands:
        comps = c.get("components") or {}
        mark = " ✔" if c.get("tool") == node.get("tool") and c.get("score") is not None else ""
        rows.append([
            escape(str(c.get("tool"))) + mark,
            f'<span class="num" data-score="{c.get("score")}">{fmt(c.get("score"))}</span>',
            *[f'<span class="num">{fmt(comps.get(k))}</span>' for k in keys],
            fmt(c.get("seconds"), 2), fmt(c.get("predicted_s"), 2),
            f'<span class="err">{escape(str(c["error"]))}</span>' if c.get("error") else "",
        ])
    head = ["tool", "Q", *keys, "seconds", "predicted s", "error"]
    return crops.strip(nid, node) + '<div class="scroll">' + table(head, rows, "cand", STEP_COLUMNS) + "</div>"


def _node(tree: Tree, nid: str, on_path: set[str], final: str, images: Images, crops: Crops) -> str:
    n = tree[nid]
    if n.get("parent") is None:
        title, badges = "input", ""
    else:
        title = f'{escape(str(n.get("step")))} → {escape(str(n.get("tool") or "kept the input"))} Q={fmt(n.get("score"))}'
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
        fmt(d.get("confidence"), 2),
        "<br>".join(f"{escape(k)}={fmt(v)}" for k, v in (d.get("evidence") or {}).items()),
    ] for d in p.get("degradations", [])]
    iqa = ", ".join(
        f'{escape(k)} = <span title="{escape(str(v.get("unavailable")))}">n/a</span>' if isinstance(v, dict)
        else f"{escape(k)} = {fmt(v)}" for k, v in (p.get("iqa") or {}).items()
    ) or "–"
    notes = "".join(f'<p class="sub">{escape(str(p[k]))}</p>' for k in ("perceiver_note",) if p.get(k))
    return (
        f'<p id="description">{escape(str(p.get("description", "")))}</p><p>Perceiver: {escape(str(p.get("perceiver")))}; '
        f'upscale factor ×{escape(str(p.get("factor")))}; IQA: {iqa}</p>{notes}'
        + table(["degradation", "present", "severity", "confidence", "evidence"], rows)
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
        details = "<br>".join(f"{escape(k)}: {plain(f[k])}" for k in _FACE_SHOWN if f.get(k) is not None)
        rows.append([str(i), plain(box), crop, details])
        cands = f.get("candidates") or []
        if cands:
            ckeys = list(dict.fromkeys(k for c in cands for k in (c.get("components") or {})))
            keys += ckeys
            crow = [[escape(str(c.get("expert"))), escape(str(c.get("kind"))), fmt(c.get("score")),
                     *[fmt((c.get("components") or {}).get(k)) for k in ckeys], fmt(c.get("seconds"), 2),
                     escape(str(c.get("rejected") or c.get("error") or ""))] for c in cands]
            tables.append(f"<h3>Face {i}: candidates</h3>" + '<div class="scroll">' + table(
                ["expert", "kind", "score", *ckeys, "seconds", "rejected"], crow, "cand", FACE_COLUMNS) + "</div>")
    if not rows:
        return html
    legend = legend_html(keys, FACE_COLUMNS, "What the face score columns mean") if tables else ""
    return html + table(["#", "box [x, y, w, h]", "face", "details"], rows) + "".join(tables) + legend


def _bars(values: dict[str, float]) -> str:
    top = max(values.values(), default=0.0) or 1.0
    rows = [[escape(k), f'<span class="num">{v:.3f}</span>',
             f'<span class="bar-h" style="width:{200 * v / top:.0f}px"></span>']
            for k, v in sorted(values.items(), key=lambda kv: -kv[1])]
    return table(["name", "seconds", ""], rows)


def _dropped(timings: dict[str, Any]) -> str:
    """The time budget's use and the experts dropped (by the budget or Fast4K), with their predicted seconds."""
    b = timings.get("budget") or {}
    head = (f"<p>Time budget: {fmt(b.get('predicted_spent_s'), 1)} of {fmt(b.get('time_budget_s'), 0)} s predicted "
            f"for the experts (costs measured on {escape(str(b.get('costs_measured_on') or 'an unnamed machine'))})."
            "</p>" if b.get("time_budget_s") is not None else "")
    rows = [[escape(d["step"]), escape(d["tool"]), escape(d["rule"]), fmt(d.get("predicted_s"), 1),
             fmt(d.get("share_s"), 1), fmt(d.get("share_left_s"), 1), fmt(d.get("budget_left_s"), 1)]
            for d in timings.get("dropped") or []]
    body = table(["step", "tool", "rule", "predicted s", "step share / limit s", "share left s", "budget left s"], rows,
                 "dropped") if rows else "<p>No expert was dropped.</p>"
    return "<h3>Dropped experts</h3>" + head + body


def _runtime(rt: dict[str, Any]) -> str:
    """``device cuda:0 (NVIDIA …, fp16) · torch 2.x`` from the report's runtime record."""
    extra = ", ".join(x for x in (rt.get("gpu"), "fp16" if rt.get("half_precision") else None,
                                  f"{rt['threads']} threads" if rt.get("threads") else None) if x)
    dev = escape(str(rt.get("device") or rt.get("requested") or "unknown")) + (f" ({escape(extra)})" if extra else "")
    return f'device <span id="device">{dev}</span> · torch {escape(str(rt.get("torch")))}'


def render_html(report: dict[str, Any], store: ArtifactStore | None = None, output: Image | None = None) -> str:
    """The report page for a run report (``build_report``'s dict); images come from ``store``. ``output``: the
    written output (the input's size × factor); without it the final tree image is shown."""
    images = Images(store)
    tree: Tree = report.get("tree") or {}
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
    order = priority(tree, traj)
    images.prepare_thumbs(tree, order)
    crops = Crops(images, region, (work[0], work[1]))
    crops.prepare(tree, order)
    legend = legend_html(["Q", *_score_keys(tree), "seconds", "predicted s"], STEP_COLUMNS,
                         "What the score columns mean")
    parts = [
        f"<h1>fourkagent run report</h1><p class=\"sub\">{escape(Path(str(inp.get('path'))).name)} "
        f"{inp['width']}×{inp['height']} → {escape(Path(str(out['path'])).name)} {out['size'][0]}×{out['size'][1]} · "
        f"profile {escape(str(report['profile'].get('name')))} · fourkagent {escape(str(report.get('fourkagent_version')))}"
        f" · {_runtime(report.get('runtime') or {})} · <span id=\"node-count\">?</span> tree nodes</p>",
        f"<pre>{escape(str(report.get('summary', '')))}</pre>",
        "<h2>Before / after</h2>",
        compare,
        "<h2>Trajectory</h2>",
        table(["#", "node", "step", "tool", "Q", "result"], [
            [str(i + 1), escape(t["node"]), escape(t["step"]), escape(str(t["tool"] or "kept the input")),
             f'<span data-score="{t["score"]}">{fmt(t["score"])}</span>', "below threshold" if t["failed"] else "passed"]
            for i, t in enumerate(traj)], help=STEP_COLUMNS) if traj else "<p>No step was needed.</p>",
        "<h2>Search tree (every node, accepted or failed)</h2>",
        legend,
        f'<ul class="tree">{_node(tree, root, on_path, str(final), images, crops)}</ul>' if root else "",
        "<h2>Rollbacks</h2>",
        table(["step", "from", "failed node", "best Q", "threshold", "reason", "action"], [
            [escape(r["step"]), escape(r["from_node"]), escape(str(r.get("failed_node"))), fmt(r.get("best_score")),
             fmt(r.get("threshold")), escape(r["reason"]), escape(r["action"])] for r in report.get("rollbacks", [])])
        + ("<p><b>Compromise:</b> every ordering failed; the run continued from the best image seen.</p>"
           if report.get("compromise") else "") if report.get("rollbacks") else "<p>No rollback.</p>",
        "<h2>Perception</h2>", _perception(report.get("perception") or {}),
        "<h2>Faces</h2>", _faces(faces, output, face_scale),
        "<h2>Timings</h2>",
        f"<p>Time in nodes: {fmt(report['timings'].get('total_nodes'), 2)} s</p><h3>Per node</h3>"
        + _bars(report["timings"].get("per_node", {}))
        + "<h3>Per tool</h3>" + _bars(report["timings"].get("per_tool", {})) + _dropped(report["timings"]),
        "<h2>Profile</h2>",
        table(["key", "value"], [[escape(k), plain(v)] for k, v in report["profile"].items()], "profile"),
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
