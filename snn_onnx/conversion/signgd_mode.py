"""SignGD mode (``neuron="signgd"``): every non-linearity with a SignGD form spikes.

The stages (docs/signgd.md):

    load, clean       as every mode (``cleanup.clean``)
    lower             LayerNorm / Softmax spelled with primitives (``signgd_lower``)
    rules             ``rules.SignGDRule``: sites (neurons) and leftovers
    calibrate         each site's amplitude λ (and pooling pad values, denominator floors)
                      from the ANN's values on the calibration samples
    rewrite           neurons in place (``signgd_emit``); leftovers computed once when static,
                      compensated on decoded values with ``allow_compensation``, else refused
    place time        ``SignGDEncode`` where a static value meets the spiking part,
                      ``SignGDDecode`` at every output (final value and per-step estimates)
    probe             every neuron's and decoder's offset / bias (``signgd_probe``)
    validate          checker, batch axis, parity vs the ANN, NaN check
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import onnx
import onnx_ir as ir

from .. import metadata as md
from ..errors import ConversionError
from ..ops import schema
from ..version import __version__
from . import analysis, cleanup, signgd_lower, validate
from .calibrate import CalibrationConfig
from .rewrite import SnnBuilder, batch_carrying
from .rules import Trace
from .rules.signgd import SignGDRule
from .signgd_calibrate import calibrate_sites, softmax_shifts
from .signgd_emit import Emitter, time_varying
from .signgd_probe import fill_offsets

SIGNGD_META = md.PREFIX + "signgd"


@dataclass(frozen=True)
class SignGDConfig:
    """SignGD neurons: step sizes ``η_t = eta0·gamma^(t−1)`` (the paper's defaults) and whether
    non-linearities without a SignGD form may be compensated (computed on decoded values)."""

    kind: ClassVar[str] = "signgd"
    eta0: float = schema.SIGNGD_STEP["eta0"]
    gamma: float = schema.SIGNGD_STEP["gamma"]
    allow_compensation: bool = False

    def __post_init__(self) -> None:
        if not (np.isfinite(self.eta0) and self.eta0 > 0):
            raise ConversionError(f"eta0 must be finite and > 0, got {self.eta0}")
        if not (np.isfinite(self.gamma) and 0 < self.gamma <= 1):
            raise ConversionError(f"gamma must be in (0, 1], got {self.gamma}")

    def describe(self) -> dict:
        return {"kind": "signgd", **asdict(self)}


def convert_signgd(
    model: Any,
    *,
    time_steps: int,
    config: SignGDConfig,
    data: Any,
    calibration: CalibrationConfig,
    out,
    spike_counts: bool,
    per_step: bool,
    parity_samples: int,
    input_shape: tuple[int, ...] | None,
    progress: Callable[[str, int, int], None],
    source_name: str | None,
    data_source: str | None,
    provenance: dict[str, Any] | None,
):
    """The SignGD pipeline; ``pipeline.convert`` calls it for ``neuron="signgd"`` after checking
    the options that do not apply. Returns a ``pipeline.ConversionResult``."""
    from .pipeline import ConversionResult, _calibration_data, _provenance, _Timer, accept, save_atomic

    t0 = time.perf_counter()
    timer = _Timer(progress)
    with timer("load"):
        ann = accept(model, input_shape)
        source_name = source_name or "ModelProto"
    with timer("clean"):
        clean = cleanup.clean(ann)
        ir_model, fixed_batch = clean.model, clean.fixed_batch
        graph = ir_model.graph
        analysis.refuse_converted(graph)
        clean_proto = ir.to_proto(ir_model)
    warn: list[str] = list(clean.warnings)
    provenance = _provenance(ann, provenance, warn)
    data = _calibration_data(data, ann, calibration, parity_samples, data_source)
    inputs, data_source, n_avail = data.inputs, data.source, data.n
    bs = fixed_batch or calibration.batch_size
    n_cal = min(n_avail, calibration.num_samples)
    cal_inputs = {k: v[:n_cal] for k, v in inputs.items()}

    # lower composite non-linearities, then the rule
    with timer("analyse"):
        shifts = softmax_shifts(clean_proto, signgd_lower.softmax_inputs(graph), cal_inputs, bs)
        lowered = signgd_lower.lower(ir_model, lambda v: shifts[v.name])
        data_inputs = [v for v in graph.inputs if v.name not in graph.initializers]
        trace = Trace()
        sites, leftovers = SignGDRule(trace).match(graph, batch_carrying(graph, data_inputs))
        if not sites:
            raise ConversionError("the model has no non-linearity with a SignGD form after a weight layer (ReLU, "
                                  "GELU, LayerNorm, Softmax, MaxPool, products …); nothing would spike")

    with timer("calibrate"):
        lowered_proto = ir.to_proto(ir_model)
        extra = [v.name for lo in leftovers for n in lo.nodes for v in [*n.inputs, *n.outputs]
                 if v is not None and v.name]
        cal = calibrate_sites(lowered_proto, sites, cal_inputs, calibration, bs,
                              lambda k: progress.step("calibrate", k, n_cal), extra=_value_names(lowered_proto, extra))

    # rewrite, compensate, place time
    with timer("rewrite", steps=3):
        snn, emit, compensated, forms, per_step_names = _rewrite(
            ir_model, lowered_proto, sites, leftovers, cal, cal_inputs, config, time_steps, spike_counts, per_step,
            fixed_batch, data_inputs, progress)

    with timer("validate"):
        validate.check_graph(snn)
        n_par = min(parity_samples, n_avail)
        parity_inputs = {k: v[:n_par] for k, v in inputs.items()}
        parity = validate.parity(ann, snn, parity_inputs, batch_size=bs if fixed_batch else 16,
                                 time_steps=time_steps)
        parity["samples"] = n_par
        parity["data"] = data_source
        bad = validate.non_finite_outputs(parity)
        if bad:
            raise ConversionError(
                f"the SNN gives NaN or Inf in output(s) {bad} on the calibration samples where the ANN gives finite "
                "values; nothing was written")
    timings = timer.seconds

    cal_meta = {**calibration.describe(), "data": data_source, "num_samples": n_cal, "sites_calibrated": len(sites),
                "sites_from_ann": 0, "amplitude": "max |f(x)| of the ANN (per channel with per_channel)"}
    md.write(snn, {
        md.VERSION: __version__,
        md.TIME_STEPS: time_steps,
        md.NEURON: config.describe(),
        md.MODE: "signgd",
        md.BLOCKS: {"blocks": []},
        md.CALIBRATION: cal_meta,
        md.PARITY: parity,
        md.SITES: emit.records,
        md.COMPENSATED: compensated,
        md.INPUTS: {v.name: "static" for v in data_inputs},
        md.OUTPUTS: per_step_names,
        md.SOURCE: source_name,
        md.CLEANUP: {**clean.describe(), **({"signgd_lowered": lowered} if lowered else {})},
        md.PROVENANCE: {"calibration_data": data_source, **provenance},
    })
    _write_forms(snn, config, forms, emit)
    for w in warn:
        warnings.warn(w, _warning_class(), stacklevel=3)
    if out is not None:
        save_atomic(snn, out)
    timings["total"] = time.perf_counter() - t0
    return ConversionResult(
        model=snn, path=out, time_steps=time_steps, neuron="signgd", sites=emit.records, compensated=compensated,
        parity=parity, calibration=cal_meta, seconds=timings, mode="signgd", blocks=[], warnings=warn,
        explain=trace.lines(), cleanup=clean.describe(),
    )


def _rewrite(ir_model: ir.Model, lowered_proto: onnx.ModelProto, sites: list, leftovers: list, cal: Any,
             cal_inputs: dict[str, np.ndarray], config: SignGDConfig, time_steps: int, spike_counts: bool,
             per_step: bool, fixed_batch: int | None, data_inputs: list[ir.Value], progress: Any):
    """SignGD neurons at the sites, leftovers compensated or refused, then the time entry (the
    encoders) and exit (the decoders). Returns the SNN and what the metadata records."""
    graph = ir_model.graph
    builder = SnnBuilder(ir_model, time_steps)
    emit = Emitter(builder, config, cal, spike_counts)
    emit.fetch_shapes = lambda names: _shapes(lowered_proto, names, {k: v[:1] for k, v in cal_inputs.items()})
    for site in sites:
        emit.site(site)
    compensated = _leftovers(emit, graph, leftovers, config.allow_compensation)
    progress("rewrite", 1, 3)
    carrying = batch_carrying(graph, data_inputs)
    builder.fix_reshapes(carrying, fixed_batch)
    emit.time_entry(carrying)
    graph.sort()
    analysis.plan_time(graph)  # refuses, naming the node, any op that would act along the T*B axis
    per_step_names = emit.time_exit(per_step)
    for v in data_inputs:
        if v.shape is not None and len(v.shape) and fixed_batch is not None:
            v.shape = ir.Shape(["batch", *list(v.shape)[1:]])
    ir.passes.common.RemoveUnusedNodesPass()(ir_model)
    graph.sort()
    snn = ir.to_proto(ir_model)
    del snn.graph.value_info[:]
    progress("rewrite", 2, 3)
    fill_offsets(snn, emit.points, emit.sources)
    return snn, emit, compensated, emit.forms, per_step_names


def _leftovers(emit: Emitter, graph: ir.Graph, leftovers: list, allow: bool) -> list[str]:
    """Without ``allow`` every leftover is refused (one error naming the first, counting the
    rest); with it, a leftover with static inputs is computed once as it is, the others are
    compensated on decoded values. Returns the names of the compensated ones."""
    if leftovers and not allow:
        first = leftovers[0].nodes[-1]
        others = "".join(f"; {lo.nodes[-1].op_type} '{lo.nodes[-1].name}'" for lo in leftovers[1:4])
        more = f" and {len(leftovers) - 4} more" if len(leftovers) > 4 else ""
        raise ConversionError(
            f"{leftovers[0].reason}{others}{more}; allow_compensation=True / --allow-compensation computes "
            "them on decoded values (not spiking)", first.name, first.op_type)
    compensated: list[str] = []
    for lo in leftovers:
        tv = time_varying(graph)
        form = {"nonlinearity": lo.name, "ops": [n.op_type for n in lo.nodes]}
        if not any(v is not None and v in tv for n in lo.nodes for v in n.inputs):
            emit.forms.append({**form, "form": "static",
                               "why": "its inputs are the same at every step: computed once, as in the ANN"})
            continue
        emit.compensate(lo, tv)
        compensated.append(lo.name)
        emit.forms.append({**form, "form": "compensated", "why": lo.reason})
    return compensated


def _shapes(proto: onnx.ModelProto, names: list[str], feed: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    from .ann_runner import ann_session

    outs = ann_session(proto, names).run(names, feed)
    return {n: tuple(int(d) for d in a.shape[1:]) for n, a in zip(names, outs)}


def _value_names(proto: onnx.ModelProto, names: list[str]) -> list[str]:
    """Those of ``names`` that are computed by a node (not initializers or constants)."""
    produced = {o for n in proto.graph.node if n.op_type != "Constant" for o in n.output}
    return [n for n in dict.fromkeys(names) if n in produced]


def _warning_class():
    from .pipeline import ConversionWarning

    return ConversionWarning


def _write_forms(snn: onnx.ModelProto, config: SignGDConfig, forms: list[dict], emit: Emitter) -> None:
    import json

    value = {"eta0": config.eta0, "gamma": config.gamma, "forms": forms, "encoders": emit.n_encoders,
             "decoders": emit.n_decoders}
    keep = [p for p in snn.metadata_props if p.key != SIGNGD_META]
    del snn.metadata_props[:]
    snn.metadata_props.extend(keep)
    snn.metadata_props.append(onnx.StringStringEntryProto(key=SIGNGD_META, value=json.dumps(value, sort_keys=True)))


def read_forms(model: onnx.ModelProto) -> dict | None:
    """The ``snn_onnx.signgd`` metadata of a SignGD SNN (which form each non-linearity got)."""
    import json

    for p in model.metadata_props:
        if p.key == SIGNGD_META:
            return json.loads(p.value)
    return None


def amplitude_calibration(calibration: CalibrationConfig | None) -> CalibrationConfig:
    """The statistic of the amplitudes: ``max`` or ``percentile`` of |f(x)|. The ReLU threshold
    methods (``mse``, the default, and ``ltb``) clip on purpose, which a SignGD estimate cannot
    follow, so they mean ``max`` here (the CLI refuses them when given explicitly)."""
    from dataclasses import replace

    cal = calibration or CalibrationConfig()
    return cal if cal.method in ("max", "percentile") else replace(cal, method="max")


def wants_signgd(neuron: Any) -> bool:
    return neuron == "signgd" if isinstance(neuron, str) else isinstance(neuron, SignGDConfig)


def convert_from_pipeline(*, model, time_steps, neuron, data, calibration, out, spike_counts, per_step,
                          parity_samples, input_shape, on_progress, source_name, event_inputs, optimize_graph, mode,
                          multi_threshold, fused, parity_gate, data_source, provenance, allow_compensation,
                          corrections=None, **_):
    """``pipeline.convert``'s arguments for ``neuron="signgd"``: options of the other modes are
    refused, not ignored."""
    from .pipeline import _Progress
    from .transformer import MultiThresholdConfig

    refused = []
    if mode not in ("auto", "signgd"):
        refused.append(f"mode={mode!r} (SignGD places its own neurons; leave mode at 'auto')")
    if fused:
        refused.append("fused (the fused kernels are expectation compensation's)")
    if event_inputs:
        refused.append("event_inputs (SignGD encodes static inputs; event frames are not supported yet)")
    if multi_threshold is not None and multi_threshold != MultiThresholdConfig():
        refused.append("multi-threshold options (transformer mode's neurons)")
    if not parity_gate:
        refused.append("parity_gate=False (SignGD has no exactness gate; parity is measured and recorded)")
    if not optimize_graph:
        refused.append("optimize_graph=False (the SignGD graph always computes the static prefix once)")
    if corrections is not None and corrections.active:
        refused.append("corrections (they correct IF / ParaIF neurons at ReLU sites; SignGD neurons track f itself)")
    if refused:
        raise ConversionError("options that do not apply to neuron='signgd': " + "; ".join(refused))
    cfg = neuron if isinstance(neuron, SignGDConfig) else SignGDConfig()
    if allow_compensation and not cfg.allow_compensation:
        from dataclasses import replace

        cfg = replace(cfg, allow_compensation=True)
    return convert_signgd(
        model, time_steps=int(time_steps), config=cfg, data=data, calibration=amplitude_calibration(calibration),
        out=out, spike_counts=spike_counts, per_step=per_step, parity_samples=parity_samples,
        input_shape=input_shape, progress=_Progress(on_progress), source_name=source_name, data_source=data_source,
        provenance=provenance,
    )
