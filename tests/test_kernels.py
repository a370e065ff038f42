"""The C++ (CPU) kernels of libsnn_onnx_ops against the NumPy references (the definition).

Every case builds a one-node ONNX model with onnx.helper and runs it in plain onnxruntime with
the library registered the way a user does (``so.register_custom_ops_library(path)``).
Spikes and counts must be identical to the reference; other values equal to float tolerance.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from snn_onnx.ops import reference as ref
from snn_onnx.ops import schema

F32 = np.float32
N_CASES = 200
OMIT = object()  # attribute / input left out of the node


# ---------------------------------------------------------------------------------------------
# model building and running


@pytest.fixture(scope="module")
def so(snn_library) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.register_custom_ops_library(snn_library)
    opts.intra_op_num_threads = 2
    opts.log_severity_level = 4  # expected failures below would otherwise print ORT error logs
    return opts


def build(op, inputs, attrs, counts=False, node_name="node0", initializers=True, potentials=False):
    """One-node model. ``inputs``: list of (name, array or None); None leaves an optional input
    out (empty name). ``x`` is always a graph input; parameters are initializers unless
    ``initializers`` is False. ``potentials``: declare the neurons' membrane output (output 2;
    output 1 is then "" when ``counts`` is False). Returns (model bytes, feed dict); the graph's
    outputs are y, then counts and potentials where declared."""
    node_inputs, graph_inputs, inits, feeds = [], [], [], {}
    for name, value in inputs:
        if value is None:
            node_inputs.append("")
            continue
        node_inputs.append(name)
        if name == "x" or not initializers:
            graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
            feeds[name] = value
        else:
            inits.append(numpy_helper.from_array(np.asarray(value, F32), name))
    while node_inputs and node_inputs[-1] == "":
        node_inputs.pop()
    outputs = ["y", "counts"] if counts else ["y"]
    if potentials:
        outputs = ["y", "counts" if counts else "", "potentials"]
    node = helper.make_node(
        op, node_inputs, outputs, name=node_name, domain=schema.DOMAIN,
        **{k: v for k, v in attrs.items() if v is not OMIT},
    )
    graph_outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if counts:
        graph_outputs.append(helper.make_tensor_value_info("counts", TensorProto.INT64, None))
    if potentials:
        graph_outputs.append(helper.make_tensor_value_info("potentials", TensorProto.FLOAT, None))
    graph = helper.make_graph([node], "g", graph_inputs, graph_outputs, inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(schema.DOMAIN, 1)],
        ir_version=10,
    )
    return model.SerializeToString(), feeds


def run(so, model, feeds):
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def resolved(op: str, attrs: dict) -> dict:
    """Attributes as the reference gets them: omitted ones take schema.py's defaults, so the
    comparison also checks that the kernels' defaults are schema.py's."""
    out = {}
    for name, default in schema.ALL_OPS[op].attributes.items():
        value = attrs.get(name, OMIT)
        out[name] = default if value is OMIT else value
    return out


# ---------------------------------------------------------------------------------------------
# random cases


def rand_shape(rng, T):
    rank = int(rng.integers(1, 6))
    B = int(rng.integers(1, 5))
    return [T * B] + [int(rng.integers(1, 7)) for _ in range(rank - 1)]


def rand_x(rng, shape):
    kind = rng.integers(0, 3)
    if kind == 0:  # integers: with thresholds 1, 0.5, 2 membranes land exactly on thresholds
        return rng.integers(-3, 4, size=shape).astype(F32)
    if kind == 1:  # quarter grid: exact float arithmetic, many ties
        return (rng.integers(-8, 9, size=shape) * 0.25).astype(F32)
    return (rng.normal(0.0, 1.0, size=shape) * rng.choice([0.1, 1.0, 3.0])).astype(F32)


def rand_positive(rng, n):
    if rng.random() < 0.5:
        return rng.choice(np.array([0.5, 1.0, 2.0], F32), size=n)
    return rng.uniform(0.05, 2.0, size=n).astype(F32)


def rand_param_layout(rng, shape):
    """(axis or None for a scalar, channel_axis attribute value or OMIT)."""
    rank = len(shape)
    if rank < 2 or rng.random() < 0.4:
        return None, rng.choice([OMIT, 1, -1]) if rank >= 2 else OMIT
    axis = int(rng.integers(1, rank))
    if axis == 1 and rng.random() < 0.5:
        return axis, OMIT
    return axis, axis if rng.random() < 0.5 else axis - rank


def make_param(rng, shape, axis, values_fn):
    if axis is None:  # scalar: shape [] or [1]
        v = values_fn(rng, 1)
        return v.reshape(()) if rng.random() < 0.5 else v
    return values_fn(rng, shape[axis])


def pick(rng, options):
    return options[int(rng.integers(0, len(options)))]


def if_case(seed):
    rng = np.random.default_rng(1000 + seed)
    T = int(rng.integers(1, 17))
    shape = rand_shape(rng, T)
    x = rand_x(rng, shape)
    axis, channel_axis = rand_param_layout(rng, shape)
    threshold = make_param(rng, shape, axis, rand_positive)
    attrs = {
        "time_steps": T,
        "v_init": pick(rng, [OMIT, 0.0, 0.5, 0.25, 1.0, float(rng.uniform(-0.5, 1.0))]),
        "leak": pick(rng, [OMIT, 1.0, 0.5, 0.9, float(rng.uniform(0.5, 1.0))]),
        "reset": pick(rng, [OMIT, "subtract", "zero"]),
        "signed": pick(rng, [OMIT, 0, 1, 1]),
        "signed_eps": pick(rng, [OMIT, 1e-3, 0.0, 0.25, 0.5]),
        "channel_axis": channel_axis,
    }
    return x, threshold, attrs, bool(rng.random() < 0.6), bool(rng.random() < 0.7)


def para_case(seed):
    rng = np.random.default_rng(2000 + seed)
    T = int(rng.integers(1, 17))
    shape = rand_shape(rng, T)
    x = rand_x(rng, shape)
    axis, channel_axis = rand_param_layout(rng, shape)
    # each parameter scalar or per channel independently (they share channel_axis)
    def param(values_fn):
        return make_param(rng, shape, axis if rng.random() < 0.7 else None, values_fn)

    theta_pre = param(rand_positive)
    theta_post = param(rand_positive) if rng.random() < 0.5 else None
    bias = None
    if rng.random() < 0.5:
        bias = param(lambda r, n: (r.integers(-4, 5, size=n) * 0.5).astype(F32)
                     if r.random() < 0.5 else r.normal(0, 1, size=n).astype(F32))
    attrs = {
        "time_steps": T,
        "v_init": pick(rng, [OMIT, 0.0, 0.5, 1.0, float(rng.uniform(0.0, 1.0))]),
        "channel_axis": channel_axis,
    }
    return x, theta_pre, theta_post, bias, attrs, bool(rng.random() < 0.6), bool(rng.random() < 0.7)


def temporal_case(seed):
    rng = np.random.default_rng(3000 + seed)
    T = int(rng.integers(1, 17))
    return rand_x(rng, rand_shape(rng, T)), T


def check_spikes(y, counts, ry, rcounts, want_counts):
    assert y.dtype == np.float32 and y.shape == ry.shape
    np.testing.assert_array_equal(np.sign(y), np.sign(ry))  # which neuron fires when, and sign
    np.testing.assert_array_equal(y, ry)  # spike amplitudes are thresholds: exact
    if want_counts:
        assert counts.dtype == np.int64
        np.testing.assert_array_equal(counts, rcounts)


# ---------------------------------------------------------------------------------------------
# randomized parity


@pytest.mark.parametrize("seed", range(N_CASES))
def test_if_neuron_random(so, seed):
    x, threshold, attrs, counts, inits = if_case(seed)
    model, feeds = build("IFNeuron", [("x", x), ("threshold", threshold)], attrs, counts,
                         initializers=inits)
    out = run(so, model, feeds)
    ry, rc = ref.if_neuron(x, threshold, **resolved("IFNeuron", attrs))
    check_spikes(out[0], out[1] if counts else None, ry, rc, counts)
    assert len(out) == (2 if counts else 1)


@pytest.mark.parametrize("seed", range(N_CASES))
def test_para_if_neuron_random(so, seed):
    x, pre, post, bias, attrs, counts, inits = para_case(seed)
    inputs = [("x", x), ("theta_pre", pre), ("theta_post", post), ("bias", bias)]
    model, feeds = build("ParaIFNeuron", inputs, attrs, counts, initializers=inits)
    out = run(so, model, feeds)
    ry, rc = ref.para_if_neuron(x, pre, post, bias, **resolved("ParaIFNeuron", attrs))
    check_spikes(out[0], out[1] if counts else None, ry, rc, counts)


@pytest.mark.parametrize("seed", range(N_CASES))
def test_temporal_mean_random(so, seed):
    x, T = temporal_case(seed)
    model, feeds = build("TemporalMean", [("x", x)], {"time_steps": T})
    (y,) = run(so, model, feeds)
    np.testing.assert_allclose(y, ref.temporal_mean(x, time_steps=T), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seed", range(N_CASES))
def test_temporal_delta_random(so, seed):
    x, T = temporal_case(seed)
    model, feeds = build("TemporalDelta", [("x", x)], {"time_steps": T})
    (y,) = run(so, model, feeds)
    np.testing.assert_allclose(y, ref.temporal_delta(x, time_steps=T), rtol=1e-6, atol=1e-6)


# static_input = 1: x is one step [B, ...]; the op must equal itself on x repeated T times


def static_case(case_fn, seed):
    """A random case of ``case_fn`` turned into a static-input case: x keeps its first B rows
    (one step) and the node gets static_input=1."""
    *rest, = case_fn(seed)
    x, attrs = rest[0], rest[-3]
    T = attrs["time_steps"]
    rest[0] = x[: x.shape[0] // T]
    attrs["static_input"] = 1
    return rest


@pytest.mark.parametrize("seed", range(N_CASES // 2))
def test_if_neuron_static_input(so, seed):
    x, threshold, attrs, counts, inits = static_case(if_case, seed)
    T = attrs["time_steps"]
    model, feeds = build("IFNeuron", [("x", x), ("threshold", threshold)], attrs, counts,
                         initializers=inits)
    out = run(so, model, feeds)
    ry, rc = ref.if_neuron(x, threshold, **resolved("IFNeuron", attrs))
    # the reference of the static mode is the reference on the repeated input
    tiled = {**resolved("IFNeuron", attrs), "static_input": 0}
    ty, tc = ref.if_neuron(np.tile(x, (T,) + (1,) * (x.ndim - 1)), threshold, **tiled)
    np.testing.assert_array_equal(ry, ty)
    np.testing.assert_array_equal(rc, tc)
    assert out[0].shape == (T * x.shape[0],) + x.shape[1:]
    check_spikes(out[0], out[1] if counts else None, ry, rc, counts)


@pytest.mark.parametrize("seed", range(N_CASES // 2))
def test_para_if_neuron_static_input(so, seed):
    x, pre, post, bias, attrs, counts, inits = static_case(para_case, seed)
    T = attrs["time_steps"]
    inputs = [("x", x), ("theta_pre", pre), ("theta_post", post), ("bias", bias)]
    model, feeds = build("ParaIFNeuron", inputs, attrs, counts, initializers=inits)
    out = run(so, model, feeds)
    ry, rc = ref.para_if_neuron(x, pre, post, bias, **resolved("ParaIFNeuron", attrs))
    tiled = {**resolved("ParaIFNeuron", attrs), "static_input": 0}
    ty, tc = ref.para_if_neuron(np.tile(x, (T,) + (1,) * (x.ndim - 1)), pre, post, bias, **tiled)
    np.testing.assert_array_equal(ry, ty)
    np.testing.assert_array_equal(rc, tc)
    assert out[0].shape == (T * x.shape[0],) + x.shape[1:]
    check_spikes(out[0], out[1] if counts else None, ry, rc, counts)


def test_static_input_threads_agree(snn_library):
    """Static input, big enough for several neuron and batch blocks, 1 vs 4 threads."""
    rng = np.random.default_rng(12)
    T, x = 8, rand_x(rng, (64, 2, 40, 41))
    th = rand_positive(rng, 2)
    cases = []
    for counts in (True, False):
        cases.append(("IFNeuron", [("x", x), ("threshold", th)], {"time_steps": T, "static_input": 1, "leak": 0.9},
                      counts))
        cases.append(("ParaIFNeuron", [("x", x), ("theta_pre", th)], {"time_steps": T, "static_input": 1}, counts))
    outs = outputs_equal_over_threads(snn_library, cases)
    xt = np.tile(x, (T, 1, 1, 1))
    ry, rc = ref.if_neuron(xt, th, time_steps=T, leak=0.9)
    check_spikes(outs[0], outs[1], ry, rc, True)
    ry, rc = ref.para_if_neuron(xt, th, time_steps=T)
    check_spikes(outs[2], outs[3], ry, rc, True)


def outputs_equal_over_threads(snn_library, cases):
    """Run every (op, inputs, attrs, counts) case with 1 and with 4 intra-op threads, assert the
    outputs are identical, and return the 1-thread outputs of all cases, in order, flattened."""
    results = []
    for threads in (1, 4):
        opts = ort.SessionOptions()
        opts.register_custom_ops_library(snn_library)
        opts.intra_op_num_threads = threads
        outs = []
        for op, inputs, attrs, counts in cases:
            model, feeds = build(op, inputs, attrs, counts)
            outs += run(opts, model, feeds)
        results.append(outs)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    return results[0]


_BASELINE_SCRIPT = """
import sys
sys.path[:0] = {paths!r}
import numpy as np
import tests.test_kernels as tk
from snn_onnx.ops import reference as ref
import onnxruntime as ort
so = ort.SessionOptions()
so.register_custom_ops_library({lib!r})
so.log_severity_level = 4
for seed in range(40):
    for static in (False, True):
        x, th, attrs, counts, inits = tk.static_case(tk.if_case, seed) if static else tk.if_case(seed)
        m, f = tk.build("IFNeuron", [("x", x), ("threshold", th)], attrs, counts, initializers=inits)
        out = tk.run(so, m, f)
        ry, rc = ref.if_neuron(x, th, **tk.resolved("IFNeuron", attrs))
        tk.check_spikes(out[0], out[1] if counts else None, ry, rc, counts)
        x, pre, post, bias, attrs, counts, inits = (tk.static_case(tk.para_case, seed) if static
                                                   else tk.para_case(seed))
        m, f = tk.build("ParaIFNeuron", [("x", x), ("theta_pre", pre), ("theta_post", post),
                                          ("bias", bias)], attrs, counts, initializers=inits)
        out = tk.run(so, m, f)
        ry, rc = ref.para_if_neuron(x, pre, post, bias, **tk.resolved("ParaIFNeuron", attrs))
        tk.check_spikes(out[0], out[1] if counts else None, ry, rc, counts)
    x, T = tk.temporal_case(seed)
    for op, fn in (("TemporalMean", ref.temporal_mean), ("TemporalDelta", ref.temporal_delta)):
        m, f = tk.build(op, [("x", x)], {{"time_steps": T}})
        (y,) = tk.run(so, m, f)
        np.testing.assert_allclose(y, fn(x, time_steps=T), rtol=1e-6, atol=1e-6)
