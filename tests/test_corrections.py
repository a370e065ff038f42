"""Calibration for ordinary networks (snn_onnx/conversion/corrections): the threshold methods
(mse, ltb) and the post-conversion corrections (threshold shift, bias and potential correction),
on the ReLU digits networks trained here (real weights, real data), against SpikingJelly's LTB
recipe and against the NumPy reference of the neurons; refusals.

The figures of docs/fidelity.md come from benchmarks/fidelity.py; these tests assert the
properties each method promises (not timings)."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import snn_onnx
from snn_onnx.conversion.ann_runner import ann_session, with_outputs
from snn_onnx.conversion.calibrate import CalibrationConfig
from snn_onnx.conversion.corrections import CorrectionConfig, neuron_quantizer
from snn_onnx.conversion.pipeline import ConversionWarning
from snn_onnx.errors import CalibrationError, ConversionError
from snn_onnx.ops import reference as ref
from snn_onnx.runtime.session import Session, make_session


@pytest.fixture(scope="module")
def digits():
    from snn_onnx import data

    return data.load("digits", "train"), data.load("digits", "test")


def _ann(name: str) -> onnx.ModelProto:
    from snn_onnx_models.digits_relu import onnx_path

    return onnx.load(str(onnx_path(name)))


def _convert(ann, T, neuron, x, method="max", per_channel=False, optimize_graph=True, **corr):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConversionWarning)
        return snn_onnx.convert(ann, time_steps=T, neuron=neuron, data=x, parity_samples=8,
                                calibration=CalibrationConfig(method=method, per_channel=per_channel, num_samples=len(x)),
                                corrections=CorrectionConfig(**corr), optimize_graph=optimize_graph)


def _site_errors(ann, res, x, T) -> np.ndarray:
    """Per site: mean |per-channel mean error| of the SNN's activation (mean over T) vs the ANN's."""
    names = [r.output for r in res.sites]
    a = ann_session(ann, names).run(names, {"input": x})
    s = make_session(with_outputs(res.model, names)).run(names, {"input": x})
    out = []
    for av, sv in zip(a, s):
        err = sv.reshape((T, -1) + sv.shape[1:]).mean(0) - av
        out.append(float(np.abs(err.mean(axis=tuple(i for i in range(err.ndim) if i != 1))).mean()))
    return np.array(out)


# --------------------------------------------------------------------------- threshold methods


def test_trained_networks_match_their_recorded_accuracy(digits):
    _, te = digits
    for name in ("digits_relu_cnn", "digits_resnet"):
        ann = _ann(name)
        recorded = float(next(p.value for p in ann.metadata_props if p.key == "snn_onnx.example.test_accuracy"))
        logits = ann_session(ann).run(None, {"input": te.x})[0]
        assert abs(float(np.mean(logits.argmax(1) == te.y)) - recorded) < 1e-6
        assert recorded > 0.98
        assert not any(n.op_type in ("Floor", "Round", "Clip") for n in ann.graph.node)  # ordinary ReLU nets


def test_mse_threshold_is_the_least_squared_error_of_the_grid():
    from snn_onnx.conversion.calibrate import SiteRequest
    from snn_onnx.conversion.corrections.thresholds import MSEStats

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.exponential(1.0, 20000), -rng.exponential(1.0, 20000), [40.0]]).astype(np.float32)
    for T in (4, 16):
        st = MSEStats(SiteRequest("s", "v", 1), CalibrationConfig(method="mse", per_channel=False), 1, rng, T, 0.5)
        st.update(x.reshape(1, -1))
        th, dead = st.threshold()
        pos = np.maximum(x.astype(np.float64), 0)
        def sse(t):
            return float(np.sum((pos - neuron_quantizer(pos, t, T, 0.5)) ** 2))
        grid = [40.0 * (1 - 0.01 * i) for i in range(95)]
        assert dead == []
        assert sse(float(th)) == pytest.approx(min(sse(t) for t in grid), rel=1e-6)  # θ is float32
        assert float(th) < 0.5 * 40.0  # the outlier is clipped, unlike max calibration


def test_mse_per_channel_thresholds_fit_each_channel(digits):
    tr, _ = digits
    ann = _ann("digits_relu_cnn")
    res = _convert(ann, 8, "paraif", tr.x[:256], method="mse", per_channel=True)
    mx = _convert(ann, 8, "paraif", tr.x[:256], method="max", per_channel=True)
    for r, m in zip(res.sites, mx.sites):
        th, top = np.array(r.threshold), np.array(m.threshold)
        assert th.shape == top.shape and th.size > 1
        assert np.all(th <= top + 1e-6) and np.all(th >= 0.05 * top - 1e-6)
        assert r.threshold_source == "calibration:mse"


def test_ltb_thresholds_equal_spikingjellys(digits):
    """Our local threshold balancing (ONNX Runtime, the ONNX file) gives SpikingJelly's
    LocalThresholdBalancingRecipe thresholds (PyTorch, the torch module) on the same batches."""
    pytest.importorskip("spikingjelly")
    import contextlib
    import io

    import torch
    from spikingjelly.activation_based import ann2snn

    from snn_onnx_models.digits_relu import load_model

    tr, _ = digits
    x = tr.x[:256]
    res = _convert(_ann("digits_resnet"), 8, "if", x, method="ltb", per_channel=True)
    loader = [torch.from_numpy(x[s : s + 32]) for s in range(0, len(x), 32)]
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sj = ann2snn.Converter(recipe=ann2snn.LocalThresholdBalancingRecipe(dataloader=loader), device="cpu").convert(
            load_model("digits_resnet"))
    theirs = [m.scale.detach().numpy().ravel() for n, m in sj.named_modules() if n.endswith("scaler1")]
    assert len(theirs) == len(res.sites) == 7
    for r, t in zip(res.sites, theirs):
        np.testing.assert_allclose(np.array(r.threshold), t, rtol=2e-4)


# --------------------------------------------------------------------------- corrections


@pytest.mark.parametrize("neuron", ["if", "paraif"])
def test_bias_and_potential_correction_reduce_the_mean_error(digits, neuron):
    """Li et al.'s corrections: every site's per-channel mean error against the ANN shrinks
    (measured on the calibration samples they were fitted on)."""
    tr, _ = digits
    x, T, ann = tr.x[:128], 8, _ann("digits_resnet")
    base = _site_errors(ann, _convert(ann, T, neuron, x), x, T)
    bias = _convert(ann, T, neuron, x, bias=True)
    pot = _convert(ann, T, neuron, x, potential=True)
    e_bias, e_pot = _site_errors(ann, bias, x, T), _site_errors(ann, pot, x, T)
    assert e_bias.sum() < 0.65 * base.sum(), (base, e_bias)
    assert e_pot.sum() < 0.5 * base.sum(), (base, e_pot)
    assert np.all(e_pot[1:] < base[1:]), (base, e_pot)
    info = bias.calibration["corrections"]
    assert info["bias"] and set(info["sites"]) == {r.site for r in bias.sites}
    tags = [p.value for n in bias.model.graph.node for p in n.metadata_props if p.key == "snn_onnx.rule"]
    assert tags.count("correction") == len(bias.sites)  # one Add of a current per neuron


def _tiny_relu(seed=0):
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((6, 5)).astype(np.float32)
    w2 = rng.standard_normal((5, 3)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"), helper.make_node("Relu", ["h"], ["a"], name="relu"),
         helper.make_node("MatMul", ["a", "w2"], ["y"], name="fc2")], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def _initializer(model, suffix):
    return next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name.endswith(suffix))


@pytest.mark.parametrize("hoisted", [False, True])
def test_if_potential_correction_is_an_initial_potential(hoisted):
    """The IF neuron with a potential correction p computes the reference IF neuron whose
    membrane starts at v_init·θ + p (p added on the first step only), whether or not its input
    was made time-invariant by the hoisting pass (then it is repeated first)."""
    ann = _tiny_relu()
    x = np.random.default_rng(1).standard_normal((40, 6)).astype(np.float32)
    T = 6
    res = _convert(ann, T, "if", x, optimize_graph=hoisted, potential=True)
    repeated = any(n.op_type == "Tile" and n.name.endswith("/correction/repeated") for n in res.model.graph.node)
    assert repeated == hoisted
    p = _initializer(res.model, "/correction/potential")[0]
    theta = float(res.sites[0].threshold[0])
    h = x @ numpy_helper.to_array(ann.graph.initializer[0])
    steps = np.tile(h, (T, 1))
    steps[: len(x)] += p  # the first step carries the potential
    want, _ = ref.if_neuron(steps, theta, time_steps=T, v_init=0.5, channel_axis=1)
    got = make_session(with_outputs(res.model, ["a"])).run(["a"], {"x": x})[0]
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.any(p != 0)


def test_paraif_potential_is_a_current_over_T():
    ann = _tiny_relu()
    x = np.random.default_rng(1).standard_normal((40, 6)).astype(np.float32)
    T = 6
    res = _convert(ann, T, "paraif", x, potential=True)
    c = _initializer(res.model, "/correction/neuron_current")[0]
    theta = float(res.sites[0].threshold[0])
    h = x @ numpy_helper.to_array(ann.graph.initializer[0])
    want, _ = ref.para_if_neuron(np.tile(h + c, (T, 1)), theta, time_steps=T, v_init=0.5, channel_axis=1)
    got = make_session(with_outputs(res.model, ["a"])).run(["a"], {"x": x})[0]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_threshold_shift(digits):
    """Deng & Gu: membrane from 0, θ/(2T) added every step. For IF it is the reference neuron so
    fed; for ParaIF, which sees only the sum, it is the default v_init = 0.5."""
    ann = _tiny_relu()
    x = np.random.default_rng(2).standard_normal((40, 6)).astype(np.float32)
    T = 5
    res = _convert(ann, T, "if", x, shift=True)
    theta = float(res.sites[0].threshold[0])
    np.testing.assert_allclose(_initializer(res.model, "/correction/current"), theta / (2 * T), rtol=1e-6)
    node = next(n for n in res.model.graph.node if n.op_type == "IFNeuron")
    assert helper.get_attribute_value(next(a for a in node.attribute if a.name == "v_init")) == 0.0
    h = x @ numpy_helper.to_array(ann.graph.initializer[0])
    want, _ = ref.if_neuron(np.tile(h + np.float32(theta / (2 * T)), (T, 1)), theta, time_steps=T, v_init=0.0)
    got = make_session(with_outputs(res.model, ["a"])).run(["a"], {"x": x})[0]
    np.testing.assert_allclose(got, want, atol=1e-6)
    tr, _ = digits
    dig = _ann("digits_relu_cnn")
    a = Session(_convert(dig, 8, "paraif", tr.x[:64], shift=True).model).run(tr.x[:64]).outputs["logits"]
    b = Session(_convert(dig, 8, "paraif", tr.x[:64]).model).run(tr.x[:64]).outputs["logits"]
    assert np.mean(a.argmax(1) == b.argmax(1)) == 1.0
    np.testing.assert_allclose(a, b, atol=1e-3 * np.abs(b).max())


# --------------------------------------------------------------------------- fidelity targets


@pytest.mark.parametrize("name", ["digits_relu_cnn", "digits_resnet"])
def test_ordinary_relu_networks_within_a_point_at_T32(digits, name):
    """Issue 16's target on real data: at T = 32 the SNN's test accuracy is at least 99 % of the
    ANN's, with IF and ParaIF neurons, per-channel mse thresholds."""
    tr, te = digits
    ann = _ann(name)
    acc_ann = float(np.mean(ann_session(ann).run(None, {"input": te.x})[0].argmax(1) == te.y))
    for neuron in ("if", "paraif"):
        res = _convert(ann, 32, neuron, tr.x[:512], method="mse", per_channel=True)
        pred = Session(res.model).run(te.x, spike_counts=False).outputs["logits"].argmax(1)
        assert np.mean(pred == te.y) >= 0.99 * acc_ann, (neuron, np.mean(pred == te.y), acc_ann)


