"""NIR graph → SNN file that runs in ONNX Runtime with our ops (``snn-onnx import-nir``,
:func:`snn_onnx.interop.from_nir`).

NIR's equations, one forward-Euler step of ``dt`` per time step (as :mod:`.nir_sim`):

* ``IF``: ``v += dt·r·I`` → ``IFNeuron(leak = 1)`` on ``I·(dt·r)``;
* ``LIF``: ``v = (1 - dt/τ)·v + (dt·r/τ)·I`` → ``IFNeuron(leak = 1 - dt/τ)`` on ``I·(dt·r/τ)``
  (the factor is 1 for files written by snnTorch, SpikingJelly and snn-onnx, and then no
  multiply is emitted);
* spikes are ``v > v_threshold``, ours ``v >= θ``: θ is the smallest float32 above
  ``v_threshold`` (the same test on float32 potentials); reset to 0 (``reset = "zero"``),
  start at 0 (``v_init = 0``); our neuron's output ``s·θ`` is divided by θ, giving NIR's 0/1
  exactly;
* ``Affine`` / ``Linear`` → Gemm, ``Conv1d`` / ``Conv2d`` → Conv, ``AvgPool2d`` →
  AveragePool, ``SumPool2d`` → a depthwise Conv with ones, ``Flatten`` → Flatten / Reshape,
  ``Scale`` → Mul, ``Threshold`` → Greater; several edges into a node are summed.

What has no exact form here is refused by name: ``v_reset`` or ``v_leak`` other than 0 (NIR
states no initial potential; readers start neurons at 0 or at ``v_reset``), parameters that
vary within a layer where our op takes one value (``τ``: the ``leak`` attribute), thresholds
that vary within a channel, CubaLIF / LI / I / Delay nodes, subgraphs and recurrent edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .. import metadata as md
from ..errors import ConversionError, ModelLoadError
from ..ops import schema
from ..version import __version__
from .nir_export import import_nir
from .nir_sim import topological_order

F32 = np.float32
OPSET = 18


@dataclass
class NirImport:
    model: onnx.ModelProto
    neurons: dict[str, str]  # NIR neuron node -> our IFNeuron node
    spikes: dict[str, str]  # NIR neuron node -> the value holding its 0/1 spikes [T*B, ...]
    inputs: dict[str, str]  # NIR Input node -> graph input
    outputs: dict[str, str]  # NIR Output node -> graph output (mean over T)


def _uniform(a, node: str, what: str, kind: str) -> float:
    arr = np.asarray(a, dtype=np.float64)
    if arr.size == 0 or not np.all(arr == arr.flat[0]):
        raise ConversionError(f"{what} varies across the layer; our IFNeuron takes one value", node=node, op_type=kind)
    return float(arr.flat[0])


def _pair(v, n: int) -> list[int]:
    arr = np.atleast_1d(np.asarray(v)).astype(int).ravel()
    return [int(arr[0])] * n if arr.size == 1 else [int(a) for a in arr[:n]]


class _Builder:
    def __init__(self, T: int, dt: float | None):
        self.T, self.dt = T, dt
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self.names: set[str] = set()
        self.sites: list[dict] = []
        self.count_outputs: list[tuple[str, tuple[int, ...]]] = []

    def name(self, base: str) -> str:
        out, i = base, 1
        while out in self.names:
            out, i = f"{base}_{i}", i + 1
        self.names.add(out)
        return out

    def const(self, base: str, arr: np.ndarray) -> str:
        n = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def op(self, op_type: str, inputs: list[str], base: str, n_out: int = 1, domain: str = "", **attrs) -> list[str]:
        outs = [self.name(f"{base}" if i == 0 else f"{base}/out{i}") for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(f"{base}/{op_type}"), domain=domain, **attrs))
        return outs


def _out_shape(nir, node, in_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """One sample's output shape of a node (NIR dims exclude batch and time)."""
    if isinstance(node, (nir.Affine, nir.Linear)):
        return (int(node.weight.shape[0]),)
    if isinstance(node, (nir.Conv2d, nir.Conv1d, nir.AvgPool2d, nir.SumPool2d)):
        nd = 1 if isinstance(node, nir.Conv1d) else 2
        if isinstance(node, (nir.Conv2d, nir.Conv1d)):
            k = list(node.weight.shape[2:])
            s, d = _pair(node.stride, nd), _pair(node.dilation, nd)
            c = int(node.weight.shape[0])
            p = _pads(node.padding, k, d, nd)
        else:
            k, s, d = _pair(node.kernel_size, nd), _pair(node.stride, nd), [1] * nd
            c = in_shape[0]
            p = _pair(node.padding, nd)
        sp = [(in_shape[1 + i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(nd)]
        return (c, *sp)
    if isinstance(node, nir.Flatten):
        start = node.start_dim if node.start_dim >= 0 else len(in_shape) + node.start_dim
        end = node.end_dim if node.end_dim >= 0 else len(in_shape) + node.end_dim
        return tuple(in_shape[:start]) + (int(np.prod(in_shape[start : end + 1])),) + tuple(in_shape[end + 1 :])
    return tuple(in_shape)


def _pads(padding, k, d, nd) -> list[int]:
    if isinstance(padding, (str, bytes)):
        padding = padding.decode() if isinstance(padding, bytes) else padding
        return [0] * nd if padding == "valid" else [(d[i] * (k[i] - 1)) // 2 for i in range(nd)]
    return _pair(padding, nd)


def from_nir(source: Any, *, time_steps: int, dt: float | None = None, static_inputs: bool = False,
             spike_counts: bool = True) -> NirImport:
    """Build an SNN ONNX model from a NIR graph (a ``nir.NIRGraph`` or a ``.nir`` path).

    ``time_steps``: T, the steps the model runs. ``dt``: the Euler step the file's time
    constants are meant for (default: the file's ``dt`` metadata; needed for IF / LIF nodes).
    ``static_inputs``: inputs are one sample ``[B, ...]`` repeated at every step (else one
    frame per step, ``[T*B, ...]`` time-major)."""
    nir = import_nir()
    where = "NIR graph"
    if not isinstance(source, nir.NIRGraph):
        p = Path(source)
        if not p.is_file():
            raise ModelLoadError(f"NIR file not found: {p}")
        try:
            source = nir.read(str(p))
        except Exception as err:
            raise ModelLoadError(f"{p} is not a NIR file ({type(err).__name__}: {err})") from None
        where = str(p)
    graph = source
    if time_steps < 1:
        raise ConversionError(f"time steps T must be >= 1, got {time_steps}")
    file_dt = graph.metadata.get("dt") if isinstance(graph.metadata, dict) else None
    dt = float(dt if dt is not None else file_dt) if (dt is not None or file_dt is not None) else None
    if dt is not None and not dt > 0:
        raise ConversionError(f"dt must be > 0, got {dt}")
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            raise ConversionError("nested NIR graphs (e.g. recurrent layers) are not imported", node=name, op_type="NIRGraph")
    order = topological_order(graph)  # refuses cycles
    preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        preds[b].append(a)
    b = _Builder(time_steps, dt)
    value: dict[str, str] = {}
    shape: dict[str, tuple[int, ...]] = {}
    g_inputs, g_outputs, per_step, neurons, spikes = [], [], {}, {}, {}
    inputs_meta: dict[str, str] = {}
    for name in order:
        node = graph.nodes[name]
        kind = type(node).__name__
        if isinstance(node, nir.Input):
            dims = [int(d) for d in np.asarray(node.input_type["input"]).ravel()]
            x = b.name(name)
            b.names.add(x)
            g_inputs.append(helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch" if static_inputs else "time_batch", *dims]))
            inputs_meta[x] = "static" if static_inputs else "event"
            if static_inputs:
                reps = b.const("time_repeats", np.array([time_steps] + [1] * len(dims), np.int64))
                x = b.op("Tile", [x, reps], f"{name}/repeated")[0]
            value[name], shape[name] = x, tuple(dims)
            continue
        srcs = preds[name]
        if not srcs:
            raise ConversionError("has no input edge", node=name, op_type=kind)
        x = value[srcs[0]]
        for other in srcs[1:]:
            if shape[other] != shape[srcs[0]]:
                raise ConversionError(f"sums inputs of shapes {shape[srcs[0]]} and {shape[other]}", node=name, op_type=kind)
            x = b.op("Add", [x, value[other]], f"{name}/sum")[0]
        in_shape = shape[srcs[0]]
        if isinstance(node, nir.Output):
            value[name], shape[name] = x, in_shape
            out = b.name(name)
            T_split = b.const(f"{name}/split_shape", np.array([time_steps, -1, *in_shape], np.int64))
            split = b.op("Reshape", [x, T_split], f"{name}/split_time")[0]
            axes = b.const("axis0", np.array([0], np.int64))
            b.nodes.append(helper.make_node("ReduceMean", [split, axes], [out], keepdims=0, name=b.name(f"{name}/mean_over_time")))
            g_outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", *in_shape]))
            tm = b.op("TemporalMean", [x], f"{name}/running_mean", domain=schema.DOMAIN, time_steps=time_steps)[0]
            ps = b.name(f"{out}_per_step")
            b.nodes.append(helper.make_node("Reshape", [tm, T_split], [ps], name=b.name(f"{name}/per_step")))
            g_outputs.append(helper.make_tensor_value_info(ps, TensorProto.FLOAT, [time_steps, "batch", *in_shape]))
            per_step[out] = ps
            continue
        y = _emit(nir, b, name, node, x, in_shape, spike_counts, neurons, spikes)
        value[name], shape[name] = y, _out_shape(nir, node, in_shape)
    inputs_nodes = {k: v for k, v in value.items() if isinstance(graph.nodes[k], nir.Input)}
    graph_proto = helper.make_graph(b.nodes, "nir_import", g_inputs,
                                    g_outputs + [helper.make_tensor_value_info(c, TensorProto.INT64, [time_steps, *cs]) for c, cs in b.count_outputs],
                                    b.inits)
    model = helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", OPSET),
                                                          helper.make_opsetid(schema.DOMAIN, schema.OPSET_VERSION)],
                              producer_name="snn-onnx", producer_version=__version__)
    model.ir_version = 9
    md.write(model, {
        md.TIME_STEPS: time_steps,
        md.VERSION: __version__,
        md.SOURCE: where,
        md.NEURON: {"kind": "nir", "reset": "zero", "v_init": 0.0},
        md.CALIBRATION: {"method": "none (thresholds from the NIR file)", "num_samples": 0, "data": "-",
                         "per_channel": any(s["channel_axis"] is not None for s in b.sites)},
        md.INPUTS: inputs_meta,
        md.OUTPUTS: per_step,
        md.SITES: b.sites,
        md.NIR: {"dt": dt, "nodes": neurons, "generator": str(graph.metadata.get("generator", "")) if isinstance(graph.metadata, dict) else ""},
    })
    try:
        onnx.checker.check_model(model)
    except Exception as err:  # a bug of ours, never the user's: say so
        raise ConversionError(f"the imported model does not pass the ONNX checker: {err}") from None
    return NirImport(model=model, neurons=neurons, spikes=spikes,
                     inputs={k: v for k, v in inputs_nodes.items()},
                     outputs={k: k for k in graph.nodes if isinstance(graph.nodes[k], nir.Output)})


def _emit(nir, b: _Builder, name: str, node, x: str, in_shape, spike_counts, neurons, spikes) -> str:
    kind = type(node).__name__
    if isinstance(node, (nir.Affine, nir.Linear)):
        if len(in_shape) != 1:
            raise ConversionError(f"applies to inputs of shape {in_shape}; only vectors are imported", node=name, op_type=kind)
        w = b.const(f"{name}.weight", np.asarray(node.weight, F32))
        ins = [x, w] + ([b.const(f"{name}.bias", np.asarray(node.bias, F32))] if isinstance(node, nir.Affine) else [])
        return b.op("Gemm", ins, name, transB=1)[0]
    if isinstance(node, (nir.Conv2d, nir.Conv1d)):
        nd = 1 if isinstance(node, nir.Conv1d) else 2
        k = list(node.weight.shape[2:])
        d = _pair(node.dilation, nd)
        p = _pads(node.padding, k, d, nd)
        ins = [x, b.const(f"{name}.weight", np.asarray(node.weight, F32)), b.const(f"{name}.bias", np.asarray(node.bias, F32))]
        return b.op("Conv", ins, name, kernel_shape=k, strides=_pair(node.stride, nd), pads=p + p, dilations=d,
                    group=int(node.groups))[0]
    if isinstance(node, nir.AvgPool2d):
        p = _pair(node.padding, 2)
        return b.op("AveragePool", [x], name, kernel_shape=_pair(node.kernel_size, 2), strides=_pair(node.stride, 2),
                    pads=p + p, count_include_pad=1)[0]
    if isinstance(node, nir.SumPool2d):
        k, p, c = _pair(node.kernel_size, 2), _pair(node.padding, 2), int(in_shape[0])
        ones = b.const(f"{name}.ones", np.ones((c, 1, *k), F32))
        return b.op("Conv", [x, ones], name, kernel_shape=k, strides=_pair(node.stride, 2), pads=p + p, group=c)[0]
    if isinstance(node, nir.Flatten):
        out = _out_shape(nir, node, in_shape)
        target = b.const(f"{name}.shape", np.array([-1, *out], np.int64))
        return b.op("Reshape", [x, target], name)[0]
    if isinstance(node, nir.Scale):
        return b.op("Mul", [x, b.const(f"{name}.scale", np.asarray(node.scale, F32))], name)[0]
    if isinstance(node, nir.Threshold):
        gt = b.op("Greater", [x, b.const(f"{name}.threshold", np.asarray(node.threshold, F32))], f"{name}/above")[0]
        return b.op("Cast", [gt], name, to=TensorProto.FLOAT)[0]
    if isinstance(node, (nir.IF, nir.LIF)):
        return _neuron(nir, b, name, node, x, in_shape, spike_counts, neurons, spikes)
    raise ConversionError("has no counterpart in snn-onnx's op set (IF, LIF, Affine, Linear, Conv1d/2d, "
                          "AvgPool2d, SumPool2d, Flatten, Scale, Threshold are imported)", node=name, op_type=kind)


def _neuron(nir, b: _Builder, name: str, node, x: str, in_shape, spike_counts, neurons, spikes) -> str:
    kind = type(node).__name__
    if b.dt is None:
        raise ConversionError("the file does not state the time step dt its time constants are written for; "
                              "pass --dt (snnTorch and SpikingJelly write for 1e-4 s, Norse for 1e-3 s)", node=name, op_type=kind)
    if np.any(np.asarray(node.v_reset) != 0):
        raise ConversionError("v_reset != 0: NIR states no initial potential and its readers disagree on one "
                              "(0 or v_reset); only v_reset = 0 is imported", node=name, op_type=kind)
    r = np.asarray(node.r, np.float64)
    if isinstance(node, nir.IF):
        leak, gain = 1.0, b.dt * r
    else:
        if np.any(np.asarray(node.v_leak) != 0):
            raise ConversionError("v_leak != 0 is not imported (only v_leak = 0)", node=name, op_type=kind)
        tau = _uniform(node.tau, name, "tau", kind)
        a = b.dt / tau
        if not 0 < a <= 1:
            raise ConversionError(f"dt/tau = {a:g} outside (0, 1]: forward Euler with dt = {b.dt:g} is unstable", node=name, op_type=kind)
        leak, gain = 1.0 - a, a * r
    gain32 = np.asarray(gain, F32)
    if np.any(gain32 != F32(1)):
        x = b.op("Mul", [x, b.const(f"{name}.input_gain", np.broadcast_to(gain32, in_shape).astype(F32))], f"{name}/input")[0]
    thr_nir = np.broadcast_to(np.asarray(node.v_threshold, F32), in_shape)
    theta = np.nextafter(thr_nir, F32(np.inf)).astype(F32)
    if np.all(theta == theta.flat[0]):
        th, axis = np.array([theta.flat[0]], F32), None
    else:
        flat = theta.reshape(theta.shape[0], -1)  # [C, rest]: a 1-D (Linear) layer's channel is its feature
        if not np.all(flat == flat[:, :1]):
            raise ConversionError("thresholds vary within a channel; our IFNeuron takes one per channel", node=name, op_type=kind)
        th, axis = flat[:, 0].copy(), 1
    if np.any(th <= 0):
        raise ConversionError("v_threshold < 0: our neurons need a positive threshold", node=name, op_type=kind)
    th_name = b.const(f"{name}.threshold", th)
    attrs = {"time_steps": b.T, "v_init": 0.0, "leak": float(F32(leak)), "reset": "zero"}
    if axis is not None:
        attrs["channel_axis"] = axis
    n_out = 2 if spike_counts else 1
    outs = b.op(schema.IF_NEURON.name, [x, th_name], f"{name}/y", n_out=n_out, domain=schema.DOMAIN, **attrs)
    node_name = b.nodes[-1].name
    if spike_counts:
        counts = b.name(f"{name}/spike_counts")
        b.nodes[-1].output[1] = counts
        b.count_outputs.append((counts, tuple(in_shape)))
    # our output is s·θ: dividing by the same θ gives NIR's 0/1 spikes exactly
    div = th if axis is None else th.reshape((-1,) + (1,) * (len(in_shape) - 1))
    z = b.op("Div", [outs[0], b.const(f"{name}.amplitude", div.astype(F32))], name)[0]
    neurons[name] = node_name
    spikes[name] = z
    b.sites.append({"site": name, "kind": f"nir:{kind}", "op": schema.IF_NEURON.name, "node": node_name, "input": x,
                    "output": outs[0], "counts": counts if spike_counts else None,
                    "threshold": [float(v) for v in th.ravel()], "channel_axis": axis,
                    "threshold_source": "nir", "dead_channels": 0})
    return z
