"""Accuracy of the ANN and of its SNN conversions over time steps and neuron types.

The IF neuron is causal, so one run at T_max gives the accuracy at every t <= T_max from the
running-mean output (anytime accuracy). The ParaIF neuron looks at all T steps at once, so
each T is converted and run separately; with ``engine="auto"`` (the default) or
``"collapsed"`` each of those runs is one pass over time means (docs/collapsed.md), so a sweep
T = 1…256 costs about one ANN pass per T instead of T.

``ray=`` shards the evaluation set over a Ray cluster (``snn_onnx.runtime.ray_eval``): the
same batches, the same sessions, the same numbers.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import onnx

from .conversion.calibrate import CalibrationConfig
from .conversion.pipeline import ConversionWarning, as_inputs, convert
from .conversion.rewrite import NeuronConfig
from .conversion.validate import run_batched
from .errors import DataError, SnnOnnxError

if TYPE_CHECKING:
    from .runtime.session import Session

# Samples of the conversion's own parity check (step by step, in convert()): the evaluation
# compares the SNN with the ANN on the whole test set anyway (EvalRow.parity_rel_max_diff).
PARITY_SAMPLES = 4


@dataclass
class EvalRow:
    neuron: str
    time_steps: int
    ann_accuracy: float
    snn_accuracy: float
    agreement: float  # fraction of samples where SNN and ANN predict the same class
    firing_rate: float | None = None  # mean spikes per neuron per step (all layers)
    parity_rel_max_diff: float | None = None  # max |SNN - ANN| / max |ANN| over the test set (mean output at T)
    engine: str | None = None  # "steps" | "collapsed"
    sops: float | None = None  # synaptic operations per sample (with energy=...)
    energy_uj: float | None = None  # energy per sample, µJ (with energy=...)


@dataclass
class EvalResult:
    rows: list[EvalRow]
    samples: int
    ann_accuracy: float
    details: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        energy = any(r.energy_uj is not None for r in self.rows)
        head = f"{'neuron':<10}{'T':>4}  {'ANN acc':>8}  {'SNN acc':>8}  {'Δ acc':>7}  {'agree':>7}  {'rate':>6}"
        head += f"  {'SOPs':>9}  {'µJ':>8}" if energy else ""
        lines = [head, "-" * len(head)]
        for r in self.rows:
            rate = "" if r.firing_rate is None else f"{r.firing_rate:.3f}"
            line = (
                f"{r.neuron:<10}{r.time_steps:>4}  {100 * r.ann_accuracy:>7.2f}%  {100 * r.snn_accuracy:>7.2f}%  "
                f"{100 * (r.snn_accuracy - r.ann_accuracy):>+6.2f}  {100 * r.agreement:>6.2f}%  {rate:>6}"
            )
            if energy:
                line += f"  {r.sops:>9.3g}  {r.energy_uj:>8.3g}" if r.energy_uj is not None else ""
            lines.append(line)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "ann_accuracy": self.ann_accuracy,
            "rows": [r.__dict__ for r in self.rows],
            **self.details,
        }


@dataclass
class RunStats:
    """What one SNN run over the test set gives (merged over batches or shards): predictions
    after the steps asked for, spike counts summed over samples, the largest deviation of the
    mean output from the ANN's, and per-step outputs when kept."""

    predictions: dict[int, np.ndarray]  # step t -> predicted class per sample
    counts: dict[str, np.ndarray]  # site -> [T, *neuron shape], summed over samples
    samples: int
    max_abs_diff: float
    max_abs_ann: float
    engine: str
    per_step: np.ndarray | None = None  # [T, N, ...] running means (only when kept)


@dataclass
class Job:
    """One SNN to run: ``model`` (bytes or proto), the steps whose predictions are needed."""

    label: str
    model: Any
    steps: tuple[int, ...]
    engine: str = "auto"
    keep_per_step: bool = False


def _logits_name(model: onnx.ModelProto) -> str:
    return model.graph.output[0].name


