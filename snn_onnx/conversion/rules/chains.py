"""The pattern of the activation rule: maximal chains of elementwise nodes with constant
operands between a pre-activation tensor and the tensor the next layer reads."""

from __future__ import annotations

from dataclasses import dataclass

import onnx_ir as ir

from ...ops import onnx_table
from ..graph_utils import const_array, is_float, reachable


@dataclass
class Chain:
    nodes: list[ir.Node]
    input: ir.Value
    output: ir.Value

    def sub(self, start: int, end: int) -> "Chain":
        """Nodes start..end (inclusive) as a chain of their own."""
        nodes = self.nodes[start : end + 1]
        return Chain(nodes, data_input(nodes[0]), nodes[-1].outputs[0])

    @property
    def quantizing(self) -> list[ir.Node]:
        return [n for n in self.nodes if n.op_type in onnx_table.QUANTIZING_OPS]


def _chain_op(node: ir.Node) -> bool:
    entry = onnx_table.info(node.op_type, node.domain)
    return entry is not None and entry.chain and len(node.outputs) == 1 and not node.attributes.get("training_mode")


def data_input(node: ir.Node) -> ir.Value | None:
    """The one non-constant input of a chain op (None when there is not exactly one)."""
    if not _chain_op(node):
        return None
    varying = [v for v in node.inputs if v is not None and const_array(v) is None]
    if len(varying) != 1:
        return None
    if node.op_type in ("QuantizeLinear", "DequantizeLinear") and varying[0] is not node.inputs[0]:
        return None
    return varying[0]


def _only_use(value: ir.Value) -> ir.Node | None:
    uses = list(value.uses())
    if len(uses) != 1 or value.is_graph_output():
        return None
    return uses[0].node


def is_nonaffine(node: ir.Node) -> bool:
    entry = onnx_table.info(node.op_type, node.domain)
    return entry is not None and entry.role != onnx_table.AFFINE and node.op_type not in ("Mul", "Div")


def find_chains(graph: ir.Graph) -> list[Chain]:
    """Every maximal chain holding at least one non-affine op, in graph order."""
    chains: list[Chain] = []
    seen: set[ir.Node] = set()
    for node in graph:
        if node in seen or data_input(node) is None:
            continue
        # walk back to the chain's first node
        first = node
        while True:
            x = data_input(first)
            p = x.producer() if x is not None else None
            if p is None or p in seen or data_input(p) is None or _only_use(p.outputs[0]) is not first:
                break
            first = p
        nodes = [first]
        while True:
            nxt = _only_use(nodes[-1].outputs[0])
            if nxt is None or nxt in seen or data_input(nxt) is not nodes[-1].outputs[0]:
                break
            nodes.append(nxt)
        seen.update(nodes)
        x, y = data_input(first), nodes[-1].outputs[0]
        if any(is_nonaffine(n) for n in nodes) and is_float(x) and is_float(y):
            chains.append(Chain(nodes, x, y))
        elif any(is_nonaffine(n) for n in nodes):
            chains.append(Chain(nodes, x, y))  # non-float ends: reported by the rule, not dropped
    return chains


def after_synapse(graph: ir.Graph) -> set[ir.Value]:
    """Values computed from the output of a weight layer (Conv, Gemm, MatMul, …) on a data
    path: where an activation is a neuron's input. Chains before any weight layer act on the
    static input (input quantizers, normalisation): they run once and stay as they are."""
    synaptic = onnx_table.ops_with(cost=onnx_table.SYNAPTIC)

    def weight_layer(node: ir.Node) -> bool:
        return node.op_type in synaptic and any(v is not None and const_array(v) is None for v in node.inputs)

    return reachable(graph, starts=weight_layer)
