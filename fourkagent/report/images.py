"""The images a report page embeds: sizes, JPEG qualities and byte budgets, the node thumbnails and each step's
candidate crops of the detail region (each a base64 JPEG within its budget: ``BUDGET``)."""

from __future__ import annotations

import base64
import io
from html import escape
from typing import Any

from PIL import Image as PILImage

from fourkagent.errors import ArtifactError
from fourkagent.imaging import Image, resize, to_uint8
from fourkagent.report.markup import fmt
from fourkagent.report.regions import Box, Region
from fourkagent.state.artifacts import ArtifactStore
from fourkagent.state.records import Score, Tree, TreeNode

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


def fit(img: Image, side: int) -> Image:
    """Downscale (area) so the longest side is at most ``side``; smaller images are returned as is."""
    h, w = img.shape[:2]
    f = side / max(h, w)
    if f >= 1.0:
        return img
    return resize(img, (max(1, round(w * f)), max(1, round(h * f))), "area")


def jpeg_bytes(img: Image, quality: int = 85) -> bytes:
    """An image as JPEG file bytes."""
    buf = io.BytesIO()
    PILImage.fromarray(to_uint8(img)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def data_uri(img: Image, quality: int = 85) -> str:
    """A base64 ``data:image/jpeg`` URI of an image."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(img, quality)).decode()


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


def priority(tree: Tree, traj: list[dict[str, Any]]) -> list[str]:
    """Node ids, the accepted path's first (root, then the trajectory), then the others in tree order."""
    root = [k for k, v in tree.items() if v.get("parent") is None]
    return list(dict.fromkeys(root + [t["node"] for t in traj if t["node"] in tree] + list(tree)))


class Images:
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

    def prepare_thumbs(self, tree: Tree, order: list[str]) -> None:
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


class Crops:
    """The detail region in every candidate of every step: one box per image size, the crops encoded in
    priority order until ``MAX_CAND_CROPS`` or the ``candidates`` budget is reached."""

    def __init__(self, images: Images, region: Region | None, work: tuple[int, int]) -> None:
        self.images, self.region, self.work = images, region, work
        self.figs: dict[tuple[str, int], str] = {}
        self.skipped = 0

    def box(self, size: tuple[int, int]) -> Box | None:
        """The crop box in an image of ``size`` (width, height) of the run's working frame."""
        if self.region is None:
            return None
        return self.region.box_in(size, self.work, CAND_MIN, CAND_MAX)

    def _crop(self, node: TreeNode, cand: Score) -> Image | None:
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

    def prepare(self, tree: Tree, order: list[str]) -> None:
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
                    f'{escape(str(c.get("tool")))}{mark}<br>Q {fmt(c.get("score"))}</figcaption></figure>'
                )

    def strip(self, nid: str, node: TreeNode) -> str:
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
