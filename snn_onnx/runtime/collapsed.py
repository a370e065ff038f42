"""The time-collapsed engine: a ParaIF SNN computed as one pass over time means.

A ``ParaIFNeuron`` reads only the sum over time of its input, ``acc = x_1 + … + x_T``, and
fires on its first ``k = clamp(floor((acc + bias) / θ_pre), 0, T)`` steps (docs/ops.md). The
ops between neurons are affine in their time-varying input (Conv, Gemm, MatMul, Add, average
pooling, BatchNorm, reshapes …), so the sum over time of the next neuron's input is the layer
applied to the sum of the spikes, ``θ_post · k``; a compensated block
``TemporalDelta(f(TemporalMean(x)))`` sums to ``T · f(mean x)``. One pass over time means
therefore gives every neuron's spike count and the network's output.

:func:`collapse` builds that pass from the converted SNN graph (not from converter internals)
as a graph of standard ONNX ops with the SNN's inputs and outputs:

* ``<output>``: the mean over time (the SNN's ``ReduceMean`` time exit);
* ``<output>_per_step``: the running mean after each step. Step t of a ParaIF neuron's spike
  train is known in closed form (``θ_post`` while ``t <= k``), so the *tail* of the network
  (every node between the last neurons and the outputs) runs once per step on the running
  means ``θ_post · min(k, t) / t`` of those neurons, stacked over steps; the stack is cut
  into chunks of steps (an ONNX ``Loop``) so memory stays bounded at any T;
* ``<site>/spike_counts``: spikes per step and neuron summed over the batch, from a histogram
  of the per-sample counts k (``ScatterElements`` + a reverse ``CumSum``).

Every value of the SNN graph is one of: constant; time-invariant (the static input and what
is computed from it alone); time-varying, represented by its *mean* over the T steps; or a
*running-mean* value inside a compensation block, represented by its value at step T (which
is the mean of that block's input). Nodes are copied unchanged onto these representations
where that is exact (affine ops on means, any per-sample op on step-T values), and anything
else is refused with an error naming the node: IF and multi-threshold neurons (their spikes
depend on the order of their inputs), a non-linear op applied step by step to spikes, a
product of two time-varying tensors that is not compensated.

Float order: the ParaIF kernel sums its T inputs sequentially in float32; here the sum comes
from one layer applied to summed spikes. Both are correct roundings of the same real number,
so a neuron whose ``(acc + bias) / θ_pre`` lies within rounding of an integer may fire one
step more or less in one engine than in the other. docs/collapsed.md measures how often;
:func:`snn_onnx.runtime.engine_check.compare_engines` detects such ties sample by sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .. import metadata as md
from ..errors import ConversionError
from ..ops import schema
from ..ops.reference import broadcast_param

CONST, INV, MEAN, LAST = "const", "invariant", "mean", "last"
DOMAIN = schema.DOMAIN
PARA_IF = schema.PARA_IF_NEURON.name
TM, TD = schema.TEMPORAL_MEAN.name, schema.TEMPORAL_DELTA.name
FUSED = schema.COMPENSATED_ELEMENTWISE.name

#: Up to this T a neuron with a time-invariant input reproduces the kernel's sequential sum
#: exactly (exact_static_count); above it, T·x (ties counted like the other layers').
MAX_EXACT_STATIC_T = 512

#: Elements per sample the per-step tail may hold at once (all its values together); the
#: steps are processed in chunks that fit (4 Mi floats = 16 MiB per sample).
PER_STEP_BUDGET = 1 << 22

# Ops that are affine in each time-varying input and act on each row of axis 0 separately
# (given the checks in _affine_problem), so mean_t(op(x_t)) == op(mean_t(x)).
_AFFINE = frozenset(
    """Identity Dropout Reshape Flatten Squeeze Unsqueeze Transpose Concat Split Slice Gather
    GatherElements GatherND Expand Tile Pad DepthToSpace SpaceToDepth Resize Upsample
    AveragePool GlobalAveragePool ReduceMean ReduceSum Neg Add Sub Sum Mean Cast CastLike
    BatchNormalization Where Trilu CumSum Conv ConvTranspose Gemm MatMul Mul Div""".split()
)
# Affine in the sum of their time-varying inputs (several may vary).
_ADDITIVE = frozenset("Add Sub Sum Mean Concat Where".split())
_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}


class CollapseError(ConversionError):
    """The SNN has a node the collapsed engine cannot compute exactly."""


@dataclass
class _Val:
    name: str  # name in the collapsed graph
    kind: str  # CONST | INV | MEAN | LAST
    batched: bool = False  # carries the batch axis (a data path from the inputs)
    b_rows: bool = False  # INV value that has B rows in the SNN too (hoisted prefix), not T*B
    shape_of_b: bool = False  # Shape / Size of a b_rows value


@dataclass
class _Site:
    node: str
    spikes: str  # SNN name of the spike output
    k: str  # collapsed name: per-sample spike count (float) [B, *neuron shape]
    theta_post: np.ndarray  # broadcastable against one step
    counts: str | None


@dataclass
class CollapsedModel:
    """What :func:`collapse` built: the model, and facts the engine check and reports use."""

    model: onnx.ModelProto
    time_steps: int
    sites: dict[str, str]  # SNN spike-output name -> collapsed per-sample count name
    chunk: int  # steps per chunk of the per-step tail (== T: no Loop)
    tail_nodes: int
    info: dict = field(default_factory=dict)


class _Builder:
    """Accumulates nodes, initializers and fresh names of the collapsed graph."""

    def __init__(self, used: set[str]):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._used = set(used)
        self._consts: dict[tuple, str] = {}

    def fresh(self, base: str) -> str:
        name, i = base, 0
        while name in self._used:
            i += 1
            name = f"{base}_{i}"
        self._used.add(name)
        return name

    def const(self, base: str, array: np.ndarray) -> str:
        array = np.array(array, order="C")  # (ascontiguousarray would turn a scalar into [1])
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            name = self.fresh(f"collapsed/{base}")
            self.inits.append(numpy_helper.from_array(array, name))
            self._consts[key] = name
        return self._consts[key]

    def op(self, op_type: str, inputs: list[str], base: str, n_out: int = 1, **attrs) -> list[str]:
        outs = [self.fresh(f"{base}/{op_type}" + (f"_{i}" if n_out > 1 else "")) for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.fresh(f"{base}/{op_type}_node"), **attrs))
        return outs

    def op1(self, op_type: str, inputs: list[str], base: str, **attrs) -> str:
        return self.op(op_type, inputs, base, **attrs)[0]


def _attrs(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _refuse(node: onnx.NodeProto, why: str) -> CollapseError:
    return CollapseError(f"{why}; run it with engine='steps'", node.name or node.output[0], node.op_type)


class _Collapser:
    def __init__(self, model: onnx.ModelProto, budget: int):
        meta = md.read(model)
        if "time_steps" not in meta:
            raise CollapseError("not an snn-onnx SNN (no snn_onnx.time_steps metadata); convert it first")
        self.model, self.meta, self.budget = model, meta, budget
        self.T = int(meta["time_steps"])
        g = model.graph
        self.g = g
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        if self.opset < 13:
            raise CollapseError(f"the collapsed engine builds on ONNX opset >= 13; the model has opset {self.opset}")
        self.inits = {t.name: t for t in g.initializer}
        self.producer: dict[str, onnx.NodeProto] = {}
        for n in g.node:
            for o in n.output:
                if o:
                    self.producer[o] = n
        self.input_kinds: dict[str, str] = meta.get("inputs", {})
        self.graph_inputs = [i for i in g.input if i.name not in self.inits]
        used = {n.name for n in g.node} | {o for n in g.node for o in n.output} | {i.name for i in g.input} | set(self.inits)
        self.b = _Builder(used)
        skeleton = _skeleton(model)  # the graph without weight data: shapes and axes need none
        self.shapes = _infer_shapes(skeleton, self.T, self.input_kinds)
        self.axes, self.axis_errors = _batch_axes(skeleton, self.shapes, self.T)
        self.sites: dict[str, _Site] = {}
        self.static_sites: list[str] = []  # neurons with a time-invariant input (counted exactly)

    # -- value helpers ----------------------------------------------------------------------
    def const_value(self, name: str) -> np.ndarray | None:
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        p = self.producer.get(name)
        if p is not None and p.op_type == "Constant" and p.domain in ("", "ai.onnx"):
            a = _attrs(p)
            if "value" in a:
                return numpy_helper.to_array(a["value"])
            for key, dt in (("value_float", np.float32), ("value_int", np.int64)):
                if key in a:
                    return np.asarray(a[key], dt)
            for key, dt in (("value_floats", np.float32), ("value_ints", np.int64)):
                if key in a:
                    return np.asarray(a[key], dt)
        return None

    def rank(self, name: str, node: onnx.NodeProto) -> int:
        s = self.shapes.get(name)
        if s is None:
            raise _refuse(node, f"the rank of '{name}' is unknown (ONNX shape inference could not find it)")
        return len(s)

    # -- the exit -----------------------------------------------------------------------------
    def exits(self) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        """({output: steps value}, {per-step output: steps value}, {counts output: spike value})."""
        per_step_names = set(self.meta.get("outputs", {}).values())
        counts_of = {}
        for n in self.g.node:
            if n.domain == DOMAIN and n.op_type in schema.SPIKING_OPS and len(n.output) > 1 and n.output[1]:
                counts_of[n.output[1]] = n
        means, steps, counts = {}, {}, {}
        for o in self.g.output:
            name = o.name
            if name in counts_of:
                counts[name] = counts_of[name].output[0]
                continue
            p = self.producer.get(name)
            if name in per_step_names:
                r = p
                tm = self.producer.get(r.input[0]) if r is not None and r.op_type == "Reshape" else None
                if tm is None or tm.domain != DOMAIN or tm.op_type != TM or not self._is_split(r.input[1]):
                    raise CollapseError(f"per-step output '{name}' is not the time exit Reshape(TemporalMean(y), [T, -1, …])")
                steps[name] = tm.input[0]
                continue
            r = self.producer.get(p.input[0]) if p is not None and p.op_type == "ReduceMean" else None
            if r is None or r.op_type != "Reshape" or not self._is_split(r.input[1]) or not self._reduces_axis0(p):
                raise CollapseError(f"output '{name}' is not the time exit ReduceMean(Reshape(y, [T, -1, …]), axis 0)")
            means[name] = r.input[0]
        return means, steps, counts

    def _is_split(self, shape_name: str) -> bool:
        p = self.producer.get(shape_name)
        if p is None or p.op_type != "Concat":
            return False
        head = self.const_value(p.input[0])
        return head is not None and head.ravel().tolist() == [self.T, -1]

    def _reduces_axis0(self, node: onnx.NodeProto) -> bool:
        a = _attrs(node)
        axes = a.get("axes")
        if axes is None and len(node.input) > 1:
            c = self.const_value(node.input[1])
            axes = None if c is None else c.ravel().tolist()
        return axes == [0] and a.get("keepdims", 1) == 0

    # -- graph walks --------------------------------------------------------------------------
    def needed_nodes(self, targets: list[str], stop) -> list[onnx.NodeProto]:
        """Nodes (in graph order) on which ``targets`` depend, not walking past ``stop(value)``."""
        need: set[int] = set()
        seen: set[str] = set()
        stack = list(targets)
        while stack:
            v = stack.pop()
            if not v or v in seen:
                continue
            seen.add(v)
            if stop(v):
                continue
            p = self.producer.get(v)
            if p is None:
                continue
            if id(p) not in need:
                need.add(id(p))
                stack.extend(p.input)
                for a in p.attribute:
                    if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                        stack.extend(_outer_names(a))
        return [n for n in self.g.node if id(n) in need]

    # -- the main pass (means over T) --------------------------------------------------------
    def main_pass(self, targets: list[str]) -> dict[str, _Val]:
        env: dict[str, _Val] = {}
        for name in self.inits:
            env[name] = _Val(name, CONST)
        for i in self.graph_inputs:
            if self.input_kinds.get(i.name) == "event":
                env[i.name] = _Val(self._event_mean(i.name), MEAN, batched=True)
            else:
                env[i.name] = _Val(i.name, INV, batched=True, b_rows=True)
        for node in self.needed_nodes(targets, lambda v: v in env):
            self.translate(node, env, steps=None)
        return env

    def _event_mean(self, name: str) -> str:
        """Mean over time of an event input [T*B, ...] (time-major)."""
        b = self.b
        shape = b.op1("Shape", [name], f"{name}/collapsed")
        tail = b.op1("Slice", [shape, b.const("one", np.array([1], np.int64)), b.const("int64_max", np.array([np.iinfo(np.int64).max], np.int64))], f"{name}/collapsed")
        split = b.op1("Concat", [b.const("time_split", np.array([self.T, -1], np.int64)), tail], f"{name}/collapsed", axis=0)
        r = b.op1("Reshape", [name, split], f"{name}/collapsed")
        return b.op1("ReduceMean", [r, b.const("axis0", np.array([0], np.int64))], f"{name}/collapsed", keepdims=0) \
            if self.opset >= 18 else b.op1("ReduceMean", [r], f"{name}/collapsed", axes=[0], keepdims=0)

    # -- one node -----------------------------------------------------------------------------
    def translate(self, node: onnx.NodeProto, env: dict[str, _Val], steps: "_Steps | None") -> None:
        ins = [env.get(i) if i else None for i in node.input]
        missing = [i for i, v in zip(node.input, ins) if i and v is None]
        if missing:  # pragma: no cover - the walk visits producers first
            raise _refuse(node, f"internal error: inputs {missing} not computed")
        if node.domain == DOMAIN:
            self._custom(node, ins, env, steps)
            return
        if node.domain not in ("", "ai.onnx"):
            raise _refuse(node, f"op domain '{node.domain}' is not standard ONNX")
        kinds = {v.kind for v in ins if v is not None}
        batched = any(v.batched for v in ins if v is not None) and node.op_type not in ("Shape", "Size")
        if kinds <= {CONST}:
            out_kind = CONST
        elif kinds <= {CONST, INV}:
            out_kind = INV
            alias = self._time_repeat(node, ins)
            if alias is not None:
                env[node.output[0]] = alias
                return
        elif LAST in kinds:
            if MEAN in kinds:
                raise _refuse(node, "mixes a running mean (inside a compensation block) with a time-varying tensor")
            self._check_axis(node)
            out_kind = LAST
        else:
            self._check_axis(node)
            why = self._affine_problem(node, ins)
            if why:
                raise _refuse(node, why + " (not affine in its time-varying input, so its mean over time is not "
                              "the op applied to the mean)")
            out_kind = MEAN
        new_node = onnx.NodeProto()
        new_node.CopyFrom(node)
        del new_node.input[:]
        new_node.input.extend([v.name if v is not None else "" for v in ins])
        if steps is None:  # the main pass keeps the SNN's names (new nodes' fresh names avoid them)
            outs = list(node.output)
        else:
            outs = [self.b.fresh(o + steps.suffix) if o else "" for o in node.output]
            del new_node.output[:]
            new_node.output.extend(outs)
            new_node.name = self.b.fresh((node.name or node.op_type) + steps.suffix)
        self.b.nodes.append(new_node)
        b_rows = out_kind == INV and any(v.b_rows for v in ins if v is not None and v.batched)
        shape_of_b = node.op_type in ("Shape", "Size") and ins[0] is not None and ins[0].b_rows
        for o, new in zip(node.output, outs):
            if o:
                env[o] = _Val(new, out_kind, batched=batched, b_rows=b_rows, shape_of_b=shape_of_b)

    def _check_axis(self, node: onnx.NodeProto) -> None:
        """Refuse an op that acts along the folded time*batch axis (conversion/batch_axis.py
        follows that axis through transposes and gathers)."""
        err = self.axis_errors.get(id(node))
        if err is not None:
            raise CollapseError(f"{err}; run it with engine='steps'")
        if any(x.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for x in node.attribute):
            raise _refuse(node, f"{node.op_type} with a subgraph on time-varying values")

    def _time_repeat(self, node: onnx.NodeProto, ins: list[_Val | None]) -> _Val | None:
        """The SNN's own bookkeeping of time on invariant values, which the collapsed graph
        (B rows everywhere) does without: the entry ``Tile(x, [T, 1, …])`` and the hoisted
        prefix's ``Mul(Shape(x), [T, 1, …])`` / ``Mul(Size(x), T)``."""
        if node.op_type == "Tile" and ins[0] is not None and ins[0].b_rows:
            reps = self.const_value(node.input[1])
            if reps is not None and reps.ravel().tolist()[:1] == [self.T] and all(r == 1 for r in reps.ravel()[1:]):
                v = ins[0]
                return _Val(v.name, INV, batched=True, b_rows=False)
        if node.op_type == "Mul" and len(ins) == 2:
            for a, c in ((0, 1), (1, 0)):
                if ins[a] is not None and ins[a].shape_of_b:
                    k = self.const_value(node.input[c])
                    if k is not None and k.ravel().size >= 1 and k.ravel()[0] == self.T and all(x == 1 for x in k.ravel()[1:]):
                        return _Val(ins[a].name, INV)
        return None

    def _affine_problem(self, node: onnx.NodeProto, ins: list[_Val | None]) -> str | None:
        op = node.op_type
        if op not in _AFFINE:
            return f"{op} applied step by step to a time-varying tensor"
        varying = [i for i, v in enumerate(ins) if v is not None and v.kind == MEAN]
        if len(varying) > 1 and op not in _ADDITIVE and not (op == "Gemm" and varying == [0, 2]):
            return f"{op} of {len(varying)} time-varying inputs (a product)"
        if op == "Where" and 0 in varying:
            return "Where with a time-varying condition"
        if op == "Div" and varying != [0]:
            return "Div by a time-varying tensor"
        if op in ("Conv", "ConvTranspose") and varying != [0]:
            return f"{op} with time-varying weights"
        if op == "Gemm" and (0 not in varying or _attrs(node).get("transA", 0)):
            return "Gemm whose time-varying input is not its (untransposed) A"
        if op in ("Reshape", "Expand", "Tile", "Gather", "GatherElements", "GatherND", "Slice", "Pad",
                  "Resize", "Upsample", "Squeeze", "Unsqueeze", "CumSum", "ReduceMean", "ReduceSum", "CastLike") and varying != [0]:
            return f"{op} with a time-varying {'shape/index' if op != 'CastLike' else 'type'} input"
        if op == "Cast" and _attrs(node).get("to") not in _FLOATS:
            return "Cast of a time-varying tensor to a non-float type"
        if op == "Reshape":
            tgt = self.const_value(node.input[1])
            if tgt is not None and tgt.size and int(tgt.ravel()[0]) not in (0, -1):
                return f"Reshape to the constant shape {tgt.ravel().tolist()}, which fixes the leading (T*B) dimension"
            if tgt is not None and tgt.size and int(tgt.ravel()[0]) == 0 and _attrs(node).get("allowzero", 0):
                return "Reshape with allowzero=1 and a leading 0"
        return None

    # -- snn_onnx ops -------------------------------------------------------------------------
    def _custom(self, node: onnx.NodeProto, ins: list[_Val | None], env: dict[str, _Val], steps: "_Steps | None") -> None:
        op, a = node.op_type, _attrs(node)
        if op in schema.ALL_OPS and a.get("time_steps") != self.T:
            raise _refuse(node, f"time_steps={a.get('time_steps')} differs from the model's T={self.T}")
        x = ins[0]
        if op == PARA_IF:
            if steps is not None:  # pragma: no cover - neurons end the tail walk
                raise _refuse(node, "internal error: a neuron inside the per-step tail")
            if x.kind not in (MEAN, INV):
                raise _refuse(node, "ParaIFNeuron fed by a running mean (not a per-step input)")
            env[node.output[0]] = self._para_if(node, a, ins)
            return
        if op in (schema.IF_NEURON.name, schema.MULTI_THRESHOLD_NEURON.name):
            raise _refuse(node, f"{op}: its spikes depend on the order of its inputs over time, so only networks "
                                "whose neurons are all ParaIFNeuron can be collapsed")
        if op == TM:
            if x.kind == LAST:
                raise _refuse(node, "TemporalMean of a running mean")
            env[node.output[0]] = _Val(x.name, LAST if x.kind == MEAN else x.kind, batched=x.batched, b_rows=x.b_rows)
            return
        if op == TD:
            if x.kind == MEAN:
                raise _refuse(node, "TemporalDelta of a per-step tensor (its mean over time is its last step)")
            env[node.output[0]] = _Val(x.name, MEAN if x.kind == LAST else x.kind, batched=x.batched, b_rows=x.b_rows)
            return
        if op == FUSED:
            if x.kind == LAST:
                raise _refuse(node, "CompensatedElementwise of a running mean")
            y = _elementwise(self.b, a.get("function"), x.name, node.name or node.output[0])
            if y is None:
                raise _refuse(node, f"function {a.get('function')!r} has no standard-ONNX form here")
            env[node.output[0]] = _Val(y, x.kind, batched=x.batched, b_rows=x.b_rows)
            return
        raise _refuse(node, f"unknown {DOMAIN} op {op}")

    def _param(self, node: onnx.NodeProto, idx: int, x_shape: tuple, axis: int, what: str) -> np.ndarray | None:
        if len(node.input) <= idx or not node.input[idx]:
            return None
        c = self.const_value(node.input[idx])
        if c is None:
            raise _refuse(node, f"{what} is not a constant")
        try:
            return broadcast_param(c, x_shape, axis, node.op_type, what)
        except Exception as err:
            raise _refuse(node, str(err)) from None

    def _para_if(self, node: onnx.NodeProto, a: dict, ins: list[_Val | None]) -> _Val:
        b, T = self.b, self.T
        x = ins[0]
        base = node.name or node.output[0]
        shape = self.shapes.get(node.input[0])
        if shape is None:
            raise _refuse(node, f"the shape of its input '{node.input[0]}' is unknown")
        shape = (1,) + tuple(shape[1:])
        axis = int(a.get("channel_axis", 1))
        th_pre = self._param(node, 1, shape, axis, "theta_pre")
        th_post = self._param(node, 2, shape, axis, "theta_post")
        bias = self._param(node, 3, shape, axis, "bias")
        for p, nm in ((th_pre, "theta_pre"), (th_post, "theta_post")):
            if p is not None and (not np.all(np.isfinite(p)) or np.any(p <= 0)):
                raise _refuse(node, f"{nm} must be finite and > 0")
        th_post = th_pre if th_post is None else th_post
        if bias is None:
            bias = (np.float32(a.get("v_init", 0.5)) * th_pre).astype(np.float32)
        # u = (acc + bias) / θ_pre with acc = T·mean: the neuron fires on its first floor(u) steps
        # (the same five ops as the ANN's QCFS activation)
        u = b.op1("Add", [b.op1("Mul", [x.name, b.const("T_over_theta", _squeeze0((np.float32(T) / th_pre).astype(np.float32)))], base),
                          b.const("bias_over_theta", _squeeze0((bias / th_pre).astype(np.float32)))], base)
        k = b.op1("Clip", [b.op1("Floor", [u], base), b.const("zero_f32", np.array(0, np.float32)),
                           b.const("T_f32", np.array(T, np.float32))], base)
        if x.kind == INV and T <= MAX_EXACT_STATIC_T:
            self.static_sites.append(node.name)
            k = exact_static_count(b, x.name, u, k, _squeeze0(th_pre), _squeeze0(bias), T, base)
        mean = b.op1("Mul", [k, b.const("theta_post_over_T", _squeeze0((th_post / np.float32(T)).astype(np.float32)))], base)
        counts = node.output[1] if len(node.output) > 1 and node.output[1] else None
        self.sites[node.output[0]] = _Site(node.name, node.output[0], k, _squeeze0(th_post), counts)
        return _Val(mean, MEAN, batched=True)

    # -- spike counts per step ----------------------------------------------------------------
    def counts_output(self, site: _Site, out_name: str) -> None:
        """counts[t] = #{b : k_b > t}: a histogram of k over 0..T, summed from the top."""
        b, T = self.b, self.T
        if self.opset < 16:
            raise CollapseError(f"spike counts of '{site.node}': the model's opset {self.opset} has no "
                                "ScatterElements reduction (opset >= 16); convert with a newer opset or use engine='steps'")
        base = f"{site.node}/collapsed_counts"
        i64 = lambda name, v: b.const(name, np.asarray(v, np.int64))  # noqa: E731
        f32 = lambda name, v: b.const(name, np.asarray(v, np.float32))  # noqa: E731
        flat = b.op1("Reshape", [site.k, i64("flat2", [0, -1])], base)  # [B, N]
        n = b.op1("Gather", [b.op1("Shape", [flat], base), i64("one_scalar", 1)], base, axis=0)
        # hist[v-1, n] = #{b : k_b = v} for v = 1..T (k = 0 adds 0 to row 0), time-major so the
        # sum from the top runs along contiguous rows; float32 (ORT's float ScatterElements is
        # several times faster than its int64 one, and counts <= B are exact)
        row = b.op1("Cast", [b.op1("Sub", [b.op1("Max", [flat, f32("one_f32", 1.0)], base), f32("one_f32", 1.0)], base)], base,
                    to=onnx.TensorProto.INT64)
        idx = b.op1("Reshape", [b.op1("Add", [b.op1("Mul", [row, n], base), b.op1("Range", [i64("zero_scalar", 0), n, i64("one_scalar", 1)], base)], base),
                                i64("flat1", [-1])], base)
        fired = b.op1("Reshape", [b.op1("Min", [flat, f32("one_f32", 1.0)], base), i64("flat1", [-1])], base)
        size = b.op1("Mul", [i64("T_i64", [T]), b.op1("Unsqueeze", [n, i64("axis0", [0])], base)], base)
        zeros = b.op1("ConstantOfShape", [size], base, value=numpy_helper.from_array(np.array([0], np.float32)))
        hist = b.op1("ScatterElements", [zeros, idx, fired], base, axis=0, reduction="add")
        tail = b.op1("Slice", [b.op1("Shape", [site.k], base), i64("one", [1]), i64("int64_max", [np.iinfo(np.int64).max])], base)
        hist = b.op1("Reshape", [hist, b.op1("Concat", [i64("T_i64", [T]), tail], base, axis=0)], base)
        above = b.op1("CumSum", [hist, i64("zero_scalar", 0)], base, reverse=1)  # #{b : k_b > t}
        # the Cast writes the output itself (a Reshape there would copy T*N int64s)
        b.nodes.append(helper.make_node("Cast", [above], [out_name], name=b.fresh(f"{base}/out"), to=onnx.TensorProto.INT64))


