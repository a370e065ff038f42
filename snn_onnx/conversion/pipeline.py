"""``convert``: ANN (.onnx, ModelProto, torch module, timm name) -> spiking ONNX model."""

from __future__ import annotations

import os
import tempfile
import time
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
from . import fused as fused_ops
from .calibrate import CalibrationConfig, SiteRequest
from .rewrite import NeuronConfig, NeuronRecord, SnnBuilder, batch_carrying
from .transformer import MultiThresholdConfig

Inputs = dict[str, np.ndarray]


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

    def summary(self) -> str:
        lines = [
            f"SNN ({self.mode} mode): T={self.time_steps}, neuron={self.neuron}, {len(self.sites)} spiking layers, "
            f"{len(self.blocks)} compensated blocks, {len(self.compensated)} other compensated ops",
        ]
        lines += validate.format_parity(self.parity)
        if self.path is not None:
            lines.append(f"wrote {self.path}")
        return "\n".join(lines)


def check_output_path(output: str | Path | None, force: bool) -> Path | None:
    if output is None:
        return None
    out = Path(output)
    if out.exists() and not force:
        raise OutputExistsError(f"output file exists: {out} (pass force=True / --force to overwrite)")
    if out.exists() and out.is_dir():
        raise OutputExistsError(f"output path is a directory: {out}")
    if not out.parent.exists():
        raise OutputExistsError(f"output directory does not exist: {out.parent}")
    return out


