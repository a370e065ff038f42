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
from . import rules
from .graph_utils import const_array, is_float
from .rules import Site


@dataclass
class Plan:
    sites: list[Site]
    compensated: list[ir.Node] = field(default_factory=list)
    time_varying: set[ir.Value] = field(default_factory=set)


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


def _axis_hits_batch(node: ir.Node, rank: int | None) -> str | None:
    """A reason string if the node reduces/normalises/concatenates along axis 0 (T*B)."""
    op = node.op_type

    def norm(a: int) -> int:
        return a + rank if (a < 0 and rank is not None) else a

    if op in ("Softmax", "LogSoftmax", "Concat", "Split", "Flatten", "LayerNormalization", "Gather"):
        default = {"Softmax": -1, "LogSoftmax": -1, "Flatten": 1, "LayerNormalization": -1}.get(op, 0)
        axis = node.attributes.get_int("axis", default)
        if norm(axis) == 0 and not (op == "Gather" and const_array(node.inputs[0]) is not None):
            return f"axis {axis} is the folded time*batch axis"
    if op.startswith("Reduce"):
        axes_attr = node.attributes.get_ints("axes", None)
        axes = list(axes_attr) if axes_attr is not None else None
        if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
            arr = const_array(node.inputs[1])
            if arr is None:
                return "reduction axes are computed at run time"
            axes = [int(a) for a in arr.ravel()]
        if not axes:
            if node.attributes.get_int("noop_with_empty_axes", 0) == 0:
                return "it reduces over all axes, including the folded time*batch axis"
        elif any(norm(a) == 0 for a in axes):
            return f"reduction axes {axes} include the folded time*batch axis 0"
    return None


def plan_conversion(graph: ir.Graph) -> Plan:
    for node in graph:
        if node.domain == "snn_onnx":
            raise ConversionError(
                "the model already contains snn_onnx ops: it looks like a converted SNN; "
                "convert the ANN instead",
                node.name,
                node.op_type,
            )
    sites = find_sites(graph)
    site_of_output = {site.nodes[-1]: site for site in sites}
    claimed = {n for site in sites for n in site.nodes}
    plan = Plan(sites)
    tv = plan.time_varying
    for node in graph:
        if node in site_of_output:
            tv.add(site_of_output[node].output)
            continue
        if node in claimed:
            continue
        varying_inputs = [i for i, v in enumerate(node.inputs) if v is not None and v in tv]
        if not varying_inputs or node.op_type in rules.SHAPE_OPS and node.domain == "":
            continue
        _classify(node, varying_inputs, plan)
        tv.update(node.outputs)
    return plan


def _classify(node: ir.Node, varying: list[int], plan: Plan) -> None:
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
    x = node.inputs[varying[0]]
    rank = len(x.shape) if x.shape is not None else None
    reason = _axis_hits_batch(node, rank)
    if reason:
        raise ConversionError(
            f"{reason}; an SNN folds time into axis 0, so the op would mix time steps and "
            "samples. Re-export the model so the op acts on the other axes",
            node.name,
            op,
        )
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
    raise UnsupportedOpError(
        "no spiking form and not known to act on each sample separately, so it cannot be "
        "wrapped in expectation compensation. Replace it in the ANN, or add a rule in "
        "snn_onnx/convert/rules.py if it is per-sample",
        node.name,
        op,
    )
