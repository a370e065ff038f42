"""NumPy reference semantics of every ``snn_onnx`` op: the executable form of docs/ops.md.

Kernels (C++, CUDA) must reproduce these bit-for-bit on spikes and to float tolerance on
values. To make that possible the float32 order of operations is part of the definition:
every sum over time is sequential in t (never pairwise), products and sums are rounded
separately (kernels are built without FMA contraction), and comparisons use the exact
expressions written here.

Tensors use the folded time layout: ``x.shape[0] == T*B``, row ``t*B + b``.
Each spiking op returns ``(y, counts)``; ``counts`` has shape ``[T, *x.shape[1:]]`` (int64)
and holds, per step and neuron, the number of spikes summed over the batch. With
``potentials=True`` the neurons return ``(y, counts, potentials)``: the membrane at every step,
the shape of ``y`` (the optional debug output, docs/ops.md#membrane-potentials-debug-output).

NaN and infinity (docs/ops.md, "NaN and infinity") are inputs like any other: these functions
compute with them exactly as written, and that is what the kernels must reproduce (a NaN
membrane never fires and stays NaN; ``inf - inf`` is NaN; f of CompensatedElementwise follows
its float64 formula, so ``silu(-inf) = -inf * 0 = NaN``). Floating-point warnings are silenced.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, TypeVar

import numpy as np

from ..errors import OpInputError
from .schema import MAX_LEVELS, MAX_TIME_STEPS, RESET_MODES

F32 = np.float32
_F = TypeVar("_F", bound=Callable)


def _quiet(fn: _F) -> _F:
    """Special values are defined behaviour here, not accidents: no RuntimeWarnings."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def check_time_steps(time_steps: int, op: str = "op") -> None:
    if time_steps < 1:
        raise OpInputError(f"{op}: time_steps must be >= 1, got {time_steps}")
    if time_steps > MAX_TIME_STEPS:
        raise OpInputError(f"{op}: time_steps must be <= {MAX_TIME_STEPS}, got {time_steps}")


def _finite(value: float, op: str, name: str) -> None:
    if not math.isfinite(float(value)):
        raise OpInputError(f"{op}: {name} must be finite, got {value}")


