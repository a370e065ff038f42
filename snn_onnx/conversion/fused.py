"""Fused compensation: a block computing a known elementwise f becomes one
``CompensatedElementwise`` node instead of TemporalMean -> f's nodes -> TemporalDelta.

Only where it is faster (``benchmarks/fused_compensation.py``, docs/fused_compensation.md):
for piecewise-linear f (ReLU, HardSigmoid, HardSwish) one pass over memory replaces three.
For f with transcendental functions (GELU, SiLU, sigmoid, tanh) ONNX Runtime's own kernels
(vectorised for the running CPU at run time) beat the library's portable ones, so those blocks
stay unfused even when fusion is asked for; the unfused form is the reference anyway.
"""

from __future__ import annotations

import onnx_ir as ir

from ..ops import schema
from .blocks import Block
from .graph_utils import const_array, make_node
from .rewrite import SnnBuilder
from .rules import tag

# functions whose fused kernel measured faster than the unfused form
FUSED_FUNCTIONS = frozenset({"relu", "hardsigmoid", "hardswish"})
_AFFINE = frozenset({"Add", "Sub", "Mul", "Div", "Identity", "Cast"})


def can_fuse(blk: Block) -> bool:
    fn = blk.extra.get("function")
    if fn not in FUSED_FUNCTIONS or fn not in schema.ELEMENTWISE_FUNCTIONS:
        return False
    for node in blk.nodes[: blk.extra["function_start"]]:  # runs before the fused op, on spikes
        if node.op_type not in _AFFINE or node.domain not in ("", "ai.onnx"):
            return False
        varying = [v for v in node.inputs if v is not None and const_array(v) is None]
        if len(varying) != 1 or (node.op_type == "Div" and node.inputs[0] is not varying[0]):
            return False
    return True


def fuse_block(builder: SnnBuilder, blk: Block) -> ir.Node:
    """Replace the block's function part by a CompensatedElementwise node; an affine prefix
    (a bias add, a scale) stays in front of it, where it commutes with the running mean."""
    x = blk.extra["function_input"]
    y = blk.output
    op = schema.COMPENSATED_ELEMENTWISE.name
    node = make_node(builder.namer, op, [x], {"time_steps": builder.T, "function": blk.extra["function"]},
                     domain=schema.DOMAIN, name=f"{blk.name}/{op}")
    tag(node, "compensation")
    node.outputs[0].dtype, node.outputs[0].shape = y.dtype, y.shape
    builder.graph.insert_after(y.producer(), [node])
    builder._redirect(y, node.outputs[0], keep=set(blk.nodes))
    if y.is_graph_output():
        name = y.name
        y.name = builder.namer(f"{name}/unfused")
        node.outputs[0].name = name
        builder._replace_graph_output(y, node.outputs[0])
    return node
