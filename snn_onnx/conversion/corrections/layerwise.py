"""Corrections of a converted SNN's IF / ParaIF neurons at ReLU / clip sites, applied to the
SNN graph after it is built and, for the calibrated ones, measured layer by layer against the
ANN's activations with ONNX Runtime on the calibration samples.

* :func:`threshold_shift` — Deng & Gu, ICLR 2021, "Optimal conversion of conventional artificial
  neural networks to spiking neural networks": the membrane starts at 0 and every step adds
  ``θ/(2T)`` to the input current (the ``+θ/2`` the QCFS-style rounding needs, spread over T).
* :func:`bias_correction` and :func:`potential_correction` — Li et al., ICML 2021, "A free
  lunch from ANN: towards efficient, accurate spiking neural networks calibration" (§4.2, the
  light pipeline): site by site in graph order, with every earlier site already corrected, the
  mean over T and over the calibration samples of the SNN's activation is compared with the
  ANN's; bias correction subtracts the error's mean per channel from the input current at every
  step, potential correction moves the initial membrane potential of every neuron by ``−T`` times
  its own mean error.

The corrections are plain ONNX nodes in front of the neuron (``Add`` of a constant current;
for the sequential IF neuron's initial potential an ``Add`` on the first step only), tagged
``snn_onnx.rule = correction``; for ParaIF, which sees only the sum of its input over the T
steps, an initial potential ``p`` is the current ``p/T``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...errors import ConversionError
from ...ops import schema

RULE_TAG = "snn_onnx.rule"
_NEURONS = {schema.IF_NEURON.name: "if", schema.PARA_IF_NEURON.name: "paraif"}


@dataclass(frozen=True)
class CorrectionConfig:
    """Post-conversion corrections (``convert(corrections=...)``; CLI ``--bias-correction``,
    ``--potential-correction``, ``--threshold-shift``). ``samples``: calibration samples the
    layer-by-layer corrections are measured on (the first ones of the calibration data),
    run in batches of ``batch_size``."""

    bias: bool = False
    potential: bool = False
    shift: bool = False
    samples: int = 128
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.samples < 1 or self.batch_size < 1:
            raise ConversionError("correction samples and batch size must be >= 1")

    @property
    def active(self) -> bool:
        return self.bias or self.potential or self.shift

    @property
    def measured(self) -> bool:
        return self.bias or self.potential

    def describe(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Target:
    """A neuron the corrections act on and the constants in front of it."""

    site: str
    node: onnx.NodeProto
    neuron: str  # "if" | "paraif"
    value: str  # the site's activation: ANN value name = SNN value name ([T*B, ...] in the SNN)
    theta: np.ndarray
    channel_axis: int  # in the activation's per-sample shape, counting the batch axis
    sample_shape: tuple[int, ...]
    scale: float = 1.0  # output scale after the neuron (activation = scale · spikes)
    current: str | None = None  # initializer: constant current per channel, every step
    neuron_current: str | None = None  # ParaIF: per-neuron current (a potential over T)
    potential: str | None = None  # IF: per-neuron initial potential, added on the first step
    error_before: float | None = None
    extra: dict = field(default_factory=dict)


def apply(ann: onnx.ModelProto, snn: onnx.ModelProto, records: list[Any], inputs: dict[str, np.ndarray],
          config: CorrectionConfig, time_steps: int, explicit_v_init: float | None = None,
          progress: Callable[[int, int], None] | None = None) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The SNN with the corrections of ``config`` at every IF / ParaIF neuron that does not sit
    on a staircase activation (those reproduce the ANN's own quantisation), and what was done."""
    if not config.active:
        return snn, {}
    if config.shift and explicit_v_init not in (None, 0.0):
        raise ConversionError(f"the threshold shift (Deng & Gu) starts the membrane at 0 and adds θ/(2T) per step; "
                              f"it does not combine with v_init={explicit_v_init} (leave v_init unset)")
    model = onnx.ModelProto()
    model.CopyFrom(snn)
    targets = _targets(ann, model, records, inputs)
    for t in targets:
        _insert(model, t, config, time_steps)
    info: dict[str, Any] = {**config.describe(), "sites": [t.site for t in targets]}
    if config.measured:
        _measure(ann, model, targets, inputs, config, time_steps, progress)
        info["mean_abs_error_before"] = {t.site: t.error_before for t in targets}
    return model, info


