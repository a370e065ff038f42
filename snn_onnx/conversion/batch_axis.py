"""Where the folded time*batch axis of every time-varying tensor is.

An SNN graph runs ``T*B`` rows along the batch axis of the ANN. Exporters move that axis
around (attention reshapes ``[B, N, 3, H, D]`` and transposes it to ``[3, B, H, N, D]`` before
splitting q, k and v), so "the batch axis is axis 0" is not true of every tensor. This module
follows the axis through every op that touches a time-varying tensor and refuses, naming the
node, any op that would act along it (normalise, reduce, concatenate, slice or contract over
time and samples together). The temporal ops and neurons need the axis back at position 0;
:func:`require_leading` checks that where they are inserted.
"""

from __future__ import annotations

import re

import numpy as np
import onnx_ir as ir

from ..errors import ConversionError
from ..ops import onnx_table
from .graph_utils import const_array, propagate

# Ops acting on each element (with broadcasting of their other inputs): the batch axis keeps
# its position counted from the right. Ops whose batch axis must be axis 0 (NCHW-style
# batch): output keeps it at 0.
ELEMENTWISE = onnx_table.ELEMENTWISE_OPS
LEADING_BATCH = onnx_table.LEADING_BATCH_OPS
_BIG = 2**62


class _Refuse(Exception):
    pass


