"""NumPy reference of the SignGD op family (Oh & Lee, ICML 2024): docs/ops.md#signgd-neurons.

A SignGD neuron holds two estimates that move by sign gradient descent with the step sizes
``η_t = η₀·γ^(t−1)``: ``x̂``, its input, rebuilt from the codes that reach it, and ``w``, its
output, which steps towards ``f(x̂)``:

    x̂_0 = bias,  w_0 = 0
    x̂_t = x̂_{t−1} − η_t·(2·z_t − offset)          (z_t: the step's input, an affine image of codes)
    s_t = 1[w_{t−1} ≥ f(x̂_t)]                      (a spike: "too high", step down)
    w_t = w_{t−1} − λ·η_t  if s_t  else  w_{t−1} + λ·η_t
    y_t = λ·s_t

Both spike and silence carry information (±λ·η_t); the downstream neuron's ``offset`` (the
affine map applied to all-ones codes plus to all-zeros codes) turns the 0/λ spikes back into
±λ·η_t steps, so its ``x̂`` equals the affine map of the upstream ``w`` exactly (up to float
rounding). ``SignGDDecode`` is the input half alone (the network's output), ``SignGDEncode``
turns analog values into codes (the static input, compensated blocks).

Float32 order is part of the definition (the kernels match it bit for bit on spikes):
``2*z`` is exact, ``g = 2*z − offset``, ``x̂ = x̂ − η_t*g`` (product, then difference), ``f`` as
in ``signgd_math``, ``a_t = λ*η_t``, comparison ``w >= f``, then ``w − a_t`` / ``w + a_t``.
"""

from __future__ import annotations

import numpy as np

from ..errors import OpInputError
from . import signgd_math as sm
from .reference import F32, split_time
from .schema import SIGNGD_BINARY_FUNCTIONS, SIGNGD_UNARY_FUNCTIONS


def per_sample_param(p, x_shape: tuple[int, ...], op: str, name: str, default: float) -> np.ndarray:
    """A parameter that broadcasts (NumPy rules) against one sample ``x.shape[1:]``: a scalar,
    per channel (``[C, 1, 1]``) or per element. A leading batch axis is not allowed."""
    if p is None:
        return np.asarray(default, dtype=F32).reshape(())
    p = np.asarray(p, dtype=F32)
    sample = tuple(x_shape[1:])
    if p.ndim > len(sample):
        raise OpInputError(f"{op}: {name} has rank {p.ndim}, more than one sample's rank {len(sample)} "
                           f"(shape {list(p.shape)} vs sample {list(sample)}); it has no batch axis")
    for d, s in zip(p.shape[::-1], sample[::-1]):
        if d not in (1, s):
            raise OpInputError(f"{op}: {name} of shape {list(p.shape)} does not broadcast to one sample "
                               f"{list(sample)}")
    return p


def _attrs(op: str, time_steps: int, eta0: float, gamma: float) -> np.ndarray:
    if time_steps < 1:
        raise OpInputError(f"{op}: time_steps must be >= 1, got {time_steps}")
    if not (np.isfinite(eta0) and eta0 > 0):
        raise OpInputError(f"{op}: eta0 must be finite and > 0, got {eta0}")
    if not (np.isfinite(gamma) and 0 < gamma <= 1):
        raise OpInputError(f"{op}: gamma must be in (0, 1], got {gamma}")
    return sm.eta_table(time_steps, eta0, gamma)


def _amplitude(amplitude, shape, op: str) -> np.ndarray:
    lam = per_sample_param(amplitude, shape, op, "amplitude", 1.0)
    if not np.all(np.isfinite(lam)) or np.any(lam <= 0):
        raise OpInputError(f"{op}: amplitude must be finite and > 0, got min {float(np.min(lam))}")
    return lam


def _finite(p: np.ndarray, op: str, name: str) -> None:
    if not np.all(np.isfinite(p)):
        raise OpInputError(f"{op}: {name} must be finite")