def split_time(x: np.ndarray, time_steps: int, op: str = "op") -> np.ndarray:
    """View ``[T*B, ...]`` as ``[T, B, ...]``; refuse a leading dim not divisible by T."""
    check_time_steps(time_steps, op)
    if x.ndim < 1:
        raise OpInputError(f"{op}: input must have at least one dimension (the T*B axis)")
    if x.shape[0] % time_steps != 0:
        raise OpInputError(
            f"{op}: leading dimension {x.shape[0]} is not divisible by time_steps {time_steps}"
        )
    return x.reshape((time_steps, x.shape[0] // time_steps) + x.shape[1:])


def repeat_static(x: np.ndarray, time_steps: int, static_input: int, op: str = "op") -> np.ndarray:
    """``static_input = 1``: ``x`` is one step ``[B, ...]`` that repeats at every step (a
    time-invariant input); the op then computes exactly as on ``x`` repeated T times along
    axis 0, ``[T*B, ...]`` (what the converter's entry Tile would have produced)."""
    if static_input not in (0, 1):
        raise OpInputError(f"{op}: static_input must be 0 or 1, got {static_input}")
    if not static_input:
        return x
    check_time_steps(time_steps, op)
    if x.ndim < 1:
        raise OpInputError(f"{op}: input must have at least one dimension (the batch axis)")
    return np.tile(x, (time_steps,) + (1,) * (x.ndim - 1))


def broadcast_param(
    p: np.ndarray | float, x_shape: tuple[int, ...], channel_axis: int, op: str, name: str
) -> np.ndarray:
    """Shape a scalar or per-channel parameter so it broadcasts against one time step
    ``[B, *x.shape[1:]]``. ``channel_axis`` indexes the full input shape (so 1 is C in NCHW)."""
    p = np.asarray(p, dtype=F32)
    rank = len(x_shape)
    if p.size == 1:
        return p.reshape(())
    if p.ndim != 1:
        raise OpInputError(f"{op}: {name} must be a scalar or 1-D per-channel, got shape {p.shape}")
    axis = channel_axis + rank if channel_axis < 0 else channel_axis
    if not 1 <= axis < rank:
        raise OpInputError(f"{op}: channel_axis {channel_axis} is out of range for rank {rank}")
    if x_shape[axis] != p.shape[0]:
        raise OpInputError(
            f"{op}: {name} has {p.shape[0]} values but input dimension {axis} is {x_shape[axis]}"
        )
    shape = [1] * rank
    shape[axis] = p.shape[0]
    return p.reshape(shape)


def _positive(theta: np.ndarray, op: str, name: str) -> None:
    if not np.all(np.isfinite(theta)) or np.any(theta <= 0):
        raise OpInputError(f"{op}: {name} must be finite and > 0, got min {float(np.min(theta))}")


@_quiet
def if_neuron(
    x: np.ndarray,
    threshold: np.ndarray | float,
    *,
    time_steps: int,
    v_init: float = 0.5,
    leak: float = 1.0,
    reset: str = "subtract",
    signed: int = 0,
    signed_eps: float = 1e-3,
    channel_axis: int = 1,
    static_input: int = 0,
    potentials: bool = False,
) -> tuple[np.ndarray, ...]:
    """Integrate-and-fire neuron, sequential over time (docs/ops.md#ifneuron). Potentials: the
    membrane after integration, before the threshold test and the reset."""
    op = "IFNeuron"
    for name, value in (("v_init", v_init), ("leak", leak), ("signed_eps", signed_eps)):
        _finite(value, op, name)
    x = repeat_static(np.asarray(x, dtype=F32), time_steps, static_input, op)
    xt = split_time(x, time_steps, op)
    if reset not in RESET_MODES:
        raise OpInputError(f"{op}: reset must be one of {RESET_MODES}, got {reset!r}")
    theta = broadcast_param(threshold, x.shape, channel_axis, op, "threshold")
    _positive(theta, op, "threshold")
    leak32, eps32 = F32(leak), F32(signed_eps)
    step_shape = xt.shape[1:]
    v = np.broadcast_to(F32(v_init) * theta, step_shape).astype(F32)
    net = np.zeros(step_shape, dtype=np.int64)  # spikes emitted so far (+1 / -1 summed)
    y = np.empty_like(xt)
    pot = np.empty_like(xt)
    counts = np.empty((time_steps,) + x.shape[1:], dtype=np.int64)
    for t in range(time_steps):
        v = leak32 * v + xt[t]
        pot[t] = v
        s = (v >= theta).astype(F32)
        if signed:
            neg = (v <= -eps32) & (net > 0) & (s == 0)
            s = s - neg.astype(F32)
        net += s.astype(np.int64)
        out = s * theta
        y[t] = out
        if reset == "subtract":
            v = v - out
        else:
            v = np.where(s != 0, F32(0), v)
        counts[t] = np.count_nonzero(s, axis=0)
    if potentials:
        return y.reshape(x.shape), counts, pot.reshape(x.shape)
    return y.reshape(x.shape), counts


@_quiet
def para_if_neuron(
    x: np.ndarray,
    theta_pre: np.ndarray | float,
    theta_post: np.ndarray | float | None = None,
    bias: np.ndarray | float | None = None,
    *,
    time_steps: int,
    v_init: float = 0.5,
    channel_axis: int = 1,
    static_input: int = 0,
    potentials: bool = False,
) -> tuple[np.ndarray, ...]:
    """Parallel spiking neuron (docs/ops.md#paraifneuron).

    With ``acc`` the sequential float32 sum of ``x_t`` over all T steps, step ``t = 1..T``
    fires iff ``acc + bias >= t * theta_pre`` (the spec's ``(T/t) m + bias/t >= theta_pre``
    multiplied by t), so a neuron fires on its first ``clamp(floor((acc+bias)/theta_pre), 0, T)``
    steps and the mean output is QCFS of the mean input.

    Potentials: the equivalent IF membrane ``u_t = drive − F32(n)·theta_pre``, n the spikes
    fired in the steps before t (the whole charge arrives at once, one spike per step at most)."""
    op = "ParaIFNeuron"
    _finite(v_init, op, "v_init")
    x = repeat_static(np.asarray(x, dtype=F32), time_steps, static_input, op)
    xt = split_time(x, time_steps, op)
    th_pre = broadcast_param(theta_pre, x.shape, channel_axis, op, "theta_pre")
    _positive(th_pre, op, "theta_pre")
    th_post = (
        th_pre
        if theta_post is None
        else broadcast_param(theta_post, x.shape, channel_axis, op, "theta_post")
    )
    _positive(th_post, op, "theta_post")
    b = F32(v_init) * th_pre if bias is None else broadcast_param(bias, x.shape, channel_axis, op, "bias")
    acc = xt[0].copy()
    for t in range(1, time_steps):
        acc = acc + xt[t]
    drive = acc + b
    y = np.empty_like(xt)
    pot = np.empty_like(xt)
    fired = np.zeros_like(drive)  # spikes so far, an exact integer in float32
    counts = np.empty((time_steps,) + x.shape[1:], dtype=np.int64)
    for t in range(time_steps):
        pot[t] = drive - fired * th_pre
        fire = drive >= F32(t + 1) * th_pre
        y[t] = np.where(fire, th_post, F32(0)).astype(F32)
        fired = fired + fire.astype(F32)
        counts[t] = np.count_nonzero(fire, axis=0)
    if potentials:
        return y.reshape(x.shape), counts, pot.reshape(x.shape)
    return y.reshape(x.shape), counts


@_quiet
def multi_threshold_neuron(
    x: np.ndarray,
    scale_pos: np.ndarray | float,
    scale_neg: np.ndarray | float,
    *,
    time_steps: int,
    levels: int = 8,
    channel_axis: int = -1,
    potentials: bool = False,
) -> tuple[np.ndarray, ...]:
    """Two-sided multi-threshold neuron (docs/ops.md#multithresholdneuron).

    Level k (0 <= k < levels) is worth ``s * 2^k``. Membrane v starts at 0; each step
    ``v = v + x_t``; the neuron emits the nearest level: the largest ``+s_p*2^k`` with
    ``v >= s_p*m_k``, where ``m_k`` is the midpoint between level k and the next lower one
    (``m_0 = 0.5``, ``m_k = 0.75*2^k``), else the largest ``-s_n*2^k`` with ``-v >= s_n*m_k``,
    else nothing; then ``v = v - emitted``. Float32 order: ``level = s * 2^k`` (exact: a power
    of two), ``thr = s * m_k`` (``m_k`` exact, one rounding), then the comparison. Levels are
    tried in ascending k and a later (larger) one that fires replaces an earlier one, which is
    "the largest that fires" whatever the thresholds' order. Potentials: the
    membrane after integration, before the emission."""
    op = "MultiThresholdNeuron"
    x = np.asarray(x, dtype=F32)
    xt = split_time(x, time_steps, op)
    if int(levels) != levels or not 1 <= levels <= MAX_LEVELS:
        raise OpInputError(f"{op}: levels must be an integer in [1, {MAX_LEVELS}], got {levels}")
    levels = int(levels)
    sp = broadcast_param(scale_pos, x.shape, channel_axis, op, "scale_pos")
    _positive(sp, op, "scale_pos")
    sn = broadcast_param(scale_neg, x.shape, channel_axis, op, "scale_neg")
    _positive(sn, op, "scale_neg")
    step_shape = xt.shape[1:]
    pow2 = [F32(2.0**k) for k in range(levels)]
    mid = [F32(0.5)] + [F32(0.75 * 2.0**k) for k in range(1, levels)]  # nearest-level midpoints
    lev_p = [sp * p for p in pow2]
    lev_n = [sn * p for p in pow2]
    thr_p = [sp * m for m in mid]
    thr_n = [sn * m for m in mid]
    v = np.zeros(step_shape, dtype=F32)
    y = np.empty_like(xt)
    pot = np.empty_like(xt)
    counts = np.empty((time_steps,) + x.shape[1:], dtype=np.int64)
    zero = np.zeros(step_shape, dtype=F32)
    for t in range(time_steps):
        v = v + xt[t]
        pot[t] = v
        neg_v = -v
        out_p, out_n = zero, zero
        for k in range(levels):
            out_p = np.where(v >= thr_p[k], lev_p[k], out_p).astype(F32)
            out_n = np.where(neg_v >= thr_n[k], lev_n[k], out_n).astype(F32)
        out = np.where(out_p > 0, out_p, F32(0) - out_n).astype(F32)  # +0.0 when silent
        y[t] = out
        v = v - out
        counts[t] = np.count_nonzero(out, axis=0)
    if potentials:
        return y.reshape(x.shape), counts, pot.reshape(x.shape)
    return y.reshape(x.shape), counts


@_quiet
def temporal_mean(x: np.ndarray, *, time_steps: int) -> np.ndarray:
    """Running mean over time: ``y_t = (1/t) * sum_{tau<=t} x_tau`` (t 1-based)."""
    x = np.asarray(x, dtype=F32)
    xt = split_time(x, time_steps, "TemporalMean")
    y = np.empty_like(xt)
    acc = np.zeros_like(xt[0])
    for t in range(time_steps):
        acc = acc + xt[t]
        y[t] = acc / F32(t + 1)
    return y.reshape(x.shape)


@_quiet
def temporal_delta(x: np.ndarray, *, time_steps: int) -> np.ndarray:
    """Inverse of the running mean: ``y_1 = x_1``, ``y_t = t*x_t - (t-1)*x_{t-1}``."""
    x = np.asarray(x, dtype=F32)
    xt = split_time(x, time_steps, "TemporalDelta")
    y = np.empty_like(xt)
    y[0] = xt[0]
    for t in range(1, time_steps):
        y[t] = F32(t + 1) * xt[t] - F32(t) * xt[t - 1]
    return y.reshape(x.shape)


def _sigmoid64(m: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-m))


def _erf64(m: np.ndarray) -> np.ndarray:
    from math import erf

    return np.vectorize(erf, otypes=[np.float64])(m) if m.size else m


ELEMENTWISE = {
    # torch's definitions (HardSigmoid: x/6 + 1/2 clipped to [0, 1])
    "gelu": lambda m: 0.5 * m * (1.0 + _erf64(m / np.sqrt(2.0))),
    "gelu_tanh": lambda m: 0.5 * m * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (m + 0.044715 * m**3))),
    "silu": lambda m: m * _sigmoid64(m),
    "sigmoid": _sigmoid64,
    "tanh": np.tanh,
    "hardsigmoid": lambda m: np.clip(m / 6.0 + 0.5, 0.0, 1.0),
    "hardswish": lambda m: m * np.clip(m / 6.0 + 0.5, 0.0, 1.0),
    "relu": lambda m: np.maximum(m, 0.0),
}


