"""A NumPy simulator of NIR graphs, written from NIR's equations: the reference the
``snn-onnx check`` command and the tests hold the other runtimes to.

Discretisation (stated in docs/interop.md and in every graph snn-onnx writes): one step of
``dt`` per time step, forward Euler, float32 state updated as ``decay·v + gain·I + bias``
(each product rounded, then summed left to right), with ``decay``, ``gain`` and ``bias``
computed in float64 from the node's parameters and rounded to float32:

* ``I`` (integrator): ``v += dt·r·I``; ``IF``: the same, then spike and reset;
* ``LI`` / ``LIF``: ``τ v' = (v_leak - v) + r·I`` → ``decay = 1 - dt/τ``, ``gain = dt·r/τ``,
  ``bias = dt·v_leak/τ``;
* ``CubaLIF``: the synaptic current first, ``I_syn = (1 - dt/τ_syn)·I_syn + (dt/τ_syn)·w_in·S``,
  then the LIF on ``I_syn`` with ``τ_mem``;
* a neuron spikes (``z = 1``) when ``v > v_threshold`` and then ``v = v_reset``; state starts
  at 0; ``Threshold`` is ``z = [x > θ]`` without state;
* a node's inputs (edges into it) are summed; nodes run in topological order within a step
  (no delay on an edge); graphs with cycles are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..errors import SnnOnnxError

F32 = np.float32


@dataclass
class NirRun:
    outputs: dict[str, np.ndarray]  # Output node -> [T, B, ...] per step
    spikes: dict[str, np.ndarray] = field(default_factory=dict)  # neuron node -> [T, B, ...] 0/1 float32
    potentials: dict[str, np.ndarray] = field(default_factory=dict)  # neuron node -> [T, B, ...] before reset


def _pair(v, n: int = 2) -> tuple[int, ...]:
    arr = np.atleast_1d(np.asarray(v)).astype(int).ravel()
    return tuple(int(arr[0]) for _ in range(n)) if arr.size == 1 else tuple(int(a) for a in arr[:n])


def conv_nd(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride, padding, dilation, groups: int) -> np.ndarray:
    """Cross-correlation like torch's Conv1d/Conv2d, x [N, C, *spatial], float32."""
    nd = w.ndim - 2
    stride, dilation = _pair(stride, nd), _pair(dilation, nd)
    if isinstance(padding, (str, bytes)):
        padding = padding.decode() if isinstance(padding, bytes) else padding
        if padding == "valid":
            pad = (0,) * nd
        else:  # "same" with stride 1
            pad = tuple((dilation[i] * (w.shape[2 + i] - 1)) // 2 for i in range(nd))
    else:
        pad = _pair(padding, nd)
    x = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pad])
    k = w.shape[2:]
    span = tuple(dilation[i] * (k[i] - 1) + 1 for i in range(nd))
    win = np.lib.stride_tricks.sliding_window_view(x, span, axis=tuple(range(2, 2 + nd)))
    sl = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride) + tuple(slice(None, None, d) for d in dilation)
    win = win[sl]  # [N, C, *out, *k]
    cin_g, cout_g = w.shape[1], w.shape[0] // groups
    outs = []
    letters = "hwd"[:nd]
    kl = "klm"[:nd]
    for g in range(groups):
        xg = win[:, g * cin_g : (g + 1) * cin_g]
        wg = w[g * cout_g : (g + 1) * cout_g]
        outs.append(np.einsum(f"nc{letters}{kl},oc{kl}->no{letters}", xg, wg, optimize=True))
    y = np.concatenate(outs, axis=1).astype(F32)
    if b is not None:
        y = y + np.asarray(b, F32).reshape((1, -1) + (1,) * nd)
    return y


def pool2d(x: np.ndarray, kernel, stride, padding, average: bool) -> np.ndarray:
    k, s, p = _pair(kernel), _pair(stride), _pair(padding)
    x = np.pad(x, [(0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])])
    win = np.lib.stride_tricks.sliding_window_view(x, k, axis=(2, 3))[:, :, :: s[0], :: s[1]]
    y = win.sum(axis=(-2, -1), dtype=F32)
    return (y / F32(k[0] * k[1])).astype(F32) if average else y


