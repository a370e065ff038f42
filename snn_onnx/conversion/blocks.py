"""Compensation blocks: per-sample non-linear regions wrapped as ONE function f.

Expectation compensation turns a non-linear f into ``TemporalDelta(f(TemporalMean(x)))``.
Exporters write many non-linearities as several nodes: GELU as ``x * 0.5 * (1 + Erf(x/√2))``
(or its tanh form), SiLU as ``x * Sigmoid(x)``, HardSwish as ``x * Clip(x + 3, 0, 6) / 6``,
LayerNorm as ReduceMean / Sub / Pow / ReduceMean / Add / Sqrt / Div / Mul / Add, a NaN-safe
softmax as ``Where(IsNaN(Softmax(s)), 0, Softmax(s))``. Compensating them node by node would
treat ``x * Sigmoid(x)`` as a product of two time-varying tensors and put a TemporalMean /
TemporalDelta pair around every node. A block is instead the largest region of per-sample
ops that is a function of one time-varying value x alone (other inputs constant or the same at
every step, like an attention mask) with one float output y; the rewrite puts one
TemporalMean on x and one TemporalDelta on y, and the region runs on running means,
computing exactly the ANN's nodes.

Blocks are found structurally, whatever order or form the exporter chose; :func:`label`
names the well-known ones (gelu, gelu_tanh, silu, hardswish, layer_norm, softmax, ...) for the
model's metadata and for fused kernels.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from ..ops import onnx_table
from .graph_utils import ancestors_within, const_array, is_float

ELEMENTWISE = onnx_table.ELEMENTWISE_OPS
# Ops that are only acceptable inside a block (their output is not a float that could be
# averaged, e.g. IsNaN feeding a Where's condition, or a one-hot Hardmax).
BLOCK_ONLY_OPS = onnx_table.LOGICAL_OPS | (onnx_table.NONLINEAR_OPS - onnx_table.COMPENSABLE_OPS)
_NONLINEAR = onnx_table.COMPENSABLE_OPS | onnx_table.LOGICAL_OPS  # what makes a region a block
# Ops that may sit inside a block: they act on each sample separately (the batch-axis
# analysis has already refused any that would act along it).
BLOCK_OPS = ELEMENTWISE | frozenset(
    """Softmax LogSoftmax Hardmax LayerNormalization RMSNormalization ReduceMean ReduceSum
    ReduceMax ReduceMin ReduceL1 ReduceL2 ReduceSumSquare ReduceLogSumExp ReduceProd Reshape
    Transpose Squeeze Unsqueeze Slice Gather Flatten Identity Dropout Cast""".split()
)


@dataclass
class Block:
    """A per-sample region compensated as one function ``y = f(x)``."""

    name: str
    kind: str
    nodes: list[ir.Node]
    input: ir.Value
    output: ir.Value
    extra: dict = field(default_factory=dict)


def _nonlinear(node: ir.Node, inside: set[ir.Value]) -> bool:
    op = node.op_type
    if op in _NONLINEAR:
        return True
    if op in ("Mul", "Div", "Pow"):  # a product of two values of the block
        return sum(1 for v in node.inputs if v is not None and v in inside) >= 2
    return False


def _tv_values(node: ir.Node, varying_of: dict[ir.Node, list[int]]) -> list[ir.Value]:
    seen: list[ir.Value] = []
    for i in varying_of.get(node, []):
        v = node.inputs[i]
        if v not in seen:
            seen.append(v)
    return seen


def _allowed(node: ir.Node, varying_of, claimed) -> bool:
    return (
        node in varying_of
        and node not in claimed
        and node.domain in ("", "ai.onnx")
        and node.op_type in BLOCK_OPS | BLOCK_ONLY_OPS
    )


def _closure(
    root: ir.Value, order: dict[ir.Node, int], varying_of, claimed
) -> list[ir.Node]:
    """Nodes computing functions of ``root`` alone, in graph order."""
    inside: set[ir.Value] = {root}
    members: list[ir.Node] = []
    heap: list[tuple[int, int]] = []
    queued: set[ir.Node] = set()
    by_id: dict[int, ir.Node] = {}

    def push(value: ir.Value) -> None:
        for use in value.uses():
            n = use.node
            if n not in queued and n in order:
                queued.add(n)
                by_id[id(n)] = n
                heapq.heappush(heap, (order[n], id(n)))

    push(root)
    while heap:
        _, nid = heapq.heappop(heap)
        n = by_id[nid]
        if not _allowed(n, varying_of, claimed):
            continue
        if all(v in inside for v in _tv_values(n, varying_of)):
            members.append(n)
            for out in n.outputs:
                inside.add(out)
                push(out)
    members.sort(key=lambda n: order[n])
    return members


def _exits(members: list[ir.Node], root: ir.Value) -> list[ir.Value]:
    mset = set(members)
    out = []
    for n in members:
        for v in n.outputs:
            if v is root:
                continue
            if v.is_graph_output() or any(u.node not in mset for u in v.uses()):
                out.append(v)
    return out


def find_blocks(
    graph: ir.Graph,
    varying_of: dict[ir.Node, list[int]],
    axes: dict[ir.Value, int],
) -> list[Block]:
    """Group the non-linear per-sample nodes into blocks that are functions of one value.

    For each non-linear node n (in graph order, not yet in a block), candidate roots are its
    time-varying inputs and the values above them reached through per-sample ops; the earliest
    root whose closure (the nodes that are functions of the root alone) contains n and has
    exactly one float output used elsewhere, with the batch axis leading at both ends, makes
    the block. A node for which no such region exists (a product of two independent
    tensors, say) is left to node-by-node compensation."""
    order = {node: i for i, node in enumerate(graph)}
    opset = graph.opset_imports.get("", 18)
    claimed: set[ir.Node] = set()
    found: list[Block] = []
    for n in graph:
        if n in claimed or not _allowed(n, varying_of, claimed):
            continue
        tv = _tv_values(n, varying_of)
        if not _nonlinear(n, set(tv) if len(tv) > 1 else set()):
            continue
        for root in _candidate_roots(n, tv, order, varying_of, claimed):
            if axes.get(root, 0) != 0 or not is_float(root):
                continue
            members = _closure(root, order, varying_of, claimed)
            if n not in members:
                continue
            exits = _exits(members, root)
            if len(exits) != 1 or not is_float(exits[0]) or axes.get(exits[0], 0) != 0:
                continue
            inside = {root} | {v for m in members for v in m.outputs}
            if not any(_nonlinear(m, inside) for m in members):
                continue
            members, y = _trim_tail(ancestors_within(members, exits[0]), exits[0], axes)
            fn = identify_function(members, root, y, opset)
            kind = fn[0] if fn else label(members, root, y, opset)
            blk = Block(name="", kind=kind, nodes=members, input=root, output=y)
            if fn:  # an elementwise function, starting at fn[1] (after a bias add, say)
                blk.extra.update(function=fn[0], function_input=fn[1], function_start=fn[2])
            blk.name = _block_name(blk)
            found.append(blk)
            claimed.update(members)
            break
    return found


def _candidate_roots(n, tv, order, varying_of, claimed, max_depth: int = 10) -> list[ir.Value]:
    """Values above n reached through per-sample ops (n's own inputs included), earliest first."""
    seen: set[ir.Value] = set()
    frontier = [(v, 0) for v in tv]
    while frontier:
        v, d = frontier.pop()
        if v in seen:
            continue
        seen.add(v)
        p = v.producer()
        if d >= max_depth or p is None or not _allowed(p, varying_of, claimed) or len(p.outputs) != 1:
            continue
        frontier.extend((u, d + 1) for u in _tv_values(p, varying_of))

    def pos(v: ir.Value) -> int:
        p = v.producer()
        return -1 if p is None else order.get(p, -1)

    return sorted(seen, key=pos)


_MOVERS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Dropout"})


def _trim_tail(members: list[ir.Node], y: ir.Value, axes: dict[ir.Value, int]) -> tuple[list[ir.Node], ir.Value]:
    """Reshapes and transposes at the end of a block only move values: they commute with the
    running mean, so they stay outside and the block ends on its last non-linear op (which
    lets a known function be named and fused)."""
    while len(members) > 1:
        last = y.producer()
        if last is not members[-1] or last.op_type not in _MOVERS or last.domain not in ("", "ai.onnx"):
            break
        x = last.inputs[0]
        if (x is None or x.is_graph_output() or len(list(x.uses())) != 1 or x.producer() not in members
                or axes.get(x, 0) != 0 or not is_float(x)):
            break
        members = members[:-1]
        y = x
    return members, y


def _block_name(blk: Block) -> str:
    from .rules import readable_name

    return f"{readable_name(blk.nodes[-1])}:{blk.kind}"


# --- naming -----------------------------------------------------------------------------


def label(members: list[ir.Node], root: ir.Value, y: ir.Value, opset: int = 18) -> str:
    """A readable name of what the block computes: a known function when its nodes compute
    one (checked numerically for elementwise blocks), else its non-linear op types."""
    ops = {m.op_type for m in members}
    if "LayerNormalization" in ops or {"ReduceMean", "Sqrt"} <= ops or {"ReduceMean", "Reciprocal"} <= ops:
        return "layer_norm"
    if "RMSNormalization" in ops:
        return "rms_norm"
    if ops & {"Softmax", "LogSoftmax"}:
        return "softmax" if "Softmax" in ops else "log_softmax"
    fn = identify_elementwise(members, root, y, opset)
    if fn is not None:
        return fn
    nonlin = sorted(o for o in ops if o in _NONLINEAR)
    return "+".join(nonlin) if nonlin else "product"


def identify_function(
    members: list[ir.Node], root: ir.Value, y: ir.Value, opset: int = 18
) -> tuple[str, ir.Value, int] | None:
    """(name, input value, index of its first node) of a known elementwise function computed
    by the block or by its tail (a block may start with a bias add or a scale)."""
    for j, first in enumerate(members):
        sub = members[j:]
        produced = {v for m in sub for v in m.outputs}
        starts = [v for v in first.inputs if v is not None and const_array(v) is None]
        if len(starts) != 1:
            continue
        r = starts[0]
        inside_before = {root} | {v for m in members[:j] for v in m.outputs}
        ok = all(
            v is None or v in produced or v is r or v not in inside_before
            for m in sub for v in m.inputs
        )
        if not ok:
            continue
        name = identify_elementwise(sub, r, y, opset)
        if name is not None:
            return name, r, j
    return None


def _ref_functions() -> dict[str, callable]:
    from math import erf, pi, sqrt

    def gelu(x):
        return 0.5 * x * (1.0 + np.vectorize(erf)(x / sqrt(2.0)))

    def gelu_tanh(x):
        return 0.5 * x * (1.0 + np.tanh(sqrt(2.0 / pi) * (x + 0.044715 * x**3)))

    def sigmoid(x):
        return 1.0 / (1.0 + np.exp(-x))

    return {
        "gelu": gelu,
        "gelu_tanh": gelu_tanh,
        "silu": lambda x: x * sigmoid(x),
        "sigmoid": sigmoid,
        "tanh": np.tanh,
        "hardswish": lambda x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,
        "hardsigmoid": lambda x: np.clip(x / 6.0 + 0.5, 0.0, 1.0),
        "relu": lambda x: np.maximum(x, 0.0),
        "mish": lambda x: x * np.tanh(np.log1p(np.exp(x))),
    }


PROBE = np.linspace(-6.0, 6.0, 241).astype(np.float32)


def identify_elementwise(members: list[ir.Node], root: ir.Value, y: ir.Value, opset: int = 18) -> str | None:
    """The known function an elementwise block computes, checked by running its nodes in ONNX
    Runtime on a probe grid; None when it is not elementwise, has non-scalar constants or
    matches nothing."""
    if any(m.op_type not in ELEMENTWISE for m in members):
        return None
    values = evaluate(members, root, y, PROBE, opset)
    if values is None:
        return None
    x = PROBE.astype(np.float64)
    for name, f in _ref_functions().items():
        ref = f(x)
        if np.allclose(values, ref, rtol=1e-4, atol=1e-5):
            return name
    return None


def evaluate(members: list[ir.Node], root: ir.Value, y: ir.Value, x: np.ndarray, opset: int = 18) -> np.ndarray | None:
    """Run the block's nodes on a 1-D ``x`` (their constants must be scalars)."""
    import onnx
    import onnxruntime as ort

    inside = {root} | {v for m in members for v in m.outputs}
    inits = []
    for m in members:
        for v in m.inputs:
            if v is None or v in inside:
                continue
            arr = const_array(v)
            if arr is None or arr.size != 1:
                return None
            inits.append(onnx.numpy_helper.from_array(np.asarray(arr).reshape(arr.shape), v.name))
    try:
        nodes = [ir.serde.serialize_node(m) for m in members]
        graph = onnx.helper.make_graph(
            nodes, "block",
            [onnx.helper.make_tensor_value_info(root.name, onnx.TensorProto.FLOAT, [None])],
            [onnx.helper.make_tensor_value_info(y.name, onnx.TensorProto.FLOAT, None)],
            list({i.name: i for i in inits}.values()),
        )
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)], ir_version=9)
        so = ort.SessionOptions()
        so.log_severity_level = 4
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        (out,) = sess.run([y.name], {root.name: x.astype(np.float32)})
    except Exception:
        return None
    return np.asarray(out, dtype=np.float64)