print("ok")
"""


def test_baseline_isa_matches_reference(snn_library):
    """The kernels are compiled for the baseline ISA and for AVX2 and picked at run time
    (custom_ops/src/cpu/isa.h); the rest of this file tests the variant this CPU picks. Here
    SNN_ONNX_ISA=baseline forces the baseline code in a fresh process."""
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    script = _BASELINE_SCRIPT.format(paths=[root, *sys.path], lib=snn_library)
    env = {**os.environ, "SNN_ONNX_ISA": "baseline"}
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-3000:]


# ---------------------------------------------------------------------------------------------
# edges


def test_if_threshold_equality_edges(so):
    # Integer inputs, theta = 1, v_init = 0: membranes hit exactly 1 (fires) and exactly -eps.
    T = 8
    rng = np.random.default_rng(7)
    x = rng.integers(-2, 3, size=(T * 3, 4, 5)).astype(F32)
    x[:T * 3:3, 0, 0] = 1.0  # sample 0, neuron 0: v == theta at every step
    for attrs in (
        {"time_steps": T, "v_init": 0.0},
        {"time_steps": T, "v_init": 0.0, "signed": 1, "signed_eps": 1.0},
        {"time_steps": T, "v_init": 0.0, "signed": 1, "reset": "zero"},
    ):
        model, feeds = build("IFNeuron", [("x", x), ("threshold", np.float32(1.0))], attrs, True)
        y, c = run(so, model, feeds)
        ry, rc = ref.if_neuron(x, 1.0, **resolved("IFNeuron", attrs))
        check_spikes(y, c, ry, rc, True)
        assert np.all(y[:T * 3:3, 0, 0] == 1.0)
    # signed_eps boundary: v == -eps fires -1 once the net count is positive
    x = np.array([1.0, -1.25, 0.0], F32)  # T=3, B=1: v = 1 (+1), then exactly -eps (-1)
    attrs = {"time_steps": 3, "v_init": 0.0, "signed": 1, "signed_eps": 1.25}
    model, feeds = build("IFNeuron", [("x", x), ("threshold", np.float32(1.0))], attrs, True)
    y, c = run(so, model, feeds)
    np.testing.assert_array_equal(y, [1.0, -1.0, 0.0])
    np.testing.assert_array_equal(y, ref.if_neuron(x, 1.0, **resolved("IFNeuron", attrs))[0])


def test_para_if_equality_edges(so):
    # acc + bias == t * theta_pre exactly: fires at step t.
    T = 4
    x = np.array([[0.5, 1.0, 0.25, 0.0]] * T, F32)  # B=1, acc = T * x
    bias = np.float32(0.0)
    model, feeds = build("ParaIFNeuron", [("x", x), ("theta_pre", np.float32(1.0)),
                                          ("theta_post", None), ("bias", bias)],
                         {"time_steps": T}, True)
    y, c = run(so, model, feeds)
    ry, rc = ref.para_if_neuron(x, 1.0, None, bias, time_steps=T)
    check_spikes(y, c, ry, rc, True)
    np.testing.assert_array_equal(c.sum(axis=0), [2, 4, 1, 0])


def test_defaults_match_schema(so):
    """Omitted attributes behave as schema.py's defaults (checked against the reference with the
    defaults passed explicitly), on inputs where each default changes the result."""
    d = schema.IF_NEURON.attributes
    assert (d["v_init"], d["leak"], d["reset"], d["signed"], d["signed_eps"], d["channel_axis"]) == (
        0.5, 1.0, "subtract", 0, 1e-3, 1)
    T = 6
    rng = np.random.default_rng(3)
    B = 2
    x = (rng.integers(-4, 5, size=(T * B, 3, 3)) * 0.25).astype(F32)
    # sample 0, neurons [0, 0] and [0, 1] (theta 1): fire at t=0 (v_init 0.5 + 0.5), then
    # v = -0.005 (fires -1 with signed_eps 1e-3, not with 1e-2) and v = -0.0005 (never).
    x[:, 0, :2] = 0.0
    x[0, 0, :2] = 0.5
    x[B, 0, :2] = [-0.005, -0.0005]
    th = np.array([1.0, 0.5, 0.25], F32)  # axis 1 == axis 2 in size: channel_axis matters
    for attrs in ({"time_steps": T}, {"time_steps": T, "signed": 1}):
        model, feeds = build("IFNeuron", [("x", x), ("threshold", th)], attrs, True)
        y, c = run(so, model, feeds)
        ry, rc = ref.if_neuron(x, th, time_steps=T, v_init=0.5, leak=1.0, reset="subtract",
                               signed=attrs.get("signed", 0), signed_eps=1e-3, channel_axis=1)
        check_spikes(y, c, ry, rc, True)
        np.testing.assert_array_equal(y[B, 0, :2], [-1.0 if "signed" in attrs else 0.0, 0.0])
    assert schema.PARA_IF_NEURON.attributes == {"time_steps": None, "v_init": 0.5, "channel_axis": 1,
                                                "static_input": 0}
    assert d["static_input"] == 0
    model, feeds = build("ParaIFNeuron", [("x", x), ("theta_pre", th)], {"time_steps": T}, True)
    y, c = run(so, model, feeds)
    ry, rc = ref.para_if_neuron(x, th, time_steps=T, v_init=0.5, channel_axis=1)
    check_spikes(y, c, ry, rc, True)


def test_int_valued_float_attribute(so):
    # onnx.helper stores v_init=1 as an INT attribute; it must mean 1.0.
    x = np.ones((4, 3), F32)
    model, feeds = build("IFNeuron", [("x", x), ("threshold", np.float32(1.5))],
                         {"time_steps": 2, "v_init": 1, "leak": 1}, True)
    y, c = run(so, model, feeds)
    ry, rc = ref.if_neuron(x, 1.5, time_steps=2, v_init=1.0)
    check_spikes(y, c, ry, rc, True)


def test_empty_batch(so):
    x = np.zeros((0, 3, 2), F32)
    model, feeds = build("IFNeuron", [("x", x), ("threshold", np.float32(1.0))],
                         {"time_steps": 4}, True)
    y, c = run(so, model, feeds)
    assert y.shape == (0, 3, 2) and c.shape == (4, 3, 2) and not c.any()


def test_empty_counts_name_means_no_counts(so):
    x = np.ones((4, 3), F32)
    node = helper.make_node("IFNeuron", ["x", "th"], ["y", ""], domain=schema.DOMAIN,
                            name="n", time_steps=2)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array(1.0, F32), "th")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid(schema.DOMAIN, 1)],
                              ir_version=10)
    (y,) = run(so, model.SerializeToString(), {"x": x})
    np.testing.assert_array_equal(y, ref.if_neuron(x, 1.0, time_steps=2)[0])


# Big enough for several tasks (custom_ops/src/cpu/parallel.h): neuron blocks with a partial
# last block, and (without counts) batch blocks when there are few neurons.
@pytest.mark.parametrize("shape,T", [((16 * 2, 3000), 16), ((4 * 8192, 16), 4),
                                     ((8 * 16, 2, 50, 41), 8), ((2 * 4000, 7, 5), 2)])
def test_threads_agree(snn_library, shape, T):
    """Work split over neuron blocks and batch blocks: the result is independent of threads."""
    rng = np.random.default_rng(11)
    x = rand_x(rng, shape)
    th = rand_positive(rng, shape[1])
    cases = []
    for counts in (True, False):
        cases.append(("IFNeuron", [("x", x), ("threshold", th)], {"time_steps": T, "signed": 1, "leak": 0.9}, counts))
        cases.append(("ParaIFNeuron", [("x", x), ("theta_pre", th)], {"time_steps": T}, counts))
    cases += [(op, [("x", x)], {"time_steps": T}, False) for op in ("TemporalMean", "TemporalDelta")]
    outs = outputs_equal_over_threads(snn_library, cases)
    ry, rc = ref.if_neuron(x, th, time_steps=T, signed=1, leak=0.9)
    check_spikes(outs[0], outs[1], ry, rc, True)
    ry, rc = ref.para_if_neuron(x, th, time_steps=T)
    check_spikes(outs[2], outs[3], ry, rc, True)


# ---------------------------------------------------------------------------------------------
# bad input: an ORT exception naming the op, the node and the problem; the process survives

X6 = np.ones((6, 4, 2), F32)
BAD = [
    # (op, inputs, attrs, fragments the message must contain)
    ("IFNeuron", [("x", X6), ("threshold", 1.0)], {"time_steps": 4},
     ["leading dimension 6", "not divisible by time_steps 4"]),
    ("IFNeuron", [("x", X6), ("threshold", 0.0)], {"time_steps": 2},
     ["threshold must be finite and > 0", "got 0"]),
    ("IFNeuron", [("x", X6), ("threshold", np.array([1, -2, 1, 1], F32))], {"time_steps": 2},
     ["threshold must be finite and > 0", "-2", "index 1"]),
    ("IFNeuron", [("x", X6), ("threshold", np.float32("nan"))], {"time_steps": 2},
     ["threshold must be finite and > 0", "nan"]),
    ("IFNeuron", [("x", X6), ("threshold", np.float32("inf"))], {"time_steps": 2},
     ["threshold must be finite and > 0", "inf"]),
    ("IFNeuron", [("x", X6), ("threshold", np.ones(3, F32))], {"time_steps": 2},
     ["threshold has 3 values", "input dimension 1", "is 4"]),
    ("IFNeuron", [("x", X6), ("threshold", np.ones(4, F32))], {"time_steps": 2, "channel_axis": 2},
     ["threshold has 4 values", "input dimension 2", "is 2"]),
    ("IFNeuron", [("x", X6), ("threshold", np.ones((2, 2), F32))], {"time_steps": 2},
     ["threshold must be a scalar or 1-D", "[2, 2]"]),
    ("IFNeuron", [("x", X6), ("threshold", np.ones(4, F32))], {"time_steps": 2, "channel_axis": 3},
     ["channel_axis 3 is out of range", "rank 3"]),
    ("IFNeuron", [("x", X6), ("threshold", np.ones(4, F32))], {"time_steps": 2, "channel_axis": 0},
     ["channel_axis 0 is out of range"]),
    ("IFNeuron", [("x", X6), ("threshold", np.ones(4, F32))], {"time_steps": 2, "channel_axis": -4},
     ["channel_axis -4 is out of range"]),
    ("IFNeuron", [("x", X6), ("threshold", 1.0)], {"time_steps": 2, "reset": "hard"},
     ["reset must be one of", "'hard'"]),
    ("IFNeuron", [("x", X6), ("threshold", 1.0)], {"time_steps": 0},
     ["time_steps must be >= 1, got 0"]),
    ("IFNeuron", [("x", X6), ("threshold", 1.0)], {},
     ["required attribute 'time_steps' is missing"]),
    ("IFNeuron", [("x", X6), ("threshold", 1.0)], {"time_steps": 2, "v_init": "half"},
     ["attribute 'v_init' must be a float"]),
    ("IFNeuron", [("x", np.float32(1.0)), ("threshold", 1.0)], {"time_steps": 1},
     ["at least one dimension"]),
    ("ParaIFNeuron", [("x", X6), ("theta_pre", 1.0)], {"time_steps": 4},
     ["leading dimension 6", "not divisible by time_steps 4"]),
    ("ParaIFNeuron", [("x", X6), ("theta_pre", -1.0)], {"time_steps": 2},
     ["theta_pre must be finite and > 0"]),
    ("ParaIFNeuron", [("x", X6), ("theta_pre", 1.0), ("theta_post", np.float32("nan"))],
     {"time_steps": 2}, ["theta_post must be finite and > 0"]),
    ("ParaIFNeuron", [("x", X6), ("theta_pre", 1.0), ("theta_post", None), ("bias", np.ones(5, F32))],
     {"time_steps": 2}, ["bias has 5 values", "is 4"]),
    ("ParaIFNeuron", [("x", X6), ("theta_pre", np.ones(2, F32))], {"time_steps": 2, "channel_axis": 5},
     ["channel_axis 5 is out of range"]),
    ("IFNeuron", [("x", X6), ("threshold", 1.0)], {"time_steps": 2, "static_input": 2},
     ["static_input must be 0 or 1, got 2"]),
    ("ParaIFNeuron", [("x", X6), ("theta_pre", 1.0)], {"time_steps": 2, "static_input": -1},
     ["static_input must be 0 or 1, got -1"]),
    ("TemporalMean", [("x", X6)], {"time_steps": 4}, ["not divisible by time_steps 4"]),
    ("TemporalDelta", [("x", X6)], {"time_steps": -1}, ["time_steps must be >= 1, got -1"]),
    # attributes the kernels cannot honour, refused at session creation (issue 14)
    ("TemporalMean", [("x", X6)], {"time_steps": 2**31}, ["time_steps must be <= 2147483647", "2147483648"]),
    ("IFNeuron", [("x", X6), ("threshold", 1.0)], {"time_steps": 2, "v_init": float("nan")},
     ["v_init must be finite, got nan"]),
    ("IFNeuron", [("x", X6), ("threshold", 1.0)], {"time_steps": 2, "leak": float("inf")},
     ["leak must be finite, got inf"]),
    ("IFNeuron", [("x", X6), ("threshold", 1.0)], {"time_steps": 2, "signed": 1, "signed_eps": float("-inf")},
     ["signed_eps must be finite, got -inf"]),
    ("ParaIFNeuron", [("x", X6), ("theta_pre", 1.0)], {"time_steps": 2, "v_init": float("nan")},
     ["v_init must be finite, got nan"]),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_input(so, case):
    op, inputs, attrs, fragments = BAD[case]
    inputs = [(n, None if v is None else np.asarray(v, F32)) for n, v in inputs]
    node_name = f"bad_node_{case}"
    counts = op in schema.SPIKING_OPS
    model, feeds = build(op, inputs, attrs, counts, node_name=node_name)
    with pytest.raises(Exception) as info:  # at session creation (attributes) or run (inputs)
        run(so, model, feeds)
    msg = str(info.value)
    assert f"{op} node '{node_name}'" in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    # the process and the library still work
    good, feeds = build("TemporalMean", [("x", X6)], {"time_steps": 3})
    (y,) = run(so, good, feeds)
    np.testing.assert_allclose(y, ref.temporal_mean(X6, time_steps=3))


# ---------------------------------------------------------------------------------------------
# reliability (issue 14): the inputs that crashed, hung or were computed wrongly, exactly as
# found; sizes that overflow are refused before anything is allocated


def session_error(so, model) -> str:
    with pytest.raises(Exception) as info:
        ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return str(info.value)


@pytest.mark.parametrize("op,param", [("IFNeuron", "threshold"), ("ParaIFNeuron", "theta_pre")])
@pytest.mark.parametrize("T", [2**62, 2**62 + 1])
def test_huge_time_steps_refused_at_session_creation(so, op, param, T):
    """time_steps 2^62 (+1) with static_input on a [4, 1] input: IFNeuron wrote out of bounds
    (T*B wrapped: SIGSEGV), ParaIFNeuron looped 2^62 times (a hang)."""
    model, _ = build(op, [("x", np.ones((4, 1), F32)), (param, 1.0)], {"time_steps": T, "static_input": 1}, True,
                     node_name="huge")
    msg = session_error(so, model)
    assert f"{op} node 'huge'" in msg and "time_steps must be <= 2147483647" in msg and str(T) in msg, msg


def test_largest_time_steps_accepted(so):
    model, _ = build("IFNeuron", [("x", np.ones((4, 1), F32)), ("threshold", 1.0)],
                     {"time_steps": 2**31 - 1, "static_input": 1}, True)
    ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])  # created; not run (8 GiB output)


# Empty tensors whose shapes make T*B, T*B*N or T*N overflow int64 (or exceed what a tensor
# can hold) without any memory behind them.
T_MAX = 2**31 - 1
OVERFLOW = [
    ("IFNeuron", np.zeros((2**40, 0), F32), {"time_steps": T_MAX, "static_input": 1}, False,
     ["output y of time_steps 2147483647 x batch 1099511627776", "too large for a tensor"]),
    ("ParaIFNeuron", np.zeros((2**40, 0), F32), {"time_steps": T_MAX, "static_input": 1}, True,
     ["output y of time_steps 2147483647 x batch 1099511627776", "too large for a tensor"]),
    ("IFNeuron", np.zeros((0, 2**40), F32), {"time_steps": T_MAX}, True,
     ["spike counts [time_steps 2147483647, 1099511627776 neurons] are too large"]),
    ("ParaIFNeuron", np.zeros((0, 2**40), F32), {"time_steps": 2**24, "static_input": 1}, True,
     ["spike counts [time_steps 16777216, 1099511627776 neurons] are too large"]),
    ("MultiThresholdNeuron", np.zeros((0, 2**40), F32), {"time_steps": T_MAX}, True,
     ["spike counts [time_steps 2147483647, 1099511627776 neurons] are too large"]),
    ("IFNeuron", np.zeros((2**31, 0), F32), {"time_steps": 1}, True,
     ["batch 2147483648 exceeds the spike counters' range"]),
]


@pytest.mark.parametrize("case", range(len(OVERFLOW)))
def test_sizes_that_overflow_are_refused(so, case):
    op, x, attrs, counts, fragments = OVERFLOW[case]
    params = {"IFNeuron": [("threshold", 1.0)], "ParaIFNeuron": [("theta_pre", 1.0)],
              "MultiThresholdNeuron": [("scale_pos", 1.0), ("scale_neg", 1.0)]}[op]
    model, feeds = build(op, [("x", x), *params], attrs, counts, node_name="big")
    with pytest.raises(Exception) as info:
        run(so, model, feeds)
    msg = str(info.value)
    assert f"{op} node 'big'" in msg and all(f in msg for f in fragments), msg


@pytest.mark.skipif(bool(os.environ.get("SNN_ONNX_SANITIZER")),
                    reason="under AddressSanitizer a failed operator new aborts (it cannot return null)")
def test_allocation_failure_is_an_error(so):
    """Spike counts of 2^52 int64 (32 PiB, beyond any address space): the allocation fails and
    the run returns an error; the process goes on."""
    model, feeds = build("IFNeuron", [("x", np.zeros((0, 2**36), F32)), ("threshold", 1.0)],
                         {"time_steps": 2**16}, True, node_name="alloc")
    with pytest.raises(Exception) as info:
        run(so, model, feeds)
    assert "alloc" in str(info.value), str(info.value)
    good, feeds = build("TemporalMean", [("x", X6)], {"time_steps": 3})
    np.testing.assert_allclose(run(so, good, feeds)[0], ref.temporal_mean(X6, time_steps=3))


FUSED_FUNCS = ("gelu", "gelu_tanh", "silu", "sigmoid", "tanh", "hardsigmoid", "hardswish", "relu")
SPECIAL = np.array([np.nan, -3.4e38, -np.inf, np.inf, 3.4e38, -0.0, 0.0, 1e-45, -1e-45, 88.8, -88.8, 104.5,
                    -104.5, 1e20, -1e20, 3.0, -3.0], F32)


@pytest.mark.parametrize("fn", FUSED_FUNCS)
@pytest.mark.parametrize("T", [1, 3])
def test_compensated_special_values(so, fn, T):
    """NaN into the fused gelu / gelu_tanh / silu / sigmoid / tanh was undefined behaviour in exp
    (NaN converted to int, a negative value shifted); relu(NaN) gave 0 and silu(-3.4e38) -2.06,
    silu(-inf) -inf. Now every value is the reference's (NaN where it has NaN)."""
    x = np.stack([np.roll(SPECIAL, k) for k in range(T)]).reshape(T, 1, -1)
    model, feeds = build("CompensatedElementwise", [("x", x)], {"time_steps": T, "function": fn})
    (y,) = run(so, model, feeds)
    r = ref.compensated_elementwise(x, time_steps=T, function=fn)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(r))
    np.testing.assert_allclose(y, r, rtol=1e-5, atol=1e-6)