def sign_gd_neuron(
    x: np.ndarray,
    offset=None,
    bias=None,
    amplitude=None,
    *,
    time_steps: int,
    function: str,
    alpha: float = 0.01,
    beta: float = 0.5,
    lo: float = float("-inf"),
    hi: float = float("inf"),
    eta0: float = 0.15,
    gamma: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """One-input SignGD neuron tracking ``f(x̂)`` (docs/ops.md#signgdneuron)."""
    op = "SignGDNeuron"
    if function not in SIGNGD_UNARY_FUNCTIONS:
        raise OpInputError(f"{op}: function must be one of {SIGNGD_UNARY_FUNCTIONS}, got {function!r}")
    if function == "clip" and not F32(lo) <= F32(hi):
        raise OpInputError(f"{op}: clip needs lo <= hi, got lo={lo}, hi={hi}")
    eta = _attrs(op, time_steps, eta0, gamma)
    x = np.asarray(x, dtype=F32)
    xt = split_time(x, time_steps, op)
    off = per_sample_param(offset, x.shape, op, "offset", 1.0)
    b = per_sample_param(bias, x.shape, op, "bias", 0.0)
    _finite(off, op, "offset")
    _finite(b, op, "bias")
    lam = _amplitude(amplitude, x.shape, op)
    step_shape = xt.shape[1:]
    xh = np.broadcast_to(b, step_shape).astype(F32)
    w = np.zeros(step_shape, dtype=F32)
    lam_b = np.broadcast_to(lam, step_shape).astype(F32)
    y = np.empty_like(xt)
    counts = np.empty((time_steps,) + x.shape[1:], dtype=np.int64)
    with np.errstate(all="ignore"):
        for t in range(time_steps):
            g = F32(2) * xt[t] - off
            xh = xh - eta[t] * g
            target = sm.unary(function, xh, alpha, beta, lo, hi)
            fire = w >= target
            a = lam_b * eta[t]
            w = np.where(fire, w - a, w + a).astype(F32)
            y[t] = np.where(fire, lam_b, F32(0))
            counts[t] = np.count_nonzero(fire, axis=0)
    return y.reshape(x.shape), counts


def sign_gd_neuron2(
    a: np.ndarray,
    b: np.ndarray,
    offset_a=None,
    bias_a=None,
    offset_b=None,
    bias_b=None,
    amplitude=None,
    *,
    time_steps: int,
    function: str,
    denominator_floor: float = 0.0,
    eta0: float = 0.15,
    gamma: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Two-input SignGD neuron tracking ``f(â, b̂)`` (docs/ops.md#signgdneuron2)."""
    op = "SignGDNeuron2"
    if function not in SIGNGD_BINARY_FUNCTIONS:
        raise OpInputError(f"{op}: function must be one of {SIGNGD_BINARY_FUNCTIONS}, got {function!r}")
    if not (np.isfinite(denominator_floor) and denominator_floor >= 0):
        raise OpInputError(f"{op}: denominator_floor must be finite and >= 0, got {denominator_floor}")
    eta = _attrs(op, time_steps, eta0, gamma)
    a = np.asarray(a, dtype=F32)
    b = np.asarray(b, dtype=F32)
    if a.shape != b.shape:
        raise OpInputError(f"{op}: inputs a {list(a.shape)} and b {list(b.shape)} must have the same shape")
    at, bt = split_time(a, time_steps, op), split_time(b, time_steps, op)
    params = {}
    for name, p, d in (("offset_a", offset_a, 1.0), ("bias_a", bias_a, 0.0), ("offset_b", offset_b, 1.0),
                       ("bias_b", bias_b, 0.0)):
        params[name] = per_sample_param(p, a.shape, op, name, d)
        _finite(params[name], op, name)
    lam = _amplitude(amplitude, a.shape, op)
    step_shape = at.shape[1:]
    ah = np.broadcast_to(params["bias_a"], step_shape).astype(F32)
    bh = np.broadcast_to(params["bias_b"], step_shape).astype(F32)
    w = np.zeros(step_shape, dtype=F32)
    lam_b = np.broadcast_to(lam, step_shape).astype(F32)
    y = np.empty_like(at)
    counts = np.empty((time_steps,) + a.shape[1:], dtype=np.int64)
    with np.errstate(all="ignore"):
        for t in range(time_steps):
            ah = ah - eta[t] * (F32(2) * at[t] - params["offset_a"])
            bh = bh - eta[t] * (F32(2) * bt[t] - params["offset_b"])
            target = sm.binary(function, ah, bh, denominator_floor)
            fire = w >= target
            step = lam_b * eta[t]
            w = np.where(fire, w - step, w + step).astype(F32)
            y[t] = np.where(fire, lam_b, F32(0))
            counts[t] = np.count_nonzero(fire, axis=0)
    return y.reshape(a.shape), counts


def sign_gd_decode(
    z: np.ndarray, offset=None, bias=None, *, time_steps: int, eta0: float = 0.15, gamma: float = 0.95
) -> np.ndarray:
    """The estimate ``x̂_t`` after every step (docs/ops.md#signgddecode)."""
    op = "SignGDDecode"
    eta = _attrs(op, time_steps, eta0, gamma)
    z = np.asarray(z, dtype=F32)
    zt = split_time(z, time_steps, op)
    off = per_sample_param(offset, z.shape, op, "offset", 1.0)
    b = per_sample_param(bias, z.shape, op, "bias", 0.0)
    _finite(off, op, "offset")
    _finite(b, op, "bias")
    xh = np.broadcast_to(b, zt.shape[1:]).astype(F32)
    y = np.empty_like(zt)
    with np.errstate(all="ignore"):
        for t in range(time_steps):
            xh = xh - eta[t] * (F32(2) * zt[t] - off)
            y[t] = xh
    return y.reshape(z.shape)


def sign_gd_encode(
    w: np.ndarray, *, time_steps: int, eta0: float = 0.15, gamma: float = 0.95, static_input: int = 0
) -> np.ndarray:
    """Codes whose decoded value is ``w_t`` at every step (docs/ops.md#signgdencode):
    ``c_t = 0.5 − (w_t − w_{t−1})/(2·η_t)``, ``w_0 = 0``."""
    op = "SignGDEncode"
    eta = _attrs(op, time_steps, eta0, gamma)
    if static_input not in (0, 1):
        raise OpInputError(f"{op}: static_input must be 0 or 1, got {static_input}")
    w = np.asarray(w, dtype=F32)
    if w.ndim < 1:
        raise OpInputError(f"{op}: input must have at least one dimension (the batch axis)")
    if static_input:
        w = np.tile(w, (time_steps,) + (1,) * (w.ndim - 1))
    wt = split_time(w, time_steps, op)
    out = np.empty_like(wt)
    prev = np.zeros(wt.shape[1:], dtype=F32)
    with np.errstate(all="ignore"):
        for t in range(time_steps):
            out[t] = F32(0.5) - (wt[t] - prev) / (F32(2) * eta[t])
            prev = wt[t]
    return out.reshape(w.shape)