class _Neuron:
    """Euler-discretised membrane: v = decay·v + gain·I + bias, spike v > θ, reset."""

    def __init__(self, decay, gain, bias, threshold, reset):
        self.decay, self.gain, self.bias = (np.asarray(a, F32) for a in (decay, gain, bias))
        self.threshold = None if threshold is None else np.asarray(threshold, F32)
        self.reset = None if reset is None else np.asarray(reset, F32)
        self.v: np.ndarray | None = None

    def step(self, i: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if self.v is None:
            self.v = np.zeros_like(i, dtype=F32)
        v = self.decay * self.v + self.gain * i + self.bias
        if self.threshold is None:  # integrator / leaky integrator: output the potential
            self.v = v.astype(F32)
            return self.v, self.v, None
        z = v > self.threshold
        self.v = np.where(z, self.reset, v).astype(F32)
        return z.astype(F32), v.astype(F32), z


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _make_state(nir, node, dt: float):
    if isinstance(node, nir.IF):
        return _Neuron(1.0, dt * _f64(node.r), 0.0, node.v_threshold, node.v_reset)
    if isinstance(node, nir.I):
        return _Neuron(1.0, dt * _f64(node.r), 0.0, None, None)
    if isinstance(node, (nir.LIF, nir.LI)):
        a = dt / _f64(node.tau)
        thr = getattr(node, "v_threshold", None)
        return _Neuron(1.0 - a, a * _f64(node.r), a * _f64(node.v_leak), thr, getattr(node, "v_reset", None))
    if isinstance(node, (nir.CubaLIF, nir.CubaLI)):
        a_syn, a_mem = dt / _f64(node.tau_syn), dt / _f64(node.tau_mem)
        syn = _Neuron(1.0 - a_syn, a_syn * _f64(node.w_in), 0.0, None, None)
        mem = _Neuron(1.0 - a_mem, a_mem * _f64(node.r), a_mem * _f64(node.v_leak),
                      getattr(node, "v_threshold", None), getattr(node, "v_reset", None))
        return (syn, mem)
    return None


def _stateless(nir, node, x: np.ndarray) -> np.ndarray:
    if isinstance(node, (nir.Input, nir.Output)):
        return x
    if isinstance(node, nir.Affine):
        return (x @ np.asarray(node.weight, F32).T + np.asarray(node.bias, F32)).astype(F32)
    if isinstance(node, nir.Linear):
        return (x @ np.asarray(node.weight, F32).T).astype(F32)
    if isinstance(node, nir.Scale):
        return (x * np.asarray(node.scale, F32)).astype(F32)
    if isinstance(node, (nir.Conv2d, nir.Conv1d)):
        return conv_nd(x, np.asarray(node.weight, F32), node.bias, node.stride, node.padding, node.dilation, int(node.groups))
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        return pool2d(x, node.kernel_size, node.stride, node.padding, isinstance(node, nir.AvgPool2d))
    if isinstance(node, nir.Flatten):
        start = node.start_dim + 1 if node.start_dim >= 0 else node.start_dim
        end = node.end_dim + 1 if node.end_dim >= 0 else node.end_dim
        shape = x.shape
        end_i = end if end >= 0 else len(shape) + end
        return x.reshape(shape[:start] + (-1,) + shape[end_i + 1 :])
    if isinstance(node, nir.Threshold):
        return (x > np.asarray(node.threshold, F32)).astype(F32)
    raise SnnOnnxError(f"the NIR simulator has no rule for node type {type(node).__name__}")


def topological_order(graph) -> list[str]:
    preds: dict[str, set[str]] = {n: set() for n in graph.nodes}
    for a, b in graph.edges:
        preds[b].add(a)
    order, done = [], set()
    pending = list(graph.nodes)
    while pending:
        ready = [n for n in pending if preds[n] <= done]
        if not ready:
            raise SnnOnnxError(f"the NIR graph has a cycle through {sorted(set(pending))[:4]}: recurrent graphs are not simulated")
        for n in ready:
            order.append(n)
            done.add(n)
        pending = [n for n in pending if n not in done]
    return order


def simulate_nir(graph: Any, inputs: Mapping[str, np.ndarray], dt: float) -> NirRun:
    """Run a NIR graph for ``T`` steps. ``inputs``: Input node name -> ``[T, B, *shape]``."""
    import nir

    from .nir_export import import_nir

    import_nir()
    if any(isinstance(n, nir.NIRGraph) for n in graph.nodes.values()):
        raise SnnOnnxError("the NIR simulator does not run nested graphs (subgraphs)")
    order = topological_order(graph)
    preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        preds[b].append(a)
    ins = {k: np.asarray(v, F32) for k, v in inputs.items()}
    missing = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input) and n not in ins]
    if missing:
        raise SnnOnnxError(f"no data for NIR input node(s) {missing}")
    T = next(iter(ins.values())).shape[0]
    states = {n: _make_state(nir, node, dt) for n, node in graph.nodes.items()}
    run = NirRun(outputs={n: [] for n, node in graph.nodes.items() if isinstance(node, nir.Output)})
    spikes: dict[str, list] = {}
    pots: dict[str, list] = {}
    for t in range(T):
        vals: dict[str, np.ndarray] = {}
        for name in order:
            node = graph.nodes[name]
            if isinstance(node, nir.Input):
                x = ins[name][t]
            else:
                parts = [vals[p] for p in preds[name]]
                if not parts:
                    raise SnnOnnxError(f"NIR node '{name}' has no input edge")
                x = parts[0]
                for p in parts[1:]:
                    x = (x + p).astype(F32)
            st = states[name]
            if st is None:
                y = _stateless(nir, node, x)
            else:
                if isinstance(st, tuple):
                    cur, _, _ = st[0].step(x)
                    y, v, z = st[1].step(cur)
                else:
                    y, v, z = st.step(x)
                if z is not None:
                    spikes.setdefault(name, []).append(y)
                    pots.setdefault(name, []).append(v)
            vals[name] = y
            if name in run.outputs:
                run.outputs[name].append(y)
    run.outputs = {k: np.stack(v) for k, v in run.outputs.items()}
    run.spikes = {k: np.stack(v) for k, v in spikes.items()}
    run.potentials = {k: np.stack(v) for k, v in pots.items()}
    return run