@dataclass
class _Steps:
    """Context of the per-step tail: rows are ``c`` steps × B samples, time-major."""

    c: int
    t_col: str  # float steps [c, 1] (1-based), for closed-form spike trains
    suffix: str = "/per_step"


def _squeeze0(p: np.ndarray) -> np.ndarray:
    """A parameter shaped for one step ``[1, C, 1, …]`` -> ``[C, 1, …]`` (broadcasts against B rows)."""
    p = np.asarray(p, np.float32)
    return p.reshape(p.shape[1:]) if p.ndim >= 1 and p.shape[0] == 1 else p


def exact_static_count(b: _Builder, x: str, u: str, k: str, theta: np.ndarray, bias: np.ndarray, T: int, base: str) -> str:
    """Spike counts of a neuron whose input ``x`` is the same at every step, bit-exact to the
    kernel: it sums ``x + x + … + x`` sequentially in float32 (docs/ops.md), which can differ
    from ``T·x`` by up to about ``|x|·T²/2`` ulps. ``k`` (from ``u``, the fast form) is right
    wherever ``u`` is farther than that bound from a step boundary; the few neurons closer to
    one are gathered, summed exactly as the kernel sums (T-1 Adds on a short vector) and
    compared exactly as it compares (``acc + bias >= fl(t·θ_pre)``), then scattered back."""
    f32 = lambda name, v: b.const(name, np.asarray(v, np.float32))  # noqa: E731
    eps = 2.0**-22  # twice the unit roundoff: the bound below with a factor 2 to spare
    # |acc - T·x| <= |x|·T²/2 ulps-ish; with the roundings of u, of acc + bias and of t·θ, a
    # neuron is safe unless |u - round(u)| <= eps·((|x|(T² + 8T) + 4|bias|)/θ + 2). Boundaries
    # lie at u = 1..T (u > 0), where |x|·T/θ <= u + |bias|/θ: the test below needs no |x|.
    alpha = np.float32(eps * (T + 8))
    beta = (eps * ((T + 12) * np.abs(bias.astype(np.float64)) / theta + 2)).astype(np.float32)
    gap = b.op1("Abs", [b.op1("Sub", [u, b.op1("Round", [u], base)], base)], base)
    bound = b.op1("Add", [b.op1("Mul", [u, f32("static_bound_alpha", alpha)], base), b.const("static_bound_beta", beta)], base)
    idx = b.op1("Transpose", [b.op1("NonZero", [b.op1("LessOrEqual", [gap, bound], base)], base)], base, perm=[1, 0])
    xs = b.op1("GatherND", [x, idx], base)

    def per_neuron(name: str, p: np.ndarray) -> str:  # a parameter at the gathered neurons
        if p.size == 1:
            return b.const(name, p.reshape(()))
        axis = 1 + next(i for i, d in enumerate(p.shape) if d != 1)
        ch = b.op1("Gather", [idx, b.const(f"col_{axis}", np.array(axis, np.int64))], base, axis=1)
        return b.op1("Gather", [b.const(name + "_flat", p.reshape(-1)), ch], base, axis=0)

    th = per_neuron("theta_pre", theta)
    bi = per_neuron("bias", bias)
    acc = xs
    for _ in range(T - 1):
        acc = b.op1("Add", [acc, xs], base)
    d = b.op1("Add", [acc, bi], base)
    k0 = b.op1("Clip", [b.op1("Floor", [b.op1("Div", [d, th], base)], base), f32("zero_f32", 0.0), f32("T_f32", T)], base)
    # floor(d/θ) is within one of the count of t with d >= fl(t·θ); check both neighbours
    nxt = b.op1("Mul", [b.op1("Add", [k0, f32("one_f32", 1.0)], base), th], base)
    cur = b.op1("Mul", [k0, th], base)
    up = b.op1("And", [b.op1("GreaterOrEqual", [d, nxt], base), b.op1("Less", [k0, f32("T_f32", T)], base)], base)
    down = b.op1("And", [b.op1("Less", [d, cur], base), b.op1("GreaterOrEqual", [k0, f32("one_f32", 1.0)], base)], base)
    fix = b.op1("Sub", [b.op1("Cast", [up], base, to=onnx.TensorProto.FLOAT), b.op1("Cast", [down], base, to=onnx.TensorProto.FLOAT)], base)
    return b.op1("ScatterND", [k, idx, b.op1("Add", [k0, fix], base)], base)


