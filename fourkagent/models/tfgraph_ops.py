"""TensorFlow graph ops in torch: the op set of the jax2tf graphs UpscalerJS ships (MAXIM family).

Each op is ``fn(inputs, attrs) -> torch.Tensor`` with TensorFlow's semantics for the dtypes these graphs
use: float32 data in NHWC, integer tensors (shapes, indices) held as int64, booleans as bool. An op
missing here makes the conversion fail with its name (:class:`UnsupportedOpError`), never run wrongly.
Conv filters arrive already in torch layout (see :func:`fourkagent.models.tfgraph.parse_graph`):
``Conv2D`` takes OIHW, ``Conv2DBackpropInput`` takes (in, out, kH, kW).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own alias

Attrs = dict[str, Any]
OpFn = Callable[[Sequence[torch.Tensor], Attrs], torch.Tensor]


class UnsupportedOpError(ValueError):
    """The graph uses an op (or an op variant) this executor does not implement."""


_DTYPES = {"DT_FLOAT": torch.float32, "DT_INT32": torch.int64, "DT_INT64": torch.int64, "DT_BOOL": torch.bool}


def torch_dtype(tf_type: str) -> torch.dtype:
    """Torch dtype holding a TensorFlow dtype (int32 as int64)."""
    try:
        return _DTYPES[tf_type]
    except KeyError:
        raise UnsupportedOpError(f"dtype {tf_type}") from None


def _ints(t: torch.Tensor) -> list[int]:
    return [int(v) for v in t.reshape(-1).tolist()]


def _binary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> OpFn:
    return lambda x, a: fn(x[0], x[1])


def _unary(fn: Callable[[torch.Tensor], torch.Tensor]) -> OpFn:
    return lambda x, a: fn(x[0])


def _floordiv(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.div(a, b, rounding_mode="floor") if not a.is_floating_point() else torch.floor(a / b)


def _realdiv(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a / b if a.is_floating_point() else torch.div(a, b, rounding_mode="trunc")


def _same_pads(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) for one spatial dimension."""
    eff = (k - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def _hw(attr: list[int]) -> tuple[int, int]:
    return int(attr[1]), int(attr[2])  # NHWC lists


def _conv2d(x: Sequence[torch.Tensor], a: Attrs) -> torch.Tensor:
    inp, w = x[0], x[1]
    if a.get("data_format", "NHWC") != "NHWC":
        raise UnsupportedOpError(f"Conv2D data_format {a['data_format']}")
    sh, sw = _hw(a.get("strides", [1, 1, 1, 1]))
    dh, dw = _hw(a.get("dilations", [1, 1, 1, 1]))
    nchw = inp.permute(0, 3, 1, 2)
    kh, kw = int(w.shape[2]), int(w.shape[3])
    padding = a.get("padding", "VALID")
    if padding == "SAME":
        (t, b), (l, r) = _same_pads(nchw.shape[2], kh, sh, dh), _same_pads(nchw.shape[3], kw, sw, dw)
    elif padding == "EXPLICIT":
        p = [int(v) for v in a.get("explicit_paddings", [])]
        t, b, l, r = p[2], p[3], p[4], p[5]
    elif padding == "VALID":
        t = b = l = r = 0
    else:
        raise UnsupportedOpError(f"Conv2D padding {padding}")
    if t == b and l == r:
        y = F.conv2d(nchw, w, stride=(sh, sw), padding=(t, l), dilation=(dh, dw))
    else:
        y = F.conv2d(F.pad(nchw, (l, r, t, b)), w, stride=(sh, sw), dilation=(dh, dw))
    return y.permute(0, 2, 3, 1)


def _conv2d_backprop_input(x: Sequence[torch.Tensor], a: Attrs) -> torch.Tensor:
    sizes, w, grad = _ints(x[0]), x[1], x[2]
    if a.get("data_format", "NHWC") != "NHWC":
        raise UnsupportedOpError(f"Conv2DBackpropInput data_format {a['data_format']}")
    sh, sw = _hw(a.get("strides", [1, 1, 1, 1]))
    dh, dw = _hw(a.get("dilations", [1, 1, 1, 1]))
    padding = a.get("padding", "VALID")
    out_h, out_w = sizes[1], sizes[2]
    kh, kw = int(w.shape[2]), int(w.shape[3])
    if padding == "SAME":
        top, left = _same_pads(out_h, kh, sh, dh)[0], _same_pads(out_w, kw, sw, dw)[0]
    elif padding == "VALID":
        top = left = 0
    else:
        raise UnsupportedOpError(f"Conv2DBackpropInput padding {padding}")
    y = F.conv_transpose2d(grad.permute(0, 3, 1, 2), w, stride=(sh, sw), dilation=(dh, dw))
    y = y[:, :, top : top + out_h, left : left + out_w]
    short_h, short_w = out_h - y.shape[2], out_w - y.shape[3]
    if short_h or short_w:  # the forward conv ignored trailing input rows/columns
        y = F.pad(y, (0, short_w, 0, short_h))
    return y.permute(0, 2, 3, 1)


def _strided_slice(x: Sequence[torch.Tensor], a: Attrs) -> torch.Tensor:
    t, begin, end, strides = x[0], _ints(x[1]), _ints(x[2]), _ints(x[3])
    bm, em = int(a.get("begin_mask", 0)), int(a.get("end_mask", 0))
    ell, new, shrink = int(a.get("ellipsis_mask", 0)), int(a.get("new_axis_mask", 0)), int(a.get("shrink_axis_mask", 0))
    spec: list[Any] = []
    for i in range(len(begin)):
        bit = 1 << i
        if ell & bit:
            used = sum(1 for j in range(len(begin)) if not (ell | new) & (1 << j))
            spec.extend([slice(None)] * (t.ndim - used))
        elif new & bit:
            spec.append(None)
        elif shrink & bit:
            spec.append(begin[i])
        else:
            if strides[i] <= 0:
                raise UnsupportedOpError("StridedSlice with a non-positive stride")
            spec.append(slice(None if bm & bit else begin[i], None if em & bit else end[i], strides[i]))
    return t[tuple(spec)]


def _gather(x: Sequence[torch.Tensor], a: Attrs) -> torch.Tensor:
    params, idx, axis = x[0], x[1].long(), int(x[2])
    if int(a.get("batch_dims", 0)):
        raise UnsupportedOpError("GatherV2 with batch_dims")
    axis %= params.ndim
    out = params.index_select(axis, idx.reshape(-1))
    return out.reshape(*params.shape[:axis], *idx.shape, *params.shape[axis + 1 :])


def _sum(x: Sequence[torch.Tensor], a: Attrs) -> torch.Tensor:
    axes = _ints(x[1])
    keep = bool(a.get("keep_dims", False))
    if not axes:
        return x[0].clone()
    return torch.sum(x[0], dim=axes, keepdim=keep)


def _squeeze(x: Sequence[torch.Tensor], a: Attrs) -> torch.Tensor:
    dims = [int(d) for d in a.get("squeeze_dims", [])]
    if not dims:
        return x[0].squeeze()
    return x[0].squeeze(tuple(d % x[0].ndim for d in dims))


def _range(x: Sequence[torch.Tensor], a: Attrs) -> torch.Tensor:
    dtype = torch_dtype(a.get("Tidx", "DT_INT32"))
    start, limit, delta = (v.item() for v in x[:3])
    return torch.arange(start, limit, delta, dtype=dtype)


def _pack(x: Sequence[torch.Tensor], a: Attrs) -> torch.Tensor:
    return torch.stack(list(x), dim=int(a.get("axis", 0)))


def _concat(x: Sequence[torch.Tensor], a: Attrs) -> torch.Tensor:
    return torch.cat(list(x[:-1]), dim=int(x[-1]))


def _shape(x: Sequence[torch.Tensor], a: Attrs) -> torch.Tensor:
    return torch.tensor(list(x[0].shape), dtype=torch.int64)


def _depth_to_space(x: Sequence[torch.Tensor], a: Attrs) -> torch.Tensor:
    """TensorFlow's NHWC DepthToSpace: ``out[b, h*s+i, w*s+j, c] = in[b, h, w, (i*s+j)*C + c]``."""
    if a.get("data_format", "NHWC") != "NHWC":
        raise UnsupportedOpError(f"DepthToSpace data_format {a['data_format']}")
    t, s = x[0], int(a["block_size"])
    n, h, w, cs = t.shape
    c = cs // (s * s)
    return t.reshape(n, h, w, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(n, h * s, w * s, c)


OPS: dict[str, OpFn] = {
    "Identity": lambda x, a: x[0],
    "Add": _binary(torch.add),
    "AddV2": _binary(torch.add),
    "Sub": _binary(torch.sub),
    "Mul": _binary(torch.mul),
    "RealDiv": _binary(_realdiv),
    "FloorDiv": _binary(_floordiv),
    "FloorMod": _binary(torch.remainder),
    "Maximum": _binary(torch.maximum),
    "Minimum": _binary(torch.minimum),
    "Greater": _binary(torch.gt),
    "GreaterEqual": _binary(torch.ge),
    "Less": _binary(torch.lt),
    "LessEqual": _binary(torch.le),
    "NotEqual": _binary(torch.ne),
    "Equal": _binary(torch.eq),
    "LogicalAnd": _binary(torch.logical_and),
    "Abs": _unary(torch.abs),
    "Neg": _unary(torch.neg),
    "Sign": _unary(torch.sign),
    "Floor": _unary(torch.floor),
    "Exp": _unary(torch.exp),
    "Tanh": _unary(torch.tanh),
    "Relu": _unary(torch.relu),
    "Rsqrt": _unary(torch.rsqrt),
    "Reciprocal": _unary(torch.reciprocal),
    "Square": _unary(torch.square),
    "Cast": lambda x, a: x[0].to(torch_dtype(a["DstT"])),
    "Shape": _shape,
    "Reshape": lambda x, a: x[0].reshape(_ints(x[1])),
    "Transpose": lambda x, a: x[0].permute(_ints(x[1])),
    "ExpandDims": lambda x, a: x[0].unsqueeze(int(x[1])),
    "Squeeze": _squeeze,
    "BroadcastTo": lambda x, a: torch.broadcast_to(x[0], _ints(x[1])),
    "SelectV2": lambda x, a: torch.where(x[0], x[1], x[2]),
    "Pack": _pack,
    "ConcatV2": _concat,
    "Range": _range,
    "Sum": _sum,
    "StridedSlice": _strided_slice,
    "GatherV2": _gather,
    "Einsum": lambda x, a: torch.einsum(a["equation"], *x),
    "Conv2D": _conv2d,
    "Conv2DBackpropInput": _conv2d_backprop_input,
    "DepthToSpace": _depth_to_space,
}
"""Every op the executor implements."""
