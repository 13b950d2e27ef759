"""Hostile input through the CLI: every case ends in a correct output or one error line, never a traceback,
and no input byte changes.

Cases run in-process through ``fourkagent.cli.main`` (stderr captured at the file-descriptor level, so
C-library noise would count as extra lines); a handful run as real processes. The tool registry is
the classical one (as in ``test_kill_resume``): these cases are about input handling, not tools.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import photo
from PIL import Image as PILImage
from PIL import ImageCms
from test_imageio import png_bomb
from test_kill_resume import CLI as LIGHT_CLI
from test_kill_resume import classical_registry

from fourkagent import cli, imagewrite
from fourkagent.imaging import to_uint8
from fourkagent.graph.builder import build_graph
from fourkagent.runner import open_checkpointer, run

FAST = "ExpSR-s2-F"
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
RGB = to_uint8(photo("astronaut")[40:64, 180:212])  # 32x24, a real photo crop
ALPHA = np.zeros((24, 32), np.uint8)
ALPHA[:, 16:] = 255


@dataclass
class Case:
    """One hostile case: the input, extra CLI arguments and what must happen."""

    inp: Path
    expect: str = "ok"
    """'ok': exit 0 and a readable output of ``size``; 'error': exit ≠ 0 and one line naming ``mentions``."""
    size: tuple[int, int] | None = (64, 48)
    args: list[str] = field(default_factory=list)
    out: str = "out.png"
    mentions: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    check: Callable[[Path, dict[str, Any]], None] | None = None
    """Extra checks on the output file and its report."""
    patch: Callable[[pytest.MonkeyPatch, Path], None] | None = None


def pil(d: Path, name: str, arr: np.ndarray | PILImage.Image, **kw: Any) -> Path:
    im = arr if isinstance(arr, PILImage.Image) else PILImage.fromarray(arr)
    im.save(d / name, **kw)
    return d / name


def cv(d: Path, name: str, arr: np.ndarray) -> Path:
    cv2.imwrite(str(d / name), arr)
    return d / name


def rgb16() -> np.ndarray:
    return (RGB.astype(np.uint16) * 257) ^ (np.arange(32, dtype=np.uint16)[None, :, None] & 15)  # low byte matters


def expect_mode(mode: str, bits: int | None = None) -> Callable[[Path, dict[str, Any]], None]:
    def check(out: Path, report: dict[str, Any]) -> None:
        assert PILImage.open(out).mode == mode
        if bits:
            assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).dtype == (np.uint16 if bits == 16 else np.uint8)

    return check


def expect_alpha_edge(out: Path, report: dict[str, Any]) -> None:
    a = np.asarray(PILImage.open(out).convert("RGBA"))[..., 3].astype(int)
    assert a[:, :26].max() < 20 and a[:, 38:].min() > 235  # transparent left, opaque right, upscaled


def expect_warning(word: str) -> Callable[[Path, dict[str, Any]], None]:
    def check(out: Path, report: dict[str, Any]) -> None:
        assert any(word in w for w in report["warnings"]), report["warnings"]

    return check


def expect_icc(out: Path, report: dict[str, Any]) -> None:
    assert PILImage.open(out).info.get("icc_profile") == SRGB


def frames(d: Path, name: str, **kw: Any) -> Path:
    ims = [PILImage.fromarray(np.roll(RGB, 5 * i, axis=1)) for i in range(3)]
    ims[0].save(d / name, save_all=True, append_images=ims[1:], **kw)
    return d / name


def exif(o: int) -> bytes:
    e = PILImage.new("RGB", (1, 1)).getexif()
    e[0x0112] = o
    return e.tobytes()


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def tiny(h: int, w: int) -> np.ndarray:
    return to_uint8(photo("astronaut")[100:100 + h, 200:200 + w])


def _disk_full(mp: pytest.MonkeyPatch, out: Path) -> None:
    real = imagewrite.os.replace

    def replace(src: Any, dst: Any) -> None:
        if Path(dst) == out:
            raise OSError(28, "No space left on device")
        real(src, dst)

    mp.setattr(imagewrite.os, "replace", replace)


CASES: dict[str, Callable[[Path], Case]] = {
    # colour models and bit depths
    "rgb_png": lambda d: Case(pil(d, "a.png", RGB)),
    "gray_png": lambda d: Case(pil(d, "a.png", RGB[..., 0]), check=expect_mode("L")),
    "gray16_png": lambda d: Case(pil(d, "a.png", PILImage.fromarray(rgb16()[..., 0])), check=expect_mode("I;16", 16)),
    "bilevel_png": lambda d: Case(pil(d, "a.png", PILImage.fromarray(RGB).convert("1")), check=expect_mode("L")),
    "palette_png": lambda d: Case(pil(d, "a.png", PILImage.fromarray(RGB).convert("P")), check=expect_mode("RGB")),
    "palette_transparent_png": lambda d: Case(
        pil(d, "a.png", PILImage.fromarray(RGB).convert("P"), transparency=0), check=expect_mode("RGBA")),
    "gray_alpha_png": lambda d: Case(pil(d, "a.png", np.dstack([RGB[..., 0], ALPHA])), check=expect_alpha_edge),
    "rgba_png": lambda d: Case(pil(d, "a.png", np.dstack([RGB, ALPHA])), check=expect_alpha_edge),
    "rgba16_png": lambda d: Case(cv(d, "a.png", np.dstack([rgb16(), ALPHA.astype(np.uint16) * 257])),
                                 check=lambda o, r: (expect_alpha_edge(o, r), expect_mode("RGBA", 16)(o, r))),
    "rgb16_png": lambda d: Case(cv(d, "a.png", rgb16()), check=expect_mode("RGB", 16)),
    "rgb16_tif": lambda d: Case(cv(d, "a.tif", rgb16()), out="out.tif", check=expect_mode("RGB", 16)),
    "rgba16_tif": lambda d: Case(cv(d, "a.tif", np.dstack([rgb16(), ALPHA.astype(np.uint16) * 257])), out="out.tif",
                                 check=expect_alpha_edge),
    "cmyk_jpg": lambda d: Case(pil(d, "a.jpg", PILImage.fromarray(RGB).convert("CMYK")), check=expect_warning("CMYK")),
    "cmyk_tif": lambda d: Case(pil(d, "a.tif", PILImage.fromarray(RGB).convert("CMYK")), check=expect_warning("CMYK")),
    "float_tif": lambda d: Case(pil(d, "a.tif", PILImage.fromarray(RGB[..., 0].astype(np.float32) / 255.0))),
    "int32_tif": lambda d: Case(pil(d, "a.tif", PILImage.fromarray(RGB[..., 0].astype(np.int32) * 200))),
    "ycbcr_tif": lambda d: Case(pil(d, "a.tif", PILImage.fromarray(RGB).convert("YCbCr"))),
    "webp_in": lambda d: Case(pil(d, "a.webp", RGB, quality=90)),
    "bmp_in": lambda d: Case(pil(d, "a.bmp", RGB)),
    "ppm_in": lambda d: Case(pil(d, "a.ppm", RGB)),
    "ico_in": lambda d: Case(pil(d, "a.ico", RGB, sizes=[(32, 24)]), size=None),
    # orientation, profiles, frames
    "exif_rot6_jpg": lambda d: Case(pil(d, "a.jpg", RGB, exif=exif(6)), size=(48, 64)),
    "exif_rot3_png": lambda d: Case(pil(d, "a.png", RGB, exif=exif(3))),
    "exif_rot8_png": lambda d: Case(pil(d, "a.png", RGB, exif=exif(8)), size=(48, 64)),
    "icc_png": lambda d: Case(pil(d, "a.png", RGB, icc_profile=SRGB), check=expect_icc),
    "icc_jpg_to_tif": lambda d: Case(pil(d, "a.jpg", RGB, icc_profile=SRGB), out="out.tif", check=expect_icc),
    "icc16_tif_to_png": lambda d: Case(_tiff16_icc(d), check=lambda o, r: (expect_icc(o, r), expect_mode("RGB", 16)(o, r))),
    "animated_gif": lambda d: Case(frames(d, "a.gif"), check=expect_warning("first frame")),
    "multipage_tif": lambda d: Case(frames(d, "a.tif"), check=expect_warning("first frame")),
    "animated_png": lambda d: Case(frames(d, "a.png"), check=expect_warning("first frame")),
    # tiny and extreme aspect ratios
    "px_1x1": lambda d: Case(pil(d, "a.png", tiny(1, 1)), size=(2, 2)),
    "px_1x64": lambda d: Case(pil(d, "a.png", tiny(1, 64)), size=(128, 2)),
    "px_64x1": lambda d: Case(pil(d, "a.png", tiny(64, 1)), size=(2, 128)),
    "px_3x3": lambda d: Case(pil(d, "a.png", tiny(3, 3)), size=(6, 6)),
    "px_8x8": lambda d: Case(pil(d, "a.png", tiny(8, 8)), size=(16, 16)),
    "px_2x300": lambda d: Case(pil(d, "a.png", tiny(2, 300)), size=(600, 4)),
    "px_1x1_rgba": lambda d: Case(pil(d, "a.png", np.dstack([tiny(1, 1), np.full((1, 1), 128, np.uint8)])), size=(2, 2)),
    "default_1x1": lambda d: Case(pil(d, "a.png", tiny(1, 1)), size=(16, 16), args=["-p", "FastGen4K-P"]),
    "default_5x3": lambda d: Case(pil(d, "a.png", tiny(3, 5)), size=(80, 48), args=["-p", "FastGen4K-P"]),
    "default_8x8": lambda d: Case(pil(d, "a.png", tiny(8, 8)), size=(128, 128), args=["-p", "FastGen4K-P"]),
    # output formats
    "out_jpg_from_rgba": lambda d: Case(pil(d, "a.png", np.dstack([RGB, ALPHA])), out="o.jpg",
                                        check=lambda o, r: (expect_mode("RGB")(o, r), expect_warning("alpha")(o, r))),
    "out_webp_from_rgba": lambda d: Case(pil(d, "a.png", np.dstack([RGB, ALPHA])), out="o.webp", check=expect_alpha_edge),
    "out_jpg_from_16": lambda d: Case(cv(d, "a.png", rgb16()), out="o.jpeg", check=expect_warning("8-bit")),
    "out_tif_from_16": lambda d: Case(cv(d, "a.png", rgb16()), out="o.TIFF", check=expect_mode("RGB", 16)),
    "out_upper_png": lambda d: Case(pil(d, "a.png", RGB), out="O.PNG"),
    "out_exists_overwrite": lambda d: Case(pil(d, "a.png", RGB), args=["--overwrite"], out="exists.png"),
    # broken, hostile or refused inputs
    "zero_byte": lambda d: Case(_write(d, "a.png", b""), "error", mentions="a.png"),
    "text_as_png": lambda d: Case(_write(d, "a.png", b"hello, not an image\n"), "error", mentions="a.png"),
    "svg_as_jpg": lambda d: Case(_write(d, "a.jpg", b"<svg xmlns='http://www.w3.org/2000/svg'/>"), "error", mentions="a.jpg"),
    "directory": lambda d: Case(_mkdir(d / "a.png"), "error", mentions="a.png"),
    "missing": lambda d: Case(d / "absent.png", "error", mentions="absent.png"),
    "truncated_png": lambda d: Case(_cut(pil(d, "a.png", RGB), 0.5), "error", mentions="a.png"),
    "truncated_jpg": lambda d: Case(_cut(pil(d, "a.jpg", RGB), 0.6), "error", mentions="a.jpg"),
    "crc_png": lambda d: Case(_flip(pil(d, "a.png", RGB), [80]), "error", mentions="a.png"),
    "png_without_idat": lambda d: Case(_write(d, "a.png", b"\x89PNG\r\n\x1a\n" + chunk(
        b"IHDR", struct.pack(">IIBBBBB", 32, 24, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")), "error", mentions="a.png"),
    "png_signature_noise": lambda d: Case(_write(d, "a.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4), "error"),
    "jpeg_soi_garbage": lambda d: Case(_write(d, "a.jpg", b"\xff\xd8\xff" + b"\x00" * 500), "error", mentions="a.jpg"),
    "bomb_png": lambda d: Case(png_bomb(d / "bomb.png"), "error", mentions="bomb.png"),
    "bomb_by_limit": lambda d: Case(pil(d, "a.png", RGB), "error", env={"FOURKAGENT_MAX_PIXELS": "767"}, mentions="767"),
    "oversized_junk": lambda d: Case(_write(d, "a.png", b"\x89PNG" * 300_000), "error", env={"FOURKAGENT_MAX_PIXELS": "1000"},
                                     mentions="too large"),
    "limit_at_size": lambda d: Case(pil(d, "a.png", RGB), env={"FOURKAGENT_MAX_PIXELS": "768"}),
    "limit_malformed": lambda d: Case(pil(d, "a.png", RGB), "error", env={"FOURKAGENT_MAX_PIXELS": "many"},
                                      mentions="FOURKAGENT_MAX_PIXELS"),
    "output_too_large": lambda d: Case(pil(d, "a.png", RGB), "error", env={"FOURKAGENT_MAX_OUTPUT_PIXELS": "3000"},
                                       mentions="output"),
    # refused outputs and environments
    "out_bad_ext": lambda d: Case(pil(d, "a.png", RGB), "error", out="o.bmp", mentions="o.bmp"),
    "out_dir_missing": lambda d: Case(pil(d, "a.png", RGB), "error", out="nowhere/o.png", mentions="nowhere"),
    "out_parent_is_file": lambda d: Case(pil(d, "a.png", RGB), "error", out="exists.png/o.png", mentions="exists.png"),
    "out_is_dir": lambda d: Case(pil(d, "a.png", RGB), "error", out="adir.png", mentions="adir.png"),
    "out_exists": lambda d: Case(pil(d, "a.png", RGB), "error", out="exists.png", mentions="--overwrite"),
    "out_is_input": lambda d: Case(pil(d, "a.png", RGB), "error", out="SAME", args=["--overwrite"], mentions="input"),
    "unknown_profile": lambda d: Case(pil(d, "a.png", RGB), "error", args=["-p", "NoSuchProfile"], mentions="NoSuchProfile"),
    "malformed_profile": lambda d: Case(pil(d, "a.png", RGB), "error", args=["-p", str(_write(d, "p.yaml", b"scale_factor: [\n"))],
                                        mentions="p.yaml"),
    "disk_full": lambda d: Case(pil(d, "a.png", RGB), "error", mentions="disk full", patch=_disk_full),
    "home_not_a_dir": lambda d: Case(pil(d, "a.png", RGB), "error", env={"FOURKAGENT_HOME": "HOME_IS_FILE"}),
}


def _tiff16_icc(d: Path) -> Path:
    import tifffile

    tifffile.imwrite(d / "a.tif", rgb16(), photometric="rgb", iccprofile=SRGB)
    return d / "a.tif"


def _write(d: Path, name: str, data: bytes) -> Path:
    (d / name).write_bytes(data)
    return d / name


def _mkdir(p: Path) -> Path:
    p.mkdir()
    return p


def _cut(p: Path, frac: float) -> Path:
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * frac)])
    return p


def _flip(p: Path, offsets: list[int]) -> Path:
    data = bytearray(p.read_bytes())
    for o in offsets:
        data[o % len(data)] ^= 0xFF
    p.write_bytes(bytes(data))
    return p


def _byte_flip_case(fmt: str, seed: int) -> Callable[[Path], Case]:
    """A real photo file with 1-6 seeded random bytes flipped; Pillow decides whether it is still an image."""

    def make(d: Path) -> Case:
        src = pil(d, f"a.{fmt}", RGB, **({"quality": 90} if fmt == "jpg" else {}))
        rng = np.random.default_rng(seed)
        data = bytearray(src.read_bytes())
        for off in rng.integers(0, len(data), size=int(rng.integers(1, 7))):
            data[off] ^= int(rng.integers(1, 256))
        src.write_bytes(bytes(data))
        try:
            with PILImage.open(src) as im:
                im.load()
                w, h = im.size
        except Exception:
            return Case(src, "error", mentions=src.name)
        return Case(src, size=(2 * w, 2 * h))

    return make


for _fmt in ("png", "jpg"):
    for _seed in range(12):
        CASES[f"flip_{_fmt}_{_seed}"] = _byte_flip_case(_fmt, _seed)


def _digests(d: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True)
def _light(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOURKAGENT_IQA_METRICS", "niqe")
    monkeypatch.setattr("fourkagent.tools.registry.MAIN_REGISTRY", classical_registry())


def _prepare(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Case, Path, list[str]]:
    d, outdir = tmp_path / "in", tmp_path / "out"
    d.mkdir()
    outdir.mkdir()
    (outdir / "exists.png").write_bytes(b"an earlier result")
    (outdir / "adir.png").mkdir()
    case = CASES[name](d)
    out = case.inp if case.out == "SAME" else outdir / case.out
    for key, value in case.env.items():
        monkeypatch.setenv(key, str(outdir / "exists.png") if value == "HOME_IS_FILE" else value)
    if case.patch:
        case.patch(monkeypatch, out)
    args = ["restore", str(case.inp), "-o", str(out), "-q"] + (case.args if "-p" in case.args else ["-p", FAST] + case.args)
    return case, out, args


def _verify(case: Case, out: Path, rc: int, err: str, before: dict[str, str], tmp_path: Path) -> None:
    assert "Traceback" not in err
    assert _digests(tmp_path / "in") == before, "an input file was modified"
    assert not [p for p in tmp_path.rglob("*.part")], "a partial file was left behind"
    if case.expect == "ok":
        assert rc == 0, err
        with PILImage.open(out) as im:
            im.load()
            if case.size:
                assert im.size == case.size
        report = json.loads(out.with_name(f"{out.stem}.report.json").read_text())
        if case.check:
            case.check(out, report)
        return
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("4kagent: error:"), err
    if case.mentions:
        assert case.mentions in lines[0]
    if out != case.inp and out.name not in ("exists.png", "adir.png"):
        assert not out.exists()
    assert (tmp_path / "out" / "exists.png").read_bytes() == b"an earlier result" or "--overwrite" in case.args


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_case_in_process(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    case, out, args = _prepare(tmp_path, name, monkeypatch)
    before = _digests(tmp_path / "in")
    rc = cli.main(args)
    err = capfd.readouterr().err
    _verify(case, out, rc, err, before, tmp_path)


SUBPROCESS_CASES = ["zero_byte", "bomb_png", "truncated_jpg", "flip_jpg_3", "rgba_png"]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_hostile_case_as_a_process(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: a real interpreter's stderr (the real ``python -m fourkagent.cli`` for refusals)."""
    case, out, args = _prepare(tmp_path, name, monkeypatch)
    before = _digests(tmp_path / "in")
    exe = LIGHT_CLI if case.expect == "ok" else [sys.executable, "-m", "fourkagent.cli"]
    res = subprocess.run(exe + args, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    _verify(case, out, res.returncode, res.stderr, before, tmp_path)


def test_concurrent_runs_share_one_home(tmp_path: Path) -> None:
    """Two processes, one FOURKAGENT_HOME (store + checkpoint DB), different run ids: both finish correctly."""
    src = pil(tmp_path, "a.png", np.dstack([RGB, ALPHA]))
    ref = run(str(src), str(tmp_path / "ref.png"), FAST, run_id="ref")
    procs = [subprocess.Popen(LIGHT_CLI + ["restore", str(src), "-o", str(tmp_path / f"o{i}.png"), "-p", FAST,
                                            "--run-id", f"r{i}", "-q"], stderr=subprocess.PIPE, text=True,
                              stdout=subprocess.DEVNULL, env=dict(os.environ)) for i in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    expected = Path(ref["output_path"]).read_bytes()
    assert all((tmp_path / f"o{i}.png").read_bytes() == expected for i in range(2))
    with open_checkpointer(os.environ["FOURKAGENT_HOME"]) as saver:
        graph = build_graph(saver)
        states = [graph.get_state({"configurable": {"thread_id": f"r{i}"}}) for i in range(2)]
    assert [(s.next, s.values["output_path"]) for s in states] == [((), str(tmp_path / f"o{i}.png")) for i in range(2)]
    assert states[0].values["run_dir"] != states[1].values["run_dir"]


def test_enough_cases() -> None:
    assert len(CASES) + len(SUBPROCESS_CASES) >= 50
