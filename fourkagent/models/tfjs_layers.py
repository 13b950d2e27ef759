"""TensorFlow.js *layers* models (a Keras functional model in JSON + weight shards) as a :class:`GraphProgram`.

UpscalerJS's ESRGAN packages (idealo's RRDN) are layers models. Their layers are translated into the
ops of :mod:`fourkagent.models.tfgraph_ops` so one executor (:class:`fourkagent.models.tfgraph.TFGraphModule`)
and one file format serve both kinds: ``Conv2D`` (+ bias ``AddV2`` + activation), ``Concatenate``,
``Add``, UpscalerJS's custom ``MultiplyBeta`` (× ``beta``) and ``PixelShuffle<s>x`` (TensorFlow's
``depth_to_space``, as the package's own JavaScript defines it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from fourkagent.models.tfgraph import GraphProgram, Node, read_weights
from fourkagent.models.tfgraph_ops import UnsupportedOpError

_ACTIVATIONS = {"linear": None, "relu": "Relu", "tanh": "Tanh"}


class _Builder:
    """Collects constants and nodes; node slots are assigned once the constant count is known."""

    def __init__(self) -> None:
        self.consts: list[torch.Tensor] = []
        self.nodes: list[tuple[str, list[tuple[str, int]], dict[str, Any]]] = []

    def const(self, t: torch.Tensor) -> tuple[str, int]:
        self.consts.append(t.contiguous())
        return ("c", len(self.consts) - 1)

    def node(self, op: str, inputs: list[tuple[str, int]], **attrs: Any) -> tuple[str, int]:
        self.nodes.append((op, inputs, attrs))
        return ("n", len(self.nodes) - 1)

    def program(self, output: tuple[str, int]) -> tuple[GraphProgram, list[torch.Tensor]]:
        n = len(self.consts)

        def slot(ref: tuple[str, int]) -> int:
            kind, i = ref
            return i if kind == "c" else n if kind == "in" else n + 1 + i

        nodes = tuple(Node(op, tuple(slot(r) for r in ins), attrs) for op, ins, attrs in self.nodes)
        return GraphProgram(n, nodes, slot(output)), self.consts


def _activation(b: _Builder, name: str | None, x: tuple[str, int]) -> tuple[str, int]:
    if name not in _ACTIVATIONS:
        raise UnsupportedOpError(f"activation {name}")
    op = _ACTIVATIONS[name]
    return b.node(op, [x]) if op else x


def parse_layers(model_dir: str | Path) -> tuple[GraphProgram, list[torch.Tensor]]:
    """Translate ``model.json`` (format ``layers-model``) and its shards into a program and constants.

    Raises:
        UnsupportedOpError: a layer class or setting this translation does not cover.
        ValueError: not a single-input, single-output functional layers model.
    """
    root = Path(model_dir)
    model = json.loads((root / "model.json").read_text(encoding="utf-8"))
    if model.get("format") != "layers-model":
        raise ValueError(f"{root / 'model.json'} is a {model.get('format')!r}, not a layers-model")
    weights = read_weights(root, model["weightsManifest"])
    config = model["modelTopology"]["model_config"]["config"]
    b = _Builder()
    out: dict[str, tuple[str, int]] = {}
    for layer in config["layers"]:
        cls, cfg, name = layer["class_name"], layer["config"], layer["name"]
        calls = layer.get("inbound_nodes", [])
        if cls == "InputLayer":
            out[name] = ("in", 0)
            continue
        if len(calls) != 1:
            raise UnsupportedOpError(f"layer {name} is called {len(calls)} times")
        ins = [out[src[0]] for src in calls[0]]
        if cls == "Conv2D":
            if cfg.get("data_format", "channels_last") != "channels_last" or int(cfg.get("groups", 1)) != 1:
                raise UnsupportedOpError(f"Conv2D {name}: data format or groups")
            kernel = torch.from_numpy(weights[f"{name}/kernel"]).permute(3, 2, 0, 1)  # HWIO -> OIHW
            y = b.node("Conv2D", [ins[0], b.const(kernel)], padding=cfg["padding"].upper(),
                       strides=[1, *cfg["strides"], 1], dilations=[1, *cfg["dilation_rate"], 1])
            if cfg.get("use_bias", True):
                y = b.node("AddV2", [y, b.const(torch.from_numpy(weights[f"{name}/bias"]))])
            out[name] = _activation(b, cfg.get("activation"), y)
        elif cls == "Activation":
            out[name] = _activation(b, cfg["activation"], ins[0])
        elif cls == "Concatenate":
            out[name] = b.node("ConcatV2", [*ins, b.const(torch.tensor(int(cfg.get("axis", -1))))])
        elif cls == "Add":
            y = ins[0]
            for other in ins[1:]:
                y = b.node("AddV2", [y, other])
            out[name] = y
        elif cls == "MultiplyBeta":
            out[name] = b.node("Mul", [ins[0], b.const(torch.tensor(float(cfg.get("beta", 0.2))))])
        elif cls.startswith("PixelShuffle"):
            scale = int(cfg.get("scale") or cls.removeprefix("PixelShuffle").removesuffix("x"))
            out[name] = b.node("DepthToSpace", [ins[0]], block_size=scale)
        else:
            raise UnsupportedOpError(f"layer class {cls}")
    inputs, outputs = config.get("input_layers", []), config.get("output_layers", [])
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError("only single-input, single-output layers models are supported")
    return b.program(out[outputs[0][0]])
