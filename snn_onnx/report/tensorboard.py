"""TensorBoard event files of a run, written with tensorboard's own event writer (no torch, no
TensorFlow): the report's scalars, step by step, and histograms of per-neuron firing rates.

Tags (step = time step t, 1..T, unless noted):

* ``anytime/accuracy``, ``anytime/agreement``, ``anytime/firing_rate`` (over steps 1..t),
  ``anytime/energy_uj`` (spent up to t), ``anytime/spikes`` (per sample, emitted up to t)
* ``firing_rate/<layer>``: the layer's firing rate at step t; ``firing_rate/all``
* ``sops/<layer>``, ``energy_uj/<layer>``: a counted layer's SOPs and energy at step t
* ``summary/<key>`` (step T): accuracy, ann_accuracy, agreement, firing_rate, sops, macs,
  energy_uj, ann_energy_uj, energy_ratio, spikes
* histograms ``neuron_rate/<layer>`` (step T: spikes per step of each neuron over the run) and
  ``neuron_rate_per_step/<layer>`` (step t: fraction of samples in which each neuron fired at t)
* with membrane potentials (``--potentials``): histograms ``PotentialHist/<layer>`` (step t: the
  layer's potentials at t in units of its threshold, ``report.potentials``) and scalars
  ``PotentialNearThresh/<layer>`` (step t: the fraction within the margin of a threshold)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import OptionalDependencyError
from .measure import RunResult, _hist


def _imports():
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise OptionalDependencyError("TensorBoard files need tensorboard: pip install 'snn-onnx[report]'") from None
    return event_pb2, summary_pb2, EventFileWriter


def _tag(name: str) -> str:
    return name.replace(" ", "_")


class _Writer:
    def __init__(self, logdir: Path):
        self.event_pb2, self.summary_pb2, cls = _imports()
        self.writer = cls(str(logdir))
        self.wall = time.time()

    def _add(self, value, step: int) -> None:
        summary = self.summary_pb2.Summary(value=[value])
        self.writer.add_event(self.event_pb2.Event(wall_time=self.wall, step=int(step), summary=summary))

    def scalar(self, tag: str, value: float | None, step: int) -> None:
        if value is None or not np.isfinite(value):
            return
        self._add(self.summary_pb2.Summary.Value(tag=_tag(tag), simple_value=float(value)), step)

    def histogram(self, tag: str, h: dict[str, Any], step: int) -> None:
        proto = self.summary_pb2.HistogramProto(
            min=h["min"], max=h["max"], num=h["num"], sum=h["sum"], sum_squares=h["sum_squares"],
            bucket_limit=[float(v) for v in h["edges"][1:]], bucket=[float(c) for c in h["counts"]],
        )
        self._add(self.summary_pb2.Summary.Value(tag=_tag(tag), histo=proto), step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


def anytime_tags(run: RunResult, w: _Writer) -> None:
    for p in run.anytime:
        w.scalar("anytime/accuracy", p.accuracy, p.t)
        w.scalar("anytime/agreement", p.agreement, p.t)
        w.scalar("anytime/firing_rate", p.firing_rate, p.t)
        w.scalar("anytime/energy_uj", p.energy_pj * 1e-6, p.t)
        w.scalar("anytime/spikes", p.spikes, p.t)


def firing_rate_tags(run: RunResult, w: _Writer) -> None:
    e = run.energy
    for n in e.neurons:
        for t, r in enumerate(n.rate_per_step, start=1):
            w.scalar(f"firing_rate/{n.site}", float(r), t)
    for t, r in enumerate(e.firing_rate_per_step, start=1):
        w.scalar("firing_rate/all", float(r), t)


def energy_tags(run: RunResult, w: _Writer) -> None:
    e = run.energy
    for layer in e.layers:
        per_step_e = layer.energy_per_step_pj
        for t in range(e.time_steps):
            if layer.counting == "SOP":
                w.scalar(f"sops/{layer.name}", float(layer.sops[t]), t + 1)
            w.scalar(f"energy_uj/{layer.name}", float(per_step_e[t]) * 1e-6, t + 1)


def summary_tags(run: RunResult, w: _Writer) -> None:
    for key, value in run.headline().items():
        if isinstance(value, (int, float)) and key not in ("time_steps", "samples"):
            w.scalar(f"summary/{key}", float(value), run.energy.time_steps)


def neuron_rate_tags(run: RunResult, w: _Writer) -> None:
    for site, h in run.histograms.items():
        w.histogram(f"neuron_rate/{site}", _hist(h["overall"]), run.energy.time_steps)
        for t, ht in enumerate(h["per_step"], start=1):
            w.histogram(f"neuron_rate_per_step/{site}", ht, t)


def potential_tags(run: RunResult, w: _Writer) -> None:
    from .potentials import step_histogram

    for site, p in run.potentials.items():
        for t in range(len(p["near"])):
            if p["num"][t]:
                w.histogram(f"PotentialHist/{site}", step_histogram(p, t), t + 1)
                w.scalar(f"PotentialNearThresh/{site}", p["near"][t], t + 1)


#: Each writer adds one family of tags. A new per-layer measurement is one more function here
#: that returns without writing when the run lacks the data (as potential_tags does).
TAG_WRITERS: list[Callable[[RunResult, _Writer], None]] = [
    anytime_tags, firing_rate_tags, energy_tags, summary_tags, neuron_rate_tags, potential_tags,
]


def write_events(run: RunResult, logdir: str | Path) -> Path:
    """Write the run's scalars and histograms under ``logdir``; returns it."""
    logdir = Path(logdir)
    w = _Writer(logdir)
    try:
        for writer in TAG_WRITERS:
            writer(run, w)
    finally:
        w.close()
    return logdir