def _elementwise(b: _Builder, fn: str, x: str, base: str) -> str | None:
    """The functions of CompensatedElementwise (docs/ops.md) in standard ONNX ops."""
    c = lambda name, v: b.const(name, np.array(v, np.float32))  # noqa: E731
    if fn == "relu":
        return b.op1("Relu", [x], base)
    if fn == "sigmoid":
        return b.op1("Sigmoid", [x], base)
    if fn == "tanh":
        return b.op1("Tanh", [x], base)
    if fn == "silu":
        return b.op1("Mul", [x, b.op1("Sigmoid", [x], base)], base)
    if fn == "hardsigmoid":
        return b.op1("HardSigmoid", [x], base, alpha=1.0 / 6.0, beta=0.5)
    if fn == "hardswish":
        return b.op1("Mul", [x, b.op1("HardSigmoid", [x], base, alpha=1.0 / 6.0, beta=0.5)], base)
    if fn == "gelu":
        erf = b.op1("Erf", [b.op1("Mul", [x, c("inv_sqrt2", 1.0 / np.sqrt(2.0))], base)], base)
        return b.op1("Mul", [b.op1("Mul", [x, c("half", 0.5)], base), b.op1("Add", [erf, c("one_f32", 1.0)], base)], base)
    if fn == "gelu_tanh":
        x3 = b.op1("Mul", [b.op1("Mul", [x, x], base), x], base)
        inner = b.op1("Mul", [b.op1("Add", [x, b.op1("Mul", [x3, c("gelu_c", 0.044715)], base)], base),
                              c("sqrt_2_over_pi", np.sqrt(2.0 / np.pi))], base)
        return b.op1("Mul", [b.op1("Mul", [x, c("half", 0.5)], base), b.op1("Add", [b.op1("Tanh", [inner], base), c("one_f32", 1.0)], base)], base)
    return None


