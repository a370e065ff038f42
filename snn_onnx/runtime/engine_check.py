"""Collapsed vs step-by-step: the same spikes, sample by sample, up to float32 ties.

Both engines decide a ParaIF neuron's spike count from the sum over time of its input,
``k = #{t : acc + bias >= t·θ_pre}``. The step-by-step kernel forms ``acc`` as a sequential
float32 sum of T per-step inputs; the collapsed engine as one layer applied to summed spikes.
These are two roundings of the same real number, so where ``u = (acc + bias)/θ_pre`` lies
within rounding of an integer (a step boundary) the two may count one spike apart, and every
later layer follows that flip. :func:`compare_engines` runs both engines on the same batches,
finds per sample the first neuron layer whose counts differ, and calls each differing neuron
there a *tie* when its ``u`` (from the step engine's own inputs, summed in float64) is within
``tie_tol`` of an integer, relative to the sum's scale ``(Σ_t |x_t| + |bias|)/θ_pre``
(what float32 rounding of a sum is proportional to). Anything else is a real mismatch.
docs/parity.md does the same for ANN vs SNN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import onnx
import onnxruntime as ort

from .. import metadata as md
from ..ops import schema
from ..ops.reference import broadcast_param
from .collapsed import CollapsedModel, collapse


@dataclass
class EngineReport:
    """Per sample: ``first_site`` (None: every spike count equal), ``mismatches``, ``ties``,
    ``non_ties`` at that layer, and ``min_gap`` (smallest |u - n| among ties, for the docs);
    both engines' outputs (all graph outputs, batches concatenated along axis 0 or, for
    per-step outputs, axis 1; spike counts summed over batches)."""

    records: list[dict[str, Any]]
    static_sites: list[str]  # neurons whose input is the same at every step (exact: never tied)
    steps: dict[str, np.ndarray]
    collapsed: dict[str, np.ndarray]
    exact_batches: list[bool]  # per batch: no sample of it has a mismatch
    counts_equal: list[bool]  # per batch: every spike-count output (summed over the batch) equal

    @property
    def exact(self) -> np.ndarray:
        return np.array([r["first_site"] is None for r in self.records])

    @property
    def non_ties(self) -> int:
        return sum(r["non_ties"] for r in self.records)


def _with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in have)
    return m


def _neurons(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.domain == schema.DOMAIN and n.op_type == schema.PARA_IF_NEURON.name]


def _params(model: onnx.ModelProto, node: onnx.NodeProto, x_shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    axis = int(attrs.get("channel_axis", 1))
    th = broadcast_param(inits[node.input[1]], x_shape, axis, "ParaIFNeuron", "theta_pre")
    if len(node.input) > 3 and node.input[3]:
        bias = broadcast_param(inits[node.input[3]], x_shape, axis, "ParaIFNeuron", "bias")
    else:
        bias = np.float32(attrs.get("v_init", 0.5)) * th
    return th.astype(np.float64), np.asarray(bias, np.float64)


def compare_engines(
    snn: onnx.ModelProto,
    inputs: Mapping[str, np.ndarray],
    batch_size: int = 1,
    tie_tol: float | None = None,
    collapsed: CollapsedModel | None = None,
) -> EngineReport:
    """Run the step-by-step SNN (custom ops) and its collapsed form on the same batches of
    ``inputs`` (static inputs ``[N, ...]``) and compare spike counts neuron by neuron.

    ``tie_tol`` (default ``max(1e-5, 4·T·2⁻²⁴)``): a float32 sum of T terms in sequence is
    off by at most ``(T-1)·2⁻²⁴·Σ|terms|`` (the textbook bound for recursive summation); the
    factor 4 covers the roundings of the terms themselves (the running means and deltas of
    compensated blocks). 1e-5 is docs/parity.md's tolerance."""
    from .session import make_session

    T = int(md.read(snn)["time_steps"])
    if tie_tol is None:
        tie_tol = max(1e-5, 4 * T * 2.0**-24)
    col = collapsed or collapse(snn, site_outputs=True)
    neurons = _neurons(snn)
    extra = [n for node in neurons for n in (node.input[0], node.output[0])]
    outs = [o.name for o in snn.graph.output]
    s_sess = make_session(_with_outputs(snn, extra))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    c_out = {o.name for o in col.model.graph.output}
    k_names = [f"{node.output[0]}/collapsed_k" for node in neurons]
    if any(k not in c_out for k in k_names):
        raise ValueError("compare_engines needs a collapsed model built with site_outputs=True")
    c_sess = ort.InferenceSession(col.model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    meta = md.read(snn)
    count_names = [s["counts"] for s in meta.get("sites", []) if s.get("counts") in outs]
    per_step_names = set(meta.get("outputs", {}).values())
    n = len(next(iter(inputs.values())))
    records: list[dict[str, Any]] = []
    got: dict[str, dict[str, list]] = {"steps": {k: [] for k in outs}, "collapsed": {k: [] for k in outs}}
    exact_batches, counts_equal = [], []
    params: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for start in range(0, n, batch_size):
        feed = {k: np.asarray(v[start : start + batch_size]) for k, v in inputs.items()}
        sv = dict(zip(outs + extra, s_sess.run(outs + extra, feed)))
        cv = dict(zip(outs + k_names, c_sess.run(outs + k_names, feed)))
        for k in outs:
            got["steps"][k].append(sv[k])
            got["collapsed"][k].append(cv[k])
        b = len(next(iter(feed.values())))
        recs = [{"first_site": None, "mismatches": 0, "ties": 0, "non_ties": 0, "min_gap": None} for _ in range(b)]
        for node, kname in zip(neurons, k_names):
            y = sv[node.output[0]].reshape(T, b, *sv[node.output[0]].shape[1:])
            k_steps = np.count_nonzero(y, axis=0)
            k_coll = cv[kname].astype(np.int64)
            x = sv[node.input[0]].astype(np.float64)
            if x.shape[0] == b * T:
                xt = x.reshape(T, b, *x.shape[1:])
                acc, mag = xt.sum(0), np.abs(xt).sum(0)
            else:  # static input: the same x at every step
                acc, mag = T * x, T * np.abs(x)
            if node.name not in params:
                params[node.name] = _params(snn, node, (1, *acc.shape[1:]))
            th, bias = params[node.name]
            u = (acc + bias) / th
            scale = (mag + np.abs(bias)) / th
            gap = np.abs(u - np.clip(np.rint(u), 1, T))
            tie = gap <= tie_tol * np.maximum(1.0, scale)
            for j, rec in enumerate(recs):
                bad = k_steps[j] != k_coll[j]
                if rec["first_site"] is None and bad.any():
                    rec.update(first_site=node.name, mismatches=int(bad.sum()), ties=int((bad & tie[j]).sum()),
                               non_ties=int((bad & ~tie[j]).sum()),
                               min_gap=float(gap[j][bad].min()))
        exact_batches.append(all(r["first_site"] is None for r in recs))
        counts_equal.append(all(np.array_equal(sv[c], cv[c]) for c in count_names))
        records += recs
    cat = {}
    for eng, d in got.items():
        cat[eng] = {}
        for k, parts in d.items():
            if k in count_names:
                cat[eng][k] = np.sum(parts, axis=0)
            else:
                cat[eng][k] = np.concatenate(parts, axis=1 if k in per_step_names else 0)
    return EngineReport(records, list(col.info["static_sites"]), cat["steps"], cat["collapsed"], exact_batches, counts_equal)
