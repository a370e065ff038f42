"""The SignGD kernels (custom_ops/src/cpu/signgd.cc, common/signgd_steps.h) against the NumPy
reference (snn_onnx/ops/signgd_reference.py): randomized cases, bit-exact on spikes, counts,
codes and estimates, on the baseline and the AVX2 build of every body; bad inputs give ONNX
Runtime errors naming the op and the node."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from snn_onnx.ops import schema
from snn_onnx.ops import signgd_reference as sg

F32 = np.float32
UNARY = schema.SIGNGD_UNARY_FUNCTIONS
BINARY = schema.SIGNGD_BINARY_FUNCTIONS


@pytest.fixture(scope="module")
def so(snn_library):
    s = ort.SessionOptions()
    s.register_custom_ops_library(snn_library)
    s.log_severity_level = 3
    return s


def build(op: str, inputs: list[tuple[str, np.ndarray | None]], attrs: dict, counts: bool, n_data: int = 1,
          node_name: str = "n"):
    """One node; data inputs are graph inputs, parameters initializers (None: omitted)."""
    names, graph_inputs, inits, feeds = [], [], [], {}
    for k, (name, value) in enumerate(inputs):
        if value is None:
            names.append("")
            continue
        names.append(name)
        if k < n_data:
            graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
            feeds[name] = value
        else:
            inits.append(numpy_helper.from_array(np.asarray(value, F32), name))
    while names and names[-1] == "":
        names.pop()
    outs = ["y"] + (["counts"] if counts else [])
    node = helper.make_node(op, names, outs, domain=schema.DOMAIN, name=node_name, **attrs)
    graph_outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if counts:
        graph_outputs.append(helper.make_tensor_value_info("counts", TensorProto.INT64, None))
    g = helper.make_graph([node], "g", graph_inputs, graph_outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(schema.DOMAIN, 1)],
                          ir_version=10)
    return m.SerializeToString(), feeds


def run(so, model, feeds):
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"]).run(None, feeds)


def rand_shape(rng, T):
    rank = int(rng.integers(1, 5))
    B = int(rng.integers(1, 4))
    return [T * B] + [int(rng.integers(1, 6)) for _ in range(rank - 1)]


def rand_x(rng, shape):
    kind = rng.integers(0, 3)
    if kind == 0:  # a quarter grid: exact arithmetic, many ties between estimate and target
        return (rng.integers(-8, 9, size=shape) * 0.25).astype(F32)
    scale = rng.choice([0.1, 1.0, 4.0])
    return (rng.normal(0.0, 1.0, size=shape) * scale).astype(F32)


def rand_param(rng, sample: list[int], positive: bool):
    """A parameter that broadcasts to one sample: scalar, per channel, per element, or absent."""
    kind = rng.integers(0, 4)
    if kind == 0:
        return None
    if kind == 1 or not sample:
        shape = []
    elif kind == 2:
        shape = [sample[0]] + [1] * (len(sample) - 1)
    else:
        shape = list(sample[-int(rng.integers(1, len(sample) + 1)):])
    if positive:
        return rng.uniform(0.2, 3.0, size=shape).astype(F32)
    return (rng.normal(size=shape) * rng.choice([0.5, 2.0])).astype(F32)


def attrs_for(rng, T: int, fn: str) -> dict:
    a = {"time_steps": T, "function": fn}
    if rng.random() < 0.5:
        a["eta0"] = float(rng.choice([0.15, 0.3, 0.05]))
        a["gamma"] = float(rng.choice([0.95, 0.9, 1.0]))
    if fn in ("leaky_relu", "hardsigmoid", "hardswish"):
        a["alpha"] = float(rng.choice([0.01, 0.2, 1 / 6]))
        a["beta"] = float(rng.choice([0.5, 0.25]))
    if fn == "clip":
        lo = float(rng.normal())
        a["lo"], a["hi"] = lo, lo + float(rng.uniform(0, 3))
    return a


def check(got, ref, counts: bool):
    y, ry = got[0], ref[0]
    np.testing.assert_array_equal(y, ry)  # codes are λ or 0: equal values, equal spikes
    if counts:
        np.testing.assert_array_equal(got[1], ref[1])


@pytest.mark.parametrize("fn", UNARY)
def test_neuron_random(so, fn):
    rng = np.random.default_rng(abs(hash(fn)) % 2**32)
    for case in range(12):
        T = int(rng.integers(1, 40))
        shape = rand_shape(rng, T)
        x = rand_x(rng, shape)
        params = [rand_param(rng, shape[1:], False), rand_param(rng, shape[1:], False),
                  rand_param(rng, shape[1:], True)]
        attrs = attrs_for(rng, T, fn)
        counts = bool(rng.random() < 0.7)
        model, feeds = build("SignGDNeuron", [("x", x), ("offset", params[0]), ("bias", params[1]),
                                              ("amplitude", params[2])], attrs, counts)
        got = run(so, model, feeds)
        ref = sg.sign_gd_neuron(x, *params, **attrs)
        check(got, ref, counts)


@pytest.mark.parametrize("fn", BINARY)
def test_neuron2_random(so, fn):
    rng = np.random.default_rng(abs(hash(fn)) % 2**32 + 1)
    for case in range(12):
        T = int(rng.integers(1, 40))
        shape = rand_shape(rng, T)
        a, b = rand_x(rng, shape), rand_x(rng, shape)
        if fn in ("div", "div_sqrt") and rng.random() < 0.7:
            b = np.abs(b) + F32(0.1)
        params = [rand_param(rng, shape[1:], p) for p in (False, False, False, False, True)]
        attrs = {"time_steps": T, "function": fn}
        if fn in ("div", "div_sqrt") and rng.random() < 0.5:
            attrs["denominator_floor"] = float(rng.choice([0.01, 0.5]))
        counts = bool(rng.random() < 0.7)
        names = ["offset_a", "bias_a", "offset_b", "bias_b", "amplitude"]
        model, feeds = build("SignGDNeuron2", [("a", a), ("b", b), *zip(names, params)], attrs, counts, n_data=2)
        got = run(so, model, feeds)
        ref = sg.sign_gd_neuron2(a, b, *params, **attrs)
        check(got, ref, counts)


def test_decode_and_encode_random(so):
    rng = np.random.default_rng(7)
    for case in range(20):
        T = int(rng.integers(1, 40))
        shape = rand_shape(rng, T)
        z = rand_x(rng, shape)
        off, bias = rand_param(rng, shape[1:], False), rand_param(rng, shape[1:], False)
        attrs = {"time_steps": T}
        model, feeds = build("SignGDDecode", [("z", z), ("offset", off), ("bias", bias)], attrs, False)
        np.testing.assert_array_equal(run(so, model, feeds)[0], sg.sign_gd_decode(z, off, bias, **attrs))
        static = int(rng.random() < 0.5)
        w = rand_x(rng, [shape[0] // T] + shape[1:]) if static else z
        attrs = {"time_steps": T, "static_input": static}
        model, feeds = build("SignGDEncode", [("w", w)], attrs, False)
        np.testing.assert_array_equal(run(so, model, feeds)[0], sg.sign_gd_encode(w, **attrs))


def test_functions_bit_exact_on_a_dense_grid(so):
    """Every f on 200 000 inputs covering its ranges, its edges and special values, through the
    first step of a neuron: fire iff 0 >= f(x̂) with x̂ = x exactly (bias x, offset 2z)."""
    x = np.concatenate([np.linspace(-100, 100, 100_001), np.linspace(-4, 4, 100_001),
                        [0.0, -0.0, 88.0, 88.0001, -86.0, -86.0001, 9.0, -9.0, 1.0, np.sqrt(2), 10 * np.sqrt(2),
                         3.4e38, -3.4e38, 1e-40]]).astype(F32)
    # infinities and NaN reach x̂ through the input (bias and offset must be finite)
    z = np.array([[np.inf, -np.inf, np.nan, 1e38, -1e38]], F32)
    for fn in UNARY:
        attrs = {"time_steps": 1, "function": fn, **({"lo": -1.0, "hi": 2.0} if fn == "clip" else {})}
        # w starts at 0: spike iff 0 >= f(x̂); with amplitude 1 the code is the spike
        model, feeds = build("SignGDNeuron", [("x", np.zeros((1, x.size), F32)), ("offset", np.zeros(x.size, F32)),
                                              ("bias", x)], attrs, False)
        got = run(so, model, feeds)[0]
        ref = sg.sign_gd_neuron(np.zeros((1, x.size), F32), np.zeros(x.size, F32), x, **attrs)[0]
        np.testing.assert_array_equal(got, ref, err_msg=fn)
        model, feeds = build("SignGDNeuron", [("x", z)], attrs, False)
        np.testing.assert_array_equal(run(so, model, feeds)[0], sg.sign_gd_neuron(z, **attrs)[0], err_msg=fn)


def test_both_isas(snn_library):
    """The randomized cases and (a third of) the fuzz again with SNN_ONNX_ISA=baseline (the AVX2
    bodies run above on AVX2 machines): both builds of every body give the reference's spikes."""
    if os.environ.get("SNN_ONNX_ISA") == "baseline":
        pytest.skip("this process already runs the baseline kernels")
    # the child loads the library this process uses (its snn_onnx may be the checkout's, unbuilt, in CI)
    env = {**os.environ, "SNN_ONNX_ISA": "baseline", "SNN_ONNX_FUZZ_SCALE": "0.3", "SNN_ONNX_LIBRARY": snn_library}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k",
                        "random or dense or fuzz"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


