"""The SignGD op family's definition (snn_onnx/ops/signgd_reference.py, docs/ops.md#signgd-neurons):
the float32 functions against the exact ones, the dynamics against the paper's claims
(a neuron's output estimate converges to f of its input estimate; codes carry values through
affine maps), and the errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from snn_onnx.errors import OpInputError
from snn_onnx.ops import schema
from snn_onnx.ops import signgd_math as sm
from snn_onnx.ops import signgd_reference as sg

F32 = np.float32
ERF = np.vectorize(math.erf)


def exact(fn: str, x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    sig = 1.0 / (1.0 + np.exp(-x))
    return {
        "relu": np.maximum(x, 0.0), "leaky_relu": np.where(x >= 0, x, 0.01 * x), "abs": np.abs(x), "square": x * x,
        "exp": np.exp(x), "sigmoid": sig, "silu": x * sig, "tanh": np.tanh(x),
        "gelu": 0.5 * x * (1.0 + ERF(x / np.sqrt(2.0))),
        "gelu_tanh": 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3))),
        "hardsigmoid": np.clip(x / 6.0 + 0.5, 0.0, 1.0), "hardswish": x * np.clip(x / 6.0 + 0.5, 0.0, 1.0),
        "clip": np.clip(x, -1.0, 2.0),
    }[fn]


def f32(fn: str, x: np.ndarray) -> np.ndarray:
    return sm.unary(fn, x, alpha=1 / 6 if "hard" in fn else 0.01, beta=0.5, lo=-1.0, hi=2.0)


# -- the float32 functions ---------------------------------------------------------------------


def test_exp32_within_two_ulp():
    x = np.concatenate([np.linspace(-86, 88, 200_001), np.linspace(-1, 1, 100_001)]).astype(F32)
    got = sm.exp32(x).astype(np.float64)
    ref = np.exp(x.astype(np.float64))
    ulp = np.spacing(ref.astype(F32)).astype(np.float64)
    assert np.max(np.abs(got - ref) / ulp) <= 2.0


def test_exp32_edges():
    x = np.array([np.nan, np.inf, -np.inf, 88.5, 89.0, -86.5, -200.0, 0.0], F32)
    got = sm.exp32(x)
    assert np.isnan(got[0])
    assert np.all(np.isinf(got[[1, 3, 4]])) and np.all(got[[1, 3, 4]] > 0)
    assert np.all(got[[2, 5, 6]] == 0)
    assert got[7] == 1.0


@pytest.mark.parametrize("fn", ["gelu", "gelu_tanh", "silu", "sigmoid", "tanh"])
def test_smooth_functions_within_2e7(fn):
    x = np.concatenate([np.linspace(-30, 30, 120_001), np.linspace(-3, 3, 60_001)]).astype(F32)
    err = np.abs(f32(fn, x).astype(np.float64) - exact(fn, x)) / np.maximum(1.0, np.abs(x.astype(np.float64)))
    assert err.max() <= 2e-7, (fn, float(err.max()))


@pytest.mark.parametrize("fn", ["relu", "leaky_relu", "abs", "square", "hardsigmoid", "hardswish", "clip"])
def test_piecewise_functions_exact(fn):
    x = np.linspace(-8, 8, 4001).astype(F32)
    np.testing.assert_allclose(f32(fn, x), exact(fn, x), rtol=1e-6, atol=1e-7)


def test_binary_functions():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=1000).astype(F32), rng.uniform(0.1, 3, size=1000).astype(F32)
    np.testing.assert_array_equal(sm.binary("max", a, b, 0.0), np.maximum(a, b))
    np.testing.assert_array_equal(sm.binary("min", a, b, 0.0), np.minimum(a, b))
    np.testing.assert_array_equal(sm.binary("mul", a, b, 0.0), a * b)
    np.testing.assert_array_equal(sm.binary("div", a, b, 0.0), a / b)
    np.testing.assert_array_equal(sm.binary("div_sqrt", a, b, 0.0), a / np.sqrt(b))
    # the floor replaces denominators at or below it (and NaN)
    d = np.array([-1.0, 0.0, 0.05, np.nan, 2.0], F32)
    np.testing.assert_array_equal(sm.binary("div", np.ones(5, F32), d, 0.1), 1 / np.array([0.1, 0.1, 0.1, 0.1, 2.0], F32))


def test_eta_table():
    eta = sm.eta_table(300, 0.15, 0.95)
    assert eta.dtype == F32 and eta[0] == F32(0.15)
    ref = float(F32(0.15)) * float(F32(0.95)) ** np.arange(300)
    np.testing.assert_allclose(eta, ref, rtol=1e-7)
    assert abs(float(eta.astype(np.float64).sum()) - 3.0) < 1e-5  # η₀/(1−γ): the total travel


# -- dynamics ----------------------------------------------------------------------------------


def _neuron_on(value: np.ndarray, fn: str, lam: float, T: int, **attrs):
    """A neuron whose input estimate is ``value`` from step 1 (the input encoded, excite 1)."""
    codes = sg.sign_gd_encode(value, time_steps=T, static_input=1)
    y, counts = sg.sign_gd_neuron(codes, 1.0, 0.0, lam, time_steps=T, function=fn, **attrs)
    eta = sm.eta_table(T, 0.15, 0.95).astype(np.float64)
    steps = y.reshape(T, *value.shape).astype(np.float64)
    w = np.cumsum(eta.reshape(-1, *[1] * value.ndim) * (lam - 2 * steps), axis=0)  # the value the codes carry
    return w, counts


@pytest.mark.parametrize("fn", list(schema.SIGNGD_UNARY_FUNCTIONS))
def test_unary_neuron_converges(fn):
    x = np.linspace(-2.5, 2.5, 41).astype(F32).reshape(1, -1)
    attrs = {"alpha": 1 / 6, "beta": 0.5} if "hard" in fn else {"lo": -1.0, "hi": 2.0} if fn == "clip" else {}
    target = sm.unary(fn, x, attrs.get("alpha", 0.01), attrs.get("beta", 0.5), attrs.get("lo", -1), attrs.get("hi", 2))
    lam = float(np.max(np.abs(target))) or 1.0
    T = 128
    w, _ = _neuron_on(x, fn, lam, T, **attrs)
    eta = sm.eta_table(T, 0.15, 0.95)
    err = np.abs(w - target.astype(np.float64))
    # the estimate ends within a few of the last steps of the target (sign-gradient descent)
    assert np.all(err[-1] <= 4 * lam * eta[-20]), (fn, float(err[-1].max()))
    assert err[-1].max() < err[15].max() or err[15].max() == 0.0


@pytest.mark.parametrize("fn", list(schema.SIGNGD_BINARY_FUNCTIONS))
def test_binary_neuron_converges(fn):
    rng = np.random.default_rng(1)
    a = rng.uniform(-2, 2, size=(1, 50)).astype(F32)
    b = rng.uniform(0.5, 2, size=(1, 50)).astype(F32)
    T = 128
    ca = sg.sign_gd_encode(a, time_steps=T, static_input=1)
    cb = sg.sign_gd_encode(b, time_steps=T, static_input=1)
    target = sm.binary(fn, a, b, 0.0).astype(np.float64)
    lam = float(np.abs(target).max())
    y, _ = sg.sign_gd_neuron2(ca, cb, amplitude=lam, time_steps=T, function=fn)
    eta = sm.eta_table(T, 0.15, 0.95).astype(np.float64)
    w = np.sum(eta[:, None, None] * (lam - 2 * y.reshape(T, 1, 50)), axis=0)
    assert np.max(np.abs(w - target)) <= 4 * lam * eta[-20]


def test_codes_carry_values_through_an_affine_map():
    """A decoder fed z = M·y + k from a neuron's codes y rebuilds k + M·w (the offset from the
    excite / depress probe): the mechanism every layer of a SignGD network relies on."""
    rng = np.random.default_rng(2)
    T, n, m = 64, 6, 4
    x = rng.normal(size=(3, n)).astype(F32)
    lam = np.full(n, 1.7, F32)
    y, _ = sg.sign_gd_neuron(sg.sign_gd_encode(x, time_steps=T, static_input=1), 1.0, 0.0, lam, time_steps=T,
                             function="gelu")
    M = rng.normal(size=(n, m)).astype(F32)
    k = rng.normal(size=m).astype(F32)
    z = y @ M + k
    offset, bias = (lam @ M + k) + k, k  # all codes at their excite value, plus all at zero
    est = sg.sign_gd_decode(z, offset, bias, time_steps=T).reshape(T, 3, m).astype(np.float64)
    eta = sm.eta_table(T, 0.15, 0.95).astype(np.float64)
    w = np.cumsum(eta[:, None, None] * (lam - 2 * y.reshape(T, 3, n).astype(np.float64)), axis=0)
    np.testing.assert_allclose(est, k + w @ M, rtol=1e-4, atol=1e-4)


def test_encode_decode_round_trip():
    rng = np.random.default_rng(3)
    T = 32
    w = rng.normal(size=(T * 2, 5)).astype(F32)
    est = sg.sign_gd_decode(sg.sign_gd_encode(w, time_steps=T), 1.0, 0.0, time_steps=T)
    np.testing.assert_allclose(est, w, rtol=1e-5, atol=1e-5)
    static = sg.sign_gd_encode(w[:2], time_steps=T, static_input=1)
    np.testing.assert_allclose(sg.sign_gd_decode(static, 1.0, 0.0, time_steps=T), np.tile(w[:2], (T, 1)), atol=1e-6)
    assert np.all(static[2:] == 0.5)  # a static value arrives whole at step 1


def test_spike_counts_and_outputs():
    rng = np.random.default_rng(4)
    T, B = 8, 3
    x = rng.normal(size=(T * B, 2, 3)).astype(F32)
    lam = np.array([[0.5], [2.0]], F32)  # per channel, [C, 1]
    y, counts = sg.sign_gd_neuron(x, 1.0, 0.0, lam, time_steps=T, function="tanh")
    spikes = y.reshape(T, B, 2, 3) != 0
    np.testing.assert_array_equal(counts, spikes.sum(axis=1))
    assert set(np.unique(y[:, 0])) <= {0.0, 0.5} and set(np.unique(y[:, 1])) <= {0.0, 2.0}


def test_defaults_are_the_schema():
    s = schema.ALL_OPS["SignGDNeuron"].attributes
    assert s["eta0"] == 0.15 and s["gamma"] == 0.95
    x = np.linspace(-1, 1, 16).astype(F32).reshape(8, 2)
    a = sg.sign_gd_neuron(x, time_steps=4, function="relu")
    b = sg.sign_gd_neuron(x, np.float32(1.0), np.float32(0.0), np.float32(1.0), time_steps=4, function="relu",
                          eta0=0.15, gamma=0.95)
    np.testing.assert_array_equal(a[0], b[0])


# -- errors ------------------------------------------------------------------------------------

X = np.zeros((4, 2, 3), F32)
BAD = [
    (lambda: sg.sign_gd_neuron(X, time_steps=2, function="softplus"), "function must be one of"),
    (lambda: sg.sign_gd_neuron(X, time_steps=2, function="clip", lo=1.0, hi=0.0), "clip needs lo <= hi"),
    (lambda: sg.sign_gd_neuron(X, time_steps=2, function="relu", gamma=1.5), "gamma must be in (0, 1]"),
    (lambda: sg.sign_gd_neuron(X, time_steps=2, function="relu", eta0=0.0), "eta0 must be finite and > 0"),
    (lambda: sg.sign_gd_neuron(X, amplitude=np.float32(0), time_steps=2, function="relu"), "amplitude must be finite and > 0"),
    (lambda: sg.sign_gd_neuron(X, np.ones((1, 2, 3), F32), time_steps=2, function="relu"), "no batch axis"),
    (lambda: sg.sign_gd_neuron(X, np.ones(4, F32), time_steps=2, function="relu"), "does not broadcast"),
    (lambda: sg.sign_gd_neuron(X, np.float32(np.inf), time_steps=2, function="relu"), "offset must be finite"),
    (lambda: sg.sign_gd_neuron(X, time_steps=3, function="relu"), "not divisible by time_steps 3"),
    (lambda: sg.sign_gd_neuron2(X, X[:, :1], time_steps=2, function="max"), "must have the same shape"),
    (lambda: sg.sign_gd_neuron2(X, X, time_steps=2, function="div", denominator_floor=-1.0), "denominator_floor"),
    (lambda: sg.sign_gd_encode(X, time_steps=2, static_input=2), "static_input must be 0 or 1"),
    (lambda: sg.sign_gd_decode(X, np.ones(7, F32), time_steps=2), "does not broadcast"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_errors(case):
    fn, fragment = BAD[case]
    with pytest.raises(OpInputError, match=None) as info:
        fn()
    assert fragment in str(info.value)


def test_reference_session_runs_the_family():
    """The onnx.reference runner used by the conversion tests gives the reference's numbers."""
    from onnx import TensorProto, helper

    from snn_onnx.ops.reference_session import run_reference

    T = 4
    x = np.random.default_rng(5).normal(size=(T * 2, 3)).astype(F32)
    node = helper.make_node("SignGDNeuron", ["x"], ["y", "c"], domain="snn_onnx", time_steps=T, function="silu")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                           helper.make_tensor_value_info("c", TensorProto.INT64, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("snn_onnx", 1)])
    y, c = run_reference(m, {"x": x})
    ry, rc = sg.sign_gd_neuron(x, time_steps=T, function="silu")
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(c, rc)