def _quiet_sweep(fn):
    """A sweep over T: ParaIF is exact at one T only, which the table shows; no warning per T."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConversionWarning)
            return fn(*args, **kwargs)

    return wrapper


@_quiet_sweep
def evaluate(
    ann: onnx.ModelProto,
    test_x: np.ndarray,
    test_y: np.ndarray,
    calib_x: np.ndarray,
    *,
    time_steps: Sequence[int] = (1, 2, 4, 8, 16, 32),
    neurons: Sequence[str | NeuronConfig] = ("if", "paraif"),
    calibration: CalibrationConfig | None = None,
    batch_size: int = 64,
    on_step: Callable[[str], None] | None = None,
    on_run: Callable[[str, int, Any, np.ndarray, dict[str, np.ndarray]], None] | None = None,
    engine: str = "auto",
    ray: Any = None,
    energy: Any = None,
    providers: Sequence[str] | None = None,
    event_input: str | None = None,
) -> EvalResult:
    """ANN vs SNN accuracy on ``(test_x, test_y)``; thresholds calibrated on ``calib_x``.

    ``neurons``: names (``"if"``, ``"paraif"``, ``"signed-if"``) or :class:`NeuronConfig`
    (``NeuronConfig(kind="lif", leak=0.9)``); sequential neurons (all but ParaIF) are run once
    at the largest T and read at every t (anytime accuracy).

    ``engine``: "auto" (collapsed where exact, i.e. ParaIF; step by step otherwise), "steps"
    or "collapsed" (refused for IF). ``ray``: None (this process), True (a local Ray
    cluster), an address ("auto", "ray://head:10001") or a
    :class:`~snn_onnx.runtime.ray_eval.RayConfig`; needs ``pip install 'snn-onnx[ray]'``.
    ``energy``: an :class:`~snn_onnx.energy.EnergyConfig` to add SOPs and energy per sample
    to every row. ``on_run(neuron, T, conversion_result, per_step_outputs, spike_counts)`` is
    called after each SNN run (IF: once, at T_max; others: once per T), e.g. to write a
    report (not with ``ray``).

    ``event_input``: the name of an input that takes one frame per step; ``test_x`` and
    ``calib_x`` are then event data with a ``frames(T)`` method (``snn_onnx.data.events``):
    every T and neuron is converted and run on its own (the frames depend on T), thresholds
    are calibrated on the calibration samples' mean frames, and the ANN is evaluated on the
    test samples' mean frames (what the SNN's rates approximate); step by step, in this
    process (``engine`` "auto" or "steps", no ``ray`` or ``energy``)."""
    from .runtime.session import ENGINES

    if test_y is None:
        raise DataError("evaluation needs labelled data (y)")
    if engine not in ENGINES:
        raise SnnOnnxError(f"engine must be one of {ENGINES}, got {engine!r}")
    cfgs = [NeuronConfig(kind=n) if isinstance(n, str) else n for n in neurons]
    sequential = [c.kind for c in cfgs if c.kind != "paraif"]
    if engine == "collapsed" and sequential:
        raise SnnOnnxError(f"engine 'collapsed' runs ParaIF networks only; the {sequential[0]} neuron's spikes depend "
                           "on the order of its inputs (use engine 'auto' to run it step by step)")
    if event_input is not None:
        unsupported = [o for o, v in (("engine='collapsed'", engine == "collapsed"), ("ray", ray not in (None, False)),
                                      ("energy", energy is not None)) if v]
        if unsupported:
            raise SnnOnnxError(f"event-data evaluation (event_input) does not support {unsupported[0]}; leave it out")
        return _evaluate_events(ann, test_x, test_y, calib_x, event_input, time_steps, cfgs, calibration,
                                batch_size, on_step, on_run)
    time_steps = sorted(set(int(t) for t in time_steps))
    calibration = calibration or CalibrationConfig()
    name = _logits_name(ann)
    ray_cfg = None
    if ray is not None and ray is not False:
        from .runtime.ray_eval import ray_config

        ray_cfg = ray_config(ray)
        if on_run is not None:
            raise SnnOnnxError("writing report folders (on_run / --report) is not supported with ray; run without ray")
    feed = as_inputs(test_x, ann)
    n = len(test_y)
    if n == 0 or len(next(iter(feed.values()))) != n:
        raise DataError(f"evaluation needs as many labels as samples, got {n} labels")
    ann_outs: list[np.ndarray] = []
    if ray_cfg is None:  # the ANN once, on the batches the SNNs will see
        sess = ann_session(ann, providers)
        ann_outs = [sess.run([name], {k: v[s : s + batch_size] for k, v in feed.items()})[0] for s in range(0, n, batch_size)]

    def tick(msg: str) -> None:
        if on_step:
            on_step(msg)

    plans: list[tuple[str, int, Any, Job]] = []  # (neuron, T, conversion result, job)
    for cfg in cfgs:
        label = cfg.kind
        if cfg.kind != "paraif":  # causal: step t of a T_max run is the T = t SNN
            t_max = max(time_steps)
            res = convert(ann, time_steps=t_max, neuron=cfg, data=calib_x, calibration=calibration,
                          parity_samples=PARITY_SAMPLES)
            plans.append((label, t_max, res, Job(f"{label}-T{t_max}", res.model, tuple(time_steps), engine,
                                                 on_run is not None)))
            if ray_cfg is None:
                _finish(plans[-1], _run_local(ann_outs, feed, plans[-1][3], batch_size, providers, name), on_run)
                for t in time_steps:
                    tick(f"{label} T={t}")
        else:
            for t in time_steps:
                res = convert(ann, time_steps=t, neuron=cfg, data=calib_x, calibration=calibration,
                              parity_samples=PARITY_SAMPLES)
                plans.append((label, t, res, Job(f"{label}-T{t}", res.model, (t,), engine, on_run is not None)))
                if ray_cfg is None:  # run now: one model in memory at a time
                    _finish(plans[-1], _run_local(ann_outs, feed, plans[-1][3], batch_size, providers, name), on_run)
                    tick(f"{label} T={t}")
    if ray_cfg is not None:
        from .runtime.ray_eval import run_sharded

        stats = run_sharded(ann, feed, [p[3] for p in plans], batch_size, ray_cfg, name, on_done=lambda job: tick(job.label))
        for plan, st in zip(plans, stats):
            plan[3].stats = st  # type: ignore[attr-defined]
    rows: list[EvalRow] = []
    ann_pred = None
    for neuron, t, res, job in plans:
        st: RunStats = job.stats  # type: ignore[attr-defined]
        ann_pred = st.predictions[0]
        parity = st.max_abs_diff / (st.max_abs_ann or 1.0)
        model = res.model
        e = _energy(model, feed, st, energy) if energy is not None else None
        for step in job.steps:
            pred = st.predictions[step]
            rows.append(EvalRow(
                neuron, step, float(np.mean(ann_pred == test_y)), float(np.mean(pred == test_y)),
                float(np.mean(pred == ann_pred)), _rate(st.counts, step, n), parity if step == t else None, st.engine,
                None if e is None else e.sops_upto(step), None if e is None else e.energy_upto(step) * 1e-6,
            ))
    order = {c.kind: i for i, c in enumerate(cfgs)}
    rows.sort(key=lambda r: (order[r.neuron], r.time_steps))
    ann_acc = float(np.mean(ann_pred == test_y)) if ann_pred is not None else float("nan")
    details = {"engine": engine}
    if ray_cfg is not None:
        details["ray"] = ray_cfg.describe()
    return EvalResult(rows, n, ann_acc, details)


def _finish(plan, stats: RunStats, on_run) -> None:
    neuron, t, res, job = plan
    job.stats = stats  # type: ignore[attr-defined]
    if on_run:
        on_run(neuron, t, res, stats.per_step, stats.counts)
    job.model = None  # the run is done: free the model (the conversion result keeps it for the rows)


class _Energy:
    """SOPs and energy per sample up to step t, from one run's summed spike counts."""

    def __init__(self, result):
        self.r = result

    def sops_upto(self, t: int) -> float:
        return float(sum(l.sops[:t].sum() for l in self.r.layers))

    def energy_upto(self, t: int) -> float:
        return float(self.r.cumulative_energy_pj()[t - 1])


