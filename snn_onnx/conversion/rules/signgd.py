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
from ..graph_utils import ancestors_within, const_array
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
        opset = graph.opset_imports.get("", 18)
        elementwise = {n: i for n, i in varying_of.items() if n.op_type in ops_table.ELEMENTWISE_OPS}
        functions = list(_functions(graph, elementwise, order, downstream, opset))
        for nodes, x, y, fn in functions:
            func, attrs = _BLOCK_FUNCTIONS[fn]
            sites.append(SgSite(unique_name(readable_name(nodes[-1]), names), "unary", func, nodes, [x], y,
                                dict(attrs)))
            taken.update(nodes)
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


def _functions(graph: ir.Graph, elementwise: dict[ir.Node, list[int]], order: dict[ir.Node, int],
               downstream: set[ir.Value], opset: int):
    """Regions of elementwise nodes that compute one known function of one value, however
    spelled: for each non-linear elementwise node (in graph order), the regions from each of
    its ancestors ``x`` (within a few elementwise steps) to each later value ``y`` that is a
    function of ``x`` alone and whose intermediate values are used only inside; the first
    that ``blocks.identify_elementwise`` names and a wide grid confirms (largest region first).
    Yields ``(nodes, x, y, name)``."""
    claimed: set[ir.Node] = set()
    for n in graph:
        if n not in elementwise or n in claimed:
            continue
        info = ops_table.info(n.op_type, n.domain)
        if not (info is not None and info.role == ops_table.NONLINEAR or n.op_type in ("Mul", "Div") and _product(n)):
            continue
        found = None
        for x in _ancestors(n, elementwise, claimed):
            if x not in downstream:
                continue
            members = _closure(x, elementwise, claimed, order)
            if n not in members:
                continue
            for y_node in sorted((m for m in members if order[m] >= order[n]), key=order.get, reverse=True):
                y = y_node.outputs[0]
                region = _region(members, x, y)
                if region is None or n not in region:
                    continue
                name = blocks.identify_elementwise(region, x, y, opset)
                if name in _BLOCK_FUNCTIONS and _confirmed(_BLOCK_FUNCTIONS[name], region, x, y, opset):
                    found = (region, x, y, name)
                    break
            if found:
                break
        if found:
            claimed.update(found[0])
            yield found


def _product(n: ir.Node) -> bool:
    """Mul / Div of two values of the graph (x·sigmoid(x)): may close a function."""
    return sum(1 for v in n.inputs if v is not None and const_array(v) is None) >= 2


def _ancestors(n: ir.Node, elementwise, claimed, depth: int = 8) -> list[ir.Value]:
    """Values above ``n`` through elementwise nodes (its own inputs included), earliest first."""
    seen: dict[ir.Value, int] = {}
    frontier = [(v, 0) for v in n.inputs if v is not None and const_array(v) is None]
    while frontier:
        v, d = frontier.pop()
        if v in seen:
            continue
        seen[v] = d
        p = v.producer()
        if p is None or d >= depth or p not in elementwise or p in claimed or len(p.outputs) != 1:
            continue
        frontier.extend((u, d + 1) for u in p.inputs if u is not None and const_array(u) is None)
    return sorted(seen, key=lambda v: -seen[v])


def _closure(x: ir.Value, elementwise, claimed, order) -> list[ir.Node]:
    """Elementwise nodes computing functions of ``x`` alone (other inputs constant), in order."""
    inside = {x}
    members: list[ir.Node] = []
    todo = sorted({u.node for u in x.uses()}, key=lambda m: order.get(m, -1))
    queued = set(todo)
    while todo:
        todo.sort(key=lambda m: order.get(m, -1))
        m = todo.pop(0)
        if m not in elementwise or m in claimed:
            continue
        if all(v is None or v in inside or const_array(v) is not None for v in m.inputs):
            members.append(m)
            for o in m.outputs:
                inside.add(o)
                for u in o.uses():
                    if u.node not in queued:
                        queued.add(u.node)
                        todo.append(u.node)
    return sorted(members, key=order.get)


def _region(members: list[ir.Node], x: ir.Value, y: ir.Value) -> list[ir.Node] | None:
    """The members ``y`` depends on, if none of their other outputs is used outside them."""
    region = ancestors_within(members, y, stop=x)
    keep = set(region)
    for m in region:
        for o in m.outputs:
            if o is not y and (o.is_graph_output() or any(u.node not in keep for u in o.uses())):
                return None
    return region


# blocks.py names a function from a grid on [-6, 6]; a neuron tracks it everywhere, so the name is
# checked again on a wide grid (ReLU6 equals ReLU on [-6, 6])
_WIDE = np.concatenate([np.linspace(-60.0, 60.0, 1201), np.linspace(-6.0, 6.0, 241)]).astype(np.float32)


def _confirmed(fn: tuple[str, dict], nodes: list[ir.Node], x: ir.Value, y: ir.Value, opset: int) -> bool:
    from ...ops import signgd_math

    got = blocks.evaluate(nodes, x, y, _WIDE, opset)
    if got is None:
        return False
    a = fn[1]
    ref = signgd_math.unary(fn[0], _WIDE, a.get("alpha", 0.01), a.get("beta", 0.5), float("-inf"), float("inf"))
    return bool(np.allclose(got, ref.astype(np.float64), rtol=1e-4, atol=1e-5))


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


def _divisor(node: ir.Node) -> bool:
    """A Sqrt / Reciprocal / Pow(·, −0.5) whose value only divides (a Div or Mul will absorb it
    into a ``div`` / ``div_sqrt`` neuron)."""
    if node.op_type not in ("Sqrt", "Reciprocal", "Pow") or len(node.outputs) != 1:
        return False
    if node.op_type == "Pow" and _scalar(node.inputs[1]) != -0.5:
        return False
    v = node.outputs[0]
    uses = list(v.uses())
    if v.is_graph_output() or len(uses) != 1:
        return False
    user, idx = uses[0].node, uses[0].idx
    if user.op_type == "Div":
        return node.op_type == "Sqrt" and idx == 1
    if user.op_type == "Reciprocal":
        return node.op_type == "Sqrt" and _divisor(user)
    return user.op_type == "Mul" and node.op_type in ("Reciprocal", "Pow")


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