def threshold_shift(theta: np.ndarray, time_steps: int) -> np.ndarray:
    """Deng & Gu (ICLR 2021): the current ``θ/(2T)`` added at every step (membrane from 0)."""
    return np.asarray(theta, np.float64) / (2.0 * time_steps)


def bias_correction(error: np.ndarray, channel_axis: int) -> np.ndarray:
    """Li et al. (ICML 2021), bias correction: minus the mean error per channel (over the
    samples and every other axis), as a current added at every step. ``error`` is the SNN's
    mean activation minus the ANN's, per neuron ``[*sample_shape]`` (already averaged over
    the samples)."""
    axes = tuple(a for a in range(error.ndim) if a != channel_axis)
    return -error.mean(axis=axes, keepdims=True)


def potential_correction(error: np.ndarray, time_steps: int) -> np.ndarray:
    """Li et al. (ICML 2021), potential correction: each neuron's initial membrane potential
    moves by ``−T`` times its mean error (over the samples), so T steps emit that much less."""
    return -float(time_steps) * error


# --- building ----------------------------------------------------------------------------


def _targets(ann: onnx.ModelProto, snn: onnx.ModelProto, records: list[Any], inputs) -> list[_Target]:
    nodes = {n.name: n for n in snn.graph.node}
    inits = {i.name: i for i in snn.graph.initializer}
    found = [r for r in records if getattr(r, "kind", None) != "staircase" and getattr(r, "op", None) in _NEURONS]
    if not found:
        raise ConversionError(
            "the corrections apply to IF / ParaIF neurons at ReLU or clip activations; this conversion has none "
            "(staircase activations such as QCFS or quantizers are reproduced exactly and are left as they are; "
            "multi-threshold neurons of transformer mode are calibrated by percentile)"
        )
    from ..ann_runner import ann_session

    probe = ann_session(ann, [r.output for r in found])
    shapes = [np.asarray(o).shape[1:] for o in probe.run([r.output for r in found], {k: v[:1] for k, v in inputs.items()})]
    order = {n.name: i for i, n in enumerate(snn.graph.node)}
    out = []
    for r, shape in sorted(zip(found, shapes), key=lambda rs: order.get(rs[0].node, 0)):
        node = nodes.get(r.node)
        if node is None:
            raise ConversionError(f"site '{r.site}': its neuron node '{r.node}' is not in the SNN graph")
        rank = len(shape) + 1
        scale_node = nodes.get(f"{r.site}/output_scale")
        scale = 1.0
        if scale_node is not None and scale_node.input[1] in inits:
            s = numpy_helper.to_array(inits[scale_node.input[1]])
            if s.size != 1:
                raise ConversionError(f"site '{r.site}': a per-channel output scale after the neuron is not corrected "
                                      "by this version", node.name, node.op_type)
            scale = float(s.ravel()[0])
        out.append(_Target(site=r.site, node=node, neuron=_NEURONS[node.op_type], value=r.output,
                           theta=np.asarray(r.threshold, np.float64), channel_axis=(rank - 1 if rank == 3 else 1),
                           sample_shape=tuple(int(d) for d in shape), scale=scale))
    return out


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _set_attr(node: onnx.NodeProto, name: str, value) -> None:
    for a in node.attribute:
        if a.name == name:
            node.attribute.remove(a)
            break
    node.attribute.append(helper.make_attribute(name, value))


def _channel_shape(t: _Target) -> list[int]:
    shape = [1] * (len(t.sample_shape) + 1)
    shape[t.channel_axis] = t.sample_shape[t.channel_axis - 1]
    return shape


