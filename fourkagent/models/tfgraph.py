"""TensorFlow.js graph models (``model.json`` + weight shards) run as torch modules.

UpscalerJS ships MAXIM (produced by jax2tf) as TF.js *graph* models: a TensorFlow ``GraphDef`` in JSON
whose ``Const`` nodes are filled from binary shards listed in the weights manifest. This module turns
such a graph into a :class:`GraphProgram` — the nodes in topological order, each an op name
(:data:`fourkagent.models.tfgraph_ops.OPS`), input slots and decoded attributes — plus its constants,
and runs it with :class:`TFGraphModule`, a ``torch.nn.Module`` whose buffers are the constants.

Conversion folds every node whose inputs are all constants (shape arithmetic, reshaped weights),
drops what the output does not need, and stores conv filters in torch's layout. The result is
saved as one safetensors file: the constants as tensors, the program as JSON in the metadata.
Numerical agreement with TensorFlow's executor is measured by ``benchmarks/maxim.py``.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fourkagent.models.tfgraph_ops import OPS, UnsupportedOpError

PROGRAM_VERSION = "1"
"""Bumped when the program format or the folding changes, so stale cache files are not reused."""
_SKIP_ATTRS = {"T", "_output_shapes", "use_cudnn_on_gpu", "N", "Tparams", "Tindices", "Taxis", "Tshape",
               "Tperm", "SrcT", "Truncate", "Index", "Tout", "dtype", "value", "shape", "Tdim"}
"""Attributes no op reads (input dtypes, shape hints); ``DstT`` (Cast) and ``Tidx`` (Range) are kept."""


@dataclass(frozen=True)
class Node:
    """One op of the program: inputs are slots of earlier nodes (or constants, by slot too)."""

    op: str
    inputs: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphProgram:
    """A graph in topological order. Slots ``0..n_consts-1`` are constants, ``n_consts`` is the input,
    then one slot per node; ``output`` names the slot returned."""

    n_consts: int
    nodes: tuple[Node, ...]
    output: int

    def to_json(self) -> str:
        """Compact JSON (stored in the safetensors metadata)."""
        return json.dumps({"version": PROGRAM_VERSION, "n_consts": self.n_consts, "output": self.output,
                           "nodes": [[n.op, list(n.inputs), n.attrs] for n in self.nodes]}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> GraphProgram:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: another program version.
        """
        d = json.loads(text)
        if d.get("version") != PROGRAM_VERSION:
            raise ValueError(f"graph program version {d.get('version')!r}, expected {PROGRAM_VERSION}")
        return cls(int(d["n_consts"]), tuple(Node(op, tuple(ins), attrs) for op, ins, attrs in d["nodes"]),
                   int(d["output"]))


# --------------------------------------------------------------------------- reading model.json


def _attr(value: dict[str, Any]) -> Any:
    if "s" in value:
        return base64.b64decode(value["s"]).decode("utf-8")
    if "i" in value:
        return int(value["i"])
    if "f" in value:
        return float(value["f"])
    if "b" in value:
        return bool(value["b"])
    if "type" in value:
        return value["type"]
    if "list" in value:
        lst = value["list"]
        if "i" in lst:
            return [int(v) for v in lst["i"]]
        if "s" in lst:
            return [base64.b64decode(v).decode("utf-8") for v in lst["s"]]
        return [float(v) for v in lst.get("f", [])]
    raise UnsupportedOpError(f"attribute {sorted(value)}")