def _norm(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _rank(v: ir.Value | None) -> int | None:
    return len(v.shape) if v is not None and v.shape is not None else None


def _ints_input(node: ir.Node, index: int, attr: str | None = None) -> list[int] | None:
    """Integer list from an attribute (older opsets) or a constant input (newer ones);
    None when absent; raises _Refuse when given but computed at run time."""
    if attr is not None and attr in node.attributes:
        return [int(a) for a in node.attributes.get_ints(attr)]
    if len(node.inputs) > index and node.inputs[index] is not None:
        arr = const_array(node.inputs[index])
        if arr is None:
            raise _Refuse(f"its {attr or 'axes'} input is computed at run time")
        return [int(a) for a in np.asarray(arr).ravel()]
    return None


def output_axes(node: ir.Node, axes: dict[ir.Value, int]) -> dict[ir.Value, int]:
    """Batch axis of each time-varying output of ``node`` given the batch axes of its
    time-varying inputs (``axes``, keyed by value). Raises ConversionError naming the node
    when the op would act along the batch axis or the axis cannot be followed."""
    try:
        return _output_axes(node, axes)
    except _Refuse as why:
        raise ConversionError(
            f"{why}; an SNN folds time steps into the batch axis, so the op would mix time "
            "steps and samples. Re-export the model so the op acts on the other axes",
            node.name,
            node.op_type,
        ) from None


def _tv_inputs(node: ir.Node, axes: dict[ir.Value, int]) -> list[tuple[int, ir.Value, int]]:
    return [(i, v, axes[v]) for i, v in enumerate(node.inputs) if v is not None and v in axes]


def _same(node: ir.Node, found: list[int]) -> int:
    if len(set(found)) > 1:
        raise _Refuse(f"its time-varying inputs carry the batch axis at different positions {found}")
    return found[0]


class _Ctx:
    """What every per-op rule reads: the node, its time-varying inputs (index, value, batch
    axis), its first output and that output's rank, the first varying input and its rank."""

    def __init__(self, node: ir.Node, axes: dict[ir.Value, int]):
        self.node = node
        self.tv = _tv_inputs(node, axes)
        self.out = node.outputs[0]
        self.ro = _rank(self.out)
        self.idx, self.x, self.a = self.tv[0]
        self.r = _rank(self.x)

    def all(self, axis: int) -> dict[ir.Value, int]:
        return {o: axis for o in self.node.outputs}

    def axis_attr(self, name: str, default: int) -> int | None:
        return _norm(self.node.attributes.get_int(name, default), self.r) if self.r is not None else None


def _elementwise(c: _Ctx) -> dict[ir.Value, int]:
    found = []
    for _, v, a in c.tv:
        r = _rank(v)
        if c.ro is not None and r is not None:
            found.append(c.ro - (r - a))
        elif a == 0 and (c.ro is None or r is None):
            found.append(0)  # ranks unknown: a leading batch axis stays leading
        else:
            raise _Refuse("the ranks of its inputs are unknown")
    return c.all(_same(c.node, found))


def _leading(c: _Ctx) -> dict[ir.Value, int]:
    for _, _, a in c.tv:
        if a != 0:
            raise _Refuse(f"it expects the batch on axis 0, the time-varying input has it on axis {a}")
    return c.all(0)


def _transpose(c: _Ctx) -> dict[ir.Value, int]:
    perm = c.node.attributes.get_ints("perm", None)
    perm = list(perm) if perm is not None else (list(range(c.r))[::-1] if c.r is not None else None)
    if perm is None:
        raise _Refuse("its rank is unknown")
    return {c.out: perm.index(c.a)}


def _reshape(c: _Ctx) -> dict[ir.Value, int]:
    if c.a != 0:
        raise _Refuse(f"it reshapes a tensor whose batch axis is axis {c.a}, not 0")
    return {c.out: 0}


def _flatten(c: _Ctx) -> dict[ir.Value, int]:
    k = _norm(c.node.attributes.get_int("axis", 1), c.r if c.r is not None else 2)
    if c.a == 0 and k >= 1:
        return {c.out: 0}
    raise _Refuse(f"Flatten at axis {k} merges or moves the batch axis {c.a}")


def _softmax(c: _Ctx) -> dict[ir.Value, int]:
    k = c.axis_attr("axis", -1)
    if k is None:
        raise _Refuse("its rank is unknown")
    if k == c.a:
        raise _Refuse(f"axis {k} is the folded time*batch axis")
    return {c.out: c.a}


def _layer_norm(c: _Ctx) -> dict[ir.Value, int]:
    if c.idx != 0:
        raise _Refuse("its scale or bias is time-varying")
    k = c.axis_attr("axis", -1)
    if k is None:
        raise _Refuse("its rank is unknown")
    if c.a >= k:
        raise _Refuse(f"it normalises over axes {k}.. which include the folded time*batch axis {c.a}")
    return c.all(c.a)


def _along_axis(c: _Ctx) -> dict[ir.Value, int]:
    """Concat, Split, CumSum, GatherElements: fine unless they work along the batch axis."""
    if c.node.op_type == "CumSum":
        ax = _ints_input(c.node, 1)
        k = _norm(ax[0], c.r) if ax and c.r is not None else None
    else:
        k = c.axis_attr("axis", 0)
    if k is None:
        raise _Refuse("its axis or rank is unknown")
    if k == c.a:
        raise _Refuse(f"axis {k} is the folded time*batch axis")
    if c.node.op_type == "GatherElements" and c.idx != 0:
        raise _Refuse("its indices are time-varying")
    return c.all(_same(c.node, [a2 for _, _, a2 in c.tv]))


def _gather(c: _Ctx) -> dict[ir.Value, int]:
    node = c.node
    if c.idx == 1 and len(c.tv) == 1:  # an embedding lookup: the indices carry the batch
        rd = _rank(node.inputs[0])
        if rd is None:
            raise _Refuse("the rank of its data is unknown")
        return {c.out: _norm(node.attributes.get_int("axis", 0), rd) + c.a}
    if c.idx != 0:
        raise _Refuse("its indices are time-varying")
    k = c.axis_attr("axis", 0)
    if k is None:
        raise _Refuse("its rank is unknown")
    if k == c.a:
        raise _Refuse(f"axis {k} is the folded time*batch axis")
    ri = _rank(node.inputs[1])
    if ri is None:
        raise _Refuse("the rank of its indices is unknown")
    return {c.out: c.a if c.a < k else c.a + ri - 1}


def _gather_nd(c: _Ctx) -> dict[ir.Value, int]:
    bd = c.node.attributes.get_int("batch_dims", 0)
    if c.idx != 0:
        raise _Refuse("its indices are time-varying")
    if c.a < bd:
        return {c.out: c.a}
    ind = c.node.inputs[1]
    ri = _rank(ind)
    k = ind.shape[-1] if ind is not None and ind.shape is not None and ri else None
    if not isinstance(k, int):
        raise _Refuse("the depth of its indices is unknown")
    if c.a < bd + k:
        raise _Refuse("GatherND indexes the batch axis")
    return {c.out: ri - 1 + (c.a - bd - k)}


def _squeeze(c: _Ctx) -> dict[ir.Value, int]:
    sq = _ints_input(c.node, 1, "axes")
    if sq is None:
        if c.x.shape is None or any(not isinstance(d, int) for d in c.x.shape):
            raise _Refuse("Squeeze without axes on a tensor of unknown shape (the batch axis may be 1)")
        sq = [i for i, d in enumerate(c.x.shape) if d == 1]
    sq = [_norm(s, c.r) for s in sq]
    if c.a in sq:
        raise _Refuse("it squeezes the batch axis")
    return {c.out: c.a - sum(s < c.a for s in sq)}


def _unsqueeze(c: _Ctx) -> dict[ir.Value, int]:
    us = _ints_input(c.node, 1, "axes")
    if us is None or c.r is None:
        raise _Refuse("its axes or rank are unknown")
    ro2 = c.r + len(us)
    inserted = {_norm(u, ro2) for u in us}
    kept = [pos for pos in range(ro2) if pos not in inserted]
    if c.a >= len(kept):
        raise _Refuse("cannot place the batch axis")
    return {c.out: kept[c.a]}


def _slice(c: _Ctx) -> dict[ir.Value, int]:
    node = c.node
    if c.idx != 0:
        raise _Refuse("its bounds are time-varying")
    if "starts" in node.attributes:  # opset < 10
        sl_axes = _ints_input(node, 99, "axes")
        n = len(node.attributes.get_ints("starts"))
    else:
        sl_axes = _ints_input(node, 3)
        st = node.inputs[1]
        n = st.shape[0] if st is not None and st.shape is not None and len(st.shape) == 1 else None
    if sl_axes is None:
        if n is None or not isinstance(n, int):
            raise _Refuse("its sliced axes are unknown")
        sl_axes = list(range(n))
    if c.r is None and any(s < 0 for s in sl_axes):
        raise _Refuse("its rank is unknown")
    hits = [j for j, s in enumerate(sl_axes) if _norm(s, c.r or 0) == c.a]
    if hits:
        j = hits[0]
        starts, ends = _ints_input(node, 1, "starts"), _ints_input(node, 2, "ends")
        steps = _ints_input(node, 4)
        step = steps[j] if steps else 1
        if not (starts[j] == 0 and ends[j] >= _BIG // 2 and step == 1):
            raise _Refuse(f"it slices the folded time*batch axis {c.a}")
    return {c.out: c.a}


def _pad(c: _Ctx) -> dict[ir.Value, int]:
    pads = _ints_input(c.node, 1, "pads")
    pad_axes = _ints_input(c.node, 3)
    if pads is None:
        raise _Refuse("its pads are unknown")
    n = len(pads) // 2
    pad_axes = [_norm(p, c.r or n) for p in pad_axes] if pad_axes is not None else list(range(n))
    for j, p in enumerate(pad_axes):
        if p == c.a and (pads[j] != 0 or pads[j + n] != 0):
            raise _Refuse("it pads the batch axis")
    return {c.out: c.a}


def _tile(c: _Ctx) -> dict[ir.Value, int]:
    reps = _ints_input(c.node, 1)
    if reps is None or reps[c.a] != 1:
        raise _Refuse("it repeats along the batch axis")
    return {c.out: c.a}


def _trilu(c: _Ctx) -> dict[ir.Value, int]:
    if c.r is None or c.a >= c.r - 2:
        raise _Refuse("it masks the batch axis")
    return {c.out: c.a}


def _reduce(c: _Ctx) -> dict[ir.Value, int]:
    red = _ints_input(c.node, 1, "axes")
    keep = c.node.attributes.get_int("keepdims", 1)
    if not red:
        if c.node.attributes.get_int("noop_with_empty_axes", 0) == 0:
            raise _Refuse("it reduces over all axes, including the folded time*batch axis")
        return {c.out: c.a}
    if c.r is None and any(v < 0 for v in red):
        raise _Refuse("its rank is unknown")
    red = [_norm(v, c.r or 0) for v in red]
    if c.a in red:
        raise _Refuse(f"reduction axes {red} include the folded time*batch axis {c.a}")
    return {c.out: c.a if keep else c.a - sum(v < c.a for v in red)}


def _gemm(c: _Ctx) -> dict[ir.Value, int]:
    found = []
    for i, _, ai in c.tv:
        if i == 0:
            if ai != (1 if c.node.attributes.get_int("transA", 0) else 0):
                raise _Refuse("its time-varying A carries the batch on the contraction axis")
            found.append(0)
        elif i == 1:
            if ai != (0 if c.node.attributes.get_int("transB", 0) else 1):
                raise _Refuse("its time-varying B carries the batch on the contraction axis")
            found.append(1)
        else:
            raise _Refuse("its bias C is time-varying")
    return {c.out: _same(c.node, found)}


# Ops with a rule of their own; broadcasting elementwise ops and NCHW-style ops take theirs from
# the op table (ops/onnx_table.py), reductions share one.
_RULES = {
    "Shape": lambda c: {}, "Size": lambda c: {},
    "Transpose": _transpose, "Reshape": _reshape, "Flatten": _flatten,
    "Softmax": _softmax, "LogSoftmax": _softmax, "Hardmax": _softmax,
    "LayerNormalization": _layer_norm, "RMSNormalization": _layer_norm,
    "Concat": _along_axis, "Split": _along_axis, "CumSum": _along_axis, "GatherElements": _along_axis,
    "Gather": _gather, "GatherND": _gather_nd, "Squeeze": _squeeze, "Unsqueeze": _unsqueeze,
    "Slice": _slice, "Pad": _pad, "Tile": _tile, "Trilu": _trilu,
    "MatMul": lambda c: {c.out: _matmul_axis(c.node, c.tv, c.ro)},
    "Gemm": _gemm,
    "Einsum": lambda c: {c.out: _einsum_axis(c.node, c.tv)},
}


def _output_axes(node: ir.Node, axes: dict[ir.Value, int]) -> dict[ir.Value, int]:
    op = node.op_type
    if op in ("Shape", "Size"):
        return {}
    c = _Ctx(node, axes)
    if op in ELEMENTWISE:
        return _elementwise(c)
    if op in LEADING_BATCH:
        return _leading(c)
    rule = _RULES.get(op) or (_reduce if op.startswith("Reduce") else None)
    if rule is None:
        raise _Refuse(f"snn-onnx does not know how {op} treats the batch axis")
    return rule(c)


def _matmul_axis(node: ir.Node, tv, ro: int | None) -> int:
    found = []
    for i, v, a in tv:
        r = _rank(v)
        if r is None or ro is None:
            raise _Refuse("the ranks of its inputs are unknown")
        if r == 1:
            raise _Refuse("a 1-D time-varying operand has its batch on the contraction axis")
        if i == 0:
            if a == r - 1:
                raise _Refuse("the batch axis of A is its contraction axis")
            found.append(ro - 2 if a == r - 2 else ro - (r - a))
        else:
            if a == r - 2:
                raise _Refuse("the batch axis of B is its contraction axis")
            found.append(ro - 1 if a == r - 1 else ro - (r - a))
    return _same(node, found)


def _einsum_axis(node: ir.Node, tv) -> int:
    eq = node.attributes.get_string("equation", "").replace(" ", "")
    if "->" not in eq or "..." in eq:
        raise _Refuse(f"Einsum equation '{eq}' (implicit output or ellipsis) is not supported on time-varying inputs")
    lhs, rhs = eq.split("->")
    terms = lhs.split(",")
    labels = []
    for i, _, a in tv:
        term = terms[i]
        if not re.fullmatch(r"[A-Za-z]+", term) or a >= len(term):
            raise _Refuse(f"cannot find the batch axis in Einsum term '{term}'")
        labels.append(term[a])
    if len(set(labels)) > 1:
        raise _Refuse(f"the time-varying operands carry the batch axis as different labels {labels}")
    lab = labels[0]
    if lab not in rhs:
        raise _Refuse(f"label '{lab}' (the batch axis) is summed over")
    return rhs.index(lab)


def require_leading(value: ir.Value, axes: dict[ir.Value, int], what: str, node: ir.Node | None = None) -> None:
    """The temporal ops and neurons read ``[T*B, ...]``: the batch axis must be axis 0."""
    a = axes.get(value, 0)
    if a != 0:
        raise ConversionError(
            f"{what} needs the folded time*batch axis first, but '{value.name}' carries it on axis "
            f"{a} (after a Transpose); snn-onnx cannot place the op here",
            node.name if node is not None else value.name,
            node.op_type if node is not None else None,
        )


def static_axes(graph: ir.Graph) -> dict[ir.Value, int]:
    """Batch axis of the values computed from the graph's data inputs (all at axis 0), as far
    as it can be followed; values where it cannot (shape arithmetic, index tricks on masks)
    are left out. Used for values that become spiking only on one edge (transformer mode),
    where the analysis starts from a value that is not itself time-varying."""
    def transfer(node: ir.Node, known: dict[ir.Value, int]) -> dict[ir.Value, int] | None:
        try:
            return _output_axes(node, known)
        except (_Refuse, IndexError, ValueError):
            return None  # not followed past here

    return propagate(graph, {v: 0 for v in graph.inputs if v.name not in graph.initializers}, transfer)
