"""The float32 functions a SignGD neuron tracks, written with +, -, *, /, sqrt and rint only.

A SignGD neuron fires when its output estimate is at or above ``f(input estimate)``, so the
kernels (C++, CUDA) must compute ``f`` to the same float32 bits as this reference, or a spike
flips where the two sit within an ulp. Library ``expf`` / ``erff`` differ between glibc, NumPy's
SIMD loops and CUDA, so ``f`` is defined here by an explicit sequence of correctly rounded
float32 operations (no FMA: the kernels are built with ``-ffp-contract=off`` / ``-fmad=false``),
mirrored line by line in ``custom_ops``. Every constant is a float32 literal.

Accuracy against the exact functions (tests/test_signgd_ops.py measures it): ``exp`` within
4 ulp, the GELU / sigmoid / SiLU / tanh family within 3e-7 absolute (times ``max(1, |x|)``) —
far below a neuron's resolution ``λ·η_T``.

* ``exp``: ``k = rint(x·log2 e)``, ``r = (x − k·ln2_hi) − k·ln2_lo`` (Cody–Waite), degree-7
  Taylor polynomial of ``e^r`` in Horner form, times ``2^k`` built from its bits (exact).
  ``x > 88`` gives +inf, ``x < −86`` gives 0, NaN stays NaN.
* ``erfc`` (``z ≥ 0``): ``1 − z·P(z²)`` below 1 (P: degree 6), ``exp(−z·z)·Q(1/z)`` on [1, 10)
  (Q: degree 10), 0 from 10. P and Q are least-squares fits (ours, Chebyshev nodes).
* ``Φ(x) = 1 − erfc(x/√2)/2`` for x ≥ 0, ``erfc(−x/√2)/2`` below (no cancellation in the tail);
  ``gelu(x) = x·Φ(x)``; ``tanh(x) = sign(x)·(1 − 2/(exp(2|x|) + 1))``, ±1 from |x| ≥ 9;
  ``sigmoid(x) = 1/(1 + exp(−x))``.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32

# exp
LOG2E = F32(1.442695)
LN2_HI = F32(0.693359375)  # 9 significant bits: k * LN2_HI is exact for |k| < 2^15
LN2_LO = F32(-0.00021219444)  # ln 2 - LN2_HI
EXP_MAX, EXP_MIN = F32(88.0), F32(-86.0)
EXP_POLY = tuple(F32(c) for c in (1.0, 1.0, 0.5, 0.16666667, 0.041666668, 0.008333334, 0.0013888889, 0.0001984127))
# erf(z)/z on [0, 1] in u = z^2; erfc(z)·exp(z^2) on [1, 10] in s = 1/z (ascending powers)
ERF_P = tuple(F32(c) for c in (1.1283792, -0.3761263, 0.11283626, -0.0268554, 0.0051912186, -0.00080348464,
                               7.933494e-05))
ERFC_Q = tuple(F32(c) for c in (-3.4612438e-06, 0.56433344, -0.0025708505, -0.2560301, -0.16603842, 1.113147,
                                -1.8423328, 1.7403742, -1.0117633, 0.33866704, -0.05019901))
ERFC_SPLIT, ERFC_ZERO = F32(1.0), F32(10.0)
INV_SQRT2 = F32(0.70710677)
SQRT_2_OVER_PI = F32(0.7978846)
GELU_TANH_C = F32(0.044715)
TANH_ONE = F32(9.0)  # tanh(9) = 1 - 3e-8: 1 in float32
ONE, TWO, HALF, ZERO = F32(1.0), F32(2.0), F32(0.5), F32(0.0)


def eta_table(time_steps: int, eta0: float, gamma: float) -> np.ndarray:
    """Step sizes ``η_t = η₀·γ^(t−1)``, t = 1..T: a float64 running product of the float32
    attribute values (``η ← η·γ``, exactly rounded in any IEEE double), each rounded to float32."""
    out = np.empty(time_steps, dtype=F32)
    e, g = float(F32(eta0)), float(F32(gamma))
    for t in range(time_steps):
        out[t] = F32(e)
        e = e * g
    return out


def _horner(coefs: tuple, x: np.ndarray) -> np.ndarray:
    acc = np.full_like(x, coefs[-1])
    for c in coefs[-2::-1]:
        acc = acc * x + c
    return acc


def exp32(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=F32)
    nan = np.isnan(x)
    xc = np.clip(np.where(nan, ZERO, x), EXP_MIN, EXP_MAX).astype(F32)
    kf = np.rint(xc * LOG2E).astype(F32)
    r = (xc - kf * LN2_HI) - kf * LN2_LO
    p = _horner(EXP_POLY, r)
    scale = ((kf.astype(np.int32) + 127) << 23).astype(np.int32).view(F32)
    y = p * scale
    y = np.where(x > EXP_MAX, F32(np.inf), y)
    y = np.where(x < EXP_MIN, ZERO, y)
    return np.where(nan, x, y).astype(F32)


def erfc32(z: np.ndarray) -> np.ndarray:
    """erfc for z >= 0 (callers pass |z|)."""
    z = np.asarray(z, dtype=F32)
    small = ONE - z * _horner(ERF_P, z * z)
    zs = np.where(z >= ERFC_SPLIT, z, ONE).astype(F32)  # keep 1/z finite off the branch
    large = exp32(-(zs * zs)) * _horner(ERFC_Q, ONE / zs)
    y = np.where(z < ERFC_SPLIT, small, large)
    return np.where(z >= ERFC_ZERO, ZERO, y).astype(F32)


def phi32(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF."""
    x = np.asarray(x, dtype=F32)
    e = erfc32(np.abs(x) * INV_SQRT2)
    return np.where(x >= ZERO, ONE - HALF * e, HALF * e).astype(F32)