def read_weights(model_dir: Path, manifest: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Every manifest weight by name, read from the concatenated shards of each group.

    Raises:
        ValueError: a shard is shorter than the manifest says, or a dtype is not float32/int32.
    """
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        blob = b"".join((model_dir / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            if w["dtype"] not in ("float32", "int32") or "quantization" in w:
                raise ValueError(f"weight {w['name']}: dtype {w['dtype']} not supported")
            dtype = np.dtype(w["dtype"])
            count = int(np.prod(w["shape"])) if w["shape"] else 1
            if offset + count * dtype.itemsize > len(blob):
                raise ValueError(f"weight shards end before {w['name']} (truncated download?)")
            out[w["name"]] = np.frombuffer(blob, dtype, count, offset).reshape(w["shape"]).copy()
            offset += count * dtype.itemsize
    return out


def _as_tensor(arr: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.array(arr, copy=True, order="C"))  # ascontiguousarray would make 0-d arrays 1-d
    return t.long() if t.dtype == torch.int32 else t


def parse_graph(model_dir: str | os.PathLike[str]) -> tuple[GraphProgram, list[torch.Tensor]]:
    """Read ``model.json`` and its shards; fold constants; return the program and its constants.

    Raises:
        UnsupportedOpError: an op or attribute the executor does not implement.
        ValueError: the graph is not a single-input, single-output TF.js graph model.
    """
    root = Path(model_dir)
    model = json.loads((root / "model.json").read_text(encoding="utf-8"))
    if model.get("format") != "graph-model":
        raise ValueError(f"{root / 'model.json'} is a {model.get('format')!r}, not a graph-model")
    weights = read_weights(root, model["weightsManifest"])
    raw = {n["name"]: n for n in model["modelTopology"]["node"]}
    (inp,) = [name for name, n in raw.items() if n["op"] == "Placeholder"]
    out_name = model.get("signature", {}).get("outputs", {}).get("output_0", {}).get("name", "Identity:0")
    out_name = out_name.split(":")[0]

    values: dict[str, torch.Tensor] = {}
    for name, n in raw.items():
        if n["op"] == "Const":
            if name not in weights:
                raise ValueError(f"constant {name} has no weights in the manifest")
            values[name] = _as_tensor(weights[name])
    order = _topological(raw, out_name)
    unsupported = sorted({raw[n]["op"] for n in order if raw[n]["op"] not in OPS and raw[n]["op"] not in ("Const", "Placeholder")})
    if unsupported:
        raise UnsupportedOpError(f"ops not implemented: {', '.join(unsupported)}")

    def inputs_of(name: str) -> list[str]:
        ins = [i for i in raw[name].get("input", []) if not i.startswith("^")]
        for i in ins:
            if ":" in i and not i.endswith(":0"):
                raise UnsupportedOpError(f"{name} reads output {i} (multi-output ops are not supported)")
        return [i.split(":")[0] for i in ins]

    attrs: dict[str, dict[str, Any]] = {}
    dynamic: list[str] = []
    with torch.inference_mode():
        for name in order:
            n = raw[name]
            if n["op"] in ("Const", "Placeholder"):
                continue
            attrs[name] = {k: _attr(v) for k, v in n.get("attr", {}).items() if k not in _SKIP_ATTRS}
            ins = inputs_of(name)
            if all(i in values for i in ins):  # fold
                values[name] = OPS[n["op"]]([values[i] for i in ins], attrs[name])
            else:
                dynamic.append(name)
    _filters_to_torch_layout(raw, dynamic, inputs_of, values)

    consts: list[torch.Tensor] = []
    slot: dict[str, int] = {}
    needed = {i for name in dynamic for i in inputs_of(name) if i in values}
    position = {name: k for k, name in enumerate(order)}
    for name in sorted(needed, key=position.__getitem__):
        slot[name] = len(consts)
        consts.append(values[name].contiguous())
    slot[inp] = len(consts)
    nodes = []
    for name in dynamic:
        nodes.append(Node(raw[name]["op"], tuple(slot[i] for i in inputs_of(name)), attrs[name]))
        slot[name] = len(consts) + len(nodes)
    if out_name not in slot:
        raise ValueError(f"output {out_name} does not depend on the input")
    return GraphProgram(len(consts), tuple(nodes), slot[out_name]), consts


def _topological(raw: dict[str, dict[str, Any]], out: str) -> list[str]:
    """Nodes the output depends on, each after its inputs (iterative DFS)."""
    order: list[str] = []
    state: dict[str, int] = {}
    stack: list[tuple[str, bool]] = [(out, False)]
    while stack:
        name, done = stack.pop()
        if done:
            state[name] = 2
            order.append(name)
            continue
        if state.get(name):
            continue
        state[name] = 1
        stack.append((name, True))
        for i in raw[name].get("input", []):
            dep = i.lstrip("^").split(":")[0]
            if dep not in raw:
                raise ValueError(f"{name} reads {dep}, which is not in the graph")
            if not state.get(dep):
                stack.append((dep, False))
    return order


def _filters_to_torch_layout(raw: dict[str, dict[str, Any]], dynamic: Iterable[str], inputs_of: Any,
                             values: dict[str, torch.Tensor]) -> None:
    """Constant conv filters from TensorFlow's HWIO to torch's OIHW (Conv2D) or (in, out, kH, kW)
    (Conv2DBackpropInput); every filter is used by convs only, so each is permuted once."""
    hwio_to_torch = (3, 2, 0, 1)  # both torch layouts put TensorFlow's last two axes first, in reverse
    uses: dict[str, set[str]] = {}
    done: set[str] = set()
    for name in dynamic:
        for pos, i in enumerate(inputs_of(name)):
            uses.setdefault(i, set()).add(f"{raw[name]['op']}:{pos}")
    for name in dynamic:
        op = raw[name]["op"]
        if op not in ("Conv2D", "Conv2DBackpropInput"):
            continue
        filt = inputs_of(name)[1]
        if filt not in values:
            raise UnsupportedOpError(f"{op} {name} with a computed filter")
        if uses[filt] != {f"{op}:1"}:
            raise UnsupportedOpError(f"filter {filt} is also used outside {op}")
        if filt not in done:
            values[filt] = values[filt].permute(*hwio_to_torch).contiguous()
            done.add(filt)


# --------------------------------------------------------------------------- running


class TFGraphModule(nn.Module):
    """A converted graph as a module: NHWC float32 in, the graph's output out."""

    def __init__(self, program: GraphProgram, consts: list[torch.Tensor]) -> None:
        """Hold the program and register each constant as buffer ``c<slot>``."""
        super().__init__()
        if len(consts) != program.n_consts:
            raise ValueError(f"program expects {program.n_consts} constants, got {len(consts)}")
        self.program = program
        for i, c in enumerate(consts):
            self.register_buffer(f"c{i}", c)
        last: dict[int, int] = {}
        for k, node in enumerate(program.nodes):
            for s in node.inputs:
                last[s] = k
        self._free_after = [[s for s in set(node.inputs)
                             if last[s] == k and s >= program.n_consts and s != program.output]
                            for k, node in enumerate(program.nodes)]
        self._fns = [OPS[node.op] for node in program.nodes]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the graph on ``x`` (N, H, W, C); intermediate results are freed after their last use."""
        prog = self.program
        slots: list[torch.Tensor | None] = [getattr(self, f"c{i}") for i in range(prog.n_consts)]
        slots.append(x)
        for fn, node, free in zip(self._fns, prog.nodes, self._free_after):
            slots.append(fn([slots[i] for i in node.inputs], node.attrs))  # type: ignore[misc]
            for s in free:
                slots[s] = None
        out = slots[prog.output]
        assert out is not None
        return out

    def state_for_saving(self) -> dict[str, torch.Tensor]:
        """The constants as a flat tensor dict (safetensors keys ``c<slot>``)."""
        return {f"c{i}": getattr(self, f"c{i}") for i in range(self.program.n_consts)}


def load_program(path: str | os.PathLike[str]) -> TFGraphModule:
    """A module from a safetensors file written by :func:`save_program`.

    Raises:
        ValueError: the file carries no program or another program version.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "fourkagent_graph" not in meta:
        raise ValueError(f"{path} carries no graph program")
    program = GraphProgram.from_json(meta["fourkagent_graph"])
    state = load_file(str(path), device="cpu")
    return TFGraphModule(program, [state[f"c{i}"] for i in range(program.n_consts)]).eval()


def program_metadata(module: TFGraphModule) -> dict[str, str]:
    """Metadata to save beside the constants (read back by :func:`load_program`)."""
    return {"format": "pt", "fourkagent_graph": module.program.to_json()}
