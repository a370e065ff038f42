"""Multiply-accumulate estimates for the non-synaptic ops that run on analog values
(compensation blocks ``TemporalDelta(f(TemporalMean(x)))`` and non-linear ops on the repeated
static input).

Synaptic ops (Conv, Gemm, MatMul, ...) are counted exactly elsewhere; the costs here are
conventions, stated in docs/energy.md, so that a network with many non-linear blocks is not
reported as free:

* windowed non-linear pooling (MaxPool, LpPool): ``prod(kernel)`` per output element;
* non-linear reductions (ReduceMax, GlobalMaxPool, ...): one per input element;
* Softmax / LogSoftmax: 3 per element (max-subtract and exp, sum, divide);
* LayerNormalization / GroupNormalization / InstanceNormalization: 4 per element (mean,
  variance, normalise, affine); RMSNormalization: 3;
* a product of two time-varying tensors (Mul / Div): 1 per output element;
* every other non-linear op (``onnx_table.COMPENSABLE_OPS``): 1 per output element;
* ``TemporalMean`` / ``TemporalDelta``: 1 per element and step (a running sum and one scale;
  ``t*x_t - (t-1)*x_{t-1}`` reuses the previous step's product);
* ``CompensatedElementwise`` (the fused block): what the same block costs unfused, i.e. its
  TemporalMean and TemporalDelta (1 + 1 per element and step) plus ``f`` as the ONNX ops of
  ``FUNCTION_OPS`` cost by the rules above (``function_macs``);
* linear ops (Add, Reshape, AveragePool, BatchNormalization, scaling by constants, ...):
  free: on spikes they are folded into the next layer's weights, on analog values they are
  negligible next to the synaptic ops, and the ANN's count leaves them out in the same way.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx

from ..ops import onnx_table

Shape = tuple[int, ...]


# CompensatedElementwise's ``function`` as ONNX ops (op type, number of time-varying inputs):
# its f costs what these cost, so a fused block costs the same as the unfused one.
FUNCTION_OPS: dict[str, tuple[tuple[str, int], ...]] = {
    "gelu": (("Gelu", 1),),
    "gelu_tanh": (("Gelu", 1),),  # approximate="tanh"
    "silu": (("Sigmoid", 1), ("Mul", 2)),  # x * Sigmoid(x)
    "sigmoid": (("Sigmoid", 1),),
    "tanh": (("Tanh", 1),),
    "hardsigmoid": (("HardSigmoid", 1),),
    "hardswish": (("HardSwish", 1),),
    "relu": (("Relu", 1),),
}


def _size(shape: Shape) -> int:
    return int(np.prod(shape)) if len(shape) else 1


def op_macs(node: onnx.NodeProto, in_shapes: Sequence[Shape | None], out_shapes: Sequence[Shape | None], n_varying: int) -> int | None:
    """MACs of one run of a non-synaptic op on analog values, or None if it is free (the cost
    rule is the op's entry in ``ops/onnx_table.py``)."""
    op = node.op_type
    out = out_shapes[0] if out_shapes else None
    if op in ("Mul", "Div"):
        return _size(out) if n_varying > 1 and out is not None else None
    entry = onnx_table.info(op, node.domain)
    if entry is None or entry.role != onnx_table.NONLINEAR or not entry.standalone:
        return None
    if entry.cost == onnx_table.WINDOWED:
        kernel = next((list(a.ints) for a in node.attribute if a.name == "kernel_shape"), [])
        return _size(out) * int(np.prod(kernel)) if out is not None else None
    if entry.cost == onnx_table.REDUCTION:
        return _size(in_shapes[0]) if in_shapes and in_shapes[0] is not None else None
    if entry.cost == onnx_table.PER_ELEMENT:
        return entry.macs_per_element * _size(out) if out is not None else None
    return None


def function_macs(function: str, elements: int) -> int:
    """MACs of ``f`` of a CompensatedElementwise node over ``elements`` values (one run), as the
    ops of ``FUNCTION_OPS`` cost unfused."""
    if function not in FUNCTION_OPS:
        raise ValueError(f"CompensatedElementwise function {function!r} has no cost rule (costs.FUNCTION_OPS)")
    total = 0
    for op, n_varying in FUNCTION_OPS[function]:
        macs = op_macs(onnx.helper.make_node(op, ["x"] * n_varying, ["y"]), [(elements,)] * n_varying, [(elements,)],
                       n_varying)
        total += macs or 0
    return total
