"""``convert``: ANN (.onnx, ModelProto, torch module, timm name) -> spiking ONNX model.

The stages, each in its own module:

    load        api.convert, export            any model -> ONNX ModelProto (the caller resolves
                                               models and tokenises text)
    clean       cleanup.clean                  opset, constants, quantized weights, shapes
    rules       rules.ActivationRule / modes   where the neurons go (activations by behaviour,
                transformer.select_sites       or multi-threshold neurons on weight-layer inputs)
    calibrate   calibrate.collect              thresholds the ANN does not carry
    rewrite     rewrite.SnnBuilder             neurons in place
    compensate  compensation.compensate        non-linear blocks and products over time
    place time  SnnBuilder.time_exit,          average outputs; repeat static inputs where they
                optimize.place_entry           leave the time-invariant prefix (run once)
    validate    validate.check                 checker, parity, the exactness gate
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import onnx
import onnx_ir as ir

from .. import files, metadata as md
from ..errors import ConversionError, DataError
from ..runtime import inputs as feed_checks, memory
from ..ops.schema import MAX_TIME_STEPS as MAX_T
from ..version import __version__
from . import analysis, cleanup, compensation, modes, optimize, transformer, validate
from .calibrate import CalibrationConfig
from .corrections import CorrectionConfig, apply as apply_corrections, refuse_for_multi_threshold
from .rewrite import NeuronConfig, SnnBuilder, batch_carrying
from .rules import ActivationRule, Trace
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
    """``snn_onnx.files.check_output_path`` (None passes)."""
    return None if output is None else files.check_output_path(output, force)


def save_atomic(model: onnx.ModelProto, out: Path) -> None:
    """Write through a temporary file beside ``out`` (``snn_onnx.files``), so a failure never
    leaves a half-written model in place of the user's file. Models over 2 GB keep their weights
    in an external data file beside the model (``<name>.data``)."""
    with files.atomic_path(out) as tmp:
        if model.ByteSize() > _PROTO_LIMIT:
            onnx.save(model, tmp, save_as_external_data=True, all_tensors_to_one_file=True,
                      location=f"{Path(out).name}.data", size_threshold=1024)
        else:
            onnx.save(model, tmp)


_PROTO_LIMIT = (1 << 31) - (1 << 26)  # protobuf's 2 GB limit, with room for the graph


def as_inputs(data: Any, ann: onnx.ModelProto) -> Inputs | None:
    """Normalise calibration data to ``{input name: array}``. Sentences (a list of str) are
    tokenised for a model exported from a Hugging Face folder; a mapping (an ``.npz``, a dict)
    is taken by input name, and ``x`` names the input of a single-input model."""
    if data is None:
        return None
    if isinstance(data, (list, tuple)) and data and all(isinstance(s, str) for s in data):
        raise DataError("sentences must be tokenised first (snn_onnx.convert does it for a Hugging Face folder; "
                        "or snn_onnx.data.text.tokenize)")
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
    allow_compensation: bool = False,
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
    T times (``optimize.place_entry``; same outputs and spikes, less work).
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
    ``neuron="signgd"`` (or a ``signgd_mode.SignGDConfig``): every non-linearity with a SignGD
    form becomes SignGD neurons (docs/signgd.md); the others are refused by name unless
    ``allow_compensation`` (SignGD only) computes them on decoded values.
    ``corrections``: post-conversion corrections of IF / ParaIF neurons at ReLU / clip sites
    (threshold shift, bias and potential correction; ``conversion/corrections``, docs/fidelity.md).
    """
    t0 = time.perf_counter()
    if isinstance(time_steps, bool) or not isinstance(time_steps, (int, np.integer)) or not 1 <= time_steps <= MAX_T:
        raise ConversionError(f"time steps T must be an integer in [1, {MAX_T}], got {time_steps!r}")
    out = check_output_path(output, force)
    from . import signgd_mode

    if signgd_mode.wants_signgd(neuron):
        return signgd_mode.convert_from_pipeline(**{k: v for k, v in locals().items() if k not in ("t0", "signgd_mode")})
    if allow_compensation:
        raise ConversionError("allow_compensation applies to neuron='signgd' only; the other modes compensate every "
                              "non-linearity without a spiking form anyway")
    cfg = NeuronConfig(kind=neuron) if isinstance(neuron, str) else neuron
    calibration = calibration or CalibrationConfig()
    progress = _Progress(on_progress)
    timer = _Timer(progress)
    ann = accept(model, input_shape)

    with timer("clean"):
        clean = cleanup.clean(ann)
        analysis.refuse_converted(clean.model.graph)
        clean_proto = ir.to_proto(clean.model)
    with timer("analyse"):
        trace = Trace()
        cnn_sites = ActivationRule(dict(clean.model.opset_imports), trace).match(clean.model.graph)
        conv_mode = modes.choose(clean.model.graph, mode, cnn_sites, cfg, multi_threshold or MultiThresholdConfig(),
                                 calibration, time_steps=time_steps)
        corrections = corrections or CorrectionConfig()
        if conv_mode.name == "transformer":
            refuse_for_multi_threshold(corrections)
        sites = conv_mode.sites(clean.model.graph)
    warn = list(clean.warnings)
    provenance = _provenance(ann, provenance, warn)
    data = _calibration_data(data, ann, calibration, parity_samples, data_source)
    bs = clean.fixed_batch or calibration.batch_size
    cal_cfg = replace(calibration, batch_size=bs)
    n_cal = min(data.n, cal_cfg.num_samples)
    with timer("calibrate"):
        stats = conv_mode.calibrate(clean_proto, sites, data.inputs, cal_cfg,
                                    lambda k: progress.step("calibrate", k, n_cal))
    with timer("rewrite", steps=3):
        builder = SnnBuilder(clean.model, time_steps)
        records = conv_mode.place(builder, sites, stats, spike_counts)
        progress("rewrite", 1, 3)
        plan, comp_info = compensation.compensate(builder, fused=fused)
        progress("rewrite", 2, 3)
        placed = place_time(builder, event_inputs, clean.fixed_batch, per_step, optimize_graph)
    corr_info: dict[str, Any] = {}
    if corrections.active:  # measured on the built SNN, layer by layer against the ANN
        with timer("correct"):
            if event_inputs:
                raise ConversionError("the post-conversion corrections need static inputs; this model has event "
                                      f"inputs {list(event_inputs)}")
            placed.model, corr_info = apply_corrections(
                clean_proto, placed.model, records, data.inputs, corrections, time_steps, explicit_v_init=cfg.v_init,
                progress=lambda k, n: progress("correct", k, n))
    with timer("validate"):
        exact = conv_mode.exact_time_steps(records)
        if exact is not None and exact != time_steps:
            warn.append(exact_t_message(exact, time_steps))
        parity = validate_snn(ann, placed.model, data, records, exact, time_steps, event_inputs,
                              bs if clean.fixed_batch else 16, parity_gate, warn, parity_samples)

    cal_meta = {
        **calibration.describe(),
        **({"multi_threshold": conv_mode.describe()} if conv_mode.name == "transformer" else {}),
        "data": data.source,
        "num_samples": n_cal,
        "sites_calibrated": conv_mode.calibrated(sites),
        "sites_from_ann": len(sites) - conv_mode.calibrated(sites),
        **({"corrections": corr_info} if corr_info else {}),
    }
    block_meta = transformer.block_summary(plan)
    compensated = [n.name for n in plan.compensated]
    for w in warn:
        warnings.warn(w, ConversionWarning, stacklevel=2)
    snn = placed.model
    md.write(
        snn,
        {
            md.VERSION: __version__,
            md.TIME_STEPS: time_steps,
            md.NEURON: conv_mode.describe(),
            md.MODE: conv_mode.name,
            md.BLOCKS: {"blocks": block_meta, **comp_info},
            md.CALIBRATION: cal_meta,
            md.PARITY: parity,
            md.SITES: [_record_dict(r) for r in records],
            md.COMPENSATED: compensated,
            md.INPUTS: placed.input_kinds,
            md.OUTPUTS: placed.per_step_names,
            md.SOURCE: source_name or "ModelProto",
            md.CLEANUP: clean.describe(),
            md.PROVENANCE: {"calibration_data": data.source, **provenance},
            **({md.EXACT_TIME_STEPS: exact} if exact is not None else {}),
        },
    )
    if out is not None:
        save_atomic(snn, out)
    timings = {**timer.seconds, "total": time.perf_counter() - t0}
    return ConversionResult(
        model=snn, path=out, time_steps=time_steps, neuron=conv_mode.neuron_name,
        sites=records, compensated=compensated, parity=parity, calibration=cal_meta,
        seconds=timings, mode=conv_mode.name, blocks=block_meta, optimizations=placed.optimizations, warnings=warn,
        explain=trace.lines(), cleanup=clean.describe(),
    )


