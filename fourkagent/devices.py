"""Which torch device and precision the torch tools use; the one place every tool asks.

The requested device is ``auto`` (CUDA when available, else CPU with all cores), ``cpu``, ``cuda``,
``cuda:N`` or ``mps``. It comes from, in order: :func:`use_device` (the runner wraps a run in it),
the LangGraph run's :class:`fourkagent.context.Context` (``device``), ``$FOURKAGENT_DEVICE``, ``auto``.
Tools call :func:`torch_device` for the device and :func:`autocast_dtype` for the weights' dtype
(fp16 on CUDA when the model supports it, as spandrel descriptors declare with ``supports_half``;
``FOURKAGENT_HALF=0`` keeps fp32), or :func:`place` for both at once. An unknown or unavailable
device is a one-line :class:`DeviceError`. Only a context variable is set, never module globals.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import sys
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from fourkagent.errors import RunError

if TYPE_CHECKING:
    import torch

DEVICE_ENV = "FOURKAGENT_DEVICE"
THREADS_ENV = "FOURKAGENT_THREADS"
HALF_ENV = "FOURKAGENT_HALF"
CHOICES = "auto, cpu, cuda, cuda:N or mps"
_SYNTAX = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_requested: ContextVar[tuple[str, int] | None] = ContextVar("fourkagent_device", default=None)


class DeviceError(RunError):
    """The requested torch device is unknown or not available on this machine."""


def parse(spec: str | None) -> str:
    """Normalise a device name (``""``/``None`` → ``auto``) without importing torch.

    Raises:
        DeviceError: not one of auto, cpu, cuda, cuda:N, mps.
    """
    name = (spec or "auto").strip().lower()
    if not _SYNTAX.match(name):
        raise DeviceError(f"unknown device {spec!r} (use {CHOICES})")
    return name


def cpu_count() -> int:
    """Cores this process may use (its CPU affinity, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def _from_run() -> tuple[str, int] | None:
    """``(device, threads)`` of the LangGraph run this call is inside, if any."""
    if "langgraph" not in sys.modules:
        return None
    try:
        from langgraph.runtime import get_runtime

        ctx = get_runtime().context
    except Exception:  # not inside a graph run
        return None
    if ctx is None or not hasattr(ctx, "device"):
        return None
    return str(getattr(ctx, "device", "") or "auto"), int(getattr(ctx, "threads", 0) or 0)


def requested() -> tuple[str, int]:
    """The requested device name and CPU thread count (0 = all cores) for the current call."""
    return _requested.get() or _from_run() or (parse(os.environ.get(DEVICE_ENV)), int(os.environ.get(THREADS_ENV) or 0))


@contextmanager
def use_device(spec: str | None, threads: int = 0) -> Iterator[str]:
    """Run the body (and graph nodes and tools it starts, which copy the context) on ``spec``.

    Raises:
        DeviceError: unknown name (availability is checked when a tool asks, or with :func:`check`).
    """
    token = _requested.set((parse(spec), max(0, int(threads or 0))))
    try:
        yield _requested.get()[0]  # type: ignore[index]
    finally:
        _requested.reset(token)


def resolve(spec: str | None = None) -> torch.device:
    """The torch device for ``spec`` (default: the requested one); ``auto`` picks CUDA when available.

    Raises:
        DeviceError: unknown name, or a device this machine / torch build does not have.
    """
    import torch

    name = parse(spec if spec is not None else requested()[0])
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError(f"device 'mps' is not available here (torch {torch.__version__}); use --device cpu or auto")
        return torch.device("mps")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise DeviceError(f"device {name!r} is not available: torch {torch.__version__} ({build}) sees no CUDA GPU; "
                          "use --device cpu or auto")
    index = int(name.split(":")[1]) if ":" in name else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device {name!r} is not available: this machine has {count} CUDA device(s) (cuda:0..{count - 1})")
    return torch.device("cuda", index)


def check(spec: str | None) -> str:
    """Fail early (one line) when ``spec`` is unknown or unavailable; ``auto`` and ``cpu`` import no torch.

    Raises:
        DeviceError: as :func:`resolve`.
    """
    name = parse(spec)
    return name if name in ("auto", "cpu") else str(resolve(name))


def torch_device() -> torch.device:
    """The device every torch tool should run on now; on CPU, torch uses the requested threads (all cores).

    Raises:
        DeviceError: the requested device is not available.
    """
    dev = resolve()
    if dev.type == "cpu":
        set_cpu_threads()
    return dev


def set_cpu_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads: ``threads``, else the requested count, else every usable core."""
    import torch

    n = int(threads or requested()[1] or cpu_count())
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def half_allowed() -> bool:
    """``False`` when ``FOURKAGENT_HALF=0`` (keep fp32 everywhere)."""
    return os.environ.get(HALF_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def autocast_dtype(model: Any = None, *, supports_half: bool | None = None,
                   device: torch.device | None = None) -> torch.dtype:
    """fp16 on CUDA when the model supports it (``supports_half`` argument, else the model's
    ``supports_half`` attribute as on spandrel descriptors, else no), otherwise fp32."""
    import torch

    dev = device if device is not None else torch_device()
    ok = supports_half if supports_half is not None else bool(getattr(model, "supports_half", False))
    return torch.float16 if dev.type == "cuda" and ok and half_allowed() else torch.float32


def float_tensor(module: Any) -> torch.Tensor | None:
    """The module's first floating-point parameter, else buffer (converted graphs hold buffers only), else None."""
    buffers = getattr(module, "buffers", tuple)  # spandrel-like wrappers expose parameters() only
    return next((t for t in (*module.parameters(), *buffers()) if t.is_floating_point()), None)


def place(model: Any, *, supports_half: bool | None = None) -> tuple[Any, torch.device, torch.dtype]:
    """Move a module or spandrel descriptor to the current device and dtype; returns it, the device and dtype."""
    import torch

    dev = torch_device()
    dtype = autocast_dtype(model, supports_half=supports_half, device=dev)
    model = model.to(dev)
    current = getattr(model, "dtype", None)
    if current is None:  # a plain module
        current = getattr(float_tensor(model), "dtype", torch.float32)
    if dtype != current:
        model = model.half() if dtype == torch.float16 else model.float()
    return model, dev, dtype


def cache_key() -> str:
    """A key for per-device caches of loaded models: ``"<device>/<dtype policy>"``."""
    return f"{resolve()}/{'half' if half_allowed() else 'fp32'}"


def describe() -> dict[str, Any]:
    """For the run report: requested and resolved device, GPU name, precision policy, threads, torch version.

    Does not import torch when no torch tool has run (then the device is only what was requested).
    """
    name, threads = requested()
    info: dict[str, Any] = {"requested": name}
    try:
        info["torch"] = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return info | {"device": "cpu" if name in ("auto", "cpu") else name, "torch": None,
                       "note": "torch is not installed: only classical tools ran"}
    if "torch" not in sys.modules and name in ("auto", "cpu"):
        return info | {"device": "cpu" if name == "cpu" else "not resolved (no torch tool ran)",
                       "threads": threads or cpu_count()}
    import torch

    try:
        dev = resolve(name)
    except DeviceError as exc:
        return info | {"device": None, "error": str(exc)}
    info |= {"device": str(dev), "torch": torch.__version__, "half_precision": dev.type == "cuda" and half_allowed()}
    if dev.type == "cuda":
        info |= {"gpu": torch.cuda.get_device_name(dev), "cuda": torch.version.cuda}
    else:
        info["threads"] = threads or cpu_count()
    return info


class ModelCache(dict):
    """Models loaded once per process and device, ``(name, cache_key()) -> model`` (thread-safe)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def load(self, name: Hashable, loader: Callable[[], Any], *, supports_half: bool | None = None) -> Any:
        """The model ``name`` on the current device: ``loader()`` placed by :func:`place` on first use
        (``supports_half=None``: the model's own ``supports_half``, as spandrel descriptors declare)."""
        key = (name, cache_key())
        model = self.get(key)
        if model is None:
            with self._lock:
                if key not in self:
                    self[key] = place(loader(), supports_half=supports_half)[0]
                model = self[key]
        return model
