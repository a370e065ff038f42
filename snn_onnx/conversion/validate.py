"""Validation of a converted model: ONNX checker, ORT session creation, SNN-vs-ANN parity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from ..errors import ConversionError


def check_graph(snn: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(snn)
    except Exception as err:  # a converter bug, never the user's fault
        raise ConversionError(f"internal error: the SNN graph fails the ONNX checker: {err}") from None


def run_batched(sess: ort.InferenceSession, inputs: dict[str, np.ndarray], names: list[str], batch_size: int) -> list[np.ndarray]:
    n = len(next(iter(inputs.values())))
    parts: list[list[np.ndarray]] = [[] for _ in names]
    for s in range(0, n, batch_size):
        outs = sess.run(names, {k: v[s : s + batch_size] for k, v in inputs.items()})
        for p, o in zip(parts, outs):
            p.append(o)
    return [np.concatenate(p, axis=0) for p in parts]


def compare(ann_out: np.ndarray, snn_out: np.ndarray) -> dict[str, float]:
    a = ann_out.astype(np.float64).reshape(len(ann_out), -1)
    s = snn_out.astype(np.float64).reshape(len(snn_out), -1)
    diff = np.abs(a - s)
    scale = float(np.max(np.abs(a))) or 1.0
    na, ns = np.linalg.norm(a, axis=1), np.linalg.norm(s, axis=1)
    cos = np.sum(a * s, axis=1) / np.maximum(na * ns, 1e-30)
    out = {
        "max_abs_diff": float(diff.max()),
        "max_abs_ann": scale,
        "rel_max_diff": float(diff.max()) / scale,
        "mean_abs_diff": float(diff.mean()),
        "cosine_mean": float(cos.mean()),
    }
    if a.shape[1] > 1:
        out["argmax_agreement"] = float(np.mean(a.argmax(1) == s.argmax(1)))
    return out


def parity(
    ann: onnx.ModelProto,
    snn: onnx.ModelProto,
    inputs: dict[str, np.ndarray],
    batch_size: int = 16,
    event_inputs: tuple[str, ...] = (),
    time_steps: int = 1,
) -> dict[str, Any]:
    """Run both models on the same samples and compare every ANN output with the SNN's.
    Event inputs get each sample repeated over the T steps (``[T*B, ...]``, time-major)."""
    from ..runtime.session import make_session

    so = ort.SessionOptions()
    so.log_severity_level = 3
    ann_sess = ort.InferenceSession(ann.SerializeToString(), so, providers=["CPUExecutionProvider"])
    snn_sess = make_session(snn, providers=["CPUExecutionProvider"])
    names = [o.name for o in ann.graph.output]
    a = run_batched(ann_sess, inputs, names, batch_size)
    if event_inputs:
        parts = []
        for st in range(0, len(next(iter(inputs.values()))), batch_size):
            feed = {k: v[st : st + batch_size] for k, v in inputs.items()}
            feed = {k: np.tile(v, (time_steps,) + (1,) * (v.ndim - 1)) if k in event_inputs else v for k, v in feed.items()}
            parts.append(snn_sess.run(names, feed))
        s = [np.concatenate(p) for p in zip(*parts)]
    else:
        s = run_batched(snn_sess, inputs, names, batch_size)
    return {name: compare(x, y) for name, x, y in zip(names, a, s)}


def format_parity(parity: dict[str, Any]) -> list[str]:
    lines = []
    for name, p in parity.items():
        if not isinstance(p, dict):
            continue
        text = (
            f"parity '{name}' vs ANN on {parity.get('samples', '?')} samples: "
            f"max|Δ| {p['max_abs_diff']:.3g} ({p['rel_max_diff']:.2e} of max|ANN|), "
            f"cosine {p['cosine_mean']:.6f}"
        )
        if "argmax_agreement" in p:
            text += f", argmax agreement {100 * p['argmax_agreement']:.2f}%"
        lines.append(text)
    return lines


def _with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    return m


@dataclass
class LevelReport:
    """Outcome of :func:`level_flips`: one record per sample and both models' outputs."""

    records: list[dict[str, Any]]
    ann_outputs: dict[str, np.ndarray]
    snn_outputs: dict[str, np.ndarray]

    @property
    def exact(self) -> np.ndarray:
        """Per sample: True where every quantisation level equals the ANN's."""
        return np.array([r["first_site"] is None for r in self.records])


