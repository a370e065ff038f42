"""SNN file → NIR graph (``snn-onnx export-nir``, :func:`snn_onnx.interop.to_nir`).

The mapping (docs/interop.md states it for readers of the file):

* one NIR step per time step; a static input is presented at every step (graph metadata
  ``input_coding``), the outputs are averaged over the T steps (``output_reduction``);
* ``IFNeuron`` with ``leak = 1`` → ``IF``; with ``leak < 1`` → ``LIF``. NIR's equations,
  integrated by forward Euler with step ``dt`` (graph metadata ``dt``), give ours exactly:
  IF ``r = 1/dt`` (``v += dt·r·I``); LIF ``tau = dt/(1-leak)``, ``r = tau/dt``
  (``v = (1-dt/tau)·v + (dt/tau)·r·I = leak·v + I``);
* NIR neurons fire when ``v > v_threshold``, ours when ``v >= θ``: ``v_threshold`` is the
  largest float32 below θ, the same test on float32 potentials;
* NIR neurons reset to ``v_reset`` (0 here: our ``reset = "zero"``); a subtractive reset has
  no NIR form. NIR states no initial potential and its readers disagree (SpikingJelly starts
  a neuron at ``v_reset``, snnTorch and Norse at 0), so only ``v_init = 0`` is exact. Both
  are refused by name unless ``lossy``, which exports reset-to-0 neurons starting at 0 and
  lists what it changed (``NirExport.lossy``; ``snn-onnx export-nir --lossy`` measures it);
* NIR spikes are 1, ours are ``s·θ``: θ is folded into the weights of the Conv / Affine /
  Linear the spikes reach (through pooling and flattening, which commute with a per-channel
  scale); where spikes reach anything else a ``Scale`` node carries it;
* Conv → ``Conv2d`` / ``Conv1d``, Gemm → ``Affine``, MatMul (+ Add of a bias) → ``Linear``
  (``Affine``), AveragePool / GlobalAveragePool → ``AvgPool2d`` (or ``SumPool2d`` with the
  1/k² carried into the next weights, ``pooling="sum"``), Flatten / flattening
  Reshape → ``Flatten``; an Add of two time-varying values is two edges into one node
  (NIR sums a node's inputs).

ParaIF, multi-threshold, signed and SignGD neurons and compensated blocks (TemporalMean /
TemporalDelta / CompensatedElementwise) have no NIR node and are refused by name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx_ir as ir

from ..errors import ConversionError, OptionalDependencyError
from ..ops import schema
from ..version import __version__
from .snn_graph import Neuron, SnnGraph, attrs_of, read_snn

F32 = np.float32
DEFAULT_DT = 1e-4  # the step snnTorch, SpikingJelly and Lava assume when they read NIR


def import_nir():
    try:
        import nir
    except ImportError:
        raise OptionalDependencyError("NIR support needs the nir package: pip install 'snn-onnx[nir]'") from None
    return nir


@dataclass
class NeuronExport:
    """How one of our neurons became a NIR node (same potential, same threshold test)."""

    nir_node: str
    onnx_node: str
    input: str  # our neuron's input value (current per step)
    output: str
    threshold: np.ndarray  # θ, one sample's shape
    leak: float
    reset: str
    v_init: float  # ours; the NIR node starts at 0 (exact only when this is 0)


@dataclass
class NirExport:
    graph: Any  # nir.NIRGraph
    dt: float
    time_steps: int
    neurons: list[NeuronExport]
    inputs: dict[str, str]  # NIR Input node -> our graph input
    outputs: dict[str, str]  # NIR Output node -> our output name
    input_coding: dict[str, str]
    lossy: list[str] = field(default_factory=list)  # what the NIR file computes differently

    def write(self, path) -> None:
        import_nir().write(str(path), self.graph)


@dataclass
class _Term:
    """One summand of a body value in NIR: the output of ``src``, times ``scale`` if any."""

    src: str
    scale: np.ndarray | None = None  # one sample's shape


NO_NIR = {
    schema.PARA_IF_NEURON.name: "ParaIF neurons fire from the mean input over all T steps; NIR has no such neuron",
    schema.MULTI_THRESHOLD_NEURON.name: "multi-threshold neurons emit spikes of 2·levels sizes; NIR spikes are 0/1",
    schema.TEMPORAL_MEAN.name: "a compensated block (running mean over time) has no NIR node",
    schema.TEMPORAL_DELTA.name: "a compensated block (TemporalDelta) has no NIR node",
    schema.COMPENSATED_ELEMENTWISE.name: "a compensated block has no NIR node",
}


def _nir_name(base: str, used: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", base).strip("_") or "node"
    if name[0].isdigit():
        name = "n_" + name
    out, i = name, 1
    while out in used:
        out, i = f"{name}_{i}", i + 1
    used.add(out)
    return out


class _Exporter:
    def __init__(self, snn: SnnGraph, dt: float, lossy: bool, pooling: str):
        self.nir = import_nir()
        self.snn, self.dt, self.allow_lossy, self.pooling = snn, dt, lossy, pooling
        self.nodes: dict[str, Any] = {}
        self.edges: list[tuple[str, str]] = []
        self.terms: dict[str, list[_Term]] = {}
        self.used: set[str] = set()
        self.made_by: dict[str, str] = {}  # NIR node -> ONNX value it computes (for bias folding)
        self.neurons: list[NeuronExport] = []
        self.lossy: list[str] = []
        self.refused: list[tuple[str, str]] = []
        self._scales: dict[tuple[str, bytes], str] = {}

    # -- helpers ------------------------------------------------------------------------
    def add(self, base: str, node: Any, inputs: list[_Term], meta: dict | None = None) -> str:
        name = _nir_name(base, self.used)
        node.metadata = dict(meta or {})
        self.nodes[name] = node
        for t in inputs:
            self.edges.append((self.materialize(t), name))
        return name

    def materialize(self, t: _Term) -> str:
        """The NIR node whose output is the term: its source, or a Scale node after it."""
        if t.scale is None:
            return t.src
        key = (t.src, t.scale.astype(F32).tobytes() + str(t.scale.shape).encode())
        if key not in self._scales:
            name = _nir_name(f"{t.src}_amplitude", self.used)
            self.nodes[name] = self.nir.Scale(scale=np.asarray(t.scale, dtype=F32))
            self.nodes[name].metadata = {"snn_onnx.role": "spike amplitude θ of the neuron before it"}
            self.edges.append((t.src, name))
            self._scales[key] = name
        return self._scales[key]

    def shape(self, v: ir.Value) -> tuple[int, ...]:
        return self.snn.shapes[v.name]

    def single_scaled(self, x: ir.Value) -> tuple[_Term, np.ndarray] | None:
        terms = self.terms[x.name]
        if len(terms) == 1 and terms[0].scale is not None:
            return terms[0], terms[0].scale
        return None

    @staticmethod
    def per_channel(scale: np.ndarray) -> np.ndarray | None:
        """The per-channel vector of a scale that is constant over all but the first axis."""
        flat = scale.reshape(scale.shape[0], -1)
        if np.all(flat == flat[:, :1]):
            return flat[:, 0].copy()
        return None

    # -- op handlers ----------------------------------------------------------------------
    def conv(self, node: ir.Node, a: dict) -> None:
        x = node.inputs[0]
        w = self.snn.const(node.inputs[1])
        if w is None:
            return self.refuse(node, "the weight is not a constant")
        w = w.astype(F32).copy()
        b = self.snn.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
        b = np.zeros(w.shape[0], F32) if b is None else b.astype(F32)
        nd = w.ndim - 2
        if nd not in (1, 2):
            return self.refuse(node, f"{nd}-D convolution; NIR has Conv1d and Conv2d")
        pads = list(a.get("pads", [0] * 2 * nd))
        auto_pad = a.get("auto_pad", "NOTSET")
        if auto_pad not in ("NOTSET", "VALID") or pads[:nd] != pads[nd:]:
            return self.refuse(node, f"asymmetric padding (pads {pads}, auto_pad {auto_pad}); NIR convolutions pad symmetrically")
        stride = list(a.get("strides", [1] * nd))
        dil = list(a.get("dilations", [1] * nd))
        groups = int(a.get("group", 1))
        inputs = self.terms[x.name]
        hit = self.single_scaled(x)
        if hit is not None and (ch := self.per_channel(hit[1])) is not None:
            # fold the spike amplitude θ of each input channel into the weights
            cin_g = w.shape[1]
            cout_g = w.shape[0] // groups
            for o in range(w.shape[0]):
                g = o // cout_g
                w[o] *= ch[g * cin_g : (g + 1) * cin_g].reshape((cin_g,) + (1,) * nd)
            inputs = [_Term(hit[0].src)]
        in_shape = self.shape(x)[1:]
        if nd == 2:
            op = self.nir.Conv2d(input_shape=tuple(int(d) for d in in_shape), weight=w, stride=tuple(stride),
                                 padding=tuple(pads[:2]), dilation=tuple(dil), groups=groups, bias=b)
        else:
            op = self.nir.Conv1d(input_shape=int(in_shape[0]), weight=w, stride=int(stride[0]),
                                 padding=int(pads[0]), dilation=int(dil[0]), groups=groups, bias=b)
        self.emit(node, op, inputs)

    def gemm(self, node: ir.Node, a: dict) -> None:
        x = node.inputs[0]
        wb = self.snn.const(node.inputs[1])
        if wb is None or a.get("transA", 0):
            return self.refuse(node, "needs a constant weight and transA = 0")
        w = (wb.T if not a.get("transB", 0) else wb).astype(F32) * F32(a.get("alpha", 1.0))
        c = self.snn.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
        b = np.zeros(w.shape[0], F32) if c is None else np.broadcast_to(c.astype(F32) * F32(a.get("beta", 1.0)), (w.shape[0],)).astype(F32)
        self.affine(node, x, w, b)

    def matmul(self, node: ir.Node, a: dict) -> None:
        x = node.inputs[0]
        wb = self.snn.const(node.inputs[1])
        if wb is None or wb.ndim != 2 or len(self.shape(x)) != 1:
            return self.refuse(node, "only a vector times a constant matrix maps to NIR Linear")
        self.affine(node, x, wb.T.astype(F32), None)

    def affine(self, node: ir.Node, x: ir.Value, w: np.ndarray, b: np.ndarray | None) -> None:
        w = w.copy()
        inputs = self.terms[x.name]
        hit = self.single_scaled(x)
        if hit is not None:
            w *= hit[1].reshape(1, -1)
            inputs = [_Term(hit[0].src)]
        op = self.nir.Linear(weight=w) if b is None else self.nir.Affine(weight=w, bias=b)
        self.emit(node, op, inputs)

    def avgpool(self, node: ir.Node, a: dict) -> None:
        x = node.inputs[0]
        in_shape = self.shape(x)
        if len(in_shape) != 3:
            return self.refuse(node, "NIR has 2-D pooling only")
        if node.op_type == "GlobalAveragePool":
            k, s, p = list(in_shape[1:]), list(in_shape[1:]), [0, 0]
        else:
            k = list(a["kernel_shape"])
            s = list(a.get("strides", [1, 1]))
            pads = list(a.get("pads", [0, 0, 0, 0]))
            if pads[:2] != pads[2:] or a.get("ceil_mode", 0) or (any(pads) and not a.get("count_include_pad", 0)):
                return self.refuse(node, f"pooling with pads {pads}, ceil_mode {a.get('ceil_mode', 0)}, "
                                         f"count_include_pad {a.get('count_include_pad', 0)} has no NIR AvgPool2d form")
            p = pads[:2]
        inputs, out_scale = self.terms[x.name], None
        hit = self.single_scaled(x)
        if hit is not None and (ch := self.per_channel(hit[1])) is not None:
            inputs = [_Term(hit[0].src)]
            out_scale = ch  # a per-channel amplitude commutes with averaging
        if self.pooling == "sum":
            # SumPool2d, with the 1/k² of the average carried like a spike amplitude
            ones = np.ones(in_shape[0], F32)
            out_scale = (ones if out_scale is None else out_scale) / F32(k[0] * k[1])
            op = self.nir.SumPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p))
        else:
            op = self.nir.AvgPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p))
        name = self.emit(node, op, inputs)
        if out_scale is not None:
            out_shape = self.shape(node.outputs[0])
            self.terms[node.outputs[0].name] = [_Term(name, np.broadcast_to(out_scale.reshape(-1, 1, 1), out_shape).astype(F32))]

    def flatten(self, node: ir.Node, a: dict) -> None:
        x, y = node.inputs[0], node.outputs[0]
        s_in, s_out = self.shape(x), self.shape(y)
        if node.op_type == "Flatten" and int(a.get("axis", 1)) != 1 or s_out != (int(np.prod(s_in)),):
            return self.refuse(node, f"reshapes one sample {s_in} -> {s_out}; only flattening maps to NIR Flatten")
        if len(s_in) == 1:  # nothing to flatten
            self.terms[y.name] = self.terms[x.name]
            return
        inputs, out_scale = self.terms[x.name], None
        hit = self.single_scaled(x)
        if hit is not None:
            inputs, out_scale = [_Term(hit[0].src)], hit[1].reshape(-1)
        op = self.nir.Flatten(input_type={"input": np.array(s_in)}, start_dim=0, end_dim=-1)
        name = self.emit(node, op, inputs)
        if out_scale is not None:
            self.terms[y.name] = [_Term(name, out_scale)]

    def add_op(self, node: ir.Node, a: dict) -> None:
        x0, x1 = node.inputs
        c0, c1 = self.snn.const(x0), self.snn.const(x1)
        y = node.outputs[0]
        if c0 is None and c1 is None:
            self.terms[y.name] = self.terms[x0.name] + self.terms[x1.name]
            return
        x, c = (x0, c1) if c0 is None else (x1, c0)
        terms = self.terms[x.name]
        src = terms[0].src if len(terms) == 1 and terms[0].scale is None else None
        target = self.nodes.get(src) if src else None
        uses = len(x.uses())
        if isinstance(target, (self.nir.Linear, self.nir.Affine)) and uses == 1 and self.made_by.get(src) == x.name:
            bias = np.broadcast_to(c.astype(F32), self.shape(y)).astype(F32)
            old_b = getattr(target, "bias", np.zeros_like(bias))
            new = self.nir.Affine(weight=target.weight, bias=(old_b + bias).astype(F32))
            new.metadata = target.metadata
            self.nodes[src] = new
            self.terms[y.name] = terms
            self.made_by[src] = y.name
            return
        self.refuse(node, "adds a constant that is not the bias of a preceding Linear / Affine")

    def scale_op(self, node: ir.Node, a: dict) -> None:
        """Mul / Div by a constant: one more factor on the value's pending amplitude."""
        x0, x1 = node.inputs
        c = self.snn.const(x1)
        if c is None and node.op_type == "Mul":
            x0, x1, c = x1, x0, self.snn.const(x0)
        if c is None:
            return self.refuse(node, "multiplies two time-varying values; NIR has no product node")
        terms, y = self.terms[x0.name], node.outputs[0]
        if len(terms) != 1:
            return self.refuse(node, "scales a sum of several values")
        shape = self.shape(y)
        c = np.broadcast_to(c.astype(F32), shape)
        old = terms[0].scale if terms[0].scale is not None else np.ones(shape, F32)
        new = (old * c if node.op_type == "Mul" else old / c).astype(F32)
        self.terms[y.name] = [_Term(terms[0].src, None if np.all(new == 1) else new)]

    def alias(self, node: ir.Node, a: dict) -> None:
        self.terms[node.outputs[0].name] = self.terms[node.inputs[0].name]

    def tile(self, node: ir.Node, a: dict) -> None:
        reps = self.snn.const(node.inputs[1])
        x = node.inputs[0]
        is_entry = x.producer() is None and self.snn.input_kinds.get(x.name) == "static"
        if reps is None or not is_entry or int(reps[0]) != self.snn.time_steps or np.any(reps[1:] != 1):
            return self.refuse(node, "a Tile that is not the time entry of a static input")
        self.alias(node, a)

    def neuron(self, node: ir.Node, a: dict) -> None:
        n = next(n for n in self.snn.neurons if n.node == node.name)
        if a.get("signed", 0):
            return self.refuse(node, "a signed IF neuron fires -1 spikes; NIR spikes are 0/1")
        if n.reset != "zero":
            if not self.allow_lossy:
                return self.refuse(
                    node, "subtractive reset (v -= θ after a spike): NIR neurons reset to v_reset; convert with "
                    "reset to zero (--neuron if --reset zero, or NeuronConfig(reset='zero')) for an exact export, "
                    "or pass --lossy to export it with NIR's reset and measure the difference")
            self.lossy.append(f"{node.name}: subtractive reset exported as NIR's reset to v_reset")
        theta = n.threshold
        if n.v_init != 0.0:
            if not self.allow_lossy:
                return self.refuse(
                    node, f"v_init {n.v_init:g} (membrane starts at {n.v_init:g}·θ): NIR has no initial potential and its "
                    "readers disagree on one (SpikingJelly starts at v_reset, snnTorch and Norse at 0); convert with "
                    "v_init 0 for an exact export, or pass --lossy to export it starting at 0 and measure the difference")
            self.lossy.append(f"{node.name}: v_init {n.v_init:g} exported as an initial potential of 0")
        thr = np.nextafter(theta, F32(-np.inf)).astype(F32)
        zero = np.zeros_like(theta)
        meta = {"snn_onnx.onnx_node": node.name, "snn_onnx.v_init": n.v_init, "snn_onnx.reset": n.reset,
                "snn_onnx.threshold": "v_threshold is the largest float32 below our θ: v > v_threshold is v >= θ"}
        if n.site:
            meta["snn_onnx.site"] = n.site
        shape = theta.shape
        if n.leak == 1.0:
            op = self.nir.IF(r=np.full(shape, 1.0 / self.dt), v_threshold=thr, v_reset=zero)
        elif 0.0 < n.leak < 1.0:
            tau = np.full(shape, self.dt / (1.0 - float(F32(n.leak))))
            op = self.nir.LIF(tau=tau, r=tau / self.dt, v_leak=zero, v_threshold=thr, v_reset=zero)
        else:
            return self.refuse(node, f"leak {n.leak} outside (0, 1]")
        name = self.emit(node, op, self.terms[n.input], meta)
        self.terms[n.output] = [_Term(name, theta)]
        self.neurons.append(NeuronExport(nir_node=name, onnx_node=node.name, input=n.input, output=n.output,
                                         threshold=theta, leak=n.leak, reset=n.reset, v_init=n.v_init))

    def emit(self, node: ir.Node, op: Any, inputs: list[_Term], meta: dict | None = None) -> str:
        name = self.add(node.name or node.op_type, op, inputs, {"snn_onnx.onnx_node": node.name, **(meta or {})})
        self.terms[node.outputs[0].name] = [_Term(name)]
        self.made_by[name] = node.outputs[0].name
        return name

    def refuse(self, node: ir.Node, why: str) -> None:
        self.refused.append((f"'{node.name}' ({node.op_type})", why))
        for out in node.outputs:
            if out is not None:
                self.terms[out.name] = [_Term("?")]

    # -- driver ---------------------------------------------------------------------------
    def run(self) -> NirExport:
        snn = self.snn
        inputs: dict[str, str] = {}
        for name in snn.input_kinds:
            nir_name = self.add(f"input_{name}", self.nir.Input(input_type={"input": np.array(snn.shapes[name])}), [],
                                {"snn_onnx.onnx_input": name, "snn_onnx.coding": snn.input_kinds[name]})
            self.terms[name] = [_Term(nir_name)]
            inputs[nir_name] = name
        table = {
            ("", "Conv"): _Exporter.conv, ("", "Gemm"): _Exporter.gemm, ("", "MatMul"): _Exporter.matmul,
            ("", "AveragePool"): _Exporter.avgpool, ("", "GlobalAveragePool"): _Exporter.avgpool,
            ("", "Flatten"): _Exporter.flatten, ("", "Reshape"): _Exporter.flatten, ("", "Add"): _Exporter.add_op,
            ("", "Mul"): _Exporter.scale_op, ("", "Div"): _Exporter.scale_op, ("", "Identity"): _Exporter.alias, ("", "Dropout"): _Exporter.alias, ("", "Tile"): _Exporter.tile,
            (schema.DOMAIN, schema.IF_NEURON.name): _Exporter.neuron,
        }
        for node in snn.body:
            domain = "" if node.domain == "ai.onnx" else node.domain
            handler = table.get((domain, node.op_type))
            if handler is None:
                why = NO_NIR.get(node.op_type) if domain == schema.DOMAIN else None
                self.refuse(node, why or "no NIR node computes this op")
                continue
            handler(self, node, attrs_of(node))
        outputs: dict[str, str] = {}
        for out_name, steps in snn.step_outputs.items():
            shape = snn.shapes[steps]
            nir_name = self.add(f"output_{out_name}", self.nir.Output(output_type={"output": np.array(shape)}),
                                self.terms[steps], {"snn_onnx.onnx_output": out_name})
            outputs[nir_name] = out_name
        if self.refused:
            by_reason: dict[str, list[str]] = {}
            for where, why in self.refused:
                by_reason.setdefault(why, []).append(where)
            parts = []
            for why, nodes in list(by_reason.items())[:3]:
                more = f" and {len(nodes) - 3} more" if len(nodes) > 3 else ""
                parts.append(f"node{'s' if len(nodes) > 1 else ''} {', '.join(nodes[:3])}{more}: {why}")
            raise ConversionError("cannot export to NIR: " + "; ".join(parts))
        meta = {
            "generator": f"snn-onnx {__version__}",
            "dt": self.dt,
            "time_steps": snn.time_steps,
            "input_coding": json.dumps({n: ("the same sample at every step" if snn.input_kinds[o] == "static"
                                            else "one frame per step") for n, o in inputs.items()}),
            "output_reduction": "mean over the T steps of each Output node",
            "discretisation": "forward Euler, one step of dt per time step; IF: v += dt*r*I",
            "lossy": json.dumps(self.lossy),
        }
        graph = self.nir.NIRGraph(nodes=self.nodes, edges=self.edges, metadata=meta)
        return NirExport(graph=graph, dt=self.dt, time_steps=snn.time_steps, neurons=self.neurons, inputs=inputs,
                         outputs=outputs, input_coding=dict(snn.input_kinds), lossy=self.lossy)


def to_nir(model, *, dt: float = DEFAULT_DT, lossy: bool = False, pooling: str = "avg") -> NirExport:
    """Export an SNN (path, ``onnx.ModelProto`` or :class:`SnnGraph`) to a NIR graph.

    ``dt``: the Euler step the NIR time constants are written for (stated in the graph's
    metadata; readers must simulate with the same step). ``lossy``: export subtractive-reset
    neurons with NIR's reset instead of refusing them (``NirExport.lossy`` lists them).
    ``pooling``: average pooling as ``AvgPool2d`` ("avg") or as ``SumPool2d`` with the 1/k²
    folded into the next layer's weights ("sum", for readers without AvgPool2d, e.g. Norse)."""
    if not dt > 0:
        raise ConversionError(f"dt must be > 0, got {dt}")
    if pooling not in ("avg", "sum"):
        raise ConversionError(f"pooling must be 'avg' or 'sum', got {pooling!r}")
    snn = model if isinstance(model, SnnGraph) else read_snn(model)
    return _Exporter(snn, float(dt), lossy, pooling).run()


__all__ = ["DEFAULT_DT", "NeuronExport", "NirExport", "to_nir", "Neuron"]