X = np.zeros((4, 2, 3), F32)
BAD = [
    ("SignGDNeuron", [("x", X)], {"time_steps": 2, "function": "softplus"}, ["function must be one of", "'softplus'"]),
    ("SignGDNeuron", [("x", X)], {"time_steps": 2}, ["required attribute 'function' is missing"]),
    ("SignGDNeuron", [("x", X)], {"time_steps": 2, "function": "clip", "lo": 1.0, "hi": 0.0}, ["clip needs lo <= hi"]),
    ("SignGDNeuron", [("x", X)], {"time_steps": 2, "function": "relu", "gamma": 1.5}, ["gamma must be in (0, 1]"]),
    ("SignGDNeuron", [("x", X)], {"time_steps": 2, "function": "relu", "eta0": 0.0}, ["eta0 must be finite and > 0"]),
    ("SignGDNeuron", [("x", X), ("offset", None), ("bias", None), ("amplitude", np.float32(0.0))],
     {"time_steps": 2, "function": "relu"}, ["amplitude must be finite and > 0"]),
    ("SignGDNeuron", [("x", X), ("offset", np.ones((1, 2, 3), F32))], {"time_steps": 2, "function": "relu"},
     ["offset has rank 3", "no batch axis"]),
    ("SignGDNeuron", [("x", X), ("offset", np.ones(4, F32))], {"time_steps": 2, "function": "relu"},
     ["offset of shape [4] does not broadcast"]),
    ("SignGDNeuron", [("x", X), ("offset", np.float32(np.inf))], {"time_steps": 2, "function": "relu"},
     ["offset must be finite"]),
    ("SignGDNeuron", [("x", X)], {"time_steps": 3, "function": "relu"}, ["not divisible by time_steps 3"]),
    ("SignGDNeuron2", [("a", X), ("b", X[:, :1])], {"time_steps": 2, "function": "max"}, ["must have the same shape"]),
    ("SignGDNeuron2", [("a", X), ("b", X)], {"time_steps": 2, "function": "div", "denominator_floor": -1.0},
     ["denominator_floor must be finite and >= 0"]),
    ("SignGDEncode", [("w", X)], {"time_steps": 2, "static_input": 2}, ["static_input must be 0 or 1"]),
    ("SignGDDecode", [("z", X), ("offset", np.ones(7, F32))], {"time_steps": 2}, ["does not broadcast"]),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_input(so, case):
    op, inputs, attrs, fragments = BAD[case]
    n_data = 2 if op == "SignGDNeuron2" else 1
    node_name = f"bad_node_{case}"
    model, feeds = build(op, inputs, attrs, op in schema.SPIKING_OPS, n_data=n_data, node_name=node_name)
    with pytest.raises(Exception) as info:  # at session creation (attributes) or run (inputs)
        run(so, model, feeds)
    msg = str(info.value)
    assert f"{op} node '{node_name}'" in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    # the reference refuses the same input
    from snn_onnx.errors import OpInputError

    ref = {"SignGDNeuron": sg.sign_gd_neuron, "SignGDNeuron2": sg.sign_gd_neuron2, "SignGDEncode": sg.sign_gd_encode,
           "SignGDDecode": sg.sign_gd_decode}[op]
    args = [v for _, v in inputs]
    kw = {k: v for k, v in attrs.items()}
    if op.startswith("SignGDNeuron") and "function" not in kw:
        return  # a Python keyword argument: not the same kind of error
    with pytest.raises(OpInputError):
        ref(*args, **kw)


# ---------------------------------------------------------------------------------------------
# property-based fuzz (hypothesis; the strategies of test_ops_fuzz.py): special values, empty
# batches, zero-size dimensions, invalid parameters (both must refuse them)

hypothesis = pytest.importorskip("hypothesis", reason="the op fuzz needs hypothesis (pip install '.[dev]')")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from test_ops_fuzz import SEED, fills, layouts  # noqa: E402

FUZZ_EXAMPLES = int(300 * float(os.environ.get("SNN_ONNX_FUZZ_SCALE", "1")))
FUZZ = settings(deadline=None, database=None, derandomize=os.environ.get("SNN_ONNX_FUZZ_RANDOM") != "1",
                suppress_health_check=list(HealthCheck), max_examples=FUZZ_EXAMPLES)
BAD_VALUES = np.array([np.nan, np.inf, -np.inf], F32)


@st.composite
def broadcast_params(draw, sample: list[int], positive: bool):
    kind, seed, bad = draw(st.tuples(st.integers(0, 3), SEED, st.integers(0, 40)))
    rng = np.random.default_rng(seed)
    if kind == 0:
        return None
    if kind == 1 or not sample:
        shape = []
    elif kind == 2:
        shape = [sample[0]] + [1] * (len(sample) - 1)
    else:
        shape = list(sample[-int(rng.integers(1, len(sample) + 1)):])
    v = (rng.uniform(0.05, 3.0, size=shape) if positive else rng.normal(size=shape) * 2).astype(F32)
    if v.size and bad == 0:  # now and then a value both must refuse
        choices = np.concatenate([BAD_VALUES, np.array([0.0, -1.0], F32)]) if positive else BAD_VALUES
        v.reshape(-1)[0] = rng.choice(choices)
    return v


@st.composite
def signgd_cases(draw, op: str):
    T, shape, B = draw(layouts(max_t=16))
    attrs = {"time_steps": T}
    if draw(st.booleans()):
        attrs["eta0"], attrs["gamma"] = draw(st.sampled_from([(0.15, 0.95), (0.5, 1.0), (1e-3, 0.5)]))
    sample = shape[1:]
    if op == "SignGDNeuron":
        attrs["function"] = draw(st.sampled_from(UNARY))
        attrs.update(draw(st.sampled_from([{}, {"alpha": 0.2, "beta": 0.25}, {"lo": -0.5, "hi": 1.5}])))
        data = [("x", draw(fills(shape)))]
        names, pos = ["offset", "bias", "amplitude"], [False, False, True]
    elif op == "SignGDNeuron2":
        attrs["function"] = draw(st.sampled_from(BINARY))
        attrs["denominator_floor"] = draw(st.sampled_from([0.0, 0.0, 1e-3, 0.5]))
        data = [("a", draw(fills(shape))), ("b", draw(fills(shape)))]
        names, pos = ["offset_a", "bias_a", "offset_b", "bias_b", "amplitude"], [False] * 4 + [True]
    elif op == "SignGDDecode":
        data = [("z", draw(fills(shape)))]
        names, pos = ["offset", "bias"], [False, False]
    else:
        attrs["static_input"] = draw(st.sampled_from([0, 1]))
        data = [("w", draw(fills([B, *sample] if attrs["static_input"] else shape)))]
        names, pos = [], []
    params = [(n, draw(broadcast_params(sample, p))) for n, p in zip(names, pos)]
    return op, attrs, data, params, draw(st.booleans())


REFS = {"SignGDNeuron": sg.sign_gd_neuron, "SignGDNeuron2": sg.sign_gd_neuron2, "SignGDDecode": sg.sign_gd_decode,
        "SignGDEncode": sg.sign_gd_encode}


def check_case(so, case):
    from snn_onnx.errors import OpInputError

    op, attrs, data, params, counts = case
    counts = counts and op in schema.SPIKING_OPS
    model, feeds = build(op, [*data, *params], attrs, counts, n_data=len(data), node_name="fuzz")
    try:
        out = run(so, model, feeds)
    except Exception as err:  # noqa: BLE001 - compared with the reference's refusal
        out = err
    try:
        want = REFS[op](*[v for _, v in data], *[v for _, v in params], **attrs)
    except OpInputError as err:
        want = err
    if isinstance(want, Exception) or isinstance(out, Exception):
        assert isinstance(out, Exception), f"the reference refuses ({want}) but the kernel ran"
        assert isinstance(want, Exception), f"the kernel refuses an input the reference accepts: {out}"
        assert f"{op} node 'fuzz'" in str(out), str(out)
        return
    want = want if isinstance(want, tuple) else (want,)
    assert out[0].shape == want[0].shape and out[0].dtype == F32
    np.testing.assert_array_equal(out[0], want[0])  # codes / estimates: the same float32 operations
    if counts:
        np.testing.assert_array_equal(out[1], want[1])


@pytest.mark.parametrize("op", sorted(REFS))
def test_fuzz(so, op):
    n = 0

    @FUZZ
    @given(signgd_cases(op))
    def one(case):
        nonlocal n
        n += 1
        check_case(so, case)

    one()
    assert n >= FUZZ_EXAMPLES


# ---------------------------------------------------------------------------------------------
# the CUDA kernels' bodies (custom_ops/src/cuda/signgd.cuh) run on the host (emulate.cc): the
# thread layout, sample groups and count accumulation against the reference; a GPU run of the
# same graphs is tests/test_cuda.py's (it skips without one)

import ctypes  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

P_F, P_I64 = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int64)
I64, C_INT, C_F = ctypes.c_int64, ctypes.c_int, ctypes.c_float


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if not cxx:
        pytest.skip("no C++ compiler on PATH: the host emulation of the CUDA kernels is not checked")
    src = Path(__file__).resolve().parents[1] / "custom_ops" / "src"
    out = tmp_path_factory.mktemp("sgemu") / "libsnn_sg_emu.so"
    cmd = [cxx, "-std=c++17", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-shared", "-fPIC", "-I", str(src),
           str(src / "cuda" / "emulate.cc"), "-o", str(out),
           *os.environ.get("SNN_ONNX_EMU_CXXFLAGS", "").split()]  # scripts/sanitize_ops.sh: the sanitizers
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lib = ctypes.CDLL(str(out))
    lib.snn_emu_sg_neuron.argtypes = [P_F, P_F, P_F, P_I64, I64, I64, I64, P_F, P_F, P_F, P_F, P_F, P_F, C_INT, C_INT,
                                      C_F, C_F, C_F, C_F, C_F, I64, C_INT]
    lib.snn_emu_sg_codec.argtypes = [C_INT, P_F, P_F, I64, I64, I64, P_F, P_F, P_F, C_INT, I64]
    lib.snn_emu_sg_neuron.restype = lib.snn_emu_sg_codec.restype = C_INT
    return lib


