"""Membrane potentials, the neurons' optional debug output (docs/ops.md, "Membrane potentials"):
what each op's potential is (hand-worked), the CPU kernels against the NumPy reference (bit for
bit, spikes unchanged by declaring the output), ``Session(potentials=True)``, and the report's
histograms, near-threshold fractions, panel and TensorBoard tags. The CUDA bodies are checked in
tests/test_cuda.py (emulated everywhere, on a GPU where there is one)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from snn_onnx.ops import reference as ref
from test_kernels import build, if_case, para_case, rand_positive, rand_x, resolved, run, static_case
from test_multi_threshold import mt_case

F32 = np.float32
OPS = ("IFNeuron", "ParaIFNeuron", "MultiThresholdNeuron")
N_CASES = 120


@pytest.fixture(scope="module")
def so(snn_library) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.register_custom_ops_library(snn_library)
    opts.intra_op_num_threads = 2
    opts.log_severity_level = 4
    return opts


def op_case(op: str, seed: int):
    """(inputs, attrs, counts, initializers) of a random case; every third IF / ParaIF case has a
    static input."""
    if op == "IFNeuron":
        x, th, attrs, counts, inits = static_case(if_case, seed) if seed % 3 == 0 else if_case(seed)
        return [("x", x), ("threshold", th)], attrs, counts, inits
    if op == "ParaIFNeuron":
        x, pre, post, bias, attrs, counts, inits = static_case(para_case, seed) if seed % 3 == 0 else para_case(seed)
        return [("x", x), ("theta_pre", pre), ("theta_post", post), ("bias", bias)], attrs, counts, inits
    x, sp, sn, attrs, counts, inits = mt_case(seed)
    return [("x", x), ("scale_pos", sp), ("scale_neg", sn)], attrs, counts, inits


# --------------------------------------------------------------------------- what a potential is


def test_if_potential_is_the_membrane_before_fire_and_reset():
    x = np.full((3, 1), 0.6, F32)
    y, _, v = ref.if_neuron(x, F32(1.0), time_steps=3, v_init=0.5, potentials=True)
    np.testing.assert_allclose(v.ravel(), [1.1, 0.7, 1.3], rtol=1e-6)  # 0.5 + 0.6, 0.1 + 0.6, 0.7 + 0.6
    assert y.ravel().tolist() == [1.0, 0.0, 1.0]
    y, _, v = ref.if_neuron(x, F32(1.0), time_steps=3, v_init=0.5, leak=0.5, reset="zero", potentials=True)
    np.testing.assert_allclose(v.ravel(), [0.85, 1.025, 0.6], rtol=1e-6)  # 0.5·0.5 + 0.6, …, 0 + 0.6
    y, _, v = ref.if_neuron(np.array([[1.2], [-0.5], [-0.5]], F32), F32(1.0), time_steps=3, v_init=0.0, signed=1,
                            potentials=True)
    np.testing.assert_allclose(v.ravel(), [1.2, -0.3, 0.2], rtol=1e-6)  # -0.3 fires -1 and gets θ back
    assert y.ravel().tolist() == [1.0, -1.0, 0.0]


def test_para_if_potential_is_the_equivalent_if_membrane():
    x = np.full((4, 1), 0.6, F32)  # acc 2.4, drive 2.9: fires at steps 1 and 2
    y, _, u = ref.para_if_neuron(x, F32(1.0), time_steps=4, v_init=0.5, potentials=True)
    assert y.ravel().tolist() == [1.0, 1.0, 0.0, 0.0]
    np.testing.assert_allclose(u.ravel(), [2.9, 1.9, 0.9, 0.9], rtol=1e-6)


@pytest.mark.parametrize("seed", range(40))
def test_para_if_fires_where_its_potential_reaches_threshold(seed):
    """u_t >= θ_pre exactly where ParaIF fires, up to the rounding of the two forms."""
    inputs, attrs, _, _ = op_case("ParaIFNeuron", seed)
    args = [v for _, v in inputs]
    a = resolved("ParaIFNeuron", attrs)
    y, _, u = ref.para_if_neuron(*args, **a, potentials=True)
    fire = y != 0
    pre = ref.broadcast_param(args[1], y.shape, a["channel_axis"], "p", "theta_pre")
    pre = np.broadcast_to(pre, y.shape)
    T = a["time_steps"]
    near = np.abs(u.astype(np.float64) - pre) <= 1e-5 * T * np.maximum(np.abs(u), pre)
    assert np.all((u >= pre) == fire | near)


def test_multi_threshold_potential_is_the_membrane_before_emission():
    x = np.array([[0.7], [0.7], [-0.2]], F32)  # s = 0.5: levels 0.5, 1, 2, …
    y, _, v = ref.multi_threshold_neuron(x, F32(0.5), F32(0.5), time_steps=3, levels=4, potentials=True)
    np.testing.assert_allclose(v.ravel(), [0.7, 0.9, -0.3], rtol=1e-6)  # 0.7 - 0.5 + 0.7 = 0.9; 0.9 - 1 - 0.2
    assert y.ravel().tolist() == [0.5, 1.0, -0.5]


# --------------------------------------------------------------------------- CPU kernels


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("seed", range(N_CASES))
def test_kernel_potentials_match_the_reference(so, op, seed):
    inputs, attrs, counts, inits = op_case(op, seed)
    model, feeds = build(op, inputs, attrs, counts, initializers=inits, potentials=True)
    out = run(so, model, feeds)
    assert len(out) == (3 if counts else 2)
    ry, rc, rp = ref.REFERENCES[op](*[v for _, v in inputs], **resolved(op, attrs), potentials=True)
    pot = out[-1]
    assert pot.dtype == F32 and pot.shape == ry.shape
    np.testing.assert_array_equal(pot, rp)  # the same float32 expressions: bit for bit
    np.testing.assert_array_equal(out[0], ry)
    if counts:
        np.testing.assert_array_equal(out[1], rc)
    plain, feeds = build(op, inputs, attrs, counts, initializers=inits)
    for a, b in zip(run(so, plain, feeds), out):  # declaring potentials changes no spike
        np.testing.assert_array_equal(a, b)


def test_kernel_potentials_with_nan_and_inf(so):
    x = np.array([[np.nan, np.inf, -np.inf, 1.0]] * 3, F32)
    for op, params, attrs in (
        ("IFNeuron", [("threshold", F32(1.0))], {"time_steps": 3, "signed": 1}),
        ("ParaIFNeuron", [("theta_pre", F32(1.0))], {"time_steps": 3}),
        ("MultiThresholdNeuron", [("scale_pos", F32(0.5)), ("scale_neg", F32(0.5))], {"time_steps": 3}),
    ):
        model, feeds = build(op, [("x", x), *params], attrs, True, potentials=True)
        y, c, p = run(so, model, feeds)
        ry, rc, rp = ref.REFERENCES[op](x, *[v for _, v in params], **resolved(op, attrs), potentials=True)
        np.testing.assert_array_equal(p, rp)
        np.testing.assert_array_equal(y, ry)
        assert np.isnan(p[:, 0]).all()


def test_kernel_potentials_threads_agree(snn_library):
    """Big enough for several neuron and batch blocks: 1 vs 4 threads, with and without counts."""
    rng = np.random.default_rng(21)
    T, x = 6, rand_x(rng, (6 * 5, 8, 30, 31))
    th = rand_positive(rng, 8)
    results = []
    for threads in (1, 4):
        opts = ort.SessionOptions()
        opts.register_custom_ops_library(snn_library)
        opts.intra_op_num_threads = threads
        outs = []
        for counts in (True, False):
            for op, params, attrs in (
                ("IFNeuron", [("threshold", th)], {"time_steps": T, "leak": 0.9, "signed": 1}),
                ("ParaIFNeuron", [("theta_pre", th)], {"time_steps": T}),
                ("MultiThresholdNeuron", [("scale_pos", th), ("scale_neg", th)], {"time_steps": T, "channel_axis": 1}),
            ):
                model, feeds = build(op, [("x", x), *params], attrs, counts, potentials=True)
                outs.append(run(opts, model, feeds)[-1])
        results.append(outs)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    _, _, rp = ref.if_neuron(x, th, time_steps=T, leak=0.9, signed=1, potentials=True)
    np.testing.assert_array_equal(results[0][0], rp)