SKELETON_MAX_ELEMENTS = 4096


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose large initializers keep their type and shape but no data (shape
    inference and the batch-axis walk read only small constants), so a 500 MB model is not
    copied several times over while the collapsed graph is built."""
    m = onnx.ModelProto()
    graph = model.graph
    inits = list(graph.initializer)
    del graph.initializer[:]
    try:
        m.CopyFrom(model)
    finally:
        graph.initializer.extend(inits)
    for t in inits:
        if int(np.prod(t.dims, dtype=np.int64)) <= SKELETON_MAX_ELEMENTS:
            m.graph.initializer.append(t)
        else:
            m.graph.initializer.append(onnx.TensorProto(name=t.name, data_type=t.data_type, dims=list(t.dims)))
    return m


def _batch_axes(model: onnx.ModelProto, shapes: dict[str, tuple], T: int) -> tuple[dict[str, int], dict[int, str]]:
    """Position of the batch (T*B) axis of every value computed from the inputs, and, per node
    (keyed by id of its NodeProto), why it cannot be followed (the op acts along that axis)."""
    import onnx_ir as ir

    from ..conversion.batch_axis import output_axes

    irm = ir.from_proto(model)
    g = irm.graph
    values = list(g.inputs) + [o for n in g for o in n.outputs]
    for v in values:
        if v.name in shapes and v.shape is None:
            v.shape = ir.Shape(list(shapes[v.name]))
    inits = set(g.initializers)
    axes: dict[ir.Value, int] = {v: 0 for v in g.inputs if v.name not in inits}
    errors: dict[int, str] = {}
    protos = list(model.graph.node)
    for proto, node in zip(protos, g):
        known = {v: axes[v] for v in node.inputs if v is not None and v in axes}
        if not known or node.op_type in ("Shape", "Size"):
            continue
        if node.domain == DOMAIN:
            bad = [v.name for v, a in known.items() if a != 0]
            if bad:
                errors[id(proto)] = f"node '{node.name}' ({node.op_type}): its input {bad} carries the batch axis off axis 0"
            axes[node.outputs[0]] = 0
            continue
        if node.op_type == "Tile" and node.inputs[0] in known and known[node.inputs[0]] == 0:
            reps = node.inputs[1].const_value if len(node.inputs) > 1 and node.inputs[1] is not None else None
            if reps is not None and reps.numpy().ravel().tolist()[:1] == [T]:
                axes[node.outputs[0]] = 0  # the time entry (or the repeat of a hoisted value)
                continue
        try:
            axes.update(output_axes(node, known))
        except ConversionError as err:
            errors[id(proto)] = str(err).split("; an SNN folds")[0]
    return {v.name: a for v, a in axes.items()}, errors


def _outer_names(attr: onnx.AttributeProto) -> list[str]:
    """Names a subgraph reads from the enclosing graph."""
    graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
    out = []
    for g in graphs:
        local = {i.name for i in g.input} | {t.name for t in g.initializer} | {o for n in g.node for o in n.output}
        out += [i for n in g.node for i in n.input if i and i not in local]
    return out


def _infer_shapes(model: onnx.ModelProto, T: int, kinds: dict[str, str]) -> dict[str, tuple]:
    """Shapes for one sample (static inputs 1 row, event inputs T rows), via energy.shapes'
    inference (custom ops read as shape-preserving)."""
    from ..energy.shapes import infer_shapes

    inits = {t.name for t in model.graph.initializer}
    sample = {}
    for i in model.graph.input:
        if i.name in inits:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim]
        if not dims or any(d is None for d in dims[1:]):
            return infer_shapes(model, {})
        dims[0] = T if kinds.get(i.name) == "event" else 1
        sample[i.name] = np.zeros(dims, np.float32)
    return infer_shapes(model, sample)


def _tail_elements(col: _Collapser, nodes: list[onnx.NodeProto]) -> int | None:
    """Elements per step and sample of all tail values (None if a shape is unknown)."""
    total = 0
    for n in nodes:
        for o in n.output:
            if not o:
                continue
            s = col.shapes.get(o)
            if s is None:
                return None
            total += int(np.prod(s[1:], dtype=np.int64)) if len(s) else 1
    return total


def collapse(model: onnx.ModelProto, *, budget: int = PER_STEP_BUDGET, site_outputs: bool = False) -> CollapsedModel:
    """The collapsed form of a converted SNN (see the module docstring).

    ``budget``: elements per sample the per-step tail may hold at once (it sets the chunk of
    steps). ``site_outputs``: also output every neuron's per-sample spike count as
    ``<spike output>/collapsed_k`` (float32, ``[B, *neuron shape]``; for engine checks).
    Raises :class:`CollapseError` naming the node when the network cannot be collapsed."""
    col = _Collapser(model, budget)
    T = col.T
    means, per_step, counts = col.exits()
    targets = list(means.values()) + list(per_step.values()) + list(counts.values())
    env = col.main_pass(targets)
    for y in list(means.values()) + list(per_step.values()):
        if env[y].kind == LAST:  # its mean over time is not its value at step T
            raise CollapseError(f"output value '{y}' is a running mean inside a compensation block (no TemporalDelta "
                                "before the time exit); run it with engine='steps'")
    for spike in counts.values():
        if spike not in col.sites:
            raise CollapseError(f"spike-count output of '{spike}' does not come from a ParaIFNeuron")
    b = col.b
    outputs: list[onnx.ValueInfoProto] = []
    out_info = {o.name: o for o in model.graph.output}
    for out, y in means.items():
        b.nodes.append(helper.make_node("Identity", [env[y].name], [out], name=b.fresh(f"{out}/collapsed_out")))
        outputs.append(out_info[out])

    chunk, tail_n = T, 0
    if per_step:
        sites = col.sites

        def stop(v: str) -> bool:
            if v in sites:
                return True
            val = env.get(v)
            return val is not None and (val.kind == CONST or (val.kind == INV and val.batched))

        tail = col.needed_nodes(list(per_step.values()), stop)
        tail_n = len(tail)
        frontier = sorted({i for n in tail for i in n.input if i in sites} | {y for y in per_step.values() if y in sites})
        elems = _tail_elements(col, tail)
        if elems is None:  # unknown shapes: small chunks
            chunk = min(T, 16)
        else:  # the frontier's stacked running means and every tail value, per step and sample
            per_sample = elems + sum(int(np.prod(col.shapes[s][1:], dtype=np.int64)) for s in frontier if s in col.shapes)
            chunk = max(1, min(T, budget // max(per_sample, 1)))
        event_in = [i.name for i in col.graph_inputs if col.input_kinds.get(i.name) == "event"]
        if any(i in event_in for n in tail for i in n.input) or any(y in event_in for y in per_step.values()):
            raise CollapseError("an event input reaches an output without passing a spiking neuron; per-step outputs "
                                "of such a graph are not collapsed (use engine='steps' or convert with per_step=False)")
        _per_step_outputs(col, env, tail, frontier, per_step, chunk)
        outputs += [out_info[o] for o in per_step]
    for out, spike in counts.items():
        col.counts_output(col.sites[spike], out)
        outputs.append(out_info[out])
    outputs.sort(key=lambda o: [x.name for x in model.graph.output].index(o.name))
    if site_outputs:
        for spike, site in col.sites.items():
            name = f"{spike}/collapsed_k"
            b.nodes.append(helper.make_node("Identity", [site.k], [name], name=b.fresh(f"{name}/out")))
            s = col.shapes.get(spike)
            dims = ["batch", *s[1:]] if s is not None else None
            outputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims))

    # assembled in place: each of the SNN's weights is copied once (a vgg16 holds 500 MB of them)
    out_model = onnx.ModelProto(ir_version=model.ir_version, producer_name="snn-onnx collapsed engine")
    out_model.opset_import.extend(o for o in model.opset_import if o.domain != DOMAIN)
    g = out_model.graph
    g.name = f"{model.graph.name}_collapsed"
    g.node.extend(b.nodes)
    g.input.extend(model.graph.input)
    g.output.extend(outputs)
    g.initializer.extend(b.inits)
    used = _used_names(g)
    g.initializer.extend(t for t in model.graph.initializer if t.name in used)
    meta = {p.key: p.value for p in model.metadata_props}
    for k, v in meta.items():
        out_model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    out_model.metadata_props.append(onnx.StringStringEntryProto(key=md.PREFIX + "engine", value="collapsed"))
    return CollapsedModel(out_model, T, {s: v.k for s, v in col.sites.items()}, chunk, tail_n,
                          {"nodes": len(out_model.graph.node), "static_sites": col.static_sites})


def _per_step_outputs(col: _Collapser, env: dict[str, _Val], tail: list[onnx.NodeProto], frontier: list[str],
                      per_step: dict[str, str], chunk: int) -> None:
    """Running means after every step: the tail on stacked steps, in chunks of ``chunk`` steps."""
    T, b = col.T, col.b
    n_iter = -(-T // chunk)
    looped = n_iter > 1
    outer = b
    if looped:
        body = _Builder(b._used)
        body._consts = {}
        col.b = body
        it = body.fresh("collapsed/loop_iter")
        cond_in = body.fresh("collapsed/loop_cond_in")
        first = body.op1("Mul", [it, body.const("chunk_i64", np.array(chunk, np.int64))], "collapsed/loop")
        steps_i = body.op1("Add", [body.const("steps_1_to_c", np.arange(1, chunk + 1, dtype=np.int64)), first], "collapsed/loop")
        t_flat = body.op1("Cast", [steps_i], "collapsed/loop", to=onnx.TensorProto.FLOAT)
    else:
        t_flat = b.const("steps_1_to_T", np.arange(1, T + 1, dtype=np.float32))
    bb = col.b
    steps = _Steps(chunk, t_flat)
    env2: dict[str, _Val] = {}
    for name, val in env.items():
        if val.kind == CONST:
            env2[name] = val
    for s in frontier:
        site = col.sites[s]
        env2[s] = _Val(_closed_form(bb, site, t_flat, col.rank(s, col.producer[s]), chunk), MEAN, batched=True)
    tiled: dict[str, _Val] = {}

    def inv_input(v: str) -> None:
        if v in env2 or v not in env:
            return
        val = env[v]
        if val.kind == INV and val.batched:
            if v not in tiled:
                r = col.rank(v, col.producer.get(v) or col.g.node[0])
                reps = np.ones(r, np.int64)
                reps[col.axes.get(v, 0)] = chunk
                reps = bb.const(f"step_repeats_{r}", reps)
                tiled[v] = _Val(bb.op1("Tile", [val.name, reps], f"{v}/per_step"), INV, batched=True, b_rows=val.b_rows)
            env2[v] = tiled[v]

    for node in tail:
        for i in node.input:
            if i:
                inv_input(i)
        col.translate(node, env2, steps)
    for y in per_step.values():
        inv_input(y)
    results = []
    for out, y in per_step.items():
        v = env2[y].name
        shape = bb.op1("Shape", [v], f"{out}/collapsed")
        tail_dims = bb.op1("Slice", [shape, bb.const("one", np.array([1], np.int64)),
                                     bb.const("int64_max", np.array([np.iinfo(np.int64).max], np.int64))], f"{out}/collapsed")
        target = bb.op1("Concat", [bb.const("chunk_split", np.array([chunk, -1], np.int64)), tail_dims], f"{out}/collapsed", axis=0)
        results.append((out, bb.op1("Reshape", [v, target], f"{out}/collapsed")))
    if not looped:
        for out, r in results:
            b.nodes.append(helper.make_node("Identity", [r], [out], name=b.fresh(f"{out}/collapsed_out")))
        return
    body = col.b
    col.b = outer
    cond_out = body.fresh("collapsed/loop_cond_out")
    body.nodes.append(helper.make_node("Identity", [cond_in], [cond_out], name=body.fresh("collapsed/loop_cond")))
    body_graph = helper.make_graph(
        body.nodes, "collapsed_per_step_chunk",
        [helper.make_tensor_value_info(it, onnx.TensorProto.INT64, []), helper.make_tensor_value_info(cond_in, onnx.TensorProto.BOOL, [])],
        [helper.make_tensor_value_info(cond_out, onnx.TensorProto.BOOL, [])]
        + [helper.make_tensor_value_info(r, onnx.TensorProto.FLOAT, None) for _, r in results],
        initializer=body.inits,
    )
    outer._used |= body._used
    loop_outs = outer.op("Loop", [outer.const("n_chunks", np.array(n_iter, np.int64)), ""], "collapsed/per_step",
                         n_out=len(results), body=body_graph)
    for (out, _), lo in zip(results, loop_outs):
        shape = outer.op1("Shape", [lo], f"{out}/collapsed")
        rest = outer.op1("Slice", [shape, outer.const("two", np.array([2], np.int64)),
                                   outer.const("int64_max", np.array([np.iinfo(np.int64).max], np.int64))], f"{out}/collapsed")
        target = outer.op1("Concat", [outer.const("all_steps", np.array([n_iter * chunk], np.int64)), rest], f"{out}/collapsed", axis=0)
        flat = outer.op1("Reshape", [lo, target], f"{out}/collapsed")
        outer.nodes.append(helper.make_node(
            "Slice", [flat, outer.const("zero", np.array([0], np.int64)), outer.const("T_i64", np.array([T], np.int64)),
                      outer.const("axis0", np.array([0], np.int64))], [out], name=outer.fresh(f"{out}/collapsed_out")))


def _closed_form(b: _Builder, site: _Site, t_flat: str, rank: int, chunk: int) -> str:
    """Running mean after step t of a ParaIF spike train, for the steps in ``t_flat``:
    ``θ_post · min(k, t) / t``, stacked time-major ``[c*B, ...]``. Computed on
    ``[c, B, neurons]``: ORT's elementwise ops are many times slower on shapes with trailing
    unit dimensions (``[c*B, C, 1, 1]``) than on the same data flattened."""
    base = f"{site.spikes}/per_step"
    i64 = lambda name, v: b.const(name, np.asarray(v, np.int64))  # noqa: E731
    t = b.op1("Reshape", [t_flat, i64("col_shape_2", [-1, 1, 1])], base)
    k = b.op1("Unsqueeze", [b.op1("Reshape", [site.k, i64("flat2", [0, -1])], base), i64("axis0", [0])], base)  # [1, B, N]
    r = b.op1("Div", [b.op1("Min", [k, t], base), t], base)  # [c, B, N]
    rest = b.op1("Slice", [b.op1("Shape", [site.k], base), i64("one", [1]), i64("int64_max", [np.iinfo(np.int64).max])], base)
    th = np.asarray(site.theta_post, np.float32)
    if th.size == 1:
        theta = b.const("theta_post", th.reshape(()))
    else:  # per channel, laid out like one sample's neurons
        theta = b.op1("Reshape", [b.op1("Expand", [b.const("theta_post", th), rest], base), i64("flat1", [-1])], base)
    target = b.op1("Concat", [i64("minus_one", [-1]), rest], base, axis=0)
    return b.op1("Reshape", [b.op1("Mul", [r, theta], base), target], base)


def _used_names(graph: onnx.GraphProto) -> set[str]:
    """Names the nodes of ``graph`` (and of their subgraphs) read, and its outputs."""
    used: set[str] = set()

    def walk(g: onnx.GraphProto) -> None:
        for n in g.node:
            used.update(n.input)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for sg in a.graphs:
                        walk(sg)
        used.update(o.name for o in g.output)

    walk(graph)
    return used


def _used_only(model: onnx.ModelProto) -> None:
    """Drop initializers no node reads."""
    used = _used_names(model.graph)
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def prune(model: onnx.ModelProto, outputs: list[str]) -> onnx.ModelProto:
    """A copy of ``model`` that computes only ``outputs`` (ONNX Runtime runs every node of a
    graph whatever outputs a run asks for, so a run without spike counts or per-step outputs
    gets a graph without them)."""
    keep_out = [o for o in model.graph.output if o.name in set(outputs)]
    missing = set(outputs) - {o.name for o in keep_out}
    if missing:
        raise CollapseError(f"the collapsed model has no output(s) {sorted(missing)}")
    producer = {o: i for i, n in enumerate(model.graph.node) for o in n.output if o}
    needed: set[int] = set()
    stack = [o.name for o in keep_out]
    seen: set[str] = set()
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        i = producer.get(v)
        if i is None or i in needed:
            continue
        needed.add(i)
        node = model.graph.node[i]
        stack.extend(x for x in node.input if x)
        for a in node.attribute:
            if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                stack.extend(_outer_names(a))
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    nodes = [n for i, n in enumerate(g.node) if i in needed]
    del g.node[:]
    g.node.extend(nodes)
    del g.output[:]
    g.output.extend(keep_out)
    _used_only(m)
    return m