def save_atomic(model: onnx.ModelProto, out: Path) -> None:
    """Write to a temporary file beside ``out`` and rename, so a failure never leaves a
    half-written model in place of the user's file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        onnx.save(model, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def as_inputs(data: Any, ann: onnx.ModelProto) -> Inputs | None:
    """Normalise calibration data to ``{input name: array}``. Sentences (a list of str) are
    tokenised for a model exported from a Hugging Face folder."""
    if data is None:
        return None
    if isinstance(data, (list, tuple)) and data and all(isinstance(s, str) for s in data):
        return _text_inputs(ann, data)
    names = graph_input_names(ann)
    if isinstance(data, Mapping):
        missing = [n for n in names if n not in data]
        if missing:
            raise DataError(f"data has no array for model input(s) {missing}; it has {sorted(data)}")
        return {n: np.asarray(data[n]) for n in names}
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
        if any(d is None for d in dims[1:]):
            raise DataError(
                f"input '{inp.name}' has symbolic dimensions {dims}; give calibration data"
            )
        shape = [n if dims[0] is None else dims[0]] + dims[1:]
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
) -> ConversionResult:
    """Convert an ANN to a spiking ONNX model.

    ``model``: path to an .onnx file, an ``onnx.ModelProto``, a torch ``nn.Module`` (needs
    ``input_shape`` without the batch axis), a timm model name or a ``module:factory`` path.
    ``data``: calibration samples (array, dict by input name, or a ``snn_onnx.data`` dataset);
    None uses seeded random inputs (fine for QCFS/clip models, whose thresholds are known).
    ``event_inputs``: names of inputs that already carry one frame per step (DVS events):
    the SNN takes them as ``[T*B, ...]`` (time-major) instead of repeating a static input.
    Calibration and the parity check then feed the ANN each frame as a sample and the SNN
    the same frame repeated over time.
    ``optimize_graph``: run the time-invariant layers before the first neuron once instead of
    T times (``optimize.hoist_time_entry``; same outputs and spikes, less work).
    ``mode``: "cnn" (ReLU / clip / QCFS activations become IF or ParaIF neurons), "transformer"
    (multi-threshold neurons on the activation inputs of every Linear / MatMul, configured by
    ``multi_threshold``; docs/transformers.md) or "auto" (transformer for graphs with MatMul on
    activations and LayerNorm or attention softmax). ``fused``: compensate blocks with a
    fused kernel (``CompensatedElementwise``) where it is faster (conversion/fused.py).
    """
    t0 = time.perf_counter()
    out = check_output_path(output, force)
    cfg = NeuronConfig(kind=neuron) if isinstance(neuron, str) else neuron
    calibration = calibration or CalibrationConfig()
    from ..export import resolve_model  # lazy: torch only when needed

    ann = resolve_model(model, input_shape=input_shape)
    source_name = source_name or (str(model) if isinstance(model, (str, Path)) else type(model).__name__)
    timings = {"load": time.perf_counter() - t0}

    t = time.perf_counter()
    ir_model, fixed_batch = cleanup.cleanup(ann)
    clean_proto = ir.to_proto(ir_model)
    chosen = transformer.choose_mode(ir_model.graph, mode)
    mt_cfg = multi_threshold or MultiThresholdConfig()
    if chosen == "transformer":
        plan, mt_sites = transformer.plan(ir_model.graph, mt_cfg.sites)
    else:
        plan = analysis.plan_conversion(ir_model.graph)
        if not plan.sites:
            raise ConversionError("the model has no activation (ReLU, Clip(0, λ) or QCFS) to turn into spiking neurons")
    timings["analyse"] = time.perf_counter() - t

    if data is None and any(p.key == "snn_onnx.hf.folder" for p in ann.metadata_props):
        from ..data.text import CALIBRATION

        data = list(CALIBRATION)  # a text encoder: the bundled calibration sentences
    inputs = as_inputs(data, ann)
    data_source = "given" if inputs is not None else "random"
    n_needed = max(calibration.num_samples, parity_samples)
    if inputs is None:
        inputs = random_inputs(ann, min(n_needed, 64), seed=calibration.seed)
    n_avail = len(next(iter(inputs.values())))
    if n_avail == 0:
        raise DataError("calibration data is empty")

    # thresholds: from the ANN where it carries them (Clip max, QCFS λ), else calibrated
    t = time.perf_counter()
    need = [s for s in plan.sites if s.threshold is None]
    requests = [
        SiteRequest(s.name, s.input.name, _channel_axis(s)) for s in need
    ]
    bs = fixed_batch or calibration.batch_size
    cal_cfg = calibration if bs == calibration.batch_size else _with_batch(calibration, bs)
    progress = (lambda k: on_progress("calibrate", k, min(n_avail, cal_cfg.num_samples))) if on_progress else None
    if chosen == "transformer":
        stats = transformer.calibrate_sites(clean_proto, mt_sites, inputs, cal_cfg, mt_cfg, progress)
        need = mt_sites
    else:
        stats = calibrate.collect(clean_proto, requests, inputs, cal_cfg, progress)
    timings["calibrate"] = time.perf_counter() - t

    t = time.perf_counter()
    builder = SnnBuilder(ir_model, time_steps)
    graph = ir_model.graph
    records: list[Any] = []
    comp_info: dict[str, Any] = {}
    if chosen == "transformer":
        records, comp_info = transformer.rewrite(builder, plan, mt_sites, stats, mt_cfg, spike_counts, fused)
    # compensation first: it looks values up in plan.time_varying, which names the ANN's
    # activation outputs; the neurons then take over all their uses
    for blk in plan.blocks if chosen == "cnn" else []:
        if fused and fused_ops.can_fuse(blk):
            fused_ops.fuse_block(builder, blk)
            comp_info["fused_blocks"] = comp_info.get("fused_blocks", 0) + 1
        else:
            compensation.compensate_block(builder, blk)
    for node in plan.compensated if chosen == "cnn" else []:
        builder.compensate(node, plan.time_varying)
    for site in plan.sites:
        if site.threshold is not None:
            th, axis, src, dead = site.threshold, site.channel_axis, site.kind, []
        else:
            th, dead = stats[site.name]
            axis, src = _channel_axis(site), f"calibration:{calibration.method}"
        th = np.asarray(th, dtype=np.float32)
        if not np.all(np.isfinite(th)) or np.any(th <= 0):
            raise CalibrationError(f"site '{site.name}': threshold must be finite and > 0, got {th.ravel()[:4]}")
        v_init = site.extra.get("shift", cfg.v_init)
        in_name = site.input.name
        node, counts = builder.add_neuron(site, th, axis, cfg, spike_counts, v_init)
        records.append(
            NeuronRecord(
                site=site.name, kind=site.kind, op=node.op_type, node=node.name, input=in_name,
                output=node.outputs[0].name, counts=counts, threshold=[float(v) for v in th.ravel()],
                channel_axis=axis if th.ndim == 1 else None, threshold_source=src, dead_channels=len(dead),
            )
        )
    data_inputs = [v for v in graph.inputs if v.name not in graph.initializers]
    unknown = sorted(set(event_inputs) - {v.name for v in data_inputs})
    if unknown:
        raise ConversionError(f"event input(s) {unknown} are not inputs of the model ({[v.name for v in data_inputs]})")
    static = [v for v in data_inputs if v.name not in event_inputs]
    if chosen == "cnn":
        comp_info.update(compensation.simplify(graph))
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
    ir.passes.common.RemoveUnusedNodesPass()(ir_model)  # e.g. constants of replaced QCFS chains
    optimizations = optimize.hoist_time_entry(ir_model, time_steps).describe() if optimize_graph else {}
    graph.sort()
    snn = ir.to_proto(ir_model)
    del snn.graph.value_info[:]  # shapes inferred for the ANN batch; ORT re-infers for T*B
    timings["rewrite"] = time.perf_counter() - t

    t = time.perf_counter()
    validate.check_graph(snn)
    n_par = min(parity_samples, n_avail)
    parity_inputs = {k: v[:n_par] for k, v in inputs.items()}
    parity = validate.parity(ann, snn, parity_inputs, batch_size=bs if fixed_batch else 16,
                             event_inputs=event_inputs, time_steps=time_steps)
    parity["samples"] = n_par
    parity["data"] = data_source
    timings["validate"] = time.perf_counter() - t

    cal_meta = {
        **calibration.describe(),
        **({"multi_threshold": mt_cfg.describe()} if chosen == "transformer" else {}),
        "data": data_source,
        "num_samples": min(n_avail, calibration.num_samples),
        "sites_calibrated": len(need),
        "sites_from_ann": len(plan.sites) - len(need) if chosen == "cnn" else 0,
    }
    block_meta = transformer.block_summary(plan)
    compensated = [n.name for n in plan.compensated]
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
            md.SITES: [r.__dict__ for r in records],
            md.COMPENSATED: compensated,
            md.INPUTS: {v.name: ("event" if v.name in event_inputs else "static") for v in data_inputs},
            md.OUTPUTS: per_step_names,
            md.SOURCE: source_name,
        },
    )
    if out is not None:
        save_atomic(snn, out)
    timings["total"] = time.perf_counter() - t0
    return ConversionResult(
        model=snn, path=out, time_steps=time_steps, neuron=cfg.kind if chosen == "cnn" else "multi_threshold",
        sites=records, compensated=compensated, parity=parity, calibration=cal_meta,
        seconds=timings, mode=chosen, blocks=block_meta, optimizations=optimizations,
    )


def _channel_axis(site) -> int:
    rank = len(site.input.shape) if site.input.shape is not None else 4
    return -1 if rank == 3 else 1


def _with_batch(cfg: CalibrationConfig, bs: int) -> CalibrationConfig:
    from dataclasses import replace

    return replace(cfg, batch_size=bs)
