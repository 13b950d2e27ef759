"""The real photo pool for fitting and benchmarks, split once into fit / validation / test.

Sources are what this machine reaches: photographs shipped in Debian wallpaper packages (fetched with
``apt-get download PACKAGE=VERSION``, pinned by version and .deb sha256, each photo by its file sha256), and
the free photos the project already used (``fourkagent.photos``: scikit-image, scikit-learn, matplotlib;
``fourkagent.package_photos``: photos inside pinned PyPI packages). Only photographs are catalogued — the
packages' renders, paintings and abstract art were looked at and left out.

The split is by source package, fixed here and never changed: every photo the project fitted anything on
before this pool (the library photos, the PyPI photos) is **fit**; of the Debian packages,
``lomiri-wallpapers-16.04`` is **fit**, ``mate-backgrounds`` is **validation** and
``plasma-workspace-wallpapers`` + ``lomiri-wallpapers-20.04`` are **test**. The test split is only reported
on, never used to choose anything.

Photos are normalised once (RGB; downscaled with a box filter so the short side is at most
``NORMAL_SHORT_SIDE`` px, which also averages away the wallpapers' own JPEG noise) and cached as PNG under
``$FOURKAGENT_CACHE/pool``; the .deb files are kept under ``$FOURKAGENT_CACHE/debs``.

Usage: ``python training/photo_pool.py`` (fetch everything, print sources, licences and counts per split);
``--list`` prints the catalogue without fetching.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fourkagent.context import default_cache_dir  # noqa: E402
from fourkagent.errors import FourKError  # noqa: E402
from fourkagent.weights import sha256_file  # noqa: E402

SPLITS = ("fit", "validation", "test")
NORMAL_SHORT_SIDE = 800
"""Short side of a normalised pool photo (px): 2560×1600 wallpapers become 1280×800."""


class PoolError(FourKError):
    """A pool source cannot be fetched, or a file fails its hash check."""


@dataclass(frozen=True)
class DebSource:
    """One pinned Debian package: name, exact version, sha256 of the .deb, licence of its photos, split."""

    package: str
    version: str
    sha256: str
    licence: str
    split: str
    root: str  # folder of the photos inside the package


@dataclass(frozen=True)
class PoolPhoto:
    """One photograph: its name, source, path below the source's root and file sha256."""

    name: str
    source: str  # a DebSource.package, or "library" / "pypi"
    member: str
    sha256: str
    licence: str = ""


SOURCES: dict[str, DebSource] = {s.package: s for s in (
    DebSource("lomiri-wallpapers-16.04", "20.04.0-2",
              "a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab",
              "CC-BY-4.0 / CC-BY-SA-4.0 / CC0-1.0 per file (debian/copyright)", "fit", "usr/share/backgrounds"),
    DebSource("mate-backgrounds", "1.26.0-1", "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04",
              "GPL-2+", "validation", "usr/share/backgrounds/mate/nature"),
    DebSource("plasma-workspace-wallpapers", "4:5.27.5-2",
              "32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b", "GPL-2+", "test",
              "usr/share/wallpapers"),
    DebSource("lomiri-wallpapers-20.04", "20.04.0-2",
              "d44e89b8473aafe64a5b678f014862dc31335aaaf18665c544d985d854f1a709", "CC-BY-SA-3.0", "test",
              "usr/share/backgrounds"),
)}


def _photos(source: str, rows: str, licence: str = "") -> tuple[PoolPhoto, ...]:
    """Catalogue rows ``member sha256`` (one per line) of one source."""
    out = []
    for line in rows.strip().splitlines():
        member, digest = line.split()
        name = Path(member).parts[0] if source == "plasma-workspace-wallpapers" else Path(member).stem.split("_by_")[0]
        out.append(PoolPhoto(name, source, member, digest, licence))
    return tuple(out)


