"""Exact synaptic operations, MACs, firing rates and energy of a converted SNN.

``EnergyModel(model, sample)`` reads the graph once: it finds the spike sources (every op of
``SPIKING_OPS``), classifies every op that costs something, and for every synaptic op (Conv,
ConvTranspose, Gemm, MatMul) whose input is a pure spike tensor it precomputes, per spiking
layer feeding it, the exact fan-out of each neuron at each step. ``account(counts, samples)``
then turns the spike counts of a run (the ops' int64 count outputs, summed over batches) into
per-layer, per-step SOPs, MACs and energy, and the ANN's MACs and energy for comparison.

Rules (docs/energy.md, DESIGN.md "Energy and synaptic operations"):

* SOP: a synaptic op fed by spikes, through linear ops that send each spike to at most one
  position (``routing``), costs, per spike, the number of outputs that spike reaches.
* MAC (dense): a synaptic op whose input is analog (the static input repeated T times, the
  output of a compensation block, an event input, a mix of spikes and analog values, or spikes
  spread by an op the tracer cannot follow exactly) costs its dense MACs at every step.
* Compensation blocks and non-linear ops on analog values: ``costs.op_macs`` per step, and
  one MAC per element and step for each TemporalMean / TemporalDelta; a fused block
  (CompensatedElementwise) costs the same as unfused (``costs.function_macs``).
* ANN: the dense MACs of the same synaptic and non-linear ops for one pass.
* Energy = ``E_AC * SOPs + E_MAC * MACs`` (0.9 pJ / 4.6 pJ by default, 45 nm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import onnx

from .. import metadata as md
from ..errors import SnnOnnxError
from ..naming import RULE_TAG, readable_name
from ..ops import onnx_table
from ..ops import schema
from . import costs, fanout, routing, signgd
from .routing import NotExact
from .shapes import value_shapes

SYNAPTIC_OPS = onnx_table.ops_with(cost=onnx_table.SYNAPTIC)
TEMPORAL_OPS = frozenset({schema.TEMPORAL_MEAN.name, schema.TEMPORAL_DELTA.name})


class EnergyError(SnnOnnxError):
    """The model cannot be accounted (e.g. converted without spike-count outputs)."""


@dataclass(frozen=True)
class EnergyConfig:
    """Energy per operation in picojoules (defaults: 45 nm CMOS, Horowitz 2014)."""

    e_ac_pj: float = 0.9
    e_mac_pj: float = 4.6

    def __post_init__(self) -> None:
        for name in ("e_ac_pj", "e_mac_pj"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise EnergyError(f"{name} must be a finite number >= 0, got {v!r}")


@dataclass
class SpikeSource:
    site: str
    node: str
    op: str
    output: str
    counts: str
    shape: tuple[int, ...]  # [T, *neuron shape] (= the counts output's shape)

    @property
    def neurons(self) -> int:
        return int(np.prod(self.shape[1:]))


@dataclass
class LayerSpec:
    """A counted op. ``dense_macs``: its MACs over the T steps of one sample if every input were
    dense; ``fanouts``: for an SOP layer, per source site, each neuron's fan-out ``[T, *N]``
    (``[1, *N]`` when it is the same at every step)."""

    name: str
    node: str
    op: str
    role: str  # "synaptic" | "compensation" | "analog" | "neuron" (SignGD neurons compute)
    counting: str  # "SOP" | "MAC"
    reason: str
    dense_macs: int
    ann_macs: float
    fanouts: dict[str, np.ndarray] = field(default_factory=dict)
    # Runs once per sample instead of once per step: the converter moved it before the time
    # entry (its input is the same at every step), so all its MACs fall in step 1.
    once: bool = False

    @property
    def sources(self) -> list[str]:
        return list(self.fanouts)


def _readable(node: onnx.NodeProto) -> str:
    """The module path the exporter recorded for the node, else its name."""
    return readable_name(node)


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            v = onnx.helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


class EnergyModel:
    """Static analysis of an SNN graph for energy accounting.

    ``sample``: model inputs for one sample (batch 1; an event input: its T frames), used only
    for their shapes. ``shape_method``: see :func:`shapes.value_shapes`.
    """

    def __init__(self, model: onnx.ModelProto, sample: Mapping[str, np.ndarray], shape_method: str = "auto"):
        meta = md.read(model)
        if "time_steps" not in meta:
            raise EnergyError("not an snn-onnx SNN (no snn_onnx.time_steps metadata)")
        self.time_steps: int = int(meta["time_steps"])
        self.model = model
        g = model.graph
        self._const = routing.constant_getter(model)
        self._producer: dict[str, tuple[onnx.NodeProto, int]] = {}
        for n in g.node:
            for i, o in enumerate(n.output):
                if o:
                    self._producer[o] = (n, i)
        inits = {i.name for i in g.initializer}
        self._graph_inputs = [i.name for i in g.input if i.name not in inits]
        self._input_kinds: dict[str, str] = meta.get("inputs", {})
        self._data = self._data_values(g)
        self._tags = {n.name: p.value for n in g.node for p in n.metadata_props if p.key == RULE_TAG}
        site_of_counts = {s["counts"]: s["site"] for s in meta.get("sites", []) if s.get("counts")}
        graph_outputs = {o.name for o in g.output}
        needed = {v for n in g.node for v in list(n.input) + list(n.output) if v in self._data}
        self.shapes = value_shapes(model, sample, needed, method=shape_method)
        self.sources: dict[str, SpikeSource] = {}
        self._source_of_output: dict[str, str] = {}
        missing = []
        for n in g.node:
            if n.domain != schema.DOMAIN or n.op_type not in schema.SPIKING_OPS:
                continue
            counts = n.output[1] if len(n.output) > 1 and n.output[1] in graph_outputs else None
            site = site_of_counts.get(counts) if counts else None
            site = site or (counts.rsplit("/spike_counts", 1)[0] if counts else n.name)
            if counts is None:
                missing.append(site)
                continue
            shape = self._shape(n.output[0])
            self.sources[site] = SpikeSource(site, n.name, n.op_type, n.output[0], counts, shape)
            self._source_of_output[n.output[0]] = site
        if missing:
            raise EnergyError(
                f"spiking layer(s) {missing} have no spike-count output, so their firing rates and "
                "SOPs cannot be measured; convert with spike_counts=True (no --no-spike-counts)"
            )
        self._exit = self._exit_nodes(g, meta)
        self._compensation = self._compensation_nodes(g)
        self._trace_memo: dict[str, list[tuple[str, np.ndarray]] | NotExact] = {}
        self.layers: list[LayerSpec] = []
        names: set[str] = set()
        for n in g.node:
            spec = self._layer(n)
            if spec is None:
                continue
            base, k = spec.name, 1
            while spec.name in names:
                k += 1
                spec.name = f"{base}#{k}"
            names.add(spec.name)
            self.layers.append(spec)
        self._trace_memo.clear()  # route maps are only needed while building the layers

    # -- graph facts ------------------------------------------------------------------------
    def _data_values(self, g: onnx.GraphProto) -> set[str]:
        """Values computed from the graph inputs through data paths (Shape / Size end one)."""
        data = set(self._graph_inputs)
        for n in g.node:
            if n.op_type in ("Shape", "Size") and n.domain in ("", "ai.onnx"):
                continue
            if any(i in data for i in n.input if i):
                data.update(o for o in n.output if o)
        return data

    def _shape(self, name: str) -> tuple[int, ...]:
        if name not in self.shapes:
            raise EnergyError(f"the shape of '{name}' is unknown; cannot count its operations")
        return tuple(self.shapes[name])

    def _exit_nodes(self, g: onnx.GraphProto, meta: dict) -> set[str]:
        """The running-mean TemporalMean of the time exit (reporting, not computing): the
        converter tags it (``snn_onnx.rule = time_exit``); files without tags are traced."""
        if self._tags:
            return {n.name for n in g.node if self._tags.get(n.name) == "time_exit"}
        per_step = set(meta.get("outputs", {}).values())
        out = set()
        for name in per_step:
            p = self._producer.get(name)
            while p is not None and p[0].op_type == "Reshape":
                p = self._producer.get(p[0].input[0])
            if p is not None and p[0].op_type == schema.TEMPORAL_MEAN.name:
                out.add(p[0].name)
        return out

    def _compensation_nodes(self, g: onnx.GraphProto) -> set[str]:
        """The nodes of compensation blocks: tagged by the converter's compensation stage
        (``snn_onnx.rule = compensation``); in files without tags, the nodes downstream of a
        (non-exit) TemporalMean and upstream of its TemporalDelta."""
        if self._tags:
            return {n.name for n in g.node if self._tags.get(n.name) == "compensation"}
        consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in g.node:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        inside: set[str] = set()
        stack = [n for n in g.node if n.op_type == schema.TEMPORAL_MEAN.name and n.domain == schema.DOMAIN
                 and n.name not in self._exit]
        for n in stack:
            inside.add(n.name)
        while stack:
            n = stack.pop()
            for o in n.output:
                for c in consumers.get(o, []):
                    if c.name in inside or (c.domain == schema.DOMAIN and c.op_type in schema.SPIKING_OPS):
                        continue
                    inside.add(c.name)
                    if not (c.domain == schema.DOMAIN and c.op_type == schema.TEMPORAL_DELTA.name):
                        stack.append(c)
        return inside

    # -- tracing spikes back to their neurons ----------------------------------------------
    def _trace(self, value: str) -> list[tuple[str, np.ndarray]]:
        """(site, route) pairs: each spike source whose spikes make up ``value``, with the flat
        position in ``value`` of each of its elements (-1: not there). Raises NotExact."""
        memo = self._trace_memo.get(value)
        if isinstance(memo, NotExact):
            raise memo
        if memo is not None:
            return memo
        try:
            result = self._trace_uncached(value)
        except NotExact as err:
            self._trace_memo[value] = err
            raise
        self._trace_memo[value] = result
        return result

    def _trace_uncached(self, value: str) -> list[tuple[str, np.ndarray]]:
        if value not in self._data:
            return []  # a constant: folded into the next layer's bias
        if value in self._source_of_output:
            return [(self._source_of_output[value], np.arange(int(np.prod(self._shape(value))), dtype=np.int64))]
        prod = self._producer.get(value)
        if prod is None:
            if self._input_kinds.get(value) == "static":
                # the converter hoisted the layer before the time entry: it runs once per sample
                raise NotExact(f"direct coding: its input is the static input '{value}', the same at every step, so it runs once")
            raise NotExact(f"its input is the graph input '{value}' (analog values or event frames, not spikes of a neuron)")
        node, out_idx = prod
        if node.op_type == "Tile" and node.input[0] in self._graph_inputs:
            raise NotExact(f"direct coding: its input is the static input '{node.input[0]}' repeated over the T steps")
        if node.domain == schema.DOMAIN:
            if node.op_type == schema.TEMPORAL_DELTA.name:
                f = self._producer.get(node.input[0])
                what = f"{f[0].op_type} '{f[0].name}'" if f else node.name
                raise NotExact(f"its input is the output of the compensation block of {what} (analog values)")
            raise NotExact(f"its input comes from {node.op_type} '{node.name}' (analog values)")
        varying = [j for j, name in enumerate(node.input) if name and name in self._data]
        if node.op_type in ("Mul", "Div") and len(varying) > 1:
            raise NotExact(f"its input is a product of two time-varying tensors ({node.op_type} '{node.name}')")
        if node.op_type not in routing.ROUTES and node.op_type != "Split":
            raise NotExact(f"its input comes from {node.op_type} '{node.name}' (not a spike tensor)")
        found: dict[str, np.ndarray] = {}
        for j in varying:
            sub = self._trace(node.input[j])
            if not sub:
                continue
            r = routing.route(node, j, out_idx, self.shapes, self._const)
            for site, m in sub:
                new = np.where(m >= 0, r[np.maximum(m, 0)], -1)
                if site in found:
                    if not np.array_equal(found[site], new):
                        raise NotExact(f"spikes of '{site}' reach it along two paths that do not coincide")
                    continue
                found[site] = new
        return list(found.items())

    # -- classification ----------------------------------------------------------------------
    def _layer(self, n: onnx.NodeProto) -> LayerSpec | None:
        if n.domain == schema.DOMAIN:
            if n.op_type in TEMPORAL_OPS and n.name not in self._exit:
                elems = int(np.prod(self._shape(n.output[0])))
                return LayerSpec(n.name or n.op_type, n.name, n.op_type, "compensation", "MAC",
                                 "expectation compensation: 1 MAC per element and step", elems, 0.0)
            if n.op_type == schema.COMPENSATED_ELEMENTWISE.name:
                elems = int(np.prod(self._shape(n.output[0])))
                fn = str(_attr(n, "function"))
                f_macs = costs.function_macs(fn, elems)
                return LayerSpec(n.name or n.op_type, n.name, n.op_type, "compensation", "MAC",
                                 f"fused expectation compensation of {fn}: running mean and delta (1 MAC each per "
                                 "element and step) and f as unfused", 2 * elems + f_macs, self._per_pass(n, f_macs))
            cost = signgd.layer_cost(n, self._shape(n.output[0])) if n.op_type in schema.SIGNGD_OPS else None
            if cost is not None:
                return LayerSpec(n.name or n.op_type, n.name, n.op_type, "neuron", "MAC", cost[2], cost[0], cost[1])
            return None
        varying = [j for j, v in enumerate(n.input) if v and v in self._data]
        if not varying:
            return None
        role_nonsyn = "compensation" if n.name in self._compensation else "analog"
        if n.op_type in SYNAPTIC_OPS:
            return self._synaptic(n, varying)
        in_shapes = [self.shapes.get(v) for v in n.input]
        out_shapes = [self.shapes.get(v) for v in n.output]
        macs = costs.op_macs(n, in_shapes, out_shapes, len(varying))
        if macs is None:
            return None
        reason = "non-linear op on analog values (estimate, docs/energy.md)"
        return LayerSpec(_readable(n), n.name, n.op_type, role_nonsyn, "MAC", reason, int(macs),
                         self._per_pass(n, macs), once=self._once(n))

    def _rows(self, n: onnx.NodeProto) -> int:
        """Rows per sample the op runs on: T (every step) or 1 (time-invariant, hoisted)."""
        shape = self.shapes.get(n.output[0])
        return 1 if shape and len(shape) and shape[0] == 1 and self.time_steps > 1 else self.time_steps

    def _once(self, n: onnx.NodeProto) -> bool:
        return self._rows(n) == 1 and self.time_steps > 1

    def _per_pass(self, n: onnx.NodeProto, macs: int) -> float:
        """MACs of one ANN-equivalent pass: the op's MACs divided by the rows it ran on."""
        return macs / self._rows(n)

    def _synaptic(self, n: onnx.NodeProto, varying: list[int]) -> LayerSpec:
        op = n.op_type
        role = "compensation" if n.name in self._compensation else "synaptic"
        out_shape = self._shape(n.output[0])
        if op == "Einsum":
            shapes = [self._shape(v) for v in n.input]
            dense = _einsum_macs(str(_attr(n, "equation")), shapes)
            return LayerSpec(_readable(n), n.name, op, role, "MAC", "Einsum: no SOP rule, dense MACs", dense,
                             self._per_pass(n, dense), once=self._once(n))
        a_shape, b_shape = self._shape(n.input[0]), self._shape(n.input[1])
        if op == "Conv":
            dense = fanout.conv_macs(out_shape, b_shape)
        elif op == "ConvTranspose":
            dense = fanout.conv_transpose_macs(a_shape, b_shape)
        elif op == "Gemm":
            dense = fanout.gemm_macs(out_shape, a_shape, int(_attr(n, "transA", 0)))
        else:
            dense = fanout.matmul_macs(a_shape, out_shape)
        spec = LayerSpec(_readable(n), n.name, op, role, "MAC", "", dense, self._per_pass(n, dense), once=self._once(n))
        data_ops = [j for j in varying if j < 2]
        if role == "compensation":
            spec.reason = "inside a compensation block: analog inputs"
            return spec
        if len(data_ops) != 1 or (op in ("Conv", "ConvTranspose") and data_ops != [0]):
            spec.reason = "both operands vary over time" if len(data_ops) > 1 else "its weights vary over time"
            return spec
        j = data_ops[0]
        try:
            leaves = self._trace(n.input[j])
        except NotExact as err:
            spec.reason = str(err)
            return spec
        in_shape = self._shape(n.input[j])
        fan = self._fanout(n, j, in_shape, out_shape, b_shape).ravel()
        for site, route in leaves:
            src = self.sources[site]
            f = np.where(route >= 0, fan[np.maximum(route, 0)], 0).reshape(src.shape)
            # the same at every step (the usual case): keep one step, broadcast when counting
            spec.fanouts[site] = f[:1].copy() if np.all(f == f[:1]) else f
        spec.counting = "SOP"
        spec.reason = "spikes of " + ", ".join(spec.fanouts) + " (exact fan-out per neuron)"
        return spec

    def _fanout(self, n: onnx.NodeProto, j: int, in_shape, out_shape, w_shape) -> np.ndarray:
        op = n.op_type
        common = dict(
            group=int(_attr(n, "group", 1)), strides=_attr(n, "strides"), pads=_attr(n, "pads"),
            dilations=_attr(n, "dilations"), auto_pad=_attr(n, "auto_pad", "NOTSET"),
        )
        if op == "Conv":
            return fanout.conv_fanout(in_shape, out_shape, w_shape, **common)
        if op == "ConvTranspose":
            return fanout.conv_transpose_fanout(
                in_shape, out_shape, w_shape, output_padding=_attr(n, "output_padding"),
                output_shape_attr=_attr(n, "output_shape"), **common,
            )
        if op == "Gemm":
            return fanout.gemm_fanout(in_shape, out_shape, j)
        return fanout.matmul_fanout(in_shape, out_shape, j)

    # -- accounting --------------------------------------------------------------------------
    def account(self, counts: Mapping[str, np.ndarray], samples: int, config: EnergyConfig | None = None) -> "EnergyResult":
        """Per-layer and per-step costs of a run of ``samples`` samples whose spike counts
        (per site, ``[T, *N]``, summed over the samples) are ``counts``."""
        config = config or EnergyConfig()
        if samples <= 0:
            raise EnergyError(f"samples must be > 0, got {samples}")
        T = self.time_steps
        missing = [s for s in self.sources if s not in counts]
        if missing:
            raise EnergyError(f"no spike counts for layer(s) {missing}")
        for site, src in self.sources.items():
            if tuple(np.shape(counts[site])) != src.shape:
                raise EnergyError(f"spike counts of '{site}' have shape {list(np.shape(counts[site]))}, expected {list(src.shape)}")
        neurons = []
        for site, src in self.sources.items():
            c = np.asarray(counts[site], dtype=np.int64)
            per_step = c.reshape(T, -1).sum(axis=1) / (samples * src.neurons)
            per_neuron = c.reshape(T, -1).sum(axis=0) / (samples * T)
            neurons.append(NeuronLayer(site, src.op, src.node, src.neurons, float(per_step.mean()), per_step, per_neuron,
                                       int(c.sum())))
        layers = []
        for spec in self.layers:
            if spec.counting == "SOP":
                sops = np.zeros(T)
                for site, fan in spec.fanouts.items():
                    c = np.asarray(counts[site], dtype=np.int64)
                    sops += (c * fan).reshape(T, -1).sum(axis=1)
                sops /= samples
                macs = np.zeros(T)
            else:
                sops = np.zeros(T)
                if spec.once:
                    macs = np.zeros(T)
                    macs[0] = spec.dense_macs
                else:
                    macs = np.full(T, spec.dense_macs / T)
            layers.append(LayerEnergy(spec.name, spec.node, spec.op, spec.role, spec.counting, spec.reason, spec.sources,
                                      sops, macs, spec.ann_macs, spec.dense_macs, config))
        return EnergyResult(config, T, samples, layers, neurons)


