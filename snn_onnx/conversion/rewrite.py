"""Graph passes that turn the planned ANN into the SNN graph (time folded into axis 0)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import onnx_ir as ir

from ..errors import ConversionError
from ..ops import schema
from .graph_utils import Namer, add_initializer, const_array, is_float, make_node, reachable
from .rules import Site, tag

# the neuron models by name (one vocabulary for the CLI, Python and the metadata) -> their op
NEURONS = {
    "paraif": schema.PARA_IF_NEURON.name,
    "if": schema.IF_NEURON.name,
    "lif": schema.IF_NEURON.name,
    "signed-if": schema.IF_NEURON.name,
}
INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class NeuronConfig:
    """The spiking neuron that replaces each activation (CNN mode); docs/ops.md says what each
    computes and when to pick it.

    ``kind``:

    * ``"paraif"``: ParaIFNeuron, all T steps at once from the mean input (QCFS ANNs at T = L).
      Options: ``v_init``.
    * ``"if"``: IFNeuron, integrate-and-fire, sequential. Options: ``v_init``, ``reset``.
    * ``"lif"``: IFNeuron with ``leak`` < 1 (``v = leak*v + x``). Options: ``leak`` (required),
      ``v_init``, ``reset``.
    * ``"signed-if"``: IFNeuron that may fire -1 to take back early over-firing (``signed`` is
      set). Options: ``v_init``, ``reset``, ``signed_eps``.

    An option the chosen neuron does not have is refused (ConversionError), never ignored.
    :meth:`from_options` is the constructor for "not given" = None (the CLI): it also refuses
    a non-applicable option given at its default value."""

    kind: str = "paraif"
    # initial membrane in units of θ; None: 0.5 at ReLU / clip sites, and at a staircase the
    # offset the staircase itself has (an explicit value that contradicts it is refused)
    v_init: float | None = None
    leak: float = 1.0
    reset: str = "subtract"
    signed: bool = False
    signed_eps: float = 1e-3

    # option -> the neurons that have it (v_init: all)
    OPTIONS = {"leak": ("lif",), "reset": ("if", "lif", "signed-if"), "signed_eps": ("signed-if",), "v_init": tuple(NEURONS)}

    def __post_init__(self) -> None:
        if self.kind not in NEURONS:
            raise ConversionError(f"neuron must be one of {', '.join(NEURONS)}, got {self.kind!r}")
        if self.kind == "signed-if":
            object.__setattr__(self, "signed", True)
        given = {"leak": self.leak != 1.0, "reset": self.reset != "subtract",
                 "signed_eps": self.signed_eps != 1e-3}
        for opt, differs in given.items():
            if differs and self.kind not in self.OPTIONS[opt]:
                raise ConversionError(_refusal(self.kind, opt, getattr(self, opt)))
        if self.signed and self.kind != "signed-if":
            raise ConversionError(f"the {self.kind} neuron does not fire negative spikes (signed=True); "
                                  "use the signed-if neuron")
        if self.reset not in schema.RESET_MODES:
            raise ConversionError(f"reset must be one of {', '.join(schema.RESET_MODES)}, got {self.reset!r}")
        if self.kind == "lif" and not 0 < self.leak < 1:
            raise ConversionError(f"the lif neuron needs a leak in (0, 1), got leak={self.leak:g} "
                                  "(leak=1 is the if neuron)")
        if self.v_init is not None and not np.isfinite(self.v_init):
            raise ConversionError(f"v_init must be finite, got {self.v_init}")
        if not (np.isfinite(self.signed_eps) and self.signed_eps >= 0):
            raise ConversionError(f"signed_eps must be >= 0, got {self.signed_eps}")

    @classmethod
    def from_options(cls, kind: str, *, leak: float | None = None, reset: str | None = None,
                     v_init: float | None = None, signed_eps: float | None = None) -> "NeuronConfig":
        """A config from options that are None when not given (CLI flags): an option the neuron
        does not have is refused even at its default value (``paraif`` with ``reset="subtract"``)."""
        if kind not in NEURONS:
            raise ConversionError(f"neuron must be one of {', '.join(NEURONS)}, got {kind!r}")
        opts = {"leak": leak, "reset": reset, "v_init": v_init, "signed_eps": signed_eps}
        for opt, value in opts.items():
            if value is not None and kind not in cls.OPTIONS[opt]:
                raise ConversionError(_refusal(kind, opt, value))
        if kind == "lif" and leak is None:
            raise ConversionError("the lif neuron needs a leak in (0, 1): give leak (--leak), e.g. 0.9")
        return cls(kind=kind, **{k: v for k, v in opts.items() if v is not None})

    @property
    def op(self) -> str:
        return NEURONS[self.kind]

    def describe(self) -> dict:
        """The neuron's name and the options it has (metadata, reports)."""
        d = asdict(self)
        return {"kind": self.kind, **{k: d[k] for k in ("v_init", "leak", "reset", "signed_eps")
                                      if self.kind in self.OPTIONS[k]}, "signed": self.signed}


def _refusal(kind: str, option: str, value) -> str:
    has = [k for k in NEURONS if k in NeuronConfig.OPTIONS[option]]
    names = has[0] if len(has) == 1 else ", ".join(has[:-1]) + " and " + has[-1]
    return (f"the {kind} neuron has no {option} (got {option}={value!r}); "
            f"{option} is an option of the {names} neuron{'s' if len(has) > 1 else ''}")


@dataclass
class SiteRecord:
    """What the converter did at one spiking site (any neuron); serialised into the metadata."""

    site: str
    kind: str
    op: str
    node: str
    input: str
    output: str
    counts: str | None


