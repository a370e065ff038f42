"""The neurons' membrane potentials, a debug output (docs/ops.md, "Membrane potentials"):
declared in memory on a converted model, never in a file the converter writes.

:func:`declare` gives a copy of the model whose IFNeuron, ParaIFNeuron and MultiThresholdNeuron
nodes also output their potentials (output 2) as graph outputs, and what each neuron's
threshold is, so a report can express a potential in units of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ModelLoadError
from ..ops import schema

POTENTIAL_SUFFIX = "/potentials"


@dataclass(frozen=True)
class PotentialSite:
    """One spiking layer's potential output and its thresholds.

    ``scale``: θ (IFNeuron), θ_pre (ParaIFNeuron) or the smallest positive level s_p
    (MultiThresholdNeuron), a scalar or one value per channel along ``channel_axis``;
    ``scale_neg``: s_n of a MultiThresholdNeuron (None otherwise); ``levels``: its N."""

    site: str
    node: str
    op: str
    output: str
    scale: np.ndarray
    scale_neg: np.ndarray | None
    channel_axis: int
    levels: int | None = None


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _constant(model: onnx.ModelProto, name: str, node: onnx.NodeProto) -> np.ndarray:
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init).astype(np.float32)
    for n in model.graph.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and name in n.output:
            return numpy_helper.to_array(_attr(n, "value", None)).astype(np.float32)
    raise ModelLoadError(f"{node.op_type} node '{node.name}': its parameter '{name}' is not a constant, so its "
                         "potentials cannot be expressed in units of its threshold")


def declare(model: onnx.ModelProto, sites: Sequence[dict[str, Any]] = ()) -> tuple[onnx.ModelProto, list[PotentialSite]]:
    """A copy of ``model`` with every neuron's potentials as a graph output ``<node>/potentials``
    (counts keep their output, or stay undeclared as ``""``), and the sites in graph order.
    ``sites``: the model's ``snn_onnx.sites`` metadata, which names the layers (a neuron it
    does not list is named after its node)."""
    by_node = {s.get("node"): s.get("site") for s in sites if s.get("node")}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    taken = {o.name for o in out.graph.output} | {v for n in out.graph.node for v in n.output}
    found: list[PotentialSite] = []
    for node in out.graph.node:
        if node.domain != schema.DOMAIN or node.op_type not in schema.NEURON_OPS:
            continue
        if len(node.output) > schema.POTENTIALS_OUTPUT and node.output[schema.POTENTIALS_OUTPUT]:
            name = node.output[schema.POTENTIALS_OUTPUT]
        else:
            name, k = f"{node.name or node.op_type}{POTENTIAL_SUFFIX}", 1
            while name in taken:
                name, k = f"{node.name or node.op_type}{POTENTIAL_SUFFIX}_{k}", k + 1
            while len(node.output) <= schema.POTENTIALS_OUTPUT:
                node.output.append("")
            node.output[schema.POTENTIALS_OUTPUT] = name
        taken.add(name)
        if name not in {o.name for o in out.graph.output}:
            out.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        default_axis = schema.ALL_OPS[node.op_type].attributes["channel_axis"]
        mt = node.op_type == schema.MULTI_THRESHOLD_NEURON.name
        found.append(PotentialSite(
            site=by_node.get(node.name, node.name), node=node.name, op=node.op_type, output=name,
            scale=_constant(out, node.input[1], node),
            scale_neg=_constant(out, node.input[2], node) if mt else None,
            channel_axis=int(_attr(node, "channel_axis", default_axis)),
            levels=int(_attr(node, "levels", schema.MULTI_THRESHOLD_NEURON.attributes["levels"])) if mt else None,
        ))
    if not found:
        raise ModelLoadError("the model has no IFNeuron, ParaIFNeuron or MultiThresholdNeuron node: no membrane "
                             "potentials to report")
    return out, found
