"""The SignGD rule: every non-linearity with a SignGD form becomes SignGD neurons.

pattern      (1) per-sample elementwise regions that compute one known function of one value
             (GELU as ``x·0.5·(1 + Erf(x/√2))`` or its tanh form, SiLU as ``x·Sigmoid(x)``,
             HardSwish, ReLU …; found and named by what they compute, ``blocks.py``);
             (2) single nodes: Relu, LeakyRelu, Clip / Max / Min with constant bounds, Abs,
             Exp, Sigmoid, Tanh, Gelu, HardSigmoid, HardSwish, ``Mul(x, x)`` / ``Pow(x, 2)``;
             products and quotients of two data values (``Mul``, ``Div``, ``Div(a, Sqrt(b))``,
             ``Mul(a, Reciprocal(Sqrt(b)))``, ``Max`` / ``Min``); ``MatMul`` of two data values;
             ``MaxPool``, ``GlobalMaxPool``, ``ReduceMax``.
check        the node acts on a value computed from a weight layer's output (before any
             weight layer the input is static and is computed once as it is); shapes known;
             pooling without ``SAME`` auto-padding; the Indices output unused.
replacement  ``SignGDNeuron`` (unary), ``SignGDNeuron2`` (binary), trees of two-input ``max``
             neurons (pooling), ``mul`` neurons over ``[…, N, K, M]`` and a sum over K
             (MatMul). Done by the SignGD stage (``conversion/signgd_mode.py``), which also
             calibrates each site's amplitude.

Everything else that is not affine is left over: the stage computes it exactly when its
inputs are static, compensates it with ``allow_compensation`` and otherwise refuses it by
name. ``--explain`` lists what the rule did not take and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from ...ops import onnx_table as ops_table
from .. import blocks
from ..graph_utils import const_array
from .base import Rule, Trace, readable_name, unique_name
from .chains import after_synapse

# what blocks.identify_elementwise names -> (SignGD function, attributes)
_BLOCK_FUNCTIONS = {
    "relu": ("relu", {}),
    "gelu": ("gelu", {}),
    "gelu_tanh": ("gelu_tanh", {}),
    "silu": ("silu", {}),
    "sigmoid": ("sigmoid", {}),
    "tanh": ("tanh", {}),
    "hardswish": ("hardswish", {"alpha": 1.0 / 6.0, "beta": 0.5}),
    "hardsigmoid": ("hardsigmoid", {"alpha": 1.0 / 6.0, "beta": 0.5}),
}
_SIMPLE = {"Relu": "relu", "Abs": "abs", "Exp": "exp", "Sigmoid": "sigmoid", "Tanh": "tanh"}
SYNAPTIC = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum"})


@dataclass
class SgSite:
    """One ANN non-linearity and the SignGD form it gets."""

    name: str  # readable, unique
    kind: str  # "unary" | "binary" | "pool" | "reduce_max" | "matmul"
    function: str  # SignGD function (pooling / reductions: "max", matmul: "mul")
    nodes: list[ir.Node]  # the ANN nodes it replaces
    inputs: list[ir.Value]
    output: ir.Value
    attrs: dict = field(default_factory=dict)

    def recognised(self) -> str:
        ops = "/".join(n.op_type for n in self.nodes)
        return f"{self.function} ({self.kind}) from {ops}"


@dataclass
class Leftover:
    """A non-affine node (or an elementwise block of nodes) with no SignGD form."""

    name: str
    nodes: list[ir.Node]
    reason: str


class SignGDRule(Rule):
    name = "signgd"

    def __init__(self, trace: Trace | None = None):
        self.trace = trace if trace is not None else Trace()

    def match(self, graph: ir.Graph, data: set[ir.Value]) -> tuple[list[SgSite], list[Leftover]]:
        """Sites and leftovers of a (lowered) ANN graph; ``data``: values computed from the
        graph inputs (constants and shapes excluded)."""
        downstream = after_synapse(graph)
        varying_of = {
            n: [i for i, v in enumerate(n.inputs) if v is not None and v in data]
            for n in graph
            if n.op_type not in ops_table.SHAPE_OPS and any(v is not None and v in data for v in n.inputs)
        }
        taken: set[ir.Node] = set()
        sites: list[SgSite] = []
        leftovers: list[Leftover] = []
        names: set[str] = set()
        order = {n: i for i, n in enumerate(graph)}
        for blk in blocks.find_blocks(graph, varying_of, {}):
            fn = blk.extra.get("function")
            start = blk.extra.get("function_start", 0)
            nodes = blk.nodes[start:]
            x = blk.extra.get("function_input", blk.input)
            if fn in _BLOCK_FUNCTIONS and x in downstream:
                func, attrs = _BLOCK_FUNCTIONS[fn]
                sites.append(SgSite(unique_name(readable_name(nodes[-1]), names), "unary", func, nodes, [x],
                                    blk.output, dict(attrs)))
                taken.update(nodes)
            elif all(m.op_type in ops_table.ELEMENTWISE_OPS for m in blk.nodes) and blk.input in downstream:
                # an elementwise function of one value: if any of its nodes has no SignGD form,
                # the block is left over as a whole (compensated as one function, not node by node)
                missing = [m for m in blk.nodes if isinstance(self._node_site(m, varying_of[m], set(), set()), str)
                           and not _affine(m, varying_of[m])]
                if missing:
                    what = fn or "+".join(sorted({m.op_type for m in missing}))
                    reason = f"computes {what}, which has no SignGD form"
                    leftovers.append(Leftover(readable_name(blk.nodes[-1]), list(blk.nodes), reason))
                    self.trace.miss(self.name, blk.nodes, reason)
                    taken.update(blk.nodes)
        pending: list[Leftover] = []
        for node in graph:
            if node in taken or node not in varying_of:
                continue
            idx = varying_of[node]
            kind = _affine(node, idx)
            if kind:
                continue
            if not all(node.inputs[i] in downstream for i in idx):
                self.trace.miss(self.name, [node], "acts on the static input before any weight layer; computed once "
                                                   "as it is")
                taken.add(node)
                continue
            site = self._node_site(node, idx, names, taken)
            if isinstance(site, SgSite):
                sites.append(site)
                taken.update(site.nodes)
            else:
                pending.append(Leftover(readable_name(node), [node], site))
        for lo in pending:  # a Sqrt / Reciprocal a later Div or Mul took is not left over
            if lo.nodes[0] not in taken:
                leftovers.append(lo)
                self.trace.miss(self.name, lo.nodes, lo.reason)
        sites.sort(key=lambda s: order[s.nodes[-1]])
        leftovers.sort(key=lambda lo: order[lo.nodes[0]])
        return sites, leftovers

    # -- single nodes ----------------------------------------------------------------------
    def _node_site(self, node: ir.Node, idx: list[int], names: set[str], taken: set[ir.Node]) -> SgSite | str:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            return f"custom op of domain '{node.domain}'"
        x = node.inputs[idx[0]]
        y = node.outputs[0]
        name = unique_name(readable_name(node), names)

        def unary(fn: str, **attrs) -> SgSite:
            return SgSite(name, "unary", fn, [node], [x], y, attrs)

        if op in _SIMPLE and idx == [0]:
            return unary(_SIMPLE[op])
        if op == "LeakyRelu":
            return unary("leaky_relu", alpha=node.attributes.get_float("alpha", 0.01))
        if op == "Gelu":
            approx = node.attributes.get_string("approximate", "none")
            return unary("gelu_tanh" if approx == "tanh" else "gelu")
        if op == "HardSigmoid":
            return unary("hardsigmoid", alpha=node.attributes.get_float("alpha", 0.2),
                         beta=node.attributes.get_float("beta", 0.5))
        if op == "HardSwish":
            return unary("hardswish", alpha=1.0 / 6.0, beta=0.5)
        if op == "Clip" and idx == [0]:
            bounds = []
            for i, default in ((1, float("-inf")), (2, float("inf"))):
                v = node.inputs[i] if len(node.inputs) > i else None
                b = default if v is None else _scalar(v)
                if b is None:
                    return "Clip with bounds that are not constant scalars"
                bounds.append(b)
            return unary("clip", lo=bounds[0], hi=bounds[1])
        if op in ("Max", "Min"):
            if len(idx) == 1:
                consts = [_scalar(v) for i, v in enumerate(node.inputs) if i not in idx]
                if len(consts) != 1 or consts[0] is None:
                    return f"{op} with a non-scalar constant operand"
                c = consts[0]
                return unary("clip", lo=c, hi=float("inf")) if op == "Max" else unary("clip", lo=float("-inf"), hi=c)
            if len(node.inputs) != 2:
                return f"{op} of {len(node.inputs)} inputs (two-input neurons take two)"
            return SgSite(name, "binary", op.lower(), [node], list(node.inputs), y, {})
        if op == "Pow" and idx == [0]:
            if _scalar(node.inputs[1]) == 2.0:
                return unary("square")
            return "Pow with an exponent other than 2 (only x² has a SignGD form)"
        if op == "Mul" and len(idx) == 2:
            a, b = node.inputs
            if a is b:
                return unary("square")
            for num, den in ((a, b), (b, a)):
                inv = _inverse(den, taken)
                if inv is not None:
                    fn, src, absorbed = inv
                    return SgSite(name, "binary", fn, absorbed + [node], [num, src], y, {})
            return SgSite(name, "binary", "mul", [node], [a, b], y, {})
        if op == "Div" and 1 in idx:
            if idx != [0, 1]:
                return "Div of a constant by a time-varying value (no SignGD form)"
            a, b = node.inputs
            p = b.producer()
            if p is not None and p.op_type == "Sqrt" and _only_use(b, node) and p not in taken:
                return SgSite(name, "binary", "div_sqrt", [p, node], [a, p.inputs[0]], y, {})
            return SgSite(name, "binary", "div", [node], [a, b], y, {})
        if op == "MatMul" and idx == [0, 1]:
            if any(v.shape is None or len(v.shape) < 2 for v in node.inputs):
                return "MatMul of two data values of unknown or rank < 2 shape"
            return SgSite(name, "matmul", "mul", [node], list(node.inputs), y, {})
        if op == "MaxPool":
            if len(node.outputs) > 1 and (node.outputs[1].uses() or node.outputs[1].is_graph_output()):
                return "MaxPool whose Indices output is used"
            if node.attributes.get_string("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
                return "MaxPool with SAME auto-padding (give explicit pads)"
            return SgSite(name, "pool", "max", [node], [x], y, {})
        if op == "GlobalMaxPool":
            return SgSite(name, "reduce_max", "max", [node], [x], y, {"global": True})
        if op == "ReduceMax":
            return SgSite(name, "reduce_max", "max", [node], [x], y, {})
        if op in ops_table.OPS and ops_table.OPS[op].role in (ops_table.NONLINEAR, ops_table.LOGICAL):
            return f"{op} has no SignGD form"
        if op in ("Gemm", "Conv", "ConvTranspose", "Einsum"):
            return f"{op} of two time-varying values has no SignGD form"
        return f"{op} is not known to act on each sample separately"


def _affine(node: ir.Node, idx: list[int]) -> bool:
    op = node.op_type
    if node.domain not in ("", "ai.onnx"):
        return False
    info = ops_table.info(op, node.domain)
    if info is None:
        return False
    if info.role == ops_table.AFFINE:
        return not (op == "Where" and 0 in idx)
    if info.role == ops_table.BILINEAR:
        return idx == [0] if op == "Div" else len(idx) == 1
    return False


def _scalar(v: ir.Value | None) -> float | None:
    arr = const_array(v)
    if arr is None or arr.size != 1:
        return None
    return float(np.asarray(arr, np.float64).ravel()[0])


def _only_use(v: ir.Value, node: ir.Node) -> bool:
    return not v.is_graph_output() and all(u.node is node for u in v.uses())


def _inverse(v: ir.Value, taken: set[ir.Node]) -> tuple[str, ir.Value, list[ir.Node]] | None:
    """``1/sqrt(s)`` or ``1/s`` spelled as Reciprocal(Sqrt(s)), Pow(s, -0.5), Reciprocal(s):
    (function of the product, s, the nodes absorbed)."""
    p = v.producer()
    if p is None or p in taken or p.domain not in ("", "ai.onnx") or len(list(v.uses())) != 1:
        return None
    if p.op_type == "Pow" and _scalar(p.inputs[1]) == -0.5:
        return "div_sqrt", p.inputs[0], [p]
    if p.op_type == "Reciprocal":
        s = p.inputs[0]
        q = s.producer()
        if q is not None and q.op_type == "Sqrt" and q not in taken and _only_use(s, p):
            return "div_sqrt", q.inputs[0], [q, p]
        return "div", s, [p]
    return None