def _insert(model: onnx.ModelProto, t: _Target, config: CorrectionConfig, time_steps: int) -> None:
    """Constants and Add nodes in front of the neuron (initial values: the shift, zeros)."""
    g = model.graph
    idx = list(g.node).index(t.node)
    x = t.node.input[0]
    new: list[onnx.NodeProto] = []
    base = f"{t.site}/correction"

    def const(name: str, array: np.ndarray) -> str:
        g.initializer.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    def add(a: str, b: str, label: str) -> str:
        out = f"{base}/{label}"
        new.append(_tagged(helper.make_node("Add", [a, b], [out], name=out)))
        return out

    if config.shift or config.bias:
        c = np.zeros(_channel_shape(t), np.float32)
        if config.shift:
            th = t.theta.reshape(-1)
            c = c + (threshold_shift(th, time_steps).reshape(c.shape) if th.size > 1 else threshold_shift(th[0], time_steps))
            _set_attr(t.node, "v_init", 0.0)
        t.current = const(f"{base}/current", c)
        x = add(x, t.current, "add_current")
    if config.potential:
        per_neuron = np.zeros([1, *t.sample_shape], np.float32)
        if t.neuron == "paraif":
            t.neuron_current = const(f"{base}/neuron_current", per_neuron)
            x = add(x, t.neuron_current, "add_neuron_current")
        else:
            t.potential = const(f"{base}/potential", per_neuron)
            x = _first_step_add(g, new, x, t, base, time_steps)
    for k, n in enumerate(new):
        g.node.insert(idx + k, n)
    t.node.input[0] = x


def _first_step_add(g, new: list, x: str, t: _Target, base: str, T: int) -> str:
    """``x + p`` on the first of the T steps only: ``x`` viewed as ``[T, B, ...]`` plus ``p``
    padded with T − 1 zero steps. A neuron fed a time-invariant input (``static_input = 1``)
    gets it repeated first, since its steps now differ."""
    if _attr(t.node, "static_input", 0):
        reps = f"{base}/repeat_T"
        g.initializer.append(numpy_helper.from_array(np.array([T] + [1] * len(t.sample_shape), np.int64), reps))
        out = f"{base}/repeated"
        new.append(_tagged(helper.make_node("Tile", [x, reps], [out], name=out)))
        x = out
        _set_attr(t.node, "static_input", 0)
    rank = len(t.sample_shape) + 1
    shape = f"{base}/shape"
    new.append(_tagged(helper.make_node("Shape", [x], [shape], name=shape)))
    tail = f"{base}/shape_tail"
    g.initializer.extend([numpy_helper.from_array(np.array([1], np.int64), f"{base}/one"),
                          numpy_helper.from_array(np.array([np.iinfo(np.int64).max], np.int64), f"{base}/end"),
                          numpy_helper.from_array(np.array([T, -1], np.int64), f"{base}/time_batch"),
                          numpy_helper.from_array(np.array([0] * (rank + 1) + [T - 1] + [0] * rank, np.int64), f"{base}/pads"),
                          numpy_helper.from_array(np.array([0], np.int64), f"{base}/axis0")])
    new.append(_tagged(helper.make_node("Slice", [shape, f"{base}/one", f"{base}/end"], [tail], name=tail)))
    split = f"{base}/split_shape"
    new.append(_tagged(helper.make_node("Concat", [f"{base}/time_batch", tail], [split], axis=0, name=split)))
    steps = f"{base}/steps"
    new.append(_tagged(helper.make_node("Reshape", [x, split], [steps], name=steps)))
    p5 = f"{base}/potential_step"
    new.append(_tagged(helper.make_node("Unsqueeze", [t.potential, f"{base}/axis0"], [p5], name=p5)))
    padded = f"{base}/potential_first_step"
    new.append(_tagged(helper.make_node("Pad", [p5, f"{base}/pads"], [padded], name=padded)))
    summed = f"{base}/add_potential"
    new.append(_tagged(helper.make_node("Add", [steps, padded], [summed], name=summed)))
    back = f"{base}/merged"
    new.append(_tagged(helper.make_node("Reshape", [summed, shape], [back], name=back)))
    return back


def _tagged(node: onnx.NodeProto) -> onnx.NodeProto:
    node.metadata_props.add(key=RULE_TAG, value="correction")
    return node


