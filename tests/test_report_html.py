"""The HTML run report: produced for real runs, complete, light, and rendered by headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from fourkagent import degrade
from fourkagent.context import Context
from fourkagent.imageio import save_image
from fourkagent.imaging import as_image
from fourkagent.imaging import resize
from fourkagent.report.html import html_path_for, render_html
from fourkagent.report.images import CAND_MAX, CAND_MIN, MAX_CAND_CROPS, THUMB_SIDE
from fourkagent.report.legend import STEP_COLUMNS, UNEXPLAINED, legend_html
from fourkagent.report.regions import Region, detail_box
from fourkagent.runner import run
from fourkagent.state.artifacts import ArtifactStore

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


@pytest.mark.slow
def test_html_beside_output_with_every_step_and_score(runs: dict[str, dict[str, Any]]) -> None:
    r = runs["normal"]
    report, html = r["report"], r["html"]
    assert r["html_path"].name == "normal.report.html" and report["report_html"] == str(r["html_path"])
    assert len(report["trajectory"]) >= 2
    for t in report["trajectory"]:
        assert f'data-node="{t["node"]}"' in html and t["step"] in html and (t["tool"] or "kept the input") in html
    for nid, node in report["tree"].items():
        assert f'data-node="{nid}"' in html
        for c in node.get("candidates", []):
            if c.get("unchanged"):  # a tool that returned its input is no candidate: not scored
                assert c["score"] is None and c["error"] in html
                continue
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


def _decode(b64: str) -> np.ndarray:
    with PILImage.open(io.BytesIO(base64.b64decode(b64))) as im:
        return np.asarray(im.convert("RGB"), np.float32) / 255.0


def test_thumbnails_are_small_and_report_light(runs: dict[str, dict[str, Any]]) -> None:
    for r in runs.values():
        html = r["html"]
        thumbs = re.findall(r'<img class="thumb" alt="[^"]*" src="data:image/jpeg;base64,([^"]+)"', html)
        assert len(thumbs) == len(r["report"]["tree"])  # one whole-image thumbnail per node (faces: none here)
        for b64 in thumbs:
            assert max(_decode(b64).shape[:2]) <= THUMB_SIDE
        assert r["html_path"].stat().st_size <= 500_000 and len(html.encode()) < 400_000


def test_text_is_text_not_json(runs: dict[str, dict[str, Any]]) -> None:
    """Profile and perception strings appear as escaped text with their unicode, not as JSON literals."""
    for r in runs.values():
        report, html = r["report"], r["html"]
        desc = report["profile"]["description"]
        assert any(ord(ch) > 127 for ch in desc)  # the profile's "×4": a character JSON would escape
        assert f"<td>description</td><td>{escape(desc)}</td>" in html
        assert not re.search(r"\\u[0-9a-fA-F]{4}", html)  # no \u2265-style escapes anywhere, data included
        assert "&quot;" + escape(desc)[:20] not in html and f'"{desc}"' not in html.split('id="report-data"')[0]
        assert f'<p id="description">{escape(report["perception"]["description"])}</p>' in html
        name = report["profile"]["name"]
        assert f"<td>name</td><td>{name}</td>" in html


def test_legend_explains_every_score_column(runs: dict[str, dict[str, Any]]) -> None:
    for r in runs.values():
        html = r["html"]
        legend = set(re.findall(r'<dt data-key="([^"]+)">', html))
        shown: set[str] = set()
        for table in re.findall(r'<table class="cand">(.*?)</table>', html, re.S):
            shown |= set(re.findall(r"<th(?: title=\"[^\"]*\")?>([^<]+)</th>", table)) - {"tool", "error", "expert", "kind", "rejected"}
        comps = {k for n in r["report"]["tree"].values() for c in n.get("candidates", []) for k in c["components"]}
        assert comps and comps <= shown and shown <= legend
        for key in shown:  # every column the scorers produce here has a real explanation
            dd = re.search(rf'<dt data-key="{re.escape(key)}">[^<]*</dt><dd>([^<]+)</dd>', html)
            assert dd is not None and len(dd.group(1)) > 20, key


def test_legend_lists_unknown_keys() -> None:
    out = legend_html(["Q", "brand_new_metric", "Q"], STEP_COLUMNS)
    assert out.count('data-key="Q"') == 1 and 'data-key="brand_new_metric"' in out and UNEXPLAINED in out


def _boxes(html: str) -> dict[str, tuple[int, int, int, int]]:
    """Each step's crop box, from the notes above its candidate crops."""
    out = {}
    for m in re.finditer(
        r'Detail region in this step: x=(\d+), y=(\d+), (\d+)×(\d+) px[^<]*</p><div class="crops cand-crops" '
        r'data-node="([^"]+)"', html,
    ):
        out[m.group(5)] = (int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)))
    return out