@_quiet
def compensated_elementwise(x: np.ndarray, *, time_steps: int, function: str) -> np.ndarray:
    """Fused expectation compensation ``TemporalDelta(f(TemporalMean(x)))`` for an elementwise
    f (docs/ops.md#compensatedelementwise): the running mean in float32 as TemporalMean,
    f in float64 rounded to float32, the delta in float32 as TemporalDelta. Kernels compute f
    in float32 and match to float tolerance (not bit for bit)."""
    op = "CompensatedElementwise"
    if function not in ELEMENTWISE:
        raise OpInputError(f"{op}: function must be one of {tuple(ELEMENTWISE)}, got {function!r}")
    x = np.asarray(x, dtype=F32)
    split_time(x, time_steps, op)
    m = temporal_mean(x, time_steps=time_steps)
    f = ELEMENTWISE[function](m.astype(np.float64)).astype(F32)
    return temporal_delta(f, time_steps=time_steps)


def qcfs(x: np.ndarray, threshold: np.ndarray | float, levels: int, shift: float = 0.5) -> np.ndarray:
    """QCFS activation of the ANN: ``theta/L * clamp(floor(x*L/theta + shift), 0, L)``.

    Not an op of the SNN graph: it is what a ParaIFNeuron with T = L reproduces on the mean."""
    theta = np.asarray(threshold, dtype=F32)
    q = np.clip(np.floor(x * (F32(levels) / theta) + F32(shift)), 0, levels)
    return (q * (theta / F32(levels))).astype(F32)


REFERENCES = {
    "IFNeuron": if_neuron,
    "ParaIFNeuron": para_if_neuron,
    "MultiThresholdNeuron": multi_threshold_neuron,
    "TemporalMean": temporal_mean,
    "TemporalDelta": temporal_delta,
    "CompensatedElementwise": compensated_elementwise,
}


def _signgd_references() -> None:
    from . import signgd_reference as sg

    REFERENCES.update(SignGDNeuron=sg.sign_gd_neuron, SignGDNeuron2=sg.sign_gd_neuron2,
                      SignGDDecode=sg.sign_gd_decode, SignGDEncode=sg.sign_gd_encode)


_signgd_references()