@dataclass
class NeuronRecord(SiteRecord):
    """An IF / ParaIF site."""

    threshold: list[float]
    channel_axis: int | None
    threshold_source: str
    dead_channels: int = 0
    levels: int | None = None  # staircase levels L (ParaIF at T = L reproduces the ANN)
    extra: dict = field(default_factory=dict)  # what the site was recognised as, from which nodes


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

    def _temporal(self, op: str, x: ir.Value, base: str, rule: str = "compensation") -> ir.Node:
        return tag(make_node(
            self.namer, op, [x], {"time_steps": self.T}, domain=schema.DOMAIN, name=f"{base}/{op}"
        ), rule)

    # -- neurons --------------------------------------------------------------------------
    def add_neuron(
        self,
        site: Site,
        threshold: np.ndarray,
        channel_axis: int,
        cfg: NeuronConfig,
        spike_counts: bool,
        v_init: float | np.ndarray,
    ) -> tuple[ir.Node, str | None]:
        """Replace the site's nodes by ``[Sub c] -> neuron -> [Mul a] -> [Add y0]`` (the shift,
        scale and offset only where the identified function has them, ``rules.identify``)."""
        op = cfg.op
        fn = site.function
        per_channel = np.asarray(threshold).ndim == 1
        th = self.const(f"{site.name}/threshold", np.asarray(threshold, dtype=np.float32))
        attrs: dict = {"time_steps": self.T, "v_init": float(np.asarray(v_init).ravel()[0])}
        if per_channel:
            attrs["channel_axis"] = int(channel_axis)
        if op == schema.IF_NEURON.name:
            attrs.update(leak=float(cfg.leak), reset=cfg.reset, signed=int(cfg.signed))
            if cfg.signed:
                attrs["signed_eps"] = float(cfg.signed_eps)
        x = site.input
        new_nodes: list[ir.Node] = []
        shape_c = self._param_shape(site, fn)
        if fn is not None and fn.input_shift is not None:
            c = self.const(f"{site.name}/input_shift", np.asarray(fn.input_shift, np.float32).reshape(shape_c))
            sub = make_node(self.namer, "Sub", [x, c], name=f"{site.name}/input_shift")
            sub.outputs[0].dtype, sub.outputs[0].shape = x.dtype or ir.DataType.FLOAT, x.shape
            new_nodes.append(sub)
            x = sub.outputs[0]
        inputs = [x, th]
        v = np.asarray(v_init, np.float64).ravel()
        if v.size > 1 and not np.all(v == v[0]):
            if cfg.kind != "paraif":
                raise ConversionError(
                    f"site '{site.name}': the staircase's offset differs between channels; only ParaIF "
                    "takes a per-channel bias (use --neuron paraif)",
                    site.nodes[-1].name, site.nodes[-1].op_type,
                )
            bias = self.const(f"{site.name}/bias", (v * np.asarray(threshold, np.float64).ravel()).astype(np.float32))
            inputs += [None, bias]
        node = make_node(
            self.namer,
            op,
            inputs,
            attrs,
            domain=schema.DOMAIN,
            num_outputs=2 if spike_counts else 1,
            name=f"{site.name}/{op}",
            output_names=[f"{site.name}/spikes", f"{site.name}/spike_counts"],
        )
        new_nodes.append(node)
        y = node.outputs[0]
        y.dtype, y.shape = ir.DataType.FLOAT, site.output.shape
        scale = np.asarray(fn.scale, np.float64) if fn is not None else np.ones(1)
        if not np.all(scale == 1.0):
            a = self.const(f"{site.name}/output_scale", scale.astype(np.float32).reshape(shape_c))
            mul = make_node(self.namer, "Mul", [y, a], name=f"{site.name}/output_scale")
            mul.outputs[0].dtype, mul.outputs[0].shape = y.dtype, y.shape
            new_nodes.append(mul)
            y = mul.outputs[0]
        if fn is not None and fn.output_offset is not None:
            b = self.const(f"{site.name}/output_offset", np.asarray(fn.output_offset, np.float32).reshape(shape_c))
            add = make_node(self.namer, "Add", [y, b], name=f"{site.name}/output_offset")
            add.outputs[0].dtype, add.outputs[0].shape = y.dtype, y.shape
            new_nodes.append(add)
            y = add.outputs[0]
        for n in new_nodes:
            tag(n, "activation")
        out_name = site.output.name
        last = site.nodes[-1]
        self.graph.insert_after(last, new_nodes)
        self._replace_graph_output(site.output, y)
        ir.convenience.replace_all_uses_with(site.output, y)
        for n in reversed(site.nodes):
            self.graph.remove(n, safe=True)
        y.name = out_name  # keep the ANN's name for the activation
        y.dtype, y.shape = ir.DataType.FLOAT, site.output.shape
        counts = None
        if spike_counts:
            cnt = node.outputs[1]
            cnt.dtype = ir.DataType.INT64
            if site.input.shape is not None:
                cnt.shape = ir.Shape([self.T, *list(site.input.shape)[1:]])
            self.graph.outputs.append(cnt)
            counts = cnt.name
        return node, counts

    @staticmethod
    def _param_shape(site: Site, fn) -> list[int]:
        """Shape that broadcasts a per-channel parameter along the site's channel axis."""
        if fn is None or fn.scale.size == 1 or fn.channel_axis is None:
            return []
        rank = len(site.input.shape) if site.input.shape is not None else fn.channel_axis + 1
        shape = [1] * rank
        shape[fn.channel_axis] = fn.scale.size
        return shape

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
        tag(node, "compensation")
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
                tm = self._temporal(schema.TEMPORAL_MEAN.name, y, f"{name}/running_mean", rule="time_exit")
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
            self.graph.extend([tag(n, "time_exit") for n in nodes])
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
        self.graph.extend([tag(n, "time_exit") for n in (shape, tail, cat)])
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
    return reachable(graph, inputs)