def tanh32(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=F32)
    a = np.abs(x)
    with np.errstate(over="ignore"):
        t = ONE - TWO / (exp32(TWO * a) + ONE)  # exp overflows to +inf: t = 1
    t = np.where(a >= TANH_ONE, ONE, t)
    return np.where(x < ZERO, -t, t).astype(F32)


def sigmoid32(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=F32)
    return (ONE / (ONE + exp32(-x))).astype(F32)


def _hardsigmoid(x: np.ndarray, alpha: F32, beta: F32) -> np.ndarray:
    t = alpha * x + beta
    return np.where(t < ZERO, ZERO, np.where(t > ONE, ONE, t)).astype(F32)


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    inner = x + GELU_TANH_C * (x * x * x)
    return ((HALF * x) * (ONE + tanh32(SQRT_2_OVER_PI * inner))).astype(F32)


def unary(function: str, x: np.ndarray, alpha: float, beta: float, lo: float, hi: float) -> np.ndarray:
    """``f(x)`` of a one-input SignGD neuron (docs/ops.md#signgdneuron)."""
    x = np.asarray(x, dtype=F32)
    a, b = F32(alpha), F32(beta)
    if function == "relu":
        return np.where(x > ZERO, x, ZERO).astype(F32)
    if function == "leaky_relu":
        return np.where(x >= ZERO, x, a * x).astype(F32)
    if function == "clip":
        l, h = F32(lo), F32(hi)
        return np.where(x < l, l, np.where(x > h, h, x)).astype(F32)
    if function == "abs":
        return np.abs(x)
    if function == "square":
        return x * x
    if function == "exp":
        return exp32(x)
    if function == "sigmoid":
        return sigmoid32(x)
    if function == "silu":
        return x * sigmoid32(x)
    if function == "tanh":
        return tanh32(x)
    if function == "gelu":
        return x * phi32(x)
    if function == "gelu_tanh":
        return _gelu_tanh(x)
    if function == "hardsigmoid":
        return _hardsigmoid(x, a, b)
    if function == "hardswish":
        return x * _hardsigmoid(x, a, b)
    raise ValueError(function)


def binary(function: str, a: np.ndarray, b: np.ndarray, denominator_floor: float) -> np.ndarray:
    """``f(a, b)`` of a two-input SignGD neuron (docs/ops.md#signgdneuron2)."""
    a = np.asarray(a, dtype=F32)
    b = np.asarray(b, dtype=F32)
    if function == "max":
        return np.where(a >= b, a, b).astype(F32)
    if function == "min":
        return np.where(a <= b, a, b).astype(F32)
    if function == "mul":
        return a * b
    floor = F32(denominator_floor)
    if floor > 0:
        b = np.where(b > floor, b, floor).astype(F32)  # NaN becomes the floor too
    with np.errstate(divide="ignore", invalid="ignore"):
        if function == "div":
            return a / b
        if function == "div_sqrt":
            return a / np.sqrt(b)
    raise ValueError(function)
