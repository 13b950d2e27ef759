"""Image I/O at the boundary: modes, orientation, 16-bit, alpha, ICC, frames, bombs, safe writes."""

from __future__ import annotations

import builtins
import errno
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import photo
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

from fourkagent import imagewrite
from fourkagent.errors import ArtifactError, BadInputError, RunError
from fourkagent.imageio import (
    check_not_input,
    check_output_path,
    fit_output,
    load_icc,
    pad_to_min,
    png_intact,
    read_image,
    remove_stale_parts,
    save_image,
    store_icc,
)

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def rgb8(h: int = 12, w: int = 20, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def rgb16(h: int = 12, w: int = 20, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 65535).astype(np.uint16)


def png_bomb(path: Path, side: int = 30000) -> Path:
    """A valid 1-bit PNG of side×side pixels (900 MP by default) that is only ~100 kB on disk."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    z = zlib.compressobj(9)
    rows = (b"\0" * (1 + (side + 7) // 8)) * 1000
    body = b"".join(z.compress(rows) for _ in range(side // 1000)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def pil_save(tmp: Path, name: str, im: PILImage.Image, **kw: Any) -> Path:
    p = tmp / name
    im.save(p, **kw)
    return p


@pytest.mark.parametrize("mode", ["L", "1", "P", "YCbCr", "I;16"])
def test_opaque_modes_become_rgb_without_alpha(tmp_path: Path, mode: str) -> None:
    src = PILImage.fromarray(rgb8())
    im = src.convert(mode) if mode != "I;16" else PILImage.fromarray(rgb16()[..., 0])
    fmt = "TIFF" if mode == "YCbCr" else "PNG"
    p = pil_save(tmp_path, f"in.{fmt.lower()}", im, format=fmt)
    got = read_image(p)
    assert got.image.shape == (12, 20, 3) and got.image.dtype == np.float32 and got.alpha is None
    if mode == "I;16":  # Pillow's RGB view of 16-bit grey clips it: compare with the raw values
        ref = np.repeat(rgb16()[..., :1], 3, axis=2).astype(np.float32) / 65535.0
    else:
        ref = np.asarray(PILImage.open(p).convert("RGB"), np.float32) / 255.0
    assert np.abs(got.image - ref).max() < 1e-6
    assert got.info.gray == (mode in ("L", "1", "I;16")) and got.info.bits == (16 if mode == "I;16" else 8)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P-transparency"])
def test_alpha_is_kept_aside(tmp_path: Path, mode: str) -> None:
    rgba = np.dstack([rgb8(), np.tile(np.linspace(0, 255, 20, dtype=np.uint8), (12, 1))])
    im = PILImage.fromarray(rgba)
    if mode == "LA":
        im = im.convert("LA")
    elif mode == "P-transparency":
        im = PILImage.fromarray(rgba[..., :3]).convert("P")
        im.info["transparency"] = int(np.asarray(im)[0, 0])
    p = pil_save(tmp_path, "in.png", im, **({"transparency": im.info["transparency"]} if "transparency" in im.info else {}))
    got = read_image(p)
    ref = np.asarray(PILImage.open(p).convert("RGBA"), np.float32) / 255.0
    assert got.alpha is not None and got.info.has_alpha
    assert np.abs(got.alpha - ref[..., 3]).max() < 1e-6
    assert np.abs(got.image - ref[..., :3]).max() < 1e-6


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    im = PILImage.fromarray(rgb8(6, 9))
    exif = im.getexif()
    exif[0x0112] = orientation
    p = pil_save(tmp_path, "in.png", im, exif=exif.tobytes())
    got = read_image(p)
    ref = np.asarray(ImageOps.exif_transpose(PILImage.open(p)).convert("RGB"), np.float32) / 255.0
    assert got.image.shape == ref.shape and np.abs(got.image - ref).max() < 1e-6
    assert got.info.orientation == orientation and (got.info.width, got.info.height) == (ref.shape[1], ref.shape[0])


@pytest.mark.parametrize("ext", ["png", "tif"])
@pytest.mark.parametrize("alpha", [False, True])
def test_16bit_colour_is_read_exactly_and_written_back_16bit(tmp_path: Path, ext: str, alpha: bool) -> None:
    a16 = rgb16()
    arr = np.dstack([a16, a16[..., :1]]) if alpha else a16
    p = tmp_path / f"in.{ext}"
    cv2.imwrite(str(p), arr[..., [2, 1, 0, 3][: arr.shape[2]]])  # a real 16-bit file written by libpng/libtiff
    got = read_image(p)
    assert got.info.bits == 16 and got.info.has_alpha == alpha
    assert np.array_equal(np.round(got.image * 65535).astype(np.uint16), a16)
    out = tmp_path / f"out.{ext}"
    save_image(got.image, out, bits=16, alpha=got.alpha)
    back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.shape[2] == (4 if alpha else 3)
    assert np.array_equal(back[..., [2, 1, 0, 3][: back.shape[2]]], arr)


@pytest.mark.parametrize("ext", ["png", "tif", "jpg", "webp"])
@pytest.mark.parametrize("bits", [8, 16])
def test_icc_profile_is_carried_to_every_format(tmp_path: Path, ext: str, bits: int) -> None:
    p = pil_save(tmp_path, "in.png", PILImage.fromarray(rgb8()), icc_profile=SRGB)
    got = read_image(p)
    assert got.icc == SRGB and got.info.has_icc
    out = tmp_path / f"out.{ext}"
    save_image(got.image, out, bits=bits, icc=got.icc)
    assert PILImage.open(out).info.get("icc_profile") == SRGB
    assert read_image(out).info.bits == (bits if ext in ("png", "tif") else 8)


def test_greyscale_in_greyscale_out_and_cmyk_profile_not_carried(tmp_path: Path) -> None:
    p = pil_save(tmp_path, "g.png", PILImage.fromarray(rgb8()[..., 0]))
    got = read_image(p)
    out = tmp_path / "g_out.png"
    save_image(got.image, out, gray=got.info.gray)
    assert PILImage.open(out).mode == "L" and np.array_equal(np.asarray(PILImage.open(out)), rgb8()[..., 0])
    cmyk = pil_save(tmp_path, "c.jpg", PILImage.fromarray(rgb8()).convert("CMYK"))
    got = read_image(cmyk)
    assert got.icc is None and any("CMYK" in w for w in got.info.warnings)


def test_jpeg_output_composites_alpha_over_white(tmp_path: Path) -> None:
    img = np.zeros((8, 8, 3), np.float32)
    alpha = np.zeros((8, 8), np.float32)
    alpha[:, 4:] = 1.0
    out = tmp_path / "o.jpg"
    save_image(img, out, alpha=alpha, quality=100)
    px = np.asarray(PILImage.open(out).convert("L"), np.float32)
    assert px[:, :2].mean() > 240 and px[:, 6:].mean() < 15
    assert imagewrite.output_notes(out, 16, True) and not imagewrite.output_notes(tmp_path / "o.png", 16, True)


@pytest.mark.parametrize("kind", ["gif", "tiff"])
def test_multi_frame_uses_first_frame_with_warning(tmp_path: Path, kind: str) -> None:
    frames = [PILImage.fromarray(rgb8(seed=s)) for s in range(3)]
    p = tmp_path / f"anim.{kind}"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    got = read_image(p)
    first = np.asarray(PILImage.open(p).convert("RGB"), np.float32) / 255.0
    assert got.info.frames == 3 and "first frame" in got.info.warnings[0]
    assert np.abs(got.image - first).max() < 1e-6


def test_decompression_bomb_refused_by_header_and_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 500_000
    with pytest.raises(BadInputError, match="bomb|exceeds"):
        read_image(bomb)
    small = pil_save(tmp_path, "s.png", PILImage.fromarray(rgb8(40, 50)))
    monkeypatch.setenv("FOURKAGENT_MAX_PIXELS", "1999")
    with pytest.raises(BadInputError, match="2000 pixels exceeds the limit of 1999"):
        read_image(small)
    monkeypatch.setenv("FOURKAGENT_MAX_PIXELS", "2000")
    assert read_image(small).image.shape == (40, 50, 3)
    monkeypatch.setenv("FOURKAGENT_MAX_PIXELS", "lots")
    with pytest.raises(RunError, match="FOURKAGENT_MAX_PIXELS"):
        read_image(small)


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    good = pil_save(tmp_path, "g.png", PILImage.fromarray(rgb8()))
    data = good.read_bytes()
    cases = {"empty.png": b"", "text.png": b"hello", "half.png": data[: len(data) // 2],
             "crc.png": data[:60] + bytes([data[60] ^ 0xFF]) + data[61:]}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(BadInputError) as err:
            read_image(tmp_path / name)
        assert str(tmp_path / name) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(BadInputError, match="not a regular file"):
        read_image(tmp_path)
    assert png_intact(data) and not png_intact(cases["crc.png"]) and not png_intact(cases["half.png"])


def test_input_is_only_opened_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = pil_save(tmp_path, "in.png", PILImage.fromarray(rgb8()))
    modes: list[str] = []
    real_open = builtins.open

    def spy(file: Any, mode: str = "r", *a: Any, **k: Any) -> Any:
        if str(file) == str(p):
            modes.append(mode)
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", spy)
    read_image(p)
    assert modes == ["rb"]


def test_tiny_images_are_padded_and_cropped_back() -> None:
    img = photo("chelsea")[:1, :3]
    work = pad_to_min(img)
    assert work.shape == (16, 16, 3) and np.array_equal(work[:1, :3], img)
    up = np.repeat(np.repeat(work, 2, 0), 2, 1)
    out, notes = fit_output(up, (16, 16), (3, 1), (6, 2))
    assert out.shape == (2, 6, 3) and not notes
    short, notes = fit_output(work, (16, 16), (3, 1), (6, 2))  # SR never happened: resized, and said so
    assert short.shape == (2, 6, 3) and "resized" in notes[0]


def test_output_path_checks(tmp_path: Path) -> None:
    existing = tmp_path / "o.png"
    existing.write_bytes(b"keep")
    with pytest.raises(RunError, match="already exists"):
        check_output_path(existing, overwrite=False)
    assert check_output_path(existing, overwrite=True) == existing and existing.read_bytes() == b"keep"
    for bad, msg in [(tmp_path / "o.bmp", "extension"), (tmp_path / "no" / "o.png", "does not exist"),
                     (existing / "o.png", "does not exist")]:
        with pytest.raises(RunError, match=msg):
            check_output_path(bad, overwrite=True)
    (tmp_path / "d.png").mkdir()
    with pytest.raises(RunError, match="is a directory"):
        check_output_path(tmp_path / "d.png", overwrite=True)
    with pytest.raises(RunError, match="is the input file"):
        check_not_input(existing, tmp_path / "." / "o.png")


def _no_leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".part")]


def test_disk_full_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(imagewrite.os, "fsync", full)
    out = tmp_path / "o.png"
    with pytest.raises(RunError, match="disk full"):
        save_image(photo("chelsea")[:32, :32], out)
    assert not out.exists() and _no_leftovers(tmp_path) == []


def test_permission_denied_and_file_as_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    with pytest.raises(RunError, match="cannot write output"):
        save_image(photo("chelsea")[:8, :8], blocker / "o.png")

    def denied(*a: Any, **k: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(imagewrite.tempfile, "mkstemp", denied)
    with pytest.raises(RunError, match="Permission denied"):
        save_image(photo("chelsea")[:8, :8], tmp_path / "o.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_interrupted_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "o.png"
    out.write_bytes(b"old")

    def boom(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(imagewrite.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        save_image(photo("chelsea")[:8, :8], out)
    assert out.read_bytes() == b"old" and _no_leftovers(tmp_path) == []


def test_parts_of_killed_writers_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / ".o.png.999999999.abc.part"  # no such pid
    mine = tmp_path / f".o.png.{os.getpid()}.abc.part"
    other = tmp_path / ".x.png.999999999.abc.part"
    for p in (dead, mine, other):
        p.write_bytes(b"partial")
    save_image(photo("chelsea")[:8, :8], tmp_path / "o.png")
    assert not dead.exists() and mine.exists() and other.exists()
    assert remove_stale_parts(tmp_path) == 1 and not other.exists()


def test_icc_store_detects_damage(tmp_path: Path) -> None:
    icc_id = store_icc(tmp_path, SRGB)
    assert load_icc(tmp_path, icc_id) == SRGB
    (tmp_path / f"{icc_id}.icc").write_bytes(SRGB[:-1] + b"\0")
    with pytest.raises(ArtifactError, match="corrupted"):
        load_icc(tmp_path, icc_id)


def test_webp_keeps_alpha_and_quality_matters(tmp_path: Path) -> None:
    img = photo("chelsea")[:64, :64]
    alpha = np.ones((64, 64), np.float32)
    alpha[:, :32] = 0.0
    save_image(img, tmp_path / "q90.webp", quality=90, alpha=alpha)
    save_image(img, tmp_path / "q20.webp", quality=20, alpha=alpha)
    assert (tmp_path / "q20.webp").stat().st_size < (tmp_path / "q90.webp").stat().st_size
    back = read_image(tmp_path / "q90.webp")
    assert back.alpha is not None and back.alpha[:, :30].max() < 0.05 and back.alpha[:, 34:].min() > 0.95


def test_planned_final_resize_reaches_the_planned_size_without_a_warning(tmp_path: Path) -> None:
    """A 4K plan finished by a small Lanczos resize (``planning.agenda.output_size``) writes the planned size and
    keeps the content (no warning: perceive reported the plan)."""
    from fourkagent.imagewrite import write_output

    rng = np.random.default_rng(0)
    result = np.clip(rng.normal(0.5, 0.1, (80, 120, 3)), 0, 1).astype(np.float32)  # x8 of a 15x10 input
    info = {"width": 15, "height": 10, "bits": 8}
    out, notes = write_output(result, tmp_path / "o.png", info, 8, None, size=(125, 83))
    assert out.shape == (83, 125, 3) and not notes
    assert PILImage.open(tmp_path / "o.png").size == (125, 83)
    back = np.asarray(PILImage.fromarray((out * 255).round().astype(np.uint8)).resize((120, 80), PILImage.LANCZOS)) / 255.0
    assert np.abs(back.mean((0, 1)) - result.mean((0, 1))).max() < 0.01
