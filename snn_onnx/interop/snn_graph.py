"""Read a converted SNN file (``.snn.onnx``) as what it computes per time step.

An SNN written by snn-onnx has three parts (docs/ops.md, ``snn_onnx/metadata.py``):

* the **time entry**: each static input is repeated T times (``Tile``), or, with the
  time-invariant prefix hoisted, the layers that only see the static input run once and the
  first neurons take their output with ``static_input = 1``; event inputs arrive per step;
* the **body**: stateless layers (Conv, Gemm, MatMul, pooling, reshapes, Add) and the
  spiking ops, all run on every step;
* the **time exit**: each output is the mean over the T steps of a per-step value, plus
  optional running means (``<name>_per_step``) and spike counts.

Interop (NIR export, ``snn-onnx check``) only needs the body and the per-step values it
feeds: :func:`read_snn` finds them from the file alone (never from converter internals).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from .. import metadata as md
from ..errors import ModelLoadError
from ..ops import schema

F32 = np.float32


@dataclass
class Neuron:
    """One spiking op of the body, with its parameters broadcast to one sample's shape."""

    node: str
    op: str
    input: str
    output: str
    counts: str | None
    attrs: dict[str, Any]
    threshold: np.ndarray | None  # IFNeuron: θ broadcast to the per-sample shape, float32
    site: str | None = None

    @property
    def leak(self) -> float:
        return float(self.attrs.get("leak", 1.0))

    @property
    def reset(self) -> str:
        return str(self.attrs.get("reset", "subtract"))

    @property
    def v_init(self) -> float:
        return float(self.attrs.get("v_init", 0.5))

    @property
    def static_input(self) -> bool:
        return bool(self.attrs.get("static_input", 0))


@dataclass
class SnnGraph:
    model: ir.Model
    path: str
    time_steps: int
    metadata: dict[str, Any]
    input_kinds: dict[str, str]  # graph input -> "static" | "event"
    step_outputs: dict[str, str]  # output name -> the per-step value averaged into it
    body: list[ir.Node]  # topological; only the nodes the per-step values depend on
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # value -> one sample's shape
    neurons: list[Neuron] = field(default_factory=list)

    def const(self, value: ir.Value | None) -> np.ndarray | None:
        return _const(value)


def _const(value: ir.Value | None) -> np.ndarray | None:
    if value is None:
        return None
    tensor = ir.convenience.get_const_tensor(value)
    return None if tensor is None else tensor.numpy()


def attrs_of(node: ir.Node) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, attr in node.attributes.items():
        v = attr.value
        if isinstance(v, (list, tuple)) or hasattr(v, "__iter__") and not isinstance(v, (str, bytes)):
            v = list(v)
        out[name] = v
    return out


def _exit_source(value: ir.Value) -> ir.Value | None:
    """The per-step value y of an output written as ReduceMean(Reshape(y, [T, -1, ...]), 0)."""
    mean = value.producer()
    if mean is None or mean.op_type != "ReduceMean" or mean.domain not in ("", "ai.onnx"):
        return None
    split = mean.inputs[0].producer() if mean.inputs else None
    if split is None or split.op_type != "Reshape":
        return None
    return split.inputs[0]


def read_snn(source: str | Path | onnx.ModelProto) -> SnnGraph:
    """Parse an snn-onnx SNN into its per-step body (see the module docstring)."""
    from ..load import load_onnx

    proto = source if isinstance(source, onnx.ModelProto) else load_onnx(source)
    where = "model" if isinstance(source, onnx.ModelProto) else str(source)
    meta = md.read(proto)
    if "time_steps" not in meta:
        raise ModelLoadError(f"{where} is not an snn-onnx SNN (no snn_onnx.time_steps metadata); convert it first")
    model = ir.from_proto(proto)
    graph = model.graph
    per_step_names = set(meta.get("outputs", {}).values())
    step_outputs: dict[str, str] = {}
    step_values: list[ir.Value] = []
    for out in graph.outputs:
        if out.name in per_step_names or out.dtype == ir.DataType.INT64:
            continue  # running means and spike counts: derived from the per-step values
        y = _exit_source(out)
        if y is None:
            raise ModelLoadError(
                f"{where}: output '{out.name}' is not the time exit of an snn-onnx SNN "
                "(expected ReduceMean over a Reshape to [T, B, ...])"
            )
        step_outputs[out.name] = y.name
        step_values.append(y)
    if not step_outputs:
        raise ModelLoadError(f"{where}: the SNN has no float outputs")
    inputs = {v.name: meta.get("inputs", {}).get(v.name, "static") for v in graph.inputs if v.name not in graph.initializers}
    body = _ancestors(graph, step_values)
    snn = SnnGraph(model=model, path=where, time_steps=int(meta["time_steps"]), metadata=meta,
                   input_kinds=inputs, step_outputs=step_outputs, body=body)
    site_of = {s.get("node"): s.get("site") for s in meta.get("sites", [])}
    snn.shapes = _sample_shapes(proto, snn)
    for node in body:
        if node.domain != schema.DOMAIN or node.op_type not in schema.SPIKING_OPS:
            continue
        snn.neurons.append(_neuron(snn, node, site_of.get(node.name)))
    return snn


