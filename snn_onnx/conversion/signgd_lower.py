"""SignGD mode, first stage: spell composite non-linearities with the primitives SignGD neurons
take, giving an ANN that computes the same function (docs/signgd.md).

* ``LayerNormalization`` → ``ReduceMean``, ``Sub``, ``Mul(d, d)`` (a ``square`` neuron),
  ``ReduceMean``, ``Add ε``, ``Sqrt``, ``Div`` (``Div(d, Sqrt(v))``: a ``div_sqrt`` neuron),
  ``Mul`` scale, ``Add`` bias.
* ``Softmax`` → ``Exp(x − c)`` (an ``exp`` neuron), ``ReduceSum``, ``Div`` (a ``div`` neuron),
  with ``c`` a constant: the largest softmax input seen on the calibration samples
  (softmax(x) = softmax(x − c) for any constant; the ANN's per-row maximum would itself be a
  max over the row).

Other ops stay as they are (the SignGD rule reads them directly). Each new node carries the
rule tag ``signgd.lower`` and a name derived from the node it replaces.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx_ir as ir

from ..errors import ConversionError
from .graph_utils import Namer, add_initializer, const_array, make_node
from .rules import tag

LOWERED = ("LayerNormalization", "Softmax")


def softmax_inputs(graph: ir.Graph) -> list[ir.Value]:
    """The inputs of the Softmax nodes that will be lowered (their maxima are calibrated)."""
    return [n.inputs[0] for n in graph if n.op_type == "Softmax" and n.domain in ("", "ai.onnx")]


def lower(model: ir.Model, softmax_shift: Callable[[ir.Value], float] | None = None) -> list[str]:
    """Rewrite every LayerNormalization and Softmax of ``model`` in place; returns the names of
    the nodes replaced. ``softmax_shift(x)`` gives the constant subtracted before Exp."""
    graph = model.graph
    namer = Namer(graph)
    done: list[str] = []
    for node in list(graph):
        if node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type == "LayerNormalization":
            _layer_norm(graph, namer, node)
        elif node.op_type == "Softmax":
            if softmax_shift is None:
                raise ConversionError("internal error: Softmax lowered without its calibrated shift", node.name, "Softmax")
            _softmax(graph, namer, node, softmax_shift(node.inputs[0]))
        else:
            continue
        done.append(node.name)
    return done


def _rank(node: ir.Node) -> int:
    x = node.inputs[0]
    if x.shape is None:
        raise ConversionError("the rank of its input is unknown; cannot spell it with primitives", node.name,
                              node.op_type)
    return len(x.shape)


class _Emitter:
    """Appends nodes before ``anchor`` with readable names and the lowering tag."""

    def __init__(self, graph: ir.Graph, namer: Namer, anchor: ir.Node):
        self.graph, self.namer, self.anchor = graph, namer, anchor
        self.base = anchor.name or anchor.op_type
        self.nodes: list[ir.Node] = []

    def const(self, what: str, array: np.ndarray) -> ir.Value:
        return add_initializer(self.graph, self.namer, f"{self.base}/{what}", np.asarray(array))

    def __call__(self, op: str, inputs: list, what: str, **attrs) -> ir.Value:
        node = make_node(self.namer, op, inputs, attrs or None, name=f"{self.base}/{what}")
        tag(node, "signgd.lower")
        ref = self.anchor.outputs[0]
        node.outputs[0].dtype = ir.DataType.FLOAT
        if op not in ("ReduceMean", "ReduceSum"):
            node.outputs[0].shape = ref.shape
        self.nodes.append(node)
        return node.outputs[0]

    def finish(self, y: ir.Value) -> None:
        self.graph.insert_before(self.anchor, self.nodes)
        old = self.anchor.outputs[0]
        name = old.name
        if old.is_graph_output():
            for i, out in enumerate(self.graph.outputs):
                if out is old:
                    self.graph.outputs[i] = y
        ir.convenience.replace_all_uses_with(old, y)
        self.graph.remove(self.anchor, safe=True)
        y.name = name


def _layer_norm(graph: ir.Graph, namer: Namer, node: ir.Node) -> None:
    if any(o.uses() or o.is_graph_output() for o in node.outputs[1:]):
        raise ConversionError("its Mean / InvStdDev outputs are used; only Y can be spelled with neurons",
                              node.name, node.op_type)
    rank = _rank(node)
    axis = node.attributes.get_int("axis", -1)
    axis = axis + rank if axis < 0 else axis
    eps = node.attributes.get_float("epsilon", 1e-5)
    axes = np.arange(axis, rank, dtype=np.int64)
    x, scale = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    e = _Emitter(graph, namer, node)
    ax = e.const("axes", axes)
    mean = e("ReduceMean", [x, ax], "mean", keepdims=1)
    d = e("Sub", [x, mean], "centered")
    sq = e("Mul", [d, d], "square")
    var = e("ReduceMean", [sq, ax], "variance", keepdims=1)
    ve = e("Add", [var, e.const("epsilon", np.array(eps, np.float32))], "variance_eps")
    sd = e("Sqrt", [ve], "std")
    y = e("Div", [d, sd], "normalized")
    y = e("Mul", [y, scale], "scale")
    if bias is not None:
        y = e("Add", [y, bias], "bias")
    e.finish(y)


def _softmax(graph: ir.Graph, namer: Namer, node: ir.Node, shift: float) -> None:
    rank = _rank(node)
    axis = node.attributes.get_int("axis", -1)
    axis = axis + rank if axis < 0 else axis
    x = node.inputs[0]
    e = _Emitter(graph, namer, node)
    shifted = e("Sub", [x, e.const("shift", np.array(shift, np.float32))], "shifted")
    ex = e("Exp", [shifted], "exp")
    total = e("ReduceSum", [ex, e.const("axes", np.array([axis], np.int64))], "sum", keepdims=1)
    e.finish(e("Div", [ex, total], "normalized"))


def is_lowered(node: ir.Node) -> bool:
    return node.metadata_props.get("snn_onnx.rule") == "signgd.lower"


def constant_scalar(v: ir.Value) -> float | None:
    arr = const_array(v)
    if arr is None or arr.size != 1:
        return None
    return float(arr.ravel()[0])