def test_candidate_crops_show_the_same_region(runs: dict[str, dict[str, Any]]) -> None:
    """Every candidate of a step shows the same 100 % pixels of its own image: same size, same place, and the
    place is the output's detail region mapped into the step's size."""
    for r in runs.values():
        report, html = r["report"], r["html"]
        store = ArtifactStore(Path(report["run_dir"]) / "artifacts")
        boxes = _boxes(html)
        with_cands = {nid for nid, n in report["tree"].items() if n.get("candidates")}
        assert set(boxes) == with_cands
        m = re.search(r'id="detail-region" data-box="(\d+),(\d+),(\d+),(\d+)"', html)
        assert m is not None
        ox, oy, ow, oh = (int(v) for v in m.groups())
        W, H = report["output"]["size"]
        assert 0 <= ox and 0 <= oy and ox + ow <= W and oy + oh <= H  # inside the output
        cx, cy = (ox + ow / 2) / W, (oy + oh / 2) / H  # the region's centre, as a fraction of the image
        n_crops = 0
        for strip in re.finditer(r'<div class="crops cand-crops" data-node="([^"]+)">(.*?)</div>', html, re.S):
            nid, node = strip.group(1), report["tree"][strip.group(1)]
            x, y, w, h = boxes[nid]
            assert CAND_MIN <= max(w, h) and max(w, h) <= CAND_MAX or max(w, h) == max(node["width"], node["height"])
            assert x <= cx * node["width"] <= x + w and y <= cy * node["height"] <= y + h
            crops = re.findall(r'<img class="crop" alt="([^"]*) crop" width="\d+" height="\d+" data-w="(\d+)" '
                               r'data-h="(\d+)" src="data:image/jpeg;base64,([^"]+)"', strip.group(2))
            assert len(crops) == sum(1 for c in node["candidates"] if c.get("artifact"))
            sizes = {_decode(b64).shape[:2] for _, _, _, b64 in crops}
            assert sizes == {(h, w)}, (nid, sizes)
            by_tool = {c["tool"]: c for c in node["candidates"]}
            for tool, _, _, b64 in crops:
                pixels = store.get(by_tool[tool]["artifact"], verify=False)[y : y + h, x : x + w]
                assert float(np.abs(_decode(b64) - pixels).mean()) < 0.03, (nid, tool)  # those very pixels
            n_crops += len(crops)
        assert 0 < n_crops <= MAX_CAND_CROPS


def test_report_of_a_4k_output_stays_light(runs: dict[str, dict[str, Any]]) -> None:
    """The page of a run whose output is 4K, full of detail that JPEG cannot shrink, stays under 0.5 MB."""
    report = runs["normal"]["report"]
    rng = np.random.default_rng(1)
    out = resize(rng.random((270, 480, 3), dtype=np.float32), (3840, 2160), "nearest")
    out += 0.08 * rng.standard_normal(out.shape, dtype=np.float32)
    report = report | {"output": report["output"] | {"size": [3840, 2160]}}
    html = render_html(report, ArtifactStore(Path(report["run_dir"]) / "artifacts"), np.clip(out, 0, 1))
    assert len(html.encode()) <= 500_000
    assert 'data-box="' in html and "output, 100 %" in html


