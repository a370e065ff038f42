"""Threshold methods for ReLU sites beyond max / percentile, each run on the calibration samples
with ONNX Runtime.

* ``mse`` — the threshold that minimises the squared error between a site's activations and
  what the neuron makes of them at T steps (Li et al., ICML 2021, "A free lunch from ANN:
  towards efficient, accurate spiking neural networks calibration", §4.1).
* ``ltb`` — local threshold balancing (Bu, Li & Yu, CVPR 2025, "Inference-scale complexity in
  ANN-SNN conversion for high-performance and low-power applications"; SpikingJelly's
  ``LocalThresholdBalancingRecipe``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import onnx
from onnx import helper

from ...errors import CalibrationError
from ..calibrate import CalibrationConfig, SiteRequest, collect

_SAMPLE_CAP = 1 << 20  # values kept per site (all channels together) for the search
MSE_STEPS = 95  # candidates max·(1 − 0.01·i), i = 0 … 94 (Li et al.'s grid)
LTB_EPS = 1e-6


@dataclass(frozen=True)
class ThresholdSite:
    """One calibrated activation site: its pre-activation, the nodes of its activation chain
    (the clip for ``ltb`` goes in front of them) and the axis of per-channel thresholds."""

    name: str
    value: str  # pre-activation in the ANN
    chain: tuple[str, ...]  # first output of each ANN node of the activation (some read ``value``)
    channel_axis: int


def neuron_quantizer(x: np.ndarray, theta: np.ndarray, time_steps: int, v_init: float) -> np.ndarray:
    """What a neuron's mean output over T steps makes of a constant input ``x`` (exactly for
    ParaIF, the sequential IF neuron on a constant input too): ``θ/T·clamp(floor(T·x/θ + v_init), 0, T)``."""
    q = np.clip(np.floor(x * (time_steps / theta) + v_init), 0, time_steps)
    return q * (theta / time_steps)


class MSEStats:
    """A bounded random sample of a site's positive values (per tensor or per channel) and its
    maximum; ``threshold()`` searches ``θ = max·(1 − 0.01·i)`` for the least squared error of
    :func:`neuron_quantizer` at T steps (values ≤ 0 give no error at any θ and are left out)."""

    def __init__(self, request: SiteRequest, config: CalibrationConfig, n_batches: int, rng,
                 time_steps: int, v_init: float):
        self.req, self.cfg, self.rng = request, config, rng
        self.T, self.v_init = time_steps, v_init
        self.max: np.ndarray | None = None
        self.samples: list[np.ndarray] = []
        self.n_batches = max(1, n_batches)

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float32)
        if self.cfg.per_channel:
            if x.ndim < 2:
                raise CalibrationError(f"site '{self.req.site}': per-channel calibration needs rank >= 2, got {x.shape}")
            axis = self.req.channel_axis % x.ndim
            xc = np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
        else:
            xc = x.reshape(1, -1)
        m = xc.max(axis=1)
        self.max = m if self.max is None else np.maximum(self.max, m)
        per_batch = max(256, _SAMPLE_CAP // (self.n_batches * xc.shape[0]))  # columns kept per batch
        if xc.shape[1] > per_batch:
            xc = xc[:, self.rng.choice(xc.shape[1], per_batch, replace=False)]
        self.samples.append(xc)

    def threshold(self) -> tuple[np.ndarray, list[int]]:
        x = np.concatenate(self.samples, axis=1)
        x = np.where(x > 0, x, 0.0).astype(np.float32)  # zeros cost nothing at any threshold
        top = self.max.astype(np.float64)
        dead = [int(i) for i in np.flatnonzero(~(top > 0))]
        top = np.where(top > 0, top, np.nan)
        best = top.copy()
        best_err = np.full(top.shape, np.inf)
        for i in range(MSE_STEPS):
            th = top * (1.0 - 0.01 * i)
            with np.errstate(invalid="ignore"):
                d = x - neuron_quantizer(x, th[:, None].astype(np.float32), self.T, self.v_init)
                err = np.einsum("ij,ij->i", d, d, dtype=np.float64)
            better = err < best_err
            best = np.where(better, th, best)
            best_err = np.where(better, err, best_err)
        if dead:
            fill = np.nanmax(best) if len(dead) < best.size else 1.0
            best = np.where(np.isnan(best), fill, best)
        best = best.astype(np.float32)
        return (best.reshape(()) if not self.cfg.per_channel else best), dead


def mse_thresholds(ann: onnx.ModelProto, requests: list[SiteRequest], inputs: dict[str, np.ndarray],
                   config: CalibrationConfig, time_steps: int, v_init: float, progress=None) -> dict[str, Any]:
    """Least-squared-error thresholds at T steps (Li et al., ICML 2021, §4.1: a grid search of
    ``max·(1 − 0.01·i)`` for the neuron's clip-and-round of the ANN's activations)."""
    return collect(ann, requests, inputs, config, progress,
                   stats_factory=lambda r, c, n, rng: MSEStats(r, c, n, rng, time_steps, v_init))


def ltb_thresholds(ann: onnx.ModelProto, sites: list[ThresholdSite], inputs: dict[str, np.ndarray],
                   config: CalibrationConfig, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Local threshold balancing (Bu, Li & Yu, CVPR 2025; SpikingJelly's
    ``LocalThresholdBalancingRecipe``): every threshold starts at 0; for each calibration batch,
    site by site in graph order, ``θ ← max(θ + 2·mean((x − θ)⁺), ε)`` with the mean over the batch
    (and, per channel, over every axis but the channel's), where ``x`` is the site's
    pre-activation computed by the ANN with every earlier site's activation clipped at its
    current θ. One pass over the calibration samples (``num_samples`` in batches of
    ``batch_size``), as SpikingJelly does. The update is a gradient step of the clipping error
    ``E[(min(x, θ) − x)²]``; stopped after one pass it settles below the maximum."""
    if not sites:
        return {}
    from ..ann_runner import ann_session

    model, theta_inputs = _clipped_ann(ann, sites, inputs, config.per_channel)
    sess = ann_session(model, [s.value for s in sites])
    n = min(len(next(iter(inputs.values()))), config.num_samples)
    theta: dict[str, np.ndarray] = {}
    for s in sites:
        shape = theta_inputs[s.name][1]
        theta[s.name] = np.zeros(shape, np.float32)
    for start in range(0, n, config.batch_size):
        feed = {k: v[start : start + config.batch_size] for k, v in inputs.items()}
        for s in sites:
            feed.update({theta_inputs[t.name][0]: theta[t.name] for t in sites})
            (x,) = sess.run([s.value], feed)
            x = np.asarray(x, np.float32)
            th = theta[s.name]
            over = np.maximum(x - th, 0.0)
            if config.per_channel:
                axis = s.channel_axis % x.ndim
                step = over.mean(axis=tuple(a for a in range(x.ndim) if a != axis), keepdims=True)
            else:
                step = np.full(th.shape, over.mean(), np.float32)
            theta[s.name] = np.maximum(th + 2.0 * step, LTB_EPS).astype(np.float32)
        if progress is not None:
            progress(len(next(iter(feed.values()))))
    out: dict[str, Any] = {}
    for s in sites:
        th = theta[s.name].astype(np.float32).ravel()
        dead = [int(i) for i in np.flatnonzero(th <= LTB_EPS)]
        out[s.name] = ((th.reshape(()) if not config.per_channel else th), dead)
    return out


