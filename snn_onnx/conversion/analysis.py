"""Find the activation sites of an ANN and decide, node by node, what the SNN does with it.

A value is *time-varying* when it differs between time steps: the output of every spiking
neuron and everything computed from it. Values computed only from static inputs are the same
at every step, so non-linear ops on them need no compensation. Every op that receives a
time-varying input must be linear (passes through), a known per-sample non-linearity
(expectation compensation) or it stops the conversion with an error naming the node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx_ir as ir

from ..errors import ConversionError, UnsupportedOpError
from . import batch_axis, blocks, rules
from .blocks import Block
from .graph_utils import is_float
from .rules import Site


@dataclass
class Plan:
    sites: list[Site]
    compensated: list[ir.Node] = field(default_factory=list)
    time_varying: set[ir.Value] = field(default_factory=set)
    blocks: list[Block] = field(default_factory=list)  # multi-node compensation blocks
    batch_axes: dict[ir.Value, int] = field(default_factory=dict)  # of time-varying values


def find_sites(graph: ir.Graph) -> list[Site]:
    sites: list[Site] = []
    claimed: set[ir.Node] = set()
    names: set[str] = set()
    for node in graph:
        if node in claimed:
            continue
        for rule in rules.ACTIVATION_RULES:
            site = rule(node)
            if site is not None and not claimed.intersection(site.nodes):
                base, i = site.name, 1
                while site.name in names:
                    i += 1
                    site.name = f"{base}#{i}"
                names.add(site.name)
                sites.append(site)
                claimed.update(site.nodes)
                break
    return sites


def plan_conversion(graph: ir.Graph) -> Plan:
    _refuse_converted(graph)
    sites = find_sites(graph)
    plan = Plan(sites)
    plan_time(graph, plan, {site.nodes[-1]: site for site in sites}, {n for site in sites for n in site.nodes})
    return plan


def _refuse_converted(graph: ir.Graph) -> None:
    for node in graph:
        if node.domain == "snn_onnx":
            raise ConversionError(
                "the model already contains snn_onnx ops: it looks like a converted SNN; "
                "convert the ANN instead",
                node.name,
                node.op_type,
            )


def plan_time(
    graph: ir.Graph,
    plan: Plan,
    site_of_output: dict[ir.Node, Site],
    claimed: set[ir.Node],
    spiking_uses: set[tuple[ir.Node, int]] = frozenset(),
    extra_compensated: frozenset[str] = frozenset(),
) -> None:
    """Propagate time variation from the spiking sites through the graph, follow the batch
    axis, group per-sample non-linear regions into compensation blocks and classify every
    other node that sees a time-varying input. ``spiking_uses``: (node, input index) pairs fed
    by a spiking neuron inserted on that edge (transformer mode) rather than replacing a node."""
    tv, axes = plan.time_varying, plan.batch_axes
    static_axes = batch_axis.static_axes(graph)
    varying_of: dict[ir.Node, list[int]] = {}
    for node in graph:
        if node in site_of_output:
            site = site_of_output[node]
            tv.add(site.output)
            axes[site.output] = axes.get(site.input, static_axes.get(site.input, 0))
            continue
        if node in claimed:
            continue
        varying = [
            i for i, v in enumerate(node.inputs)
            if v is not None and (v in tv or (node, i) in spiking_uses)
        ]
        if not varying or node.op_type in rules.SHAPE_OPS and node.domain == "":
            continue
        _check_known(node, extra_compensated)
        local = {node.inputs[i]: axes.get(node.inputs[i], static_axes.get(node.inputs[i], 0)) for i in varying}
        axes.update(batch_axis.output_axes(node, local))
        tv.update(node.outputs)
        varying_of[node] = varying
    plan.blocks = blocks.find_blocks(graph, varying_of, axes, extra_compensated)
    in_block = {n for blk in plan.blocks for n in blk.nodes}
    for node, varying in varying_of.items():
        if node in in_block:
            continue
        if node.op_type in extra_compensated:
            plan.compensated.append(node)
            continue
        _classify(node, varying, plan)


def _check_known(node: ir.Node, extra_compensated: frozenset[str]) -> None:
    op = node.op_type
    if node.domain not in ("", "ai.onnx"):
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
    known = rules.LINEAR_OPS | rules.BILINEAR_OPS | rules.COMPENSATED_OPS | blocks.BLOCK_ONLY_OPS | extra_compensated
    if op not in known:
        raise _unsupported(node)


def _unsupported(node: ir.Node) -> UnsupportedOpError:
    return UnsupportedOpError(
        "no spiking form and not known to act on each sample separately, so it cannot be "
        "wrapped in expectation compensation. Replace it in the ANN, or add a rule in "
        "snn_onnx/conversion/rules.py if it is per-sample",
        node.name,
        node.op_type,
    )


def _classify(node: ir.Node, varying: list[int], plan: Plan) -> None:
    # every node here has passed _check_known (standard domain, known op)
    op = node.op_type
    if op in rules.LINEAR_OPS:
        if op in ("Cast", "CastLike") and not all(is_float(o) for o in node.outputs):
            raise UnsupportedOpError(
                "casting a spiking (time-varying) tensor to a non-float type is not linear",
                node.name,
                op,
            )
        if op == "Where" and 0 in varying:
            raise UnsupportedOpError("Where with a time-varying condition", node.name, op)
        return
    if op in rules.BILINEAR_OPS:
        if op == "Div" and varying == [0] or op != "Div" and len(varying) == 1:
            return
        plan.compensated.append(node)  # product of two spiking tensors: two-input form
        return
    if op in rules.COMPENSATED_OPS:
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
    if op in blocks.BLOCK_ONLY_OPS:
        raise UnsupportedOpError(
            "it acts on a time-varying tensor outside a per-sample block snn-onnx can wrap in "
            "expectation compensation (e.g. IsNaN after a Softmax); its output is not a float "
            "that can be averaged over time",
            node.name,
            op,
        )
    raise _unsupported(node)
