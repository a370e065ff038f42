"""Graph passes that turn the planned ANN into the SNN graph (time folded into axis 0)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import onnx_ir as ir

from ..errors import ConversionError
from ..ops import schema
from .analysis import Plan
from .graph_utils import Namer, add_initializer, const_array, insert_after_producer, is_float, make_node
from .rules import Site

NEURONS = {"if": schema.IF_NEURON.name, "paraif": schema.PARA_IF_NEURON.name}
INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class NeuronConfig:
    kind: str = "paraif"  # "if" | "paraif"
    v_init: float = 0.5
    leak: float = 1.0
    reset: str = "subtract"
    signed: bool = False
    signed_eps: float = 1e-3

    def __post_init__(self) -> None:
        if self.kind not in NEURONS:
            raise ConversionError(f"neuron must be one of {sorted(NEURONS)}, got {self.kind!r}")
        if self.reset not in schema.RESET_MODES:
            raise ConversionError(f"reset must be one of {schema.RESET_MODES}, got {self.reset!r}")
        if not 0 < self.leak <= 1:
            raise ConversionError(f"leak must be in (0, 1], got {self.leak}")

    def describe(self) -> dict:
        return asdict(self)


@dataclass
class NeuronRecord:
    """What the converter did at one site; serialised into the model metadata."""

    site: str
    kind: str
    op: str
    node: str
    input: str
    output: str
    counts: str | None
    threshold: list[float]
    channel_axis: int | None
    threshold_source: str
    dead_channels: int = 0


class SnnBuilder:
    def __init__(self, model: ir.Model, time_steps: int):
        if time_steps < 1:
            raise ConversionError(f"time steps T must be >= 1, got {time_steps}")
        self.model, self.graph, self.T = model, model.graph, time_steps
        self.namer = Namer(self.graph)
        self.opset = model.opset_imports.get("", 18)
        model.opset_imports[schema.DOMAIN] = schema.OPSET_VERSION
        self._consts: dict[tuple, ir.Value] = {}

    # -- helpers --------------------------------------------------------------------------
    def const(self, base: str, array) -> ir.Value:
        array = np.asarray(array)
        key = (base, array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            self._consts[key] = add_initializer(self.graph, self.namer, base, array)
        return self._consts[key]

    @staticmethod
    def _redirect(value: ir.Value, new: ir.Value, keep: set[ir.Node]) -> None:
        """Point every use of ``value`` (except by the nodes in ``keep``) at ``new``."""
        for use in list(value.uses()):
            if use.node not in keep:
                use.node.replace_input_with(use.idx, new)

    def _temporal(self, op: str, x: ir.Value, base: str) -> ir.Node:
        return make_node(
            self.namer, op, [x], {"time_steps": self.T}, domain=schema.DOMAIN, name=f"{base}/{op}"
        )

    # -- neurons --------------------------------------------------------------------------
    def add_neuron(
        self,
        site: Site,
        threshold: np.ndarray,
        channel_axis: int,
        cfg: NeuronConfig,
        spike_counts: bool,
        v_init: float,
    ) -> tuple[ir.Node, str | None]:
        op = NEURONS[cfg.kind]
        th = self.const(f"{site.name}/threshold", np.asarray(threshold, dtype=np.float32))
        attrs: dict = {"time_steps": self.T, "v_init": float(v_init)}
        if np.asarray(threshold).ndim == 1:
            attrs["channel_axis"] = int(channel_axis)
        if cfg.kind == "if":
            attrs.update(leak=float(cfg.leak), reset=cfg.reset, signed=int(cfg.signed))
            if cfg.signed:
                attrs["signed_eps"] = float(cfg.signed_eps)
        node = make_node(
            self.namer,
            op,
            [site.input, th],
            attrs,
            domain=schema.DOMAIN,
            num_outputs=2 if spike_counts else 1,
            name=f"{site.name}/{op}",
            output_names=[f"{site.name}/spikes", f"{site.name}/spike_counts"],
        )
        out_name = site.output.name
        last = site.nodes[-1]
        self.graph.insert_after(last, [node])
        y = node.outputs[0]
        ir.convenience.replace_all_uses_with(site.output, y)
        self._replace_graph_output(site.output, y)
        for n in reversed(site.nodes):
            self.graph.remove(n, safe=True)
        y.name = out_name  # keep the ANN's name for the activation
        y.dtype, y.shape = ir.DataType.FLOAT, site.output.shape
        counts = None
        if spike_counts:
            c = node.outputs[1]
            c.dtype = ir.DataType.INT64
            if site.input.shape is not None:
                c.shape = ir.Shape([self.T, *list(site.input.shape)[1:]])
            self.graph.outputs.append(c)
            counts = c.name
        return node, counts

    def _replace_graph_output(self, old: ir.Value, new: ir.Value) -> None:
        for i, out in enumerate(self.graph.outputs):
            if out is old:
                self.graph.outputs[i] = new

    # -- expectation compensation ---------------------------------------------------------
    def compensate(self, node: ir.Node, time_varying: set[ir.Value]) -> None:
        """f -> TemporalDelta(f(TemporalMean(x))) for every time-varying float input x.

        Compensated blocks are processed in graph order; when x is itself the TemporalDelta
        output of an earlier block, TemporalMean(TemporalDelta(z)) = z, so f reads z directly
        (chained non-linearities such as Softmax -> attn·V stay exact and cost nothing extra)."""
        for i, v in enumerate(node.inputs):
            if v is None or not is_float(v):
                continue
            producer = v.producer()
            # (checked before time_varying: a compensated block's TemporalDelta output is not in it)
            if producer is not None and producer.domain == schema.DOMAIN and producer.op_type == schema.TEMPORAL_DELTA.name:
                node.replace_input_with(i, producer.inputs[0])
                continue
            if v not in time_varying:
                continue
            tm = self._temporal(schema.TEMPORAL_MEAN.name, v, node.name)
            tm.outputs[0].dtype, tm.outputs[0].shape = v.dtype, v.shape
            self.graph.insert_before(node, [tm])
            node.replace_input_with(i, tm.outputs[0])
        for out in node.outputs:
            if not is_float(out) or not (out.uses() or out.is_graph_output()):
                continue
            td = self._temporal(schema.TEMPORAL_DELTA.name, out, node.name)
            td.outputs[0].dtype, td.outputs[0].shape = out.dtype, out.shape
            self.graph.insert_after(node, [td])
            self._redirect(out, td.outputs[0], keep={td})
            if out.is_graph_output():  # the TemporalDelta takes over the ANN's output name
                name = out.name
                out.name = self.namer(f"{name}/running_mean")
                td.outputs[0].name = name
            self._replace_graph_output(out, td.outputs[0])
            time_varying.add(td.outputs[0])

    # -- entry and exit of time -----------------------------------------------------------
    def time_entry(self, static_inputs: list[ir.Value]) -> None:
        """Repeat each static input T times along axis 0 (direct coding)."""
        for x in static_inputs:
            if x.shape is None:
                raise ConversionError(f"graph input '{x.name}' has no known rank; cannot repeat it over time")
            reps = self.const("time_repeats", np.array([self.T] + [1] * (len(x.shape) - 1), np.int64))
            tile = make_node(self.namer, "Tile", [x, reps], name=f"{x.name}/repeat_T", output_names=[f"{x.name}/repeated"])
            tile.outputs[0].dtype = x.dtype
            insert_after_producer(self.graph, x, [tile])
            self._redirect(x, tile.outputs[0], keep={tile})

    def time_exit(self, per_step: bool) -> dict[str, str]:
        """Each output y [T*B, ...] becomes mean_t(y) [B, ...] under its ANN name, plus the
        running mean after every step [T, B, ...] as '<name>_per_step'."""
        per_step_names: dict[str, str] = {}
        new_outputs: list[ir.Value] = []
        for y in list(self.graph.outputs):
            if y.dtype == ir.DataType.INT64 and y.name.endswith("/spike_counts"):
                new_outputs.append(y)
                continue
            if not is_float(y):
                raise ConversionError(f"graph output '{y.name}' is not a float tensor; cannot average it over time")
            name, shape = y.name, y.shape
            y.name = self.namer(f"{name}/steps")
            target = self._time_split_shape(y)
            r = make_node(self.namer, "Reshape", [y, target], name=f"{name}/split_time")
            mean = self._reduce_mean0(r.outputs[0], name)
            mean.outputs[0].name = name  # the ANN's output name, freed by renaming y above
            nodes = [r, mean]
            mean.outputs[0].dtype, mean.outputs[0].shape = y.dtype, shape
            new_outputs.append(mean.outputs[0])
            if per_step:
                tm = self._temporal(schema.TEMPORAL_MEAN.name, y, f"{name}/running_mean")
                r2 = make_node(
                    self.namer, "Reshape", [tm.outputs[0], target], name=f"{name}/per_step",
                    output_names=[f"{name}_per_step"],
                )
                r2.outputs[0].dtype = y.dtype
                if shape is not None:
                    r2.outputs[0].shape = ir.Shape([self.T, *list(shape)])
                nodes += [tm, r2]
                new_outputs.append(r2.outputs[0])
                per_step_names[name] = r2.outputs[0].name
            self.graph.extend(nodes)
        self.graph.outputs.clear()
        self.graph.outputs.extend(new_outputs)
        return per_step_names

    def _time_split_shape(self, y: ir.Value) -> ir.Value:
        """[T, -1, *y.shape[1:]] computed from y at run time (works for any batch)."""
        shape = make_node(self.namer, "Shape", [y], name=f"{y.name}/shape")
        tail = make_node(
            self.namer,
            "Slice",
            [shape.outputs[0], self.const("one", np.array([1], np.int64)), self.const("int64_max", np.array([INT64_MAX], np.int64))],
            name=f"{y.name}/shape_tail",
        )
        head = self.const("time_batch_split", np.array([self.T, -1], np.int64))
        cat = make_node(self.namer, "Concat", [head, tail.outputs[0]], {"axis": 0}, name=f"{y.name}/split_shape")
        self.graph.extend([shape, tail, cat])
        return cat.outputs[0]

    def _reduce_mean0(self, x: ir.Value, base: str) -> ir.Node:
        name = f"{base}/mean_over_time"
        if self.opset >= 18:  # axes moved from attribute to input in opset 18
            axes = self.const("axis0", np.array([0], np.int64))
            return make_node(self.namer, "ReduceMean", [x, axes], {"keepdims": 0}, name=name)
        return make_node(self.namer, "ReduceMean", [x], {"axes": [0], "keepdims": 0}, name=name)

    # -- batch-agnostic reshapes ----------------------------------------------------------
    def fix_reshapes(self, batch_values: set[ir.Value], fixed_batch: int | None) -> list[str]:
        """Make every Reshape of a batch-carrying tensor accept T*B rows. A constant target
        shape whose first entry is the ANN's fixed batch size is rewritten to -1 (or 0);
        one that cannot be proven batch-led stops the conversion."""
        changed = []
        for node in list(self.graph):
            if node.op_type != "Reshape" or node.domain != "" or node.inputs[0] not in batch_values:
                continue
            target = const_array(node.inputs[1])
            if target is None:
                continue  # computed from shapes at run time: follows T*B by itself
            target = target.astype(np.int64).ravel()
            if target.size == 0 or target[0] in (-1, 0) and not (
                target[0] == 0 and node.attributes.get_int("allowzero", 0) == 1
            ):
                continue
            if fixed_batch is not None and target[0] == fixed_batch:
                new = target.copy()
                new[0] = 0 if -1 in target[1:] else -1
                if new[0] == 0 and node.attributes.get_int("allowzero", 0) == 1:
                    node.attributes["allowzero"] = ir.AttrInt64("allowzero", 0)
                node.replace_input_with(1, self.const(f"{node.name}/batch_agnostic_shape", new))
                changed.append(node.name)
                continue
            raise ConversionError(
                f"Reshape to the constant shape {target.tolist()} fixes the leading dimension; "
                "the SNN runs T*B rows along it. Export the ANN with a dynamic batch axis",
                node.name,
                "Reshape",
            )
        return changed


def batch_carrying(graph: ir.Graph, inputs: list[ir.Value]) -> set[ir.Value]:
    """Values whose leading axis is the (folded) batch: computed from the graph inputs through
    data paths (a Shape op ends such a path)."""
    carrying = set(inputs)
    for node in graph:
        if node.op_type in ("Shape", "Size"):
            continue
        if any(v is not None and v in carrying for v in node.inputs):
            carrying.update(node.outputs)
    return carrying