def _p(a):
    return None if a is None else np.ascontiguousarray(a, F32).ctypes.data_as(P_F)


def _expanded(p, sample, dflt):
    return np.ascontiguousarray(np.broadcast_to(np.asarray(dflt if p is None else p, F32), sample).reshape(-1))


@pytest.mark.parametrize("binary", [False, True])
def test_cuda_bodies_emulated(emu, binary):
    from snn_onnx.ops import signgd_math as sm

    rng = np.random.default_rng(11 + binary)
    fns = BINARY if binary else UNARY
    for case in range(60):
        fn = fns[case % len(fns)]
        T = int(rng.integers(1, 24))
        shape = rand_shape(rng, T)
        B, sample, N = shape[0] // T, shape[1:], int(np.prod(shape[1:], dtype=np.int64))
        a, b = rand_x(rng, shape), rand_x(rng, shape)
        names = 5 if binary else 3
        params = [rand_param(rng, sample, k == names - 1) for k in range(names)]
        attrs = {"time_steps": T, "function": fn} if binary else attrs_for(rng, T, fn)
        if binary and fn in ("div", "div_sqrt"):
            attrs["denominator_floor"] = float(rng.choice([0.0, 0.3]))
        counts = bool(rng.random() < 0.7)
        force = int(rng.choice([0, 1, 4, 16])) if counts else 0
        eta = sm.eta_table(T, attrs.get("eta0", 0.15), attrs.get("gamma", 0.95))
        y = np.full(shape, np.nan, F32)
        c = np.full([T, *sample], 987654321, np.int64) if counts else None
        dflts = [1.0, 0.0, 1.0, 0.0, 1.0] if binary else [1.0, 0.0, 1.0]
        ex = [_expanded(p, sample, d) for p, d in zip(params, dflts)]
        offa, biasa = ex[0], ex[1]
        offb, biasb = (ex[2], ex[3]) if binary else (None, None)
        lam = ex[-1]
        fidx = list(fns).index(fn)
        rc = emu.snn_emu_sg_neuron(_p(a), _p(b) if binary else None, y.ctypes.data_as(P_F),
                                   None if c is None else c.ctypes.data_as(P_I64), T, B, N, _p(offa), _p(biasa),
                                   _p(offb), _p(biasb), _p(lam), _p(eta), int(binary), fidx,
                                   attrs.get("alpha", 0.01), attrs.get("beta", 0.5), attrs.get("lo", -np.inf),
                                   attrs.get("hi", np.inf), attrs.get("denominator_floor", 0.0),
                                   int(rng.choice([1, 64, 10**6])), force)
        assert rc == 0
        if binary:
            ry, rc_ = sg.sign_gd_neuron2(a, b, *params, **attrs)
        else:
            ry, rc_ = sg.sign_gd_neuron(a, *params, **attrs)
        np.testing.assert_array_equal(y, ry, err_msg=f"{fn} case {case}")
        if counts:
            np.testing.assert_array_equal(c, rc_, err_msg=f"{fn} case {case}")


