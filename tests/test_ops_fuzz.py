"""Property-based fuzz of every snn_onnx op (CPU kernels) against the NumPy reference.

Hypothesis draws the op's attributes, the time layout (T, batch, rank, sizes; empty batches
and zero-size dimensions too), scalar or per-channel parameters, and the input: a seeded
random fill of one kind (small integers and a quarter grid, which put membranes exactly on
thresholds; normal values; arbitrary float32 bit patterns: NaN, ±inf, subnormals, huge) with
up to eight values of Hypothesis' own choosing written over it (it favours NaN, ±inf, ±0,
subnormals and the float32 extremes). Properties:

* spikes (y of the neurons) and spike counts are bit-exact; so are the neurons' membrane
  potentials where the case declares them (the optional debug output), and TemporalMean /
  TemporalDelta values (the same float32 operations), NaN in the same places;
* CompensatedElementwise values agree within a bound derived from f's float32 error, NaN in
  the same places (docs/ops.md, "NaN and infinity");
* an input the reference refuses (a threshold that is 0, negative, NaN or infinite) is an
  ONNX Runtime error naming the op and the node, and nothing else is.

The kernels are compiled for two ISAs and one is chosen per process (custom_ops/src/cpu/isa.h):
this module runs with the best one, and test_fuzz_baseline_isa runs it again in a child
process with SNN_ONNX_ISA=baseline. Cases per run (both ISAs): 2 x sum(EXAMPLES) = 12,000;
SNN_ONNX_FUZZ_SCALE multiplies them, SNN_ONNX_FUZZ_RANDOM=1 draws new cases instead of the
fixed (derandomized) sequence CI runs. docs/reliability.md has the details.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the op fuzz needs hypothesis (pip install '.[dev]')")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from snn_onnx.errors import OpInputError  # noqa: E402
from snn_onnx.ops import reference as ref  # noqa: E402
from snn_onnx.ops import schema  # noqa: E402
from test_kernels import build  # noqa: E402

F32 = np.float32
ROOT = Path(__file__).resolve().parents[1]
SCALE = float(os.environ.get("SNN_ONNX_FUZZ_SCALE", "1"))
EXAMPLES = {"IFNeuron": 1500, "ParaIFNeuron": 1200, "MultiThresholdNeuron": 1200, "TemporalMean": 500,
            "TemporalDelta": 500, "CompensatedElementwise": 1100}
FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=os.environ.get("SNN_ONNX_FUZZ_RANDOM") != "1",
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


def examples(op: str) -> int:
    return max(1, int(EXAMPLES[op] * SCALE))


# ---------------------------------------------------------------------------------------------
# sessions: one per (op, attributes, counts), parameters as graph inputs so that runs vary them


@pytest.fixture(scope="module")
def sessions(snn_library):
    so = ort.SessionOptions()
    so.register_custom_ops_library(snn_library)
    # Fuzz inputs are small (one task each: the work split is test_kernels' threads tests'), and
    # a session with its own thread pool takes ~25x longer to create.
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 4

    @lru_cache(maxsize=1024)
    def get(op: str, attrs: tuple, inputs: tuple[str, ...], counts: bool, potentials: bool = False):
        dummy = [(name, np.zeros(1, F32) if name else None) for name in inputs]  # values fed per run
        model, _ = build(op, dummy, dict(attrs), counts, node_name="fuzz", initializers=False,
                         potentials=potentials)
        return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])

    return get


def run_op(sessions, op, attrs: dict, x, params: list[tuple[str, np.ndarray | None]], counts: bool,
           potentials: bool = False):
    """Kernel outputs, or the exception it raised."""
    names = tuple(n if v is not None else "" for n, v in params)
    while names and names[-1] == "":
        names = names[:-1]
    sess = sessions(op, tuple(sorted(attrs.items())), ("x",) + names, counts, potentials)
    feeds = {"x": x, **{n: v for n, v in params if v is not None}}
    try:
        return sess.run(None, feeds)
    except Exception as err:  # noqa: BLE001 - compared with the reference's refusal below
        return err


def reference(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except OpInputError as err:
        return err


def agree_on_refusal(out, want, op) -> bool:
    """True when both refused (the kernel naming op and node); fails when only one did."""
    if isinstance(want, Exception) or isinstance(out, Exception):
        assert isinstance(out, Exception), f"the reference refuses ({want}) but the kernel ran"
        assert isinstance(want, Exception), f"the kernel refuses an input the reference accepts: {out}"
        assert f"{op} node 'fuzz'" in str(out), str(out)
        return True
    return False


# ---------------------------------------------------------------------------------------------
# strategies

SPECIAL = st.floats(width=32)  # Hypothesis' own float32 choice: edges first (nan, inf, 0, tiny, max)


# Each case is a handful of Hypothesis draws (each costs time): the structure (T, batch, rank,
# attributes, kinds of values) and the special values are Hypothesis' choices, the bulk of the
# values comes from a seeded generator.
SEED = st.integers(0, 2**32 - 1)
OVERRIDES = st.lists(st.tuples(st.integers(0, 2**31 - 1), SPECIAL), max_size=8)


@st.composite
def layouts(draw, max_t=12):
    """(T, x shape with T*B rows, B); about one case in ten has an empty batch or a zero-size
    dimension."""
    T, B, rank, seed = draw(st.tuples(st.integers(1, max_t), st.integers(0, 3), st.integers(1, 4), SEED))
    rng = np.random.default_rng(seed)
    B = B if B > 0 or rng.random() < 0.4 else 1
    dims = [int(d) for d in rng.integers(1, 6, size=rank - 1)]
    if dims and rng.random() < 0.05:
        dims[int(rng.integers(0, len(dims)))] = 0
    return T, [T * B, *dims], B


KINDS = ["int", "quarter", "normal", "wide", "bits"]


@st.composite
def fills(draw, shape):
    """A float32 array of `shape`: a seeded fill of one kind, then up to 8 values of Hypothesis'
    choosing at positions of its choosing."""
    kind, seed, overrides = draw(st.tuples(st.sampled_from(KINDS), SEED, OVERRIDES))
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if kind == "int":  # with thresholds 0.5, 1, 2 membranes land exactly on thresholds
        x = rng.integers(-3, 4, size=n).astype(F32)
    elif kind == "quarter":  # exact float arithmetic, many ties
        x = (rng.integers(-8, 9, size=n) * 0.25).astype(F32)
    elif kind == "normal":
        x = (rng.normal(0.0, 1.0, size=n) * rng.choice([0.1, 1.0, 3.0, 30.0])).astype(F32)
    elif kind == "wide":
        x = (rng.normal(0.0, 1.0, size=n) * 10.0 ** rng.uniform(-40, 38, size=n)).astype(F32)
    else:  # arbitrary bit patterns: NaN (with payloads), ±inf, subnormals, the extremes
        x = rng.integers(0, 2**32, size=n, dtype=np.uint32).view(F32)
    if n:
        for pos, value in overrides:
            x[pos % n] = value
    return x.reshape(shape)


POSITIVE_EDGES = np.array([np.nextafter(F32(0), F32(1)), np.finfo(F32).tiny, 1e-3, 0.25, 0.5, 1.0, 2.0, 1e30,
                           np.finfo(F32).max], F32)
INVALID = np.array([0.0, -0.0, -1.0, np.nan, np.inf, -np.inf], F32)


@st.composite
def params_for(draw, shape, channel_axis, positive=True):
    """A scalar (shape [] or [1]) or a 1-D per-channel parameter along channel_axis; values
    finite and > 0 (thresholds, scales; now and then an invalid one) or any (a bias)."""
    per_channel, kind, seed, overrides = draw(st.tuples(
        st.booleans(), st.sampled_from(["grid", "uniform", "log", "edges"]), SEED, OVERRIDES))
    rng = np.random.default_rng(seed)
    rank = len(shape)
    axis = channel_axis + rank if channel_axis < 0 else channel_axis
    n = shape[axis] if per_channel and rank >= 2 and 1 <= axis < rank else 1
    if kind == "grid":
        v = rng.choice(np.array([0.25, 0.5, 1.0, 2.0]), size=n)
    elif kind == "uniform":
        v = rng.uniform(0.05, 2.0, size=n)
    elif kind == "log":
        v = 10.0 ** rng.uniform(-30, 30, size=n)
    else:
        v = rng.choice(POSITIVE_EDGES, size=n)
    v = v.astype(F32)
    if n and positive and rng.random() < 1 / 30:
        v[int(rng.integers(0, n))] = rng.choice(INVALID)
    if n and not positive:
        v = v * rng.choice(np.array([-1, 1], F32), size=n)
        for pos, value in overrides:
            v[pos % n] = value
    if n == 1 and not per_channel:
        return v.reshape(()) if rng.random() < 0.5 else v
    return v


def channel_axes(rank, default):
    """channel_axis values that are valid for this rank (the default included)."""
    valid = [a for a in range(1, rank)] + [a - rank for a in range(1, rank)]
    return st.sampled_from(sorted(set(valid) | {default}))


IF_ATTRS = st.fixed_dictionaries({
    "v_init": st.sampled_from([0.0, 0.5, 1.0, -0.25, 0.3]),
    "leak": st.sampled_from([1.0, 0.5, 0.9, 1.25]),
    "reset": st.sampled_from(["subtract", "zero"]),
    "signed": st.sampled_from([0, 1]),
    "signed_eps": st.sampled_from([1e-3, 0.0, 0.25, 1.0]),
    "static_input": st.sampled_from([0, 1]),
})
PARA_ATTRS = st.fixed_dictionaries({"v_init": st.sampled_from([0.0, 0.5, 1.0, 0.3]), "static_input": st.sampled_from([0, 1])})


@st.composite
def neuron_cases(draw, op):
    T, shape, B = draw(layouts())
    attrs = draw(IF_ATTRS if op == "IFNeuron" else PARA_ATTRS)
    attrs.update(time_steps=T, channel_axis=draw(channel_axes(len(shape), 1)))
    if attrs["static_input"]:
        shape = [B, *shape[1:]]
    x = draw(fills(shape))
    ax = attrs["channel_axis"]
    if op == "IFNeuron":
        params = [("threshold", draw(params_for(shape, ax)))]
    else:
        post, bias = draw(st.tuples(st.booleans(), st.booleans()))
        params = [("theta_pre", draw(params_for(shape, ax))),
                  ("theta_post", draw(params_for(shape, ax)) if post else None),
                  ("bias", draw(params_for(shape, ax, positive=False)) if bias else None)]
    return op, attrs, x, params, draw(st.booleans()), draw(st.booleans())


@st.composite
def mt_cases(draw):
    T, shape, _ = draw(layouts())
    attrs = {"time_steps": T, "levels": draw(st.sampled_from([1, 2, 3, 8, 12, 31, 32])),
             "channel_axis": draw(channel_axes(len(shape), -1))}
    x = draw(fills(shape))
    params = [("scale_pos", draw(params_for(shape, attrs["channel_axis"]))),
              ("scale_neg", draw(params_for(shape, attrs["channel_axis"])))]
    return "MultiThresholdNeuron", attrs, x, params, draw(st.booleans()), draw(st.booleans())


@st.composite
def elementwise_cases(draw, op):
    T, shape, _ = draw(layouts(max_t=20))
    attrs = {"time_steps": T}
    if op == "CompensatedElementwise":
        attrs["function"] = draw(st.sampled_from(schema.ELEMENTWISE_FUNCTIONS))
    return op, attrs, draw(fills(shape))


# ---------------------------------------------------------------------------------------------
# properties


def check_neuron(sessions, case):
    op, attrs, x, params, counts, potentials = case
    out = run_op(sessions, op, attrs, x, params, counts, potentials)
    want = reference(ref.REFERENCES[op], x, *[v for _, v in params], **attrs, potentials=True)
    if agree_on_refusal(out, want, op):
        return
    ry, rc, rp = want
    assert len(out) == 1 + counts + potentials
    assert out[0].dtype == F32 and out[0].shape == ry.shape
    np.testing.assert_array_equal(out[0], ry)  # spikes: which neuron fires when, and their size
    if counts:
        assert out[1].dtype == np.int64
        np.testing.assert_array_equal(out[1], rc)
    if potentials:
        assert out[-1].dtype == F32 and out[-1].shape == ry.shape
        np.testing.assert_array_equal(out[-1], rp)  # the same float32 operations, NaN included


def compensated_bound(x, T, fn, r):
    """|kernel - reference| allowed per element: f's float32 error (relative 1e-6 of |m| and
    |f|, plus 2.5e-7 absolute for functions of order 1 computed as 1 - ...), amplified by the
    delta's factors t and t - 1, plus the rounding of y itself."""
    m = ref.temporal_mean(x, time_steps=T).astype(np.float64).reshape(T, -1)
    with np.errstate(all="ignore"):
        f = ref.ELEMENTWISE[fn](m).astype(F32).astype(np.float64)
        df = 1e-6 * (np.abs(m) + np.abs(f)) + 2.5e-7
        prev = np.vstack([np.zeros_like(df[:1]), df[:-1]])
        t = np.arange(1, T + 1, dtype=np.float64)[:, None]
        return (t * df + (t - 1) * prev + 1e-6 * np.abs(r.astype(np.float64).reshape(T, -1))).reshape(r.shape)