def level_flips(
    ann: onnx.ModelProto,
    snn: onnx.ModelProto,
    inputs: dict[str, np.ndarray],
    batch_size: int = 1,
    tie_tol: float = 1e-5,
) -> LevelReport:
    """Run ANN and SNN side by side (same batch size: float rounding in ONNX Runtime depends
    on it) and find, per sample, where the SNN's quantisation levels first differ from the
    ANN's and whether that difference is a float32 tie.

    For sites whose levels are known (QCFS, T = L), the ANN's activation is ``k * λ/L`` and the
    SNN's mean output is ``k' * θ/T``. When ``k != k'`` at the first such layer only because
    the ANN's pre-activation ``u = x*L/λ + shift`` lies within ``tie_tol`` of an integer, two
    float32 evaluations of the same sum (the ANN's one conv vs the SNN's T convs, or torch vs
    ONNX Runtime, or one batch size vs another) legitimately round to different sides of the
    boundary; everything after it follows from that one flip. Any other mismatch is a real
    error. Records: ``{"first_site", "mismatches", "ties", "non_ties"}`` (``first_site`` None
    when all levels agree)."""
    from .. import metadata as md
    from ..runtime.session import make_session

    meta = md.read(snn)
    T = meta["time_steps"]
    sites = [s for s in meta["sites"] if s["kind"] == "qcfs"]
    outs = [o.name for o in ann.graph.output]
    names = outs + [n for s in sites for n in (s["input"], s["output"])]
    so = ort.SessionOptions()
    so.log_severity_level = 3
    a_sess = ort.InferenceSession(_with_outputs(ann, names).SerializeToString(), so, providers=["CPUExecutionProvider"])
    s_sess = make_session(_with_outputs(snn, names))
    n = len(next(iter(inputs.values())))
    records: list[dict[str, Any]] = []
    a_out: dict[str, list] = {k: [] for k in outs}
    s_out: dict[str, list] = {k: [] for k in outs}
    for start in range(0, n, batch_size):
        feed = {k: v[start : start + batch_size] for k, v in inputs.items()}
        a_vals = dict(zip(names, a_sess.run(names, feed)))
        s_vals = dict(zip(names, s_sess.run(names, feed)))
        for k in outs:
            a_out[k].append(a_vals[k])
            s_out[k].append(s_vals[k])
        b = len(a_vals[outs[0]])
        batch_recs = [{"first_site": None, "mismatches": 0, "ties": 0, "non_ties": 0} for _ in range(b)]
        for s in sites:
            a_act, x = a_vals[s["output"]], a_vals[s["input"]].astype(np.float64)
            theta = np.asarray(s["threshold"], np.float64)
            if s["channel_axis"] is not None:
                shape = [1] * a_act.ndim
                shape[s["channel_axis"]] = -1
                theta = theta.reshape(shape)
            step = theta / T
            k_ann = np.rint(a_act / step)
            k_snn = np.rint(s_vals[s["output"]].reshape(T, *a_act.shape).mean(0) / step)
            u = x / step + 0.5
            tie = np.abs(u - np.rint(u)) <= tie_tol * np.maximum(1.0, np.abs(u))
            for j, rec in enumerate(batch_recs):
                bad = k_ann[j] != k_snn[j]
                if rec["first_site"] is None and bad.any():
                    rec.update(first_site=s["site"], mismatches=int(bad.sum()), ties=int((bad & tie[j]).sum()),
                               non_ties=int((bad & ~tie[j]).sum()))
        records += batch_recs
    cat = lambda d: {k: np.concatenate(v) for k, v in d.items()}  # noqa: E731
    return LevelReport(records, cat(a_out), cat(s_out))