# --- stages ------------------------------------------------------------------------------------


def accept(model: Any, input_shape: Any) -> onnx.ModelProto:
    """The ANN as every mode takes it: a ModelProto with a symbolic batch dimension."""
    if not isinstance(model, onnx.ModelProto):
        raise ConversionError("conversion.pipeline.convert takes an ONNX ModelProto; snn_onnx.convert also takes "
                              "files, torch modules, timm names and Hugging Face folders")
    if input_shape is not None:
        raise ConversionError("input_shape applies to torch modules (snn_onnx.convert), not to an ONNX model")
    return cleanup.dynamic_batch(model)


@dataclass
class CalibrationData:
    inputs: Inputs
    source: str  # "random", "given" or what the caller named it
    n: int


def _calibration_data(data: Any, ann: onnx.ModelProto, calibration: CalibrationConfig, parity_samples: int,
                      source: str | None) -> CalibrationData:
    """The samples calibration and the parity check run on (seeded random inputs when none)."""
    inputs = as_inputs(data, ann)
    source = "random" if inputs is None else (source or "given")
    if inputs is None:
        inputs = random_inputs(ann, min(max(calibration.num_samples, parity_samples), 64), seed=calibration.seed)
    for name, arr in inputs.items():  # strings, complex numbers, no samples: refused by name
        feed_checks.check_dtype(name, arr, "calibration data")
        feed_checks.check_samples(name, arr, "calibration data")
    n = len(next(iter(inputs.values())))
    validate.check_finite_inputs(inputs)
    return CalibrationData(inputs, source, n)


