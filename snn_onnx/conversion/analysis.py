"""Time analysis of a graph whose spiking neurons are in place: which values vary over time,
where their batch axis is, and what happens to every other node that sees one.

A value is *time-varying* when it differs between time steps: the output of every spiking
neuron and everything computed from it. Values computed only from static inputs are the same
at every step, so non-linear ops on them need no compensation. Every op that receives a
time-varying input must be affine (passes through), a per-sample non-linearity (expectation
compensation, alone or as part of a block) or it stops the conversion with an error naming
the node. What each op is comes from ``ops/onnx_table.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx_ir as ir

from ..errors import ConversionError, UnsupportedOpError
from ..ops import schema
from ..ops import onnx_table
from . import batch_axis, blocks
from .blocks import Block
from .graph_utils import is_float, propagate


@dataclass
class Plan:
    compensated: list[ir.Node] = field(default_factory=list)  # single nodes and two-input products
    time_varying: set[ir.Value] = field(default_factory=set)
    blocks: list[Block] = field(default_factory=list)  # multi-node compensation blocks
    batch_axes: dict[ir.Value, int] = field(default_factory=dict)  # of time-varying values


def refuse_converted(graph: ir.Graph) -> None:
    for node in graph:
        if node.domain == schema.DOMAIN:
            raise ConversionError(
                "the model already contains snn_onnx ops: it looks like a converted SNN; "
                "convert the ANN instead",
                node.name,
                node.op_type,
            )


_SPIKING = frozenset(schema.SPIKING_OPS)


def plan_time(graph: ir.Graph, seeds: frozenset[ir.Value] = frozenset()) -> Plan:
    """Propagate time variation from the spiking ops (and ``seeds``: inputs that already vary
    over time) through the graph, follow the batch axis, group per-sample non-linear regions
    into compensation blocks and classify every other node that sees a time-varying input."""
    plan = Plan()
    axes = plan.batch_axes
    static_axes = batch_axis.static_axes(graph)
    axes.update({v: 0 for v in seeds})
    varying_of: dict[ir.Node, list[int]] = {}

    def axis_of(v: ir.Value) -> int:
        return axes.get(v, static_axes.get(v, 0))

    def transfer(node: ir.Node, facts: dict) -> dict:
        if node.domain == schema.DOMAIN:  # a neuron: its spikes vary; its input needs the batch first
            x = node.inputs[0]
            batch_axis.require_leading(x, {x: axis_of(x) if x is not None else 0}, node.op_type, node)
            axes[node.outputs[0]] = 0
            return {node.outputs[0]: True}
        varying = [i for i, v in enumerate(node.inputs) if v is not None and v in facts]
        _check_known(node)
        axes.update(batch_axis.output_axes(node, {node.inputs[i]: axis_of(node.inputs[i]) for i in varying}))
        varying_of[node] = varying
        return {o: True for o in node.outputs}

    def spiking(node: ir.Node) -> bool:
        return node.domain == schema.DOMAIN and node.op_type in _SPIKING

    plan.time_varying.update(propagate(graph, {v: True for v in seeds}, transfer, start=spiking))
    plan.blocks = blocks.find_blocks(graph, varying_of, axes)
    in_block = {n for blk in plan.blocks for n in blk.nodes}
    for node, varying in varying_of.items():
        if node not in in_block:
            _classify(node, varying, plan)
    return plan


def _check_known(node: ir.Node) -> None:
    op = node.op_type
    if node.domain not in onnx_table.STANDARD_DOMAINS and not (
        node.domain == "com.microsoft" and op in onnx_table.QDQ_OPS
    ):
        raise UnsupportedOpError(
            f"custom op of domain '{node.domain}' on a time-varying tensor: snn-onnx cannot "
            "know whether it acts on each time step separately",
            node.name,
            op,
        )
    if any(attr.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS) for attr in node.attributes.values()):
        raise UnsupportedOpError(
            "control flow (subgraphs) on a time-varying tensor is not supported", node.name, op
        )
    if onnx_table.info(op, node.domain) is None:
        raise _unsupported(node)


def _unsupported(node: ir.Node) -> UnsupportedOpError:
    return UnsupportedOpError(
        "no spiking form and not known to act on each sample separately, so it cannot be "
        "wrapped in expectation compensation. Replace it in the ANN, or describe it in "
        "snn_onnx/conversion/onnx_table.py if it is per-sample",
        node.name,
        node.op_type,
    )


def _classify(node: ir.Node, varying: list[int], plan: Plan) -> None:
    # every node here has passed _check_known (known domain and op)
    op = node.op_type
    role = onnx_table.info(op, node.domain).role
    if role == onnx_table.AFFINE:
        if op in ("Cast", "CastLike") and not all(is_float(o) for o in node.outputs):
            raise UnsupportedOpError(
                "casting a spiking (time-varying) tensor to a non-float type is not linear",
                node.name,
                op,
            )
        if op == "Where" and 0 in varying:
            raise UnsupportedOpError("Where with a time-varying condition", node.name, op)
        return
    if role == onnx_table.BILINEAR:
        if op == "Div" and varying == [0] or op != "Div" and len(varying) == 1:
            return
        plan.compensated.append(node)  # product of two spiking tensors: two-input form
        return
    if op in onnx_table.COMPENSABLE_OPS:
        used_non_float = [
            o.name for o in node.outputs if not is_float(o) and (o.uses() or o.is_graph_output())
        ]
        if used_non_float:
            raise UnsupportedOpError(
                f"its non-float outputs {used_non_float} are used; compensation averages "
                "float values only",
                node.name,
                op,
            )
        plan.compensated.append(node)
        return
    if role in (onnx_table.NONLINEAR, onnx_table.LOGICAL):
        raise UnsupportedOpError(
            "it acts on a time-varying tensor outside a per-sample block snn-onnx can wrap in "
            "expectation compensation (e.g. IsNaN after a Softmax); its output is not a float "
            "that can be averaged over time",
            node.name,
            op,
        )
    raise _unsupported(node)
