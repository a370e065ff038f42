"""Accuracy of the ANN and of its SNN conversions over time steps and neuron types.

The IF neuron is causal, so one run at T_max gives the accuracy at every t <= T_max from the
running-mean output (anytime accuracy). The ParaIF neuron looks at all T steps at once, so
each T is converted and run separately.
"""

from __future__ import annotations

import functools
import warnings

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from .conversion.calibrate import CalibrationConfig
from .conversion.pipeline import ConversionWarning, as_inputs, convert
from .conversion.rewrite import NeuronConfig
from .conversion.validate import run_batched
from .errors import DataError
from .runtime.session import Session


@dataclass
class EvalRow:
    neuron: str
    time_steps: int
    ann_accuracy: float
    snn_accuracy: float
    agreement: float  # fraction of samples where SNN and ANN predict the same class
    firing_rate: float | None = None  # mean spikes per neuron per step (all layers)
    parity_rel_max_diff: float | None = None


@dataclass
class EvalResult:
    rows: list[EvalRow]
    samples: int
    ann_accuracy: float
    details: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        head = f"{'neuron':<10}{'T':>4}  {'ANN acc':>8}  {'SNN acc':>8}  {'Δ acc':>7}  {'agree':>7}  {'rate':>6}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            rate = "" if r.firing_rate is None else f"{r.firing_rate:.3f}"
            lines.append(
                f"{r.neuron:<10}{r.time_steps:>4}  {100 * r.ann_accuracy:>7.2f}%  {100 * r.snn_accuracy:>7.2f}%  "
                f"{100 * (r.snn_accuracy - r.ann_accuracy):>+6.2f}  {100 * r.agreement:>6.2f}%  {rate:>6}"
            )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "ann_accuracy": self.ann_accuracy,
            "rows": [r.__dict__ for r in self.rows],
            **self.details,
        }


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
    event_input: str | None = None,
) -> EvalResult:
    """ANN vs SNN accuracy on ``(test_x, test_y)``; thresholds calibrated on ``calib_x``.
    ``neurons``: names (``"if"``, ``"paraif"``, ``"signed-if"``) or :class:`NeuronConfig`
    (``NeuronConfig(kind="lif", leak=0.9)``); sequential neurons (all but ParaIF) are run once
    at the largest T and read at every t (anytime accuracy).

    ``on_run(neuron, T, conversion_result, per_step_outputs, spike_counts)`` is called after
    each SNN run (IF: once, at T_max; others: once per T), e.g. to write a report.

    ``event_input``: the name of an input that takes one frame per step; ``test_x`` and
    ``calib_x`` are then event data with a ``frames(T)`` method (``snn_onnx.data.events``):
    every T and neuron is converted and run on its own (the frames depend on T), thresholds
    are calibrated on the calibration samples' mean frames, and the ANN is evaluated on the
    test samples' mean frames (what the SNN's rates approximate)."""
    if test_y is None:
        raise DataError("evaluation needs labelled data (y)")
    if event_input is not None:
        return _evaluate_events(ann, test_x, test_y, calib_x, event_input, time_steps, neurons, calibration,
                                batch_size, on_step, on_run)
    time_steps = sorted(set(int(t) for t in time_steps))
    calibration = calibration or CalibrationConfig()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    ann_sess = ort.InferenceSession(ann.SerializeToString(), so, providers=["CPUExecutionProvider"])
    name = _logits_name(ann)
    feed = as_inputs(test_x, ann)
    (ann_logits,) = run_batched(ann_sess, feed, [name], batch_size)
    ann_pred = ann_logits.argmax(-1)
    ann_acc = float(np.mean(ann_pred == test_y))
    rows: list[EvalRow] = []

    def tick(msg: str) -> None:
        if on_step:
            on_step(msg)

    for neuron in neurons:
        cfg = NeuronConfig(kind=neuron) if isinstance(neuron, str) else neuron
        label = cfg.kind
        if cfg.kind != "paraif":  # causal: step t of a T_max run is the T = t SNN
            t_max = max(time_steps)
            res = convert(ann, time_steps=t_max, neuron=cfg, data=calib_x, calibration=calibration, parity_samples=16)
            sess = Session(res.model)
            per_step, counts = _run(sess, test_x, batch_size, name)
            if on_run:
                on_run(label, t_max, res, per_step, counts)
            for t in time_steps:
                pred = per_step[t - 1].argmax(-1)
                rows.append(EvalRow(label, t, ann_acc, float(np.mean(pred == test_y)), float(np.mean(pred == ann_pred)),
                                    _rate(counts, t, len(test_x))))
                tick(f"{label} T={t}")
        else:
            for t in time_steps:
                res = convert(ann, time_steps=t, neuron=cfg, data=calib_x, calibration=calibration, parity_samples=16)
                sess = Session(res.model)
                per_step, counts = _run(sess, test_x, batch_size, name)
                if on_run:
                    on_run(label, t, res, per_step, counts)
                pred = per_step[-1].argmax(-1)
                rows.append(EvalRow(label, t, ann_acc, float(np.mean(pred == test_y)), float(np.mean(pred == ann_pred)),
                                    _rate(counts, t, len(test_x)), res.parity[name]["rel_max_diff"]))
                tick(f"{label} T={t}")
    return EvalResult(rows, len(test_x), ann_acc)


def _evaluate_events(ann, test, test_y, calib, event_input, time_steps, neurons, calibration, batch_size,
                     on_step, on_run) -> EvalResult:
    time_steps = sorted(set(int(t) for t in time_steps))
    calibration = calibration or CalibrationConfig()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    ann_sess = ort.InferenceSession(ann.SerializeToString(), so, providers=["CPUExecutionProvider"])
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


def _rate(counts: dict[str, np.ndarray], t: int, n: int) -> float | None:
    """Mean firing rate over all neurons of all layers during the first t steps."""
    if not counts:
        return None
    spikes = sum(float(c[:t].sum()) for c in counts.values())
    neurons = sum(c[0].size for c in counts.values())
    return spikes / (neurons * n * t)