def test_mse_per_channel_beats_max_at_small_T(digits):
    """At T = 4 the IF SNN of the ResNet agrees with the ANN more often with per-channel mse
    thresholds than with max (docs/fidelity.md has the whole grid)."""
    tr, te = digits
    ann = _ann("digits_resnet")
    ann_pred = ann_session(ann).run(None, {"input": te.x})[0].argmax(1)
    agree = {}
    for method, pc in (("max", False), ("mse", True)):
        res = _convert(ann, 4, "if", tr.x, method=method, per_channel=pc)
        agree[method] = float(np.mean(Session(res.model).run(te.x, spike_counts=False).outputs["logits"].argmax(1) == ann_pred))
    assert agree["mse"] > agree["max"] + 0.02, agree


# --------------------------------------------------------------------------- refusals


def test_refusals(digits):
    tr, _ = digits
    from snn_onnx_models import example_model_path

    with pytest.raises(ConversionError, match="staircase"):
        _convert(onnx.load(str(example_model_path())), 8, "paraif", tr.x[:32], bias=True)
    with pytest.raises(ConversionError, match="does not combine with v_init"):
        snn_onnx.convert(_ann("digits_relu_cnn"), time_steps=8, data=tr.x[:32],
                         neuron=snn_onnx.NeuronConfig(kind="if", v_init=0.5), corrections=CorrectionConfig(shift=True))
    with pytest.raises(CalibrationError, match="calibration method must be one of"):
        CalibrationConfig(method="kl")
    with pytest.raises(ConversionError, match="samples"):
        CorrectionConfig(samples=0)