def check_elementwise(sessions, case):
    op, attrs, x = case
    T = attrs["time_steps"]
    out = run_op(sessions, op, attrs, x, [], False)
    want = reference(ref.REFERENCES[op], x, **attrs)
    if agree_on_refusal(out, want, op):
        return
    (y,) = out
    assert y.dtype == F32 and y.shape == want.shape
    if op != "CompensatedElementwise":
        np.testing.assert_array_equal(y, want)  # the same float32 operations: equal, NaN included
        return
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    inf = np.isinf(want)
    np.testing.assert_array_equal(y[inf], want[inf])
    finite = np.isfinite(want)
    with np.errstate(all="ignore"):
        err = np.abs(y.astype(np.float64) - want.astype(np.float64))
    bound = compensated_bound(x, T, attrs["function"], want)
    bad = finite & ~(err <= bound)
    assert not bad.any(), (f"{attrs['function']}: {int(bad.sum())} values off, e.g. x-step values "
                           f"{y[bad][:4]} vs {want[bad][:4]}")


def fuzz(op: str, strategy, check):
    n = 0

    @settings(FUZZ, max_examples=examples(op))
    @given(strategy)
    def one(case):
        nonlocal n
        n += 1
        check(case)

    one()
    print(f"{op}: {n} cases")
    assert n >= examples(op), f"{op}: only {n} cases ran"


