"""Where each element of a spike tensor lands after the linear ops between a spiking neuron and
the synaptic op that reads it (Reshape, Flatten, Transpose, Concat, Split, Slice, Pad, Add of
spike streams, scaling by constants, non-overlapping average pooling, ...).

A *route* of input ``j`` of a node is an int64 array of input ``j``'s size: for every element
(flat, row-major, full tensor), the flat index of the one output element it lands in, or -1
where it is dropped. Ops that send one element to several outputs (overlapping pooling,
broadcasting, upsampling) have no route: :class:`NotExact` says why, and the layer behind them
is counted with dense MACs instead of SOPs. Constants the op adds or multiplies are folded
into the next layer's weights and bias and cost nothing per spike.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import numpy_helper

Shape = tuple[int, ...]
ConstGetter = Callable[[str], "np.ndarray | None"]


class NotExact(Exception):
    """The op does not send each input element to at most one output element."""


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _norm_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _identity(in_shape: Shape, out_shape: Shape, node: onnx.NodeProto) -> np.ndarray:
    if tuple(in_shape) != tuple(out_shape):
        raise NotExact(
            f"{node.op_type} '{node.name}' broadcasts a spike tensor of shape {list(in_shape)} to "
            f"{list(out_shape)}, so one spike reaches several positions"
        )
    return np.arange(int(np.prod(in_shape)), dtype=np.int64)


def _same_size(in_shape: Shape, out_shape: Shape, node: onnx.NodeProto) -> np.ndarray:
    if int(np.prod(in_shape)) != int(np.prod(out_shape)):
        raise NotExact(f"{node.op_type} '{node.name}' changes the number of elements")
    return np.arange(int(np.prod(in_shape)), dtype=np.int64)


def _transpose(node, in_shape, out_shape, j, shapes, const) -> np.ndarray:
    perm = _attr(node, "perm") or list(reversed(range(len(in_shape))))
    src_of_out = np.arange(int(np.prod(in_shape)), dtype=np.int64).reshape(in_shape).transpose(perm).ravel()
    route = np.empty_like(src_of_out)
    route[src_of_out] = np.arange(src_of_out.size, dtype=np.int64)
    return route


def _concat(node, in_shape, out_shape, j, shapes, const) -> np.ndarray:
    axis = _norm_axis(int(_attr(node, "axis")), len(out_shape))
    offset = sum(shapes[name][axis] for name in node.input[:j])
    out_ids = np.arange(int(np.prod(out_shape)), dtype=np.int64).reshape(out_shape)
    index = [slice(None)] * len(out_shape)
    index[axis] = slice(offset, offset + in_shape[axis])
    return out_ids[tuple(index)].ravel()


def _select(in_shape: Shape, out_shape: Shape, per_axis: list[np.ndarray]) -> np.ndarray:
    """Route of an op whose output element ``o`` is input element ``(per_axis[d][o_d])_d``."""
    in_ids = np.arange(int(np.prod(in_shape)), dtype=np.int64).reshape(in_shape)
    src = in_ids[np.ix_(*per_axis)].ravel()
    if src.size != int(np.prod(out_shape)):
        raise NotExact("selection does not match the output shape")
    if np.unique(src).size != src.size:
        raise NotExact("an input element is selected more than once")
    route = np.full(in_ids.size, -1, dtype=np.int64)
    route[src] = np.arange(src.size, dtype=np.int64)
    return route


def _split(node, in_shape, out_shape, j, shapes, const, output: int) -> np.ndarray:
    axis = _norm_axis(int(_attr(node, "axis", 0)), len(in_shape))
    offset = sum(shapes[name][axis] for name in node.output[:output])
    per_axis = [np.arange(d) for d in in_shape]
    per_axis[axis] = np.arange(offset, offset + out_shape[axis])
    return _select(in_shape, out_shape, per_axis)


def _slice(node, in_shape, out_shape, j, shapes, const) -> np.ndarray:
    rank = len(in_shape)
    args = [const(name) if name else None for name in list(node.input[1:5]) + [""] * (4 - len(node.input[1:5]))]
    starts, ends, axes, steps = args
    if starts is None or ends is None or (len(node.input) > 3 and node.input[3] and axes is None) or (
        len(node.input) > 4 and node.input[4] and steps is None
    ):
        raise NotExact(f"Slice '{node.name}' has bounds computed at run time")
    axes = list(range(len(starts))) if axes is None else [_norm_axis(int(a), rank) for a in axes]
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    per_axis = [np.arange(d) for d in in_shape]
    for a, s, e, st in zip(axes, starts, ends, steps):
        dim = in_shape[a]
        s, e = int(s), int(e)
        s = s + dim if s < 0 else s
        e = e + dim if e < 0 else e
        if st > 0:
            s, e = min(max(s, 0), dim), min(max(e, 0), dim)
        else:
            s, e = min(max(s, 0), dim - 1), min(max(e, -1), dim - 1)
        per_axis[a] = np.arange(s, e, st)
    return _select(in_shape, out_shape, per_axis)


def _pad(node, in_shape, out_shape, j, shapes, const) -> np.ndarray:
    mode = _attr(node, "mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "constant":
        raise NotExact(f"Pad '{node.name}' in mode '{mode}' copies edge spikes to several positions")
    if j != 0:
        raise NotExact(f"Pad '{node.name}': spikes in the padding value")
    rank = len(in_shape)
    begins = np.zeros(rank, dtype=np.int64)
    pads = const(node.input[1]) if len(node.input) > 1 and node.input[1] else _attr(node, "pads")
    if pads is None:
        raise NotExact(f"Pad '{node.name}' has pads computed at run time")
    pads = np.asarray(pads, dtype=np.int64).ravel()
    axes_in = const(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    axes = list(range(rank)) if axes_in is None else [_norm_axis(int(a), rank) for a in axes_in]
    for i, a in enumerate(axes):
        begins[a] = pads[i]
    coords = [np.arange(in_shape[a]) + begins[a] for a in range(rank)]
    # output coordinate of input coordinate c is c + begin; -1 outside (negative pads crop)
    grids = np.meshgrid(*coords, indexing="ij")
    inside = np.ones(in_shape, dtype=bool)
    for a, g in enumerate(grids):
        inside &= (g >= 0) & (g < out_shape[a])
    flat = np.ravel_multi_index(tuple(np.clip(g, 0, out_shape[a] - 1) for a, g in enumerate(grids)), out_shape)
    return np.where(inside, flat, -1).ravel().astype(np.int64)


def _window_targets(in_len: int, out_len: int, kernel: int, stride: int, pad_begin: int, dilation: int, node) -> np.ndarray:
    """Output coordinate of each input coordinate of a pooling axis, -1 if no window covers it."""
    target = np.full(in_len, -1, dtype=np.int64)
    hits = np.zeros(in_len, dtype=np.int64)
    for o in range(out_len):
        idx = o * stride - pad_begin + np.arange(kernel) * dilation
        idx = idx[(idx >= 0) & (idx < in_len)]
        hits[idx] += 1
        target[idx] = o
    if np.any(hits > 1):
        raise NotExact(
            f"{node.op_type} '{node.name}' has overlapping windows (kernel {kernel}, stride {stride}), "
            "so one spike reaches several pooled positions"
        )
    return target


def _average_pool(node, in_shape, out_shape, j, shapes, const) -> np.ndarray:
    from .fanout import conv_pads

    kernel = tuple(int(k) for k in _attr(node, "kernel_shape"))
    sp = len(kernel)
    strides = tuple(_attr(node, "strides") or [1] * sp)
    dilations = tuple(_attr(node, "dilations") or [1] * sp)
    auto_pad = _attr(node, "auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    begins = conv_pads(auto_pad, _attr(node, "pads"), in_shape[2:], out_shape[2:], kernel, strides, dilations)
    targets = [np.arange(in_shape[0]), np.arange(in_shape[1])]
    targets += [
        _window_targets(in_shape[2 + i], out_shape[2 + i], kernel[i], strides[i], begins[i], dilations[i], node)
        for i in range(sp)
    ]
    return _gather_targets(targets, out_shape)


def _gather_targets(targets: list[np.ndarray], out_shape: Shape) -> np.ndarray:
    """Route from per-axis target coordinates (-1: dropped)."""
    grids = np.meshgrid(*targets, indexing="ij")
    dropped = np.zeros(grids[0].shape, dtype=bool)
    for g in grids:
        dropped |= g < 0
    flat = np.ravel_multi_index(tuple(np.maximum(g, 0) for g in grids), out_shape)
    return np.where(dropped, -1, flat).ravel().astype(np.int64)


def _reduce(node, in_shape, out_shape, j, shapes, const, axes: list[int] | None) -> np.ndarray:
    rank = len(in_shape)
    if axes is None:
        raise NotExact(f"{node.op_type} '{node.name}' reduces over axes computed at run time")
    axes = sorted(_norm_axis(a, rank) for a in axes)
    keep = int(_attr(node, "keepdims", 1))
    targets = [np.zeros(d, dtype=np.int64) if a in axes else np.arange(d) for a, d in enumerate(in_shape)]
    full_out = tuple(1 if a in axes else d for a, d in enumerate(in_shape))
    route = _gather_targets(targets, full_out)
    if keep == 0 and int(np.prod(full_out)) != int(np.prod(out_shape)):
        raise NotExact(f"{node.op_type} '{node.name}': unexpected output shape")
    return route


def _global_pool(node, in_shape, out_shape, j, shapes, const) -> np.ndarray:
    return _reduce(node, in_shape, out_shape, j, shapes, const, list(range(2, len(in_shape))))


def _reduce_op(node, in_shape, out_shape, j, shapes, const) -> np.ndarray:
    axes = _attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        arr = const(node.input[1])
        axes = None if arr is None else [int(a) for a in np.asarray(arr).ravel()]
        if arr is None:
            return _reduce(node, in_shape, out_shape, j, shapes, const, None)
    if not axes:
        if int(_attr(node, "noop_with_empty_axes", 0)):
            return _identity(in_shape, out_shape, node)
        axes = list(range(len(in_shape)))
    if 0 in [_norm_axis(a, len(in_shape)) for a in axes]:
        raise NotExact(f"{node.op_type} '{node.name}' reduces over the time*batch axis")
    return _reduce(node, in_shape, out_shape, j, shapes, const, list(axes))


def _elementwise(node, in_shape, out_shape, j, shapes, const) -> np.ndarray:
    return _identity(in_shape, out_shape, node)


def _reshape_like(node, in_shape, out_shape, j, shapes, const) -> np.ndarray:
    if j != 0:
        raise NotExact(f"{node.op_type} '{node.name}': spikes in its shape operand")
    return _same_size(in_shape, out_shape, node)


# Ops whose data operands are routed; for the others listed in SCALING_OPERANDS only the
# given operands may carry spikes (the rest must be constants).
ROUTES: dict[str, Callable] = {
    "Identity": _elementwise, "Dropout": _elementwise, "Cast": _elementwise, "CastLike": _elementwise,
    "Neg": _elementwise, "Add": _elementwise, "Sub": _elementwise, "Sum": _elementwise, "Mean": _elementwise,
    "Mul": _elementwise, "Div": _elementwise, "BatchNormalization": _elementwise,
    "Reshape": _reshape_like, "Flatten": _reshape_like, "Squeeze": _reshape_like, "Unsqueeze": _reshape_like,
    "Transpose": _transpose, "Concat": _concat, "Slice": _slice, "Pad": _pad,
    "AveragePool": _average_pool, "GlobalAveragePool": _global_pool, "ReduceMean": _reduce_op, "ReduceSum": _reduce_op,
}
# operands that may carry spikes (None: all); the others must be constants
SPIKE_OPERANDS: dict[str, tuple[int, ...]] = {
    "Mul": (0, 1), "Div": (0,), "BatchNormalization": (0,), "Reshape": (0,), "Squeeze": (0,), "Unsqueeze": (0,),
    "Slice": (0,), "Pad": (0,), "ReduceMean": (0,), "ReduceSum": (0,), "CastLike": (0,), "Dropout": (0,),
}


def route(node: onnx.NodeProto, operand: int, output: int, shapes: dict[str, Shape], const: ConstGetter) -> np.ndarray:
    """The route of ``node``'s input ``operand`` to its output ``output``; raises
    :class:`NotExact` for ops that are not one-to-at-most-one."""
    op = node.op_type
    if node.domain not in ("", "ai.onnx") or op not in ROUTES and op != "Split":
        raise NotExact(f"{op} '{node.name}' is not a linear op the SOP tracer follows")
    allowed = SPIKE_OPERANDS.get(op)
    if allowed is not None and operand not in allowed:
        raise NotExact(f"{op} '{node.name}': spikes in operand {operand}")
    if op == "Dropout" and output != 0:
        raise NotExact(f"Dropout '{node.name}': mask output")
    in_shape = shapes[node.input[operand]]
    out_shape = shapes[node.output[output]]
    if op == "Split":
        return _split(node, in_shape, out_shape, operand, shapes, const, output)
    return ROUTES[op](node, in_shape, out_shape, operand, shapes, const)


def constant_getter(model: onnx.ModelProto) -> ConstGetter:
    """Look up initializers and Constant-node values by name."""
    values: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            for a in n.attribute:
                if a.name == "value":
                    values[n.output[0]] = numpy_helper.to_array(a.t)
                elif a.name in ("value_int", "value_ints", "value_float", "value_floats"):
                    values[n.output[0]] = np.asarray(onnx.helper.get_attribute_value(a))
    return values.get
