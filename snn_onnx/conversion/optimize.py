"""Graph optimizations of a converted SNN that change its cost, never its results.

``hoist_time_entry``: under direct coding a static input is repeated T times at the graph's
entry (``Tile``), so every layer before the first spiking neuron computes the same thing T
times. This pass moves the repeat down past that time-invariant prefix: the prefix runs once
on ``[B, ...]``, a neuron fed by it takes the one step directly (``static_input = 1``,
docs/ops.md) and emits ``[T*B, ...]``, and any other consumer of a prefix value gets the value
repeated (one ``Tile`` per value, right where it leaves the prefix).

Correctness rests on one property of every op the pass moves: it acts on each sample (row of
axis 0) separately, so ``f(tile(x)) == tile(f(x))``. Ops are admitted from an explicit list,
each with the conditions under which that holds (constant parameters that do not broadcast
along axis 0, axes other than 0, reshapes that keep axis 0 outermost …); anything else ends
the prefix. ONNX Runtime's Conv and Gemm give bit-identical rows for any batch size, so the
hoisted graph's outputs and spikes equal the unhoisted graph's (tests/test_optimize.py).
Values that describe shapes are the one trap: ``Shape`` of a prefix value would report B rows
where the unhoisted graph reports T*B, so such a ``Shape`` gets its first entry multiplied by T
(and ``Size`` its result) and stays outside the prefix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from ..errors import ConversionError
from ..ops import schema
from .rules.base import tag
from .graph_utils import Namer, add_initializer, const_array, insert_after_producer, make_node

INT64_MAX = np.iinfo(np.int64).max

# Elementwise ops with one data input: per-sample whatever their attributes.
_UNARY = frozenset(
    """Identity Dropout Cast Neg Abs Relu LeakyRelu Sigmoid HardSigmoid HardSwish Tanh Exp Log
    Sqrt Reciprocal Erf Gelu Elu Selu Celu Softplus Softsign Mish Sin Cos Floor Ceil Round Sign
    ThresholdedRelu Shrink""".split()
)
# Elementwise ops with broadcasting: per-sample when constants do not broadcast along axis 0.
_BROADCAST = frozenset("Add Sub Mul Div Pow Max Min Sum Mean PRelu Where Clip".split())
# Ops on each sample's own feature map (N is the sample axis) with constant parameters.
_PER_SAMPLE = frozenset(
    """Conv ConvTranspose BatchNormalization AveragePool GlobalAveragePool GlobalMaxPool LpPool
    GlobalLpPool LRN InstanceNormalization""".split()
)
_NEURONS = frozenset({schema.IF_NEURON.name, schema.PARA_IF_NEURON.name})


@dataclass
class HoistReport:
    hoisted: list[str] = field(default_factory=list)  # nodes now run once on [B, ...]
    static_neurons: list[str] = field(default_factory=list)  # neurons given static_input = 1
    repeats: list[str] = field(default_factory=list)  # values repeated where they leave the prefix

    def describe(self) -> dict:
        return {"hoisted": self.hoisted, "static_neurons": self.static_neurons, "repeats": self.repeats}


def _rank(v: ir.Value) -> int | None:
    return len(v.shape) if v.shape is not None else None


def _axis(a: int, rank: int | None) -> int | None:
    if a >= 0:
        return a
    return a + rank if rank is not None else None


def _const_not_batched(c: np.ndarray, out_rank: int | None) -> bool:
    """A constant operand broadcast against a [B, ...] value: it must not have a leading axis
    of its own that lines up with axis 0 (size > 1 there)."""
    if out_rank is None:
        return False
    return c.ndim < out_rank or c.shape[0] == 1


def _is_entry_tile(node: ir.Node, T: int, graph_inputs: set[ir.Value]) -> bool:
    if node.op_type != "Tile" or node.domain != "" or len(node.inputs) != 2:
        return False
    x = node.inputs[0]
    reps = const_array(node.inputs[1])
    if x is None or x not in graph_inputs or reps is None or x.shape is None:
        return False
    reps = reps.ravel().tolist()
    return len(reps) == len(x.shape) and reps[:1] == [T] and all(r == 1 for r in reps[1:])


class _Hoister:
    def __init__(self, model: ir.Model, T: int):
        self.graph, self.T = model.graph, T
        self.namer = Namer(self.graph)
        self.static: set[ir.Value] = set()  # values now holding one step [B, ...]
        self.tiled: dict[ir.Value, ir.Value] = {}
        self.report = HoistReport()
        self._consts: dict[tuple, ir.Value] = {}

    def const(self, base: str, array: np.ndarray) -> ir.Value:
        key = (base, array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            self._consts[key] = add_initializer(self.graph, self.namer, base, array)
        return self._consts[key]

    # -- which nodes act on each sample separately ------------------------------------------
    def per_sample(self, node: ir.Node) -> bool:
        if node.domain not in ("", "ai.onnx"):
            return False
        if any(a.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS) for a in node.attributes.values()):
            return False
        ins = [v for v in node.inputs if v is not None]
        data = [v for v in ins if v in self.static]
        others = [v for v in ins if v not in self.static]
        if any(const_array(v) is None for v in others):
            return False  # fed by something computed at T*B (or from shapes): stays outside
        if any(o.shape is None for o in node.outputs if o.uses() or o.is_graph_output()):
            return False  # the repeat at the prefix's edge needs the rank
        op = node.op_type
        x = node.inputs[0]
        rank = _rank(x) if x is not None else None
        attrs = node.attributes

        if op in _UNARY:
            if op == "Dropout" and len(node.outputs) > 1 and node.outputs[1].uses():
                return False
            return data == [x]
        if op in _BROADCAST:
            out_rank = _rank(node.outputs[0])
            if op == "Clip":
                return x in self.static and all(v is x for v in data)
            return all(_const_not_batched(const_array(v), out_rank) for v in others)
        if op in _PER_SAMPLE:
            if data != [x]:
                return False
            if op == "BatchNormalization" and (attrs.get_int("training_mode", 0) or len(node.outputs) > 1):
                return False
            return True
        if op == "MaxPool":  # its Indices output counts flat positions across the batch
            return data == [x] and not (len(node.outputs) > 1 and node.outputs[1].uses())
        if op == "Gemm":
            if data != [x] or attrs.get_int("transA", 0):
                return False
            c = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
            return c is None or c.ndim < 2 or c.shape[0] == 1
        if op == "MatMul":
            w = const_array(node.inputs[1])
            return data == [x] and rank is not None and rank >= 2 and w is not None and w.ndim <= 2
        if op in ("Softmax", "LogSoftmax", "Hardmax", "LayerNormalization", "Flatten"):
            default = {"Flatten": 1, "LayerNormalization": -1}.get(op, -1)
            a = _axis(attrs.get_int("axis", default), rank)
            return data == [x] and a is not None and a >= 1
        if op == "Transpose":
            perm = attrs.get_ints("perm", None)
            return data == [x] and perm is not None and perm[0] == 0
        if op in ("Squeeze", "Unsqueeze"):
            axes = attrs.get_ints("axes", None)
            if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
                axes = const_array(node.inputs[1]).ravel().tolist()
            if not axes or data != [x]:
                return False
            r = rank + len(axes) if op == "Unsqueeze" and rank is not None else rank
            return all((a2 := _axis(int(a), r)) is not None and a2 >= 1 for a in axes)
        if op == "Reshape":
            return data == [x] and self._reshape_keeps_rows(node)
        if op == "Pad":
            pads = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
            if data != [x] or pads is None or rank is None or (len(node.inputs) > 3 and node.inputs[3] is not None):
                return False
            pads = pads.ravel()
            return pads.size == 2 * rank and pads[0] == 0 and pads[rank] == 0
        if op == "Slice":
            if data != [x] or len(node.inputs) < 4 or node.inputs[3] is None:
                return False
            axes = const_array(node.inputs[3]).ravel().tolist()
            return all((a2 := _axis(int(a), rank)) is not None and a2 >= 1 for a in axes)
        if op in ("Concat", "Split"):
            a = _axis(attrs.get_int("axis", 0), rank)
            if op == "Concat":
                return not others and a is not None and a >= 1
            return data == [x] and a is not None and a >= 1
        if op == "Gather":
            a = _axis(attrs.get_int("axis", 0), rank)
            return data == [x] and a is not None and a >= 1
        return False

    @staticmethod
    def _reshape_keeps_rows(node: ir.Node) -> bool:
        """Reshape to a constant shape that keeps axis 0 outermost: ``[0, ...]`` copies the row
        count; ``[-1, d1, ...]`` regroups rows whose size divides one sample's size (then the
        T copies of the flat buffer reshape to T copies of the result)."""
        target = const_array(node.inputs[1])
        x = node.inputs[0]
        if target is None or x.shape is None:
            return False
        target = target.astype(np.int64).ravel().tolist()
        allowzero = node.attributes.get_int("allowzero", 0)
        if not target:
            return False
        if target[0] == 0 and not allowzero:
            return -1 not in target[1:] or all(isinstance(d, int) for d in list(x.shape)[1:])
        if target[0] != -1 or -1 in target[1:]:
            return False
        dims = list(x.shape)[1:]
        if not all(isinstance(d, int) for d in dims):
            return False
        per_sample = int(np.prod(dims, dtype=np.int64))
        rest = 1
        for i, d in enumerate(target[1:], start=1):
            if d == 0:
                if allowzero or i >= len(x.shape) or not isinstance(x.shape[i], int):
                    return False
                d = x.shape[i]
            rest *= d
        return rest > 0 and per_sample % rest == 0

    # -- edges of the prefix -----------------------------------------------------------------
    def tiled_of(self, v: ir.Value) -> ir.Value:
        """``v`` repeated T times along axis 0 (one Tile per value, made on first use)."""
        if v not in self.tiled:
            reps = self.const("time_repeats", np.array([self.T] + [1] * (len(v.shape) - 1), np.int64))
            tile = make_node(self.namer, "Tile", [v, reps], name=f"{v.name}/repeat_T",
                             output_names=[f"{v.name}/repeated"])
            tag(tile, "time_entry")
            tile.outputs[0].dtype = v.dtype
            if v.shape is not None:
                tile.outputs[0].shape = ir.Shape(["time_x_batch", *list(v.shape)[1:]])
            insert_after_producer(self.graph, v, [tile])
            self.tiled[v] = tile.outputs[0]
            self.report.repeats.append(v.name)
        return self.tiled[v]

    def shape_of_repeated(self, node: ir.Node) -> None:
        """``Shape`` / ``Size`` of a prefix value: report the repeated value's shape."""
        v = node.inputs[0]
        out = node.outputs[0]
        if node.op_type == "Size":
            factor = self.const("time_steps_i64", np.array(self.T, np.int64))
        else:
            rank = len(v.shape)
            start = node.attributes.get_int("start", 0)
            end = node.attributes.get_int("end", rank)
            dims = list(range(rank))[start:end]
            if not dims or dims[0] != 0:
                return  # axis 0 not reported: B and T*B rows give the same result
            factor = self.const("time_shape_factor", np.array([self.T] + [1] * (len(dims) - 1), np.int64))
        mul = make_node(self.namer, "Mul", [out, factor], name=f"{node.name}/times_T",
                        output_names=[f"{out.name}/times_T"])
        mul.outputs[0].dtype = ir.DataType.INT64
        if out.shape is not None:
            mul.outputs[0].shape = out.shape
        self.graph.insert_after(node, [mul])
        for use in list(out.uses()):
            if use.node is not mul:
                use.node.replace_input_with(use.idx, mul.outputs[0])
        self._replace_graph_output(out, mul.outputs[0])

    def _replace_graph_output(self, old: ir.Value, new: ir.Value) -> None:
        for i, o in enumerate(self.graph.outputs):
            if o is old:
                # keep the output's name on the graph output
                name = old.name
                old.name = self.namer(f"{name}/one_step")
                new.name = name
                self.graph.outputs[i] = new

    # -- the pass ----------------------------------------------------------------------------
    def run(self, static_inputs: list[ir.Value]) -> HoistReport:
        """Walk down from the static inputs: per-sample ops join the prefix; the prefix's values
        are repeated where they leave it."""
        graph = self.graph
        self.static.update(static_inputs)
        for node in list(graph):
            touched = [i for i, v in enumerate(node.inputs) if v is not None and v in self.static]
            if not touched:
                continue
            if self.per_sample(node):
                self.static.update(node.outputs)
                self.report.hoisted.append(node.name)
                continue
            if (node.domain == schema.DOMAIN and node.op_type in _NEURONS and touched == [0]
                    and node.attributes.get_int("static_input", 0) == 0
                    and all(const_array(v) is not None for v in node.inputs[1:] if v is not None)):
                node.attributes["static_input"] = ir.AttrInt64("static_input", 1)
                self.report.static_neurons.append(node.name)
                continue
            if node.op_type in ("Shape", "Size") and node.domain == "" and node.inputs[0].shape is not None:
                self.shape_of_repeated(node)
                continue
            for i in touched:
                node.replace_input_with(i, self.tiled_of(node.inputs[i]))
        for i, out in enumerate(list(graph.outputs)):
            if out in self.static:
                name = out.name
                rep = self.tiled_of(out)
                out.name = self.namer(f"{name}/one_step")
                rep.name = name
                graph.outputs[i] = rep
        return self.report