def test_fuzz_if_neuron(sessions):
    fuzz("IFNeuron", neuron_cases("IFNeuron"), lambda c: check_neuron(sessions, c))


def test_fuzz_para_if_neuron(sessions):
    fuzz("ParaIFNeuron", neuron_cases("ParaIFNeuron"), lambda c: check_neuron(sessions, c))


def test_fuzz_multi_threshold_neuron(sessions):
    fuzz("MultiThresholdNeuron", mt_cases(), lambda c: check_neuron(sessions, c))


@pytest.mark.parametrize("op", ["TemporalMean", "TemporalDelta", "CompensatedElementwise"])
def test_fuzz_elementwise(sessions, op):
    fuzz(op, elementwise_cases(op), lambda c: check_elementwise(sessions, c))


def test_fuzz_baseline_isa(snn_library):
    """The same fuzz with the baseline kernels (SNN_ONNX_ISA=baseline), in a child process: the
    ISA is chosen once per process."""
    if os.environ.get("SNN_ONNX_ISA") == "baseline":
        pytest.skip("this process already runs the baseline kernels")
    lib = ctypes.CDLL(snn_library)
    lib.snn_onnx_cpu_isa.restype = ctypes.c_char_p
    assert lib.snn_onnx_cpu_isa().decode() in ("avx2", "baseline")
    env = {**os.environ, "SNN_ONNX_ISA": "baseline", "SNN_ONNX_LIBRARY": snn_library}
    cmd = [sys.executable, "-m", "pytest", str(Path(__file__)), "-q", "-p", "no:cacheprovider", "-x",
           "-k", "not baseline_isa", "--rootdir", str(ROOT)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]


def test_selected_isa(snn_library):
    """The library reports the ISA its kernels run with: baseline where asked for, else AVX2
    wherever the CPU has it."""
    lib = ctypes.CDLL(snn_library)
    lib.snn_onnx_cpu_isa.restype = ctypes.c_char_p
    isa = lib.snn_onnx_cpu_isa().decode()
    if os.environ.get("SNN_ONNX_ISA") == "baseline":
        assert isa == "baseline"
    else:
        flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        if " avx2" in flags:
            assert isa == "avx2"