DEB_PHOTOS: tuple[PoolPhoto, ...] = (
    *_photos("lomiri-wallpapers-16.04", """
Bridge_by_Sander_Klootwijk.jpg bd86b081f9975e2b83527f71e49b9271a8ab40885428395969d9f7d834d7f050
Dragonfly_by_Bolly.jpg af5af17841009732def24b09bb1e669a1b09d2b4bdeee7812c371101c30d2bb3
Picture_0B_by_freespace.jpg c8c0ab18e48d9e0419fe42881112137f3afafc27dfddc29ec3a6d54c56d225ad
Picture_1A_by_freespace.jpg 89e86af38d04daaef975665dc2127e9fa76f0fd68f4eea105a2d0ae3390b010b
Wine_by_Jakkub_Mede.jpg d2e96e6d4da40dd804b3d0ce295e94de04a2d7d9b6785d42cd9d92ba58bced74
aitzgorri_by_Aitzol_Berasategi.jpg 66268e7b48f8854d36a28765fac6e23ec1aee251daa6da1f64715f201020ad36
free_by_Peter_Nerlich.jpg 85a5453c2fed514c75973016f3d862aca62eb7ca087618822469274ac1092373
friends_by_Aitzol_Berasategi.jpg cc40e313c74e421edffe3403def413c16878ce14661cce7ec5915baeab35538d
greentock_by_Peter_Nerlich.jpg e7b20e2db9dcd6e2b278ca55873c2110b35d89cd38b04d0b18728726888e6889
life_by_Aitzol_Berasategi.jpg 4c119350ead80201fe256850c3d316309ddfb4bdf10b235ce982dcde0c667c05
picosdeeuropa_by_Aitzol_Berasategi.jpg 414d0072b2f6f2c555deafeaef6e45c4fed6fa9ad26eba6560ca8803959cf97a
seeding_by_Clements_Engelhardt.jpg a5634d1ab5e41a3568e92d4a894a500c92b891f9ff734e50bd224d6e185a605f
sunset_by_Aitzol_Berasategi.jpg 474dab6a4b9f94dc76c29dfe30e9f5db4af0fd2e33fe5d695f8152b371efca18
"""),
    *_photos("mate-backgrounds", """
Aqua.jpg 5c30118205982da441bf7e6a1ada636a8a0be879408140b3148280c665ed6bce
Blinds.jpg f7aac0dcc2e06d0491643e84df3da1d9db7c4610f58806a880d56e074799f600
Dune.jpg 8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91
FreshFlower.jpg 972b0a0c4e5e3fa93f4f244fc84bc64b121a5eac3aaa5856f1308c1f38a02f8e
Garden.jpg d3095ee09d425ef23d27155412136cf14fc3c9af76ca58b452f55e23da324e78
GreenMeadow.jpg 8fa0de0aa4089f7319c9fb7a6d006d4cab6023e8c8853731557cff53567b4832
LadyBird.jpg e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d
RainDrops.jpg 3e4ea9671c28c90a86cf67b3db9daf18c4741587c596333a7529ca589aaa0c16
Storm.jpg 77ca53077831d3237f73393a91fc879158abc046d852941c26e90de336356957
TwoWings.jpg 665e5abf8a5399070a91a9a8e455fe071e5b61697ff78fdeda4e9843ef545aeb
Wood.jpg 19c78500ac00a622e19907ab9cc7d06d46fe08c4a6142759a84195696150ec07
YellowFlower.jpg 254da96256acb7add685679775a04d1e4a5bc8cd13e5a5a3d61351ce198a5306
"""),
    *_photos("plasma-workspace-wallpapers", """
BytheWater/contents/images/2560x1600.jpg c272434ef39f2abf1ed48a15a8910088020f3165329a5092f3940ec9464bc05f
ColdRipple/contents/images/2560x1600.jpg 05bef6722fc0ed81292cceb3ed026c38d17e510f3c84be7d68610c2b1a723c3f
ColorfulCups/contents/images/2560x1600.jpg 6e0f3a72feb5a4a9fec191b77e34874c3c69e2d93040deb3f07773e73385023d
DarkestHour/contents/images/2560x1600.jpg 8e3703fae3a3c217b1fc2b399b706cd3720584268d071ba153e4809daa55f1ce
EveningGlow/contents/images/2560x1600.jpg 586682dcb362b9f620068f10138f87d0d3649939aef238adc5807cb951976a7a
FallenLeaf/contents/images/2560x1600.jpg 95603a6560c7e8d50e0e03b3f4adbe39c5258c72528e74e4ecaea1daf4e499de
Grey/contents/images/2560x1600.jpg 88c31d8944b7e6935d1b9a296654c692f0772cb512491713eb30a972a604c0ed
Kite/contents/images/2560x1600.jpg bdca288ce296a981e80659c021cf707caddc702c0c8d4247e60bd618476d47f8
OneStandsOut/contents/images/2560x1600.jpg cb507baf1dafdcae362264f3aba9483ed4be5f6c9fdd770f0ec0920c6d9e80fd
Path/contents/images/2560x1600.jpg 7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8
summer_1am/contents/images/2560x1600.jpg c868b50789591dd42910153c768053f1ba0a98cb36bbfc2b7a96a1045d0477f8
"""),
    *_photos("lomiri-wallpapers-20.04", """
Kleiber_by_Lukas_Baubkus.jpg 6572410c09f4492c74ccadde133565a14c0161617d5917d4c820c66d65a44ba7
"""),
)
"""The Debian photographs (renders, paintings and abstract wallpapers of the same packages excluded)."""