@dataclass
class TimePlacement:
    model: onnx.ModelProto  # the finished SNN graph
    per_step_names: dict[str, str]
    input_kinds: dict[str, str]  # input -> "static" | "event"
    optimizations: dict[str, Any]


def place_time(builder: SnnBuilder, event_inputs: tuple[str, ...], fixed_batch: int | None, per_step: bool,
               hoist: bool) -> TimePlacement:
    """Batch-agnostic reshapes, the time exit (mean and running mean of every output) and the
    time entry, placed once below the time-invariant prefix (``optimize.place_entry``)."""
    ir_model, graph = builder.model, builder.graph
    data_inputs = [v for v in graph.inputs if v.name not in graph.initializers]
    unknown = sorted(set(event_inputs) - {v.name for v in data_inputs})
    if unknown:
        raise ConversionError(f"event input(s) {unknown} are not inputs of the model ({[v.name for v in data_inputs]})")
    static = [v for v in data_inputs if v.name not in event_inputs]
    builder.fix_reshapes(batch_carrying(graph, data_inputs), fixed_batch)
    per_step_names = builder.time_exit(per_step)
    for v in data_inputs:
        if v.shape is not None and len(v.shape):
            if v.name in event_inputs:
                v.shape = ir.Shape(["time_x_batch", *list(v.shape)[1:]])
            elif fixed_batch is not None:
                v.shape = ir.Shape(["batch", *list(v.shape)[1:]])
    ir.passes.common.RemoveUnusedNodesPass()(ir_model)  # e.g. constants of replaced activation chains
    entry = optimize.place_entry(ir_model, builder.T, static, hoist=hoist)
    optimize.remove_unused_initializers(ir_model)
    graph.sort()
    snn = ir.to_proto(ir_model)
    del snn.graph.value_info[:]  # shapes inferred for the ANN batch; ORT re-infers for T*B
    return TimePlacement(snn, per_step_names, {v.name: ("event" if v.name in event_inputs else "static")
                                               for v in data_inputs}, entry.describe() if hoist else {})