def _energy(model: onnx.ModelProto, feed: dict[str, np.ndarray], st: RunStats, cfg) -> _Energy:
    from . import metadata as md
    from .energy import EnergyModel, sample_inputs

    meta = md.read(model)
    em = EnergyModel(model, sample_inputs(meta.get("inputs", {}), {k: v[:1] for k, v in feed.items()}, int(meta["time_steps"])))
    return _Energy(em.account(st.counts, st.samples, cfg))


class BatchRunner:
    """Runs one SNN on batches (with the ANN's outputs for the same batch) and accumulates
    :class:`RunStats`; used in this process and, inside each actor, by the Ray shards, so both
    give the same numbers."""

    def __init__(self, job: Job, output: str, providers: Sequence[str] | None = None, threads: int = 0):
        import onnxruntime as ort

        from .runtime.session import Session

        model = job.model if isinstance(job.model, onnx.ModelProto) else onnx.load_from_string(job.model)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = threads  # 0: ORT's default (all cores)
        self.snn = Session(model, providers=providers, sess_options=so, engine=job.engine)
        self.job, self.output = job, output
        self.preds: dict[int, list[np.ndarray]] = {0: [], **{t: [] for t in job.steps}}
        self.counts: dict[str, np.ndarray] = {}
        self.steps_kept: list[np.ndarray] = []
        self.n, self.max_diff, self.max_ann = 0, 0.0, 0.0

    def add(self, batch: dict[str, np.ndarray], ann_out: np.ndarray) -> None:
        out = self.snn.run(batch)
        if self.output not in out.per_step:
            raise DataError(f"the SNN has no per-step output for '{self.output}' (convert with per_step=True)")
        steps = out.per_step[self.output]
        self.preds[0].append(ann_out.argmax(-1))
        for t in self.job.steps:
            self.preds[t].append(steps[t - 1].argmax(-1))
        for k, v in out.spike_counts.items():
            self.counts[k] = self.counts[k] + v if k in self.counts else v.astype(np.int64, copy=True)
        mean = out.outputs[self.output]
        self.max_diff = max(self.max_diff, float(np.abs(mean.astype(np.float64) - ann_out).max()))
        self.max_ann = max(self.max_ann, float(np.abs(ann_out).max()))
        self.n += len(ann_out)
        if self.job.keep_per_step:
            self.steps_kept.append(steps)

    def stats(self) -> RunStats:
        return RunStats({t: np.concatenate(p) for t, p in self.preds.items()}, self.counts, self.n, self.max_diff,
                        self.max_ann, self.snn.engine,
                        np.concatenate(self.steps_kept, axis=1) if self.steps_kept else None)