def test_detail_region_prefers_a_face(runs: dict[str, dict[str, Any]]) -> None:
    """A face record (box in the restored image's pixels) moves the detail region onto the face."""
    report = runs["normal"]["report"]
    final = report["tree"][report["trajectory"][-1]["node"]]
    fw, fh = final["width"], final["height"]
    face = [round(fw * 0.05), round(fh * 0.7), round(fw * 0.15), round(fh * 0.15)]
    faced = report | {"faces": {"status": "done", "reason": "1 face: 1 kept", "faces": [{"box": face}]}}
    html = render_html(faced, ArtifactStore(Path(report["run_dir"]) / "artifacts"))
    m = re.search(r'id="detail-region" data-box="(\d+),(\d+),(\d+),(\d+)"[^>]*>[^<]*largest face', html)
    assert m is not None
    x, y, w, h = (int(v) for v in m.groups())
    assert x <= face[0] + face[2] / 2 <= x + w and y <= face[1] + face[3] / 2 <= y + h
    assert 0 <= x and 0 <= y and x + w <= fw and y + h <= fh


def test_rollbacks_and_failed_nodes_shown(runs: dict[str, dict[str, Any]]) -> None:
    report, html = runs["rollback"]["report"], runs["rollback"]["html"]
    assert len(report["rollbacks"]) >= 1
    for rb in report["rollbacks"]:
        assert rb["reason"].replace("<", "&lt;") in html and rb["action"] in html
    failed = [nid for nid, n in report["tree"].items() if n.get("failed")]
    assert failed and all(re.search(rf'class="node failed[^"]*" data-node="{nid}"', html) for nid in failed)
    assert "Compromise" in html


def test_detail_box_finds_the_changed_region() -> None:
    """Only one region of the output differs from the upscaled input: the box covers it, although another
    region of the input is far more textured (and kept as it was)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:80, 0:100].astype(np.float32)
    before = np.repeat(((xx + yy) / 180.0)[..., None], 3, 2)
    before[5:35, 55:95] = rng.random((30, 40, 3), dtype=np.float32)  # texture, left alone by the "agent"
    after = resize(before, (400, 320), "cubic")
    after[200:248, 40:88] = rng.random((48, 48, 3), dtype=np.float32)  # the one change
    (x, y, w, h), why = detail_box(before, after, 64)
    assert (w, h) == (64, 64) and x <= 40 and x + w >= 88 and y <= 200 and y + h >= 248 and "changed" in why
    (x, y, w, h), why = detail_box(before, after, 64, [{"box": [300, 10, 40, 40]}])
    assert x <= 320 <= x + w and y <= 30 <= y + h and "face" in why
    (x, y, w, h), _ = detail_box(before, after, 64, [{"box": [300, 10, 40, 40]}, {"box": [100, 100, 120, 120]}], 96)
    assert (w, h) == (96, 96) and x <= 160 <= x + w and y <= 160 <= y + h  # the largest face, window grown to it


def test_region_maps_between_sizes() -> None:
    r = Region.from_box((1600, 800, 256, 256), (4096, 4096), (256, 256))
    assert r.box_in((4096, 4096), (256, 256)) == (1600, 800, 256, 256)
    assert r.box_in((1024, 1024), (256, 256)) == (400, 200, 64, 64)
    x, y, w, h = r.box_in((256, 256), (256, 256), lo=64, hi=128)  # 16 px grown to 64 around the same centre
    assert (w, h) == (64, 64) and (x + 32, y + 32) == (108, 58)
    assert r.box_in((4096, 4096), (256, 256), lo=64, hi=128) == (1664, 864, 128, 128)  # cut around the centre
    assert Region.from_box((0, 0, 50, 50), (100, 100), (100, 100)).box_in((30, 20), (100, 100), lo=64) == (0, 0, 30, 20)


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