def split_of(photo: PoolPhoto) -> str:
    """The photo's split: its source package's, and ``fit`` for the photos used before the pool existed."""
    return SOURCES[photo.source].split if photo.source in SOURCES else "fit"


def deb_path(source: DebSource, folder: Path) -> Path:
    """The pinned .deb in ``folder``, downloaded with ``apt-get download`` when absent.

    Raises:
        PoolError: apt-get failed (offline, the version is gone) or the file has another sha256.
    """
    folder.mkdir(parents=True, exist_ok=True)
    found = [p for p in folder.glob(f"{source.package}_*.deb") if sha256_file(p) == source.sha256]
    if found:
        return found[0]
    if shutil.which("apt-get") is None:
        raise PoolError(f"{source.package}: apt-get is not available (Debian/Ubuntu only)")
    done = subprocess.run(["apt-get", "download", f"{source.package}={source.version}"], cwd=folder,
                          capture_output=True, text=True, timeout=900)
    found = [p for p in folder.glob(f"{source.package}_*.deb") if sha256_file(p) == source.sha256]
    if done.returncode != 0 or not found:
        why = (done.stderr.strip().splitlines() or ["the downloaded .deb has another sha256"])[-1]
        raise PoolError(f"{source.package}={source.version}: apt-get download failed: {why}")
    return found[0]


def extract(deb: Path, members: list[str], into: Path) -> None:
    """Unpack ``members`` (paths inside the package) of ``deb`` into ``into`` (with dpkg-deb)."""
    with tempfile.TemporaryDirectory(dir=into.parent) as tmp:
        done = subprocess.run(["dpkg-deb", "-x", str(deb), tmp], capture_output=True, text=True)
        if done.returncode != 0:
            raise PoolError(f"{deb.name}: dpkg-deb failed: {done.stderr.strip()}")
        for m in members:
            src = Path(tmp) / m
            if not src.is_file():
                raise PoolError(f"{deb.name}: {m} is missing")
            dst = into / m
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src.resolve(), dst)


