"""One measured run of an SNN on labelled data: anytime accuracy, ANN agreement, firing rates,
SOPs and energy. Everything a report shows comes from a :class:`RunResult`.

Anytime accuracy: the SNN's per-step output is the running mean after each step, so one run at
T gives the prediction after every ``t <= T``. For the IF neuron this *is* what an SNN stopped
after t steps outputs. ParaIF looks at all T inputs before its first spike, so its running
mean at ``t < T`` is not what a ParaIF SNN converted for T = t computes (the report says so).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import onnx

from .. import metadata as md
from ..energy import EnergyConfig, EnergyModel, EnergyResult, sample_inputs
from ..errors import DataError
from ..version import __version__

RATE_BINS = 20  # histogram buckets of per-neuron firing rates in [0, max]


@dataclass
class StepPoint:
    t: int
    accuracy: float | None
    agreement: float | None
    firing_rate: float
    energy_pj: float  # spent up to and including step t, per sample
    spikes: float = 0.0  # emitted up to and including step t, per sample (all spiking layers)


@dataclass
class RunResult:
    """A measured run. ``config``: how it was made (model, neuron, T, data, energy costs);
    ``energy``: per-layer and per-step costs; ``anytime``: accuracy and energy after each t;
    ``histograms``: per spiking layer, per-neuron firing rates (overall and per step);
    ``potentials``: per spiking layer, membrane-potential histograms and near-threshold
    fractions (``report.potentials``; only when measured with ``potentials=True``)."""

    config: dict[str, Any]
    energy: EnergyResult
    anytime: list[StepPoint]
    accuracy: float | None
    ann_accuracy: float | None
    agreement: float | None
    samples: int
    histograms: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    potentials: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.config.get("name", "run"))

    @property
    def causal(self) -> bool:
        return self.config.get("neuron", {}).get("kind") != "paraif"

    def headline(self) -> dict[str, Any]:
        e = self.energy
        return {
            "accuracy": self.accuracy, "ann_accuracy": self.ann_accuracy, "agreement": self.agreement,
            "firing_rate": e.firing_rate, "sops": e.sops, "macs": e.macs, "energy_uj": e.energy_pj * 1e-6,
            "ann_macs": e.ann_macs, "ann_energy_uj": e.ann_energy_pj * 1e-6, "energy_ratio": e.energy_ratio,
            "spikes": self.anytime[-1].spikes if self.anytime else 0.0,
            "time_steps": e.time_steps, "samples": self.samples,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name, "headline": self.headline(),
            "anytime": [p.__dict__ for p in self.anytime],
            "anytime_causal": self.causal,
            "energy": self.energy.as_dict(),
            "mac_layers": [{"name": l.name, "op": l.op, "role": l.role, "reason": l.reason} for l in self.energy.mac_layers()],
            "seconds": self.seconds,
            **({"potentials": _potential_summary(self.potentials)} if self.potentials else {}),
        }


def _potential_summary(potentials):
    from .potentials import summary

    return summary(potentials)


def run_snn(session, x: np.ndarray | Mapping[str, np.ndarray], output: str, batch_size: int = 64,
            potentials=None) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """Per-step running-mean outputs ``[T, N, ...]`` of ``output`` and spike counts summed over
    all batches. ``x``: static inputs ``[N, ...]`` (an array or a dict by input name); event
    inputs (``session.input_kinds``) as frames ``[T, N, ...]``. ``potentials``: a
    ``report.potentials.PotentialStats`` that takes each batch's potentials (the session must
    declare them)."""
    feed = x if isinstance(x, Mapping) else {session.input_names[0]: x}
    kinds = session.input_kinds
    n = num_samples(feed, kinds)
    if n == 0:
        raise DataError("no samples to run")
    steps, counts = [], {}
    for s in range(0, n, batch_size):
        out = session.run(batch(feed, kinds, s, s + batch_size))
        if output not in out.per_step:
            raise DataError(f"the SNN has no per-step output for '{output}' (convert with per_step=True)")
        steps.append(out.per_step[output])
        if potentials is not None:
            potentials.add(out.potentials)
        for k, v in out.spike_counts.items():
            counts[k] = counts[k] + v if k in counts else v.astype(np.int64, copy=True)
    return np.concatenate(steps, axis=1), counts, n


def _is_event(kinds: Mapping[str, str], name: str) -> bool:
    return kinds.get(name) == "event"


def num_samples(feed: Mapping[str, np.ndarray], kinds: Mapping[str, str]) -> int:
    """Samples in a feed: axis 1 of event frames ``[T, N, ...]``, else axis 0."""
    k, v = next(iter(feed.items()))
    return int(np.shape(v)[1 if _is_event(kinds, k) else 0])


def batch(feed: Mapping[str, np.ndarray], kinds: Mapping[str, str], start: int, stop: int) -> dict[str, np.ndarray]:
    return {k: (v[:, start:stop] if _is_event(kinds, k) else v[start:stop]) for k, v in feed.items()}


def ann_view(feed: Mapping[str, np.ndarray], kinds: Mapping[str, str]) -> dict[str, np.ndarray]:
    """What the ANN is compared on: static inputs as they are, event frames ``[T, N, ...]`` as
    their mean over time ``[N, ...]`` (what the SNN's firing rates approximate)."""
    return {k: (np.asarray(v).mean(axis=0) if _is_event(kinds, k) else v) for k, v in feed.items()}


def first_sample(feed: Mapping[str, np.ndarray], kinds: Mapping[str, str]) -> dict[str, np.ndarray]:
    """One sample, as the energy model takes it: static ``[1, ...]``, event ``[T, ...]``."""
    return {k: (np.asarray(v)[:, 0] if _is_event(kinds, k) else np.asarray(v)[:1]) for k, v in feed.items()}


def summarize(
    model: onnx.ModelProto,
    per_step: np.ndarray,
    counts: Mapping[str, np.ndarray],
    samples: int,
    sample: Mapping[str, np.ndarray],
    *,
    labels: np.ndarray | None = None,
    ann_logits: np.ndarray | None = None,
    energy: EnergyConfig | None = None,
    config: Mapping[str, Any] | None = None,
    energy_model: EnergyModel | None = None,
) -> RunResult:
    """A :class:`RunResult` from a run's per-step outputs and spike counts (``run_snn``)."""
    t0 = time.perf_counter()
    meta = md.read(model)
    em = energy_model or EnergyModel(model, sample_inputs(meta.get("inputs", {}), sample, int(meta["time_steps"])))
    res = em.account(counts, samples, energy)
    T = res.time_steps
    if per_step.shape[0] != T:
        raise DataError(f"per-step output has {per_step.shape[0]} steps, the model has T={T}")
    ann_pred = ann_logits.argmax(-1) if ann_logits is not None else None
    cum = res.cumulative_energy_pj()
    rate_t = res.firing_rate_per_step
    spikes_t = np.cumsum(sum((n.rate_per_step * n.neurons for n in res.neurons), np.zeros(T)))
    anytime = []
    for t in range(1, T + 1):
        pred = per_step[t - 1].argmax(-1)
        acc = float(np.mean(pred == labels)) if labels is not None else None
        agr = float(np.mean(pred == ann_pred)) if ann_pred is not None else None
        # the firing rate over the first t steps
        rate = float(np.mean(rate_t[:t]))
        anytime.append(StepPoint(t, acc, agr, rate, float(cum[t - 1]), float(spikes_t[t - 1])))
    last = anytime[-1]
    cfg = {
        "time_steps": T, "neuron": meta.get("neuron", {}), "source": meta.get("source"),
        "energy": {"e_ac_pj": res.config.e_ac_pj, "e_mac_pj": res.config.e_mac_pj},
        "samples": samples, "snn_onnx_version": __version__, **dict(config or {}),
    }
    hist = {}
    for n in res.neurons:
        c = np.asarray(counts[n.site]).reshape(T, -1) / samples
        hist[n.site] = {"overall": n.per_neuron_rate, "per_step": [_hist(c[t]) for t in range(T)]}
    return RunResult(
        config=cfg, energy=res, anytime=anytime, accuracy=last.accuracy,
        ann_accuracy=float(np.mean(ann_pred == labels)) if ann_pred is not None and labels is not None else None,
        agreement=last.agreement, samples=samples, histograms=hist, seconds=time.perf_counter() - t0,
    )


def _hist(values: np.ndarray) -> dict[str, Any]:
    """Summary of a distribution for a TensorBoard histogram (keeps the report small)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    hi = float(v.max()) if v.size else 0.0
    edges = np.linspace(0.0, max(hi, 1e-12), RATE_BINS + 1)
    counts, _ = np.histogram(v, bins=edges)
    return {"min": float(v.min()) if v.size else 0.0, "max": hi, "num": int(v.size), "sum": float(v.sum()),
            "sum_squares": float(np.sum(v * v)), "edges": edges, "counts": counts}


def measure(
    snn: onnx.ModelProto,
    x: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    ann: onnx.ModelProto | None = None,
    batch_size: int = 64,
    energy: EnergyConfig | None = None,
    config: Mapping[str, Any] | None = None,
    providers: Sequence[str] | None = None,
    potentials: bool = False,
    engine: str = "steps",
) -> RunResult:
    """Run ``snn`` on ``x`` (static inputs ``[N, ...]``; event inputs as frames ``[T, N, ...]``)
    and measure everything a report shows; with ``ann`` also the ANN's accuracy and the SNN's
    agreement with it (on event data the ANN sees each sample's mean frame). ``potentials``:
    also the membrane potentials (the neurons' debug output, ``RunResult.potentials``).
    ``engine``: see ``snn_onnx.Session`` (the config records the engine used)."""
    from ..runtime.session import Session

    t0 = time.perf_counter()
    sess = Session(snn, providers=providers, potentials=potentials, engine=engine)
    config = {**dict(config or {}), "engine": sess.engine}
    if not sess.output_names:
        raise DataError("the SNN has no outputs")
    output = sess.output_names[0]
    feed = x if isinstance(x, Mapping) else {sess.input_names[0]: x}
    stats = None
    if potentials:
        from .potentials import PotentialStats

        stats = PotentialStats(sess.potential_sites, sess.time_steps)
    per_step, counts, n = run_snn(sess, feed, output, batch_size, potentials=stats)
    ann_logits = ann_outputs(ann, ann_view(feed, sess.input_kinds), output, batch_size) if ann is not None else None
    res = summarize(snn, per_step, counts, n, first_sample(feed, sess.input_kinds), labels=labels,
                    ann_logits=ann_logits, energy=energy, config=config)
    if stats is not None:
        res.potentials = stats.result()
    res.seconds = time.perf_counter() - t0
    return res


def ann_outputs(ann: onnx.ModelProto, x: np.ndarray | Mapping[str, np.ndarray], output: str, batch_size: int = 64) -> np.ndarray:
    """The ANN's ``output`` on ``x``, with ONNX Runtime."""
    import onnxruntime as ort

    from ..conversion.pipeline import as_inputs
    from ..conversion.validate import run_batched

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(ann.SerializeToString(), so, providers=["CPUExecutionProvider"])
    (out,) = run_batched(sess, as_inputs(x, ann), [output], batch_size)
    return out
