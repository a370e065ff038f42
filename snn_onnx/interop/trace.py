"""Run an SNN in ONNX Runtime and keep what a cross-framework comparison needs: per-step
outputs, and per neuron layer its spikes and membrane potentials at every step.

The kernels do not output potentials; they are replayed here from the layer's input
currents (read from the graph) and the spikes the kernel emitted, in the reference's float32
order (docs/ops.md#ifneuron): ``v = leak·v + x_t`` is the potential compared with θ; the
reset then uses the kernel's own spike. So the potentials are the kernel's, not a second
simulation that could drift from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import onnx

from ..ops import schema
from .snn_graph import SnnGraph, read_snn

F32 = np.float32


@dataclass
class Trace:
    outputs: dict[str, np.ndarray]  # output name -> [T, B, ...] per-step values (before the mean)
    spikes: dict[str, np.ndarray] = field(default_factory=dict)  # neuron ONNX node -> [T, B, ...] in {-1, 0, 1}
    potentials: dict[str, np.ndarray] = field(default_factory=dict)  # neuron node -> [T, B, ...]
    currents: dict[str, np.ndarray] = field(default_factory=dict)  # neuron node -> [T, B, ...] input per step


def _split(a: np.ndarray, T: int) -> np.ndarray:
    return a.reshape((T, a.shape[0] // T) + a.shape[1:])


def trace_snn(snn: SnnGraph | str, inputs: np.ndarray | Mapping[str, np.ndarray],
              providers: Sequence[str] | None = None) -> Trace:
    """Run ``snn`` on ``inputs`` (as :class:`snn_onnx.Session` takes them) with the per-step
    outputs and every neuron's input and output as extra graph outputs."""
    from ..runtime.session import make_session

    snn = snn if isinstance(snn, SnnGraph) else read_snn(snn)
    proto = _with_outputs(snn)
    sess = make_session(proto, providers)
    names = [i.name for i in sess.get_inputs()]
    feed = dict(inputs) if isinstance(inputs, Mapping) else {names[0]: inputs}
    feed = {k: np.asarray(v, F32) for k, v in feed.items()}
    wanted = list(dict.fromkeys(list(snn.step_outputs.values()) + [v for n in snn.neurons for v in (n.input, n.output)]))
    vals = dict(zip(wanted, sess.run(wanted, feed)))
    T = snn.time_steps
    tr = Trace(outputs={name: _split(vals[steps], T) for name, steps in snn.step_outputs.items()})
    for n in snn.neurons:
        y = _split(vals[n.output], T)
        x = vals[n.input]
        x = np.broadcast_to(x, (T,) + x.shape) if n.static_input else _split(x, T)
        tr.currents[n.node] = np.asarray(x, F32)
        if n.op != schema.IF_NEURON.name:
            tr.spikes[n.node] = np.sign(y)
            continue
        s = np.sign(y).astype(F32)
        tr.spikes[n.node] = s
        tr.potentials[n.node] = replay_potentials(tr.currents[n.node], s, n.threshold, n.leak, n.v_init, n.reset)
    return tr


def replay_potentials(x: np.ndarray, s: np.ndarray, theta: np.ndarray, leak: float, v_init: float, reset: str) -> np.ndarray:
    """Potentials ``v_t`` (before reset) of an IFNeuron given its inputs and its spikes."""
    theta = np.asarray(theta, F32)
    v = np.broadcast_to(F32(v_init) * theta, x.shape[1:]).astype(F32)
    out = np.empty_like(x, dtype=F32)
    leak32 = F32(leak)
    for t in range(x.shape[0]):
        v = (leak32 * v + x[t]).astype(F32)
        out[t] = v
        v = (v - s[t] * theta).astype(F32) if reset == "subtract" else np.where(s[t] != 0, F32(0), v).astype(F32)
    return out


def _with_outputs(snn: SnnGraph) -> onnx.ModelProto:
    import onnx_ir as ir

    proto = ir.to_proto(snn.model)
    have = {o.name for o in proto.graph.output}
    extra = list(snn.step_outputs.values()) + [v for n in snn.neurons for v in (n.input, n.output)]
    for name in dict.fromkeys(extra):
        if name not in have:
            proto.graph.output.append(onnx.ValueInfoProto(name=name))
    return proto
