"""Validation of a converted model: ONNX checker, ORT session creation, SNN-vs-ANN parity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from ..errors import ConversionError, DataError
from .ann_runner import ann_session, with_outputs


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
    bad = int(np.count_nonzero(np.isfinite(a) & ~np.isfinite(s)))
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
        "non_finite": bad,  # SNN values that are NaN / Inf where the ANN's are finite
        "ann_non_finite": int(np.count_nonzero(~np.isfinite(a))),
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

    ann_sess = ann_session(ann)
    snn_sess = make_session(snn, providers=["CPUExecutionProvider"])
    names = [o.name for o in ann.graph.output]
    a = run_batched(ann_sess, inputs, names, batch_size)
    try:
        if event_inputs:
            parts = []
            for st in range(0, len(next(iter(inputs.values()))), batch_size):
                feed = {k: v[st : st + batch_size] for k, v in inputs.items()}
                feed = {k: np.tile(v, (time_steps,) + (1,) * (v.ndim - 1)) if k in event_inputs else v
                        for k, v in feed.items()}
                parts.append(snn_sess.run(names, feed))
            s = [np.concatenate(p) for p in zip(*parts)]
        else:
            s = run_batched(snn_sess, inputs, names, batch_size)
    except Exception as err:
        if not type(err).__module__.startswith("onnxruntime"):
            raise
        raise ConversionError("ONNX Runtime could not run the SNN for the parity check: " + " ".join(str(err).split())) from None
    return {name: compare(x, y) for name, x, y in zip(names, a, s)}


def format_parity(parity: dict[str, Any]) -> list[str]:
    lines = []
    for name, p in parity.items():
        if not isinstance(p, dict) or "max_abs_diff" not in p:
            continue
        text = (
            f"parity '{name}' vs ANN on {parity.get('samples', '?')} samples: "
            f"max|Δ| {p['max_abs_diff']:.3g} ({p['rel_max_diff']:.2e} of max|ANN|), "
            f"cosine {p['cosine_mean']:.6f}"
        )
        if "argmax_agreement" in p:
            text += f", argmax agreement {100 * p['argmax_agreement']:.2f}%"
        lines.append(text)
    ex = parity.get("exactness")
    if isinstance(ex, dict):
        lines.append(
            f"exactness (ParaIF, T = L): {ex['exact']}/{ex['samples']} samples reproduce every quantisation level, "
            f"{ex['tie_explained']} differ at a float tie, {ex['unexplained']} otherwise"
            + ("" if ex.get("passed") else " — FAILED")
        )
    return lines


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
    sites = [s for s in meta["sites"] if s["kind"] in ("staircase", "qcfs")]
    outs = [o.name for o in ann.graph.output]
    names = outs + [n for s in sites for n in (s["input"], s["output"])]
    a_sess = ann_session(ann, names)
    s_sess = make_session(with_outputs(snn, names))
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
            a_act, x = a_vals[s["output"]].astype(np.float64), a_vals[s["input"]].astype(np.float64)
            step_in, step_out, j1, y0 = _staircase_params(s, a_act.ndim, T)
            k_ann = np.rint((a_act - y0) / step_out)
            s_act = s_vals[s["output"]].astype(np.float64)
            if s_act.shape[0] != a_act.shape[0]:  # per step; a graph output is already the mean over T
                s_act = s_act.reshape(T, *a_act.shape).mean(0)
            k_snn = np.rint((s_act - y0) / step_out)
            u = (x - j1) / step_in  # integer at a jump of the staircase
            tie = np.abs(u - np.rint(u)) <= tie_tol * np.maximum(1.0, np.abs(u))
            for j, rec in enumerate(batch_recs):
                bad = k_ann[j] != k_snn[j]
                if rec["first_site"] is None and bad.any():
                    rec.update(first_site=s["site"], mismatches=int(bad.sum()), ties=int((bad & tie[j]).sum()),
                               non_ties=int((bad & ~tie[j]).sum()))
        records += batch_recs
    cat = lambda d: {k: np.concatenate(v) for k, v in d.items()}  # noqa: E731
    return LevelReport(records, cat(a_out), cat(s_out))


def _staircase_params(site: dict[str, Any], rank: int, T: int) -> tuple[np.ndarray, ...]:
    """(Δin, Δout, first jump, lowest level) of a staircase site, shaped to broadcast against
    its activation. Sites written before staircases were identified numerically (kind "qcfs")
    carry only θ: Δin = Δout = θ/T, the first jump at half a step, lowest level 0."""
    st = site.get("staircase")
    axis = site.get("channel_axis")
    if st is not None:
        axis = st.get("channel_axis")
        arrays = [np.asarray(st[k], np.float64) for k in ("step_in", "step_out", "first_jump")]
        arrays.append(np.asarray(st["output_offset"] if st.get("output_offset") is not None else [0.0], np.float64))
    else:
        step = np.asarray(site["threshold"], np.float64) / T
        arrays = [step, step, step / 2, np.zeros(1)]
    out = []
    for a in arrays:
        if a.size > 1 and axis is not None:
            shape = [1] * rank
            shape[axis] = -1
            a = a.reshape(shape)
        else:
            a = a.reshape(()) if a.size == 1 else a
        out.append(a)
    return tuple(out)


def check_finite_inputs(inputs: dict[str, np.ndarray]) -> None:
    """Calibration data with NaN or Inf would give thresholds of NaN, or a dead site: refuse it,
    saying how many values and where."""
    for name, arr in inputs.items():
        a = np.asarray(arr)
        if not np.issubdtype(a.dtype, np.floating):
            continue
        bad = ~np.isfinite(a)
        if bad.any():
            first = np.argwhere(bad)[0].tolist()
            raise DataError(
                f"calibration data '{name}' holds {int(bad.sum())} NaN / Inf value(s) (first at index {first}, "
                f"sample {first[0]}); remove or replace them"
            )


def non_finite_outputs(parity_result: dict[str, Any]) -> list[str]:
    return [k for k, v in parity_result.items() if isinstance(v, dict) and v.get("non_finite", 0) > 0]


@dataclass
class Exactness:
    """Outcome of :func:`exactness`: does the SNN reproduce the ANN, ties excepted."""

    samples: int
    exact: int  # samples whose every level equals the ANN's
    tie_explained: int  # mismatching samples whose first mismatch is a float tie
    unexplained: list[int]  # mismatching samples without a tie: a real error
    first_site: str | None
    output_rel_diff: float  # max relative output difference on the exact samples
    time_steps: int

    @property
    def passed(self) -> bool:
        return not self.unexplained and self.output_rel_diff <= 1e-4

    def summary(self) -> dict[str, Any]:
        return {
            "samples": self.samples, "exact": self.exact, "tie_explained": self.tie_explained,
            "unexplained": len(self.unexplained), "first_unexplained_site": self.first_site,
            "output_rel_diff_on_exact": self.output_rel_diff, "passed": self.passed,
        }

    def failure_message(self) -> str:
        if self.unexplained:
            return (f"parity gate: every neuron is ParaIF on a staircase with L = T = {self.time_steps} levels, so "
                    f"the SNN must reproduce the ANN, but it differs on {len(self.unexplained)} of {self.samples} "
                    f"calibration samples without a float tie at a step boundary (first at site '{self.first_site}')")
        return (f"parity gate: the SNN's quantisation levels match the ANN's (T = L = {self.time_steps}) but its "
                f"outputs differ by {self.output_rel_diff:.2e} of max|ANN| on exact samples (allowed 1e-4)")


def exactness(ann: onnx.ModelProto, snn: onnx.ModelProto, inputs: dict[str, np.ndarray],
              batch_size: int = 16) -> Exactness:
    """The parity gate of an SNN whose neurons are all ParaIF on staircases at T = L: every
    sample must reproduce the ANN's quantisation levels at every site, except where the first
    difference is a float32 tie at a step boundary (docs/parity.md); on the exact samples the
    outputs must agree to 1e-4 of the ANN's largest output."""
    from .. import metadata as md

    rep = level_flips(ann, snn, inputs, batch_size=batch_size)
    recs = rep.records
    exact = rep.exact
    tie = [r["first_site"] is not None and r["ties"] > 0 for r in recs]
    unexplained = [i for i, r in enumerate(recs) if r["first_site"] is not None and r["ties"] == 0]
    worst = 0.0
    for name, a in rep.ann_outputs.items():
        s = rep.snn_outputs[name]
        if exact.any():
            a64, s64 = a[exact].astype(np.float64), s[exact].astype(np.float64)
            scale = float(np.max(np.abs(a64))) or 1.0
            worst = max(worst, float(np.max(np.abs(a64 - s64))) / scale)
    first = recs[unexplained[0]]["first_site"] if unexplained else None
    return Exactness(len(recs), int(exact.sum()), int(sum(tie)), unexplained, first, worst,
                     md.read(snn)["time_steps"])
