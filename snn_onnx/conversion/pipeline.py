"""``convert``: ANN (.onnx, ModelProto, torch module, timm name) -> spiking ONNX model.

The stages, each in its own module:

    load        export.resolve_model           any model -> ONNX ModelProto
    clean       cleanup.clean                  opset, constants, quantized weights, shapes
    rules       rules.ActivationRule / modes   where the neurons go (activations by behaviour,
                transformer.select_sites       or multi-threshold neurons on weight-layer inputs)
    calibrate   calibrate.collect              thresholds the ANN does not carry
    rewrite     rewrite.SnnBuilder             neurons in place
    compensate  compensation.compensate        non-linear blocks and products over time
    place time  SnnBuilder.time_entry/_exit,   repeat static inputs, average outputs, run the
                optimize.hoist_time_entry      time-invariant prefix once
    validate    validate.check                 checker, parity, the exactness gate
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import onnx
import onnx_ir as ir

from .. import metadata as md
from ..errors import CalibrationError, ConversionError, DataError, OutputExistsError
from ..version import __version__
from . import analysis, calibrate, cleanup, compensation, optimize, transformer, validate
from .calibrate import CalibrationConfig, SiteRequest
from .corrections import CorrectionConfig, apply as apply_corrections, site_thresholds
from .rewrite import NeuronConfig, NeuronRecord, SnnBuilder, batch_carrying
from .rules import ActivationRule, Site, Trace
from .transformer import MultiThresholdConfig

Inputs = dict[str, np.ndarray]


class ConversionWarning(UserWarning):
    """Something the user should know about a conversion that still went through."""


@dataclass
class ConversionResult:
    model: onnx.ModelProto
    path: Path | None
    time_steps: int
    neuron: str
    sites: list[Any]  # NeuronRecord (cnn mode) or transformer.MTRecord
    compensated: list[str]
    parity: dict[str, Any]
    calibration: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    optimizations: dict[str, Any] = field(default_factory=dict)
    mode: str = "cnn"
    blocks: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    explain: list[str] = field(default_factory=list)  # rules' near misses (--explain)
    cleanup: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [
            f"SNN ({self.mode} mode): T={self.time_steps}, neuron={self.neuron}, {len(self.sites)} spiking layers, "
            f"{len(self.blocks)} compensated blocks, {len(self.compensated)} other compensated ops",
        ]
        lines += validate.format_parity(self.parity)
        lines += [f"warning: {w}" for w in self.warnings]
        if self.path is not None:
            lines.append(f"wrote {self.path}")
        return "\n".join(lines)


def check_output_path(output: str | Path | None, force: bool) -> Path | None:
    if output is None:
        return None
    out = Path(output)
    if out.exists() and out.is_dir():
        raise OutputExistsError(f"output path is a directory: {out}")
    if out.exists() and not force:
        raise OutputExistsError(f"output file exists: {out} (pass force=True / --force to overwrite)")
    if not out.parent.exists():
        raise OutputExistsError(f"output directory does not exist: {out.parent}")
    if not os.access(out.parent, os.W_OK):
        raise OutputExistsError(f"output directory is not writable: {out.parent}")
    return out


def save_atomic(model: onnx.ModelProto, out: Path) -> None:
    """Write to a temporary file beside ``out`` and rename, so a failure never leaves a
    half-written model in place of the user's file. Models over 2 GB keep their weights in an
    external data file beside the model (``<name>.data``)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        if model.ByteSize() > _PROTO_LIMIT:
            onnx.save(model, tmp, save_as_external_data=True, all_tensors_to_one_file=True,
                      location=f"{out.name}.data", size_threshold=1024)
        else:
            onnx.save(model, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_PROTO_LIMIT = (1 << 31) - (1 << 26)  # protobuf's 2 GB limit, with room for the graph


def as_inputs(data: Any, ann: onnx.ModelProto) -> Inputs | None:
    """Normalise calibration data to ``{input name: array}``. Sentences (a list of str) are
    tokenised for a model exported from a Hugging Face folder; a mapping (an ``.npz``, a dict)
    is taken by input name, and ``x`` names the input of a single-input model."""
    if data is None:
        return None
    if isinstance(data, (list, tuple)) and data and all(isinstance(s, str) for s in data):
        return _text_inputs(ann, data)
    names = graph_input_names(ann)
    inputs = getattr(data, "inputs", None)  # a snn_onnx.data Dataset of a multi-input model
    if inputs is not None:
        data = inputs
    if isinstance(data, Mapping) or hasattr(data, "files"):
        keys = list(data.files) if hasattr(data, "files") else list(data)
        if len(names) == 1 and names[0] not in keys and "x" in keys:
            return {names[0]: np.asarray(data["x"])}
        missing = [n for n in names if n not in keys]
        if missing:
            raise DataError(
                f"data has no array for model input(s) {missing}; it has {sorted(keys)} "
                "(name the arrays after the model's inputs; 'x' is accepted for a single input)"
            )
        out = {n: np.asarray(data[n]) for n in names}
        sizes = {n: len(v) for n, v in out.items()}
        if len(set(sizes.values())) > 1:
            raise DataError(f"the input arrays hold different numbers of samples: {sizes}")
        return out
    x = getattr(data, "x", data)
    if len(names) != 1:
        raise DataError(f"the model has {len(names)} inputs {names}; pass data as a dict by input name")
    return {names[0]: np.asarray(x)}


def _text_inputs(ann: onnx.ModelProto, sentences) -> Inputs:
    folder = next((p.value for p in ann.metadata_props if p.key == "snn_onnx.hf.folder"), None)
    if folder is None:
        raise DataError("sentences as calibration data need a model exported from a Hugging Face folder")
    from ..data.text import tokenize

    return tokenize(folder, sentences, input_names=graph_input_names(ann))


def graph_input_names(model: onnx.ModelProto) -> list[str]:
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def random_inputs(ann: onnx.ModelProto, n: int, seed: int = 0) -> Inputs:
    """Seeded standard-normal inputs for structural checks when no data is given."""
    rng = np.random.default_rng(seed)
    out: Inputs = {}
    inits = {i.name for i in ann.graph.initializer}
    for inp in ann.graph.input:
        if inp.name in inits:
            continue
        t = inp.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        if any(d is None or d <= 0 for d in dims[1:]):
            raise DataError(
                f"input '{inp.name}' has symbolic dimensions {dims}; give calibration data"
            )
        batch = dims[0] if dims and dims[0] is not None and dims[0] > 0 else n
        shape = [batch] + dims[1:]
        if t.elem_type != onnx.TensorProto.FLOAT:
            raise DataError(f"input '{inp.name}' is not float; give calibration data")
        out[inp.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def convert(
    model: str | Path | onnx.ModelProto | Any,
    *,
    time_steps: int = 8,
    neuron: str | NeuronConfig = "paraif",
    data: Any = None,
    calibration: CalibrationConfig | None = None,
    output: str | Path | None = None,
    force: bool = False,
    spike_counts: bool = True,
    per_step: bool = True,
    parity_samples: int = 64,
    input_shape: tuple[int, ...] | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    source_name: str | None = None,
    event_inputs: tuple[str, ...] = (),
    optimize_graph: bool = True,
    mode: str = "auto",
    multi_threshold: MultiThresholdConfig | None = None,
    fused: bool = False,
    parity_gate: bool = True,
    data_source: str | None = None,
    provenance: dict[str, Any] | None = None,
    corrections: CorrectionConfig | None = None,
) -> ConversionResult:
    """Convert an ANN to a spiking ONNX model.

    ``model``: path to an .onnx file, an ``onnx.ModelProto``, a torch ``nn.Module`` (needs
    ``input_shape`` without the batch axis), a timm model name or a ``module:factory`` path.
    ``data``: calibration samples (array, dict / ``.npz`` by input name, or a ``snn_onnx.data``
    dataset); None uses seeded random inputs (fine for QCFS / clip / quantized models, whose
    thresholds are known; ``data_source`` names where given data came from, for the metadata).
    ``event_inputs``: names of inputs that already carry one frame per step (DVS events):
    the SNN takes them as ``[T*B, ...]`` (time-major) instead of repeating a static input.
    Calibration and the parity check then feed the ANN each frame as a sample and the SNN
    the same frame repeated over time.
    ``optimize_graph``: run the time-invariant layers before the first neuron once instead of
    T times (``optimize.hoist_time_entry``; same outputs and spikes, less work).
    ``mode``: "cnn" (ReLU / clip / staircase activations become IF or ParaIF neurons),
    "transformer" (multi-threshold neurons on the activation inputs of every Linear / MatMul /
    Conv, configured by ``multi_threshold``; docs/transformers.md) or "auto" (transformer for
    graphs with attention or LayerNorm and no staircase activation, and for graphs with no
    activation a CNN-mode neuron can take). ``fused``: compensate blocks with a fused kernel
    (``CompensatedElementwise``) where it is faster (conversion/fused.py).
    ``parity_gate``: when every neuron is ParaIF on a staircase with L levels and T = L, the
    SNN must reproduce the ANN on the calibration samples (float ties at a step boundary
    excepted) or the conversion fails and nothing is written; False writes it anyway.
    ``provenance``: where the weights came from (e.g. ``{"weights": "random-init"}``), recorded.
    ``corrections``: post-conversion corrections of IF / ParaIF neurons at ReLU / clip sites
    (threshold shift, bias and potential correction; ``conversion/corrections``, docs/fidelity.md).
    """
    t0 = time.perf_counter()
    if not isinstance(time_steps, (int, np.integer)) or time_steps < 1:
        raise ConversionError(f"time steps T must be an integer >= 1, got {time_steps!r}")
    out = check_output_path(output, force)
    cfg = NeuronConfig(kind=neuron) if isinstance(neuron, str) else neuron
    calibration = calibration or CalibrationConfig()
    mt_cfg = multi_threshold or MultiThresholdConfig()
    progress = _Progress(on_progress)
    from ..export import resolve_model  # lazy: torch only when needed

    progress("load", 0, 1)
    ann = cleanup.dynamic_batch(resolve_model(model, input_shape=input_shape))
    source_name = source_name or (str(model) if isinstance(model, (str, Path)) else type(model).__name__)
    timings = {"load": time.perf_counter() - t0}
    progress("load", 1, 1)

    # clean
    t = time.perf_counter()
    progress("clean", 0, 1)
    clean = cleanup.clean(ann)
    ir_model, fixed_batch = clean.model, clean.fixed_batch
    graph = ir_model.graph
    analysis.refuse_converted(graph)
    clean_proto = ir.to_proto(ir_model)
    progress("clean", 1, 1)

    # rules: where the neurons go
    progress("analyse", 0, 1)
    trace = Trace()
    cnn_sites = ActivationRule(dict(ir_model.opset_imports), trace).match(graph)
    chosen = transformer.choose_mode(
        graph, mode, n_neuron_sites=len(cnn_sites), has_staircase=any(s.kind == "staircase" for s in cnn_sites)
    )
    warn: list[str] = list(clean.warnings)
    weights = next((p.value for p in ann.metadata_props if p.key == "snn_onnx.weights"), None)
    provenance = {**({"weights": weights} if weights else {}), **(provenance or {})}
    if str(provenance.get("weights", "")).startswith("random-init"):
        warn.append(f"the network's weights are {provenance['weights']}: parity checks structure only, accuracy "
                    "means nothing (give --checkpoint / pretrained weights)")
    if chosen == "cnn":
        if not cnn_sites:
            raise ConversionError(
                "the model has no ReLU, clip(0, λ) or staircase activation after a weight layer to turn into "
                "IF / ParaIF neurons; --mode transformer (or auto) puts multi-threshold neurons on the inputs "
                "of its weight layers instead"
            )
        sites: list[Any] = cnn_sites
        _check_neuron_fits(cfg, cnn_sites)
    else:
        sites = transformer.select_sites(graph, mt_cfg.sites)
    timings["analyse"] = time.perf_counter() - t
    progress("analyse", 1, 1)

    # calibration data
    if data is None and any(p.key == "snn_onnx.hf.folder" for p in ann.metadata_props):
        from ..data.text import CALIBRATION

        data = list(CALIBRATION)  # a text encoder: the bundled calibration sentences
        data_source = data_source or "bundled sentences"
    inputs = as_inputs(data, ann)
    data_source = "random" if inputs is None else (data_source or "given")
    n_needed = max(calibration.num_samples, parity_samples)
    if inputs is None:
        inputs = random_inputs(ann, min(n_needed, 64), seed=calibration.seed)
    n_avail = len(next(iter(inputs.values())))
    if n_avail == 0:
        raise DataError("calibration data is empty")
    validate.check_finite_inputs(inputs)

    # calibrate: thresholds the ANN does not carry
    t = time.perf_counter()
    bs = fixed_batch or calibration.batch_size
    cal_cfg = calibration if bs == calibration.batch_size else _with_batch(calibration, bs)
    n_cal = min(n_avail, cal_cfg.num_samples)
    cal_progress = lambda k: progress.step("calibrate", k, n_cal)  # noqa: E731
    corrections = corrections or CorrectionConfig()
    if chosen == "transformer":
        _refuse_cnn_calibration(calibration, corrections)
        stats = transformer.calibrate_sites(clean_proto, sites, inputs, cal_cfg, mt_cfg, cal_progress)
        need = sites
    else:
        need = [s for s in sites if s.threshold is None]
        requests = [SiteRequest(s.name, s.input.name, _channel_axis(s)) for s in need]
        stats = site_thresholds(clean_proto, need, requests, inputs, cal_cfg, time_steps, cfg.v_init, cal_progress)
    timings["calibrate"] = time.perf_counter() - t

    # rewrite, compensate, place time
    t = time.perf_counter()
    progress("rewrite", 0, 3)
    builder = SnnBuilder(ir_model, time_steps)
    if chosen == "transformer":
        records: list[Any] = transformer.place_neurons(builder, sites, stats, mt_cfg, spike_counts)
    else:
        records = [_place_cnn_neuron(builder, s, stats, cfg, calibration, spike_counts) for s in sites]
    progress("rewrite", 1, 3)
    plan, comp_info = compensation.compensate(builder, fused=fused)
    progress("rewrite", 2, 3)
    data_inputs = [v for v in graph.inputs if v.name not in graph.initializers]
    unknown = sorted(set(event_inputs) - {v.name for v in data_inputs})
    if unknown:
        raise ConversionError(f"event input(s) {unknown} are not inputs of the model ({[v.name for v in data_inputs]})")
    static = [v for v in data_inputs if v.name not in event_inputs]
    carrying = batch_carrying(graph, data_inputs)
    builder.fix_reshapes(carrying, fixed_batch)
    builder.time_entry(static)
    per_step_names = builder.time_exit(per_step)
    for v in data_inputs:
        if v.shape is not None and len(v.shape):
            if v.name in event_inputs:
                v.shape = ir.Shape(["time_x_batch", *list(v.shape)[1:]])
            elif fixed_batch is not None:
                v.shape = ir.Shape(["batch", *list(v.shape)[1:]])
    ir.passes.common.RemoveUnusedNodesPass()(ir_model)  # e.g. constants of replaced activation chains
    optimizations = optimize.hoist_time_entry(ir_model, time_steps).describe() if optimize_graph else {}
    optimize.remove_unused_initializers(ir_model)
    graph.sort()
    snn = ir.to_proto(ir_model)
    del snn.graph.value_info[:]  # shapes inferred for the ANN batch; ORT re-infers for T*B
    timings["rewrite"] = time.perf_counter() - t
    progress("rewrite", 3, 3)

    # post-conversion corrections (conversion/corrections): measured against the ANN layer by layer
    corr_info: dict[str, Any] = {}
    if corrections.active:
        t = time.perf_counter()
        if event_inputs:
            raise ConversionError("the post-conversion corrections need static inputs; this model has event inputs "
                                  f"{list(event_inputs)}")
        snn, corr_info = apply_corrections(clean_proto, snn, records, inputs, corrections, time_steps,
                                           explicit_v_init=cfg.v_init,
                                           progress=lambda k, n: progress("correct", k, n))
        timings["correct"] = time.perf_counter() - t

    # validate
    t = time.perf_counter()
    progress("validate", 0, 1)
    validate.check_graph(snn)
    n_par = min(parity_samples, n_avail)
    parity_inputs = {k: v[:n_par] for k, v in inputs.items()}
    parity_bs = bs if fixed_batch else 16
    parity = validate.parity(ann, snn, parity_inputs, batch_size=parity_bs,
                             event_inputs=event_inputs, time_steps=time_steps)
    parity["samples"] = n_par
    parity["data"] = data_source
    exact = _exact_time_steps(chosen, cfg, records)
    if exact is not None and exact != time_steps:
        warn.append(exact_t_message(exact, time_steps))
    md.write(snn, {md.TIME_STEPS: time_steps, md.SITES: [_record_dict(r) for r in records]})
    if exact == time_steps and not event_inputs:
        gate = validate.exactness(ann, snn, parity_inputs, batch_size=parity_bs)
        parity["exactness"] = gate.summary()
        if parity_gate and not gate.passed:
            raise ConversionError(gate.failure_message() + "; nothing was written (parity_gate=False / "
                                  "--no-parity-gate writes it anyway)")
        if not gate.passed:
            warn.append(gate.failure_message())
    bad = validate.non_finite_outputs(parity)
    if bad:
        raise ConversionError(
            f"the SNN gives NaN or Inf in output(s) {bad} on the calibration samples where the ANN gives finite "
            "values; nothing was written"
        )
    timings["validate"] = time.perf_counter() - t
    progress("validate", 1, 1)

    cal_meta = {
        **calibration.describe(),
        **({"multi_threshold": mt_cfg.describe()} if chosen == "transformer" else {}),
        "data": data_source,
        "num_samples": n_cal,
        "sites_calibrated": len(need),
        "sites_from_ann": len(sites) - len(need) if chosen == "cnn" else 0,
        **({"corrections": corr_info} if corr_info else {}),
    }
    block_meta = transformer.block_summary(plan)
    compensated = [n.name for n in plan.compensated]
    for w in warn:
        warnings.warn(w, ConversionWarning, stacklevel=2)
    md.write(
        snn,
        {
            md.VERSION: __version__,
            md.TIME_STEPS: time_steps,
            md.NEURON: cfg.describe() if chosen == "cnn" else mt_cfg.describe(),
            md.MODE: chosen,
            md.BLOCKS: {"blocks": block_meta, **comp_info},
            md.CALIBRATION: cal_meta,
            md.PARITY: parity,
            md.SITES: [_record_dict(r) for r in records],
            md.COMPENSATED: compensated,
            md.INPUTS: {v.name: ("event" if v.name in event_inputs else "static") for v in data_inputs},
            md.OUTPUTS: per_step_names,
            md.SOURCE: source_name,
            md.CLEANUP: clean.describe(),
            md.PROVENANCE: {"calibration_data": data_source, **provenance},
            **({md.EXACT_TIME_STEPS: exact} if exact is not None else {}),
        },
    )
    if out is not None:
        save_atomic(snn, out)
    timings["total"] = time.perf_counter() - t0
    return ConversionResult(
        model=snn, path=out, time_steps=time_steps, neuron=cfg.kind if chosen == "cnn" else "multi_threshold",
        sites=records, compensated=compensated, parity=parity, calibration=cal_meta,
        seconds=timings, mode=chosen, blocks=block_meta, optimizations=optimizations, warnings=warn,
        explain=trace.lines(), cleanup=clean.describe(),
    )


class _Progress:
    """``on_progress(phase, n, total)`` for every stage (n counts up to total within a phase)."""

    def __init__(self, fn: Callable[[str, int, int], None] | None):
        self.fn = fn
        self._done: dict[str, int] = {}

    def __call__(self, phase: str, n: int, total: int) -> None:
        if self.fn is not None:
            self.fn(phase, n, total)

    def step(self, phase: str, k: int, total: int) -> None:
        """Advance ``phase`` by k (calibration batches)."""
        self._done[phase] = self._done.get(phase, 0) + k
        self(phase, self._done[phase], total)


def _refuse_cnn_calibration(calibration: CalibrationConfig, corrections: CorrectionConfig) -> None:
    """Threshold methods and corrections of IF / ParaIF neurons do not apply to transformer mode."""
    if calibration.method in ("mse", "ltb"):
        raise ConversionError(f"calibration method '{calibration.method}' sets IF / ParaIF thresholds (cnn mode); "
                              "multi-threshold neurons (transformer mode) are calibrated by percentile "
                              "(MultiThresholdConfig / --mt-percentile)")
    if corrections.active:
        raise ConversionError("the bias / potential corrections and the threshold shift apply to IF / ParaIF "
                              "neurons (cnn mode), not to the multi-threshold neurons of transformer mode")


def _check_neuron_fits(cfg: NeuronConfig, sites: list[Site]) -> None:
    for s in sites:
        fn = s.function
        if fn is None or fn.v_init is None:
            continue
        v = np.asarray(fn.v_init).ravel()
        if cfg.kind != "paraif" and not np.all(v == v[0]):
            node = s.nodes[-1]
            raise ConversionError(
                f"site '{s.name}': the staircase's offset differs between channels; only ParaIF takes a "
                "per-channel bias (use neuron='paraif' / --neuron paraif)",
                node.name, node.op_type,
            )


def _place_cnn_neuron(builder: SnnBuilder, site: Site, stats, cfg: NeuronConfig, calibration: CalibrationConfig,
                      spike_counts: bool) -> NeuronRecord:
    dead: list[int] = []
    if site.threshold is not None:
        th, axis, src = site.threshold, site.channel_axis, site.kind
    else:
        th, dead = stats[site.name]
        axis, src = _channel_axis(site), f"calibration:{calibration.method}"
    th = np.asarray(th, dtype=np.float32)
    if not np.all(np.isfinite(th)) or np.any(th <= 0):
        raise CalibrationError(f"site '{site.name}': threshold must be finite and > 0, got {th.ravel()[:4]}")
    fn = site.function
    if fn is not None and fn.v_init is not None:
        v_init = fn.v_init
        if cfg.v_init is not None and not np.allclose(fn.v_init, cfg.v_init, atol=1e-6):
            node = site.nodes[-1]
            raise ConversionError(
                f"v_init={cfg.v_init} does not apply to the staircase activation '{site.name}': its own offset "
                f"fixes the neuron's initial membrane at v_init={_floats(fn.v_init)[0]:g} (leave v_init unset)",
                node.name, node.op_type,
            )
    else:
        v_init = 0.5 if cfg.v_init is None else cfg.v_init
    node, counts = builder.add_neuron(site, th, axis, cfg, spike_counts, v_init)
    extra: dict[str, Any] = {"recognised_as": site.recognised(), "nodes": [n.name for n in site.nodes]}
    if fn is not None and fn.family == "staircase":
        extra["staircase"] = {
            "levels": fn.levels,
            "step_in": _floats(fn.step_in),
            "step_out": _floats(fn.step_out),
            "first_jump": _floats(fn.first_jump),
            "v_init": _floats(fn.v_init),
            "input_shift": _floats(fn.input_shift) if fn.input_shift is not None else None,
            "output_offset": _floats(fn.output_offset) if fn.output_offset is not None else None,
            "channel_axis": fn.channel_axis,
        }
    return NeuronRecord(
        site=site.name, kind=site.kind, op=node.op_type, node=node.name, input=site.input.name,
        output=site.output.name, counts=counts, threshold=[float(v) for v in th.ravel()],
        channel_axis=axis if th.ndim == 1 else None, threshold_source=src, dead_channels=len(dead),
        levels=site.levels, extra=extra,
    )


def _floats(a) -> list[float]:
    return [float(v) for v in np.asarray(a, np.float64).ravel()]


def _record_dict(r: Any) -> dict[str, Any]:
    d = dict(r.__dict__)
    extra = d.pop("extra", None) or {}
    d.update(extra)
    return d


def _exact_time_steps(chosen: str, cfg: NeuronConfig, records: list[Any]) -> int | None:
    """T at which the SNN must reproduce the ANN: every neuron ParaIF on a staircase with the
    same number of levels L (then T = L); None when no T is exact."""
    if chosen != "cnn" or cfg.kind != "paraif" or not records:
        return None
    if any(r.kind != "staircase" for r in records):
        return None
    levels = {r.levels for r in records}
    return levels.pop() if len(levels) == 1 else -1


def exact_t_message(exact: int, time_steps: int) -> str:
    if exact == -1:
        return ("the staircase activations have different numbers of levels, so no T makes ParaIF reproduce the "
                "ANN exactly")
    return (f"ParaIF reproduces this network's staircase activations exactly only at T = L = {exact}; "
            f"T = {time_steps} approximates them")


def _channel_axis(site) -> int:
    rank = len(site.input.shape) if site.input.shape is not None else 4
    return -1 if rank == 3 else 1


def _with_batch(cfg: CalibrationConfig, bs: int) -> CalibrationConfig:
    from dataclasses import replace

    return replace(cfg, batch_size=bs)