def normalise(path: Path, short_side: int = NORMAL_SHORT_SIDE) -> np.ndarray:
    """The photo as uint8 RGB, box-downscaled by an integer factor so its short side is ≤ ``short_side``."""
    from PIL import Image as PILImage

    with PILImage.open(path) as im:
        rgb = im.convert("RGB")
    f = -(-min(rgb.size) // short_side)
    if f > 1:
        rgb = rgb.reduce(f)
    return np.asarray(rgb)


def _cached(photo: PoolPhoto, root: Path) -> Path:
    return root / split_of(photo) / f"{photo.source}__{photo.name}.png"


def fetch(root: Path | None = None, debs: Path | None = None, log=print) -> list[Path]:
    """Every Debian pool photo normalised into ``root`` (default ``$FOURKAGENT_CACHE/pool``); returns their paths.

    Raises:
        PoolError: a package cannot be fetched or a photo fails its sha256.
    """
    from PIL import Image as PILImage

    root = root or default_cache_dir("pool")
    debs = debs or default_cache_dir("debs")
    out = []
    for name, source in SOURCES.items():
        todo = [p for p in DEB_PHOTOS if p.source == name and not _cached(p, root).exists()]
        if todo:
            deb = deb_path(source, debs)
            with tempfile.TemporaryDirectory(dir=debs) as tmp:
                members = [f"{source.root}/{p.member}" for p in todo]
                extract(deb, members, Path(tmp))
                for p, m in zip(todo, members):
                    if sha256_file(Path(tmp) / m) != p.sha256:
                        raise PoolError(f"{deb.name}: {m} has an unexpected sha256")
                    dst = _cached(p, root)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    PILImage.fromarray(normalise(Path(tmp) / m)).save(dst)
            log(f"{name} {source.version}: {len(todo)} photos normalised")
        out += [_cached(p, root) for p in DEB_PHOTOS if p.source == name]
    return out


def library_photos() -> dict[str, np.ndarray]:
    """The photos used before the pool (all in the fit split): ``fourkagent.photos`` and ``package_photos``."""
    from fourkagent.package_photos import package_photo_sources
    from fourkagent.photos import decode, photo_sources

    out = {}
    for name, loader in (photo_sources() | package_photo_sources()).items():
        try:
            out[name] = decode(loader)
        except Exception as exc:  # noqa: BLE001 - a data file missing from this installation, or offline
            print(f"  skipped {name}: {exc}", file=sys.stderr)
    return out


def photos(split: str, root: Path | None = None, library: bool = True) -> dict[str, np.ndarray]:
    """The normalised photos of one split by name (fetched when needed); ``fit`` also has the library photos
    unless ``library`` is False."""
    if split not in SPLITS:
        raise PoolError(f"unknown split {split!r} (one of {', '.join(SPLITS)})")
    from PIL import Image as PILImage

    root = root or default_cache_dir("pool")
    wanted = [p for p in DEB_PHOTOS if split_of(p) == split]
    if any(not _cached(p, root).exists() for p in wanted):
        fetch(root)
    out = {}
    for p in wanted:
        with PILImage.open(_cached(p, root)) as im:
            out[p.name] = np.asarray(im.convert("RGB"))
    if split == "fit" and library:
        out |= {n: v for n, v in library_photos().items() if n not in out}
    return out


def crops(img: np.ndarray, side: int, count: int) -> Iterator[np.ndarray]:
    """Up to ``count`` ``side``² crops of one photo: the one with the most detail first (gradient energy, so a
    crop is not all sky), then others as far from the chosen ones as the photo allows. Deterministic."""
    h, w = img.shape[:2]
    if min(h, w) < side:
        return
    grey = img.astype(np.float32).mean(-1)
    energy = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1]
    ys = np.linspace(0, h - side, max(1, (h - side) // (side // 4) + 1)).astype(int)
    xs = np.linspace(0, w - side, max(1, (w - side) // (side // 4) + 1)).astype(int)
    grid = [(y, x, float(energy[y : y + side - 1, x : x + side - 1].mean())) for y in ys for x in xs]
    chosen: list[tuple[int, int]] = []
    for _ in range(count):
        def merit(c: tuple[int, int, float]) -> float:
            far = min((max(abs(c[0] - y), abs(c[1] - x)) for y, x in chosen), default=side)
            return c[2] if far >= side else -1.0  # no overlap with a chosen crop
        best = max(grid, key=merit)
        if merit(best) < 0:
            return
        chosen.append(best[:2])
        yield np.ascontiguousarray(img[best[0] : best[0] + side, best[1] : best[1] + side])


def sha_of(arr: np.ndarray) -> str:
    """A short content hash of a crop (for benchmark rows)."""
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:12]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="print the catalogue without fetching")
    args = ap.parse_args()
    if not args.list:
        fetch()
    print("| split | source | version | licence | photos |\n|---|---|---|---|---|")
    for name, s in SOURCES.items():
        n = sum(p.source == name for p in DEB_PHOTOS)
        print(f"| {s.split} | Debian `{name}` | {s.version} | {s.licence} | {n} |")
    if not args.list:
        lib = library_photos()
        print(f"| fit | `fourkagent.photos` + `package_photos` (scikit-image, scikit-learn, matplotlib, PyPI) | pinned "
              f"by the environment / catalogue | BSD / MIT / public domain | {len(lib)} |")
    for split in SPLITS:
        print(f"{split}: {sum(split_of(p) == split for p in DEB_PHOTOS)} Debian photos")


if __name__ == "__main__":
    main()
