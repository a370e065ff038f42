"""Exact fan-out of the synaptic ops: for every element of an op's spiking input, the number of
output elements it reaches (padding, stride, groups and dilation included), and the ops' dense
multiply-accumulate counts.

Shapes are full tensor shapes (leading axis included). Fan-outs are returned as arrays of the
input's shape, so a spike at any position can be weighted by exactly what it costs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

Shape = tuple[int, ...]


def axis_reach(in_len: int, out_len: int, kernel: int, stride: int, pad_begin: int, dilation: int) -> np.ndarray:
    """For a sliding window along one axis (output ``o`` reads input ``o*stride - pad_begin +
    k*dilation`` for ``k < kernel``): how many (output, tap) pairs read each input coordinate."""
    count = np.zeros(in_len, dtype=np.int64)
    o = np.arange(out_len)[:, None]
    k = np.arange(kernel)[None, :]
    idx = (o * stride - pad_begin + k * dilation).ravel()
    idx = idx[(idx >= 0) & (idx < in_len)]
    np.add.at(count, idx, 1)
    return count


def transposed_axis_reach(in_len: int, out_len: int, kernel: int, stride: int, pad_begin: int, dilation: int) -> np.ndarray:
    """ConvTranspose along one axis: input ``i`` writes outputs ``i*stride + k*dilation -
    pad_begin``; the number of those inside ``[0, out_len)`` per input coordinate."""
    i = np.arange(in_len)[:, None]
    k = np.arange(kernel)[None, :]
    out = i * stride + k * dilation - pad_begin
    return ((out >= 0) & (out < out_len)).sum(axis=1).astype(np.int64)


def conv_pads(
    auto_pad: str, pads: Sequence[int] | None, in_sp: Shape, out_sp: Shape, kernel: Shape, strides: Shape, dilations: Shape
) -> list[int]:
    """Begin pads per spatial axis of a Conv / pooling op (ONNX ``auto_pad`` rules)."""
    n = len(in_sp)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins = []
        for i in range(n):
            total = max(0, (out_sp[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_sp[i])
            begins.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
        return begins
    if auto_pad == "VALID" or not pads:
        return [0] * n
    return [int(p) for p in pads[:n]]


def _outer(parts: Sequence[np.ndarray]) -> np.ndarray:
    out = np.ones((), dtype=np.int64)
    for p in parts:
        out = np.multiply.outer(out, p)
    return out


def conv_fanout(
    in_shape: Shape, out_shape: Shape, weight_shape: Shape, *, group: int = 1, strides: Sequence[int] | None = None,
    pads: Sequence[int] | None = None, dilations: Sequence[int] | None = None, auto_pad: str = "NOTSET",
) -> np.ndarray:
    """Fan-out of every element of a Conv's input ``[N, C, *spatial]``: each input channel of a
    group feeds the ``C_out / group`` output channels of that group, at every output position
    whose window covers it."""
    sp = len(in_shape) - 2
    kernel = tuple(int(k) for k in weight_shape[2:])
    strides = tuple(strides or [1] * sp)
    dilations = tuple(dilations or [1] * sp)
    begins = conv_pads(auto_pad, pads, in_shape[2:], out_shape[2:], kernel, strides, dilations)
    per_axis = [axis_reach(in_shape[2 + i], out_shape[2 + i], kernel[i], strides[i], begins[i], dilations[i]) for i in range(sp)]
    spatial = _outer(per_axis) * (out_shape[1] // group)
    return np.broadcast_to(spatial, in_shape).copy()


def conv_transpose_fanout(
    in_shape: Shape, out_shape: Shape, weight_shape: Shape, *, group: int = 1, strides: Sequence[int] | None = None,
    pads: Sequence[int] | None = None, dilations: Sequence[int] | None = None, auto_pad: str = "NOTSET",
    output_padding: Sequence[int] | None = None, output_shape_attr: Sequence[int] | None = None,
) -> np.ndarray:
    """Fan-out of every element of a ConvTranspose's input: weight ``[C_in, C_out/group, *K]``."""
    sp = len(in_shape) - 2
    kernel = tuple(int(k) for k in weight_shape[2:])
    strides = tuple(strides or [1] * sp)
    dilations = tuple(dilations or [1] * sp)
    out_pad = tuple(output_padding or [0] * sp)
    if output_shape_attr or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins = []
        for i in range(sp):
            total = strides[i] * (in_shape[2 + i] - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1 - out_shape[2 + i]
            begins.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
    elif auto_pad == "VALID" or not pads:
        begins = [0] * sp
    else:
        begins = [int(p) for p in pads[:sp]]
    per_axis = [
        transposed_axis_reach(in_shape[2 + i], out_shape[2 + i], kernel[i], strides[i], begins[i], dilations[i])
        for i in range(sp)
    ]
    c_out_per_group = int(weight_shape[1])
    spatial = _outer(per_axis) * c_out_per_group
    return np.broadcast_to(spatial, in_shape).copy()


def gemm_fanout(in_shape: Shape, out_shape: Shape, operand: int) -> np.ndarray:
    """Gemm ``Y[M, N] = A' B'``: an element of A reaches the N outputs of its row, an element of
    B the M outputs of its column."""
    reach = out_shape[1] if operand == 0 else out_shape[0]
    return np.full(in_shape, reach, dtype=np.int64)


def matmul_fanout(in_shape: Shape, out_shape: Shape, operand: int) -> np.ndarray:
    """MatMul (NumPy semantics): an element of A reaches the N outputs of its row in every output
    batch entry its own batch entry broadcasts to (B: the M outputs of its column)."""
    out_size = int(np.prod(out_shape)) if out_shape else 1
    in_size = int(np.prod(in_shape))
    # every output element reads exactly K elements of each operand and every input element is
    # read by the same number of outputs, so the fan-out is uniform: (outputs x K) / inputs
    k = in_shape[-1] if operand == 0 or len(in_shape) == 1 else in_shape[-2]
    return np.full(in_shape, out_size * int(k) // in_size, dtype=np.int64)


# -- dense multiply-accumulates ---------------------------------------------------------------

def conv_macs(out_shape: Shape, weight_shape: Shape) -> int:
    """Every output element: ``C_in/group * prod(K)`` MACs (weight ``[C_out, C_in/group, *K]``)."""
    return int(np.prod(out_shape)) * int(np.prod(weight_shape[1:]))


def conv_transpose_macs(in_shape: Shape, weight_shape: Shape) -> int:
    """Every input element: ``C_out/group * prod(K)`` MACs (weight ``[C_in, C_out/group, *K]``)."""
    return int(np.prod(in_shape)) * int(np.prod(weight_shape[1:]))


def matmul_macs(a_shape: Shape, out_shape: Shape) -> int:
    k = a_shape[-1]
    return int(np.prod(out_shape)) * int(k) if out_shape else int(k)


def gemm_macs(out_shape: Shape, a_shape: Shape, trans_a: int) -> int:
    k = a_shape[0] if trans_a else a_shape[1]
    return int(np.prod(out_shape)) * int(k)