def test_transformer_mode_refuses_corrections(tmp_path):
    from click.testing import CliRunner
    from snn_onnx_cli.main import cli

    from snn_onnx_models.digits_vit import digits_vit_path

    from snn_onnx import data

    x = data.load("digits", "train", limit=16).x
    vit = onnx.load(str(digits_vit_path()))
    with pytest.raises(ConversionError, match="transformer mode"):
        snn_onnx.convert(vit, time_steps=4, data=x, corrections=CorrectionConfig(bias=True))
    for flags in (["--calib-method", "ltb"], ["--bias-correction"]):
        r = CliRunner().invoke(cli, ["convert", str(digits_vit_path()), "--mode", "transformer", "--data", "digits",
                                     "--num-calib", "16", "-T", "2", "-o", str(tmp_path / "v.onnx"), "--quiet", *flags])
        assert r.exit_code != 0 and "does not apply" in r.stderr, (flags, r.stderr)


def test_cli_flags(tmp_path):
    from click.testing import CliRunner
    from snn_onnx_cli.main import cli

    from snn_onnx_models.digits_relu import onnx_path

    out = tmp_path / "r.snn.onnx"
    r = CliRunner().invoke(cli, ["convert", str(onnx_path("digits_relu_cnn")), "--data", "digits", "--num-calib", "64",
                                 "--calib-method", "mse", "--per-channel", "--bias-correction", "--correction-samples",
                                 "32", "-T", "4", "-o", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    from snn_onnx import metadata

    meta = metadata.read(onnx.load(str(out)))
    assert meta["calibration"]["method"] == "mse" and meta["calibration"]["corrections"]["bias"]
    assert meta["calibration"]["corrections"]["samples"] == 32
    n = len(meta["calibration"]["corrections"]["sites"])
    assert n == 4  # the CNN's four ReLUs
    r = CliRunner().invoke(cli, ["info", str(out)])
    assert r.exit_code == 0 and f"corrections: bias at {n} neurons (measured on 32 samples)" in r.output, r.output
    r = CliRunner().invoke(cli, ["convert", "--bias-correction", "-o", str(tmp_path / "x.onnx"), "--quiet"])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: ") and "staircase" in lines[0], r.stderr