def test_cuda_codec_bodies_emulated(emu):
    from snn_onnx.ops import signgd_math as sm

    rng = np.random.default_rng(13)
    for case in range(40):
        T = int(rng.integers(1, 24))
        shape = rand_shape(rng, T)
        B, sample, N = shape[0] // T, shape[1:], int(np.prod(shape[1:], dtype=np.int64))
        eta = sm.eta_table(T, 0.15, 0.95)
        z = rand_x(rng, shape)
        off, bias = rand_param(rng, sample, False), rand_param(rng, sample, False)
        y = np.full(shape, np.nan, F32)
        assert emu.snn_emu_sg_codec(0, _p(z), y.ctypes.data_as(P_F), T, B, N, _p(_expanded(off, sample, 1.0)),
                                    _p(_expanded(bias, sample, 0.0)), _p(eta), 0, 64) == 0
        np.testing.assert_array_equal(y, sg.sign_gd_decode(z, off, bias, time_steps=T))
        static = int(rng.random() < 0.5)
        w = rand_x(rng, [B, *sample]) if static else z
        y = np.full(shape, np.nan, F32)
        assert emu.snn_emu_sg_codec(1, _p(w), y.ctypes.data_as(P_F), T, B, N, None, None, _p(eta), static, 64) == 0
        np.testing.assert_array_equal(y, sg.sign_gd_encode(w, time_steps=T, static_input=static))


