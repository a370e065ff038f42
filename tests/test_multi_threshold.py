"""MultiThresholdNeuron: the C++ (CPU) kernel against the NumPy reference (the definition),
the spec on hand-worked cases, and bad inputs (ORT errors naming the node, never an abort).

Model building and running reuse tests/test_kernels.py's helpers (one-node models run in plain
onnxruntime with the library registered).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from snn_onnx.ops import reference as ref
from snn_onnx.ops import schema
from test_kernels import OMIT, build, outputs_equal_over_threads, rand_shape, rand_x, resolved, run

F32 = np.float32
OP = "MultiThresholdNeuron"
N_CASES = 240


@pytest.fixture(scope="module")
def so(snn_library) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.register_custom_ops_library(snn_library)
    opts.intra_op_num_threads = 2
    opts.log_severity_level = 4
    return opts


def _scales(rng, n):
    kind = rng.integers(0, 3)
    if kind == 0:  # powers of two: levels and half-levels land exactly on input grids
        return rng.choice(np.array([0.125, 0.25, 0.5, 1.0], F32), size=n)
    if kind == 1:
        return rng.uniform(0.01, 1.0, size=n).astype(F32)
    return rng.choice(np.array([0.1, 0.3, 0.7], F32), size=n)


def mt_case(seed):
    rng = np.random.default_rng(5000 + seed)
    T = int(rng.integers(1, 17))
    shape = rand_shape(rng, T)
    x = rand_x(rng, shape)
    if rng.random() < 0.3:  # large inputs: top levels and persistent saturation
        x = x * F32(rng.choice([8.0, 40.0]))
    rank = len(shape)
    attrs = {"time_steps": T, "levels": rng.choice([OMIT, 1, 2, 3, 4, 8, 12])}
    per_channel = rank >= 2 and rng.random() < 0.6
    if per_channel:
        axis = int(rng.integers(1, rank))
        if axis == rank - 1 and rng.random() < 0.5:
            attrs["channel_axis"] = OMIT  # default -1: the last axis
        else:
            attrs["channel_axis"] = axis if rng.random() < 0.5 else axis - rank
        # each side independently per channel or scalar
        sp = _scales(rng, shape[axis]) if rng.random() < 0.8 else _scales(rng, 1).reshape(())
        sn = _scales(rng, shape[axis]) if rng.random() < 0.8 else _scales(rng, 1)
    else:
        attrs["channel_axis"] = OMIT if rng.random() < 0.5 else int(rng.choice([1, -1])) if rank >= 2 else OMIT
        sp = _scales(rng, 1).reshape(())
        sn = _scales(rng, 1) if rng.random() < 0.5 else sp.copy()
    return x, sp, sn, attrs, bool(rng.random() < 0.6), bool(rng.random() < 0.7)


@pytest.mark.parametrize("seed", range(N_CASES))
def test_kernel_matches_reference(so, seed):
    x, sp, sn, attrs, counts, inits = mt_case(seed)
    model, feeds = build(OP, [("x", x), ("scale_pos", sp), ("scale_neg", sn)], attrs, counts,
                         initializers=inits)
    out = run(so, model, feeds)
    ry, rc = ref.multi_threshold_neuron(x, sp, sn, **resolved(OP, attrs))
    assert out[0].dtype == np.float32 and out[0].shape == x.shape
    np.testing.assert_array_equal(out[0], ry)  # which level fires when, with its sign: exact
    assert len(out) == (2 if counts else 1)
    if counts:
        assert out[1].dtype == np.int64 and out[1].shape == (attrs["time_steps"], *x.shape[1:])
        np.testing.assert_array_equal(out[1], rc)


def test_schema_defaults():
    assert schema.MULTI_THRESHOLD_NEURON.attributes == {"time_steps": None, "levels": 8, "channel_axis": -1}
    assert schema.MULTI_THRESHOLD_NEURON.inputs == ("x", "scale_pos", "scale_neg")


def test_spec_hand_worked():
    """s_p = 1, s_n = 0.5, N = 3: levels +1, +2, +4 (thresholds at the midpoints 0.5, 1.5, 3)
    and -0.5, -1, -2 (thresholds on -v: 0.25, 0.75, 1.5): each step the nearest level."""
    x = np.array([3.2, 0.0, 1.4, -0.9, 10.0, 0.0], F32)  # T = 6, B = 1, one neuron
    y, c = ref.multi_threshold_neuron(x, 1.0, 0.5, time_steps=6, levels=3)
    # v: 3.2 -> +4 (v=-0.8); -0.8 -> -1 (v=0.2); 1.6 -> +2 (v=-0.4); -1.3 -> -1 (v=-0.3);
    # 9.7 -> +4 (5.7); 5.7 -> +4 (1.7)
    np.testing.assert_array_equal(y, np.array([4.0, -1.0, 2.0, -1.0, 4.0, 4.0], F32))
    np.testing.assert_array_equal(c.ravel(), [1, 1, 1, 1, 1, 1])


def test_nearest_level():
    """One step from rest: the level nearest to the input (of 0 and ±s·2^k), ties upward."""
    s, levels = F32(0.25), 6
    x = np.linspace(-20, 20, 4001).astype(F32)
    y, _ = ref.multi_threshold_neuron(x[None, :], s, s, time_steps=1, levels=levels)
    grid = np.concatenate([-s * 2.0 ** np.arange(levels)[::-1], [0.0], s * 2.0 ** np.arange(levels)])
    dist = np.abs(x[:, None].astype(np.float64) - grid[None, :])
    best = dist.min(axis=1)
    assert np.all(np.abs(x - y[0]) <= best + 1e-6)


def test_equality_fires(so):
    """v exactly on a threshold (a midpoint between levels) fires the upper level (>=), on both sides."""
    T = 2
    x = np.array([[0.5, 1.5, 3.0, 6.0, -0.5, -3.0, 0.49, 2.99]] * T, F32).reshape(T, 8)
    x[1] = 0.0
    model, feeds = build(OP, [("x", x), ("scale_pos", np.float32(1.0)), ("scale_neg", np.float32(1.0))],
                         {"time_steps": T, "levels": 4}, True)
    y, c = run(so, model, feeds)
    np.testing.assert_array_equal(y[0], [1.0, 2.0, 4.0, 8.0, -1.0, -4.0, 0.0, 2.0])
    ry, rc = ref.multi_threshold_neuron(x, 1.0, 1.0, time_steps=T, levels=4)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(c, rc)


def test_running_mean_tracks_input():
    """Inputs within the top level: after each step the membrane (cumulative input minus
    cumulative output) stays within half the top level, so the running mean output converges
    like 1/t."""
    rng = np.random.default_rng(0)
    T, levels, s = 64, 8, np.float32(0.01)
    top = float(s) * 2 ** (levels - 1)
    x = rng.uniform(-top, top, size=(T * 4, 300)).astype(F32)
    y, _ = ref.multi_threshold_neuron(x, s, s, time_steps=T, levels=levels)
    xt, yt = x.reshape(T, 4, 300).astype(np.float64), y.reshape(T, 4, 300).astype(np.float64)
    v = np.cumsum(xt - yt, axis=0)
    assert np.abs(v).max() <= top / 2 + 1e-5 * top
    # constant input: mean output within (top / 2) / t of it
    xc = np.tile(rng.uniform(-top, top, size=(1, 300)).astype(F32), (T, 1))
    yc, _ = ref.multi_threshold_neuron(xc, s, s, time_steps=T, levels=levels)
    err = np.abs(np.cumsum(yc, 0) / np.arange(1, T + 1)[:, None] - xc)
    assert np.all(err <= (top / 2) / np.arange(1, T + 1)[:, None] + 1e-6)


def test_threads_agree(snn_library):
    rng = np.random.default_rng(12)
    T = 4
    x = rand_x(rng, (T * 3, 50, 384)) * F32(3.0)
    sp = rng.uniform(0.01, 0.1, size=384).astype(F32)
    sn = rng.uniform(0.01, 0.1, size=384).astype(F32)
    inputs = [("x", x), ("scale_pos", sp), ("scale_neg", sn)]
    outs = outputs_equal_over_threads(snn_library, [(OP, inputs, {"time_steps": T}, c) for c in (True, False)])
    ry, rc = ref.multi_threshold_neuron(x, sp, sn, time_steps=T)
    np.testing.assert_array_equal(outs[0], ry)
    np.testing.assert_array_equal(outs[1], rc)


X6 = np.ones((6, 4, 3), F32)
ONE = np.float32(1.0)
BAD = [
    ([("x", X6), ("scale_pos", ONE), ("scale_neg", ONE)], {"time_steps": 4},
     ["leading dimension 6", "not divisible by time_steps 4"]),
    ([("x", X6), ("scale_pos", np.float32(0.0)), ("scale_neg", ONE)], {"time_steps": 2},
     ["scale_pos must be finite and > 0", "got 0"]),
    ([("x", X6), ("scale_pos", ONE), ("scale_neg", np.float32(-0.5))], {"time_steps": 2},
     ["scale_neg must be finite and > 0", "-0.5"]),
    ([("x", X6), ("scale_pos", np.array([1, 1, -1], F32)), ("scale_neg", ONE)], {"time_steps": 2},
     ["scale_pos must be finite and > 0", "index 2"]),
    ([("x", X6), ("scale_pos", ONE), ("scale_neg", np.float32("nan"))], {"time_steps": 2},
     ["scale_neg must be finite and > 0", "nan"]),
    ([("x", X6), ("scale_pos", np.ones(4, F32)), ("scale_neg", ONE)], {"time_steps": 2},
     ["scale_pos has 4 values", "input dimension 2", "is 3"]),
    ([("x", X6), ("scale_pos", ONE), ("scale_neg", np.ones(3, F32))], {"time_steps": 2, "channel_axis": 1},
     ["scale_neg has 3 values", "input dimension 1", "is 4"]),
    ([("x", X6), ("scale_pos", np.ones((3, 1), F32)), ("scale_neg", ONE)], {"time_steps": 2},
     ["scale_pos must be a scalar or 1-D", "[3, 1]"]),
    ([("x", X6), ("scale_pos", np.ones(3, F32)), ("scale_neg", ONE)], {"time_steps": 2, "channel_axis": 0},
     ["channel_axis 0 is out of range"]),
    ([("x", X6), ("scale_pos", ONE), ("scale_neg", ONE)], {"time_steps": 2, "levels": 0},
     ["levels must be in [1, 32], got 0"]),
    ([("x", X6), ("scale_pos", ONE), ("scale_neg", ONE)], {"time_steps": 2, "levels": 33},
     ["levels must be in [1, 32], got 33"]),
    ([("x", X6), ("scale_pos", ONE), ("scale_neg", ONE)], {"time_steps": 0},
     ["time_steps must be >= 1, got 0"]),
    ([("x", X6), ("scale_pos", ONE), ("scale_neg", ONE)], {},
     ["required attribute 'time_steps' is missing"]),
    ([("x", X6), ("scale_pos", ONE), ("scale_neg", ONE)], {"time_steps": 2, "levels": 2.5},
     ["attribute 'levels' must be an integer"]),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_input(so, case):
    inputs, attrs, fragments = BAD[case]
    node_name = f"bad_mt_{case}"
    model, feeds = build(OP, inputs, attrs, True, node_name=node_name)
    with pytest.raises(Exception) as info:
        run(so, model, feeds)
    msg = str(info.value)
    assert f"{OP} node '{node_name}'" in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    # the reference refuses the same inputs (attribute errors aside, which ORT catches first)
    if "time_steps" in attrs and attrs["time_steps"] >= 1:
        args = {n: v for n, v in inputs}
        with pytest.raises(ValueError):
            ref.multi_threshold_neuron(args["x"], args["scale_pos"], args["scale_neg"],
                                       **{**resolved(OP, attrs), **{k: v for k, v in attrs.items()}})
    good, feeds = build(OP, [("x", X6), ("scale_pos", ONE), ("scale_neg", ONE)], {"time_steps": 3})
    (y,) = run(so, good, feeds)
    np.testing.assert_array_equal(y, ref.multi_threshold_neuron(X6, 1.0, 1.0, time_steps=3)[0])


@pytest.mark.parametrize("levels", [1, 31, 32])
def test_extreme_levels(so, levels):
    """Every level count the kernel is compiled for up to 32 (2^31 as the top level), huge inputs."""
    rng = np.random.default_rng(levels)
    T = 5
    x = (rng.standard_normal((T * 2, 7, 33)) * rng.choice([1.0, 1e6, 3e9], size=(1, 1, 33))).astype(F32)
    for sp, sn in ((np.float32(0.5), np.float32(2.0)), (rng.uniform(0.1, 3, 33).astype(F32), np.float32(1.0))):
        model, feeds = build(OP, [("x", x), ("scale_pos", sp), ("scale_neg", sn)], {"time_steps": T, "levels": levels}, True)
        y, c = run(so, model, feeds)
        ry, rc = ref.multi_threshold_neuron(x, sp, sn, time_steps=T, levels=levels)
        np.testing.assert_array_equal(y, ry)
        np.testing.assert_array_equal(c, rc)