def _data_inputs(node: ir.Node) -> list[ir.Value]:
    """Inputs that carry per-step data (shape operands and constants excluded)."""
    if node.op_type in ("Reshape", "Tile", "Expand") and node.domain in ("", "ai.onnx"):
        ins = node.inputs[:1]
    else:
        ins = list(node.inputs)
    return [v for v in ins if v is not None and _const(v) is None]


def _ancestors(graph: ir.Graph, values: list[ir.Value]) -> list[ir.Node]:
    keep: set[ir.Node] = set()
    stack = [v.producer() for v in values if v.producer() is not None]
    while stack:
        node = stack.pop()
        if node in keep:
            continue
        keep.add(node)
        for v in _data_inputs(node):
            if v.producer() is not None:
                stack.append(v.producer())
    return [n for n in graph if n in keep]


def _sample_shapes(proto: onnx.ModelProto, snn: SnnGraph) -> dict[str, tuple[int, ...]]:
    """One sample's shape of every body value, measured by one ORT run on a batch of 1."""
    from ..energy.shapes import probe_shapes

    feed = {}
    for inp in proto.graph.input:
        if inp.name not in snn.input_kinds:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in inp.type.tensor_type.shape.dim]
        if any(d <= 0 for d in dims[1:]):
            raise ModelLoadError(f"{snn.path}: input '{inp.name}' has no static shape after the batch axis ({dims})")
        rows = snn.time_steps if snn.input_kinds[inp.name] == "event" else 1
        feed[inp.name] = np.zeros([rows, *dims[1:]], dtype=np.float32)
    names = [v.name for n in snn.body for v in [*n.inputs, *n.outputs] if v is not None and _const(v) is None]
    shapes = probe_shapes(proto, feed, names + list(feed))
    return {k: tuple(v[1:]) for k, v in shapes.items()}


def _neuron(snn: SnnGraph, node: ir.Node, site: str | None) -> Neuron:
    attrs = attrs_of(node)
    x, y = node.inputs[0], node.outputs[0]
    counts = node.outputs[1].name if len(node.outputs) > 1 and node.outputs[1] is not None else None
    theta = None
    if node.op_type == schema.IF_NEURON.name:
        raw = _const(node.inputs[1])
        if raw is None:
            raise ModelLoadError(f"{snn.path}: node '{node.name}' (IFNeuron): the threshold is not a constant")
        theta = broadcast_to_sample(raw, snn.shapes[y.name], int(attrs.get("channel_axis", 1)))
    return Neuron(node=node.name, op=node.op_type, input=x.name, output=y.name, counts=counts,
                  attrs=attrs, threshold=theta, site=site)


def broadcast_to_sample(p: np.ndarray, sample_shape: tuple[int, ...], channel_axis: int) -> np.ndarray:
    """A scalar or per-channel parameter (``channel_axis`` indexes the full [T*B, ...] shape)
    as an array of one sample's shape."""
    p = np.asarray(p, dtype=F32)
    if p.size == 1:
        return np.full(sample_shape, p.reshape(()), dtype=F32)
    rank = len(sample_shape) + 1
    axis = (channel_axis + rank if channel_axis < 0 else channel_axis) - 1
    shape = [1] * len(sample_shape)
    shape[axis] = p.size
    return np.ascontiguousarray(np.broadcast_to(p.reshape(shape), sample_shape), dtype=F32)
