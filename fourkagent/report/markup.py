"""The report page's markup: its inline CSS and JS, and values and tables as escaped HTML text."""

from __future__ import annotations

from html import escape
from typing import Any

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


def fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return escape(str(v))


def plain(v: Any) -> str:
    """A value as escaped text (not JSON): strings as they are, lists comma-separated, nested mappings ``k: v``."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, dict):
        return "; ".join(f"{escape(str(k))}: {plain(x)}" for k, x in v.items()) or "–"
    if isinstance(v, (list, tuple)):
        return ", ".join(plain(x) for x in v) or "–"
    return escape(str(v))


def table(head: list[str], rows: list[list[str]], cls: str = "", help: dict[str, str] | None = None) -> str:
    def th(h: str) -> str:
        tip = (help or {}).get(h)
        return f'<th title="{escape(tip)}">{escape(h)}</th>' if tip else f"<th>{escape(h)}</th>"

    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><tr>{"".join(th(h) for h in head)}</tr>{body}</table>'
