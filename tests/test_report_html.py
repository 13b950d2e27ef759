"""The HTML run report: produced for real runs, complete, light, and rendered by headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from fourkagent import degrade
from fourkagent.context import Context
from fourkagent.imageio import save_image
from fourkagent.imaging import as_image
from fourkagent.report.html import THUMB_SIDE, detail_box, html_path_for
from fourkagent.runner import run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Two real runs on a noisy 96² crop: a normal AerSR-s4-F run and one forced to roll back."""
    from skimage import data

    d = tmp_path_factory.mktemp("html")
    clean = as_image(data.astronaut())[32:224, 160:352]
    src = d / "noisy.png"
    save_image(degrade.add_noise(degrade.downscale(clean, 2), 15, seed=3), src)
    ctx = Context(home=str(d / "home"), iqa_metrics="niqe")  # NIQE only: keeps torch/pyiqa out (time)
    out: dict[str, dict[str, Any]] = {}
    for name, opts in (("normal", {}), ("rollback", {"threshold": 1.5})):
        res = run(str(src), str(d / f"{name}.png"), "AerSR-s4-F", options=opts, context=ctx)
        report = json.loads(Path(res["report_path"]).read_text())
        html_path = html_path_for(res["output_path"])
        out[name] = {"report": report, "html_path": html_path, "html": html_path.read_text(encoding="utf-8")}
    return out


def _fmt(v: float) -> str:
    return f"{v:.3f}"


def test_html_beside_output_with_every_step_and_score(runs: dict[str, dict[str, Any]]) -> None:
    r = runs["normal"]
    report, html = r["report"], r["html"]
    assert r["html_path"].name == "normal.report.html" and report["report_html"] == str(r["html_path"])
    assert len(report["trajectory"]) >= 2
    for t in report["trajectory"]:
        assert f'data-node="{t["node"]}"' in html and t["step"] in html and t["tool"] in html
    for nid, node in report["tree"].items():
        assert f'data-node="{nid}"' in html
        for c in node.get("candidates", []):
            assert c["score"] is not None
            assert f'data-score="{c["score"]}"' in html and _fmt(c["score"]) in html
            for v in c["components"].values():
                assert _fmt(v) in html
    embedded = re.search(r'<script id="report-data" type="application/json">(.*?)</script>', html, re.S)
    assert embedded is not None
    assert json.loads(embedded.group(1).replace("<\\/", "</"))["tree"] == report["tree"]
    for d in report["perception"]["degradations"]:
        assert d["kind"] in html
    for node in report["timings"]["per_node"]:
        assert node in html
    assert 'type="range"' in html and "http://" not in html and "https://" not in html  # self-contained


def test_thumbnails_are_small_and_report_light(runs: dict[str, dict[str, Any]]) -> None:
    html = runs["normal"]["html"]
    thumbs = re.findall(r'<img class="thumb" alt="[^"]*" src="data:image/jpeg;base64,([^"]+)"', html)
    n_cands = sum(len(n.get("candidates", [])) for n in runs["normal"]["report"]["tree"].values())
    assert len(thumbs) >= n_cands + len(runs["normal"]["report"]["tree"])
    for b64 in thumbs:
        with PILImage.open(io.BytesIO(base64.b64decode(b64))) as im:
            assert max(im.size) <= THUMB_SIDE
    assert len(html.encode()) < 400_000


def test_rollbacks_and_failed_nodes_shown(runs: dict[str, dict[str, Any]]) -> None:
    report, html = runs["rollback"]["report"], runs["rollback"]["html"]
    assert len(report["rollbacks"]) >= 1
    for rb in report["rollbacks"]:
        assert rb["reason"].replace("<", "&lt;") in html and rb["action"] in html
    failed = [nid for nid, n in report["tree"].items() if n.get("failed")]
    assert failed and all(re.search(rf'class="node failed[^"]*" data-node="{nid}"', html) for nid in failed)
    assert "Compromise" in html


def test_detail_box_finds_texture() -> None:
    img = np.full((300, 400, 3), 0.5, np.float32)
    rng = np.random.default_rng(0)
    img[200:280, 40:120] = rng.random((80, 80, 3), dtype=np.float32)
    x, y, w, h = detail_box(img, 100)
    assert (w, h) == (100, 100) and x <= 40 and x + w >= 120 and y <= 200 and y + h >= 280


def _chromium(args: list[str], page: Path, tmp: Path) -> tuple[str, str]:
    proc = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}", *args, page.as_uri()],
        capture_output=True, text=True, timeout=90,
    )
    return proc.stdout, proc.stderr


def _js_errors(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if "CONSOLE" in ln and re.search(r"Uncaught|Error", ln)]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install -y chromium)")
def test_renders_in_headless_chromium(runs: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    # the checker itself catches a script error
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>null.x = 1;</script></body></html>")
    assert _js_errors(_chromium(["--dump-dom"], broken, tmp_path)[1])
    for name in ("normal", "rollback"):
        page = runs[name]["html_path"]
        dom, err = _chromium(["--dump-dom"], page, tmp_path)
        assert not _js_errors(err), _js_errors(err)
        assert 'data-ready="1"' in dom  # the script ran to its end
        n_nodes = len(runs[name]["report"]["tree"])
        assert f'<span id="node-count">{n_nodes}</span>' in dom
        assert "clip-path: inset(0px 50% 0px 0px)" in dom or "clip-path: inset(0 50% 0 0)" in dom
    shot = tmp_path / "shot.png"
    _chromium([f"--screenshot={shot}", "--window-size=1280,2000"], runs["normal"]["html_path"], tmp_path)
    with PILImage.open(shot) as im:
        assert im.format == "PNG" and im.size == (1280, 2000)
        a = np.asarray(im.convert("RGB"))
    assert a.std() > 20 and len(np.unique(a.reshape(-1, 3), axis=0)) > 1000  # text, tables and photos drawn