# --- measuring ---------------------------------------------------------------------------


def _batches(inputs: dict[str, np.ndarray], n: int, bs: int):
    for s in range(0, n, bs):
        yield {k: v[s : s + bs] for k, v in inputs.items()}


def _measure(ann, model, targets: list[_Target], inputs, config: CorrectionConfig, T: int, progress) -> None:
    """Site by site in graph order: the SNN's mean activation (over T and the samples) against
    the ANN's, then the corrections of that site, before the next site is measured."""
    from ...runtime.session import make_session
    from ..ann_runner import ann_session, with_outputs

    n = min(len(next(iter(inputs.values()))), config.samples)
    ann_sess = ann_session(ann, [t.value for t in targets])
    ann_mean = [np.zeros(t.sample_shape, np.float64) for t in targets]
    for feed in _batches(inputs, n, config.batch_size):
        outs = ann_sess.run([t.value for t in targets], feed)
        for m, o in zip(ann_mean, outs):
            m += np.asarray(o, np.float64).sum(axis=0)
    ann_mean = [m / n for m in ann_mean]

    names = [nm for t in targets for nm in (t.current, t.neuron_current, t.potential) if nm is not None]
    values = {i.name: numpy_helper.to_array(i).copy() for i in model.graph.initializer if i.name in names}
    cal = _with_inputs(model, names)
    for k, (t, a_mean) in enumerate(zip(targets, ann_mean)):
        sess = make_session(_upstream(with_outputs(cal, [t.value]), [t.value]))
        feed_names = {i.name for i in sess.get_inputs()}
        s_mean = np.zeros(t.sample_shape, np.float64)
        for feed in _batches(inputs, n, config.batch_size):
            feed = {k: v for k, v in {**feed, **{nm: values[nm] for nm in names}}.items() if k in feed_names}
            (y,) = sess.run([t.value], feed)
            y = np.asarray(y, np.float64)
            s_mean += y.reshape((T, -1) + y.shape[1:]).mean(axis=0).sum(axis=0)
        err = (s_mean / n - a_mean) / t.scale  # in the neuron's input units
        t.error_before = float(np.abs(err).mean())
        rest = err
        if config.bias:
            c = bias_correction(err, t.channel_axis - 1)
            values[t.current] = (values[t.current] + c.reshape(values[t.current].shape)).astype(np.float32)
            rest = err + c  # what a per-channel current leaves
        if config.potential:
            p = potential_correction(rest, T)[None]
            if t.neuron == "paraif":
                values[t.neuron_current] = (values[t.neuron_current] + p / T).astype(np.float32)
            else:
                values[t.potential] = (values[t.potential] + p).astype(np.float32)
        if progress is not None:
            progress(k + 1, len(targets))
    for init in model.graph.initializer:
        if init.name in values:
            init.CopyFrom(numpy_helper.from_array(values[init.name].astype(np.float32), init.name))


def _upstream(model: onnx.ModelProto, outputs: list[str]) -> onnx.ModelProto:
    """The model cut down to the nodes ``outputs`` depend on (measuring one site runs only the
    layers before it), with only those outputs and the inputs they need."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    need, keep = set(outputs), []
    for node in reversed(list(g.node)):
        if need.intersection(node.output):
            keep.append(node)
            need.update(v for v in node.input if v)
            for a in node.attribute:  # subgraphs (If / Loop / Scan) read outer values
                for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    need.update(v for n in sub.node for v in n.input if v)
    del g.node[:]
    g.node.extend(reversed(keep))
    kept_out = [o for o in g.output if o.name in outputs]
    del g.output[:]
    g.output.extend(kept_out)
    kept_in = [i for i in g.input if i.name in need]
    del g.input[:]
    g.input.extend(kept_in)
    inits = [i for i in g.initializer if i.name in need]
    del g.initializer[:]
    g.initializer.extend(inits)
    return m


def _with_inputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy in which the initializers ``names`` are graph inputs (fed at every run)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep, moved = [], []
    for init in m.graph.initializer:
        (moved if init.name in names else keep).append(init)
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    for init in moved:
        m.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    return m