def _einsum_macs(equation: str, shapes: list[tuple[int, ...]]) -> int:
    lhs = equation.replace(" ", "").split("->")[0]
    sizes: dict[str, int] = {}
    for term, shape in zip(lhs.split(","), shapes):
        if "..." in term:
            raise EnergyError(f"Einsum with ellipsis '{equation}' is not supported by the MAC counter")
        for ch, d in zip(term, shape):
            sizes[ch] = max(sizes.get(ch, 1), int(d))
    return int(np.prod(list(sizes.values())))


@dataclass
class NeuronLayer:
    """Firing statistics of one spiking layer (per sample)."""

    site: str
    op: str
    node: str
    neurons: int
    rate: float  # spikes per neuron per step
    rate_per_step: np.ndarray  # [T]
    per_neuron_rate: np.ndarray  # [N] spikes per step of each neuron
    spikes: int  # total over the run (all samples)


@dataclass
class LayerEnergy:
    """Costs of one counted op per sample: ``sops`` and ``macs`` per step ``[T]``."""

    name: str
    node: str
    op: str
    role: str
    counting: str
    reason: str
    sources: list[str]
    sops: np.ndarray
    macs: np.ndarray
    ann_macs: float
    dense_macs: int
    config: EnergyConfig

    @property
    def energy_per_step_pj(self) -> np.ndarray:
        return self.config.e_ac_pj * self.sops + self.config.e_mac_pj * self.macs

    @property
    def energy_pj(self) -> float:
        return float(self.energy_per_step_pj.sum())

    @property
    def ann_energy_pj(self) -> float:
        return self.config.e_mac_pj * self.ann_macs

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "node": self.node, "op": self.op, "role": self.role, "counting": self.counting,
            "reason": self.reason, "sources": self.sources, "sops": float(self.sops.sum()),
            "macs": float(self.macs.sum()), "energy_pj": self.energy_pj, "ann_macs": self.ann_macs,
            "ann_energy_pj": self.ann_energy_pj, "dense_macs_T_steps": self.dense_macs,
            "sops_per_step": self.sops.tolist(), "macs_per_step": self.macs.tolist(),
        }


