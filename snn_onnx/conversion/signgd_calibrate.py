"""SignGD mode: what the neurons need from the ANN's values on the calibration samples.

* **Amplitude λ** of every neuron of a site: the largest magnitude (or the percentile of
  magnitudes, ``CalibrationConfig.method``) of the function's output in the ANN, per channel
  with ``per_channel`` (axis 1 of NCHW and ``[B, C]`` values, the last axis of token values
  ``[B, N, C]``), else per tensor. A neuron's estimate moves at most ``3·λ`` with the default
  steps, so λ must cover the output's range; its resolution is ``λ·η_T``. Pooling and
  ReduceMax trees take the input's magnitude (every node of the tree is a max of inputs);
  MatMul's product neurons ``a_nk·b_km`` take ``max_k max|a_·k|·max|b_k·|`` per tensor.
* **Pad value** of a MaxPool tree: ``−(2·max|x| + 1)``, below every input, so a padded
  position never wins (the ANN's MaxPool ignores its padding).
* **Denominator floor** of ``div`` / ``div_sqrt``: half the smallest denominator the ANN
  computes (0 when it is not always positive), so an early estimate near 0 cannot blow up.
* **Shapes** of every value the rewrite touches (one sample, from the same run).
* **Softmax shifts**: the largest softmax input (``signgd_lower``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import onnx
import onnx_ir as ir

from ..errors import CalibrationError
from .ann_runner import ann_session
from .calibrate import CalibrationConfig, SiteRequest, _SiteStats
from .rules.signgd import SgSite


@dataclass
class SiteCalibration:
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # value name -> one sample's shape
    amplitude: dict[str, np.ndarray] = field(default_factory=dict)  # site -> λ, broadcasting to one sample
    channel_axis: dict[str, int | None] = field(default_factory=dict)  # site -> per-sample axis of λ (None: tensor)
    pad: dict[str, float] = field(default_factory=dict)  # pool site -> pad value
    floor: dict[str, float] = field(default_factory=dict)  # div / div_sqrt site -> denominator floor
    method: str = "max"


def _batches(inputs: dict[str, np.ndarray], bs: int):
    n = len(next(iter(inputs.values())))
    for s in range(0, n, bs):
        yield {k: v[s: s + bs] for k, v in inputs.items()}


def softmax_shifts(ann: onnx.ModelProto, values: list[ir.Value], inputs: dict[str, np.ndarray], bs: int) -> dict[str, float]:
    """The largest value each softmax input takes on the calibration samples."""
    if not values:
        return {}
    names = [v.name for v in values]
    sess = ann_session(ann, names)
    out = {n: -np.inf for n in names}
    for feed in _batches(inputs, bs):
        for n, arr in zip(names, sess.run(names, feed)):
            out[n] = max(out[n], float(np.max(arr)))
    bad = [n for n, v in out.items() if not np.isfinite(v)]
    if bad:
        raise CalibrationError(f"softmax input(s) {bad} are not finite on the calibration samples")
    return out


def channel_axis(rank: int) -> int | None:
    """Per-sample axis of a per-channel amplitude for a value of this rank (batch included)."""
    if rank == 3:
        return 1  # tokens [B, N, C]: features last (per sample: axis 1)
    if rank >= 2:
        return 0  # [B, C, ...]: per sample, channels first
    return None


class _AbsStats:
    """Max / percentile of |x| per channel (or per tensor)."""

    def __init__(self, name: str, axis: int | None, cfg: CalibrationConfig, n_batches: int, rng):
        self.axis = axis
        c = replace(cfg, per_channel=axis is not None)
        self.inner = _SiteStats(SiteRequest(name, name, (axis + 1) if axis is not None else 1), c, n_batches, rng)

    def update(self, x: np.ndarray) -> None:
        self.inner.update(np.abs(x))

    def result(self, rank: int) -> np.ndarray:
        th, _ = self.inner.threshold()
        th = np.asarray(th, np.float32)
        if self.axis is None:
            return th.reshape(())
        return th.reshape([th.size] + [1] * (rank - 2 - self.axis))


def calibrate_sites(
    ann: onnx.ModelProto,
    sites: list[SgSite],
    inputs: dict[str, np.ndarray],
    cfg: CalibrationConfig,
    bs: int,
    progress: Callable[[int], None] | None = None,
    extra: list[str] = (),
) -> SiteCalibration:
    """Amplitudes, pad values, floors and shapes for ``sites`` from the (lowered) ANN."""
    res = SiteCalibration(method=cfg.method)
    names: list[str] = list(dict.fromkeys(
        [v.name for s in sites for v in [*s.inputs, s.output]] + list(extra)
        + [o.name for o in ann.graph.output]))
    sess = ann_session(ann, names)
    n = len(next(iter(inputs.values())))
    n_batches = (n + bs - 1) // bs
    rng = np.random.default_rng(cfg.seed)
    ranks: dict[str, int] = {}
    abs_stats: dict[str, _AbsStats] = {}
    mins: dict[str, float] = {}
    mm: dict[str, list[np.ndarray | None]] = {}
    for feed in _batches(inputs, bs):
        arrays = dict(zip(names, sess.run(names, feed)))
        for k, a in arrays.items():
            res.shapes.setdefault(k, tuple(int(d) for d in a.shape[1:]))
            ranks.setdefault(k, a.ndim)
        for s in sites:
            if s.kind == "matmul":
                a, b = arrays[s.inputs[0].name], arrays[s.inputs[1].name]
                ka = np.abs(a).reshape(-1, a.shape[-1]).max(axis=0)  # per k, over batch and N
                kb = np.abs(np.moveaxis(b, -2, -1)).reshape(-1, b.shape[-2]).max(axis=0)  # per k, over batch and M
                prev = mm.setdefault(s.name, [None, None])
                prev[0] = ka if prev[0] is None else np.maximum(prev[0], ka)
                prev[1] = kb if prev[1] is None else np.maximum(prev[1], kb)
                continue
            src = s.inputs[0] if s.kind in ("pool", "reduce_max") else s.output
            if s.name not in abs_stats:
                axis = _site_axis(s, ranks[src.name], cfg)
                abs_stats[s.name] = _AbsStats(s.name, axis, cfg, n_batches, rng)
                res.channel_axis[s.name] = axis
            abs_stats[s.name].update(arrays[src.name])
            if s.function in ("div", "div_sqrt"):
                mins[s.name] = min(mins.get(s.name, np.inf), float(np.min(arrays[s.inputs[1].name])))
        if progress is not None:
            progress(len(next(iter(feed.values()))))
    for s in sites:
        if s.kind == "matmul":
            ka, kb = mm[s.name]
            lam = float(np.max(ka * kb)) if ka.size == kb.size else float(np.max(ka) * np.max(kb))
            res.amplitude[s.name] = np.asarray(lam if lam > 0 and np.isfinite(lam) else 1.0, np.float32)
            res.channel_axis[s.name] = None
            continue
        src = s.inputs[0] if s.kind in ("pool", "reduce_max") else s.output
        lam = abs_stats[s.name].result(ranks[src.name])
        if not np.all(np.isfinite(lam)):
            raise CalibrationError(f"site '{s.name}': its values are not finite on the calibration samples")
        res.amplitude[s.name] = lam
        if s.kind == "pool":
            res.pad[s.name] = -(2.0 * float(np.max(lam)) + 1.0)
        if s.name in mins:
            m = mins[s.name]
            res.floor[s.name] = 0.5 * m if np.isfinite(m) and m > 0 else 0.0
    return res


def _site_axis(site: SgSite, rank: int, cfg: CalibrationConfig) -> int | None:
    if not cfg.per_channel:
        return None
    axis = channel_axis(rank)
    if site.kind == "reduce_max":  # per channel only if the channels are not reduced
        if not site.attrs.get("global") or axis != 0:
            return None
    return axis