def validate_snn(ann: onnx.ModelProto, snn: onnx.ModelProto, data: CalibrationData, records: list[Any],
                 exact: int | None, time_steps: int, event_inputs: tuple[str, ...], batch_size: int,
                 parity_gate: bool, warn: list[str], samples: int = 64) -> dict[str, Any]:
    """Checker, parity against the ANN, the exactness gate (every neuron ParaIF on staircases
    at T = L) and the NaN check. Raises when the SNN must not be written."""
    validate.check_graph(snn)
    n_par = min(samples, data.n)
    parity_inputs = {k: v[:n_par] for k, v in data.inputs.items()}
    b = min(batch_size, n_par)  # refuse a T too large for memory before running it
    memory.check(snn, {k: ((time_steps * b) if k in event_inputs else b, *v.shape[1:]) for k, v in parity_inputs.items()},
                 f"the parity check (the SNN at T={time_steps} on a batch of {b})", "lower T")
    parity = validate.parity(ann, snn, parity_inputs, batch_size=batch_size,
                             event_inputs=event_inputs, time_steps=time_steps)
    parity["samples"] = n_par
    parity["data"] = data.source
    md.write(snn, {md.TIME_STEPS: time_steps, md.SITES: [_record_dict(r) for r in records]})
    if exact == time_steps and not event_inputs:
        gate = validate.exactness(ann, snn, parity_inputs, batch_size=batch_size)
        parity["exactness"] = gate.summary()
        if parity_gate and not gate.passed:
            raise ConversionError(gate.failure_message() + "; nothing was written (parity_gate=False / "
                                  "--no-parity-gate writes it anyway)")
        if not gate.passed:
            warn.append(gate.failure_message())
    ann_bad = {k: v["ann_non_finite"] for k, v in parity.items() if isinstance(v, dict) and v.get("ann_non_finite")}
    if ann_bad:
        raise ConversionError(f"the ANN itself gives NaN or Inf on the calibration samples ({ann_bad} values per "
                              "output); an SNN cannot reproduce them: check the model and its data; nothing was written")
    bad = validate.non_finite_outputs(parity)
    if bad:
        raise ConversionError(
            f"the SNN gives NaN or Inf in output(s) {bad} on the calibration samples where the ANN gives finite "
            "values; nothing was written"
        )
    return parity


def _provenance(ann: onnx.ModelProto, given: dict[str, Any] | None, warn: list[str]) -> dict[str, Any]:
    weights = next((p.value for p in ann.metadata_props if p.key == "snn_onnx.weights"), None)
    prov = {**({"weights": weights} if weights else {}), **(given or {})}
    if str(prov.get("weights", "")).startswith("random-init"):
        warn.append(f"the network's weights are {prov['weights']}: parity checks structure only, accuracy "
                    "means nothing (give --checkpoint / pretrained weights)")
    return prov


class _Timer:
    """Seconds per stage, with the stage reported to ``on_progress`` at its start and end."""

    def __init__(self, progress: "_Progress"):
        self.progress, self.seconds = progress, {}

    @contextlib.contextmanager
    def __call__(self, stage: str, steps: int = 1):
        t = time.perf_counter()
        self.progress(stage, 0, steps)
        yield
        self.seconds[stage] = time.perf_counter() - t
        self.progress(stage, steps, steps)


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


def _record_dict(r: Any) -> dict[str, Any]:
    d = dict(r.__dict__)
    extra = d.pop("extra", None) or {}
    d.update(extra)
    return d


def exact_t_message(exact: int, time_steps: int) -> str:
    if exact == -1:
        return ("the staircase activations have different numbers of levels, so no T makes ParaIF reproduce the "
                "ANN exactly")
    return (f"ParaIF reproduces this network's staircase activations exactly only at T = L = {exact}; "
            f"T = {time_steps} approximates them")