def test_cuda_on_a_gpu(snn_library):
    """The CUDA kernels on a GPU (CUDA provider alone, no CPU fallback): the randomized cases of
    every SignGD op, large layouts included, bit-exact with the reference. Skips, saying why,
    without a GPU, onnxruntime-gpu or a CUDA build of the library."""
    from test_cuda import cuda_session, cuda_unavailable

    reason = cuda_unavailable(snn_library)
    if reason:
        pytest.skip(f"CUDA parity not run: {reason}")
    rng = np.random.default_rng(17)
    for case in range(len(UNARY) + len(BINARY)):
        binary = case >= len(UNARY)
        fn = BINARY[case - len(UNARY)] if binary else UNARY[case]
        for shape_kind in range(3):
            T = int(rng.integers(1, 30))
            shape = rand_shape(rng, T) if shape_kind < 2 else [T * 8, 64, 33]
            sample = shape[1:]
            attrs = {"time_steps": T, "function": fn} if binary else attrs_for(rng, T, fn)
            data = [("a", rand_x(rng, shape)), ("b", rand_x(rng, shape))] if binary else [("x", rand_x(rng, shape))]
            names = ["offset_a", "bias_a", "offset_b", "bias_b", "amplitude"] if binary else \
                ["offset", "bias", "amplitude"]
            params = [(n, rand_param(rng, sample, n == "amplitude")) for n in names]
            counts = bool(rng.random() < 0.7)
            op = "SignGDNeuron2" if binary else "SignGDNeuron"
            model, feeds = build(op, [*data, *params], attrs, counts, n_data=len(data))
            out = cuda_session(snn_library, model).run(None, feeds)
            want = REFS[op](*[v for _, v in data], *[v for _, v in params], **attrs)
            np.testing.assert_array_equal(out[0], want[0], err_msg=f"{fn} {shape}")
            if counts:
                np.testing.assert_array_equal(out[1], want[1], err_msg=f"{fn} {shape}")
    for static in (0, 1):
        T = 12
        shape = [T * 4, 8, 5]
        z = rand_x(rng, shape)
        off = rand_param(rng, shape[1:], False)
        model, feeds = build("SignGDDecode", [("z", z), ("offset", off)], {"time_steps": T}, False)
        np.testing.assert_array_equal(cuda_session(snn_library, model).run(None, feeds)[0],
                                      sg.sign_gd_decode(z, off, time_steps=T))
        w = rand_x(rng, [4, 8, 5]) if static else z
        model, feeds = build("SignGDEncode", [("w", w)], {"time_steps": T, "static_input": static}, False)
        np.testing.assert_array_equal(cuda_session(snn_library, model).run(None, feeds)[0],
                                      sg.sign_gd_encode(w, time_steps=T, static_input=static))