@dataclass
class EnergyResult:
    config: EnergyConfig
    time_steps: int
    samples: int
    layers: list[LayerEnergy]
    neurons: list[NeuronLayer]

    @property
    def sops(self) -> float:
        return float(sum(l.sops.sum() for l in self.layers))

    @property
    def macs(self) -> float:
        return float(sum(l.macs.sum() for l in self.layers))

    @property
    def energy_per_step_pj(self) -> np.ndarray:
        out = np.zeros(self.time_steps)
        for l in self.layers:
            out += l.energy_per_step_pj
        return out

    @property
    def energy_pj(self) -> float:
        return float(self.energy_per_step_pj.sum())

    @property
    def ann_macs(self) -> float:
        return float(sum(l.ann_macs for l in self.layers))

    @property
    def ann_energy_pj(self) -> float:
        return self.config.e_mac_pj * self.ann_macs

    @property
    def energy_ratio(self) -> float:
        return self.energy_pj / self.ann_energy_pj if self.ann_energy_pj else float("nan")

    @property
    def firing_rate(self) -> float:
        """Spikes per neuron per step over all spiking layers (neuron-weighted)."""
        n = sum(l.neurons for l in self.neurons)
        return float(sum(l.rate * l.neurons for l in self.neurons) / n) if n else 0.0

    @property
    def firing_rate_per_step(self) -> np.ndarray:
        n = sum(l.neurons for l in self.neurons)
        if not n:
            return np.zeros(self.time_steps)
        return sum(l.rate_per_step * l.neurons for l in self.neurons) / n

    def cumulative_energy_pj(self) -> np.ndarray:
        """Energy spent up to and including each step ``t`` (anytime energy)."""
        return np.cumsum(self.energy_per_step_pj)

    def mac_layers(self) -> list[LayerEnergy]:
        return [l for l in self.layers if l.counting == "MAC"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "e_ac_pj": self.config.e_ac_pj, "e_mac_pj": self.config.e_mac_pj, "time_steps": self.time_steps,
            "samples": self.samples, "sops": self.sops, "macs": self.macs, "energy_pj": self.energy_pj,
            "ann_macs": self.ann_macs, "ann_energy_pj": self.ann_energy_pj, "energy_ratio": self.energy_ratio,
            "firing_rate": self.firing_rate, "firing_rate_per_step": self.firing_rate_per_step.tolist(),
            "energy_per_step_pj": self.energy_per_step_pj.tolist(),
            "layers": [l.as_dict() for l in self.layers],
            "spiking_layers": [
                {"site": n.site, "op": n.op, "node": n.node, "neurons": n.neurons, "firing_rate": n.rate,
                 "firing_rate_per_step": n.rate_per_step.tolist(), "spikes": n.spikes}
                for n in self.neurons
            ],
        }