def ann_session(ann: onnx.ModelProto | bytes, providers: Sequence[str] | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    data = ann if isinstance(ann, bytes) else ann.SerializeToString()
    return ort.InferenceSession(data, so, providers=list(providers or ["CPUExecutionProvider"]))


def _run_local(ann_outs: list[np.ndarray], feed, job: Job, batch_size: int, providers, output: str) -> RunStats:
    runner = BatchRunner(job, output, providers)
    n = len(next(iter(feed.values())))
    for i, s in enumerate(range(0, n, batch_size)):
        runner.add({k: v[s : s + batch_size] for k, v in feed.items()}, ann_outs[i])
    return runner.stats()


def _rate(counts: dict[str, np.ndarray], t: int, n: int) -> float | None:
    """Mean firing rate over all neurons of all layers during the first t steps."""
    if not counts:
        return None
    spikes = sum(float(c[:t].sum()) for c in counts.values())
    neurons = sum(c[0].size for c in counts.values())
    return spikes / (neurons * n * t)


def _evaluate_events(ann, test, test_y, calib, event_input, time_steps, neurons, calibration, batch_size,
                     on_step, on_run) -> EvalResult:
    from .runtime.session import Session

    time_steps = sorted(set(int(t) for t in time_steps))
    calibration = calibration or CalibrationConfig()
    ann_sess = ann_session(ann)
    name = _logits_name(ann)
    rows: list[EvalRow] = []
    ann_accs = {}
    for t in time_steps:
        frames = test.frames(t)
        calib_frames = calib.frames(t).mean(axis=0)
        (ann_logits,) = run_batched(ann_sess, {event_input: frames.mean(axis=0)}, [name], batch_size)
        ann_pred = ann_logits.argmax(-1)
        ann_accs[t] = ann_acc = float(np.mean(ann_pred == test_y))
        for neuron in neurons:
            cfg = NeuronConfig(kind=neuron) if isinstance(neuron, str) else neuron
            res = convert(ann, time_steps=t, neuron=cfg, data={event_input: calib_frames}, calibration=calibration,
                          parity_samples=16, event_inputs=(event_input,))
            sess = Session(res.model)
            per_step, counts = _run(sess, {event_input: frames}, batch_size, name)
            if on_run:
                on_run(cfg.kind, t, res, per_step, counts)
            pred = per_step[-1].argmax(-1)
            rows.append(EvalRow(cfg.kind, t, ann_acc, float(np.mean(pred == test_y)), float(np.mean(pred == ann_pred)),
                                _rate(counts, t, len(test_y)), res.parity[name]["rel_max_diff"]))
            if on_step:
                on_step(f"{cfg.kind} T={t}")
    order = {(n if isinstance(n, str) else n.kind): i for i, n in enumerate(neurons)}
    rows.sort(key=lambda r: (order[r.neuron], r.time_steps))
    return EvalResult(rows, len(test_y), ann_accs[max(time_steps)], {"event_input": event_input, "ann_accuracy_per_t": ann_accs})


def _run(sess: Session, x, batch_size: int, name: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Running-mean outputs [T, N, ...] and spike counts summed over all batches (``x``: static
    ``[N, ...]`` or a dict with event frames ``[T, N, ...]``)."""
    from .report.measure import run_snn

    per_step, counts, _ = run_snn(sess, x, name, batch_size)
    return per_step, counts
