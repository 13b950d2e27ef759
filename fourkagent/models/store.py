"""The user model directory: list, add (verify + atomic copy) and pull (resumable, verified download).

Layout: ``<model_dir>/<file>`` plus ``<file>.json`` (name, category, scale, arch, sha256, size) written
after the weights are in place. Downloads go to ``<file>.part`` and are renamed only once complete and
verified; an interrupted transfer keeps the ``.part`` so the next ``pull`` resumes with an HTTP Range
request. Metric weights land where pyiqa / CLIP / the Hugging Face hub cache look for them.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from http.client import HTTPException
from pathlib import Path
from typing import Any

from fourkagent.context import default_home
from fourkagent.errors import FourKError
from fourkagent.models.catalogue import METRICS, MODELS, MetricFile, ModelEntry, find_model, metric_files
from fourkagent.vocabulary import CATEGORIES
from fourkagent.weights import SAFETENSORS_SUFFIXES, TORCH_SUFFIXES, load_state_dict, sha256_file

Progress = Callable[[str, int, int | None], None]
"""``progress(label, bytes_done, bytes_total_or_None)``."""
CHUNK = 1 << 16
_HF_SNAPSHOT = "fourkagent"
"""Snapshot id used when placing a file in the Hugging Face hub cache (found with HF_HUB_OFFLINE=1)."""


class ModelStoreError(FourKError):
    """Installing or downloading weights failed (the message is one line)."""


def default_model_dir() -> Path:
    """``$FOURKAGENT_MODEL_DIR``, else ``<home>/models`` (as :class:`fourkagent.context.Context` does)."""
    return Path(os.environ.get("FOURKAGENT_MODEL_DIR") or Path(default_home()) / "models").expanduser()


@dataclass(frozen=True)
class Installed:
    """A weights file present in the model directory."""

    name: str
    path: Path
    category: str
    scale: int
    arch: str
    sha256: str | None
    """Digest to verify before every load (catalogue's, else the one recorded at install)."""
    entry: ModelEntry | None = None
    problem: str | None = None
    """Why it cannot be used (size mismatch, unreadable record...), else None."""
    extra: dict[str, Any] = field(default_factory=dict)


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def installed(model_dir: str | os.PathLike[str] | None = None, *, verify: bool = False) -> list[Installed]:
    """Weights present in ``model_dir``: recorded installs plus catalogue files copied in by hand.

    Sizes are always checked (cheap); ``verify=True`` also hashes every file.
    """
    root = Path(model_dir) if model_dir else default_model_dir()
    if not root.is_dir():
        return []
    out: list[Installed] = []
    seen: set[Path] = set()
    for rec_path in sorted(root.glob("*.json")):
        path = rec_path.with_name(rec_path.name[: -len(".json")])
        if not path.is_file():
            continue
        seen.add(path)
        try:
            rec = json.loads(rec_path.read_text(encoding="utf-8"))
            entry = find_model(rec.get("name", ""))
            item = Installed(rec["name"], path, rec["category"], int(rec["scale"]), rec["arch"],
                             (entry.sha256 if entry else None) or rec.get("sha256"), entry,
                             extra={"size": rec.get("size")})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            out.append(Installed(path.name, path, "super-resolution", 1, "?", None,
                                 problem=f"unreadable record {rec_path.name} ({type(exc).__name__})"))
            continue
        out.append(_checked(item, verify))
    for entry in MODELS:  # catalogue files placed by hand, without a record
        path = root / entry.file
        if path.is_file() and path not in seen:
            out.append(_checked(Installed(entry.name, path, entry.category, entry.scale, entry.arch, entry.sha256,
                                          entry), verify))
    return out


def _checked(item: Installed, verify: bool) -> Installed:
    want = (item.entry.size if item.entry else None) or item.extra.get("size")
    size = item.path.stat().st_size
    problem = None
    if want is not None and size != int(want):
        problem = f"{item.path.name} has {size} bytes, expected {want} (damaged or replaced; run `4kagent models add` again)"
    elif verify and item.sha256 and not sha256_file(item.path).startswith(item.sha256):
        problem = f"{item.path.name}: sha256 mismatch (damaged or replaced)"
    return Installed(item.name, item.path, item.category, item.scale, item.arch, item.sha256, item.entry, problem,
                     item.extra)


def describe_weights(path: Path, sha256: str | None = None) -> Any:
    """Load ``path`` through the safe, hash-checked loader and let spandrel detect it.

    Raises:
        ModelStoreError: spandrel is missing or does not recognise the weights.
        WeightsError: hash mismatch or unsafe/corrupt file.
    """
    state = load_state_dict(path, sha256)
    try:
        from spandrel import ModelLoader
    except ImportError:
        raise ModelStoreError("checking weights needs spandrel (pip install spandrel)") from None
    _install_extra_arches()
    try:
        return ModelLoader(device="cpu").load_from_state_dict(state)
    except Exception as exc:
        msg = " ".join(str(exc).split())[:160]
        raise ModelStoreError(f"{path.name}: not a model spandrel can load ({type(exc).__name__}: {msg})") from None


def _install_extra_arches() -> None:
    try:
        import spandrel_extra_arches  # type: ignore[import-not-found]
    except ImportError:
        return
    try:
        spandrel_extra_arches.install(ignore_duplicates=True)
    except Exception:  # already installed or an incompatible version: core spandrel still works
        pass


def add(path: str | os.PathLike[str], name: str | None = None, *, model_dir: str | os.PathLike[str] | None = None,
        category: str | None = None) -> Installed:
    """Install a local weights file: verify (catalogue sha256, spandrel load), atomic copy, record.

    ``name`` is a catalogue name, or a new name for a file outside the catalogue; by default the
    catalogue entry with the same file name, else the file's stem. Outside the catalogue the category
    comes from ``category`` or spandrel (scale > 1 → super-resolution).

    Raises:
        ModelStoreError: missing file, unknown format, unloadable, unknown category. WeightsError: hash mismatch.
    """
    src = Path(path)
    if not src.is_file():
        raise ModelStoreError(f"{src}: no such file")
    entry = find_model(name) if name else find_model(src.name)
    pickled = (".pkl",) if entry is not None and entry.loader == "diffusers" else ()  # OSEDiff / PiSA-SR releases
    if src.suffix.lower() not in SAFETENSORS_SUFFIXES + TORCH_SUFFIXES + pickled:
        raise ModelStoreError(f"{src.name}: unknown weights format (use .safetensors, .pth, .pt, .ckpt or .bin)")
    root = Path(model_dir) if model_dir else default_model_dir()
    if entry is not None and entry.loader == "diffusers":
        desc = None
    else:
        desc = describe_weights(src, entry.sha256 if entry else None)  # raises on hash mismatch / unloadable
    label = entry.name if entry else (name or src.stem)
    arch = entry.arch if entry else desc.architecture.id
    scale = entry.scale if entry else int(desc.scale)
    cat = entry.category if entry else (category or _guess_category(desc))
    if cat not in CATEGORIES:
        raise ModelStoreError(f"{label}: unknown category {cat!r}; pass --category (one of: {', '.join(CATEGORIES)})")
    if entry is not None and desc is not None and int(desc.scale) != entry.scale:
        raise ModelStoreError(f"{src.name}: spandrel sees a x{desc.scale} model, the catalogue's {label} is x{entry.scale}")
    dest = root / (entry.file if entry else f"{_safe(label)}{src.suffix.lower()}")
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=root)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
            shutil.copyfileobj(inp, out, CHUNK * 16)
            out.flush()
            os.fsync(out.fileno())
        digest = sha256_file(tmp)
        if entry is not None and entry.sha256 and not digest.startswith(entry.sha256):
            raise ModelStoreError(f"{src.name}: changed while being copied (sha256 mismatch); nothing installed")
        os.replace(tmp, dest)
    except OSError as exc:
        raise ModelStoreError(_os_message(exc, dest)) from None
    finally:
        tmp.unlink(missing_ok=True)
    return _record(dest, label, cat, scale, arch, digest, source=str(src.resolve()))