def test_compensated_special_values_as_found(so):
    def f(fn, v):
        model, feeds = build("CompensatedElementwise", [("x", np.array([v], F32))], {"time_steps": 1, "function": fn})
        return run(so, model, feeds)[0][0]

    assert np.isnan(f("relu", np.nan))
    y = f("silu", -3.4e38)
    assert y == 0 and np.signbit(y)
    assert np.isnan(f("silu", -np.inf))
    for fn in ("gelu", "gelu_tanh", "silu", "sigmoid", "tanh"):
        assert np.isnan(f(fn, np.nan)), fn


def test_shared_sessions_under_concurrent_runs(snn_library):
    """One session per op, run from 8 threads at once (500 runs in all, each with its own input
    and, for the neurons, its own parameters fed as graph inputs, ORT's intra-op pool of 2
    threads each): every result equals the reference computed alone. The kernels keep no state
    between runs, so nothing may leak from one run into another."""
    from concurrent.futures import ThreadPoolExecutor

    opts = ort.SessionOptions()
    opts.register_custom_ops_library(snn_library)
    opts.intra_op_num_threads = 2
    opts.log_severity_level = 4
    T = 4
    specs = [
        ("IFNeuron", ["threshold"], {"time_steps": T, "signed": 1, "leak": 0.9}, True),
        ("ParaIFNeuron", ["theta_pre", "theta_post", "bias"], {"time_steps": T}, True),
        ("MultiThresholdNeuron", ["scale_pos", "scale_neg"], {"time_steps": T, "channel_axis": 1}, True),
        ("TemporalMean", [], {"time_steps": T}, False),
        ("TemporalDelta", [], {"time_steps": T}, False),
        ("CompensatedElementwise", [], {"time_steps": T, "function": "hardswish"}, False),
    ]
    sessions = {}
    for op, params, attrs, counts in specs:
        model, _ = build(op, [("x", X6)] + [(p, np.ones(3, F32)) for p in params], attrs, counts,
                         initializers=False)
        sessions[op] = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])

    def case(k):
        op, params, attrs, counts = specs[k % len(specs)]
        rng = np.random.default_rng(k)
        B, C = int(rng.integers(1, 6)), 3
        x = rand_x(rng, (T * B, C, int(rng.integers(1, 200))))
        feeds = {"x": x}
        for p in params:
            feeds[p] = rand_positive(rng, C) if p != "bias" else rng.normal(0, 1, C).astype(F32)
        if op == "MultiThresholdNeuron":
            want = ref.multi_threshold_neuron(x, feeds["scale_pos"], feeds["scale_neg"], **resolved(op, attrs))
        else:
            want = ref.REFERENCES[op](x, *[feeds[p] for p in params], **resolved(op, attrs))
        return op, feeds, want

    cases = [case(k) for k in range(500)]

    def run_case(c):
        op, feeds, want = c
        return sessions[op].run(None, feeds)

    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(run_case, cases))
    for (op, _, want), out in zip(cases, outs):
        if op in schema.SPIKING_OPS:
            check_spikes(out[0], out[1], want[0], want[1], True)
        elif op == "CompensatedElementwise":
            np.testing.assert_allclose(out[0], want, rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_array_equal(out[0], want)