def place_entry(model: ir.Model, time_steps: int, static_inputs: list[ir.Value], hoist: bool = True) -> HoistReport:
    """The time entry, placed once (in place): every static input is repeated T times along
    axis 0 where it leaves the time-invariant prefix (``hoist``), or right at the input."""
    for x in static_inputs:
        if x.shape is None:
            raise ConversionError(f"graph input '{x.name}' has no known rank; cannot repeat it over time")
    h = _Hoister(model, time_steps)
    if hoist:
        return h.run(static_inputs)
    for x in static_inputs:
        rep = h.tiled_of(x)
        for use in list(x.uses()):
            if use.node is not rep.producer():
                use.node.replace_input_with(use.idx, rep)
    return HoistReport()


def hoist_time_entry(model: ir.Model, time_steps: int) -> HoistReport:
    """Move an existing entry repeat (a ``Tile`` of a graph input by ``[T, 1, ...]``) below the
    time-invariant layers, for SNN graphs built elsewhere (in place); a graph without one is
    left as it is."""
    graph = model.graph
    entries = [n for n in graph if _is_entry_tile(n, time_steps, set(graph.inputs))]
    starts = []
    for tile in entries:
        x, xt = tile.inputs[0], tile.outputs[0]
        if xt.is_graph_output():
            continue
        for use in list(xt.uses()):
            use.node.replace_input_with(use.idx, x)
        graph.remove(tile, safe=True)
        starts.append(x)
    return _Hoister(model, time_steps).run(starts) if starts else HoistReport()


def remove_unused_initializers(model: ir.Model) -> list[str]:
    """Drop initializers no node reads (e.g. the entry's repeat counts once the entry moved):
    ONNX Runtime warns about each one when it loads the model."""
    graph = model.graph
    used = {v.name for node in ir.traversal.RecursiveGraphIterator(graph) for v in node.inputs if v is not None}
    used |= {v.name for v in graph.outputs} | {v.name for v in graph.inputs}
    dropped = [name for name in graph.initializers if name not in used]
    for name in dropped:
        graph.initializers.pop(name)
    return dropped