def _guess_category(desc: Any) -> str | None:
    if int(desc.scale) > 1:
        return "super-resolution"
    if getattr(desc, "purpose", "") == "FaceSR":
        return "face restoration"
    return None


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label).strip("._") or "model"


def _record(dest: Path, name: str, category: str, scale: int, arch: str, digest: str, *, source: str) -> Installed:
    rec = {"name": name, "category": category, "scale": scale, "arch": arch, "sha256": digest,
           "size": dest.stat().st_size, "source": source}
    _write_atomic(_record_path(dest), json.dumps(rec, indent=2))
    entry = find_model(name)
    return Installed(name, dest, category, scale, arch, (entry.sha256 if entry else None) or digest, entry,
                     extra={"size": rec["size"]})


def _os_message(exc: OSError, where: Path) -> str:
    if exc.errno == errno.ENOSPC:
        return f"disk full while writing {where}; nothing was installed (free some space and retry)"
    return f"{exc.filename or where}: {exc.strerror or exc}"


def _url(url: str, base_url: str | None) -> str:
    if not base_url:
        return url
    return base_url.rstrip("/") + "/" + urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]


def download(url: str, dest: Path, sha256: str | None = None, progress: Progress | None = None,
             timeout: float = 30.0) -> str:
    """Fetch ``url`` into ``dest`` via ``dest.part`` (resumed with a Range request); returns the sha256.

    Raises:
        ModelStoreError: HTTP error, no network, interrupted transfer (the ``.part`` is kept for
            resuming), hash mismatch or disk full (the ``.part`` is removed).
    """
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "fourkagent", **({"Range": f"bytes={have}-"} if have else {})}
    host = urllib.parse.urlsplit(url).netloc or url
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .part already holds everything
            return _finish(part, dest, sha256)
        raise ModelStoreError(f"{dest.name}: download failed: HTTP {exc.code} {exc.reason} ({url})") from None
    except (urllib.error.URLError, socket.timeout, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelStoreError(f"{dest.name}: cannot reach {host} ({reason}); no network? download it elsewhere "
                              "and run `4kagent models add FILE`") from None
    with resp:
        if have and resp.status != 206:  # server ignored the Range: start over
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        done = have
        try:
            with part.open("ab" if have else "wb") as out:
                while block := resp.read(CHUNK):
                    out.write(block)
                    done += len(block)
                    if progress:
                        progress(dest.name, done, total)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                part.unlink(missing_ok=True)
                raise ModelStoreError(_os_message(exc, dest)) from None
            if isinstance(exc, (ConnectionError, socket.timeout)):
                done = -1
            else:
                raise ModelStoreError(_os_message(exc, part)) from None
        except HTTPException:
            done = -1
    if done < 0 or (total is not None and done < total):
        got = part.stat().st_size if part.is_file() else 0
        raise ModelStoreError(f"{dest.name}: transfer interrupted after {got} of {total or '?'} bytes; "
                              "run the same command again to resume")
    return _finish(part, dest, sha256)


def _finish(part: Path, dest: Path, sha256: str | None) -> str:
    digest = sha256_file(part)
    if sha256 and not digest.startswith(sha256.lower()):
        part.unlink(missing_ok=True)
        raise ModelStoreError(f"{dest.name}: sha256 mismatch (expected {sha256[:16]}..., got {digest[:16]}...); "
                              "the download was removed")
    os.replace(part, dest)
    return digest


def metric_path(m: MetricFile) -> Path:
    """Where pyiqa / CLIP / hpsv2 (via the Hugging Face hub cache) look for metric file ``m``."""
    from fourkagent.perception.iqa import cache_dirs

    if m.cache != "hf":
        return cache_dirs()[m.cache] / m.file
    hub = os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME") or "~/.cache/huggingface") / "hub"
    folder = Path(hub).expanduser() / ("models--" + str(m.hf_repo).replace("/", "--"))
    return folder / "snapshots" / _HF_SNAPSHOT / m.file


def pull(names: Iterable[str], base_url: str | None = None, *, model_dir: str | os.PathLike[str] | None = None,
         progress: Progress | None = None, timeout: float = 30.0) -> list[Path]:
    """Download catalogue models (by name) and metric weights (by metric name); returns the installed paths.

    ``base_url`` replaces each URL's directory (mirrors, tests). Already installed files are skipped.

    Raises:
        ModelStoreError: unknown name, weights not directly downloadable, or any download error.
    """
    root = Path(model_dir) if model_dir else default_model_dir()
    out: list[Path] = []
    for name in names:
        entry, mfiles = find_model(name), metric_files(name)
        if entry is None and not mfiles:
            raise ModelStoreError(f"unknown model {name!r}; see `4kagent models`")
        if entry is not None:
            out.append(_pull_model(entry, root, base_url, progress, timeout))
        for m in mfiles:
            dest = metric_path(m)
            if not dest.is_file():
                download(_url(m.url, base_url), dest, m.sha256, progress, timeout)
                if m.cache == "hf":
                    ref = dest.parents[2] / "refs" / "main"
                    ref.parent.mkdir(parents=True, exist_ok=True)
                    _write_atomic(ref, _HF_SNAPSHOT)
            out.append(dest)
    return out


def _pull_model(entry: ModelEntry, root: Path, base_url: str | None, progress: Progress | None,
                timeout: float) -> Path:
    dest = root / entry.file
    if _record_path(dest).is_file() and dest.is_file():
        return dest
    if not entry.direct and not base_url:
        raise ModelStoreError(f"{entry.name}: the official weights are not directly downloadable ({entry.url}); "
                              f"download {entry.file} in a browser and run `4kagent models add FILE`")
    digest = download(_url(entry.url, base_url), dest, entry.sha256, progress, timeout)
    if entry.loader != "diffusers":
        try:
            describe_weights(dest, digest)
        except FourKError:
            dest.unlink(missing_ok=True)
            raise
    _record(dest, entry.name, entry.category, entry.scale, entry.arch, digest, source=_url(entry.url, base_url))
    return dest


def listing(model_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Catalogue plus installed files, one row each (for ``4kagent models``)."""
    have = {i.name: i for i in installed(model_dir)}
    rows: list[dict[str, Any]] = []
    for e in MODELS:
        i = have.pop(e.name, None)
        rows.append({**{k: v for k, v in asdict(e).items() if k != "note"}, "kind": "model",
                     "installed": i is not None and i.problem is None, "path": str(i.path) if i else None,
                     "problem": i.problem if i else None, "note": e.note})
    for i in have.values():
        rows.append({"name": i.name, "kind": "model", "category": i.category, "scale": i.scale, "arch": i.arch,
                     "licence": "user file", "file": i.path.name, "approx_mb": round(i.path.stat().st_size / 2**20, 1),
                     "installed": i.problem is None, "path": str(i.path), "problem": i.problem, "note": "not in the catalogue"})
    from fourkagent.models import npm

    for n in npm.NPM_MODELS.values():
        reason, path = npm.unavailable_reason(n.name), npm.converted_path(n.name)
        rows.append({"name": n.name, "kind": "npm", "category": n.category, "scale": n.scale, "arch": n.arch,
                     "licence": n.licence, "file": n.file_name, "source": n.spec, "approx_mb": n.approx_mb,
                     "installed": reason is None, "path": str(path),
                     "problem": reason if path.is_file() else None,  # a file that is there but unusable
                     "note": f"trained on {n.trained_on}"})
    for m in METRICS:
        dest = metric_path(m)
        rows.append({"name": m.metric, "kind": "metric", "category": "metric", "scale": 1, "arch": m.cache,
                     "licence": m.licence, "file": m.file, "url": m.url, "approx_mb": m.approx_mb,
                     "installed": dest.is_file(), "path": str(dest), "problem": None, "note": ""})
    return rows