def _clipped_ann(ann: onnx.ModelProto, sites: list[ThresholdSite], inputs: dict[str, np.ndarray],
                 per_channel: bool) -> tuple[onnx.ModelProto, dict[str, tuple[str, tuple[int, ...]]]]:
    """A copy of the ANN in which each site's activation chain reads ``Min(x, θ)`` instead of
    ``x`` (so the activation is clipped at θ: ``relu(min(x, θ)) = min(relu(x), θ)``), θ a graph
    input per site, shaped to broadcast along the site's channel axis."""
    from ..ann_runner import ann_session

    probe = ann_session(ann, [s.value for s in sites])
    first = {k: v[:1] for k, v in inputs.items()}
    shapes = dict(zip([s.value for s in sites], [np.asarray(o).shape for o in probe.run([s.value for s in sites], first)]))
    m = onnx.ModelProto()
    m.CopyFrom(ann)
    g = m.graph
    theta_inputs: dict[str, tuple[str, tuple[int, ...]]] = {}
    new_nodes = list(g.node)
    for i, s in enumerate(sites):
        rank = len(shapes[s.value])
        shape = [1] * rank
        if per_channel:
            axis = s.channel_axis % rank
            shape[axis] = shapes[s.value][axis]
        th_name, clipped = f"ltb/theta/{i}", f"ltb/clipped/{i}"
        g.input.append(helper.make_tensor_value_info(th_name, onnx.TensorProto.FLOAT, shape))
        theta_inputs[s.name] = (th_name, tuple(shape))
        chain = set(s.chain)
        in_chain = [k for k, node in enumerate(new_nodes) if node.output and node.output[0] in chain]
        for k in in_chain:
            node = new_nodes[k]
            for j, v in enumerate(node.input):
                if v == s.value:
                    node.input[j] = clipped
        pos = min(in_chain)
        new_nodes.insert(pos, helper.make_node("Min", [s.value, th_name], [clipped], name=f"ltb/clip/{i}"))
    del g.node[:]
    g.node.extend(new_nodes)
    del g.value_info[:]
    return m, theta_inputs


__all__ = ["ThresholdSite", "MSEStats", "mse_thresholds", "ltb_thresholds", "neuron_quantizer"]
